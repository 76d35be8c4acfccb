//! `Flatten`: `(B, C, H, W) -> (B, C·H·W)`, keeping the batch dimension.
//!
//! dfdx's `Flatten2D` computes `C * H * W` in a type, which needs nightly
//! `generic_const_exprs`; here the product is the const generic `N` (the
//! `network!` macro computes it) and a `const { assert!(..) }` checks it.
//! The reshape is dfdx's `try_reshape_like`, so it works on every device and
//! tape: free for contiguous inputs (same buffer, same id), one copy otherwise.
//!
//! PyTorch: `nn.Flatten()`; Keras: `layers.Flatten()` (both row-major C, H, W
//! order here, since tensors are channels-first).
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::flatten`.

use dfdx::prelude::{
    Const, Device, Dim, Dtype, HasShape, Module, NonMutableModule, ReshapeTo, Tape, Tensor,
    ZeroSizedModule,
};

use super::l2::weightless;

/// Builder for [`Flatten`]: the layer has no parameters, so it is its own builder.
pub mod builder {
    pub use super::Flatten;
}

/// Flattens every image of a batch into one vector.
///
/// Generics:
/// - `CHAN`, `H`, `W`: the input's channels, height and width.
/// - `N`: the output length, which must equal `CHAN * H * W` (checked when built).
///
/// # Shapes
/// - input: `(B, CHAN, H, W)`, any batch `B: Dim` (const or `usize`)
/// - output: `(B, N)`
#[derive(Debug, Default, Clone, Copy)]
pub struct Flatten<const CHAN: usize, const H: usize, const W: usize, const N: usize>;

impl<const C: usize, const H: usize, const W: usize, const N: usize> ZeroSizedModule
    for Flatten<C, H, W, N>
{
}

impl<const C: usize, const H: usize, const W: usize, const N: usize> NonMutableModule
    for Flatten<C, H, W, N>
{
}

impl<B, const C: usize, const H: usize, const W: usize, const N: usize, E, D, T>
    Module<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>> for Flatten<C, H, W, N>
where
    B: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<(B, Const<N>), E, D, T>;
    type Error = D::Err;

    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
    ) -> Result<Self::Output, D::Err> {
        const { assert!(N == C * H * W, "Flatten: N must equal CHAN * H * W") };
        let batch = x.shape().0;
        x.try_reshape_like(&(batch, Const::<N>)) // [B, N]
    }
}

weightless!([const C: usize, const H: usize, const W: usize, const N: usize,] Flatten<C, H, W, N>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::L2Penalty;
    use dfdx::prelude::*;

    #[test]
    fn flattens_row_major_with_const_batch() {
        let dev: Cpu = Default::default();
        let x: Tensor<Rank4<2, 2, 2, 3>, f32, _> = dev.tensor(core::array::from_fn(|b| {
            core::array::from_fn(|c| {
                core::array::from_fn(|h| {
                    core::array::from_fn(|w| (b * 12 + c * 6 + h * 3 + w) as f32)
                })
            })
        }));
        let y: Tensor<Rank2<2, 12>, f32, _> = Flatten::<2, 2, 3, 12>.forward(x);
        assert_eq!(y.as_vec(), (0..24).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn runtime_batch_and_gradient_pass_through() {
        let dev: Cpu = Default::default();
        let x: Tensor<(usize, Const<3>, Const<2>, Const<2>), f64, _> =
            dev.sample_normal_like(&(5, Const, Const, Const));
        let y = Flatten::<3, 2, 2, 12>.forward(x.leaky_trace());
        assert_eq!(y.shape().0, 5);
        assert_eq!(y.shape().1, Const::<12>);
        let w: Tensor<Rank1<12>, f64, _> = dev.tensor(core::array::from_fn(|i| i as f64));
        let loss = (y * w.broadcast_like(&(5, Const::<12>))).sum::<Rank0, _>();
        let g = loss.backward().get(&x).as_vec();
        for (i, g) in g.iter().enumerate() {
            assert_eq!(*g, (i % 12) as f64);
        }
    }

    #[test]
    fn non_contiguous_input_is_copied() {
        let dev: Cpu = Default::default();
        // A permuted (strided) view: flattening must follow the logical order.
        let x: Tensor<Rank4<1, 2, 3, 1>, f32, _> =
            dev.tensor([[[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]]]);
        let xt: Tensor<Rank4<1, 3, 2, 1>, f32, _> = x.permute::<_, Axes4<0, 2, 1, 3>>();
        let y = Flatten::<3, 2, 1, 6>.forward(xt);
        assert_eq!(y.array(), [[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]]);
    }

    #[test]
    fn no_parameters() {
        let dev: Cpu = Default::default();
        let m = dev.build_module::<builder::Flatten<1, 2, 2, 4>, f32>();
        assert_eq!(NumParams::<f32, Cpu>::num_trainable_params(&m), 0);
        assert!(L2Penalty::<f32, Cpu>::l2_penalty(&m).is_none());
    }
}
