//! `afu smoothness`: random-net landscapes under a learned AFU and fixed activations (§2.2.2).

use std::path::{Path, PathBuf};

use clap::Args;

use afu_cli::experiments::smoothness::{self, SmoothnessConfig};

use super::{CommonArgs, UsageError};

#[derive(Args, Debug)]
pub struct SmoothnessArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// AFU file (afu.json) or run folder holding one; without it an AFU is trained on XOR first.
    #[arg(long)]
    afu_from: Option<PathBuf>,
    /// Which AFU of that file: a name or prefix such as afu-relu-128/seed0 (default: the first).
    #[arg(long)]
    afu_name: Option<String>,
    /// Number of random nets.
    #[arg(long)]
    nets: Option<usize>,
    /// Grid points per side.
    #[arg(long)]
    grid: Option<usize>,
}

pub fn run(args: SmoothnessArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        SmoothnessConfig::quick()
    } else {
        SmoothnessConfig::default()
    };
    if let Some(p) = args.afu_from {
        if !p.exists() {
            return Err(UsageError::msg(format!(
                "--afu-from {}: no such file or folder",
                p.display()
            ))
            .into());
        }
        config.afu_from = Some(p);
    }
    config.afu_name = args.afu_name.or(config.afu_name);
    if let Some(v) = args.nets {
        config.nets = v;
    }
    if let Some(v) = args.grid {
        config.grid = v;
    }
    let out = args.common.out.unwrap_or_else(smoothness::default_out);
    super::claim_folder(
        &out,
        afu_cli::experiments::RunConfig::Smoothness(config.clone()),
        false,
        args.common.force,
    )?;
    let s = smoothness::run(&config, &out, !args.common.no_progress).map_err(|e| match e {
        afu_cli::experiments::common::ExperimentError::Config { .. }
        | afu_cli::experiments::common::ExperimentError::AfuFile(_) => {
            anyhow::Error::new(UsageError::of(e))
        }
        other => anyhow::Error::new(other)
            .context(format!("afu smoothness (output folder {})", out.display())),
    })?;
    print(&s, &out)?;
    Ok(())
}

pub fn print(s: &smoothness::SmoothnessSummary, out: &Path) -> anyhow::Result<()> {
    afu_cli::outln!("AFU: {}", s.afu_source)?;
    afu_cli::outln!(
        "{:<12} {:>16} {:>16} {:>16}",
        "activation",
        "mean gradient",
        "total variation",
        "curvature"
    )?;
    for a in &s.activations {
        afu_cli::outln!(
            "{:<12} {:>9.3} ± {:<5.3} {:>9.3} ± {:<5.3} {:>9.2} ± {:<5.2}",
            a.name,
            a.mean_gradient_mean,
            a.mean_gradient_std,
            a.total_variation_mean,
            a.total_variation_std,
            a.curvature_mean,
            a.curvature_std
        )?;
    }
    afu_cli::outln!("{:.1} s; results in {}", s.total_seconds, out.display())?;
    Ok(())
}
