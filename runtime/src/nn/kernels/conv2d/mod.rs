//! The convolution's kernels: [`Conv2DKernel`] for each device, and the one
//! place that picks the Cpu path.
//!
//! - `Cpu` (f32, f64): [`forward_any`] / [`backward_any`] choose, in order,
//!   - `direct.rs`: a 1-channel first layer with 2x2 pools, per pooling window;
//!   - `winograd.rs`: Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with
//!     8+ input channels;
//!   - `im2col.rs`: im2col + `gemm` for everything else.
//!
//!   Each fuses the bias, the ReLU and max pooling as [`Fusion`] says (the
//!   pooling rule is `kernels/pool.rs`), is parallel over the batch in a
//!   fixed split of tasks (`kernels/tasks.rs`), and is bit-identical for any
//!   number of threads.
//! - `Cuda` (feature `cuda`): `composed.rs`, public dfdx ops (`gather`-based
//!   im2col + `matmul`); the tests run it on `Cpu` against the fast kernels.

#[cfg_attr(not(feature = "cuda"), allow(dead_code))] // the Cpu tests use it
mod composed;
mod direct;
mod im2col;
mod winograd;

use dfdx::prelude::{
    Const, Cpu, CpuError, Dim, HasShape, PutTape, Rank1, Rank4, ReshapeTo, SplitTape, Tape, Tensor,
    TensorFromVec,
};

#[cfg(test)]
pub(crate) use composed::try_conv2d_composed;
#[cfg_attr(not(feature = "cuda"), allow(unused_imports))] // the Cpu tests use it
pub(crate) use composed::try_conv2d_fused_composed;
use im2col::{backward, forward};

use crate::nn::conv2d::{Conv2DKernel, Conv2DOp, Fusion, Images};
use crate::nn::kernels::gemm::{add_assign, forward_on, read, GemmFloat};
use crate::nn::kernels::recycle::Recycled;

macro_rules! device_conv2d {
    ($device:ty, $f:ident, [$($extra:ty),*], $E:ty) => {
        impl Conv2DKernel<$E> for $device {
            fn try_conv2d<
                B: Dim,
                T: Tape<$E, Self>,
                const I: usize,
                const O: usize,
                const KH: usize,
                const KW: usize,
                const H: usize,
                const W: usize,
                const HO: usize,
                const WO: usize,
                const PK: usize,
                const PS: usize,
                const PHO: usize,
                const PWO: usize,
            >(
                op: Conv2DOp,
                fusion: Fusion,
                x: Images<B, I, H, W, $E, Self, T>,
                weight: &Tensor<Rank4<O, I, KH, KW>, $E, Self>,
                bias: &Tensor<Rank1<O>, $E, Self>,
            ) -> Result<Images<B, O, PHO, PWO, $E, Self, T>, Self::Err> {
                $f::<$E, B, T, $($extra,)* I, O, KH, KW, H, W, HO, WO, PK, PS, PHO, PWO>(
                    op, fusion, x, weight, bias,
                )
            }
        }
    };
}

device_conv2d!(dfdx::tensor::Cpu, try_conv2d, [], f32);
device_conv2d!(dfdx::tensor::Cpu, try_conv2d, [], f64);
#[cfg(feature = "cuda")]
device_conv2d!(dfdx::tensor::Cuda, try_conv2d_fused_composed, [Self], f32);
#[cfg(feature = "cuda")]
device_conv2d!(dfdx::tensor::Cuda, try_conv2d_fused_composed, [Self], f64);

/// The Cpu implementation of [`Conv2DKernel::try_conv2d`].
#[allow(clippy::type_complexity)]
fn try_conv2d<
    E: GemmFloat,
    B: Dim,
    T: Tape<E, Cpu>,
    const I: usize,
    const O: usize,
    const KH: usize,
    const KW: usize,
    const H: usize,
    const W: usize,
    const HO: usize,
    const WO: usize,
    const PK: usize,
    const PS: usize,
    const PHO: usize,
    const PWO: usize,
>(
    op: Conv2DOp,
    fusion: Fusion,
    x: Images<B, I, H, W, E, Cpu, T>,
    weight: &Tensor<Rank4<O, I, KH, KW>, E, Cpu>,
    bias: &Tensor<Rank1<O>, E, Cpu>,
) -> Result<Images<B, O, PHO, PWO, E, Cpu, T>, CpuError> {
    debug_assert!(fusion.pool_k == PK && fusion.pool_s == PS);
    debug_assert!(fusion.h_out == PHO && fusion.w_out == PWO);
    let (x, mut tape) = x.try_contiguous()?.split_tape();
    let batch = x.shape().0;
    // Parameters are contiguous: `try_contiguous` only clones the handle.
    let w_buf = read(&weight.clone().try_contiguous()?);
    let b_buf = read(&bias.clone().try_contiguous()?);

    let mut y = vec![E::default(); op.batch * O * fusion.plane_out()];
    // Per output element: the offset of its maximum in the pooling window
    // (DEAD where the ReLU cut it); kept for the backward pass. NCHW order,
    // except where the direct and Winograd paths pool 2x2 windows
    // channels-last as they compute them: `[B, PHO·PWO, O]` there.
    let mut arg = if T::OWNS_TAPE && !fusion.is_identity() {
        Recycled::filled(y.len(), 0u8)
    } else {
        Recycled::empty()
    };
    let run = |x_buf: &[E]| {
        forward_any::<E, WO, PK, PS>(
            &op,
            &fusion,
            x_buf,
            &w_buf,
            &b_buf,
            &mut y,
            &mut arg,
            &mut [],
        );
    };
    // The input, kept for the backward pass; evaluation keeps nothing.
    let x_buf = forward_on(&x, T::OWNS_TAPE, run);
    let y = x
        .device()
        .try_tensor_from_vec(y, (batch, Const::<O>, Const::<PHO>, Const::<PWO>))?;

    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, b_ghost, y_ghost) =
            (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            // Move dY out of its slot (no copy) so the other slots can be borrowed.
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_ghost)?);
            let gx = if fusion.input_grad {
                Some(&mut grads.get_or_alloc_mut(&x_ghost)?[..])
            } else {
                None
            };
            let (gw, gb) =
                backward_any::<E, WO, PK, PS>(&op, &fusion, &x_buf, &w_buf, &gy, &arg, gx);
            add_assign(grads.get_or_alloc_mut(&w_ghost)?, &gw);
            add_assign(grads.get_or_alloc_mut(&b_ghost)?, &gb);
            **grads.get_or_alloc_mut(&y_ghost)? = gy;
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// The forward pass by the fastest path that applies: direct (a 1-channel
/// first layer with 2x2 pools), Winograd (3x3, stride 1, 8+ channels), or
/// im2col + gemm. Writes every element of `y` (and of `arg` when not empty).
///
/// # Shapes
/// `x: [B, I, H, W]`, `w: [O, I·KH·KW]`, `b: [O]`, `y, arg: [B, O, PHO·PWO]`.
///
/// `moments` (empty, or `[B, O, 2]`; identity fusion only) receives each
/// output plane's mean and sum of squared deviations ([`plane_moments`]),
/// taken while the image is in cache.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_any<E: GemmFloat, const WO: usize, const PK: usize, const PS: usize>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    w: &[E],
    b: &[E],
    y: &mut [E],
    arg: &mut [u8],
    moments: &mut [f64],
) {
    debug_assert!(moments.is_empty() || f.is_identity());
    if direct::forward_applies::<E>(op, f) {
        direct::forward(op, f, x, w, b, y, arg);
    } else if winograd::applies(op) {
        winograd::forward::<E, PK, PS>(op, f, x, w, b, y, arg, moments);
    } else {
        forward::<E, WO, PK, PS>(op, f, x, w, b, y, arg, moments);
    }
}

/// Per channel plane of one image's output `y: [O, p]`: its mean and its
/// sum of squared deviations from that mean, in f64 (eight lanes), into
/// `out: [O, 2]`. Batchnorm adds them up over the images (Chan et al.'s
/// pairwise update, `kernels::batch_norm::StepStats::from_planes`).
#[inline(always)]
pub(crate) fn plane_moments<E: GemmFloat>(y: &[E], p: usize, out: &mut [f64]) {
    const LANES: usize = 8;
    let f = |v: E| v.to_f64().unwrap_or_default();
    for (plane, out) in y.chunks_exact(p).zip(out.chunks_exact_mut(2)) {
        let chunks = plane.chunks_exact(LANES);
        let tail = chunks.remainder();
        let mut s = [0f64; LANES];
        for chunk in chunks.clone() {
            for l in 0..LANES {
                s[l] += f(chunk[l]);
            }
        }
        let mean = (s.iter().sum::<f64>() + tail.iter().map(|&v| f(v)).sum::<f64>()) / p as f64;
        let mut q = [0f64; LANES];
        for chunk in chunks {
            for l in 0..LANES {
                let d = f(chunk[l]) - mean;
                q[l] += d * d;
            }
        }
        let tail_q: f64 = tail.iter().map(|&v| (f(v) - mean).powi(2)).sum();
        out[0] = mean;
        out[1] = q.iter().sum::<f64>() + tail_q;
    }
}

/// The backward pass matching [`forward_any`]: adds the input's gradient
/// into `gx` (when given), returns the kernel's and the bias's.
///
/// # Shapes
/// as [`backward`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_any<E: GemmFloat, const WO: usize, const PK: usize, const PS: usize>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    w: &[E],
    gy: &[E],
    arg: &[u8],
    gx: Option<&mut [E]>,
) -> (Recycled<E>, Recycled<E>) {
    if direct::applies(op, f) {
        direct::backward(op, f, x, gy, arg)
    } else if winograd::applies(op) {
        winograd::backward::<E, PK, PS>(op, f, x, w, gy, arg, gx)
    } else {
        backward::<E, WO, PK, PS>(op, f, x, w, gy, arg, gx)
    }
}
