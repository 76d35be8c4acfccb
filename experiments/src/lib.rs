//! netdsl-experiments: the Fashion-MNIST study (14 dense and convolutional
//! variants, originally Keras on a GPU) rebuilt with netdsl, and the `study`
//! program that reproduces its results table and figures.
//!
//! - [`variants`]: the fourteen `network!` declarations and their training
//!   settings (optimizer, augmentation), one [`variants::Variant`] each.
//! - [`prepare`]: every variant's checks before the first epoch, and how it
//!   starts (`--resume`: finished, from its checkpoint, or over).
//! - [`run`]: one variant's run (progress, checkpoints, `<id>.json`).
//! - [`identity`]: what determines a run's numbers; `--resume` checks it.
//! - [`folder`]: the output folder's lock, stale temporary files, `*.prev`.
//! - [`results`]: the `<id>.json` format.
//! - [`console`]: stdout and stderr lines that fail instead of panicking.
//! - [`report`]: the study's published table and the report folder.
//! - [`bench`](mod@bench), [`peers`]: the study's epoch benchmark and the peer figures.
//!
//! Run the study: `cargo run --release -p netdsl-experiments --bin study -- run all`.

pub mod bench;
pub mod console;
pub mod folder;
pub mod identity;
pub mod peers;
pub mod prepare;
pub mod report;
pub mod results;
pub mod run;
pub mod variants;
