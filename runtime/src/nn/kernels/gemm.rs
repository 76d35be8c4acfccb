//! A safe, bounds-checked wrapper over the `gemm` crate's matrix product,
//! and what the Cpu kernels need of their element type ([`GemmFloat`]:
//! per-thread scratch and input buffers, an 8x8 transpose block, a fused
//! multiply-add) and of dfdx tensors ([`read`], [`forward_on`]: copies of
//! their data).
//!
//! dfdx 0.13 pins `gemm` 0.15, whose f32 path on stable reached ~46 GFLOP/s on
//! the convolution shapes here; `gemm` 0.19 (with its AVX-512 `x86-v4` kernels)
//! ran the same products single-threaded at ~85-100 GFLOP/s on this Zen 4.
//! The convolution calls it once per image from rayon workers, so the product
//! itself runs single-threaded (`Parallelism::None`) and the batch supplies the
//! parallelism.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::kernels::gemm`.

use std::cell::RefCell;

use dfdx::prelude::{Cpu, HasShape, Shape, Tensor};
use dfdx::shapes::Dtype;

use crate::nn::kernels::recycle::{aligned, Recyclable, Recycled};
use crate::nn::kernels::simd::Isa;

/// The element types `gemm` has kernels for (and the convolution uses): `f32`, `f64`.
pub trait GemmFloat: Dtype + Recyclable + sealed::Sealed {
    /// Runs `f` on this thread's scratch buffer, `len` elements long and
    /// starting on a cache line; the contents are whatever the last user
    /// left. Kept per thread so rayon workers reuse their im2col buffers
    /// instead of allocating per call.
    ///
    /// # Panics
    /// If `f` itself asks for the scratch buffer (a nested call).
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;

    /// Runs `f` on this thread's input buffer, `len` elements long (see
    /// [`with_data`]), or on a fresh one when that is in use (a nested call).
    fn with_input<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;

    /// `dst[c·dst_rs + r] = src[r·src_rs + c]` (or `+=` when `add`) for one
    /// 8x8 block, `r, c < 8` (see `kernels/transpose.rs`), with the
    /// instructions `isa` allows (the same values either way).
    ///
    /// # Panics
    /// If a row of the block reaches past its slice.
    fn transpose_block(
        isa: Isa,
        src: &[Self],
        src_rs: usize,
        dst: &mut [Self],
        dst_rs: usize,
        add: bool,
    );

    /// `self·b + c` with one rounding (`f32::mul_add`): an FMA instruction
    /// where the caller is compiled with FMA, libm's software `fma`
    /// otherwise (slow). Kernels call [`Isa::fmadd`], which uses this only
    /// on the FMA path.
    fn fused_mul_add(self, b: Self, c: Self) -> Self;

    /// The slice as `f32`s when `Self` is `f32` (for kernels written for it alone).
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    /// [`GemmFloat::as_f32`] for a mutable slice.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
}

macro_rules! gemm_float {
    ($E:ty, $SCRATCH:ident, $INPUT:ident, $transpose_block:path, $f32:ident) => {
        thread_local! {
            static $SCRATCH: RefCell<Vec<$E>> = const { RefCell::new(Vec::new()) };
            static $INPUT: RefCell<Vec<$E>> = const { RefCell::new(Vec::new()) };
        }
        impl GemmFloat for $E {
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                $SCRATCH.with(|cell| f(aligned(&mut cell.borrow_mut(), len)))
            }

            fn with_input<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                $INPUT.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buf) => f(aligned(&mut buf, len)),
                    Err(_) => f(&mut vec![0.0; len]),
                })
            }

            #[inline(always)]
            fn transpose_block(
                isa: Isa,
                src: &[$E],
                src_rs: usize,
                dst: &mut [$E],
                dst_rs: usize,
                add: bool,
            ) {
                $transpose_block(isa, src, src_rs, dst, dst_rs, add)
            }

            #[inline(always)]
            fn fused_mul_add(self, b: $E, c: $E) -> $E {
                self.mul_add(b, c)
            }

            fn as_f32(s: &[$E]) -> Option<&[f32]> {
                $f32!(s)
            }

            fn as_f32_mut(s: &mut [$E]) -> Option<&mut [f32]> {
                $f32!(s)
            }
        }
    };
}

macro_rules! some {
    ($s:expr) => {
        Some($s)
    };
}
macro_rules! none {
    ($s:expr) => {{
        let _ = $s;
        None
    }};
}
gemm_float!(f32, SCRATCH_F32, INPUT_F32, transpose_block_f32, some);
gemm_float!(f64, SCRATCH_F64, INPUT_F64, transpose_block_scalar, none);

/// A copy of a contiguous Cpu tensor's data (dfdx has no public slice
/// view), in a recycled buffer.
pub(crate) fn read<S: Shape, E: GemmFloat, T>(t: &Tensor<S, E, Cpu, T>) -> Recycled<E> {
    let mut buf = Recycled::stale(t.shape().num_elements());
    t.copy_into(&mut buf); // every element
    buf
}

/// Runs `f` on a copy of a contiguous tensor's data (as [`read`]) held in a
/// buffer this thread keeps: for a pass that keeps nothing of its input
/// (evaluation), so that no buffer is allocated, zeroed and faulted in per
/// call (10.8 MB for CNN3a's second layer at evaluation batch 500).
fn with_data<S: Shape, E: GemmFloat, T, R>(
    t: &Tensor<S, E, Cpu, T>,
    f: impl FnOnce(&[E]) -> R,
) -> R {
    E::with_input(t.shape().num_elements(), |buf| {
        t.copy_into(buf);
        f(buf)
    })
}

/// Runs a forward pass `run` on the data of contiguous tensor `t` and
/// returns that data when the backward pass needs it (`keep`: the input is
/// taped); otherwise the copy lives in [`with_data`]'s buffer and an empty
/// buffer is returned.
pub(crate) fn forward_on<S: Shape, E: GemmFloat, T>(
    t: &Tensor<S, E, Cpu, T>,
    keep: bool,
    run: impl FnOnce(&[E]),
) -> Recycled<E> {
    if keep {
        let data = read(t);
        run(&data);
        data
    } else {
        with_data(t, run);
        Recycled::empty()
    }
}

/// [`GemmFloat::transpose_block`] for `f32`: in AVX registers where `isa`
/// allows, else element by element (what the portable build of `wide`'s
/// `f32x8::transpose`, used here before, did too).
#[inline(always)]
fn transpose_block_f32(
    isa: Isa,
    src: &[f32],
    src_rs: usize,
    dst: &mut [f32],
    dst_rs: usize,
    add: bool,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma(proof) => avx::transpose_block(proof, src, src_rs, dst, dst_rs, add),
        _ => transpose_block_scalar(isa, src, src_rs, dst, dst_rs, add),
    }
}

/// [`GemmFloat::transpose_block`] element by element (f64, and f32 without AVX).
#[inline(always)]
fn transpose_block_scalar<E: Dtype>(
    _: Isa,
    src: &[E],
    src_rs: usize,
    dst: &mut [E],
    dst_rs: usize,
    add: bool,
) {
    for c in 0..8 {
        let d = &mut dst[c * dst_rs..][..8];
        for (r, d) in d.iter_mut().enumerate() {
            let s = src[r * src_rs + c];
            *d = if add { *d + s } else { s };
        }
    }
}

/// The 8x8 transpose in AVX: eight 8-wide rows in, the 24 shuffles of
/// `wide::f32x8::transpose` (as the x86-64-v3 build compiled it), eight
/// rows out.
#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_shuffle_ps,
        _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };

    use crate::nn::kernels::simd::Avx2Fma;

    /// See [`super::GemmFloat::transpose_block`]; `proof` that the CPU has AVX.
    #[inline(always)]
    pub(crate) fn transpose_block(
        _proof: Avx2Fma,
        src: &[f32],
        src_rs: usize,
        dst: &mut [f32],
        dst_rs: usize,
        add: bool,
    ) {
        // SAFETY: `block` needs nothing but the AVX2 and FMA instructions,
        // which `_proof` (made only by `Isa::detect` after asking the CPU)
        // says this CPU has.
        unsafe { block(src, src_rs, dst, dst_rs, add) }
    }

    // Not inlined into the transpose's loops: there it ran 10-35 % slower
    // (register pressure), here as fast as `wide`'s within ~5 %.
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    fn block(src: &[f32], src_rs: usize, dst: &mut [f32], dst_rs: usize, add: bool) {
        // (no closure for the rows: it would be a function of its own)
        let r0 = load(src);
        let r1 = load(&src[src_rs..]);
        let r2 = load(&src[2 * src_rs..]);
        let r3 = load(&src[3 * src_rs..]);
        let r4 = load(&src[4 * src_rs..]);
        let r5 = load(&src[5 * src_rs..]);
        let r6 = load(&src[6 * src_rs..]);
        let r7 = load(&src[7 * src_rs..]);
        // pairs of rows interleaved, per 128-bit lane
        let a0 = _mm256_unpacklo_ps(r0, r1);
        let a1 = _mm256_unpackhi_ps(r0, r1);
        let a2 = _mm256_unpacklo_ps(r2, r3);
        let a3 = _mm256_unpackhi_ps(r2, r3);
        let a4 = _mm256_unpacklo_ps(r4, r5);
        let a5 = _mm256_unpackhi_ps(r4, r5);
        let a6 = _mm256_unpacklo_ps(r6, r7);
        let a7 = _mm256_unpackhi_ps(r6, r7);
        // columns of four rows, per lane: _MM_SHUFFLE(1, 0, 1, 0) and (3, 2, 3, 2)
        const LO: i32 = 0b01_00_01_00;
        const HI: i32 = 0b11_10_11_10;
        let b0 = _mm256_shuffle_ps::<LO>(a0, a2);
        let b1 = _mm256_shuffle_ps::<HI>(a0, a2);
        let b2 = _mm256_shuffle_ps::<LO>(a1, a3);
        let b3 = _mm256_shuffle_ps::<HI>(a1, a3);
        let b4 = _mm256_shuffle_ps::<LO>(a4, a6);
        let b5 = _mm256_shuffle_ps::<HI>(a4, a6);
        let b6 = _mm256_shuffle_ps::<LO>(a5, a7);
        let b7 = _mm256_shuffle_ps::<HI>(a5, a7);
        // the low lanes of both halves, then the high lanes: whole columns
        let columns = [
            _mm256_permute2f128_ps::<0x20>(b0, b4),
            _mm256_permute2f128_ps::<0x20>(b1, b5),
            _mm256_permute2f128_ps::<0x20>(b2, b6),
            _mm256_permute2f128_ps::<0x20>(b3, b7),
            _mm256_permute2f128_ps::<0x31>(b0, b4),
            _mm256_permute2f128_ps::<0x31>(b1, b5),
            _mm256_permute2f128_ps::<0x31>(b2, b6),
            _mm256_permute2f128_ps::<0x31>(b3, b7),
        ];
        for (c, col) in columns.into_iter().enumerate() {
            let d = &mut dst[c * dst_rs..];
            let v = if add {
                _mm256_add_ps(load(d), col)
            } else {
                col
            };
            store(d, v);
        }
    }

    /// The 8 floats at the start of `s`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn load(s: &[f32]) -> __m256 {
        let s: &[f32; 8] = s[..8].try_into().expect("8 floats");
        // SAFETY: `s` is 8 readable floats; `loadu` has no alignment requirement.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    /// Writes `v` to the 8 floats at the start of `d`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn store(d: &mut [f32], v: __m256) {
        let d: &mut [f32; 8] = (&mut d[..8]).try_into().expect("8 floats");
        // SAFETY: `d` is 8 writable floats, borrowed uniquely; `storeu` has
        // no alignment requirement.
        unsafe { _mm256_storeu_ps(d.as_mut_ptr(), v) }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A read-only `rows x cols` matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
///
/// A row-major matrix has `rs = cols, cs = 1`; its transpose is the same data
/// with `rs` and `cs` swapped (see [`Mat::t`]).
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a, E> {
    pub data: &'a [E],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, E> Mat<'a, E> {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [E], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// One past the largest offset the view reads (0 for an empty view).
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` when `accumulate`), `dst` row-major
/// `m x n` with row stride `dst_rs`, on the calling thread.
///
/// # Shapes
/// `lhs: [m, k]`, `rhs: [k, n]`, `dst: [m, n]`.
///
/// # Panics
/// If the inner dimensions disagree or a view reaches past its slice.
pub fn matmul<E: GemmFloat>(
    dst: &mut [E],
    dst_rs: usize,
    lhs: Mat<'_, E>,
    rhs: Mat<'_, E>,
    accumulate: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    assert!(lhs.extent() <= lhs.data.len(), "matmul: lhs out of bounds");
    assert!(rhs.extent() <= rhs.data.len(), "matmul: rhs out of bounds");
    assert!(n <= dst_rs || m <= 1, "matmul: dst rows overlap");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "matmul: dst out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(E::default());
            }
        }
        return;
    }
    let as_isize = |x: usize| x as isize;
    // SAFETY: the asserts above prove that every offset gemm touches,
    // `r * rs + c * cs` for r < rows and c < cols, lies inside the slice it is
    // computed from (for dst: (m-1)*dst_rs + (n-1) < dst.len()), and that
    // distinct dst elements never share an address (n <= dst_rs). The slices
    // are at most isize::MAX bytes long, so the strides fit in isize. `dst` is
    // borrowed mutably, so it cannot alias `lhs` or `rhs`. E is f32 or f64
    // (sealed), the types gemm supports; with `read_dst == false` gemm writes
    // dst without reading it, so alpha is ignored.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            as_isize(dst_rs),
            accumulate,
            lhs.data.as_ptr(),
            as_isize(lhs.cs),
            as_isize(lhs.rs),
            rhs.data.as_ptr(),
            as_isize(rhs.cs),
            as_isize(rhs.rs),
            E::ONE,
            E::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `dst += src`, element by element.
#[inline(always)]
pub(crate) fn add_assign<E: GemmFloat>(dst: &mut [E], src: &[E]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat<'_, f64>, b: Mat<'_, f64>) -> Vec<f64> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    out[i * b.cols + j] +=
                        a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs];
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_with_transposes_and_accumulate() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let a_mat = Mat::row_major(&a, m, k);
        let b_mat = Mat::row_major(&b, k, n);
        let want = naive(a_mat, b_mat);

        let mut out = vec![1.0; m * n];
        matmul(&mut out, n, a_mat, b_mat, false);
        crate::tests::assert_close(&out, &want, 1e-12);

        // the same product through transposed storage: (b^T)^T
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut acc = want.clone();
        matmul(&mut acc, n, a_mat, Mat::row_major(&bt, n, k).t(), true);
        let twice: Vec<f64> = want.iter().map(|x| 2.0 * x).collect();
        crate::tests::assert_close(&acc, &twice, 1e-12);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn rejects_short_slices() {
        let a = vec![0f32; 5];
        let mut out = vec![0f32; 4];
        matmul(
            &mut out,
            2,
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&a, 3, 2),
            false,
        );
    }
}
