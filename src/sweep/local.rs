//! Running a sweep's jobs on this machine, a few at a time, as child processes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::estimate::{CostModel, duration, estimate};
use super::files::{JobState, job_dir, job_state, prepare};
use super::{Job, Sweep, SweepError};

/// How [`run_local`] runs the jobs.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Jobs at a time (at least 1).
    pub jobs: usize,
    /// The `afu` executable that runs a job (`afu run CONFIG --out DIR --resume --no-progress`).
    pub exe: PathBuf,
    /// Draw an overall progress bar (the per-job lines are printed either way).
    pub progress: bool,
}

/// What [`run_local`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOutcome {
    /// Jobs started by this call (whether they finished, failed or were interrupted).
    pub ran: usize,
    /// Jobs skipped because they were already finished.
    pub skipped_finished: usize,
    /// Jobs that failed: id and the last lines of their `log.txt`.
    pub failed: Vec<(String, String)>,
    /// Stopped by Ctrl-C: running jobs checkpointed and stopped, the rest were not started.
    pub interrupted: bool,
    /// Wall-clock seconds of the call.
    pub seconds: f64,
}

/// Lines of a failed job's log kept in [`LocalOutcome::failed`].
const LOG_TAIL_LINES: usize = 15;

struct Running<'a> {
    job: &'a Job,
    dir: PathBuf,
    child: Child,
    start: Instant,
    number: usize,
    signalled: bool,
}

/// Runs every job of the sweep that is not finished, `opts.jobs` at a time, each as a child
/// process `exe run <job>/config.toml --out <job> --resume --no-progress` whose output is
/// appended to `<job>/log.txt`. Calls [`prepare`] first. Prints (on stderr) the counts and the
/// estimate, then a line per job start and end with a running ETA.
///
/// Every child gets `RAYON_NUM_THREADS = max(1, cores / jobs)` unless the variable is set.
/// A job that fails is recorded and the others go on. When
/// [`interrupt::requested`](crate::interrupt::requested) becomes true (Ctrl-C), no further job
/// is started and the running ones are waited for: on a terminal they receive the Ctrl-C
/// themselves, checkpoint and exit; otherwise (no terminal, or a SIGTERM to this process) they
/// are sent one SIGINT each, to the same effect. Rerunning the sweep resumes them.
pub fn run_local(
    sweep: &Sweep,
    out: &Path,
    opts: &LocalOptions,
) -> Result<LocalOutcome, SweepError> {
    let start = Instant::now();
    prepare(sweep, out)?;
    let parallel = opts.jobs.max(1);
    let est = estimate(sweep, out, parallel);
    let mut model = CostModel::from_finished(sweep, out);
    let mut pending: Vec<(&Job, PathBuf)> = Vec::new();
    let mut finished_ids = Vec::new();
    for job in &sweep.jobs {
        let dir = job_dir(out, &job.id);
        if job_state(&dir) == JobState::Finished {
            finished_ids.push(job.id.as_str());
        } else {
            pending.push((job, dir));
        }
    }
    let threads = match std::env::var("RAYON_NUM_THREADS") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / parallel).max(1).to_string()
        }
    };
    crate::note!(
        "sweep {}: {est}; RAYON_NUM_THREADS={threads} per job; folder {}",
        sweep.name,
        out.display()
    );
    if !finished_ids.is_empty() {
        let list = if finished_ids.len() <= 20 {
            format!(": {}", finished_ids.join(", "))
        } else {
            String::new()
        };
        crate::note!(
            "skipped {} finished job(s) (summary.json present){list}",
            finished_ids.len()
        );
    }
    let to_run = pending.len();
    let bar = crate::experiments::common::progress_bar(to_run as u64, "sweep", opts.progress);
    let say = |line: String| {
        if bar.is_hidden() {
            crate::note!("{line}");
        } else {
            bar.println(line);
        }
    };
    let terminal_delivers = terminal_delivers_sigint();
    let mut outcome = LocalOutcome {
        ran: 0,
        skipped_finished: finished_ids.len(),
        failed: Vec::new(),
        interrupted: false,
        seconds: 0.0,
    };
    pending.reverse();
    let mut running: Vec<Running> = Vec::new();
    let mut done = 0usize;
    let width = to_run.to_string().len();
    loop {
        // Reap finished children.
        let mut k = 0;
        while k < running.len() {
            let status = match running[k].child.try_wait() {
                Ok(Some(s)) => Some(Ok(s)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            };
            let Some(status) = status else {
                k += 1;
                continue;
            };
            let r = running.swap_remove(k);
            let secs = r.start.elapsed().as_secs_f64();
            done += 1;
            bar.inc(1);
            let code = status.as_ref().ok().and_then(|s| s.code());
            // A child stopped by the terminal's Ctrl-C may be seen before our handler ran.
            let stopped = code == Some(130)
                && (crate::interrupt::requested() || {
                    std::thread::sleep(Duration::from_millis(300));
                    crate::interrupt::requested()
                });
            let tag = format!("[{:>width$}/{to_run}]", r.number);
            match (&status, code) {
                (Ok(s), _) if s.success() => {
                    model.record(r.job, secs);
                    let left = to_run - done;
                    let eta = if left > 0 {
                        format!(
                            "; {left} left, ETA {}",
                            duration(eta_seconds(&model, &pending, &running, parallel))
                        )
                    } else {
                        String::new()
                    };
                    say(format!(
                        "{tag} done    {} in {}{eta}",
                        r.job.id,
                        duration(secs)
                    ));
                }
                (Ok(_), Some(130)) if stopped => {
                    say(format!(
                        "{tag} stopped {} after {} (checkpointed; rerun the sweep to resume)",
                        r.job.id,
                        duration(secs)
                    ));
                }
                _ => {
                    let why = match (&status, code) {
                        (Err(e), _) => format!("cannot wait for it: {e}"),
                        (Ok(_), Some(130)) => "stopped by a signal (exit 130)".to_string(),
                        (Ok(_), Some(c)) => format!("exit {c}"),
                        (Ok(s), None) => format!("killed ({s})"),
                    };
                    let log = r.dir.join("log.txt");
                    say(format!(
                        "{tag} FAILED  {} ({why}) after {}; see {}",
                        r.job.id,
                        duration(secs),
                        log.display()
                    ));
                    outcome
                        .failed
                        .push((r.job.id.clone(), format!("{why}\n{}", log_tail(&log))));
                }
            }
        }
        if crate::interrupt::requested() {
            if !outcome.interrupted {
                outcome.interrupted = true;
                if !pending.is_empty() {
                    say(format!(
                        "interrupted: starting no more jobs ({} not started); waiting for {} running",
                        pending.len(),
                        running.len()
                    ));
                }
            }
            pending.clear();
            if !terminal_delivers {
                for r in running.iter_mut().filter(|r| !r.signalled) {
                    r.signalled = true;
                    send_sigint(&r.child);
                }
            }
        }
        while running.len() < parallel {
            let Some((job, dir)) = pending.pop() else {
                break;
            };
            outcome.ran += 1;
            let number = outcome.ran;
            let tag = format!("[{number:>width$}/{to_run}]");
            let resumes = job_state(&dir) == JobState::Started;
            match spawn(opts, &dir, &threads) {
                Ok(child) => {
                    say(format!(
                        "{tag} start   {}{}",
                        job.id,
                        if resumes { " (resuming)" } else { "" }
                    ));
                    running.push(Running {
                        job,
                        dir,
                        child,
                        start: Instant::now(),
                        number,
                        signalled: false,
                    });
                }
                Err(e) => {
                    done += 1;
                    bar.inc(1);
                    say(format!("{tag} FAILED  {}: {e}", job.id));
                    outcome.failed.push((job.id.clone(), e.to_string()));
                }
            }
        }
        if running.is_empty() && pending.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
    outcome.seconds = start.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Starts one job with its output appended to `<dir>/log.txt`.
fn spawn(opts: &LocalOptions, dir: &Path, threads: &str) -> Result<Child, SweepError> {
    let log_path = dir.join("log.txt");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| SweepError::io(&log_path, e))?;
    let config = dir.join("config.toml");
    let _ = writeln!(
        log,
        "== afu sweep, {}: {} run {} --out {} --resume --no-progress",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        opts.exe.display(),
        config.display(),
        dir.display()
    );
    let err_log = log.try_clone().map_err(|e| SweepError::io(&log_path, e))?;
    Command::new(&opts.exe)
        .arg("run")
        .arg(&config)
        .arg("--out")
        .arg(dir)
        .args(["--resume", "--no-progress"])
        .env("RAYON_NUM_THREADS", threads)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err_log))
        .spawn()
        .map_err(|e| SweepError::io(&opts.exe, format!("cannot start: {e}")))
}

/// Remaining wall-clock seconds: predicted seconds of the pending jobs plus what the running
/// ones have left, over the parallelism.
fn eta_seconds(
    model: &CostModel,
    pending: &[(&Job, PathBuf)],
    running: &[Running],
    parallel: usize,
) -> f64 {
    let mut secs: f64 = pending.iter().map(|(j, _)| model.predict(j).0).sum();
    for r in running {
        secs += (model.predict(r.job).0 - r.start.elapsed().as_secs_f64()).max(0.0);
    }
    let n = pending.len() + running.len();
    secs / parallel.min(n.max(1)) as f64
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// True when a Ctrl-C reaches the children by itself: this process runs in the foreground
/// process group of a terminal (the children share that group).
fn terminal_delivers_sigint() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: plain queries of the terminal and process group of this process.
        unsafe {
            let fd = if libc::isatty(0) == 1 {
                0
            } else if libc::isatty(2) == 1 {
                2
            } else {
                return false;
            };
            libc::tcgetpgrp(fd) == libc::getpgrp()
        }
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Asks a child to checkpoint and stop, as a Ctrl-C would.
fn send_sigint(child: &Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: signals our own child process, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
    }
    #[cfg(not(unix))]
    let _ = child;
}
