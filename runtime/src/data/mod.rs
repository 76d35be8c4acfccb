//! Data: in-memory vectors or IDX files -> [`Dataset`] (samples of any shape,
//! `u8` or `f32`, any number of classes) -> `f32` batches, augmented on the fly.
//!
//! - [`dataset`]: [`Dataset`], its checked constructor, splits, batches.
//! - [`idx`]: the IDX reader (plain or gzip), every malformed input a typed
//!   error, and [`read_idx`] for any MNIST-format pair of files.
//! - [`fashion_mnist`]: the loader (`--data DIR` > `$FASHION_MNIST_DIR` >
//!   `/usr/share/datasets/fashion-mnist`) and the 55,000 / 5,000 / 10,000 split.
//! - [`augment`]: seeded, thread-count-independent affine + flip + noise
//!   augmentation for images of any channel count.
//!
//! ```no_run
//! use netdsl_runtime::data::{Augment, FashionMnist};
//! let data = FashionMnist::load(None)?;
//! let mut x = Vec::new();
//! data.train.batch_into(&[0, 1, 2], &mut x); // [3, 1, 28, 28] in [0, 1]
//! Augment { rotation_deg: 10.0, ..Augment::default() }.apply(&mut x, (1, 28, 28), 0);
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

pub mod augment;
pub mod dataset;
pub mod fashion_mnist;
pub mod idx;

pub use augment::{Augment, Transform};
pub use dataset::{Dataset, SampleShape, Split, Values};
pub use fashion_mnist::{FashionMnist, CLASSES, CLASS_NAMES, DEFAULT_DIR, DIR_ENV};
pub use idx::{
    parse_idx_images, parse_idx_labels, read_idx, read_idx_images, read_idx_labels, IdxImages,
};
