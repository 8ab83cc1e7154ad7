//! `afu inspect`: what each learned AFU of a run resembles.

use std::path::PathBuf;

use clap::Args;

use super::UsageError;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A run folder (with afu.json, and histograms.json when recorded) or an AFU file.
    source: PathBuf,
    /// Only AFUs whose name starts with this (e.g. afu-relu-128/seed0).
    #[arg(long)]
    afu_name: Option<String>,
    /// Input range used when the run recorded no input histogram.
    #[arg(long, default_value_t = 5.0)]
    range: f64,
    /// Where to write inspect.json and figures/inspect/ (default: the run folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: InspectArgs) -> anyhow::Result<()> {
    if !a.source.exists() {
        return Err(
            UsageError::msg(format!("{}: no such file or folder", a.source.display())).into(),
        );
    }
    if !(a.range.is_finite() && a.range > 0.0) {
        return Err(UsageError::msg(format!(
            "--range must be a positive number, got {}",
            a.range
        ))
        .into());
    }
    let out = a
        .out
        .unwrap_or_else(|| afu_cli::experiments::inspect::default_out(&a.source));
    let rows = afu_cli::experiments::inspect::run(
        &a.source,
        a.afu_name.as_deref(),
        (-a.range, a.range),
        &out,
    )
    .map_err(|e| match e {
        afu_cli::experiments::common::ExperimentError::AfuFile(_) => {
            anyhow::Error::new(UsageError::of(e))
        }
        other => anyhow::Error::new(other).context(format!("afu inspect {}", a.source.display())),
    })?;
    afu_cli::outln!(
        "{:<34} {:<14} {:>6} {:<11} {:>7} {:>8} {:>8} {:>6} {:>7}",
        "AFU",
        "nearest",
        "error",
        "shape",
        "argmin",
        "slope-∞",
        "slope+∞",
        "dead",
        "linear"
    )?;
    for r in &rows {
        afu_cli::outln!(
            "{:<34} {:<14} {:>6.3} {:<11} {:>7.2} {:>8.3} {:>8.3} {:>5.1}% {:>7.3}",
            r.name,
            r.equally_near.join("≈"),
            r.nearest_error,
            r.shape.kind,
            r.shape.argmin,
            r.shape.slope_left,
            r.shape.slope_right,
            100.0 * r.shape.dead_fraction,
            r.shape.distance_from_linear
        )?;
    }
    afu_cli::outln!(
        "(error: fit RMS / std of the AFU over its inputs; linear: the same for the best straight line)"
    )?;
    afu_cli::outln!("written: {}", out.join("inspect.json").display())?;
    Ok(())
}
