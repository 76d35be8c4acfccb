//! Pass 1 of the checker: the arguments of the input shape and of every layer.
//!
//! Counts, types, ranges and option names. These mistakes are independent of
//! each other, so every one is recorded in [`Errors`] and the checker reports
//! them together. Each rule is one `check_*` function, with bad examples above it.

use crate::ast::{Arg, Input, Layer, LayerKind, Network, Value};
use crate::check::{Float, Spec};
use crate::errors::{did_you_mean, Errors};
use crate::shape::{Hw, Padding, Shape};
use quote::quote;

/// Largest accepted size: keeps every product of sizes far from `usize` overflow.
const MAX_SIZE: u64 = u32::MAX as u64;

/// The input is `<C, H, W>` or `<N>`, every dimension at least 1.
///
/// ```text
/// Bad<28, 28> { .. }      // two dimensions
/// Bad<1, 0, 28> { .. }    // zero dimension
/// ```
pub fn check_input(errors: &mut Errors, input: &Input) -> Option<Shape> {
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
pub fn check_not_empty(errors: &mut Errors, net: &Network, layers: &[Layer]) {
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
        LayerKind::Dense => (&["units"], &["l2", "bias"], "dense<128>"),
        LayerKind::Conv => (
            &["filters", "kernel size"], // kernel: `3` or `(3, 5)`
            &["stride", "pad", "l2", "bias"],
            "conv<32, 3>",
        ),
        LayerKind::MaxPool => (&["pool size"], &["stride"], "maxpool<2>"),
        LayerKind::AvgPool => (&["pool size"], &["stride"], "avgpool<2>"),
        LayerKind::GlobalAvgPool => (&[], &[], "globalavgpool"),
        LayerKind::Dropout => (&["rate"], &[], "dropout<0.5>"),
        LayerKind::BatchNorm => (&[], &["momentum", "epsilon"], "batchnorm"),
        LayerKind::Flatten => (&[], &[], "flatten"),
        LayerKind::Relu => (&[], &[], "relu"),
        LayerKind::LeakyRelu => (&[], &["alpha"], "leaky_relu<alpha = 0.1>"),
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
/// The arguments are read in source order, so a layer's errors come out in
/// the order they are written.
///
/// ```text
/// conv<32>               // missing kernel size
/// dense<10, 5>           // extra argument
/// maxpool<2, 2>          // extra argument that looks like a stride: write `stride = 2`
/// relu<2>   relu<>       // takes no arguments
/// conv<32, 3, strides = 2, padding = 1, stride = 1, stride = 2>   // unknown and duplicate options
/// ```
pub fn check_layer_args(errors: &mut Errors, layer: &Layer) -> Option<Spec> {
    let kind = layer.kind;
    let sig = signature(kind);
    let word = kind.word();
    let errors_before = errors.len();
    let items: &[Arg] = layer.args.as_ref().map_or(&[], |a| &a.items);
    let positional: Vec<&Value> = items
        .iter()
        .filter_map(|arg| match arg {
            Arg::Positional(v) => Some(v),
            Arg::Option(_) => None,
        })
        .collect();

    // `relu<>`: empty brackets on a layer that takes nothing.
    if let Some(args) = &layer.args {
        if items.is_empty() && sig.positional.is_empty() && sig.options.is_empty() {
            let (lt, gt) = (&args.lt, &args.gt);
            errors.error_spanned(
                quote!(#lt #gt),
                format!("`{word}` takes no arguments; write `{word}` without `<>`"),
            );
        }
    }

    // Too few positional arguments: on the whole layer, which starts before its arguments.
    let want = sig.positional.len();
    if positional.len() < want {
        let missing = sig.positional[positional.len()..].join(" and ");
        let msg = format!(
            "`{word}` is missing its {missing}; write e.g. `{}`",
            sig.example
        );
        errors.error_spanned(layer, msg);
    }

    // Every argument in source order: positional values, then the first extra
    // one, and options (known names, each at most once).
    let mut sizes: Vec<Option<usize>> = Vec::new();
    let mut rate = None;
    let mut kernel = None;
    let mut stride = None;
    let mut pad = None;
    let mut l2 = None;
    let mut alpha = None;
    let mut bias = None;
    let mut momentum = None;
    let mut epsilon = None;
    let mut seen: Vec<&syn::Ident> = Vec::new();
    let mut index = 0;
    for arg in items {
        match arg {
            Arg::Positional(value) => {
                let i = index;
                index += 1;
                match sig.positional.get(i) {
                    Some(&"rate") => rate = check_rate(errors, value),
                    Some(&"kernel size") => kernel = check_hw(errors, value, "kernel size"),
                    // only `maxpool` limits its window (see `MAX_POOL`)
                    Some(&"pool size") if kind == LayerKind::MaxPool => {
                        sizes.push(check_pool(errors, value))
                    }
                    Some(what) => sizes.push(check_size(errors, value, what)),
                    None if i == want => {
                        let msg = extra_argument(kind, &sig, &positional);
                        errors.error_spanned(value, msg);
                    }
                    None => {} // only the first extra argument is reported
                }
            }
            Arg::Option(opt) => {
                let name = opt.name.to_string();
                if !sig.options.contains(&name.as_str()) {
                    errors.error(opt.name.span(), unknown_option(kind, &sig, &name));
                } else if seen.contains(&&opt.name) {
                    errors.error(
                        opt.name.span(),
                        format!("duplicate option `{name}`; give it once"),
                    );
                } else {
                    seen.push(&opt.name);
                    match name.as_str() {
                        // a convolution's stride may differ per axis, a pool's not
                        "stride" if kind == LayerKind::Conv => {
                            stride = check_hw(errors, &opt.value, "stride")
                        }
                        "stride" => {
                            stride = check_size(errors, &opt.value, "stride").map(Hw::square)
                        }
                        "pad" => pad = check_padding(errors, &opt.value),
                        "l2" => l2 = check_l2(errors, &opt.value),
                        "alpha" => alpha = check_alpha(errors, &opt.value),
                        "bias" => bias = check_bool(errors, &opt.value, "bias"),
                        "momentum" => momentum = check_momentum(errors, &opt.value),
                        "epsilon" => epsilon = check_epsilon(errors, &opt.value),
                        _ => unreachable!("options listed in signature()"),
                    }
                }
            }
        }
    }
    if errors.len() > errors_before {
        return None;
    }

    // No errors: every argument the layer needs is present and valid.
    let spec = match kind {
        LayerKind::Dense => Spec::Dense {
            units: (*sizes.first()?)?,
            l2,
            bias: bias.unwrap_or(true),
        },
        LayerKind::Conv => Spec::Conv {
            filters: (*sizes.first()?)?,
            kernel: kernel?,
            stride: stride.unwrap_or(Hw::square(1)),
            pad: pad.unwrap_or(Padding::Valid),
            l2,
            bias: bias.unwrap_or(true),
        },
        LayerKind::MaxPool => {
            let kernel = (*sizes.first()?)?;
            Spec::MaxPool {
                kernel,
                stride: stride.map_or(kernel, |s| s.h),
            }
        }
        LayerKind::AvgPool => {
            let kernel = (*sizes.first()?)?;
            Spec::AvgPool {
                kernel,
                stride: stride.map_or(kernel, |s| s.h),
            }
        }
        LayerKind::GlobalAvgPool => Spec::GlobalAvgPool,
        LayerKind::Dropout => Spec::Dropout { rate: rate? },
        LayerKind::BatchNorm => Spec::BatchNorm { momentum, epsilon },
        LayerKind::Flatten => Spec::Flatten,
        LayerKind::Relu => Spec::Relu,
        LayerKind::LeakyRelu => Spec::LeakyRelu { alpha },
        LayerKind::Tanh => Spec::Tanh,
        LayerKind::Sigmoid => Spec::Sigmoid,
    };
    Some(spec)
}

/// The message for the first positional argument past a layer's signature.
/// Where the layer takes a stride, the extra number probably is one (Keras'
/// `MaxPooling2D(2, 2)`, PyTorch's `Conv2d(1, 32, 3, 2)`): show the option.
fn extra_argument(kind: LayerKind, sig: &Signature, positional: &[&Value]) -> String {
    let word = kind.word();
    let want = sig.positional.len();
    if want == 0 && sig.options.is_empty() {
        return format!("`{word}` takes no arguments; write `{word}`");
    }
    if want == 0 && kind == LayerKind::BatchNorm {
        let value = positional[0].text();
        return format!("`{word}` takes options only: write e.g. `{word}<momentum = {value}>`");
    }
    if want == 0 {
        // `leaky_relu<0.1>`: the slope is an option.
        let value = positional[0].text();
        return format!("`{word}` takes its slope as an option: write `{word}<alpha = {value}>`");
    }
    let takes = sig.positional.join(" and ");
    if !sig.options.contains(&"stride") {
        return format!(
            "extra argument: `{word}` takes only its {takes}, e.g. `{}`",
            sig.example
        );
    }
    let sizes: Vec<String> = positional[..want].iter().map(|v| v.text()).collect();
    format!(
        "extra argument: `{word}` takes only its {takes}; for a stride write `{word}<{}, stride = {}>`",
        sizes.join(", "),
        positional[want].text()
    )
}

/// "unknown option `padding` for `conv` (did you mean `pad`?); it takes `stride`, `pad`, `l2`".
///
/// Suggests the nearest option by spelling, else one the name starts with
/// (Keras' `padding`, `strides`; `l2_reg`).
fn unknown_option(kind: LayerKind, sig: &Signature, name: &str) -> String {
    let word = kind.word();
    if sig.options.is_empty() {
        return format!("unknown option `{name}`: `{word}` takes no options");
    }
    let near = match did_you_mean(name, sig.options) {
        hint if !hint.is_empty() => hint,
        _ => sig
            .options
            .iter()
            .find(|option| name.starts_with(*option))
            .map(|option| format!(" (did you mean `{option}`?)"))
            .unwrap_or_default(),
    };
    let list: Vec<String> = sig.options.iter().map(|o| format!("`{o}`")).collect();
    format!(
        "unknown option `{name}` for `{word}`{near}; it takes {}",
        list.join(", ")
    )
}

/// A size (units, filters, kernel, stride, input dimension) is an integer >= 1.
///
/// ```text
/// dense<0>   conv<-32, 3>   dense<12.5>   maxpool<2, stride = 0>   dense<"10">
/// ```
fn check_size(errors: &mut Errors, value: &Value, what: &str) -> Option<usize> {
    if !check_no_suffix(errors, value) {
        return None;
    }
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
        Value::Word(_) | Value::Bool(_) => {
            format!("{what} must be an integer, got `{}`", value.text())
        }
        Value::Str(lit) => {
            let fix = quoted_number(lit).unwrap_or_else(|| "the number".into());
            format!(
                "{what} must be an integer, got the string `{}`; write {fix} without quotes",
                value.text()
            )
        }
        Value::Tuple(..) => tuple_size(what, value),
    };
    errors.error_spanned(value, msg);
    None
}

/// The message for a tuple where one size belongs: `maxpool<(2, 2)>`.
/// (A convolution's kernel and stride take pairs: [`check_hw`].)
fn tuple_size(what: &str, value: &Value) -> String {
    let hint = match what {
        "pool size" => "; non-square pools are not supported, write one side, e.g. `2`",
        "stride" => "; a pool steps the same along both axes, write one number, e.g. `2`",
        _ => "",
    };
    format!("{what} must be one integer, got `{}`{hint}", value.text())
}

/// A convolution's kernel size or stride: one size for both axes, or a pair
/// `(height, width)` of sizes.
///
/// ```text
/// conv<8, (3, 5, 7)>   conv<8, ()>   conv<8, (0, 3)>   conv<8, 3, stride = (2, 2.5)>
/// conv<8, 5x3>         // a suffix: write `(5, 3)`
/// ```
fn check_hw(errors: &mut Errors, value: &Value, what: &str) -> Option<Hw> {
    // `5x3`: rustc reads 5 with the suffix `x3`; the pair is what was meant
    if let (Value::Int(None, lit), Some(w)) = (value, value.suffix()) {
        if let Some(w) = w.strip_prefix('x').filter(|w| w.parse::<u32>().is_ok()) {
            let h = lit.base10_digits();
            let meant = match what {
                "kernel size" => format!("for a {h}x{w} kernel write `({h}, {w})` (height, width)"),
                _ => format!("for strides of {h} down and {w} across write `({h}, {w})`"),
            };
            errors.error_spanned(
                value,
                format!("unexpected suffix `x{w}` on `{h}x{w}`; {meant}"),
            );
            return None;
        }
    }
    let Value::Tuple(_, items) = value else {
        return check_size(errors, value, what).map(Hw::square);
    };
    if items.len() != 2 {
        let example = if what == "stride" { "(2, 1)" } else { "(3, 5)" };
        errors.error_spanned(
            value,
            format!(
                "{what} must be one integer or a pair `(height, width)`, got `{}`; \
                 write e.g. `{example}`",
                value.text(),
            ),
        );
        return None;
    }
    // both sides checked, so that both their errors are reported
    let (what_h, what_w) = match what {
        "kernel size" => ("kernel height", "kernel width"),
        _ => ("vertical stride", "horizontal stride"),
    };
    let h = check_size(errors, &items[0], what_h);
    let w = check_size(errors, &items[1], what_w);
    Some(Hw { h: h?, w: w? })
}

/// `` `3` `` for the string `"3"` when it holds a plain number.
fn quoted_number(lit: &syn::LitStr) -> Option<String> {
    let text = lit.value();
    text.trim()
        .parse::<f64>()
        .is_ok()
        .then(|| format!("`{}`", text.trim()))
}

/// The largest `maxpool` window side: the pooling records each maximum's
/// position in its window in one byte (`runtime/src/nn/max_pool2d.rs`, `K * K
/// <= 256`). A fused `conv, relu, maxpool` block allows one less (its byte
/// also marks outputs the ReLU cut), so `expand.rs` leaves a pool of 16 unfused.
pub const MAX_POOL: usize = 16;

/// A pool size is a size of at most [`MAX_POOL`].
///
/// ```text
/// maxpool<17>
/// ```
fn check_pool(errors: &mut Errors, value: &Value) -> Option<usize> {
    let pool = check_size(errors, value, "pool size")?;
    if pool > MAX_POOL {
        errors.error_spanned(
            value,
            format!(
                "pool size {pool} is larger than {MAX_POOL}, the largest `maxpool` supports; \
                 use a pool of at most {MAX_POOL}, or several pools"
            ),
        );
        return None;
    }
    Some(pool)
}

/// Numbers are written without a type suffix: `5x3` is not a 5x3 kernel (rustc
/// reads it as `5` with the suffix `x3`), `3units` is not a unit count.
///
/// ```text
/// conv<32, 5x3>   dense<3units>   dropout<0.5f32>
/// ```
fn check_no_suffix(errors: &mut Errors, value: &Value) -> bool {
    let Some(suffix) = value.suffix() else {
        return true;
    };
    let text = value.text();
    let number = text.strip_suffix(suffix).unwrap_or(&text);
    errors.error_spanned(
        value,
        format!(
            "unexpected suffix `{suffix}` on `{text}`; write the number alone, e.g. `{number}`"
        ),
    );
    false
}

/// `pad = valid | same | P` with P >= 0.
///
/// ```text
/// conv<32, 3, pad = full>   conv<32, 3, pad = "same">
/// ```
fn check_padding(errors: &mut Errors, value: &Value) -> Option<Padding> {
    if !check_no_suffix(errors, value) {
        return None;
    }
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
        Value::Str(lit) if matches!(lit.value().as_str(), "same" | "valid") => format!(
            "padding is a word, not a string: write `{}` without quotes",
            lit.value()
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
        Value::Word(_) | Value::Bool(_) => {
            return Err(format!("expected a number, got `{}`", value.text()))
        }
        Value::Str(lit) => {
            let fix = quoted_number(lit).unwrap_or_else(|| "the number".into());
            return Err(format!(
                "expected a number, got the string `{}`; write {fix} without quotes",
                value.text()
            ));
        }
        Value::Tuple(..) => {
            return Err(format!("expected one number, got `{}`", value.text()));
        }
    };
    let magnitude = parsed.map_err(|err| err.to_string())?;
    let negative = matches!(value, Value::Int(Some(_), _) | Value::Float(Some(_), _));
    Ok(Float {
        value: if negative { -magnitude } else { magnitude },
        text: value.text(),
    })
}

/// `l2 = λ` with λ >= 0 and finite as `f32` (the factor is stored as `f32` bits).
///
/// ```text
/// dense<10, l2 = -0.1>   dense<10, l2 = 1e39>
/// ```
fn check_l2(errors: &mut Errors, value: &Value) -> Option<Float> {
    if !check_no_suffix(errors, value) {
        return None;
    }
    let msg = match real(value) {
        Ok(f) if f.value < 0.0 => format!(
            "l2 factor must be >= 0, got `{}`; Keras' usual value is `1e-3`",
            f.text
        ),
        Ok(f) if !(f.value as f32).is_finite() => format!(
            "l2 factor `{}` is too large for f32 (at most {:e}); Keras' usual value is `1e-3`",
            f.text,
            f32::MAX
        ),
        Ok(f) => return Some(f),
        Err(msg) => msg,
    };
    errors.error_spanned(value, msg);
    None
}

/// A switch is `true` or `false`, written as a Rust literal.
///
/// ```text
/// dense<10, bias = maybe>   conv<8, 3, bias = 0>   dense<10, bias = "false">
/// ```
fn check_bool(errors: &mut Errors, value: &Value, what: &str) -> Option<bool> {
    let got = match value {
        Value::Bool(lit) => return Some(lit.value),
        Value::Str(lit) if matches!(lit.value().as_str(), "true" | "false") => {
            let msg = format!(
                "{what} is `true` or `false`, not a string: write `{}` without quotes",
                lit.value()
            );
            errors.error_spanned(value, msg);
            return None;
        }
        _ => value.text(),
    };
    errors.error_spanned(
        value,
        format!("{what} must be `true` or `false`, got `{got}`; e.g. `{what} = false`"),
    );
    None
}

/// `batchnorm<momentum = M>` with 0 <= M <= 1 (as `f32`): the weight of the
/// old moving statistics in each update (Keras' convention; PyTorch's
/// `momentum` is `1 - M`).
///
/// ```text
/// batchnorm<momentum = 1.5>   batchnorm<momentum = -0.1>
/// ```
fn check_momentum(errors: &mut Errors, value: &Value) -> Option<Float> {
    if !check_no_suffix(errors, value) {
        return None;
    }
    let msg = match real(value) {
        Ok(f) if !(0.0..=1.0).contains(&f.value) => format!(
            "batchnorm momentum must be in [0, 1], got `{}`; it is the weight of the old \
             moving statistics, Keras' default `0.99` (PyTorch's momentum 0.1 is `0.9` here)",
            f.text
        ),
        Ok(f) => return Some(f),
        Err(msg) => format!("batchnorm momentum: {msg}"),
    };
    errors.error_spanned(value, msg);
    None
}

/// `batchnorm<epsilon = E>` with E > 0 and finite as `f32` (nonzero after rounding).
///
/// ```text
/// batchnorm<epsilon = 0>   batchnorm<epsilon = 1e-50>
/// ```
fn check_epsilon(errors: &mut Errors, value: &Value) -> Option<Float> {
    if !check_no_suffix(errors, value) {
        return None;
    }
    let msg = match real(value) {
        Ok(f) if f.value <= 0.0 || f.value as f32 <= 0.0 || !(f.value as f32).is_finite() => {
            format!(
                "batchnorm epsilon must be > 0 and finite as f32, got `{}`; Keras' default is `1e-3`",
                f.text
            )
        }
        Ok(f) => return Some(f),
        Err(msg) => format!("batchnorm epsilon: {msg}"),
    };
    errors.error_spanned(value, msg);
    None
}

/// `leaky_relu<alpha = A>` with A >= 0 (Keras rejects a negative slope) and
/// finite as `f32` (the slope is stored as `f32` bits).
///
/// ```text
/// leaky_relu<alpha = -0.1>   leaky_relu<alpha = 1e39>   leaky_relu<alpha = big>
/// ```
fn check_alpha(errors: &mut Errors, value: &Value) -> Option<Float> {
    if !check_no_suffix(errors, value) {
        return None;
    }
    let msg = match real(value) {
        Ok(f) if f.value < 0.0 => format!(
            "leaky_relu slope must be >= 0, got `{}`; Keras' default is `0.3`",
            f.text
        ),
        Ok(f) if !(f.value as f32).is_finite() => format!(
            "leaky_relu slope `{}` is too large for f32 (at most {:e})",
            f.text,
            f32::MAX
        ),
        Ok(f) => return Some(f),
        Err(msg) => format!("leaky_relu slope: {msg}"),
    };
    errors.error_spanned(value, msg);
    None
}

/// `dropout<P>` with 0 <= P < 1 (1 would drop everything), also once rounded
/// to `f32` (the rate is stored as `f32` bits: `0.99999999` is `1.0`).
///
/// ```text
/// dropout<1.5>   dropout<1>   dropout<-0.1>   dropout<0.99999999>
/// ```
fn check_rate(errors: &mut Errors, value: &Value) -> Option<Float> {
    if !check_no_suffix(errors, value) {
        return None;
    }
    let msg = match real(value) {
        Ok(f) if !(0.0..1.0).contains(&f.value) => format!(
            "dropout rate must be in [0, 1), got `{}`; it is the fraction of values dropped, e.g. `0.5`",
            f.text
        ),
        Ok(f) if f.value as f32 >= 1.0 => format!(
            "dropout rate `{}` rounds to 1 as f32, which would drop everything; \
             the largest rate below 1 is `{}`",
            f.text,
            1.0 - f32::EPSILON / 2.0
        ),
        Ok(f) => return Some(f),
        Err(msg) => format!("dropout rate: {msg}"),
    };
    errors.error_spanned(value, msg);
    None
}
