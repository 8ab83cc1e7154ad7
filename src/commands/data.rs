//! `afu data`: datasets.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use afu_cli::data::fetch::{self, DatasetName};

use super::UsageError;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a dataset (mnist, fashion-mnist, cifar10), verify checksums, write atomically.
    Fetch(FetchArgs),
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// mnist, fashion-mnist or cifar10.
    dataset: String,
    /// Target folder (default: data/<dataset>).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Base URL to download from instead of the default mirrors (repeatable).
    #[arg(long)]
    mirror: Vec<String>,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Fetch(a) => {
            let ds: DatasetName = a
                .dataset
                .parse()
                .map_err(|e: fetch::FetchError| UsageError::of(e))?;
            let dir = a
                .dir
                .unwrap_or_else(|| PathBuf::from("data").join(ds.as_str()));
            let report = fetch::fetch(ds, &dir, &a.mirror, !a.no_progress)
                .with_context(|| format!("afu data fetch {ds} into {}", dir.display()))?;
            afu_cli::outp!("{report}")?;
            Ok(())
        }
    }
}
