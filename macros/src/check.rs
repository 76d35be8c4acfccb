//! Checks a parsed network and infers every layer's shape.
//!
//! Two passes, as in serde_derive's check.rs and thiserror's `try_expand`:
//! 1. Arguments, for *every* layer and the input shape: count, types, ranges,
//!    options. These errors are independent, so all of them are collected and
//!    reported together.
//! 2. Shapes, layer by layer from the input. This pass stops at the first
//!    impossible layer, because every later shape depends on that one and
//!    would only produce follow-on errors.
//!
//! Each message is lowercase, names the shape the layer saw and a fix, and sits
//! on the token at fault (the `3` in `conv<32, 3>`, the `dense` after an image).

use crate::ast::{Arg, Input, Layer, LayerKind, Network, Value};
use crate::errors::{did_you_mean, Errors};
use crate::shape::{Op, Padding, Shape, ShapeError};

/// A network whose arguments and shapes are all valid.
pub struct Checked<'a> {
    pub net: &'a Network,
    pub input: Shape,
    pub layers: Vec<CheckedLayer<'a>>,
    /// Trainable parameters of the whole network.
    pub params: usize,
}

/// One layer with its arguments resolved and its shapes known.
pub struct CheckedLayer<'a> {
    pub ast: &'a Layer,
    pub spec: Spec,
    pub input: Shape,
    pub output: Shape,
    pub params: usize,
}

/// A layer's validated arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Dense {
        units: usize,
        l2: Option<Float>,
    },
    Conv {
        filters: usize,
        kernel: usize,
        stride: usize,
        pad: Padding,
        l2: Option<Float>,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    Flatten,
    Dropout {
        rate: Float,
    },
    Relu,
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
    let input = check_input(&mut errors, &net.input);
    check_not_empty(&mut errors, net, layers);
    let specs: Vec<Option<Spec>> = layers
        .iter()
        .map(|layer| check_layer_args(&mut errors, layer))
        .collect();
    errors.propagate()?;
    let (Some(input), Some(specs)) = (input, specs.into_iter().collect::<Option<Vec<_>>>()) else {
        // Every `None` above comes with an error, so this is not reached.
        return Err(syn::Error::new(net.name.span(), "invalid network"));
    };

    // Pass 2: shapes, stopping at the first impossible layer.
    let mut shape = input;
    let mut checked = Vec::with_capacity(layers.len());
    let mut params = 0usize;
    for (layer, spec) in layers.iter().zip(specs) {
        let op = spec.op();
        let after = match checked.last() {
            Some(prev) => format!("after `{}`", describe(prev)),
            None => format!("at the input {}", input_text(&net.input)),
        };
        let output = match op.output(shape) {
            Ok(output) => output,
            Err(err) => return Err(shape_error(layer, &spec, shape, &after, err)),
        };
        let layer_params = op.params(shape).and_then(|p| {
            params = params.checked_add(p)?;
            Some(p)
        });
        let Some(layer_params) = layer_params else {
            let msg = format!(
                "`{}` has more parameters than fit in usize",
                describe_spec(&spec)
            );
            return Err(syn::Error::new_spanned(layer, msg));
        };
        checked.push(CheckedLayer {
            ast: layer,
            spec,
            input: shape,
            output,
            params: layer_params,
        });
        shape = output;
    }
    Ok(Checked {
        net,
        input,
        layers: checked,
        params,
    })
}

impl Spec {
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
            Spec::MaxPool { kernel, stride } => Op::MaxPool { kernel, stride },
            Spec::Flatten => Op::Flatten,
            Spec::Dropout { .. } | Spec::Relu | Spec::Tanh | Spec::Sigmoid => Op::Elementwise,
        }
    }
}

/// The layer in canonical DSL form, `conv<64, 3, pad = same>`: used in messages and summaries.
pub fn describe(layer: &CheckedLayer) -> String {
    describe_spec(&layer.spec)
}

pub fn describe_spec(spec: &Spec) -> String {
    let l2 = |l2: &Option<Float>| match l2 {
        Some(f) => format!(", l2 = {}", f.text),
        None => String::new(),
    };
    match spec {
        Spec::Dense { units, l2: l } => format!("dense<{units}{}>", l2(l)),
        Spec::Conv {
            filters,
            kernel,
            stride,
            pad,
            l2: l,
        } => {
            let stride = match stride {
                1 => String::new(),
                s => format!(", stride = {s}"),
            };
            let pad = match pad {
                Padding::Valid => String::new(),
                Padding::Same => ", pad = same".to_string(),
                Padding::Explicit(p) => format!(", pad = {p}"),
            };
            format!("conv<{filters}, {kernel}{stride}{pad}{}>", l2(l))
        }
        Spec::MaxPool { kernel, stride } if stride == kernel => format!("maxpool<{kernel}>"),
        Spec::MaxPool { kernel, stride } => format!("maxpool<{kernel}, stride = {stride}>"),
        Spec::Flatten => "flatten".into(),
        Spec::Dropout { rate } => format!("dropout<{}>", rate.text),
        Spec::Relu => "relu".into(),
        Spec::Tanh => "tanh".into(),
        Spec::Sigmoid => "sigmoid".into(),
    }
}

// ---------------------------------------------------------------------------
// Pass 1: arguments
// ---------------------------------------------------------------------------

/// Largest accepted size: keeps every product of sizes far from `usize` overflow.
const MAX_SIZE: u64 = u32::MAX as u64;

/// The input is `<C, H, W>` or `<N>`, every dimension at least 1.
///
/// ```text
/// Bad<28, 28> { .. }      // two dimensions
/// Bad<1, 0, 28> { .. }    // zero dimension
/// ```
fn check_input(errors: &mut Errors, input: &Input) -> Option<Shape> {
    let dims: Vec<Option<usize>> = input
        .dims
        .iter()
        .map(|dim| check_size(errors, dim, "input dimension"))
        .collect();
    let shape = match dims.as_slice() {
        [n] => Some(Shape::Flat((*n)?)),
        [c, h, w] => Some(Shape::Image {
            c: (*c)?,
            h: (*h)?,
            w: (*w)?,
        }),
        _ => {
            errors.error_spanned(
                input,
                format!(
                    "the input shape must be an image `<C, H, W>` or a vector `<N>`, got {} dimensions; \
                     for 28x28 grey images write `<1, 28, 28>`",
                    dims.len()
                ),
            );
            None
        }
    };
    shape
}

/// A network has at least one layer.
///
/// ```text
/// Empty<784> {}
/// ```
fn check_not_empty(errors: &mut Errors, net: &Network, layers: &[Layer]) {
    if layers.is_empty() {
        errors.error(
            net.body_span,
            format!(
                "network `{}` has no layers; add at least one, e.g. `{{ dense<10> }}`",
                net.name
            ),
        );
    }
}

/// What a layer takes: its positional arguments (in order) and its options.
struct Signature {
    positional: &'static [&'static str],
    options: &'static [&'static str],
    example: &'static str,
}

fn signature(kind: LayerKind) -> Signature {
    let (positional, options, example): (&[&str], &[&str], &str) = match kind {
        LayerKind::Dense => (&["units"], &["l2"], "dense<128>"),
        LayerKind::Conv => (
            &["filters", "kernel size"],
            &["stride", "pad", "l2"],
            "conv<32, 3>",
        ),
        LayerKind::MaxPool => (&["pool size"], &["stride"], "maxpool<2>"),
        LayerKind::Dropout => (&["rate"], &[], "dropout<0.5>"),
        LayerKind::Flatten => (&[], &[], "flatten"),
        LayerKind::Relu => (&[], &[], "relu"),
        LayerKind::Tanh => (&[], &[], "tanh"),
        LayerKind::Sigmoid => (&[], &[], "sigmoid"),
    };
    Signature {
        positional,
        options,
        example,
    }
}

/// Resolve one layer's arguments; `None` after recording at least one error.
///
/// ```text
/// conv<32>               // missing kernel size
/// dense<10, 5>           // extra argument
/// relu<2>                // takes no arguments
/// conv<32, 3, strides = 2, stride = 1, stride = 2>   // unknown and duplicate option
/// ```
fn check_layer_args(errors: &mut Errors, layer: &Layer) -> Option<Spec> {
    let kind = layer.kind;
    let sig = signature(kind);
    let word = kind.word();
    let items: &[Arg] = layer.args.as_ref().map_or(&[], |a| &a.items);
    let positional: Vec<&Value> = items
        .iter()
        .filter_map(|arg| match arg {
            Arg::Positional(v) => Some(v),
            Arg::Option(_) => None,
        })
        .collect();
    let mut ok = true;

    // Argument count.
    let want = sig.positional.len();
    if positional.len() < want {
        let missing = sig.positional[positional.len()..].join(" and ");
        let msg = format!(
            "`{word}` is missing its {missing}; write e.g. `{}`",
            sig.example
        );
        errors.error_spanned(layer, msg);
        ok = false;
    } else if positional.len() > want {
        let msg = if want == 0 {
            format!("`{word}` takes no arguments; write `{word}`")
        } else {
            let takes = sig.positional.join(" and ");
            format!(
                "extra argument: `{word}` takes only its {takes}, e.g. `{}`",
                sig.example
            )
        };
        errors.error_spanned(positional[want], msg);
        ok = false;
    }

    // Options: known names, each at most once.
    let mut stride = None;
    let mut pad = None;
    let mut l2 = None;
    let mut seen: Vec<&syn::Ident> = Vec::new();
    for arg in items {
        let Arg::Option(opt) = arg else { continue };
        let name = opt.name.to_string();
        if !sig.options.contains(&name.as_str()) {
            let msg = if sig.options.is_empty() {
                format!("unknown option `{name}`: `{word}` takes no options")
            } else {
                let list: Vec<String> = sig.options.iter().map(|o| format!("`{o}`")).collect();
                format!(
                    "unknown option `{name}` for `{word}`{}; it takes {}",
                    did_you_mean(&name, sig.options),
                    list.join(", ")
                )
            };
            errors.error(opt.name.span(), msg);
            ok = false;
            continue;
        }
        if seen.contains(&&opt.name) {
            errors.error(
                opt.name.span(),
                format!("duplicate option `{name}`; give it once"),
            );
            ok = false;
            continue;
        }
        seen.push(&opt.name);
        match name.as_str() {
            "stride" => stride = Some(check_size(errors, &opt.value, "stride")),
            "pad" => pad = Some(check_padding(errors, &opt.value)),
            "l2" => l2 = Some(check_l2(errors, &opt.value)),
            _ => unreachable!("options listed in signature()"),
        }
    }
    let stride = stride.unwrap_or(Some(0)); // 0: not given
    let pad = pad.unwrap_or(Some(Padding::Valid));
    let l2 = match l2 {
        None => Some(None),
        Some(f) => f.map(Some),
    };

    // Positional values.
    let sizes: Vec<Option<usize>> = positional
        .iter()
        .zip(sig.positional)
        .map(|(value, what)| match *what {
            "rate" => None,
            _ => check_size(errors, value, what),
        })
        .collect();
    let spec = match kind {
        LayerKind::Dense => Spec::Dense {
            units: (*sizes.first()?)?,
            l2: l2?,
        },
        LayerKind::Conv => Spec::Conv {
            filters: (*sizes.first()?)?,
            kernel: (*sizes.get(1)?)?,
            stride: match stride? {
                0 => 1,
                s => s,
            },
            pad: pad?,
            l2: l2?,
        },
        LayerKind::MaxPool => {
            let kernel = (*sizes.first()?)?;
            Spec::MaxPool {
                kernel,
                stride: match stride? {
                    0 => kernel,
                    s => s,
                },
            }
        }
        LayerKind::Dropout => Spec::Dropout {
            rate: check_rate(errors, positional.first()?)?,
        },
        LayerKind::Flatten => Spec::Flatten,
        LayerKind::Relu => Spec::Relu,
        LayerKind::Tanh => Spec::Tanh,
        LayerKind::Sigmoid => Spec::Sigmoid,
    };
    ok.then_some(spec)
}

/// A size (units, filters, kernel, stride, input dimension) is an integer >= 1.
///
/// ```text
/// dense<0>   conv<-32, 3>   dense<12.5>   maxpool<2, stride = 0>
/// ```
fn check_size(errors: &mut Errors, value: &Value, what: &str) -> Option<usize> {
    let msg = match value {
        Value::Int(None, lit) => match lit.base10_parse::<u64>() {
            Ok(0) => format!("{what} must be at least 1, got 0"),
            Ok(n) if n > MAX_SIZE => format!("{what} {n} is too large; the limit is {MAX_SIZE}"),
            Ok(n) => return usize::try_from(n).ok(),
            Err(err) => err.to_string(),
        },
        Value::Int(Some(_), _) => {
            format!("{what} must be at least 1, got `{}`", value.text())
        }
        Value::Float(..) => format!(
            "{what} must be an integer, got `{}`; write a whole number without a decimal point",
            value.text()
        ),
        Value::Word(word) => format!("{what} must be an integer, got `{word}`"),
    };
    errors.error_spanned(value, msg);
    None
}

/// `pad = valid | same | P` with P >= 0.
///
/// ```text
/// conv<32, 3, pad = full>
/// ```
fn check_padding(errors: &mut Errors, value: &Value) -> Option<Padding> {
    let msg = match value {
        Value::Word(word) if word == "same" => return Some(Padding::Same),
        Value::Word(word) if word == "valid" => return Some(Padding::Valid),
        Value::Int(None, lit) => match lit.base10_parse::<u64>() {
            Ok(n) if n <= MAX_SIZE => return usize::try_from(n).ok().map(Padding::Explicit),
            Ok(n) => format!("padding {n} is too large"),
            Err(err) => err.to_string(),
        },
        Value::Word(word) => format!(
            "unknown padding `{word}`{}; use `same`, `valid` or a number of pixels",
            did_you_mean(&word.to_string(), &["same", "valid"])
        ),
        _ => format!(
            "padding must be `same`, `valid` or a number of pixels >= 0, got `{}`",
            value.text()
        ),
    };
    errors.error_spanned(value, msg);
    None
}

/// A real number as written (`1e-3`, `0.5`, `0`), or an error message.
fn real(value: &Value) -> Result<Float, String> {
    let parsed = match value {
        Value::Int(_, lit) => lit.base10_parse::<f64>(),
        Value::Float(_, lit) => lit.base10_parse::<f64>(),
        Value::Word(word) => return Err(format!("expected a number, got `{word}`")),
    };
    let magnitude = parsed.map_err(|err| err.to_string())?;
    let negative = matches!(value, Value::Int(Some(_), _) | Value::Float(Some(_), _));
    Ok(Float {
        value: if negative { -magnitude } else { magnitude },
        text: value.text(),
    })
}

/// `l2 = λ` with λ >= 0 and finite.
///
/// ```text
/// dense<10, l2 = -0.1>
/// ```
fn check_l2(errors: &mut Errors, value: &Value) -> Option<Float> {
    match real(value) {
        Ok(f) if f.value >= 0.0 && f.value.is_finite() && (f.value as f32).is_finite() => {
            return Some(f)
        }
        Ok(f) => errors.error_spanned(
            value,
            format!(
                "l2 factor must be >= 0, got `{}`; Keras' usual value is `1e-3`",
                f.text
            ),
        ),
        Err(msg) => errors.error_spanned(value, msg),
    }
    None
}

/// `dropout<P>` with 0 <= P < 1 (1 would drop everything).
///
/// ```text
/// dropout<1.5>   dropout<1>   dropout<-0.1>
/// ```
fn check_rate(errors: &mut Errors, value: &Value) -> Option<Float> {
    match real(value) {
        Ok(f) if (0.0..1.0).contains(&f.value) => return Some(f),
        Ok(f) => errors.error_spanned(
            value,
            format!(
                "dropout rate must be in [0, 1), got `{}`; it is the fraction of values dropped, e.g. `0.5`",
                f.text
            ),
        ),
        Err(msg) => errors.error_spanned(value, format!("dropout rate: {msg}")),
    }
    None
}

// ---------------------------------------------------------------------------
// Pass 2: shapes
// ---------------------------------------------------------------------------

/// The message for a layer that cannot take `input`, on the token at fault.
///
/// ```text
/// Bad<1, 28, 28> { conv<8, 3>, dense<10> }          // dense after an image
/// Bad<784> { conv<8, 3> }                           // conv after a vector
/// Bad<1, 28, 28> { flatten, maxpool<2> }            // spatial layer after flatten
/// Bad<1, 4, 4> { conv<8, 5> }                       // kernel larger than input
/// ```
fn shape_error(
    layer: &Layer,
    spec: &Spec,
    input: Shape,
    after: &str,
    err: ShapeError,
) -> syn::Error {
    let word = layer.kind.word();
    let here = layer.name.span();
    match err {
        ShapeError::NeedsFlat => syn::Error::new(
            here,
            format!(
                "`{word}` needs a vector, got an image {input} {after}; insert `flatten` before `{word}`"
            ),
        ),
        ShapeError::NeedsImage => {
            let fix = if after.contains("`flatten`") && layer.kind == LayerKind::Flatten {
                "remove the second `flatten`".to_string()
            } else if after.contains("`flatten`") || after.contains("`dense") {
                format!("move `{word}` before `flatten`")
            } else if after.starts_with("at the input") {
                "declare the input as an image, e.g. `<1, 28, 28>`".to_string()
            } else {
                format!("move `{word}` before `flatten`")
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
                Spec::MaxPool { kernel, .. } => {
                    (*kernel, "pool", "use a smaller pool or drop a layer before it")
                }
                _ => unreachable!("only conv and maxpool have kernels"),
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
