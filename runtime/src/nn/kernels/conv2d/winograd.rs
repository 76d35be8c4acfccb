//! Winograd F(2x2, 3x3) for 3x3, stride-1 convolutions (Cpu), forward and backward.
//!
//! Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015):
//! each 2x2 output tile is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 4x4 input
//! tile `d` and the 3x3 kernel `g`: 16 multiplies per 4 outputs instead of 36
//! (2.25x fewer). Summed over input channels, the products are 16 matrix
//! products `M[ξ] [T, O] = V[ξ] [T, I] · U[ξ]ᵀ [I, O]` over the tiles `T` of a
//! group of images (`ξ` the 16 positions of a 4x4 tile). The transforms run
//! channels-last so their inner loops are contiguous (vectorised); the
//! network's tensors are NCHW, so each image is transposed on the way in and
//! out (`transpose.rs`). Results equal the direct convolution up to float
//! rounding (the tests compare with a naive f64 convolution at 1e-12).
//!
//! The backward pass runs the adjoint of each step (see [`backward`]).

use rayon::prelude::*;

use super::plane_moments;
use crate::nn::conv2d::{Conv2DOp, Fusion};
use crate::nn::kernels::gemm::{matmul, GemmFloat, Mat};
use crate::nn::kernels::pool::{pool2_window, pool_relu_plane, DEAD};
use crate::nn::kernels::recycle::Recycled;
use crate::nn::kernels::simd::{self, Isa};
use crate::nn::kernels::tasks::{backward_tasks, chunks_or_none, images_per_task};
use crate::nn::kernels::transpose::{transpose, transpose_strided};

/// Fewer input channels than this gain nothing (the products get too thin).
const MIN_CHANNELS: usize = 8;

/// Images transformed and multiplied together inside a task, at most: their
/// Winograd-domain buffers (`16·G·T·(I + O)` values, 0.5 MB for CNN3a's conv2
/// at 8 images) stay in the L2 cache, also when an evaluation batch of 500
/// gives each task 32 images.
const GROUP: usize = 8;

/// Whether [`forward`] handles this convolution.
pub(crate) fn applies(op: &Conv2DOp) -> bool {
    op.is_square_stride1(3) && op.chan_in >= MIN_CHANNELS
}

/// Tile grid of one image: `th x tw` tiles of 2x2 outputs, read from a
/// zero-padded, channels-last copy `[2·th + 2, 2·tw + 2, I]`.
#[derive(Clone, Copy)]
struct Tiles {
    th: usize,
    tw: usize,
}

impl Tiles {
    /// The tiles covering the convolution outputs the fused op reads: all
    /// of them, or with pooling only the rows and columns some window
    /// covers (Keras floors: CNN3a's 11x11 -> 5x5 pool reads 10x10, 25 tiles
    /// instead of 36; CNN4a's 7x7 -> 3x3 reads 6x6, 9 tiles instead of 16).
    /// The others are never computed; their gradient is zero.
    fn new(op: &Conv2DOp, f: &Fusion) -> Self {
        let read = |out: usize, pooled: usize| ((pooled - 1) * f.pool_s + f.pool_k).min(out);
        let (h, w) = (read(op.h_out, f.h_out), read(op.w_out, f.w_out));
        Self {
            th: h.div_ceil(2),
            tw: w.div_ceil(2),
        }
    }
    fn count(&self) -> usize {
        self.th * self.tw
    }
    fn padded_len(&self, chan: usize) -> usize {
        (2 * self.th + 2) * (2 * self.tw + 2) * chan
    }
}

/// `y = maxpool(relu(bias + conv(x, w)))` (as `f` says) for the whole batch
/// (3x3, stride 1, any padding); `arg` (empty, or one byte per output)
/// receives the pooling offsets; `moments` (empty, or two per image and
/// channel, identity fusion only) each output plane's mean and squared
/// deviations, taken while the image is in cache ([`plane_moments`]).
///
/// # Shapes
/// `x: [B, I, H, W]`, `w: [O, I·3·3]`, `b: [O]`, `y, arg: [B, O, PHO·PWO]`,
/// `moments: [B, O, 2]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<E: GemmFloat, const PK: usize, const PS: usize>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    w: &[E],
    b: &[E],
    y: &mut [E],
    arg: &mut [u8],
    moments: &mut [f64],
) {
    let (c_in, c_out) = (op.chan_in, op.chan_out);
    let p = op.out_positions();
    let (in_len, out_len) = (op.in_image_len(), c_out * f.plane_out());
    let tiles = Tiles::new(op, f);
    let t = tiles.count();
    let isa = Isa::detect();
    let u = transform_weights(isa, op, w); // [16, O, I]
    let n = images_per_task(op.batch);
    let args = chunks_or_none(arg, n * out_len, op.batch.div_ceil(n));
    let moments = chunks_or_none(moments, n * 2 * c_out, op.batch.div_ceil(n));
    y.par_chunks_mut(n * out_len)
        .zip(x.par_chunks(n * in_len))
        .zip(args)
        .zip(moments)
        .for_each(|(((y_task, x_task), mut arg_task), mut moments_task)| {
            let gt_max = GROUP.min(x_task.len() / in_len) * t; // rows: images · tiles
            let pad_len = tiles.padded_len(c_in);
            let tmp_len = 16 * c_in.max(c_out);
            let len = 16 * (c_in + c_out) * gt_max + pad_len + in_len + tmp_len + 2 * p * c_out;
            E::with_scratch(len, |scratch| {
                simd::run!(isa, |isa| {
                    let (v, rest) = scratch.split_at_mut(16 * gt_max * c_in);
                    let (m, rest) = rest.split_at_mut(16 * gt_max * c_out);
                    let (xp, rest) = rest.split_at_mut(pad_len);
                    let (x_cl, rest) = rest.split_at_mut(in_len);
                    let (z_cl, rest) = rest.split_at_mut(p * c_out);
                    let (z, tmp) = rest.split_at_mut(p * c_out);
                    let groups = y_task
                        .chunks_mut(GROUP * out_len)
                        .zip(x_task.chunks(GROUP * in_len));
                    for (gi, (y_group, x_group)) in groups.enumerate() {
                        let gt = (x_group.len() / in_len) * t;
                        for (i, x_img) in x_group.chunks(in_len).enumerate() {
                            pad_channels_last(isa, op, tiles, x_img, x_cl, xp); // [HP, WP, I]
                                                                                // v: [16, G·T, I]
                            transform_input(isa, op, tiles, xp, tmp, v, gt, i * t);
                        }
                        for xi in 0..16 {
                            let v_xi = Mat::row_major(&v[xi * gt * c_in..][..gt * c_in], gt, c_in);
                            let u_xi = Mat::row_major(
                                &u[xi * c_out * c_in..][..c_out * c_in],
                                c_out,
                                c_in,
                            );
                            let m_xi = &mut m[xi * gt * c_out..][..gt * c_out];
                            matmul(m_xi, c_out, v_xi, u_xi.t(), false); // [16, G·T, O]
                        }
                        for (i, y_img) in y_group.chunks_mut(out_len).enumerate() {
                            let img = gi * GROUP + i;
                            let mut arg_img = arg_task
                                .as_deref_mut()
                                .map(|a| &mut a[img * out_len..][..out_len]);
                            if pools_tiles(f) {
                                // pooled per tile, channels-last: y_cl [PHO·PWO, O], arg [PHO·PWO, O]
                                let y_cl = &mut z_cl[..t * c_out];
                                transform_output(
                                    isa,
                                    op,
                                    tiles,
                                    m,
                                    tmp,
                                    gt,
                                    i * t,
                                    b,
                                    #[inline(always)] // into the kernel's AVX2 copy (`simd.rs`)
                                    |ty, tx, out| {
                                        let q = ty * tiles.tw + tx;
                                        let a = arg_img
                                            .as_deref_mut()
                                            .map(|a| &mut a[q * c_out..][..c_out]);
                                        pool_tile(f.relu, out, &mut y_cl[q * c_out..][..c_out], a);
                                    },
                                );
                                transpose(isa, y_cl, t, c_out, y_img); // [O, PHO·PWO]
                                continue;
                            }
                            let sink = write_outputs(op, z_cl);
                            transform_output(isa, op, tiles, m, tmp, gt, i * t, b, sink); // [HO·WO, O]
                            if f.is_identity() {
                                transpose(isa, z_cl, p, c_out, y_img); // [O, HO·WO]
                                if let Some(mo) = moments_task.as_deref_mut() {
                                    plane_moments(
                                        y_img,
                                        p,
                                        &mut mo[img * 2 * c_out..][..2 * c_out],
                                    );
                                }
                                continue;
                            }
                            transpose(isa, z_cl, p, c_out, z); // [O, HO·WO]
                            for (c, y_plane) in y_img.chunks_mut(f.plane_out()).enumerate() {
                                let a = arg_img
                                    .as_deref_mut()
                                    .map(|a| &mut a[c * f.plane_out()..][..f.plane_out()]);
                                let z_plane = &z[c * p..][..p];
                                pool_relu_plane::<E, PK, PS>(
                                    f.relu, op.w_out, f.w_out, z_plane, y_plane, a,
                                );
                            }
                        }
                    }
                })
            })
        });
}

/// The gradients of [`forward`]: adds the input gradient to `gx` (when
/// given) and returns the weight and bias gradients, from the gradient `gy`
/// of the fused op's output. Each step is the adjoint of a forward step:
///
/// ```text
/// gz = unpool(gy)                 [O, HO·WO]    (the convolution's output gradient)
/// dM[ξ] = A gz_tile Aᵀ            [16, G·T, O]  (adjoint of the output transform)
/// dU[ξ] += dM[ξ]ᵀ · V[ξ]          [16, O, I]    (V recomputed from x)
/// dV[ξ] = dM[ξ] · U[ξ]            [16, G·T, I]
/// gx += B dV Bᵀ, tiles overlapping  (adjoint of the input transform)
/// gw = Gᵀ dU G                    [O, I, 3, 3]
/// ```
///
/// Tasks keep their partial `dU` and bias sums, added in task order: the
/// result does not depend on the thread count.
///
/// # Shapes
/// `x, gx: [B, I, H, W]`, `w: [O, I·3·3]`, `gy, arg: [B, O, PHO·PWO]` ->
/// `(gw: [O, I·3·3], gb: [O])`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<E: GemmFloat, const PK: usize, const PS: usize>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    w: &[E],
    gy: &[E],
    arg: &[u8],
    gx: Option<&mut [E]>,
) -> (Recycled<E>, Recycled<E>) {
    let (c_in, c_out) = (op.chan_in, op.chan_out);
    let p = op.out_positions();
    let (in_len, out_len) = (op.in_image_len(), c_out * f.plane_out());
    let tiles = Tiles::new(op, f);
    let t = tiles.count();
    let isa = Isa::detect();
    let u = transform_weights(isa, op, w); // [16, O, I]
    let n = images_per_task(op.batch);
    let tasks = op.batch.div_ceil(n);
    let (gx_tasks, arg_tasks) = backward_tasks(gx, arg, n * in_len, n * out_len, tasks);
    // Each task's partial sums, side by side.
    let du_len = 16 * c_out * c_in;
    let mut du_parts = Recycled::filled(tasks * du_len, E::default());
    let mut gb_parts = Recycled::filled(tasks * c_out, E::default());
    let parts = du_parts
        .par_chunks_mut(du_len)
        .zip(gb_parts.par_chunks_mut(c_out));
    gx_tasks
        .into_par_iter()
        .zip(x.par_chunks(n * in_len))
        .zip(gy.par_chunks(n * out_len))
        .zip(arg_tasks)
        .zip(parts)
        .for_each(|((((mut gx_task, x_task), gy_task), arg_task), (du, gb))| {
            let gt_max = GROUP.min(x_task.len() / in_len) * t; // rows: images · tiles
            let pad_len = tiles.padded_len(c_in);
            let tmp_len = 16 * c_in.max(c_out);
            let len = 16 * (c_in + c_out) * gt_max + pad_len + in_len + tmp_len + p * c_out;
            E::with_scratch(len, |scratch| {
                simd::run!(isa, |isa| {
                    let (v, rest) = scratch.split_at_mut(16 * gt_max * c_in);
                    let (dm, rest) = rest.split_at_mut(16 * gt_max * c_out);
                    let (xp, rest) = rest.split_at_mut(pad_len);
                    let (x_cl, rest) = rest.split_at_mut(in_len);
                    let (gz_cl, tmp) = rest.split_at_mut(p * c_out);
                    let groups = x_task
                        .chunks(GROUP * in_len)
                        .zip(gy_task.chunks(GROUP * out_len));
                    for (gi, (x_group, gy_group)) in groups.enumerate() {
                        let gt = (x_group.len() / in_len) * t;
                        let images = x_group.chunks(in_len).zip(gy_group.chunks(out_len));
                        for (i, (x_img, gy_img)) in images.enumerate() {
                            let img = gi * GROUP + i;
                            if pools_tiles(f) {
                                // the pooled gradient channels-last, [PHO·PWO, O]; arg [PHO·PWO, O]
                                let a = &arg_task[img * out_len..][..out_len];
                                let gy_cl = &mut gz_cl[..t * c_out];
                                transpose(isa, gy_img, c_out, t, gy_cl);
                                add_pooled_bias_grad(tiles, gy_cl, a, gb);
                                let gy_cl = &*gy_cl;
                                transform_output_adjoint(
                                    isa,
                                    op,
                                    tiles,
                                    tmp,
                                    dm,
                                    gt,
                                    i * t,
                                    #[inline(always)] // into the kernel's AVX2 copy (`simd.rs`)
                                    |ty, tx, g| {
                                        let q = (ty * tiles.tw + tx) * c_out;
                                        unpool_tile(&gy_cl[q..][..c_out], &a[q..][..c_out], g);
                                    },
                                ); // [16, G·T, O]
                            } else {
                                // gz_cl: the convolution's output gradient, [HO·WO, O]
                                if f.is_identity() {
                                    transpose(isa, gy_img, c_out, p, gz_cl);
                                } else {
                                    let a = &arg_task[img * out_len..][..out_len];
                                    unpool_to_channels_last::<E, PK, PS>(op, f, gy_img, a, gz_cl);
                                }
                                for pos in gz_cl.chunks_exact(c_out) {
                                    for (g_o, &v) in gb.iter_mut().zip(pos) {
                                        *g_o += v;
                                    }
                                }
                                let gz_cl = &*gz_cl;
                                transform_output_adjoint(
                                    isa,
                                    op,
                                    tiles,
                                    tmp,
                                    dm,
                                    gt,
                                    i * t,
                                    #[inline(always)] // into the kernel's AVX2 copy (`simd.rs`)
                                    |ty, tx, g| {
                                        read_tile_grad(op, gz_cl, ty, tx, g);
                                    },
                                ); // [16, G·T, O]
                            }
                            pad_channels_last(isa, op, tiles, x_img, x_cl, xp); // [HP, WP, I]
                                                                                // v: [16, G·T, I]
                            transform_input(isa, op, tiles, xp, tmp, v, gt, i * t);
                        }
                        for xi in 0..16 {
                            let dm_xi =
                                Mat::row_major(&dm[xi * gt * c_out..][..gt * c_out], gt, c_out);
                            let v_xi = Mat::row_major(&v[xi * gt * c_in..][..gt * c_in], gt, c_in);
                            let du_xi = &mut du[xi * c_out * c_in..][..c_out * c_in];
                            matmul(du_xi, c_in, dm_xi.t(), v_xi, true); // dU[ξ] [O, I] += dM[ξ]ᵀ · V[ξ]
                        }
                        let Some(gx_task) = gx_task.as_deref_mut() else {
                            continue; // the first layer: no input gradient
                        };
                        for xi in 0..16 {
                            let dm_xi =
                                Mat::row_major(&dm[xi * gt * c_out..][..gt * c_out], gt, c_out);
                            let u_xi = Mat::row_major(
                                &u[xi * c_out * c_in..][..c_out * c_in],
                                c_out,
                                c_in,
                            );
                            let dv_xi = &mut v[xi * gt * c_in..][..gt * c_in];
                            matmul(dv_xi, c_in, dm_xi, u_xi, false); // dV[ξ] = dM[ξ] · U[ξ], over V
                        }
                        let gx_group = &mut gx_task[gi * GROUP * in_len..][..x_group.len()];
                        for (i, gx_img) in gx_group.chunks_mut(in_len).enumerate() {
                            xp.fill(E::default());
                            // onto xp [HP, WP, I], then added into gx_img [I, H, W]
                            transform_input_adjoint(isa, op, tiles, v, tmp, xp, gt, i * t);
                            unpad_channels_last_add(isa, op, tiles, xp, x_cl, gx_img);
                        }
                    }
                })
            });
        });

    // Sum the tasks in order: deterministic for any thread count.
    simd::run!(isa, |_isa| {
        let mut du = Recycled::filled(du_len, E::default());
        let mut gb = Recycled::filled(c_out, E::default());
        let parts = du_parts
            .chunks_exact(du_len)
            .zip(gb_parts.chunks_exact(c_out));
        for (pu, pb) in parts {
            for (d, &s) in du.iter_mut().zip(pu) {
                *d += s;
            }
            for (d, &s) in gb.iter_mut().zip(pb) {
                *d += s;
            }
        }
        (transform_weights_adjoint(isa, op, &du), gb)
    })
}

/// The adjoint of the pooling (`pool_relu_plane`), written channels-last:
/// `gz[pos][o]` = the gradient of each output at its window's maximum, 0
/// elsewhere (overlapping windows add). Only the pooled gradients move (a
/// quarter of the positions for 2x2 pools), not a transpose of all of `gz`.
///
/// # Shapes
/// `gy, arg: [O, PHO·PWO]` -> `gz: [HO·WO, O]`.
#[inline(always)]
fn unpool_to_channels_last<E: GemmFloat, const PK: usize, const PS: usize>(
    op: &Conv2DOp,
    f: &Fusion,
    gy: &[E],
    arg: &[u8],
    gz: &mut [E],
) {
    let (wo, o_n) = (op.w_out, op.chan_out);
    gz.fill(E::default());
    let planes = gy
        .chunks_exact(f.plane_out())
        .zip(arg.chunks_exact(f.plane_out()));
    for (o, (g_plane, a_plane)) in planes.enumerate() {
        for (q, (&g, &a)) in g_plane.iter().zip(a_plane).enumerate() {
            if a != DEAD {
                let (ph, pw) = (q / f.w_out, q % f.w_out);
                let (kh, kw) = (a as usize / PK, a as usize % PK);
                gz[((ph * PS + kh) * wo + pw * PS + kw) * o_n + o] += g;
            }
        }
    }
}

/// `g[2i + j]` = `gz` at output `(2ty + i, 2tx + j)`, 0 past the edge: a
/// tile's output gradient for [`transform_output_adjoint`].
///
/// # Shapes
/// `gz: [HO·WO, O]` -> `g: [4, O]`.
#[inline(always)]
fn read_tile_grad<E: GemmFloat>(op: &Conv2DOp, gz: &[E], ty: usize, tx: usize, g: &mut [E]) {
    let (ho, wo, o_n) = (op.h_out, op.w_out, op.chan_out);
    for (k, dst) in g.chunks_exact_mut(o_n).enumerate() {
        let (oh, ow) = (2 * ty + k / 2, 2 * tx + k % 2);
        if oh < ho && ow < wo {
            dst.copy_from_slice(&gz[(oh * wo + ow) * o_n..][..o_n]);
        } else {
            dst.fill(E::default());
        }
    }
}

/// The adjoint of [`pool_tile`]: a tile's output gradient `g: [4, O]` is
/// the pooled gradient `gy: [O]` at each channel's window offset, 0
/// elsewhere (and everywhere for a [`DEAD`] offset).
#[inline(always)]
fn unpool_tile<E: GemmFloat>(gy: &[E], arg: &[u8], g: &mut [E]) {
    let (o_n, zero) = (gy.len(), E::default());
    for (k, g_k) in g.chunks_exact_mut(o_n).enumerate() {
        for ((d, &v), &a) in g_k.iter_mut().zip(gy).zip(arg) {
            // `zero + v` as the unpooling's `+=` onto zeros computed it (-0 -> +0)
            *d = if a as usize == k { zero + v } else { zero };
        }
    }
}

/// Adds the bias gradient of one image's tile-pooled block: the sum of the
/// pooled gradients `gy: [PHO·PWO, O]` whose maximum was not cut, taken in
/// the order of the convolution's outputs (row by row, so a window whose
/// maximum sits in its bottom row comes after the top-row maxima of its
/// neighbours), as summing the unpooled gradient over every position does:
/// the same additions in the same order, so the same result to the bit.
#[inline(always)]
fn add_pooled_bias_grad<E: GemmFloat>(tiles: Tiles, gy: &[E], arg: &[u8], gb: &mut [E]) {
    let o_n = gb.len();
    for ty in 0..tiles.th {
        for row in 0..2 {
            for tx in 0..tiles.tw {
                let q = (ty * tiles.tw + tx) * o_n;
                let (g, a) = (&gy[q..][..o_n], &arg[q..][..o_n]);
                for ((s, &v), &a) in gb.iter_mut().zip(g).zip(a) {
                    // a / 2: the window row of the maximum (DEAD / 2 matches no row);
                    // adding 0 elsewhere changes nothing (a sum from +0 is never -0)
                    *s += if (a / 2) as usize == row {
                        v
                    } else {
                        E::default()
                    };
                }
            }
        }
    }
}

simd::kernel! {
    /// The adjoint of [`transform_weights`]: `gw[o, c] = Gᵀ dU[·][o][c] G`.
    ///
    /// # Shapes
    /// `du: [16, O, I]` -> `[O, I, 3, 3]`.
    fn transform_weights_adjoint<E: GemmFloat>(isa: Isa, op: &Conv2DOp, du: &[E]) -> Recycled<E> {
        let oi = op.chan_out * op.chan_in;
        let half = E::from_f64(0.5).unwrap_or_default();
        // Gᵀ = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]]
        let gt_apply =
            |a: E, b: E, c: E, d: E| [a + (b + c) * half, (b - c) * half, (b + c) * half + d];
        let mut gw = Recycled::stale(9 * oi); // every element written below
        for (oc, g) in gw.chunks_exact_mut(9).enumerate() {
            let at = |row: usize, col: usize| du[(row * 4 + col) * oi + oc];
            // Gᵀ dU: 3 rows of 4
            // (written out: `array::map` would be a portable function of its own, `simd.rs`)
            let col = |col: usize| gt_apply(at(0, col), at(1, col), at(2, col), at(3, col));
            let cols = [col(0), col(1), col(2), col(3)];
            for r in 0..3 {
                let row = gt_apply(cols[0][r], cols[1][r], cols[2][r], cols[3][r]); // (Gᵀ dU) G
                g[3 * r..3 * r + 3].copy_from_slice(&row);
            }
        }
        gw
    }
}

simd::kernel! {
    /// The adjoint of [`transform_output`] (without the bias): for every tile,
    /// `dM[ξ][row0 + t] = (A g Aᵀ)[ξ]` for its 2x2 output gradient `g`, which
    /// `tile_grad(ty, tx, g)` writes (`g[2i + j]`: output `(2ty + i, 2tx + j)`,
    /// contiguous over O), `A = [[1, 0], [1, 1], [1, -1], [0, -1]]`.
    ///
    /// # Shapes
    /// `dm: [16, ld, O]` (rows `row0 .. row0 + T`); `tmp: [12, O]`.
    fn transform_output_adjoint<E: GemmFloat>(
        isa: Isa,
        op: &Conv2DOp,
        tiles: Tiles,
        tmp: &mut [E],
        dm: &mut [E],
        ld: usize,
        row0: usize,
        tile_grad: impl FnMut(usize, usize, &mut [E]),
    ) {
        let mut tile_grad = tile_grad;
        let o_n = op.chan_out;
        let zero = E::default();
        let (g, a) = tmp[..12 * o_n].split_at_mut(4 * o_n);
        for ty in 0..tiles.th {
            for tx in 0..tiles.tw {
                let row = row0 + ty * tiles.tw + tx;
                tile_grad(ty, tx, g);
                // a[r][j] = (A g)[r][j]
                for j in 0..2 {
                    let (g0, g1) = (&g[j * o_n..][..o_n], &g[(2 + j) * o_n..][..o_n]);
                    for o in 0..o_n {
                        a[j * o_n + o] = g0[o];
                        a[(2 + j) * o_n + o] = g0[o] + g1[o];
                        a[(4 + j) * o_n + o] = g0[o] - g1[o];
                        a[(6 + j) * o_n + o] = zero - g1[o];
                    }
                }
                // dM[r][s] = (a Aᵀ)[r][s]
                for r in 0..4 {
                    let (a0, a1) = (&a[2 * r * o_n..][..o_n], &a[(2 * r + 1) * o_n..][..o_n]);
                    let at = |s: usize| ((r * 4 + s) * ld + row) * o_n;
                    for o in 0..o_n {
                        dm[at(0) + o] = a0[o];
                        dm[at(1) + o] = a0[o] + a1[o];
                        dm[at(2) + o] = a0[o] - a1[o];
                        dm[at(3) + o] = zero - a1[o];
                    }
                }
            }
        }
    }
}

simd::kernel! {
    /// The adjoint of [`transform_input`]: adds `B dV[·][row0 + t] Bᵀ` of every
    /// tile onto its 4x4 window of the padded, channels-last gradient (windows
    /// of neighbouring tiles overlap by two rows or columns and add).
    ///
    /// # Shapes
    /// `dv: [16, ld, I]` (rows `row0 .. row0 + T`) -> `gxp: [HP, WP, I]` (accumulated); `tmp: [16, I]`.
    fn transform_input_adjoint<E: GemmFloat>(
        isa: Isa,
        op: &Conv2DOp,
        tiles: Tiles,
        dv: &[E],
        tmp: &mut [E],
        gxp: &mut [E],
        ld: usize,
        row0: usize,
    ) {
        let c = op.chan_in;
        let wp = 2 * tiles.tw + 2;
        let tmp = &mut tmp[..16 * c];
        for ty in 0..tiles.th {
            for tx in 0..tiles.tw {
                let row = row0 + ty * tiles.tw + tx;
                let dvv = |r: usize, s: usize| &dv[((r * 4 + s) * ld + row) * c..][..c];
                // Along r: dt[r][s] = (B dV)[r][s], B = [[1, 0, 0, 0], [0, 1, -1, 1], [-1, 1, 1, 0], [0, 0, 0, -1]]
                for s in 0..4 {
                    let (v0, v1, v2, v3) = (dvv(0, s), dvv(1, s), dvv(2, s), dvv(3, s));
                    for k in 0..c {
                        tmp[(s) * c + k] = v0[k];
                        tmp[(4 + s) * c + k] = v1[k] - v2[k] + v3[k];
                        tmp[(8 + s) * c + k] = v1[k] + v2[k] - v0[k];
                        tmp[(12 + s) * c + k] = E::default() - v3[k];
                    }
                }
                // Along s, added onto the tile's window: dd[r][·] = dt[r][·] Bᵀ
                for r in 0..4 {
                    let t = |s: usize| &tmp[(4 * r + s) * c..][..c];
                    let (t0, t1, t2, t3) = (t(0), t(1), t(2), t(3));
                    let base = ((2 * ty + r) * wp + 2 * tx) * c;
                    let window = &mut gxp[base..base + 4 * c];
                    let (d0, rest) = window.split_at_mut(c);
                    let (d1, rest) = rest.split_at_mut(c);
                    let (d2, d3) = rest.split_at_mut(c);
                    for k in 0..c {
                        d0[k] += t0[k];
                        d1[k] += t1[k] - t2[k] + t3[k];
                        d2[k] += t1[k] + t2[k] - t0[k];
                        d3[k] -= t3[k];
                    }
                }
            }
        }
    }
}

/// The adjoint of [`pad_channels_last`]: adds the input's part of the padded,
/// channels-last `gxp` into `gx`, gathering it into `g_cl` first (positions
/// outside the region get no gradient) and transposing that whole.
///
/// # Shapes
/// `gxp: [2·th + 2, 2·tw + 2, I]` -> `gx: [I, H, W]` (accumulated); `g_cl: [H·W, I]`.
#[inline(always)]
fn unpad_channels_last_add<E: GemmFloat>(
    isa: Isa,
    op: &Conv2DOp,
    tiles: Tiles,
    gxp: &[E],
    g_cl: &mut [E],
    gx: &mut [E],
) {
    let (h, w, c_in) = (op.h_in, op.w_in, op.chan_in);
    let (hp, wp) = (2 * tiles.th + 2, 2 * tiles.tw + 2);
    let cols = w.min(wp.saturating_sub(op.pad_w)); // input columns inside the region
    g_cl.fill(E::default());
    for ih in 0..h.min(hp.saturating_sub(op.pad_h)) {
        let src = &gxp[((ih + op.pad_h) * wp + op.pad_w) * c_in..][..cols * c_in];
        g_cl[ih * w * c_in..][..cols * c_in].copy_from_slice(src);
    }
    transpose_strided(isa, g_cl, c_in, gx, h * w, h * w, c_in, true); // [I, H·W] +=
}

simd::kernel! {
    /// `U[ξ][o][c] = (G g Gᵀ)[ξ]` for every kernel `g = w[o, c]`.
    ///
    /// # Shapes
    /// `w: [O, I, 3, 3]` -> `[16, O, I]`.
    fn transform_weights<E: GemmFloat>(isa: Isa, op: &Conv2DOp, w: &[E]) -> Recycled<E> {
        let oi = op.chan_out * op.chan_in;
        let half = E::from_f64(0.5).unwrap_or_default();
        // G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
        let g_apply = |a: E, b: E, c: E| [a, (a + b + c) * half, (a - b + c) * half, c];
        let mut u = Recycled::stale(16 * oi); // every element written below
        for (oc, g) in w.chunks_exact(9).enumerate() {
            // g Gᵀ (written out: `array::map` would be a portable function of its own, `simd.rs`)
            let row = |r: usize| g_apply(g[3 * r], g[3 * r + 1], g[3 * r + 2]);
            let rows = [row(0), row(1), row(2)];
            for col in 0..4 {
                let t = g_apply(rows[0][col], rows[1][col], rows[2][col]); // column of G g Gᵀ
                for (row, &val) in t.iter().enumerate() {
                    u[(row * 4 + col) * oi + oc] = val;
                }
            }
        }
        u
    }
}

/// Copies one image into a zero-padded channels-last buffer covering every
/// tile read: `xp[r][s][c] = x[c][r - PH][s - PW]` (0 outside), through a
/// transpose of the whole image into `x_cl` (8x8 blocks; the rows of the
/// padded region are too short for them).
///
/// # Shapes
/// `x: [I, H, W]` -> `xp: [2·th + 2, 2·tw + 2, I]`; `x_cl: [H·W, I]`.
#[inline(always)]
fn pad_channels_last<E: GemmFloat>(
    isa: Isa,
    op: &Conv2DOp,
    tiles: Tiles,
    x: &[E],
    x_cl: &mut [E],
    xp: &mut [E],
) {
    let (h, w, c_in) = (op.h_in, op.w_in, op.chan_in);
    let (hp, wp) = (2 * tiles.th + 2, 2 * tiles.tw + 2);
    transpose(isa, x, c_in, h * w, x_cl); // [H·W, I]
    xp.fill(E::default());
    let cols = w.min(wp.saturating_sub(op.pad_w)); // input columns inside the region
    for ih in 0..h.min(hp.saturating_sub(op.pad_h)) {
        let dst = &mut xp[((ih + op.pad_h) * wp + op.pad_w) * c_in..][..cols * c_in];
        dst.copy_from_slice(&x_cl[ih * w * c_in..][..cols * c_in]);
    }
}

/// `dst = a - b`, `a + b` element-wise over channels.
#[inline(always)]
fn sub_into<E: GemmFloat>(dst: &mut [E], a: &[E], b: &[E]) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = x - y;
    }
}
#[inline(always)]
fn add_into<E: GemmFloat>(dst: &mut [E], a: &[E], b: &[E]) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = x + y;
    }
}

simd::kernel! {
    /// Writes `V[ξ][row0 + t][c] = (Bᵀ d B)[ξ]` for every 4x4 tile `d` of one image.
    ///
    /// # Shapes
    /// `xp: [HP, WP, I]` -> `v: [16, ld, I]` (rows `row0 .. row0 + T`); `tmp: [16, I]`.
    fn transform_input<E: GemmFloat>(
        isa: Isa,
        op: &Conv2DOp,
        tiles: Tiles,
        xp: &[E],
        tmp: &mut [E],
        v: &mut [E],
        ld: usize,
        row0: usize,
    ) {
        let c = op.chan_in;
        let wp = 2 * tiles.tw + 2;
        let tmp = &mut tmp[..16 * c];
        for ty in 0..tiles.th {
            for tx in 0..tiles.tw {
                let d = |r: usize, s: usize| &xp[((2 * ty + r) * wp + 2 * tx + s) * c..][..c];
                // Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
                // tmp[r][s'] = (d B)[r][s'], rows of d combined along s
                for r in 0..4 {
                    let row = &mut tmp[r * 4 * c..][..4 * c];
                    let (t0, rest) = row.split_at_mut(c);
                    let (t1, rest) = rest.split_at_mut(c);
                    let (t2, t3) = rest.split_at_mut(c);
                    sub_into(t0, d(r, 0), d(r, 2));
                    add_into(t1, d(r, 1), d(r, 2));
                    sub_into(t2, d(r, 2), d(r, 1));
                    sub_into(t3, d(r, 1), d(r, 3));
                }
                // V[r'][s'] = (Bᵀ (d B))[r'][s'], combined along r
                let row = row0 + ty * tiles.tw + tx;
                let tm = |r: usize, s: usize| &tmp[(r * 4 + s) * c..][..c];
                for s in 0..4 {
                    let out = |r: usize| (r * 4 + s) * ld + row;
                    sub_into(&mut v[out(0) * c..][..c], tm(0, s), tm(2, s));
                    add_into(&mut v[out(1) * c..][..c], tm(1, s), tm(2, s));
                    sub_into(&mut v[out(2) * c..][..c], tm(2, s), tm(1, s));
                    sub_into(&mut v[out(3) * c..][..c], tm(1, s), tm(3, s));
                }
            }
        }
    }
}

simd::kernel! {
    /// `bias + Aᵀ m A` for every tile of one image: hands each tile's 2x2
    /// outputs to `sink(ty, tx, out)` (`out[2i + j]`: output `(2ty + i, 2tx + j)`,
    /// contiguous over O; outputs past `HO x WO` are computed too, for the sink
    /// to drop).
    ///
    /// # Shapes
    /// `m: [16, ld, O]` (rows `row0 .. row0 + T`); `tmp: [12, O]`.
    fn transform_output<E: GemmFloat>(
        isa: Isa,
        op: &Conv2DOp,
        tiles: Tiles,
        m: &[E],
        tmp: &mut [E],
        ld: usize,
        row0: usize,
        bias: &[E],
        sink: impl FnMut(usize, usize, &[E]),
    ) {
        let mut sink = sink;
        let o_n = op.chan_out;
        let (ma, out) = tmp[..12 * o_n].split_at_mut(8 * o_n);
        for ty in 0..tiles.th {
            for tx in 0..tiles.tw {
                let row = row0 + ty * tiles.tw + tx;
                let mm = |r: usize, s: usize| &m[((r * 4 + s) * ld + row) * o_n..][..o_n];
                // Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]; ma[r][j] = (m A)[r][j]
                for r in 0..4 {
                    let (a0, a1) = ma[r * 2 * o_n..][..2 * o_n].split_at_mut(o_n);
                    for (((((d0, d1), &m0), &m1), &m2), &m3) in a0
                        .iter_mut()
                        .zip(a1.iter_mut())
                        .zip(mm(r, 0))
                        .zip(mm(r, 1))
                        .zip(mm(r, 2))
                        .zip(mm(r, 3))
                    {
                        *d0 = m0 + m1 + m2;
                        *d1 = m1 - m2 - m3;
                    }
                }
                for i in 0..2 {
                    for j in 0..2 {
                        // out = bias + row i of Aᵀ (m A), column j; contiguous over O
                        let t = |r: usize| &ma[(r * 2 + j) * o_n..][..o_n];
                        let (t0, t1, t2, t3) = (t(0), t(1), t(2), t(3));
                        let dst = &mut out[(2 * i + j) * o_n..][..o_n];
                        for ((((d, &b_o), &v0), &v1), (&v2, &v3)) in dst
                            .iter_mut()
                            .zip(bias)
                            .zip(t0)
                            .zip(t1)
                            .zip(t2.iter().zip(t3))
                        {
                            *d = if i == 0 {
                                b_o + v0 + v1 + v2
                            } else {
                                b_o + v1 - v2 - v3
                            };
                        }
                    }
                }
                sink(ty, tx, out);
            }
        }
    }
}

/// A [`transform_output`] sink that writes the outputs inside `HO x WO`
/// into `z: [HO·WO, O]` (channels-last).
#[inline(always)]
fn write_outputs<'a, E: GemmFloat>(
    op: &'a Conv2DOp,
    z: &'a mut [E],
) -> impl FnMut(usize, usize, &[E]) + 'a {
    let (ho, wo, o_n) = (op.h_out, op.w_out, op.chan_out);
    #[inline(always)] // into the output transform's AVX2 copy (`simd.rs`)
    move |ty, tx, out| {
        for (k, src) in out.chunks_exact(o_n).enumerate() {
            let (oh, ow) = (2 * ty + k / 2, 2 * tx + k % 2);
            if oh < ho && ow < wo {
                z[(oh * wo + ow) * o_n..][..o_n].copy_from_slice(src);
            }
        }
    }
}

/// Whether each pooling window is one Winograd tile: 2x2 windows, stride 2.
/// Keras floors the pooled size, so the windows start at the first output
/// and never reach past the convolution's output; [`Tiles::new`] then gives
/// one tile per pooled output, and the pooling happens per tile, on the
/// output transform's channels-last values (no full-size output, no
/// transpose of it).
pub(crate) fn pools_tiles(f: &Fusion) -> bool {
    f.pool_k == 2 && f.pool_s == 2
}

/// Max-pools one tile's 2x2 outputs `out: [4, O]` (ReLU when `relu`) into
/// `y: [O]`, with `arg: [O]` the window offsets ([`DEAD`] where the ReLU cut
/// the maximum): the rule and the tree of `cpu::pool2_relu_plane` (ties to
/// the first maximum in scan order), so the values are the same.
#[inline(always)]
fn pool_tile<E: GemmFloat>(relu: bool, out: &[E], y: &mut [E], arg: Option<&mut [u8]>) {
    let o_n = y.len();
    let (a0, a1) = (&out[..o_n], &out[o_n..2 * o_n]);
    let (b0, b1) = (&out[2 * o_n..3 * o_n], &out[3 * o_n..4 * o_n]);
    // `pool2_window` is inlined into the AVX2 copy of the output transform
    // (`simd.rs`) that calls this.
    let window = |o: usize| [a0[o], a1[o], b0[o], b1[o]];
    match arg {
        None => {
            for (o, y) in y.iter_mut().enumerate() {
                *y = pool2_window(relu, window(o)).0;
            }
        }
        Some(arg) => {
            for o in 0..o_n {
                (y[o], arg[o]) = pool2_window(relu, window(o));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{assert_close, test_values};
    use std::time::Instant;

    /// A/B timing against the im2col path on the study's shapes (minimum of
    /// interleaved runs, robust on a shared machine):
    /// `cargo test --release -p netdsl-runtime --lib winograd -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_against_im2col() {
        let shapes = [
            ("cnn3a.conv2", 32, 64, 13, 11, 0),
            ("cnn4a.conv2", 32, 64, 14, 14, 1),
            ("cnn4a.conv3", 64, 64, 7, 7, 1),
        ];
        for (name, i, o, h, ho, pad) in shapes {
            let op = Conv2DOp {
                batch: 100,
                chan_in: i,
                chan_out: o,
                kernel_h: 3,
                kernel_w: 3,
                stride_h: 1,
                stride_w: 1,
                pad_h: pad,
                pad_w: pad,
                h_in: h,
                w_in: h,
                h_out: ho,
                w_out: ho,
            };
            let f = |n: usize, seed| -> Vec<f32> {
                test_values(n, seed).iter().map(|&v| v as f32).collect()
            };
            let (x, w, b) = (f(100 * i * h * h, 1), f(o * i * 9, 2), f(o, 3));
            let mut y1 = vec![0f32; 100 * o * ho * ho];
            let mut y2 = y1.clone();
            let f = Fusion::plain(&op);
            let (mut t_wino, mut t_im2col) = (f64::MAX, f64::MAX);
            for _ in 0..20 {
                let t = Instant::now();
                forward::<f32, 1, 1>(
                    &op,
                    &Fusion::plain(&op),
                    &x,
                    &w,
                    &b,
                    &mut y1,
                    &mut [],
                    &mut [],
                );
                t_wino = t_wino.min(t.elapsed().as_secs_f64());
                let t = Instant::now();
                match ho {
                    11 => super::super::im2col::forward::<f32, 11, 1, 1>(
                        &op,
                        &f,
                        &x,
                        &w,
                        &b,
                        &mut y2,
                        &mut [],
                        &mut [],
                    ),
                    14 => super::super::im2col::forward::<f32, 14, 1, 1>(
                        &op,
                        &f,
                        &x,
                        &w,
                        &b,
                        &mut y2,
                        &mut [],
                        &mut [],
                    ),
                    _ => super::super::im2col::forward::<f32, 7, 1, 1>(
                        &op,
                        &f,
                        &x,
                        &w,
                        &b,
                        &mut y2,
                        &mut [],
                        &mut [],
                    ),
                }
                t_im2col = t_im2col.min(t.elapsed().as_secs_f64());
            }
            assert_close(&y1, &y2, 1e-3); // f32 rounding, relative to 1e-3 of the largest output
            let gflop = 2.0 * op.forward_macs() as f64 / 1e9;
            println!(
                "{name}: winograd {:.2} ms ({:.0} GFLOP/s eq.), im2col {:.2} ms ({:.0} GFLOP/s)",
                t_wino * 1e3,
                gflop / t_wino,
                t_im2col * 1e3,
                gflop / t_im2col
            );
        }
    }
}
