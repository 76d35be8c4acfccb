//! `MaxPool2D`: 2-D max pooling with valid padding and Keras' floored output size.
//!
//! Every size is a const generic (dfdx's own `MaxPool2D` computes the output
//! size in a type, which needs nightly `generic_const_exprs`). The output is
//! `floor((in - K) / S) + 1`, as Keras' `MaxPooling2D(padding="valid")`:
//! 11 -> 5 with `K = S = 2`; the rows and columns past the last full window are
//! ignored (and receive zero gradient).
//!
//! Two paths, chosen by device through [`MaxPool2DKernel`]:
//! - `Cpu` (`f32`, `f64`): a direct kernel, parallel over `batch × channel`
//!   planes (rayon). The forward pass records, for each output, the index of
//!   its maximum in the input plane, only when the input carries an
//!   `OwnedTape` (inference records nothing). The backward pass adds each
//!   output gradient to that input element (overlapping windows accumulate).
//!   **Ties go to the first maximum in scan order** (row by row, left to right
//!   within the window), as PyTorch's CPU kernel does.
//! - `Cuda` (and any other device, through [`try_max_pool2d_composed`]): a
//!   composition of public dfdx ops, `gather` of every window then `max` over
//!   the window axis. Its backward is dfdx's `max_to` backward, which gives the
//!   **full** output gradient to **every** element equal to the maximum: with
//!   ties, the composed path's input gradient differs from the CPU kernel's
//!   (without ties they agree, which a test checks on `Cpu`).
//!
//! PyTorch: `nn.MaxPool2d(K, stride=S)`; Keras: `layers.MaxPooling2D(K, strides=S)`.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::max_pool2d`.

use dfdx::prelude::{
    Const, Device, Dim, Dtype, Module, NonMutableModule, Tape, Tensor, ZeroSizedModule,
};

use super::kernels::pool::PoolOp;
use super::l2::weightless;

/// Builder for [`MaxPool2D`]: the layer has no parameters, so it is its own builder.
pub mod builder {
    pub use super::MaxPool2D;
}

/// Max pooling over `KERNEL_SIZE × KERNEL_SIZE` windows every `STRIDE` pixels.
///
/// Generics:
/// - `CHAN`: channels (pooled independently).
/// - `KERNEL_SIZE`, `STRIDE`: window side and step (`STRIDE` may differ from `KERNEL_SIZE`).
/// - `H_IN`, `W_IN`: input height and width.
/// - `H_OUT`, `W_OUT`: output height and width; must equal
///   `(H_IN - KERNEL_SIZE) / STRIDE + 1` and `(W_IN - KERNEL_SIZE) / STRIDE + 1`
///   (a `const` assertion checks it when the layer is used).
///
/// # Shapes
/// - input: `(B, CHAN, H_IN, W_IN)`, any batch `B: Dim` (const or `usize`)
/// - output: `(B, CHAN, H_OUT, W_OUT)`
#[derive(Debug, Default, Clone, Copy)]
pub struct MaxPool2D<
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
    > MaxPool2D<C, K, S, HI, WI, HO, WO>
{
    /// The checked sizes; evaluating it runs the `const` assertions.
    const OP: PoolOp = PoolOp::new::<K, S, HI, WI, HO, WO>().max_window();
}

impl<
        const C: usize,
        const K: usize,
        const S: usize,
        const HI: usize,
        const WI: usize,
        const HO: usize,
        const WO: usize,
    > ZeroSizedModule for MaxPool2D<C, K, S, HI, WI, HO, WO>
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
    > NonMutableModule for MaxPool2D<C, K, S, HI, WI, HO, WO>
{
}

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
        D: MaxPool2DKernel<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, Const<C>, Const<HI>, Const<WI>), E, D, T>>
    for MaxPool2D<C, K, S, HI, WI, HO, WO>
{
    type Output = Tensor<(B, Const<C>, Const<HO>, Const<WO>), E, D, T>;
    type Error = D::Err;

    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, Const<HI>, Const<WI>), E, D, T>,
    ) -> Result<Self::Output, D::Err> {
        let _checked = Self::OP;
        D::try_max_pool2d::<B, T, C, K, S, HI, WI, HO, WO>(x)
    }
}

weightless!(
    [const C: usize, const K: usize, const S: usize, const HI: usize, const WI: usize,
     const HO: usize, const WO: usize,]
    MaxPool2D<C, K, S, HI, WI, HO, WO>
);

/// A device that can max-pool: `Cpu` with a direct kernel, `Cuda` through
/// `try_max_pool2d_composed` (a composition of dfdx ops).
pub trait MaxPool2DKernel<E: Dtype>: Device<E> {
    /// Pools `(B, C, HI, WI)` into `(B, C, HO, WO)` with `K × K` windows every `S`
    /// pixels; the sizes must satisfy `MaxPool2D`'s assertion.
    #[allow(clippy::type_complexity)]
    fn try_max_pool2d<
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
        x: Tensor<(B, Const<C>, Const<HI>, Const<WI>), E, Self, T>,
    ) -> Result<Tensor<(B, Const<C>, Const<HO>, Const<WO>), E, Self, T>, Self::Err>;
}

#[cfg(test)]
mod tests {
    use super::builder;
    use crate::nn::kernels::pool::try_max_pool2d_composed;
    use crate::tests::{assert_close, finite_difference, max_rel_error, test_values};
    use dfdx::prelude::*;

    /// Direct max pooling of `[planes, h, w]` (no argmax), the reference.
    fn naive(x: &[f64], planes: usize, h: usize, w: usize, k: usize, s: usize) -> Vec<f64> {
        let (ho, wo) = ((h - k) / s + 1, (w - k) / s + 1);
        let mut y = Vec::new();
        for p in 0..planes {
            for oh in 0..ho {
                for ow in 0..wo {
                    let mut m = f64::NEG_INFINITY;
                    for kh in 0..k {
                        for kw in 0..k {
                            m = m.max(x[p * h * w + (oh * s + kh) * w + ow * s + kw]);
                        }
                    }
                    y.push(m);
                }
            }
        }
        y
    }

    /// `n` distinct values: a scrambled `0..n`, scaled into [-1, 1), so no window has a tie
    /// and no finite-difference probe crosses another element.
    fn distinct_values(n: usize, seed: u64) -> Vec<f64> {
        let keys = test_values(n, seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
        let mut v = vec![0.0; n];
        for (rank, &i) in order.iter().enumerate() {
            v[i] = rank as f64 / n as f64 * 2.0 - 1.0;
        }
        v
    }

    fn input<const C: usize, const H: usize, const W: usize>(
        dev: &Cpu,
        batch: usize,
        values: Vec<f64>,
    ) -> Tensor<(usize, Const<C>, Const<H>, Const<W>), f64, Cpu> {
        dev.tensor_from_vec(values, (batch, Const, Const, Const))
    }

    #[test]
    fn forward_matches_naive_f32_and_f64() {
        let dev: Cpu = Default::default();
        let values = test_values(3 * 2 * 9 * 7, 1);
        // K=3, S=2 on 9x7: 4x3.
        let x = input::<2, 9, 7>(&dev, 3, values.clone());
        let y = builder::MaxPool2D::<2, 3, 2, 9, 7, 4, 3>.forward(x.clone());
        assert_close(&y.as_vec(), &naive(&values, 6, 9, 7, 3, 2), 0.0);
        let y32 = builder::MaxPool2D::<2, 3, 2, 9, 7, 4, 3>.forward(x.to_dtype::<f32>());
        let want: Vec<f32> = naive(&values, 6, 9, 7, 3, 2)
            .iter()
            .map(|v| *v as f32)
            .collect();
        assert_eq!(y32.as_vec(), want);
    }

    #[test]
    fn floors_the_output_as_keras() {
        let dev: Cpu = Default::default();
        let values = distinct_values(2 * 11 * 11, 2);
        let x = input::<2, 11, 11>(&dev, 1, values.clone());
        let y = builder::MaxPool2D::<2, 2, 2, 11, 11, 5, 5>.forward(x.leaky_trace());
        assert_eq!(y.as_vec(), naive(&values, 2, 11, 11, 2, 2));
        // The last row and column are never read: they get no gradient.
        let g = y.sum::<Rank0, _>().backward().get(&x).as_vec();
        for p in 0..2 {
            for i in 0..11 {
                assert_eq!(g[p * 121 + 10 * 11 + i], 0.0);
                assert_eq!(g[p * 121 + i * 11 + 10], 0.0);
            }
        }
        assert_eq!(g.iter().sum::<f64>(), 50.0, "one unit per output");
    }

    /// Central differences on inputs without ties, stride = kernel, stride < kernel
    /// (overlapping windows) and stride > kernel, odd sizes, batch > 1.
    #[test]
    fn gradient_matches_finite_differences() {
        fn check<
            const C: usize,
            const K: usize,
            const S: usize,
            const H: usize,
            const W: usize,
            const HO: usize,
            const WO: usize,
        >(
            batch: usize,
            seed: u64,
        ) {
            let dev: Cpu = Default::default();
            let pool = builder::MaxPool2D::<C, K, S, H, W, HO, WO>;
            let n = batch * C * H * W;
            let values = distinct_values(n, seed);
            let r = test_values(batch * C * HO * WO, seed + 100); // loss = Σ y·r
            let loss = |v: &[f64]| -> f64 {
                let y = pool.forward(input::<C, H, W>(&dev, batch, v.to_vec()));
                y.as_vec().iter().zip(&r).map(|(y, r)| y * r).sum()
            };
            let x = input::<C, H, W>(&dev, batch, values.clone());
            let y = pool.forward(x.leaky_trace());
            let r_t = dev.tensor_from_vec(r.clone(), *y.shape());
            let g = (y * r_t).sum::<Rank0, _>().backward().get(&x).as_vec();
            // Half the smallest gap between distinct inputs: probes never reorder a window.
            let eps = 0.5 / n as f64;
            let numeric = finite_difference(&values, eps, loss);
            let err = max_rel_error(&g, &numeric);
            assert!(err <= 1e-6, "K={K} S={S} {H}x{W}: rel err {err:e}");
        }
        check::<3, 2, 2, 7, 9, 3, 4>(2, 3);
        check::<2, 3, 1, 6, 5, 4, 3>(3, 4);
        check::<2, 3, 2, 9, 9, 4, 4>(2, 5);
        check::<1, 2, 3, 8, 7, 3, 2>(2, 6);
    }

    /// Ties go to the first maximum in scan order; overlapping windows that share
    /// the same maximum accumulate into it.
    #[test]
    fn ties_route_to_the_first_maximum_and_accumulate() {
        let dev: Cpu = Default::default();
        // One 3x3 plane, K=2, S=1: four overlapping windows.
        let x: Tensor<Rank4<1, 1, 3, 3>, f64, _> =
            dev.tensor([[[[1.0, 5.0, 5.0], [5.0, 5.0, 0.0], [0.0, 2.0, 3.0]]]]);
        let y = builder::MaxPool2D::<1, 2, 1, 3, 3, 2, 2>.forward(x.leaky_trace());
        assert_eq!(y.array(), [[[[5.0, 5.0], [5.0, 5.0]]]]);
        let g = y.sum::<Rank0, _>().backward().get(&x);
        // Windows at (0,0) and (0,1) pick (0,1); (1,0) picks (1,0); (1,1) picks (1,1).
        assert_eq!(
            g.array(),
            [[[[0.0, 2.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]]
        );
        // An all-equal window (e.g. after a ReLU) sends everything to its first element.
        let z: Tensor<Rank4<1, 1, 2, 2>, f64, _> = dev.zeros();
        let y = builder::MaxPool2D::<1, 2, 2, 2, 2, 1, 1>.forward(z.leaky_trace());
        let g = y.sum::<Rank0, _>().backward().get(&z);
        assert_eq!(g.array(), [[[[1.0, 0.0], [0.0, 0.0]]]]);
    }

    /// The pooling and its gradient (f32, with ties: repeated values) on
    /// this CPU's fast path and on the portable one: the same bits.
    #[test]
    fn portable_path_matches_the_fast_path() {
        let dev: Cpu = Default::default();
        let xv: Vec<f32> = test_values(5 * 3 * 13 * 13, 6)
            .iter()
            .map(|v| (v * 8.0).round() as f32)
            .collect();
        let x = dev.tensor_from_vec(xv, (5usize, Const::<3>, Const::<13>, Const::<13>));
        let r: Tensor<(usize, Const<3>, Const<6>, Const<6>), f32, _> =
            dev.sample_normal_like(&(5, Const, Const, Const));
        let run = || {
            let pool = builder::MaxPool2D::<3, 3, 2, 13, 13, 6, 6>;
            let y = pool.forward(x.clone().leaky_trace());
            let y_vals = y.as_vec();
            let g = (y * r.clone()).sum::<Rank0, _>().backward();
            (y_vals, g.get(&x).as_vec())
        };
        assert_eq!(run(), crate::nn::kernels::simd::portable(run));
    }

    #[test]
    fn const_and_runtime_batches_and_no_tape() {
        let dev: Cpu = Default::default();
        let pool = dev.build_module::<builder::MaxPool2D<3, 2, 2, 4, 4, 2, 2>, f32>();
        assert_eq!(NumParams::<f32, Cpu>::num_trainable_params(&pool), 0);
        let x: Tensor<Rank4<2, 3, 4, 4>, f32, _> = dev.sample_normal();
        let y: Tensor<Rank4<2, 3, 2, 2>, f32, _> = pool.forward(x.clone());
        let xs = x.as_vec().iter().map(|v| *v as f64).collect::<Vec<_>>();
        let want: Vec<f32> = naive(&xs, 6, 4, 4, 2, 2)
            .iter()
            .map(|v| *v as f32)
            .collect();
        assert_eq!(y.as_vec(), want);
        let xr = x.reshape_like(&(2usize, Const::<3>, Const::<4>, Const::<4>));
        let yr = pool.forward(xr);
        assert_eq!(yr.shape().0, 2);
        assert_eq!(yr.as_vec(), want);
    }

    #[test]
    fn strided_input_view_is_pooled_logically() {
        let dev: Cpu = Default::default();
        let x: Tensor<Rank4<1, 4, 4, 2>, f64, _> = dev.sample_normal();
        let xt = x.clone().permute::<Rank4<1, 2, 4, 4>, Axes4<0, 3, 1, 2>>();
        let xc = dev.tensor_from_vec(xt.as_vec(), (Const::<1>, Const, Const, Const));
        let pool = builder::MaxPool2D::<2, 2, 2, 4, 4, 2, 2>;
        let a: Tensor<Rank4<1, 2, 2, 2>, f64, _> = pool.forward(xt);
        let b: Tensor<Rank4<1, 2, 2, 2>, f64, _> = pool.forward(xc);
        assert_eq!(a.as_vec(), b.as_vec());
    }

    #[test]
    fn in_a_tuple_model_with_relu() {
        let dev: Cpu = Default::default();
        let mut model = dev.build_module::<(ReLU, builder::MaxPool2D<1, 2, 2, 4, 4, 2, 2>), f32>();
        let x: Tensor<Rank4<1, 1, 4, 4>, f32, _> = dev.tensor([[[
            [1.0, -2.0, 3.0, 0.5],
            [-1.0, 0.0, -3.0, 4.0],
            [-5.0, -6.0, 7.0, 8.0],
            [-7.0, -8.0, 9.0, -1.0],
        ]]]);
        assert_eq!(
            model.forward(x.clone()).array(),
            [[[[1.0, 4.0], [0.0, 9.0]]]]
        );
        let grads = model.alloc_grads();
        let y = model.forward_mut(x.traced(grads));
        assert_eq!(y.array(), [[[[1.0, 4.0], [0.0, 9.0]]]]);
    }

    /// The composed (device-generic) path agrees with the CPU kernel on inputs
    /// without ties, forward and backward.
    #[test]
    fn composed_path_matches_the_cpu_kernel() {
        let dev: Cpu = Default::default();
        let values = distinct_values(2 * 3 * 9 * 8, 7);
        let r = test_values(2 * 3 * 4 * 3, 8);
        let run = |composed: bool| -> (Vec<f64>, Vec<f64>) {
            let x = input::<3, 9, 8>(&dev, 2, values.clone());
            let y = if composed {
                try_max_pool2d_composed::<_, _, _, _, 3, 3, 2, 9, 8, 4, 3>(x.leaky_trace()).unwrap()
            } else {
                builder::MaxPool2D::<3, 3, 2, 9, 8, 4, 3>.forward(x.leaky_trace())
            };
            let out = y.as_vec();
            let r_t = dev.tensor_from_vec(r.clone(), *y.shape());
            let g = (y * r_t).sum::<Rank0, _>().backward().get(&x).as_vec();
            (out, g)
        };
        let (y_fast, g_fast) = run(false);
        let (y_comp, g_comp) = run(true);
        assert_eq!(y_fast, y_comp);
        assert_close(&g_comp, &g_fast, 1e-12);
    }

    /// On ties the composed path (dfdx `max` backward) gives the full gradient to
    /// every tied element; the CPU kernel gives it to the first.
    #[test]
    fn composed_path_tie_rule_differs_as_documented() {
        let dev: Cpu = Default::default();
        let x: Tensor<(usize, Const<1>, Const<2>, Const<2>), f64, _> =
            dev.tensor_from_vec(vec![3.0, 3.0, 1.0, 3.0], (1, Const, Const, Const));
        let y =
            try_max_pool2d_composed::<_, _, _, _, 1, 2, 2, 2, 2, 1, 1>(x.leaky_trace()).unwrap();
        let g = y.sum::<Rank0, _>().backward().get(&x).as_vec();
        assert_eq!(g, [1.0, 1.0, 0.0, 1.0]);
        let y = builder::MaxPool2D::<1, 2, 2, 2, 2, 1, 1>.forward(x.leaky_trace());
        let g = y.sum::<Rank0, _>().backward().get(&x).as_vec();
        assert_eq!(g, [1.0, 0.0, 0.0, 0.0]);
    }
}
