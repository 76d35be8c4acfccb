//! `AvgPool2D`: 2-D average pooling with valid padding and Keras' floored output size.
//!
//! The output is `floor((in - K) / S) + 1` per axis, as Keras'
//! `AveragePooling2D(K, strides=S, padding="valid")`; the rows and columns
//! past the last full window are ignored (and receive zero gradient). Every
//! output is the mean of its `K × K` window; the backward pass adds each
//! output gradient, divided by `K²`, to every element of its window.
//!
//! Two paths, chosen by device through [`AvgPool2DKernel`]:
//! - `Cpu` (f32, f64): a direct kernel, parallel over `batch × channel`
//!   planes (rayon); it keeps nothing for the backward pass but the sizes;
//! - `Cuda`: the windows gathered as in the composed max pooling
//!   (`kernels::pool::try_windows`), then dfdx's `mean` over each window; the
//!   tests run it on `Cpu` against the direct kernel.
//!
//! PyTorch: `nn.AvgPool2d(K, stride=S)`; Keras: `layers.AveragePooling2D(K, strides=S)`.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::avg_pool2d`.

use dfdx::prelude::{
    Const, Device, Dim, Dtype, Module, NonMutableModule, Tape, Tensor, ZeroSizedModule,
};

use super::kernels::pool::PoolOp;
use super::l2::weightless;

/// Builder for [`AvgPool2D`]: the layer has no parameters, so it is its own builder.
pub mod builder {
    pub use super::AvgPool2D;
}

/// Average pooling over `KERNEL_SIZE × KERNEL_SIZE` windows every `STRIDE` pixels.
///
/// Generics:
/// - `CHAN`: channels (pooled independently).
/// - `KERNEL_SIZE`, `STRIDE`: window side and step.
/// - `H_IN`, `W_IN`: input height and width.
/// - `H_OUT`, `W_OUT`: output height and width; must equal
///   `(H_IN - KERNEL_SIZE) / STRIDE + 1` and `(W_IN - KERNEL_SIZE) / STRIDE + 1`
///   (a `const` assertion checks it when the layer is used).
///
/// # Shapes
/// - input: `(B, CHAN, H_IN, W_IN)`, any batch `B: Dim`
/// - output: `(B, CHAN, H_OUT, W_OUT)`
#[derive(Debug, Default, Clone, Copy)]
pub struct AvgPool2D<
    const CHAN: usize,
    const KERNEL_SIZE: usize,
    const STRIDE: usize,
    const H_IN: usize,
    const W_IN: usize,
    const H_OUT: usize,
    const W_OUT: usize,
>;

impl<
        const C: usize,
        const K: usize,
        const S: usize,
        const HI: usize,
        const WI: usize,
        const HO: usize,
        const WO: usize,
    > AvgPool2D<C, K, S, HI, WI, HO, WO>
{
    /// The checked sizes; evaluating it runs the `const` assertions.
    const OP: PoolOp = PoolOp::new::<K, S, HI, WI, HO, WO>();
}

impl<
        const C: usize,
        const K: usize,
        const S: usize,
        const HI: usize,
        const WI: usize,
        const HO: usize,
        const WO: usize,
    > ZeroSizedModule for AvgPool2D<C, K, S, HI, WI, HO, WO>
{
}

impl<
        const C: usize,
        const K: usize,
        const S: usize,
        const HI: usize,
        const WI: usize,
        const HO: usize,
        const WO: usize,
    > NonMutableModule for AvgPool2D<C, K, S, HI, WI, HO, WO>
{
}

/// `(B, C, H, W)` images.
pub(crate) type Images<B, const C: usize, const H: usize, const W: usize, E, D, T> =
    Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>;

impl<
        B: Dim,
        const C: usize,
        const K: usize,
        const S: usize,
        const HI: usize,
        const WI: usize,
        const HO: usize,
        const WO: usize,
        E: Dtype,
        D: AvgPool2DKernel<E>,
        T: Tape<E, D>,
    > Module<Images<B, C, HI, WI, E, D, T>> for AvgPool2D<C, K, S, HI, WI, HO, WO>
{
    type Output = Images<B, C, HO, WO, E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Images<B, C, HI, WI, E, D, T>) -> Result<Self::Output, D::Err> {
        let _checked = Self::OP;
        D::try_avg_pool2d::<B, T, C, K, S, HI, WI, HO, WO>(x)
    }
}

weightless!(
    [const C: usize, const K: usize, const S: usize, const HI: usize, const WI: usize,
     const HO: usize, const WO: usize,]
    AvgPool2D<C, K, S, HI, WI, HO, WO>
);

/// A device that can average-pool (see the module docs).
pub trait AvgPool2DKernel<E: Dtype>: Device<E> {
    /// Pools `(B, C, HI, WI)` into `(B, C, HO, WO)` with `K × K` windows every
    /// `S` pixels; the sizes must satisfy `AvgPool2D`'s assertion.
    #[allow(clippy::type_complexity)]
    fn try_avg_pool2d<
        B: Dim,
        T: Tape<E, Self>,
        const C: usize,
        const K: usize,
        const S: usize,
        const HI: usize,
        const WI: usize,
        const HO: usize,
        const WO: usize,
    >(
        x: Images<B, C, HI, WI, E, Self, T>,
    ) -> Result<Images<B, C, HO, WO, E, Self, T>, Self::Err>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::pool::try_avg_pool2d_composed;
    use crate::tests::{assert_close, assert_grad_close, finite_difference, test_values};
    use dfdx::prelude::*;

    /// Keras' `AveragePooling2D(pool_size=2, strides=2)` on one 1x5x5
    /// plane (channels last in Keras, one channel here), and with
    /// `pool_size=3, strides=1`:
    ///
    /// ```python
    /// import numpy as np
    /// x = np.arange(25, dtype=np.float64).reshape(5, 5) ** 1.5 / 10
    /// def avg(x, k, s):
    ///     n = (x.shape[0] - k) // s + 1
    ///     return np.array([[x[i*s:i*s+k, j*s:j*s+k].mean() for j in range(n)] for i in range(n)])
    /// np.set_printoptions(precision=10)
    /// print(repr(avg(x, 2, 2).ravel()), repr(avg(x, 3, 1).ravel()))
    /// ```
    #[test]
    fn forward_matches_numpy() {
        let dev: Cpu = Default::default();
        let xv: Vec<f64> = (0..25).map(|i| (i as f64).powf(1.5) / 10.0).collect();
        let x = dev.tensor_from_vec(xv, (Const::<1>, Const::<1>, Const::<5>, Const::<5>));
        let y2 = AvgPool2D::<1, 2, 2, 5, 5, 2, 2>.forward(x.clone());
        let want2 = [0.6719319586, 1.2293063931, 4.7550099872, 5.8725428492];
        assert_close(&y2.as_vec(), &want2, 1e-9);
        let y3 = AvgPool2D::<1, 3, 1, 5, 5, 3, 3>.forward(x);
        let want3 = [
            1.7544537036,
            2.1088161426,
            2.4999649456,
            3.8473328003,
            4.3469911255,
            4.8694630387,
            6.5636485546,
            7.1679105334,
            7.7908086302,
        ];
        assert_close(&y3.as_vec(), &want3, 1e-9);
    }

    /// Gradients against central differences; the composed (Cuda) path
    /// against the direct one, values and gradients.
    #[test]
    fn gradients_and_composed_path() {
        let dev: Cpu = Default::default();
        let shape = (3, Const::<2>, Const::<7>, Const::<6>);
        let xv = test_values(3 * 2 * 7 * 6, 1);
        let x = dev.tensor_from_vec(xv.clone(), shape);
        let r = dev.tensor_from_vec(
            test_values(3 * 2 * 3 * 2, 2),
            (3, Const::<2>, Const::<3>, Const::<2>),
        );
        type Pool = AvgPool2D<2, 3, 2, 7, 6, 3, 2>;
        let loss = |xv: &[f64]| {
            let x = dev.tensor_from_vec(xv.to_vec(), shape);
            (Pool::default().forward(x) * r.clone())
                .sum::<Rank0, _>()
                .array()
        };
        let y = Pool::default().forward(x.clone());
        let g = (Pool::default().forward(x.leaky_trace()) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let numeric = finite_difference(&xv, 1e-3, loss);
        assert_grad_close("input", &g.get(&x).as_vec(), &numeric, 1e-6);

        let y_c = try_avg_pool2d_composed::<_, f64, Cpu, _, 2, 3, 2, 7, 6, 3, 2>(x.leaky_trace())
            .unwrap();
        assert_close(&y_c.as_vec(), &y.as_vec(), 1e-14);
        let g_c = (y_c * r).sum::<Rank0, _>().backward();
        assert_close(&g_c.get(&x).as_vec(), &g.get(&x).as_vec(), 1e-14);
    }
}
