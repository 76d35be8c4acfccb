//! Summaries of one metric over seeds: mean, sample standard deviation, n,
//! and the 95% confidence interval of the mean from Student's t
//! distribution (the runs of one variant with different seeds are taken as
//! independent draws of one normal distribution):
//!
//! ```text
//! mean ± t(0.975, n-1) · sd / sqrt(n)          sd with n - 1 in the denominator
//! ```
//!
//! n = 1 has no standard deviation and no interval.

/// Two-sided 95% quantiles of Student's t, t(0.975, df) for df = 1..=30
/// (scipy.stats.t.ppf(0.975, df), rounded to 4 decimals).
const T_975: [f64; 30] = [
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, //
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, //
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
];

/// t(0.975, df): the table up to 30 degrees of freedom, beyond it the
/// Cornish-Fisher expansion around the normal quantile 1.96 (within 1e-4 of
/// the exact value from df 30 on).
pub fn t_975(df: usize) -> f64 {
    if (1..=30).contains(&df) {
        return T_975[df - 1];
    }
    let z: f64 = 1.959_964;
    let n = df.max(1) as f64;
    z + (z.powi(3) + z) / (4.0 * n)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
}

/// One metric over n runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); `None` for n < 2.
    pub sd: Option<f64>,
    /// The 95% interval of the mean, `(low, high)`; `None` for n < 2.
    pub interval: Option<(f64, f64)>,
}

impl Summary {
    /// The summary of `values`, or `None` when there are none (non-finite
    /// values are left out).
    pub fn of(values: &[f64]) -> Option<Summary> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let n = finite.len();
        if n == 0 {
            return None;
        }
        let mean = finite.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Some(Summary {
                n,
                mean,
                sd: None,
                interval: None,
            });
        }
        let var = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        let half = t_975(n - 1) * sd / (n as f64).sqrt();
        Some(Summary {
            n,
            mean,
            sd: Some(sd),
            interval: Some((mean - half, mean + half)),
        })
    }

    /// Half the interval's width, if there is one.
    pub fn half_width(&self) -> Option<f64> {
        self.interval.map(|(lo, hi)| (hi - lo) / 2.0)
    }

    /// Whether `x` lies inside the interval (`None` without one).
    pub fn contains(&self, x: f64) -> Option<bool> {
        self.interval.map(|(lo, hi)| lo <= x && x <= hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles() {
        assert_eq!(t_975(2), 4.3027);
        assert_eq!(t_975(4), 2.7764);
        // scipy: t.ppf(0.975, 40) = 2.0211, 100: 1.9840, 1000: 1.9623.
        for (df, exact) in [(40, 2.0211), (100, 1.9840), (1000, 1.9623)] {
            assert!((t_975(df) - exact).abs() < 1e-4, "{df}: {}", t_975(df));
        }
    }

    #[test]
    fn mean_sd_and_interval() {
        // numpy: mean 0.85, std(ddof=1) 0.01; t(0.975, 2) * 0.01 / sqrt(3) = 0.024842.
        let s = Summary::of(&[0.84, 0.85, 0.86]).unwrap();
        assert_eq!(s.n, 3);
        assert!((s.mean - 0.85).abs() < 1e-12);
        assert!((s.sd.unwrap() - 0.01).abs() < 1e-12);
        assert!((s.half_width().unwrap() - 0.024842).abs() < 1e-6);
        assert_eq!(s.contains(0.87), Some(true));
        assert_eq!(s.contains(0.88), Some(false));
        let one = Summary::of(&[0.5, f64::NAN]).unwrap();
        assert_eq!((one.n, one.sd, one.interval), (1, None, None));
        assert_eq!(one.contains(0.5), None);
        assert_eq!(Summary::of(&[]), None);
    }
}
