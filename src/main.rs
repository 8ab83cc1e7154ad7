//! The `afu` command line: parse, build a config, call the library, print.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use afu::afu::KernelChoice;
use afu::experiments::xor::{self, XorConfig};

/// Learned activation functions (AFUs): the paper's experiments and tools.
#[derive(Parser, Debug)]
#[command(name = "afu", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Toy XOR problem (paper §2.2.1): 2→4→1 net with a shared AFU vs fixed activations.
    Xor(XorArgs),
}

/// Options shared by every experiment.
#[derive(Args, Debug)]
struct CommonArgs {
    /// Output folder (default: runs/<experiment>/<timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Tiny settings (a few steps, small data): a smoke test that finishes in seconds.
    #[arg(long)]
    quick: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// AFU implementation: auto (fused where available), reference (plain tensor ops), fused.
    #[arg(long, value_parser = parse_kernel)]
    kernel: Option<KernelChoice>,
}

#[derive(Args, Debug)]
struct XorArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Comma-separated variants: afu-<base>-<N> or a fixed activation (relu, tanh, ...).
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

fn parse_kernel(s: &str) -> Result<KernelChoice, String> {
    match s {
        "auto" => Ok(KernelChoice::Auto),
        "reference" => Ok(KernelChoice::Reference),
        "fused" => Ok(KernelChoice::Fused),
        _ => Err(format!(
            "unknown kernel '{s}': expected auto, reference or fused"
        )),
    }
}

/// An error in what the user asked for (exit code 2), as opposed to a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn run_xor(args: XorArgs) -> anyhow::Result<()> {
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
    if let Some(k) = args.common.kernel {
        config.kernel = k;
    }
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    let out = args.common.out.unwrap_or_else(xor::default_out);
    let summary = xor::run(&config, &out, !args.common.no_progress)
        .with_context(|| format!("afu xor (output folder {})", out.display()))?;
    println!(
        "{:<18} {:>22} {:>22} {:>10}",
        "variant", "test accuracy", "test AUC", "s/run"
    );
    for v in &summary.variants {
        println!(
            "{:<18} {:>13.4} ± {:<6.4} {:>13.4} ± {:<6.4} {:>10.2}",
            v.name,
            v.test_accuracy_mean,
            v.test_accuracy_std,
            v.test_auc_mean,
            v.test_auc_std,
            v.seconds_mean
        );
    }
    println!(
        "Bayes accuracy {:.4}; {:.1} s in all; results in {}",
        summary.bayes_accuracy,
        summary.total_seconds,
        out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Xor(a) => run_xor(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let usage = e.chain().any(|c| c.is::<UsageError>());
            eprintln!("error: {e:#}");
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
