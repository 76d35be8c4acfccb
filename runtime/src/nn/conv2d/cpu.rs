//! The fast CPU convolution: im2col + `gemm` per image, rayon over the batch.
//!
//! Per image (NCHW, `P = HO·WO` output positions, `IKK = I·K²`):
//! - forward:  `cols [IKK, P] = im2col(x)`, `y [O, P] = bias + W [O, IKK] · cols`
//! - backward: `gW += dY [O, P] · colsᵀ`, `gb += Σ_p dY`,
//!   `gx += col2im(Wᵀ [IKK, O] · dY)`
//!
//! The batch is cut into a fixed number of contiguous groups (independent of
//! the thread count), one rayon task each; each task owns its scratch buffers
//! and its partial `gW`/`gb`, which are summed in group order afterwards, so
//! results are bit-identical for any number of threads. `cols` is recomputed
//! in backward instead of being kept from forward: it is rebuilt in cache right
//! before the product reads it, and evaluation keeps nothing.

use dfdx::prelude::{
    Const, Cpu, CpuError, Dim, HasShape, PutTape, Rank1, Rank4, ReshapeTo, Shape, SplitTape, Tape,
    Tensor, TensorFromVec,
};
use rayon::prelude::*;

use super::{Conv2DOp, Images};
use crate::nn::gemm::{matmul, GemmFloat, Mat};

/// Images per rayon task: the batch is split into at most this many groups.
const MAX_TASKS: usize = 16;

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
    forward(&op, &x_buf, &w_buf, &b_buf, &mut y); // [B, O, HO, WO]
    let y = x
        .device()
        .try_tensor_from_vec(y, (batch, Const::<O>, Const::<HO>, Const::<WO>))?;

    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, b_ghost, y_ghost) =
            (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            // Move dY out of its slot (no copy) so the other slots can be borrowed.
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_ghost)?);
            let (gw, gb) = backward(&op, &x_buf, &w_buf, &gy, grads.get_or_alloc_mut(&x_ghost)?);
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

/// Images per task for a fixed split of the batch (never depends on threads).
fn images_per_task(batch: usize) -> usize {
    batch.div_ceil(MAX_TASKS).max(1)
}

/// `y = bias + conv(x, w)` for the whole batch.
///
/// # Shapes
/// `x: [B, I, H, W]`, `w: [O, I·K·K]`, `b: [O]`, `y: [B, O, HO·WO]`.
pub(crate) fn forward<E: GemmFloat>(op: &Conv2DOp, x: &[E], w: &[E], b: &[E], y: &mut [E]) {
    let (ikk, p) = (op.patch_len(), op.out_positions());
    let w_mat = Mat::row_major(w, op.chan_out, ikk);
    let n = images_per_task(op.batch);
    y.par_chunks_mut(n * op.out_image_len())
        .zip(x.par_chunks(n * op.in_image_len()))
        .for_each(|(y_group, x_group)| {
            let mut cols = vec![E::default(); ikk * p];
            let images = y_group
                .chunks_mut(op.out_image_len())
                .zip(x_group.chunks(op.in_image_len()));
            for (y_img, x_img) in images {
                im2col(op, x_img, &mut cols); // [IKK, P]
                for (row, &b_o) in y_img.chunks_mut(p).zip(b) {
                    row.fill(b_o);
                }
                matmul(y_img, p, w_mat, Mat::row_major(&cols, ikk, p), true); // [O, P]
            }
        });
}

/// Adds the input gradient to `gx` and returns the weight and bias gradients.
///
/// # Shapes
/// `x, gx: [B, I, H, W]`, `w: [O, I·K·K]`, `gy: [B, O, HO·WO]` ->
/// `(gw: [O, I·K·K], gb: [O])`.
pub(crate) fn backward<E: GemmFloat>(
    op: &Conv2DOp,
    x: &[E],
    w: &[E],
    gy: &[E],
    gx: &mut [E],
) -> (Vec<E>, Vec<E>) {
    let (ikk, p, o) = (op.patch_len(), op.out_positions(), op.chan_out);
    let wt = Mat::row_major(w, o, ikk).t(); // [IKK, O]
    let n = images_per_task(op.batch);
    let partials: Vec<(Vec<E>, Vec<E>)> = gx
        .par_chunks_mut(n * op.in_image_len())
        .zip(x.par_chunks(n * op.in_image_len()))
        .zip(gy.par_chunks(n * op.out_image_len()))
        .map(|((gx_group, x_group), gy_group)| {
            let mut cols = vec![E::default(); ikk * p];
            let mut dcols = vec![E::default(); ikk * p];
            let mut gw = vec![E::default(); o * ikk];
            let mut gb = vec![E::default(); o];
            let images = gx_group
                .chunks_mut(op.in_image_len())
                .zip(x_group.chunks(op.in_image_len()))
                .zip(gy_group.chunks(op.out_image_len()));
            for ((gx_img, x_img), gy_img) in images {
                let gy_mat = Mat::row_major(gy_img, o, p); // [O, P]
                im2col(op, x_img, &mut cols); // [IKK, P]
                matmul(
                    &mut gw,
                    ikk,
                    gy_mat,
                    Mat::row_major(&cols, ikk, p).t(),
                    true,
                );
                for (g, row) in gb.iter_mut().zip(gy_img.chunks(p)) {
                    *g += row.iter().fold(E::default(), |acc, &v| acc + v);
                }
                matmul(&mut dcols, p, wt, gy_mat, false); // [IKK, P]
                col2im_add(op, &dcols, gx_img);
            }
            (gw, gb)
        })
        .collect();

    // Sum the groups in order: deterministic for any thread count.
    let mut gw = vec![E::default(); o * ikk];
    let mut gb = vec![E::default(); o];
    for (pw, pb) in &partials {
        add_assign(&mut gw, pw);
        add_assign(&mut gb, pb);
    }
    (gw, gb)
}

/// The output positions `[lo, hi)` along one axis whose tap `kk` reads inside
/// the input (`0 <= pos·stride + kk - pad < n_in`); the others read padding.
fn valid_range(kk: usize, pad: usize, stride: usize, n_in: usize, n_out: usize) -> (usize, usize) {
    let lo = if pad > kk {
        (pad - kk).div_ceil(stride)
    } else {
        0
    };
    let hi = if n_in + pad > kk {
        ((n_in + pad - kk - 1) / stride + 1).min(n_out)
    } else {
        0
    };
    (lo.min(n_out), hi.max(lo.min(n_out)))
}

/// Unfolds one image into patch columns.
///
/// # Shapes
/// `x: [I, H, W]` -> `cols: [I·K·K, HO·WO]`, row `(c·K + kh)·K + kw`, column
/// `oh·WO + ow` holding `x[c, oh·S + kh - PH, ow·S + kw - PW]` (0 outside).
fn im2col<E: GemmFloat>(op: &Conv2DOp, x: &[E], cols: &mut [E]) {
    let (k, s) = (op.kernel, op.stride);
    let (h, w, ho, wo) = (op.h_in, op.w_in, op.h_out, op.w_out);
    let mut rows = cols.chunks_exact_mut(ho * wo);
    for plane in x.chunks_exact(h * w) {
        for kh in 0..k {
            let (oh_lo, oh_hi) = valid_range(kh, op.pad_h, s, h, ho);
            for kw in 0..k {
                let (ow_lo, ow_hi) = valid_range(kw, op.pad_w, s, w, wo);
                let Some(row) = rows.next() else { return };
                row[..oh_lo * wo].fill(E::default());
                row[oh_hi * wo..].fill(E::default());
                for oh in oh_lo..oh_hi {
                    let src = &plane[(oh * s + kh - op.pad_h) * w..][..w];
                    let dst = &mut row[oh * wo..][..wo];
                    dst[..ow_lo].fill(E::default());
                    dst[ow_hi..].fill(E::default());
                    let dst = &mut dst[ow_lo..ow_hi];
                    let start = ow_lo * s + kw - op.pad_w;
                    if s == 1 {
                        dst.copy_from_slice(&src[start..start + dst.len()]);
                    } else {
                        for (d, &v) in dst.iter_mut().zip(src[start..].iter().step_by(s)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// Folds patch columns back onto one image, adding (the adjoint of [`im2col`]).
///
/// # Shapes
/// `cols: [I·K·K, HO·WO]` -> `gx: [I, H, W]` (accumulated).
fn col2im_add<E: GemmFloat>(op: &Conv2DOp, cols: &[E], gx: &mut [E]) {
    let (k, s) = (op.kernel, op.stride);
    let (h, w, ho, wo) = (op.h_in, op.w_in, op.h_out, op.w_out);
    let mut rows = cols.chunks_exact(ho * wo);
    for plane in gx.chunks_exact_mut(h * w) {
        for kh in 0..k {
            let (oh_lo, oh_hi) = valid_range(kh, op.pad_h, s, h, ho);
            for kw in 0..k {
                let (ow_lo, ow_hi) = valid_range(kw, op.pad_w, s, w, wo);
                let Some(row) = rows.next() else { return };
                for oh in oh_lo..oh_hi {
                    let dst = &mut plane[(oh * s + kh - op.pad_h) * w..][..w];
                    let src = &row[oh * wo + ow_lo..oh * wo + ow_hi];
                    let start = ow_lo * s + kw - op.pad_w;
                    if s == 1 {
                        for (d, &v) in dst[start..start + src.len()].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, &v) in dst[start..].iter_mut().step_by(s).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}
