//! Classification metrics on plain slices.

/// Fraction of `scores` whose sign matches `labels` (±1; a score of exactly 0 counts as −1).
pub fn accuracy_pm1(scores: &[f32], labels: &[f32]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let correct = scores
        .iter()
        .zip(labels)
        .filter(|(s, l)| (**s > 0.0) == (**l > 0.0))
        .count();
    correct as f64 / scores.len() as f64
}

/// Area under the ROC curve of `scores` for positive labels `> 0`, by the Mann–Whitney rank
/// statistic with tied scores sharing their average rank. 0.5 when one class is absent.
pub fn roc_auc(scores: &[f32], labels: &[f32]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l > 0.0).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l > 0.0)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Mean and (population) standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_known_cases() {
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &[-1.0, -1.0, 1.0, 1.0]), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &[-1.0, -1.0, 1.0, 1.0]), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &[-1.0, 1.0, -1.0, 1.0]), 0.5);
        // One inversion out of four pairs.
        assert_eq!(
            roc_auc(&[0.1, 0.6, 0.5, 0.9], &[-1.0, -1.0, 1.0, 1.0]),
            0.75
        );
    }

    #[test]
    fn accuracy_and_stats() {
        assert_eq!(
            accuracy_pm1(&[1.0, -1.0, 0.5, -0.2], &[1.0, 1.0, 1.0, -1.0]),
            0.75
        );
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!((m, s), (2.0, 1.0));
    }
}
