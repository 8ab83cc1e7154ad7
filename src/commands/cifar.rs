//! `afu cifar10`: the paper code's MobileNet on CIFAR-10 (paper §2.2.4).

use std::path::PathBuf;

use clap::Args;

use afu_cli::experiments::cifar::{self, CifarConfig};

use afu_cli::experiments::RunConfig;

use super::{
    AfuStartArgs, CommonArgs, ModelArg, TrainingArgs, apply_training_args, claim_folder, classify,
    print_image_summary,
};

/// `afu cifar10` (defaults: relu, mish, swish, afu-relu-8, afu-relu-8-layer; 100 epochs).
#[derive(Args, Debug)]
pub struct CifarArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    afu_start: AfuStartArgs,
    /// Folder with data_batch_1..5.bin and test_batch.bin (or cifar-10-batches-bin/ inside it).
    #[arg(long, default_value = "data/cifar10")]
    data: PathBuf,
    /// Batch size (default 100, as in the paper; the reference code used 128).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Network: mobilenet-v1 (the reference code's, default) or mobilenet-v2 (the paper's text).
    #[arg(long, value_enum)]
    model: Option<ModelArg>,
}

/// Trains and prints the summary.
pub fn run(args: CifarArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        CifarConfig::quick(args.data.clone())
    } else {
        CifarConfig::paper(args.data.clone())
    };
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if let Some(m) = args.model {
        config.model = m.into();
    }
    let (out, resume) = apply_training_args!(
        config,
        args.training,
        args.common,
        args.afu_start,
        cifar::default_out
    );
    claim_folder(
        &out,
        RunConfig::Cifar10(config.clone()),
        resume,
        args.common.force,
    )?;
    let s = cifar::run(&config, &out, !args.common.no_progress, resume)
        .map_err(|e| classify(e, format!("afu cifar10 (output folder {})", out.display())))?;
    print_image_summary(&s, &out)?;
    Ok(())
}
