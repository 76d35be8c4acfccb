//! `BatchNorm<C, MOMENTUM, EPSILON>`: Keras' `BatchNormalization` over the
//! channels of an image `(B, C, H, W)` or the units of a vector `(B, C)`.
//!
//! - Training (`forward_mut` on an `OwnedTape` input): each channel is
//!   normalised with its batch mean and (biased) variance over the batch and
//!   the pixels, `y = gamma · (x - mean) / sqrt(var + eps) + beta`, and the
//!   moving statistics follow Keras: `moving = moving · momentum + batch ·
//!   (1 - momentum)`, with the batch's biased variance (Keras 3's
//!   `BatchNormalization._moments`; PyTorch and dfdx use the unbiased one).
//! - Evaluation (`forward` on a `NoneTape` input): the moving statistics
//!   instead, `y = gamma · (x - moving_mean) / sqrt(moving_variance + eps) + beta`.
//!
//! `gamma` (ones) and `beta` (zeros) are trainable; `moving_mean` (zeros) and
//! `moving_variance` (ones) are tensors with `do_gradient_update: false`: the
//! optimizers skip them, `Model::tensors` reports them `trainable: false`,
//! and checkpoints save them with the rest. Keras' defaults: momentum 0.99,
//! epsilon 1e-3 (both travel as `f32` bits, as dropout's rate does).
//!
//! Two paths per device ([`BatchNormKernel`]):
//! - `Cpu` (f32, f64): one op, parallel over channels: the statistics, the
//!   normalisation, and a backward pass from the kept input
//!   (`dx = gamma/σ · (gy - mean(gy) - x̂ · mean(gy · x̂))`, `dgamma = Σ gy · x̂`,
//!   `dbeta = Σ gy`);
//! - `Cuda`: dfdx ops (`mean`, `sub`, `square`, `sqrt`, broadcasts) on the
//!   input viewed as `(B, C, H·W)`, whose backward dfdx records; the tests
//!   run it on `Cpu` against the fast one.
//!
//! PyTorch: `nn.BatchNorm2d(C, eps, momentum=1 - momentum)` (which uses the
//! unbiased variance for its running estimate); Keras:
//! `layers.BatchNormalization(momentum, epsilon)`.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::batch_norm`.

use dfdx::nn::modules::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, ModuleMut};
use dfdx::prelude::{Const, Device, Dim, HasShape, NoneTape, OwnedTape, Rank1, Shape, Tensor};
use dfdx::shapes::Dtype;

use super::l2::{no_regularizer, Penalty, Regularizer, Regularizers};
use super::L2Penalty;

/// The zero-sized description of a [`BatchNorm`](super::BatchNorm) layer.
pub mod builder {
    /// Builds a [`BatchNorm`](super::BatchNorm) with
    /// `dev.build_module::<BatchNorm<32>, f32>()`.
    ///
    /// Generics: `CHAN` channels (or units), `MOMENTUM` and `EPSILON` as
    /// `f32` bits (default Keras' 0.99 and 1e-3).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct BatchNorm<
        const CHAN: usize,
        const MOMENTUM: u32 = 0x3F7D70A4,
        const EPSILON: u32 = 0x3A83126F,
    >;
}

impl<const C: usize, const M: u32, const EPS: u32, E: Dtype, D: Device<E>> BuildOnDevice<D, E>
    for builder::BatchNorm<C, M, EPS>
{
    type Built = BatchNorm<C, E, D, M, EPS>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

/// Batch normalisation per channel (see the module docs).
///
/// Generics as [`builder::BatchNorm`]; `E` the dtype, `D` the device.
///
/// # Shapes
/// - input: `(B, C, H, W)` or `(B, C)`, any batch `B: Dim`
/// - output: the same
#[derive(Debug, Clone)]
pub struct BatchNorm<
    const C: usize,
    E: Dtype,
    D: dfdx::tensor::Storage<E>,
    const M: u32,
    const EPS: u32,
> {
    /// `gamma [C]`, trainable, ones.
    pub gamma: Tensor<Rank1<C>, E, D>,
    /// `beta [C]`, trainable, zeros.
    pub beta: Tensor<Rank1<C>, E, D>,
    /// `moving_mean [C]`, not trainable, zeros.
    pub moving_mean: Tensor<Rank1<C>, E, D>,
    /// `moving_variance [C]`, not trainable, ones.
    pub moving_variance: Tensor<Rank1<C>, E, D>,
}

impl<const C: usize, E: Dtype, D: dfdx::tensor::Storage<E>, const M: u32, const EPS: u32>
    BatchNorm<C, E, D, M, EPS>
{
    /// The momentum, checked to lie in `[0, 1]` at build time.
    pub const MOMENTUM: f32 = {
        let m = f32::from_bits(M);
        assert!(
            m >= 0.0 && m <= 1.0,
            "BatchNorm: momentum must be in [0, 1]"
        );
        m
    };
    /// Epsilon, checked to be positive and finite at build time.
    pub const EPSILON: f32 = {
        let eps = f32::from_bits(EPS);
        assert!(
            eps > 0.0 && eps.is_finite(),
            "BatchNorm: epsilon must be > 0"
        );
        eps
    };
}

impl<const C: usize, E: Dtype, D: Device<E>, const M: u32, const EPS: u32> TensorCollection<E, D>
    for BatchNorm<C, E, D, M, EPS>
{
    type To<E2: Dtype, D2: Device<E2>> = BatchNorm<C, E2, D2, M, EPS>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        // Keras' names are gamma, beta, moving_mean, moving_variance.
        let frozen = |one: bool| {
            let mut options = if one {
                TensorOptions::reset_with(|t: &mut Tensor<Rank1<C>, E, D>| t.try_fill_with_ones())
            } else {
                TensorOptions::reset_to_zeros()
            };
            options.do_gradient_update = false; // the optimizers skip it
            options
        };
        visitor.visit_fields(
            (
                Self::tensor(
                    "gamma",
                    |s| &s.gamma,
                    |s| &mut s.gamma,
                    TensorOptions::reset_with(|t| t.try_fill_with_ones()),
                ),
                Self::tensor(
                    "beta",
                    |s| &s.beta,
                    |s| &mut s.beta,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "moving_mean",
                    |s| &s.moving_mean,
                    |s| &mut s.moving_mean,
                    frozen(false),
                ),
                Self::tensor(
                    "moving_variance",
                    |s| &s.moving_variance,
                    |s| &mut s.moving_variance,
                    frozen(true),
                ),
            ),
            |(gamma, beta, moving_mean, moving_variance)| BatchNorm {
                gamma,
                beta,
                moving_mean,
                moving_variance,
            },
        )
    }
}

/// Channels and pixels per channel of a layer's input, and its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNormOp {
    /// Samples in the batch.
    pub batch: usize,
    /// Channels (or units).
    pub chan: usize,
    /// Values per channel per sample: `H·W` for an image, 1 for a vector.
    pub len: usize,
}

impl BatchNormOp {
    /// Values averaged per channel: `batch · len`.
    pub fn count(&self) -> usize {
        self.batch * self.len
    }
}

/// Batch statistics of one training step, per channel, off the tape.
pub struct BatchStats<const C: usize, E: Dtype, D: dfdx::tensor::Storage<E>> {
    /// The batch mean.
    pub mean: Tensor<Rank1<C>, E, D>,
    /// The batch's biased variance (divided by the count, as Keras).
    pub variance: Tensor<Rank1<C>, E, D>,
}

impl<const C: usize, E: Dtype, D: Device<E>> BatchStats<C, E, D> {
    /// Keras' update of the moving statistics:
    /// `moving = moving · momentum + batch · (1 - momentum)`.
    pub fn try_update(
        &self,
        moving_mean: &mut Tensor<Rank1<C>, E, D>,
        moving_variance: &mut Tensor<Rank1<C>, E, D>,
        momentum: f32,
    ) -> Result<(), D::Err> {
        let m = momentum as f64;
        moving_mean.try_axpy(m, &self.mean, 1.0 - m)?;
        moving_variance.try_axpy(m, &self.variance, 1.0 - m)
    }
}

/// A training step's output (on its tape) and the batch statistics.
pub type Normalized<S, const C: usize, E, D> =
    (Tensor<S, E, D, OwnedTape<E, D>>, BatchStats<C, E, D>);

/// Batch normalisation per device (see the module docs).
pub trait BatchNormKernel<E: Dtype>: Device<E> {
    /// Training: normalise with the batch statistics, recording the backward
    /// op (into `x`, `gamma`, `beta`) on `x`'s tape; also returns the statistics.
    #[allow(clippy::type_complexity)]
    fn try_batch_norm_train<S: Shape, const C: usize>(
        op: BatchNormOp,
        x: Tensor<S, E, Self, OwnedTape<E, Self>>,
        gamma: &Tensor<Rank1<C>, E, Self>,
        beta: &Tensor<Rank1<C>, E, Self>,
        epsilon: f32,
    ) -> Result<Normalized<S, C, E, Self>, Self::Err>;

    /// Evaluation: normalise with the given (moving) statistics.
    #[allow(clippy::too_many_arguments)]
    fn try_batch_norm_eval<S: Shape, const C: usize>(
        op: BatchNormOp,
        x: Tensor<S, E, Self>,
        gamma: &Tensor<Rank1<C>, E, Self>,
        beta: &Tensor<Rank1<C>, E, Self>,
        mean: &Tensor<Rank1<C>, E, Self>,
        variance: &Tensor<Rank1<C>, E, Self>,
        epsilon: f32,
    ) -> Result<Tensor<S, E, Self>, Self::Err>;
}

// ---------------------------------------------------------------------------
// Modules: images and vectors, training and evaluation
// ---------------------------------------------------------------------------

impl<const C: usize, E: Dtype, D: BatchNormKernel<E>, const M: u32, const EPS: u32>
    BatchNorm<C, E, D, M, EPS>
{
    #[allow(clippy::type_complexity)]
    fn try_train<S: Shape>(
        &mut self,
        op: BatchNormOp,
        x: Tensor<S, E, D, OwnedTape<E, D>>,
    ) -> Result<Tensor<S, E, D, OwnedTape<E, D>>, D::Err> {
        let (y, stats) = D::try_batch_norm_train(op, x, &self.gamma, &self.beta, Self::EPSILON)?;
        stats.try_update(
            &mut self.moving_mean,
            &mut self.moving_variance,
            Self::MOMENTUM,
        )?;
        Ok(y)
    }

    fn try_eval<S: Shape>(
        &self,
        op: BatchNormOp,
        x: Tensor<S, E, D>,
    ) -> Result<Tensor<S, E, D>, D::Err> {
        D::try_batch_norm_eval(
            op,
            x,
            &self.gamma,
            &self.beta,
            &self.moving_mean,
            &self.moving_variance,
            Self::EPSILON,
        )
    }
}

pub(crate) fn image_op<B: Dim, const C: usize, const H: usize, const W: usize>(
    batch: B,
) -> BatchNormOp {
    BatchNormOp {
        batch: batch.size(),
        chan: C,
        len: H * W,
    }
}

fn vector_op<B: Dim, const C: usize>(batch: B) -> BatchNormOp {
    BatchNormOp {
        batch: batch.size(),
        chan: C,
        len: 1,
    }
}

/// `Module` (evaluation: the moving statistics) and `ModuleMut` (training:
/// the batch statistics, updating the moving ones) for inputs of shape
/// `$S`, whose batch `$b` gives the op `$op`.
macro_rules! modules {
    ([$($generics:tt)*] $S:ty, |$b:ident| $op:expr) => {
        impl<B: Dim, const C: usize, $($generics)* E, D, const M: u32, const EPS: u32>
            Module<Tensor<$S, E, D, NoneTape>> for BatchNorm<C, E, D, M, EPS>
        where
            E: Dtype,
            D: BatchNormKernel<E>,
        {
            type Output = Tensor<$S, E, D, NoneTape>;
            type Error = D::Err;

            fn try_forward(&self, x: Tensor<$S, E, D, NoneTape>) -> Result<Self::Output, D::Err> {
                let $b = x.shape().0;
                self.try_eval($op, x)
            }
        }

        impl<B: Dim, const C: usize, $($generics)* E, D, const M: u32, const EPS: u32>
            ModuleMut<Tensor<$S, E, D, OwnedTape<E, D>>> for BatchNorm<C, E, D, M, EPS>
        where
            E: Dtype,
            D: BatchNormKernel<E>,
        {
            type Output = Tensor<$S, E, D, OwnedTape<E, D>>;
            type Error = D::Err;

            fn try_forward_mut(
                &mut self,
                x: Tensor<$S, E, D, OwnedTape<E, D>>,
            ) -> Result<Self::Output, D::Err> {
                let $b = x.shape().0;
                self.try_train($op, x)
            }
        }
    };
}

modules!(
    [const H: usize, const W: usize,]
    (B, Const<C>, Const<H>, Const<W>),
    |b| image_op::<B, C, H, W>(b)
);
modules!([] (B, Const<C>), |b| vector_op::<B, C>(b));

impl<const C: usize, E: Dtype, D: Device<E>, const M: u32, const EPS: u32> L2Penalty<E, D>
    for BatchNorm<C, E, D, M, EPS>
{
    fn try_l2_penalty(&self) -> Result<Option<Penalty<E, D>>, D::Err> {
        Ok(None)
    }
}

impl<const C: usize, E: Dtype, D: dfdx::tensor::Storage<E>, const M: u32, const EPS: u32>
    Regularizers for BatchNorm<C, E, D, M, EPS>
{
    no_regularizer!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::f32_bits;
    use crate::nn::kernels::batch_norm::{
        try_batch_norm_eval_composed, try_batch_norm_train_composed, try_batch_norm_train_cpu,
    };
    use crate::tests::{assert_close, assert_grad_close, finite_difference, test_values};
    use dfdx::prelude::*;

    type Bn = builder::BatchNorm<2, { f32_bits(0.9) }, { f32_bits(1e-3) }>;

    /// Keras `BatchNormalization(momentum=0.9, epsilon=1e-3)` in numpy, on a
    /// channels-first `(3, 2, 2, 2)` batch (Keras normalises over all axes
    /// but the channel's, with the biased variance), gamma = [1.5, -0.5],
    /// beta = [0.25, 1.0]; then two training steps (the second on `x ** 2`)
    /// and evaluation of `x` with the moving statistics:
    ///
    /// ```python
    /// import numpy as np
    /// np.set_printoptions(precision=12)
    /// x = (np.arange(24, dtype=np.float64).reshape(3, 2, 2, 2) % 7 - 2.5) / 3
    /// g, b = np.array([1.5, -0.5]), np.array([0.25, 1.0])
    /// eps, mom = np.float64(np.float32(1e-3)), np.float64(np.float32(0.9))   # stored as f32
    /// bc = lambda v: v.reshape(1, 2, 1, 1)
    /// def train(x, mm, mv):
    ///     m, v = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    ///     y = bc(g) * (x - bc(m)) / np.sqrt(bc(v) + eps) + bc(b)
    ///     return y, mm * mom + m * (1 - mom), mv * mom + v * (1 - mom)
    /// y1, mm, mv = train(x, np.zeros(2), np.ones(2))
    /// _, mm, mv = train(x ** 2, mm, mv)
    /// ye = bc(g) * (x - bc(mm)) / np.sqrt(bc(mv) + eps) + bc(b)
    /// print(repr(y1.ravel()), repr(mm), repr(mv), repr(ye.ravel()))
    /// ```
    #[test]
    fn training_and_evaluation_match_keras() {
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<Bn, f64>();
        m.gamma = dev.tensor([1.5, -0.5]);
        m.beta = dev.tensor([0.25, 1.0]);
        let xv: Vec<f64> = (0..24).map(|i| ((i % 7) as f64 - 2.5) / 3.0).collect();
        let shape = (3, Const::<2>, Const::<2>, Const::<2>);
        let x = dev.tensor_from_vec(xv.clone(), shape);
        let y1 = m.forward_mut(x.clone().traced(m.alloc_grads()));
        assert_close(&y1.as_vec(), &Y1, 1e-9);
        let x2 = dev.tensor_from_vec(xv.iter().map(|v| v * v).collect(), shape);
        let _ = m.forward_mut(x2.traced(m.alloc_grads()));
        assert_close(&m.moving_mean.as_vec(), &MOVING_MEAN, 1e-9);
        assert_close(&m.moving_variance.as_vec(), &MOVING_VAR, 1e-9);
        assert_close(&m.forward(x).as_vec(), &Y_EVAL, 1e-9);
    }

    // printed by the snippet above (`repr(float(v))` of each value)
    #[rustfmt::skip]
    const Y1: [f64; 24] = [-2.4523444898540148, -1.3714066939124088, -0.2904688979708029, 0.7904688979708029, 0.796028775869505, 0.5920575517390101, 0.38808632760851525, 1.6119136723914846, -1.3714066939124088, -0.2904688979708029, 0.7904688979708029, 1.8714066939124088, 0.5920575517390101, 0.38808632760851525, 1.6119136723914846, 1.40794244826099, -0.2904688979708029, 0.7904688979708029, 1.8714066939124088, 2.9523444898540148, 0.38808632760851525, 1.6119136723914846, 1.40794244826099, 1.203971224130495];
    #[rustfmt::skip]
    const MOVING_MEAN: [f64; 2] = [0.021296301373728996, 0.08444446418020453];
    #[rustfmt::skip]
    const MOVING_VAR: [f64; 2] = [0.8347907718153488, 0.8897530609295695];
    #[rustfmt::skip]
    const Y_EVAL: [f64; 24] = [-1.1522337677652645, -0.6053170251906081, -0.05840028261595215, 0.48851645995870396, 0.7798491255917188, 0.6032575067170205, 0.42666588784232207, 1.4862156010905123, -0.6053170251906081, -0.05840028261595215, 0.48851645995870396, 1.0354332025333601, 0.6032575067170205, 0.42666588784232207, 1.4862156010905123, 1.309623982215814, -0.05840028261595215, 0.48851645995870396, 1.0354332025333601, 1.5823499451080163, 0.42666588784232207, 1.4862156010905123, 1.309623982215814, 1.1330323633411155];

    /// Gradients of input, gamma and beta in training mode against central
    /// differences (f64), for images and for vectors; the composed (Cuda)
    /// path against the fast one.
    #[test]
    fn gradients_match_finite_differences() {
        let dev: Cpu = Default::default();
        let shape = (4, Const::<3>, Const::<2>, Const::<3>);
        let n = 4 * 3 * 6;
        let xv = test_values(n, 1);
        let r = dev.tensor_from_vec(test_values(n, 2), shape);
        let mut m = dev.build_module::<builder::BatchNorm<3>, f64>();
        m.gamma = dev.tensor_from_vec(test_values(3, 3), (Const,));
        m.beta = dev.tensor_from_vec(test_values(3, 4), (Const,));
        let loss = |m: &BatchNorm<3, f64, Cpu, 0x3F7D70A4, 0x3A83126F>, xv: &[f64]| {
            let mut m = m.clone();
            let x = dev.tensor_from_vec(xv.to_vec(), shape);
            (m.forward_mut(x.traced(m.alloc_grads())) * r.clone())
                .sum::<Rank0, _>()
                .array()
        };
        let x = dev.tensor_from_vec(xv.clone(), shape);
        let mut m1 = m.clone();
        let grads = (m1.forward_mut(x.leaky_trace()) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let num_x = finite_difference(&xv, 1e-4, |xp| loss(&m, xp));
        assert_grad_close("input", &grads.get(&x).as_vec(), &num_x, 1e-6);
        let num_g = finite_difference(&m.gamma.as_vec(), 1e-4, |gp| {
            let mut m2 = m.clone();
            m2.gamma = dev.tensor_from_vec(gp.to_vec(), (Const,));
            loss(&m2, &xv)
        });
        assert_grad_close("gamma", &grads.get(&m1.gamma).as_vec(), &num_g, 1e-6);
        let num_b = finite_difference(&m.beta.as_vec(), 1e-4, |bp| {
            let mut m2 = m.clone();
            m2.beta = dev.tensor_from_vec(bp.to_vec(), (Const,));
            loss(&m2, &xv)
        });
        assert_grad_close("beta", &grads.get(&m1.beta).as_vec(), &num_b, 1e-6);

        // the composed path: same values, gradients and statistics
        let op = BatchNormOp {
            batch: 4,
            chan: 3,
            len: 6,
        };
        let (y_c, stats) =
            try_batch_norm_train_composed(op, x.leaky_trace(), &m.gamma, &m.beta, 1e-3).unwrap();
        let (y_f, stats_f) =
            try_batch_norm_train_cpu(op, x.leaky_trace(), &m.gamma, &m.beta, 1e-3).unwrap();
        assert_close(&y_c.as_vec(), &y_f.as_vec(), 1e-12);
        assert_close(&stats.mean.as_vec(), &stats_f.mean.as_vec(), 1e-12);
        assert_close(&stats.variance.as_vec(), &stats_f.variance.as_vec(), 1e-12);
        let g_c = (y_c * r.clone()).sum::<Rank0, _>().backward();
        let g_f = (y_f * r.clone()).sum::<Rank0, _>().backward();
        assert_close(&g_c.get(&x).as_vec(), &g_f.get(&x).as_vec(), 1e-10);
        assert_close(
            &g_c.get(&m.gamma).as_vec(),
            &g_f.get(&m.gamma).as_vec(),
            1e-10,
        );
        let e_c = try_batch_norm_eval_composed(
            op,
            x.clone(),
            &m.gamma,
            &m.beta,
            &stats.mean,
            &stats.variance,
            1e-3,
        )
        .unwrap();
        let mut e_f = m.clone();
        e_f.moving_mean = stats.mean.clone();
        e_f.moving_variance = stats.variance.clone();
        assert_close(&e_c.as_vec(), &e_f.forward(x.clone()).as_vec(), 1e-12);
    }

    /// A vector input: per unit, over the batch.
    #[test]
    fn vectors_normalise_per_unit() {
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<builder::BatchNorm<3>, f64>();
        let xv = test_values(15, 7);
        let x = dev.tensor_from_vec(xv.clone(), (5, Const::<3>));
        let y = m.forward_mut(x.clone().traced(m.alloc_grads())).as_vec();
        for u in 0..3 {
            let col: Vec<f64> = (0..5).map(|b| xv[b * 3 + u]).collect();
            let mean = col.iter().sum::<f64>() / 5.0;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 5.0;
            for b in 0..5 {
                let want = (col[b] - mean) / (var + 1e-3f32 as f64).sqrt();
                assert!(
                    (y[b * 3 + u] - want).abs() < 1e-12,
                    "{} vs {want}",
                    y[b * 3 + u]
                );
            }
        }
        // gradient of one vector-input case, against central differences
        let r = dev.tensor_from_vec(test_values(15, 8), (5, Const::<3>));
        let grads = (m.clone().forward_mut(x.leaky_trace()) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let num = finite_difference(&xv, 1e-4, |xp| {
            let x = dev.tensor_from_vec(xp.to_vec(), (5, Const::<3>));
            (m.clone().forward_mut(x.leaky_trace()) * r.clone())
                .sum::<Rank0, _>()
                .array()
        });
        assert_grad_close("input", &grads.get(&x).as_vec(), &num, 1e-6);
    }

    /// Two trainable tensors and two that are not; an optimiser step leaves
    /// the moving statistics alone.
    #[test]
    fn moving_statistics_are_not_trainable() {
        use dfdx::optim::{Optimizer, Sgd, SgdConfig};
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<builder::BatchNorm<4>, f32>();
        assert_eq!(NumParams::<f32, Cpu>::num_trainable_params(&m), 8);
        let x: Tensor<(usize, Const<4>), f32, _> = dev.sample_normal_like(&(6, Const));
        let mut sgd = Sgd::new(&m, SgdConfig::default());
        let y = m.forward_mut(x.traced(m.alloc_grads()));
        let (mm, mv) = (m.moving_mean.as_vec(), m.moving_variance.as_vec());
        let grads = (y * dev.sample_normal_like(&(6, Const)))
            .sum::<Rank0, _>()
            .backward();
        sgd.update(&mut m, &grads).unwrap();
        assert_eq!(m.moving_mean.as_vec(), mm);
        assert_eq!(m.moving_variance.as_vec(), mv);
        assert_ne!(m.gamma.as_vec(), [1.0; 4]);
    }
}
