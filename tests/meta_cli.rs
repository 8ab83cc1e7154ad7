//! End-to-end tests of `afu meta` on its tiny `--quick` settings.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn afu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_afu"))
        .args(args)
        .output()
        .expect("run afu")
}

fn meta(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "meta",
        "--quick",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = afu(&args);
    assert!(
        o.status.success(),
        "afu meta {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap()
}

fn variant<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variant {name}"))
}

/// The search lowers the meta-loss below its start's, on the training tasks and on held-out
/// ones; two runs with one seed (and different thread counts) are bit-identical; the learned
/// AFU loads in `afu xor --afu-from`; the run folder is refused without --resume / --force.
#[test]
fn quick_run_learns_is_deterministic_and_its_afu_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    meta(&a, &["--threads", "1"]);
    meta(&b, &["--threads", "2"]);
    for f in ["meta.csv", "afu.json"] {
        assert_eq!(read(&a.join(f)), read(&b.join(f)), "{f} differs");
    }
    // `afu run CONFIG` repeats the run from its config.toml, bit for bit.
    let c = tmp.path().join("c");
    let o = afu(&[
        "run",
        a.join("config.toml").to_str().unwrap(),
        "--no-progress",
        "--out",
        c.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("faster convergence"));
    for f in ["meta.csv", "afu.json", "config.toml"] {
        assert_eq!(read(&a.join(f)), read(&c.join(f)), "afu run: {f} differs");
    }
    let o = afu(&[
        "run",
        a.join("config.toml").to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "an existing run is refused");
    for f in [
        "config.toml",
        "checkpoint.json",
        "summary.json",
        "summary.md",
        "figures/meta_loss.svg",
        "figures/learned_afu.svg",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    // meta.csv: the distribution mean of the last generation beats the start on its tasks.
    let csv = read(&a.join("meta.csv"));
    let last: Vec<f64> = csv
        .lines()
        .last()
        .unwrap()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(last[4] < last[5], "centre {} vs start {}", last[4], last[5]);
    // Held out: the learned AFU's meta-loss is below the start AFU's.
    let s = json(&a.join("summary.json"));
    let learned = variant(&s, "meta-learned")["meta_loss_k"]["mean"]
        .as_f64()
        .unwrap();
    let start = variant(&s, "meta-start")["meta_loss_k"]["mean"]
        .as_f64()
        .unwrap();
    assert!(
        learned < start,
        "held-out meta-loss {learned} vs start {start}"
    );
    assert!(s["verdict"].is_string());
    // The learned AFU transfers to `afu xor`.
    let x = tmp.path().join("xor");
    let o = afu(&[
        "xor",
        "--quick",
        "--no-progress",
        "--variants",
        "afu-relu-8",
        "--seeds",
        "1",
        "--steps",
        "5",
        "--freeze-afu",
        "--afu-from",
        a.to_str().unwrap(),
        "--out",
        x.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let xa = json(&x.join("afu.json"));
    let ma = json(&a.join("afu.json"));
    // Frozen: the parameters come back as written (up to the f32 of the model).
    for k in ["w0", "b0", "w1", "b1"] {
        let (x, m) = (
            xa["afus"][0][k].as_array().unwrap(),
            ma["afus"][0][k].as_array().unwrap(),
        );
        assert_eq!(x.len(), m.len());
        for (p, q) in x.iter().zip(m) {
            assert!(
                (p.as_f64().unwrap() - q.as_f64().unwrap()).abs() < 1e-6,
                "{k}: {p} vs {q}"
            );
        }
    }
    // `afu report` has a section and a verdict for it.
    let r = tmp.path().join("report.md");
    let o = afu(&["report", a.to_str().unwrap(), "--out", r.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = read(&r);
    assert!(
        text.contains("Meta-learned AFU") && text.contains("faster"),
        "{text}"
    );
    // An existing run is not overwritten.
    let o = afu(&[
        "meta",
        "--quick",
        "--no-progress",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
}

/// Stopping after generation 3 and resuming to 6 gives the uninterrupted run, bit for bit;
/// so does Ctrl-C (the current generation finishes and is checkpointed).
#[test]
fn resume_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
    meta(&full, &[]);
    meta(&part, &["--generations", "3"]);
    assert_eq!(read(&part.join("meta.csv")).lines().count(), 4);
    meta(&part, &["--resume", "--generations", "6"]);
    for f in ["meta.csv", "afu.json"] {
        assert_eq!(read(&full.join(f)), read(&part.join(f)), "{f} differs");
    }
    // Other settings on resume: refused, naming the difference.
    let o = afu(&[
        "meta",
        "--quick",
        "--no-progress",
        "--resume",
        "--seed",
        "5",
        "--out",
        part.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("seed"));

    // Ctrl-C: stops after the current generation with a checkpoint, exit 130.
    let (long, cut) = (tmp.path().join("long"), tmp.path().join("cut"));
    let gens = "40";
    let child = Command::new(env!("CARGO_BIN_EXE_afu"))
        .args(["meta", "--quick", "--no-progress", "--generations", gens])
        .args(["--out", cut.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !cut.join("checkpoint.json").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let done = read(&cut.join("meta.csv")).lines().count() - 1;
    assert!(done < 40, "stopped after {done} generations");
    meta(&cut, &["--resume", "--generations", gens]);
    meta(&long, &["--generations", gens]);
    for f in ["meta.csv", "afu.json"] {
        assert_eq!(read(&long.join(f)), read(&cut.join(f)), "{f} differs");
    }
}

/// Bad values: one line on stderr, exit code 2.
#[test]
fn bad_values_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    for (args, needle) in [
        (vec!["--inner-steps", "0"], "inner-steps"),
        (vec!["--inner-steps", "-5"], "inner-steps"),
        (vec!["--full-factor", "0"], "full-factor"),
        (vec!["--tasks", "0"], "tasks"),
        (vec!["--held-out", "0"], "held_out"),
        (vec!["--population", "1"], "population"),
        (vec!["--meta-loss", "speed"], "meta-loss"),
        (vec!["--start", "zero"], "start"),
        (vec!["--threads", "0"], "threads"),
        (vec!["--resume"], "--resume"),
    ] {
        let mut all = vec![
            "meta",
            "--quick",
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ];
        all.extend(args.iter().copied());
        let o = afu(&all);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert!(!out.exists());
}

/// With --data, image tasks (a random class pair of MNIST-format images) join the distribution.
#[test]
fn image_tasks_from_mnist_format_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_fixture(&data, 200, 20, false);
    let out = tmp.path().join("run");
    meta(
        &out,
        &[
            "--data",
            data.to_str().unwrap(),
            "--generations",
            "2",
            "--held-out",
            "8",
        ],
    );
    let s = json(&out.join("summary.json"));
    let kinds = s["held_out_tasks"].as_array().unwrap();
    assert!(
        kinds
            .iter()
            .any(|k| k.as_str().unwrap().starts_with("images")),
        "{kinds:?}"
    );
}

/// `afu report` over `afu meta` runs given side by side: each run its own section, and the runs
/// that differ in the seed only merged into one multi-seed section; `afu run CONFIG --out DIR
/// --resume` on a folder holding only the run's `config.toml` (as a sweep job's folder does)
/// runs it from the beginning, to the same result.
#[test]
fn report_merges_meta_runs_that_differ_in_the_seed_only() {
    let tmp = tempfile::tempdir().unwrap();
    let tiny = [
        "--generations",
        "2",
        "--population",
        "3",
        "--tasks",
        "2",
        "--held-out",
        "3",
        "--inner-steps",
        "8",
    ];
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = tiny.to_vec();
        args.extend_from_slice(extra);
        meta(&out, &args);
        out
    };
    let a = run("a", &["--seed", "0"]);
    let b = run("b", &["--seed", "1"]);
    let c = run("c", &["--seed", "2", "--meta-loss", "final"]);
    let r = tmp.path().join("report.md");
    let o = afu(&[
        "report",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
        "--out",
        r.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = read(&r);
    assert_eq!(
        text.matches("## Meta-learned AFU (paper §4").count(),
        3,
        "{text}"
    );
    // a and b only: c has another meta-loss.
    assert_eq!(text.matches("Meta-learned AFU over").count(), 1, "{text}");
    let head = format!(
        "## Meta-learned AFU over 2 seeds — the runs `{}`, `{}`",
        a.display(),
        b.display()
    );
    assert!(text.contains(&head), "{text}");
    assert!(text.contains("**Verdict over 2 seeds"), "{text}");
    assert!(tmp.path().join("figures/meta-seeds-1.svg").is_file());

    // A folder with only the config.toml: --resume starts from the beginning.
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(a.join("config.toml"), d.join("config.toml")).unwrap();
    let o = afu(&[
        "run",
        d.join("config.toml").to_str().unwrap(),
        "--out",
        d.to_str().unwrap(),
        "--resume",
        "--no-progress",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["meta.csv", "afu.json"] {
        assert_eq!(read(&a.join(f)), read(&d.join(f)), "{f} differs");
    }
}
