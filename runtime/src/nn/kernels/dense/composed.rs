//! The dense layer as a composition of public dfdx ops, for any `D: Device<E>`.
//!
//! This is the `Cuda` path (dfdx's `Cuda` fields are crate-private, so a
//! custom kernel cannot reach its buffers); the tests run it on `Cpu` against
//! the fast kernel. dfdx records the backward pass of each op.

use dfdx::prelude::{
    BroadcastTo, Const, Device, Dim, HasShape, PermuteTo, Rank1, Rank2, Tape, Tensor, TryAdd,
    TryMatMul,
};
use dfdx::shapes::Dtype;

use crate::nn::dense::Features;

/// `y = x · Wᵀ + b` from dfdx ops: `matmul` against the transposed weight
/// view, then a broadcast bias add.
///
/// # Shapes
/// `x: [B, I]`, `weight: [O, I]`, `bias: [O]` -> `[B, O]`.
pub fn try_dense_composed<
    E: Dtype,
    D: Device<E>,
    B: Dim,
    T: Tape<E, D>,
    const I: usize,
    const O: usize,
>(
    x: Features<B, I, E, D, T>,
    weight: &Tensor<Rank2<O, I>, E, D>,
    bias: &Tensor<Rank1<O>, E, D>,
) -> Result<Features<B, O, E, D, T>, D::Err> {
    let shape = (x.shape().0, Const::<O>);
    // The weight joins x's tape type; its backward ops land on x's tape.
    let w_t = weight.retaped::<T>().try_permute()?; // [I, O] view
    let y = x.try_matmul(w_t)?; // [B, O]
    y.try_add(bias.retaped::<T>().try_broadcast_like(&shape)?) // [B, O]
}
