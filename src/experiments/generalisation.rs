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
//! A smaller gap is only a regularisation effect when it does not come from fitting less: a
//! network that stalls near chance has almost no gap. So a (size, variant) point *regularises*
//! when the 95 % interval of the paired gap difference (learned − baseline) lies below 0 and the
//! paired test-accuracy difference is not significantly negative; a smaller gap with a
//! significantly lower test accuracy is *underfitting* and counts for neither side.
//!
//! Verdict: **supported** when some point regularises and at no point is the gap significantly
//! larger; **contradicted** when some gap is significantly larger and no point regularises;
//! **inconclusive** otherwise (every interval holds 0, only underfitting, or the sizes
//! disagree).

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
    /// Paired test of the test accuracies, learned − baseline.
    pub accuracy: PairedTest,
}

/// How one point reads (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Smaller gap, test accuracy not significantly lower.
    Regularises,
    /// Smaller gap, but a significantly lower test accuracy: it fits less.
    Underfits,
    /// Significantly larger gap.
    LargerGap,
    /// No significant difference of the gap.
    NoDifference,
}

impl Reading {
    /// Words used in the report's table.
    pub fn words(self) -> &'static str {
        match self {
            Reading::Regularises => "smaller gap (regularises)",
            Reading::Underfits => "smaller gap, lower test accuracy (underfits)",
            Reading::LargerGap => "larger gap",
            Reading::NoDifference => "no significant difference",
        }
    }
}

impl GapComparison {
    /// How this point reads.
    pub fn reading(&self) -> Reading {
        let below = |t: &PairedTest| t.ci95.is_some_and(|[_, hi]| hi < 0.0);
        let above = |t: &PairedTest| t.ci95.is_some_and(|[lo, _]| lo > 0.0);
        if below(&self.test) {
            if below(&self.accuracy) {
                Reading::Underfits
            } else {
                Reading::Regularises
            }
        } else if above(&self.test) {
            Reading::LargerGap
        } else {
            Reading::NoDifference
        }
    }
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
        .any(|c| c.reading() == Reading::Regularises);
    let above = comparisons
        .iter()
        .any(|c| c.reading() == Reading::LargerGap);
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
        let baseline_run = |seed: u64| {
            s.runs
                .iter()
                .find(|r| r.variant == baseline && r.seed == seed)
        };
        for name in names.iter().filter(|n| n.as_str() != baseline) {
            let pairs: Vec<[f64; 4]> = s
                .runs
                .iter()
                .filter(|r| &r.variant == name)
                .filter_map(|r| {
                    let b = baseline_run(r.seed)?;
                    Some([
                        accuracy_gap(r)?,
                        accuracy_gap(b)?,
                        r.test_accuracy,
                        b.test_accuracy,
                    ])
                })
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let column = |k: usize| pairs.iter().map(|p| p[k]).collect::<Vec<f64>>();
            out.push(GapComparison {
                train_images: s.train_images,
                variant: name.clone(),
                test: stats::paired_t(&column(0), &column(1)),
                accuracy: stats::paired_t(&column(2), &column(3)),
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
        "\n![generalisation gap]({figure_link})\n\nPaired differences (variant − {baseline}, same seeds) of the accuracy gap and of the test accuracy; a smaller gap that comes with a significantly lower test accuracy is underfitting, not regularisation:\n\n\
         | training images | variant | n | gap difference | 95 % interval | p | test accuracy difference | 95 % interval | reading |\n|---:|---|---:|---:|---|---:|---:|---|---|"
    );
    for c in &comparisons {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:+.4} | {} | {} | {:+.4} | {} | {} |",
            c.train_images,
            c.variant,
            c.test.n,
            c.test.mean_difference,
            interval(&c.test),
            c.test.p_value.map_or("—".into(), |p| format!("{p:.3}")),
            c.accuracy.mean_difference,
            interval(&c.accuracy),
            c.reading().words(),
        );
    }
    let v = verdict(&comparisons);
    let count = |r: Reading| comparisons.iter().filter(|c| c.reading() == r).count();
    let claim = format!(
        "Regularisation effect of learned activations ({title}): **{}** — of {} (size, variant) points, {} with a smaller generalisation gap than {baseline} at no loss of test accuracy (95 % confidence), {} with a smaller gap but a lower test accuracy (underfitting), {} with a larger gap.",
        v.word(),
        comparisons.len(),
        count(Reading::Regularises),
        count(Reading::Underfits),
        count(Reading::LargerGap),
    );
    let _ = writeln!(md, "\n{claim}\n");
    claims.push(claim);
    Ok(())
}

fn interval(t: &PairedTest) -> String {
    t.ci95
        .map_or("—".into(), |[lo, hi]| format!("[{lo:+.4}, {hi:+.4}]"))
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
    fn a_smaller_gap_from_fitting_less_is_underfitting_not_regularisation() {
        let names = ["relu".to_string(), "afu".to_string()];
        // The learned net stalls: test accuracy 0.3 against relu's 0.80–0.82, gap ≈ 0.
        let sizes = vec![SizeRuns {
            train_images: 1000,
            runs: (0..3)
                .flat_map(|s| {
                    [
                        run("relu", s, 0.95, 0.80 + 0.01 * s as f64),
                        run("afu", s, 0.30 + 0.001 * s as f64, 0.30),
                    ]
                })
                .collect(),
        }];
        let c = compare(&sizes, &names, "relu");
        assert_eq!(c[0].reading(), Reading::Underfits);
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
