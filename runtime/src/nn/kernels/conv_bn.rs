//! `ConvBnBlock`'s training pass: [`ConvBnKernel`] for `Cpu` (the
//! convolution into a scratch buffer with each image's moments taken in the
//! same pass, then one normalise, ReLU and pool pass) and for `Cuda` (the
//! device convolution, then the composed batchnorm, ReLU and pool).

use dfdx::prelude::{
    Const, Cpu, CpuError, Dim, HasShape, OwnedTape, PutTape, Rank1, Rank4, ReshapeTo, SplitTape,
    Tape, Tensor, TensorFromVec,
};
use dfdx::shapes::Dtype;

use crate::nn::batch_norm::{BatchNormOp, BatchStats, Normalized};
use crate::nn::conv2d::{Conv2DKernel, Conv2DOp, Fusion, Images};
use crate::nn::conv_bn_block::ConvBnKernel;
use crate::nn::kernels::batch_norm::{
    normalize_relu_pool, normalize_relu_pool_backward, try_batch_norm_relu_pool_train_composed,
    StepStats,
};
use crate::nn::kernels::conv2d::{backward_any, forward_any};
use crate::nn::kernels::gemm::{add_assign, read, GemmFloat};
use crate::nn::kernels::recycle::Recycled;

/// [`ConvBnKernel::try_conv_bn_train`] from the device's convolution and
/// dfdx ops (batchnorm, ReLU, max pooling composed): `Cuda`'s path; the
/// tests run it on `Cpu` against the fused one.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn try_conv_bn_train_composed<
    E: Dtype,
    D: Conv2DKernel<E>,
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
    x: Images<B, I, H, W, E, D, OwnedTape<E, D>>,
    weight: &Tensor<Rank4<O, I, KH, KW>, E, D>,
    gamma: &Tensor<Rank1<O>, E, D>,
    beta: &Tensor<Rank1<O>, E, D>,
    epsilon: f32,
) -> Result<Normalized<(B, Const<O>, Const<PHO>, Const<PWO>), O, E, D>, D::Err> {
    let plain = Fusion {
        input_grad,
        ..Fusion::plain(&op)
    };
    let no_bias = weight.device().try_zeros::<Rank1<O>>()?;
    let z = D::try_conv2d::<B, OwnedTape<E, D>, I, O, KH, KW, H, W, HO, WO, 1, 1, HO, WO>(
        op, plain, x, weight, &no_bias,
    )?;
    try_batch_norm_relu_pool_train_composed::<B, E, D, O, HO, WO, PK, PS, PHO, PWO>(
        z, gamma, beta, epsilon,
    )
}

/// [`ConvBnKernel::try_conv_bn_train`] on the Cpu as one op: the
/// convolution's output `z` goes to a buffer of this op (no tensor, no copy),
/// its statistics are taken per image as the convolution writes it (while in
/// cache: `kernels::conv2d::plane_moments`), and one pass normalises,
/// applies the ReLU and pools it (`batch_norm::normalize_relu_pool`).
/// Backward: the gradient at `z` is computed into a buffer of this op
/// (`batch_norm::normalize_relu_pool_backward`) and handed to the
/// convolution's own backward pass; a first layer skips the input's gradient.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub(crate) fn try_conv_bn_train_cpu<
    E: GemmFloat,
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
    x: Images<B, I, H, W, E, Cpu, OwnedTape<E, Cpu>>,
    weight: &Tensor<Rank4<O, I, KH, KW>, E, Cpu>,
    gamma: &Tensor<Rank1<O>, E, Cpu>,
    beta: &Tensor<Rank1<O>, E, Cpu>,
    epsilon: f32,
) -> Result<Normalized<(B, Const<O>, Const<PHO>, Const<PWO>), O, E, Cpu>, CpuError> {
    let (x, mut tape) = x.try_contiguous()?.split_tape();
    let batch = x.shape().0;
    let plain = Fusion {
        input_grad,
        ..Fusion::plain(&op)
    };
    // Parameters are contiguous: `try_contiguous` only clones the handle.
    let w_buf = read(&weight.clone().try_contiguous()?);
    let no_bias = Recycled::filled(O, E::default());
    let x_buf = read(&x); // kept for the backward pass
    let mut z = Recycled::stale(op.batch * O * HO * WO); // every element written
    let mut planes = Recycled::stale(op.batch * O * 2); // every element written
    forward_any::<E, WO, 1, 1>(
        &op,
        &plain,
        &x_buf,
        &w_buf,
        &no_bias,
        &mut z,
        &mut [],
        &mut planes,
    );

    let bn = BatchNormOp {
        batch: op.batch,
        chan: O,
        len: HO * WO,
    };
    let g = gamma.as_vec(); // also for the backward pass
    let st = StepStats::from_planes(&planes, bn, &g, &beta.as_vec(), epsilon);
    let mut y = vec![E::default(); op.batch * O * PHO * PWO];
    let mut arg = Recycled::stale(y.len()); // every byte written
    normalize_relu_pool::<E, PK, PS>(&z, bn, (WO, PWO), &st, &mut y, &mut arg);
    let dev = x.device().clone();
    let y = dev.try_tensor_from_vec(y, (batch, Const::<O>, Const::<PHO>, Const::<PWO>))?;
    let stats = BatchStats {
        mean: dev.try_tensor_from_vec(st.mean.clone(), (Const::<O>,))?,
        variance: dev.try_tensor_from_vec(st.var.clone(), (Const::<O>,))?,
    };

    let (x_ghost, w_ghost, y_ghost) = (x.ghost(), weight.ghost(), y.ghost());
    let (g_ghost, b_ghost) = (gamma.ghost(), beta.ghost());
    tape.add_backward_op(move |grads| {
        let gy = std::mem::take::<Vec<E>>(grads.get_or_alloc_mut(&y_ghost)?);
        let mut gz = Recycled::stale(z.len()); // every element written
        let sums = normalize_relu_pool_backward::<E, PK, PS>(
            &gy,
            &arg,
            &z,
            bn,
            (WO, PWO),
            &st,
            &g,
            &mut gz,
        );
        for (d, &(_, sum_gx)) in grads.get_or_alloc_mut(&g_ghost)?.iter_mut().zip(&sums) {
            *d += sum_gx;
        }
        for (d, &(sum_g, _)) in grads.get_or_alloc_mut(&b_ghost)?.iter_mut().zip(&sums) {
            *d += sum_g;
        }
        let gx = if input_grad {
            Some(&mut grads.get_or_alloc_mut(&x_ghost)?[..])
        } else {
            None
        };
        let (gw, _) = backward_any::<E, WO, 1, 1>(&op, &plain, &x_buf, &w_buf, &gz, &[], gx);
        add_assign(grads.get_or_alloc_mut(&w_ghost)?, &gw);
        **grads.get_or_alloc_mut(&y_ghost)? = gy;
        Ok(())
    });
    Ok((y.put_tape(tape), stats))
}

macro_rules! device_conv_bn {
    ($device:ty, $f:ident, [$($extra:ty),*], $E:ty) => {
        impl ConvBnKernel<$E> for $device {
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
                x: Images<B, I, H, W, $E, Self, OwnedTape<$E, Self>>,
                weight: &Tensor<Rank4<O, I, KH, KW>, $E, Self>,
                gamma: &Tensor<Rank1<O>, $E, Self>,
                beta: &Tensor<Rank1<O>, $E, Self>,
                epsilon: f32,
            ) -> Result<Normalized<(B, Const<O>, Const<PHO>, Const<PWO>), O, $E, Self>, Self::Err>
            {
                $f::<$E, $($extra,)* B, I, O, KH, KW, H, W, HO, WO, PK, PS, PHO, PWO>(
                    op, input_grad, x, weight, gamma, beta, epsilon,
                )
            }
        }
    };
}

device_conv_bn!(Cpu, try_conv_bn_train_cpu, [], f32);
device_conv_bn!(Cpu, try_conv_bn_train_cpu, [], f64);
#[cfg(feature = "cuda")]
device_conv_bn!(dfdx::tensor::Cuda, try_conv_bn_train_composed, [Self], f32);
#[cfg(feature = "cuda")]
device_conv_bn!(dfdx::tensor::Cuda, try_conv_bn_train_composed, [Self], f64);
