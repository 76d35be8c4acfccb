//! Every layer's computation, apart from the layer types.
//!
//! The convention of `nn/`: a layer file (`nn/conv2d.rs`, `nn/max_pool2d.rs`,
//! ...) holds the layer's type, its builder, its shape arithmetic, its
//! `Module` impls and the trait through which a device runs it
//! (`Conv2DKernel`, ...). The trait's impls for `Cpu` and `Cuda`, and all the
//! code they run, live here, one module per layer:
//!
//! | module | runs |
//! |---|---|
//! | `conv2d/` | `Conv2D` and `ConvBlock`: the Cpu dispatch (`mod.rs`), im2col + gemm, Winograd, the direct first layer; the composed path for Cuda |
//! | `conv_bn.rs` | `ConvBnBlock`: the convolution, batchnorm, ReLU and pooling in one pass |
//! | `dense/` | `Dense`: gemm on Cpu, composed for Cuda |
//! | `pool.rs` | `MaxPool2D`, `AvgPool2D`, and the pooling rule (floor, ties, fused ReLU) every max pool uses |
//! | `batch_norm.rs` | `BatchNorm` (and its normalise, ReLU and pool pass) |
//! | `dropout.rs`, `leaky_relu.rs` | `Dropout`, `LeakyReLU` |
//!
//! and what they share:
//!
//! | module | for |
//! |---|---|
//! | `gemm.rs` | the matrix product, the element type ([`gemm::GemmFloat`]), copies out of dfdx tensors |
//! | `recycle.rs` | scratch buffers reused across calls |
//! | `tasks.rs` | the fixed split of a batch into rayon tasks |
//! | `transpose.rs` | blocked transposes |
//! | `simd.rs` | the run-time choice of AVX2 + FMA |

pub(crate) mod batch_norm;
pub(crate) mod conv2d;
pub(crate) mod conv_bn;
pub(crate) mod dense;
pub(crate) mod dropout;
pub(crate) mod gemm;
pub(crate) mod leaky_relu;
pub(crate) mod pool;
pub(crate) mod recycle;
/// Run-time choice of AVX2 + FMA for loops outside `nn` too (`optim.rs`'s
/// Adam update, `data`'s batch copies), which a build without flags
/// compiles for SSE2 only.
pub(crate) mod simd;
pub(crate) mod tasks;
pub(crate) mod transpose;
