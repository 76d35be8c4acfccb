//! `Dense<IN, OUT, L2>`: a fully connected layer `y = x · Wᵀ + b`, as Keras' `Dense`.
//!
//! It differs from dfdx's `Linear` in what the study needs: Keras'
//! initialisation (glorot-uniform kernel, zero bias) and an optional
//! `kernel_regularizer=l2(λ)` carried in the type as `f32` bits. The forward
//! pass is dfdx ops only (`matmul` against the transposed weight view, then a
//! broadcast bias add), so it runs on every device, any batch `B: Dim` and any
//! tape, and dfdx records the backward pass.
//!
//! PyTorch: `nn.Linear(IN, OUT)` (same `[OUT, IN]` weight layout); Keras:
//! `layers.Dense(OUT, kernel_regularizer=l2(λ))` (Keras stores `[IN, OUT]`).
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::dense`.

use dfdx::prelude::{
    BroadcastTo, BuildModule, BuildOnDevice, Const, Device, Dim, Dtype, HasShape, Module,
    ModuleVisitor, NonMutableModule, PermuteTo, Rank1, Rank2, Storage, Tape, Tensor,
    TensorCollection, TensorOptions, TryAdd, TryMatMul,
};
use rand::distributions::{uniform::SampleUniform, Uniform};

use super::l2::{try_l2_term, Penalty};
use super::L2Penalty;

/// The zero-sized description of a [`Dense`](super::Dense) layer.
pub mod builder {
    /// Builds a [`Dense`](super::Dense) with `dev.build_module::<Dense<784, 10>, f32>()`.
    ///
    /// Generics: `IN` inputs, `OUT` outputs, `L2` the kernel's L2 factor λ as
    /// `f32` bits (`f32_bits(1e-3)`; 0 = none).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct Dense<const IN: usize, const OUT: usize, const L2: u32 = 0>;
}

impl<const I: usize, const O: usize, const L2: u32, E, D> BuildOnDevice<D, E>
    for builder::Dense<I, O, L2>
where
    E: Dtype + SampleUniform,
    D: Device<E>,
{
    type Built = Dense<I, O, E, D, L2>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

/// A fully connected layer: `y = x · Wᵀ + b`.
///
/// Generics:
/// - `IN`, `OUT`: input and output features.
/// - `E`, `D`: dtype and device.
/// - `L2`: the kernel's L2 factor λ as `f32` bits (0 = not regularised).
///
/// # Shapes
/// - input: `(B, IN)`, any batch `B: Dim` (const or `usize`)
/// - output: `(B, OUT)`
#[derive(Debug, Clone)]
pub struct Dense<const IN: usize, const OUT: usize, E: Dtype, D: Storage<E>, const L2: u32 = 0> {
    /// The kernel, `[OUT, IN]` (PyTorch layout); glorot-uniform initialised.
    pub weight: Tensor<Rank2<OUT, IN>, E, D>,
    /// The bias, `[OUT]`; zero initialised.
    pub bias: Tensor<Rank1<OUT>, E, D>,
}

impl<const I: usize, const O: usize, E: Dtype, D: Storage<E>, const L2: u32> NonMutableModule
    for Dense<I, O, E, D, L2>
{
}

impl<const I: usize, const O: usize, E, D, const L2: u32> TensorCollection<E, D>
    for Dense<I, O, E, D, L2>
where
    E: Dtype + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Dense<I, O, E2, D2, L2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(|w| {
                        // Keras GlorotUniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))
                        // (keras/src/initializers/random_initializers.py).
                        let limit = (6.0 / (I + O) as f64).sqrt();
                        let lo = E::from_f64(-limit).unwrap_or_default();
                        let hi = E::from_f64(limit).unwrap_or_default();
                        w.try_fill_with_distr(Uniform::new_inclusive(lo, hi))
                    }),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_to_zeros(),
                ),
            ),
            |(weight, bias)| Dense { weight, bias },
        )
    }
}

impl<B, const I: usize, const O: usize, E, D, T, const L2: u32>
    Module<Tensor<(B, Const<I>), E, D, T>> for Dense<I, O, E, D, L2>
where
    B: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<(B, Const<O>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, Const<I>), E, D, T>) -> Result<Self::Output, D::Err> {
        let shape = (x.shape().0, Const::<O>);
        // The weight joins x's tape type; its backward ops land on x's tape.
        let w_t = self.weight.retaped::<T>().try_permute()?; // [IN, OUT] view
        let y = x.try_matmul(w_t)?; // [B, OUT]
        y.try_add(self.bias.retaped::<T>().try_broadcast_like(&shape)?) // [B, OUT]
    }
}

impl<const I: usize, const O: usize, E: Dtype, D: Device<E>, const L2: u32> L2Penalty<E, D>
    for Dense<I, O, E, D, L2>
{
    /// λ·Σw² over the kernel (never the bias); `None` when `L2 == 0`.
    fn try_l2_penalty(&self) -> Result<Option<Penalty<E, D>>, D::Err> {
        try_l2_term(&self.weight, L2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::f32_bits;
    use dfdx::prelude::*;

    #[test]
    fn forward_matches_a_hand_computation() {
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<builder::Dense<3, 2>, f64>();
        m.weight = dev.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]);
        m.bias = dev.tensor([0.5, -0.25]);
        let x: Tensor<Rank2<2, 3>, f64, _> = dev.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, -1.0]]);
        // y = x @ W.T + b
        assert_eq!(m.forward(x).array(), [[6.5, -0.75], [-0.5, -2.25]]);
    }

    #[test]
    fn gradients_match_the_closed_form() {
        let dev: Cpu = Default::default();
        let m = dev.build_module::<builder::Dense<4, 3>, f64>();
        let x: Tensor<(usize, Const<4>), f64, _> = dev.sample_normal_like(&(5, Const));
        // Leaky gradients keep x's gradient too (alloc_grads keeps only the parameters').
        let y = m.forward(x.leaky_trace());
        // loss = Σ y ⇒ dW[o, i] = Σ_b x[b, i], db[o] = B, dx[b, i] = Σ_o W[o, i].
        let grads = y.sum::<Rank0, _>().backward();
        let (xs, ws) = (x.as_vec(), m.weight.as_vec());
        let dw = grads.get(&m.weight).as_vec();
        for o in 0..3 {
            for i in 0..4 {
                let want: f64 = (0..5).map(|b| xs[b * 4 + i]).sum();
                assert!((dw[o * 4 + i] - want).abs() < 1e-12);
            }
        }
        assert_eq!(grads.get(&m.bias).array(), [5.0; 3]);
        let dx = grads.get(&x).as_vec();
        for b in 0..5 {
            for i in 0..4 {
                let want: f64 = (0..3).map(|o| ws[o * 4 + i]).sum();
                assert!((dx[b * 4 + i] - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn glorot_uniform_kernel_and_zero_bias() {
        let dev: Cpu = Cpu::seed_from_u64(0);
        let m = dev.build_module::<builder::Dense<784, 128>, f32>();
        let limit = (6.0f32 / (784.0 + 128.0)).sqrt();
        let w = m.weight.as_vec();
        assert!(w.iter().all(|v| v.abs() <= limit));
        // U(-l, l) has variance l²/3.
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!((var / (limit * limit / 3.0) - 1.0).abs() < 0.02, "{var}");
        assert!(m.bias.as_vec().iter().all(|b| *b == 0.0));

        // ResetParams draws a fresh kernel from the same distribution and zeroes the bias.
        let mut m = m;
        m.bias = dev.ones();
        m.reset_params();
        assert_ne!(m.weight.as_vec(), w);
        assert!(m.weight.as_vec().iter().all(|v| v.abs() <= limit));
        assert!(m.bias.as_vec().iter().all(|b| *b == 0.0));
    }

    /// Weight, bias and input gradients against central differences (f64), with
    /// an L2 penalty added to the loss.
    #[test]
    fn gradients_match_finite_differences_with_l2() {
        use crate::tests::{finite_difference, max_rel_error, test_values};
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<builder::Dense<5, 3, { f32_bits(0.1) }>, f64>();
        let (w0, x0) = (test_values(15, 1), test_values(4 * 5, 2));
        let b0 = test_values(3, 3);
        let r = test_values(4 * 3, 4); // loss = Σ y·r + λΣw²
        let loss =
            |m: &mut Dense<5, 3, f64, Cpu, { f32_bits(0.1) }>, w: &[f64], b: &[f64], x: &[f64]| {
                m.weight = dev.tensor_from_vec(w.to_vec(), (Const, Const));
                m.bias = dev.tensor_from_vec(b.to_vec(), (Const,));
                let y = m.forward(dev.tensor_from_vec(x.to_vec(), (4usize, Const::<5>)));
                let data: f64 = y.as_vec().iter().zip(&r).map(|(y, r)| y * r).sum();
                data + m.l2_penalty().map_or(0.0, |p| p.array())
            };
        let num_w = finite_difference(&w0, 1e-4, |w| loss(&mut m, w, &b0, &x0));
        let num_b = finite_difference(&b0, 1e-4, |b| loss(&mut m, &w0, b, &x0));
        let num_x = finite_difference(&x0, 1e-4, |x| loss(&mut m, &w0, &b0, x));

        loss(&mut m, &w0, &b0, &x0); // sets the parameters
        let x = dev.tensor_from_vec(x0.clone(), (4usize, Const::<5>));
        let y = m.forward(x.leaky_trace());
        let r_t = dev.tensor_from_vec(r.clone(), (4usize, Const::<3>));
        let total = (y * r_t).sum::<Rank0, _>() + m.l2_penalty().unwrap();
        let grads = total.backward();
        for (name, analytic, numeric) in [
            ("weight", grads.get(&m.weight).as_vec(), num_w),
            ("bias", grads.get(&m.bias).as_vec(), num_b),
            ("input", grads.get(&x).as_vec(), num_x),
        ] {
            let err = max_rel_error(&analytic, &numeric);
            assert!(err <= 1e-6, "{name}: rel err {err:e}");
        }
    }

    #[test]
    fn l2_penalty_covers_the_kernel_only() {
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<builder::Dense<2, 2, { f32_bits(0.5) }>, f64>();
        m.weight = dev.tensor([[1.0, 2.0], [3.0, -1.0]]);
        m.bias = dev.tensor([10.0, 10.0]);
        let p = m.l2_penalty().unwrap();
        assert!((p.array() - 0.5 * 15.0).abs() < 1e-12);
        let grads = p.backward();
        assert_eq!(grads.get(&m.weight).array(), [[1.0, 2.0], [3.0, -1.0]]);
        let plain = dev.build_module::<builder::Dense<2, 2>, f64>();
        assert!(plain.l2_penalty().is_none());
    }

    #[test]
    fn works_with_const_and_runtime_batches() {
        let dev: Cpu = Default::default();
        let m = dev.build_module::<builder::Dense<6, 2>, f32>();
        let y: Tensor<Rank2<3, 2>, f32, _> = m.forward(dev.zeros::<Rank2<3, 6>>());
        assert_eq!(y.array(), [[0.0; 2]; 3]);
        let y = m.forward(dev.zeros_like(&(9, Const::<6>)));
        assert_eq!(y.shape().0, 9);
    }

    /// A tuple model (Flatten, Dense, ReLU, Dense) through dfdx's TensorCollection
    /// machinery: parameter count, Adam, zero_grads, L2 and a safetensors round trip.
    #[test]
    fn tuple_model_trains_with_adam_and_round_trips_through_safetensors() {
        use crate::nn::flatten::Flatten;
        use dfdx::optim::{Adam, AdamConfig};
        type Model = (
            Flatten<1, 4, 4, 16>,
            builder::Dense<16, 8>,
            ReLU,
            builder::Dense<8, 3, { f32_bits(1e-3) }>,
        );
        let dev: Cpu = Cpu::seed_from_u64(1);
        let mut model = dev.build_module::<Model, f32>();
        assert_eq!(model.num_trainable_params(), 16 * 8 + 8 + 8 * 3 + 3);

        let mut opt = Adam::new(&model, AdamConfig::default());
        let x: Tensor<(usize, Const<1>, Const<4>, Const<4>), f32, _> =
            dev.sample_normal_like(&(6, Const, Const, Const));
        let y = dev.tensor_from_vec(
            (0..18)
                .map(|i| if i % 3 == (i / 3) % 3 { 1.0 } else { 0.0 })
                .collect(), // one-hot
            (6, Const::<3>),
        );
        let before = model.3.weight.as_vec();
        let mut grads = model.alloc_grads();
        let mut first_loss = None;
        for _ in 0..20 {
            let logits = model.forward_mut(x.trace(grads));
            let loss = cross_entropy_with_logits_loss(logits, y.clone());
            let loss = loss + model.l2_penalty().unwrap();
            first_loss.get_or_insert(loss.array());
            let last: f32 = loss.array();
            grads = loss.backward();
            opt.update(&mut model, &grads).unwrap();
            model.zero_grads(&mut grads);
            assert!(last.is_finite());
        }
        assert_ne!(model.3.weight.as_vec(), before, "Adam updated the kernel");
        let trained = model.forward(x.clone()).as_vec();
        let final_loss =
            cross_entropy_with_logits_loss(model.forward(x.clone()), y.clone()).array();
        assert!(
            final_loss < first_loss.unwrap(),
            "{final_loss} vs {first_loss:?}"
        );

        let path =
            std::env::temp_dir().join(format!("netdsl-dense-{}.safetensors", std::process::id()));
        model.save_safetensors(&path).unwrap();
        let mut fresh = dev.build_module::<Model, f32>();
        assert_ne!(fresh.forward(x.clone()).as_vec(), trained);
        fresh.load_safetensors(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(fresh.forward(x).as_vec(), trained);
        assert_eq!(fresh.1.bias.as_vec(), model.1.bias.as_vec());
    }
}
