//! The backward pass of a network's first layer on grey images (`conv<32,
//! 3>, relu, maxpool<2>` on `<1, 28, 28>`: one input channel, 3x3, stride
//! 1, 2x2 pools), computed directly from the pooled gradient.
//!
//! The im2col backward unpools the gradient into the full-size `[O, 26·26]`
//! planes (three zeros in every four), rebuilds the patch columns and runs
//! the thin product `gW [O, 9] += gz · colsᵀ`, then sums `gz` for the bias:
//! the full-size gradient is written once and read twice. Here each pooling
//! window is visited once: its 4x4 input patch is loaded, and for 8 output
//! channels at a time each of its four outputs contributes `gW[t][o] +=
//! g_k[o]·patch_k[t]` (`g_k` the pooled gradient where output `k` is the
//! window's maximum, 0 elsewhere), the sums kept in registers over the
//! image. A first layer needs no input gradient, so none is computed; the
//! forward pass stays im2col + gemm (its AVX-512 kernels are twice as wide
//! as the AVX2 this crate is compiled for).
//!
//! Per CNN3a image: 169 windows x 4 outputs x 9 taps x 32 channels = 195k
//! multiply-adds, as many as the product's, and no full-size buffers.
//! Results equal the im2col path up to float rounding (the tests compare
//! both with the unfused layers in f64). CNN3a's block 1 backward (batch
//! 100, `examples/step_profile.rs`): 1.55-1.63 ms -> 0.80-0.94 ms.

use rayon::prelude::*;

use super::cpu::{images_per_task, padded_source, Padded};
use super::transpose::transpose;
use super::winograd::pools_tiles;
use super::{Conv2DOp, Fusion};
use crate::nn::gemm::GemmFloat;

/// Output channels per register block.
const LANES: usize = 8;

/// A block of [`LANES`] output channels.
type V<E> = [E; LANES];

/// Whether [`backward`] handles this convolution.
pub(super) fn applies(op: &Conv2DOp, f: &Fusion) -> bool {
    op.chan_in == 1
        && op.kernel == 3
        && op.stride == 1
        && op.chan_out.is_multiple_of(LANES)
        && pools_tiles(f)
        && !f.input_grad
}

/// The 4x4 input patch of pooling window `(ph, pw)` in the padded image
/// `xp` (`wp` wide).
fn patch<E: GemmFloat>(xp: &[E], wp: usize, ph: usize, pw: usize) -> [E; 16] {
    let mut p = [E::default(); 16];
    for (r, row) in p.chunks_exact_mut(4).enumerate() {
        row.copy_from_slice(&xp[(2 * ph + r) * wp + 2 * pw..][..4]);
    }
    p
}

/// The input that tap `t = kh·3 + kw` reads for output `k = 2i + j` of a
/// window (output `(2ph + i, 2pw + j)`): `patch[(i + kh)·4 + j + kw]`.
fn tap<E: GemmFloat>(p: &[E; 16], k: usize, t: usize) -> E {
    p[(k / 2 + t / 3) * 4 + k % 2 + t % 3]
}

/// The weight and bias gradients of the fused op from the gradient `gy` of
/// its output and the pooling offsets `arg` its forward pass kept. Tasks
/// keep partial sums, added in task order (thread-count independent).
///
/// # Shapes
/// `x: [B, 1, H, W]`, `gy, arg: [B, O, PHO·PWO]` -> `(gw: [O, 9], gb: [O])`.
pub(super) fn backward<E: GemmFloat>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    gy: &[E],
    arg: &[u8],
) -> (Vec<E>, Vec<E>) {
    let (o_n, q_n) = (op.chan_out, f.plane_out());
    let (in_len, out_len) = (op.in_image_len(), o_n * q_n);
    let pd = Padded::new(op);
    let n = images_per_task(op.batch);
    let partials: Vec<(Vec<E>, Vec<E>)> = x
        .par_chunks(n * in_len)
        .zip(gy.par_chunks(n * out_len))
        .zip(arg.par_chunks(n * out_len))
        .map(|((x_task, gy_task), arg_task)| {
            let mut gw_t = vec![E::default(); 9 * o_n]; // [9, O]
            let mut gb = vec![E::default(); o_n];
            let mut a_cl = vec![0u8; out_len]; // one image's offsets, [PHO·PWO, O]
            E::with_scratch(pd.h * pd.w + out_len, |scratch| {
                let (xp, gy_cl) = scratch.split_at_mut(pd.h * pd.w);
                let images = x_task
                    .chunks(in_len)
                    .zip(gy_task.chunks(out_len))
                    .zip(arg_task.chunks(out_len));
                for ((x_img, gy_img), a_img) in images {
                    let src = padded_source(op, pd, x_img, xp); // [HP, WP]
                    transpose(gy_img, o_n, q_n, gy_cl); // [PHO·PWO, O]
                    for (o, plane) in a_img.chunks_exact(q_n).enumerate() {
                        for (q, &a) in plane.iter().enumerate() {
                            a_cl[q * o_n + o] = a;
                        }
                    }
                    for o0 in (0..o_n).step_by(LANES) {
                        let mut acc = [[E::default(); LANES]; 9]; // gW[t][o0 + l] over the image
                        let mut acc_b = [E::default(); LANES];
                        for q in 0..q_n {
                            let p = patch(src, pd.w, q / f.w_out, q % f.w_out);
                            let g: V<E> = gy_cl[q * o_n + o0..][..LANES].try_into().expect("lanes");
                            let a = &a_cl[q * o_n + o0..][..LANES];
                            for (s, (&g_l, &a_l)) in acc_b.iter_mut().zip(g.iter().zip(a)) {
                                *s += if a_l < 4 { g_l } else { E::default() }; // not cut by the ReLU
                            }
                            for k in 0..4u8 {
                                // the gradient of output k: g where it is the window's maximum
                                let g_k: V<E> = std::array::from_fn(|l| {
                                    if a[l] == k {
                                        g[l]
                                    } else {
                                        E::default()
                                    }
                                });
                                for (t, acc_t) in acc.iter_mut().enumerate() {
                                    let x_t = tap(&p, k.into(), t);
                                    for (s, &g_l) in acc_t.iter_mut().zip(&g_k) {
                                        *s = g_l.fmadd(x_t, *s);
                                    }
                                }
                            }
                        }
                        for (t, acc_t) in acc.iter().enumerate() {
                            let row = &mut gw_t[t * o_n + o0..][..LANES];
                            row.iter_mut().zip(acc_t).for_each(|(d, &s)| *d += s);
                        }
                        let gb_blk = &mut gb[o0..o0 + LANES];
                        gb_blk.iter_mut().zip(&acc_b).for_each(|(d, &s)| *d += s);
                    }
                }
            });
            (gw_t, gb)
        })
        .collect();

    // Sum the tasks in order: deterministic for any thread count.
    let mut gw_t = vec![E::default(); 9 * o_n];
    let mut gb = vec![E::default(); o_n];
    for (pw, pb) in &partials {
        gw_t.iter_mut().zip(pw).for_each(|(d, &s)| *d += s);
        gb.iter_mut().zip(pb).for_each(|(d, &s)| *d += s);
    }
    let mut gw = vec![E::default(); o_n * 9];
    transpose(&gw_t, 9, o_n, &mut gw); // [O, 9]
    (gw, gb)
}
