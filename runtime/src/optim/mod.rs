//! Optimizers as Keras 3 computes them, with state that checkpoints can save
//! and restore (dfdx's own optimizers keep their step count and moments
//! private, so a resumed run could not continue them), and learning-rate
//! [`Schedule`]s.
//!
//! Adam (keras/src/optimizers/adam.py), for step t = 1, 2, ...:
//!
//! ```text
//! α = lr · sqrt(1 - β₂ᵗ) / (1 - β₁ᵗ)
//! m ← m + (g - m)(1 - β₁)
//! v ← v + (g² - v)(1 - β₂)
//! w ← w - α · m / (sqrt(v) + ε)        // ε is added to sqrt(v), not to its bias-corrected value
//! ```
//!
//! SGD (keras/src/optimizers/sgd.py), momentum μ:
//!
//! ```text
//! μ = 0:      w ← w - lr · g
//! μ > 0:      m ← μ · m - lr · g
//!             w ← w + m                      (classic)
//!             w ← w + μ · m - lr · g         (Nesterov)
//! ```
//!
//! The state lives on the host as one `Vec<f32>` per trainable tensor and
//! slot (Adam: `m`, `v`; SGD with momentum: `momentum`), in the order dfdx's
//! `TensorCollection` visits the tensors. Every update is independent per
//! element, so any split across threads gives the same bits.

mod schedule;

use std::cell::RefCell;

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut,
};
use dfdx::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use schedule::Schedule;

/// Parameters per parallel chunk of the update (the small tensors stay on one thread).
const CHUNK: usize = 1 << 15;

thread_local! {
    /// The gradient and weights of the tensor being updated, reused across
    /// tensors and steps (no allocation, no page faults per update).
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Adam's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment, β₁.
    pub beta1: f32,
    /// Decay of the second moment, β₂.
    pub beta2: f32,
    /// ε, added to `sqrt(v)`.
    pub eps: f32,
}

impl Default for AdamConfig {
    /// `keras.optimizers.Adam()`: lr 1e-3, β = (0.9, 0.999), ε = 1e-7.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
        }
    }
}

/// SGD's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum μ in `[0, 1)`; 0 is plain SGD.
    pub momentum: f32,
    /// Nesterov momentum (needs `momentum > 0`).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    /// `keras.optimizers.SGD()`: lr 0.01, no momentum.
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.0,
            nesterov: false,
        }
    }
}

/// Which optimizer to train with, and its hyperparameters.
///
/// ```
/// use netdsl_runtime::optim::Optimizer;
/// let adam = Optimizer::adam(1e-3);           // Keras' Adam
/// let sgd = Optimizer::nesterov(0.05, 0.9);   // SGD, Nesterov momentum 0.9
/// assert_eq!(sgd.learning_rate(), 0.05);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Optimizer {
    /// Adam as Keras computes it.
    Adam(AdamConfig),
    /// SGD, with optional (Nesterov) momentum, as Keras computes it.
    Sgd(SgdConfig),
}

impl Default for Optimizer {
    /// Keras' Adam with its defaults.
    fn default() -> Self {
        Optimizer::Adam(AdamConfig::default())
    }
}

impl Optimizer {
    /// Adam with Keras' β and ε and this learning rate.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam(AdamConfig {
            lr,
            ..AdamConfig::default()
        })
    }

    /// Plain SGD.
    pub fn sgd(lr: f32) -> Self {
        Optimizer::Sgd(SgdConfig {
            lr,
            momentum: 0.0,
            nesterov: false,
        })
    }

    /// SGD with classic momentum.
    pub fn momentum(lr: f32, momentum: f32) -> Self {
        Optimizer::Sgd(SgdConfig {
            lr,
            momentum,
            nesterov: false,
        })
    }

    /// SGD with Nesterov momentum.
    pub fn nesterov(lr: f32, momentum: f32) -> Self {
        Optimizer::Sgd(SgdConfig {
            lr,
            momentum,
            nesterov: true,
        })
    }

    /// The base learning rate (before any [`Schedule`]).
    pub fn learning_rate(&self) -> f32 {
        match self {
            Optimizer::Adam(c) => c.lr,
            Optimizer::Sgd(c) => c.lr,
        }
    }

    /// The names of the per-tensor state slots, as checkpoints store them.
    pub fn slot_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Adam(_) => &["m", "v"],
            Optimizer::Sgd(c) if c.momentum != 0.0 => &["momentum"],
            Optimizer::Sgd(_) => &[],
        }
    }

    /// Rejects settings that cannot train: a learning rate that is not finite
    /// and positive, β or momentum outside `[0, 1)`, a negative ε, Nesterov without momentum.
    pub fn check(&self) -> Result<()> {
        let unit = |name: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!("{name} {v} is outside [0, 1)")))
            }
        };
        let lr = self.learning_rate();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::Config(format!(
                "learning rate {lr} must be finite and positive"
            )));
        }
        match *self {
            Optimizer::Adam(c) => {
                unit("beta1", c.beta1)?;
                unit("beta2", c.beta2)?;
                if !(c.eps >= 0.0 && c.eps.is_finite()) {
                    return Err(Error::Config(format!("epsilon {} must be >= 0", c.eps)));
                }
            }
            Optimizer::Sgd(c) => {
                unit("momentum", c.momentum)?;
                if c.nesterov && c.momentum == 0.0 {
                    return Err(Error::Config("Nesterov needs a momentum above 0".into()));
                }
            }
        }
        Ok(())
    }
}

/// An optimizer with its state: the update count and, per slot (see
/// [`Optimizer::slot_names`]), one `Vec<f32>` per trainable tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// The optimizer's kind and hyperparameters.
    pub config: Optimizer,
    /// Number of updates made so far.
    pub step: u64,
    /// `slots[k][i]`: slot `k` of trainable tensor `i` (empty until the first update).
    slots: Vec<Vec<Vec<f32>>>,
}

impl OptimizerState {
    /// A fresh optimizer (no updates yet).
    pub fn new(config: Optimizer) -> Self {
        Self {
            config,
            step: 0,
            slots: vec![Vec::new(); config.slot_names().len()],
        }
    }

    /// Restores a state saved from [`OptimizerState::step`] and [`OptimizerState::slots`].
    ///
    /// # Errors
    /// When the number of slots is not the one `config` uses.
    pub fn from_parts(config: Optimizer, step: u64, slots: Vec<Vec<Vec<f32>>>) -> Result<Self> {
        if slots.len() != config.slot_names().len() {
            return Err(Error::Config(format!(
                "{} optimizer slots given, {config:?} has {}",
                slots.len(),
                config.slot_names().len()
            )));
        }
        Ok(Self {
            config,
            step,
            slots,
        })
    }

    /// The state slots: `slots()[k][i]` is slot `k` of trainable tensor `i`.
    pub fn slots(&self) -> &[Vec<Vec<f32>>] {
        &self.slots
    }

    /// Applies one update with learning rate `lr` to every trainable tensor of
    /// `model` from `grads`.
    pub fn update<M: TensorCollection<f32, D>, D: Device<f32>>(
        &mut self,
        model: &mut M,
        grads: &Gradients<f32, D>,
        lr: f32,
    ) -> Result<()> {
        self.step += 1;
        let rule = match self.config {
            Optimizer::Adam(c) => {
                let t = self.step as i32;
                Rule::Adam {
                    alpha: lr * (1.0 - c.beta2.powi(t)).sqrt() / (1.0 - c.beta1.powi(t)),
                    b1: 1.0 - c.beta1,
                    b2: 1.0 - c.beta2,
                    eps: c.eps,
                }
            }
            Optimizer::Sgd(c) if c.momentum == 0.0 => Rule::Sgd { lr },
            Optimizer::Sgd(c) => Rule::Momentum {
                lr,
                momentum: c.momentum,
                nesterov: c.nesterov,
            },
        };
        let mut op = UpdateOp {
            slots: &mut self.slots,
            grads,
            rule,
            index: 0,
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: model,
            f: &mut op,
        })
        .map_err(|e| Error::Device(format!("{e:?}")))?;
        Ok(())
    }
}

/// One step's arithmetic, with the step-dependent factors worked out.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Adam {
        alpha: f32,
        b1: f32,
        b2: f32,
        eps: f32,
    },
    Sgd {
        lr: f32,
    },
    Momentum {
        lr: f32,
        momentum: f32,
        nesterov: bool,
    },
}

impl Rule {
    /// Updates one chunk of weights `w` from gradients `g` and the chunk's state slots.
    fn apply(self, slots: &mut [&mut [f32]], g: &[f32], w: &mut [f32]) {
        match (self, slots) {
            (Rule::Adam { alpha, b1, b2, eps }, [m, v]) => {
                // The zipped slices have no bounds checks and vectorise.
                for (((m, v), &g), w) in m.iter_mut().zip(v.iter_mut()).zip(g).zip(w) {
                    *m += (g - *m) * b1;
                    *v += (g * g - *v) * b2;
                    *w -= alpha * *m / (v.sqrt() + eps);
                }
            }
            (Rule::Sgd { lr }, []) => {
                for (&g, w) in g.iter().zip(w) {
                    *w -= g * lr;
                }
            }
            (
                Rule::Momentum {
                    lr,
                    momentum,
                    nesterov,
                },
                [m],
            ) => {
                for ((m, &g), w) in m.iter_mut().zip(g).zip(w) {
                    *m = *m * momentum - g * lr;
                    if nesterov {
                        *w += *m * momentum - g * lr;
                    } else {
                        *w += *m;
                    }
                }
            }
            _ => unreachable!("the slot count follows the optimizer (OptimizerState::new)"),
        }
    }
}

/// One parallel task of an update: the chunk's state slots, gradients and weights.
type Chunk<'a> = (Vec<&'a mut [f32]>, &'a [f32], &'a mut [f32]);

struct UpdateOp<'a, D: Device<f32>> {
    slots: &'a mut Vec<Vec<Vec<f32>>>,
    grads: &'a Gradients<f32, D>,
    rule: Rule,
    index: usize,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for UpdateOp<'_, D> {
    type Viewer = ViewTensorMut;
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        p: &mut Tensor<S, f32, D>,
    ) -> std::result::Result<Option<Tensor<S, f32, D>>, D::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let i = self.index;
        self.index += 1;
        let n = p.shape().num_elements();
        for slot in self.slots.iter_mut() {
            if slot.len() <= i {
                slot.push(vec![0.0; n]);
            }
        }
        let rule = self.rule;
        // This tensor's slot vectors, split into chunks alongside g and w.
        let mut mine: Vec<&mut Vec<f32>> = self.slots.iter_mut().map(|s| &mut s[i]).collect();
        BUFFERS.with(|cell| {
            let (g, w) = &mut *cell.borrow_mut();
            g.resize(n, 0.0);
            w.resize(n, 0.0);
            // `copy_into` is a memcpy; `as_vec` walks the tensor element by element.
            self.grads.get(p).copy_into(g);
            p.copy_into(w);
            let chunks = w.len().div_ceil(CHUNK);
            let mut slot_chunks: Vec<std::slice::ChunksMut<f32>> =
                mine.iter_mut().map(|s| s.chunks_mut(CHUNK)).collect();
            let mut tasks: Vec<Chunk> = Vec::with_capacity(chunks);
            for (g, w) in g.chunks(CHUNK).zip(w.chunks_mut(CHUNK)) {
                let slots = slot_chunks.iter_mut().filter_map(Iterator::next).collect();
                tasks.push((slots, g, w));
            }
            tasks
                .into_par_iter()
                .for_each(|(mut slots, g, w)| rule.apply(&mut slots, g, w));
            p.copy_from(w);
        });
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Net = (
        dfdx::nn::builders::Linear<3, 4>,
        dfdx::nn::builders::Linear<4, 2>,
    );

    /// Runs `steps` updates of `optimizer` on `Net` with the loss mean(y²).
    fn train(optimizer: Optimizer, steps: usize) -> (Vec<f32>, OptimizerState) {
        let dev = Cpu::seed_from_u64(3);
        let mut model = dev.build_module::<Net, f32>();
        let x: Tensor<Rank2<5, 3>, f32, _> = dev.sample_normal();
        let mut state = OptimizerState::new(optimizer);
        for _ in 0..steps {
            let g = model
                .forward(x.trace(model.alloc_grads()))
                .square()
                .mean()
                .backward();
            state
                .update(&mut model, &g, optimizer.learning_rate())
                .unwrap();
        }
        (model.0.weight.as_vec(), state)
    }

    /// With ε = 0, Keras' form α·m/sqrt(v) equals dfdx's bias-corrected
    /// m̂/sqrt(v̂) exactly, so both optimizers must agree to float rounding.
    #[test]
    fn adam_matches_dfdx_adam_when_eps_is_zero() {
        use dfdx::optim::Optimizer as _;
        let cfg = AdamConfig {
            lr: 0.05,
            eps: 0.0,
            ..Default::default()
        };
        let (ours, state) = train(Optimizer::Adam(cfg), 5);
        let dev = Cpu::seed_from_u64(3);
        let mut theirs = dev.build_module::<Net, f32>();
        let x: Tensor<Rank2<5, 3>, f32, _> = dev.sample_normal();
        let mut reference = dfdx::optim::Adam::new(
            &theirs,
            dfdx::optim::AdamConfig {
                lr: 0.05,
                betas: [0.9, 0.999],
                eps: 0.0,
                weight_decay: None,
            },
        );
        for _ in 0..5 {
            let g = theirs
                .forward(x.trace(theirs.alloc_grads()))
                .square()
                .mean()
                .backward();
            reference.update(&mut theirs, &g).unwrap();
        }
        for (p, q) in ours.iter().zip(&theirs.0.weight.as_vec()) {
            assert!((p - q).abs() < 1e-5, "{p} vs {q}");
        }
        assert_eq!(
            (state.step, state.slots().len(), state.slots()[0].len()),
            (5, 2, 4)
        );
    }

    /// Plain SGD and momentum against dfdx's SGD (the same arithmetic in
    /// another order: dfdx keeps the velocity un-scaled by lr).
    #[test]
    fn sgd_and_momentum_match_dfdx_sgd() {
        use dfdx::optim::{Momentum, Optimizer as _, Sgd, SgdConfig as DfdxSgd};
        for (ours, momentum) in [
            (Optimizer::sgd(0.1), None),
            (Optimizer::momentum(0.1, 0.9), Some(Momentum::Classic(0.9))),
            (Optimizer::nesterov(0.1, 0.9), Some(Momentum::Nesterov(0.9))),
        ] {
            let (w, state) = train(ours, 6);
            let dev = Cpu::seed_from_u64(3);
            let mut theirs = dev.build_module::<Net, f32>();
            let x: Tensor<Rank2<5, 3>, f32, _> = dev.sample_normal();
            let mut sgd = Sgd::new(
                &theirs,
                DfdxSgd {
                    lr: 0.1,
                    momentum,
                    weight_decay: None,
                },
            );
            for _ in 0..6 {
                let g = theirs
                    .forward(x.trace(theirs.alloc_grads()))
                    .square()
                    .mean()
                    .backward();
                sgd.update(&mut theirs, &g).unwrap();
            }
            for (p, q) in w.iter().zip(&theirs.0.weight.as_vec()) {
                assert!((p - q).abs() < 1e-5, "{ours:?}: {p} vs {q}");
            }
            assert_eq!(state.slots().len(), usize::from(momentum.is_some()));
        }
    }

    #[test]
    fn state_round_trips_and_checks_slots() {
        let (_, state) = train(Optimizer::momentum(0.1, 0.5), 2);
        let back =
            OptimizerState::from_parts(state.config, state.step, state.slots().to_vec()).unwrap();
        assert_eq!(back, state);
        assert!(OptimizerState::from_parts(Optimizer::adam(0.1), 1, vec![]).is_err());
    }

    #[test]
    fn check_rejects_what_cannot_train() {
        assert!(Optimizer::adam(1e-3).check().is_ok());
        assert!(Optimizer::adam(0.0).check().is_err());
        assert!(Optimizer::adam(f32::NAN).check().is_err());
        assert!(Optimizer::momentum(0.1, 1.0).check().is_err());
        assert!(Optimizer::nesterov(0.1, 0.0).check().is_err());
    }
}
