//! The curriculum question and the stalls that motivate it, in `afu report`.
//!
//! The paper (conclusions): learned activations are more linear towards the final layers, so
//! "it may be advisable to have fixed initial linear activation functions in the final layers
//! … and gradually making them more and more non-linear similar to ideas underlying curriculum
//! learning". A run that trains a variant both without and with a curriculum
//! (`afu-relu-8-layer` and `afu-relu-8-layer@linear-1`) over the same seeds answers it: paired
//! differences of the test accuracy after the first epoch (convergence) and at the end.
//!
//! Stalls: a run *stalls* in an epoch when its test accuracy after it is below twice chance
//! (0.2 with 10 classes). The table counts, per variant, the seeds stalled after each epoch —
//! how often and for how long.

use std::fmt::Write as _;

use serde_json::Value;

use crate::stats::{self, PairedTest};
use crate::train::fit::EpochRecord;

/// Accuracy below which a 10-class run counts as stalled (twice chance).
pub const STALL_ACCURACY: f64 = 0.2;

/// Test accuracy of `variant`, `seed` after epoch `epoch` (1-based).
fn accuracy(epochs: &[EpochRecord], variant: &str, seed: u64, epoch: usize) -> Option<f64> {
    epochs
        .iter()
        .find(|r| r.variant == variant && r.seed == seed && r.epoch == epoch)
        .map(|r| r.test_accuracy)
}

/// Paired test, with curriculum − without, of the accuracy after `epoch` (`None`: the last).
fn paired(
    epochs: &[EpochRecord],
    with: &str,
    without: &str,
    epoch: Option<usize>,
) -> Option<PairedTest> {
    let seeds: Vec<u64> = {
        let mut s: Vec<u64> = epochs
            .iter()
            .filter(|r| r.variant == with)
            .map(|r| r.seed)
            .collect();
        s.dedup();
        s
    };
    let last = |v: &str, seed: u64| {
        epochs
            .iter()
            .filter(|r| r.variant == v && r.seed == seed)
            .map(|r| r.epoch)
            .max()
    };
    let (a, b): (Vec<f64>, Vec<f64>) = seeds
        .iter()
        .filter_map(|&seed| {
            let e = epoch.or_else(|| last(with, seed))?;
            Some((
                accuracy(epochs, with, seed, e)?,
                accuracy(epochs, without, seed, e)?,
            ))
        })
        .unzip();
    (!a.is_empty()).then(|| stats::paired_t(&a, &b))
}

fn interval(t: &PairedTest) -> String {
    let ci = t.ci95.map_or("—".to_string(), |[lo, hi]| {
        format!("[{lo:+.4}, {hi:+.4}]")
    });
    let p = t.p_value.map_or("—".to_string(), |p| format!("{p:.3}"));
    format!("{:+.4} | {ci} | {p}", t.mean_difference)
}

/// Appends the stall table (runs with several seeds or a curriculum variant) and the
/// curriculum comparison (variants `X@schedule` beside `X`) of an image summary to `md`, and
/// the curriculum verdict to `claims`. Writes nothing for summaries without either.
pub fn section(summary: &Value, what: &str, md: &mut String, claims: &mut Vec<String>) {
    let epochs: Vec<EpochRecord> =
        serde_json::from_value(summary["epochs"].clone()).unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for r in &epochs {
        if !names.contains(&r.variant) {
            names.push(r.variant.clone());
        }
    }
    let pairs: Vec<(String, String)> = names
        .iter()
        .filter_map(|n| {
            let (base, _) = n.split_once('@')?;
            names
                .iter()
                .any(|m| m == base)
                .then(|| (n.clone(), base.to_string()))
        })
        .collect();
    let seeds = {
        let mut s: Vec<u64> = epochs.iter().map(|r| r.seed).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    if pairs.is_empty() && seeds.len() < 2 {
        return;
    }
    let max_epoch = epochs.iter().map(|r| r.epoch).max().unwrap_or(0);
    let _ = writeln!(
        md,
        "\n**Stalls** ({what}): seeds whose test accuracy is below {STALL_ACCURACY} (twice chance) after each epoch.\n"
    );
    md.push_str("| variant | seeds |");
    for e in 1..=max_epoch {
        let _ = write!(md, " epoch {e} |");
    }
    md.push_str("\n|---|---:|");
    md.push_str(&"---:|".repeat(max_epoch));
    md.push('\n');
    for n in &names {
        let run_seeds: Vec<u64> = seeds
            .iter()
            .copied()
            .filter(|&s| epochs.iter().any(|r| &r.variant == n && r.seed == s))
            .collect();
        let _ = write!(md, "| {n} | {} |", run_seeds.len());
        for e in 1..=max_epoch {
            let stalled = run_seeds
                .iter()
                .filter(|&&s| accuracy(&epochs, n, s, e).is_some_and(|a| a < STALL_ACCURACY))
                .count();
            let _ = write!(md, " {stalled} |");
        }
        md.push('\n');
    }
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n**Curriculum from linear to nonlinear** ({what}). Paper: \"it may be advisable to have fixed initial linear activation functions in the final layers … and gradually making them more and more non-linear\". Paired over seeds, with curriculum − without:\n\n\
         | variant | without | accuracy after | mean difference | 95 % interval | p |\n|---|---|---|---:|---|---:|"
    );
    for (with, without) in &pairs {
        let first = paired(&epochs, with, without, Some(1));
        let last = paired(&epochs, with, without, None);
        if let Some(t) = &first {
            let _ = writeln!(md, "| {with} | {without} | epoch 1 | {} |", interval(t));
        }
        if let Some(t) = &last {
            let _ = writeln!(md, "| {with} | {without} | last epoch | {} |", interval(t));
        }
        let ci = |t: &Option<PairedTest>| t.as_ref().and_then(|t| t.ci95);
        let better = [&first, &last]
            .iter()
            .any(|t| ci(t).is_some_and(|[lo, _]| lo > 0.0));
        let worse = [&first, &last]
            .iter()
            .any(|t| ci(t).is_some_and(|[_, hi]| hi < 0.0));
        let word = if seeds.len() < 2 {
            "not testable with one seed"
        } else if better && !worse {
            "supported"
        } else if worse && !better {
            "not supported"
        } else {
            "inconclusive"
        };
        let claim = format!(
            "*A linear-to-nonlinear curriculum helps* ({what}, {with} vs {without}): **{word}** — accuracy after epoch 1 {}, final {} (paired, 95 % intervals).",
            first
                .as_ref()
                .map_or("—".into(), |t| format!("{:+.4}", t.mean_difference)),
            last.as_ref()
                .map_or("—".into(), |t| format!("{:+.4}", t.mean_difference)),
        );
        claims.push(claim);
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(variant: &str, seed: u64, epoch: usize, acc: f64) -> EpochRecord {
        EpochRecord {
            variant: variant.into(),
            seed,
            epoch,
            lr: 1.0,
            train_loss: 1.0,
            test_loss: 1.0,
            test_accuracy: acc,
            test_top3: 1.0,
            epoch_seconds: 1.0,
        }
    }

    #[test]
    fn stalls_counted_and_curriculum_compared_over_seeds() {
        let mut epochs = Vec::new();
        for (s, a1) in [(1, 0.1), (2, 0.15), (3, 0.6)] {
            epochs.push(rec("afu", s, 1, a1));
            epochs.push(rec("afu", s, 2, 0.7));
            epochs.push(rec("afu@linear-1", s, 1, 0.6 + 0.01 * s as f64));
            epochs.push(rec("afu@linear-1", s, 2, 0.75 + 0.01 * s as f64));
        }
        let summary = serde_json::json!({ "epochs": epochs });
        let (mut md, mut claims) = (String::new(), Vec::new());
        section(&summary, "test", &mut md, &mut claims);
        assert!(md.contains("| afu | 3 | 2 | 0 |"), "{md}");
        assert!(md.contains("| afu@linear-1 | 3 | 0 | 0 |"), "{md}");
        assert!(
            md.contains("| afu@linear-1 | afu | last epoch | +0.0700 |"),
            "{md}"
        );
        assert_eq!(claims.len(), 1);
        assert!(claims[0].contains("**supported**"), "{}", claims[0]);
    }

    #[test]
    fn nothing_for_one_seed_without_curriculum() {
        let summary = serde_json::json!({ "epochs": [rec("relu", 1, 1, 0.9)] });
        let (mut md, mut claims) = (String::new(), Vec::new());
        section(&summary, "test", &mut md, &mut claims);
        assert!(md.is_empty() && claims.is_empty());
    }
}
