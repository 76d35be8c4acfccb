//! [`Dataset`]: labelled samples of any shape (C x H x W images or feature
//! vectors), stored as `u8` or `f32`, built by a checked constructor.
//!
//! `u8` values are scaled to `[0, 1]` (`v / 255`, Keras' `x / 255.0`) only
//! when a batch is formed: 4x less memory than storing `f32`, and the scaling
//! is free next to a forward pass. `f32` values are used as they are.
//!
//! ```
//! use netdsl_runtime::data::Dataset;
//! // Four 3x2x2 images in two classes.
//! let pixels: Vec<u8> = (0..48).collect();
//! let data = Dataset::new(pixels, vec![0, 1, 1, 0], (3, 2, 2), 2)?;
//! assert_eq!((data.len(), data.shape().to_string()), (4, "3x2x2".to_string()));
//! // Three feature vectors of length 5.
//! let features = Dataset::new(vec![0.5f32; 15], vec![2, 0, 1], 5, 3)?;
//! assert_eq!(features.classes(), 3);
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

use std::fmt;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The shape of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SampleShape {
    /// An image: channels, height, width (channels first, as the networks take them).
    Image {
        /// Channels (1 for grey images, 3 for RGB).
        channels: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
    /// A feature vector of this length.
    Vector(usize),
}

impl SampleShape {
    /// Values per sample.
    pub fn len(&self) -> usize {
        match *self {
            SampleShape::Image {
                channels,
                height,
                width,
            } => channels * height * width,
            SampleShape::Vector(n) => n,
        }
    }

    /// True when a sample holds no values (a zero dimension).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dimensions, channels first: `[C, H, W]` or `[N]`.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            SampleShape::Image {
                channels,
                height,
                width,
            } => vec![channels, height, width],
            SampleShape::Vector(n) => vec![n],
        }
    }

    /// The shape with these dimensions (`[C, H, W]` or `[N]`); `None` for other ranks.
    pub fn from_dims(dims: &[usize]) -> Option<SampleShape> {
        match *dims {
            [channels, height, width] => Some(SampleShape::Image {
                channels,
                height,
                width,
            }),
            [n] => Some(SampleShape::Vector(n)),
            _ => None,
        }
    }
}

impl From<(usize, usize, usize)> for SampleShape {
    /// `(channels, height, width)`.
    fn from((channels, height, width): (usize, usize, usize)) -> Self {
        SampleShape::Image {
            channels,
            height,
            width,
        }
    }
}

impl From<usize> for SampleShape {
    /// A feature vector of this length.
    fn from(n: usize) -> Self {
        SampleShape::Vector(n)
    }
}

impl fmt::Display for SampleShape {
    /// `3x32x32` or `784`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SampleShape::Image {
                channels,
                height,
                width,
            } => write!(f, "{channels}x{height}x{width}"),
            SampleShape::Vector(n) => write!(f, "{n}"),
        }
    }
}

/// The stored values of a [`Dataset`], sample after sample, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Bytes, scaled by 1/255 when a batch is formed.
    U8(Vec<u8>),
    /// Used as they are.
    F32(Vec<f32>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::U8(v) => v.len(),
            Values::F32(v) => v.len(),
        }
    }
}

impl From<Vec<u8>> for Values {
    fn from(v: Vec<u8>) -> Self {
        Values::U8(v)
    }
}

impl From<Vec<f32>> for Values {
    fn from(v: Vec<f32>) -> Self {
        Values::F32(v)
    }
}

/// How [`Dataset::split`] chooses the held-out part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Split {
    /// The last samples, in order: what Keras' `validation_split` holds back
    /// (it slices the tail of the arrays before shuffling). The default.
    #[default]
    Last,
    /// Per class a proportional share (largest remainders make the total
    /// exact), drawn by a ChaCha8 shuffle seeded with `seed`; both parts keep
    /// the original order.
    Stratified {
        /// Seeds the shuffle.
        seed: u64,
    },
}

/// Labelled samples of one shape, with labels in `0..classes`.
///
/// Invariants (checked by [`Dataset::new`]): `values.len() == len * shape.len()`,
/// every label `< classes`, `classes >= 1`, no dimension is zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    values: Values,
    labels: Vec<u32>,
    shape: SampleShape,
    classes: usize,
    class_names: Option<Vec<String>>,
}

impl Dataset {
    /// Samples `values` (`Vec<u8>` or `Vec<f32>`, sample after sample, each
    /// row-major with channels first) of shape `shape` (`(c, h, w)` or a
    /// vector length) with `labels` in `0..classes`.
    ///
    /// # Errors
    /// [`Error::Data`] when a dimension or `classes` is zero, when the number
    /// of values is not `labels.len() * shape.len()`, or when a label is
    /// `>= classes` (naming the first one).
    pub fn new(
        values: impl Into<Values>,
        labels: Vec<u32>,
        shape: impl Into<SampleShape>,
        classes: usize,
    ) -> Result<Dataset> {
        let (values, shape) = (values.into(), shape.into());
        if shape.dims().contains(&0) {
            return Err(Error::Data(format!(
                "sample shape {shape} has a zero dimension"
            )));
        }
        if classes == 0 {
            return Err(Error::Data("a data set needs at least one class".into()));
        }
        let expected = labels.len().checked_mul(shape.len());
        if expected != Some(values.len()) {
            return Err(Error::Data(format!(
                "{} values do not make {} samples of shape {shape} ({} values each)",
                values.len(),
                labels.len(),
                shape.len()
            )));
        }
        if let Some(index) = labels.iter().position(|&y| y as usize >= classes) {
            return Err(Error::LabelOutOfRange {
                index,
                label: labels[index] as usize,
                classes,
            });
        }
        Ok(Dataset {
            values,
            labels,
            shape,
            classes,
            class_names: None,
        })
    }

    /// Names the classes, by label (used by reports and confusion matrices).
    ///
    /// # Errors
    /// When there are not exactly [`Dataset::classes`] names.
    pub fn with_class_names<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Result<Dataset> {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        if names.len() != self.classes {
            return Err(Error::Data(format!(
                "{} class names for {} classes",
                names.len(),
                self.classes
            )));
        }
        self.class_names = Some(names);
        Ok(self)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the data set holds no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one sample.
    pub fn shape(&self) -> SampleShape {
        self.shape
    }

    /// Number of classes; every label is below it.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The class names, when the data set has them.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// The stored values, sample after sample.
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// All labels, in sample order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The label of sample `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    /// The same samples seen as flat vectors (`C x H x W` values, row-major),
    /// for a network that takes a vector: `<784>` for a 1x28x28 image.
    pub fn flatten(mut self) -> Dataset {
        self.shape = SampleShape::Vector(self.shape.len());
        self
    }

    /// The first `min(n, len)` samples (a copy).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        self.with_parts(self.slice_values(0..n), self.labels[..n].to_vec())
    }

    /// The samples at `indices`, in that order (a copy).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let k = self.shape.len();
        let values = match &self.values {
            Values::U8(v) => Values::U8(gather(v, indices, k)),
            Values::F32(v) => Values::F32(gather(v, indices, k)),
        };
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        self.with_parts(values, labels)
    }

    /// Splits off `fraction` of the samples (rounded to the nearest count) as
    /// a held-out set: returns `(rest, held_out)`.
    ///
    /// # Errors
    /// When `fraction` is not in `(0, 1)` or either part would be empty.
    pub fn split(&self, fraction: f64, split: Split) -> Result<(Dataset, Dataset)> {
        let n = self.len();
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::Data(format!(
                "split fraction {fraction} is not between 0 and 1"
            )));
        }
        let held = (n as f64 * fraction).round() as usize;
        if held == 0 || held == n {
            return Err(Error::Data(format!(
                "splitting {fraction} of {n} samples leaves an empty part"
            )));
        }
        Ok(match split {
            Split::Last => {
                let rest = n - held;
                let (a, b) = (self.slice_values(0..rest), self.slice_values(rest..n));
                (
                    self.with_parts(a, self.labels[..rest].to_vec()),
                    self.with_parts(b, self.labels[rest..].to_vec()),
                )
            }
            Split::Stratified { seed } => {
                let mut is_held = vec![false; n];
                for i in stratified_sample(&self.labels, self.classes, held, seed) {
                    is_held[i] = true;
                }
                let (held, rest): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| is_held[i]);
                (self.select(&rest), self.select(&held))
            }
        })
    }

    /// How many samples each class has, by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &y in &self.labels {
            counts[y as usize] += 1;
        }
        counts
    }

    /// Fills `out` (cleared first; `indices.len() * shape.len()` values
    /// afterwards) with the samples at `indices`, in that order, as `f32`:
    /// `u8` values divided by 255, `f32` values as stored.
    ///
    /// # Shapes
    /// `out`: `[indices.len(), C, H, W]` or `[indices.len(), N]`, row-major.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn batch_into(&self, indices: &[usize], out: &mut Vec<f32>) {
        let k = self.shape.len();
        out.clear();
        out.reserve(indices.len() * k);
        for &i in indices {
            match &self.values {
                Values::U8(v) => {
                    out.extend(v[i * k..(i + 1) * k].iter().map(|&p| f32::from(p) / 255.0))
                }
                Values::F32(v) => out.extend_from_slice(&v[i * k..(i + 1) * k]),
            }
        }
    }

    /// Sample `i` as `f32` values (scaled as in [`Dataset::batch_into`]).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn sample(&self, i: usize) -> Vec<f32> {
        let mut out = Vec::new();
        self.batch_into(&[i], &mut out);
        out
    }

    /// Fills `out` (cleared first) with the labels at `indices`, in that order.
    pub fn labels_into(&self, indices: &[usize], out: &mut Vec<u32>) {
        out.clear();
        out.extend(indices.iter().map(|&i| self.labels[i]));
    }

    /// A fingerprint of the content (shape, classes, values and labels): equal
    /// data sets have equal fingerprints, and any change of a value or label
    /// changes it (FNV-1a, 64 bits; not cryptographic).
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::default();
        for d in self.shape.dims() {
            h.write(&(d as u64).to_le_bytes());
        }
        h.write(&(self.classes as u64).to_le_bytes());
        match &self.values {
            Values::U8(v) => {
                h.write(&[0]);
                h.write(v);
            }
            Values::F32(v) => {
                h.write(&[1]);
                for x in v {
                    h.write(&x.to_bits().to_le_bytes());
                }
            }
        }
        for y in &self.labels {
            h.write(&y.to_le_bytes());
        }
        h.0
    }

    fn slice_values(&self, range: std::ops::Range<usize>) -> Values {
        let k = self.shape.len();
        let range = range.start * k..range.end * k;
        match &self.values {
            Values::U8(v) => Values::U8(v[range].to_vec()),
            Values::F32(v) => Values::F32(v[range].to_vec()),
        }
    }

    /// A data set like this one (shape, classes, names) with other samples.
    fn with_parts(&self, values: Values, labels: Vec<u32>) -> Dataset {
        Dataset {
            values,
            labels,
            shape: self.shape,
            classes: self.classes,
            class_names: self.class_names.clone(),
        }
    }
}

/// The `k`-value samples of `v` at `indices`, in that order.
fn gather<T: Copy>(v: &[T], indices: &[usize], k: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(indices.len() * k);
    for &i in indices {
        out.extend_from_slice(&v[i * k..(i + 1) * k]);
    }
    out
}

/// `k` indices of `labels`, each class contributing its proportional share
/// (largest remainders round the shares to a total of exactly `k`), drawn by a
/// ChaCha8 shuffle seeded with `seed`, one class after another in label order.
fn stratified_sample(labels: &[u32], classes: usize, k: usize, seed: u64) -> Vec<usize> {
    let n = labels.len();
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y as usize].push(i);
    }
    // Share of class c: k * n_c / n, floored, plus one for the largest remainders.
    // (u128: k * n_c cannot overflow.)
    let share = |c: usize| (k as u128 * by_class[c].len() as u128, n.max(1) as u128);
    let mut shares: Vec<usize> = (0..classes)
        .map(|c| (share(c).0 / share(c).1) as usize)
        .collect();
    let mut order: Vec<usize> = (0..classes).collect();
    // Largest remainder first; ties by class index so the result is fixed.
    order.sort_by_key(|&c| (std::cmp::Reverse(share(c).0 % share(c).1), c));
    let missing = k - shares.iter().sum::<usize>();
    for &c in order.iter().take(missing) {
        shares[c] += 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked = Vec::with_capacity(k);
    for (class, share) in by_class.iter_mut().zip(shares) {
        class.shuffle(&mut rng);
        picked.extend_from_slice(&class[..share]);
    }
    picked
}

/// FNV-1a, 64 bits (<http://www.isthe.com/chongo/tech/comp/fnv/>): offset
/// basis 0xcbf29ce484222325, prime 0x100000001b3.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three 1x2x2 images with pixels 0..12 and labels 7, 8, 9 (of 10 classes).
    fn tiny() -> Dataset {
        Dataset::new((0..12).collect::<Vec<u8>>(), vec![7, 8, 9], (1, 2, 2), 10).unwrap()
    }

    #[test]
    fn accessors() {
        let d = tiny();
        assert_eq!((d.len(), d.shape().len(), d.is_empty()), (3, 4, false));
        assert_eq!(
            d.sample(1),
            vec![4.0 / 255.0, 5.0 / 255.0, 6.0 / 255.0, 7.0 / 255.0]
        );
        assert_eq!((d.label(2), d.classes()), (9, 10));
        assert_eq!(d.shape().to_string(), "1x2x2");
        assert_eq!(d.clone().flatten().shape(), SampleShape::Vector(4));
    }

    #[test]
    fn constructor_checks_lengths_labels_and_shape() {
        let err = Dataset::new(vec![0u8; 11], vec![0, 1, 2], (1, 2, 2), 3).unwrap_err();
        assert!(
            err.to_string()
                .contains("11 values do not make 3 samples of shape 1x2x2"),
            "{err}"
        );
        let err = Dataset::new(vec![0f32; 6], vec![0, 4], 3, 4).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LabelOutOfRange {
                    index: 1,
                    label: 4,
                    classes: 4
                }
            ),
            "{err}"
        );
        assert!(Dataset::new(vec![0u8; 0], vec![], (3, 0, 2), 2).is_err());
        assert!(Dataset::new(vec![0u8; 2], vec![0], 2, 0).is_err());
        // Any number of classes, any channel count.
        let many = Dataset::new(vec![0u8; 3 * 2 * 2 * 2], vec![299, 0], (3, 2, 2), 300).unwrap();
        assert_eq!(many.class_counts()[299], 1);
        assert!(many.with_class_names(["a", "b"]).is_err());
    }

    #[test]
    fn take_and_select() {
        let d = tiny();
        let t = d.take(2);
        assert_eq!((t.len(), t.labels()), (2, &[7, 8][..]));
        assert_eq!(d.take(10), d);
        let s = d.select(&[2, 0]);
        assert_eq!(s.labels(), &[9, 7]);
        assert_eq!(s.sample(0), d.sample(2));
        assert_eq!(s.sample(1), d.sample(0));
    }

    #[test]
    fn batch_into_scales_u8_and_copies_f32() {
        let d = Dataset::new(vec![0u8, 255, 51, 102], vec![0, 1], 2, 2).unwrap();
        let mut out = vec![42.0; 7];
        d.batch_into(&[1, 0, 1], &mut out);
        assert_eq!(out, vec![0.2, 0.4, 0.0, 1.0, 0.2, 0.4]);
        let mut labels = Vec::new();
        d.labels_into(&[1, 0], &mut labels);
        assert_eq!(labels, vec![1, 0]);
        let f = Dataset::new(vec![-1.5f32, 7.0], vec![0, 0], 1, 1).unwrap();
        f.batch_into(&[1, 0], &mut out);
        assert_eq!(out, vec![7.0, -1.5]);
    }

    /// `n` 2-value samples whose label is `i % 10` and first value `i`.
    fn numbered(n: usize) -> Dataset {
        let values: Vec<f32> = (0..n).flat_map(|i| [i as f32, 0.0]).collect();
        Dataset::new(values, (0..n).map(|i| (i % 10) as u32).collect(), 2, 10).unwrap()
    }

    #[test]
    fn last_split_holds_back_the_tail() {
        let (rest, held) = numbered(120).split(1.0 / 12.0, Split::Last).unwrap();
        assert_eq!((rest.len(), held.len()), (110, 10));
        assert_eq!(held.sample(0)[0], 110.0);
        assert!(numbered(10).split(0.0, Split::Last).is_err());
        assert!(numbered(10).split(0.01, Split::Last).is_err());
    }

    #[test]
    fn stratified_split_is_stratified_disjoint_and_reproducible() {
        let d = numbered(1200);
        let (rest, held) = d.split(1.0 / 12.0, Split::Stratified { seed: 4 }).unwrap();
        assert_eq!((rest.len(), held.len()), (1100, 100));
        assert_eq!(held.class_counts(), vec![10; 10]);
        let mut seen: Vec<f32> = rest.values_f32().chain(held.values_f32()).collect();
        seen.sort_by(f32::total_cmp);
        assert_eq!(seen, (0..1200).map(|i| i as f32).collect::<Vec<_>>());
        let again = d.split(1.0 / 12.0, Split::Stratified { seed: 4 }).unwrap();
        assert_eq!(again.1, held);
        assert_ne!(
            d.split(1.0 / 12.0, Split::Stratified { seed: 5 })
                .unwrap()
                .1,
            held
        );
    }

    impl Dataset {
        /// The first value of every sample (test helper).
        fn values_f32(&self) -> impl Iterator<Item = f32> + '_ {
            (0..self.len()).map(|i| self.sample(i)[0])
        }
    }

    #[test]
    fn stratified_sample_rounds_to_exact_total() {
        // 7 of class 0, 3 of class 1; 5 picks: 3.5 + 1.5 -> 4 + 1 (tie broken by class index).
        let labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
        let picked = stratified_sample(&labels, 2, 5, 1);
        assert_eq!(picked.len(), 5);
        assert_eq!(picked.iter().filter(|&&i| labels[i] == 0).count(), 4);
    }

    #[test]
    fn fingerprint_sees_every_value_and_label() {
        let d = tiny();
        assert_eq!(d.fingerprint(), tiny().fingerprint());
        let mut labels = d.labels().to_vec();
        labels[0] = 6;
        let relabelled = Dataset::new((0..12).collect::<Vec<u8>>(), labels, (1, 2, 2), 10).unwrap();
        assert_ne!(relabelled.fingerprint(), d.fingerprint());
        let mut pixels: Vec<u8> = (0..12).collect();
        pixels[11] = 0;
        let changed = Dataset::new(pixels, vec![7, 8, 9], (1, 2, 2), 10).unwrap();
        assert_ne!(changed.fingerprint(), d.fingerprint());
        assert_ne!(d.clone().flatten().fingerprint(), d.fingerprint());
    }
}
