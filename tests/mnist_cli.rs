//! End-to-end tests of `afu mnist` on generated IDX files and, when installed, real Fashion-MNIST.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::write_fixture;

fn afu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_afu"))
        .args(args)
        .output()
        .expect("run afu")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn mnist_quick_trains_checkpoints_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 320, 100, true);
    let out = tmp.path().join("run");
    let args = |epochs: &str, resume: bool| {
        let mut v = vec![
            "mnist",
            "--quick",
            "--no-progress",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            epochs,
            "--variants",
            "relu,afu-relu-8-layer",
        ];
        if resume {
            v.push("--resume");
        }
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let a = args("1", false);
    let o = afu(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&out.join("summary.json"));
    assert_eq!(s["train_images"], 320);
    for v in s["variants"].as_array().unwrap() {
        let acc = v["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        assert!(v["best_test_accuracy"].as_f64().unwrap() >= acc);
        assert!(v["epoch_seconds_mean"].as_f64().unwrap() > 0.0);
    }
    for f in [
        "checkpoints/relu/model.safetensors",
        "checkpoints/relu/optimizer.bpk",
        "checkpoints/afu-relu-8-layer/progress.json",
        "figures/loss.svg",
        "figures/afus.svg",
        "afu.json",
        "histograms.json",
        "summary.md",
        "metrics.csv",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // What each AFU saw in the last epoch is recorded for `afu inspect`.
    let h = json(&out.join("histograms.json"));
    assert!(
        h["afu-relu-8-layer/seed1/conv1"]["z"]
            .as_array()
            .unwrap()
            .len()
            > 10,
        "{h}"
    );
    // Per-layer AFUs are named after their layers (reference reading: conv1, fc1, fc2).
    let afus = json(&out.join("afu.json"));
    let names: Vec<&str> = afus["afus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "afu-relu-8-layer/seed1/conv1",
            "afu-relu-8-layer/seed1/fc1",
            "afu-relu-8-layer/seed1/fc2"
        ]
    );
    let first = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    // Resume to two epochs: epoch 1 is kept as it was, epoch 2 is added.
    let a = args("2", true);
    let o = afu(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let second = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = second.lines().collect();
    assert_eq!(rows.len(), 1 + 4, "{second}");
    for line in first.lines().skip(1) {
        assert!(
            second.contains(line),
            "epoch-1 row changed after resume: {line}"
        );
    }
    // afu eval: the checkpoints evaluate as they trained; baked (piecewise-linear) relu AFUs
    // give the same accuracy.
    let o = afu(&["eval", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = json(&out.join("eval.json"));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let last_acc = json(&out.join("summary.json"))["variants"][1]["test_accuracy"]
        .as_f64()
        .unwrap();
    let afu_row = &rows[1];
    assert_eq!(afu_row["variant"], "afu-relu-8-layer");
    assert!(
        (afu_row["test_accuracy"].as_f64().unwrap() - last_acc).abs() < 1e-9,
        "{afu_row}"
    );
    assert_eq!(afu_row["baked_test_accuracy"], afu_row["test_accuracy"]);
    assert!(afu_row["bake_max_error"].as_f64().unwrap() < 1e-6);
    assert!(rows[0]["baked_test_accuracy"].is_null());
}

#[test]
fn mnist_bad_data_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A GPU backend that this build lacks is named, with how to get it.
    let o = afu(&[
        "mnist",
        "--quick",
        "--device",
        "cuda",
        "--data",
        tmp.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !cfg!(feature = "cuda") {
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--features cuda"), "{stderr}");
    }
    let o = afu(&[
        "mnist",
        "--quick",
        "--device",
        "tpu",
        "--data",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let out = tmp.path().join("run");
    let o = afu(&[
        "mnist",
        "--quick",
        "--no-progress",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("train-images") && stderr.contains("afu data fetch"),
        "{stderr}"
    );
    // A truncated image file names the file.
    write_fixture(tmp.path(), 20, 10, false);
    let p = tmp.path().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let o = afu(&[
        "mnist",
        "--quick",
        "--no-progress",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("train-images-idx3-ubyte") && stderr.contains("truncated"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

/// Real data: Debian's `dataset-fashion-mnist` (installed by `.ci/run`). Two epochs on a small
/// subset must already give a sensible accuracy (chance is 10 %). AFU nets start slower under
/// Adadelta (their gradients are small at first, and Adadelta's ε then dominates the step), so
/// one epoch of 47 steps is not enough for them.
#[test]
fn fashion_mnist_subset_learns() {
    let data = Path::new("/usr/share/datasets/fashion-mnist");
    if !data.exists() {
        eprintln!(
            "skipped: {} not installed (apt-get install dataset-fashion-mnist)",
            data.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = afu(&[
        "mnist",
        "--no-progress",
        "--data",
        data.to_str().unwrap(),
        "--out",
        tmp.path().to_str().unwrap(),
        "--epochs",
        "2",
        "--limit-train",
        "3000",
        "--limit-test",
        "1000",
        "--variants",
        "relu,afu-relu-8-layer",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&tmp.path().join("summary.json"));
    for v in s["variants"].as_array().unwrap() {
        let acc = v["test_accuracy"].as_f64().unwrap();
        assert!(
            acc > 0.5,
            "{}: test accuracy {acc} after two epochs on 3000 images",
            v["name"]
        );
    }
}

/// Transfer: an AFU learned by `afu xor --quick` starts (and, frozen, stays in) every layer of
/// `afu mnist --quick`.
#[test]
fn xor_afu_transfers_into_mnist_and_stays_frozen() {
    let tmp = tempfile::tempdir().unwrap();
    let xor = tmp.path().join("xor");
    let o = afu(&[
        "xor",
        "--quick",
        "--no-progress",
        "--variants",
        "afu-relu-8",
        "--seeds",
        "1",
        "--out",
        xor.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let data = tmp.path().join("data");
    write_fixture(&data, 128, 64, false);
    let out = tmp.path().join("mnist");
    let o = afu(&[
        "mnist",
        "--quick",
        "--no-progress",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--variants",
        "afu-relu-8-layer",
        "--afu-from",
        xor.to_str().unwrap(),
        "--afu-name",
        "afu-relu-8/seed0",
        "--freeze-afu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let source = json(&xor.join("afu.json"))["afus"][0].clone();
    let learned = json(&out.join("afu.json"));
    let learned = learned["afus"].as_array().unwrap();
    assert_eq!(learned.len(), 3);
    for a in learned {
        for key in ["w0", "b0", "w1", "b1"] {
            let (x, y) = (a[key].as_array().unwrap(), source[key].as_array().unwrap());
            for (u, v) in x.iter().zip(y) {
                assert!(
                    (u.as_f64().unwrap() - v.as_f64().unwrap()).abs() < 1e-6,
                    "{key} changed: {a}"
                );
            }
        }
    }
    // A missing AFU name is a clear usage error (in a new folder: the first run's is taken).
    let out2 = tmp.path().join("run2");
    let o = afu(&[
        "mnist",
        "--quick",
        "--no-progress",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--afu-from",
        xor.to_str().unwrap(),
        "--afu-name",
        "afu-mish-3",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("afu-mish-3") && stderr.contains("afu-relu-8/seed0/shared"),
        "{stderr}"
    );
}

/// Ctrl-C mid-epoch writes a checkpoint of exactly where training stopped (exit code 130), and
/// `--resume` finishes the epoch from there.
#[test]
fn ctrl_c_checkpoints_mid_epoch_and_resume_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 6400, 64, true);
    let out = tmp.path().join("run");
    let args = |resume: bool| {
        let mut v = vec![
            "mnist".to_string(),
            "--no-progress".into(),
            "--data".into(),
            data.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--epochs".into(),
            "1".into(),
            "--variants".into(),
            "relu".into(),
        ];
        if resume {
            v.push("--resume".into());
        }
        v
    };
    let child = Command::new(env!("CARGO_BIN_EXE_afu"))
        .args(args(false))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way (the config is written first), then interrupt.
    let start = std::time::Instant::now();
    while !out.join("config.toml").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("--resume"),
        "{stderr}"
    );
    let p = json(&out.join("checkpoints/relu/progress.json"));
    let done = p["batches_done"].as_u64().unwrap();
    assert!(done > 0 && done < 100, "{p}");
    assert_eq!(p["epochs_done"], 0);
    let o = afu(&args(true).iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = json(&out.join("checkpoints/relu/progress.json"));
    assert_eq!(p["epochs_done"], 1);
    assert_eq!(p["batches_done"], 0);
    assert!(
        json(&out.join("summary.json"))["variants"][0]["test_accuracy"]
            .as_f64()
            .is_some()
    );
}

/// `--devices a,b` splits every batch over two devices (here two CPU devices, the only kind a
/// CI machine has); the run trains and records its settings.
#[test]
fn mnist_data_parallel_over_two_devices_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 320, 100, false);
    let out = tmp.path().join("run");
    let o = afu(&[
        "mnist",
        "--quick",
        "--no-progress",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--variants",
        "relu",
        "--epochs",
        "2",
        "--devices",
        "cpu,cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&out.join("summary.json"));
    let v = &s["variants"][0];
    assert!(v["test_accuracy"].as_f64().unwrap() > 0.5, "{s}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let config: toml::Value = toml::from_str(&config).unwrap();
    assert_eq!(
        config["devices"].as_array().map(|d| d.len()),
        Some(2),
        "{config}"
    );
    // --device and --devices together: a usage error.
    let o = afu(&["mnist", "--device", "cpu", "--devices", "cpu,cpu"]);
    assert_eq!(o.status.code(), Some(2));
}

/// `--seeds K` trains every variant with seeds S..S+K-1 through the one training loop: the
/// summary gives each variant's mean ± std and 95 % interval over the seeds and a paired test
/// between the variants; checkpoints go per seed, and `afu eval` evaluates every seed.
#[test]
fn mnist_seeds_give_statistics_and_paired_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 192, 60, false);
    let out = tmp.path().join("run");
    let o = afu(&[
        "mnist",
        "--no-progress",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--variants",
        "relu,afu-relu-8-layer",
        "--seed",
        "4",
        "--seeds",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("95 % interval"), "{stdout}");
    assert!(stdout.contains("relu − afu-relu-8-layer"), "{stdout}");
    let s = json(&out.join("summary.json"));
    assert_eq!(s["seeds"], serde_json::json!([4, 5, 6]));
    assert!(s["total_seconds"].as_f64().unwrap() > 0.0);
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for v in s["variants"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let accs: Vec<f64> = runs
            .iter()
            .filter(|r| r["variant"] == name)
            .map(|r| r["test_accuracy"].as_f64().unwrap())
            .collect();
        assert_eq!(accs.len(), 3);
        let mean = accs.iter().sum::<f64>() / 3.0;
        assert!((v["test_accuracy_mean"].as_f64().unwrap() - mean).abs() < 1e-12);
        let sd = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((v["test_accuracy_std"].as_f64().unwrap() - sd).abs() < 1e-12);
        let ci = v["test_accuracy_ci95"].as_array().unwrap();
        // t(0.975, 2) = 4.302653.
        let half = 4.302_653 * sd / 3f64.sqrt();
        assert!(
            (ci[0].as_f64().unwrap() - (mean - half)).abs() < 1e-5,
            "{v}"
        );
        assert!(
            (ci[1].as_f64().unwrap() - (mean + half)).abs() < 1e-5,
            "{v}"
        );
        assert!(v["seconds_mean"].as_f64().unwrap() > 0.0);
    }
    let c = &s["comparisons"][0];
    assert_eq!(
        (c["a"].as_str(), c["b"].as_str()),
        (Some("relu"), Some("afu-relu-8-layer"))
    );
    assert_eq!(c["n"], 3);
    assert_eq!(c["metric"], "test_accuracy");
    let p = c["p_value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{c}");
    // Different seeds give different runs.
    let relu: Vec<f64> = runs
        .iter()
        .filter(|r| r["variant"] == "relu")
        .map(|r| r["train_loss"].as_f64().unwrap())
        .collect();
    assert!(relu[0] != relu[1] && relu[1] != relu[2], "{relu:?}");
    for seed in 4..7 {
        assert!(
            out.join(format!("checkpoints/relu/seed{seed}/model.safetensors"))
                .exists()
        );
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("Paired comparisons"), "{md}");
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 6, "{metrics}");
    assert!(metrics.starts_with("variant,seed,epoch,"), "{metrics}");
    // `afu eval` evaluates each seed's checkpoint.
    let o = afu(&["eval", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = json(&out.join("eval.json"));
    assert_eq!(e.as_array().unwrap().len(), 6);
    // The report states the paired test.
    let report = tmp.path().join("report.md");
    let o = afu(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = std::fs::read_to_string(&report).unwrap();
    assert!(r.contains("paired t-test p ="), "{r}");
    // --seeds 0 is a usage error.
    let o = afu(&["mnist", "--data", data.to_str().unwrap(), "--seeds", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

/// `afu run CONFIG` repeats a run from its config.toml, and continues one with --resume.
#[test]
fn afu_run_repeats_a_run_from_its_config() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 128, 40, false);
    let first = tmp.path().join("first");
    let o = afu(&[
        "mnist",
        "--quick",
        "--no-progress",
        "--data",
        data.to_str().unwrap(),
        "--out",
        first.to_str().unwrap(),
        "--variants",
        "relu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = tmp.path().join("again");
    let o = afu(&[
        "run",
        first.join("config.toml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (
        json(&first.join("summary.json")),
        json(&again.join("summary.json")),
    );
    assert_eq!(
        a["runs"],
        b["runs"]
            .clone()
            .as_array()
            .map(|runs| {
                // Same numbers; only the measured seconds differ.
                let mut runs = runs.clone();
                for (r, o) in runs.iter_mut().zip(a["runs"].as_array().unwrap()) {
                    r["seconds"] = o["seconds"].clone();
                }
                serde_json::Value::Array(runs)
            })
            .unwrap()
    );
    // A file that is not a run config: exit 2, naming the file.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "experiment = \"mnst\"\n").unwrap();
    let o = afu(&["run", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.toml"));
}

/// A run folder is never overwritten: a new run into it is refused (exit 2) and leaves it as it
/// was, `--resume` with other settings names the differences, `--force` replaces it.
#[test]
fn an_existing_run_is_refused_unless_resumed_or_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 64, 20, false);
    let out = tmp.path().join("run");
    let run = |extra: &[&str]| {
        let mut v = vec![
            "mnist",
            "--quick",
            "--no-progress",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--variants",
            "relu",
        ];
        v.extend_from_slice(extra);
        afu(&v)
    };
    assert!(run(&[]).status.success());
    let summary = std::fs::read(out.join("summary.json")).unwrap();
    let o = run(&["--seed", "5"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("already holds a run") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), summary);
    let o = run(&["--seed", "5", "--resume"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("seed is 1 there, 5 now"), "{stderr}");
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), summary);
    let o = run(&["--seed", "5", "--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("replacing the run"));
    let s = json(&out.join("summary.json"));
    assert_eq!(s["seeds"], serde_json::json!([5]));
    // `afu xor` into an mnist run folder: refused too.
    let o = afu(&[
        "xor",
        "--quick",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn curriculum_runs_per_variant_and_bad_schedules_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 192, 60, false);
    let out = tmp.path().join("run");
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "mnist",
            "--no-progress",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "2",
        ];
        args.extend_from_slice(extra);
        afu(&args)
    };
    let o = run(
        &out,
        &[
            "--variants",
            "afu-relu-4-layer,afu-relu-4-layer@linear-1",
            "--curriculum",
            "none",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&out.join("summary.json"));
    let names: Vec<&str> = s["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["afu-relu-4-layer", "afu-relu-4-layer@linear-1"]);
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("curriculum = \"none\""), "{config}");
    assert!(
        out.join("checkpoints/afu-relu-4-layer@linear-1/model.safetensors")
            .exists()
    );

    // A schedule longer than the run, or one that does not parse: one-line errors.
    let o = run(
        &tmp.path().join("long"),
        &["--variants", "relu", "--curriculum", "cosine-3"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("curriculum") && err.contains("longer than"),
        "{err}"
    );
    for bad in ["wobbly-2", "linear-0"] {
        let o = run(
            &tmp.path().join("bad"),
            &["--variants", "relu", "--curriculum", bad],
        );
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(bad));
    }
    let o = run(&tmp.path().join("bad2"), &["--variants", "relu@sideways-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("sideways"));
}
