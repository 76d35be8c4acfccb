//! The runtime's one error type: every variant carries the context a user needs.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Training produced a NaN or infinite loss.
    #[error("non-finite loss {loss} in epoch {epoch}, batch {batch}")]
    NonFiniteLoss {
        /// The loss value.
        loss: f32,
        /// The epoch, from 1.
        epoch: usize,
        /// The batch within the epoch, from 1.
        batch: usize,
    },
    /// A training setting that cannot work.
    #[error("invalid setting: {0}")]
    Config(String),
    /// In-memory data that does not form a data set (lengths, shape, classes).
    #[error("invalid data: {0}")]
    Data(String),
    /// A label outside `0..classes`, in memory.
    #[error("label {label} at index {index} is not below the {classes} classes")]
    LabelOutOfRange {
        /// The sample's index.
        index: usize,
        /// The label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// Data whose samples are not the shape the network takes.
    #[error(
        "network {network} takes samples of shape {expected}, but the data's are {found}{hint}"
    )]
    ShapeMismatch {
        /// The network's name.
        network: &'static str,
        /// The network's input shape, e.g. `1x28x28`.
        expected: String,
        /// The data's sample shape.
        found: String,
        /// A fix where one is known, e.g. "; flatten the data with `Dataset::flatten`".
        hint: &'static str,
    },
    /// More classes in the data than outputs in the network.
    #[error("the data has {classes} classes, but network {network} has only {outputs} outputs")]
    TooManyClasses {
        /// The network's name.
        network: &'static str,
        /// The data's number of classes.
        classes: usize,
        /// The network's number of outputs.
        outputs: usize,
    },
    /// A checkpoint file that is not a valid checkpoint, or not of this model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An error from dfdx's device (allocation, safetensors I/O).
    #[error("device error: {0}")]
    Device(String),
    /// A `.json` file that is not JSON, or not the run result it should be.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
    /// Drawing or encoding a figure failed.
    #[error("plotting {path}: {message}")]
    Plot {
        /// The figure's file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },

    // ---- data: IDX files and the Fashion-MNIST folder (runtime/src/data/) ----
    /// The data directory does not exist.
    #[error("data directory {dir} not found; {INSTALL_HINT}")]
    MissingDataDir {
        /// The folder looked for.
        dir: PathBuf,
    },
    /// A data file does not exist.
    #[error("{path}: file not found; {INSTALL_HINT}")]
    MissingFile {
        /// The file looked for.
        path: PathBuf,
    },
    /// A file named `*.gz` that does not start with the gzip magic bytes `1f 8b`.
    #[error("{path}: not a gzip file (it does not start with the gzip magic bytes 1f 8b)")]
    NotGzip {
        /// The file.
        path: PathBuf,
    },
    /// The gzip stream is damaged (bad header, bad deflate data, CRC mismatch, cut short).
    #[error("{path}: corrupt gzip data: {reason}")]
    CorruptGzip {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The IDX magic number is not the one for this kind of file
    /// (2051 = 0x0803 for images, 2049 = 0x0801 for labels).
    #[error("incorrect magic number {found} != {expected} in {path}")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number of this kind of file.
        expected: u32,
        /// The file's magic number.
        found: u32,
    },
    /// The file ends before the header or the data the header announces.
    #[error(
        "{path}: truncated {what}: the header announces {expected} bytes, the file holds {found}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// `"images"` or `"labels"`, or the header.
        what: &'static str,
        /// The bytes the header announces.
        expected: u128,
        /// The bytes the file holds.
        found: u64,
    },
    /// The header announces more data than a file of this size can hold at all
    /// (checked before anything is allocated).
    #[error("{path}: the header announces {expected} bytes of {what}, more than a {file_len}-byte file can hold")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// The bytes the header announces.
        expected: u128,
        /// The file's length in bytes.
        file_len: u64,
    },
    /// Bytes follow the data the header announces.
    #[error("{path}: {extra} unexpected bytes after the {what} the header announces")]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// The bytes after the data.
        extra: u64,
    },
    /// Image dimensions that are not the ones expected (28x28 for Fashion-MNIST).
    #[error("{path}: images are {rows}x{cols}, expected {expected_rows}x{expected_cols}")]
    BadDims {
        /// The image file.
        path: PathBuf,
        /// The images' height in the file.
        rows: usize,
        /// The images' width in the file.
        cols: usize,
        /// The height expected.
        expected_rows: usize,
        /// The width expected.
        expected_cols: usize,
    },
    /// The image and label files of one set hold different counts.
    #[error("{images_path} holds {images} images but {labels_path} holds {labels} labels")]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// The images it holds.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// The labels it holds.
        labels: usize,
    },
    /// A label file holds a label outside `0..classes`.
    #[error("label {label} at index {index} in {path} is not below the {classes} classes")]
    BadLabel {
        /// The label file.
        path: PathBuf,
        /// The sample's index.
        index: usize,
        /// The label.
        label: u8,
        /// The number of classes.
        classes: usize,
    },
}

/// How to get the Fashion-MNIST files; part of every "not found" message.
pub const INSTALL_HINT: &str =
    "install the data set with `apt-get install dataset-fashion-mnist`, \
     or point `--data DIR` or FASHION_MNIST_DIR at a folder holding the four IDX files";

/// `Result` with the runtime's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An error of dfdx's device, as [`Error::Device`].
pub(crate) fn device_err(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{e:?}"))
}
