//! `afu report`: one Markdown report over any set of run folders — our numbers beside the
//! paper's for every experiment, mean ± std where there are several seeds, figures linked, and
//! each of the paper's conclusions with the measurement that supports or contradicts it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::experiments::common::{self, ExperimentError};
use crate::experiments::inspect::{self, InspectRow};

fn read_summary(dir: &Path) -> Result<Value, ExperimentError> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ExperimentError::Config {
        field: "runs",
        message: format!("{}: {e} (is this an afu run folder?)", path.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| ExperimentError::Config {
        field: "runs",
        message: format!("{}: not a summary.json ({e})", path.display()),
    })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn rel(from: &Path, to: &Path) -> String {
    // Links relative to the report's folder when possible, else absolute.
    let from = std::fs::canonicalize(from).unwrap_or_else(|_| from.to_path_buf());
    let to = std::fs::canonicalize(to).unwrap_or_else(|_| to.to_path_buf());
    match to.strip_prefix(&from) {
        Ok(p) => p.display().to_string(),
        Err(_) => to.display().to_string(),
    }
}

/// How the run's AFUs started, from its `config.toml`.
fn afu_start(dir: &Path) -> String {
    let cfg: Option<toml::Value> = std::fs::read_to_string(dir.join("config.toml"))
        .ok()
        .and_then(|t| toml::from_str(&t).ok());
    let start = cfg.as_ref().and_then(|c| c.get("afu_start"));
    let get = |k: &str| {
        start
            .and_then(|s| s.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let frozen = start
        .and_then(|s| s.get("freeze_afu"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut parts = Vec::new();
    if let Some(f) = get("afu_init") {
        parts.push(format!("initialised to approximate {f}"));
    }
    if let Some(p) = get("afu_from") {
        parts.push(format!(
            "transferred from {}{}",
            p,
            get("afu_name")
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ));
    }
    if parts.is_empty() {
        parts.push("random (PyTorch default init)".into());
    }
    if frozen {
        parts.push("frozen".into());
    }
    format!("AFU start: {}.", parts.join(", "))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**supported**"
    } else {
        "**not supported**"
    }
}

/// Writes the report to `out` and returns its text.
pub fn run(dirs: &[PathBuf], out: &Path) -> Result<String, ExperimentError> {
    let base = out.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let mut md = String::from("# afu report — learned activations, measured\n\n");
    let mut claims: Vec<String> = Vec::new();
    // `afu meta` run folders, for the multi-seed section of those that differ in the seed only.
    let mut meta_runs: Vec<crate::meta::seeds::SeedRun> = Vec::new();
    for dir in dirs {
        if crate::experiments::sweep_report::is_sweep(dir) {
            crate::experiments::sweep_report::section(dir, &base, &mut md, &mut claims)?;
            continue;
        }
        let s = read_summary(dir)?;
        let fig =
            |name: &str| format!("![{name}]({})", rel(&base, &dir.join("figures").join(name)));
        match s["experiment"].as_str().unwrap_or("") {
            "xor" => {
                let _ = writeln!(
                    md,
                    "## Toy XOR problem (paper §2.2.1) — `{}`\n\n{}\n",
                    dir.display(),
                    afu_start(dir)
                );
                let _ = writeln!(
                    md,
                    "Bayes accuracy of the data: {:.4}. Paper: no accuracy gain of the AFU over relu, sigmoid or tanh; reference notebook train AUC 0.954.\n",
                    f(&s["bayes_accuracy"])
                );
                md.push_str("| variant | test accuracy | test AUC | train accuracy |\n|---|---:|---:|---:|\n");
                let vs = s["variants"].as_array().cloned().unwrap_or_default();
                for v in &vs {
                    let _ = writeln!(
                        md,
                        "| {} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.4} |",
                        v["name"].as_str().unwrap_or("?"),
                        f(&v["test_accuracy_mean"]),
                        f(&v["test_accuracy_std"]),
                        f(&v["test_auc_mean"]),
                        f(&v["test_auc_std"]),
                        f(&v["train_accuracy_mean"])
                    );
                }
                md.push_str(&crate::experiments::family_report::xor_section(&s));
                let best = |afu: bool| {
                    vs.iter()
                        .filter(|v| v["name"].as_str().unwrap_or("").starts_with("afu") == afu)
                        .max_by(|a, b| {
                            f(&a["test_accuracy_mean"]).total_cmp(&f(&b["test_accuracy_mean"]))
                        })
                        .cloned()
                };
                if let (Some(a), Some(b)) = (best(true), best(false)) {
                    let diff = f(&a["test_accuracy_mean"]) - f(&b["test_accuracy_mean"]);
                    let noise = f(&a["test_accuracy_std"]).max(f(&b["test_accuracy_std"]));
                    claims.push(format!(
                        "*Learned activations do not degrade performance* (XOR): best AFU {} {:.4} vs best fixed {} {:.4} (difference {:+.4}, seed std {:.4}) — {}.",
                        a["name"].as_str().unwrap_or("?"), f(&a["test_accuracy_mean"]), b["name"].as_str().unwrap_or("?"), f(&b["test_accuracy_mean"]), diff, noise, verdict(diff > -noise)
                    ));
                }
                let rows = inspect::inspect_all(dir, None, (-5.0, 5.0), None).unwrap_or_default();
                shape_claims(&rows, "XOR", &mut claims, &mut md);
                let _ = writeln!(md, "\n{}\n", fig("loss.svg"));
                if let Some(v) = vs
                    .iter()
                    .find(|v| v["name"].as_str().unwrap_or("").starts_with("afu"))
                {
                    let name = v["name"].as_str().unwrap_or("");
                    let _ = writeln!(
                        md,
                        "{}\n\n{}\n",
                        fig(&format!("{name}-boundary.svg")),
                        fig(&format!("{name}-afu.svg"))
                    );
                }
            }
            "xor-neuron" => {
                let _ = writeln!(md, "## One neuron solves XOR — `{}`\n", dir.display());
                md.push_str("| variant | seeds solved (AUC 1) | mean AUC |\n|---|---:|---:|\n");
                let vs = s["variants"].as_array().cloned().unwrap_or_default();
                for v in &vs {
                    let _ = writeln!(
                        md,
                        "| {} | {}/{} | {:.3} |",
                        v["name"].as_str().unwrap_or("?"),
                        v["solved"],
                        v["runs"],
                        f(&v["auc_mean"])
                    );
                }
                let afu_all = vs
                    .iter()
                    .filter(|v| v["name"].as_str().unwrap_or("").starts_with("afu"))
                    .all(|v| v["solved"] == v["runs"]);
                claims.push(format!("*A single neuron with a learned activation solves XOR* (reference notebook): {}.", verdict(afu_all)));
                let _ = writeln!(md, "\n{}\n", fig("afus.svg"));
            }
            "smoothness" => {
                let _ = writeln!(
                    md,
                    "## Smoothness (paper §2.2.2) — `{}`\n\nAFU: {}\n",
                    dir.display(),
                    s["afu_source"].as_str().unwrap_or("?")
                );
                md.push_str("| activation | mean gradient | total variation | curvature |\n|---|---:|---:|---:|\n");
                let acts = s["activations"].as_array().cloned().unwrap_or_default();
                for a in &acts {
                    let _ = writeln!(
                        md,
                        "| {} | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.2} ± {:.2} |",
                        a["name"].as_str().unwrap_or("?"),
                        f(&a["mean_gradient_mean"]),
                        f(&a["mean_gradient_std"]),
                        f(&a["total_variation_mean"]),
                        f(&a["total_variation_std"]),
                        f(&a["curvature_mean"]),
                        f(&a["curvature_std"])
                    );
                }
                let get = |n: &str| acts.iter().find(|a| a["name"] == n).cloned();
                if let (Some(a), Some(r)) = (get("afu"), get("relu")) {
                    let tv = f(&a["total_variation_mean"]) < f(&r["total_variation_mean"]);
                    let cv = f(&a["curvature_mean"]) < f(&r["curvature_mean"]);
                    claims.push(format!(
                        "*The learned AFU gives smoother landscapes than relu* (paper Fig. 5): total variation {:.3} vs {:.3}, curvature {:.2} vs {:.2} — {}.",
                        f(&a["total_variation_mean"]), f(&r["total_variation_mean"]), f(&a["curvature_mean"]), f(&r["curvature_mean"]), verdict(tv && cv)
                    ));
                }
                let _ = writeln!(md, "\n{}\n", fig("net0.svg"));
            }
            "mnist" => {
                let _ = writeln!(
                    md,
                    "## MNIST-format data with the PyTorch-example CNN (paper §2.2.3) — `{}`\n\n{} {} training / {} test images. Paper: 99.2 % for every variant on MNIST; reference notebook 98.91 % with per-layer AFUs.\n",
                    dir.display(),
                    afu_start(dir),
                    s["train_images"],
                    s["test_images"]
                );
                image_results(&s, "MNIST-format data", &mut md, &mut claims);
                let rows = inspect::inspect_all(dir, None, (-5.0, 5.0), None).unwrap_or_default();
                if !rows.is_empty() {
                    md.push_str("\n| AFU | nearest known function (fit error) | shape | distance from linear |\n|---|---|---|---:|\n");
                    for r in &rows {
                        let _ = writeln!(
                            md,
                            "| {} | {} ({:.3}) | {} | {:.3} |",
                            r.name,
                            r.equally_near.join(" ≈ "),
                            r.nearest_error,
                            r.shape.kind,
                            r.shape.distance_from_linear
                        );
                    }
                    // The layers of one run (the first variant and seed with per-layer AFUs).
                    let run_prefix = rows
                        .iter()
                        .find(|r| !r.name.ends_with("/shared"))
                        .and_then(|r| r.name.rsplit_once('/'))
                        .map(|(prefix, _)| format!("{prefix}/"))
                        .unwrap_or_default();
                    let layers: Vec<&InspectRow> = rows
                        .iter()
                        .filter(|r| !r.name.ends_with("/shared") && r.name.starts_with(&run_prefix))
                        .collect();
                    if layers.len() >= 2 {
                        let first = layers
                            .first()
                            .map(|r| r.shape.distance_from_linear)
                            .unwrap_or(f64::NAN);
                        let last = layers
                            .last()
                            .map(|r| r.shape.distance_from_linear)
                            .unwrap_or(f64::NAN);
                        claims.push(format!("*Later layers learn more linear activations*: distance from linear {:.3} (first AFU layer) vs {:.3} (last) — {}.", first, last, verdict(last < first)));
                        let distinct = layers
                            .iter()
                            .map(|r| r.nearest.as_str())
                            .collect::<std::collections::BTreeSet<_>>()
                            .len();
                        claims.push(format!("*Different layers learn different functions*: {} distinct nearest functions / shapes over {} layers ({}) — {}.", distinct, layers.len(), layers.iter().map(|r| format!("{} {}", r.nearest, r.shape.kind)).collect::<Vec<_>>().join(", "), verdict(distinct > 1 || layers.windows(2).any(|w| w[0].shape.kind != w[1].shape.kind))));
                    }
                    if let Some(sh) = rows.iter().find(|r| r.name.ends_with("/shared")) {
                        claims.push(format!("*A shared AFU resembles leaky-relu* (paper Fig. 6a): nearest {} (error {:.3}) — {}.", sh.equally_near.join(" ≈ "), sh.nearest_error, verdict(sh.equally_near.iter().any(|n| n == "leaky-relu" || n == "relu"))));
                    }
                }
                let _ = writeln!(md, "\n{}\n\n{}\n", fig("accuracy.svg"), fig("afus.svg"));
            }
            "cifar10" => {
                let _ = writeln!(
                    md,
                    "## CIFAR-10 with MobileNet (paper §2.2.4) — `{}`\n\n{} {} training / {} test images. Paper (100 epochs): Mish 86.3 % top-1, AFU 85.1 %.\n",
                    dir.display(),
                    afu_start(dir),
                    s["train_images"],
                    s["test_images"]
                );
                image_results(&s, "CIFAR-10", &mut md, &mut claims);
                let rows = inspect::inspect_all(dir, None, (-5.0, 5.0), None).unwrap_or_default();
                if let Some(sh) = rows.iter().find(|r| r.name.ends_with("/shared")) {
                    claims.push(format!("*The AFU learned on CIFAR-10 resembles Mish* (paper Fig. 7): nearest {} (error {:.3}) — {}.", sh.equally_near.join(" ≈ "), sh.nearest_error, verdict(sh.equally_near.iter().any(|n| n == "mish"))));
                }
                let _ = writeln!(md, "\n{}\n\n{}\n", fig("accuracy.svg"), fig("afus.svg"));
            }
            "meta" => {
                let summary = crate::meta::report::section(
                    dir,
                    &s,
                    &rel(&base, &dir.join("figures")),
                    &mut md,
                    &mut claims,
                )?;
                meta_runs.push(crate::meta::seeds::SeedRun::new(dir, summary));
            }
            other => {
                return Err(ExperimentError::Config {
                    field: "runs",
                    message: format!("{}: unknown experiment '{other}'", dir.display()),
                });
            }
        }
    }
    for (i, group) in crate::meta::seeds::seed_groups(meta_runs)
        .into_iter()
        .enumerate()
    {
        let dirs = group
            .iter()
            .map(|r| format!("`{}`", r.dir.display()))
            .collect::<Vec<_>>()
            .join(", ");
        let file = format!("figures/meta-seeds-{}.svg", i + 1);
        crate::meta::seeds::section(
            "##",
            &format!("the runs {dirs}"),
            group,
            &base.join(&file),
            &file,
            &mut md,
            &mut claims,
        )?;
    }
    md.push_str("## The paper's conclusions, measured\n\n");
    if claims.is_empty() {
        md.push_str("(no run with a measurable claim)\n");
    }
    for c in &claims {
        let _ = writeln!(md, "- {c}");
    }
    common::write_text(out, &md)?;
    Ok(md)
}

/// The non-inferiority margin of "learned activations do not degrade accuracy": half a
/// percentage point of test accuracy.
const MARGIN: f64 = 0.005;

/// The per-variant table (mean ± std and 95 % interval over seeds), the paired comparisons, and
/// the claim that AFUs do not degrade accuracy, tested against relu over the same seeds.
pub(crate) fn image_results(s: &Value, what: &str, md: &mut String, claims: &mut Vec<String>) {
    let variants: Vec<crate::experiments::image::ImageVariantSummary> =
        serde_json::from_value(s["variants"].clone()).unwrap_or_default();
    let comparisons: Vec<crate::stats::Comparison> =
        serde_json::from_value(s["comparisons"].clone()).unwrap_or_default();
    if variants.is_empty() {
        // A summary written before seeds were an axis: one run per variant.
        md.push_str("| variant | final test accuracy | best | s/epoch | epochs |\n|---|---:|---:|---:|---:|\n");
        for v in s["variants"].as_array().cloned().unwrap_or_default() {
            let _ = writeln!(
                md,
                "| {} | {:.4} | {:.4} | {:.1} | {} |",
                v["name"].as_str().unwrap_or("?"),
                f(&v["test_accuracy"]),
                f(&v["best_test_accuracy"]),
                f(&v["epoch_seconds_mean"]),
                v["epochs"]
            );
        }
        return;
    }
    md.push_str(&crate::experiments::image::results_markdown(
        &variants,
        &comparisons,
    ));
    md.push_str(&crate::experiments::family_report::image_section(s));
    for c in &comparisons {
        let (afu, other, sign) = if c.b == "relu" && c.a.starts_with("afu") {
            (&c.a, &c.b, 1.0)
        } else if c.a == "relu" && c.b.starts_with("afu") {
            (&c.b, &c.a, -1.0)
        } else {
            continue;
        };
        let d = sign * c.result.mean_difference;
        let mean_of = |name: &str| {
            variants
                .iter()
                .find(|v| v.name == name)
                .map_or(f64::NAN, |v| v.test_accuracy_mean)
        };
        let (a_acc, r_acc) = (mean_of(afu), mean_of(other));
        let text = match c.result.ci95 {
            Some([lo, hi]) => {
                let (lo, hi) = if sign > 0.0 { (lo, hi) } else { (-hi, -lo) };
                let verdict = if lo > -MARGIN {
                    "**supported**"
                } else if hi < -MARGIN {
                    "**not supported**"
                } else {
                    "**inconclusive** (more seeds needed)"
                };
                format!(
                    "{a_acc:.4} vs relu {r_acc:.4} over {} seeds: difference {d:+.4}, 95 % interval [{lo:+.4}, {hi:+.4}], paired t-test p = {:.3}; non-inferior within {MARGIN} if the interval lies above −{MARGIN} — {verdict}",
                    c.result.n,
                    c.result.p_value.unwrap_or(f64::NAN),
                )
            }
            None => format!(
                "{a_acc:.4} vs relu {r_acc:.4} ({d:+.4}; one seed, no test: run with --seeds 3 or more) — {}",
                verdict(d > -MARGIN)
            ),
        };
        claims.push(format!(
            "*Learned activations do not degrade performance* ({what}, {afu}): {text}."
        ));
    }
    crate::experiments::curriculum_report::section(s, what, md, claims);
}

fn shape_claims(rows: &[InspectRow], what: &str, claims: &mut Vec<String>, md: &mut String) {
    if rows.is_empty() {
        return;
    }
    md.push_str("\n| AFU | nearest known function (fit error) | shape | argmin | slope −∞ / +∞ | dead zone |\n|---|---|---|---:|---|---:|\n");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} ({:.3}) | {} | {:.2} | {:.3} / {:.3} | {:.1} % |",
            r.name,
            r.equally_near.join(" ≈ "),
            r.nearest_error,
            r.shape.kind,
            r.shape.argmin,
            r.shape.slope_left,
            r.shape.slope_right,
            100.0 * r.shape.dead_fraction
        );
    }
    let n = rows.len();
    let v = rows
        .iter()
        .filter(|r| r.shape.kind == "V" && r.shape.argmin.abs() < 0.5)
        .count();
    claims.push(format!("*The learned AFU is a V / radial-basis bump centred near 0* ({what}): {v} of {n} learned AFUs are V-shaped with their minimum within 0.5 of 0 — {}.", verdict(2 * v > n)));
    let sat = rows
        .iter()
        .filter(|r| r.shape.slope_left.abs() < 1e-3 || r.shape.slope_right.abs() < 1e-3)
        .count();
    claims.push(format!("*Learned AFUs do not saturate* ({what}): {sat} of {n} have a flat tail (|slope| < 0.001 at z = ±50) — {}.", verdict(2 * sat < n)));
    let dead: f64 = rows.iter().map(|r| r.shape.dead_fraction).sum::<f64>() / n as f64;
    claims.push(format!("*Learned AFUs produce no dead zones* ({what}): on average {:.1} % of their inputs fall where the slope is below 1 % of its maximum — {}.", 100.0 * dead, verdict(dead < 0.05)));
}
