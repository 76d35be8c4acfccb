//! Softmax cross-entropy (with optional label smoothing), the targets it
//! compares with, and the arg-max rules of accuracy and prediction.
//!
//! Label smoothing ε replaces the one-hot target by
//! `(1 - ε) · onehot + ε / K` for `K` classes (Keras'
//! `CategoricalCrossentropy(label_smoothing=ε)`), both in training and in the
//! loss reported for validation.

use crate::error::{Error, Result};

/// Row-major targets for `labels`: `classes` values per label, the smoothed
/// one-hot vector (exactly one-hot when `smoothing` is 0).
///
/// # Errors
/// [`Error::LabelOutOfRange`] for a label `>= classes`.
pub fn targets(labels: &[u32], classes: usize, smoothing: f32) -> Result<Vec<f32>> {
    let (off, on) = if smoothing == 0.0 {
        (0.0, 1.0)
    } else {
        let off = smoothing / classes as f32;
        (off, 1.0 - smoothing + off)
    };
    let mut v = vec![off; labels.len() * classes];
    for (i, &y) in labels.iter().enumerate() {
        if y as usize >= classes {
            return Err(Error::LabelOutOfRange {
                index: i,
                label: y as usize,
                classes,
            });
        }
        v[i * classes + y as usize] = on;
    }
    Ok(v)
}

/// The cross-entropy of one row of logits against label `y` with label
/// smoothing `smoothing`, computed stably in f64:
/// `logsumexp(row) - (1 - ε) row[y] - ε/K Σ row`.
pub fn cross_entropy_row(row: &[f32], y: usize, smoothing: f32) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    if smoothing == 0.0 {
        return max + sum.ln() - row[y] as f64;
    }
    let eps = f64::from(smoothing);
    let mean: f64 = row.iter().map(|&v| v as f64).sum::<f64>() / row.len() as f64;
    max + sum.ln() - (1.0 - eps) * row[y] as f64 - eps * mean
}

/// Softmax of one row of logits, in f64 for stability, as `f32`.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let exps: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

/// Index of the largest value (the first one on ties, as numpy's argmax).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Number of rows of `logits` (row-major, `labels.len()` rows) whose arg-max is the label.
pub fn count_correct(logits: &[f32], labels: &[u32]) -> usize {
    let classes = logits.len() / labels.len().max(1);
    logits
        .chunks(classes.max(1))
        .zip(labels)
        .filter(|(row, &y)| argmax(row) == y as usize)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 0.0]), 1);
        assert_eq!(count_correct(&[0.0, 1.0, 5.0, 2.0], &[1, 1]), 1);
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_classes() {
        let ce = cross_entropy_row(&[0.0; 10], 3, 0.0);
        assert!((ce - 10f64.ln()).abs() < 1e-12);
        // stable for large logits
        let ce = cross_entropy_row(&[1000.0, 0.0], 0, 0.0);
        assert!(ce.abs() < 1e-12);
    }

    /// Label smoothing against the definition -Σ t log p:
    /// ```python
    /// import math
    /// x = [2.0, -1.0, 0.5]; t = [0.8 + 0.2 / 3, 0.2 / 3, 0.2 / 3]
    /// m = max(x); s = sum(math.exp(v - m) for v in x)
    /// print(-sum(a * math.log(math.exp(v - m) / s) for a, v in zip(t, x)))  # 0.541311296657157
    /// ```
    #[test]
    fn smoothed_cross_entropy_matches_the_definition() {
        let row = [2.0f32, -1.0, 0.5];
        let p = softmax(&row);
        let t = targets(&[0], 3, 0.2).unwrap();
        let direct: f64 = t
            .iter()
            .zip(&p)
            .map(|(&t, &p)| -(t as f64) * (p as f64).ln())
            .sum();
        let ours = cross_entropy_row(&row, 0, 0.2);
        assert!((ours - direct).abs() < 1e-6, "{ours} vs {direct}");
        assert!((ours - 0.541_311_296_657_157).abs() < 1e-6, "{ours}");
    }

    #[test]
    fn targets_are_one_hot_or_smoothed() {
        assert_eq!(targets(&[2, 0], 3, 0.0).unwrap(), [0., 0., 1., 1., 0., 0.]);
        let t = targets(&[1], 4, 0.4).unwrap();
        for (a, b) in t.iter().zip([0.1, 0.7, 0.1, 0.1]) {
            assert!((a - b).abs() < 1e-6, "{t:?}");
        }
        assert!((t.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let err = targets(&[0, 3], 3, 0.0).unwrap_err();
        assert!(matches!(
            err,
            Error::LabelOutOfRange {
                index: 1,
                label: 3,
                classes: 3
            }
        ));
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 2);
    }
}
