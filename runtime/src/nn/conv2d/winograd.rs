//! Winograd F(2x2, 3x3) forward pass for 3x3, stride-1 convolutions (Cpu).
//!
//! Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015):
//! each 2x2 output tile is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 4x4 input
//! tile `d` and the 3x3 kernel `g`: 16 multiplies per 4 outputs instead of 36
//! (2.25x fewer). Summed over input channels, the products are 16 matrix
//! products `M[ξ] [T, O] = V[ξ] [T, I] · U[ξ]ᵀ [I, O]` over the tiles `T` of a
//! group of images (`ξ` the 16 positions of a 4x4 tile). The transforms run
//! channels-last so their inner loops are contiguous (vectorised). Results
//! equal the direct convolution up to float rounding (the tests compare with
//! a naive f64 convolution at 1e-12).
//!
//! Used for the forward pass (training and evaluation); the backward pass
//! stays im2col + gemm.

use rayon::prelude::*;

use super::cpu::images_per_task;
use super::Conv2DOp;
use crate::nn::gemm::{matmul, GemmFloat, Mat};

/// Fewer input channels than this gain nothing (the products get too thin).
const MIN_CHANNELS: usize = 8;

/// Whether [`forward`] handles this convolution.
pub(super) fn applies(op: &Conv2DOp) -> bool {
    op.kernel == 3 && op.stride == 1 && op.chan_in >= MIN_CHANNELS
}

/// Tile grid of one image: `th x tw` tiles of 2x2 outputs, read from a
/// zero-padded, channels-last copy `[2·th + 2, 2·tw + 2, I]`.
#[derive(Clone, Copy)]
struct Tiles {
    th: usize,
    tw: usize,
}

impl Tiles {
    fn new(op: &Conv2DOp) -> Self {
        Self {
            th: op.h_out.div_ceil(2),
            tw: op.w_out.div_ceil(2),
        }
    }
    fn count(&self) -> usize {
        self.th * self.tw
    }
    fn padded_len(&self, chan: usize) -> usize {
        (2 * self.th + 2) * (2 * self.tw + 2) * chan
    }
}

/// `y = bias + conv(x, w)` for the whole batch (3x3, stride 1, any padding).
///
/// # Shapes
/// `x: [B, I, H, W]`, `w: [O, I·3·3]`, `b: [O]`, `y: [B, O, HO·WO]`.
pub(super) fn forward<E: GemmFloat>(op: &Conv2DOp, x: &[E], w: &[E], b: &[E], y: &mut [E]) {
    let (c_in, c_out) = (op.chan_in, op.chan_out);
    let (in_len, out_len) = (op.in_image_len(), op.out_image_len());
    let tiles = Tiles::new(op);
    let t = tiles.count();
    let u = transform_weights(op, w); // [16, O, I]
    let n = images_per_task(op.batch);
    y.par_chunks_mut(n * out_len)
        .zip(x.par_chunks(n * in_len))
        .for_each(|(y_task, x_task)| {
            let gt = (x_task.len() / in_len) * t; // rows: images · tiles
            let pad_len = tiles.padded_len(c_in);
            let tmp_len = 16 * c_in.max(c_out);
            E::with_scratch(16 * (c_in + c_out) * gt + pad_len + tmp_len, |scratch| {
                let (v, rest) = scratch.split_at_mut(16 * gt * c_in);
                let (m, rest) = rest.split_at_mut(16 * gt * c_out);
                let (xp, tmp) = rest.split_at_mut(pad_len);
                for (i, x_img) in x_task.chunks(in_len).enumerate() {
                    pad_channels_last(op, tiles, x_img, xp); // [HP, WP, I]
                    transform_input(op, tiles, xp, tmp, v, gt, i * t); // [16, G·T, I]
                }
                for xi in 0..16 {
                    let v_xi = Mat::row_major(&v[xi * gt * c_in..][..gt * c_in], gt, c_in);
                    let u_xi = Mat::row_major(&u[xi * c_out * c_in..][..c_out * c_in], c_out, c_in);
                    matmul(
                        &mut m[xi * gt * c_out..][..gt * c_out],
                        c_out,
                        v_xi,
                        u_xi.t(),
                        false,
                    );
                    // [16, G·T, O]
                }
                for (i, y_img) in y_task.chunks_mut(out_len).enumerate() {
                    transform_output(op, tiles, m, tmp, gt, i * t, b, y_img); // [O, HO, WO]
                }
            })
        });
}

/// `U[ξ][o][c] = (G g Gᵀ)[ξ]` for every kernel `g = w[o, c]`.
///
/// # Shapes
/// `w: [O, I, 3, 3]` -> `[16, O, I]`.
fn transform_weights<E: GemmFloat>(op: &Conv2DOp, w: &[E]) -> Vec<E> {
    let oi = op.chan_out * op.chan_in;
    let half = E::from_f64(0.5).unwrap_or_default();
    // G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    let g_apply = |a: E, b: E, c: E| [a, (a + b + c) * half, (a - b + c) * half, c];
    let mut u = vec![E::default(); 16 * oi];
    for (oc, g) in w.chunks_exact(9).enumerate() {
        let rows = [0, 1, 2].map(|r| g_apply(g[3 * r], g[3 * r + 1], g[3 * r + 2])); // g Gᵀ
        for col in 0..4 {
            let t = g_apply(rows[0][col], rows[1][col], rows[2][col]); // column of G g Gᵀ
            for (row, &val) in t.iter().enumerate() {
                u[(row * 4 + col) * oi + oc] = val;
            }
        }
    }
    u
}

/// Copies one image into a zero-padded channels-last buffer covering every
/// tile read: `xp[r][s][c] = x[c][r - PH][s - PW]` (0 outside).
///
/// # Shapes
/// `x: [I, H, W]` -> `xp: [2·th + 2, 2·tw + 2, I]`.
fn pad_channels_last<E: GemmFloat>(op: &Conv2DOp, tiles: Tiles, x: &[E], xp: &mut [E]) {
    let (h, w, c_in) = (op.h_in, op.w_in, op.chan_in);
    let wp = 2 * tiles.tw + 2;
    xp.fill(E::default());
    for (c, plane) in x.chunks_exact(h * w).enumerate() {
        for (ih, row) in plane.chunks_exact(w).enumerate() {
            let r = ih + op.pad_h;
            if r >= 2 * tiles.th + 2 {
                break;
            }
            for (iw, &val) in row.iter().enumerate() {
                let s = iw + op.pad_w;
                if s >= wp {
                    break;
                }
                xp[(r * wp + s) * c_in + c] = val;
            }
        }
    }
}

/// `dst = a - b`, `a + b` element-wise over channels.
fn sub_into<E: GemmFloat>(dst: &mut [E], a: &[E], b: &[E]) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = x - y;
    }
}
fn add_into<E: GemmFloat>(dst: &mut [E], a: &[E], b: &[E]) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = x + y;
    }
}

/// Writes `V[ξ][row0 + t][c] = (Bᵀ d B)[ξ]` for every 4x4 tile `d` of one image.
///
/// # Shapes
/// `xp: [HP, WP, I]` -> `v: [16, ld, I]` (rows `row0 .. row0 + T`); `tmp: [16, I]`.
fn transform_input<E: GemmFloat>(
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

/// `y[o] = bias[o] + Aᵀ m A` for every tile of one image, cut to `HO x WO`.
///
/// # Shapes
/// `m: [16, ld, O]` (rows `row0 .. row0 + T`) -> `y: [O, HO, WO]`; `tmp: [9, O]`.
#[allow(clippy::too_many_arguments)]
fn transform_output<E: GemmFloat>(
    op: &Conv2DOp,
    tiles: Tiles,
    m: &[E],
    tmp: &mut [E],
    ld: usize,
    row0: usize,
    bias: &[E],
    y: &mut [E],
) {
    let (ho, wo, o_n) = (op.h_out, op.w_out, op.chan_out);
    let plane = ho * wo;
    let tmp = &mut tmp[..9 * o_n];
    for ty in 0..tiles.th {
        for tx in 0..tiles.tw {
            let row = row0 + ty * tiles.tw + tx;
            let mm = |r: usize, s: usize| &m[((r * 4 + s) * ld + row) * o_n..][..o_n];
            // Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]; tmp[r][j] = (m A)[r][j]
            for r in 0..4 {
                let (a0, a1) = tmp[r * 2 * o_n..][..2 * o_n].split_at_mut(o_n);
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
            for j in 0..2 {
                let ow = 2 * tx + j;
                if ow >= wo {
                    continue;
                }
                for i in 0..2 {
                    let oh = 2 * ty + i;
                    if oh >= ho {
                        continue;
                    }
                    // out = bias + column j of Aᵀ (m A), row i; contiguous over O
                    let (rows, out) = tmp.split_at_mut(8 * o_n);
                    let t = |r: usize| &rows[(r * 2 + j) * o_n..][..o_n];
                    let (t0, t1, t2, t3) = (t(0), t(1), t(2), t(3));
                    for ((((d, &b_o), &v0), &v1), (&v2, &v3)) in out
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
                    let at = oh * wo + ow;
                    for (o, &val) in out.iter().enumerate() {
                        y[o * plane + at] = val;
                    }
                }
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
                kernel: 3,
                stride: 1,
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
            let (mut t_wino, mut t_im2col) = (f64::MAX, f64::MAX);
            for _ in 0..20 {
                let t = Instant::now();
                forward(&op, &x, &w, &b, &mut y1);
                t_wino = t_wino.min(t.elapsed().as_secs_f64());
                let t = Instant::now();
                match ho {
                    11 => super::super::cpu::forward::<f32, 11>(&op, &x, &w, &b, &mut y2),
                    14 => super::super::cpu::forward::<f32, 14>(&op, &x, &w, &b, &mut y2),
                    _ => super::super::cpu::forward::<f32, 7>(&op, &x, &w, &b, &mut y2),
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
