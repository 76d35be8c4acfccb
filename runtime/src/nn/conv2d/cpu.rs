//! The fast CPU convolution: im2col + `gemm`, rayon over the batch.
//! (3x3 stride-1 convolutions with 8+ input channels go to `winograd.rs`,
//! a 1-channel first layer with 2x2 pools to `direct.rs`.)
//!
//! For a group of `G` images (NCHW, `P = HO·WO` output positions, `IKK = I·KH·KW`),
//! their patch columns side by side:
//! - forward:  `cols [IKK, G·P] = im2col(x)`, `y [O, G·P] = bias + W [O, IKK] · cols`
//! - backward: `gW += dY [O, G·P] · colsᵀ`, `gb += Σ dY`,
//!   `gx += col2im(Wᵀ [IKK, O] · dY)`
//!
//! The batch is cut into a fixed number of contiguous tasks (independent of
//! the thread count), one rayon task each; each task keeps its partial
//! `gW`/`gb`, summed in task order afterwards, so results are bit-identical
//! for any number of threads. Scratch buffers (`cols`, the padded image, ...)
//! live per thread and are reused across calls. `cols` is recomputed in
//! backward instead of being kept from forward: it is rebuilt in cache right
//! before the product reads it, and evaluation keeps nothing.
//!
//! Measured on this 2-core Zen 4 (`examples/conv_bench.rs`, batch 100): CNN3a's
//! conv2 ~80-84 GFLOP/s forward and ~75 backward per core (CPU time), 160 and
//! 147 GFLOP/s wall on 2 threads when the machine was idle; `gemm` alone
//! reaches ~95-100 per core on these shapes. The 1-channel first convs reach
//! only ~35-45 per core (K = 9 is a thin product) but are ~8% of the FLOPs.

use dfdx::prelude::{
    Const, Cpu, CpuError, Dim, HasShape, PutTape, Rank1, Rank4, ReshapeTo, SplitTape, Tape, Tensor,
    TensorFromVec,
};
use rayon::prelude::*;

use super::{Conv2DOp, Fusion, Images};
use crate::nn::gemm::{forward_on, matmul, read, GemmFloat, Mat};
use crate::nn::recycle::Recycled;
use crate::nn::simd::{self, Isa};

/// The batch is split into at most this many rayon tasks.
const MAX_TASKS: usize = 16;

/// Images per matrix product inside a task, at most: their patch columns sit
/// side by side (`cols: [IKK, G·P]`), so each gemm call sees a longer
/// dimension (`G·P` instead of `P = 49` for CNN4a's conv3) and packs the
/// weight once. The price is copying `y`/`dY` between `[G, O, P]` and
/// `[O, G·P]`, so images with `P >= MIN_GEMM_COLS` go one at a time, in place.
const MAX_GEMM_IMAGES: usize = 8;
const MIN_GEMM_COLS: usize = 512;

/// Images per matrix product for `p` output positions (see [`MAX_GEMM_IMAGES`]).
fn gemm_images(p: usize) -> usize {
    MIN_GEMM_COLS.div_ceil(p.max(1)).clamp(1, MAX_GEMM_IMAGES)
}

/// The Cpu implementation of [`super::Conv2DKernel::try_conv2d`].
#[allow(clippy::type_complexity)]
pub(super) fn try_conv2d<
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
    if super::direct::forward_applies::<E>(op, f) {
        super::direct::forward(op, f, x, w, b, y, arg);
    } else if super::winograd::applies(op) {
        super::winograd::forward::<E, PK, PS>(op, f, x, w, b, y, arg, moments);
    } else {
        forward::<E, WO, PK, PS>(op, f, x, w, b, y, arg, moments);
    }
}

/// Per channel plane of one image's output `y: [O, p]`: its mean and its
/// sum of squared deviations from that mean, in f64 (eight lanes), into
/// `out: [O, 2]`. Batchnorm adds them up over the images (Chan et al.'s
/// pairwise update, `batch_norm::StepStats::from_planes`).
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
    if super::direct::applies(op, f) {
        super::direct::backward(op, f, x, gy, arg)
    } else if super::winograd::applies(op) {
        super::winograd::backward::<E, PK, PS>(op, f, x, w, gy, arg, gx)
    } else {
        backward::<E, WO, PK, PS>(op, f, x, w, gy, arg, gx)
    }
}

/// `arg` value of an output the ReLU cut (its window's maximum was <= 0): no gradient.
pub(super) const DEAD: u8 = u8::MAX;

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

/// `v` cut into `n`-element chunks as options, or `count` `None`s when `v` is
/// empty (an absent optional output), for zipping with other chunked buffers.
pub(super) fn chunks_or_none<T>(v: &mut [T], n: usize, count: usize) -> Vec<Option<&mut [T]>> {
    if v.is_empty() {
        (0..count).map(|_| None).collect()
    } else {
        v.chunks_mut(n).map(Some).collect()
    }
}

/// Per-task views of the input gradient and the pooling offsets.
pub(super) type TaskViews<'a, E> = (Vec<Option<&'a mut [E]>>, Vec<&'a [u8]>);

/// A backward pass's optional buffers cut per task (shared by the im2col and
/// Winograd paths): the input gradient (`None`s for a first layer) in
/// `in_task` elements, the pooling offsets (empty slices without pooling or
/// ReLU) in `out_task` bytes.
pub(super) fn backward_tasks<'a, E>(
    gx: Option<&'a mut [E]>,
    arg: &'a [u8],
    in_task: usize,
    out_task: usize,
    tasks: usize,
) -> TaskViews<'a, E> {
    let gx_tasks = chunks_or_none(gx.unwrap_or_default(), in_task, tasks);
    let arg_tasks = if arg.is_empty() {
        vec![&[][..]; tasks]
    } else {
        arg.chunks(out_task).collect()
    };
    (gx_tasks, arg_tasks)
}

/// `dst += src`, element by element.
#[inline(always)]
pub(crate) fn add_assign<E: GemmFloat>(dst: &mut [E], src: &[E]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// The sum of `xs` in 16 independent lanes (vectorised; a plain fold waits
/// on each add's latency), then the lanes and the tail in order.
#[inline(always)]
fn sum<E: GemmFloat>(xs: &[E]) -> E {
    const LANES: usize = 16;
    let mut acc = [E::default(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    let mut total = E::default();
    for v in acc.into_iter().chain(tail.iter().copied()) {
        total += v;
    }
    total
}

/// Images per task for a fixed split of the batch (never depends on threads).
pub(super) fn images_per_task(batch: usize) -> usize {
    batch.div_ceil(MAX_TASKS).max(1)
}

/// The region of the zero-padded input that the kernel reads:
/// `HP = (HO - 1)·SH + KH` rows and `WP = (WO - 1)·SW + KW` columns, starting
/// `PH`/`PW` before the input.
#[derive(Clone, Copy)]
pub(super) struct Padded {
    pub(super) h: usize,
    pub(super) w: usize,
    /// The input itself is that region (no padding, nothing cut): no copy needed.
    is_input: bool,
}

impl Padded {
    pub(super) fn new(op: &Conv2DOp) -> Self {
        let h = (op.h_out - 1) * op.stride_h + op.kernel_h;
        let w = (op.w_out - 1) * op.stride_w + op.kernel_w;
        let is_input = op.pad_h == 0 && op.pad_w == 0 && h == op.h_in && w == op.w_in;
        Self { h, w, is_input }
    }
    /// Scratch elements one padded image needs (0 when the input is used as is).
    fn scratch_len(&self, op: &Conv2DOp) -> usize {
        if self.is_input {
            0
        } else {
            op.chan_in * self.h * self.w
        }
    }
}

/// The rows `[lo, hi)` of the padded region that hold input rows, and the
/// first input row: input row `r` sits at padded row `r + pad`.
#[inline(always)]
fn overlap(pad: usize, n_in: usize, n_padded: usize) -> (usize, usize) {
    (pad.min(n_padded), (pad + n_in).min(n_padded))
}

/// Copies one image into its zero-padded region `xp: [I, HP, WP]`.
#[inline(always)]
fn pad_image<E: GemmFloat>(op: &Conv2DOp, pd: Padded, x: &[E], xp: &mut [E]) {
    xp.fill(E::default());
    let (r_lo, r_hi) = overlap(op.pad_h, op.h_in, pd.h);
    let (c_lo, c_hi) = overlap(op.pad_w, op.w_in, pd.w);
    for (dst, src) in xp
        .chunks_exact_mut(pd.h * pd.w)
        .zip(x.chunks_exact(op.h_in * op.w_in))
    {
        for r in r_lo..r_hi {
            let src_row = &src[(r - op.pad_h) * op.w_in..][..c_hi - c_lo];
            dst[r * pd.w + c_lo..r * pd.w + c_hi].copy_from_slice(src_row);
        }
    }
}

/// Adds the interior of a padded gradient `gxp: [I, HP, WP]` into `gx: [I, H, W]`.
#[inline(always)]
fn unpad_add<E: GemmFloat>(op: &Conv2DOp, pd: Padded, gxp: &[E], gx: &mut [E]) {
    let (r_lo, r_hi) = overlap(op.pad_h, op.h_in, pd.h);
    let (c_lo, c_hi) = overlap(op.pad_w, op.w_in, pd.w);
    for (dst, src) in gx
        .chunks_exact_mut(op.h_in * op.w_in)
        .zip(gxp.chunks_exact(pd.h * pd.w))
    {
        for r in r_lo..r_hi {
            let dst_row = &mut dst[(r - op.pad_h) * op.w_in..][..c_hi - c_lo];
            add_assign(dst_row, &src[r * pd.w + c_lo..r * pd.w + c_hi]);
        }
    }
}

/// `y = maxpool(relu(bias + conv(x, w)))` (as `f` says) for the whole batch;
/// `arg` (empty, or one byte per output) receives the pooling offsets.
///
/// # Shapes
/// `x: [B, I, H, W]`, `w: [O, I·KH·KW]`, `b: [O]`, `y, arg: [B, O, PHO·PWO]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<E: GemmFloat, const WO: usize, const PK: usize, const PS: usize>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    w: &[E],
    b: &[E],
    y: &mut [E],
    arg: &mut [u8],
    moments: &mut [f64],
) {
    let (ikk, p, o) = (op.patch_len(), op.out_positions(), op.chan_out);
    let (in_len, out_len) = (op.in_image_len(), o * f.plane_out());
    let pd = Padded::new(op);
    let w_mat = Mat::row_major(w, o, ikk);
    let n = images_per_task(op.batch);
    let g = gemm_images(p);
    let scratch_len = (ikk + o) * g * p + pd.scratch_len(op);
    let tasks = op.batch.div_ceil(n);
    let args = chunks_or_none(arg, n * out_len, tasks);
    let moments = chunks_or_none(moments, n * 2 * o, tasks);
    let isa = Isa::detect();
    y.par_chunks_mut(n * out_len)
        .zip(x.par_chunks(n * in_len))
        .zip(args)
        .zip(moments)
        .for_each(|(((y_task, x_task), mut arg_task), mut moments_task)| {
            E::with_scratch(scratch_len, |scratch| {
                simd::run!(isa, |_isa| {
                    let (cols, rest) = scratch.split_at_mut(ikk * g * p);
                    let (z_buf, xp) = rest.split_at_mut(o * g * p);
                    for (gi, (y_group, x_group)) in y_task
                        .chunks_mut(g * out_len)
                        .zip(x_task.chunks(g * in_len))
                        .enumerate()
                    {
                        let gp = (x_group.len() / in_len) * p; // columns: images · P
                        for (i, x_img) in x_group.chunks(in_len).enumerate() {
                            let src = padded_source(op, pd, x_img, xp);
                            // cols: [IKK, G·P]
                            im2col::<E, WO>(op, pd, src, &mut cols[i * p..], gp);
                        }
                        let cols = Mat::row_major(&cols[..ikk * gp], ikk, gp);
                        let in_place = f.is_identity() && gp == p;
                        let z = if in_place {
                            &mut *y_group
                        } else {
                            &mut z_buf[..o * gp]
                        };
                        for (row, &b_o) in z.chunks_mut(gp).zip(b) {
                            row.fill(b_o);
                        }
                        matmul(z, gp, w_mat, cols, true); // [O, G·P]
                        if in_place {
                            if let Some(mo) = moments_task.as_deref_mut() {
                                plane_moments(y_group, p, &mut mo[gi * g * 2 * o..][..2 * o]);
                            }
                            continue;
                        }
                        for (i, y_img) in y_group.chunks_mut(out_len).enumerate() {
                            let img = gi * g + i;
                            let mut arg_img = arg_task
                                .as_deref_mut()
                                .map(|a| &mut a[img * out_len..][..out_len]);
                            for (c, y_plane) in y_img.chunks_mut(f.plane_out()).enumerate() {
                                let z_plane = &z_buf[c * gp + i * p..][..p];
                                if f.is_identity() {
                                    y_plane.copy_from_slice(z_plane); // -> [O, P]
                                    if let Some(mo) = moments_task.as_deref_mut() {
                                        let at = (img * o + c) * 2;
                                        plane_moments(y_plane, p, &mut mo[at..at + 2]);
                                    }
                                } else {
                                    let a = arg_img
                                        .as_deref_mut()
                                        .map(|a| &mut a[c * f.plane_out()..][..f.plane_out()]);
                                    pool_relu_plane::<E, PK, PS>(
                                        f.relu, WO, f.w_out, z_plane, y_plane, a,
                                    );
                                }
                            }
                        }
                    }
                })
            })
        });
}

/// The image the kernel reads: the input itself, or its padded copy in `xp`.
#[inline(always)]
pub(super) fn padded_source<'a, E: GemmFloat>(
    op: &Conv2DOp,
    pd: Padded,
    x_img: &'a [E],
    xp: &'a mut [E],
) -> &'a [E] {
    if pd.is_input {
        x_img
    } else {
        pad_image(op, pd, x_img, xp); // [I, HP, WP]
        xp
    }
}

/// Adds the input gradient to `gx` (when given) and returns the weight and
/// bias gradients, from the gradient `gy` of the fused op's output.
///
/// # Shapes
/// `x, gx: [B, I, H, W]`, `w: [O, I·KH·KW]`, `gy, arg: [B, O, PHO·PWO]` ->
/// `(gw: [O, I·KH·KW], gb: [O])`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<E: GemmFloat, const WO: usize, const PK: usize, const PS: usize>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    w: &[E],
    gy: &[E],
    arg: &[u8],
    gx: Option<&mut [E]>,
) -> (Recycled<E>, Recycled<E>) {
    let (ikk, p, o) = (op.patch_len(), op.out_positions(), op.chan_out);
    let (in_len, out_len) = (op.in_image_len(), o * f.plane_out());
    let pd = Padded::new(op);
    let wt = Mat::row_major(w, o, ikk).t(); // [IKK, O]
    let n = images_per_task(op.batch);
    let g = gemm_images(p);
    let scratch_len = (2 * ikk + o) * g * p + pd.scratch_len(op);
    let tasks = op.batch.div_ceil(n);
    let isa = Isa::detect();
    let (gx_tasks, arg_tasks) = backward_tasks(gx, arg, n * in_len, n * out_len, tasks);
    // gemm's microkernel runs along dst's unit-stride axis: keep the partial
    // weight gradient with its longer side contiguous (conv1: O = 32 > IKK = 9).
    let gw_transposed = o > ikk;
    // Each task's partial sums, side by side.
    let mut gw_parts = Recycled::filled(tasks * o * ikk, E::default());
    let mut gb_parts = Recycled::filled(tasks * o, E::default());
    let parts = gw_parts
        .par_chunks_mut(o * ikk)
        .zip(gb_parts.par_chunks_mut(o));
    gx_tasks
        .into_par_iter()
        .zip(x.par_chunks(n * in_len))
        .zip(gy.par_chunks(n * out_len))
        .zip(arg_tasks)
        .zip(parts)
        .for_each(|((((mut gx_task, x_task), gy_task), arg_task), (gw, gb))| {
            E::with_scratch(scratch_len, |scratch| {
                simd::run!(isa, |_isa| {
                    let (cols, rest) = scratch.split_at_mut(ikk * g * p);
                    let (dcols, rest) = rest.split_at_mut(ikk * g * p);
                    let (gz_buf, xp) = rest.split_at_mut(o * g * p);
                    let groups = x_task.chunks(g * in_len).zip(gy_task.chunks(g * out_len));
                    for (gi, (x_group, gy_group)) in groups.enumerate() {
                        let first = gi * g; // the group's first image in the task
                        let gp = (x_group.len() / in_len) * p; // columns: images · P
                        for (i, x_img) in x_group.chunks(in_len).enumerate() {
                            let src = padded_source(op, pd, x_img, xp);
                            // cols: [IKK, G·P]
                            im2col::<E, WO>(op, pd, src, &mut cols[i * p..], gp);
                        }
                        // The gradient of the convolution's output, [O, G·P].
                        let gz_mat = if f.is_identity() && gp == p {
                            Mat::row_major(gy_group, o, p) // one image: in place
                        } else {
                            let gz_buf = &mut gz_buf[..o * gp];
                            for (i, gy_img) in gy_group.chunks(out_len).enumerate() {
                                let planes = gy_img.chunks(f.plane_out()).enumerate();
                                for (c, gy_plane) in planes {
                                    let gz_plane = &mut gz_buf[c * gp + i * p..][..p];
                                    if f.is_identity() {
                                        gz_plane.copy_from_slice(gy_plane);
                                    } else {
                                        let at = (first + i) * out_len + c * f.plane_out();
                                        let a = &arg_task[at..][..f.plane_out()];
                                        unpool_plane::<E, PK, PS>(
                                            WO, f.w_out, gy_plane, a, gz_plane,
                                        );
                                    }
                                }
                            }
                            Mat::row_major(&*gz_buf, o, gp)
                        };
                        let cols_mat = Mat::row_major(&cols[..ikk * gp], ikk, gp);
                        if gw_transposed {
                            matmul(gw, o, cols_mat, gz_mat.t(), true); // [IKK, O]
                        } else {
                            matmul(gw, ikk, gz_mat, cols_mat.t(), true); // [O, IKK]
                        }
                        for (o_idx, g_o) in gb.iter_mut().enumerate() {
                            *g_o += sum(&gz_mat.data[o_idx * gp..][..gp]);
                        }
                        let Some(gx_task) = gx_task.as_deref_mut() else {
                            continue; // the first layer: no input gradient
                        };
                        let dcols = &mut dcols[..ikk * gp];
                        matmul(dcols, gp, wt, gz_mat, false); // [IKK, G·P]
                        let gx_group = &mut gx_task[first * in_len..][..x_group.len()];
                        for (i, gx_img) in gx_group.chunks_mut(in_len).enumerate() {
                            if pd.is_input {
                                col2im_add::<E, WO>(op, pd, &dcols[i * p..], gp, gx_img);
                            } else {
                                xp.fill(E::default());
                                col2im_add::<E, WO>(op, pd, &dcols[i * p..], gp, xp); // [I, HP, WP]
                                unpad_add(op, pd, xp, gx_img);
                            }
                        }
                    }
                })
            });
        });

    // Sum the tasks in order: deterministic for any thread count.
    let mut gw = Recycled::filled(o * ikk, E::default());
    let mut gb = Recycled::filled(o, E::default());
    simd::run!(isa, |_isa| {
        for (pw, pb) in gw_parts.chunks_exact(o * ikk).zip(gb_parts.chunks_exact(o)) {
            if gw_transposed {
                for (j, row) in pw.chunks_exact(o).enumerate() {
                    for (oc, &v) in row.iter().enumerate() {
                        gw[oc * ikk + j] += v;
                    }
                }
            } else {
                add_assign(&mut gw, pw);
            }
            add_assign(&mut gb, pb);
        }
    });
    (gw, gb)
}

/// Unfolds one padded image into patch columns of a matrix with row stride `ld`.
///
/// # Shapes
/// `xp: [I, HP, WP]` (see [`Padded`]) -> `cols: [I·KH·KW, HO·WO]` (stride `ld`),
/// row `(c·KH + kh)·KW + kw`, column `oh·WO + ow` holding `xp[c, oh·SH + kh, ow·SW + kw]`.
#[inline(always)]
fn im2col<E: GemmFloat, const WO: usize>(
    op: &Conv2DOp,
    pd: Padded,
    xp: &[E],
    cols: &mut [E],
    ld: usize,
) {
    let (sh, s, p) = (op.stride_h, op.stride_w, op.out_positions());
    let mut r = 0;
    for plane in xp.chunks_exact(pd.h * pd.w) {
        for kh in 0..op.kernel_h {
            for kw in 0..op.kernel_w {
                let row = &mut cols[r * ld..][..p];
                r += 1;
                for (oh, dst) in row.chunks_exact_mut(WO).enumerate() {
                    let src = &plane[(oh * sh + kh) * pd.w + kw..];
                    if s == 1 {
                        // a constant-length copy: no memcpy call per short row
                        dst.copy_from_slice(&src[..WO]);
                    } else {
                        for (d, &v) in dst.iter_mut().zip(src.iter().step_by(s)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// Folds patch columns (row stride `ld`) back onto one padded image, adding
/// (the adjoint of [`im2col`]).
///
/// # Shapes
/// `cols: [I·KH·KW, HO·WO]` (stride `ld`) -> `gxp: [I, HP, WP]` (accumulated).
#[inline(always)]
fn col2im_add<E: GemmFloat, const WO: usize>(
    op: &Conv2DOp,
    pd: Padded,
    cols: &[E],
    ld: usize,
    gxp: &mut [E],
) {
    let (sh, s, p) = (op.stride_h, op.stride_w, op.out_positions());
    let mut r = 0;
    for plane in gxp.chunks_exact_mut(pd.h * pd.w) {
        for kh in 0..op.kernel_h {
            for kw in 0..op.kernel_w {
                let row = &cols[r * ld..][..p];
                r += 1;
                for (oh, src) in row.chunks_exact(WO).enumerate() {
                    let dst = &mut plane[(oh * sh + kh) * pd.w + kw..];
                    if s == 1 {
                        add_assign(&mut dst[..WO], src);
                    } else {
                        for (d, &v) in dst.iter_mut().step_by(s).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}
