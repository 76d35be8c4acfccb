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
use dfdx::prelude::{
    Axes2, BroadcastTo, Const, Cpu, CpuError, Device, Dim, HasShape, MeanTo, NoneTape, OwnedTape,
    PutTape, Rank1, ReshapeTo, Shape, SplitTape, Tape, Tensor, TensorFromVec, TryAdd, TryDiv,
    TryMul, TrySub,
};
use dfdx::shapes::Dtype;
use rayon::prelude::*;

use super::conv2d::{max_offset, pool_relu_plane, unpool_plane, Images};
use super::gemm::{read, GemmFloat};
use super::l2::{no_regularizer, Penalty, Regularizer, Regularizers};
use super::max_pool2d::try_max_pool2d_composed;
use super::simd::{self, Isa};
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

fn image_op<B: Dim, const C: usize, const H: usize, const W: usize>(batch: B) -> BatchNormOp {
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

// ---------------------------------------------------------------------------
// Cpu: one op, parallel over channels
// ---------------------------------------------------------------------------

/// The values of channel `c` in `x` (`[batch, chan, len]`), sample by sample.
#[inline(always)]
fn channel<E>(x: &[E], op: BatchNormOp, c: usize) -> impl Iterator<Item = &[E]> {
    (0..op.batch).map(move |b| {
        let start = (b * op.chan + c) * op.len;
        &x[start..start + op.len]
    })
}

/// Mean and biased variance of channel `c`, in one pass over it: sums of
/// `d = x - x₀` and `d²` in f64 (for f32 data too), eight independent lanes
/// so that the adds vectorise and do not wait on each other, then
/// `mean = x₀ + Σd/n` and `var = Σd²/n - (Σd/n)²`. The shift by the
/// channel's first value `x₀` keeps the subtraction from cancelling when
/// the mean is large against the spread.
#[inline(always)]
fn moments<E: GemmFloat>(x: &[E], op: BatchNormOp, c: usize) -> (E, E) {
    const LANES: usize = 8;
    let f = |v: E| v.to_f64().unwrap_or_default();
    let x0 = channel(x, op, c)
        .next()
        .and_then(|xs| xs.first())
        .map_or(0.0, |&v| f(v));
    let (mut s, mut q) = ([0f64; LANES], [0f64; LANES]);
    for xs in channel(x, op, c) {
        let chunks = xs.chunks_exact(LANES);
        let tail = chunks.remainder();
        for chunk in chunks {
            for l in 0..LANES {
                let d = f(chunk[l]) - x0;
                s[l] += d;
                q[l] += d * d;
            }
        }
        for (l, &v) in tail.iter().enumerate() {
            let d = f(v) - x0;
            s[l] += d;
            q[l] += d * d;
        }
    }
    let n = op.count() as f64;
    let mean_d = s.iter().sum::<f64>() / n;
    let var = (q.iter().sum::<f64>() / n - mean_d * mean_d).max(0.0);
    (
        E::from_f64(x0 + mean_d).unwrap_or_default(),
        E::from_f64(var).unwrap_or_default(),
    )
}

/// [`moments`] of every channel, in parallel over channels.
fn all_moments<E: GemmFloat>(x: &[E], op: BatchNormOp) -> (Vec<E>, Vec<E>) {
    let isa = Isa::detect();
    let stats: Vec<(E, E)> = (0..op.chan)
        .into_par_iter()
        .map(|c| simd::run!(isa, |_isa| moments(x, op, c)))
        .collect();
    stats.into_iter().unzip()
}

/// `y = (x - mean[c]) · scale[c] + shift[c]` with `scale = gamma / sqrt(var + eps)`,
/// written into `y` (`[batch, chan, len]`), in parallel over samples.
fn normalize<E: GemmFloat>(x: &[E], y: &mut [E], op: BatchNormOp, scale: &[E], shift: &[E]) {
    let sample = op.chan * op.len;
    y.par_chunks_mut(sample)
        .zip(x.par_chunks(sample))
        .for_each(|(ys, xs)| {
            for c in 0..op.chan {
                let range = c * op.len..(c + 1) * op.len;
                let (a, b) = (scale[c], shift[c]);
                for (y, &x) in ys[range.clone()].iter_mut().zip(&xs[range]) {
                    *y = x * a + b;
                }
            }
        });
}

/// `1 / sqrt(var + eps)`, computed in f64.
fn inv_std<E: GemmFloat>(var: E, eps: f32) -> E {
    let v = var.to_f64().unwrap_or_default() + eps as f64;
    E::from_f64(1.0 / v.sqrt()).unwrap_or_default()
}

/// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean · scale` per channel.
fn affine<E: GemmFloat>(
    gamma: &[E],
    beta: &[E],
    mean: &[E],
    var: &[E],
    eps: f32,
) -> (Vec<E>, Vec<E>) {
    let scale: Vec<E> = (0..gamma.len())
        .map(|c| gamma[c] * inv_std(var[c], eps))
        .collect();
    let shift = (0..gamma.len())
        .map(|c| beta[c] - mean[c] * scale[c])
        .collect();
    (scale, shift)
}

fn try_batch_norm_train_cpu<S: Shape, E: GemmFloat, const C: usize>(
    op: BatchNormOp,
    x: Tensor<S, E, Cpu, OwnedTape<E, Cpu>>,
    gamma: &Tensor<Rank1<C>, E, Cpu>,
    beta: &Tensor<Rank1<C>, E, Cpu>,
    epsilon: f32,
) -> Result<Normalized<S, C, E, Cpu>, CpuError> {
    let (x, mut tape) = x.split_tape();
    let xs = read(&x); // kept for the backward pass
    let (g, b) = (gamma.as_vec(), beta.as_vec());
    let (mean, var) = all_moments(&xs, op);
    let (scale, shift) = affine(&g, &b, &mean, &var, epsilon);
    let mut y = vec![E::default(); xs.len()];
    normalize(&xs, &mut y, op, &scale, &shift);
    let dev = x.device().clone();
    let y = dev.try_tensor_from_vec(y, *x.shape())?;

    let (x_ghost, y_ghost) = (x.ghost(), y.ghost());
    let (g_ghost, b_ghost) = (gamma.ghost(), beta.ghost());
    let inv_std: Vec<E> = var.iter().map(|&v| inv_std(v, epsilon)).collect();
    let mean_k = mean.clone();
    tape.add_backward_op(move |grads| {
        let gy = std::mem::take::<Vec<E>>(grads.get_or_alloc_mut(&y_ghost)?);
        let n = E::from_usize(op.count()).unwrap_or_default();
        // Per channel: Σ gy and Σ gy·x̂.
        let sums: Vec<(E, E)> = (0..C)
            .into_par_iter()
            .map(|c| {
                let (m, s) = (mean_k[c], inv_std[c]);
                let mut sum_g = E::default();
                let mut sum_gx = E::default();
                for (gs, xv) in channel(&gy, op, c).zip(channel(&xs, op, c)) {
                    for (&g, &x) in gs.iter().zip(xv) {
                        sum_g += g;
                        sum_gx += g * (x - m) * s;
                    }
                }
                (sum_g, sum_gx)
            })
            .collect();
        {
            let dgamma: &mut Vec<E> = grads.get_or_alloc_mut(&g_ghost)?;
            for (d, &(_, sum_gx)) in dgamma.iter_mut().zip(&sums) {
                *d += sum_gx;
            }
        }
        {
            let dbeta: &mut Vec<E> = grads.get_or_alloc_mut(&b_ghost)?;
            for (d, &(sum_g, _)) in dbeta.iter_mut().zip(&sums) {
                *d += sum_g;
            }
        }
        // dx = gamma/σ · (gy - Σgy/n - x̂ · Σgy·x̂/n)
        let sample = op.chan * op.len;
        let gx: &mut Vec<E> = grads.get_or_alloc_mut(&x_ghost)?;
        gx.par_chunks_mut(sample)
            .zip(gy.par_chunks(sample))
            .zip(xs.par_chunks(sample))
            .for_each(|((gxs, gys), xv)| {
                for c in 0..op.chan {
                    let range = c * op.len..(c + 1) * op.len;
                    let (m, s) = (mean_k[c], inv_std[c]);
                    let k = g[c] * s;
                    let (mg, mgx) = (sums[c].0 / n, sums[c].1 / n);
                    for ((gx, &gy), &x) in gxs[range.clone()]
                        .iter_mut()
                        .zip(&gys[range.clone()])
                        .zip(&xv[range])
                    {
                        let xhat = (x - m) * s;
                        *gx += k * (gy - mg - xhat * mgx);
                    }
                }
            });
        **grads.get_or_alloc_mut(&y_ghost)? = gy;
        Ok(())
    });
    let stats = BatchStats {
        mean: dev.try_tensor_from_vec(mean, (Const::<C>,))?,
        variance: dev.try_tensor_from_vec(var, (Const::<C>,))?,
    };
    Ok((y.put_tape(tape), stats))
}

#[allow(clippy::too_many_arguments)]
fn try_batch_norm_eval_cpu<S: Shape, E: GemmFloat, const C: usize>(
    op: BatchNormOp,
    x: Tensor<S, E, Cpu>,
    gamma: &Tensor<Rank1<C>, E, Cpu>,
    beta: &Tensor<Rank1<C>, E, Cpu>,
    mean: &Tensor<Rank1<C>, E, Cpu>,
    variance: &Tensor<Rank1<C>, E, Cpu>,
    epsilon: f32,
) -> Result<Tensor<S, E, Cpu>, CpuError> {
    let xs = read(&x);
    let (scale, shift) = affine(
        &gamma.as_vec(),
        &beta.as_vec(),
        &mean.as_vec(),
        &variance.as_vec(),
        epsilon,
    );
    let mut y = vec![E::default(); xs.len()];
    normalize(&xs, &mut y, op, &scale, &shift);
    x.device().try_tensor_from_vec(y, *x.shape())
}

/// A training step's statistics per channel and the affine map they give
/// (`y = x · scale + shift`), for the fused block (`conv_bn_block.rs`).
pub(super) struct StepStats<E> {
    /// The batch mean.
    pub mean: Vec<E>,
    /// The batch's biased variance.
    pub var: Vec<E>,
    /// `1 / sqrt(var + eps)`.
    pub inv_std: Vec<E>,
    /// `gamma / sqrt(var + eps)`.
    pub scale: Vec<E>,
    /// `beta - mean · scale`.
    pub shift: Vec<E>,
}

impl<E: GemmFloat> StepStats<E> {
    /// The statistics from each image's plane moments (`[batch, chan, 2]`:
    /// mean, sum of squared deviations, over `op.len` values each; see
    /// `conv2d::plane_moments`), combined image by image in order with Chan
    /// et al.'s update `M2 = M2ₐ + M2ᵦ + δ²·nₐnᵦ/n`, `mean = meanₐ + δ·nᵦ/n`.
    pub(super) fn from_planes(
        planes: &[f64],
        op: BatchNormOp,
        gamma: &[E],
        beta: &[E],
        eps: f32,
    ) -> Self {
        let len = op.len as f64;
        let (mut mean, mut var) = (Vec::with_capacity(op.chan), Vec::with_capacity(op.chan));
        for c in 0..op.chan {
            let (mut n, mut m, mut m2) = (0.0f64, 0.0f64, 0.0f64);
            for b in 0..op.batch {
                let at = (b * op.chan + c) * 2;
                let (mb, m2b) = (planes[at], planes[at + 1]);
                let total = n + len;
                let delta = mb - m;
                m += delta * len / total;
                m2 += m2b + delta * delta * n * len / total;
                n = total;
            }
            mean.push(E::from_f64(m).unwrap_or_default());
            var.push(E::from_f64(m2 / n.max(1.0)).unwrap_or_default());
        }
        Self::with(mean, var, gamma, beta, eps)
    }

    fn with(mean: Vec<E>, var: Vec<E>, gamma: &[E], beta: &[E], eps: f32) -> Self {
        let (scale, shift) = affine(gamma, beta, &mean, &var, eps);
        let inv_std = var.iter().map(|&v| inv_std(v, eps)).collect();
        Self {
            mean,
            var,
            inv_std,
            scale,
            shift,
        }
    }
}

/// `y = maxpool(relu(x · scale + shift))` per image and channel of `x`
/// (`[batch, chan, HO·WO]`, rows of `wo`), pooled (`PK`, `PS`; `1, 1`: none)
/// by the convolutions' own rule (`conv2d::pool_relu_plane`: first maximum,
/// the byte naming it in `arg`, `DEAD` where the ReLU cut), into `y`
/// (`[batch, chan, PHO·PWO]`, rows of `pwo`). Parallel over images; each
/// normalised plane lives in a buffer of one plane.
pub(super) fn normalize_relu_pool<E: GemmFloat, const PK: usize, const PS: usize>(
    x: &[E],
    op: BatchNormOp,
    (wo, pwo): (usize, usize),
    st: &StepStats<E>,
    y: &mut [E],
    arg: &mut [u8],
) {
    let (plane, chan) = (op.len, op.chan);
    let plane_out = y.len() / (op.batch * chan).max(1);
    let isa = Isa::detect();
    y.par_chunks_mut(chan * plane_out)
        .zip(arg.par_chunks_mut(chan * plane_out))
        .zip(x.par_chunks(chan * plane))
        .for_each(|((ys, args), xv)| {
            simd::run!(isa, |_isa| {
                let mut normed = vec![E::default(); plane];
                for c in 0..chan {
                    let (a, b) = (st.scale[c], st.shift[c]);
                    for (n, &v) in normed.iter_mut().zip(&xv[c * plane..][..plane]) {
                        *n = v * a + b;
                    }
                    let out = c * plane_out..(c + 1) * plane_out;
                    pool_relu_plane::<E, PK, PS>(
                        true,
                        wo,
                        pwo,
                        &normed,
                        &mut ys[out.clone()],
                        Some(&mut args[out]),
                    );
                }
            })
        });
}

/// The adjoint of batchnorm followed by [`normalize_relu_pool`]: from the
/// output gradient `gy` and the bytes `arg`, the gradient of its input `x`
/// written into `gx` (same shape as `x`), and per channel `(Σ gy', Σ gy'·x̂)`
/// (`gy'` the gradient at the normalised values): beta's and gamma's
/// gradients. Two passes, parallel over images: the sums from the outputs
/// alone (`gy'` is zero off the windows' maxima: one read of `x` per live
/// output), added up in image order; then per plane `gy'` routed to each
/// window's maximum (`conv2d::unpool_plane`) and, while in cache,
/// `gx = gamma/σ · (gy' - Σgy'/n - x̂ · Σgy'·x̂/n)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn normalize_relu_pool_backward<E: GemmFloat, const PK: usize, const PS: usize>(
    gy: &[E],
    arg: &[u8],
    x: &[E],
    op: BatchNormOp,
    (wo, pwo): (usize, usize),
    st: &StepStats<E>,
    gamma: &[E],
    gx: &mut [E],
) -> Vec<(E, E)> {
    let (plane, chan) = (op.len, op.chan);
    let plane_out = gy.len() / (op.batch * chan).max(1);
    let isa = Isa::detect();
    let per_image: Vec<Vec<(E, E)>> = gy
        .par_chunks(chan * plane_out)
        .zip(arg.par_chunks(chan * plane_out))
        .zip(x.par_chunks(chan * plane))
        .map(|((gys, args), xv)| {
            simd::run!(isa, |_isa| {
                (0..chan)
                    .map(|c| {
                        let x_plane = &xv[c * plane..][..plane];
                        let out = c * plane_out..(c + 1) * plane_out;
                        let (m, s) = (st.mean[c], st.inv_std[c]);
                        let mut sum_g = E::default();
                        let mut sum_gx = E::default();
                        for (o, (&g, &a)) in gys[out.clone()].iter().zip(&args[out]).enumerate() {
                            if let Some(at) = max_offset::<PK, PS>(o, a, wo, pwo) {
                                sum_g += g;
                                sum_gx += g * (x_plane[at] - m) * s;
                            }
                        }
                        (sum_g, sum_gx)
                    })
                    .collect()
            })
        })
        .collect();
    let mut sums = vec![(E::default(), E::default()); chan];
    for image in &per_image {
        for (total, &(sg, sgx)) in sums.iter_mut().zip(image) {
            total.0 += sg;
            total.1 += sgx;
        }
    }
    let n = E::from_usize(op.count()).unwrap_or_default();
    gx.par_chunks_mut(chan * plane)
        .zip(gy.par_chunks(chan * plane_out))
        .zip(arg.par_chunks(chan * plane_out))
        .zip(x.par_chunks(chan * plane))
        .for_each(|(((gxs, gys), args), xv)| {
            simd::run!(isa, |_isa| {
                for c in 0..chan {
                    let range = c * plane..(c + 1) * plane;
                    let out = c * plane_out..(c + 1) * plane_out;
                    let g_plane = &mut gxs[range.clone()];
                    unpool_plane::<E, PK, PS>(wo, pwo, &gys[out.clone()], &args[out], g_plane);
                    let (m, s) = (st.mean[c], st.inv_std[c]);
                    let k = gamma[c] * s;
                    let (mg, mgx) = (sums[c].0 / n, sums[c].1 / n);
                    for (gx, &x) in g_plane.iter_mut().zip(&xv[range]) {
                        let xhat = (x - m) * s;
                        *gx = k * (*gx - mg - xhat * mgx);
                    }
                }
            })
        });
    sums
}

macro_rules! cpu_batch_norm {
    ($($E:ty),+) => {$(
        impl BatchNormKernel<$E> for Cpu {
            fn try_batch_norm_train<S: Shape, const C: usize>(
                op: BatchNormOp,
                x: Tensor<S, $E, Self, OwnedTape<$E, Self>>,
                gamma: &Tensor<Rank1<C>, $E, Self>,
                beta: &Tensor<Rank1<C>, $E, Self>,
                epsilon: f32,
            ) -> Result<Normalized<S, C, $E, Self>, CpuError> {
                try_batch_norm_train_cpu(op, x, gamma, beta, epsilon)
            }

            fn try_batch_norm_eval<S: Shape, const C: usize>(
                op: BatchNormOp,
                x: Tensor<S, $E, Self>,
                gamma: &Tensor<Rank1<C>, $E, Self>,
                beta: &Tensor<Rank1<C>, $E, Self>,
                mean: &Tensor<Rank1<C>, $E, Self>,
                variance: &Tensor<Rank1<C>, $E, Self>,
                epsilon: f32,
            ) -> Result<Tensor<S, $E, Self>, CpuError> {
                try_batch_norm_eval_cpu(op, x, gamma, beta, mean, variance, epsilon)
            }
        }
    )+};
}

cpu_batch_norm!(f32, f64);

// ---------------------------------------------------------------------------
// Composed (Cuda): dfdx ops on x viewed as (B, C, L)
// ---------------------------------------------------------------------------

/// `(B, C, L)`: the input's batch, channels and values per channel.
type Grouped<const C: usize> = (usize, Const<C>, usize);

/// Training from dfdx ops: batch statistics on the tape, then the affine map.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
#[allow(clippy::type_complexity)]
fn try_batch_norm_train_composed<S: Shape, E: Dtype, D: Device<E>, const C: usize>(
    op: BatchNormOp,
    x: Tensor<S, E, D, OwnedTape<E, D>>,
    gamma: &Tensor<Rank1<C>, E, D>,
    beta: &Tensor<Rank1<C>, E, D>,
    epsilon: f32,
) -> Result<Normalized<S, C, E, D>, D::Err> {
    type T<E, D> = OwnedTape<E, D>;
    let shape = *x.shape();
    let grouped: Grouped<C> = (op.batch, Const, op.len);
    let x = x.try_reshape_like(&grouped)?; // [B, C, L]
                                           // Each statistic is consumed once below, which merges its tape (its
                                           // backward ops) into the output's; the copies in `stats` carry none.
    let mean = x.retaped::<T<E, D>>().try_mean::<Rank1<C>, Axes2<0, 2>>()?; // [C]
    let mean_stat = mean.retaped::<NoneTape>();
    let centered = x.try_sub(mean.try_broadcast_like(&grouped)?)?; // [B, C, L]
    let var = centered
        .retaped::<T<E, D>>()
        .try_square()?
        .try_mean::<Rank1<C>, Axes2<0, 2>>()?; // [C], biased
    let stats = BatchStats {
        mean: mean_stat,
        variance: var.retaped::<NoneTape>(),
    };
    let std = var
        .try_add(E::from_f32(epsilon).unwrap_or_default())?
        .try_sqrt()?; // [C]
    let scale = gamma.retaped::<T<E, D>>().try_div(std)?; // [C]
    let y = centered.try_mul(scale.try_broadcast_like(&grouped)?)?;
    let y = y.try_add(beta.retaped::<T<E, D>>().try_broadcast_like(&grouped)?)?;
    Ok((y.try_reshape_like(&shape)?, stats))
}

/// Batchnorm (training), ReLU and max pooling (`PK`, `PS`) from dfdx ops:
/// the composed batchnorm, dfdx's ReLU, the composed max pooling; what
/// `ConvBnBlock` runs after its convolution on `Cuda`.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
#[allow(clippy::type_complexity)]
pub(super) fn try_batch_norm_relu_pool_train_composed<
    B: Dim,
    E: Dtype,
    D: Device<E>,
    const C: usize,
    const HO: usize,
    const WO: usize,
    const PK: usize,
    const PS: usize,
    const PHO: usize,
    const PWO: usize,
>(
    x: Images<B, C, HO, WO, E, D, OwnedTape<E, D>>,
    gamma: &Tensor<Rank1<C>, E, D>,
    beta: &Tensor<Rank1<C>, E, D>,
    epsilon: f32,
) -> Result<Normalized<(B, Const<C>, Const<PHO>, Const<PWO>), C, E, D>, D::Err> {
    let op = image_op::<B, C, HO, WO>(x.shape().0);
    let (y, stats) = try_batch_norm_train_composed(op, x, gamma, beta, epsilon)?;
    let y = y.try_relu()?;
    let y = try_max_pool2d_composed::<B, E, D, OwnedTape<E, D>, C, PK, PS, HO, WO, PHO, PWO>(y)?;
    Ok((y, stats))
}

/// Evaluation from dfdx ops, with the given statistics.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
#[allow(clippy::too_many_arguments)]
fn try_batch_norm_eval_composed<S: Shape, E: Dtype, D: Device<E>, const C: usize>(
    op: BatchNormOp,
    x: Tensor<S, E, D>,
    gamma: &Tensor<Rank1<C>, E, D>,
    beta: &Tensor<Rank1<C>, E, D>,
    mean: &Tensor<Rank1<C>, E, D>,
    variance: &Tensor<Rank1<C>, E, D>,
    epsilon: f32,
) -> Result<Tensor<S, E, D>, D::Err> {
    let shape = *x.shape();
    let grouped: Grouped<C> = (op.batch, Const, op.len);
    let x = x.try_reshape_like(&grouped)?; // [B, C, L]
    let std = variance
        .clone()
        .try_add(E::from_f32(epsilon).unwrap_or_default())?
        .try_sqrt()?;
    let scale = gamma.clone().try_div(std)?; // [C]
    let centered = x.try_sub(mean.clone().try_broadcast_like(&grouped)?)?;
    let y = centered.try_mul(scale.try_broadcast_like(&grouped)?)?;
    let y = y.try_add(beta.clone().try_broadcast_like(&grouped)?)?;
    y.try_reshape_like(&shape)
}

#[cfg(feature = "cuda")]
impl<E: Dtype> BatchNormKernel<E> for dfdx::tensor::Cuda
where
    dfdx::tensor::Cuda: Device<E>,
{
    fn try_batch_norm_train<S: Shape, const C: usize>(
        op: BatchNormOp,
        x: Tensor<S, E, Self, OwnedTape<E, Self>>,
        gamma: &Tensor<Rank1<C>, E, Self>,
        beta: &Tensor<Rank1<C>, E, Self>,
        epsilon: f32,
    ) -> Result<Normalized<S, C, E, Self>, Self::Err> {
        try_batch_norm_train_composed(op, x, gamma, beta, epsilon)
    }

    fn try_batch_norm_eval<S: Shape, const C: usize>(
        op: BatchNormOp,
        x: Tensor<S, E, Self>,
        gamma: &Tensor<Rank1<C>, E, Self>,
        beta: &Tensor<Rank1<C>, E, Self>,
        mean: &Tensor<Rank1<C>, E, Self>,
        variance: &Tensor<Rank1<C>, E, Self>,
        epsilon: f32,
    ) -> Result<Tensor<S, E, Self>, Self::Err> {
        try_batch_norm_eval_composed(op, x, gamma, beta, mean, variance, epsilon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::f32_bits;
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
