//! `LeakyReLU<ALPHA>`: `y = x` where `x > 0`, else `alpha · x` (Keras' `LeakyReLU`).
//!
//! The slope travels as `f32` bits (`LeakyReLU<{ f32_bits(0.1) }>`), because
//! stable Rust has no `f32` const generics; the DSL's `leaky_relu` uses
//! Keras' default slope 0.3 (`keras.layers.LeakyReLU(negative_slope=0.3)`).
//!
//! One custom op per device ([`LeakyReLUKernel`]):
//! - `Cpu` (f32, f64): one pass over a copy of the input, which the backward
//!   pass keeps (`gx += gy · (x > 0 ? 1 : alpha)`, TensorFlow's `LeakyReluGrad`);
//! - `Cuda` (feature `cuda`): dfdx's `prelu` with a scalar slope, whose
//!   backward dfdx records (the tests run it on `Cpu` against the fast one).
//!
//! PyTorch: `nn.LeakyReLU(alpha)`; Keras: `layers.LeakyReLU(negative_slope=alpha)`.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::leaky_relu`.

use dfdx::prelude::{
    Device, Dtype, Module, NonMutableModule, Shape, Tape, Tensor, ZeroSizedModule,
};

use super::l2::weightless;

/// Builder for [`LeakyReLU`]: the layer has no parameters, so it is its own builder.
pub mod builder {
    pub use super::LeakyReLU;
}

/// `max(x, 0) + alpha · min(x, 0)`, element-wise.
///
/// Generics:
/// - `ALPHA`: the slope for negative inputs as `f32` bits (`f32_bits(0.3)`);
///   a build-time assertion requires it to be finite.
///
/// # Shapes
/// - input: any shape `S`, any batch
/// - output: `S`
#[derive(Debug, Default, Clone, Copy)]
pub struct LeakyReLU<const ALPHA: u32>;

impl<const ALPHA: u32> LeakyReLU<ALPHA> {
    /// The slope, checked to be finite at build time.
    pub const ALPHA: f32 = {
        let alpha = f32::from_bits(ALPHA);
        assert!(alpha.is_finite(), "LeakyReLU: alpha must be finite");
        alpha
    };
}

impl<const ALPHA: u32> ZeroSizedModule for LeakyReLU<ALPHA> {}
impl<const ALPHA: u32> NonMutableModule for LeakyReLU<ALPHA> {}

impl<const ALPHA: u32, S: Shape, E: Dtype, D: LeakyReLUKernel<E>, T: Tape<E, D>>
    Module<Tensor<S, E, D, T>> for LeakyReLU<ALPHA>
{
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        D::try_leaky_relu(x, Self::ALPHA)
    }
}

/// The leaky ReLU per device (see the module docs).
pub trait LeakyReLUKernel<E: Dtype>: Device<E> {
    /// `x > 0 ? x : alpha · x`, recording the backward op on `x`'s tape.
    fn try_leaky_relu<S: Shape, T: Tape<E, Self>>(
        x: Tensor<S, E, Self, T>,
        alpha: f32,
    ) -> Result<Tensor<S, E, Self, T>, Self::Err>;
}

weightless!([const ALPHA: u32,] LeakyReLU<ALPHA>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::leaky_relu::try_leaky_relu_composed;
    use crate::nn::{f32_bits, L2Penalty};
    use crate::tests::{assert_close, assert_grad_close, finite_difference, test_values};
    use dfdx::prelude::*;

    type Leaky = super::LeakyReLU<{ f32_bits(0.1) }>;

    /// Forward against Keras: `keras.layers.LeakyReLU(negative_slope=0.1)`.
    ///
    /// ```python
    /// import numpy as np
    /// x = np.array([-2.0, -0.5, 0.0, 0.25, 3.0])
    /// print(np.where(x > 0, x, 0.1 * x))   # [-0.2 -0.05 0. 0.25 3.]
    /// ```
    #[test]
    fn forward_matches_numpy() {
        let dev: Cpu = Default::default();
        let x = dev.tensor([-2.0f64, -0.5, 0.0, 0.25, 3.0]);
        let a = 0.1f32 as f64; // the slope is stored as f32
        let y = Leaky::default().forward(x);
        assert_close(&y.as_vec(), &[-2.0 * a, -0.5 * a, 0.0, 0.25, 3.0], 1e-15);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev: Cpu = Default::default();
        // no value near 0, where the derivative jumps
        let xv: Vec<f64> = test_values(24, 5)
            .iter()
            .map(|v| if v.abs() < 0.05 { v + 0.1 } else { *v })
            .collect();
        let r = dev.tensor_from_vec(test_values(24, 6), (Const::<2>, Const::<3>, Const::<4>));
        let loss = |xv: &[f64]| {
            let x = dev.tensor_from_vec(xv.to_vec(), (Const::<2>, Const::<3>, Const::<4>));
            (Leaky::default().forward(x) * r.clone())
                .sum::<Rank0, _>()
                .array()
        };
        let x = dev.tensor_from_vec(xv.clone(), (Const::<2>, Const::<3>, Const::<4>));
        let grads = (Leaky::default().forward(x.leaky_trace()) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let numeric = finite_difference(&xv, 1e-3, loss);
        assert_grad_close("input", &grads.get(&x).as_vec(), &numeric, 1e-6);

        // the composed (Cuda) path on Cpu: same values and gradients
        let y_c = try_leaky_relu_composed(x.leaky_trace(), f32::from_bits(f32_bits(0.1))).unwrap();
        assert_close(
            &y_c.as_vec(),
            &Leaky::default().forward(x.clone()).as_vec(),
            1e-15,
        );
        let g_c = (y_c * r).sum::<Rank0, _>().backward();
        assert_close(&g_c.get(&x).as_vec(), &grads.get(&x).as_vec(), 1e-15);
    }

    #[test]
    fn trains_in_a_tuple_model_without_parameters() {
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<(Leaky, ReLU), f32>();
        assert_eq!(NumParams::<f32, Cpu>::num_trainable_params(&m), 0);
        let x: Tensor<(usize, Const<3>), f32, _> = dev.sample_normal_like(&(4, Const));
        let _ = m.forward_mut(x.leaky_trace());
        assert!(L2Penalty::<f32, Cpu>::l2_penalty(&m).is_none());
        // the DSL's `leaky_relu`: Keras' default slope
        assert_eq!(super::LeakyReLU::<{ f32_bits(0.3) }>::ALPHA, 0.3);
    }
}
