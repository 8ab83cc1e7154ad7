//! `afu mnist`: the PyTorch-example CNN on MNIST-format data (paper §2.2.3).

use std::path::PathBuf;

use clap::Args;

use afu_cli::experiments::mnist::{self, MnistConfig};

use afu_cli::experiments::RunConfig;

use super::{
    AfuStartArgs, CommonArgs, ReadingArg, TrainingArgs, apply_training_args, claim_folder,
    classify, print_image_summary,
};

/// `afu mnist` (defaults: relu, tanh, afu-relu-8, afu-relu-8-layer; 10 epochs).
#[derive(Args, Debug)]
pub struct MnistArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    afu_start: AfuStartArgs,
    /// Folder with the IDX files (raw or .gz) or mnist_train.csv / mnist_test.csv.
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
    /// Activation placement: reference (after conv1, fc1, fc2) or paper (after conv1, conv2, fc1).
    #[arg(long, value_enum)]
    reading: Option<ReadingArg>,
}

/// Trains and prints the summary.
pub fn run(args: MnistArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        MnistConfig::quick(args.data.clone())
    } else {
        MnistConfig::paper(args.data.clone())
    };
    if let Some(r) = args.reading {
        config.reading = r.into();
    }
    let (out, resume) = apply_training_args!(
        config,
        args.training,
        args.common,
        args.afu_start,
        mnist::default_out
    );
    claim_folder(
        &out,
        RunConfig::Mnist(config.clone()),
        resume,
        args.common.force,
    )?;
    let s = mnist::run(&config, &out, !args.common.no_progress, resume)
        .map_err(|e| classify(e, format!("afu mnist (output folder {})", out.display())))?;
    print_image_summary(&s, &out)?;
    Ok(())
}
