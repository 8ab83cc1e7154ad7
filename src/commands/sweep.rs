//! `afu sweep FILE`: many runs from one file, here or on a Slurm cluster.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{SweepInterrupted, UsageError};

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The sweep file (TOML; see examples/sweeps/).
    file: PathBuf,
    /// The sweep's folder (default: the file's `out`, else runs/sweeps/<file stem>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Jobs run at once on this machine (each gets cores / J threads).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Instead of running: write a job-array script for this scheduler (`slurm`) and the job list.
    #[arg(long, value_name = "SCHEDULER")]
    emit: Option<String>,
    /// CPUs per Slurm array task (with --emit slurm).
    #[arg(long, default_value_t = 2)]
    cpus_per_task: usize,
    /// Slurm time limit per task, e.g. 04:00:00 (with --emit slurm).
    #[arg(long)]
    time: Option<String>,
    /// Slurm partition (with --emit slurm).
    #[arg(long)]
    partition: Option<String>,
    /// Hide the overall progress bar (one line per job start and finish is always printed).
    #[arg(long)]
    no_progress: bool,
}

/// `afu sweep FILE`: prepare the jobs, then run them here or write a Slurm script.
pub fn run(a: SweepArgs) -> anyhow::Result<()> {
    use afu_cli::sweep;
    let usage = |e: sweep::SweepError| -> anyhow::Error {
        if e.is_usage() {
            UsageError::of(e).into()
        } else {
            anyhow::Error::new(e)
        }
    };
    if a.jobs == 0 {
        return Err(UsageError::msg("--jobs must be at least 1").into());
    }
    let plan = sweep::load(&a.file).map_err(usage)?;
    let out = a.out.clone().unwrap_or_else(|| plan.out.clone());
    let exe = std::env::current_exe().context("the path of this afu binary")?;
    match a.emit.as_deref() {
        Some("slurm") => {
            afu_cli::outln!("{}", sweep::estimate(&plan, &out, 1))?;
            let script = sweep::emit_slurm(
                &plan,
                &out,
                &sweep::SlurmOptions {
                    exe,
                    cpus_per_task: a.cpus_per_task.max(1),
                    time: a.time,
                    partition: a.partition,
                },
            )
            .map_err(usage)?;
            afu_cli::outln!(
                "{} jobs; submit with: sbatch {}\n(afu report {} merges the job folders when they are done)",
                plan.jobs.len(),
                script.display(),
                out.display()
            )?;
            Ok(())
        }
        Some(other) => Err(UsageError::msg(format!(
            "--emit {other}: unknown scheduler (expected slurm)"
        ))
        .into()),
        None => {
            sweep::prepare(&plan, &out).map_err(usage)?;
            let outcome = sweep::run_local(
                &plan,
                &out,
                &sweep::LocalOptions {
                    jobs: a.jobs,
                    exe,
                    progress: !a.no_progress,
                },
            )
            .map_err(usage)?;
            let report = out.join("report.md");
            match afu_cli::experiments::report::run(std::slice::from_ref(&out), &report) {
                Ok(_) => afu_cli::outln!("report: {}", report.display())?,
                Err(e) => afu_cli::note!("warning: no report ({e})"),
            }
            afu_cli::outln!(
                "{} jobs run, {} already finished, {} failed; {:.1} s; results in {}",
                outcome.ran,
                outcome.skipped_finished,
                outcome.failed.len(),
                outcome.seconds,
                out.display()
            )?;
            for (job, tail) in &outcome.failed {
                afu_cli::note!("job {job} failed:\n{tail}");
            }
            if outcome.interrupted {
                return Err(SweepInterrupted(format!(
                    "interrupted: finished jobs are kept and started ones checkpointed; continue with: afu sweep {} --out {}",
                    a.file.display(),
                    out.display()
                ))
                .into());
            }
            if !outcome.failed.is_empty() {
                anyhow::bail!("{} of the sweep's jobs failed", outcome.failed.len());
            }
            Ok(())
        }
    }
}
