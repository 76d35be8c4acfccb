//! `Conv2D`: a 2-D convolution for dfdx 0.13 on stable Rust, every size a const generic.
//!
//! dfdx's own `Conv2D` computes its output size with `generic_const_exprs`
//! (nightly, and broken there); this one takes the output size as generics
//! too (the `network!` macro computes it) and checks the sizes agree with a
//! `const { assert!(..) }` that fires when the code is built.
//!
//! Forward and backward are one custom op recorded with dfdx's public
//! `Tape::add_backward_op`, dispatched per device by [`Conv2DKernel`], whose
//! impls are in `kernels/conv2d/`:
//! - `Cpu` (f32, f64): im2col + the `gemm` crate, parallel over the batch
//!   with rayon (`im2col.rs`); 3x3 stride-1 convolutions with 8+ input
//!   channels use Winograd F(2x2, 3x3) instead, forward and backward
//!   (`winograd.rs`), and a 1-channel first layer with 2x2 pools runs per
//!   pooling window (`direct.rs`); `mod.rs` picks;
//! - `Cuda` (feature `cuda`): a composition of public dfdx ops, `gather`-based
//!   im2col + `matmul` (`composed.rs`); the tests run that composition on
//!   `Cpu` against the fast kernel.
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::conv2d`.
//! Benchmark: `cargo run --release -p netdsl-runtime --example conv_bench`.

use dfdx::nn::modules::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule};
use dfdx::prelude::{Const, Device, Dim, HasShape, OwnedTape, Rank0, Rank1, Rank4, Tape, Tensor};
use dfdx::shapes::Dtype;
use rand::distributions::{uniform::SampleUniform, Uniform};

use super::l2::{one_regularizer, try_l2_term, L2Penalty, Regularizer, Regularizers};

pub mod builder {
    /// A 2-D convolution (NCHW), built by `dev.build_module::<Conv2D<..>, f32>()`.
    ///
    /// Generics:
    /// - `IN_CHAN`, `OUT_CHAN`: channels in and out.
    /// - `KERNEL_H`, `KERNEL_W`: the kernel's height and width; `STRIDE_H`,
    ///   `STRIDE_W`: its step down and across.
    /// - `PAD_H`, `PAD_W`: zero padding *before* (top, left). The padding
    ///   after (bottom, right) is implied by `H_OUT`/`W_OUT`: positions past
    ///   the input read as 0 (Keras `same` pads one more after than before
    ///   when the total is odd).
    /// - `H_IN`, `W_IN`, `H_OUT`, `W_OUT`: spatial sizes in and out; a
    ///   `const { assert!(..) }` rejects inconsistent ones when the code is built.
    /// - `L2`: Keras `kernel_regularizer=l2(λ)` factor as `f32` bits
    ///   (`{ f32_bits(1e-3) }`), 0 for none.
    /// - `BIAS`: whether the layer has a trainable bias (Keras' `use_bias`).
    ///
    /// PyTorch: `nn.Conv2d(IN_CHAN, OUT_CHAN, (KERNEL_H, KERNEL_W), (STRIDE_H, STRIDE_W), padding=..)`.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct Conv2D<
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
        const H_OUT: usize,
        const W_OUT: usize,
        const L2: u32 = 0,
        const BIAS: bool = true,
    >;
}

/// A batch of images `[B, C, H, W]` (NCHW).
pub type Images<B, const C: usize, const H: usize, const W: usize, E, D, T> =
    Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>;

/// Whether a padding after of `pad` or `pad + 1` turns `input` into exactly
/// `output` positions with this kernel and stride (the rule the macro uses:
/// explicit padding pads equally, Keras `same` may pad one more after).
pub const fn output_size_fits(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    output: usize,
) -> bool {
    if kernel == 0 || stride == 0 {
        return false;
    }
    let mut after = pad;
    while after <= pad + 1 {
        let padded = input + pad + after;
        if padded >= kernel && (padded - kernel) / stride + 1 == output {
            return true;
        }
        after += 1;
    }
    false
}

/// The geometry of one convolution call, as plain numbers (dfdx's `Conv2DOp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2DOp {
    pub batch: usize,
    pub chan_in: usize,
    pub chan_out: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub h_out: usize,
    pub w_out: usize,
}

impl Conv2DOp {
    /// Rows of the im2col matrix: `chan_in · kernel_h · kernel_w`.
    pub fn patch_len(&self) -> usize {
        self.chan_in * self.kernel_h * self.kernel_w
    }
    /// Whether the kernel is `k`x`k` with stride 1 (the shapes Winograd and
    /// the direct first layer handle).
    pub fn is_square_stride1(&self, k: usize) -> bool {
        self.kernel_h == k && self.kernel_w == k && self.stride_h == 1 && self.stride_w == 1
    }
    /// Output positions per channel: `h_out · w_out`.
    pub fn out_positions(&self) -> usize {
        self.h_out * self.w_out
    }
    /// Elements of one input image: `chan_in · h_in · w_in`.
    pub fn in_image_len(&self) -> usize {
        self.chan_in * self.h_in * self.w_in
    }
    /// Elements of one output image: `chan_out · h_out · w_out`.
    pub fn out_image_len(&self) -> usize {
        self.chan_out * self.out_positions()
    }
    /// Multiply-adds of the forward pass (times 2 for FLOPs).
    pub fn forward_macs(&self) -> usize {
        self.batch * self.out_image_len() * self.patch_len()
    }
}

/// What a convolution op does besides the convolution: a ReLU and a max
/// pooling fused into its output pass, and whether its input needs a gradient.
///
/// Fusing saves the full-size intermediate tensors (the convolution's output,
/// the ReLU's output and both their gradients, 8.7 MB each for CNN3a's first
/// layer at batch 100) and two passes over them; the first layer of a network
/// computes no input gradient (nothing reads it). `relu(maxpool(z)) ==
/// maxpool(relu(z))` exactly, and the gradient goes to the window's first
/// maximum when it is positive, as the unfused layers route it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fusion {
    /// Apply a ReLU to the output.
    pub relu: bool,
    /// Max-pooling window side (1: no pooling).
    pub pool_k: usize,
    /// Max-pooling step (1: no pooling).
    pub pool_s: usize,
    /// Output height after pooling (the convolution's output height without pooling).
    pub h_out: usize,
    /// Output width after pooling (the convolution's output width without pooling).
    pub w_out: usize,
    /// Compute the gradient of the input (false only for a network's first layer).
    pub input_grad: bool,
}

impl Fusion {
    /// A plain convolution of `op`: no ReLU, no pooling, input gradient computed.
    pub fn plain(op: &Conv2DOp) -> Self {
        Self {
            relu: false,
            pool_k: 1,
            pool_s: 1,
            h_out: op.h_out,
            w_out: op.w_out,
            input_grad: true,
        }
    }
    /// Whether the output is the convolution's output itself.
    pub fn is_identity(&self) -> bool {
        !self.relu && self.pool_k == 1 && self.pool_s == 1
    }
    /// Elements of one output plane (after pooling).
    pub fn plane_out(&self) -> usize {
        self.h_out * self.w_out
    }
}

/// The device-specific convolution, in the style of dfdx's kernel traits.
///
/// Implemented for `Cpu` (f32, f64: the fast im2col / Winograd + gemm kernel,
/// with ReLU and pooling fused) and, with the `cuda` feature, for `Cuda` (f32,
/// f64: `composed::try_conv2d_composed`, then dfdx's ReLU and the composed
/// max pooling, unfused).
pub trait Conv2DKernel<E: Dtype>: Device<E> {
    /// `y = maxpool(relu(conv(x, weight) + bias))` (each step as `fusion`
    /// says), recording the backward op on `x`'s tape.
    ///
    /// # Shapes
    /// `x: [B, I, H, W]`, `weight: [O, I, KH, KW]`, `bias: [O]` -> `y: [B, O, PHO, PWO]`
    /// (`PHO = HO`, `PWO = WO`, `PK = PS = 1` without pooling).
    #[allow(clippy::type_complexity)]
    fn try_conv2d<
        B: Dim,
        T: Tape<E, Self>,
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
        fusion: Fusion,
        x: Images<B, I, H, W, E, Self, T>,
        weight: &Tensor<Rank4<O, I, KH, KW>, E, Self>,
        bias: &Tensor<Rank1<O>, E, Self>,
    ) -> Result<Images<B, O, PHO, PWO, E, Self, T>, Self::Err>;
}

/// Keras' GlorotUniform for a convolution kernel: `U(-limit, limit)`,
/// `limit = sqrt(6 / (fan_in + fan_out))`, `fan_in = I·KH·KW`, `fan_out = O·KH·KW`.
pub(super) fn glorot_uniform<
    E: Dtype + SampleUniform,
    D: Device<E>,
    const O: usize,
    const I: usize,
    const KH: usize,
    const KW: usize,
>(
    t: &mut Tensor<Rank4<O, I, KH, KW>, E, D>,
) -> Result<(), D::Err> {
    let limit = (6.0 / ((I + O) * KH * KW) as f64).sqrt();
    let (lo, hi) = (E::from_f64(-limit), E::from_f64(limit));
    let (lo, hi) = (lo.unwrap_or_default(), hi.unwrap_or_default());
    t.try_fill_with_distr(Uniform::new_inclusive(lo, hi))
}

/// A built 2-D convolution: `weight [O, I, KH, KW]`, `bias [O]` (PyTorch/dfdx layout).
///
/// Generics as [`builder::Conv2D`], abbreviated; `E` the dtype, `D` the device.
/// Initialised as Keras does: glorot-uniform weight
/// (limit `sqrt(6 / (I·KH·KW + O·KH·KW))`), zero bias.
///
/// # Shapes
/// `[B, I, H, W] -> [B, O, HO, WO]` for any batch `B: Dim` (const or `usize`).
#[derive(Debug, Clone)]
pub struct Conv2D<
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
    const L2: u32,
    E: Dtype,
    D: dfdx::tensor::Storage<E>,
    const BIAS: bool = true,
> {
    /// The kernel, `[out_channels, in_channels, KH, KW]` (Glorot uniform at build).
    pub weight: Tensor<Rank4<O, I, KH, KW>, E, D>,
    /// The bias, one per output channel (zeros at build; zero, and no
    /// parameter, when `BIAS` is false).
    pub bias: Tensor<Rank1<O>, E, D>,
    /// The kernel's L2 factor λ, `L2` unless changed at run time (0: none).
    pub l2: f32,
}

/// Writes the layer's const generics once for every impl:
/// `conv_impl!([E: Dtype, D: Device<E>] Trait for conv!(E, D) { .. })`.
macro_rules! conv_impl {
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
                const L2: u32,
                const BIAS: bool,
                $($extra)*
            > $($rest)*
    };
}

/// The built layer's type with the generics of [`conv_impl`].
macro_rules! conv {
    ($E:ty, $D:ty) => {
        Conv2D<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, L2, $E, $D, BIAS>
    };
}

conv_impl!([E: Dtype, D: dfdx::tensor::Storage<E>] conv!(E, D) {
    /// Fails the build when the sizes disagree (evaluated when code using
    /// this layer is compiled to a binary or test, not by `cargo check`).
    pub(super) const SIZES_OK: () = assert!(
        I > 0
            && O > 0
            && H > 0
            && W > 0
            && output_size_fits(H, KH, SH, PH, HO)
            && output_size_fits(W, KW, SW, PW, WO),
        "Conv2D: inconsistent sizes; need out = (in + pad_before + pad_after - kernel) / stride + 1 \
         per axis, with pad_after = pad_before or pad_before + 1"
    );

    pub(super) fn op(batch: usize) -> Conv2DOp {
        Conv2DOp {
            batch,
            chan_in: I,
            chan_out: O,
            kernel_h: KH,
            kernel_w: KW,
            stride_h: SH,
            stride_w: SW,
            pad_h: PH,
            pad_w: PW,
            h_in: H,
            w_in: W,
            h_out: HO,
            w_out: WO,
        }
    }
});

conv_impl!([E: Dtype + SampleUniform, D: Device<E>] BuildOnDevice<D, E>
    for builder::Conv2D<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, L2, BIAS>
{
    type Built = conv!(E, D);
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        #[allow(clippy::let_unit_value)]
        let () = Self::Built::SIZES_OK;
        Self::Built::try_build(device)
    }
});

conv_impl!([E: Dtype + SampleUniform, D: Device<E>] TensorCollection<E, D> for conv!(E, D) {
    type To<E2: Dtype, D2: Device<E2>> = conv!(E2, D2);

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visit_weight_and_bias!(visitor, Conv2D, glorot_uniform, BIAS, L2)
    }
});

conv_impl!([B: Dim, E: Dtype, D: Conv2DKernel<E>, T: Tape<E, D>]
    Module<Images<B, I, H, W, E, D, T>> for conv!(E, D)
{
    type Output = Images<B, O, HO, WO, E, D, T>;
    type Error = D::Err;

    /// Training (`OwnedTape` input) records the backward op; evaluation
    /// (`NoneTape`) keeps nothing for it.
    fn try_forward(&self, x: Images<B, I, H, W, E, D, T>) -> Result<Self::Output, D::Err> {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        let op = Self::op(x.shape().0.size());
        D::try_conv2d::<B, T, I, O, KH, KW, H, W, HO, WO, 1, 1, HO, WO>(
            op,
            Fusion::plain(&op),
            x,
            &self.weight,
            &self.bias,
        )
    }
});

conv_impl!([E: Dtype, D: dfdx::tensor::Storage<E>] NonMutableModule for conv!(E, D) {});

conv_impl!([E: Dtype, D: Device<E>] L2Penalty<E, D> for conv!(E, D) {
    /// λ·Σw² over the kernel (never the bias), `None` when λ is 0.
    fn try_l2_penalty(&self) -> Result<Option<Tensor<Rank0, E, D, OwnedTape<E, D>>>, D::Err> {
        try_l2_term(&self.weight, self.l2)
    }
});

conv_impl!([E: Dtype, D: dfdx::tensor::Storage<E>] Regularizers for conv!(E, D) {
    one_regularizer!(Regularizer::ConvL2, l2);
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::conv2d::try_conv2d_composed;
    use crate::tests::{assert_close, assert_grad_close, finite_difference, test_values};
    use dfdx::prelude::*;

    /// The textbook convolution, one output at a time (f64).
    fn naive(op: &Conv2DOp, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let (i_n, kh_n, kw_n) = (op.chan_in, op.kernel_h, op.kernel_w);
        let mut y = Vec::with_capacity(op.batch * op.out_image_len());
        for n in 0..op.batch {
            for o in 0..op.chan_out {
                for oh in 0..op.h_out {
                    for ow in 0..op.w_out {
                        let mut acc = b[o];
                        for c in 0..i_n {
                            for kh in 0..kh_n {
                                for kw in 0..kw_n {
                                    let ih = (oh * op.stride_h + kh) as isize - op.pad_h as isize;
                                    let iw = (ow * op.stride_w + kw) as isize - op.pad_w as isize;
                                    if ih < 0
                                        || iw < 0
                                        || ih >= op.h_in as isize
                                        || iw >= op.w_in as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * i_n + c) * op.h_in + ih as usize) * op.w_in
                                        + iw as usize;
                                    acc += x[xi] * w[((o * i_n + c) * kh_n + kh) * kw_n + kw];
                                }
                            }
                        }
                        y.push(acc);
                    }
                }
            }
        }
        y
    }

    type Layer<
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
    > = Conv2D<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO, 0, f64, Cpu>;

    /// Forward against [`naive`], gradients of input, weight and bias against
    /// central differences, and the composed (Cuda) path against the fast one.
    fn check_case<
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
    >(
        batch: usize,
    ) {
        let dev: Cpu = Cpu::seed_from_u64(0);
        let mut m: Layer<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO> =
            dev.build_module::<builder::Conv2D<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO>, f64>();
        let w_shape = (Const::<O>, Const::<I>, Const::<KH>, Const::<KW>);
        let x_shape = (batch, Const::<I>, Const::<H>, Const::<W>);
        let y_shape = (batch, Const::<O>, Const::<HO>, Const::<WO>);
        let (wv, bv) = (test_values(O * I * KH * KW, 1), test_values(O, 2));
        m.weight = dev.tensor_from_vec(wv.clone(), w_shape);
        m.bias = dev.tensor_from_vec(bv.clone(), (Const::<O>,));
        let xv = test_values(batch * I * H * W, 3);
        let x = dev.tensor_from_vec(xv.clone(), x_shape);
        let op = Layer::<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO>::op(batch);

        // forward, no tape
        let y = m.forward(x.clone());
        assert_close(&y.as_vec(), &naive(&op, &xv, &wv, &bv), 1e-12);

        // analytic gradients of loss = Σ y·r
        let r = dev.tensor_from_vec(test_values(batch * O * HO * WO, 4), y_shape);
        let grads = (m.forward(x.clone().traced(Gradients::leaky())) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let (gx, gw, gb) = (
            grads.get(&x).as_vec(),
            grads.get(&m.weight).as_vec(),
            grads.get(&m.bias).as_vec(),
        );

        // numeric gradients
        let loss = |m: &Layer<I, O, KH, KW, SH, SW, PH, PW, H, W, HO, WO>, xv: &[f64]| -> f64 {
            let y = m.forward(dev.tensor_from_vec(xv.to_vec(), x_shape));
            (y * r.clone()).sum::<Rank0, _>().array()
        };
        let num_gx = finite_difference(&xv, 1e-3, |xp| loss(&m, xp));
        let num_gw = finite_difference(&wv, 1e-3, |wp| {
            let mut m2 = m.clone();
            m2.weight = dev.tensor_from_vec(wp.to_vec(), w_shape);
            loss(&m2, &xv)
        });
        let num_gb = finite_difference(&bv, 1e-3, |bp| {
            let mut m2 = m.clone();
            m2.bias = dev.tensor_from_vec(bp.to_vec(), (Const::<O>,));
            loss(&m2, &xv)
        });
        assert_grad_close("input", &gx, &num_gx, 1e-6);
        assert_grad_close("weight", &gw, &num_gw, 1e-6);
        assert_grad_close("bias", &gb, &num_gb, 1e-6);

        // the composed (Cuda) path, run on Cpu: same values, same gradients
        let y_c: Tensor<(usize, Const<O>, Const<HO>, Const<WO>), f64, Cpu> =
            try_conv2d_composed(op, x.clone(), &m.weight, &m.bias).unwrap();
        assert_close(&y_c.as_vec(), &y.as_vec(), 1e-12);
        let y_c: Tensor<(usize, Const<O>, Const<HO>, Const<WO>), f64, Cpu, _> =
            try_conv2d_composed(op, x.clone().traced(Gradients::leaky()), &m.weight, &m.bias)
                .unwrap();
        let grads_c = (y_c * r).sum::<Rank0, _>().backward();
        assert_close(&grads_c.get(&x).as_vec(), &gx, 1e-12);
        assert_close(&grads_c.get(&m.weight).as_vec(), &gw, 1e-12);
        assert_close(&grads_c.get(&m.bias).as_vec(), &gb, 1e-12);
    }

    /// [`check_case`] for a square kernel and equal strides.
    fn square<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const PH: usize,
        const PW: usize,
        const H: usize,
        const W: usize,
        const HO: usize,
        const WO: usize,
    >(
        batch: usize,
    ) {
        check_case::<I, O, K, K, S, S, PH, PW, H, W, HO, WO>(batch);
    }

    #[test]
    fn valid_stride1_odd_nonsquare() {
        square::<3, 4, 3, 1, 0, 0, 7, 6, 5, 4>(2);
    }

    #[test]
    fn rectangular_kernels_and_strides() {
        // 3x5 kernel, stride 1, valid: H 7 - 3 + 1 = 5, W 8 - 5 + 1 = 4
        check_case::<2, 3, 3, 5, 1, 1, 0, 0, 7, 8, 5, 4>(2);
        // 1x3 kernel, strides (2, 1), Keras same: H ceil(7 / 2) = 4, total
        // (4 - 1)·2 + 1 - 7 = 0; W 6, total 2 -> 1 before, 1 after
        check_case::<2, 2, 1, 3, 2, 1, 0, 1, 7, 6, 4, 6>(2);
        // 5x2 kernel, strides (1, 3), Keras same: H total 4 -> 2 and 2;
        // W ceil(8 / 3) = 3, total (3 - 1)·3 + 2 - 8 = 0
        check_case::<1, 2, 5, 2, 1, 3, 2, 0, 6, 8, 6, 3>(3);
        // 3x5 with 8+ channels and stride 1: not Winograd (3x3 only), im2col
        check_case::<8, 2, 3, 5, 1, 1, 1, 2, 5, 6, 5, 6>(2);
    }

    #[test]
    fn pad1_stride1() {
        square::<2, 3, 3, 1, 1, 1, 5, 5, 5, 5>(3);
    }

    #[test]
    fn pad1_stride2_pad_after_differs() {
        // H: (7 + 1 + 1 - 3) / 2 + 1 = 4; W: (8 + 1 + 1 - 3) / 2 + 1 = 4 (last column unused)
        square::<2, 3, 3, 2, 1, 1, 7, 8, 4, 4>(2);
    }

    #[test]
    fn keras_same_even_kernel_pads_only_after() {
        // in 7, K 2, S 1: out 7, total 1 -> before 0, after 1
        square::<2, 2, 2, 1, 0, 0, 7, 7, 7, 7>(2);
    }

    #[test]
    fn keras_same_stride2_asymmetric() {
        // H 8: out 4, total 1 -> 0 before, 1 after; W 9: out 5, total 2 -> 1 and 1
        square::<2, 3, 3, 2, 0, 1, 8, 9, 4, 5>(2);
    }

    #[test]
    fn one_input_channel_kernel5_stride2_pad2() {
        square::<1, 3, 5, 2, 2, 2, 9, 9, 5, 5>(3);
    }

    #[test]
    fn winograd_forward_partial_tiles_and_same_padding() {
        // 3x3, stride 1, >= 8 input channels: the forward pass is Winograd F(2x2, 3x3)
        square::<8, 3, 3, 1, 0, 0, 7, 6, 5, 4>(2); // odd output: partial tiles
        square::<9, 4, 3, 1, 1, 1, 5, 6, 5, 6>(3); // Keras same
        square::<8, 2, 3, 1, 0, 0, 3, 4, 1, 2>(1); // a single row of outputs
    }

    #[test]
    fn large_planes_one_image_per_gemm() {
        // P >= 512 output positions: the in-place path (CNN3a's conv1 shape)
        square::<1, 2, 3, 1, 0, 0, 28, 28, 26, 26>(2);
        // and padded, several channels
        square::<2, 2, 3, 1, 1, 1, 23, 24, 23, 24>(2);
    }

    #[test]
    fn batch_as_const_and_f32_matches_f64() {
        let dev: Cpu = Cpu::seed_from_u64(0);
        let mut m = dev.build_module::<builder::Conv2D<3, 4, 3, 3, 2, 2, 0, 1, 8, 9, 4, 5>, f64>();
        let mut m32 =
            dev.build_module::<builder::Conv2D<3, 4, 3, 3, 2, 2, 0, 1, 8, 9, 4, 5>, f32>();
        m.bias = dev.tensor_from_vec(test_values(4, 9), (Const::<4>,));
        m32.weight = m.weight.clone().to_dtype::<f32>();
        m32.bias = m.bias.clone().to_dtype::<f32>();
        let x: Tensor<Rank4<2, 3, 8, 9>, f64, Cpu> =
            dev.tensor_from_vec(test_values(2 * 3 * 8 * 9, 5), Default::default());
        let y: Tensor<Rank4<2, 4, 4, 5>, f64, Cpu> = m.forward(x.clone());
        let y32: Tensor<Rank4<2, 4, 4, 5>, f32, Cpu> = m32.forward(x.clone().to_dtype::<f32>());
        let y32: Vec<f64> = y32.as_vec().iter().map(|&v| v as f64).collect();
        assert_close(&y32, &y.as_vec(), 1e-5);
        // OwnedTape with a const batch, through forward_mut
        let y_t = m.forward_mut(x.traced(m.alloc_grads()));
        assert_close(&y_t.as_vec(), &y.as_vec(), 0.0);
    }

    #[test]
    fn gradients_are_identical_for_any_thread_count() {
        let dev: Cpu = Cpu::seed_from_u64(1);
        let m = dev.build_module::<builder::Conv2D<4, 5, 3, 3, 1, 1, 1, 1, 6, 6, 6, 6>, f32>();
        let x: Tensor<(usize, Const<4>, Const<6>, Const<6>), f32, Cpu> = dev.tensor_from_vec(
            test_values(37 * 4 * 36, 6)
                .iter()
                .map(|&v| v as f32)
                .collect(),
            (37, Const, Const, Const),
        );
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let g = m
                    .forward(x.clone().traced(Gradients::leaky()))
                    .square()
                    .sum::<Rank0, _>()
                    .backward();
                (
                    g.get(&m.weight).as_vec(),
                    g.get(&m.bias).as_vec(),
                    g.get(&x).as_vec(),
                )
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn keras_init_and_parameter_count() {
        let dev: Cpu = Default::default();
        let m =
            dev.build_module::<builder::Conv2D<32, 64, 3, 3, 1, 1, 0, 0, 13, 13, 11, 11>, f32>();
        assert_eq!(m.num_trainable_params(), 64 * 32 * 9 + 64);
        let limit = (6.0f32 / ((32 + 64) * 9) as f32).sqrt();
        let w = m.weight.as_vec();
        assert!(w.iter().all(|v| v.abs() <= limit));
        assert!(w.iter().any(|v| v.abs() > 0.9 * limit));
        assert!(m.bias.as_vec().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn l2_penalty_only_when_set() {
        let dev: Cpu = Default::default();
        let m = dev.build_module::<builder::Conv2D<1, 2, 3, 3, 1, 1, 0, 0, 5, 5, 3, 3>, f64>();
        assert!(m.try_l2_penalty().unwrap().is_none());
        const HALF: u32 = crate::nn::f32_bits(0.5);
        let m =
            dev.build_module::<builder::Conv2D<1, 2, 3, 3, 1, 1, 0, 0, 5, 5, 3, 3, HALF>, f64>();
        let sum_sq: f64 = m.weight.as_vec().iter().map(|w| w * w).sum();
        let p = m.try_l2_penalty().unwrap().unwrap().array();
        assert!((p - 0.5 * sum_sq).abs() < 1e-12);
    }

    #[test]
    fn size_rule_accepts_keras_valid_same_and_explicit_padding() {
        assert!(output_size_fits(28, 3, 1, 0, 26)); // valid
        assert!(output_size_fits(13, 3, 1, 0, 11));
        assert!(output_size_fits(28, 3, 1, 1, 28)); // same
        assert!(output_size_fits(28, 3, 2, 0, 14)); // same, S 2: 0 before, 1 after
        assert!(output_size_fits(7, 2, 1, 0, 7)); // same, K 2
        assert!(output_size_fits(5, 3, 2, 1, 3)); // pad 1
        assert!(!output_size_fits(28, 3, 1, 0, 28));
        assert!(output_size_fits(28, 3, 1, 0, 27)); // one extra pad after is allowed
        assert!(!output_size_fits(28, 3, 1, 0, 25));
        assert!(!output_size_fits(1, 3, 1, 0, 1)); // kernel larger than the padded input
        assert!(!output_size_fits(28, 3, 0, 0, 26));
    }

    /// `bias = false`: the weight is the only parameter (counted, saved and
    /// trained), the output is the convolution alone, and the weight's
    /// gradient matches central differences.
    #[test]
    fn without_bias() {
        let dev: Cpu = Default::default();
        let mut m = dev
            .build_module::<builder::Conv2D<2, 3, 3, 3, 1, 1, 1, 1, 5, 5, 5, 5, 0, false>, f64>();
        assert_eq!(NumParams::<f64, Cpu>::num_trainable_params(&m), 3 * 2 * 9);
        let wv = test_values(3 * 2 * 9, 1);
        m.weight = dev.tensor_from_vec(wv.clone(), (Const, Const, Const, Const));
        let xv = test_values(2 * 2 * 5 * 5, 2);
        let x = dev.tensor_from_vec(xv.clone(), (2, Const::<2>, Const::<5>, Const::<5>));
        let op = Conv2D::<2, 3, 3, 3, 1, 1, 1, 1, 5, 5, 5, 5, 0, f64, Cpu, false>::op(2);
        let y = m.forward(x.clone());
        assert_close(&y.as_vec(), &naive(&op, &xv, &wv, &[0.0; 3]), 1e-12);

        let r = dev.tensor_from_vec(
            test_values(2 * 3 * 25, 3),
            (2, Const::<3>, Const::<5>, Const::<5>),
        );
        let grads = (m.forward(x.clone().traced(m.alloc_grads())) * r.clone())
            .sum::<Rank0, _>()
            .backward();
        let numeric = finite_difference(&wv, 1e-3, |wp| {
            let mut m2 = m.clone();
            m2.weight = dev.tensor_from_vec(wp.to_vec(), (Const, Const, Const, Const));
            (m2.forward(x.clone()) * r.clone())
                .sum::<Rank0, _>()
                .array()
        });
        assert_grad_close("weight", &grads.get(&m.weight).as_vec(), &numeric, 1e-6);
        assert_eq!(m.bias.as_vec(), [0.0; 3], "the bias is not a parameter");
    }
}
