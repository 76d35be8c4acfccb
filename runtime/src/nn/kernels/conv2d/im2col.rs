//! The general Cpu convolution: im2col + `gemm`, rayon over the batch.
//! (3x3 stride-1 convolutions with 8+ input channels go to `winograd.rs`,
//! a 1-channel first layer with 2x2 pools to `direct.rs`; `mod.rs` picks.)
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

use super::plane_moments;
use crate::nn::conv2d::{Conv2DOp, Fusion};
use crate::nn::kernels::gemm::{add_assign, matmul, GemmFloat, Mat};
use crate::nn::kernels::pool::{pool_relu_plane, unpool_plane};
use crate::nn::kernels::recycle::Recycled;
use crate::nn::kernels::simd::{self, Isa};
use crate::nn::kernels::tasks::{backward_tasks, chunks_or_none, images_per_task};
use rayon::prelude::*;

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

/// The region of the zero-padded input that the kernel reads:
/// `HP = (HO - 1)·SH + KH` rows and `WP = (WO - 1)·SW + KW` columns, starting
/// `PH`/`PW` before the input.
#[derive(Clone, Copy)]
pub(crate) struct Padded {
    pub(crate) h: usize,
    pub(crate) w: usize,
    /// The input itself is that region (no padding, nothing cut): no copy needed.
    is_input: bool,
}

impl Padded {
    pub(crate) fn new(op: &Conv2DOp) -> Self {
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
pub(crate) fn padded_source<'a, E: GemmFloat>(
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
