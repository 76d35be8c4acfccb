//! `ConvBnBlock`: convolution (no bias) -> batchnorm -> ReLU [-> max
//! pooling] as one layer, the block of networks that normalise each
//! convolution (`conv<32, 3, bias = false>, batchnorm, relu, maxpool<2>`).
//!
//! The `network!` macro emits it for each such run, as it emits
//! [`ConvBlock`](super::modules::ConvBlock) for `conv, relu[, maxpool]`; a
//! convolution with a bias before `batchnorm` stays unfused. The block
//! computes the same function as the separate layers (`Conv2D`, `BatchNorm`,
//! `ReLU`, `MaxPool2D`; tested below), with fewer passes and tensors:
//! - training (`forward_mut`): the convolution writes its output (batchnorm
//!   needs the whole batch's statistics before it can normalise any of it),
//!   then one op normalises, applies the ReLU and pools it
//!   ([`BatchNormKernel::try_batch_norm_relu_pool_train`]), keeping one byte
//!   per output for the backward pass; a first layer computes no input
//!   gradient;
//! - evaluation (`forward`): batchnorm with the moving statistics is an
//!   affine map per channel, folded into the kernel and a bias
//!   (`w·γ/σ`, `β - μ·γ/σ`), so the block is one fused `ConvBlock` pass.
//!
//! Parameters, named as the separate layers name theirs: `weight` (Glorot
//! uniform), `gamma` (ones), `beta` (zeros), and the non-trainable
//! `moving_mean` (zeros) and `moving_variance` (ones).
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::conv_bn_block`.

use dfdx::nn::modules::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, ModuleMut};
use dfdx::prelude::{
    Axes3, BroadcastTo, Const, Device, Dim, HasShape, NoneTape, OwnedTape, Rank0, Rank1, Rank4,
    Tensor, TryAdd, TryDiv, TryMul, TrySub,
};
use dfdx::shapes::Dtype;
use rand::distributions::uniform::SampleUniform;

use super::batch_norm::{BatchNorm, BatchNormKernel, Normalized};
use super::conv2d::{glorot_uniform, Conv2DKernel, Conv2DOp, Fusion, Images};
use super::conv_block::ConvBlock;
use super::l2::{one_regularizer, try_l2_term, L2Penalty, Regularizer, Regularizers};

pub mod builder {
    /// `conv (no bias) -> batchnorm -> relu -> maxpool` (NCHW) as one layer,
    /// built by `dev.build_module::<ConvBnBlock<..>, f32>()`.
    ///
    /// Generics: `IN_CHAN` .. `INPUT_GRAD` as
    /// [`ConvBlock`](crate::nn::builders::ConvBlock)'s (`POOL = POOL_STRIDE
    /// = 1`: no pooling); `MOMENTUM`, `EPSILON` as
    /// [`BatchNorm`](crate::nn::builders::BatchNorm)'s (`f32` bits, Keras'
    /// 0.99 and 1e-3 by default).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct ConvBnBlock<
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
        const MOMENTUM: u32 = 0x3F7D70A4,
        const EPSILON: u32 = 0x3A83126F,
    >;
}

/// A built conv -> batchnorm -> relu -> maxpool block (see the module docs).
///
/// Generics as [`builder::ConvBnBlock`], abbreviated; `E` the dtype, `D` the device.
///
/// # Shapes
/// `[B, I, H, W] -> [B, O, PHO, PWO]` for any batch `B: Dim`.
#[derive(Debug, Clone)]
pub struct ConvBnBlock<
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
    const M: u32,
    const EPS: u32,
    E: Dtype,
    D: dfdx::tensor::Storage<E>,
> {
    /// The kernel, `[out_channels, in_channels, KH, KW]` (Glorot uniform at build).
    pub weight: Tensor<Rank4<O, I, KH, KW>, E, D>,
    /// Batchnorm's scale per channel, trainable, ones.
    pub gamma: Tensor<Rank1<O>, E, D>,
    /// Batchnorm's offset per channel, trainable, zeros.
    pub beta: Tensor<Rank1<O>, E, D>,
    /// The moving mean per channel, not trainable, zeros.
    pub moving_mean: Tensor<Rank1<O>, E, D>,
    /// The moving (biased) variance per channel, not trainable, ones.
    pub moving_variance: Tensor<Rank1<O>, E, D>,
    /// The kernel's L2 factor λ, `L2` unless changed at run time (0: none).
    pub l2: f32,
}

/// Writes the block's twenty const generics once for every impl.
macro_rules! bn_block_impl {
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
                const M: u32,
                const EPS: u32,
                $($extra)*
            > $($rest)*
    };
}

/// The built block's type with the generics of [`bn_block_impl`].
macro_rules! bn_block {
    ($E:ty, $D:ty) => {
        ConvBnBlock<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, PK, PS, PHO, PWO, L2, GI, M, EPS, $E, $D>
    };
}

/// The `ConvBlock` with the same convolution and pooling, whose size checks
/// and ops this block reuses.
macro_rules! same_block {
    ($E:ty, $D:ty) => {
        ConvBlock<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, PK, PS, PHO, PWO, L2, GI, $E, $D>
    };
}

/// The block's training pass per device: convolution (no bias), batchnorm
/// with the batch statistics, ReLU, max pooling (`PK`, `PS`; `1, 1`: none).
pub trait ConvBnKernel<E: Dtype>: Conv2DKernel<E> + BatchNormKernel<E> {
    /// `y = maxpool(relu(batchnorm(conv(x, weight))))`, recording the
    /// backward op (into `x` when `input_grad`, `weight`, `gamma`, `beta`)
    /// on `x`'s tape; also returns the batch statistics.
    ///
    /// # Shapes
    /// `x: [B, I, H, W]`, `weight: [O, I, KH, KW]` -> `[B, O, PHO, PWO]`
    /// (the convolution's output `[B, O, HO, WO]` pooled, Keras' floor).
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn try_conv_bn_train<
        B: Dim,
        const I: usize,
        const O: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const HO: usize,
        const WO: usize,
        const PK: usize,
        const PS: usize,
        const PHO: usize,
        const PWO: usize,
    >(
        op: Conv2DOp,
        input_grad: bool,
        x: Images<B, I, H, W, E, Self, OwnedTape<E, Self>>,
        weight: &Tensor<Rank4<O, I, KH, KW>, E, Self>,
        gamma: &Tensor<Rank1<O>, E, Self>,
        beta: &Tensor<Rank1<O>, E, Self>,
        epsilon: f32,
    ) -> Result<Normalized<(B, Const<O>, Const<PHO>, Const<PWO>), O, E, Self>, Self::Err>;
}

bn_block_impl!([E: Dtype, D: dfdx::tensor::Storage<E>] bn_block!(E, D) {
    /// Fails the build when the sizes disagree ([`ConvBlock`]'s checks) or
    /// the momentum or epsilon is out of range ([`BatchNorm`]'s).
    const SIZES_OK: () = {
        #[allow(clippy::let_unit_value)]
        let () = <same_block!(E, D)>::SIZES_OK;
        let _ = BatchNorm::<O, E, D, M, EPS>::MOMENTUM;
        let _ = BatchNorm::<O, E, D, M, EPS>::EPSILON;
    };
});

bn_block_impl!([E: Dtype + SampleUniform, D: Device<E>] BuildOnDevice<D, E>
    for builder::ConvBnBlock<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, PK, PS, PHO, PWO, L2, GI, M, EPS>
{
    type Built = bn_block!(E, D);
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        #[allow(clippy::let_unit_value)]
        let () = Self::Built::SIZES_OK;
        Self::Built::try_build(device)
    }
});

bn_block_impl!([E: Dtype + SampleUniform, D: Device<E>] TensorCollection<E, D> for bn_block!(E, D) {
    type To<E2: Dtype, D2: Device<E2>> = bn_block!(E2, D2);

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let ones = || TensorOptions::reset_with(|t: &mut Tensor<Rank1<O>, E, D>| t.try_fill_with_ones());
        let frozen = |mut options: TensorOptions<Rank1<O>, E, D>| {
            options.do_gradient_update = false; // the optimizers skip it
            options
        };
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(glorot_uniform),
                ),
                Self::tensor("gamma", |s| &s.gamma, |s| &mut s.gamma, ones()),
                Self::tensor("beta", |s| &s.beta, |s| &mut s.beta, TensorOptions::reset_to_zeros()),
                Self::tensor(
                    "moving_mean",
                    |s| &s.moving_mean,
                    |s| &mut s.moving_mean,
                    frozen(TensorOptions::reset_to_zeros()),
                ),
                Self::tensor(
                    "moving_variance",
                    |s| &s.moving_variance,
                    |s| &mut s.moving_variance,
                    frozen(ones()),
                ),
            ),
            |(weight, gamma, beta, moving_mean, moving_variance)| ConvBnBlock {
                weight,
                gamma,
                beta,
                moving_mean,
                moving_variance,
                l2: f32::from_bits(L2),
            },
        )
    }
});

bn_block_impl!([E: Dtype, D: Device<E>] bn_block!(E, D) {
    /// The convolution's op and the fused pooling of evaluation.
    fn op(batch: usize) -> (Conv2DOp, Fusion) {
        <same_block!(E, D)>::op(batch)
    }

    /// Batchnorm with the moving statistics folded into the convolution:
    /// the kernel scaled by `γ/σ` per output channel, and the bias `β - μ·γ/σ`.
    #[allow(clippy::type_complexity)]
    fn folded(&self) -> Result<(Tensor<Rank4<O, I, KH, KW>, E, D>, Tensor<Rank1<O>, E, D>), D::Err> {
        let eps = E::from_f32(BatchNorm::<O, E, D, M, EPS>::EPSILON).unwrap_or_default();
        let std = self.moving_variance.clone().try_add(eps)?.try_sqrt()?;
        let scale = self.gamma.clone().try_div(std)?; // [O]
        let shift = self.beta.clone().try_sub(self.moving_mean.clone().try_mul(scale.clone())?)?;
        let weight = self
            .weight
            .clone()
            .try_mul(scale.try_broadcast::<Rank4<O, I, KH, KW>, Axes3<1, 2, 3>>()?)?;
        Ok((weight, shift))
    }
});

// Evaluation: one fused convolution with batchnorm folded in.
bn_block_impl!([B: Dim, E: Dtype, D: ConvBnKernel<E>]
    Module<Images<B, I, H, W, E, D, NoneTape>> for bn_block!(E, D)
{
    type Output = Images<B, O, PHO, PWO, E, D, NoneTape>;
    type Error = D::Err;

    fn try_forward(&self, x: Images<B, I, H, W, E, D, NoneTape>) -> Result<Self::Output, D::Err> {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        let (op, fusion) = Self::op(x.shape().0.size());
        let (weight, bias) = self.folded()?;
        D::try_conv2d::<B, NoneTape, I, O, KH, KW, H, W, HO, WO, PK, PS, PHO, PWO>(
            op, fusion, x, &weight, &bias,
        )
    }
});

// Training: the device's fused op; updates the moving statistics.
bn_block_impl!([B: Dim, E: Dtype, D: ConvBnKernel<E>]
    ModuleMut<Images<B, I, H, W, E, D, OwnedTape<E, D>>> for bn_block!(E, D)
{
    type Output = Images<B, O, PHO, PWO, E, D, OwnedTape<E, D>>;
    type Error = D::Err;

    fn try_forward_mut(
        &mut self,
        x: Images<B, I, H, W, E, D, OwnedTape<E, D>>,
    ) -> Result<Self::Output, D::Err> {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        let (op, _) = Self::op(x.shape().0.size());
        let (y, stats) = D::try_conv_bn_train::<B, I, O, KH, KW, H, W, HO, WO, PK, PS, PHO, PWO>(
            op,
            GI,
            x,
            &self.weight,
            &self.gamma,
            &self.beta,
            BatchNorm::<O, E, D, M, EPS>::EPSILON,
        )?;
        stats.try_update(
            &mut self.moving_mean,
            &mut self.moving_variance,
            BatchNorm::<O, E, D, M, EPS>::MOMENTUM,
        )?;
        Ok(y)
    }
});

bn_block_impl!([E: Dtype, D: Device<E>] L2Penalty<E, D> for bn_block!(E, D) {
    /// λ·Σw² over the kernel, `None` when λ is 0.
    fn try_l2_penalty(&self) -> Result<Option<Tensor<Rank0, E, D, OwnedTape<E, D>>>, D::Err> {
        try_l2_term(&self.weight, self.l2)
    }
});

bn_block_impl!([E: Dtype, D: dfdx::tensor::Storage<E>] Regularizers for bn_block!(E, D) {
    one_regularizer!(Regularizer::ConvL2, l2);
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::conv_bn::{try_conv_bn_train_composed, try_conv_bn_train_cpu};
    use crate::nn::{builders, f32_bits};
    use crate::tests::{assert_close, test_values};
    use dfdx::prelude::*;

    /// The block against the four separate layers it replaces (f64, Cpu):
    /// training outputs, gradients of weight, gamma, beta and (when
    /// `INPUT_GRAD`) input, the moving statistics after two steps, and the
    /// evaluation outputs with them.
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
        const MOM: u32 = f32_bits(0.8);
        const EPS: u32 = f32_bits(1e-3);
        let dev: Cpu = Cpu::seed_from_u64(0);
        let mut block = dev.build_module::<builder::ConvBnBlock<
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
            MOM,
            EPS,
        >, f64>();
        let mut chain = dev.build_module::<(
            builders::Conv2D<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, 0, false>,
            builders::BatchNorm<O, MOM, EPS>,
            builders::ReLU,
            builders::MaxPool2D<O, PK, PS, HO, WO, PHO, PWO>,
        ), f64>();
        block.weight = dev.tensor_from_vec(test_values(O * I * KH * KW, 1), Default::default());
        block.gamma = dev.tensor_from_vec(test_values(O, 5), Default::default());
        // A negative offset, so that the ReLU cuts whole windows.
        let beta = test_values(O, 6).iter().map(|b| b - 0.5).collect();
        block.beta = dev.tensor_from_vec(beta, Default::default());
        chain.0.weight = block.weight.clone();
        chain.1.gamma = block.gamma.clone();
        chain.1.beta = block.beta.clone();
        let x_shape = (batch, Const::<I>, Const::<H>, Const::<W>);
        let xv = test_values(batch * I * H * W, 3);
        let x = dev.tensor_from_vec(xv.clone(), x_shape);
        let out = (batch, Const::<O>, Const::<PHO>, Const::<PWO>);
        let r = dev.tensor_from_vec(test_values(batch * O * PHO * PWO, 4), out);

        let tol = 1e-12;
        let y = block.forward_mut(x.clone().traced(Gradients::leaky()));
        let want = chain.forward_mut(x.clone().traced(Gradients::leaky()));
        assert_close(&y.as_vec(), &want.as_vec(), tol);
        assert!(y.as_vec().contains(&0.0), "the ReLU cut nothing");
        let g = (y * r.clone()).sum::<Rank0, _>().backward();
        let g_want = (want * r.clone()).sum::<Rank0, _>().backward();
        let pairs = [
            (
                g.get(&block.weight).as_vec(),
                g_want.get(&chain.0.weight).as_vec(),
            ),
            (
                g.get(&block.gamma).as_vec(),
                g_want.get(&chain.1.gamma).as_vec(),
            ),
            (
                g.get(&block.beta).as_vec(),
                g_want.get(&chain.1.beta).as_vec(),
            ),
        ];
        for (got, want) in pairs {
            assert_close(&got, &want, 1e-10);
        }
        if GI {
            assert_close(&g.get(&x).as_vec(), &g_want.get(&x).as_vec(), 1e-10);
        }
        // A second step on other data; then the moving statistics and evaluation.
        let x2 = dev.tensor_from_vec(xv.iter().map(|v| v * v - 0.25).collect(), x_shape);
        let _ = block.forward_mut(x2.clone().traced(Gradients::leaky()));
        let _ = chain.forward_mut(x2.traced(Gradients::leaky()));
        assert_close(
            &block.moving_mean.as_vec(),
            &chain.1.moving_mean.as_vec(),
            tol,
        );
        assert_close(
            &block.moving_variance.as_vec(),
            &chain.1.moving_variance.as_vec(),
            tol,
        );
        let e = block.forward(x.clone()).as_vec();
        assert_close(&e, &chain.forward(x.clone()).as_vec(), 1e-10);
        assert!(e.contains(&0.0) && e.iter().any(|&v| v > 0.0));

        // The composed (Cuda) op on Cpu: the same values and gradients.
        let (op, _) = ConvBlock::<
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
        let run = |composed: bool| {
            let xt = x.leaky_trace();
            let (w, g, b) = (&block.weight, &block.gamma, &block.beta);
            let (y, stats) = if composed {
                try_conv_bn_train_composed::<
                    f64,
                    Cpu,
                    usize,
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
                >(op, GI, xt, w, g, b, 1e-3)
            } else {
                try_conv_bn_train_cpu::<f64, usize, I, O, KH, KW, H, W, HO, WO, PK, PS, PHO, PWO>(
                    op, GI, xt, w, g, b, 1e-3,
                )
            }
            .unwrap();
            let y_v = y.as_vec();
            let grads = (y * r.clone()).sum::<Rank0, _>().backward();
            let mut v = vec![y_v, stats.mean.as_vec(), stats.variance.as_vec()];
            v.push(grads.get(w).as_vec());
            v.push(grads.get(g).as_vec());
            v.push(grads.get(b).as_vec());
            if GI {
                v.push(grads.get(&x).as_vec());
            }
            v
        };
        for (fused, composed) in run(false).iter().zip(run(true)) {
            assert_close(fused, &composed, 1e-10);
        }
    }

    #[test]
    fn first_layer_pooled_2x2() {
        check::<1, 4, 3, 3, 1, 1, 1, 1, 8, 8, 8, 8, 2, 2, 4, 4, false>(3);
    }

    #[test]
    fn inner_layer_pooled_2x2_winograd() {
        check::<8, 4, 3, 3, 1, 1, 0, 0, 7, 7, 5, 5, 2, 2, 2, 2, true>(3);
    }

    #[test]
    fn unpooled_rectangular_strided() {
        check::<2, 3, 2, 3, 2, 1, 0, 0, 7, 8, 3, 6, 1, 1, 3, 6, true>(2);
    }

    /// 576 output positions: the im2col path's one-image-per-product branch.
    #[test]
    fn large_planes() {
        check::<1, 2, 3, 3, 1, 1, 1, 1, 24, 24, 24, 24, 2, 2, 12, 12, false>(2);
        check::<2, 2, 3, 3, 1, 1, 1, 1, 24, 24, 24, 24, 1, 1, 24, 24, true>(2);
    }

    #[test]
    fn overlapping_pool() {
        check::<2, 3, 3, 3, 1, 1, 0, 0, 9, 9, 7, 7, 3, 2, 3, 3, true>(2);
    }
}
