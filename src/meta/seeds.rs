//! Several `afu meta` runs that differ only in their seed, merged: the `afu report` section of
//! a sweep's `meta` jobs (per grid point) and of `afu meta --seed S` run folders given side by
//! side.
//!
//! One meta seed is one search: its own training tasks, CMA-ES draws and held-out tasks. The
//! held-out tasks of one seed say how good *that* learned AFU is; whether the *method* finds
//! faster AFUs is a question over seeds. So each seed's mean over its held-out tasks is one
//! observation: every variant gets mean ± std over seeds, and the learned AFU is compared with
//! relu, the relu-initialised trained AFU and the tuned-lr control by paired t-tests across
//! seeds (learned − other, within each seed, on the same held-out tasks), and the verdict on
//! the paper's sentence is [`verdict_over`] those tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::experiments::common::ExperimentError;
use crate::meta::MetaConfig;
use crate::meta::report::{meta_loss_words, pm, verdict_over};
use crate::meta::run::{MetaComparison, MetaRow, MetaSummary, VariantEval, read_history};
use crate::report::plot::{self, Series};
use crate::stats::{self, Comparison, Spread, paired_t, spread};

/// The variant that was learned.
pub const LEARNED: &str = "meta-learned";
/// The variants the learned AFU is tested against across seeds: the verdict's two baselines
/// and the tuned-lr control.
pub const COMPARED: [&str; 3] = ["relu", "afu-relu-init", "relu-tuned-lr"];
/// The metrics tested across seeds (names as in [`crate::meta::run::METRICS`]).
pub const SEED_METRICS: [&str; 4] = ["loss_at_k", "steps_to_target", "loss_full", "test_accuracy"];
/// Below this many seeds, "no significant gain" is inconclusive rather than a negative result
/// (a paired t-test over 3 seeds has 2 degrees of freedom).
pub const MIN_SEEDS_FOR_NEGATIVE: usize = 5;

/// One finished `afu meta` run.
#[derive(Debug, Clone)]
pub struct SeedRun {
    /// Its run folder.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: MetaSummary,
    /// Its `meta.csv` (empty when the file is missing).
    pub history: Vec<MetaRow>,
}

impl SeedRun {
    /// The run in `dir`, or `None` when it has no `summary.json` yet (not run, running or
    /// failed); a `summary.json` that is not an `afu meta` summary is an error.
    pub fn load(dir: &Path) -> Result<Option<SeedRun>, ExperimentError> {
        let path = dir.join("summary.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let summary: MetaSummary =
            serde_json::from_str(&text).map_err(|e| ExperimentError::Config {
                field: "runs",
                message: format!("{}: not an afu meta summary ({e})", path.display()),
            })?;
        Ok(Some(Self::new(dir, summary)))
    }

    /// A run whose summary was read already (its history is read from `dir/meta.csv`).
    pub fn new(dir: &Path, summary: MetaSummary) -> SeedRun {
        SeedRun {
            dir: dir.to_path_buf(),
            history: read_history(dir).unwrap_or_default(),
            summary,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.summary.config.seed
    }
}

/// True when two runs' settings differ in the seed at most (and in the number of generations
/// not either: a resumed run with more generations is another search).
pub fn same_but_seed(a: &MetaConfig, b: &MetaConfig) -> bool {
    &MetaConfig {
        seed: b.seed,
        ..a.clone()
    } == b
}

/// The per-seed value of `metric` of a variant: its mean over that seed's held-out tasks.
fn value(v: &VariantEval, metric: &str) -> f64 {
    match metric {
        "loss_at_k" => v.loss_at_k.mean,
        "loss_full" => v.loss_full.mean,
        "steps_to_target" => v.steps_to_target.mean,
        "test_accuracy" => v.test_accuracy.mean,
        "meta_loss_k" => v.meta_loss_k.mean,
        "initial_loss" => v.initial_loss.mean,
        _ => f64::NAN,
    }
}

/// One variant over seeds.
#[derive(Debug, Clone)]
pub struct SeedVariant {
    /// The variant (as in the runs' summaries).
    pub name: String,
    /// How it was trained (from the first run).
    pub description: String,
    /// Seeds that hold it.
    pub seeds: usize,
    /// Over seeds, of the per-seed held-out means: initial loss, loss after K, loss after the
    /// full horizon, steps to target, test accuracy.
    pub initial_loss: Spread,
    /// Loss after K steps.
    pub loss_at_k: Spread,
    /// Loss after the full horizon.
    pub loss_full: Spread,
    /// Steps to the target loss.
    pub steps_to_target: Spread,
    /// Test accuracy.
    pub test_accuracy: Spread,
    /// Held-out tasks (all seeds together) where the target was not reached.
    pub not_reached: usize,
    /// Held-out tasks, all seeds together.
    pub tasks: usize,
}

/// The runs merged: per-variant statistics over seeds and the paired tests across seeds.
#[derive(Debug, Clone)]
pub struct SeedsSummary {
    /// The seeds, in increasing order.
    pub seeds: Vec<u64>,
    /// Every variant of the runs, in the first run's order.
    pub variants: Vec<SeedVariant>,
    /// `meta-learned − other` over seeds, for each of [`COMPARED`] and [`SEED_METRICS`].
    pub comparisons: Vec<Comparison>,
    /// "supported", "not supported" or "inconclusive".
    pub verdict: String,
    /// Why.
    pub verdict_reason: String,
    /// How many runs' own verdicts (over their held-out tasks) were "supported", "not
    /// supported" and "inconclusive".
    pub per_seed: [usize; 3],
}

/// Merges `runs` (sorted by seed; a later run with a seed already seen is left out).
pub fn summarise(runs: &mut Vec<SeedRun>) -> SeedsSummary {
    runs.sort_by_key(SeedRun::seed);
    runs.dedup_by_key(|r| r.seed());
    let seeds: Vec<u64> = runs.iter().map(SeedRun::seed).collect();
    let mut names: Vec<(String, String)> = Vec::new();
    for r in runs.iter() {
        for v in &r.summary.variants {
            if !names.iter().any(|(n, _)| *n == v.name) {
                names.push((v.name.clone(), v.description.clone()));
            }
        }
    }
    fn find<'a>(r: &'a SeedRun, name: &str) -> Option<&'a VariantEval> {
        r.summary.variants.iter().find(|v| v.name == name)
    }
    let variants = names
        .into_iter()
        .map(|(name, description)| {
            let held: Vec<&VariantEval> = runs.iter().filter_map(|r| find(r, &name)).collect();
            let over =
                |metric: &str| spread(&held.iter().map(|v| value(v, metric)).collect::<Vec<_>>());
            SeedVariant {
                seeds: held.len(),
                initial_loss: over("initial_loss"),
                loss_at_k: over("loss_at_k"),
                loss_full: over("loss_full"),
                steps_to_target: over("steps_to_target"),
                test_accuracy: over("test_accuracy"),
                not_reached: held.iter().map(|v| v.not_reached).sum(),
                tasks: held.iter().map(|v| v.per_task.len()).sum(),
                name,
                description,
            }
        })
        .collect();
    let mut comparisons = Vec::new();
    for other in COMPARED {
        for metric in SEED_METRICS {
            let (mut a, mut b, mut both) = (Vec::new(), Vec::new(), Vec::new());
            for r in runs.iter() {
                if let (Some(l), Some(o)) = (find(r, LEARNED), find(r, other)) {
                    a.push(value(l, metric));
                    b.push(value(o, metric));
                    both.push(r.seed());
                }
            }
            if both.is_empty() {
                continue;
            }
            comparisons.push(Comparison {
                metric: metric.to_string(),
                a: LEARNED.to_string(),
                b: other.to_string(),
                seeds: both,
                test: "paired t-test over seeds, two-sided".into(),
                result: paired_t(&a, &b),
            });
        }
    }
    let as_meta: Vec<MetaComparison> = comparisons
        .iter()
        .map(|c| MetaComparison {
            other: c.b.clone(),
            metric: c.metric.clone(),
            test: c.result.clone(),
        })
        .collect();
    let (verdict, verdict_reason) = verdict_over(
        &as_meta,
        seeds.len(),
        "seeds (each seed's mean over its held-out tasks)",
        MIN_SEEDS_FOR_NEGATIVE,
    );
    let mut per_seed = [0usize; 3];
    for r in runs.iter() {
        match r.summary.verdict.as_str() {
            "supported" => per_seed[0] += 1,
            "not supported" => per_seed[1] += 1,
            _ => per_seed[2] += 1,
        }
    }
    SeedsSummary {
        seeds,
        variants,
        comparisons,
        verdict,
        verdict_reason,
        per_seed,
    }
}

/// The figure: the meta-loss of the CMA-ES distribution mean per generation, one line per
/// seed; false (and no file) when no run has a history.
fn figure(runs: &[SeedRun], figure: &Path) -> Result<bool, ExperimentError> {
    let series: Vec<Series> = runs
        .iter()
        .filter(|r| !r.history.is_empty())
        .map(|r| Series {
            label: format!("seed {}", r.seed()),
            points: r
                .history
                .iter()
                .map(|h| (h.generation as f64, h.centre))
                .collect(),
            dashed: false,
        })
        .collect();
    if series.is_empty() {
        return Ok(false);
    }
    if let Some(dir) = figure.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ExperimentError::Output {
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
    }
    let c = &runs[0].summary.config;
    plot::line_plot(
        figure,
        &format!(
            "afu meta over seeds: meta-loss ({:?}, K = {}) per generation",
            c.meta_loss, c.inner_steps
        ),
        "generation",
        "meta-loss of the distribution mean",
        &series,
        false,
    )?;
    Ok(true)
}

/// Appends the multi-seed section of `runs` (finished runs of one setting, any order) to `md`
/// and its verdict to `claims`; `heading` is the Markdown heading marker (`##`, `###`, …),
/// `title` names the setting (a sweep's grid point, say), the figure of the meta-loss per
/// generation is written to `figure_path` and linked as `figure_link`. Nothing is written for
/// no runs.
pub fn section(
    heading: &str,
    title: &str,
    mut runs: Vec<SeedRun>,
    figure_path: &Path,
    figure_link: &str,
    md: &mut String,
    claims: &mut Vec<String>,
) -> Result<(), ExperimentError> {
    if runs.is_empty() {
        return Ok(());
    }
    let s = summarise(&mut runs);
    let c = &runs[0].summary.config;
    let first = &runs[0].summary;
    let n = s.seeds.len();
    let seed_list = s
        .seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(md, "{heading} Meta-learned AFU over {n} seeds — {title}\n");
    let _ = writeln!(
        md,
        "Paper (§4): \"the change in the loss function of a neural network in a fixed number of steps using a given AFU can be used as a meta-loss function to optimize the AFU resulting in activation functions that guarantee faster convergence\". {n} `afu meta` runs with the same settings, seeds {seed_list}: meta-loss **{:?}**, K = {} inner steps (lr {}), {} tasks per generation, λ = {}, {} generations, N = {}, start {:?}; each seed evaluated on its own {} held-out tasks at K = {} and {} steps (target loss {:.4}). One seed is one search, so each seed's mean over its held-out tasks is one observation: mean ± std over seeds, and paired t-tests across seeds of the learned AFU against the other variants of the same seed.\n",
        c.meta_loss,
        c.inner_steps,
        c.lr,
        c.tasks,
        c.population,
        first.generations_done,
        c.hidden,
        c.start,
        c.held_out,
        first.horizon_k,
        first.horizon_full,
        c.target_loss,
    );
    md.push_str("| seed | meta-loss of the distribution mean, first → last generation | its own verdict (over its held-out tasks) | search + evaluation |\n|---:|---|---|---:|\n");
    for r in &runs {
        let m = &r.summary;
        let _ = writeln!(
            md,
            "| {} | {:.4} → {:.4} (generation {}) | {} | {:.1} s |",
            r.seed(),
            m.centre_first,
            m.centre_last,
            m.generations_done,
            m.verdict,
            m.search_seconds + m.eval_seconds
        );
    }
    md.push_str("\n| variant | seeds | initial loss | loss after K | loss after full | steps to target (not reached / tasks) | test accuracy |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for v in &s.variants {
        let _ = writeln!(
            md,
            "| {} — {} | {} | {} | {} | {} | {} ({}/{}) | {} |",
            v.name,
            v.description,
            v.seeds,
            pm(&v.initial_loss, 4),
            pm(&v.loss_at_k, 4),
            pm(&v.loss_full, 4),
            pm(&v.steps_to_target, 1),
            v.not_reached,
            v.tasks,
            pm(&v.test_accuracy, 4)
        );
    }
    md.push_str("\nMean ± std over seeds of each seed's mean over its held-out tasks (the tuned-lr control's description is the first seed's; its multiplier is tuned per seed). Paired t-tests across seeds, meta-learned − other:\n\n");
    md.push_str(&stats::comparisons_table(&s.comparisons, 4));
    let _ = writeln!(
        md,
        "\n**Verdict over {n} seeds on \"activation functions that guarantee faster convergence\": {}** — {}; each seed's own verdict over its held-out tasks: supported {}, not supported {}, inconclusive {} (of {n}).\n",
        s.verdict, s.verdict_reason, s.per_seed[0], s.per_seed[1], s.per_seed[2]
    );
    if figure(&runs, figure_path)? {
        let _ = writeln!(
            md,
            "![meta-loss per generation, one line per seed]({figure_link})\n"
        );
    }
    claims.push(format!(
        "*The loss change in a fixed number of steps, as a meta-loss, gives AFUs that converge faster* (paper §4; {title}; meta-loss here: {}, K = {}; {n} seeds): **{}** — {}.",
        meta_loss_words(c.meta_loss),
        c.inner_steps,
        s.verdict,
        s.verdict_reason
    ));
    Ok(())
}

/// Groups of runs whose settings differ in the seed only, each with at least two distinct
/// seeds, in the order of their first run (for `afu report` over meta run folders given side
/// by side).
pub fn seed_groups(runs: Vec<SeedRun>) -> Vec<Vec<SeedRun>> {
    let mut groups: Vec<Vec<SeedRun>> = Vec::new();
    for r in runs {
        match groups
            .iter_mut()
            .find(|g| same_but_seed(&g[0].summary.config, &r.summary.config))
        {
            Some(g) => {
                if !g.iter().any(|x| x.seed() == r.seed()) {
                    g.push(r);
                }
            }
            None => groups.push(vec![r]),
        }
    }
    groups.retain(|g| g.len() >= 2);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny real `afu meta` run of seed `seed` (and meta-loss `loss`) in `dir`.
    fn tiny(dir: &Path, seed: u64, loss: crate::meta::MetaLoss) -> SeedRun {
        let config = MetaConfig {
            generations: 2,
            population: 2,
            tasks: 1,
            inner_steps: 5,
            held_out: 2,
            full_factor: 2,
            points: 16,
            seed,
            meta_loss: loss,
            ..MetaConfig::quick()
        };
        std::fs::create_dir_all(dir).unwrap();
        crate::meta::run::run(&config, dir, false, false).unwrap();
        SeedRun::load(dir).unwrap().expect("a summary")
    }

    /// Sets a variant's per-seed mean of `metric`.
    fn set(r: &mut SeedRun, variant: &str, metric: &str, x: f64) {
        let v = r
            .summary
            .variants
            .iter_mut()
            .find(|v| v.name == variant)
            .unwrap();
        let s = match metric {
            "loss_at_k" => &mut v.loss_at_k,
            "steps_to_target" => &mut v.steps_to_target,
            "loss_full" => &mut v.loss_full,
            _ => &mut v.test_accuracy,
        };
        s.mean = x;
    }

    /// `n` copies of `base` as seeds 0..n whose learned AFU is `gain(seed)` below both
    /// baselines in loss after K and in steps to target (negative: above).
    fn seeds(base: &SeedRun, n: u64, gain: impl Fn(u64) -> f64) -> Vec<SeedRun> {
        (0..n)
            .map(|seed| {
                let mut r = base.clone();
                r.summary.config.seed = seed;
                for other in BASELINES_AND_LEARNED {
                    let g = if other == LEARNED { gain(seed) } else { 0.0 };
                    set(&mut r, other, "loss_at_k", 0.5 - 0.1 * g);
                    set(&mut r, other, "steps_to_target", 100.0 - 10.0 * g);
                    set(&mut r, other, "loss_full", 0.1);
                }
                r
            })
            .collect()
    }

    const BASELINES_AND_LEARNED: [&str; 3] = [LEARNED, "relu", "afu-relu-init"];

    #[test]
    fn seeds_are_paired_within_each_run_and_merged() {
        let tmp = tempfile::tempdir().unwrap();
        let final_ = crate::meta::MetaLoss::Final;
        let a = tiny(&tmp.path().join("a"), 1, final_);
        let b = tiny(&tmp.path().join("b"), 0, final_);
        assert_eq!(a.history.len(), 2);
        assert!(SeedRun::load(&tmp.path().join("none")).unwrap().is_none());
        // Sorted by seed; a seed given twice counts once.
        let mut runs = vec![a.clone(), b.clone(), a.clone()];
        let s = summarise(&mut runs);
        assert_eq!(s.seeds, [0, 1]);
        assert_eq!(s.variants.len(), a.summary.variants.len());
        assert_eq!(s.variants[0].name, LEARNED);
        assert_eq!(s.variants[0].seeds, 2);
        assert_eq!(s.variants[0].tasks, 4);
        let mean = |r: &SeedRun, name: &str| {
            r.summary
                .variants
                .iter()
                .find(|v| v.name == name)
                .unwrap()
                .loss_at_k
                .mean
        };
        let want =
            ((mean(&b, LEARNED) - mean(&b, "relu")) + (mean(&a, LEARNED) - mean(&a, "relu"))) / 2.0;
        let c = s
            .comparisons
            .iter()
            .find(|c| c.b == "relu" && c.metric == "loss_at_k")
            .unwrap();
        assert_eq!(c.seeds, [0, 1]);
        assert!((c.result.mean_difference - want).abs() < 1e-12);
        assert_eq!(s.comparisons.len(), COMPARED.len() * SEED_METRICS.len());
        assert_eq!(s.per_seed.iter().sum::<usize>(), 2);
        let spread = &s.variants[0].loss_at_k;
        assert_eq!(spread.n, 2);
        assert!((spread.mean - (mean(&a, LEARNED) + mean(&b, LEARNED)) / 2.0).abs() < 1e-12);

        // The section: the per-seed table, a row per variant, the tests, the verdict, the
        // figure and a claim.
        let (mut md, mut claims) = (String::new(), Vec::new());
        let fig = tmp.path().join("report/figures/m.svg");
        section(
            "###",
            "test",
            vec![a.clone(), b.clone()],
            &fig,
            "figures/m.svg",
            &mut md,
            &mut claims,
        )
        .unwrap();
        assert!(
            md.contains("### Meta-learned AFU over 2 seeds — test"),
            "{md}"
        );
        for v in &a.summary.variants {
            assert!(md.contains(&format!("| {} — ", v.name)), "{md}");
        }
        assert!(
            md.contains("| meta-learned − afu-relu-init | steps_to_target | 2 |"),
            "{md}"
        );
        assert!(md.contains("**Verdict over 2 seeds on \"activation functions that guarantee faster convergence\": "), "{md}");
        assert!(md.contains("![meta-loss per generation, one line per seed](figures/m.svg)"));
        let svg = std::fs::read_to_string(&fig).unwrap();
        assert!(svg.contains("seed 0") && svg.contains("seed 1"));
        assert_eq!(claims.len(), 1);
        assert!(claims[0].contains("2 seeds"), "{}", claims[0]);

        // Groups: runs that differ in the seed only, two seeds at least.
        let c = tiny(&tmp.path().join("c"), 0, crate::meta::MetaLoss::Decrease);
        let groups = seed_groups(vec![a.clone(), c.clone(), b.clone(), a.clone()]);
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0].iter().map(SeedRun::seed).collect::<Vec<_>>(),
            [1, 0]
        );
        assert!(same_but_seed(&a.summary.config, &b.summary.config));
        assert!(!same_but_seed(&a.summary.config, &c.summary.config));
    }

    #[test]
    fn verdict_over_seeds_needs_a_consistent_gain_and_enough_seeds() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tiny(&tmp.path().join("a"), 0, crate::meta::MetaLoss::Final);
        let verdict = |runs: Vec<SeedRun>| summarise(&mut runs.clone()).verdict;
        // Faster than both baselines on every seed, by varying amounts: supported.
        assert_eq!(
            verdict(seeds(&base, 3, |s| 1.0 + 0.1 * s as f64)),
            "supported"
        );
        // Slower on every seed: not supported.
        assert_eq!(
            verdict(seeds(&base, 3, |s| -1.0 - 0.1 * s as f64)),
            "not supported"
        );
        // No consistent difference: inconclusive with 3 seeds, not supported with 6.
        let noise = |s: u64| if s.is_multiple_of(2) { 1.0 } else { -1.0 };
        assert_eq!(verdict(seeds(&base, 3, noise)), "inconclusive");
        assert_eq!(verdict(seeds(&base, 6, noise)), "not supported");
        // One seed: no test across seeds.
        let s = summarise(&mut seeds(&base, 1, |_| 1.0));
        assert_eq!(s.verdict, "inconclusive");
        assert!(s.comparisons.iter().all(|c| c.result.p_value.is_none()));
    }
}
