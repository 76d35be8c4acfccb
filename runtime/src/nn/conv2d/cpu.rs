//! The fast CPU convolution: im2col + `gemm`, rayon over the batch.
//! (3x3 stride-1 forward passes with 8+ input channels go to `winograd.rs`.)
//!
//! For a group of `G` images (NCHW, `P = HO·WO` output positions, `IKK = I·K²`),
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
    Const, Cpu, CpuError, Dim, HasShape, PutTape, Rank1, Rank4, ReshapeTo, Shape, SplitTape, Tape,
    Tensor, TensorFromVec,
};
use rayon::prelude::*;

use super::{Conv2DOp, Images};
use crate::nn::gemm::{matmul, GemmFloat, Mat};

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
pub(super) fn try_conv2d<
    E: GemmFloat,
    B: Dim,
    T: Tape<E, Cpu>,
    const I: usize,
    const O: usize,
    const K: usize,
    const H: usize,
    const W: usize,
    const HO: usize,
    const WO: usize,
>(
    op: Conv2DOp,
    x: Images<B, I, H, W, E, Cpu, T>,
    weight: &Tensor<Rank4<O, I, K, K>, E, Cpu>,
    bias: &Tensor<Rank1<O>, E, Cpu>,
) -> Result<Images<B, O, HO, WO, E, Cpu, T>, CpuError> {
    let (x, mut tape) = x.try_contiguous()?.split_tape();
    let batch = x.shape().0;
    let x_buf = read(&x);
    let w_buf = read(&weight.clone().try_contiguous()?);
    let b_buf = read(&bias.clone().try_contiguous()?);

    let mut y = vec![E::default(); op.batch * op.out_image_len()];
    if super::winograd::applies(&op) {
        super::winograd::forward(&op, &x_buf, &w_buf, &b_buf, &mut y); // [B, O, HO, WO]
    } else {
        forward::<E, WO>(&op, &x_buf, &w_buf, &b_buf, &mut y);
    }
    let y = x
        .device()
        .try_tensor_from_vec(y, (batch, Const::<O>, Const::<HO>, Const::<WO>))?;

    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, b_ghost, y_ghost) =
            (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            // Move dY out of its slot (no copy) so the other slots can be borrowed.
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_ghost)?);
            let (gw, gb) =
                backward::<E, WO>(&op, &x_buf, &w_buf, &gy, grads.get_or_alloc_mut(&x_ghost)?);
            add_assign(grads.get_or_alloc_mut(&w_ghost)?, &gw);
            add_assign(grads.get_or_alloc_mut(&b_ghost)?, &gb);
            **grads.get_or_alloc_mut(&y_ghost)? = gy;
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// A contiguous tensor's data as a `Vec` (dfdx has no public slice view).
fn read<S: Shape, E: GemmFloat, T>(t: &Tensor<S, E, Cpu, T>) -> Vec<E> {
    let mut buf = vec![E::default(); t.shape().num_elements()];
    t.copy_into(&mut buf);
    buf
}

fn add_assign<E: GemmFloat>(dst: &mut [E], src: &[E]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// The sum of `xs` in 16 independent lanes (vectorised; a plain fold waits
/// on each add's latency), then the lanes and the tail in order.
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
/// `HP = (HO - 1)·S + K` rows and `WP = (WO - 1)·S + K` columns, starting
/// `PH`/`PW` before the input.
#[derive(Clone, Copy)]
struct Padded {
    h: usize,
    w: usize,
    /// The input itself is that region (no padding, nothing cut): no copy needed.
    is_input: bool,
}

impl Padded {
    fn new(op: &Conv2DOp) -> Self {
        let h = (op.h_out - 1) * op.stride + op.kernel;
        let w = (op.w_out - 1) * op.stride + op.kernel;
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
fn overlap(pad: usize, n_in: usize, n_padded: usize) -> (usize, usize) {
    (pad.min(n_padded), (pad + n_in).min(n_padded))
}

/// Copies one image into its zero-padded region `xp: [I, HP, WP]`.
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

/// `y = bias + conv(x, w)` for the whole batch.
///
/// # Shapes
/// `x: [B, I, H, W]`, `w: [O, I·K·K]`, `b: [O]`, `y: [B, O, HO·WO]`.
pub(crate) fn forward<E: GemmFloat, const WO: usize>(
    op: &Conv2DOp,
    x: &[E],
    w: &[E],
    b: &[E],
    y: &mut [E],
) {
    let (ikk, p, o) = (op.patch_len(), op.out_positions(), op.chan_out);
    let (in_len, out_len) = (op.in_image_len(), op.out_image_len());
    let pd = Padded::new(op);
    let w_mat = Mat::row_major(w, o, ikk);
    let n = images_per_task(op.batch);
    let g = gemm_images(p);
    let scratch_len = (ikk + o) * g * p + pd.scratch_len(op);
    y.par_chunks_mut(n * out_len)
        .zip(x.par_chunks(n * in_len))
        .for_each(|(y_task, x_task)| {
            E::with_scratch(scratch_len, |scratch| {
                let (cols, rest) = scratch.split_at_mut(ikk * g * p);
                let (y_buf, xp) = rest.split_at_mut(o * g * p);
                let groups = y_task
                    .chunks_mut(g * out_len)
                    .zip(x_task.chunks(g * in_len));
                for (y_group, x_group) in groups {
                    let gp = (x_group.len() / in_len) * p; // columns: images · P
                    for (i, x_img) in x_group.chunks(in_len).enumerate() {
                        let src = padded_source(op, pd, x_img, xp);
                        im2col::<E, WO>(op, pd, src, &mut cols[i * p..], gp); // [IKK, G·P]
                    }
                    let cols = Mat::row_major(&cols[..ikk * gp], ikk, gp);
                    let one_image = gp == p;
                    let dst = if one_image {
                        &mut *y_group
                    } else {
                        &mut y_buf[..o * gp]
                    };
                    for (row, &b_o) in dst.chunks_mut(gp).zip(b) {
                        row.fill(b_o);
                    }
                    matmul(dst, gp, w_mat, cols, true); // [O, G·P]
                    if !one_image {
                        for (i, y_img) in y_group.chunks_mut(out_len).enumerate() {
                            for (dst, src) in y_img.chunks_mut(p).zip(y_buf.chunks(gp)) {
                                dst.copy_from_slice(&src[i * p..][..p]); // -> [O, P]
                            }
                        }
                    }
                }
            })
        });
}

/// The image the kernel reads: the input itself, or its padded copy in `xp`.
fn padded_source<'a, E: GemmFloat>(
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

/// Adds the input gradient to `gx` and returns the weight and bias gradients.
///
/// # Shapes
/// `x, gx: [B, I, H, W]`, `w: [O, I·K·K]`, `gy: [B, O, HO·WO]` ->
/// `(gw: [O, I·K·K], gb: [O])`.
pub(crate) fn backward<E: GemmFloat, const WO: usize>(
    op: &Conv2DOp,
    x: &[E],
    w: &[E],
    gy: &[E],
    gx: &mut [E],
) -> (Vec<E>, Vec<E>) {
    let (ikk, p, o) = (op.patch_len(), op.out_positions(), op.chan_out);
    let (in_len, out_len) = (op.in_image_len(), op.out_image_len());
    let pd = Padded::new(op);
    let wt = Mat::row_major(w, o, ikk).t(); // [IKK, O]
    let n = images_per_task(op.batch);
    let g = gemm_images(p);
    let scratch_len = (2 * ikk + o) * g * p + pd.scratch_len(op);
    // gemm's microkernel runs along dst's unit-stride axis: keep the partial
    // weight gradient with its longer side contiguous (conv1: O = 32 > IKK = 9).
    let gw_transposed = o > ikk;
    let partials: Vec<(Vec<E>, Vec<E>)> = gx
        .par_chunks_mut(n * in_len)
        .zip(x.par_chunks(n * in_len))
        .zip(gy.par_chunks(n * out_len))
        .map(|((gx_task, x_task), gy_task)| {
            let mut gw = vec![E::default(); o * ikk];
            let mut gb = vec![E::default(); o];
            E::with_scratch(scratch_len, |scratch| {
                let (cols, rest) = scratch.split_at_mut(ikk * g * p);
                let (dcols, rest) = rest.split_at_mut(ikk * g * p);
                let (gy_buf, xp) = rest.split_at_mut(o * g * p);
                let groups = gx_task
                    .chunks_mut(g * in_len)
                    .zip(x_task.chunks(g * in_len))
                    .zip(gy_task.chunks(g * out_len));
                for ((gx_group, x_group), gy_group) in groups {
                    let gp = (x_group.len() / in_len) * p; // columns: images · P
                    for (i, x_img) in x_group.chunks(in_len).enumerate() {
                        let src = padded_source(op, pd, x_img, xp);
                        im2col::<E, WO>(op, pd, src, &mut cols[i * p..], gp); // [IKK, G·P]
                    }
                    let gy_mat = if gp == p {
                        Mat::row_major(gy_group, o, p) // one image: in place
                    } else {
                        let gy_buf = &mut gy_buf[..o * gp];
                        for (i, gy_img) in gy_group.chunks(out_len).enumerate() {
                            for (dst, src) in gy_buf.chunks_mut(gp).zip(gy_img.chunks(p)) {
                                dst[i * p..][..p].copy_from_slice(src); // -> [O, G·P]
                            }
                        }
                        Mat::row_major(&*gy_buf, o, gp)
                    };
                    let cols_mat = Mat::row_major(&cols[..ikk * gp], ikk, gp);
                    if gw_transposed {
                        matmul(&mut gw, o, cols_mat, gy_mat.t(), true); // [IKK, O]
                    } else {
                        matmul(&mut gw, ikk, gy_mat, cols_mat.t(), true); // [O, IKK]
                    }
                    for (o_idx, g_o) in gb.iter_mut().enumerate() {
                        *g_o += sum(&gy_mat.data[o_idx * gp..][..gp]);
                    }
                    let dcols = &mut dcols[..ikk * gp];
                    matmul(dcols, gp, wt, gy_mat, false); // [IKK, G·P]
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
            });
            (gw, gb)
        })
        .collect();

    // Sum the groups in order: deterministic for any thread count.
    let mut gw = vec![E::default(); o * ikk];
    let mut gb = vec![E::default(); o];
    for (pw, pb) in &partials {
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
    (gw, gb)
}

/// Unfolds one padded image into patch columns of a matrix with row stride `ld`.
///
/// # Shapes
/// `xp: [I, HP, WP]` (see [`Padded`]) -> `cols: [I·K·K, HO·WO]` (stride `ld`),
/// row `(c·K + kh)·K + kw`, column `oh·WO + ow` holding `xp[c, oh·S + kh, ow·S + kw]`.
fn im2col<E: GemmFloat, const WO: usize>(
    op: &Conv2DOp,
    pd: Padded,
    xp: &[E],
    cols: &mut [E],
    ld: usize,
) {
    let (k, s, p) = (op.kernel, op.stride, op.out_positions());
    let mut r = 0;
    for plane in xp.chunks_exact(pd.h * pd.w) {
        for kh in 0..k {
            for kw in 0..k {
                let row = &mut cols[r * ld..][..p];
                r += 1;
                for (oh, dst) in row.chunks_exact_mut(WO).enumerate() {
                    let src = &plane[(oh * s + kh) * pd.w + kw..];
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
/// `cols: [I·K·K, HO·WO]` (stride `ld`) -> `gxp: [I, HP, WP]` (accumulated).
fn col2im_add<E: GemmFloat, const WO: usize>(
    op: &Conv2DOp,
    pd: Padded,
    cols: &[E],
    ld: usize,
    gxp: &mut [E],
) {
    let (k, s, p) = (op.kernel, op.stride, op.out_positions());
    let mut r = 0;
    for plane in gxp.chunks_exact_mut(pd.h * pd.w) {
        for kh in 0..k {
            for kw in 0..k {
                let row = &cols[r * ld..][..p];
                r += 1;
                for (oh, src) in row.chunks_exact(WO).enumerate() {
                    let dst = &mut plane[(oh * s + kh) * pd.w + kw..];
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
