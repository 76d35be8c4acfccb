//! The leaky ReLU's kernels: [`LeakyReLUKernel`] for `Cpu` (one vectorised
//! pass, the mask kept as the input's sign) and for `Cuda` (dfdx's `prelu`).

use dfdx::prelude::{
    Cpu, CpuError, Device, Dtype, HasShape, PutTape, Shape, SplitTape, Tape, Tensor, TensorFromVec,
};
use dfdx::tensor_ops::TryPReLU;

use crate::nn::kernels::gemm::{read, GemmFloat};
use crate::nn::kernels::simd::{self, Isa};
use crate::nn::leaky_relu::LeakyReLUKernel;

/// The composed path (dfdx ops), used on `Cuda` and tested on `Cpu`.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn try_leaky_relu_composed<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<S, E, D, T>,
    alpha: f32,
) -> Result<Tensor<S, E, D, T>, D::Err> {
    x.try_prelu(E::from_f32(alpha).unwrap_or_default())
}

fn try_leaky_relu_cpu<S: Shape, E: GemmFloat, T: Tape<E, Cpu>>(
    x: Tensor<S, E, Cpu, T>,
    alpha: f32,
) -> Result<Tensor<S, E, Cpu, T>, CpuError> {
    let (x, mut tape) = x.split_tape();
    let xs = read(&x); // kept for the backward pass
    let a = E::from_f32(alpha).unwrap_or_default();
    let zero = E::default();
    let mut y = vec![zero; xs.len()];
    let isa = Isa::detect();
    simd::run!(isa, |_isa| {
        for (y, &x) in y.iter_mut().zip(xs.iter()) {
            *y = if x > zero { x } else { a * x };
        }
    });
    let y = x.device().try_tensor_from_vec(y, *x.shape())?;
    let (x_ghost, y_ghost) = (x.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        let gy = std::mem::take::<Vec<E>>(grads.get_or_alloc_mut(&y_ghost)?);
        let gx: &mut Vec<E> = grads.get_or_alloc_mut(&x_ghost)?;
        let isa = Isa::detect();
        simd::run!(isa, |_isa| {
            for ((gx, &gy), &x) in gx.iter_mut().zip(gy.iter()).zip(xs.iter()) {
                let slope = if x > zero { E::ONE } else { a };
                *gx += slope * gy;
            }
        });
        **grads.get_or_alloc_mut(&y_ghost)? = gy;
        Ok(())
    });
    Ok(y.put_tape(tape))
}

macro_rules! cpu_leaky_relu {
    ($($E:ty),+) => {$(
        impl LeakyReLUKernel<$E> for Cpu {
            fn try_leaky_relu<S: Shape, T: Tape<$E, Self>>(
                x: Tensor<S, $E, Self, T>,
                alpha: f32,
            ) -> Result<Tensor<S, $E, Self, T>, CpuError> {
                try_leaky_relu_cpu(x, alpha)
            }
        }
    )+};
}

cpu_leaky_relu!(f32, f64);

#[cfg(feature = "cuda")]
impl<E: Dtype> LeakyReLUKernel<E> for dfdx::tensor::Cuda
where
    dfdx::tensor::Cuda: Device<E>,
{
    fn try_leaky_relu<S: Shape, T: Tape<E, Self>>(
        x: Tensor<S, E, Self, T>,
        alpha: f32,
    ) -> Result<Tensor<S, E, Self, T>, Self::Err> {
        try_leaky_relu_composed(x, alpha)
    }
}
