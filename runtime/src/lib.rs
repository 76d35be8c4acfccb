//! netdsl-runtime: everything a `network!` model needs at run time.
//!
//! - [`nn`]: the layers dfdx 0.13 lacks on stable Rust (`Conv2D`, `MaxPool2D`,
//!   `Flatten`) plus `Dense`/`Dropout` with Keras' initialisation and per-layer L2.
//! - [`data`]: the IDX reader, the Fashion-MNIST loader and on-the-fly augmentation.
//! - [`train`] / [`eval`]: the training loop (Adam, dropout, L2) and evaluation.
//! - [`metrics`]: per-epoch history and run results (serde).
//! - [`report`] / [`plot`]: results tables and learning curves.
//!
//! Users depend on this crate alone: it re-exports the [`network!`] macro.

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod eval;
pub mod metrics;
pub mod network;
pub mod nn;
pub mod optim;
pub mod plot;
pub mod report;
pub mod train;

pub use error::{Error, Result};
pub use netdsl_macros::network;

/// Paths the `network!` expansion names; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use dfdx;
}

#[cfg(test)]
mod tests;
