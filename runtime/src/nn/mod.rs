//! Layers for dfdx 0.13 on stable Rust, with every size a const generic.
//!
//! dfdx's own `Conv2D`, `MaxPool2D` and `Flatten2D` need nightly
//! `generic_const_exprs`; here the `network!` macro (or the user) computes
//! every output size, so each one is a plain const generic.
//!
//! As in dfdx, a *builder* type (`builders::Conv2D<..>`) is a zero-sized
//! description that `dev.build_module::<B, E>()` turns into a *module*
//! (`modules::Conv2D<.., E, D>`) holding tensors on device `D`.
//!
//! Each layer file (`conv2d.rs`, `max_pool2d.rs`, ...) owns one
//! `pub mod builder { .. }`, its module type, its shapes, its `Module` impls
//! and the trait a device implements to run it; the devices' code is in
//! `kernels/` (see there for the layout).

/// The body of `TensorCollection::iter_tensors` for a layer with a
/// `weight` (reset by `$init`), a `bias` and an `l2` factor (Conv2D,
/// ConvBlock, Dense). Where `$bias` is false (Keras' `use_bias=False`) the
/// bias is not a parameter: the kernels still add one, a zero tensor made
/// with the weight, outside the collection.
macro_rules! visit_weight_and_bias {
    ($visitor:ident, $Layer:ident, $init:expr, $bias:expr, $l2:expr) => {{
        let weight = Self::tensor(
            "weight",
            |s| &s.weight,
            |s| &mut s.weight,
            TensorOptions::reset_with($init),
        );
        if $bias {
            let bias = Self::tensor(
                "bias",
                |s| &s.bias,
                |s| &mut s.bias,
                TensorOptions::reset_to_zeros(),
            );
            $visitor.visit_fields((weight, bias), |(weight, bias)| $Layer {
                weight,
                bias,
                l2: f32::from_bits($l2),
            })
        } else {
            $visitor.visit_fields((weight,), |(weight,)| $Layer {
                bias: $crate::nn::zero_bias(&weight),
                weight,
                l2: f32::from_bits($l2),
            })
        }
    }};
}

mod avg_pool2d;
mod batch_norm;
mod conv2d;
mod conv_block;
mod conv_bn_block;
mod dense;
mod dropout;
mod flatten;
mod global_avg_pool;
pub(crate) mod kernels;
mod l2;
mod leaky_relu;
mod max_pool2d;

#[cfg(all(test, feature = "cuda"))]
mod cuda_tests;

pub use l2::{f32_bits, L2Penalty, Penalty, Regularizer, Regularizers};

/// The zero bias of a layer declared with `bias = false`, shaped `[O]`
/// like the bias it stands for, on the weight's device.
///
/// dfdx's `visit_fields` builds a module with an infallible closure, so the
/// allocation cannot return its error: it panics, as dfdx's `zeros` does,
/// only when the device is out of memory for `O` elements.
fn zero_bias<
    const O: usize,
    S: dfdx::shapes::Shape,
    E: dfdx::shapes::Dtype,
    D: dfdx::tensor_ops::Device<E>,
>(
    weight: &dfdx::tensor::Tensor<S, E, D>,
) -> dfdx::tensor::Tensor<dfdx::shapes::Rank1<O>, E, D> {
    weight.device().zeros()
}

/// Zero-sized layer descriptions for `dev.build_module::<B, f32>()`.
pub mod builders {
    pub use super::avg_pool2d::builder::AvgPool2D;
    pub use super::batch_norm::builder::BatchNorm;
    pub use super::conv2d::builder::Conv2D;
    pub use super::conv_block::builder::ConvBlock;
    pub use super::conv_bn_block::builder::ConvBnBlock;
    pub use super::dense::builder::Dense;
    pub use super::dropout::builder::Dropout;
    pub use super::flatten::builder::Flatten;
    pub use super::global_avg_pool::builder::GlobalAvgPool2D;
    pub use super::leaky_relu::builder::LeakyReLU;
    pub use super::max_pool2d::builder::MaxPool2D;
    pub use dfdx::nn::builders::{ReLU, Sigmoid, Tanh};
}

/// The built layers, holding their parameters on a device.
pub mod modules {
    pub use super::avg_pool2d::{AvgPool2D, AvgPool2DKernel};
    pub use super::batch_norm::{BatchNorm, BatchNormKernel, BatchNormOp, BatchStats, Normalized};
    pub use super::conv2d::{Conv2D, Conv2DKernel, Fusion};
    pub use super::conv_block::ConvBlock;
    pub use super::conv_bn_block::{ConvBnBlock, ConvBnKernel};
    pub use super::dense::{Dense, DenseKernel};
    pub use super::dropout::{Dropout, DropoutKernel};
    pub use super::flatten::Flatten;
    pub use super::global_avg_pool::GlobalAvgPool2D;
    pub use super::leaky_relu::{LeakyReLU, LeakyReLUKernel};
    pub use super::max_pool2d::{MaxPool2D, MaxPool2DKernel};
    pub use dfdx::nn::modules::{ReLU, Sigmoid, Tanh};
}
