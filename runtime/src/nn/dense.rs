//! `Dense<IN, OUT, L2>`: a fully connected layer `y = x · Wᵀ + b`, as Keras' `Dense`.
//!
//! It differs from dfdx's `Linear` in what the study needs: Keras'
//! initialisation (glorot-uniform kernel, zero bias) and an optional
//! `kernel_regularizer=l2(λ)` carried in the type as `f32` bits. It takes any
//! batch `B: Dim` (const or `usize`) and any tape.
//!
//! Forward and backward are one custom op recorded with dfdx's public
//! `Tape::add_backward_op`, dispatched per device by [`DenseKernel`]:
//! - `Cpu` (f32, f64): one `gemm` 0.19 product per pass, the bias written
//!   into the output first (`kernels/dense/mod.rs`); dfdx's own `matmul` goes
//!   through its pinned `gemm` 0.15;
//! - `Cuda` (feature `cuda`): dfdx ops (`matmul` against the transposed
//!   weight view, then a broadcast bias add; `kernels/dense/composed.rs`), whose
//!   backward dfdx records; the tests run that composition on `Cpu` against
//!   the fast kernel.
//!
//! PyTorch: `nn.Linear(IN, OUT)` (same `[OUT, IN]` weight layout); Keras:
//! `layers.Dense(OUT, kernel_regularizer=l2(λ))` (Keras stores `[IN, OUT]`).
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::dense`.
//! Benchmark: `cargo test --release -p netdsl-runtime --lib nn::dense::tests::bench -- --ignored --nocapture`.

use dfdx::prelude::{
    BuildModule, BuildOnDevice, Const, Device, Dim, Dtype, Module, ModuleVisitor, NonMutableModule,
    Rank1, Rank2, Storage, Tape, Tensor, TensorCollection, TensorOptions,
};
use rand::distributions::{uniform::SampleUniform, Uniform};

use super::l2::{one_regularizer, try_l2_term, Penalty, Regularizer, Regularizers};
use super::L2Penalty;

/// The zero-sized description of a [`Dense`](super::Dense) layer.
pub mod builder {
    /// Builds a [`Dense`](super::Dense) with `dev.build_module::<Dense<784, 10>, f32>()`.
    ///
    /// Generics: `IN` inputs, `OUT` outputs, `L2` the kernel's L2 factor λ as
    /// `f32` bits (`f32_bits(1e-3)`; 0 = none), `BIAS` whether the layer has
    /// a trainable bias (Keras' `use_bias`; `false`: `y = x · Wᵀ`).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct Dense<const IN: usize, const OUT: usize, const L2: u32 = 0, const BIAS: bool = true>;
}

impl<const I: usize, const O: usize, const L2: u32, const BIAS: bool, E, D> BuildOnDevice<D, E>
    for builder::Dense<I, O, L2, BIAS>
where
    E: Dtype + SampleUniform,
    D: Device<E>,
{
    type Built = Dense<I, O, E, D, L2, BIAS>;
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
/// - `BIAS`: whether `bias` is a parameter; without one (`false`) it stays
///   a zero tensor that is neither trained, counted nor saved.
///
/// # Shapes
/// - input: `(B, IN)`, any batch `B: Dim` (const or `usize`)
/// - output: `(B, OUT)`
#[derive(Debug, Clone)]
pub struct Dense<
    const IN: usize,
    const OUT: usize,
    E: Dtype,
    D: Storage<E>,
    const L2: u32 = 0,
    const BIAS: bool = true,
> {
    /// The kernel, `[OUT, IN]` (PyTorch layout); glorot-uniform initialised.
    pub weight: Tensor<Rank2<OUT, IN>, E, D>,
    /// The bias, `[OUT]`; zero initialised (and kept at zero when `BIAS` is false).
    pub bias: Tensor<Rank1<OUT>, E, D>,
    /// The kernel's L2 factor λ, `L2` unless changed at run time (0: none).
    pub l2: f32,
}

impl<const I: usize, const O: usize, E: Dtype, D: Storage<E>, const L2: u32, const BIAS: bool>
    NonMutableModule for Dense<I, O, E, D, L2, BIAS>
{
}

impl<const I: usize, const O: usize, E, D, const L2: u32, const BIAS: bool> TensorCollection<E, D>
    for Dense<I, O, E, D, L2, BIAS>
where
    E: Dtype + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Dense<I, O, E2, D2, L2, BIAS>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        // Keras GlorotUniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))
        // (keras/src/initializers/random_initializers.py).
        let glorot_uniform = |w: &mut Tensor<Rank2<O, I>, E, D>| {
            let limit = (6.0 / (I + O) as f64).sqrt();
            let lo = E::from_f64(-limit).unwrap_or_default();
            let hi = E::from_f64(limit).unwrap_or_default();
            w.try_fill_with_distr(Uniform::new_inclusive(lo, hi))
        };
        visit_weight_and_bias!(visitor, Dense, glorot_uniform, BIAS, L2)
    }
}

/// A batch of feature vectors `[B, N]`.
pub type Features<B, const N: usize, E, D, T> = Tensor<(B, Const<N>), E, D, T>;

/// The device-specific dense layer, in the style of dfdx's kernel traits.
///
/// Implemented for `Cpu` (f32, f64: the `gemm` kernel of `kernels/dense/mod.rs`) and,
/// with the `cuda` feature, for `Cuda` (f32, f64: `composed::try_dense_composed`).
pub trait DenseKernel<E: Dtype>: Device<E> {
    /// `y = x · weightᵀ + bias`, recording the backward op on `x`'s tape.
    ///
    /// # Shapes
    /// `x: [B, I]`, `weight: [O, I]`, `bias: [O]` -> `y: [B, O]`.
    fn try_dense<B: Dim, T: Tape<E, Self>, const I: usize, const O: usize>(
        x: Features<B, I, E, Self, T>,
        weight: &Tensor<Rank2<O, I>, E, Self>,
        bias: &Tensor<Rank1<O>, E, Self>,
    ) -> Result<Features<B, O, E, Self, T>, Self::Err>;
}

impl<B, const I: usize, const O: usize, E, D, T, const L2: u32, const BIAS: bool>
    Module<Features<B, I, E, D, T>> for Dense<I, O, E, D, L2, BIAS>
where
    B: Dim,
    E: Dtype,
    D: DenseKernel<E>,
    T: Tape<E, D>,
{
    type Output = Features<B, O, E, D, T>;
    type Error = D::Err;

    /// Training (`OwnedTape` input) records the backward op; evaluation
    /// (`NoneTape`) keeps nothing for it.
    fn try_forward(&self, x: Features<B, I, E, D, T>) -> Result<Self::Output, D::Err> {
        D::try_dense(x, &self.weight, &self.bias)
    }
}

impl<const I: usize, const O: usize, E: Dtype, D: Device<E>, const L2: u32, const BIAS: bool>
    L2Penalty<E, D> for Dense<I, O, E, D, L2, BIAS>
{
    /// λ·Σw² over the kernel (never the bias); `None` when λ is 0.
    fn try_l2_penalty(&self) -> Result<Option<Penalty<E, D>>, D::Err> {
        try_l2_term(&self.weight, self.l2)
    }
}

impl<const I: usize, const O: usize, E: Dtype, D: Storage<E>, const L2: u32, const BIAS: bool>
    Regularizers for Dense<I, O, E, D, L2, BIAS>
{
    one_regularizer!(Regularizer::DenseL2, l2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::f32_bits;
    use crate::nn::kernels::dense::Split;
    use crate::tests::{assert_close, assert_grad_close, finite_difference, test_values};
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

    /// `y = x · Wᵀ + b`, one output at a time (f64).
    fn naive(batch: usize, inp: usize, out: usize, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let mut y = Vec::with_capacity(batch * out);
        for r in 0..batch {
            for o in 0..out {
                let dot: f64 = (0..inp).map(|i| x[r * inp + i] * w[o * inp + i]).sum();
                y.push(b[o] + dot);
            }
        }
        y
    }

    /// Central differences (`finite_difference`, eps 1e-3) of `f` at every
    /// `stride`-th entry of `x` only: the large cases have too many entries
    /// for all of them.
    fn sampled_difference(x: &[f64], stride: usize, mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
        let mut probe = x.to_vec();
        (0..x.len())
            .step_by(stride)
            .map(|i| {
                let one = finite_difference(&x[i..=i], 1e-3, |xi| {
                    probe[i] = xi[0];
                    f(&probe)
                });
                probe[i] = x[i];
                one[0]
            })
            .collect()
    }

    /// Forward against [`naive`] (with and without a tape), gradients of
    /// input, weight and bias against central differences (at every
    /// `stride`-th entry of x and W), and the composed (Cuda) path against
    /// the fast one, with a `usize` batch.
    fn check_case<const I: usize, const O: usize>(batch: usize, stride: usize) {
        use crate::nn::kernels::dense::try_dense_composed;
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<builder::Dense<I, O>, f64>();
        let (wv, bv, xv) = (
            test_values(O * I, 1),
            test_values(O, 2),
            test_values(batch * I, 3),
        );
        m.weight = dev.tensor_from_vec(wv.clone(), (Const, Const));
        m.bias = dev.tensor_from_vec(bv.clone(), (Const,));
        let x = dev.tensor_from_vec(xv.clone(), (batch, Const::<I>));

        // forward, no tape, and with one
        let y = m.forward(x.clone());
        assert_close(&y.as_vec(), &naive(batch, I, O, &xv, &wv, &bv), 1e-12);
        let y_t = m.forward(x.clone().traced(m.alloc_grads()));
        assert_eq!(y_t.as_vec(), y.as_vec());

        // analytic gradients of loss = Σ y·r
        let r = dev.tensor_from_vec(test_values(batch * O, 4), (batch, Const::<O>));
        let grads = (m.forward(x.leaky_trace()) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let (gx, gw, gb) = (
            grads.get(&x).as_vec(),
            grads.get(&m.weight).as_vec(),
            grads.get(&m.bias).as_vec(),
        );

        // numeric gradients (the loss is linear in each of x, W, b: a large eps
        // is exact), at every `stride`-th entry
        let loss = |m: &Dense<I, O, f64, Cpu>, xv: &[f64]| -> f64 {
            let y = m.forward(dev.tensor_from_vec(xv.to_vec(), (batch, Const::<I>)));
            (y * r.clone()).sum::<Rank0, _>().array()
        };
        let num_gx = sampled_difference(&xv, stride, |xp| loss(&m, xp));
        let num_gw = sampled_difference(&wv, stride, |wp| {
            let mut m2 = m.clone();
            m2.weight = dev.tensor_from_vec(wp.to_vec(), (Const, Const));
            loss(&m2, &xv)
        });
        let num_gb = sampled_difference(&bv, 1, |bp| {
            let mut m2 = m.clone();
            m2.bias = dev.tensor_from_vec(bp.to_vec(), (Const,));
            loss(&m2, &xv)
        });
        let sample = |g: &[f64]| -> Vec<f64> { g.iter().copied().step_by(stride).collect() };
        assert_grad_close("input", &sample(&gx), &num_gx, 1e-6);
        assert_grad_close("weight", &sample(&gw), &num_gw, 1e-6);
        assert_grad_close("bias", &gb, &num_gb, 1e-6);

        // the composed (Cuda) path, run on Cpu: same values, same gradients
        let y_c = try_dense_composed(x.clone(), &m.weight, &m.bias).unwrap();
        assert_close(&y_c.as_vec(), &y.as_vec(), 1e-12);
        let y_c = try_dense_composed(x.leaky_trace(), &m.weight, &m.bias).unwrap();
        let grads_c = (y_c * r).sum::<Rank0, _>().backward();
        assert_close(&grads_c.get(&x).as_vec(), &gx, 1e-12);
        assert_close(&grads_c.get(&m.weight).as_vec(), &gw, 1e-12);
        assert_close(&grads_c.get(&m.bias).as_vec(), &gb, 1e-12);
    }

    #[test]
    fn small_products_on_the_calling_thread() {
        let op = |batch, inp, out| crate::nn::kernels::dense::DenseOp { batch, inp, out };
        assert_eq!(op(100, 10, 5).forward_split(), Split::Serial);
        assert_eq!(op(100, 10, 5).backward_pieces(), 1);
        check_case::<5, 3>(7, 1);
        check_case::<10, 5>(100, 1); // DNN2's middle layer
        check_case::<1, 1>(1, 1);
    }

    #[test]
    fn large_products_split_across_tasks() {
        let op = |batch, inp, out| crate::nn::kernels::dense::DenseOp { batch, inp, out };
        // by outputs in the forward pass: 61 = 31 + 30; backward: 37 rows =
        // 10 + 10 + 10 + 7, 61 outputs = 16 + 16 + 16 + 13
        assert_eq!(op(37, 500, 61).forward_split(), Split::Outputs(2));
        assert_eq!(op(37, 500, 61).backward_pieces(), 4);
        check_case::<500, 61>(37, 97);
        // by rows of the batch in the forward pass (18 + 18 + 18 + 17)
        assert_eq!(op(71, 1000, 15).forward_split(), Split::Rows(4));
        check_case::<1000, 15>(71, 97);
        // DNN2's first layer at batch 100 is not split (see `cpu::PAR_MIN_MACS`)
        assert_eq!(op(100, 784, 10).forward_split(), Split::Serial);
    }

    #[test]
    fn empty_batch() {
        let dev: Cpu = Default::default();
        let m = dev.build_module::<builder::Dense<6, 4>, f64>();
        let x = dev.zeros_like(&(0, Const::<6>));
        assert_eq!(m.forward(x.clone()).shape().0, 0);
        assert_eq!(m.forward(x.leaky_trace()).shape().0, 0);
        // (dfdx's `sum` divides by zero on an empty tensor: call the kernel directly)
        let op = crate::nn::kernels::dense::DenseOp {
            batch: 0,
            inp: 6,
            out: 4,
        };
        let (mut gw, mut gb) = (vec![1.0; 24], vec![1.0; 4]);
        let grads = crate::nn::kernels::dense::Grads {
            gx: &mut [],
            gw: &mut gw,
            gb: &mut gb,
        };
        crate::nn::kernels::dense::backward(op, &[], &m.weight.as_vec(), &[], grads, 2);
        assert_eq!((gw, gb), (vec![1.0; 24], vec![1.0; 4]));
    }

    /// Any cut of the products into pieces gives the same values (to rounding).
    #[test]
    fn kernel_pieces_agree_with_the_naive_product() {
        use crate::nn::kernels::dense::{backward, forward, DenseOp, Grads, Split};
        let (batch, inp, out) = (7, 9, 5);
        let op = DenseOp { batch, inp, out };
        let (x, w, b) = (
            test_values(batch * inp, 1),
            test_values(out * inp, 2),
            test_values(out, 3),
        );
        let gy = test_values(batch * out, 4);
        let want_y = naive(batch, inp, out, &x, &w, &b);
        // gx = gy · W, gW = gyᵀ · x, gb = Σ_rows gy, each added to 1
        let mut want_gx = vec![1.0; batch * inp];
        let mut want_gw = vec![1.0; out * inp];
        let mut want_gb = vec![1.0; out];
        for r in 0..batch {
            for o in 0..out {
                for i in 0..inp {
                    want_gx[r * inp + i] += gy[r * out + o] * w[o * inp + i];
                    want_gw[o * inp + i] += gy[r * out + o] * x[r * inp + i];
                }
                want_gb[o] += gy[r * out + o];
            }
        }
        let splits = (1..=8).flat_map(|n| [Split::Rows(n), Split::Outputs(n)]);
        for split in splits.chain([Split::Serial]) {
            let mut y = vec![f64::NAN; batch * out];
            forward(op, &x, &w, &b, &mut y, split);
            assert_close(&y, &want_y, 1e-12);
        }
        for pieces in 1..=8 {
            let (mut gx, mut gw, mut gb) =
                (vec![1.0; batch * inp], vec![1.0; out * inp], vec![1.0; out]);
            let grads = Grads {
                gx: &mut gx,
                gw: &mut gw,
                gb: &mut gb,
            };
            backward(op, &x, &w, &gy, grads, pieces);
            assert_close(&gx, &want_gx, 1e-12);
            assert_close(&gw, &want_gw, 1e-12);
            assert_close(&gb, &want_gb, 1e-12);
        }
    }

    #[test]
    fn gradients_are_identical_for_any_thread_count() {
        let dev: Cpu = Cpu::seed_from_u64(1);
        let m = dev.build_module::<builder::Dense<500, 64>, f32>();
        let op = crate::nn::kernels::dense::DenseOp {
            batch: 37,
            inp: 500,
            out: 64,
        };
        assert_ne!(op.forward_split(), Split::Serial);
        assert_ne!(op.backward_pieces(), 1);
        let x: Tensor<(usize, Const<500>), f32, Cpu> = dev.tensor_from_vec(
            test_values(37 * 500, 6).iter().map(|&v| v as f32).collect(),
            (37, Const),
        );
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let y = m.forward(x.leaky_trace());
                let out = y.as_vec();
                let g = y.square().sum::<Rank0, _>().backward();
                (
                    out,
                    g.get(&m.weight).as_vec(),
                    g.get(&m.bias).as_vec(),
                    g.get(&x).as_vec(),
                )
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }

    #[test]
    fn f32_matches_f64() {
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<builder::Dense<200, 30>, f64>();
        m.bias = dev.tensor_from_vec(test_values(30, 7), (Const,));
        let mut m32 = dev.build_module::<builder::Dense<200, 30>, f32>();
        m32.weight = m.weight.clone().to_dtype::<f32>();
        m32.bias = m.bias.clone().to_dtype::<f32>();
        let x: Tensor<Rank2<50, 200>, f64, Cpu> =
            dev.tensor_from_vec(test_values(50 * 200, 8), Default::default());
        let y = m.forward(x.clone());
        let y32 = m32.forward(x.to_dtype::<f32>());
        let y32: Vec<f64> = y32.as_vec().iter().map(|&v| v as f64).collect();
        // f32 rounding over 200 terms; near-zero outputs are measured against
        // 1e-3 of the largest (see `max_rel_error`), so cancellation shows.
        assert_close(&y32, &y.as_vec(), 2e-4);
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

        // The same values and gradients through a const and a usize batch,
        // with a tape (OwnedTape) and without (NoneTape).
        let mut m = dev.build_module::<builder::Dense<6, 2>, f64>();
        m.bias = dev.tensor([0.25, -0.5]);
        let xv = test_values(3 * 6, 5);
        let x_c: Tensor<Rank2<3, 6>, f64, _> = dev.tensor_from_vec(xv.clone(), Default::default());
        let x_u = dev.tensor_from_vec(xv, (3usize, Const::<6>));
        let y_c = m.forward(x_c.clone());
        assert_eq!(y_c.as_vec(), m.forward(x_u.clone()).as_vec());
        let g_c = m
            .forward(x_c.leaky_trace())
            .square()
            .sum::<Rank0, _>()
            .backward();
        let g_u = m
            .forward(x_u.leaky_trace())
            .square()
            .sum::<Rank0, _>()
            .backward();
        assert_eq!(g_c.get(&x_c).as_vec(), g_u.get(&x_u).as_vec());
        assert_eq!(g_c.get(&m.weight).as_vec(), g_u.get(&m.weight).as_vec());
        assert_eq!(g_c.get(&m.bias).as_vec(), g_u.get(&m.bias).as_vec());
        // forward_mut with the tape of alloc_grads (parameters only), as training does
        let y_t = m.forward_mut(x_c.traced(m.alloc_grads()));
        assert_eq!(y_t.as_vec(), y_c.as_vec());
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

    /// Forward + backward through the layer (fast path) and through the dfdx
    /// composition (the old path), f32, then the kernel alone with several
    /// ways of splitting it.
    ///
    /// `cargo test --release -p netdsl-runtime --lib nn::dense::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench() {
        use crate::nn::kernels::dense::try_dense_composed;
        fn layer<const I: usize, const O: usize>(batch: usize, reps: usize) {
            let dev: Cpu = Cpu::seed_from_u64(0);
            let m = dev.build_module::<builder::Dense<I, O>, f32>();
            let x: Tensor<(usize, Const<I>), f32, Cpu> = dev.sample_normal_like(&(batch, Const));
            let mut grads = m.alloc_grads();
            let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
            let (mut fwd_c, mut bwd_c) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                for composed in [false, true] {
                    let t0 = std::time::Instant::now();
                    let x = x.clone().traced(grads);
                    let y = if composed {
                        try_dense_composed(x, &m.weight, &m.bias).unwrap()
                    } else {
                        m.forward(x)
                    };
                    let t1 = std::time::Instant::now();
                    grads = y.sum::<Rank0, _>().backward();
                    let t2 = std::time::Instant::now();
                    m.zero_grads(&mut grads);
                    let (f, b) = if composed {
                        (&mut fwd_c, &mut bwd_c)
                    } else {
                        (&mut fwd, &mut bwd)
                    };
                    f.push((t1 - t0).as_secs_f64() * 1e6);
                    b.push((t2 - t1).as_secs_f64() * 1e6);
                }
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let macs = (batch * I * O) as f64;
            let (f, b) = (med(&mut fwd), med(&mut bwd));
            let (fc, bc) = (med(&mut fwd_c), med(&mut bwd_c));
            println!(
                "layer {batch}x{I}->{O}: fast fwd {f:8.1} us bwd {b:8.1} us ({:5.1} GFLOP/s) | \
                 dfdx ops fwd {fc:8.1} us bwd {bc:8.1} us ({:5.1} GFLOP/s)",
                6.0 * macs / (f + b) / 1e3,
                6.0 * macs / (fc + bc) / 1e3,
            );
        }
        fn kernel(batch: usize, inp: usize, out: usize, reps: usize) {
            use crate::nn::kernels::dense::{backward, forward, DenseOp, Grads, Split};
            let op = DenseOp { batch, inp, out };
            let f = |n: usize, seed| -> Vec<f32> {
                test_values(n, seed).iter().map(|&v| v as f32).collect()
            };
            let (x, w, b, gy) = (
                f(batch * inp, 1),
                f(out * inp, 2),
                f(out, 3),
                f(batch * out, 4),
            );
            type Run<'a> = Box<dyn FnMut() + 'a>;
            let mut variants: Vec<(String, Run<'_>)> = Vec::new();
            let (x, w, b, gy) = (&x, &w, &b, &gy);
            for split in [
                Split::Serial,
                Split::Rows(2),
                Split::Rows(4),
                Split::Outputs(2),
                Split::Outputs(4),
            ] {
                let mut y = vec![0f32; batch * out];
                let run = move || forward(op, x, w, b, &mut y, split);
                variants.push((format!("fwd {split:?}"), Box::new(run)));
            }
            for pieces in [1, 2, 4] {
                let (mut gx, mut gw, mut gb) = (
                    vec![0f32; batch * inp],
                    vec![0f32; out * inp],
                    vec![0f32; out],
                );
                let run = move || {
                    let grads = Grads {
                        gx: &mut gx,
                        gw: &mut gw,
                        gb: &mut gb,
                    };
                    backward(op, x, w, gy, grads, pieces)
                };
                variants.push((format!("bwd {pieces}"), Box::new(run)));
            }
            // Round robin, so that contention from other work hits every variant.
            let mut times = vec![Vec::with_capacity(reps); variants.len()];
            for rep in 0..=reps {
                for ((_, run), t) in variants.iter_mut().zip(&mut times) {
                    let t0 = std::time::Instant::now();
                    run();
                    if rep > 0 {
                        t.push(t0.elapsed().as_secs_f64() * 1e6);
                    }
                }
            }
            let mut line = format!("kernel {batch}x{inp}->{out} (min/median us)");
            for ((name, _), t) in variants.iter().zip(&mut times) {
                t.sort_by(f64::total_cmp);
                line += &format!(", {name} {:.1}/{:.1}", t[0], t[reps / 2]);
            }
            println!(
                "{line} (chosen: fwd {:?}, bwd {})",
                op.forward_split(),
                op.backward_pieces()
            );
        }
        println!("rayon threads: {}", rayon::current_num_threads());
        layer::<1600, 128>(100, 200);
        layer::<128, 10>(100, 1000);
        layer::<576, 64>(100, 500);
        layer::<64, 10>(100, 1000);
        layer::<784, 10>(100, 1000);
        layer::<10, 5>(100, 2000);
        layer::<5, 10>(100, 2000);
        layer::<784, 5>(100, 1000);
        layer::<1600, 128>(500, 50); // evaluation batch
        for (batch, inp, out) in [
            (100, 1600, 128),
            (100, 128, 10),
            (100, 576, 64),
            (100, 64, 10),
            (100, 784, 10),
            (100, 784, 5),
            (100, 10, 5),
            (100, 5, 10),
            (500, 1600, 128),
            (500, 784, 10),
        ] {
            kernel(batch, inp, out, 300);
        }
    }

    /// `bias = false`: one parameter tensor, `y = x · Wᵀ`, and an optimiser
    /// step leaves the zero bias alone.
    #[test]
    fn without_bias() {
        let dev: Cpu = Default::default();
        let mut m = dev.build_module::<builder::Dense<3, 2, 0, false>, f64>();
        assert_eq!(NumParams::<f64, Cpu>::num_trainable_params(&m), 6);
        m.weight = dev.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]);
        let x: Tensor<Rank2<2, 3>, f64, _> = dev.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, -1.0]]);
        assert_eq!(m.forward(x.clone()).array(), [[6.0, -0.5], [-1.0, -2.0]]);
        use dfdx::optim::{Optimizer, Sgd, SgdConfig};
        let mut sgd = Sgd::new(&m, SgdConfig::default());
        let grads = m
            .forward(x.traced(m.alloc_grads()))
            .sum::<Rank0, _>()
            .backward();
        sgd.update(&mut m, &grads).unwrap();
        assert_eq!(m.bias.array(), [0.0, 0.0]);
        assert_ne!(m.weight.array()[0], [1.0, 2.0, 3.0]);
    }
}
