//! The fast CPU dense layer: `gemm` 0.19 products, written straight into
//! the output and into dfdx's gradient buffers.
//!
//! For `x [B, I]`, `W [O, I]`, `b [O]`:
//! - forward: `y [B, O] = b (each row) + x · Wᵀ`, the bias written into `y`
//!   first and the product accumulated onto it;
//! - backward: `gx [B, I] += gy · W`, `gW [O, I] += gyᵀ · x`, `gb += Σ_rows gy`.
//!
//! Parallelism never depends on the thread count: a product of at least
//! [`PAR_MIN_MACS`] multiply-adds is cut into a fixed number of pieces by
//! rows or columns of its output ([`Split`]); every output element is still
//! computed by one `gemm` call, with no cross-task reduction, so results are
//! bit-identical for any `RAYON_NUM_THREADS`. Smaller products (CNN3a's
//! 128→10, all of DNN2's layers at batch 100, ...) run on the calling thread:
//! waking a rayon worker costs more than the product.
//!
//! dfdx has no public view of a tensor's data, so `x` and `W` are copied once
//! per forward pass and the copies kept for the backward pass (for 1600→128
//! at batch 100, ~30 + ~50 µs of the forward pass's ~0.4 ms in a CNN3a step;
//! recycling the copies' buffers across steps instead of allocating them
//! saved ~10 µs, within the noise, and was left out).
//!
//! Measured on this 2-core Zen 4 (the `bench` test in `dense.rs`, kernel
//! alone, batch 100, f32, best of 300): 1600→128 forward ~220 µs on 2
//! threads (one `gemm` call: ~415 µs), backward ~410-430 µs (on one
//! thread: ~770 µs).

#[cfg_attr(not(feature = "cuda"), allow(dead_code))] // the Cpu tests use it
mod composed;

#[cfg_attr(not(feature = "cuda"), allow(unused_imports))] // the Cpu tests use it
pub(crate) use composed::try_dense_composed;
use dfdx::prelude::{
    Const, Cpu, CpuError, Dim, HasShape, PutTape, Rank1, Rank2, ReshapeTo, SplitTape, Tape, Tensor,
    TensorFromVec,
};
use rayon::prelude::*;

use crate::nn::dense::{DenseKernel, Features};
use crate::nn::kernels::gemm::{forward_on, matmul, read, GemmFloat, Mat};
use crate::nn::kernels::recycle::Recycled;

macro_rules! device_dense {
    ($device:ty, $path:path, $($E:ty),+) => {$(
        impl DenseKernel<$E> for $device {
            fn try_dense<B: Dim, T: Tape<$E, Self>, const I: usize, const O: usize>(
                x: Features<B, I, $E, Self, T>,
                weight: &Tensor<Rank2<O, I>, $E, Self>,
                bias: &Tensor<Rank1<O>, $E, Self>,
            ) -> Result<Features<B, O, $E, Self, T>, Self::Err> {
                $path(x, weight, bias)
            }
        }
    )+};
}

device_dense!(dfdx::tensor::Cpu, try_dense, f32, f64);
#[cfg(feature = "cuda")]
device_dense!(dfdx::tensor::Cuda, try_dense_composed, f32, f64);

/// Products with fewer multiply-adds than this run on the calling thread.
///
/// In a DNN step nothing else wakes the rayon workers, and splitting
/// DNN2's 784→10 at batch 100 (784k multiply-adds) made the epoch slower
/// than not splitting it (`epoch_bench`'s DNN2 alone, 500 steps, medians of
/// 8 interleaved runs: 0.170 s with a 2^19 threshold, 0.104 s with 2^20),
/// although the product alone ran ~1.5x faster split in a tight loop.
pub(crate) const PAR_MIN_MACS: usize = 1 << 20;

/// The sizes of one dense call: `batch` rows, `inp` features in, `out` features out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DenseOp {
    pub batch: usize,
    pub inp: usize,
    pub out: usize,
}

impl DenseOp {
    /// Multiply-adds of each of the three products (forward, `gx`, `gW`).
    pub fn macs(&self) -> usize {
        self.batch * self.inp * self.out
    }

    /// How the forward product is cut: by outputs (each piece reads half of
    /// `W`; 1600→128 at batch 100: ~220 µs, by rows ~275 µs, one call ~415 µs)
    /// where there are at least 32 of them; narrower layers by rows of the
    /// batch (`gemm` is slow on a 5-column piece), in 4 pieces (784→10 at
    /// batch 500: ~75 µs, 2 pieces ~90 µs, one call ~120 µs).
    pub fn forward_split(&self) -> Split {
        if self.macs() < PAR_MIN_MACS {
            Split::Serial
        } else if self.out >= 32 {
            Split::Outputs(2)
        } else {
            Split::Rows(4)
        }
    }

    /// How the two backward products are cut: `gx` by rows of the batch,
    /// `gW` by outputs, each in this many pieces, all run in parallel (with
    /// 4 pieces, 1600→128 at batch 100 took ~410-430 µs, with 2 ~415-445 µs,
    /// 576→64 ~76 µs against ~78-94 µs).
    pub fn backward_pieces(&self) -> usize {
        if self.macs() < PAR_MIN_MACS {
            1
        } else {
            4
        }
    }
}

/// How a forward product is cut into rayon tasks (a fixed number, whatever
/// the thread count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// One `gemm` call on the calling thread.
    Serial,
    /// This many pieces by rows of the batch, written in place.
    Rows(usize),
    /// This many pieces by output features, each into its own buffer,
    /// then copied into place.
    Outputs(usize),
}

/// The Cpu implementation of [`DenseKernel::try_dense`](crate::nn::dense::DenseKernel::try_dense).
pub(crate) fn try_dense<E: GemmFloat, B: Dim, T: Tape<E, Cpu>, const I: usize, const O: usize>(
    x: Features<B, I, E, Cpu, T>,
    weight: &Tensor<Rank2<O, I>, E, Cpu>,
    bias: &Tensor<Rank1<O>, E, Cpu>,
) -> Result<Features<B, O, E, Cpu, T>, CpuError> {
    let (x, mut tape) = x.try_contiguous()?.split_tape();
    let batch = x.shape().0;
    let op = DenseOp {
        batch: batch.size(),
        inp: I,
        out: O,
    };
    // Parameters are contiguous: `try_contiguous` only clones the handle.
    let w_buf = read(&weight.clone().try_contiguous()?);
    let b_buf = read(&bias.clone().try_contiguous()?);

    let mut y = vec![E::default(); op.batch * O];
    let run = |x_buf: &[E]| forward(op, x_buf, &w_buf, &b_buf, &mut y, op.forward_split());
    // The input, kept for the backward pass; evaluation keeps nothing.
    let x_buf = forward_on(&x, T::OWNS_TAPE, run);
    let y = x.device().try_tensor_from_vec(y, (batch, Const::<O>))?;

    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, b_ghost, y_ghost) =
            (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            // Move the buffers out of their slots (no copy) so that all four
            // can be used at once, and put them back afterwards.
            let gy = std::mem::take(&mut **grads.get_or_alloc_mut(&y_ghost)?);
            let mut gx = std::mem::take(&mut **grads.get_or_alloc_mut(&x_ghost)?);
            let mut gw = std::mem::take(&mut **grads.get_or_alloc_mut(&w_ghost)?);
            let mut gb = std::mem::take(&mut **grads.get_or_alloc_mut(&b_ghost)?);
            let grad = Grads {
                gx: &mut gx,
                gw: &mut gw,
                gb: &mut gb,
            };
            backward(op, &x_buf, &w_buf, &gy, grad, op.backward_pieces());
            **grads.get_or_alloc_mut(&y_ghost)? = gy;
            **grads.get_or_alloc_mut(&x_ghost)? = gx;
            **grads.get_or_alloc_mut(&w_ghost)? = gw;
            **grads.get_or_alloc_mut(&b_ghost)? = gb;
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// Rows per piece when `rows` are cut into `pieces` (at least 1, so that
/// `chunks` never gets a zero length).
fn per_piece(rows: usize, pieces: usize) -> usize {
    rows.div_ceil(pieces.max(1)).max(1)
}

/// `y = b + x · Wᵀ`, cut as `split` says.
///
/// # Shapes
/// `x: [B, I]`, `w: [O, I]`, `b: [O]`, `y: [B, O]`.
pub(crate) fn forward<E: GemmFloat>(
    op: DenseOp,
    x: &[E],
    w: &[E],
    b: &[E],
    y: &mut [E],
    split: Split,
) {
    let DenseOp { batch, inp, out } = op;
    if batch == 0 || out == 0 {
        return;
    }
    // `y [rows, n] = b + x [rows, I] · w [n, I]ᵀ`
    let piece = |y: &mut [E], x: &[E], w: &[E], b: &[E]| {
        let n = b.len();
        for row in y.chunks_exact_mut(n) {
            row.copy_from_slice(b);
        }
        let rows = y.len() / n;
        let w_t = Mat::row_major(w, n, inp).t(); // [I, n]
        matmul(y, n, Mat::row_major(x, rows, inp), w_t, true);
    };
    match split {
        Split::Serial => piece(y, x, w, b),
        Split::Rows(pieces) => {
            let rows = per_piece(batch, pieces);
            y.par_chunks_mut(rows * out)
                .zip(x.par_chunks((rows * inp).max(1)))
                .for_each(|(y, x)| piece(y, x, w, b));
        }
        Split::Outputs(pieces) => {
            let cols = per_piece(out, pieces);
            let parts: Vec<Recycled<E>> = w
                .par_chunks((cols * inp).max(1))
                .zip(b.par_chunks(cols))
                .map(|(w, b)| {
                    let mut part = Recycled::stale(batch * b.len()); // `piece` writes it all
                    piece(&mut part, x, w, b);
                    part
                })
                .collect();
            for (p, part) in parts.iter().enumerate() {
                let n = part.len() / batch;
                for (dst, src) in y.chunks_exact_mut(out).zip(part.chunks_exact(n)) {
                    dst[p * cols..][..n].copy_from_slice(src);
                }
            }
        }
    }
}

/// The gradient buffers a backward pass adds to.
pub(crate) struct Grads<'a, E> {
    /// `[B, I]`
    pub gx: &'a mut [E],
    /// `[O, I]`
    pub gw: &'a mut [E],
    /// `[O]`
    pub gb: &'a mut [E],
}

/// One task of the backward pass: a block of rows of `gx` or of `gW`.
enum Task<'a, E> {
    /// Rows of `gx [B, I]` from batch row `start`.
    Input { start: usize, gx: &'a mut [E] },
    /// Rows of `gW [O, I]` from output `start`.
    Weight { start: usize, gw: &'a mut [E] },
}

/// `gx += gy · W`, `gW += gyᵀ · x`, `gb += Σ_rows gy`. With `pieces > 1`
/// each product is cut into that many tasks by rows of its output and all
/// of them run on rayon; with `pieces == 1`, the two products run in order
/// on the calling thread.
///
/// # Shapes
/// `x: [B, I]`, `w: [O, I]`, `gy: [B, O]`; see [`Grads`].
pub(crate) fn backward<E: GemmFloat>(
    op: DenseOp,
    x: &[E],
    w: &[E],
    gy: &[E],
    grads: Grads<'_, E>,
    pieces: usize,
) {
    let DenseOp { batch, inp, out } = op;
    if batch == 0 || out == 0 {
        return;
    }
    // The bias gradient: rows added in order (vectorised along O).
    for row in gy.chunks_exact(out) {
        for (g, &v) in grads.gb.iter_mut().zip(row) {
            *g += v;
        }
    }
    if inp == 0 {
        return;
    }
    let x_mat = Mat::row_major(x, batch, inp);
    let w_mat = Mat::row_major(w, out, inp);
    let run = |task: Task<'_, E>| match task {
        Task::Input { start, gx } => {
            let rows = gx.len() / inp;
            let gy_rows = Mat::row_major(&gy[start * out..], rows, out);
            matmul(gx, inp, gy_rows, w_mat, true); // [rows, I]
        }
        Task::Weight { start, gw } => {
            let rows = gw.len() / inp;
            // rows `start..start + rows` of gyᵀ [O, B]: columns of gy
            let gy_t = Mat {
                data: &gy[start..],
                rows,
                cols: batch,
                rs: 1,
                cs: out,
            };
            matmul(gw, inp, gy_t, x_mat, true); // [rows, I]
        }
    };
    let x_rows = per_piece(batch, pieces);
    let w_rows = per_piece(out, pieces);
    let input_tasks = grads.gx.chunks_mut(x_rows * inp).enumerate();
    let input_tasks = input_tasks.map(|(i, gx)| Task::Input {
        start: i * x_rows,
        gx,
    });
    let weight_tasks = grads.gw.chunks_mut(w_rows * inp).enumerate();
    let weight_tasks = weight_tasks.map(|(i, gw)| Task::Weight {
        start: i * w_rows,
        gw,
    });
    if pieces <= 1 {
        input_tasks.chain(weight_tasks).for_each(run);
    } else {
        let tasks: Vec<Task<'_, E>> = input_tasks.chain(weight_tasks).collect();
        tasks.into_par_iter().for_each(run);
    }
}
