//! Keras' `kernel_regularizer=l2(λ)`: a penalty λ·Σw² per regularised kernel,
//! and the [`Regularizers`] of a network (dropout rates, L2 factors) that a
//! run can change without rebuilding.
//!
//! The declared factor λ travels in the type as `f32` bits (`const L2: u32`),
//! because stable Rust has no `f32` const generics; [`f32_bits`] writes it:
//! `Dense<784, 10, { f32_bits(1e-3) }>`. `L2 = 0` (the bits of `0.0`) means
//! "not regularised". A built layer keeps its factor in a field initialised
//! from the type (`dense.l2`), which [`Regularizers`] can change.
//!
//! How the gradient flows: the penalty is computed from
//! `weight.retaped::<OwnedTape<E, D>>()`, a copy of the weight (same id, same
//! data) on a fresh tape. Adding it to the loss merges the two tapes (dfdx's
//! `Merge for OwnedTape`), so `loss.backward()` also runs the penalty's
//! backward ops and accumulates 2λw into the weight's gradient slot, next to
//! the data gradient. Biases are never regularised (Keras' default).
//!
//! ```ignore
//! let logits = model.forward_mut(x.traced(grads));
//! let mut loss = cross_entropy_with_logits_loss(logits, y);
//! if let Some(p) = model.l2_penalty() { loss = loss + p; }   // Keras reports this sum
//! let grads = loss.backward();
//! ```
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::l2`.

use dfdx::nn::modules::{ReLU, Sigmoid, Tanh};
use dfdx::prelude::{Device, Dtype, OwnedTape, Rank0, Shape, SumTo, Tensor, TryAdd, TryMul};

/// The bits of `x`, for a const generic factor: `{ f32_bits(1e-3) }`.
///
/// The inverse is `f32::from_bits`.
pub const fn f32_bits(x: f32) -> u32 {
    x.to_bits()
}

/// A scalar penalty on its own tape: λ·Σw², ready to be added to a loss.
pub type Penalty<E, D> = Tensor<Rank0, E, D, OwnedTape<E, D>>;

/// The L2 penalty of a module: λ·Σw² over its regularised kernels.
pub trait L2Penalty<E: Dtype, D: Device<E>> {
    /// λ·Σw² over this module's regularised kernels, on a fresh `OwnedTape`
    /// (`w.retaped()`) so that adding it to the loss merges tapes and backward
    /// gives 2λw. `None` when no kernel is regularised.
    fn try_l2_penalty(&self) -> Result<Option<Penalty<E, D>>, D::Err>;

    /// [`L2Penalty::try_l2_penalty`], panicking on a device error (as dfdx's `forward`).
    fn l2_penalty(&self) -> Option<Penalty<E, D>> {
        self.try_l2_penalty().unwrap()
    }
}

/// λ·Σw² for one kernel, recorded on a fresh tape; `None` when `lambda`
/// is 0 (no regulariser).
///
/// This is what `Dense` and `Conv2D` return from [`L2Penalty::try_l2_penalty`].
pub fn try_l2_term<S: Shape, E: Dtype, D: Device<E>>(
    weight: &Tensor<S, E, D>,
    lambda: f32,
) -> Result<Option<Penalty<E, D>>, D::Err> {
    if lambda == 0.0 {
        return Ok(None);
    }
    let lambda = E::from_f32(lambda).unwrap_or_default();
    let sum_sq: Tensor<Rank0, E, D, OwnedTape<E, D>> = weight
        .retaped::<OwnedTape<E, D>>()
        .try_square()?
        .try_sum::<Rank0, S::AllAxes>()?;
    Ok(Some(sum_sq.try_mul(lambda)?))
}

/// Adds two optional penalties (a term that is `None` contributes nothing).
fn try_add_terms<E: Dtype, D: Device<E>>(
    a: Option<Penalty<E, D>>,
    b: Option<Penalty<E, D>>,
) -> Result<Option<Penalty<E, D>>, D::Err> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(a.try_add(b)?),
        (a, None) => a,
        (None, b) => b,
    })
}

/// `L2Penalty` (none) and `Regularizers` (none) for a layer with neither
/// an L2 factor nor a rate: `weightless!([const C: usize, ..] Layer<C, ..>)`
/// (the generics, if any, end with a comma).
macro_rules! weightless {
    ([$($generics:tt)*] $module:ty) => {
        impl<$($generics)* E: dfdx::shapes::Dtype, D: dfdx::tensor_ops::Device<E>>
            $crate::nn::L2Penalty<E, D> for $module
        {
            fn try_l2_penalty(&self) -> Result<Option<$crate::nn::Penalty<E, D>>, D::Err> {
                Ok(None)
            }
        }

        impl<$($generics)*> $crate::nn::Regularizers for $module {
            fn regularizers(&self, _: &mut Vec<($crate::nn::Regularizer, f32)>) {}
            fn set_regularizers(&mut self, _: &mut dyn Iterator<Item = f32>) {}
        }
    };
}
pub(crate) use weightless;

weightless!([] ReLU);
weightless!([] Tanh);
weightless!([] Sigmoid);
weightless!([]());

/// A regulariser whose strength can change at run time (`network!` declares
/// the defaults: `dropout<0.5>`, `conv<32, 3, l2 = 0.01>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Regularizer {
    /// A dropout layer's rate, in `[0, 1)`.
    Dropout,
    /// A convolution kernel's L2 factor λ (0: none).
    ConvL2,
    /// A dense kernel's L2 factor λ (0: none).
    DenseL2,
}

/// The run-time regularisers of a module (dropout rates, kernel L2 factors),
/// in layer order. Modules without any have none.
pub trait Regularizers {
    /// Appends this module's regularisers and their values to `out`.
    fn regularizers(&self, out: &mut Vec<(Regularizer, f32)>);
    /// Sets them from `values`, in the order [`Regularizers::regularizers`]
    /// lists them (unchanged where `values` has run out).
    fn set_regularizers(&mut self, values: &mut dyn Iterator<Item = f32>);
}

/// [`Regularizers`] for a module with one regulariser, held in `$field`.
macro_rules! one_regularizer {
    ($kind:expr, $field:ident) => {
        fn regularizers(&self, out: &mut Vec<(Regularizer, f32)>) {
            out.push(($kind, self.$field));
        }
        fn set_regularizers(&mut self, values: &mut dyn Iterator<Item = f32>) {
            if let Some(v) = values.next() {
                self.$field = v;
            }
        }
    };
}
pub(crate) use one_regularizer;

/// [`Regularizers`] for a module with none.
macro_rules! no_regularizer {
    () => {
        fn regularizers(&self, _: &mut Vec<(Regularizer, f32)>) {}
        fn set_regularizers(&mut self, _: &mut dyn Iterator<Item = f32>) {}
    };
}
pub(crate) use no_regularizer;

macro_rules! tuple_regularizers {
    ($($name:ident . $idx:tt),+) => {
        impl<$($name: Regularizers),+> Regularizers for ($($name,)+) {
            fn regularizers(&self, out: &mut Vec<(Regularizer, f32)>) {
                $(self.$idx.regularizers(out);)+
            }
            fn set_regularizers(&mut self, values: &mut dyn Iterator<Item = f32>) {
                $(self.$idx.set_regularizers(values);)+
            }
        }
    };
}

tuple_regularizers!(A.0);
tuple_regularizers!(A.0, B.1);
tuple_regularizers!(A.0, B.1, C.2);
tuple_regularizers!(A.0, B.1, C.2, D1.3);
tuple_regularizers!(A.0, B.1, C.2, D1.3, E1.4);
tuple_regularizers!(A.0, B.1, C.2, D1.3, E1.4, F.5);

macro_rules! tuple_penalty {
    ($($name:ident . $idx:tt),+) => {
        impl<E: Dtype, D: Device<E>, $($name: L2Penalty<E, D>),+> L2Penalty<E, D> for ($($name,)+) {
            fn try_l2_penalty(
                &self,
            ) -> Result<Option<Penalty<E, D>>, D::Err> {
                let total = None;
                $(let total = try_add_terms(total, self.$idx.try_l2_penalty()?)?;)+
                Ok(total)
            }
        }
    };
}

tuple_penalty!(A.0);
tuple_penalty!(A.0, B.1);
tuple_penalty!(A.0, B.1, C.2);
tuple_penalty!(A.0, B.1, C.2, D1.3);
tuple_penalty!(A.0, B.1, C.2, D1.3, E1.4);
tuple_penalty!(A.0, B.1, C.2, D1.3, E1.4, F.5);

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::prelude::*;

    /// A stand-in regularised module: one kernel `w` with factor λ.
    struct Kernel<S: Shape> {
        w: Tensor<S, f64, Cpu>,
        bits: u32,
    }

    impl<S: Shape> L2Penalty<f64, Cpu> for Kernel<S> {
        fn try_l2_penalty(&self) -> Result<Option<Penalty<f64, Cpu>>, CpuError> {
            try_l2_term(&self.w, f32::from_bits(self.bits))
        }
    }

    fn lambda(bits: u32) -> f64 {
        f32::from_bits(bits) as f64
    }

    #[test]
    fn f32_bits_round_trips() {
        const BITS: u32 = f32_bits(1e-3);
        assert_eq!(f32::from_bits(BITS), 1e-3);
        assert_eq!(f32_bits(0.0), 0);
    }

    #[test]
    fn zero_factor_and_activations_give_none() {
        let dev: Cpu = Default::default();
        let k = Kernel {
            w: dev.tensor([1.0f64, 2.0]),
            bits: 0,
        };
        assert!(k.l2_penalty().is_none());
        assert!(L2Penalty::<f64, Cpu>::l2_penalty(&ReLU).is_none());
        assert!(L2Penalty::<f64, Cpu>::l2_penalty(&(Tanh, (Sigmoid, ReLU))).is_none());
    }

    #[test]
    fn penalty_value_and_gradient_is_two_lambda_w() {
        let dev: Cpu = Default::default();
        let bits = f32_bits(1e-2);
        let w = dev.tensor([[1.0f64, -2.0, 3.0], [0.5, 0.0, -1.5]]);
        let k = Kernel { w: w.clone(), bits };
        let p = k.l2_penalty().unwrap();
        let sum_sq: f64 = w.as_vec().iter().map(|v| v * v).sum();
        assert!((p.array() - lambda(bits) * sum_sq).abs() < 1e-15);
        let grads = p.backward();
        let g = grads.get(&k.w).as_vec();
        for (g, w) in g.iter().zip(w.as_vec()) {
            assert!((g - 2.0 * lambda(bits) * w).abs() < 1e-15, "{g} vs {w}");
        }
    }

    /// loss(w) = Σ (w·x) plus the penalty: backward gives x + 2λw, the sum of
    /// both gradients, whichever side of `+` the penalty is on, and the
    /// gradient slot allocated for the weight before the forward pass is used.
    #[test]
    fn combined_loss_sums_both_gradients() {
        let dev: Cpu = Default::default();
        let bits = f32_bits(0.25);
        let w: Tensor<Rank1<3>, f64, Cpu> = dev.tensor([1.0, -2.0, 0.5]);
        let x: Tensor<Rank1<3>, f64, Cpu> = dev.tensor([3.0, 4.0, -1.0]);
        let k = Kernel { w: w.clone(), bits };
        for penalty_first in [false, true] {
            let mut grads = Gradients::leaky();
            grads.get_or_alloc_mut(&w).unwrap();
            let data_loss = (w.clone().traced(grads) * x.clone()).sum::<Rank0, _>();
            let p = k.l2_penalty().unwrap();
            let loss = if penalty_first {
                p + data_loss
            } else {
                data_loss + p
            };
            let grads = loss.backward();
            let g = grads.get(&w).as_vec();
            let (x, w) = (x.as_vec(), w.as_vec());
            for (i, g) in g.iter().enumerate() {
                let want = x[i] + 2.0 * lambda(bits) * w[i];
                assert!((g - want).abs() < 1e-12, "{i}: {g} vs {want}");
            }
        }
    }

    #[test]
    fn tuples_sum_their_terms() {
        let dev: Cpu = Default::default();
        let a = Kernel {
            w: dev.tensor([1.0f64, 2.0]),
            bits: f32_bits(0.5),
        };
        let b = Kernel {
            w: dev.tensor([[3.0f64]]),
            bits: f32_bits(0.125),
        };
        let none = Kernel {
            w: dev.tensor([7.0f64]),
            bits: 0,
        };
        let model = (a, ReLU, (none, Tanh), (b,));
        let p = model.l2_penalty().unwrap();
        assert!((p.array() - (0.5 * 5.0 + 0.125 * 9.0)).abs() < 1e-12);
        let grads = p.backward();
        assert_eq!(grads.get(&model.0.w).array(), [1.0, 2.0]);
        assert_eq!(grads.get(&model.3 .0.w).array(), [[0.75]]);
    }
}
