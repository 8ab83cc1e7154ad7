//! `afu xor`: the toy XOR problem (paper §2.2.1).

use std::path::Path;

use clap::Args;

use afu_cli::experiments::xor::{self, XorConfig};

use super::{AfuStartArgs, CommonArgs, UsageError, classify};

#[derive(Args, Debug)]
pub struct XorArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    afu_start: AfuStartArgs,
    /// Comma-separated variants: a fixed activation (relu, tanh, sigmoid, swish, mish, leaky-relu,
    /// linear), an AFU afu-<base>-<N>[-layer|-channel] (e.g. afu-relu-8-layer), or a learnable
    /// family <family>[-layer|-channel] (prelu, swish-beta, pmish, pau[-M-N], pwlu-<N>, apl-<S>,
    /// kaf[-D]; e.g. pau-channel, pwlu-16-layer).
    #[arg(long, value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// Seeds per variant.
    #[arg(long)]
    seeds: Option<usize>,
    /// First seed.
    #[arg(long)]
    first_seed: Option<u64>,
    /// Training steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Points per Gaussian blob.
    #[arg(long)]
    points_per_blob: Option<usize>,
    /// Blob centres at (±c, ±c): 1.5 in the reference code, 1 in the paper's text.
    #[arg(long)]
    centre: Option<f32>,
    /// Adam learning rate.
    #[arg(long)]
    lr: Option<f64>,
}

pub fn run(args: XorArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        XorConfig::quick()
    } else {
        XorConfig::default()
    };
    if let Some(v) = args.variants {
        config.variants = v;
    }
    macro_rules! set {
        ($($f:ident),*) => {$(if let Some(v) = args.$f { config.$f = v; })*};
    }
    set!(seeds, first_seed, steps, points_per_blob, centre, lr);
    config.afu_start = args.afu_start.into_start()?;
    if let Some(k) = args.common.kernel {
        config.kernel = k.into();
    }
    config.validate().map_err(UsageError::of)?;
    let out = args.common.out.unwrap_or_else(xor::default_out);
    super::claim_folder(
        &out,
        afu_cli::experiments::RunConfig::Xor(config.clone()),
        false,
        args.common.force,
    )?;
    let summary = xor::run(&config, &out, !args.common.no_progress)
        .map_err(|e| classify(e, format!("afu xor (output folder {})", out.display())))?;
    print(&summary, &out)?;
    Ok(())
}

pub fn print(summary: &xor::XorSummary, out: &Path) -> anyhow::Result<()> {
    afu_cli::outln!(
        "{:<18} {:>22} {:>22} {:>10}",
        "variant",
        "test accuracy",
        "test AUC",
        "s/run"
    )?;
    for v in &summary.variants {
        afu_cli::outln!(
            "{:<18} {:>13.4} ± {:<6.4} {:>13.4} ± {:<6.4} {:>10.2}",
            v.name,
            v.test_accuracy_mean,
            v.test_accuracy_std,
            v.test_auc_mean,
            v.test_auc_std,
            v.seconds_mean
        )?;
    }
    afu_cli::outln!(
        "Bayes accuracy {:.4}; {:.1} s in all; results in {}",
        summary.bayes_accuracy,
        summary.total_seconds,
        out.display()
    )?;
    Ok(())
}
