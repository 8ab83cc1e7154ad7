//! End-to-end tests of the learnable families (PReLU, Swish-β, pmish, PAU, PWLU, APL, KAF) in
//! `afu xor`, `afu mnist` and `afu cifar10`, on generated data, and of their bad names.

use std::collections::BTreeMap;
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
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every family once, with the three sharing modes among them.
const VARIANTS: &str =
    "prelu,swish-beta-channel,pmish-layer,pau-channel,pwlu-8-channel,apl-5-layer,kaf-channel";

/// Training loss per variant and epoch from `metrics.csv`.
fn losses(out: &Path) -> BTreeMap<String, Vec<f64>> {
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(metrics.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (variant, loss) = (col("variant"), col("train_loss"));
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in rows.records() {
        let r = r.unwrap();
        by.entry(r[variant].to_string())
            .or_default()
            .push(r[loss].parse().unwrap());
    }
    by
}

fn assert_every_family_learned(out: &Path, epochs: usize) {
    let by = losses(out);
    assert_eq!(by.len(), 7, "{by:?}");
    for (name, l) in &by {
        assert_eq!(l.len(), epochs, "{name}");
        assert!(
            l[epochs - 1].is_finite() && l[epochs - 1] < l[0],
            "{name}: training loss {l:?} did not decrease"
        );
    }
    // Learned parameters per slot, and the single-parameter families in the summary.
    let fam = json(&out.join("families.json"));
    let names: Vec<&str> = fam
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["family"].as_str().unwrap())
        .collect();
    for f in [
        "prelu",
        "swish-beta",
        "pmish",
        "pau",
        "pwlu-8",
        "apl-5",
        "kaf",
    ] {
        assert!(
            names.contains(&f),
            "{f} missing from families.json: {names:?}"
        );
    }
    let pmish = fam
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["family"] == "pmish")
        .unwrap();
    assert_eq!(pmish["param_names"][0], "a");
    let a = pmish["values"][0][0].as_f64().unwrap();
    assert!(a.is_finite() && a != 0.0, "pmish's a moved from 0: {a}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("Learned family parameters") && md.contains("| pmish | a |"),
        "{md}"
    );
}

#[test]
fn every_family_trains_in_xor() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = afu(&[
        "xor",
        "--quick",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
        "--variants",
        &format!("relu,{VARIANTS}"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&out.join("summary.json"));
    let vs = s["variants"].as_array().unwrap();
    assert_eq!(vs.len(), 8);
    let relu_params = vs[0]["parameters"].as_u64().unwrap();
    for v in &vs[1..] {
        assert!(v["parameters"].as_u64().unwrap() > relu_params, "{v}");
        assert!(v["final_loss_mean"].as_f64().unwrap().is_finite(), "{v}");
    }
}

#[test]
fn every_family_trains_in_mnist() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_fixture(&data, 200, 50, true);
    let out = tmp.path().join("run");
    let o = afu(&[
        "mnist",
        "--quick",
        "--no-progress",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--variants",
        VARIANTS,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_every_family_learned(&out, 2);
    // PWLU's second phase moved its bounds away from the start [-3, 3] (to the inputs'
    // mean ± 3·std), the same for every channel of the module.
    let fam = json(&out.join("families.json"));
    let pwlu = fam
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["family"] == "pwlu-8")
        .unwrap();
    let rows = pwlu["values"].as_array().unwrap();
    let (l, r) = (rows[0][0].as_f64().unwrap(), rows[0][1].as_f64().unwrap());
    assert!(
        l < r && (l, r) != (-3.0, 3.0),
        "PWLU bounds after phase 1: {l}, {r}"
    );
    assert!(
        rows.iter()
            .all(|row| (row[0].as_f64().unwrap() - l).abs() < 0.5),
        "{rows:?}"
    );
    assert!(out.join("figures/families.svg").exists());

    // The report ranks the variants; inspect and bake read the family slots.
    let report = tmp.path().join("report.md");
    let o = afu(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("### Learned activations ranked"), "{md}");
    for v in VARIANTS.split(',') {
        assert!(md.contains(&format!("| {v} |")), "{v} not ranked:\n{md}");
    }
    let o = afu(&["inspect", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("prelu/seed1/") && text.contains("kaf-channel/seed1/"),
        "{text}"
    );
    let baked = tmp.path().join("baked.json");
    let o = afu(&[
        "bake",
        out.to_str().unwrap(),
        "--out",
        baked.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("exact") && text.contains("not a continuous piecewise-linear"),
        "{text}"
    );
    let file = json(&baked);
    let names: Vec<&str> = file["afus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for f in ["prelu", "pwlu-8", "apl-5"] {
        assert!(
            names
                .iter()
                .any(|n| n.ends_with(&format!("(baked from {f})"))),
            "{f}: {names:?}"
        );
    }
}

#[test]
fn every_family_trains_in_cifar10_mobilenet() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_cifar_fixture(&tmp.path().join("cifar-10-batches-bin"), 40);
    let out = tmp.path().join("run");
    let o = afu(&[
        "cifar10",
        "--no-progress",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit-train",
        "100",
        "--limit-test",
        "20",
        "--batch-size",
        "20",
        "--epochs",
        "2",
        "--variants",
        VARIANTS,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_every_family_learned(&out, 2);
}

#[test]
fn bad_family_names_are_one_line_errors_with_exit_code_2() {
    for (bad, says) in [
        ("pau-0-4", "degree"),
        ("pau-5-0", "degree"),
        ("pwlu-0-channel", "intervals"),
        ("apl-0", "hinges"),
        ("kaf-1", "dictionary points"),
        ("foo-layer", "learnable family"),
    ] {
        let o = afu(&["xor", "--quick", "--no-progress", "--variants", bad]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains(bad) && stderr.contains(says),
            "{bad}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{bad}: {stderr}");
    }
}
