//! `GlobalAvgPool2D`: the mean of each channel over the whole image,
//! `(B, C, H, W) -> (B, C)`, as Keras' `GlobalAveragePooling2D()`.
//!
//! One path for every device: dfdx's `mean` over the two spatial axes, whose
//! backward (`gy / (H·W)` to every pixel) dfdx records. On `Cpu` that is one
//! pass over the input; it runs once per step on the smallest feature map of
//! a network, so a kernel of its own would save nothing measurable.
//!
//! PyTorch: `nn.AdaptiveAvgPool2d(1)` then `flatten`; Keras: `layers.GlobalAveragePooling2D()`.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::global_avg_pool`.

use dfdx::prelude::{
    Axes2, Const, Device, Dim, Dtype, MeanTo, Module, NonMutableModule, Tape, Tensor,
    ZeroSizedModule,
};

use super::l2::weightless;

/// Builder for [`GlobalAvgPool2D`]: the layer has no parameters, so it is its own builder.
pub mod builder {
    pub use super::GlobalAvgPool2D;
}

/// Averages each channel over its `H × W` pixels.
///
/// Generics:
/// - `CHAN`, `H`, `W`: the input's channels, height and width.
///
/// # Shapes
/// - input: `(B, CHAN, H, W)`, any batch `B: Dim`
/// - output: `(B, CHAN)`
#[derive(Debug, Default, Clone, Copy)]
pub struct GlobalAvgPool2D<const CHAN: usize, const H: usize, const W: usize>;

impl<const C: usize, const H: usize, const W: usize> ZeroSizedModule for GlobalAvgPool2D<C, H, W> {}
impl<const C: usize, const H: usize, const W: usize> NonMutableModule for GlobalAvgPool2D<C, H, W> {}

impl<B: Dim, const C: usize, const H: usize, const W: usize, E: Dtype, D: Device<E>, T>
    Module<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>> for GlobalAvgPool2D<C, H, W>
where
    T: Tape<E, D>,
{
    type Output = Tensor<(B, Const<C>), E, D, T>;
    type Error = D::Err;

    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
    ) -> Result<Self::Output, D::Err> {
        x.try_mean::<(B, Const<C>), Axes2<2, 3>>() // [B, C]
    }
}

weightless!([const C: usize, const H: usize, const W: usize,] GlobalAvgPool2D<C, H, W>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{assert_close, assert_grad_close, finite_difference, test_values};
    use dfdx::prelude::*;

    /// Against numpy's mean over the spatial axes (Keras'
    /// `GlobalAveragePooling2D` on the channels-last transpose):
    ///
    /// ```python
    /// import numpy as np
    /// x = (np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2) - 5) ** 2 / 7
    /// np.set_printoptions(precision=10)
    /// print(repr(x.mean(axis=(2, 3)).ravel()))
    /// ```
    #[test]
    fn forward_matches_numpy() {
        let dev: Cpu = Default::default();
        let xv: Vec<f64> = (0..24).map(|i| ((i as f64) - 5.0).powi(2) / 7.0).collect();
        let x = dev.tensor_from_vec(xv, (Const::<2>, Const::<3>, Const::<2>, Const::<2>));
        let y = GlobalAvgPool2D::<3, 2, 2>.forward(x);
        let want = [
            1.9285714286,
            0.2142857143,
            3.0714285714,
            10.5,
            22.5,
            39.0714285714,
        ];
        assert_close(&y.as_vec(), &want, 1e-9);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev: Cpu = Default::default();
        let shape = (2, Const::<3>, Const::<4>, Const::<5>);
        let xv = test_values(2 * 3 * 20, 1);
        let r = dev.tensor_from_vec(test_values(6, 2), (2, Const::<3>));
        let x = dev.tensor_from_vec(xv.clone(), shape);
        let g = (GlobalAvgPool2D::<3, 4, 5>.forward(x.leaky_trace()) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let numeric = finite_difference(&xv, 1e-3, |xv| {
            let x = dev.tensor_from_vec(xv.to_vec(), shape);
            (GlobalAvgPool2D::<3, 4, 5>.forward(x) * r.clone())
                .sum::<Rank0, _>()
                .array()
        });
        assert_grad_close("input", &g.get(&x).as_vec(), &numeric, 1e-6);
    }
}
