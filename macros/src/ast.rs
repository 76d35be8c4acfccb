//! The syntax tree of `network!` input and its parser (syn, fail-fast).
//!
//! Grammar (`?` optional, `*` repeated, `|` alternatives):
//!
//! ```text
//! input     := network*
//! network   := attribute* visibility NAME '<' dims '>' '{' layers '}'
//!     dims      := value (',' value)* ','?        // <C, H, W> image or <N> vector
//!     layers    := layer (',' layer)* ','?
//! layer     := KIND ('<' arg (',' arg)* ','? '>')?
//!     KIND      := dense | conv | maxpool | avgpool | globalavgpool | flatten | dropout | batchnorm | relu | leaky_relu | tanh | sigmoid
//!     arg       := value                          // positional: sizes, rate
//!                | IDENT '=' value                // option: stride = 2, pad = same, l2 = 1e-3
//!     value     := '-'? INT | '-'? FLOAT | IDENT | 'true' | 'false'
//!                | '(' value (',' value)* ','? ')'  // conv kernel and stride: (3, 5), (2, 1)
//!                | STRING                         // parsed only to be rejected with a hint
//! ```
//!
//! The parser accepts any value in any argument slot, and any option name:
//! which arguments a layer takes is the checker's business (`check.rs`), so
//! that argument mistakes in several layers are reported together.
//! A network's layer list is parsed separately from its header, so a syntax
//! error inside the braces still lets the expansion define the network's name.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{
    braced, parenthesized, token, Attribute, Ident, LitBool, LitFloat, LitInt, LitStr, Token,
    Visibility,
};

/// DSL words, declared as keywords so `lookahead1` lists them in errors.
pub mod kw {
    syn::custom_keyword!(dense);
    syn::custom_keyword!(conv);
    syn::custom_keyword!(maxpool);
    syn::custom_keyword!(avgpool);
    syn::custom_keyword!(globalavgpool);
    syn::custom_keyword!(flatten);
    syn::custom_keyword!(dropout);
    syn::custom_keyword!(batchnorm);
    syn::custom_keyword!(relu);
    syn::custom_keyword!(leaky_relu);
    syn::custom_keyword!(tanh);
    syn::custom_keyword!(sigmoid);
}

/// Everything inside one `network! { .. }` invocation.
pub struct Networks {
    pub networks: Vec<Network>,
}

/// `/// doc` `pub Cnn3a<1, 28, 28> { conv<32, 3>, relu, .. }`
pub struct Network {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub input: Input,
    /// Span of the `{ .. }` (used for "empty network").
    pub body_span: Span,
    /// The layer list, parsed on its own so that a syntax error there keeps the header.
    pub layers: syn::Result<Vec<Layer>>,
}

/// The input shape `<1, 28, 28>` or `<784>`, values unchecked.
pub struct Input {
    pub lt: Token![<],
    pub dims: Vec<Value>,
    pub gt: Token![>],
}

/// One layer: `conv<32, 3, pad = same>`, `relu`, ...
pub struct Layer {
    pub kind: LayerKind,
    /// The layer word as written, e.g. `conv` (its span is the layer's span).
    pub name: Ident,
    pub args: Option<Args>,
}

/// `<32, 3, stride = 2>` after a layer word.
pub struct Args {
    pub lt: Token![<],
    pub items: Vec<Arg>,
    pub gt: Token![>],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Dense,
    Conv,
    MaxPool,
    AvgPool,
    GlobalAvgPool,
    Flatten,
    Dropout,
    BatchNorm,
    Relu,
    LeakyRelu,
    Tanh,
    Sigmoid,
}

/// A positional argument (`32`) or an option (`stride = 2`).
pub enum Arg {
    Positional(Value),
    Option(Opt),
}

/// `name = value`.
pub struct Opt {
    pub name: Ident,
    pub eq: Token![=],
    pub value: Value,
}

/// A number or a word, as written.
///
/// `Tuple` is a convolution's kernel size or stride (`conv<8, (3, 5)>`,
/// `stride = (2, 1)`) and a mistake anywhere else; `Str` (`pad = "same"`) is
/// never valid. Both are parsed so that the checker can say what to write
/// instead, together with the other argument errors.
#[derive(Clone)]
pub enum Value {
    Int(Option<Token![-]>, LitInt),
    Float(Option<Token![-]>, LitFloat),
    Word(Ident),
    /// `true` or `false` (`bias = false`).
    Bool(LitBool),
    Str(LitStr),
    Tuple(token::Paren, Punctuated<Value, Token![,]>),
}

impl LayerKind {
    pub const ALL: [LayerKind; 12] = [
        LayerKind::Dense,
        LayerKind::Conv,
        LayerKind::MaxPool,
        LayerKind::AvgPool,
        LayerKind::GlobalAvgPool,
        LayerKind::Flatten,
        LayerKind::Dropout,
        LayerKind::BatchNorm,
        LayerKind::Relu,
        LayerKind::LeakyRelu,
        LayerKind::Tanh,
        LayerKind::Sigmoid,
    ];

    /// The DSL word for this layer.
    pub fn word(self) -> &'static str {
        match self {
            LayerKind::Dense => "dense",
            LayerKind::Conv => "conv",
            LayerKind::MaxPool => "maxpool",
            LayerKind::AvgPool => "avgpool",
            LayerKind::GlobalAvgPool => "globalavgpool",
            LayerKind::Flatten => "flatten",
            LayerKind::Dropout => "dropout",
            LayerKind::BatchNorm => "batchnorm",
            LayerKind::Relu => "relu",
            LayerKind::LeakyRelu => "leaky_relu",
            LayerKind::Tanh => "tanh",
            LayerKind::Sigmoid => "sigmoid",
        }
    }
}

impl Parse for Networks {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut networks = Vec::new();
        while !input.is_empty() {
            networks.push(input.parse()?);
        }
        Ok(Networks { networks })
    }
}

impl Parse for Network {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let name = input.parse()?;
        let input_shape = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let body: TokenStream = content.parse()?;
        Ok(Network {
            attrs,
            vis,
            name,
            input: input_shape,
            body_span: brace.span.join(),
            layers: parse_layers.parse2(body),
        })
    }
}

/// `layer (',' layer)* ','?` inside the braces.
fn parse_layers(input: ParseStream) -> syn::Result<Vec<Layer>> {
    let layers = input.parse_terminated(Layer::parse, Token![,])?;
    Ok(layers.into_iter().collect())
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !input.peek(Token![<]) {
            return Err(input.error(
                "expected the input shape after the network name, e.g. `<1, 28, 28>` or `<784>`",
            ));
        }
        let (lt, dims, gt) = parse_angle_list(input, "the input shape", Value::parse)?;
        Ok(Input { lt, dims, gt })
    }
}

impl Parse for Layer {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        let kind = if lookahead.peek(kw::dense) {
            LayerKind::Dense
        } else if lookahead.peek(kw::conv) {
            LayerKind::Conv
        } else if lookahead.peek(kw::maxpool) {
            LayerKind::MaxPool
        } else if lookahead.peek(kw::avgpool) {
            LayerKind::AvgPool
        } else if lookahead.peek(kw::globalavgpool) {
            LayerKind::GlobalAvgPool
        } else if lookahead.peek(kw::flatten) {
            LayerKind::Flatten
        } else if lookahead.peek(kw::dropout) {
            LayerKind::Dropout
        } else if lookahead.peek(kw::batchnorm) {
            LayerKind::BatchNorm
        } else if lookahead.peek(kw::relu) {
            LayerKind::Relu
        } else if lookahead.peek(kw::leaky_relu) {
            LayerKind::LeakyRelu
        } else if lookahead.peek(kw::tanh) {
            LayerKind::Tanh
        } else if lookahead.peek(kw::sigmoid) {
            LayerKind::Sigmoid
        } else {
            return Err(unknown_layer(input, lookahead.error()));
        };
        let name: Ident = input.parse()?;
        let args = if input.peek(Token![<]) {
            let what = format!("the arguments of `{}`", kind.word());
            let (lt, items, gt) = parse_angle_list(input, &what, Arg::parse)?;
            Some(Args { lt, items, gt })
        } else {
            None
        };
        Ok(Layer { kind, name, args })
    }
}

/// "unknown layer `cnv`; did you mean `conv`?" on the word, plus lookahead's list.
fn unknown_layer(input: ParseStream, expected: syn::Error) -> syn::Error {
    let Ok(word) = input.fork().parse::<Ident>() else {
        return expected;
    };
    let text = word.to_string();
    let hint = match alias(&text) {
        Some(Alias::Layer(near)) => format!(" (`{near}` in this DSL)"),
        Some(Alias::Softmax) => {
            let msg = format!(
                "unknown layer `{word}`: the loss applies softmax (cross-entropy on logits), \
                 so end the network with `dense<CLASSES>`"
            );
            return syn::Error::new(word.span(), msg);
        }
        None => crate::errors::did_you_mean(&text, &LayerKind::ALL.map(LayerKind::word)),
    };
    syn::Error::new(
        word.span(),
        format!("unknown layer `{word}`{hint}\n{expected}"),
    )
}

enum Alias {
    Layer(&'static str),
    Softmax,
}

/// Keras and PyTorch names for the DSL's layers.
fn alias(word: &str) -> Option<Alias> {
    let layer = match word.to_lowercase().replace('_', "").as_str() {
        "conv2d" | "convolution2d" => "conv",
        "maxpool2d" | "maxpooling2d" => "maxpool",
        "avgpool2d" | "averagepooling2d" | "avgpooling2d" => "avgpool",
        "globalaveragepooling2d" | "globalavgpool2d" | "adaptiveavgpool2d" => "globalavgpool",
        "linear" | "fc" | "fullyconnected" => "dense",
        "flatten2d" => "flatten",
        "leakyrelu" => "leaky_relu",
        "batchnormalization" | "batchnorm2d" | "batchnorm1d" => "batchnorm",
        "softmax" | "logsoftmax" => return Some(Alias::Softmax),
        _ => return None,
    };
    Some(Alias::Layer(layer))
}

/// `'<' item (',' item)* ','? '>'`; `what` names the list in the "unclosed" error.
///
/// `<` is not a delimiter for rustc, so an unclosed one (`conv<8, 3, flatten }`)
/// runs into the end of the braces, whose span is the whole call: report it at the `<`.
fn parse_angle_list<T>(
    input: ParseStream,
    what: &str,
    item: fn(ParseStream) -> syn::Result<T>,
) -> syn::Result<(Token![<], Vec<T>, Token![>])> {
    let lt: Token![<] = input.parse()?;
    let unclosed = || syn::Error::new(lt.span, format!("unclosed `<`: write `>` after {what}"));
    let mut items = Vec::new();
    loop {
        if input.is_empty() {
            return Err(unclosed());
        }
        if input.peek(Token![>]) {
            break;
        }
        // An item cut off by the end of the input (`stride =`) is the same mistake.
        items.push(item(input).map_err(|err| if input.is_empty() { unclosed() } else { err })?);
        if input.is_empty() {
            return Err(unclosed());
        }
        if input.peek(Token![>]) {
            break;
        }
        if !input.peek(Token![,]) {
            return Err(input.error("expected `,` or `>`"));
        }
        input.parse::<Token![,]>()?;
    }
    let gt = input.parse()?;
    Ok((lt, items, gt))
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Ident) && input.peek2(Token![=]) {
            Ok(Arg::Option(Opt {
                name: input.parse()?,
                eq: input.parse()?,
                value: input.parse()?,
            }))
        } else {
            Ok(Arg::Positional(input.parse()?))
        }
    }
}

impl Parse for Value {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // Peeked outside the lookahead, so "expected one of" lists only what is valid.
        if input.peek(LitStr) {
            return Ok(Value::Str(input.parse()?));
        }
        if input.peek(token::Paren) {
            let content;
            let paren = parenthesized!(content in input);
            return Ok(Value::Tuple(
                paren,
                content.parse_terminated(Value::parse, Token![,])?,
            ));
        }
        if input.peek(LitBool) {
            return Ok(Value::Bool(input.parse()?));
        }
        let neg: Option<Token![-]> = input.parse()?;
        let lookahead = input.lookahead1();
        if lookahead.peek(LitInt) {
            Ok(Value::Int(neg, input.parse()?))
        } else if lookahead.peek(LitFloat) {
            Ok(Value::Float(neg, input.parse()?))
        } else if neg.is_none() && lookahead.peek(Ident) {
            Ok(Value::Word(input.parse()?))
        } else {
            Err(lookahead.error())
        }
    }
}

impl Arg {
    /// The argument's tokens, for spans and messages.
    pub fn tokens(&self) -> TokenStream {
        match self {
            Arg::Positional(value) => value.to_token_stream(),
            Arg::Option(opt) => opt.to_token_stream(),
        }
    }
}

impl Value {
    /// The value as written: `-3`, `1e-3`, `same`, `"same"`, `(3, 3)`.
    pub fn text(&self) -> String {
        match self {
            Value::Int(neg, lit) => format!("{}{}", sign(neg), lit),
            Value::Float(neg, lit) => format!("{}{}", sign(neg), lit),
            Value::Word(word) => word.to_string(),
            Value::Bool(lit) => lit.value.to_string(),
            Value::Str(lit) => lit.token().to_string(),
            Value::Tuple(_, items) => {
                let texts: Vec<String> = items.iter().map(Value::text).collect();
                // `(3,)` keeps its comma: `(3)` would read as a plain 3
                let comma = if texts.len() == 1 { "," } else { "" };
                format!("({}{comma})", texts.join(", "))
            }
        }
    }

    /// The literal's suffix (`x3` in `5x3`, `f32` in `0.5f32`), if it has one.
    pub fn suffix(&self) -> Option<&str> {
        let suffix = match self {
            Value::Int(_, lit) => lit.suffix(),
            Value::Float(_, lit) => lit.suffix(),
            Value::Word(_) | Value::Bool(_) | Value::Str(_) | Value::Tuple(..) => "",
        };
        (!suffix.is_empty()).then_some(suffix)
    }
}

fn sign(neg: &Option<Token![-]>) -> &'static str {
    if neg.is_some() {
        "-"
    } else {
        ""
    }
}

impl ToTokens for Value {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Value::Int(neg, lit) => {
                neg.to_tokens(tokens);
                lit.to_tokens(tokens);
            }
            Value::Float(neg, lit) => {
                neg.to_tokens(tokens);
                lit.to_tokens(tokens);
            }
            Value::Word(word) => word.to_tokens(tokens),
            Value::Bool(lit) => lit.to_tokens(tokens),
            Value::Str(lit) => lit.to_tokens(tokens),
            Value::Tuple(paren, items) => paren.surround(tokens, |tokens| items.to_tokens(tokens)),
        }
    }
}

impl ToTokens for Opt {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.name.to_tokens(tokens);
        self.eq.to_tokens(tokens);
        self.value.to_tokens(tokens);
    }
}

impl ToTokens for Layer {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.name.to_tokens(tokens);
        if let Some(args) = &self.args {
            args.lt.to_tokens(tokens);
            for arg in &args.items {
                arg.tokens().to_tokens(tokens);
            }
            args.gt.to_tokens(tokens);
        }
    }
}

impl ToTokens for Input {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.lt.to_tokens(tokens);
        for dim in &self.dims {
            dim.to_tokens(tokens);
        }
        self.gt.to_tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse(tokens: TokenStream) -> syn::Result<Networks> {
        syn::parse2(tokens)
    }

    #[test]
    fn parses_the_example() {
        let nets = parse(quote! {
            /// Experiment 3a.
            pub Cnn3a<1, 28, 28> {
                conv<32, 3>, relu, maxpool<2>,
                conv<64, 3, pad = same, l2 = 1e-3>, relu, maxpool<2, stride = 1>,
                flatten, dense<128>, relu, dropout<0.5>, dense<10>,
            }
            Dnn1<784> { dense<5>, relu, dense<10> }
        })
        .unwrap();
        assert_eq!(nets.networks.len(), 2);
        let cnn = &nets.networks[0];
        assert_eq!(cnn.name, "Cnn3a");
        assert_eq!(cnn.attrs.len(), 1);
        assert_eq!(cnn.input.dims.len(), 3);
        let layers = cnn.layers.as_ref().unwrap();
        assert_eq!(layers.len(), 11);
        assert_eq!(layers[3].kind, LayerKind::Conv);
        let args = layers[3].args.as_ref().unwrap();
        assert_eq!(args.items.len(), 4);
        match &args.items[3] {
            Arg::Option(opt) => {
                assert_eq!(opt.name, "l2");
                assert_eq!(opt.value.text(), "1e-3");
            }
            Arg::Positional(_) => panic!("expected an option"),
        }
        assert!(layers[1].args.is_none());
        assert_eq!(nets.networks[1].input.dims[0].text(), "784");
    }

    #[test]
    fn keeps_negative_and_float_values_for_the_checker() {
        let nets = parse(quote!(N<-1, 2.5, 3> { dense<-4> })).unwrap();
        let dims: Vec<String> = nets.networks[0]
            .input
            .dims
            .iter()
            .map(Value::text)
            .collect();
        assert_eq!(dims, ["-1", "2.5", "3"]);
    }

    #[test]
    fn unknown_layer_suggests_the_nearest() {
        let nets = parse(quote!(N<784> { dense<5>, rleu, dense<10> })).unwrap();
        let err = nets.networks[0].layers.as_ref().err().unwrap().to_string();
        assert!(
            err.starts_with("unknown layer `rleu` (did you mean `relu`?)"),
            "{err}"
        );
        assert!(err.contains("expected one of"), "{err}");
    }

    #[test]
    fn keras_and_pytorch_names_point_to_the_dsl_word() {
        let nets = parse(quote!(N<784> { Linear<5>, MaxPooling2D<2>, softmax })).unwrap();
        let err = nets.networks[0].layers.as_ref().err().unwrap().to_string();
        assert!(
            err.starts_with("unknown layer `Linear` (`dense` in this DSL)"),
            "{err}"
        );
        let nets = parse(quote!(N<784> { dense<10>, softmax })).unwrap();
        let err = nets.networks[0].layers.as_ref().err().unwrap().to_string();
        assert!(err.contains("the loss applies softmax"), "{err}");
    }

    #[test]
    fn layer_syntax_error_keeps_the_header() {
        let nets = parse(quote!(pub N<784> { dense<5 relu })).unwrap();
        assert_eq!(nets.networks[0].name, "N");
        let err = nets.networks[0].layers.as_ref().err().unwrap().to_string();
        assert_eq!(err, "expected `,` or `>`");
    }

    #[test]
    fn unclosed_angle_bracket_is_reported_at_the_lt() {
        let nets = parse(quote!(N<1, 28, 28> { conv<8, 3, flatten })).unwrap();
        let err = nets.networks[0].layers.as_ref().err().unwrap().to_string();
        assert_eq!(err, "unclosed `<`: write `>` after the arguments of `conv`");
        let nets = parse(quote!(N<784> { dense<10, l2 = })).unwrap();
        let err = nets.networks[0].layers.as_ref().err().unwrap().to_string();
        assert_eq!(
            err,
            "unclosed `<`: write `>` after the arguments of `dense`"
        );
        let err = parse(quote!(N < 784)).err().unwrap().to_string();
        assert_eq!(err, "unclosed `<`: write `>` after the input shape");
    }

    #[test]
    fn keeps_strings_tuples_and_suffixes_for_the_checker() {
        let nets = parse(quote!(N<784> { conv<8, (3, 3), pad = "same">, dense<3units> })).unwrap();
        let layers = nets.networks[0].layers.as_ref().unwrap();
        let texts: Vec<String> = layers[0]
            .args
            .as_ref()
            .unwrap()
            .items
            .iter()
            .map(|arg| match arg {
                Arg::Positional(value) => value.text(),
                Arg::Option(opt) => opt.value.text(),
            })
            .collect();
        assert_eq!(texts, ["8", "(3, 3)", "\"same\""]);
        let Arg::Positional(units) = &layers[1].args.as_ref().unwrap().items[0] else {
            panic!("expected a positional argument")
        };
        assert_eq!(units.suffix(), Some("units"));
    }

    #[test]
    fn missing_input_shape() {
        let err = parse(quote!(N { dense<5> })).err().unwrap().to_string();
        assert!(err.starts_with("expected the input shape"), "{err}");
    }
}
