//! The regularisation question (paper, conclusions: "Learned activation functions can have a
//! possible regularization effect on learning. However, this effect needs to be investigated
//! further."), measured: the generalisation gap of each variant against the training-set size.
//!
//! Input: image runs (`summary.json`'s `runs[]`) at several training-set sizes — a sweep with a
//! `limit_train` grid, e.g. `examples/sweeps/generalisation.toml`. The gap of a run is its
//! final model's top-1 accuracy on (up to 10 000 of) its training images minus its test
//! accuracy; its loss gap the test loss minus the training loss. A learned variant regularises
//! if its gap is smaller than the baseline's (relu) over the same seeds.
//!
//! Verdict: **supported** when at some size the 95 % interval of the paired difference
//! (learned − baseline) lies below 0 and at none above; **contradicted** when the reverse;
//! **inconclusive** otherwise (every interval holds 0, or the sizes disagree).

use std::fmt::Write as _;
use std::path::Path;

use crate::experiments::common::ExperimentError;
use crate::experiments::image::ImageRun;
use crate::report::plot::{self, Series};
use crate::stats::{self, PairedTest};

/// The runs of one training-set size.
#[derive(Debug, Clone)]
pub struct SizeRuns {
    /// Training images used.
    pub train_images: usize,
    /// Every variant and seed trained on them.
    pub runs: Vec<ImageRun>,
}

/// Accuracy gap of one run (`None` for summaries without a training evaluation).
pub fn accuracy_gap(r: &ImageRun) -> Option<f64> {
    Some(r.train_eval_accuracy? - r.test_accuracy)
}

/// One learned variant against the baseline at one size.
#[derive(Debug, Clone)]
pub struct GapComparison {
    /// Training images.
    pub train_images: usize,
    /// The learned variant.
    pub variant: String,
    /// Paired test of the accuracy gaps, learned − baseline.
    pub test: PairedTest,
}

/// What the measurements say of the paper's sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Smaller gaps with learned activations, significantly at some size.
    Supported,
    /// Larger gaps with learned activations, significantly at some size.
    Contradicted,
    /// Neither, or both at different sizes.
    Inconclusive,
}

impl Verdict {
    /// Word used in the report.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The verdict from the paired comparisons (see the module documentation).
pub fn verdict(comparisons: &[GapComparison]) -> Verdict {
    let below = comparisons
        .iter()
        .any(|c| c.test.ci95.is_some_and(|[_, hi]| hi < 0.0));
    let above = comparisons
        .iter()
        .any(|c| c.test.ci95.is_some_and(|[lo, _]| lo > 0.0));
    match (below, above) {
        (true, false) => Verdict::Supported,
        (false, true) => Verdict::Contradicted,
        _ => Verdict::Inconclusive,
    }
}

/// Paired comparisons of every variant but `baseline` against it, at every size.
pub fn compare(sizes: &[SizeRuns], names: &[String], baseline: &str) -> Vec<GapComparison> {
    let mut out = Vec::new();
    for s in sizes {
        let gap_of = |variant: &str, seed: u64| {
            s.runs
                .iter()
                .find(|r| r.variant == variant && r.seed == seed)
                .and_then(accuracy_gap)
        };
        for name in names.iter().filter(|n| n.as_str() != baseline) {
            let (a, b): (Vec<f64>, Vec<f64>) = s
                .runs
                .iter()
                .filter(|r| &r.variant == name)
                .filter_map(|r| Some((accuracy_gap(r)?, gap_of(baseline, r.seed)?)))
                .unzip();
            if a.is_empty() {
                continue;
            }
            out.push(GapComparison {
                train_images: s.train_images,
                variant: name.clone(),
                test: stats::paired_t(&a, &b),
            });
        }
    }
    out
}

/// Appends the section for `title` (the experiment and fixed settings) to `md`, with the
/// figure of gap against training-set size written to `figure` (linked relative to the
/// report as `figure_link`), and its verdict to `claims`.
pub fn section(
    title: &str,
    sizes: &mut [SizeRuns],
    names: &[String],
    figure: &Path,
    figure_link: &str,
    md: &mut String,
    claims: &mut Vec<String>,
) -> Result<(), ExperimentError> {
    sizes.sort_by_key(|s| s.train_images);
    let _ = writeln!(
        md,
        "### Regularisation: generalisation gap against training-set size — {title}\n\n\
         Paper: \"Learned activation functions can have a possible regularization effect on learning. \
         However, this effect needs to be investigated further.\" Gap = accuracy of the final model on \
         (up to 10 000 of) its training images − test accuracy; loss gap = test loss − training loss; \
         mean ± std over seeds.\n"
    );
    md.push_str(
        "| training images | variant | seeds | train accuracy | test accuracy | accuracy gap | loss gap |\n|---:|---|---:|---:|---:|---|---:|\n",
    );
    let mut series: Vec<Series> = Vec::new();
    for name in names {
        let mut points = Vec::new();
        for s in sizes.iter() {
            let rs: Vec<&ImageRun> = s.runs.iter().filter(|r| &r.variant == name).collect();
            let gaps: Vec<f64> = rs.iter().filter_map(|r| accuracy_gap(r)).collect();
            if gaps.is_empty() {
                continue;
            }
            let mean = |f: &dyn Fn(&ImageRun) -> Option<f64>| {
                let v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            let spread = stats::spread(&gaps);
            points.push((s.train_images as f64, spread.mean));
            let _ = writeln!(
                md,
                "| {} | {name} | {} | {:.4} | {:.4} | {} | {:.4} |",
                s.train_images,
                gaps.len(),
                mean(&|r| r.train_eval_accuracy),
                mean(&|r| Some(r.test_accuracy)),
                stats::format_spread(&spread, 4),
                mean(&|r| Some(r.test_loss - r.train_eval_loss?)),
            );
        }
        if !points.is_empty() {
            series.push(Series {
                label: name.clone(),
                points,
                dashed: name == "relu",
            });
        }
    }
    let Some(baseline) = names
        .iter()
        .find(|n| n.as_str() == "relu")
        .or_else(|| names.first())
    else {
        return Ok(());
    };
    let comparisons = compare(sizes, names, baseline);
    if comparisons.is_empty() {
        md.push_str("\n(no runs with a training evaluation: rerun with this version of afu)\n\n");
        return Ok(());
    }
    if let Some(dir) = figure.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ExperimentError::Output {
            path: dir.to_path_buf(),
            source: Box::new(e),
        })?;
    }
    plot::line_plot(
        figure,
        &format!("generalisation gap vs training images — {title}"),
        "training images",
        "train accuracy − test accuracy",
        &series,
        false,
    )?;
    let _ = writeln!(
        md,
        "\n![generalisation gap]({figure_link})\n\nPaired differences of the accuracy gap (variant − {baseline}, same seeds):\n\n\
         | training images | variant | n | mean difference | 95 % interval | p |\n|---:|---|---:|---:|---|---:|"
    );
    for c in &comparisons {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:+.4} | {} | {} |",
            c.train_images,
            c.variant,
            c.test.n,
            c.test.mean_difference,
            c.test
                .ci95
                .map_or("—".into(), |[lo, hi]| format!("[{lo:+.4}, {hi:+.4}]")),
            c.test.p_value.map_or("—".into(), |p| format!("{p:.3}")),
        );
    }
    let v = verdict(&comparisons);
    let claim = format!(
        "Regularisation effect of learned activations ({title}): **{}** — smaller generalisation gap than {baseline} with 95 % confidence at {} of {} (size, variant) points, larger at {}.",
        v.word(),
        comparisons
            .iter()
            .filter(|c| c.test.ci95.is_some_and(|[_, hi]| hi < 0.0))
            .count(),
        comparisons.len(),
        comparisons
            .iter()
            .filter(|c| c.test.ci95.is_some_and(|[lo, _]| lo > 0.0))
            .count(),
    );
    let _ = writeln!(md, "\n{claim}\n");
    claims.push(claim);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(variant: &str, seed: u64, train: f64, test: f64) -> ImageRun {
        ImageRun {
            variant: variant.into(),
            seed,
            test_accuracy: test,
            top3_accuracy: 1.0,
            best_test_accuracy: test,
            test_loss: 0.5,
            train_loss: 0.3,
            epochs: 1,
            seconds: 1.0,
            train_eval_loss: Some(0.2),
            train_eval_accuracy: Some(train),
        }
    }

    fn sizes(afu_gap: [f64; 3]) -> Vec<SizeRuns> {
        vec![SizeRuns {
            train_images: 1000,
            runs: (0..3)
                .flat_map(|s| {
                    [
                        run("relu", s, 0.95, 0.80 + 0.01 * s as f64),
                        run("afu", s, 0.80 + afu_gap[s as usize], 0.80),
                    ]
                })
                .collect(),
        }]
    }

    #[test]
    fn smaller_gaps_support_larger_contradict_mixed_is_inconclusive() {
        let names = ["relu".to_string(), "afu".to_string()];
        // relu gaps 0.15, 0.14, 0.13.
        let c = compare(&sizes([0.05, 0.04, 0.06]), &names, "relu");
        assert_eq!(c.len(), 1);
        assert!((c[0].test.mean_difference - (0.05 - 0.14)).abs() < 1e-12);
        assert_eq!(verdict(&c), Verdict::Supported);
        let c = compare(&sizes([0.25, 0.24, 0.26]), &names, "relu");
        assert_eq!(verdict(&c), Verdict::Contradicted);
        let c = compare(&sizes([0.05, 0.24, 0.14]), &names, "relu");
        assert_eq!(verdict(&c), Verdict::Inconclusive);
    }

    #[test]
    fn section_writes_table_figure_and_claim() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sizes([0.05, 0.04, 0.06]);
        s.push(SizeRuns {
            train_images: 5000,
            runs: (0..3)
                .flat_map(|k| [run("relu", k, 0.9, 0.85), run("afu", k, 0.9, 0.86)])
                .collect(),
        });
        let names = ["relu".to_string(), "afu".to_string()];
        let (mut md, mut claims) = (String::new(), Vec::new());
        let fig = dir.path().join("figures/gap.svg");
        section(
            "mnist",
            &mut s,
            &names,
            &fig,
            "figures/gap.svg",
            &mut md,
            &mut claims,
        )
        .unwrap();
        assert!(fig.is_file());
        assert!(md.contains("| 1000 | afu | 3 |"), "{md}");
        assert!(md.contains("| 5000 | relu | 3 |"), "{md}");
        assert_eq!(claims.len(), 1);
        assert!(claims[0].contains("**supported**"), "{}", claims[0]);
    }
}
