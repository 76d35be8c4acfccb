//! IDX reader: the file format of MNIST and Fashion-MNIST, plain or gzip.
//!
//! An IDX file is a big-endian header followed by raw `u8` data
//! (<http://yann.lecun.com/exdb/mnist/>, "FILE FORMATS"):
//!
//! ```text
//! images: magic 0x00000803 (2051), count: u32, rows: u32, cols: u32, then count*rows*cols pixels
//! labels: magic 0x00000801 (2049), count: u32,                         then count labels
//! ```
//!
//! A file whose first two bytes are the gzip magic `1f 8b` is decompressed on
//! the fly; any other file is read as plain IDX, except that a file named
//! `*.gz` must be gzip. Every malformed input is an [`Error`] naming the file
//! and the problem, never a panic. Nothing is allocated beyond what the input
//! can justify: the size the header announces is checked against the file's
//! length (or, for gzip, against the most deflate can expand it, 1032:1)
//! before any buffer is made, and reading stops one byte past that size.
//!
//! ```no_run
//! use netdsl_runtime::data::{read_idx_images, read_idx_labels};
//! # use std::path::Path;
//! let images = read_idx_images(Path::new("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))?;
//! let labels = read_idx_labels(Path::new("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"))?;
//! assert_eq!((images.count, images.rows, images.cols, labels.len()), (10_000, 28, 28, 10_000));
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::GzDecoder;

use super::dataset::Dataset;
use crate::error::{Error, Result};

/// Magic number of an IDX image file: unsigned bytes (0x08), 3 dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file: unsigned bytes (0x08), 1 dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The first two bytes of every gzip file (RFC 1952, section 2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Deflate expands data by at most 1032:1 (zlib's technical details, "maximum
/// compression factor"), so an `n`-byte gzip file holds at most `1032 n` bytes.
const MAX_INFLATE_RATIO: u64 = 1032;
/// Initial buffer for gzip data, as a multiple of the compressed size: enough
/// for the Fashion-MNIST files (ratio ~1.8) without growing, never huge.
const GZIP_CAPACITY_RATIO: u64 = 4;

/// The content of an IDX image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// `count * rows * cols` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
    /// Number of images.
    pub count: usize,
    /// Height of each image.
    pub rows: usize,
    /// Width of each image.
    pub cols: usize,
}

/// Reads an IDX image file (magic 2051), plain or gzip.
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let (src, len) = open(path)?;
    decode(path, src, len, Kind::Images).map(Idx::into_images)
}

/// Reads an IDX label file (magic 2049), plain or gzip. Labels are returned
/// as stored; checking them against a number of classes is the loader's job.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let (src, len) = open(path)?;
    decode(path, src, len, Kind::Labels).map(|idx| idx.data)
}

/// [`read_idx_images`] on bytes already in memory; `path` only names them in errors.
pub fn parse_idx_images(path: &Path, bytes: &[u8]) -> Result<IdxImages> {
    decode(path, bytes, bytes.len() as u64, Kind::Images).map(Idx::into_images)
}

/// [`read_idx_labels`] on bytes already in memory; `path` only names them in errors.
pub fn parse_idx_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    decode(path, bytes, bytes.len() as u64, Kind::Labels).map(|idx| idx.data)
}

/// Reads an MNIST-format pair of IDX files (images, labels; plain or gzip)
/// into a [`Dataset`] of 1 x rows x cols `u8` images.
///
/// With `classes`, every label must be below it; without, the class count is
/// the largest label plus one.
///
/// ```no_run
/// use netdsl_runtime::data::read_idx;
/// # use std::path::Path;
/// let dir = Path::new("/usr/share/datasets/fashion-mnist");
/// let test = read_idx(&dir.join("t10k-images-idx3-ubyte.gz"), &dir.join("t10k-labels-idx1-ubyte.gz"), Some(10))?;
/// assert_eq!((test.len(), test.shape().to_string()), (10_000, "1x28x28".to_string()));
/// # Ok::<(), netdsl_runtime::Error>(())
/// ```
///
/// # Errors
/// Every error of [`read_idx_images`] and [`read_idx_labels`], plus
/// [`Error::CountMismatch`] and [`Error::BadLabel`].
pub fn read_idx(images_path: &Path, labels_path: &Path, classes: Option<usize>) -> Result<Dataset> {
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if labels.len() != images.count {
        return Err(Error::CountMismatch {
            images_path: images_path.to_owned(),
            images: images.count,
            labels_path: labels_path.to_owned(),
            labels: labels.len(),
        });
    }
    let max = labels.iter().copied().max().map_or(0, usize::from);
    let classes = classes.unwrap_or(max + 1);
    if let Some(index) = labels.iter().position(|&y| usize::from(y) >= classes) {
        return Err(Error::BadLabel {
            path: labels_path.to_owned(),
            index,
            label: labels[index],
            classes,
        });
    }
    let labels = labels.into_iter().map(u32::from).collect();
    Dataset::new(
        images.pixels,
        labels,
        (1, images.rows, images.cols),
        classes,
    )
}

/// Which of the two IDX layouts a file must have.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images => IMAGES_MAGIC,
            Kind::Labels => LABELS_MAGIC,
        }
    }

    /// Magic plus one `u32` per dimension.
    fn header_len(self) -> usize {
        match self {
            Kind::Images => 16,
            Kind::Labels => 8,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Images => "image data",
            Kind::Labels => "label data",
        }
    }
}

/// A decoded IDX file: its dimensions (count first) and data.
struct Idx {
    dims: [usize; 3],
    data: Vec<u8>,
}

impl Idx {
    fn into_images(self) -> IdxImages {
        let [count, rows, cols] = self.dims;
        IdxImages {
            pixels: self.data,
            count,
            rows,
            cols,
        }
    }
}

/// Opens `path` for buffered reading and returns its length in bytes.
fn open(path: &Path) -> Result<(BufReader<File>, u64)> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => Error::MissingFile {
            path: path.to_owned(),
        },
        _ => Error::Io {
            path: path.to_owned(),
            source,
        },
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(Error::Io {
            path: path.to_owned(),
            source: io::Error::other("is a directory, expected an IDX file"),
        });
    }
    Ok((BufReader::new(file), meta.len()))
}

/// Detects gzip by its magic bytes and decodes the IDX data of `src`
/// (`file_len` bytes long) as `kind`.
fn decode<R: BufRead>(path: &Path, mut src: R, file_len: u64, kind: Kind) -> Result<Idx> {
    let head = src.fill_buf().map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let is_gzip = head.starts_with(&GZIP_MAGIC);
    let named_gz = path.extension().is_some_and(|ext| ext == "gz");
    if is_gzip {
        let src = GzDecoder::new(src);
        let limits = Limits {
            max: file_len.saturating_mul(MAX_INFLATE_RATIO),
            capacity: file_len.saturating_mul(GZIP_CAPACITY_RATIO),
            file_len,
            exact: false,
        };
        decode_idx(path, src, limits, kind, gzip_error)
    } else if named_gz {
        Err(Error::NotGzip {
            path: path.to_owned(),
        })
    } else {
        let limits = Limits {
            max: file_len,
            capacity: file_len,
            file_len,
            exact: true,
        };
        decode_idx(path, src, limits, kind, plain_error)
    }
}

/// Bounds on what a source of `file_len` bytes can hold once decoded.
struct Limits {
    /// The most bytes the source can possibly decode to.
    max: u64,
    /// How much to reserve up front (the buffer may still grow up to `max`).
    capacity: u64,
    file_len: u64,
    /// Whether `max` is exact (a plain file), so that falling short is a truncation.
    exact: bool,
}

fn plain_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn gzip_error(path: &Path, source: io::Error) -> Error {
    let reason = match source.kind() {
        io::ErrorKind::UnexpectedEof => "the gzip stream ends early (truncated file)".to_owned(),
        _ => source.to_string(),
    };
    Error::CorruptGzip {
        path: path.to_owned(),
        reason,
    }
}

/// Reads the header, checks it against `limits`, then reads exactly the data it announces.
fn decode_idx<R: Read>(
    path: &Path,
    mut src: R,
    limits: Limits,
    kind: Kind,
    io_error: fn(&Path, io::Error) -> Error,
) -> Result<Idx> {
    // Header: magic, then one big-endian u32 per dimension.
    let header_len = kind.header_len();
    let mut header = [0u8; 16];
    let got = read_full(&mut src, &mut header[..header_len]).map_err(|e| io_error(path, e))?;
    if got < header_len {
        return Err(Error::Truncated {
            path: path.to_owned(),
            what: "header",
            expected: header_len as u128,
            found: got as u64,
        });
    }
    let word = |i: usize| {
        u32::from_be_bytes([
            header[4 * i],
            header[4 * i + 1],
            header[4 * i + 2],
            header[4 * i + 3],
        ])
    };
    let magic = word(0);
    if magic != kind.magic() {
        return Err(Error::BadMagic {
            path: path.to_owned(),
            expected: kind.magic(),
            found: magic,
        });
    }
    let dims = match kind {
        Kind::Images => [word(1), word(2), word(3)],
        Kind::Labels => [word(1), 1, 1],
    };

    // Size check before any allocation: three u32 factors cannot overflow u128.
    let expected = dims.iter().map(|&d| u128::from(d)).product::<u128>();
    let room = limits.max.saturating_sub(header_len as u64);
    if expected > u128::from(room) {
        return Err(if limits.exact {
            Error::Truncated {
                path: path.to_owned(),
                what: kind.what(),
                expected,
                found: room,
            }
        } else {
            Error::TooLarge {
                path: path.to_owned(),
                what: kind.what(),
                expected,
                file_len: limits.file_len,
            }
        });
    }
    // expected <= room <= u64::MAX; usize is 64 bits on every target dfdx builds for,
    // but stay honest on others.
    let too_large = || Error::TooLarge {
        path: path.to_owned(),
        what: kind.what(),
        expected,
        file_len: limits.file_len,
    };
    let expected = u64::try_from(expected).map_err(|_| too_large())?;
    let expected_usize = usize::try_from(expected).map_err(|_| too_large())?;
    let dims = dims.map(|d| d as usize);

    // Data: read one byte past the announced size to detect trailing bytes.
    let capacity = expected.min(limits.capacity) as usize;
    let mut data = Vec::with_capacity(capacity);
    let mut bounded = src.take(expected.saturating_add(1));
    bounded
        .read_to_end(&mut data)
        .map_err(|e| io_error(path, e))?;
    if data.len() < expected_usize {
        return Err(Error::Truncated {
            path: path.to_owned(),
            what: kind.what(),
            expected: u128::from(expected),
            found: data.len() as u64,
        });
    }
    if data.len() > expected_usize {
        // Count the rest without storing it (bounded by the input, like all reads here).
        let rest =
            io::copy(&mut bounded.into_inner(), &mut io::sink()).map_err(|e| io_error(path, e))?;
        return Err(Error::TrailingData {
            path: path.to_owned(),
            what: kind.what(),
            extra: rest + 1,
        });
    }
    Ok(Idx { dims, data })
}

/// Like `read_exact`, but returns how many bytes were read when the source ends early.
fn read_full<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use proptest::prelude::*;
    use std::io::Write;

    /// An IDX image file: header (magic, count, rows, cols) and `pixels`.
    pub(crate) fn images_bytes(
        magic: u32,
        count: u32,
        rows: u32,
        cols: u32,
        pixels: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [magic, count, rows, cols] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(pixels);
        out
    }

    /// An IDX label file: header (magic, count) and `labels`.
    pub(crate) fn labels_bytes(magic: u32, count: u32, labels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&magic.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(labels);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Writes `bytes` to `dir/name` and returns the path.
    pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Three 2x3 images with pixels 0..18.
    fn three_images() -> Vec<u8> {
        images_bytes(IMAGES_MAGIC, 3, 2, 3, &(0..18).collect::<Vec<u8>>())
    }

    /// Reads `bytes` stored as `name` in a fresh temp dir; the error message must name the file.
    fn read_images_as(name: &str, bytes: &[u8]) -> Result<IdxImages> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), name, bytes);
        let result = read_idx_images(&path);
        if let Err(e) = &result {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "message does not name the file: {msg}"
            );
            assert!(!msg.contains('\n'), "message is not one line: {msg}");
        }
        result
    }

    fn read_labels_as(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), name, bytes);
        let result = read_idx_labels(&path);
        if let Err(e) = &result {
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        result
    }

    #[test]
    fn reads_plain_and_gzip_images() {
        let expected = IdxImages {
            pixels: (0..18).collect(),
            count: 3,
            rows: 2,
            cols: 3,
        };
        assert_eq!(
            read_images_as("x-idx3-ubyte", &three_images()).unwrap(),
            expected
        );
        assert_eq!(
            read_images_as("x-idx3-ubyte.gz", &gzip(&three_images())).unwrap(),
            expected
        );
        // Detection is by content: gzip data under a plain name reads too.
        assert_eq!(
            read_images_as("x", &gzip(&three_images())).unwrap(),
            expected
        );
    }

    #[test]
    fn reads_plain_and_gzip_labels() {
        let bytes = labels_bytes(LABELS_MAGIC, 4, &[3, 1, 4, 1]);
        assert_eq!(read_labels_as("y", &bytes).unwrap(), vec![3, 1, 4, 1]);
        assert_eq!(
            read_labels_as("y.gz", &gzip(&bytes)).unwrap(),
            vec![3, 1, 4, 1]
        );
        let empty = labels_bytes(LABELS_MAGIC, 0, &[]);
        assert_eq!(read_labels_as("y", &empty).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn missing_file_has_install_hint() {
        let err =
            read_idx_images(Path::new("/nonexistent/train-images-idx3-ubyte.gz")).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/train-images-idx3-ubyte.gz"),
            "{msg}"
        );
        assert!(
            msg.contains("apt-get install dataset-fashion-mnist")
                && msg.contains("FASHION_MNIST_DIR"),
            "{msg}"
        );
    }

    #[test]
    fn a_directory_is_unreadable_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_idx_labels(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn gz_name_without_gzip_content_is_not_gzip() {
        let err = read_images_as("x.gz", &three_images()).unwrap_err();
        assert!(matches!(err, Error::NotGzip { .. }), "{err}");
    }

    #[test]
    fn corrupt_gzip_is_reported() {
        // Damage the deflate data in the middle.
        let mut bytes = gzip(&three_images());
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        bytes[mid + 1] ^= 0x55;
        let err = read_images_as("x.gz", &bytes).unwrap_err();
        assert!(matches!(err, Error::CorruptGzip { .. }), "{err}");

        // A bad CRC in the trailer.
        let mut bytes = gzip(&three_images());
        let crc_at = bytes.len() - 8;
        bytes[crc_at] ^= 1;
        let err = read_images_as("x.gz", &bytes).unwrap_err();
        assert!(matches!(err, Error::CorruptGzip { .. }), "{err}");

        // Only the gzip magic, then garbage.
        let err = read_images_as("x.gz", &[0x1f, 0x8b, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, Error::CorruptGzip { .. }), "{err}");
    }

    #[test]
    fn truncated_gzip_is_reported() {
        let bytes = gzip(&three_images());
        let err = read_images_as("x.gz", &bytes[..bytes.len() - 10]).unwrap_err();
        assert!(matches!(err, Error::CorruptGzip { .. }), "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn truncated_header_and_data() {
        let bytes = three_images();
        let err = read_images_as("x", &bytes[..10]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    what: "header",
                    expected: 16,
                    found: 10,
                    ..
                }
            ),
            "{err}"
        );
        let err = read_images_as("x", &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    expected: 18,
                    found: 17,
                    ..
                }
            ),
            "{err}"
        );
        let err = read_images_as("x.gz", &gzip(&bytes[..bytes.len() - 5])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    expected: 18,
                    found: 13,
                    ..
                }
            ),
            "{err}"
        );
        let err = read_labels_as("y", &labels_bytes(LABELS_MAGIC, 5, &[1, 2])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    expected: 5,
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = read_labels_as("y", &[]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    what: "header",
                    found: 0,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut bytes = three_images();
        bytes.extend_from_slice(&[9, 9, 9]);
        let err = read_images_as("x", &bytes).unwrap_err();
        assert!(matches!(err, Error::TrailingData { extra: 3, .. }), "{err}");
        let err = read_images_as("x.gz", &gzip(&bytes)).unwrap_err();
        assert!(matches!(err, Error::TrailingData { extra: 3, .. }), "{err}");
    }

    #[test]
    fn bad_magic_reads_like_candle() {
        let bytes = images_bytes(2050, 3, 2, 3, &[0; 18]);
        let err = read_images_as("x", &bytes).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("incorrect magic number 2050 != 2051 in "),
            "{err}"
        );
        // A label file given as images, and the other way round.
        let err = read_images_as("x", &labels_bytes(LABELS_MAGIC, 0, &[])).unwrap_err();
        assert!(
            matches!(err, Error::Truncated { .. } | Error::BadMagic { .. }),
            "{err}"
        );
        let err = read_labels_as("y", &three_images()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadMagic {
                    expected: 2049,
                    found: 2051,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn huge_header_in_small_file_fails_before_allocating() {
        // 4 billion images of 28x28 announced by 100-byte files, plain and gzip.
        let bytes = images_bytes(IMAGES_MAGIC, 4_000_000_000, 28, 28, &[0; 84]);
        assert_eq!(bytes.len(), 100);
        let err = read_images_as("x", &bytes).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    expected: 3_136_000_000_000,
                    found: 84,
                    ..
                }
            ),
            "{err}"
        );
        let err = read_images_as("x.gz", &gzip(&bytes)).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        let err = parse_idx_labels(
            Path::new("mem"),
            &labels_bytes(LABELS_MAGIC, u32::MAX, &[1]),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
    }

    #[test]
    fn zero_sized_images_are_read_as_declared() {
        let bytes = images_bytes(IMAGES_MAGIC, u32::MAX, 0, 28, &[]);
        let idx = parse_idx_images(Path::new("mem"), &bytes).unwrap();
        assert_eq!(
            (idx.count, idx.rows, idx.cols, idx.pixels.len()),
            (u32::MAX as usize, 0, 28, 0)
        );
    }

    /// Checks that `result` is an error or a dataset consistent with `bytes`.
    fn check_images(bytes: &[u8], result: Result<IdxImages>) {
        if let Ok(idx) = result {
            assert_eq!(idx.pixels.len(), idx.count * idx.rows * idx.cols);
            // Plain data: the header plus the pixels are the whole input.
            if !bytes.starts_with(&GZIP_MAGIC) {
                assert_eq!(bytes.len(), 16 + idx.pixels.len());
            }
            assert!(
                idx.pixels.capacity() as u64 <= (bytes.len() as u64).max(1) * MAX_INFLATE_RATIO
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            check_images(&bytes, parse_idx_images(Path::new("mem"), &bytes));
            let _ = parse_idx_labels(Path::new("mem"), &bytes);
        }

        #[test]
        fn arbitrary_gzip_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut gz = vec![0x1f, 0x8b];
            gz.extend_from_slice(&bytes);
            check_images(&gz, parse_idx_images(Path::new("x.gz"), &gz));
            let _ = parse_idx_labels(Path::new("x.gz"), &gz);
        }

        #[test]
        fn arbitrary_headers_with_small_bodies(
            magic in prop_oneof![Just(IMAGES_MAGIC), Just(LABELS_MAGIC), any::<u32>()],
            count in prop_oneof![0u32..8, any::<u32>()],
            rows in prop_oneof![0u32..8, any::<u32>()],
            cols in prop_oneof![0u32..8, any::<u32>()],
            body in proptest::collection::vec(any::<u8>(), 0..300),
            compress in any::<bool>(),
        ) {
            let plain = images_bytes(magic, count, rows, cols, &body);
            let bytes = if compress { gzip(&plain) } else { plain };
            let result = parse_idx_images(Path::new("mem"), &bytes);
            let fits = magic == IMAGES_MAGIC && u128::from(count) * u128::from(rows) * u128::from(cols) == body.len() as u128;
            prop_assert_eq!(result.is_ok(), fits, "{:?}", result.as_ref().err());
            check_images(&bytes, result);

            let plain = labels_bytes(magic, count, &body);
            let bytes = if compress { gzip(&plain) } else { plain };
            let result = parse_idx_labels(Path::new("mem"), &bytes);
            let fits = magic == LABELS_MAGIC && count as usize == body.len();
            prop_assert_eq!(result.is_ok(), fits);
        }
    }
}
