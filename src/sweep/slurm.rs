//! A sweep as a Slurm job array.

use std::path::{Path, PathBuf};

use super::files::prepare;
use super::{Sweep, SweepError};

/// How [`emit_slurm`] writes the batch script.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The `afu` executable the array tasks run (made absolute; `AFU=…` overrides it at run time).
    pub exe: PathBuf,
    /// `--cpus-per-task` (also each task's `RAYON_NUM_THREADS`, unless set).
    pub cpus_per_task: usize,
    /// `--time`, e.g. `04:00:00`.
    pub time: Option<String>,
    /// `--partition`.
    pub partition: Option<String>,
}

/// Prepares the sweep folder ([`prepare`]) and writes `<out>/jobs.txt` (one job id per line;
/// array index = line number − 1) and `<out>/sweep.slurm`, a batch script for a job array with
/// one task per job: `sbatch <out>/sweep.slurm`. Each task skips its job if it is finished, else
/// `exec`s `afu run <job>/config.toml --out <job> --resume --no-progress`; Slurm sends it SIGINT
/// two minutes before the time limit (afu checkpoints and stops) and requeues preempted tasks,
/// which then resume. Returns the script's path.
pub fn emit_slurm(sweep: &Sweep, out: &Path, opts: &SlurmOptions) -> Result<PathBuf, SweepError> {
    let out = std::path::absolute(out).map_err(|e| SweepError::io(out, e))?;
    let exe = std::path::absolute(&opts.exe).map_err(|e| SweepError::io(&opts.exe, e))?;
    let unusable = |path: &Path, what: &str| SweepError::Unusable {
        path: path.to_path_buf(),
        message: format!("{what} cannot be used in a Slurm script (whitespace or a newline)"),
    };
    let spaced = |s: &str| s.chars().any(|c| c.is_whitespace());
    if spaced(&out.to_string_lossy()) {
        return Err(unusable(&out, "a sweep folder path with whitespace"));
    }
    for (name, value) in [("time", &opts.time), ("partition", &opts.partition)] {
        if let Some(v) = value
            && (v.is_empty() || spaced(v))
        {
            return Err(SweepError::Unusable {
                path: PathBuf::from(v),
                message: format!("not a Slurm --{name} value"),
            });
        }
    }
    if exe.to_string_lossy().contains('\n') {
        return Err(unusable(&exe, "an executable path with a newline"));
    }
    prepare(sweep, &out)?;
    let mut list = String::new();
    for job in &sweep.jobs {
        list.push_str(&job.id);
        list.push('\n');
    }
    let jobs_txt = out.join("jobs.txt");
    crate::fsutil::write_atomic(&jobs_txt, list.as_bytes())
        .map_err(|e| SweepError::io(&jobs_txt, e))?;
    let n = sweep.jobs.len();
    let cpus = opts.cpus_per_task.max(1);
    let name = super::spec::sanitise(&sweep.name);
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!("#SBATCH --job-name=afu-{name}\n"));
    s.push_str(&format!("#SBATCH --array=0-{}\n", n.saturating_sub(1)));
    s.push_str(&format!("#SBATCH --cpus-per-task={cpus}\n"));
    s.push_str("#SBATCH --requeue\n");
    s.push_str("#SBATCH --signal=B:INT@120\n");
    s.push_str(&format!(
        "#SBATCH --output={}\n",
        out.join("jobs").join("slurm-%A_%a.out").display()
    ));
    if let Some(t) = &opts.time {
        s.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(p) = &opts.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    s.push_str(&format!(
        "#\n# afu sweep {name}: {n} jobs, one array task each (task i runs line i+1 of jobs.txt).\n\
         # Made by `afu sweep --emit slurm` from {}.\n\
         # Submit: sbatch {}\n\
         # Finished jobs (summary.json present) exit at once, so resubmitting the whole array only\n\
         # runs what is left. Slurm sends SIGINT 120 s before the time limit: afu writes a checkpoint\n\
         # and stops; a requeued or resubmitted task resumes from it (--resume).\n\n",
        sweep.source.display(),
        out.join("sweep.slurm").display()
    ));
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("AFU=\"${{AFU:-{}}}\"\n", shell_quote_in_dq(&exe)));
    s.push_str(&format!("SWEEP={}\n", shell_quote(&out.to_string_lossy())));
    s.push_str(
        ": \"${SLURM_ARRAY_TASK_ID:?run this script with sbatch, or set SLURM_ARRAY_TASK_ID}\"\n",
    );
    s.push_str("JOB=\"$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$SWEEP/jobs.txt\")\"\n");
    s.push_str(
        "if [ -z \"$JOB\" ]; then\n  echo \"no job for array index $SLURM_ARRAY_TASK_ID in $SWEEP/jobs.txt\" >&2\n  exit 1\nfi\n",
    );
    s.push_str(
        "if [ -e \"$SWEEP/jobs/$JOB/summary.json\" ]; then\n  echo \"$JOB: already finished\"\n  exit 0\nfi\n",
    );
    s.push_str(&format!(
        "export RAYON_NUM_THREADS=\"${{RAYON_NUM_THREADS:-${{SLURM_CPUS_PER_TASK:-{cpus}}}}}\"\n"
    ));
    s.push_str("echo \"$JOB on $(hostname), $(date)\"\n");
    s.push_str(
        "exec \"$AFU\" run \"$SWEEP/jobs/$JOB/config.toml\" --out \"$SWEEP/jobs/$JOB\" --resume --no-progress\n",
    );
    let script = out.join("sweep.slurm");
    crate::fsutil::write_atomic(&script, s.as_bytes()).map_err(|e| SweepError::io(&script, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755));
    }
    Ok(script)
}

/// `'text'` for bash.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A path inside a double-quoted bash word (`"${AFU:-…}"`).
fn shell_quote_in_dq(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
