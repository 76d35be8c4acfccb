//! Shared test helpers: closeness checks and a finite-difference gradient.
//!
//! Used by the layer tests (`nn::conv2d`, `nn::max_pool2d`, ...), e.g.:
//!
//! ```ignore
//! let numeric = finite_difference(&x, 1e-3, |x| loss_of(x));   // central differences
//! assert_grad_close("conv input", &analytic, &numeric, 1e-6);
//! ```

/// The largest element-wise relative error between `actual` and `expected`.
///
/// Each difference is divided by `max(|expected_i|, |actual_i|, floor)`, where
/// `floor = 1e-3 · max_j |expected_j|` keeps entries that are zero up to
/// rounding from dominating. Panics if the lengths differ.
pub(crate) fn max_rel_error(actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    let scale = expected.iter().fold(0f64, |m, x| m.max(x.abs()));
    let floor = (1e-3 * scale).max(f64::MIN_POSITIVE);
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs() / e.abs().max(a.abs()).max(floor))
        .fold(0.0, f64::max)
}

/// Asserts that `actual` and `expected` agree element-wise within relative
/// tolerance `tol` (as [`max_rel_error`] measures it), naming the worst entry.
#[track_caller]
pub(crate) fn assert_close<E: Copy + Into<f64>>(actual: &[E], expected: &[E], tol: f64) {
    let a: Vec<f64> = actual.iter().map(|&x| x.into()).collect();
    let e: Vec<f64> = expected.iter().map(|&x| x.into()).collect();
    let err = max_rel_error(&a, &e);
    if err > tol || err.is_nan() {
        let worst = a
            .iter()
            .zip(&e)
            .enumerate()
            .max_by(|(_, (a1, e1)), (_, (a2, e2))| (*a1 - *e1).abs().total_cmp(&(*a2 - *e2).abs()))
            .map(|(i, (a, e))| format!("index {i}: {a} vs {e}"))
            .unwrap_or_default();
        panic!("relative error {err:e} > {tol:e} (worst {worst})");
    }
}

/// Like [`assert_close`] for gradients, with the tensor's name in the message.
#[track_caller]
pub(crate) fn assert_grad_close(name: &str, analytic: &[f64], numeric: &[f64], tol: f64) {
    let err = max_rel_error(analytic, numeric);
    assert!(
        err <= tol,
        "{name}: gradient relative error {err:e} > {tol:e}\nanalytic {analytic:?}\nnumeric  {numeric:?}"
    );
}

/// Central finite differences of the scalar function `f` at `x`:
/// `(f(x + eps·e_i) - f(x - eps·e_i)) / (2·eps)` for every `i`.
///
/// For a function that is linear in `x` (a convolution in its input or its
/// weights, under a loss `Σ y·r`) this is exact up to rounding, so a large
/// `eps` such as `1e-3` is best.
pub(crate) fn finite_difference(x: &[f64], eps: f64, mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + eps;
            let plus = f(&probe);
            probe[i] = x[i] - eps;
            let minus = f(&probe);
            probe[i] = x[i];
            (plus - minus) / (2.0 * eps)
        })
        .collect()
}

/// Deterministic pseudo-random values in `[-1, 1)` (a fixed LCG), for test inputs.
pub(crate) fn test_values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn finite_difference_of_a_quadratic() {
    let x = [1.0, -2.0, 0.5];
    let g = finite_difference(&x, 1e-3, |x| x.iter().map(|v| v * v).sum());
    assert_close(&g, &[2.0, -4.0, 1.0], 1e-9);
}
