//! `afu eval`: an `afu mnist` run's checkpoints, as trained and baked.

use std::path::PathBuf;

use clap::Args;

use afu_cli::experiments::mnist;

use super::{UsageError, classify};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The `afu mnist` run folder.
    run: PathBuf,
    /// Test data folder (default: the one in the run's config.toml).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Bake over [-range, range]; linear extension outside.
    #[arg(long, default_value_t = 8.0)]
    range: f64,
    /// Target bake error, relative to the AFU's output range.
    #[arg(long, default_value_t = 1e-3)]
    max_error: f64,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    if !a.run.is_dir() {
        return Err(UsageError::msg(format!("{}: not a run folder", a.run.display())).into());
    }
    let rows = mnist::evaluate_run(&a.run, a.data.as_deref(), a.range, a.max_error)
        .map_err(|e| classify(e, format!("afu eval {}", a.run.display())))?;
    afu_cli::outln!(
        "{:<20} {:>6} {:>9} {:>8} {:>11} {:>9} {:>10} {:>6}",
        "variant",
        "seed",
        "accuracy",
        "s",
        "baked acc",
        "baked s",
        "bake err",
        "knots"
    )?;
    for r in &rows {
        let opt =
            |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "–".into());
        afu_cli::outln!(
            "{:<20} {:>6} {:>9.4} {:>8.2} {:>11} {:>9} {:>10} {:>6}",
            r.variant,
            r.seed,
            r.test_accuracy,
            r.seconds,
            opt(r.baked_test_accuracy, 4),
            opt(r.baked_seconds, 2),
            r.bake_max_error
                .map(|e| format!("{e:.1e}"))
                .unwrap_or_else(|| "–".into()),
            r.bake_knots
                .map(|k| k.to_string())
                .unwrap_or_else(|| "–".into())
        )?;
    }
    afu_cli::outln!("written: {}", a.run.join("eval.json").display())?;
    Ok(())
}
