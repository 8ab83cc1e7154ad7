//! `afu xor-neuron`: one linear neuron and an activation on the four XOR points.

use std::path::Path;

use anyhow::Context;
use clap::Args;

use afu_cli::experiments::xor_neuron::{self, XorNeuronConfig};

use super::{CommonArgs, UsageError};

#[derive(Args, Debug)]
pub struct XorNeuronArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Comma-separated variants (default: afu-sigmoid-128, afu-relu-8, relu, tanh).
    #[arg(long, value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// Seeds per variant.
    #[arg(long)]
    seeds: Option<usize>,
    /// Training steps.
    #[arg(long)]
    steps: Option<usize>,
}

pub fn run(args: XorNeuronArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        XorNeuronConfig::quick()
    } else {
        XorNeuronConfig::default()
    };
    if let Some(v) = args.variants {
        config.variants = v;
    }
    if let Some(v) = args.seeds {
        config.seeds = v;
    }
    if let Some(v) = args.steps {
        config.steps = v;
    }
    if let Some(k) = args.common.kernel {
        config.kernel = k.into();
    }
    config.validate().map_err(UsageError::of)?;
    let out = args.common.out.unwrap_or_else(xor_neuron::default_out);
    super::claim_folder(
        &out,
        afu_cli::experiments::RunConfig::XorNeuron(config.clone()),
        false,
        args.common.force,
    )?;
    let s = xor_neuron::run(&config, &out, !args.common.no_progress)
        .with_context(|| format!("afu xor-neuron (output folder {})", out.display()))?;
    print(&s, &out)?;
    Ok(())
}

pub fn print(s: &xor_neuron::XorNeuronSummary, out: &Path) -> anyhow::Result<()> {
    afu_cli::outln!(
        "{:<18} {:>8} {:>9} {:>9}",
        "variant",
        "solved",
        "mean AUC",
        "accuracy"
    )?;
    for v in &s.variants {
        afu_cli::outln!(
            "{:<18} {:>5}/{:<2} {:>9.3} {:>9.3}",
            v.name,
            v.solved,
            v.runs,
            v.auc_mean,
            v.accuracy_mean
        )?;
    }
    afu_cli::outln!("{:.1} s; results in {}", s.total_seconds, out.display())?;
    Ok(())
}
