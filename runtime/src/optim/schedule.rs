//! Learning-rate schedules, applied per epoch: the optimizer's learning rate
//! times a factor that depends on the epoch (1-based) and the planned number
//! of epochs.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the learning rate changes from epoch to epoch.
///
/// ```
/// use netdsl_runtime::optim::Schedule;
/// let step = Schedule::StepDecay { every: 10, factor: 0.5 };
/// assert_eq!((step.rate(0.1, 10, 30), step.rate(0.1, 11, 30)), (0.1, 0.05));
/// let cosine = Schedule::Cosine { alpha: 0.0 };
/// assert_eq!(cosine.rate(0.1, 1, 20), 0.1);
/// assert!(cosine.rate(0.1, 20, 20) < 0.001);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Schedule {
    /// The optimizer's rate throughout.
    #[default]
    Constant,
    /// Multiplied by `factor` after every `every` epochs: `lr · factor^⌊(epoch - 1) / every⌋`
    /// (Keras' `ExponentialDecay(staircase=True)` counted in epochs).
    StepDecay {
        /// Epochs between two decays.
        every: usize,
        /// The factor of each decay, in `[0, 1]`.
        factor: f32,
    },
    /// Half a cosine from `lr` down towards `alpha · lr` over the planned
    /// epochs (Keras' `CosineDecay` with `decay_steps` = epochs, stepped per epoch):
    /// `lr · ((1 - alpha) · (1 + cos(π (epoch - 1) / epochs)) / 2 + alpha)`.
    Cosine {
        /// The final fraction of the learning rate, in `[0, 1]`.
        alpha: f32,
    },
}

impl Schedule {
    /// The learning rate of `epoch` (1-based) of `epochs`, for base rate `lr`.
    /// [`Schedule::Constant`] returns `lr` itself (bit for bit).
    pub fn rate(&self, lr: f32, epoch: usize, epochs: usize) -> f32 {
        let done = epoch.saturating_sub(1);
        match *self {
            Schedule::Constant => lr,
            Schedule::StepDecay { every, factor } => {
                let steps = i32::try_from(done / every.max(1)).unwrap_or(i32::MAX);
                lr * factor.powi(steps)
            }
            Schedule::Cosine { alpha } => {
                let progress = done.min(epochs) as f64 / epochs.max(1) as f64;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                (f64::from(lr) * ((1.0 - f64::from(alpha)) * cosine + f64::from(alpha))) as f32
            }
        }
    }

    /// Rejects schedules that cannot work: `every = 0`, a factor or alpha
    /// outside `[0, 1]` or not finite.
    pub fn check(&self) -> Result<()> {
        let unit = |name: &str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "schedule {name} {v} is outside [0, 1]"
                )))
            }
        };
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::StepDecay { every, factor } => {
                if every == 0 {
                    return Err(Error::Config("step decay every 0 epochs".into()));
                }
                unit("factor", factor)
            }
            Schedule::Cosine { alpha } => unit("alpha", alpha),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_the_same_bits() {
        let lr = 1e-3f32;
        assert_eq!(Schedule::Constant.rate(lr, 7, 20).to_bits(), lr.to_bits());
    }

    #[test]
    fn step_decay_halves_every_n_epochs() {
        let s = Schedule::StepDecay {
            every: 2,
            factor: 0.5,
        };
        let rates: Vec<f32> = (1..=6).map(|e| s.rate(1.0, e, 6)).collect();
        assert_eq!(rates, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn cosine_falls_from_lr_towards_alpha_lr() {
        let s = Schedule::Cosine { alpha: 0.1 };
        let rates: Vec<f32> = (1..=5).map(|e| s.rate(2.0, e, 4)).collect();
        assert_eq!(rates[0], 2.0);
        assert!(
            (rates[2] - 2.0 * (0.9 * 0.5 + 0.1)).abs() < 1e-6,
            "{rates:?}"
        );
        assert!((rates[4] - 0.2).abs() < 1e-6, "{rates:?}");
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
    }

    #[test]
    fn check_rejects_nonsense() {
        assert!(Schedule::StepDecay {
            every: 0,
            factor: 0.5
        }
        .check()
        .is_err());
        assert!(Schedule::StepDecay {
            every: 1,
            factor: 1.5
        }
        .check()
        .is_err());
        assert!(Schedule::Cosine { alpha: f32::NAN }.check().is_err());
        assert!(Schedule::Cosine { alpha: 0.0 }.check().is_ok());
    }
}
