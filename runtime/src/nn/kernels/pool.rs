//! Pooling, defined once: the window rule of every Cpu max pool (fused into
//! a convolution, after batchnorm, or the `MaxPool2D` layer) and the kernels
//! of `MaxPool2D` and `AvgPool2D`.
//!
//! - **Floor:** windows are valid (Keras' `padding="valid"`): an output is
//!   `floor((in - K) / S) + 1`, and rows and columns past the last full
//!   window get no output and a zero gradient.
//! - **Ties** go to the first maximum in scan order (row by row, left to
//!   right; a later element replaces the running maximum only when strictly
//!   greater), as PyTorch's CPU kernel does. Each output keeps its window
//!   offset `kh·K + kw` in one byte for the backward pass ([`max_offset`]).
//! - **ReLU** fused into a pool keeps `max(0, window max)`; an output it cut
//!   keeps [`DEAD`] and routes no gradient. [`pool2_window`] is the 2x2 case,
//!   which the Winograd path's channels-last tiles use too.
//! - `Cuda`: public dfdx ops (`gather` of every window, then `max` or `mean`
//!   over the window axis), whose max backward gives the full gradient to
//!   every element equal to the maximum.

use dfdx::prelude::{
    Axes4, Axis, Const, Cpu, CpuError, Device, Dim, Dtype, GatherTo, HasShape, MaxTo, MeanTo,
    PermuteTo, PutTape, ReshapeTo, SplitTape, Tape, Tensor, TensorFromVec,
};
use rayon::prelude::*;

use crate::nn::avg_pool2d::{AvgPool2DKernel, Images};
use crate::nn::kernels::gemm::{read, GemmFloat};
use crate::nn::kernels::recycle::Recycled;
use crate::nn::kernels::simd::{self, Isa};
use crate::nn::max_pool2d::MaxPool2DKernel;

/// The sizes of one pooling (`MaxPool2D`, `AvgPool2D`), checked when the
/// code is built: valid windows, Keras' floored output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolOp {
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) h_in: usize,
    pub(crate) w_in: usize,
    pub(crate) h_out: usize,
    pub(crate) w_out: usize,
}

impl PoolOp {
    /// The op of a `K`x`K` pool with stride `S` from `HI`x`WI` to `HO`x`WO`;
    /// fails to build (a const-evaluation error) when the sizes disagree.
    pub(crate) const fn new<
        const K: usize,
        const S: usize,
        const HI: usize,
        const WI: usize,
        const HO: usize,
        const WO: usize,
    >() -> Self {
        assert!(K >= 1 && S >= 1, "pooling: kernel and stride must be >= 1");
        assert!(HI >= K && WI >= K, "pooling: kernel larger than the input");
        assert!(
            HO == (HI - K) / S + 1 && WO == (WI - K) / S + 1,
            "pooling: H_OUT/W_OUT must be floor((in - KERNEL_SIZE) / STRIDE) + 1"
        );
        PoolOp {
            kernel: K,
            stride: S,
            h_in: HI,
            w_in: WI,
            h_out: HO,
            w_out: WO,
        }
    }

    /// `self`, checked for a max pool: a window offset must fit in the
    /// byte each output keeps for the backward pass (so at most 16x16).
    pub(crate) const fn max_window(self) -> Self {
        assert!(
            self.kernel * self.kernel <= 256,
            "MaxPool2D: kernel larger than 16x16"
        );
        self
    }

    /// Elements per input plane.
    pub(crate) const fn plane_in(&self) -> usize {
        self.h_in * self.w_in
    }

    /// Elements per output plane.
    pub(crate) const fn plane_out(&self) -> usize {
        self.h_out * self.w_out
    }

    /// The input offsets (within a plane) of output `(oh, ow)`'s window.
    pub(crate) fn window(&self, oh: usize, ow: usize) -> impl Iterator<Item = usize> + '_ {
        let (top, left) = (oh * self.stride, ow * self.stride);
        (0..self.kernel).flat_map(move |kh| {
            let row = (top + kh) * self.w_in + left;
            row..row + self.kernel
        })
    }
}

/// `arg` value of an output the ReLU cut (its window's maximum was <= 0): no gradient.
pub(crate) const DEAD: u8 = u8::MAX;

/// Max-pools (`PK`, `PS`) one channel plane `z: [HO, WO]` of the convolution's
/// output into `y: [PHO, PWO]`, applying the ReLU when `relu`; with `arg`,
/// also stores each output's window offset `kh·PK + kw` ([`DEAD`] when the
/// ReLU cut it). Ties go to the first maximum in scan order (strictly greater
/// replaces), as [`crate::nn::modules::MaxPool2D`] does. Branch-free passes
/// over each output row, which the compiler vectorises.
#[inline(always)]
pub(crate) fn pool_relu_plane<E: GemmFloat, const PK: usize, const PS: usize>(
    relu: bool,
    wo: usize,
    pwo: usize,
    z: &[E],
    y: &mut [E],
    mut arg: Option<&mut [u8]>,
) {
    if PK == 2 && PS == 2 {
        return pool2_relu_plane(relu, wo, pwo, z, y, arg);
    }
    let span = (pwo - 1) * PS + 1; // input columns one pass reads
    for (ph, y_row) in y.chunks_exact_mut(pwo).enumerate() {
        let corner = ph * PS * wo;
        let first = &z[corner..corner + span];
        for (pw, y) in y_row.iter_mut().enumerate() {
            *y = first[pw * PS];
        }
        let mut a_row = arg.as_deref_mut().map(|a| &mut a[ph * pwo..][..pwo]);
        if let Some(a) = a_row.as_deref_mut() {
            a.fill(0);
        }
        for k in 1..PK * PK {
            let start = corner + (k / PK) * wo + k % PK;
            let src = &z[start..start + span];
            match a_row.as_deref_mut() {
                None => {
                    for (pw, y) in y_row.iter_mut().enumerate() {
                        let (v, cur) = (src[pw * PS], *y);
                        *y = if v > cur { v } else { cur };
                    }
                }
                Some(a) => {
                    for (pw, (y, a)) in y_row.iter_mut().zip(a.iter_mut()).enumerate() {
                        let (v, cur) = (src[pw * PS], *y);
                        let mask = 0u8.wrapping_sub((v > cur) as u8); // 0xff when v > cur
                        *y = if v > cur { v } else { cur };
                        *a = (*a & !mask) | (k as u8 & mask);
                    }
                }
            }
        }
        if relu {
            let zero = E::default();
            match a_row {
                None => {
                    for y in y_row.iter_mut() {
                        *y = if *y > zero { *y } else { zero };
                    }
                }
                Some(a) => {
                    for (y, a) in y_row.iter_mut().zip(a.iter_mut()) {
                        let live = *y > zero;
                        *y = if live { *y } else { zero };
                        *a = if live { *a } else { DEAD };
                    }
                }
            }
        }
    }
}

/// The rule of a 2x2 window `[a0 a1 / b0 b1]`: its first maximum in scan
/// order, found as a tree (`max(a0, a1)`, `max(b0, b1)`, then the second
/// only when strictly greater, which picks the same element), cut to 0 by
/// the ReLU when `relu` and it is not positive. Returns the value and its
/// byte: the offset `kh·2 + kw`, or [`DEAD`] where the ReLU cut it. Selects
/// and bit arithmetic, no branches (the comparisons are data-dependent coin
/// flips). Every 2x2 pooling of the crate's Cpu paths uses it: the NCHW
/// planes here (and so `MaxPool2D` and `ConvBnBlock`) and Winograd's
/// channels-last tiles; only the AVX-512 intrinsics of `direct.rs` write
/// it out again (and are tested against it).
#[inline(always)]
pub(crate) fn pool2_window<E: GemmFloat>(relu: bool, [a0, a1, b0, b1]: [E; 4]) -> (E, u8) {
    let zero = E::default();
    let right_top = a1 > a0;
    let m1 = if right_top { a1 } else { a0 };
    let right_bottom = b1 > b0;
    let m2 = if right_bottom { b1 } else { b0 };
    let bottom = m2 > m1;
    let m = if bottom { m2 } else { m1 };
    let live = m > zero; // false for NaN, as the ReLU's max(m, 0) drops it
    let dead = relu & !live;
    let col = if bottom { right_bottom } else { right_top };
    let offset = 2 * u8::from(bottom) + u8::from(col);
    (
        if dead { zero } else { m },
        offset | u8::from(dead).wrapping_neg(), // DEAD = 0xff
    )
}

/// [`pool_relu_plane`] for the common 2x2, stride-2 window: each output
/// reads two input rows at once ([`pool2_window`]).
#[inline(always)]
fn pool2_relu_plane<E: GemmFloat>(
    relu: bool,
    wo: usize,
    pwo: usize,
    z: &[E],
    y: &mut [E],
    arg: Option<&mut [u8]>,
) {
    let rows = y.chunks_exact_mut(pwo).enumerate();
    match arg {
        None => {
            for (ph, y_row) in rows {
                let r0 = &z[2 * ph * wo..][..2 * pwo];
                let r1 = &z[(2 * ph + 1) * wo..][..2 * pwo];
                for ((y, a), b) in y_row
                    .iter_mut()
                    .zip(r0.chunks_exact(2))
                    .zip(r1.chunks_exact(2))
                {
                    *y = pool2_window(relu, [a[0], a[1], b[0], b[1]]).0;
                }
            }
        }
        Some(arg) => {
            for ((ph, y_row), a_row) in rows.zip(arg.chunks_exact_mut(pwo)) {
                let r0 = &z[2 * ph * wo..][..2 * pwo];
                let r1 = &z[(2 * ph + 1) * wo..][..2 * pwo];
                let cells = y_row.iter_mut().zip(a_row.iter_mut());
                for (((y, arg), a), b) in cells.zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    (*y, *arg) = pool2_window(relu, [a[0], a[1], b[0], b[1]]);
                }
            }
        }
    }
}

/// The adjoint of [`pool_relu_plane`]: `gz: [HO, WO]` = each output gradient
/// `gy: [PHO, PWO]` at its window's maximum (0 elsewhere; overlapping windows add).
#[inline(always)]
pub(crate) fn unpool_plane<E: GemmFloat, const PK: usize, const PS: usize>(
    wo: usize,
    pwo: usize,
    gy: &[E],
    arg: &[u8],
    gz: &mut [E],
) {
    gz.fill(E::default());
    for (o, (&g, &a)) in gy.iter().zip(arg).enumerate() {
        if let Some(at) = max_offset::<PK, PS>(o, a, wo, pwo) {
            gz[at] += g;
        }
    }
}

/// Where output `o` of a pooled plane (rows of `pwo`) took its value: the
/// offset in the `[HO, WO]` plane (rows of `wo`) of its window's maximum,
/// from its [`pool_relu_plane`] byte `a`; `None` where the ReLU cut it.
#[inline(always)]
pub(crate) fn max_offset<const PK: usize, const PS: usize>(
    o: usize,
    a: u8,
    wo: usize,
    pwo: usize,
) -> Option<usize> {
    (a != DEAD).then(|| {
        let (ph, pw) = (o / pwo, o % pwo);
        let (kh, kw) = (a as usize / PK, a as usize % PK);
        (ph * PS + kh) * wo + pw * PS + kw
    })
}

macro_rules! cpu_kernel {
    ($($dtype:ty),+) => {$(
        impl MaxPool2DKernel<$dtype> for Cpu {
            fn try_max_pool2d<
                B: Dim,
                T: Tape<$dtype, Self>,
                const C: usize,
                const K: usize,
                const S: usize,
                const HI: usize,
                const WI: usize,
                const HO: usize,
                const WO: usize,
            >(
                x: Tensor<(B, Const<C>, Const<HI>, Const<WI>), $dtype, Self, T>,
            ) -> Result<Tensor<(B, Const<C>, Const<HO>, Const<WO>), $dtype, Self, T>, CpuError> {
                try_max_pool2d_cpu::<$dtype, B, T, C, K, S, HI, WI, HO, WO>(x)
            }
        }
    )+};
}

cpu_kernel!(f32, f64);

#[cfg(feature = "cuda")]
macro_rules! cuda_kernel {
    ($($dtype:ty),+) => {$(
        impl MaxPool2DKernel<$dtype> for dfdx::tensor::Cuda {
            fn try_max_pool2d<
                B: Dim,
                T: Tape<$dtype, Self>,
                const C: usize,
                const K: usize,
                const S: usize,
                const HI: usize,
                const WI: usize,
                const HO: usize,
                const WO: usize,
            >(
                x: Tensor<(B, Const<C>, Const<HI>, Const<WI>), $dtype, Self, T>,
            ) -> Result<
                Tensor<(B, Const<C>, Const<HO>, Const<WO>), $dtype, Self, T>,
                dfdx::tensor::CudaError,
            > {
                try_max_pool2d_composed::<B, $dtype, Self, T, C, K, S, HI, WI, HO, WO>(x)
            }
        }
    )+};
}

#[cfg(feature = "cuda")]
cuda_kernel!(f32, f64);

/// The CPU path: copy the (contiguous) input out, pool every plane in
/// parallel, and record a backward op that routes gradients to the argmaxes.
#[allow(clippy::type_complexity)]
fn try_max_pool2d_cpu<
    E: GemmFloat,
    B: Dim,
    T: Tape<E, Cpu>,
    const C: usize,
    const K: usize,
    const S: usize,
    const HI: usize,
    const WI: usize,
    const HO: usize,
    const WO: usize,
>(
    x: Tensor<(B, Const<C>, Const<HI>, Const<WI>), E, Cpu, T>,
) -> Result<Tensor<(B, Const<C>, Const<HO>, Const<WO>), E, Cpu, T>, CpuError> {
    let op = const { PoolOp::new::<K, S, HI, WI, HO, WO>() };
    let x = x.try_contiguous()?; // a no-op unless x is a strided view
    let (x, mut tape) = x.split_tape();
    let batch = x.shape().0;
    let planes = batch.size() * C;

    let mut out = vec![E::default(); planes * op.plane_out()]; // [B·C, HO, WO]
    let mut argmax = if T::OWNS_TAPE {
        Recycled::filled(out.len(), 0u8) // [B·C, HO, WO]: the max's offset kh·K + kw in its window
    } else {
        Recycled::empty()
    };
    // dfdx has no public `&[E]` view of a tensor: copy the buffer out, into
    // the thread's reused input buffer (fresh pages cost more than the copy).
    E::with_input(planes * op.plane_in(), |inp| {
        x.copy_into(inp); // [B·C, HI, WI]
        forward_planes::<E, K, S, HI, WI, HO, WO>(inp, &mut out, &mut argmax);
    });

    let out = x
        .device()
        .try_tensor_from_vec(out, (batch, Const, Const, Const))?;
    if T::OWNS_TAPE {
        let x_ghost = x.ghost();
        let out_ghost = out.ghost();
        tape.add_backward_op(move |grads| {
            // Grad-out and grad-in cannot be borrowed together: move grad-out's
            // buffer out of its slot for the duration, then put it back.
            let grad_out = std::mem::take::<Vec<E>>(grads.get_or_alloc_mut(&out_ghost)?);
            let grad_in: &mut Vec<E> = grads.get_or_alloc_mut(&x_ghost)?;
            backward_planes::<E, K, S, HI, WI, HO, WO>(grad_in, &grad_out, &argmax);
            let slot: &mut Vec<E> = grads.get_or_alloc_mut(&out_ghost)?;
            *slot = grad_out;
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// Planes per rayon task: about 16k input elements each, so that small
/// planes (13×13 after a first pool) do not drown in scheduling.
fn planes_per_task(plane_in: usize) -> usize {
    (16 * 1024 / plane_in.max(1)).max(1)
}

/// Max-pools `inp` (`[planes, HI, WI]`) into `out` (`[planes, HO, WO]`); when
/// `argmax` is not empty, also stores each maximum's offset `kh·K + kw` in its
/// window. A later element replaces the running maximum only when strictly
/// greater, so ties go to the first maximum in scan order.
fn forward_planes<
    E: GemmFloat,
    const K: usize,
    const S: usize,
    const HI: usize,
    const WI: usize,
    const HO: usize,
    const WO: usize,
>(
    inp: &[E],
    out: &mut [E],
    argmax: &mut [u8],
) {
    // The convolutions' fused pooling without the ReLU: one rule for both.
    let pool_plane = |x: &[E], y: &mut [E], arg: Option<&mut [u8]>| {
        pool_relu_plane::<E, K, S>(false, WI, WO, x, y, arg)
    };
    let min_len = planes_per_task(HI * WI);
    let inp = inp.par_chunks(HI * WI);
    let out = out.par_chunks_mut(HO * WO);
    let isa = Isa::detect();
    if argmax.is_empty() {
        inp.zip(out)
            .with_min_len(min_len)
            .for_each(|(x, y)| simd::run!(isa, |_isa| pool_plane(x, y, None)));
    } else {
        inp.zip(out)
            .zip(argmax.par_chunks_mut(HO * WO))
            .with_min_len(min_len)
            .for_each(|((x, y), arg)| simd::run!(isa, |_isa| pool_plane(x, y, Some(arg))));
    }
}

/// Adds each output gradient to the input element that was its window's
/// maximum (overlapping windows accumulate), plane by plane in parallel.
fn backward_planes<
    E: GemmFloat,
    const K: usize,
    const S: usize,
    const HI: usize,
    const WI: usize,
    const HO: usize,
    const WO: usize,
>(
    grad_in: &mut [E],
    grad_out: &[E],
    argmax: &[u8],
) {
    let isa = Isa::detect();
    grad_in
        .par_chunks_mut(HI * WI)
        .zip(grad_out.par_chunks(HO * WO))
        .zip(argmax.par_chunks(HO * WO))
        .with_min_len(planes_per_task(HI * WI))
        .for_each(|((gi, go), arg)| {
            simd::run!(isa, |_isa| {
                for (o, (&g, &a)) in go.iter().zip(arg).enumerate() {
                    if let Some(at) = max_offset::<K, S>(o, a, WI, WO) {
                        gi[at] += g;
                    }
                }
            })
        });
}

/// Max pooling composed of public dfdx ops, for any device (`Cuda` uses it).
///
/// `gather` collects every window, `max` reduces it; dfdx records the backward
/// pass. With ties, `max`'s backward gives the full gradient to every tied
/// element (the CPU kernel gives it to the first only).
#[allow(clippy::type_complexity)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))] // Cpu uses it in tests only
pub fn try_max_pool2d_composed<
    B: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
    const C: usize,
    const K: usize,
    const S: usize,
    const HI: usize,
    const WI: usize,
    const HO: usize,
    const WO: usize,
>(
    x: Tensor<(B, Const<C>, Const<HI>, Const<WI>), E, D, T>,
) -> Result<Tensor<(B, Const<C>, Const<HO>, Const<WO>), E, D, T>, D::Err> {
    let _checked = const { PoolOp::new::<K, S, HI, WI, HO, WO>() };
    let batch = x.shape().0;
    let w = try_windows::<B, E, D, T, C, K, S, HI, WI, HO, WO>(x)?; // [HO·WO, K·K, B·C]
    let y = w.try_max::<(usize, usize), Axis<1>>()?; // [HO·WO, B·C]
    try_unwindow::<B, E, D, T, C, HO, WO>(y, batch)
}

/// Every pooling window of `x` as a column, from public dfdx ops (for the
/// composed poolings: max here, average in `avg_pool2d.rs`): `gather` of
/// each window's pixels, the window axis in the middle. No bounds are
/// checked here; the caller's `PoolOp` or assertion does that.
///
/// # Shapes
/// `x: [B, C, HI, WI]` -> `[HO·WO, K·K, B·C]`
#[allow(clippy::type_complexity)]
pub(crate) fn try_windows<
    B: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
    const C: usize,
    const K: usize,
    const S: usize,
    const HI: usize,
    const WI: usize,
    const HO: usize,
    const WO: usize,
>(
    x: Tensor<(B, Const<C>, Const<HI>, Const<WI>), E, D, T>,
) -> Result<Tensor<(usize, usize, usize), E, D, T>, D::Err> {
    let planes = x.shape().0.size() * C;
    // For each output pixel (oh, ow) and window offset (kh, kw): the input pixel's index.
    let mut windows = Vec::with_capacity(HO * WO * K * K);
    for oh in 0..HO {
        for ow in 0..WO {
            for kh in 0..K {
                for kw in 0..K {
                    windows.push((oh * S + kh) * WI + ow * S + kw);
                }
            }
        }
    }
    let windows = x
        .device()
        .try_tensor_from_vec(windows, (HO * WO * K * K,))?;
    let x = x.try_permute::<(Const<HI>, Const<WI>, B, Const<C>), Axes4<2, 3, 0, 1>>()?; // [HI, WI, B, C]
    let x = x.try_reshape_like(&(HI * WI, planes))?; // [HI·WI, B·C]
    let w = x.try_gather(windows)?; // [HO·WO·K·K, B·C]
    w.try_reshape_like(&(HO * WO, K * K, planes)) // [HO·WO, K·K, B·C]
}

/// The inverse layout of [`try_windows`]' outer axes: one value per window.
///
/// # Shapes
/// `y: [HO·WO, B·C]` -> `[B, C, HO, WO]`
#[allow(clippy::type_complexity)]
pub(crate) fn try_unwindow<
    B: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
    const C: usize,
    const HO: usize,
    const WO: usize,
>(
    y: Tensor<(usize, usize), E, D, T>,
    batch: B,
) -> Result<Tensor<(B, Const<C>, Const<HO>, Const<WO>), E, D, T>, D::Err> {
    let y = y.try_reshape_like(&(Const::<HO>, Const::<WO>, batch, Const::<C>))?; // [HO, WO, B, C]
    y.try_permute::<(B, Const<C>, Const<HO>, Const<WO>), Axes4<2, 3, 0, 1>>() // [B, C, HO, WO]
}

macro_rules! device_kernel {
    ($device:ty, $E:ty, |$x:ident| $call:expr) => {
        impl AvgPool2DKernel<$E> for $device {
            fn try_avg_pool2d<
                B: Dim,
                T: Tape<$E, Self>,
                const C: usize,
                const K: usize,
                const S: usize,
                const HI: usize,
                const WI: usize,
                const HO: usize,
                const WO: usize,
            >(
                $x: Images<B, C, HI, WI, $E, Self, T>,
            ) -> Result<Images<B, C, HO, WO, $E, Self, T>, Self::Err> {
                $call
            }
        }
    };
}

device_kernel!(Cpu, f32, |x| try_avg_pool2d_cpu::<
    B,
    f32,
    T,
    C,
    K,
    S,
    HI,
    WI,
    HO,
    WO,
>(x));
device_kernel!(Cpu, f64, |x| try_avg_pool2d_cpu::<
    B,
    f64,
    T,
    C,
    K,
    S,
    HI,
    WI,
    HO,
    WO,
>(x));
#[cfg(feature = "cuda")]
device_kernel!(dfdx::tensor::Cuda, f32, |x| {
    try_avg_pool2d_composed::<B, f32, Self, T, C, K, S, HI, WI, HO, WO>(x)
});
#[cfg(feature = "cuda")]
device_kernel!(dfdx::tensor::Cuda, f64, |x| {
    try_avg_pool2d_composed::<B, f64, Self, T, C, K, S, HI, WI, HO, WO>(x)
});

/// The Cpu path: each output the mean of its window, plane by plane in
/// parallel; the backward pass spreads `gy / K²` over each window.
#[allow(clippy::type_complexity)]
fn try_avg_pool2d_cpu<
    B: Dim,
    E: GemmFloat,
    T: Tape<E, Cpu>,
    const C: usize,
    const K: usize,
    const S: usize,
    const HI: usize,
    const WI: usize,
    const HO: usize,
    const WO: usize,
>(
    x: Images<B, C, HI, WI, E, Cpu, T>,
) -> Result<Images<B, C, HO, WO, E, Cpu, T>, CpuError> {
    let op = const { PoolOp::new::<K, S, HI, WI, HO, WO>() };
    let (x, mut tape) = x.split_tape();
    let batch = x.shape().0;
    let (plane_in, plane_out) = (HI * WI, HO * WO);
    let per_task = planes_per_task(plane_in);
    let scale = E::from_usize(K * K).map_or(E::default(), |n| E::ONE / n);
    let xs = read(&x);
    let mut y = vec![E::default(); batch.size() * C * plane_out];
    y.par_chunks_mut(per_task * plane_out)
        .zip(xs.par_chunks(per_task * plane_in))
        .for_each(|(ys, xs)| {
            for (y, x) in ys.chunks_mut(plane_out).zip(xs.chunks(plane_in)) {
                for oh in 0..op.h_out {
                    for ow in 0..op.w_out {
                        let sum = op.window(oh, ow).fold(E::default(), |acc, i| acc + x[i]);
                        y[oh * op.w_out + ow] = sum * scale;
                    }
                }
            }
        });
    drop(xs);
    let y = x
        .device()
        .try_tensor_from_vec(y, (batch, Const, Const, Const))?;
    let (x_ghost, y_ghost) = (x.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        let gy = std::mem::take::<Vec<E>>(grads.get_or_alloc_mut(&y_ghost)?);
        let gx: &mut Vec<E> = grads.get_or_alloc_mut(&x_ghost)?;
        gx.par_chunks_mut(per_task * plane_in)
            .zip(gy.par_chunks(per_task * plane_out))
            .for_each(|(gxs, gys)| {
                for (gx, gy) in gxs.chunks_mut(plane_in).zip(gys.chunks(plane_out)) {
                    for oh in 0..op.h_out {
                        for ow in 0..op.w_out {
                            let g = gy[oh * op.w_out + ow] * scale;
                            for i in op.window(oh, ow) {
                                gx[i] += g;
                            }
                        }
                    }
                }
            });
        **grads.get_or_alloc_mut(&y_ghost)? = gy;
        Ok(())
    });
    Ok(y.put_tape(tape))
}

/// The composed path (the `Cuda` one): the windows gathered as columns, then
/// dfdx's `mean` over each.
#[allow(clippy::type_complexity)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))] // the Cpu tests use it
pub(crate) fn try_avg_pool2d_composed<
    B: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
    const C: usize,
    const K: usize,
    const S: usize,
    const HI: usize,
    const WI: usize,
    const HO: usize,
    const WO: usize,
>(
    x: Images<B, C, HI, WI, E, D, T>,
) -> Result<Images<B, C, HO, WO, E, D, T>, D::Err> {
    let _checked = const { PoolOp::new::<K, S, HI, WI, HO, WO>() };
    let batch = x.shape().0;
    let w = try_windows::<B, E, D, T, C, K, S, HI, WI, HO, WO>(x)?; // [HO·WO, K·K, B·C]
    let y = w.try_mean::<(usize, usize), Axis<1>>()?; // [HO·WO, B·C]
    try_unwindow::<B, E, D, T, C, HO, WO>(y, batch)
}
