//! `ConvBlock`: convolution -> ReLU -> max pooling as one fused op, the block
//! every CNN of the study is built from (`conv<32, 3>, relu, maxpool<2>`).
//!
//! The `network!` macro emits it for each `conv, relu[, maxpool]` run; the
//! result equals the three separate layers (`Conv2D`, `ReLU`, `MaxPool2D`)
//! exactly, values and gradients (tested below), but the Cpu kernel applies
//! the ReLU and the pooling to each image's convolution output while it is in
//! cache, keeps one byte per output for the backward pass, and never
//! materialises the full-size intermediate tensors or their gradients. See
//! [`super::conv2d::Fusion`].
//!
//! The first layer of a network sets `INPUT_GRAD = false`: its input is the
//! data, whose gradient nothing reads, so the backward pass skips it.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::conv_block`.

use dfdx::nn::modules::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule};
use dfdx::prelude::{Device, Dim, HasShape, OwnedTape, Rank0, Rank1, Rank4, Tape, Tensor};
use dfdx::shapes::Dtype;
use rand::distributions::uniform::SampleUniform;

use super::conv2d::{glorot_uniform, Conv2D as Conv, Conv2DKernel, Conv2DOp, Fusion, Images};
use super::l2::{one_regularizer, try_l2_term, L2Penalty, Regularizer, Regularizers};

pub mod builder {
    /// `conv -> relu -> maxpool` (NCHW) as one layer, built by
    /// `dev.build_module::<ConvBlock<..>, f32>()`.
    ///
    /// Generics:
    /// - `IN_CHAN` .. `W_CONV`: the convolution, as in
    ///   [`Conv2D`](crate::nn::builders::Conv2D) (`H_CONV`/`W_CONV` its output size).
    /// - `POOL`, `POOL_STRIDE`: the max-pooling window and step (`1, 1`: no
    ///   pooling, just conv -> relu); `H_OUT`/`W_OUT` the pooled size, floored
    ///   as Keras does.
    /// - `L2`: the kernel's L2 factor as `f32` bits (0: none).
    /// - `INPUT_GRAD`: compute the input's gradient (false for a first layer).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct ConvBlock<
        const IN_CHAN: usize,
        const OUT_CHAN: usize,
        const KERNEL_H: usize,
        const KERNEL_W: usize,
        const STRIDE_H: usize,
        const STRIDE_W: usize,
        const PAD_H: usize,
        const PAD_W: usize,
        const H_IN: usize,
        const W_IN: usize,
        const H_CONV: usize,
        const W_CONV: usize,
        const POOL: usize,
        const POOL_STRIDE: usize,
        const H_OUT: usize,
        const W_OUT: usize,
        const L2: u32 = 0,
        const INPUT_GRAD: bool = true,
    >;
}

/// A built conv -> relu -> maxpool block: `weight [O, I, KH, KW]`, `bias [O]`,
/// named and initialised as [`Conv2D`](super::modules::Conv2D)'s.
///
/// Generics as [`builder::ConvBlock`], abbreviated; `E` the dtype, `D` the device.
///
/// # Shapes
/// `[B, I, H, W] -> [B, O, PHO, PWO]` for any batch `B: Dim`.
#[derive(Debug, Clone)]
pub struct ConvBlock<
    const I: usize,
    const O: usize,
    const KH: usize,
    const KW: usize,
    const SH: usize,
    const SW: usize,
    const PH: usize,
    const PW: usize,
    const H: usize,
    const W: usize,
    const HO: usize,
    const WO: usize,
    const PK: usize,
    const PS: usize,
    const PHO: usize,
    const PWO: usize,
    const L2: u32,
    const GI: bool,
    E: Dtype,
    D: dfdx::tensor::Storage<E>,
> {
    /// The kernel, `[out_channels, in_channels, KH, KW]` (Glorot uniform at build).
    pub weight: Tensor<Rank4<O, I, KH, KW>, E, D>,
    /// The bias, one per output channel (zeros at build).
    pub bias: Tensor<Rank1<O>, E, D>,
    /// The kernel's L2 factor λ, `L2` unless changed at run time (0: none).
    pub l2: f32,
}

/// Writes the block's sixteen const generics once for every impl:
/// `block_impl!([E: Dtype, D: Device<E>] Trait for Type { .. })`.
macro_rules! block_impl {
    ([$($extra:tt)*] $($rest:tt)*) => {
        impl<
                const I: usize,
                const O: usize,
                const KH: usize,
                const KW: usize,
                const SH: usize,
                const SW: usize,
                const PH: usize,
                const PW: usize,
                const H: usize,
                const W: usize,
                const HO: usize,
                const WO: usize,
                const PK: usize,
                const PS: usize,
                const PHO: usize,
                const PWO: usize,
                const L2: u32,
                const GI: bool,
                $($extra)*
            > $($rest)*
    };
}

/// The built block's type with the generics of [`block_impl`].
macro_rules! block {
    ($E:ty, $D:ty) => {
        ConvBlock<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, PK, PS, PHO, PWO, L2, GI, $E, $D>
    };
}

block_impl!([E: Dtype, D: dfdx::tensor::Storage<E>] NonMutableModule for block!(E, D) {});

block_impl!([E: Dtype, D: dfdx::tensor::Storage<E>] block!(E, D) {
    /// Fails the build when the sizes disagree: the convolution's checks
    /// (`Conv2D`'s), then the pooling's.
    pub(super) const SIZES_OK: () = {
        #[allow(clippy::let_unit_value)]
        let () = Conv::<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, L2, E, D>::SIZES_OK;
        assert!(
            PK >= 1
                && PS >= 1
                && PK * PK < 255
                && HO >= PK
                && WO >= PK
                && PHO == (HO - PK) / PS + 1
                && PWO == (WO - PK) / PS + 1,
            "ConvBlock: inconsistent pooling sizes; need \
             out = floor((conv_out - POOL) / POOL_STRIDE) + 1 with POOL < 16"
        )
    };

    pub(super) fn op(batch: usize) -> (Conv2DOp, Fusion) {
        let op = Conv::<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, L2, E, D>::op(batch);
        let fusion = Fusion {
            relu: true,
            pool_k: PK,
            pool_s: PS,
            h_out: PHO,
            w_out: PWO,
            input_grad: GI,
        };
        (op, fusion)
    }
});

block_impl!([E: Dtype + SampleUniform, D: Device<E>] BuildOnDevice<D, E>
    for builder::ConvBlock<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, PK, PS, PHO, PWO, L2, GI>
{
    type Built = block!(E, D);
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        #[allow(clippy::let_unit_value)]
        let () = Self::Built::SIZES_OK;
        Self::Built::try_build(device)
    }
});

block_impl!([E: Dtype + SampleUniform, D: Device<E>] TensorCollection<E, D> for block!(E, D) {
    type To<E2: Dtype, D2: Device<E2>> = block!(E2, D2);

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visit_weight_and_bias!(visitor, ConvBlock, glorot_uniform, true, L2)
    }
});

block_impl!([B: Dim, E: Dtype, D: Conv2DKernel<E>, T: Tape<E, D>]
    Module<Images<B, I, H, W, E, D, T>> for block!(E, D)
{
    type Output = Images<B, O, PHO, PWO, E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Images<B, I, H, W, E, D, T>) -> Result<Self::Output, D::Err> {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        let (op, fusion) = Self::op(x.shape().0.size());
        D::try_conv2d::<B, T, I, O, KH, KW, H, W, HO, WO, PK, PS, PHO, PWO>(
            op,
            fusion,
            x,
            &self.weight,
            &self.bias,
        )
    }
});

block_impl!([E: Dtype, D: Device<E>] L2Penalty<E, D> for block!(E, D) {
    /// λ·Σw² over the kernel (never the bias), `None` when λ is 0.
    fn try_l2_penalty(&self) -> Result<Option<Tensor<Rank0, E, D, OwnedTape<E, D>>>, D::Err> {
        try_l2_term(&self.weight, self.l2)
    }
});

block_impl!([E: Dtype, D: dfdx::tensor::Storage<E>] Regularizers for block!(E, D) {
    one_regularizer!(Regularizer::ConvL2, l2);
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::builders;
    use crate::nn::kernels::simd;
    use crate::tests::{assert_close, test_values};
    use dfdx::prelude::*;

    /// The block against the three separate layers it replaces (f64, Cpu):
    /// the same outputs and the same gradients of weight, bias and (when
    /// `INPUT_GRAD`) input; and the composed (Cuda) path against both.
    fn check<
        const I: usize,
        const O: usize,
        const KH: usize,
        const KW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
        const H: usize,
        const W: usize,
        const HO: usize,
        const WO: usize,
        const PK: usize,
        const PS: usize,
        const PHO: usize,
        const PWO: usize,
        const GI: bool,
    >(
        batch: usize,
    ) {
        let dev: Cpu = Cpu::seed_from_u64(0);
        let mut block = dev.build_module::<builder::ConvBlock<
            I,
            O,
            KH,
            KW,
            SH,
            SW,
            PH,
            PW,
            H,
            W,
            HO,
            WO,
            PK,
            PS,
            PHO,
            PWO,
            0,
            GI,
        >, f64>();
        let mut chain = dev.build_module::<(
            builders::Conv2D<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO>,
            builders::ReLU,
            builders::MaxPool2D<O, PK, PS, HO, WO, PHO, PWO>,
        ), f64>();
        block.weight = dev.tensor_from_vec(test_values(O * I * KH * KW, 1), Default::default());
        // A negative bias, so that some whole windows are cut by the ReLU.
        let bias = test_values(O, 2).iter().map(|b| b - 2.0).collect();
        block.bias = dev.tensor_from_vec(bias, Default::default());
        chain.0.weight = block.weight.clone();
        chain.0.bias = block.bias.clone();
        let x_shape = (batch, Const::<I>, Const::<H>, Const::<W>);
        let x = dev.tensor_from_vec(test_values(batch * I * H * W, 3), x_shape);
        let r = dev.tensor_from_vec(
            test_values(batch * O * PHO * PWO, 4),
            (batch, Const::<O>, Const::<PHO>, Const::<PWO>),
        );

        let y = block.forward(x.clone());
        let want = chain.forward(x.clone());
        assert_close(&y.as_vec(), &want.as_vec(), 0.0);
        assert!(y.as_vec().contains(&0.0), "the ReLU cut nothing");

        let g = (block.forward(x.clone().traced(Gradients::leaky())) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let g_want = (chain.forward(x.clone().traced(Gradients::leaky())) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let tol = 1e-12;
        assert_close(
            &g.get(&block.weight).as_vec(),
            &g_want.get(&chain.0.weight).as_vec(),
            tol,
        );
        assert_close(
            &g.get(&block.bias).as_vec(),
            &g_want.get(&chain.0.bias).as_vec(),
            tol,
        );
        if GI {
            assert_close(&g.get(&x).as_vec(), &g_want.get(&x).as_vec(), tol);
        }

        let (op, fusion) = ConvBlock::<
            I,
            O,
            KH,
            KW,
            SH,
            SW,
            PH,
            PW,
            H,
            W,
            HO,
            WO,
            PK,
            PS,
            PHO,
            PWO,
            0,
            GI,
            f64,
            Cpu,
        >::op(batch);
        let y_c = crate::nn::kernels::conv2d::try_conv2d_fused_composed::<
            f64,
            usize,
            _,
            Cpu,
            I,
            O,
            KH,
            KW,
            H,
            W,
            HO,
            WO,
            PK,
            PS,
            PHO,
            PWO,
        >(op, fusion, x.clone(), &block.weight, &block.bias)
        .unwrap();
        assert_close(&y_c.as_vec(), &want.as_vec(), 1e-12);
    }

    #[test]
    fn matches_conv_relu_pool_im2col_path() {
        check::<1, 4, 3, 3, 1, 1, 0, 0, 28, 28, 26, 26, 2, 2, 13, 13, true>(2); // CNN3a's conv1, one image per gemm
        check::<1, 4, 3, 3, 1, 1, 0, 0, 28, 28, 26, 26, 2, 2, 13, 13, false>(3); // as a first layer
        check::<2, 3, 3, 3, 2, 2, 1, 1, 9, 8, 5, 4, 2, 2, 2, 2, true>(3); // strided, padded, odd floor
        check::<3, 2, 2, 2, 1, 1, 0, 0, 7, 7, 7, 7, 3, 2, 3, 3, true>(2); // overlapping windows, same K 2
        check::<2, 3, 3, 5, 1, 2, 1, 2, 8, 9, 8, 5, 2, 2, 4, 2, true>(2); // 3x5 kernel, strides (1, 2), same
    }

    #[test]
    fn matches_conv_relu_pool_direct_backward() {
        // one input channel, a first layer, 2x2 pools, 8k filters: the backward of `direct.rs`
        check::<1, 8, 3, 3, 1, 1, 0, 0, 28, 28, 26, 26, 2, 2, 13, 13, false>(3); // CNN3a's conv1
        check::<1, 16, 3, 3, 1, 1, 1, 1, 28, 28, 28, 28, 2, 2, 14, 14, false>(2); // CNN4a's, same
        check::<1, 8, 3, 3, 1, 1, 1, 1, 9, 8, 9, 8, 2, 2, 4, 4, false>(17); // odd floors, 2 tasks
    }

    #[test]
    fn matches_conv_relu_pool_winograd_path() {
        check::<8, 5, 3, 3, 1, 1, 0, 0, 13, 13, 11, 11, 2, 2, 5, 5, true>(3); // CNN3a's conv2 shape, floor 11 -> 5
        check::<9, 4, 3, 3, 1, 1, 1, 1, 7, 6, 7, 6, 2, 2, 3, 3, true>(2); // Keras same, partial tiles
        check::<8, 3, 3, 3, 1, 1, 1, 1, 6, 6, 6, 6, 3, 1, 4, 4, true>(2); // overlapping, stride 1
    }

    #[test]
    fn relu_only_without_pooling() {
        check::<2, 3, 3, 3, 1, 1, 1, 1, 6, 5, 6, 5, 1, 1, 6, 5, true>(2);
        check::<8, 3, 3, 3, 1, 1, 0, 0, 6, 6, 4, 4, 1, 1, 4, 4, true>(2);
    }

    #[test]
    fn large_batches_split_into_groups_match_single_images() {
        // 150 images: tasks of 10, Winograd groups of 8 + 2.
        type Block = builder::ConvBlock<8, 3, 3, 3, 1, 1, 1, 1, 6, 6, 6, 6, 2, 2, 3, 3, 0, true>;
        let dev: Cpu = Cpu::seed_from_u64(3);
        let m = dev.build_module::<Block, f64>();
        let (n, in_len, out_len) = (150, 8 * 36, 3 * 9);
        let xv = test_values(n * in_len, 7);
        let rv = test_values(n * out_len, 8);
        let run = |lo: usize, hi: usize| {
            let b = hi - lo;
            let x = dev.tensor_from_vec(
                xv[lo * in_len..hi * in_len].to_vec(),
                (b, Const::<8>, Const::<6>, Const::<6>),
            );
            let r = dev.tensor_from_vec(
                rv[lo * out_len..hi * out_len].to_vec(),
                (b, Const::<3>, Const::<3>, Const::<3>),
            );
            let y = m.forward(x.clone().traced(Gradients::leaky()));
            let y_vals = y.as_vec();
            let g = (y * r).sum::<Rank0, _>().backward();
            (y_vals, g.get(&x).as_vec(), g.get(&m.weight).as_vec())
        };
        let (y, gx, gw) = run(0, n);
        let mut gw_sum = vec![0.0; gw.len()];
        for i in 0..n {
            let (y1, gx1, gw1) = run(i, i + 1);
            assert_close(&y[i * out_len..(i + 1) * out_len], &y1, 1e-12);
            assert_close(&gx[i * in_len..(i + 1) * in_len], &gx1, 1e-12);
            gw_sum.iter_mut().zip(&gw1).for_each(|(s, g)| *s += g);
        }
        assert_close(&gw, &gw_sum, 1e-10);
    }

    /// The block's output and gradients (f32) on this CPU's fast path and on
    /// the portable one (`simd::portable`, as on a CPU without AVX2): the
    /// same bits, except the weight gradient of the first layer's direct
    /// backward, whose multiply-adds are fused on the fast path only (one
    /// rounding instead of two per term): over sums of 19·676 terms they
    /// differ by ~6e-5 relative to the largest gradient, inside the 1e-4
    /// that `direct.rs` promises against the im2col path.
    fn portable_matches<
        const I: usize,
        const O: usize,
        const S: usize,
        const P: usize,
        const H: usize,
        const HO: usize,
        const PK: usize,
        const PHO: usize,
        const GI: bool,
    >(
        batch: usize,
    ) {
        type Block<
            const I: usize,
            const O: usize,
            const S: usize,
            const P: usize,
            const H: usize,
            const HO: usize,
            const PK: usize,
            const PHO: usize,
            const GI: bool,
        > = builder::ConvBlock<I, O, 3, 3, S, S, P, P, H, H, HO, HO, PK, PK, PHO, PHO, 0, GI>;
        let dev: Cpu = Cpu::seed_from_u64(0);
        let mut m = dev.build_module::<Block<I, O, S, P, H, HO, PK, PHO, GI>, f32>();
        let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        m.weight = dev.tensor_from_vec(f32s(test_values(O * I * 9, 1)), Default::default());
        let bias = test_values(O, 2).iter().map(|b| (b - 1.0) as f32).collect();
        m.bias = dev.tensor_from_vec(bias, Default::default());
        let x = dev.tensor_from_vec(
            f32s(test_values(batch * I * H * H, 3)),
            (batch, Const::<I>, Const::<H>, Const::<H>),
        );
        let r = dev.tensor_from_vec(
            f32s(test_values(batch * O * PHO * PHO, 4)),
            (batch, Const::<O>, Const::<PHO>, Const::<PHO>),
        );
        let run = || {
            let y = m.forward(x.clone()).as_vec();
            let g = (m.forward(x.clone().traced(Gradients::leaky())) * r.clone())
                .sum::<Rank0, _>()
                .backward();
            let gx = if GI { g.get(&x).as_vec() } else { Vec::new() };
            (y, g.get(&m.weight).as_vec(), g.get(&m.bias).as_vec(), gx)
        };
        let (y, gw, gb, gx) = run();
        let (y_p, gw_p, gb_p, gx_p) = simd::portable(run);
        assert_eq!(y, y_p, "output");
        assert_eq!(gb, gb_p, "bias gradient");
        assert_eq!(gx, gx_p, "input gradient");
        if GI || I != 1 {
            assert_eq!(gw, gw_p, "weight gradient");
        } else {
            assert_close(&gw, &gw_p, 1e-4); // `direct.rs`: fused multiply-adds
        }
    }

    #[test]
    fn portable_path_matches_the_fast_path() {
        portable_matches::<1, 32, 1, 0, 28, 26, 2, 13, false>(19); // CNN3a's conv1: direct
        portable_matches::<1, 4, 1, 0, 28, 26, 2, 13, true>(3); // im2col
        portable_matches::<2, 3, 2, 1, 9, 5, 2, 2, true>(3); // im2col, strided
        portable_matches::<32, 64, 1, 0, 13, 11, 2, 5, true>(19); // CNN3a's conv2: Winograd, pooled per tile
        portable_matches::<64, 64, 1, 1, 7, 7, 2, 3, true>(9); // CNN4a's conv3
        portable_matches::<8, 3, 1, 0, 6, 4, 1, 4, true>(2); // Winograd, ReLU only
        portable_matches::<8, 3, 1, 1, 6, 6, 3, 2, true>(2); // Winograd, 3x3/3 pools
    }

    #[test]
    fn first_layer_computes_no_input_gradient() {
        let dev: Cpu = Cpu::seed_from_u64(0);
        let m = dev.build_module::<builder::ConvBlock<1, 2, 3, 3, 1, 1, 0, 0, 6, 6, 4, 4, 2, 2, 2, 2, 0, false>, f64>();
        let x: Tensor<Rank4<2, 1, 6, 6>, f64, Cpu> =
            dev.tensor_from_vec(test_values(72, 5), Default::default());
        let g = m
            .forward(x.clone().traced(m.alloc_grads()))
            .sum::<Rank0, _>()
            .backward();
        let lookup = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.get(&x)));
        assert!(lookup.is_err(), "the input got a gradient");
        assert_eq!(m.num_trainable_params(), 2 * 9 + 2);
    }
}
