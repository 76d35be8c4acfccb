//! netdsl-experiments: the Fashion-MNIST study (14 dense and convolutional
//! variants, originally Keras on a GPU) rebuilt with netdsl, and the `study`
//! program that reproduces its results table and figures.
//!
//! - [`variants`]: the fourteen `network!` declarations and their training
//!   settings (optimizer, augmentation), one [`variants::Variant`] each.
//! - [`overrides`], [`regularize`]: settings a run changes without a rebuild
//!   (`--set`: learning rate, augmentation, dropout rates, L2).
//! - [`jobs`]: a command's jobs (variant x sweep point x seed), their file
//!   names, and the shards of a Slurm array.
//! - [`session`]: one `study run`: data, locks, checks, then every job.
//! - [`prepare`]: every job's checks before the first epoch, and how it
//!   starts (`--resume`: finished, from its checkpoint, or over).
//! - [`run`]: one job's run (progress, checkpoints, `<stem>.json`), on the
//!   device `--device` names ([`device`]: `cpu`, or `cuda` in a build with
//!   the `cuda` feature).
//! - [`identity`]: what determines a run's numbers; `--resume` checks it.
//! - [`folder`]: the output folder's locks, stale temporary files, `*.prev`.
//! - [`results`]: the `<stem>.json` format.
//! - [`console`]: stdout and stderr lines that fail instead of panicking.
//! - [`report`]: the study's published table and the report folder;
//!   [`seeds`]: results grouped over seeds (means, intervals, bands);
//!   [`stats`]: mean, standard deviation, Student-t intervals;
//!   [`svg`]: the band and calibration figures;
//!   [`calibration`]: the grids of the eight rows that differ from the study.
//! - [`bench`](mod@bench), [`peers`]: the study's epoch benchmark and the peer figures.
//!
//! Run the study: `cargo run --release -p netdsl-experiments --bin study -- run all`.

pub mod bench;
pub mod calibration;
pub mod console;
pub mod device;
pub mod folder;
pub mod identity;
pub mod jobs;
pub mod overrides;
pub mod peers;
pub mod prepare;
pub mod regularize;
pub mod report;
pub mod results;
pub mod run;
pub mod seeds;
pub mod session;
pub mod stats;
pub mod svg;
pub mod variants;
