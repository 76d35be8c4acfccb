//! The runtime's one error type: every variant carries the context a user needs.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Training produced a NaN or infinite loss.
    #[error("non-finite loss {loss} in epoch {epoch}, batch {batch}")]
    NonFiniteLoss { loss: f32, epoch: usize, batch: usize },
    /// A training setting that cannot work.
    #[error("invalid setting: {0}")]
    Config(String),
    /// An error from dfdx's device (allocation, safetensors I/O).
    #[error("device error: {0}")]
    Device(String),
}

/// `Result` with the runtime's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
