//! Convolution as a composition of public dfdx ops, for any `D: Device<E>`.
//!
//! This is the `Cuda` path (dfdx's `Cuda` fields are crate-private, so a
//! custom kernel cannot reach its buffers); the tests run it on `Cpu` against
//! the fast kernel. Every step is a dfdx op with its own backward, so the
//! gradients come from dfdx: `gather` accumulates into its source (unlike the
//! Cpu `slice` backward, which overwrites), which is what overlapping patches need.
//!
//! ```text
//! x [B, I, H, W] -> [B, I·H·W] -> permute [I·H·W, B] -> append a zero row [I·H·W + 1, B]
//!   -> gather rows by a fixed index [I·KH·KW·P, B]   (padding taps read the zero row)
//!   -> reshape [I·KH·KW, P·B] -> W [O, I·KH·KW] · cols = [O, P·B] -> [O, P, B]
//!   -> permute [B, O, P] -> reshape [B, O, HO, WO] -> + bias
//! ```

use dfdx::prelude::{
    Axes3, Axis, BroadcastTo, Const, Device, Dim, GatherTo, HasShape, PermuteTo, Rank1, Rank4,
    ReshapeTo, Tape, Tensor, TryAdd, TryConcatAlong, TryMatMul,
};
use dfdx::shapes::Dtype;

use crate::nn::conv2d::{Conv2DOp, Images};

/// `y = conv(x, weight) + bias` from dfdx ops (see the module docs).
///
/// # Shapes
/// `x: [B, I, H, W]`, `weight: [O, I, KH, KW]`, `bias: [O]` -> `[B, O, HO, WO]`.
pub fn try_conv2d_composed<
    E: Dtype,
    D: Device<E>,
    B: Dim,
    T: Tape<E, D>,
    const I: usize,
    const O: usize,
    const KH: usize,
    const KW: usize,
    const H: usize,
    const W: usize,
    const HO: usize,
    const WO: usize,
>(
    op: Conv2DOp,
    x: Images<B, I, H, W, E, D, T>,
    weight: &Tensor<Rank4<O, I, KH, KW>, E, D>,
    bias: &Tensor<Rank1<O>, E, D>,
) -> Result<Images<B, O, HO, WO, E, D, T>, D::Err> {
    let dev = x.device().clone();
    let batch = x.shape().0;
    let (in_len, ikk, p) = (op.in_image_len(), op.patch_len(), op.out_positions());

    let x_t = x
        .try_reshape_like(&(batch, in_len))? // [B, IHW]
        .try_permute::<_, Axes2Swap>()?; // [IHW, B]
    let zero_row = dev.try_zeros_like(&(1usize, batch))?; // [1, B]
    let padded = (x_t, zero_row).try_concat_along(Axis::<0>)?; // [IHW + 1, B]

    let idx = dev.try_tensor_from_vec(patch_index(&op), (ikk * p,))?;
    let cols = padded
        .try_gather(idx)? // [IKK·P, B]
        .try_reshape_like(&(ikk, p * batch.size()))?; // [IKK, P·B]

    let w = weight.retaped::<T>().try_reshape_like(&(Const::<O>, ikk))?; // [O, IKK]
    let y = w
        .try_matmul(cols)? // [O, P·B]
        .try_reshape_like(&(Const::<O>, p, batch))? // [O, P, B]
        .try_permute::<_, Axes3<2, 0, 1>>()? // [B, O, P]
        .try_reshape_like(&(batch, Const::<O>, Const::<HO>, Const::<WO>))?; // [B, O, HO, WO]
    let shape = *y.shape();
    y.try_add(bias.retaped::<T>().try_broadcast_like(&shape)?)
}

/// Swaps the two axes of a 2-D tensor.
type Axes2Swap = dfdx::prelude::Axes2<1, 0>;

/// For each im2col entry (row `(c·KH + kh)·KW + kw`, column `oh·WO + ow`), the
/// row of the padded, transposed input it reads; padding taps read the zero
/// row `I·H·W`.
fn patch_index(op: &Conv2DOp) -> Vec<usize> {
    let zero = op.in_image_len();
    let mut idx = Vec::with_capacity(op.patch_len() * op.out_positions());
    for c in 0..op.chan_in {
        for kh in 0..op.kernel_h {
            for kw in 0..op.kernel_w {
                for oh in 0..op.h_out {
                    for ow in 0..op.w_out {
                        let ih = (oh * op.stride_h + kh).checked_sub(op.pad_h);
                        let iw = (ow * op.stride_w + kw).checked_sub(op.pad_w);
                        idx.push(match (ih, iw) {
                            (Some(ih), Some(iw)) if ih < op.h_in && iw < op.w_in => {
                                (c * op.h_in + ih) * op.w_in + iw
                            }
                            _ => zero,
                        });
                    }
                }
            }
        }
    }
    idx
}

/// The whole fused op from dfdx ops: convolution, then (if `fusion.relu`)
/// dfdx's ReLU, then the composed max pooling (a 1x1 pool is a copy).
/// `fusion.input_grad` is ignored: dfdx computes every gradient.
#[allow(clippy::type_complexity)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))] // the Cpu tests use it
pub fn try_conv2d_fused_composed<
    E: Dtype,
    B: Dim,
    T: Tape<E, D>,
    D: Device<E>,
    const I: usize,
    const O: usize,
    const KH: usize,
    const KW: usize,
    const H: usize,
    const W: usize,
    const HO: usize,
    const WO: usize,
    const PK: usize,
    const PS: usize,
    const PHO: usize,
    const PWO: usize,
>(
    op: Conv2DOp,
    fusion: crate::nn::conv2d::Fusion,
    x: Images<B, I, H, W, E, D, T>,
    weight: &Tensor<Rank4<O, I, KH, KW>, E, D>,
    bias: &Tensor<Rank1<O>, E, D>,
) -> Result<Images<B, O, PHO, PWO, E, D, T>, D::Err> {
    let y: Images<B, O, HO, WO, E, D, T> = try_conv2d_composed(op, x, weight, bias)?;
    let y = if fusion.relu { y.try_relu()? } else { y };
    crate::nn::kernels::pool::try_max_pool2d_composed::<B, E, D, T, O, PK, PS, HO, WO, PHO, PWO>(y)
}
