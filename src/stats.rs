//! Statistics over seeds: mean, spread, 95 % confidence intervals and paired comparisons.
//!
//! A claim such as "the AFU is not worse than relu" is about a difference smaller than the
//! spread between seeds, so every multi-seed summary states it as a test: the mean difference
//! over the same seeds, its 95 % interval (Student t with n − 1 degrees of freedom) and the
//! two-sided p-value of the paired t-test. Distributions come from `statrs`.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean, sample standard deviation and 95 % confidence interval of the mean of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Number of values.
    pub n: usize,
    /// Mean (NaN when there are no values).
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `None` below two values.
    pub std: Option<f64>,
    /// 95 % confidence interval of the mean (Student t); `None` below two values.
    pub ci95: Option<[f64; 2]>,
}

/// The [`Spread`] of `values`.
pub fn spread(values: &[f64]) -> Spread {
    let n = values.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / n as f64
    };
    if n < 2 {
        return Spread {
            n,
            mean,
            std: None,
            ci95: None,
        };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let half = t_quantile_975(n - 1) * std / (n as f64).sqrt();
    Spread {
        n,
        mean,
        std: Some(std),
        ci95: Some([mean - half, mean + half]),
    }
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (`df` ≥ 1).
fn t_quantile_975(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df as f64)
        .map(|t| t.inverse_cdf(0.975))
        .unwrap_or(f64::NAN)
}

/// A paired comparison of two variants over the same seeds: `a − b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedTest {
    /// Number of pairs (seeds that both variants ran).
    pub n: usize,
    /// Mean of the differences `a − b`.
    pub mean_difference: f64,
    /// 95 % confidence interval of the mean difference; `None` below two pairs.
    pub ci95: Option<[f64; 2]>,
    /// Two-sided p-value of the paired t-test (H0: mean difference 0); `None` below two pairs.
    /// When every difference is the same the statistic is 0/0 or ±∞: p = 1 if they are all
    /// zero, else 0.
    pub p_value: Option<f64>,
}

/// The paired t-test of `a[i] − b[i]` (the slices pair up by index).
///
/// # Panics
/// Never: slices of different lengths are paired up to the shorter one.
pub fn paired_t(a: &[f64], b: &[f64]) -> PairedTest {
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let s = spread(&diffs);
    let p_value = s.std.map(|sd| {
        if sd == 0.0 {
            if s.mean == 0.0 { 1.0 } else { 0.0 }
        } else {
            let t = s.mean / (sd / (s.n as f64).sqrt());
            StudentsT::new(0.0, 1.0, (s.n - 1) as f64)
                .map(|dist| 2.0 * dist.cdf(-t.abs()))
                .unwrap_or(f64::NAN)
        }
    });
    PairedTest {
        n: s.n,
        mean_difference: s.mean,
        ci95: s.ci95,
        p_value,
    }
}

/// One run's value of a metric: which variant, which seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedValue {
    /// Variant name.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// The metric.
    pub value: f64,
}

/// A metric of one variant over its seeds (`summary.json`'s `variants[]` statistics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantStats {
    /// Variant name.
    pub variant: String,
    /// Seeds, in increasing order.
    pub seeds: Vec<u64>,
    /// The metric's spread over those seeds.
    pub spread: Spread,
}

/// A paired comparison of two variants on one metric (`summary.json`'s `comparisons[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The metric compared (e.g. `test_accuracy`).
    pub metric: String,
    /// First variant.
    pub a: String,
    /// Second variant.
    pub b: String,
    /// The seeds both ran, in increasing order.
    pub seeds: Vec<u64>,
    /// Name of the test.
    pub test: String,
    /// Mean of `a − b` over those seeds, its interval and p-value.
    #[serde(flatten)]
    pub result: PairedTest,
}

/// The values of `variant`, ordered by seed.
fn by_seed<'a>(values: &'a [SeedValue], variant: &str) -> Vec<&'a SeedValue> {
    let mut v: Vec<&SeedValue> = values.iter().filter(|r| r.variant == variant).collect();
    v.sort_by_key(|r| r.seed);
    v
}

/// The spread of each variant's metric over its seeds, in the order of `variants`.
pub fn variant_stats(variants: &[String], values: &[SeedValue]) -> Vec<VariantStats> {
    variants
        .iter()
        .map(|name| {
            let rows = by_seed(values, name);
            VariantStats {
                variant: name.clone(),
                seeds: rows.iter().map(|r| r.seed).collect(),
                spread: spread(&rows.iter().map(|r| r.value).collect::<Vec<_>>()),
            }
        })
        .collect()
}

/// Paired t-tests of every pair of variants (in the order of `variants`: each earlier one as
/// `a` against each later one as `b`) on the seeds both ran.
pub fn pairwise(metric: &str, variants: &[String], values: &[SeedValue]) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (i, a) in variants.iter().enumerate() {
        for b in &variants[i + 1..] {
            let ra = by_seed(values, a);
            let rb = by_seed(values, b);
            let mut seeds = Vec::new();
            let (mut xa, mut xb) = (Vec::new(), Vec::new());
            for r in &ra {
                if let Some(o) = rb.iter().find(|o| o.seed == r.seed) {
                    seeds.push(r.seed);
                    xa.push(r.value);
                    xb.push(o.value);
                }
            }
            out.push(Comparison {
                metric: metric.to_string(),
                a: a.clone(),
                b: b.clone(),
                seeds,
                test: "paired t-test, two-sided".into(),
                result: paired_t(&xa, &xb),
            });
        }
    }
    out
}

/// A Markdown cell `mean ± std [lo, hi]` with `digits` decimals (`mean` alone for one value).
pub fn format_spread(s: &Spread, digits: usize) -> String {
    match (s.std, s.ci95) {
        (Some(sd), Some([lo, hi])) => {
            format!(
                "{:.d$} ± {:.d$} [{:.d$}, {:.d$}]",
                s.mean,
                sd,
                lo,
                hi,
                d = digits
            )
        }
        _ => format!("{:.d$}", s.mean, d = digits),
    }
}

/// A Markdown table of paired comparisons.
pub fn comparisons_table(comparisons: &[Comparison], digits: usize) -> String {
    let mut md = String::from(
        "| a − b | metric | seeds | mean difference | 95 % interval | p (paired t) |\n|---|---|---:|---:|---|---:|\n",
    );
    for c in comparisons {
        let ci = c
            .result
            .ci95
            .map(|[lo, hi]| format!("[{lo:+.digits$}, {hi:+.digits$}]"))
            .unwrap_or_else(|| "– (one seed)".into());
        let p = c
            .result
            .p_value
            .map(|p| format!("{p:.3}"))
            .unwrap_or_else(|| "–".into());
        md.push_str(&format!(
            "| {} − {} | {} | {} | {:+.digits$} | {} | {} |\n",
            c.a, c.b, c.metric, c.result.n, c.result.mean_difference, ci, p
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_matches_hand_computed_values() {
        // Values 1..=5: mean 3, sample std sqrt(2.5); t(0.975, 4) = 2.776445105.
        let s = spread(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(s.n, 5);
        assert!((s.mean - 3.0).abs() < 1e-12);
        let sd = s.std.unwrap();
        assert!((sd - 2.5f64.sqrt()).abs() < 1e-12);
        let half = 2.776_445_105 * sd / 5f64.sqrt();
        let [lo, hi] = s.ci95.unwrap();
        assert!((lo - (3.0 - half)).abs() < 1e-7, "{lo}");
        assert!((hi - (3.0 + half)).abs() < 1e-7, "{hi}");
    }

    #[test]
    fn one_value_has_no_spread_and_none_has_no_mean() {
        let s = spread(&[0.9]);
        assert_eq!((s.n, s.mean, s.std, s.ci95), (1, 0.9, None, None));
        assert!(spread(&[]).mean.is_nan());
    }

    #[test]
    fn paired_t_matches_a_published_example() {
        // Differences 1, 2, 3, 4 (mean 2.5, sd 1.2910): t = 3.8730 with 3 df, two-sided
        // p = 0.030466 (scipy.stats.ttest_rel gives the same).
        let a = [2.0, 4.0, 6.0, 8.0];
        let b = [1.0, 2.0, 3.0, 4.0];
        let t = paired_t(&a, &b);
        assert_eq!(t.n, 4);
        assert!((t.mean_difference - 2.5).abs() < 1e-12);
        assert!((t.p_value.unwrap() - 0.030_466).abs() < 1e-5, "{t:?}");
        let [lo, hi] = t.ci95.unwrap();
        // t(0.975, 3) = 3.182446305; half = 3.182446305 · 1.290994 / 2.
        let half = 3.182_446_305 * (5.0f64 / 3.0).sqrt() / 2.0;
        assert!((lo - (2.5 - half)).abs() < 1e-7 && (hi - (2.5 + half)).abs() < 1e-7);
        // The test is antisymmetric.
        let r = paired_t(&b, &a);
        assert!((r.p_value.unwrap() - t.p_value.unwrap()).abs() < 1e-12);
        assert!((r.mean_difference + 2.5).abs() < 1e-12);
    }

    #[test]
    fn constant_differences_give_p_one_or_zero() {
        assert_eq!(paired_t(&[1.0, 2.0], &[1.0, 2.0]).p_value, Some(1.0));
        assert_eq!(paired_t(&[2.0, 3.0], &[1.0, 2.0]).p_value, Some(0.0));
        assert_eq!(paired_t(&[2.0], &[1.0]).p_value, None);
    }

    #[test]
    fn pairwise_pairs_by_seed_not_by_position() {
        let v = |variant: &str, seed, value| SeedValue {
            variant: variant.into(),
            seed,
            value,
        };
        // relu ran seeds 3, 1, 2 (out of order); afu ran 1, 2 and 4.
        let values = [
            v("relu", 3, 0.70),
            v("relu", 1, 0.90),
            v("relu", 2, 0.80),
            v("afu", 1, 0.91),
            v("afu", 2, 0.82),
            v("afu", 4, 0.10),
        ];
        let names = ["afu".to_string(), "relu".to_string()];
        let c = pairwise("test_accuracy", &names, &values);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].seeds, vec![1, 2]);
        assert!((c[0].result.mean_difference - 0.015).abs() < 1e-12);
        let stats = variant_stats(&names, &values);
        assert_eq!(stats[1].seeds, vec![1, 2, 3]);
        assert!((stats[1].spread.mean - 0.8).abs() < 1e-12);
    }
}
