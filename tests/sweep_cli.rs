//! End-to-end tests of `afu sweep` (and the `afu run` it starts per job): running jobs in
//! parallel, skipping finished ones, resuming half-done ones, the Slurm script, Ctrl-C, and
//! one-line errors for bad sweep files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

use common::write_fixture;

const AFU: &str = env!("CARGO_BIN_EXE_afu");

fn afu(args: &[&str]) -> Output {
    Command::new(AFU)
        .args(args)
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .expect("run afu")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(path: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).unwrap()
}

/// A tiny XOR block: 2 variants × `seeds` seeds, a few steps on few points.
fn xor_block(seeds: usize) -> String {
    format!(
        r#"
[[experiment]]
name = "xor"
variants = ["relu", "afu-relu-8"]
seeds = {seeds}
quick = true
[experiment.settings]
steps = 20
points_per_blob = 20
grid = 5
"#
    )
}

/// The job folders of a sweep folder, by id.
fn job_dirs(out: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(out.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect()
}

/// Each job's `summary.json` and `log.txt` bytes.
type Snapshot = BTreeMap<String, (Vec<u8>, Vec<u8>)>;

/// Every `progress.json` under `dir`.
fn progress_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(progress_files(&p));
        } else if p.file_name().is_some_and(|n| n == "progress.json") {
            out.push(p);
        }
    }
    out
}

#[test]
fn sweep_runs_jobs_skips_finished_and_resumes_half_done() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 192, 64, false);
    let file = tmp.path().join("mixed.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[experiment]]
name = "mnist"
variants = ["relu", "afu-relu-8-layer", "prelu-layer"]
seeds = [1]
[experiment.settings]
data = "{}"
epochs = 2
test_batch_size = 64
{}"#,
            data.display(),
            xor_block(2)
        ),
    )
    .unwrap();
    let out = tmp.path().join("sweep");
    let run = || {
        afu(&[
            "sweep",
            file.to_str().unwrap(),
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
        ])
    };

    // (a) Every job runs, two at a time, and finishes.
    let o = run();
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("7 jobs: 0 finished, 7 to run; estimate"),
        "{}",
        text(&o)
    );
    let dirs = job_dirs(&out);
    let ids: Vec<&str> = dirs.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "mnist-afu-relu-8-layer-s1",
            "mnist-prelu-layer-s1",
            "mnist-relu-s1",
            "xor-afu-relu-8-s0",
            "xor-afu-relu-8-s1",
            "xor-relu-s0",
            "xor-relu-s1",
        ]
    );
    for (id, dir) in &dirs {
        assert!(dir.join("summary.json").is_file(), "{id}: no summary.json");
        assert!(dir.join("config.toml").is_file(), "{id}: no config.toml");
        assert!(dir.join("log.txt").is_file(), "{id}: no log.txt");
    }
    assert!(out.join("sweep.json").is_file());
    assert!(
        out.join("report.md").is_file(),
        "afu sweep wrote no <out>/report.md: {}",
        text(&o)
    );
    // The report merges the jobs and ranks the variants, a learnable family among them.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("### Learned activations ranked")
            && report.contains("| prelu-layer | PReLU (layer) |"),
        "{report}"
    );
    let s = json(&dirs["mnist-relu-s1"].join("summary.json"));
    assert_eq!(s["epochs"].as_array().unwrap().len(), 2, "{s}");
    let snapshot = |dirs: &BTreeMap<String, PathBuf>| -> Snapshot {
        dirs.iter()
            .map(|(id, d)| {
                (
                    id.clone(),
                    (
                        std::fs::read(d.join("summary.json")).unwrap(),
                        std::fs::read(d.join("log.txt")).unwrap(),
                    ),
                )
            })
            .collect()
    };
    let before = snapshot(&dirs);

    // (b) A finished job is not rerun.
    let o = run();
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("7 jobs: 7 finished, 0 to run"),
        "{}",
        text(&o)
    );
    assert!(stderr.contains("skipped 7 finished job"), "{}", text(&o));
    assert_eq!(snapshot(&dirs), before, "finished jobs were touched");

    // (c) A half-done one resumes: job mnist-afu-relu-8-layer-s1 as if stopped after epoch 1.
    let half = &dirs["mnist-afu-relu-8-layer-s1"];
    std::fs::remove_file(half.join("summary.json")).unwrap();
    let progress = progress_files(&half.join("checkpoints"));
    assert_eq!(progress.len(), 1, "{progress:?}");
    let mut p = json(&progress[0]);
    let first = p["history"][0].clone();
    assert!(first.is_object(), "{p}");
    p["epochs_done"] = 1.into();
    p["history"] = serde_json::Value::Array(vec![first.clone()]);
    std::fs::write(&progress[0], serde_json::to_string_pretty(&p).unwrap()).unwrap();
    let o = run();
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("7 jobs: 6 finished, 1 to run"),
        "{}",
        text(&o)
    );
    assert!(
        stderr.contains("start   mnist-afu-relu-8-layer-s1 (resuming)"),
        "{}",
        text(&o)
    );
    let s = json(&half.join("summary.json"));
    let epochs = s["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2, "{s}");
    assert_eq!(
        serde_json::to_string(&epochs[0]).unwrap(),
        serde_json::to_string(&first).unwrap(),
        "epoch 1 was retrained"
    );
    assert_eq!(epochs[1]["epoch"], 2);
    let log = std::fs::read_to_string(half.join("log.txt")).unwrap();
    assert_eq!(log.matches("== afu sweep").count(), 2, "{log}");
    let after = snapshot(&dirs);
    for (id, files) in &before {
        if id != "mnist-afu-relu-8-layer-s1" {
            assert_eq!(&after[id], files, "{id} was touched");
        }
    }
}

#[test]
fn failed_job_is_reported_and_the_others_run() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("fails.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[experiment]]
name = "mnist"
variants = ["relu"]
settings = {{ data = "{}" }}
{}"#,
            tmp.path().join("no-data-here").display(),
            xor_block(1)
        ),
    )
    .unwrap();
    let out = tmp.path().join("sweep");
    let o = afu(&[
        "sweep",
        file.to_str().unwrap(),
        "--jobs",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("FAILED  mnist-relu-s1"), "{}", text(&o));
    assert!(
        stderr.contains("no-data-here"),
        "log tail missing: {}",
        text(&o)
    );
    assert!(!out.join("jobs/mnist-relu-s1/summary.json").exists());
    for id in ["xor-relu-s0", "xor-afu-relu-8-s0"] {
        assert!(
            out.join("jobs").join(id).join("summary.json").is_file(),
            "{id}"
        );
    }
}

#[test]
fn slurm_script_runs_one_array_task() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("xor.toml");
    std::fs::write(&file, xor_block(2)).unwrap();
    let out = tmp.path().join("sweep");
    let o = afu(&[
        "sweep",
        file.to_str().unwrap(),
        "--emit",
        "slurm",
        "--out",
        out.to_str().unwrap(),
        "--time",
        "00:10:00",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let script = out.join("sweep.slurm");
    let body = std::fs::read_to_string(&script).unwrap();
    assert!(body.contains("#SBATCH --array=0-3\n"), "{body}");
    assert!(body.contains("#SBATCH --time=00:10:00\n"), "{body}");
    let jobs = std::fs::read_to_string(out.join("jobs.txt")).unwrap();
    let first = jobs.lines().next().unwrap().to_string();
    assert_eq!(jobs.lines().count(), 4);
    // Nothing runs yet.
    assert!(!out.join("jobs").join(&first).join("summary.json").exists());
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", text(&syntax));
    let task = |index: &str| {
        Command::new("bash")
            .arg(&script)
            .env("SLURM_ARRAY_TASK_ID", index)
            .env("AFU", AFU)
            .env_remove("RAYON_NUM_THREADS")
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let o = task("0");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.join("jobs").join(&first).join("summary.json").is_file(),
        "{}",
        text(&o)
    );
    let others = job_dirs(&out)
        .into_iter()
        .filter(|(id, d)| *id != first && d.join("summary.json").exists())
        .count();
    assert_eq!(others, 0, "task 0 ran other jobs");
    // Finished: the task exits at once.
    let o = task("0");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("already finished"),
        "{}",
        text(&o)
    );
    // Past the end of the list.
    let o = task("9");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_running_jobs_and_a_rerun_finishes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 640, 64, false);
    let file = tmp.path().join("long.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[experiment]]
name = "mnist"
variants = ["relu", "tanh"]
seeds = 2
[experiment.settings]
data = "{}"
epochs = 3
batch_size = 16
test_batch_size = 64
"#,
            data.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("sweep");
    let child = Command::new(AFU)
        .args(["sweep", file.to_str().unwrap(), "--jobs", "2", "--out"])
        .arg(&out)
        .arg("--no-progress")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both running jobs have written a checkpoint (an epoch done).
    let start = Instant::now();
    while job_dirs_if_any(&out)
        .iter()
        .filter(|d| !progress_files(&d.join("checkpoints")).is_empty())
        .count()
        < 2
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoints");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signals the child we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("stopped "), "{}", text(&o));
    let finished = job_dirs(&out)
        .values()
        .filter(|d| d.join("summary.json").exists())
        .count();
    assert_eq!(finished, 0, "{}", text(&o));
    // The two running jobs checkpointed and stopped; the two others never started.
    let started: Vec<PathBuf> = job_dirs(&out)
        .into_values()
        .filter(|d| d.join("log.txt").exists())
        .collect();
    assert_eq!(started.len(), 2, "{}", text(&o));
    for d in &started {
        assert_eq!(
            progress_files(&d.join("checkpoints")).len(),
            1,
            "{}",
            d.display()
        );
    }
    // Running the sweep again resumes them and runs the rest.
    let o = afu(&[
        "sweep",
        file.to_str().unwrap(),
        "--jobs",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .matches("(resuming)")
            .count(),
        2,
        "{}",
        text(&o)
    );
    for d in job_dirs(&out).values() {
        let s = json(&d.join("summary.json"));
        assert_eq!(s["epochs"].as_array().unwrap().len(), 3, "{}", d.display());
    }
}

fn job_dirs_if_any(out: &Path) -> Vec<PathBuf> {
    if out.join("jobs").is_dir() {
        job_dirs(out).into_values().collect()
    } else {
        Vec::new()
    }
}

#[test]
fn bad_sweep_files_exit_2_with_one_line_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "toml",
            "[[experiment]\nname = \"xor\"",
            "not valid TOML: line 1",
        ),
        (
            "experiment",
            "[[experiment]]\nname = \"mnst\"\nvariants = [\"relu\"]",
            "experiment[0].name: unknown experiment 'mnst' (expected xor, xor-neuron, mnist, cifar10, meta)",
        ),
        (
            "meta-variants",
            "[[experiment]]\nname = \"meta\"\nvariants = [\"relu\"]",
            "experiment[0].variants: meta has no variants",
        ),
        (
            "meta-setting",
            "[[experiment]]\nname = \"meta\"\n[experiment.settings]\ngenerations = 0",
            "experiment[0].settings.generations: must be at least 1",
        ),
        (
            "variant",
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\", \"afu-relu\"]",
            "experiment[0].variants[1]: bad activation 'afu-relu'",
        ),
        (
            "no-variants",
            "[[experiment]]\nname = \"xor\"\nvariants = []",
            "experiment[0].variants: empty list",
        ),
        (
            "grid",
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\n[experiment.grid]\nsteps = []",
            "experiment[0].grid.steps: empty list",
        ),
        (
            "seeds",
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nseeds = []",
            "experiment[0].seeds: empty",
        ),
        (
            "setting",
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.settings]\nepochz = 2",
            "experiment[0].settings.epochz: unknown field `epochz`",
        ),
        (
            "type",
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.settings]\nepochs = \"two\"",
            "experiment[0].settings.epochs: invalid type",
        ),
        (
            "value",
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\n[experiment.grid]\nsteps = [10, 0]",
            "experiment[0].grid.steps[1]: must be at least 1",
        ),
    ];
    for (name, body, want) in cases {
        let file = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&file, body).unwrap();
        let out = tmp.path().join(format!("out-{name}"));
        let o = afu(&[
            "sweep",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
        ]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}: not one line: {stderr}");
        assert!(
            lines[0].contains(&format!("{}: ", file.display())) && lines[0].contains(want),
            "{name}: want {want:?}, got {stderr}"
        );
        assert!(
            !out.exists(),
            "{name}: a bad file created {}",
            out.display()
        );
    }
    // A sweep file changed under an existing sweep folder.
    let file = tmp.path().join("changing.toml");
    let out = tmp.path().join("out-changing");
    std::fs::write(&file, xor_block(1)).unwrap();
    let emit = || {
        afu(&[
            "sweep",
            file.to_str().unwrap(),
            "--emit",
            "slurm",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = emit();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(&file, xor_block(1).replace("steps = 20", "steps = 30")).unwrap();
    let o = emit();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("config.toml differs"),
        "{}",
        text(&o)
    );
}

/// A tiny `meta` sweep (2 seeds of `afu meta --quick`, cut down further) runs end to end;
/// `afu report` merges the seeds into the multi-seed meta section; a rerun skips the finished
/// jobs, and jobs stopped before or after their search resume to the same result.
#[test]
fn meta_sweep_runs_seeds_and_reports_them_together() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("meta.toml");
    std::fs::write(
        &file,
        r#"
[[experiment]]
name = "meta"
seeds = 2
quick = true
[experiment.settings]
generations = 2
population = 3
tasks = 2
inner_steps = 8
held_out = 3
full_factor = 3
points = 24
meta_loss = "final"
"#,
    )
    .unwrap();
    let out = tmp.path().join("sweep");
    let run = || {
        afu(&[
            "sweep",
            file.to_str().unwrap(),
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
        ])
    };
    let o = run();
    assert!(o.status.success(), "{}", text(&o));
    let dirs = job_dirs(&out);
    assert_eq!(
        dirs.keys().map(String::as_str).collect::<Vec<_>>(),
        ["meta-s0", "meta-s1"]
    );
    for (id, dir) in &dirs {
        for f in ["summary.json", "meta.csv", "afu.json", "log.txt"] {
            assert!(dir.join(f).is_file(), "{id}: no {f}");
        }
        let s = json(&dir.join("summary.json"));
        assert_eq!(s["experiment"], "meta");
        assert_eq!(s["config"]["seed"], if id == "meta-s0" { 0 } else { 1 });
    }

    // The report: the multi-seed section with a row per variant, the tests across seeds, the
    // verdict and the figure.
    let report = tmp.path().join("report").join("report.md");
    let o = afu(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(
        md.contains("#### Meta-learned AFU over 2 seeds — sweep `sweep`, meta"),
        "{md}"
    );
    let s0 = json(&dirs["meta-s0"].join("summary.json"));
    let variants = s0["variants"].as_array().unwrap();
    assert!(variants.len() >= 5);
    for v in variants {
        let row = format!("| {} — ", v["name"].as_str().unwrap());
        let line = md.lines().find(|l| l.starts_with(&row));
        // Two seeds per variant.
        assert!(
            line.is_some_and(|l| l.contains(" | 2 | ")),
            "no row {row}:\n{md}"
        );
    }
    for other in ["relu", "afu-relu-init"] {
        assert!(
            md.contains(&format!("| meta-learned − {other} | steps_to_target | 2 |")),
            "{md}"
        );
    }
    assert!(
        md.lines().any(|l| l.starts_with(
            "**Verdict over 2 seeds on \"activation functions that guarantee faster convergence\": "
        )),
        "{md}"
    );
    assert!(
        md.contains(
            "converge faster* (paper §4; sweep `sweep`, meta; meta-loss here: the loss after K"
        ),
        "{md}"
    );
    let figure = tmp.path().join("report/figures/sweep-meta-1.svg");
    let svg = std::fs::read_to_string(&figure).unwrap();
    assert!(svg.contains("seed 0") && svg.contains("seed 1"));

    // A rerun skips both jobs and touches nothing.
    let summaries: Vec<Vec<u8>> = dirs
        .values()
        .map(|d| std::fs::read(d.join("summary.json")).unwrap())
        .collect();
    let o = run();
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("2 jobs: 2 finished, 0 to run")
            && stderr.contains("skipped 2 finished job"),
        "{}",
        text(&o)
    );
    let again: Vec<Vec<u8>> = dirs
        .values()
        .map(|d| std::fs::read(d.join("summary.json")).unwrap())
        .collect();
    assert_eq!(again, summaries, "finished jobs were touched");

    // meta-s0 stopped after its search (checkpoint, no summary), meta-s1 before its first
    // generation (only its config.toml and log): both resume to the same search.
    let keep = |d: &Path| {
        (
            std::fs::read(d.join("meta.csv")).unwrap(),
            std::fs::read(d.join("afu.json")).unwrap(),
        )
    };
    let before: Vec<_> = dirs.values().map(|d| keep(d)).collect();
    std::fs::remove_file(dirs["meta-s0"].join("summary.json")).unwrap();
    for entry in std::fs::read_dir(&dirs["meta-s1"]).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name == "config.toml" || name == "log.txt" {
            continue;
        }
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let o = run();
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("start   meta-s0 (resuming)") && stderr.contains("start   meta-s1"),
        "{}",
        text(&o)
    );
    let after: Vec<_> = dirs.values().map(|d| keep(d)).collect();
    assert_eq!(after, before, "a resumed job differs from the first run");
    for d in dirs.values() {
        assert!(d.join("summary.json").is_file());
    }
}
