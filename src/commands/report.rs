//! `afu report`: one Markdown report over run and sweep folders.

use std::path::PathBuf;

use clap::Args;

use super::{UsageError, classify};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run folders (of xor, xor-neuron, smoothness, mnist).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The report file.
    #[arg(long, default_value = "runs/report.md")]
    out: PathBuf,
}

pub fn run(a: ReportArgs) -> anyhow::Result<()> {
    for r in &a.runs {
        if !r.is_dir() {
            return Err(UsageError::msg(format!("{}: not a run folder", r.display())).into());
        }
    }
    afu_cli::experiments::report::run(&a.runs, &a.out)
        .map_err(|e| classify(e, format!("afu report into {}", a.out.display())))?;
    afu_cli::outln!("report written: {}", a.out.display())?;
    Ok(())
}
