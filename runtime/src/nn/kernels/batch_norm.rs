//! Batchnorm's kernels: [`BatchNormKernel`] for `Cpu` (per-channel moments
//! in f64, then one pass that normalises; for `ConvBnBlock`, one pass that
//! normalises, applies the ReLU and max-pools) and for `Cuda` (public dfdx
//! ops).

use dfdx::prelude::{
    Axes2, BroadcastTo, Const, Cpu, CpuError, Device, Dim, HasShape, MeanTo, NoneTape, OwnedTape,
    PutTape, Rank1, ReshapeTo, Shape, SplitTape, Tape, Tensor, TensorFromVec, TryAdd, TryDiv,
    TryMul, TrySub,
};
use dfdx::shapes::Dtype;
use rayon::prelude::*;

use crate::nn::batch_norm::{image_op, BatchNormKernel, BatchNormOp, BatchStats, Normalized};
use crate::nn::conv2d::Images;
use crate::nn::kernels::gemm::{read, GemmFloat};
use crate::nn::kernels::pool::{
    max_offset, pool_relu_plane, try_max_pool2d_composed, unpool_plane,
};
use crate::nn::kernels::simd::{self, Isa};

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

pub(crate) fn try_batch_norm_train_cpu<S: Shape, E: GemmFloat, const C: usize>(
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
    /// `kernels::conv2d::plane_moments`), combined image by image in order with Chan
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
pub(crate) fn try_batch_norm_train_composed<S: Shape, E: Dtype, D: Device<E>, const C: usize>(
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
pub(crate) fn try_batch_norm_eval_composed<S: Shape, E: Dtype, D: Device<E>, const C: usize>(
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
