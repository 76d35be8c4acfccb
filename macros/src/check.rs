//! Checks a parsed network and infers every layer's shape.
//!
//! Two passes, as in serde_derive's check.rs and thiserror's `try_expand`:
//! 1. Arguments (`args.rs`), for *every* layer and the input shape: count, types,
//!    ranges, options. These errors are independent, so all of them are collected
//!    and reported together.
//! 2. Shapes, layer by layer from the input. This pass stops at the first
//!    impossible layer, because every later shape depends on that one and
//!    would only produce follow-on errors.
//!
//! Each message is lowercase, names the shape the layer saw and a fix, and sits
//! on the token at fault (the `3` in `conv<32, 3>`, the `dense` after an image).

use crate::args;
use crate::ast::{Arg, Input, Layer, LayerKind, Network, Value};
use crate::errors::Errors;
use crate::shape::{Hw, Op, Padding, Shape, ShapeError};
use syn::ext::IdentExt;

/// A network whose arguments and shapes are all valid.
pub struct Checked<'a> {
    pub net: &'a Network,
    pub input: Shape,
    pub layers: Vec<CheckedLayer<'a>>,
    /// Trainable parameters of the whole network.
    pub params: usize,
    /// Non-trainable parameters (batchnorm's moving statistics).
    pub non_trainable: usize,
}

/// One layer with its arguments resolved and its shapes known.
pub struct CheckedLayer<'a> {
    pub ast: &'a Layer,
    pub spec: Spec,
    pub input: Shape,
    pub output: Shape,
    pub params: usize,
    /// Non-trainable parameters (batchnorm's moving statistics).
    pub non_trainable: usize,
}

/// A layer's validated arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Dense {
        units: usize,
        l2: Option<Float>,
        /// `bias = false` makes this false (Keras' `use_bias`).
        bias: bool,
    },
    /// `conv<F, K>` or `conv<F, (KH, KW)>`, `stride = S` or `(SH, SW)`.
    Conv {
        filters: usize,
        kernel: Hw,
        stride: Hw,
        pad: Padding,
        l2: Option<Float>,
        bias: bool,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    /// `avgpool<K, stride = S>`: the same shape arithmetic as `maxpool`.
    AvgPool {
        kernel: usize,
        stride: usize,
    },
    GlobalAvgPool,
    Flatten,
    Dropout {
        rate: Float,
    },
    /// `batchnorm<momentum = M, epsilon = E>`; Keras' defaults 0.99 and 1e-3 when not written.
    BatchNorm {
        momentum: Option<Float>,
        epsilon: Option<Float>,
    },
    Relu,
    /// `leaky_relu<alpha = A>`; `alpha` is Keras' default 0.3 when not written.
    LeakyRelu {
        alpha: Option<Float>,
    },
    Tanh,
    Sigmoid,
}

/// A real number with the text it was written as (`1e-3`), for messages and summaries.
#[derive(Clone, Debug, PartialEq)]
pub struct Float {
    pub value: f64,
    pub text: String,
}

/// Check `net`: `Err` with every argument error, or the first shape error.
pub fn check(net: &Network) -> syn::Result<Checked<'_>> {
    let mut errors = Errors::new();
    let layers = match &net.layers {
        Ok(layers) => layers,
        Err(err) => return Err(err.clone()),
    };
    // Pass 1: arguments of the input and of every layer, errors combined.
    let input = args::check_input(&mut errors, &net.input);
    args::check_not_empty(&mut errors, net, layers);
    let specs: Vec<Option<Spec>> = layers
        .iter()
        .map(|layer| args::check_layer_args(&mut errors, layer))
        .collect();
    errors.propagate()?;
    let (Some(input), Some(specs)) = (input, specs.into_iter().collect::<Option<Vec<_>>>()) else {
        // Every `None` above comes with an error, so this is not reached.
        return Err(syn::Error::new(net.name.span(), "invalid network"));
    };

    // Pass 2: shapes, stopping at the first impossible layer.
    let mut shape = input;
    let mut checked: Vec<CheckedLayer> = Vec::with_capacity(layers.len());
    let mut params = 0usize;
    let mut non_trainable = 0usize;
    for (layer, spec) in layers.iter().zip(specs) {
        let op = spec.op();
        let seen = Seen {
            after: match checked.last() {
                Some(prev) => format!("after `{}`", describe(prev)),
                None => format!("at the input {}", input_text(&net.input)),
            },
            input: input_text(&net.input),
            flattened: checked.iter().any(|l| l.spec == Spec::Flatten),
        };
        let output = match op.output(shape) {
            Ok(output) => output,
            Err(err) => return Err(shape_error(layer, &spec, shape, &seen, err)),
        };
        let layer_params = spec
            .params(shape)
            .ok_or_else(|| params_overflow(layer, &spec, shape, None))?;
        params = params
            .checked_add(layer_params)
            .ok_or_else(|| params_overflow(layer, &spec, shape, Some(params)))?;
        // at most the trainable count (batchnorm: 2C each), so no overflow check of its own
        let layer_frozen = spec.non_trainable(shape).unwrap_or(0);
        non_trainable += layer_frozen;
        checked.push(CheckedLayer {
            ast: layer,
            spec,
            input: shape,
            output,
            params: layer_params,
            non_trainable: layer_frozen,
        });
        shape = output;
    }
    Ok(Checked {
        net,
        input,
        layers: checked,
        params,
        non_trainable,
    })
}

/// The expansion's own identifiers (`__Layers`, `__E`, `__D`, `__batch`) start
/// with this; a network name may not, so that no name a user writes collides
/// with one (`impl<E, D> BuildOnDevice<D, E> for D` would not compile).
pub const RESERVED_PREFIX: &str = "__";

/// A network's name is new in its `network!` call and not reserved. A failed
/// name gets no fallback definition (the first declaration keeps the name; a
/// reserved one cannot be defined), so this is one error on the name.
///
/// ```text
/// network! { Net<784> { dense<10> }  Net<784> { dense<5> } }   // declared twice
/// network! { __E<784> { dense<10> } }                         // reserved
/// ```
pub fn check_name(earlier: &[Network], net: &Network) -> syn::Result<()> {
    let name = net.name.unraw();
    if name.to_string().starts_with(RESERVED_PREFIX) {
        let msg = format!(
            "network names starting with `{RESERVED_PREFIX}` are reserved for the code \
             `network!` generates; rename `{name}`"
        );
        return Err(syn::Error::new(net.name.span(), msg));
    }
    if earlier.iter().any(|other| other.name.unraw() == name) {
        let msg = format!(
            "network `{name}` is declared twice in this `network!`; rename one \
             (for `#[cfg]` alternatives, use one `network!` per declaration)"
        );
        return Err(syn::Error::new(net.name.span(), msg));
    }
    Ok(())
}

impl Spec {
    /// Trainable parameters for `input`: the shape arithmetic's kernel plus
    /// bias, less the bias where `bias = false`.
    pub fn params(&self, input: Shape) -> Option<usize> {
        let all = self.op().params(input)?;
        match *self {
            Spec::Dense {
                units, bias: false, ..
            } => all.checked_sub(units),
            Spec::Conv {
                filters,
                bias: false,
                ..
            } => all.checked_sub(filters),
            // gamma and beta per channel (or unit)
            Spec::BatchNorm { .. } => channels(input).checked_mul(2),
            _ => Some(all),
        }
    }

    /// Non-trainable parameters for `input`: batchnorm's moving mean and
    /// variance per channel (or unit), none elsewhere.
    pub fn non_trainable(&self, input: Shape) -> Option<usize> {
        match self {
            Spec::BatchNorm { .. } => channels(input).checked_mul(2),
            _ => Some(0),
        }
    }

    /// What the layer does to shapes.
    pub fn op(&self) -> Op {
        match *self {
            Spec::Dense { units, .. } => Op::Dense { units },
            Spec::Conv {
                filters,
                kernel,
                stride,
                pad,
                ..
            } => Op::Conv {
                filters,
                kernel,
                stride,
                pad,
            },
            Spec::MaxPool { kernel, stride } | Spec::AvgPool { kernel, stride } => {
                Op::MaxPool { kernel, stride }
            }
            Spec::GlobalAvgPool => Op::GlobalPool,
            Spec::Flatten => Op::Flatten,
            Spec::Dropout { .. }
            | Spec::BatchNorm { .. }
            | Spec::Relu
            | Spec::LeakyRelu { .. }
            | Spec::Tanh
            | Spec::Sigmoid => Op::Elementwise,
        }
    }
}

/// The channels of an image, the units of a vector: what batchnorm normalises over.
fn channels(shape: Shape) -> usize {
    match shape {
        Shape::Image { c, .. } => c,
        Shape::Flat(n) => n,
    }
}

/// The layer in canonical DSL form, `conv<64, 3, pad = same>`: used in messages and summaries.
pub fn describe(layer: &CheckedLayer) -> String {
    describe_spec(&layer.spec)
}

pub fn describe_spec(spec: &Spec) -> String {
    let no_bias = |bias: bool| if bias { "" } else { ", bias = false" };
    let l2 = |l2: &Option<Float>| match l2 {
        Some(f) => format!(", l2 = {}", f.text),
        None => String::new(),
    };
    match spec {
        Spec::Dense { units, l2: l, bias } => format!("dense<{units}{}{}>", l2(l), no_bias(*bias)),
        Spec::Conv {
            filters,
            kernel,
            stride,
            pad,
            l2: l,
            bias,
        } => {
            let stride = match stride {
                Hw { h: 1, w: 1 } => String::new(),
                s => format!(", stride = {s}"),
            };
            let pad = match pad {
                Padding::Valid => String::new(),
                Padding::Same => ", pad = same".to_string(),
                Padding::Explicit(p) => format!(", pad = {p}"),
            };
            format!(
                "conv<{filters}, {kernel}{stride}{pad}{}{}>",
                l2(l),
                no_bias(*bias)
            )
        }
        Spec::MaxPool { kernel, stride } if stride == kernel => format!("maxpool<{kernel}>"),
        Spec::MaxPool { kernel, stride } => format!("maxpool<{kernel}, stride = {stride}>"),
        Spec::AvgPool { kernel, stride } if stride == kernel => format!("avgpool<{kernel}>"),
        Spec::AvgPool { kernel, stride } => format!("avgpool<{kernel}, stride = {stride}>"),
        Spec::GlobalAvgPool => "globalavgpool".into(),
        Spec::Flatten => "flatten".into(),
        Spec::Dropout { rate } => format!("dropout<{}>", rate.text),
        Spec::BatchNorm { momentum, epsilon } => {
            let options: Vec<String> = [("momentum", momentum), ("epsilon", epsilon)]
                .into_iter()
                .filter_map(|(name, f)| f.as_ref().map(|f| format!("{name} = {}", f.text)))
                .collect();
            if options.is_empty() {
                "batchnorm".into()
            } else {
                format!("batchnorm<{}>", options.join(", "))
            }
        }
        Spec::Relu => "relu".into(),
        Spec::LeakyRelu { alpha: None } => "leaky_relu".into(),
        Spec::LeakyRelu { alpha: Some(a) } => format!("leaky_relu<alpha = {}>", a.text),
        Spec::Tanh => "tanh".into(),
        Spec::Sigmoid => "sigmoid".into(),
    }
}

// ---------------------------------------------------------------------------
// Pass 2: shapes
// ---------------------------------------------------------------------------

/// What came before a layer, for its shape errors.
struct Seen {
    /// "after `maxpool<2>`" or "at the input <1, 28, 28>".
    after: String,
    /// The input shape as written, `<784>`.
    input: String,
    /// Whether a `flatten` came before (else a vector is the input itself).
    flattened: bool,
}

/// The message for a layer that cannot take `input`, on the token at fault.
///
/// ```text
/// Bad<1, 28, 28> { conv<8, 3>, dense<10> }          // dense after an image
/// Bad<784> { conv<8, 3> }                           // conv after a vector
/// Bad<784> { dense<10>, maxpool<2> }                // a vector input never becomes an image
/// Bad<1, 28, 28> { flatten, maxpool<2> }            // spatial layer after flatten
/// Bad<784> { relu, flatten }                        // flatten of a vector input
/// Bad<1, 4, 4> { conv<8, 5> }                       // kernel larger than input
/// ```
fn shape_error(
    layer: &Layer,
    spec: &Spec,
    input: Shape,
    seen: &Seen,
    err: ShapeError,
) -> syn::Error {
    let word = layer.kind.word();
    let here = layer.name.span();
    let after = &seen.after;
    match err {
        ShapeError::NeedsFlat => syn::Error::new(
            here,
            format!(
                "`{word}` needs a vector, got an image {input} {after}; insert `flatten` before `{word}`"
            ),
        ),
        ShapeError::NeedsImage => {
            // A vector comes either from a `flatten` or from a vector input.
            let first = after.starts_with("at the input");
            let fix = match (layer.kind, seen.flattened) {
                (LayerKind::Flatten, true) => "remove the second `flatten`".to_string(),
                (_, true) => format!("move `{word}` before `flatten`"),
                (LayerKind::Flatten, false) if first => {
                    "remove `flatten`, or declare the input as an image, e.g. `<1, 28, 28>`"
                        .to_string()
                }
                (LayerKind::Flatten, false) => format!(
                    "the input {} is already a vector: remove `flatten`, \
                     or declare the input as an image, e.g. `<1, 28, 28>`",
                    seen.input
                ),
                (_, false) if first => {
                    "declare the input as an image, e.g. `<1, 28, 28>`".to_string()
                }
                (_, false) => format!(
                    "the input {} is a vector, so no layer gets an image: \
                     declare the input as an image, e.g. `<1, 28, 28>`",
                    seen.input
                ),
            };
            syn::Error::new(
                here,
                format!("`{word}` needs an image <C, H, W>, got a vector of {input} {after}; {fix}"),
            )
        }
        ShapeError::KernelTooLarge { padded_h, padded_w } => {
            let (kernel, what, fix) = match spec {
                Spec::Conv { kernel, .. } => (
                    *kernel,
                    "kernel",
                    "use a smaller kernel, `pad = same`, or drop a pool before it",
                ),
                Spec::MaxPool { kernel, .. } | Spec::AvgPool { kernel, .. } => (
                    Hw::square(*kernel),
                    "pool",
                    "use a smaller pool or drop a layer before it",
                ),
                _ => unreachable!("only conv and the pools have kernels"),
            };
            let Shape::Image { h, w, .. } = input else {
                unreachable!("kernel checks happen on images")
            };
            let padded = if (padded_h, padded_w) != (h, w) {
                format!(" ({padded_h}x{padded_w} padded)")
            } else {
                String::new()
            };
            let msg = format!(
                "{what} {kernel} larger than input {h}x{w}{padded} {after}; {fix}"
            );
            // Point at the kernel size: the second argument of conv, the first of maxpool.
            let index = usize::from(layer.kind == LayerKind::Conv);
            let token = layer
                .args
                .as_ref()
                .and_then(|a| {
                    a.items
                        .iter()
                        .filter(|arg| matches!(arg, Arg::Positional(_)))
                        .nth(index)
                })
                .map(Arg::tokens);
            match token {
                Some(tokens) => syn::Error::new_spanned(tokens, msg),
                None => syn::Error::new(here, msg),
            }
        }
        ShapeError::Overflow => syn::Error::new(
            here,
            format!("`{word}` output size does not fit in usize (input {input} {after})"),
        ),
    }
}

/// The parameter count does not fit in `usize`: in the layer itself, or in
/// the running total once this layer is added (`total_before`). Either way
/// the error is on this layer, the first one that does not fit.
///
/// ```text
/// Bad<4294967295> { dense<4294967295>, dense<4294967295> }   // the total overflows at the second
/// ```
fn params_overflow(
    layer: &Layer,
    spec: &Spec,
    input: Shape,
    total_before: Option<usize>,
) -> syn::Error {
    let what = describe_spec(spec);
    let msg = match total_before {
        None => format!("`{what}` has more parameters than fit in usize (input {input})"),
        Some(before) => format!(
            "the network's parameter count overflows usize at `{what}`: \
             {before} parameters before it, {} in it",
            spec.op().params(input).unwrap_or(0)
        ),
    };
    syn::Error::new(layer.name.span(), msg)
}

/// `<1, 28, 28>` as written.
fn input_text(input: &Input) -> String {
    let dims: Vec<String> = input.dims.iter().map(Value::text).collect();
    format!("<{}>", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Networks;
    use quote::quote;

    fn check_one(
        tokens: proc_macro2::TokenStream,
    ) -> Result<Vec<(String, String, usize)>, Vec<String>> {
        let nets: Networks = syn::parse2(tokens).unwrap();
        let net = &nets.networks[0];
        match check(net) {
            Ok(c) => Ok(c
                .layers
                .iter()
                .map(|l| (describe(l), l.output.to_string(), l.params))
                .collect()),
            Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn cnn4a() {
        let layers = check_one(quote!(Cnn4a<1, 28, 28> {
            conv<32, 3, pad = same>, relu, maxpool<2>,
            conv<64, 3, pad = same>, relu, maxpool<2>,
            conv<64, 3, pad = same>, relu, maxpool<2>,
            flatten, dense<64>, relu, dense<10>,
        }))
        .unwrap();
        let shapes: Vec<&str> = layers.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(
            shapes,
            [
                "32x28x28", "32x28x28", "32x14x14", "64x14x14", "64x14x14", "64x7x7", "64x7x7",
                "64x7x7", "64x3x3", "576", "64", "64", "10"
            ]
        );
        assert_eq!(layers.iter().map(|l| l.2).sum::<usize>(), 93_322);
        assert_eq!(layers[0].0, "conv<32, 3, pad = same>");
    }

    #[test]
    fn options_and_defaults() {
        let layers = check_one(quote!(N<3, 9, 9> {
            conv<4, 3, stride = 2, pad = 1, l2 = 1e-3>, maxpool<2, stride = 1>, dropout<0>,
            flatten, dense<2, l2 = 0.01>,
        }))
        .unwrap();
        assert_eq!(layers[0].0, "conv<4, 3, stride = 2, pad = 1, l2 = 1e-3>");
        assert_eq!(layers[0].1, "4x5x5");
        assert_eq!(layers[1].0, "maxpool<2, stride = 1>");
        assert_eq!(layers[1].1, "4x4x4");
        assert_eq!(layers[4].0, "dense<2, l2 = 0.01>");
    }

    #[test]
    fn argument_errors_are_combined() {
        let errs = check_one(quote!(N<1, 0, 28> {
            conv<32>, dense<12.5>, relu<2>, maxpool<2, stride = 0>, dropout<1.5>,
            conv<8, 3, strides = 2, pad = same, pad = 1>, dense<-3>,
        }))
        .unwrap_err();
        let expected = [
            "input dimension must be at least 1, got 0",
            "`conv` is missing its kernel size",
            "units must be an integer, got `12.5`",
            "`relu` takes no arguments",
            "stride must be at least 1, got 0",
            "dropout rate must be in [0, 1), got `1.5`",
            "unknown option `strides` for `conv` (did you mean `stride`?); it takes",
            "duplicate option `pad`",
            "units must be at least 1, got `-3`",
        ];
        assert_eq!(errs.len(), expected.len(), "{errs:#?}");
        for (err, want) in errs.iter().zip(expected) {
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn shape_inference_stops_at_the_first_impossible_layer() {
        let errs = check_one(quote!(N<1, 28, 28> {
            conv<8, 3>, dense<10>, conv<8, 30>,
        }))
        .unwrap_err();
        assert_eq!(
            errs,
            ["`dense` needs a vector, got an image 8x26x26 after `conv<8, 3>`; insert `flatten` before `dense`"]
        );
    }

    #[test]
    fn shape_errors_name_the_shape_and_a_fix() {
        let errs = check_one(quote!(N<1, 4, 4> { conv<8, 5> })).unwrap_err();
        assert_eq!(errs[0], "kernel 5 larger than input 4x4 at the input <1, 4, 4>; use a smaller kernel, `pad = same`, or drop a pool before it");
        let errs = check_one(quote!(N<1, 28, 28> { flatten, maxpool<2> })).unwrap_err();
        assert_eq!(errs[0], "`maxpool` needs an image <C, H, W>, got a vector of 784 after `flatten`; move `maxpool` before `flatten`");
        let errs = check_one(quote!(N<784> { conv<2, 2> })).unwrap_err();
        assert!(
            errs[0].ends_with("declare the input as an image, e.g. `<1, 28, 28>`"),
            "{}",
            errs[0]
        );
    }

    /// The first line of each error, for compact comparisons.
    fn errors(tokens: proc_macro2::TokenStream) -> Vec<String> {
        check_one(tokens).unwrap_err()
    }

    #[test]
    fn sizes_the_runtime_cannot_build_are_rejected() {
        let errs = errors(quote!(N<1, 40, 40> {
            conv<2, 3>, relu, maxpool<17>, maxpool<16>, dropout<0.99999999>, flatten,
            dense<10, l2 = 1e39>,
        }));
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].starts_with("pool size 17 is larger than 16"),
            "{}",
            errs[0]
        );
        assert!(
            errs[1].starts_with("dropout rate `0.99999999` rounds to 1 as f32"),
            "{}",
            errs[1]
        );
        assert!(
            errs[1].ends_with("the largest rate below 1 is `0.99999994`"),
            "{}",
            errs[1]
        );
        assert!(
            errs[2].starts_with("l2 factor `1e39` is too large for f32"),
            "{}",
            errs[2]
        );
        // The limits themselves pass.
        check_one(quote!(N<1, 18, 18> {
            conv<2, 3>, relu, maxpool<16>, dropout<0.99999994>, flatten, dense<2, l2 = 3e38>,
        }))
        .unwrap();
    }

    #[test]
    fn literal_suffixes_are_rejected() {
        let errs = errors(quote!(N<1, 28, 28> {
            conv<32, 5x3>, flatten, dense<3units>, dropout<0.5f32>, dense<2, l2 = 1e-3f64>,
        }));
        assert_eq!(
            errs,
            [
                "unexpected suffix `x3` on `5x3`; for a 5x3 kernel write `(5, 3)` (height, width)",
                "unexpected suffix `units` on `3units`; write the number alone, e.g. `3`",
                "unexpected suffix `f32` on `0.5f32`; write the number alone, e.g. `0.5`",
                "unexpected suffix `f64` on `1e-3f64`; write the number alone, e.g. `1e-3`",
            ]
        );
    }

    #[test]
    fn errors_within_a_layer_come_in_source_order() {
        let errs = errors(quote!(N<1, 28, 28> { conv<0, 3, stride = 0, pad = full, strides = 1> }));
        let firsts: Vec<&str> = errs
            .iter()
            .map(|e| &e[..e.find([',', ';']).unwrap()])
            .collect();
        assert_eq!(
            firsts,
            [
                "filters must be at least 1",
                "stride must be at least 1",
                "unknown padding `full`",
                "unknown option `strides` for `conv` (did you mean `stride`?)",
            ]
        );
    }

    #[test]
    fn argument_hints() {
        let errs = errors(quote!(N<1, 28, 28> {
            relu<>, conv<8, 3, padding = same>, conv<32, 3, 2>, maxpool<2, 2>,
            conv<8, 3, pad = "same">, conv<8, (3, 3, 3)>, maxpool<(2, 2)>, flatten, dense<"10">, dense<10, 5>,
        }));
        assert_eq!(
            errs,
            [
                "`relu` takes no arguments; write `relu` without `<>`",
                "unknown option `padding` for `conv` (did you mean `pad`?); it takes `stride`, `pad`, `l2`, `bias`",
                "extra argument: `conv` takes only its filters and kernel size; for a stride write `conv<32, 3, stride = 2>`",
                "extra argument: `maxpool` takes only its pool size; for a stride write `maxpool<2, stride = 2>`",
                "padding is a word, not a string: write `same` without quotes",
                "kernel size must be one integer or a pair `(height, width)`, got `(3, 3, 3)`; write e.g. `(3, 5)`",
                "pool size must be one integer, got `(2, 2)`; non-square pools are not supported, write one side, e.g. `2`",
                "units must be an integer, got the string `\"10\"`; write `10` without quotes",
                "extra argument: `dense` takes only its units, e.g. `dense<128>`",
            ]
        );
    }

    #[test]
    fn vector_hints_say_where_the_vector_came_from() {
        let errs = errors(quote!(N<784> { relu, flatten, dense<10> }));
        assert!(
            errs[0].ends_with("the input <784> is already a vector: remove `flatten`, or declare the input as an image, e.g. `<1, 28, 28>`"),
            "{}",
            errs[0]
        );
        let errs = errors(quote!(N<784> { dense<10>, maxpool<2> }));
        assert!(
            errs[0].ends_with("the input <784> is a vector, so no layer gets an image: declare the input as an image, e.g. `<1, 28, 28>`"),
            "{}",
            errs[0]
        );
        let errs = errors(quote!(N<784> { flatten }));
        assert!(
            errs[0].ends_with("at the input <784>; remove `flatten`, or declare the input as an image, e.g. `<1, 28, 28>`"),
            "{}",
            errs[0]
        );
        let errs = errors(quote!(N<1, 28, 28> { flatten, dense<10>, flatten }));
        assert!(
            errs[0].ends_with("remove the second `flatten`"),
            "{}",
            errs[0]
        );
        let errs = errors(quote!(N<1, 28, 28> { flatten, dense<10>, conv<2, 2> }));
        assert!(
            errs[0].ends_with("move `conv` before `flatten`"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn parameter_overflow_is_blamed_where_it_happens() {
        // Each dense alone fits in usize; the total overflows at the second.
        let errs = errors(quote!(N<4294967295> {
            dense<4294967295>, relu, dense<4294967295>, dense<10>,
        }));
        assert_eq!(
            errs,
            [
                "the network's parameter count overflows usize at `dense<4294967295>`: \
              18446744069414584320 parameters before it, 18446744069414584320 in it"
            ]
        );
    }

    #[test]
    fn names_are_new_and_not_reserved() {
        let nets: Networks = syn::parse2(quote! {
            Net<784> { dense<10> }
            Other<784> { dense<10> }
            r#Net<784> { dense<5> }
            __D<784> { dense<10> }
        })
        .unwrap();
        let [net, other, again, reserved] = &nets.networks[..] else {
            panic!("four networks")
        };
        assert!(check_name(&[], net).is_ok());
        assert!(check_name(std::slice::from_ref(net), other).is_ok());
        let err = check_name(&nets.networks[..2], again)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("network `Net` is declared twice"), "{err}");
        let err = check_name(&[], reserved).unwrap_err().to_string();
        assert!(
            err.starts_with("network names starting with `__` are reserved"),
            "{err}"
        );
    }

    #[test]
    fn bias_false_drops_the_bias_parameters() {
        let layers = check_one(quote!(N<1, 8, 8> {
            conv<4, 3, bias = false>, conv<4, 3, bias = true>, flatten,
            dense<10, l2 = 0.1, bias = false>,
        }))
        .unwrap();
        assert_eq!(layers[0].0, "conv<4, 3, bias = false>");
        assert_eq!(layers[0].2, 36);
        assert_eq!(layers[1].0, "conv<4, 3>");
        assert_eq!(layers[1].2, 148);
        assert_eq!(layers[3].0, "dense<10, l2 = 0.1, bias = false>");
        assert_eq!(layers[3].2, 640);
        let errs = errors(quote!(N<784> {
            dense<10, bias = maybe>, dense<10, bias = 0>, dense<10, bias = "false">,
        }));
        assert_eq!(
            errs,
            [
                "bias must be `true` or `false`, got `maybe`; e.g. `bias = false`",
                "bias must be `true` or `false`, got `0`; e.g. `bias = false`",
                "bias is `true` or `false`, not a string: write `false` without quotes",
            ]
        );
    }

    #[test]
    fn average_pools() {
        let layers = check_one(quote!(N<8, 11, 11> {
            avgpool<2>, avgpool<3, stride = 1>, avgpool<20, stride = 2>, globalavgpool, dense<10>,
        }));
        let errs = layers.unwrap_err();
        assert_eq!(
            errs,
            ["pool 20 larger than input 3x3 after `avgpool<3, stride = 1>`; use a smaller pool or drop a layer before it"]
        );
        let layers = check_one(quote!(N<8, 11, 11> {
            avgpool<2>, avgpool<3, stride = 1>, globalavgpool, dense<10>,
        }))
        .unwrap();
        let shapes: Vec<&str> = layers.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(shapes, ["8x5x5", "8x3x3", "8", "10"]);
        assert_eq!(layers[1].0, "avgpool<3, stride = 1>");
        assert_eq!(layers[2].0, "globalavgpool");
        let errs = errors(quote!(N<784> { dense<10>, globalavgpool }));
        assert!(
            errs[0].starts_with(
                "`globalavgpool` needs an image <C, H, W>, got a vector of 10 after `dense<10>`"
            ),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn batchnorm_counts_and_options() {
        let nets: Networks = syn::parse2(quote!(N<1, 8, 8> {
            conv<4, 3, bias = false>, batchnorm, relu, flatten, dense<10>,
            batchnorm<momentum = 0.9, epsilon = 1e-5>,
        }))
        .unwrap();
        let checked = check(&nets.networks[0]).unwrap();
        let l = &checked.layers;
        assert_eq!((l[1].params, l[1].non_trainable), (8, 8));
        assert_eq!(describe(&l[1]), "batchnorm");
        assert_eq!((l[5].params, l[5].non_trainable), (20, 20));
        assert_eq!(describe(&l[5]), "batchnorm<momentum = 0.9, epsilon = 1e-5>");
        assert_eq!(checked.params, 36 + 8 + 1450 + 20);
        assert_eq!(checked.non_trainable, 28);
        let errs = errors(quote!(N<784> {
            batchnorm<momentum = 1.5>, batchnorm<epsilon = 0>, batchnorm<0.9>,
        }));
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(errs[0].starts_with("batchnorm momentum must be in [0, 1], got `1.5`"));
        assert!(errs[1].starts_with("batchnorm epsilon must be > 0"));
        assert_eq!(
            errs[2],
            "`batchnorm` takes options only: write e.g. `batchnorm<momentum = 0.9>`"
        );
    }

    #[test]
    fn leaky_relu_slope() {
        let layers =
            check_one(quote!(N<784> { dense<8>, leaky_relu, leaky_relu<alpha = 0.1> })).unwrap();
        assert_eq!(layers[1].0, "leaky_relu");
        assert_eq!(layers[2].0, "leaky_relu<alpha = 0.1>");
        assert_eq!(layers[2].1, "8");
        let errs = errors(quote!(N<784> {
            leaky_relu<0.1>, leaky_relu<alpha = -0.5>, leaky_relu<slope = 0.1>,
        }));
        assert_eq!(
            errs,
            [
                "`leaky_relu` takes its slope as an option: write `leaky_relu<alpha = 0.1>`",
                "leaky_relu slope must be >= 0, got `-0.5`; Keras' default is `0.3`",
                "unknown option `slope` for `leaky_relu`; it takes `alpha`",
            ]
        );
    }

    #[test]
    fn input_shape_rules() {
        let errs = check_one(quote!(N<28, 28> { dense<10> })).unwrap_err();
        assert!(errs[0].starts_with(
            "the input shape must be an image `<C, H, W>` or a vector `<N>`, got 2 dimensions"
        ));
        let errs = check_one(quote!(N<784> {})).unwrap_err();
        assert!(errs[0].starts_with("network `N` has no layers"));
    }
}
