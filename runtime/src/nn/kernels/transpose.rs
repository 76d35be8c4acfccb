//! Matrix transposes between the network's NCHW tensors and the
//! channels-last buffers of the Winograd path (`winograd.rs`).
//!
//! The work is cut into 8x8 blocks, each transposed in registers
//! ([`GemmFloat::transpose_block`]: eight 8-wide loads, 24 shuffles, eight
//! 8-wide stores for `f32` on a CPU with AVX; element by element without);
//! the rows and columns left over past a multiple of 8 go element by
//! element. Gathering each destination row down a source column instead
//! (one element per load) took ~4.5 cycles per element and 11-16 % of a CNN
//! training step.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::conv2d::transpose`.

use crate::nn::kernels::gemm::GemmFloat;
use crate::nn::kernels::simd::{self, Isa};

/// Side of the blocks transposed in registers.
pub(crate) const BLOCK: usize = 8;

/// `dst[c][r] = src[r][c]`, with the instructions `isa` allows.
///
/// # Shapes
/// `src: [rows, cols]` -> `dst: [cols, rows]`.
#[inline(always)]
pub(crate) fn transpose<E: GemmFloat>(
    isa: Isa,
    src: &[E],
    rows: usize,
    cols: usize,
    dst: &mut [E],
) {
    transpose_strided(isa, src, cols, dst, rows, rows, cols, false);
}

simd::kernel! {
    /// `dst[j·dst_rs + i] = src[i·src_rs + j]` (or `+=` when `add`) for
    /// `i < rows`, `j < cols`, with the instructions `isa` allows.
    ///
    /// # Panics
    /// If either slice is too short for its view.
    pub(crate) fn transpose_strided<E: GemmFloat>(
        isa: Isa,
        src: &[E],
        src_rs: usize,
        dst: &mut [E],
        dst_rs: usize,
        rows: usize,
        cols: usize,
        add: bool,
    ) {
        if rows == 0 || cols == 0 {
            return;
        }
        assert!(
            (rows - 1) * src_rs + cols <= src.len(),
            "transpose: source too short"
        );
        assert!(
            (cols - 1) * dst_rs + rows <= dst.len(),
            "transpose: destination too short"
        );
        let (rows8, cols8) = (rows - rows % BLOCK, cols - cols % BLOCK);
        for i in (0..rows8).step_by(BLOCK) {
            for j in (0..cols8).step_by(BLOCK) {
                E::transpose_block(
                    isa,
                    &src[i * src_rs + j..],
                    src_rs,
                    &mut dst[j * dst_rs + i..],
                    dst_rs,
                    add,
                );
            }
        }
        // The edges: columns past cols8 of the full row blocks, then the last rows.
        let edge = |i: usize, j: usize, dst: &mut [E]| {
            let (d, s) = (&mut dst[j * dst_rs + i], src[i * src_rs + j]);
            *d = if add { *d + s } else { s };
        };
        for j in cols8..cols {
            for i in 0..rows8 {
                edge(i, j, dst);
            }
        }
        for j in 0..cols {
            for i in rows8..rows {
                edge(i, j, dst);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::simd::portable;
    use crate::tests::test_values;

    /// Every size class: full blocks only, edge columns, edge rows, both,
    /// smaller than one block; strided and packed; `=` and `+=`; f32 (the
    /// register path) and f64; with this CPU's instructions and the
    /// portable ones.
    #[test]
    fn matches_the_definition_for_blocks_and_edges() {
        for isa in [Isa::detect(), portable(Isa::detect)] {
            check::<f32>(isa, |v| v as f32);
            check::<f64>(isa, |v| v);
        }
        fn check<E: GemmFloat>(isa: Isa, cast: impl Fn(f64) -> E) {
            for (rows, cols) in [(16, 8), (19, 21), (32, 12), (121, 64), (5, 3), (8, 1)] {
                for (src_rs, dst_rs) in [(cols, rows), (cols + 3, rows + 5)] {
                    let src: Vec<E> = test_values(rows * src_rs, 1)
                        .into_iter()
                        .map(&cast)
                        .collect();
                    let before: Vec<E> = test_values(cols * dst_rs, 2)
                        .into_iter()
                        .map(&cast)
                        .collect();
                    for add in [false, true] {
                        let mut dst = before.clone();
                        transpose_strided(isa, &src, src_rs, &mut dst, dst_rs, rows, cols, add);
                        for (at, (&d, &b)) in dst.iter().zip(&before).enumerate() {
                            let (j, i) = (at / dst_rs, at % dst_rs);
                            let want = match (i < rows && j < cols, add) {
                                (false, _) => b,
                                (true, false) => src[i * src_rs + j],
                                (true, true) => b + src[i * src_rs + j],
                            };
                            assert!(d == want, "{isa:?} {rows}x{cols} add {add} at ({j}, {i})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn packed_transpose_twice_is_identity() {
        let (rows, cols) = (13, 40);
        let src: Vec<f32> = test_values(rows * cols, 3)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let mut t = vec![0.0; rows * cols];
        let mut back = vec![0.0; rows * cols];
        transpose(Isa::detect(), &src, rows, cols, &mut t);
        transpose(Isa::detect(), &t, cols, rows, &mut back);
        assert_eq!(back, src);
    }

    #[test]
    #[should_panic(expected = "destination too short")]
    fn rejects_a_short_destination() {
        let src = vec![0f32; 64];
        let mut dst = vec![0f32; 63];
        transpose(Isa::detect(), &src, 8, 8, &mut dst);
    }
}
