//! The Markdown of an `afu meta` run (its `summary.md`, and its section of `afu report`) and
//! the verdict on the paper's sentence: the loss change in a fixed number of steps as a
//! meta-loss gives "activation functions that guarantee faster convergence".

use std::fmt::Write as _;
use std::path::Path;

use crate::meta::run::{MetaComparison, MetaSummary};
use crate::stats::PairedTest;

/// Significance level of the verdict's paired tests.
const ALPHA: f64 = 0.05;
/// Below this many held-out tasks, "no significant difference" is inconclusive rather than a
/// negative result.
const MIN_TASKS_FOR_NEGATIVE: usize = 10;
/// The baselines the learned AFU must beat.
const BASELINES: [&str; 2] = ["relu", "afu-relu-init"];

fn find<'a>(c: &'a [MetaComparison], other: &str, metric: &str) -> Option<&'a PairedTest> {
    c.iter()
        .find(|x| x.other == other && x.metric == metric)
        .map(|x| &x.test)
}

fn significant(t: &PairedTest, lower: bool) -> bool {
    t.p_value.is_some_and(|p| p < ALPHA)
        && if lower {
            t.mean_difference < 0.0
        } else {
            t.mean_difference > 0.0
        }
}

/// The verdict ("supported", "not supported", "inconclusive") and why, from the paired tests
/// `meta-learned − baseline` on the held-out tasks: at horizon K the loss after K steps, at
/// the long horizon the steps to the target loss; against relu and an AFU initialised as relu.
/// Supported: significantly lower at both horizons against both, and significantly worse
/// nowhere (those two metrics and the final loss). Not supported: significantly worse
/// somewhere, or (with at least 10 tasks) better at neither horizon. Otherwise inconclusive —
/// typically faster at K only: the short-horizon bias of a K-step meta-loss.
pub fn verdict(c: &[MetaComparison], tasks: usize) -> (String, String) {
    verdict_over(c, tasks, "held-out tasks", MIN_TASKS_FOR_NEGATIVE)
}

/// [`verdict`] for paired tests over `n` observations of any kind (`unit`, e.g. "seeds"):
/// "not supported" for lack of a significant gain needs at least `min_for_negative` of them.
pub fn verdict_over(
    c: &[MetaComparison],
    n: usize,
    unit: &str,
    min_for_negative: usize,
) -> (String, String) {
    let better = |metric: &str| {
        BASELINES
            .iter()
            .all(|b| find(c, b, metric).is_some_and(|t| significant(t, true)))
    };
    let worse: Vec<String> = BASELINES
        .iter()
        .flat_map(|b| {
            ["loss_at_k", "steps_to_target", "loss_full"]
                .into_iter()
                .filter_map(move |m| {
                    find(c, b, m)
                        .filter(|t| significant(t, false))
                        .map(|t| format!("{m} vs {b} ({:+.4})", t.mean_difference))
                })
        })
        .collect();
    let (at_k, at_full) = (better("loss_at_k"), better("steps_to_target"));
    let verdict = if !worse.is_empty() {
        "not supported"
    } else if at_k && at_full {
        "supported"
    } else if !at_k && !at_full && n >= min_for_negative {
        "not supported"
    } else {
        "inconclusive"
    };
    let mut why = format!(
        "paired t-tests over {n} {unit}, p < {ALPHA}: loss after K steps lower than relu and the relu-initialised AFU: {}; steps to the target loss fewer: {}",
        yes(at_k),
        yes(at_full)
    );
    if !worse.is_empty() {
        let _ = write!(why, "; significantly worse: {}", worse.join(", "));
    }
    if let (Some(k), Some(st)) = (
        find(c, "relu-tuned-lr", "loss_at_k"),
        find(c, "relu-tuned-lr", "steps_to_target"),
    ) {
        let _ = write!(
            why,
            "; control, relu with a tuned learning rate: loss after K {:+.4} (p {}), steps to target {:+.1} (p {})",
            k.mean_difference,
            k.p_value.map_or("–".into(), |p| format!("{p:.3}")),
            st.mean_difference,
            st.p_value.map_or("–".into(), |p| format!("{p:.3}"))
        );
    }
    if at_k && !at_full {
        why.push_str(
            "; faster at the meta-training horizon only — the short-horizon bias of a K-step meta-loss (Wu et al. 2018)",
        );
    }
    (verdict.into(), why)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `mean ± std` (the std left out below two values).
pub fn pm(s: &crate::stats::Spread, digits: usize) -> String {
    match s.std {
        Some(sd) => format!("{:.*} ± {:.*}", digits, s.mean, digits, sd),
        None => format!("{:.*}", digits, s.mean),
    }
}

/// The run's Markdown; `figures` prefixes the figure links (the run folder's `figures/` when
/// `None`).
pub fn markdown(s: &MetaSummary, figures: Option<&str>) -> String {
    let c = &s.config;
    let fig = |name: &str| format!("![{name}]({}/{name})", figures.unwrap_or("figures"));
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Meta-loss **{:?}** ({}), K = {} inner steps of full-batch Adam (lr {}) on a fresh d-{}-{}-1 MLP per task ({} train + {} test points), {} tasks per generation; CMA-ES over the {} parameters of a shared frozen AFU (N = {}, base {:?}, start {:?}, σ₀ = {}), λ = {}, {} generations; seed {}.\n",
        c.meta_loss,
        match c.meta_loss {
            crate::meta::MetaLoss::Decrease => "(L_K − L_0) / L_0, lower is better",
            crate::meta::MetaLoss::Final => "L_K / ln 2, lower is better",
        },
        c.inner_steps,
        c.lr,
        c.width,
        c.width,
        c.points,
        c.points,
        c.tasks,
        3 * c.hidden + 1,
        c.hidden,
        c.base,
        c.start,
        c.sigma0,
        c.population,
        s.generations_done,
        c.seed
    );
    let _ = writeln!(
        md,
        "Meta-loss of the distribution mean: {:.4} (generation 1) → {:.4} (generation {}); σ {:.3} → {:.3}. Search {:.1} s, evaluation {:.1} s, {} threads.\n",
        s.centre_first,
        s.centre_last,
        s.generations_done,
        c.sigma0,
        s.sigma_last,
        s.search_seconds,
        s.eval_seconds,
        s.threads
    );
    let _ = writeln!(
        md,
        "Held-out tasks ({}, seeds disjoint from the training tasks'): horizons K = {} and {} steps; target loss {:.4} (steps to target censored at {} when not reached).\n",
        s.held_out_tasks.len(),
        s.horizon_k,
        s.horizon_full,
        c.target_loss,
        s.horizon_full + 1
    );
    md.push_str("| variant | initial loss | loss after K | meta-loss at K | loss after full | steps to target (not reached) | test accuracy |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for v in &s.variants {
        let _ = writeln!(
            md,
            "| {} — {} | {} | {} | {} | {} | {} ({}) | {} |",
            v.name,
            v.description,
            pm(&v.initial_loss, 4),
            pm(&v.loss_at_k, 4),
            pm(&v.meta_loss_k, 4),
            pm(&v.loss_full, 4),
            pm(&v.steps_to_target, 1),
            v.not_reached,
            pm(&v.test_accuracy, 4)
        );
    }
    md.push_str("\nMean ± std over the held-out tasks. Paired t-tests, meta-learned − other:\n\n| other | metric | mean difference | 95 % interval | p |\n|---|---|---:|---:|---:|\n");
    for x in &s.comparisons {
        let ci = x
            .test
            .ci95
            .map(|[a, b]| format!("[{a:+.4}, {b:+.4}]"))
            .unwrap_or_else(|| "–".into());
        let p = x
            .test
            .p_value
            .map(|p| format!("{p:.3}"))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            md,
            "| {} | {} | {:+.4} | {} | {} |",
            x.other, x.metric, x.test.mean_difference, ci, p
        );
    }
    let _ = writeln!(
        md,
        "\n**Verdict on \"activation functions that guarantee faster convergence\": {}** — {}.\n",
        s.verdict, s.verdict_reason
    );
    md.push_str("Note: the meta-loss sees K steps only; an AFU that wins at K may not win at the long horizon (short-horizon bias, Wu et al. 2018), which is why both horizons are tested.\n\n");
    let _ = writeln!(
        md,
        "{}\n\n{}\n",
        fig("meta_loss.svg"),
        fig("learned_afu.svg")
    );
    md
}

/// The `afu report` section of the run in `dir` (its `summary.json` already read as `s`);
/// returns the summary, for the multi-seed section ([`seeds`](crate::meta::seeds)).
pub fn section(
    dir: &Path,
    s: &serde_json::Value,
    figures: &str,
    md: &mut String,
    claims: &mut Vec<String>,
) -> Result<MetaSummary, crate::experiments::common::ExperimentError> {
    let summary: MetaSummary = serde_json::from_value(s.clone()).map_err(|e| {
        crate::experiments::common::ExperimentError::Config {
            field: "runs",
            message: format!("{}: not an afu meta summary ({e})", dir.display()),
        }
    })?;
    let _ = writeln!(
        md,
        "## Meta-learned AFU (paper §4, future work) — `{}`\n",
        dir.display()
    );
    md.push_str(&markdown(&summary, Some(figures)));
    let which = meta_loss_words(summary.config.meta_loss);
    claims.push(format!(
        "*The loss change in a fixed number of steps, as a meta-loss, gives AFUs that converge faster* (paper §4; meta-loss here: {which}, K = {}): **{}** — {}.",
        summary.config.inner_steps, summary.verdict, summary.verdict_reason
    ));
    Ok(summary)
}

/// How the claim names the meta-loss.
pub(crate) fn meta_loss_words(m: crate::meta::MetaLoss) -> &'static str {
    match m {
        crate::meta::MetaLoss::Decrease => "the paper's decrease (L_K − L_0)/L_0",
        crate::meta::MetaLoss::Final => {
            "the loss after K steps, L_K / ln 2, instead of the paper's decrease"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(other: &str, metric: &str, diff: f64, p: f64) -> MetaComparison {
        MetaComparison {
            other: other.into(),
            metric: metric.into(),
            test: PairedTest {
                n: 20,
                mean_difference: diff,
                ci95: None,
                p_value: Some(p),
            },
        }
    }

    #[test]
    fn verdict_needs_both_horizons_and_both_baselines() {
        let all = |k: f64, steps: f64, p: f64| {
            BASELINES
                .iter()
                .flat_map(|b| {
                    [
                        cmp(b, "loss_at_k", k, p),
                        cmp(b, "steps_to_target", steps, p),
                        cmp(b, "loss_full", 0.0, 0.9),
                    ]
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(verdict(&all(-0.3, -50.0, 0.001), 20).0, "supported");
        assert_eq!(verdict(&all(0.3, 50.0, 0.001), 20).0, "not supported");
        assert_eq!(verdict(&all(-0.3, -50.0, 0.5), 20).0, "not supported");
        assert_eq!(verdict(&all(-0.3, -50.0, 0.5), 4).0, "inconclusive");
        // Faster at K only: the short-horizon case.
        let mut c = all(-0.3, -50.0, 0.001);
        for x in c.iter_mut().filter(|x| x.metric == "steps_to_target") {
            x.test.p_value = Some(0.4);
        }
        let (v, why) = verdict(&c, 20);
        assert_eq!(v, "inconclusive");
        assert!(why.contains("short-horizon"), "{why}");
    }
}
