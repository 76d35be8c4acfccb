//! Adam exactly as Keras 3 computes it, with state that can be saved and
//! restored (dfdx's `Adam` keeps its step count and moments private, so a
//! resumed run could not continue it).
//!
//! Keras' update (keras/src/optimizers/adam.py), for step t = 1, 2, ...:
//!
//! ```text
//! α = lr · sqrt(1 - β₂ᵗ) / (1 - β₁ᵗ)
//! m ← m + (g - m)(1 - β₁)
//! v ← v + (g² - v)(1 - β₂)
//! w ← w - α · m / (sqrt(v) + ε)        // ε is added to sqrt(v), not to its bias-corrected value
//! ```
//!
//! The moments live on the host as one `Vec<f32>` per parameter tensor, in
//! the order dfdx's `TensorCollection` visits them.

use std::cell::RefCell;

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut,
};
use dfdx::prelude::*;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Parameters per parallel chunk of the update (the small tensors stay on one thread).
const CHUNK: usize = 1 << 15;

thread_local! {
    /// The gradient and weights of the tensor being updated, reused across
    /// tensors and steps (no allocation, no page faults per update).
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Adam's hyperparameters (Keras defaults except the learning rate, which the study also left at 1e-3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
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

/// Adam's state: step count and first/second moments per parameter tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    pub config: AdamConfig,
    /// Number of updates made so far.
    pub step: u64,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Self {
        Self {
            config,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Applies one update to every trainable tensor of `model` from `grads`.
    pub fn update<M: TensorCollection<f32, D>, D: Device<f32>>(
        &mut self,
        model: &mut M,
        grads: &Gradients<f32, D>,
    ) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let c = self.config;
        let alpha = c.lr * (1.0 - c.beta2.powi(t)).sqrt() / (1.0 - c.beta1.powi(t));
        let mut op = AdamOp {
            adam: self,
            grads,
            alpha,
            index: 0,
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: model,
            f: &mut op,
        })
        .map_err(|e| Error::Device(format!("{e:?}")))?;
        Ok(())
    }

    /// The first and second moments, one `Vec` per trainable tensor in visit order.
    pub fn moments(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.m, &self.v)
    }

    /// Restores a state saved from [`Adam::moments`] and [`Adam::step`].
    pub fn from_state(config: AdamConfig, step: u64, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>) -> Self {
        Self { config, step, m, v }
    }
}

struct AdamOp<'a, D: Device<f32>> {
    adam: &'a mut Adam,
    grads: &'a Gradients<f32, D>,
    alpha: f32,
    index: usize,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for AdamOp<'_, D> {
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
        if self.adam.m.len() <= i {
            self.adam.m.push(vec![0.0; n]);
            self.adam.v.push(vec![0.0; n]);
        }
        let c = self.adam.config;
        let (alpha, b1, b2) = (self.alpha, 1.0 - c.beta1, 1.0 - c.beta2);
        let (m, v) = (&mut self.adam.m[i], &mut self.adam.v[i]);
        BUFFERS.with(|cell| {
            let (g, w) = &mut *cell.borrow_mut();
            g.resize(n, 0.0);
            w.resize(n, 0.0);
            // `copy_into` is a memcpy; `as_vec` walks the tensor element by element.
            self.grads.get(p).copy_into(g);
            p.copy_into(w);
            // Independent per element (so any split gives the same bits); the
            // zipped chunks have no bounds checks and vectorise.
            m.par_chunks_mut(CHUNK)
                .zip(v.par_chunks_mut(CHUNK))
                .zip(g.par_chunks(CHUNK))
                .zip(w.par_chunks_mut(CHUNK))
                .for_each(|(((m, v), g), w)| {
                    for (((m, v), &g), w) in m.iter_mut().zip(v).zip(g).zip(w) {
                        *m += (g - *m) * b1;
                        *v += (g * g - *v) * b2;
                        *w -= alpha * *m / (v.sqrt() + c.eps);
                    }
                });
            p.copy_from(w);
        });
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With ε = 0, Keras' form α·m/sqrt(v) equals dfdx's bias-corrected
    /// m̂/sqrt(v̂) exactly, so both optimizers must agree to float rounding.
    #[test]
    fn matches_dfdx_adam_when_eps_is_zero() {
        use dfdx::optim::Optimizer;
        type Net = (
            dfdx::nn::builders::Linear<3, 4>,
            dfdx::nn::builders::Linear<4, 2>,
        );
        let dev = Cpu::seed_from_u64(3);
        let mut ours = dev.build_module::<Net, f32>();
        let mut theirs = ours.clone();
        let cfg = AdamConfig {
            lr: 0.05,
            eps: 0.0,
            ..Default::default()
        };
        let mut adam = Adam::new(cfg);
        let mut reference = dfdx::optim::Adam::new(
            &theirs,
            dfdx::optim::AdamConfig {
                lr: 0.05,
                betas: [0.9, 0.999],
                eps: 0.0,
                weight_decay: None,
            },
        );
        let x: Tensor<Rank2<5, 3>, f32, _> = dev.sample_normal();
        for _ in 0..5 {
            let g = ours
                .forward(x.trace(ours.alloc_grads()))
                .square()
                .mean()
                .backward();
            adam.update(&mut ours, &g).unwrap();
            let g = theirs
                .forward(x.trace(theirs.alloc_grads()))
                .square()
                .mean()
                .backward();
            reference.update(&mut theirs, &g).unwrap();
        }
        let (a, b) = (ours.0.weight.as_vec(), theirs.0.weight.as_vec());
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-5, "{p} vs {q}");
        }
        assert_ne!(a, dev.build_module::<Net, f32>().0.weight.as_vec());
        assert_eq!(adam.step, 5);
    }
}
