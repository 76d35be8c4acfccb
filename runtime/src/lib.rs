//! netdsl-runtime: declare a network with [`network!`], then build, train,
//! evaluate, predict, save and load it, on data of any shape.
//!
//! ```no_run
//! use netdsl_runtime::prelude::*;
//!
//! network! {
//!     /// A small CNN for 28x28 grey images in 10 classes.
//!     pub Net<1, 28, 28> {
//!         conv<32, 3>, relu, maxpool<2>,
//!         flatten, dense<128>, relu, dense<10>,
//!     }
//! }
//!
//! let data = FashionMnist::load(None)?;                 // /usr/share/datasets/fashion-mnist
//! let dev = Cpu::seed_from_u64(0);
//! let mut model = Model::<Net>::new(&dev)?;
//! let fit = Fit { epochs: 2, batch: 100, ..Fit::default() };
//! let history = model.fit_with(&data.train, &data.val, &fit, &mut PrintEpochs)?;
//! let eval = model.evaluate(&data.test)?;               // loss, accuracy, 10x10 confusion
//! let p = model.predict_sample(&data.test, 0)?;         // class and probabilities
//! model.save("net.safetensors")?;
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```
//!
//! The modules, in the order data flows through them:
//!
//! - [`data`]: [`Dataset`](data::Dataset) (C x H x W images or vectors, `u8`
//!   or `f32`, any number of classes), IDX files, Fashion-MNIST, augmentation.
//! - [`network`](mod@network): what `network!` implements ([`Network`](network::Network),
//!   summaries); [`nn`]: the layers it builds from.
//! - [`model`]: [`Model`](model::Model), a network built on a device.
//! - [`train`]: [`Fit`](train::Fit), the loop, observers, early stopping;
//!   [`optim`]: Adam and SGD as Keras computes them, schedules; [`loss`].
//! - [`eval`], [`predict`]: evaluation with a confusion matrix, prediction.
//! - [`checkpoint`]: save and load models and resumable training state.
//! - [`metrics`]: histories, evaluations, and their snapshots for tests;
//!   [`plot`]: learning curves, comparisons, confusion matrices as PNG.
//!
//! Models train on the CPU (`Cpu`), or on an NVIDIA GPU with the `cuda`
//! feature (dfdx's `Cuda`, built with `cuda_device`, which checks the driver
//! first; [`cuda_available`] says whether there is one). A `cuda` build needs
//! the driver's `libcuda.so.1` to start at all: use the default build on
//! machines without one.
//!
//! Users depend on this crate alone: it re-exports the [`network!`] macro and
//! [`dfdx`] itself, so their versions cannot drift apart.

#![deny(missing_docs)]

// `network!` expands to `::netdsl_runtime::...` paths; this lets the crate's
// own tests use the macro.
extern crate self as netdsl_runtime;

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod eval;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod network;
pub mod nn;
pub mod optim;
pub mod plot;
pub mod predict;
pub mod train;

/// dfdx 0.13, the tensor library the models are built on (re-exported, so
/// users need no dependency of their own).
pub use dfdx;
pub use error::{Error, Result};
pub use model::cuda_available;
#[cfg(feature = "cuda")]
pub use model::{cuda_device, cuda_probe, CudaInfo};
pub use netdsl_macros::network;

/// What a user of the library needs in scope: `use netdsl_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::data::{read_idx, Augment, Dataset, FashionMnist, SampleShape, Split};
    pub use crate::error::Error;
    pub use crate::eval::confusion_table;
    pub use crate::metrics::{EpochMetrics, Evaluation, History, Stop};
    pub use crate::model::Model;
    pub use crate::network::Network;
    pub use crate::optim::{Optimizer, Schedule};
    pub use crate::predict::Prediction;
    pub use crate::train::{
        Control, EarlyStopping, EpochEnd, Fit, FitPlan, Monitor, Observer, PrintEpochs, Trainer,
        Validation,
    };
    #[cfg(feature = "cuda")]
    pub use dfdx::prelude::Cuda;
    pub use dfdx::prelude::{Const, Cpu, Rank1, Rank3, Tensor, TensorFrom, TensorFromVec};
    pub use netdsl_macros::network;
}

/// Paths the `network!` expansion names; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use dfdx;
}

#[cfg(test)]
mod tests;
