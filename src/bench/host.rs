//! What a benchmark run ran on and beside: the CPU model, the load other processes put on the
//! machine during the run, and PyTorch scripts run as child processes for the side-by-side
//! numbers (PyTorch stays optional: without it the benches say so and go on).

use std::time::Instant;

/// The CPU model as `/proc/cpuinfo` names it (`"unknown CPU"` elsewhere).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// The 1-minute load average (`/proc/loadavg`), this process's running threads included.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Busy CPU ticks of the whole machine and of this process with its waited-for children
/// (Linux `/proc`).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = cpu.first()? + cpu.get(1)? + cpu.get(2)? + cpu.get(5)? + cpu.get(6)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &own[own.rfind(')')? + 2..];
    let f: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14–17 of the file (utime, stime, and the same for waited-for children such as the
    // PyTorch script) are 11–14 after the name and state.
    let mut own_ticks = 0;
    for i in 11..=14 {
        own_ticks += f.get(i)?.parse::<u64>().ok()?;
    }
    Some((busy, own_ticks))
}

/// Measures the CPU time other processes use while a benchmark runs.
pub struct LoadMeter {
    start: Instant,
    ticks: Option<(u64, u64)>,
}

impl LoadMeter {
    /// Starts measuring now.
    pub fn start() -> Self {
        LoadMeter {
            start: Instant::now(),
            ticks: cpu_ticks(),
        }
    }

    /// CPU used by other processes since [`start`](Self::start), in cores (0 = the machine was
    /// ours); `None` off Linux. Counts the children of this process (the PyTorch script) only
    /// once they have been waited for, as `afu`'s own.
    pub fn foreign_cores(&self) -> Option<f64> {
        let (b0, o0) = self.ticks?;
        let (b1, o1) = cpu_ticks()?;
        // SAFETY: sysconf only reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let foreign = (b1 - b0).saturating_sub(o1 - o0) as f64 / hz;
        Some(foreign / self.start.elapsed().as_secs_f64().max(1e-9))
    }
}

/// The line the benches print first: CPU model, threads, load average.
pub fn header(threads: usize) -> String {
    format!(
        "host: {}, {} threads (of {} CPUs), load average {}",
        cpu_model(),
        threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average().map_or("?".to_string(), |l| format!("{l:.2}"))
    )
}

/// Runs `script` (its text, written to a temporary file) with `python` and `args`, and returns
/// the last line of its output that parses as JSON; `Err` says in one line why not (no
/// interpreter, no `torch`, a failure in the script).
pub fn run_python_json(
    python: &str,
    name: &str,
    script: &str,
    args: &[String],
) -> Result<serde_json::Value, String> {
    let path = std::env::temp_dir().join(format!("afu-{name}-{}.py", std::process::id()));
    std::fs::write(&path, script)
        .map_err(|e| format!("could not write {}: {e}", path.display()))?;
    let out = std::process::Command::new(python)
        .arg(&path)
        .args(args)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = out.map_err(|e| format!("could not run {python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("{python} failed: {last}"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .ok_or_else(|| format!("no JSON in the script's output: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_cpu_and_measures_foreign_load() {
        assert!(!cpu_model().is_empty());
        let m = LoadMeter::start();
        std::thread::sleep(std::time::Duration::from_millis(30));
        if let Some(f) = m.foreign_cores() {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            assert!((0.0..=cpus as f64 + 0.5).contains(&f), "{f}");
        }
        assert!(header(2).contains("2 threads"));
    }

    #[test]
    fn python_failures_are_one_line_errors() {
        let e = run_python_json("/nonexistent/python", "t", "print(1)", &[]).unwrap_err();
        assert!(e.contains("could not run"), "{e}");
        if let Ok(v) = run_python_json("python3", "t", "print('noise')\nprint('{\"a\": 2}')", &[]) {
            assert_eq!(v["a"], 2);
        }
        if let Err(e) = run_python_json("python3", "t", "raise SystemExit('bad thing')", &[]) {
            assert!(
                e.contains("bad thing") || e.contains("could not run"),
                "{e}"
            );
        }
    }
}
