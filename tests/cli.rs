//! End-to-end tests of the `afu` binary on tiny settings.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

mod common;

fn afu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_afu"))
        .args(args)
        .output()
        .expect("run afu")
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn assert_usage_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(needle),
        "stderr should name '{needle}': {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one-line error expected: {stderr}"
    );
}

#[test]
fn xor_quick_writes_figures_summary_and_afus() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("xor");
    let o = afu(&[
        "xor",
        "--quick",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&out.join("summary.json"));
    let variants = s["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3);
    for v in variants {
        for key in [
            "test_accuracy_mean",
            "test_accuracy_std",
            "test_auc_mean",
            "test_auc_std",
            "train_accuracy_mean",
        ] {
            let x = v[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} missing in {v}"));
            assert!((0.0..=1.0).contains(&x), "{key} = {x}");
        }
        assert!(v["name"].is_string());
    }
    // Training works: every run's loss went down.
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    for run in s["runs"].as_array().unwrap() {
        let (v, seed) = (
            run["variant"].as_str().unwrap(),
            run["seed"].as_u64().unwrap().to_string(),
        );
        let losses: Vec<f64> = rows
            .iter()
            .filter(|r| r[0] == v && r[1] == seed)
            .map(|r| r[3].parse().unwrap())
            .collect();
        assert_eq!(losses.len(), 200);
        assert!(
            losses[199] < losses[0],
            "{v} seed {seed}: loss {} -> {}",
            losses[0],
            losses[199]
        );
    }
    for f in [
        "afu-relu-8-boundary.svg",
        "afu-relu-8-afu.svg",
        "afu-relu-8-neurons.svg",
        "relu-boundary.svg",
        "loss.svg",
        "afus.svg",
    ] {
        let text = std::fs::read_to_string(out.join("figures").join(f)).unwrap();
        assert!(text.starts_with("<svg"), "{f}");
    }
    assert!(
        std::fs::read_to_string(out.join("summary.md"))
            .unwrap()
            .contains("| afu-relu-8 |")
    );
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("experiment = \"xor\"") && config.contains("steps = 200"),
        "{config}"
    );
    // The learned AFUs load, and drive the smoothness analysis.
    let afus = json(&out.join("afu.json"));
    assert_eq!(afus["afus"].as_array().unwrap().len(), 4); // 2 AFU variants × 2 seeds
    let sm = dir.path().join("sm");
    let o = afu(&[
        "smoothness",
        "--quick",
        "--no-progress",
        "--afu-from",
        out.to_str().unwrap(),
        "--afu-name",
        "afu-sigmoid-8",
        "--out",
        sm.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&sm.join("summary.json"));
    assert!(
        s["afu_source"]
            .as_str()
            .unwrap()
            .contains("afu-sigmoid-8/seed0")
    );
    assert_eq!(s["afu"]["base"], "sigmoid");
    let names: Vec<&str> = s["activations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["afu", "relu", "tanh"]);
    for a in s["activations"].as_array().unwrap() {
        let tv = a["total_variation_mean"].as_f64().unwrap();
        assert!(tv.is_finite() && tv > 0.0, "{a}");
        assert_eq!(a["per_net"].as_array().unwrap().len(), 2);
    }
    assert!(sm.join("figures/net0.svg").exists() && sm.join("figures/afu.svg").exists());
    // afu inspect names the nearest known function and the shape of each learned AFU, over the
    // inputs the run recorded.
    let o = afu(&["inspect", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = json(&out.join("inspect.json"));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        assert_eq!(r["inputs"], "recorded inputs", "{r}");
        assert_eq!(r["fits"].as_array().unwrap().len(), 7);
        let e = r["nearest_error"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&e), "{r}");
        assert!(
            ["V", "inverted-V", "increasing", "decreasing", "other"]
                .contains(&r["shape"]["kind"].as_str().unwrap())
        );
    }
    assert!(String::from_utf8_lossy(&o.stdout).contains("afu-relu-8/seed0/shared"));
    assert!(
        out.join("figures/inspect/afu-relu-8_seed0_shared.svg")
            .exists()
    );
    // afu report puts both runs in one Markdown file, with the paper's claims measured.
    let report = dir.path().join("report/report.md");
    let o = afu(&[
        "report",
        out.to_str().unwrap(),
        sm.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&report).unwrap();
    for needle in [
        "## Toy XOR problem",
        "## Smoothness",
        "| afu-relu-8 |",
        "The paper's conclusions, measured",
        "smoother landscapes than relu",
    ] {
        assert!(text.contains(needle), "report lacks '{needle}':\n{text}");
    }
    assert!(text.contains("**supported**") || text.contains("**not supported**"));
    let o = afu(&["report", "/nonexistent-run"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn xor_neuron_solves_xor_with_an_afu() {
    let dir = tempfile::tempdir().unwrap();
    let o = afu(&[
        "xor-neuron",
        "--quick",
        "--no-progress",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&dir.path().join("summary.json"));
    let v = &s["variants"][0];
    assert_eq!(v["name"], "afu-sigmoid-128");
    assert_eq!(v["solved"], v["runs"], "every seed reaches AUC 1.0: {v}");
    assert_eq!(v["auc_mean"].as_f64().unwrap(), 1.0);
    // A single neuron with a monotone activation cannot.
    assert!(s["variants"][1]["auc_mean"].as_f64().unwrap() < 1.0);
    assert!(
        dir.path()
            .join("figures/afu-sigmoid-128-boundary.svg")
            .exists()
    );
}

#[test]
fn smoothness_trains_its_own_afu_when_none_given() {
    let dir = tempfile::tempdir().unwrap();
    let o = afu(&[
        "smoothness",
        "--quick",
        "--no-progress",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.path().join("source-xor/afu.json").exists());
    let s = json(&dir.path().join("summary.json"));
    assert_eq!(s["afu"]["hidden"], 8);
}

#[test]
fn bad_arguments_give_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert_usage_error(
        &afu(&["xor", "--quick", "--out", out, "--variants", "afu-relu-0"]),
        "afu-relu-0",
    );
    assert_usage_error(
        &afu(&["xor", "--quick", "--out", out, "--variants", "afu-gelu-8"]),
        "gelu",
    );
    assert_usage_error(
        &afu(&["xor", "--quick", "--out", out, "--seeds", "0"]),
        "seeds",
    );
    assert_usage_error(
        &afu(&[
            "smoothness",
            "--quick",
            "--out",
            out,
            "--afu-from",
            "/nonexistent/afu.json",
        ]),
        "/nonexistent/afu.json",
    );
    assert_usage_error(
        &afu(&["data", "fetch", "imagenet", "--dir", out]),
        "imagenet",
    );
    // A corrupt AFU file names the file and the field.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"format":"afu-params-v1","source":"x","afus":[{"name":"a","base":"relu","channels":1,"hidden":2,"w0":[1],"b0":[1,2],"w1":[1,2],"b1":[0]}]}"#).unwrap();
    assert_usage_error(
        &afu(&[
            "smoothness",
            "--quick",
            "--out",
            out,
            "--afu-from",
            bad.to_str().unwrap(),
        ]),
        "w0",
    );
    let o = afu(&["xor", "--help"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--variants"));
}

/// `afu data fetch` against a server on localhost that serves the wrong bytes: the download is
/// rejected by its checksum and nothing is left behind under the final name.
#[test]
fn data_fetch_rejects_a_corrupt_download_from_localhost() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { break };
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .ok();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = b"this is not mnist";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mirror = format!("http://127.0.0.1:{port}/");
    let o = afu(&[
        "data",
        "fetch",
        "mnist",
        "--dir",
        dir.path().to_str().unwrap(),
        "--mirror",
        &mirror,
        "--no-progress",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("train-images-idx3-ubyte.gz"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("checksum") || stderr.contains("md5"),
        "{stderr}"
    );
    assert!(!dir.path().join("train-images-idx3-ubyte.gz").exists());
    drop(server);
}

#[test]
fn bench_kernels_quick_reports_every_case() {
    let o = afu(&["bench", "kernels", "--quick", "--reps", "1", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases[0]["name"], "burn relu");
    // relu, then 3 bases × 2 sharings × (fused, plain-ops) at N=8, then the learnable
    // families' rounds: relu, fixed Mish and the 7 families.
    assert_eq!(cases.len(), 1 + 3 * 2 * 2 + 2 + 7);
    for c in cases {
        assert!(c["median_ms"].as_f64().unwrap() > 0.0);
        assert!(c["peak_extra_bytes"].as_u64().unwrap() > 0);
        assert_eq!(c["reps"], 1);
    }
}

#[test]
fn bench_kernels_caps_the_plain_ops_repetitions() {
    let o = afu(&[
        "bench", "kernels", "--quick", "--reps", "9", "--json", "--bases", "relu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for c in r["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let expected = if name.contains("plain-ops") { 7 } else { 9 };
        assert_eq!(c["reps"], expected, "{name}");
    }
}

#[test]
fn bench_kernels_runs_only_the_chosen_cases() {
    let o = afu(&[
        "bench",
        "kernels",
        "--quick",
        "--reps",
        "1",
        "--json",
        "--fused-only",
        "--bases",
        "relu,mish",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names[..5],
        [
            "burn relu",
            "afu fused relu N=8 shared",
            "afu fused relu N=8 per-channel",
            "afu fused mish N=8 shared",
            "afu fused mish N=8 per-channel",
        ]
    );
    // Then the learnable families' own rounds (always run).
    assert_eq!(
        names[5..7],
        ["burn relu (family rounds)", "burn mish (fixed)"]
    );
    assert_eq!(names.len(), 7 + 7);
    assert!(
        names[7..].iter().all(|n| n.starts_with("family ")),
        "{names:?}"
    );
}

#[test]
fn bench_cnn_step_quick_reports_steps_ops_and_ratios() {
    // A Python that does not exist: the PyTorch side is reported as not measured, not an error.
    let o = afu(&[
        "bench",
        "cnn-step",
        "--quick",
        "--json",
        "--pytorch",
        "/nonexistent/python3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let steps = r["mnist_cnn"].as_array().unwrap();
    // relu: stock (default and tuned allocator), afu ops, afu ops with denormals kept; the
    // per-layer AFU: stock, afu ops.
    assert_eq!(steps.len(), 6);
    assert_eq!(r["mobilenet"].as_array().unwrap().len(), 2);
    for c in steps.iter().chain(r["mobilenet"].as_array().unwrap()) {
        assert!(c["step_ms"].as_f64().unwrap() > 0.0, "{c}");
    }
    let ops = r["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 7);
    for c in ops {
        assert!(c["stock_ms"].as_f64().unwrap() > 0.0 && c["afu_ms"].as_f64().unwrap() > 0.0);
    }
    assert!(r["torch"]["steps"].as_array().unwrap().is_empty(), "{r}");
    assert!(!r["cpu"].as_str().unwrap().is_empty());
    assert!(r["data"].as_str().unwrap().contains("random"), "{r}");
    assert!(
        r["torch"]["note"].as_str().unwrap().contains("nonexistent"),
        "{r}"
    );
    let ratios = r["ratios"].as_array().unwrap();
    assert!(ratios.len() >= 4, "{r}");
}

#[test]
fn bench_cnn_step_trains_on_the_given_data_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    common::write_fixture(dir.path(), 130, 10, true);
    let o = afu(&[
        "bench",
        "cnn-step",
        "--quick",
        "--json",
        "--mobilenet-batch",
        "0",
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        r["data"]
            .as_str()
            .unwrap()
            .starts_with("130 training images"),
        "{r}"
    );
    assert!(r["mobilenet"].as_array().unwrap().is_empty());
    let missing = dir.path().join("missing");
    let o = afu(&[
        "bench",
        "cnn-step",
        "--quick",
        "--data",
        missing.to_str().unwrap(),
    ]);
    assert_usage_error(&o, "--data");
}

/// `--afu-init` makes the AFU approximate a known function; `--freeze-afu` keeps it so through
/// training; `afu inspect` then names that function.
#[test]
fn afu_init_freeze_and_inspect_agree() {
    let dir = tempfile::tempdir().unwrap();
    // A relu-based AFU can be a leaky-relu almost exactly; a sigmoid-based one a tanh.
    for (target, variant, expect) in [
        ("leaky-relu", "afu-relu-8", ["leaky-relu", "relu"]),
        ("tanh", "afu-sigmoid-8", ["tanh", "sigmoid"]),
    ] {
        let out = dir.path().join(target);
        let o = afu(&[
            "xor",
            "--quick",
            "--no-progress",
            "--variants",
            variant,
            "--seeds",
            "1",
            "--afu-init",
            target,
            "--freeze-afu",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = afu(&["inspect", out.to_str().unwrap(), "--afu-name", variant]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rows = json(&out.join("inspect.json"));
        let r = &rows[0];
        let near: Vec<&str> = r["equally_near"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(near.contains(&target), "{target}: {r}");
        assert!(
            expect.contains(&r["nearest"].as_str().unwrap()),
            "{target}: {r}"
        );
        assert!(r["nearest_error"].as_f64().unwrap() < 0.1, "{target}: {r}");
    }
    let o = afu(&[
        "xor",
        "--quick",
        "--afu-init",
        "gelu",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// `afu bake` turns a smooth learned AFU into a piecewise-linear relu AFU within the stated error.
#[test]
fn bake_writes_a_relu_afu_within_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("xor");
    let o = afu(&[
        "xor",
        "--quick",
        "--no-progress",
        "--variants",
        "afu-mish-8",
        "--seeds",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let baked = dir.path().join("baked.json");
    let o = afu(&[
        "bake",
        out.to_str().unwrap(),
        "--range",
        "4",
        "--max-error",
        "1e-4",
        "--out",
        baked.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = json(&baked);
    let a = &b["afus"][0];
    assert_eq!(a["base"], "relu");
    let src = json(&out.join("afu.json"))["afus"][0].clone();
    // Evaluate both in f64 here and compare over the range.
    let eval = |p: &serde_json::Value, z: f64, relu: bool| -> f64 {
        let v = |k: &str| {
            p[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<f64>>()
        };
        let (w0, b0, w1, b1) = (v("w0"), v("b0"), v("w1"), v("b1"));
        let mish = |u: f64| u * (if u > 30.0 { u } else { u.exp().ln_1p() }).tanh();
        b1[0]
            + (0..w0.len())
                .map(|i| {
                    let u = w0[i] * z + b0[i];
                    w1[i] * if relu { u.max(0.0) } else { mish(u) }
                })
                .sum::<f64>()
    };
    let mut worst = 0.0f64;
    let mut scale = 0.0f64;
    for i in 0..=400 {
        let z = -4.0 + 0.02 * i as f64;
        worst = worst.max((eval(a, z, true) - eval(&src, z, false)).abs());
        scale = scale.max(eval(&src, z, false).abs());
    }
    assert!(worst < 1e-3 * scale.max(1.0), "bake error {worst}");
}

/// Output piped into a reader that goes away (`afu … | head -1`): no panic message.
#[test]
fn closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_afu"))
        .args([
            "xor",
            "--quick",
            "--no-progress",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// One Ctrl-C stops `afu xor` within a step (exit 130, saying where), not after the whole run.
#[test]
fn ctrl_c_stops_xor_within_a_step() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_afu"))
        .args([
            "xor",
            "--no-progress",
            "--variants",
            "afu-relu-8",
            "--seeds",
            "1",
        ])
        .args(["--steps", "1000000", "--out", out.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !out.join("config.toml").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = std::time::Instant::now();
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped by Ctrl-C") && stderr.contains("step"),
        "{stderr}"
    );
    assert!(sent.elapsed().as_secs() < 10, "took {:?}", sent.elapsed());
}
