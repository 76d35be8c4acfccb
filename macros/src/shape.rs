//! Shape arithmetic of the layers, as Keras computes it. Pure functions, no tokens.
//!
//! Shapes are per sample, channels first (PyTorch/dfdx layout): an image is
//! `C x H x W`, a vector is `N`. The batch dimension is never part of it.
//!
//! Sources for the formulas: Keras `conv_utils.conv_output_length` and
//! TensorFlow's "same" padding rule (`tf.nn.convolution` docs):
//! - valid:    out = floor((in - K) / S) + 1
//! - same:     out = ceil(in / S); total = max((out - 1) * S + K - in, 0);
//!   before = floor(total / 2), after = total - before
//! - explicit: out = floor((in + 2P - K) / S) + 1, P before and after
//! - max and average pool: valid padding, stride defaults to K.
//! - global average pool: C x H x W -> C.

use std::fmt;

/// The shape of one sample between two layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Image { c: usize, h: usize, w: usize },
    Flat(usize),
}

/// Convolution padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Valid,
    Same,
    Explicit(usize),
}

/// A kernel's or a stride's height and width: `3` is 3x3, `(3, 5)` is 3
/// high and 5 wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hw {
    pub h: usize,
    pub w: usize,
}

impl Hw {
    /// The same size along both axes.
    pub const fn square(n: usize) -> Self {
        Self { h: n, w: n }
    }

    /// `h · w`, `None` on overflow.
    pub fn area(&self) -> Option<usize> {
        self.h.checked_mul(self.w)
    }
}

impl fmt::Display for Hw {
    /// As written in the DSL: `3` when square, `(3, 5)` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.h == self.w {
            write!(f, "{}", self.h)
        } else {
            write!(f, "({}, {})", self.h, self.w)
        }
    }
}

/// What a layer does to the shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Dense {
        units: usize,
    },
    Conv {
        filters: usize,
        kernel: Hw,
        stride: Hw,
        pad: Padding,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    Flatten,
    /// Global pooling: an image `C x H x W` becomes the vector `C`.
    GlobalPool,
    /// Activations and dropout: shape unchanged.
    Elementwise,
}

/// Why a layer cannot take its input shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// `dense` got an image.
    NeedsFlat,
    /// `conv`, a pool or `flatten` got a vector.
    NeedsImage,
    /// The (padded) input is smaller than the kernel in height or width.
    KernelTooLarge { padded_h: usize, padded_w: usize },
    /// A size does not fit in `usize`.
    Overflow,
}

/// One spatial dimension of a convolution or pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim {
    pub out: usize,
    /// Zero padding before (top or left).
    pub pad_before: usize,
}

impl fmt::Display for Shape {
    /// `32x26x26` or `1600`: the form used in error messages.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Shape::Image { c, h, w } => write!(f, "{c}x{h}x{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

impl Shape {
    /// Keras' notation with the batch as `None`: `(None, 32, 26, 26)`.
    pub fn keras(&self) -> String {
        match self {
            Shape::Image { c, h, w } => format!("(None, {c}, {h}, {w})"),
            Shape::Flat(n) => format!("(None, {n})"),
        }
    }

    /// Number of values per sample.
    pub fn len(&self) -> Option<usize> {
        match *self {
            Shape::Image { c, h, w } => c.checked_mul(h)?.checked_mul(w),
            Shape::Flat(n) => Some(n),
        }
    }
}

/// One dimension of a convolution: `None` when the kernel does not fit.
pub fn conv_dim(input: usize, kernel: usize, stride: usize, pad: Padding) -> Option<Dim> {
    debug_assert!(kernel > 0 && stride > 0);
    match pad {
        Padding::Valid => Some(Dim {
            out: input.checked_sub(kernel)? / stride + 1,
            pad_before: 0,
        }),
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + kernel).saturating_sub(input);
            Some(Dim {
                out,
                pad_before: total / 2,
            })
        }
        Padding::Explicit(p) => Some(Dim {
            out: (input + 2 * p).checked_sub(kernel)? / stride + 1,
            pad_before: p,
        }),
    }
}

impl Op {
    /// The output shape for `input`.
    pub fn output(&self, input: Shape) -> Result<Shape, ShapeError> {
        match (*self, input) {
            (Op::Elementwise, shape) => Ok(shape),
            (Op::Dense { units }, Shape::Flat(_)) => Ok(Shape::Flat(units)),
            (Op::Dense { .. }, Shape::Image { .. }) => Err(ShapeError::NeedsFlat),
            (Op::Flatten, shape @ Shape::Image { .. }) => {
                Ok(Shape::Flat(shape.len().ok_or(ShapeError::Overflow)?))
            }
            (Op::GlobalPool, Shape::Image { c, .. }) => Ok(Shape::Flat(c)),
            (
                Op::Conv { .. } | Op::MaxPool { .. } | Op::Flatten | Op::GlobalPool,
                Shape::Flat(_),
            ) => Err(ShapeError::NeedsImage),
            (op @ (Op::Conv { .. } | Op::MaxPool { .. }), Shape::Image { c, h, w }) => {
                let (ch, kernel, stride, pad) = match op {
                    Op::Conv {
                        filters,
                        kernel,
                        stride,
                        pad,
                    } => (filters, kernel, stride, pad),
                    Op::MaxPool { kernel, stride } => {
                        (c, Hw::square(kernel), Hw::square(stride), Padding::Valid)
                    }
                    _ => unreachable!("matched above"),
                };
                let too_large = || {
                    let p = match pad {
                        Padding::Explicit(p) => 2 * p,
                        _ => 0,
                    };
                    ShapeError::KernelTooLarge {
                        padded_h: h + p,
                        padded_w: w + p,
                    }
                };
                let dh = conv_dim(h, kernel.h, stride.h, pad).ok_or_else(too_large)?;
                let dw = conv_dim(w, kernel.w, stride.w, pad).ok_or_else(too_large)?;
                Ok(Shape::Image {
                    c: ch,
                    h: dh.out,
                    w: dw.out,
                })
            }
        }
    }

    /// Trainable parameters for `input`: kernel plus bias.
    pub fn params(&self, input: Shape) -> Option<usize> {
        match (*self, input) {
            (Op::Dense { units }, Shape::Flat(n)) => n.checked_mul(units)?.checked_add(units),
            (
                Op::Conv {
                    filters, kernel, ..
                },
                Shape::Image { c, .. },
            ) => c
                .checked_mul(kernel.area()?)?
                .checked_mul(filters)?
                .checked_add(filters),
            _ => Some(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(c: usize, h: usize, w: usize) -> Shape {
        Shape::Image { c, h, w }
    }

    fn conv(filters: usize, kernel: usize, stride: usize, pad: Padding) -> Op {
        Op::Conv {
            filters,
            kernel: Hw::square(kernel),
            stride: Hw::square(stride),
            pad,
        }
    }

    #[test]
    fn valid_convolution() {
        assert_eq!(
            conv_dim(28, 3, 1, Padding::Valid),
            Some(Dim {
                out: 26,
                pad_before: 0
            })
        );
        assert_eq!(conv_dim(28, 3, 2, Padding::Valid).unwrap().out, 13);
        assert_eq!(conv_dim(3, 3, 1, Padding::Valid).unwrap().out, 1);
        assert_eq!(conv_dim(2, 3, 1, Padding::Valid), None);
    }

    #[test]
    fn same_convolution_splits_padding_as_keras() {
        // stride 1: out = in, total = K - 1, before = floor
        assert_eq!(
            conv_dim(28, 3, 1, Padding::Same),
            Some(Dim {
                out: 28,
                pad_before: 1
            })
        );
        assert_eq!(
            conv_dim(28, 4, 1, Padding::Same),
            Some(Dim {
                out: 28,
                pad_before: 1
            })
        );
        // stride 2 on even input: total = 13*2 + 3 - 28 = 1, all of it after
        assert_eq!(
            conv_dim(28, 3, 2, Padding::Same),
            Some(Dim {
                out: 14,
                pad_before: 0
            })
        );
        // stride 2 on odd input: out = 4, total = 3*2 + 3 - 7 = 2
        assert_eq!(
            conv_dim(7, 3, 2, Padding::Same),
            Some(Dim {
                out: 4,
                pad_before: 1
            })
        );
        // kernel larger than the input is fine with same padding
        assert_eq!(
            conv_dim(1, 3, 1, Padding::Same),
            Some(Dim {
                out: 1,
                pad_before: 1
            })
        );
        // stride larger than the kernel: no padding
        assert_eq!(
            conv_dim(28, 1, 3, Padding::Same),
            Some(Dim {
                out: 10,
                pad_before: 0
            })
        );
    }

    #[test]
    fn explicit_padding() {
        assert_eq!(
            conv_dim(28, 3, 1, Padding::Explicit(1)),
            Some(Dim {
                out: 28,
                pad_before: 1
            })
        );
        assert_eq!(conv_dim(28, 5, 2, Padding::Explicit(2)).unwrap().out, 14);
        assert_eq!(conv_dim(1, 5, 1, Padding::Explicit(1)), None);
    }

    #[test]
    fn cnn3a_shapes_and_params() {
        let ops = [
            conv(32, 3, 1, Padding::Valid),
            Op::Elementwise,
            Op::MaxPool {
                kernel: 2,
                stride: 2,
            },
            conv(64, 3, 1, Padding::Valid),
            Op::Elementwise,
            Op::MaxPool {
                kernel: 2,
                stride: 2,
            },
            Op::Flatten,
            Op::Dense { units: 128 },
            Op::Elementwise,
            Op::Dense { units: 10 },
        ];
        let mut shape = img(1, 28, 28);
        let mut shapes = vec![];
        let mut params = 0;
        for op in ops {
            params += op.params(shape).unwrap();
            shape = op.output(shape).unwrap();
            shapes.push(shape);
        }
        assert_eq!(shapes[0], img(32, 26, 26));
        assert_eq!(shapes[2], img(32, 13, 13));
        assert_eq!(shapes[3], img(64, 11, 11));
        assert_eq!(shapes[5], img(64, 5, 5));
        assert_eq!(shapes[6], Shape::Flat(1600));
        assert_eq!(shape, Shape::Flat(10));
        assert_eq!(params, 225_034);
    }

    #[test]
    fn cnn4a_pools_floor() {
        let pool = Op::MaxPool {
            kernel: 2,
            stride: 2,
        };
        let same = conv(64, 3, 1, Padding::Same);
        assert_eq!(same.output(img(32, 14, 14)), Ok(img(64, 14, 14)));
        assert_eq!(pool.output(img(64, 7, 7)), Ok(img(64, 3, 3)));
        assert_eq!(same.params(img(32, 14, 14)), Some(18_496));
    }

    #[test]
    fn shape_errors() {
        let pool = Op::MaxPool {
            kernel: 2,
            stride: 2,
        };
        assert_eq!(
            pool.output(img(64, 1, 1)),
            Err(ShapeError::KernelTooLarge {
                padded_h: 1,
                padded_w: 1
            })
        );
        assert_eq!(pool.output(Shape::Flat(10)), Err(ShapeError::NeedsImage));
        assert_eq!(
            Op::Flatten.output(Shape::Flat(10)),
            Err(ShapeError::NeedsImage)
        );
        assert_eq!(
            Op::Dense { units: 3 }.output(img(1, 2, 2)),
            Err(ShapeError::NeedsFlat)
        );
        assert_eq!(
            conv(8, 5, 1, Padding::Explicit(1)).output(img(1, 2, 9)),
            Err(ShapeError::KernelTooLarge {
                padded_h: 4,
                padded_w: 11
            })
        );
        assert_eq!(
            Op::Flatten.output(img(usize::MAX, 2, 1)),
            Err(ShapeError::Overflow)
        );
    }

    #[test]
    fn rectangular_kernels_and_strides() {
        // conv<8, (3, 5), stride = (2, 1), pad = same> on 1x7x6: TensorFlow's
        // rule per axis; H: out 4, total 3·2 + 3 - 7 = 2; W: out 6, total 4
        let op = Op::Conv {
            filters: 8,
            kernel: Hw { h: 3, w: 5 },
            stride: Hw { h: 2, w: 1 },
            pad: Padding::Same,
        };
        assert_eq!(op.output(img(1, 7, 6)), Ok(img(8, 4, 6)));
        assert_eq!(op.params(img(2, 7, 6)), Some(2 * 3 * 5 * 8 + 8));
        // valid: H (7 - 3) / 2 + 1 = 3, W 6 - 5 + 1 = 2
        let valid = Op::Conv {
            filters: 8,
            kernel: Hw { h: 3, w: 5 },
            stride: Hw { h: 2, w: 1 },
            pad: Padding::Valid,
        };
        assert_eq!(valid.output(img(1, 7, 6)), Ok(img(8, 3, 2)));
        // too wide only
        assert_eq!(
            valid.output(img(1, 7, 4)),
            Err(ShapeError::KernelTooLarge {
                padded_h: 7,
                padded_w: 4
            })
        );
        assert_eq!(Hw { h: 3, w: 5 }.to_string(), "(3, 5)");
        assert_eq!(Hw::square(3).to_string(), "3");
    }

    #[test]
    fn dense_params_and_notation() {
        assert_eq!(Op::Dense { units: 5 }.params(Shape::Flat(784)), Some(3925));
        assert_eq!(Op::Dense { units: 5 }.params(Shape::Flat(usize::MAX)), None);
        assert_eq!(img(32, 26, 26).keras(), "(None, 32, 26, 26)");
        assert_eq!(img(32, 26, 26).to_string(), "32x26x26");
        assert_eq!(Shape::Flat(10).keras(), "(None, 10)");
    }
}
