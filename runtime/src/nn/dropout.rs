//! `Dropout<RATE>`: inverted dropout while training, identity while evaluating.
//!
//! The rate travels as `f32` bits (`Dropout<{ f32_bits(0.2) }>`), because
//! stable Rust has no `f32` const generics. Train vs eval is chosen by the
//! input's tape, as in dfdx's own `DropoutOneIn`:
//! - `model.forward(x)` (a `NoneTape` input): identity, as Keras at inference.
//! - `model.forward_mut(x.traced(grads))` (an `OwnedTape` input): zeroes
//!   each element with probability `rate` and scales the kept ones by
//!   `1 / (1 - rate)` (Keras' inverted dropout), drawing its mask seed from
//!   the device RNG. On `Cpu` this draws exactly dfdx's `try_dropout` mask
//!   (the same seed, ChaCha12 stream and Bernoulli test per element), but in
//!   parallel chunks (ChaCha seeks to each chunk's position) and once: the
//!   mask is kept for the backward pass instead of drawn again. dfdx draws it
//!   twice on one thread, which made the dropout variants ~20 % slower. Other
//!   devices use dfdx's `try_dropout`.
//!
//! Mixing them up does not compile: `Module` is implemented only for
//! `NoneTape` inputs and `ModuleMut` only for `OwnedTape` inputs.
//!
//! PyTorch: `nn.Dropout(p)`; Keras: `layers.Dropout(rate)`.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::dropout`.

use dfdx::prelude::{
    Device, Dtype, Module, ModuleMut, NoneTape, OwnedTape, Shape, Tensor, ZeroSizedModule,
};

use super::l2::{one_regularizer, Penalty, Regularizer, Regularizers};
use super::L2Penalty;

/// Builder for [`Dropout`]: the layer has no parameters, so it is its own builder.
pub mod builder {
    pub use super::Dropout;
}

/// Zeroes each element with probability `rate` while training.
///
/// Generics:
/// - `RATE`: the drop probability as `f32` bits (`f32_bits(0.5)`); a build-time
///   assertion requires `0 <= rate < 1`.
///
/// # Shapes
/// - input: any shape `S`, any batch
/// - output: `S`
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout<const RATE: u32> {
    /// The drop probability while training: `RATE` unless changed at run
    /// time (see [`Regularizers`]).
    pub rate: f32,
}

impl<const RATE: u32> Default for Dropout<RATE> {
    fn default() -> Self {
        Dropout { rate: Self::RATE }
    }
}

impl<const RATE: u32> Dropout<RATE> {
    /// The drop probability, checked to lie in `[0, 1)` at build time.
    pub const RATE: f32 = {
        let rate = f32::from_bits(RATE);
        assert!(rate >= 0.0 && rate < 1.0, "Dropout: rate must be in [0, 1)");
        rate
    };
}

impl<const RATE: u32> ZeroSizedModule for Dropout<RATE> {}

impl<const RATE: u32, S: Shape, E: Dtype, D: Device<E>> Module<Tensor<S, E, D, NoneTape>>
    for Dropout<RATE>
{
    type Output = Tensor<S, E, D, NoneTape>;
    type Error = D::Err;

    /// Evaluation: the identity (the rate is still checked).
    fn try_forward(&self, x: Tensor<S, E, D, NoneTape>) -> Result<Self::Output, D::Err> {
        let _ = Self::RATE;
        Ok(x)
    }
}

impl<const RATE: u32, S: Shape, E: Dtype, D: DropoutKernel<E>>
    ModuleMut<Tensor<S, E, D, OwnedTape<E, D>>> for Dropout<RATE>
{
    type Output = Tensor<S, E, D, OwnedTape<E, D>>;
    type Error = D::Err;

    /// Training: inverted dropout with probability `rate` (identity when 0).
    fn try_forward_mut(
        &mut self,
        x: Tensor<S, E, D, OwnedTape<E, D>>,
    ) -> Result<Self::Output, D::Err> {
        let rate = self.rate;
        if rate == 0.0 {
            return Ok(x);
        }
        D::try_dropout_train(x, rate as f64)
    }
}

/// A tensor on a training tape.
pub type Taped<S, E, D> = Tensor<S, E, D, OwnedTape<E, D>>;

/// Training-mode dropout per device (see the module docs).
pub trait DropoutKernel<E: Dtype>: Device<E> {
    /// Zeroes each element with probability `prob`, scales the rest by `1 / (1 - prob)`.
    fn try_dropout_train<S: Shape>(
        x: Taped<S, E, Self>,
        prob: f64,
    ) -> Result<Taped<S, E, Self>, Self::Err>;
}

impl<const RATE: u32, E: Dtype, D: Device<E>> L2Penalty<E, D> for Dropout<RATE> {
    fn try_l2_penalty(&self) -> Result<Option<Penalty<E, D>>, D::Err> {
        Ok(None)
    }
}

impl<const RATE: u32> Regularizers for Dropout<RATE> {
    one_regularizer!(Regularizer::Dropout, rate);
}

#[cfg(test)]
mod tests {
    use super::Dropout;
    use super::*;
    use crate::nn::f32_bits;
    use dfdx::prelude::*;

    type Half = Dropout<{ f32_bits(0.5) }>;

    #[test]
    fn eval_is_identity() {
        let dev: Cpu = Default::default();
        let x: Tensor<(usize, Const<7>), f32, _> = dev.sample_normal_like(&(3, Const));
        let y = Half::default().forward(x.clone());
        assert_eq!(y.as_vec(), x.as_vec());
    }

    #[test]
    fn train_drops_and_rescales_and_gradients_follow_the_mask() {
        let dev: Cpu = Cpu::seed_from_u64(7);
        let mut m = dev.build_module::<Dropout<{ f32_bits(0.25) }>, f64>();
        let x: Tensor<Rank2<64, 64>, f64, _> = dev.ones();
        let y = m.forward_mut(x.leaky_trace());
        let ys = y.as_vec();
        let kept = ys.iter().filter(|v| **v != 0.0).count();
        for v in &ys {
            assert!(
                *v == 0.0 || (*v - 1.0 / 0.75f32 as f64).abs() < 1e-12,
                "{v}"
            );
        }
        // 4096 Bernoulli(0.75) draws: mean 3072, sd ~28.
        assert!((2900..3250).contains(&kept), "kept {kept}");
        let grads = y.sum::<Rank0, _>().backward();
        assert_eq!(
            grads.get(&x).as_vec(),
            ys,
            "d(sum y)/dx equals the mask scale"
        );
    }

    #[test]
    fn cpu_mask_is_dfdx_dropout_mask_values_and_gradients() {
        matches_dfdx();
    }

    /// The same on the portable path (`simd::portable`, as on a CPU without AVX2).
    #[test]
    fn portable_path_is_dfdx_dropout_too() {
        crate::nn::kernels::simd::portable(matches_dfdx);
    }

    fn matches_dfdx() {
        // 40,000 elements: several parallel chunks.
        let shape = (Const::<4>, Const::<10_000>);
        for rate in [0.25f32, 0.5] {
            let (dev_a, dev_b) = (Cpu::seed_from_u64(11), Cpu::seed_from_u64(11));
            let x: Tensor<Rank2<4, 10_000>, f32, _> = dev_a.sample_normal_like(&shape);
            let r: Tensor<Rank2<4, 10_000>, f32, _> = dev_a.sample_normal_like(&shape);
            // the same draws on the second device, so both dropouts get the same seed
            let _: Tensor<Rank2<4, 10_000>, f32, _> = dev_b.sample_normal_like(&shape);
            let _: Tensor<Rank2<4, 10_000>, f32, _> = dev_b.sample_normal_like(&shape);
            let x_b = dev_b.tensor_from_vec(x.as_vec(), shape);
            for _ in 0..2 {
                let y_dfdx = x.clone().leaky_trace().try_dropout(rate).unwrap();
                let y_ours =
                    Cpu::try_dropout_train(x_b.clone().leaky_trace(), rate as f64).unwrap();
                assert_eq!(y_ours.as_vec(), y_dfdx.as_vec());
                let g_dfdx = (y_dfdx * r.clone()).sum::<Rank0, _>().backward();
                let g_ours = (y_ours * r.clone()).sum::<Rank0, _>().backward();
                assert_eq!(g_ours.get(&x_b).as_vec(), g_dfdx.get(&x).as_vec());
            }
        }
    }

    #[test]
    fn zero_rate_is_identity_when_training() {
        let dev: Cpu = Default::default();
        let mut m = Dropout::<0>::default();
        let x: Tensor<Rank1<5>, f32, _> = dev.tensor([1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(m.forward_mut(x.leaky_trace()).array(), x.array());
    }

    #[test]
    fn no_parameters_in_a_tuple_model() {
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<(ReLU, Half, Tanh), f32>();
        assert_eq!(NumParams::<f32, Cpu>::num_trainable_params(&m), 0);
        let x: Tensor<Rank1<4>, f32, _> = dev.ones();
        assert_eq!(m.forward(x.clone()).as_vec(), x.clone().tanh().as_vec());
        let _ = m.forward_mut(x.leaky_trace());
        assert!(L2Penalty::<f32, Cpu>::l2_penalty(&m).is_none());
    }
}
