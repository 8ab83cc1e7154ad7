//! End-to-end test of `afu cifar10` on generated files in the real CIFAR-10 binary format.

use std::process::{Command, Output};

mod common;

fn afu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_afu"))
        .args(args)
        .output()
        .expect("run afu")
}

#[test]
fn cifar10_quick_runs_on_real_format_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar-10-batches-bin");
    common::write_cifar_fixture(&data, 40);
    let out = tmp.path().join("run");
    let o = afu(&[
        "cifar10",
        "--quick",
        "--no-progress",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit-train",
        "120",
        "--limit-test",
        "40",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["train_images"], 120);
    assert_eq!(s["test_images"], 40);
    let vs = s["variants"].as_array().unwrap();
    assert_eq!(vs.len(), 2);
    for v in vs {
        let (t1, t3) = (
            v["test_accuracy"].as_f64().unwrap(),
            v["top3_accuracy"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&t1) && t3 >= t1, "{v}");
    }
    let afus: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("afu.json")).unwrap()).unwrap();
    // Per-block sharing: the stem and 13 blocks own one AFU each.
    assert_eq!(afus["afus"].as_array().unwrap().len(), 14);
    assert!(out.join("checkpoints/relu/model.safetensors").exists());
    assert!(out.join("figures/afus.svg").exists());

    // MobileNetV2: the stem, 17 inverted residual blocks and the head own one AFU each.
    let out2 = tmp.path().join("run-v2");
    let o = afu(&[
        "cifar10",
        "--quick",
        "--no-progress",
        "--model",
        "mobilenet-v2",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--limit-train",
        "60",
        "--limit-test",
        "20",
        "--variants",
        "afu-relu-8-layer",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let afus: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("afu.json")).unwrap()).unwrap();
    assert_eq!(afus["afus"].as_array().unwrap().len(), 19);
    let config = std::fs::read_to_string(out2.join("config.toml")).unwrap();
    assert!(config.contains("model = \"mobilenet-v2\""), "{config}");

    // A missing batch is named, with how to get the data (in a new folder: the first run's
    // is taken).
    std::fs::remove_file(data.join("data_batch_3.bin")).unwrap();
    let out3 = tmp.path().join("run-missing");
    let o = afu(&[
        "cifar10",
        "--quick",
        "--no-progress",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        out3.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("data_batch_3.bin"), "{stderr}");
}

/// Every default variant (relu, mish, swish, shared AFU, per-block AFU) trains a few steps on
/// generated files in the real format, and its training loss goes down.
#[test]
fn cifar10_all_variants_reduce_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar-10-batches-bin");
    common::write_cifar_fixture(&data, 60);
    let out = tmp.path().join("run");
    let o = afu(&[
        "cifar10",
        "--no-progress",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit-train",
        "200",
        "--limit-test",
        "40",
        "--batch-size",
        "20",
        "--epochs",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(metrics.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (variant, epoch, loss) = (col("variant"), col("epoch"), col("train_loss"));
    let mut by_variant: std::collections::BTreeMap<String, Vec<(u32, f64)>> = Default::default();
    for r in rows.records() {
        let r = r.unwrap();
        by_variant
            .entry(r[variant].to_string())
            .or_default()
            .push((r[epoch].parse().unwrap(), r[loss].parse().unwrap()));
    }
    let names: Vec<&str> = by_variant.keys().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        ["afu-relu-8", "afu-relu-8-layer", "mish", "relu", "swish"],
        "{metrics}"
    );
    for (name, epochs) in &by_variant {
        assert_eq!(epochs.len(), 3, "{name}");
        let (first, last) = (epochs[0].1, epochs[2].1);
        assert!(
            last.is_finite() && last < first,
            "{name}: training loss {first} -> {last} did not decrease\n{metrics}"
        );
    }
}

/// The issue-22 comparisons on MobileNet run end to end: pmish beside Mish, and a per-block AFU
/// with and without the linear-to-nonlinear curriculum, on generated CIFAR-format files: every
/// variant trains each epoch to finite losses.
#[test]
fn cifar10_runs_pmish_and_the_curriculum() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar-10-batches-bin");
    common::write_cifar_fixture(&data, 40);
    let out = tmp.path().join("run");
    let o = afu(&[
        "cifar10",
        "--no-progress",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit-train",
        "80",
        "--limit-test",
        "20",
        "--batch-size",
        "20",
        "--epochs",
        "2",
        "--variants",
        "mish,pmish-layer,afu-relu-8-layer,afu-relu-8-layer@linear-1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let names: Vec<String> = summary["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names.len(), 4, "{summary}");
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(metrics.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (variant, loss) = (col("variant"), col("train_loss"));
    let mut epochs: std::collections::BTreeMap<String, usize> = Default::default();
    for r in rows.records() {
        let r = r.unwrap();
        let l: f64 = r[loss].parse().unwrap();
        assert!(
            l.is_finite(),
            "{}: training loss {l}\n{metrics}",
            &r[variant]
        );
        *epochs.entry(r[variant].to_string()).or_default() += 1;
    }
    for name in [
        "mish",
        "pmish-layer",
        "afu-relu-8-layer",
        "afu-relu-8-layer@linear-1",
    ] {
        assert_eq!(epochs.get(name), Some(&2), "{name}\n{metrics}");
    }
}
