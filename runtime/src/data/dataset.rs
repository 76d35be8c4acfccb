//! `Dataset`: images kept as `u8` pixels with their labels; batches are scaled
//! to `[0, 1]` as `f32` only when they are formed (4x less memory than storing
//! `f32`, and the scaling is free next to a forward pass).

/// Images (`u8`, row-major, image after image) and their labels.
///
/// Invariant: `images.len() == labels.len() * rows * cols`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image, `rows * cols`.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels();
        &self.images[i * n..(i + 1) * n]
    }

    /// The label of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// The first `min(n, len)` images (a copy); `--limit N` uses it.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.pixels()].to_vec(),
            labels: self.labels[..n].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// The images at `indices`, in that order (a copy).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.pixels());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// How many images each class `0..classes` has (labels `>= classes` are not counted).
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &y in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(y)) {
                *c += 1;
            }
        }
        counts
    }

    /// Fills `out` (cleared first; `indices.len() * pixels` values afterwards)
    /// with the images at `indices`, in that order, as `pixel / 255` in `[0, 1]`
    /// (Keras' `x / 255.0`).
    ///
    /// # Shapes
    /// `out`: `[indices.len(), rows * cols]`, row-major — the batched input of a
    /// dense network, or `[B, 1, rows, cols]` of a convolutional one.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn batch_into(&self, indices: &[usize], out: &mut Vec<f32>) {
        out.clear();
        out.reserve(indices.len() * self.pixels());
        for &i in indices {
            out.extend(self.image(i).iter().map(|&p| f32::from(p) / 255.0));
        }
    }

    /// Fills `out` (cleared first) with the labels at `indices`, in that order.
    pub fn labels_into(&self, indices: &[usize], out: &mut Vec<u8>) {
        out.clear();
        out.extend(indices.iter().map(|&i| self.labels[i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three 2x2 images with pixels 0..12 and labels 7, 8, 9.
    fn tiny() -> Dataset {
        Dataset {
            images: (0..12).collect(),
            labels: vec![7, 8, 9],
            rows: 2,
            cols: 2,
        }
    }

    #[test]
    fn accessors() {
        let d = tiny();
        assert_eq!((d.len(), d.pixels(), d.is_empty()), (3, 4, false));
        assert_eq!(d.image(1), &[4, 5, 6, 7]);
        assert_eq!(d.label(2), 9);
        assert!(Dataset::default().is_empty());
    }

    #[test]
    fn take_and_select() {
        let d = tiny();
        let t = d.take(2);
        assert_eq!((t.len(), t.images.len()), (2, 8));
        assert_eq!(d.take(10), d);
        let s = d.select(&[2, 0]);
        assert_eq!(s.labels, vec![9, 7]);
        assert_eq!(s.image(0), d.image(2));
        assert_eq!(s.image(1), d.image(0));
    }

    #[test]
    fn class_counts_ignore_out_of_range() {
        assert_eq!(tiny().class_counts(9), vec![0, 0, 0, 0, 0, 0, 0, 1, 1]);
    }

    #[test]
    fn batch_into_scales_in_index_order() {
        let d = Dataset {
            images: vec![0, 255, 51, 102],
            labels: vec![0, 1],
            rows: 1,
            cols: 2,
        };
        let mut out = vec![42.0; 7];
        d.batch_into(&[1, 0, 1], &mut out);
        assert_eq!(out, vec![0.2, 0.4, 0.0, 1.0, 0.2, 0.4]);
        let mut labels = Vec::new();
        d.labels_into(&[1, 0], &mut labels);
        assert_eq!(labels, vec![1, 0]);
    }
}
