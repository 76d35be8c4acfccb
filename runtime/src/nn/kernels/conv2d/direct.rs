//! A network's first layer on grey images (`conv<32, 3>, relu, maxpool<2>`
//! on `<1, 28, 28>`: one input channel, 3x3, stride 1, 2x2 pools), computed
//! per pooling window.
//!
//! With one input channel the im2col product `W [O, 9] · cols [9, P]` is
//! thin (k = 9), and it runs on the full-size output (`O·26·26` values per
//! CNN3a image) that the pooling then reads back; its backward unpools the
//! gradient into full-size planes (three zeros in every four), rebuilds the
//! patch columns and reads the planes twice. Here each pooling window's 4x4
//! input patch is loaded once, and for a block of output channels:
//! - forward: its four outputs are 9 multiply-adds each (`z[k][o] = b[o] +
//!   Σ_t w[t][o]·patch_k[t]`, the products in the order the im2col product
//!   sums them, so the same bits), pooled at once into channels-last
//!   `[PHO·PWO, O]` values and offsets; one transpose of the pooled image
//!   gives NCHW. This needs 16-wide AVX-512 (`avx512`, chosen at run time):
//!   8-wide (AVX2, what the crate's other loops get) it loses to `gemm`'s
//!   AVX-512 kernels.
//! - backward: each output's gradient is the pooled gradient where it is
//!   the window's maximum, and `gW[t][o] += g_k[o]·patch_k[t]` accumulates
//!   in registers over the image, 8 channels at a time (one AVX2 register;
//!   `simd.rs` chooses the instructions, and fuses the multiply-adds where
//!   the CPU has FMA). A first layer needs no input gradient.
//!
//! Per CNN3a image: 169 windows x 4 outputs x 9 taps x 32 channels = 195k
//! multiply-adds each way, as many as the product's, and no full-size
//! buffers. The tests compare both passes with the im2col path and the
//! unfused layers.

use rayon::prelude::*;

use super::im2col::{padded_source, Padded};
use super::winograd::pools_tiles;
use crate::nn::conv2d::{Conv2DOp, Fusion};
use crate::nn::kernels::gemm::GemmFloat;
use crate::nn::kernels::recycle::Recycled;
use crate::nn::kernels::simd::{self, Isa};
use crate::nn::kernels::tasks::{chunks_or_none, images_per_task};
use crate::nn::kernels::transpose::transpose;

/// Output channels per register block of the backward pass.
const LANES: usize = 8;

/// A block of [`LANES`] output channels.
type V<E> = [E; LANES];

/// Whether [`backward`] handles this convolution.
pub(crate) fn applies(op: &Conv2DOp, f: &Fusion) -> bool {
    op.chan_in == 1
        && op.is_square_stride1(3)
        && op.chan_out.is_multiple_of(LANES)
        && pools_tiles(f)
        && !f.input_grad
}

/// Whether [`forward`] handles it too: f32, channels a multiple of 32, and
/// a CPU with AVX-512F. The pooling offsets are then channels-last.
pub(crate) fn forward_applies<E: GemmFloat>(op: &Conv2DOp, f: &Fusion) -> bool {
    applies(op, f)
        && op.chan_out.is_multiple_of(avx512::CHANNELS)
        && E::as_f32(&[]).is_some()
        && avx512::available()
}

/// The 4x4 input patch of pooling window `(ph, pw)` in the padded image
/// `xp` (`wp` wide).
#[inline(always)]
fn patch<E: GemmFloat>(xp: &[E], wp: usize, ph: usize, pw: usize) -> [E; 16] {
    let mut p = [E::default(); 16];
    for (r, row) in p.chunks_exact_mut(4).enumerate() {
        row.copy_from_slice(&xp[(2 * ph + r) * wp + 2 * pw..][..4]);
    }
    p
}

/// The input that tap `t = kh·3 + kw` reads for output `k = 2i + j` of a
/// window (output `(2ph + i, 2pw + j)`): `patch[(i + kh)·4 + j + kw]`.
#[inline(always)]
fn tap<E: Copy>(p: &[E; 16], k: usize, t: usize) -> E {
    p[(k / 2 + t / 3) * 4 + k % 2 + t % 3]
}

/// `y = maxpool(relu(bias + conv(x, w)))` for the whole batch (only where
/// [`forward_applies`]); `arg` (empty, or one byte per output) receives the
/// window offsets, channels-last per image.
///
/// # Shapes
/// `x: [B, 1, H, W]`, `w: [O, 9]`, `b: [O]`, `y: [B, O, PHO·PWO]`, `arg: [B, PHO·PWO, O]`.
pub(crate) fn forward<E: GemmFloat>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    w: &[E],
    b: &[E],
    y: &mut [E],
    arg: &mut [u8],
) {
    let (o_n, q_n) = (op.chan_out, f.plane_out());
    let (in_len, out_len) = (op.in_image_len(), o_n * q_n);
    let pd = Padded::new(op);
    let isa = Isa::detect();
    let mut wt = vec![E::default(); 9 * o_n];
    transpose(isa, w, o_n, 9, &mut wt); // [9, O]: one row of channels per tap
    let f32s = "forward_applies checked f32";
    let (wt, b) = (E::as_f32(&wt).expect(f32s), E::as_f32(b).expect(f32s));
    let n = images_per_task(op.batch);
    let args = chunks_or_none(arg, n * out_len, op.batch.div_ceil(n));
    y.par_chunks_mut(n * out_len)
        .zip(x.par_chunks(n * in_len))
        .zip(args)
        .for_each(|((y_task, x_task), mut arg_task)| {
            E::with_scratch(pd.h * pd.w + out_len, |scratch| {
                simd::run!(isa, |isa| {
                    let (xp, y_cl) = scratch.split_at_mut(pd.h * pd.w);
                    let images = y_task.chunks_mut(out_len).zip(x_task.chunks(in_len));
                    for (img, (y_img, x_img)) in images.enumerate() {
                        let src = E::as_f32(padded_source(op, pd, x_img, xp)).expect(f32s);
                        let a = arg_task
                            .as_deref_mut()
                            .map(|a| &mut a[img * out_len..][..out_len]);
                        let image = avx512::Image {
                            xp: src,
                            wp: pd.w,
                            pwo: f.w_out,
                            relu: f.relu,
                        };
                        image.run(wt, b, E::as_f32_mut(y_cl).expect(f32s), a); // [PHO·PWO, O]
                        transpose(isa, y_cl, q_n, o_n, y_img); // [O, PHO·PWO]
                    }
                })
            })
        });
}

/// The weight and bias gradients of the fused op from the gradient `gy` of
/// its output and the pooling offsets `arg` its forward pass kept
/// (channels-last when [`forward_applies`], else NCHW). Tasks keep partial
/// sums, added in task order (thread-count independent).
///
/// # Shapes
/// `x: [B, 1, H, W]`, `gy: [B, O, PHO·PWO]`, `arg: [B, PHO·PWO, O]` or
/// `[B, O, PHO·PWO]` -> `(gw: [O, 9], gb: [O])`.
pub(crate) fn backward<E: GemmFloat>(
    op: &Conv2DOp,
    f: &Fusion,
    x: &[E],
    gy: &[E],
    arg: &[u8],
) -> (Recycled<E>, Recycled<E>) {
    let (o_n, q_n) = (op.chan_out, f.plane_out());
    let (in_len, out_len) = (op.in_image_len(), o_n * q_n);
    let pd = Padded::new(op);
    let arg_channels_last = forward_applies::<E>(op, f);
    let isa = Isa::detect();
    let n = images_per_task(op.batch);
    let tasks = op.batch.div_ceil(n);
    // Each task's partial sums, side by side: gW as [9, O], gb as [O].
    let mut gw_parts = Recycled::filled(tasks * 9 * o_n, E::default());
    let mut gb_parts = Recycled::filled(tasks * o_n, E::default());
    let parts = gw_parts
        .par_chunks_mut(9 * o_n)
        .zip(gb_parts.par_chunks_mut(o_n));
    x.par_chunks(n * in_len)
        .zip(gy.par_chunks(n * out_len))
        .zip(arg.par_chunks(n * out_len))
        .zip(parts)
        .for_each(|(((x_task, gy_task), arg_task), (gw_t, gb))| {
            let mut a_cl = vec![0u8; out_len]; // one image's offsets, [PHO·PWO, O]
            E::with_scratch(pd.h * pd.w + out_len, |scratch| {
                simd::run!(isa, |isa| {
                    let (xp, gy_cl) = scratch.split_at_mut(pd.h * pd.w);
                    let images = x_task
                        .chunks(in_len)
                        .zip(gy_task.chunks(out_len))
                        .zip(arg_task.chunks(out_len));
                    for ((x_img, gy_img), a_img) in images {
                        let src = padded_source(op, pd, x_img, xp); // [HP, WP]
                        transpose(isa, gy_img, o_n, q_n, gy_cl); // [PHO·PWO, O]
                        let a_cl: &[u8] = if arg_channels_last {
                            a_img
                        } else {
                            for (o, plane) in a_img.chunks_exact(q_n).enumerate() {
                                for (q, &a) in plane.iter().enumerate() {
                                    a_cl[q * o_n + o] = a;
                                }
                            }
                            &a_cl
                        };
                        for o0 in (0..o_n).step_by(LANES) {
                            let mut acc = [[E::default(); LANES]; 9]; // gW[t][o0 + l] over the image
                            let mut acc_b = [E::default(); LANES];
                            for q in 0..q_n {
                                let p = patch(src, pd.w, q / f.w_out, q % f.w_out);
                                let g: V<E> =
                                    gy_cl[q * o_n + o0..][..LANES].try_into().expect("lanes");
                                let a = &a_cl[q * o_n + o0..][..LANES];
                                for (s, (&g_l, &a_l)) in acc_b.iter_mut().zip(g.iter().zip(a)) {
                                    let live = a_l < 4; // not cut by the ReLU
                                    *s += if live { g_l } else { E::default() };
                                }
                                for k in 0..4u8 {
                                    // the gradient of output k: g where it is the window's maximum
                                    let mut g_k = [E::default(); LANES];
                                    for ((d, &g_l), &a_l) in g_k.iter_mut().zip(&g).zip(a) {
                                        *d = if a_l == k { g_l } else { E::default() };
                                    }
                                    for (t, acc_t) in acc.iter_mut().enumerate() {
                                        let x_t = tap(&p, k.into(), t);
                                        for (s, &g_l) in acc_t.iter_mut().zip(&g_k) {
                                            *s = isa.fmadd(g_l, x_t, *s);
                                        }
                                    }
                                }
                            }
                            for (t, acc_t) in acc.iter().enumerate() {
                                let row = &mut gw_t[t * o_n + o0..][..LANES];
                                for (d, &s) in row.iter_mut().zip(acc_t) {
                                    *d += s;
                                }
                            }
                            for (d, &s) in gb[o0..o0 + LANES].iter_mut().zip(&acc_b) {
                                *d += s;
                            }
                        }
                    }
                })
            });
        });

    // Sum the tasks in order: deterministic for any thread count.
    let mut gw_t = Recycled::filled(9 * o_n, E::default());
    let mut gb = Recycled::filled(o_n, E::default());
    for (pw, pb) in gw_parts
        .chunks_exact(9 * o_n)
        .zip(gb_parts.chunks_exact(o_n))
    {
        gw_t.iter_mut().zip(pw).for_each(|(d, &s)| *d += s);
        gb.iter_mut().zip(pb).for_each(|(d, &s)| *d += s);
    }
    let mut gw = Recycled::stale(o_n * 9);
    transpose(isa, &gw_t, 9, o_n, &mut gw); // [O, 9], every element
    (gw, gb)
}

/// The forward kernel in AVX-512 (x86-64 only; `available()` is false
/// elsewhere and the im2col path runs).
mod avx512 {
    /// Output channels per pass over an image: two 16-wide registers, so
    /// that 8 independent multiply-add chains (4 outputs x 2) hide the FMA
    /// latency while 18 registers hold the weights.
    pub(crate) const CHANNELS: usize = 32;

    /// One padded image and how to pool it.
    pub(crate) struct Image<'a> {
        /// The padded input `[HP, WP]`.
        pub xp: &'a [f32],
        pub wp: usize,
        /// Pooled outputs per row.
        pub pwo: usize,
        pub relu: bool,
    }

    #[cfg(target_arch = "x86_64")]
    pub(crate) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn available() -> bool {
        false
    }

    #[cfg(not(target_arch = "x86_64"))]
    impl Image<'_> {
        pub(crate) fn run(&self, _: &[f32], _: &[f32], _: &mut [f32], _: Option<&mut [u8]>) {
            unreachable!("forward_applies is false without AVX-512");
        }
    }

    #[cfg(target_arch = "x86_64")]
    impl Image<'_> {
        /// Pools the image's conv + ReLU into `y: [PHO·PWO, O]` (and the
        /// window offsets into `arg`, same layout) from the weights
        /// `wt: [9, O]` and the bias `b: [O]`.
        ///
        /// # Panics
        /// Without AVX-512F, or if a slice is shorter than its shape.
        pub(crate) fn run(&self, wt: &[f32], b: &[f32], y: &mut [f32], arg: Option<&mut [u8]>) {
            assert!(available(), "the AVX-512 kernel needs AVX-512F");
            // SAFETY: `run_avx512` is safe but for its target feature, which
            // the assertion above has found on this CPU.
            unsafe { self.run_avx512(wt, b, y, arg) }
        }

        #[target_feature(enable = "avx512f")]
        fn run_avx512(&self, wt: &[f32], b: &[f32], y: &mut [f32], mut arg: Option<&mut [u8]>) {
            use std::arch::x86_64::*;
            let o_n = b.len();
            let q_n = y.len() / o_n;
            let zero = _mm512_setzero_ps();
            for o0 in (0..o_n).step_by(CHANNELS) {
                // (loops, not `array::from_fn`: a generic function of its own,
                // compiled without AVX-512, could not inline `load`)
                let mut w = [[zero; 2]; 9];
                for (t, w_t) in w.iter_mut().enumerate() {
                    for (h, w_th) in w_t.iter_mut().enumerate() {
                        *w_th = load(&wt[t * o_n + o0 + 16 * h..]);
                    }
                }
                let bias = [load(&b[o0..]), load(&b[o0 + 16..])];
                for q in 0..q_n {
                    let (ph, pw) = (q / self.pwo, q % self.pwo);
                    let p = super::patch(self.xp, self.wp, ph, pw);
                    // z[h][k]: output k of the window for channels o0 + 16h ..
                    let mut z = [[zero; 4]; 2];
                    for k in 0..4 {
                        // b + (w0·x0 + w1·x1 + ...), as the im2col product sums
                        let x = |t| _mm512_set1_ps(super::tap(&p, k, t));
                        for (h, z_h) in z.iter_mut().enumerate() {
                            let mut acc = _mm512_mul_ps(w[0][h], x(0));
                            for (t, w_t) in w.iter().enumerate().skip(1) {
                                acc = _mm512_fmadd_ps(w_t[h], x(t), acc);
                            }
                            z_h[k] = _mm512_add_ps(bias[h], acc);
                        }
                    }
                    for (h, &[a0, a1, b0, b1]) in z.iter().enumerate() {
                        // As `winograd::pool_tile`: ties to the first maximum
                        // in scan order; NaN compares false, so the ReLU cuts it.
                        let right_top = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a1, a0);
                        let m1 = _mm512_mask_blend_ps(right_top, a0, a1);
                        let right_bottom = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b1, b0);
                        let m2 = _mm512_mask_blend_ps(right_bottom, b0, b1);
                        let bottom = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m2, m1);
                        let m = _mm512_mask_blend_ps(bottom, m1, m2);
                        let live = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m, zero);
                        let keep = if self.relu { live } else { u16::MAX };
                        let at = q * o_n + o0 + 16 * h;
                        store(&mut y[at..], _mm512_maskz_mov_ps(keep, m));
                        if let Some(arg) = arg.as_deref_mut() {
                            let col = (bottom & right_bottom) | (!bottom & right_top);
                            let offset = _mm512_add_epi32(
                                _mm512_maskz_set1_epi32(bottom, 2),
                                _mm512_maskz_set1_epi32(col, 1),
                            );
                            let offset = _mm512_mask_set1_epi32(offset, !keep, 255); // DEAD
                            store_bytes(&mut arg[at..], _mm512_cvtepi32_epi8(offset));
                        }
                    }
                }
            }
        }
    }

    /// The 16 floats at the start of `s`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn load(s: &[f32]) -> std::arch::x86_64::__m512 {
        let s: &[f32; 16] = s[..16].try_into().expect("16 floats");
        // SAFETY: `s` is 16 readable floats; `loadu` has no alignment requirement.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(s.as_ptr()) }
    }

    /// Writes `v` to the 16 floats at the start of `d`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn store(d: &mut [f32], v: std::arch::x86_64::__m512) {
        let d: &mut [f32; 16] = (&mut d[..16]).try_into().expect("16 floats");
        // SAFETY: `d` is 16 writable floats, borrowed uniquely; `storeu` has
        // no alignment requirement.
        unsafe { std::arch::x86_64::_mm512_storeu_ps(d.as_mut_ptr(), v) }
    }

    /// Writes `v` to the 16 bytes at the start of `d`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn store_bytes(d: &mut [u8], v: std::arch::x86_64::__m128i) {
        let d: &mut [u8; 16] = (&mut d[..16]).try_into().expect("16 bytes");
        // SAFETY: `d` is 16 writable bytes, borrowed uniquely; `storeu` has
        // no alignment requirement.
        unsafe { std::arch::x86_64::_mm_storeu_si128(d.as_mut_ptr().cast(), v) }
    }
}

#[cfg(test)]
mod tests {
    use crate::nn::builders::ConvBlock;
    use crate::tests::{assert_close, test_values};
    use dfdx::prelude::*;

    /// `conv<32, 3>, relu, maxpool<2>` on `<1, 28, 28>`, padded by `PAD`.
    type FirstLayer<const PAD: usize, const HO: usize, const PHO: usize, const GI: bool> =
        ConvBlock<1, 32, 3, 3, 1, 1, PAD, PAD, 28, 28, HO, HO, 2, 2, PHO, PHO, 0, GI>;

    /// The first layer of CNN3a and CNN4a in f32: the direct path (`INPUT_GRAD
    /// = false`) against the im2col path (`true`), same weights: the same
    /// outputs to the bit (the same products in the same order) and the same
    /// weight and bias gradients up to f32 rounding of their sums (each over
    /// 19·676 terms, in another order: a few 1e-5 relative to the largest
    /// gradient; the f64 tests in `conv_block.rs` check them to 1e-12).
    fn check<const PAD: usize, const HO: usize, const PHO: usize>() {
        let dev: Cpu = Cpu::seed_from_u64(1);
        let mut direct = dev.build_module::<FirstLayer<PAD, HO, PHO, false>, f32>();
        let mut im2col = dev.build_module::<FirstLayer<PAD, HO, PHO, true>, f32>();
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        direct.weight = dev.tensor_from_vec(to_f32(test_values(32 * 9, 1)), Default::default());
        let bias = test_values(32, 2)
            .iter()
            .map(|b| (b - 1.0) as f32)
            .collect();
        direct.bias = dev.tensor_from_vec(bias, Default::default());
        im2col.weight = direct.weight.clone();
        im2col.bias = direct.bias.clone();
        let batch = 19; // two tasks, one partly full
        let x = dev.tensor_from_vec(
            to_f32(test_values(batch * 784, 3)),
            (batch, Const::<1>, Const::<28>, Const::<28>),
        );
        let r = dev.tensor_from_vec(
            to_f32(test_values(batch * 32 * PHO * PHO, 4)),
            (batch, Const::<32>, Const::<PHO>, Const::<PHO>),
        );
        assert_eq!(
            direct.forward(x.clone()).as_vec(),
            im2col.forward(x.clone()).as_vec()
        );
        let g_d = (direct.forward(x.clone().traced(direct.alloc_grads())) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let g_i = (im2col.forward(x.clone().traced(Gradients::leaky())) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        assert_close(
            &g_d.get(&direct.weight).as_vec(),
            &g_i.get(&im2col.weight).as_vec(),
            1e-4,
        );
        assert_close(
            &g_d.get(&direct.bias).as_vec(),
            &g_i.get(&im2col.bias).as_vec(),
            1e-4,
        );
    }

    #[test]
    fn f32_matches_im2col_cnn3a_and_cnn4a() {
        check::<0, 26, 13>();
        check::<1, 28, 14>();
    }
}
