//! The `Cuda` layer paths against the `Cpu` ones (feature `cuda`): two small
//! networks holding the layers that have a `Cuda` kernel (the second one the
//! batchnorm layers), the same parameters on both devices, the same outputs,
//! gradients and moving statistics.
//!
//! The test executable links the driver's `libcuda.so.1` and does not start
//! on a machine without one. Build it anywhere, run it on a GPU machine:
//!
//! ```text
//! eval "$(scripts/cuda-toolkit.sh)"
//! CARGO_TARGET_DIR=target/cuda cargo test --release -p netdsl-runtime --features cuda --lib --no-run
//! scripts/gpu-carry.sh     # then, on the GPU machine: scripts/gpu-check.sh
//! ```
//!
//! Where the driver answers but sees no GPU (or the link-only stub of
//! `scripts/cuda-toolkit.sh` stands in for it), each test skips, saying why.
//! Tolerances (`assert_close`: the largest error relative to each value,
//! with a floor of 1e-3 of the largest magnitude): f32 1e-4, f64 1e-10, the
//! gap that cuBLAS's and this crate's summation orders leave.

use dfdx::prelude::*;

use super::builders::{
    BatchNorm, Conv2D, ConvBlock, ConvBnBlock, Dense, Dropout, Flatten, MaxPool2D,
};
use super::f32_bits;
use crate::tests::{assert_close, max_rel_error, test_values};

/// Every layer with a `Cuda` path: a first block (no input gradient), a
/// padded block without pooling, a plain 2x3 convolution, a pool, the dense head.
/// Dropout at rate 0 keeps the comparison deterministic.
type Net = (
    ConvBlock<1, 4, 3, 3, 1, 1, 0, 0, 12, 12, 10, 10, 2, 2, 5, 5, 0, false>, // [B, 4, 5, 5]
    ConvBlock<4, 6, 3, 3, 1, 1, 1, 1, 5, 5, 5, 5, 1, 1, 5, 5, 0, true>,      // [B, 6, 5, 5]
    Conv2D<6, 8, 2, 3, 1, 1, 0, 0, 5, 5, 4, 3>,                              // [B, 8, 4, 3]
    MaxPool2D<8, 2, 2, 4, 3, 2, 1>,                                          // [B, 8, 2, 1]
    Flatten<8, 2, 1, 16>,                                                    // [B, 16]
    (Dense<16, 10>, Dropout<{ f32_bits(0.0) }>),                             // [B, 10]
);

/// dfdx's `Cuda` device 0 seeded with `seed`, or `None` after printing why
/// `test` skips (the runtime's `cuda_device`: an error, not cudarc's panic).
fn cuda_or_skip(test: &str, seed: u64) -> Option<Cuda> {
    match crate::cuda_device(seed) {
        Ok(dev) => Some(dev),
        Err(e) => {
            eprintln!("{test}: skipped, no CUDA device: {e}");
            None
        }
    }
}

/// Builds `Net` on `Cpu` in dtype `$E`, copies it to `Cuda`, and compares a
/// forward pass without tape, one with (`forward_mut`, as in training) and
/// the gradients of every weight and of the input under `loss = Σ y·r`.
macro_rules! cuda_matches_cpu {
    ($name:ident, $E:ty, $tol:expr) => {
        #[test]
        fn $name() {
            let cpu: Cpu = Cpu::seed_from_u64(0);
            let Some(cuda) = cuda_or_skip(stringify!($name), 0) else {
                return;
            };
            let mut m_cpu = cpu.build_module::<Net, $E>();
            let mut m_cuda = m_cpu.to_device(&cuda);
            let batch = 3;
            let values =
                |n, seed| -> Vec<$E> { test_values(n, seed).iter().map(|&v| v as $E).collect() };
            let (xv, rv) = (values(batch * 144, 1), values(batch * 10, 2));
            let x_shape = (batch, Const::<1>, Const::<12>, Const::<12>);
            let (x_cpu, x_cuda) = (
                cpu.tensor_from_vec(xv.clone(), x_shape),
                cuda.tensor_from_vec(xv, x_shape),
            );
            let (r_cpu, r_cuda) = (
                cpu.tensor_from_vec(rv.clone(), (batch, Const::<10>)),
                cuda.tensor_from_vec(rv, (batch, Const::<10>)),
            );

            let y_cpu = m_cpu.forward(x_cpu.clone()).as_vec();
            assert_close(&m_cuda.forward(x_cuda.clone()).as_vec(), &y_cpu, $tol);

            let y = m_cpu.forward_mut(x_cpu.leaky_trace());
            assert_close(&y.as_vec(), &y_cpu, 0.0);
            let g_cpu = (y * r_cpu).sum::<Rank0, _>().backward();
            let y = m_cuda.forward_mut(x_cuda.leaky_trace());
            assert_close(&y.as_vec(), &y_cpu, $tol);
            let g_cuda = (y * r_cuda).sum::<Rank0, _>().backward();

            let pairs = [
                (
                    "block 1 weight",
                    g_cuda.get(&m_cuda.0.weight).as_vec(),
                    g_cpu.get(&m_cpu.0.weight).as_vec(),
                ),
                (
                    "block 1 bias",
                    g_cuda.get(&m_cuda.0.bias).as_vec(),
                    g_cpu.get(&m_cpu.0.bias).as_vec(),
                ),
                (
                    "block 2 weight",
                    g_cuda.get(&m_cuda.1.weight).as_vec(),
                    g_cpu.get(&m_cpu.1.weight).as_vec(),
                ),
                (
                    "conv weight",
                    g_cuda.get(&m_cuda.2.weight).as_vec(),
                    g_cpu.get(&m_cpu.2.weight).as_vec(),
                ),
                (
                    "dense weight",
                    g_cuda.get(&m_cuda.5 .0.weight).as_vec(),
                    g_cpu.get(&m_cpu.5 .0.weight).as_vec(),
                ),
                (
                    "dense bias",
                    g_cuda.get(&m_cuda.5 .0.bias).as_vec(),
                    g_cpu.get(&m_cpu.5 .0.bias).as_vec(),
                ),
            ];
            for (what, cuda, cpu) in pairs {
                let widen = |v: &[$E]| -> Vec<f64> { v.iter().map(|&x| x.into()).collect() };
                let err = max_rel_error(&widen(&cuda), &widen(&cpu));
                eprintln!(
                    "{}: {what}: {} values, largest relative error {err:.1e} (tolerance {:e})",
                    stringify!($E),
                    cpu.len(),
                    $tol
                );
                assert_close(&cuda, &cpu, $tol);
            }
        }
    };
}

cuda_matches_cpu!(net_f32_matches_cpu, f32, 1e-4);
cuda_matches_cpu!(net_f64_matches_cpu, f64, 1e-10);

/// The batchnorm layers: a first fused conv-batchnorm-relu-maxpool block, an
/// unpooled one, and batchnorm after a dense layer without bias.
type BnNet = (
    ConvBnBlock<1, 4, 3, 3, 1, 1, 1, 1, 8, 8, 8, 8, 2, 2, 4, 4, 0, false>, // [B, 4, 4, 4]
    ConvBnBlock<4, 4, 3, 3, 1, 1, 0, 0, 4, 4, 2, 2, 1, 1, 2, 2, 0, true>,  // [B, 4, 2, 2]
    Flatten<4, 2, 2, 16>,                                                  // [B, 16]
    Dense<16, 10, 0, false>,                                               // [B, 10]
    BatchNorm<10>,                                                         // [B, 10]
);

/// `BnNet` on both devices: a training step's outputs, the gradients of the
/// kernels and of gamma and beta, the moving statistics it leaves, then
/// evaluation with them.
macro_rules! cuda_batchnorm_matches_cpu {
    ($name:ident, $E:ty, $tol:expr) => {
        #[test]
        fn $name() {
            let cpu: Cpu = Cpu::seed_from_u64(0);
            let Some(cuda) = cuda_or_skip(stringify!($name), 0) else {
                return;
            };
            let mut m_cpu = cpu.build_module::<BnNet, $E>();
            let mut m_cuda = m_cpu.to_device(&cuda);
            let batch = 5;
            let values =
                |n, seed| -> Vec<$E> { test_values(n, seed).iter().map(|&v| v as $E).collect() };
            let (xv, rv) = (values(batch * 64, 3), values(batch * 10, 4));
            let x_shape = (batch, Const::<1>, Const::<8>, Const::<8>);
            let (x_cpu, x_cuda) = (
                cpu.tensor_from_vec(xv.clone(), x_shape),
                cuda.tensor_from_vec(xv, x_shape),
            );
            let (r_cpu, r_cuda) = (
                cpu.tensor_from_vec(rv.clone(), (batch, Const::<10>)),
                cuda.tensor_from_vec(rv, (batch, Const::<10>)),
            );
            let y = m_cpu.forward_mut(x_cpu.leaky_trace());
            let y_cpu = y.as_vec();
            let g_cpu = (y * r_cpu).sum::<Rank0, _>().backward();
            let y = m_cuda.forward_mut(x_cuda.leaky_trace());
            assert_close(&y.as_vec(), &y_cpu, $tol);
            let g_cuda = (y * r_cuda).sum::<Rank0, _>().backward();
            let pairs = [
                (
                    g_cuda.get(&m_cuda.0.weight).as_vec(),
                    g_cpu.get(&m_cpu.0.weight).as_vec(),
                ),
                (
                    g_cuda.get(&m_cuda.0.gamma).as_vec(),
                    g_cpu.get(&m_cpu.0.gamma).as_vec(),
                ),
                (
                    g_cuda.get(&m_cuda.1.weight).as_vec(),
                    g_cpu.get(&m_cpu.1.weight).as_vec(),
                ),
                (
                    g_cuda.get(&m_cuda.1.beta).as_vec(),
                    g_cpu.get(&m_cpu.1.beta).as_vec(),
                ),
                (
                    g_cuda.get(&m_cuda.3.weight).as_vec(),
                    g_cpu.get(&m_cpu.3.weight).as_vec(),
                ),
                (
                    g_cuda.get(&m_cuda.4.gamma).as_vec(),
                    g_cpu.get(&m_cpu.4.gamma).as_vec(),
                ),
                (m_cuda.0.moving_mean.as_vec(), m_cpu.0.moving_mean.as_vec()),
                (
                    m_cuda.1.moving_variance.as_vec(),
                    m_cpu.1.moving_variance.as_vec(),
                ),
                (m_cuda.4.moving_mean.as_vec(), m_cpu.4.moving_mean.as_vec()),
            ];
            for (cuda, cpu) in pairs {
                assert_close(&cuda, &cpu, $tol);
            }
            let e_cpu = m_cpu.forward(x_cpu).as_vec();
            assert_close(&m_cuda.forward(x_cuda).as_vec(), &e_cpu, $tol);
        }
    };
}

cuda_batchnorm_matches_cpu!(batchnorm_f32_matches_cpu, f32, 1e-4);
cuda_batchnorm_matches_cpu!(batchnorm_f64_matches_cpu, f64, 1e-10);

#[test]
fn dropout_drops_and_rescales_on_cuda() {
    let Some(cuda) = cuda_or_skip("dropout_drops_and_rescales_on_cuda", 7) else {
        return;
    };
    let mut m = cuda.build_module::<Dropout<{ f32_bits(0.5) }>, f32>();
    let x: Tensor<Rank2<64, 64>, f32, _> = cuda.ones();
    let y = m.forward_mut(x.leaky_trace());
    let ys = y.as_vec();
    assert!(
        ys.iter().all(|v| *v == 0.0 || *v == 2.0),
        "values other than 0 and 2"
    );
    // 4096 Bernoulli(0.5) draws: mean 2048, sd 32.
    let kept = ys.iter().filter(|v| **v != 0.0).count();
    assert!((1850..2250).contains(&kept), "kept {kept}");
    let grads = y.sum::<Rank0, _>().backward();
    assert_eq!(grads.get(&x).as_vec(), ys, "d(sum y)/dx is the mask scale");
}
