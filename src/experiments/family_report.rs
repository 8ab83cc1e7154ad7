//! `afu report`'s ranking of the learned activations of one run: every variant (fixed, AFU,
//! learnable family) ordered by mean test accuracy over its seeds, beside its paired test
//! against relu, the paired test against the top variant, the parameters it adds and its time.
//!
//! Written for runs that hold at least one learnable family (the comparison issue 23 asks for);
//! the per-variant numbers come from `summary.json`'s `runs[]` (one row per variant and seed),
//! so the tests pair the same seeds.

use std::fmt::Write as _;

use afu::activation::ActivationSpec;
use serde_json::Value;

use crate::stats::{self, PairedTest};

/// Significance level below which a variant is said to differ from the top one.
const ALPHA: f64 = 0.05;

/// One variant's row of the ranking.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RankRow {
    /// Variant name as run (may carry a curriculum suffix `@…`).
    pub name: String,
    /// `(seed, test accuracy)` of every run of the variant.
    pub accuracy: Vec<(u64, f64)>,
    /// Learned activation parameters the variant adds to the network (`None`: unknown).
    pub added_parameters: Option<usize>,
    /// Mean seconds per epoch (image runs) or per run (XOR).
    pub seconds: f64,
}

/// What kind of activation a variant name is: `fixed`, `AFU`, the family's name, or `?`.
fn kind(name: &str) -> String {
    let spec = name.split('@').next().unwrap_or(name);
    match spec.parse::<ActivationSpec>() {
        Ok(ActivationSpec::Fixed(_)) => "fixed".into(),
        Ok(ActivationSpec::Afu { .. }) => "AFU".into(),
        Ok(ActivationSpec::Family { family, sharing }) => {
            format!("{} ({})", family_label(&family.to_string()), sharing.name())
        }
        Err(_) => "?".into(),
    }
}

/// The family's name as its paper writes it.
fn family_label(cli: &str) -> String {
    let base = cli.split('-').next().unwrap_or(cli);
    match base {
        "prelu" => "PReLU".into(),
        "swish" => "Swish-β".into(),
        "pmish" => "pmish".into(),
        "pau" => "PAU".into(),
        "pwlu" => "PWLU".into(),
        "apl" => "APL".into(),
        "kaf" => "KAF".into(),
        other => other.into(),
    }
}

/// Whether any of `names` is a learnable family (the ranking is written only then).
pub(crate) fn has_family(names: &[String]) -> bool {
    names.iter().any(|n| {
        matches!(
            n.split('@').next().unwrap_or(n).parse::<ActivationSpec>(),
            Ok(ActivationSpec::Family { .. })
        )
    })
}

fn mean(v: &[(u64, f64)]) -> f64 {
    v.iter().map(|(_, a)| a).sum::<f64>() / v.len().max(1) as f64
}

/// The paired test `a − b` on the seeds both ran.
fn paired(a: &[(u64, f64)], b: &[(u64, f64)]) -> PairedTest {
    let (mut xa, mut xb) = (Vec::new(), Vec::new());
    for (seed, va) in a {
        if let Some((_, vb)) = b.iter().find(|(s, _)| s == seed) {
            xa.push(*va);
            xb.push(*vb);
        }
    }
    stats::paired_t(&xa, &xb)
}

fn test_cell(t: &PairedTest) -> String {
    match t.p_value {
        Some(p) => format!("{:+.4} (p = {p:.3})", t.mean_difference),
        None => format!("{:+.4} (one seed)", t.mean_difference),
    }
}

/// The ranking as Markdown: a table ordered by mean test accuracy (best first) and one
/// sentence naming the variants not distinguishable from the top one.
pub(crate) fn ranking_markdown(rows: &[RankRow], seconds_label: &str) -> String {
    let mut order: Vec<&RankRow> = rows.iter().filter(|r| !r.accuracy.is_empty()).collect();
    order.sort_by(|a, b| mean(&b.accuracy).total_cmp(&mean(&a.accuracy)));
    let Some(top) = order.first().copied() else {
        return String::new();
    };
    let relu = rows.iter().find(|r| r.name == "relu");
    let relu_secs = relu.map(|r| r.seconds).filter(|s| *s > 0.0);
    let mut md = format!(
        "\n### Learned activations ranked\n\nOrdered by mean final test accuracy; differences are paired over the seeds both variants ran (`a − b`, two-sided paired t-test).\n\n| rank | variant | kind | test accuracy | vs relu | vs top | parameters added | {seconds_label} |\n|---:|---|---|---:|---:|---:|---:|---:|\n"
    );
    let mut tied = Vec::new();
    for (i, r) in order.iter().enumerate() {
        let spread = stats::spread(&r.accuracy.iter().map(|(_, a)| *a).collect::<Vec<_>>());
        let acc = match spread.std {
            Some(sd) => format!("{:.4} ± {sd:.4} ({} seeds)", spread.mean, spread.n),
            None => format!("{:.4} (1 seed)", spread.mean),
        };
        let vs_relu = match relu {
            Some(rl) if rl.name != r.name => test_cell(&paired(&r.accuracy, &rl.accuracy)),
            _ => "—".into(),
        };
        let vs_top = if i == 0 {
            "—".into()
        } else {
            let t = paired(&r.accuracy, &top.accuracy);
            if t.p_value.is_some_and(|p| p >= ALPHA) {
                tied.push(r.name.clone());
            }
            test_cell(&t)
        };
        let params = r.added_parameters.map_or("?".into(), |p| p.to_string());
        let secs = match relu_secs {
            Some(base) => format!("{:.2} ({:.2}× relu)", r.seconds, r.seconds / base),
            None => format!("{:.2}", r.seconds),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {acc} | {vs_relu} | {vs_top} | {params} | {secs} |",
            i + 1,
            r.name,
            kind(&r.name)
        );
    }
    if order.iter().any(|r| r.added_parameters.is_none()) {
        md.push_str(
            "\n`?`: the run's summary predates the parameter count (afu before 2026-12-06).\n",
        );
    }
    let min_seeds = order.iter().map(|r| r.accuracy.len()).min().unwrap_or(0);
    if min_seeds < 2 {
        md.push_str("\nWith one seed no difference can be tested: run with `--seeds 3` or more.\n");
    } else if tied.is_empty() {
        let _ = writeln!(
            md,
            "\nEvery other variant is below `{}` at p < {ALPHA}.",
            top.name
        );
    } else {
        let _ = writeln!(
            md,
            "\nNot distinguishable from the top variant `{}` (p ≥ {ALPHA}): {}.",
            top.name,
            tied.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    md
}

/// `(variant, seed, test accuracy, seconds)` of every run in `summary.json`'s `runs[]`.
fn runs_of(s: &Value) -> Vec<(String, u64, f64, f64, usize)> {
    s["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter_map(|r| {
                    Some((
                        r["variant"].as_str()?.to_string(),
                        r["seed"].as_u64()?,
                        r["test_accuracy"].as_f64()?,
                        r["seconds"].as_f64().unwrap_or(f64::NAN),
                        r["epochs"].as_u64().unwrap_or(1) as usize,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn variant_names(s: &Value) -> Vec<String> {
    s["variants"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|v| v["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The ranking of an image run (`afu mnist` / `afu cifar10` `summary.json`), or nothing when it
/// holds no learnable family.
pub(crate) fn image_section(s: &Value) -> String {
    let names = variant_names(s);
    if !has_family(&names) {
        return String::new();
    }
    let runs = runs_of(s);
    let rows: Vec<RankRow> = names
        .iter()
        .zip(s["variants"].as_array().into_iter().flatten())
        .map(|(name, v)| {
            let mine: Vec<_> = runs.iter().filter(|r| &r.0 == name).collect();
            let epochs: usize = mine.iter().map(|r| r.4).sum();
            RankRow {
                name: name.clone(),
                accuracy: mine.iter().map(|r| (r.1, r.2)).collect(),
                // Fixed activations add nothing, also in summaries without the count.
                added_parameters: v["activation_parameters"]
                    .as_u64()
                    .map(|p| p as usize)
                    .or_else(|| (kind(name) == "fixed").then_some(0)),
                seconds: mine.iter().map(|r| r.3).sum::<f64>() / epochs.max(1) as f64,
            }
        })
        .collect();
    ranking_markdown(&rows, "s/epoch")
}

/// The ranking of an `afu xor` run, or nothing when it holds no learnable family. Parameters
/// added are the network's parameters beyond those of the same net with relu.
pub(crate) fn xor_section(s: &Value) -> String {
    let names = variant_names(s);
    if !has_family(&names) {
        return String::new();
    }
    let variants = s["variants"].as_array().cloned().unwrap_or_default();
    let params = |v: &Value| v["parameters"].as_u64().map(|p| p as usize);
    // Fixed activations add nothing: their count is the network's own.
    let base = variants
        .iter()
        .filter(|v| kind(v["name"].as_str().unwrap_or("")) == "fixed")
        .filter_map(params)
        .min();
    let runs = runs_of(s);
    let rows: Vec<RankRow> = names
        .iter()
        .zip(&variants)
        .map(|(name, v)| {
            let mine: Vec<_> = runs.iter().filter(|r| &r.0 == name).collect();
            RankRow {
                name: name.clone(),
                accuracy: mine.iter().map(|r| (r.1, r.2)).collect(),
                added_parameters: params(v).zip(base).map(|(p, b)| p.saturating_sub(b)),
                seconds: mine.iter().map(|r| r.3).sum::<f64>() / mine.len().max(1) as f64,
            }
        })
        .collect();
    ranking_markdown(&rows, "s/run")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, acc: &[f64], params: usize, secs: f64) -> RankRow {
        RankRow {
            name: name.into(),
            accuracy: acc
                .iter()
                .enumerate()
                .map(|(i, a)| (i as u64 + 1, *a))
                .collect(),
            added_parameters: Some(params),
            seconds: secs,
        }
    }

    #[test]
    fn kinds_name_fixed_afu_and_families() {
        assert_eq!(kind("relu"), "fixed");
        assert_eq!(kind("afu-relu-8-layer"), "AFU");
        assert_eq!(kind("pau-channel"), "PAU (channel)");
        assert_eq!(kind("pwlu-16-layer@linear-1"), "PWLU (layer)");
        assert_eq!(kind("swish-beta"), "Swish-β (network)");
        assert_eq!(kind("nonsense"), "?");
        assert!(has_family(&["relu".into(), "kaf".into()]));
        assert!(!has_family(&["relu".into(), "afu-relu-8".into()]));
    }

    #[test]
    fn ranking_orders_by_mean_and_tests_pairs() {
        let rows = vec![
            row("relu", &[0.80, 0.81, 0.79], 0, 10.0),
            row("prelu", &[0.85, 0.86, 0.84], 3, 12.0),
            row("kaf", &[0.849, 0.858, 0.842], 60, 30.0),
        ];
        let md = ranking_markdown(&rows, "s/epoch");
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
        // Header, then prelu (0.85), kaf (0.8497), relu (0.80).
        assert!(lines[1].starts_with("| 1 | prelu | PReLU (network) | 0.8500 ± 0.0100"));
        assert!(lines[2].starts_with("| 2 | kaf |"), "{md}");
        assert!(lines[3].starts_with("| 3 | relu | fixed |"), "{md}");
        // prelu − relu = +0.05 on every seed: p = 0 (identical differences).
        assert!(lines[1].contains("+0.0500 (p = 0.000)"), "{md}");
        assert!(lines[2].contains("| 60 | 30.00 (3.00× relu) |"), "{md}");
        // kaf is within noise of prelu; relu is not.
        assert!(md.contains("Not distinguishable from the top variant `prelu` (p ≥ 0.05): `kaf`."));
    }

    #[test]
    fn one_seed_says_no_test_is_possible() {
        let rows = vec![row("relu", &[0.8], 0, 1.0), row("apl-5", &[0.82], 10, 1.5)];
        let md = ranking_markdown(&rows, "s/run");
        assert!(md.contains("(one seed)"));
        assert!(md.contains("run with `--seeds 3`"));
    }

    #[test]
    fn image_section_reads_summary_runs_and_skips_runs_without_families() {
        let s = serde_json::json!({
            "variants": [
                {"name": "relu", "activation_parameters": 0},
                {"name": "prelu-layer", "activation_parameters": 3}
            ],
            "runs": [
                {"variant": "relu", "seed": 1, "test_accuracy": 0.8, "seconds": 20.0, "epochs": 2},
                {"variant": "relu", "seed": 2, "test_accuracy": 0.7, "seconds": 20.0, "epochs": 2},
                {"variant": "prelu-layer", "seed": 1, "test_accuracy": 0.9, "seconds": 30.0, "epochs": 2},
                {"variant": "prelu-layer", "seed": 2, "test_accuracy": 0.8, "seconds": 30.0, "epochs": 2}
            ]
        });
        let md = image_section(&s);
        assert!(
            md.contains("| 1 | prelu-layer | PReLU (layer) | 0.8500 ± 0.0707 (2 seeds) | +0.1000 (p = 0.000) | — | 3 | 15.00 (1.50× relu) |"),
            "{md}"
        );
        let none = serde_json::json!({"variants": [{"name": "relu"}], "runs": []});
        assert_eq!(image_section(&none), "");
    }

    #[test]
    fn xor_section_counts_parameters_beyond_the_fixed_net() {
        let s = serde_json::json!({
            "variants": [
                {"name": "relu", "parameters": 17},
                {"name": "pau", "parameters": 27}
            ],
            "runs": [
                {"variant": "relu", "seed": 1, "test_accuracy": 0.86, "seconds": 1.0},
                {"variant": "pau", "seed": 1, "test_accuracy": 0.87, "seconds": 2.0}
            ]
        });
        let md = xor_section(&s);
        assert!(md.contains("| 1 | pau | PAU (network) | 0.8700 (1 seed) | +0.0100 (one seed) | — | 10 | 2.00 (2.00× relu) |"), "{md}");
    }
}
