//! Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 28x28 grey images of
//! clothing in 10 classes, loaded from the four IDX files into a
//! train / validation / test split.
//!
//! Where the files are looked for, first match wins:
//! 1. the directory given explicitly (the `study` binary's `--data DIR`);
//! 2. the environment variable `FASHION_MNIST_DIR`;
//! 3. `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`).
//!
//! Each file may be gzip (`train-images-idx3-ubyte.gz`, as distributed) or
//! plain (`train-images-idx3-ubyte`); the gzip name is tried first.
//!
//! The split: the 60,000 training images give 55,000 for training and 5,000
//! for validation, one twelfth. By default ([`Split::Last`]) validation is the
//! *last* 5,000 images, in file order: exactly the rows Keras'
//! `model.fit(..., validation_split=1/12)` holds back (it slices the tail of the
//! arrays before shuffling), which is what the study ran, and the rows the peer
//! benchmarks in `shared/peers` used. The file order is already well mixed
//! (each class has 450..=527 of the last 5,000). [`Split::Stratified`] instead draws
//! a stratified random validation set: per class, a share proportional to its
//! size (500 each for Fashion-MNIST), chosen by a seeded shuffle. The 10,000
//! test images are the test set, untouched.
//!
//! ```no_run
//! use netdsl_runtime::data::FashionMnist;
//! let data = FashionMnist::load(None)?; // $FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist
//! assert_eq!((data.train.len(), data.val.len(), data.test.len()), (55_000, 5_000, 10_000));
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};

use super::dataset::{Dataset, SampleShape, Split};
use super::idx::read_idx;
use crate::error::{Error, Result};

/// Where the Debian package `dataset-fashion-mnist` installs the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable that overrides [`DEFAULT_DIR`].
pub const DIR_ENV: &str = "FASHION_MNIST_DIR";
/// Image height and width.
pub const ROWS: usize = 28;
/// Image width.
pub const COLS: usize = 28;
/// Number of classes; labels are `0..CLASSES`.
pub const CLASSES: usize = 10;
/// Validation holds `1 / VAL_DENOMINATOR` of the training file: 5,000 of 60,000
/// (Keras `validation_split = 1/12`).
pub const VAL_DENOMINATOR: usize = 12;
/// The class names, indexed by label (the data set's README).
pub const CLASS_NAMES: [&str; CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// File stems; each is looked for as `<stem>.gz`, then `<stem>`.
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// The three sets of Fashion-MNIST: 1x28x28 `u8` images in 10 named classes.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    /// 55,000 training images.
    pub train: Dataset,
    /// 5,000 validation images (see [`Split`]).
    pub val: Dataset,
    /// The 10,000 test images.
    pub test: Dataset,
}

impl FashionMnist {
    /// Loads the data set from `dir` (see [`FashionMnist::resolve_dir`]) with the
    /// default split, [`Split::Last`].
    pub fn load(dir: Option<&Path>) -> Result<FashionMnist> {
        Self::load_with(dir, Split::Last)
    }

    /// Loads the data set from `dir` with the given validation split.
    pub fn load_with(dir: Option<&Path>, split: Split) -> Result<FashionMnist> {
        let dir = Self::resolve_dir(dir);
        check_dir(&dir)?;
        // The two sets decode in parallel: gunzip dominates the load time.
        let (full, test) = rayon::join(
            || read_set(&dir, TRAIN_IMAGES, TRAIN_LABELS),
            || read_set(&dir, TEST_IMAGES, TEST_LABELS),
        );
        let (train, val) = full?.split(1.0 / VAL_DENOMINATOR as f64, split)?;
        Ok(FashionMnist {
            train,
            val,
            test: test?,
        })
    }

    /// The directory to load from: `dir` when given, else `$FASHION_MNIST_DIR`
    /// when set and non-empty, else [`DEFAULT_DIR`].
    pub fn resolve_dir(dir: Option<&Path>) -> PathBuf {
        if let Some(dir) = dir {
            return dir.to_owned();
        }
        match std::env::var_os(DIR_ENV) {
            Some(env) if !env.is_empty() => PathBuf::from(env),
            _ => PathBuf::from(DEFAULT_DIR),
        }
    }
}

/// `dir` must exist, be a directory and be listable.
fn check_dir(dir: &Path) -> Result<()> {
    let io_err = |source: io::Error| Error::Io {
        path: dir.to_owned(),
        source,
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingDataDir {
            dir: dir.to_owned(),
        }),
        Err(e) => Err(io_err(e)),
        Ok(meta) if !meta.is_dir() => Err(io_err(io::Error::other("not a directory"))),
        Ok(_) => std::fs::read_dir(dir).map(drop).map_err(io_err),
    }
}

/// `<stem>.gz` if it exists, else `<stem>` if it exists, else an error naming the `.gz`.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    let plain = dir.join(stem);
    for path in [&gz, &plain] {
        match path.try_exists() {
            Ok(true) => return Ok(path.clone()),
            Ok(false) => {}
            Err(source) => {
                return Err(Error::Io {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    Err(Error::MissingFile { path: gz })
}

/// Reads one image file and its label file, and checks them against each
/// other and against Fashion-MNIST's 28x28 images and 10 classes.
fn read_set(dir: &Path, images_stem: &str, labels_stem: &str) -> Result<Dataset> {
    let images_path = find_file(dir, images_stem)?;
    let labels_path = find_file(dir, labels_stem)?;
    let data = read_idx(&images_path, &labels_path, Some(CLASSES))?;
    if let SampleShape::Image { height, width, .. } = data.shape() {
        if (height, width) != (ROWS, COLS) {
            return Err(Error::BadDims {
                path: images_path,
                rows: height,
                cols: width,
                expected_rows: ROWS,
                expected_cols: COLS,
            });
        }
    }
    data.with_class_names(CLASS_NAMES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn real_dir() -> PathBuf {
        FashionMnist::resolve_dir(None)
    }

    #[test]
    fn resolve_dir_prefers_explicit() {
        assert_eq!(
            FashionMnist::resolve_dir(Some(Path::new("/x"))),
            PathBuf::from("/x")
        );
    }

    #[test]
    fn missing_dir_names_dir_and_hint() {
        let err = FashionMnist::load(Some(Path::new("/nonexistent/fmnist"))).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::MissingDataDir { .. }), "{msg}");
        assert!(
            msg.contains("/nonexistent/fmnist")
                && msg.contains("apt-get install dataset-fashion-mnist"),
            "{msg}"
        );
    }

    use crate::data::idx::tests::{gzip, images_bytes, labels_bytes, write};
    use crate::data::idx::{IMAGES_MAGIC, LABELS_MAGIC};

    /// Writes a small Fashion-MNIST-like folder: `n_train` and `n_test` 28x28
    /// images labelled `i % 10`, gzip or plain; `edit` may change any file's
    /// bytes (by stem) before they are written.
    fn fake_dir(
        n_train: u32,
        n_test: u32,
        gz: bool,
        edit: impl Fn(&str, &mut Vec<u8>),
    ) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            (
                TRAIN_IMAGES,
                images_bytes(
                    IMAGES_MAGIC,
                    n_train,
                    28,
                    28,
                    &vec![7; n_train as usize * 784],
                ),
            ),
            (
                TRAIN_LABELS,
                labels_bytes(
                    LABELS_MAGIC,
                    n_train,
                    &(0..n_train).map(|i| (i % 10) as u8).collect::<Vec<_>>(),
                ),
            ),
            (
                TEST_IMAGES,
                images_bytes(
                    IMAGES_MAGIC,
                    n_test,
                    28,
                    28,
                    &vec![9; n_test as usize * 784],
                ),
            ),
            (
                TEST_LABELS,
                labels_bytes(
                    LABELS_MAGIC,
                    n_test,
                    &(0..n_test).map(|i| (i % 10) as u8).collect::<Vec<_>>(),
                ),
            ),
        ];
        for (stem, mut bytes) in files {
            edit(stem, &mut bytes);
            if gz {
                write(dir.path(), &format!("{stem}.gz"), &gzip(&bytes));
            } else {
                write(dir.path(), stem, &bytes);
            }
        }
        dir
    }

    /// Loads `dir`, expecting an error whose one-line message names `file`.
    fn load_err(dir: &tempfile::TempDir, file: &str) -> Error {
        let err = FashionMnist::load(Some(dir.path())).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(file) && msg.contains(&dir.path().display().to_string()),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        err
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let dir = fake_dir(12, 2, true, |_, _| {});
        let file = dir.path().join("train-images-idx3-ubyte.gz");
        let err = FashionMnist::load(Some(&file)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("train-images-idx3-ubyte.gz: not a directory"),
            "{err}"
        );
    }

    #[test]
    fn loads_small_gzip_and_plain_folders() {
        for gz in [true, false] {
            let dir = fake_dir(24, 5, gz, |_, _| {});
            let data = FashionMnist::load(Some(dir.path())).unwrap();
            assert_eq!(
                (data.train.len(), data.val.len(), data.test.len()),
                (22, 2, 5)
            );
            assert_eq!(data.val.labels(), &[2, 3]);
            assert_eq!(data.test.sample(4), vec![9.0 / 255.0; 784]);
            assert_eq!(data.test.class_names().unwrap()[9], "Ankle boot");
        }
    }

    #[test]
    fn missing_file_names_the_gz_and_hint() {
        let dir = fake_dir(12, 2, true, |_, _| {});
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let err = load_err(&dir, "t10k-labels-idx1-ubyte.gz");
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("apt-get install dataset-fashion-mnist"),
            "{err}"
        );
    }

    #[test]
    fn images_must_be_28x28() {
        let dir = fake_dir(12, 2, true, |stem, bytes| {
            if stem == TEST_IMAGES {
                // Same byte count, 14x56 instead of 28x28.
                bytes[8..16].copy_from_slice(&[0, 0, 0, 14, 0, 0, 0, 56]);
            }
        });
        let err = load_err(&dir, "t10k-images-idx3-ubyte.gz");
        assert!(
            err.to_string().contains("images are 14x56, expected 28x28"),
            "{err}"
        );
    }

    #[test]
    fn image_and_label_counts_must_agree() {
        let dir = fake_dir(12, 2, false, |stem, bytes| {
            if stem == TRAIN_LABELS {
                bytes[7] = 11;
                bytes.pop();
            }
        });
        let err = load_err(&dir, "train-labels-idx1-ubyte");
        assert!(
            matches!(
                err,
                Error::CountMismatch {
                    images: 12,
                    labels: 11,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn labels_above_9_are_rejected() {
        let dir = fake_dir(12, 2, true, |stem, bytes| {
            if stem == TEST_LABELS {
                bytes[8 + 1] = 10;
            }
        });
        let err = load_err(&dir, "t10k-labels-idx1-ubyte.gz");
        assert!(
            err.to_string().starts_with("label 10 at index 1 in "),
            "{err}"
        );
    }

    #[test]
    fn file_errors_pass_through_with_the_file_name() {
        let dir = fake_dir(12, 2, true, |stem, bytes| {
            if stem == TRAIN_IMAGES {
                bytes[3] = 0x01; // magic 2049: a label file
            }
        });
        let err = load_err(&dir, "train-images-idx3-ubyte.gz");
        assert!(
            err.to_string()
                .starts_with("incorrect magic number 2049 != 2051 in "),
            "{err}"
        );
    }

    #[test]
    fn real_files_load_with_expected_counts() {
        let dir = real_dir();
        let t = Instant::now();
        let data = FashionMnist::load(Some(&dir)).unwrap();
        eprintln!(
            "loaded Fashion-MNIST from {} in {:.3} s",
            dir.display(),
            t.elapsed().as_secs_f64()
        );
        assert_eq!(
            (data.train.len(), data.val.len(), data.test.len()),
            (55_000, 5_000, 10_000)
        );
        for d in [&data.train, &data.val, &data.test] {
            assert_eq!((d.shape().to_string(), d.classes()), ("1x28x28".into(), 10));
        }
        assert_eq!(data.test.class_counts(), vec![1000; CLASSES]);
        let train_counts = data.train.class_counts();
        let val_counts = data.val.class_counts();
        for c in 0..CLASSES {
            assert_eq!(train_counts[c] + val_counts[c], 6000);
        }
        // The seeded split keeps 500 of each class.
        let seeded = FashionMnist::load_with(Some(&dir), Split::Stratified { seed: 0 }).unwrap();
        assert_eq!(seeded.val.class_counts(), vec![500; CLASSES]);
        assert_eq!(seeded.test, data.test);
    }
}
