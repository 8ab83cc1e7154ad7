//! Nothing lost, nothing hangs, nothing panics (issue 25), end to end: a non-finite loss, a
//! full disk, bad inputs, a full stdout, Ctrl-C in the loops without checkpoints, resuming in
//! the middle of an epoch, and run folders that are never overwritten by accident.

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::write_fixture;

fn afu_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_afu"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run afu")
}

fn afu(args: &[&str]) -> Output {
    afu_env(args, &[])
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `afu mnist` on `data` into `out` for `epochs` epochs of `variants`, plus `extra`.
fn mnist(data: &Path, out: &Path, epochs: &str, variants: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "mnist",
        "--no-progress",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        epochs,
        "--variants",
        variants,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run(args: &[String], env: &[(&str, &str)]) -> Output {
    afu_env(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>(), env)
}

/// Files whose names mark an unfinished write or checkpoint, anywhere under `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") || name.ends_with(".next") || name.ends_with(".old") {
            found.push(e.path().display().to_string());
        }
        if e.file_type().unwrap().is_dir() {
            found.extend(leftovers(&e.path()));
        }
    }
    found
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_what_was_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 64, 20, false);
    let out = tmp.path().join("run");
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "experiment = \"mnist\"\ndata = \"{}\"\nvariants = [\"relu\"]\nreading = \"reference\"\nepochs = 4\nbatch_size = 64\ntest_batch_size = 1000\nlr = 1e30\ngamma = 0.7\nseed = 1\nseeds = 1\nkernel = \"auto\"\ncurriculum = \"none\"\ndevice = \"cpu\"\ndevices = []\n\n[afu_start]\nfreeze_afu = false\n",
            data.display()
        ),
    )
    .unwrap();
    let o = afu(&[
        "run",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("relu seed 1: the training loss is") && err.contains("step 1"),
        "{err}"
    );
    let s = json(&out.join("summary.json"));
    let stop = &s["stopped_on_non_finite_loss"];
    assert_eq!(stop["variant"], "relu", "{s}");
    let epoch = stop["epoch"].as_u64().unwrap();
    // Every complete epoch before it is in the summary, and the checkpoint is the last of them.
    assert_eq!(
        s["epochs"].as_array().unwrap().len() as u64,
        epoch - 1,
        "{s}"
    );
    if epoch > 1 {
        let p = json(&out.join("checkpoints/relu/progress.json"));
        assert_eq!(p["epochs_done"].as_u64().unwrap(), epoch - 1);
    }
    // afu.json is readable (never `null`s).
    afu_cli::afu::file::AfuFile::load(&out.join("afu.json")).unwrap();
    assert!(
        !std::fs::read_to_string(out.join("afu.json"))
            .unwrap()
            .contains("null")
    );
    // The toy loops stop too, naming the step.
    let o = afu(&[
        "xor",
        "--quick",
        "--no-progress",
        "--lr",
        "1e38",
        "--out",
        tmp.path().join("xor").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("training loss is"), "{}", stderr(&o));
}

#[test]
fn empty_data_huge_n_and_mismatched_afus_are_errors_not_results() {
    let tmp = tempfile::tempdir().unwrap();
    let (no_train, no_test) = (tmp.path().join("no-train"), tmp.path().join("no-test"));
    write_fixture(&no_train, 0, 20, false);
    write_fixture(&no_test, 64, 0, false);
    for (data, split) in [(&no_train, "training"), (&no_test, "test")] {
        let o = run(&mnist(data, &tmp.path().join("e"), "1", "relu", &[]), &[]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("the {split} set has no images")),
            "{}",
            stderr(&o)
        );
    }
    let o = run(
        &mnist(
            &no_test,
            &tmp.path().join("n"),
            "1",
            "afu-relu-100000000",
            &[],
        ),
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("limit of 4096"), "{}", stderr(&o));
    let afus = tmp.path().join("afu.json");
    std::fs::write(&afus, r#"{"format":"afu-params-v1","source":"t","afus":[{"name":"a/seed0/shared","base":"relu","channels":1,"hidden":2,"w0":[1.0,-1.0],"b0":[0.5,0.25],"w1":[0.3,0.7],"b1":[0.1]}]}"#).unwrap();
    let o = afu(&[
        "xor",
        "--quick",
        "--no-progress",
        "--variants",
        "afu-relu-8",
        "--afu-from",
        afus.to_str().unwrap(),
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("has N = 2") && stderr(&o).contains("N = 8"),
        "{}",
        stderr(&o)
    );
    let o = afu(&["xor", "--quick", "--steps", "100000000000"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("limit"), "{}", stderr(&o));
}

#[test]
fn eval_bake_and_printing_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 64, 20, false);
    let out = tmp.path().join("run");
    let o = run(&mnist(&data, &out, "1", "afu-relu-4", &[]), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out_s = out.to_str().unwrap();
    for range in ["nan", "inf", "1e300"] {
        let o = afu(&["eval", out_s, "--range", range]);
        assert_eq!(o.status.code(), Some(2), "{range}: {}", stderr(&o));
        assert!(stderr(&o).contains("--range"), "{}", stderr(&o));
        let o = afu(&["bake", out_s, "--range", range]);
        assert_eq!(o.status.code(), Some(2), "{range}: {}", stderr(&o));
    }
    // Images of another size: an error before the CNN sees them.
    let small = tmp.path().join("small");
    let px = vec![9u8; 5 * 20 * 20];
    afu_cli::data::idx::write_idx_images(&small.join("t10k-images-idx3-ubyte"), 20, 20, &px, false)
        .unwrap();
    afu_cli::data::idx::write_idx_labels(&small.join("t10k-labels-idx1-ubyte"), &[1; 5], false)
        .unwrap();
    let o = afu(&["eval", out_s, "--data", small.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("20×20"), "{}", stderr(&o));
    // A full standard output is an error, not a panic.
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let o = Command::new(env!("CARGO_BIN_EXE_afu"))
            .args(["inspect", out_s])
            .stdout(Stdio::from(full))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot write to standard output")
                && !stderr(&o).contains("panicked"),
            "{}",
            stderr(&o)
        );
    }
}

/// A write that fails as on a full disk — of the checkpoint's progress, of its model, of the
/// summary — ends the run with an error naming the file; the last complete checkpoint stays, no
/// partial files remain once the run is resumed, and the resumed run finishes.
#[test]
fn a_full_disk_ends_the_run_naming_the_file_and_resume_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 64, 20, false);
    for (fault, done) in [
        ("progress.json:2", 1),
        ("model.safetensors:2", 1),
        ("summary.json:1", 2),
    ] {
        let out = tmp.path().join(fault.replace(':', "-"));
        let args = mnist(&data, &out, "2", "relu", &[]);
        let o = run(&args, &[("AFU_TEST_FAIL_WRITE", fault)]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{fault}: {err}");
        let file = fault.split(':').next().unwrap();
        assert!(err.contains(file) && err.contains("no space left"), "{err}");
        let p = json(&out.join("checkpoints/relu/progress.json"));
        assert_eq!(p["epochs_done"], done, "{fault}");
        let mut resume = args.clone();
        resume.push("--resume".into());
        let o = run(&resume, &[]);
        assert!(o.status.success(), "{fault}: {}", stderr(&o));
        let s = json(&out.join("summary.json"));
        assert_eq!(s["epochs"].as_array().unwrap().len(), 2, "{fault}");
        assert_eq!(leftovers(&out), Vec::<String>::new(), "{fault}");
    }
}

/// A run interrupted inside an epoch and resumed ends with the numbers of the uninterrupted
/// run: data order, dropout masks and optimiser state continue exactly.
#[test]
fn a_run_resumed_mid_epoch_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 640, 100, true);
    let whole = tmp.path().join("whole");
    let o = run(&mnist(&data, &whole, "2", "afu-relu-4", &[]), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let parts = tmp.path().join("parts");
    let args = mnist(&data, &parts, "2", "afu-relu-4", &[]);
    // 10 steps per epoch: stop after the 3rd step of the second epoch.
    let o = run(&args, &[("AFU_TEST_INTERRUPT_AFTER_STEP", "13")]);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let p = json(&parts.join("checkpoints/afu-relu-4/progress.json"));
    assert_eq!(
        (p["epochs_done"].as_u64(), p["batches_done"].as_u64()),
        (Some(1), Some(3))
    );
    let mut resume = args.clone();
    resume.push("--resume".into());
    let o = run(&resume, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (
        json(&whole.join("summary.json")),
        json(&parts.join("summary.json")),
    );
    let numbers = |s: &serde_json::Value| -> Vec<serde_json::Value> {
        s["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                serde_json::json!([
                    e["train_loss"],
                    e["test_loss"],
                    e["test_accuracy"],
                    e["test_top3"]
                ])
            })
            .collect()
    };
    assert_eq!(numbers(&a), numbers(&b));
    assert_eq!(
        a["runs"][0]["train_eval_loss"],
        b["runs"][0]["train_eval_loss"]
    );
    assert_eq!(
        json(&whole.join("afu.json"))["afus"],
        json(&parts.join("afu.json"))["afus"]
    );
}

#[test]
fn resume_with_other_data_is_refused_and_the_run_has_a_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_fixture(&data, 64, 20, false);
    let out = tmp.path().join("run");
    let args = mnist(&data, &out, "1", "relu", &[]);
    assert!(run(&args, &[]).status.success());
    let m = json(&out.join("manifest.json"));
    assert_eq!(m["command"], "mnist");
    assert_eq!(m["variants"], serde_json::json!(["relu"]));
    assert_eq!(m["seed"], 1);
    assert!(
        m["data_fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 64)
    );
    let summary = std::fs::read(out.join("summary.json")).unwrap();
    write_fixture(&data, 80, 20, false);
    let mut resume = args.clone();
    resume.push("--resume".into());
    let o = run(&resume, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("the data differ"), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), summary);
}

/// One Ctrl-C stops `afu smoothness` within one net, not after all of them.
#[test]
fn ctrl_c_stops_smoothness() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sm");
    let mut child = Command::new(env!("CARGO_BIN_EXE_afu"))
        .args([
            "smoothness",
            "--quick",
            "--no-progress",
            "--nets",
            "10000",
            "--out",
            out.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the nets are being evaluated (the source AFU is trained first).
    let start = std::time::Instant::now();
    while !out.join("figures").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let stopped = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(130));
            break;
        }
        if stopped.elapsed().as_secs() > 20 {
            let _ = child.kill();
            panic!("afu smoothness still running 20 s after Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A command with nothing to save (here a benchmark) ends at the first Ctrl-C, not at the end.
#[test]
fn ctrl_c_ends_a_command_without_checkpoints_at_once() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut command = Command::new(env!("CARGO_BIN_EXE_afu"));
    command
        .args(["bench", "kernels"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: `signal` is async-signal-safe. A shell without job control starts background
    // jobs with SIGINT ignored, and children inherit that; the default action is what a user's
    // terminal gives the command.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let stopped = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
            break;
        }
        if stopped.elapsed().as_secs() > 10 {
            let _ = child.kill();
            panic!("afu bench kernels still running 10 s after Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
