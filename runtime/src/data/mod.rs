//! Data: IDX files -> [`Dataset`] (u8 pixels and labels) -> `f32` batches,
//! augmented on the fly.
//!
//! - [`idx`]: the IDX reader (plain or gzip), every malformed input a typed error.
//! - [`dataset`]: [`Dataset`], batches scaled to `[0, 1]` as they are formed.
//! - [`fashion_mnist`]: the loader (`--data DIR` > `$FASHION_MNIST_DIR` >
//!   `/usr/share/datasets/fashion-mnist`) and the 55,000 / 5,000 / 10,000 split.
//! - [`augment`]: seeded, thread-count-independent affine + flip + noise augmentation.
//!
//! ```no_run
//! use netdsl_runtime::data::{Augment, FashionMnist};
//! let data = FashionMnist::load(None)?;
//! let mut x = Vec::new();
//! data.train.batch_into(&[0, 1, 2], &mut x); // [3, 784] in [0, 1]
//! Augment::study().apply(&mut x, 28, 28, 0);
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

pub mod augment;
pub mod dataset;
pub mod fashion_mnist;
pub mod idx;

pub use augment::{Augment, Transform};
pub use dataset::Dataset;
pub use fashion_mnist::{
    split_validation, FashionMnist, Split, CLASSES, CLASS_NAMES, DEFAULT_DIR, DIR_ENV,
};
pub use idx::{parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, IdxImages};
