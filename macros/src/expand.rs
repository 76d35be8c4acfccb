//! Code generation: a checked network becomes a zero-sized dfdx builder type.
//!
//! For `pub Cnn3a<1, 28, 28> { conv<32, 3>, relu, .. }` this emits
//!
//! ```text
//! pub struct Cnn3a;
//! #[allow(deprecated)] // and the network's `#[cfg]`s
//! const _: () = {
//!     // `conv, relu[, maxpool]` runs fused into one layer (with a `batchnorm`
//!     // after a convolution without bias, `ConvBnBlock`); nested by 6
//!     type __Layers = (ConvBlock<1, 32, 3, 3, 1, 1, 0, 0, 28, 28, 26, 26, 2, 2, 13, 13, 0, false>, ..);
//!     impl<__E: Dtype, __D: Device<__E>> BuildOnDevice<__D, __E> for Cnn3a where __Layers: .. {
//!         type Built = <__Layers as BuildOnDevice<__D, __E>>::Built;
//!     }
//!     impl Cnn3a { pub const PARAMS: usize = ..; pub fn summary() -> Summary { .. } }
//!     impl Network for Cnn3a { .. }
//! };
//! ```
//!
//! Every path starts with `::netdsl_runtime` or `::core` (primitives too:
//! `::core::primitive::usize`), so the expansion never depends on the user's
//! imports or names. The expansion's own names (`__Layers`, `__E`, `__D`,
//! `__batch`) start with `__`, which network names may not (`check_name`).
//! Each layer type is spanned at its layer word, so a type error about a layer
//! points at that layer.

use crate::args::MAX_POOL;
use crate::ast::{Network, Networks};
use crate::check::{check, check_name, describe, Checked, CheckedLayer, Float, Spec};
use crate::shape::{conv_dim, Shape};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::{Attribute, Token};

/// dfdx implements modules for tuples of 1 to 6 elements.
const MAX_TUPLE: usize = 6;

/// The largest pool fused into a `ConvBlock`: its pooling marks outputs the
/// ReLU cut with the byte 255, so `POOL * POOL < 255` (`runtime/src/nn/conv_block.rs`).
/// A larger pool (up to [`MAX_POOL`]) stays a separate `MaxPool2D` layer.
const MAX_FUSED_POOL: usize = MAX_POOL - 1;

/// What every network derives; a user's `#[derive]` of these is dropped.
const DERIVED: [&str; 4] = ["Clone", "Copy", "Debug", "Default"];

/// Expand every network of one invocation; a failed one becomes `compile_error!`
/// plus a fallback, a failed name (declared twice, reserved) only the error.
pub fn networks(input: &Networks) -> TokenStream {
    input
        .networks
        .iter()
        .enumerate()
        .map(|(i, net)| {
            if let Err(err) = check_name(&input.networks[..i], net) {
                return err.into_compile_error();
            }
            match check(net) {
                Ok(checked) => expand_network(&checked),
                Err(err) => expand_fallback(net, err),
            }
        })
        .collect()
}

/// The user's attributes for the struct, with `Clone`, `Copy`, `Debug` and
/// `Default` removed from its `#[derive]`s: the expansion derives them itself,
/// and deriving one twice would be E0119 over the whole call. Other derives stay.
fn expand_attrs(attrs: &[Attribute]) -> Vec<TokenStream> {
    let derived = |path: &syn::Path| {
        path.segments
            .last()
            .is_some_and(|last| DERIVED.iter().any(|d| last.ident == d))
    };
    attrs
        .iter()
        .filter_map(|attr| {
            let paths = attr
                .path()
                .is_ident("derive")
                .then(|| attr.parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated))
                .and_then(Result::ok);
            let Some(paths) = paths.filter(|paths| paths.iter().any(derived)) else {
                return Some(attr.to_token_stream());
            };
            let kept: Vec<&syn::Path> = paths.iter().filter(|path| !derived(path)).collect();
            let derive = attr.path();
            (!kept.is_empty()).then(|| quote!(#[#derive(#(#kept),*)]))
        })
        .collect()
}

/// The network's `#[cfg(..)]` attributes, repeated on everything it expands
/// to, so a configured-out network leaves nothing behind.
fn cfgs(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect()
}

/// The builder type and its impls.
fn expand_network(checked: &Checked) -> TokenStream {
    let net = checked.net;
    let name = &net.name;
    let attrs = expand_attrs(&net.attrs);
    let cfgs = cfgs(&net.attrs);
    let vis = &net.vis;
    let name_str = name.unraw().to_string();
    let output = checked.layers.last().map_or(checked.input, |l| l.output);
    let params = Literal::usize_unsuffixed(checked.params);
    let non_trainable = Literal::usize_unsuffixed(checked.non_trainable);
    let layers = nest(expand_layers(&checked.layers));
    let summary = expand_summary(checked);
    let generated_doc = format!(
        " `network!` model: input `{}` -> output `{}`, {} trainable parameters.",
        checked.input.keras(),
        output.keras(),
        thousands(checked.params)
    );
    let params_doc = format!(" Trainable parameters: {}.", thousands(checked.params));
    let input_ty = shape_type(checked.input, None);
    let output_ty = shape_type(output, None);
    let batch = format_ident!("__batch");
    let batched_input_ty = shape_type(checked.input, Some(quote!(::core::primitive::usize)));
    let batched_output_ty = shape_type(output, Some(quote!(::core::primitive::usize)));
    let batched_input = shape_value(checked.input, &batch);
    let batched_output = shape_value(output, &batch);

    quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #generated_doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug, ::core::default::Default)]
        #vis struct #name;

        #(#cfgs)*
        #[allow(deprecated)] // a `#[deprecated]` network: its own impls do not warn
        const _: () = {
            type __Layers = #layers;

            impl<__E, __D> ::netdsl_runtime::__private::dfdx::nn::BuildOnDevice<__D, __E> for #name
            where
                __E: ::netdsl_runtime::__private::dfdx::shapes::Dtype,
                __D: ::netdsl_runtime::__private::dfdx::tensor_ops::Device<__E>,
                __Layers: ::netdsl_runtime::__private::dfdx::nn::BuildOnDevice<__D, __E>,
            {
                type Built = <__Layers as ::netdsl_runtime::__private::dfdx::nn::BuildOnDevice<__D, __E>>::Built;
            }

            impl #name {
                #[doc = #params_doc]
                pub const PARAMS: ::core::primitive::usize = #params;
                /// Non-trainable parameters (batchnorm's moving statistics).
                pub const NON_TRAINABLE_PARAMS: ::core::primitive::usize = #non_trainable;

                /// Keras-like summary: layers, output shapes, parameters.
                pub fn summary() -> ::netdsl_runtime::network::Summary {
                    #summary
                }
            }

            impl ::netdsl_runtime::network::Network for #name {
                const NAME: &'static ::core::primitive::str = #name_str;
                const PARAMS: ::core::primitive::usize = #params;
                const NON_TRAINABLE_PARAMS: ::core::primitive::usize = #non_trainable;
                type Input = #input_ty;
                type Output = #output_ty;
                type BatchedInput = #batched_input_ty;
                type BatchedOutput = #batched_output_ty;
                fn batched_input(#batch: ::core::primitive::usize) -> Self::BatchedInput {
                    #batched_input
                }
                fn batched_output(#batch: ::core::primitive::usize) -> Self::BatchedOutput {
                    #batched_output
                }
                fn summary() -> ::netdsl_runtime::network::Summary {
                    #name::summary()
                }
            }
        };
    }
}

/// The layers' builder types, each `conv, relu[, maxpool]` run fused into one
/// `ConvBlock` and each `conv<.., bias = false>, batchnorm, relu[, maxpool]`
/// run into one `ConvBnBlock` (the same function, computed without most of
/// its intermediate tensors); a block that is the network's first layer
/// computes no input gradient. A pool larger than [`MAX_FUSED_POOL`] follows
/// its block as its own layer.
fn expand_layers(layers: &[CheckedLayer]) -> Vec<TokenStream> {
    let mut out = Vec::with_capacity(layers.len());
    let mut i = 0;
    let spec = |i: usize| layers.get(i).map(|l| &l.spec);
    let fusable_pool = |i: usize| {
        layers
            .get(i)
            .filter(|l| matches!(l.spec, Spec::MaxPool { kernel, .. } if kernel <= MAX_FUSED_POOL))
    };
    while i < layers.len() {
        let relu_next = matches!(spec(i + 1), Some(Spec::Relu));
        // A convolution without bias stays unfused (`ConvBlock` always has one).
        if matches!(layers[i].spec, Spec::Conv { bias: true, .. }) && relu_next {
            let pool = fusable_pool(i + 2);
            if let Some(block) = expand_block(&layers[i], None, pool, i == 0) {
                out.push(block);
                i += if pool.is_some() { 3 } else { 2 };
                continue;
            }
        }
        // `conv<.., bias = false>, batchnorm, relu[, maxpool]`: a `ConvBnBlock`.
        if matches!(layers[i].spec, Spec::Conv { bias: false, .. })
            && matches!(spec(i + 1), Some(Spec::BatchNorm { .. }))
            && matches!(spec(i + 2), Some(Spec::Relu))
        {
            let pool = fusable_pool(i + 3);
            if let Some(block) = expand_block(&layers[i], Some(&layers[i + 1]), pool, i == 0) {
                out.push(block);
                i += if pool.is_some() { 4 } else { 3 };
                continue;
            }
        }
        out.push(expand_layer(&layers[i]));
        i += 1;
    }
    out
}

/// `ConvBlock<conv sizes.., pool, pool stride, pooled h, pooled w, L2, input gradient>`,
/// or with a `batchnorm` after the convolution `ConvBnBlock<.., momentum, epsilon>`,
/// spanned at the `conv` word.
fn expand_block(
    conv: &CheckedLayer,
    batchnorm: Option<&CheckedLayer>,
    pool: Option<&CheckedLayer>,
    first: bool,
) -> Option<TokenStream> {
    let span = conv.ast.name.span();
    let n = Literal::usize_unsuffixed;
    let (
        Spec::Conv {
            filters,
            kernel,
            stride,
            pad,
            l2,
            ..
        },
        Shape::Image { c, h, w },
        Shape::Image { h: oh, w: ow, .. },
    ) = (&conv.spec, conv.input, conv.output)
    else {
        return None;
    };
    let pad_h = conv_dim(h, kernel.h, stride.h, *pad).map_or(0, |d| d.pad_before);
    let pad_w = conv_dim(w, kernel.w, stride.w, *pad).map_or(0, |d| d.pad_before);
    let (pk, ps, ph, pw) = match pool.map(|p| (&p.spec, p.output)) {
        None => (1, 1, oh, ow),
        Some((Spec::MaxPool { kernel, stride }, Shape::Image { h, w, .. })) => {
            (*kernel, *stride, h, w)
        }
        Some(_) => return None,
    };
    let sizes = [
        c, *filters, kernel.h, kernel.w, stride.h, stride.w, pad_h, pad_w, h, w, oh, ow, pk, ps,
        ph, pw,
    ]
    .map(n);
    let l2 = l2.as_ref().map_or(quote!(0), |f| f32_bits(f.value));
    let input_grad = !first;
    match batchnorm.map(|b| &b.spec) {
        None => Some(
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::ConvBlock<#(#sizes),*, #l2, #input_grad>),
        ),
        Some(Spec::BatchNorm { momentum, epsilon }) => {
            let (momentum, epsilon) = batchnorm_bits(momentum, epsilon);
            Some(
                quote_spanned!(span=> ::netdsl_runtime::nn::builders::ConvBnBlock<
                #(#sizes),*, #l2, #input_grad, #momentum, #epsilon
            >),
            )
        }
        Some(_) => None,
    }
}

/// A `batchnorm`'s momentum and epsilon as `f32` bits, Keras' defaults
/// (0.99, 1e-3) where not written.
fn batchnorm_bits(momentum: &Option<Float>, epsilon: &Option<Float>) -> (TokenStream, TokenStream) {
    (
        f32_bits(momentum.as_ref().map_or(0.99, |f| f.value)),
        f32_bits(epsilon.as_ref().map_or(1e-3, |f| f.value)),
    )
}

/// One layer's builder type with every size filled in, spanned at the layer word.
fn expand_layer(layer: &CheckedLayer) -> TokenStream {
    let span = layer.ast.name.span();
    let n = Literal::usize_unsuffixed;
    match (&layer.spec, layer.input, layer.output) {
        (Spec::Dense { units, l2, bias }, Shape::Flat(i), _) => {
            let (i, o) = (n(i), n(*units));
            let l2 = l2_and_bias(l2, *bias);
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::Dense<#i, #o #l2>)
        }
        (
            Spec::Conv {
                filters,
                kernel,
                stride,
                pad,
                l2,
                bias,
            },
            Shape::Image { c, h, w },
            Shape::Image { h: oh, w: ow, .. },
        ) => {
            // Padding before (top/left); the padding after is implied by the output size.
            let pad_h = conv_dim(h, kernel.h, stride.h, *pad).map_or(0, |d| d.pad_before);
            let pad_w = conv_dim(w, kernel.w, stride.w, *pad).map_or(0, |d| d.pad_before);
            let sizes = [
                c, *filters, kernel.h, kernel.w, stride.h, stride.w, pad_h, pad_w, h, w, oh, ow,
            ]
            .map(n);
            let l2 = l2_and_bias(l2, *bias);
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::Conv2D<#(#sizes),* #l2>)
        }
        (
            Spec::MaxPool { kernel, stride },
            Shape::Image { c, h, w },
            Shape::Image { h: oh, w: ow, .. },
        ) => {
            let sizes = [c, *kernel, *stride, h, w, oh, ow].map(n);
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::MaxPool2D<#(#sizes),*>)
        }
        (
            Spec::AvgPool { kernel, stride },
            Shape::Image { c, h, w },
            Shape::Image { h: oh, w: ow, .. },
        ) => {
            let sizes = [c, *kernel, *stride, h, w, oh, ow].map(n);
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::AvgPool2D<#(#sizes),*>)
        }
        (Spec::GlobalAvgPool, Shape::Image { c, h, w }, _) => {
            let sizes = [c, h, w].map(n);
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::GlobalAvgPool2D<#(#sizes),*>)
        }
        (Spec::Flatten, Shape::Image { c, h, w }, Shape::Flat(len)) => {
            let sizes = [c, h, w, len].map(n);
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::Flatten<#(#sizes),*>)
        }
        (Spec::Dropout { rate }, _, _) => {
            let bits = f32_bits(rate.value);
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::Dropout<#bits>)
        }
        (Spec::BatchNorm { momentum, epsilon }, input, _) => {
            let c = n(match input {
                Shape::Image { c, .. } => c,
                Shape::Flat(units) => units,
            });
            let (momentum, epsilon) = batchnorm_bits(momentum, epsilon);
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::BatchNorm<#c, #momentum, #epsilon>)
        }
        (Spec::Relu, _, _) => quote_spanned!(span=> ::netdsl_runtime::nn::builders::ReLU),
        (Spec::LeakyRelu { alpha }, _, _) => {
            // Keras' default slope, `LeakyReLU(negative_slope=0.3)`.
            let bits = f32_bits(alpha.as_ref().map_or(0.3, |a| a.value));
            quote_spanned!(span=> ::netdsl_runtime::nn::builders::LeakyReLU<#bits>)
        }
        (Spec::Tanh, _, _) => quote_spanned!(span=> ::netdsl_runtime::nn::builders::Tanh),
        (Spec::Sigmoid, _, _) => quote_spanned!(span=> ::netdsl_runtime::nn::builders::Sigmoid),
        // check() only lets through layers whose input fits; keep codegen total anyway.
        (spec, input, _) => {
            let msg = format!("internal error: `{spec:?}` on input {input}");
            quote_spanned!(span=> ::core::compile_error!(#msg))
        }
    }
}

/// The trailing generics `, L2, BIAS` of `Dense` and `Conv2D`, each left to
/// its default where it can be: none, `, L2`, or `, L2, false` (L2 `0` when
/// only the bias is off).
fn l2_and_bias(l2: &Option<crate::check::Float>, bias: bool) -> Option<TokenStream> {
    let bits = l2.as_ref().map(|f| f32_bits(f.value));
    match (bits, bias) {
        (None, true) => None,
        (Some(bits), true) => Some(quote!(, #bits)),
        (bits, false) => {
            let bits = bits.unwrap_or_else(|| quote!(0));
            Some(quote!(, #bits, false))
        }
    }
}

/// `{ ::netdsl_runtime::nn::f32_bits(0.001) }`: an f32 as a const generic `u32`.
fn f32_bits(value: f64) -> TokenStream {
    let lit = Literal::f32_unsuffixed(value as f32);
    quote!({ ::netdsl_runtime::nn::f32_bits(#lit) })
}

/// Nest layer types into tuples of at most six, which dfdx implements `Module` for:
/// 14 layers become `((l0..l5), (l6..l11), (l12, l13))`.
fn nest(items: Vec<TokenStream>) -> TokenStream {
    if items.len() <= MAX_TUPLE {
        return quote!((#(#items,)*));
    }
    let groups = items
        .chunks(MAX_TUPLE)
        .map(|chunk| quote!((#(#chunk,)*)))
        .collect();
    nest(groups)
}

/// `Summary::new("Cnn3a", "(None, 1, 28, 28)", &[("conv<32, 3>", "(None, 32, 26, 26)", 320), ..])`.
fn expand_summary(checked: &Checked) -> TokenStream {
    let name = checked.net.name.to_string();
    let input = checked.input.keras();
    if checked.non_trainable > 0 {
        // `(layer, shape, trainable, non-trainable)` rows
        let rows = checked.layers.iter().map(|layer| {
            let text = describe(layer);
            let shape = layer.output.keras();
            let params = Literal::usize_unsuffixed(layer.params);
            let frozen = Literal::usize_unsuffixed(layer.non_trainable);
            quote!((#text, #shape, #params, #frozen))
        });
        return quote! {
            ::netdsl_runtime::network::Summary::with_non_trainable(#name, #input, &[#(#rows),*])
        };
    }
    let rows = checked.layers.iter().map(|layer| {
        let text = describe(layer);
        let shape = layer.output.keras();
        let params = Literal::usize_unsuffixed(layer.params);
        quote!((#text, #shape, #params))
    });
    quote! {
        ::netdsl_runtime::network::Summary::new(#name, #input, &[#(#rows),*])
    }
}

/// `(Const<1>, Const<28>, Const<28>)`, or with a leading batch dimension `usize`.
fn shape_type(shape: Shape, batch: Option<TokenStream>) -> TokenStream {
    let dims = dims(shape).into_iter().map(|d| {
        let d = Literal::usize_unsuffixed(d);
        quote!(::netdsl_runtime::__private::dfdx::shapes::Const<#d>)
    });
    let batch = batch.map(|b| quote!(#b,));
    quote!((#batch #(#dims,)*))
}

/// `(batch, Const, Const, Const)`.
fn shape_value(shape: Shape, batch: &proc_macro2::Ident) -> TokenStream {
    let dims = dims(shape)
        .into_iter()
        .map(|_| quote!(::netdsl_runtime::__private::dfdx::shapes::Const));
    quote!((#batch, #(#dims,)*))
}

fn dims(shape: Shape) -> Vec<usize> {
    match shape {
        Shape::Image { c, h, w } => vec![c, h, w],
        Shape::Flat(n) => vec![n],
    }
}

/// 225034 -> "225,034".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A failed network: the errors, plus the type name with placeholder impls so
/// uses of it elsewhere (`Net::PARAMS`, `build_module::<Net, f32>()`) add no
/// further errors (as thiserror's fallback.rs does).
fn expand_fallback(net: &Network, err: syn::Error) -> TokenStream {
    let errors = err.into_compile_error();
    let name = &net.name;
    let attrs = expand_attrs(&net.attrs);
    let cfgs = cfgs(&net.attrs);
    let vis = &net.vis;
    let name_str = name.unraw().to_string();
    let msg = format!("network `{name_str}` failed to compile");
    quote! {
        #errors

        #(#attrs)*
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug, ::core::default::Default)]
        #vis struct #name;

        #(#cfgs)*
        #[allow(deprecated)]
        const _: () = {
            impl<__E, __D> ::netdsl_runtime::__private::dfdx::nn::BuildOnDevice<__D, __E> for #name
            where
                __E: ::netdsl_runtime::__private::dfdx::shapes::Dtype,
                __D: ::netdsl_runtime::__private::dfdx::tensor_ops::Device<__E>,
            {
                type Built = ();
            }

            impl #name {
                pub const PARAMS: ::core::primitive::usize = 0;
                pub fn summary() -> ::netdsl_runtime::network::Summary {
                    ::core::panic!(#msg)
                }
            }

            impl ::netdsl_runtime::network::Network for #name {
                const NAME: &'static ::core::primitive::str = #name_str;
                const PARAMS: ::core::primitive::usize = 0;
                type Input = (::core::primitive::usize,);
                type Output = (::core::primitive::usize,);
                type BatchedInput = (::core::primitive::usize,);
                type BatchedOutput = (::core::primitive::usize,);
                fn batched_input(__batch: ::core::primitive::usize) -> Self::BatchedInput {
                    (__batch,)
                }
                fn batched_output(__batch: ::core::primitive::usize) -> Self::BatchedOutput {
                    (__batch,)
                }
                fn summary() -> ::netdsl_runtime::network::Summary {
                    ::core::panic!(#msg)
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn expand(tokens: TokenStream) -> String {
        let nets: Networks = syn::parse2(tokens).unwrap();
        let file: syn::File = syn::parse2(networks(&nets)).unwrap();
        prettyplease::unparse(&file)
    }

    #[test]
    fn nest_by_six() {
        let items: Vec<TokenStream> = (0..14).map(|i| quote!(L<#i>)).collect();
        let nested = nest(items).to_string().replace(' ', "");
        assert_eq!(
            nested,
            "((L<0i32>,L<1i32>,L<2i32>,L<3i32>,L<4i32>,L<5i32>,),\
             (L<6i32>,L<7i32>,L<8i32>,L<9i32>,L<10i32>,L<11i32>,),\
             (L<12i32>,L<13i32>,),)"
        );
        let one = nest(vec![quote!(A)]).to_string().replace(' ', "");
        assert_eq!(one, "(A,)");
        let many: Vec<TokenStream> = (0..40).map(|_| quote!(A)).collect();
        let many = nest(many).to_string();
        assert_eq!(many.matches('A').count(), 40);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(3985), "3,985");
        assert_eq!(thousands(225_034), "225,034");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn expansion_cnn3b() {
        insta::assert_snapshot!(expand(quote! {
            /// Experiment 3b: 3a with L2 on the kernels.
            pub Cnn3b<1, 28, 28> {
                conv<32, 3, l2 = 1e-3>, relu, maxpool<2>,
                conv<64, 3, l2 = 1e-3>, relu, maxpool<2>,
                flatten, dense<128, l2 = 1e-3>, relu, dropout<0.5>, dense<10>,
            }
        }));
    }

    /// `#[cfg]` on everything the network expands to.
    #[test]
    fn expansion_cfg() {
        let expanded = expand(quote! {
            #[cfg(feature = "small")]
            pub Small<784> { dense<10> }
        });
        let cfg = "#[cfg(feature = \"small\")]\n";
        assert_eq!(expanded.matches(cfg).count(), 2, "{expanded}");
        // The attributes after the struct are the impls' `const _` block's.
        let (_, impls) = expanded.split_once("pub struct Small;\n").unwrap();
        assert!(impls.starts_with(cfg), "{expanded}");
    }

    /// `#[cfg]` on everything, the user's derives without the expansion's own,
    /// and a pool too large to fuse after its `conv, relu` block.
    #[test]
    fn expansion_attributes() {
        insta::assert_snapshot!(expand(quote! {
            #[cfg(feature = "small")]
            #[derive(Clone, Default, PartialEq)]
            #[deprecated]
            pub Small<1, 18, 18> { conv<2, 3>, relu, maxpool<16>, flatten, dense<3> }
        }));
    }

    /// `bias = false`, `batchnorm` and `leaky_relu`: a convolution without
    /// bias before `batchnorm, relu` fused into a `ConvBnBlock`, another one
    /// unfused, Keras' default slope.
    #[test]
    fn expansion_new_layers() {
        insta::assert_snapshot!(expand(quote! {
            pub Small<1, 10, 10> {
                conv<2, 3, bias = false>, batchnorm, relu,
                conv<2, 3, bias = false>, leaky_relu, flatten,
                dense<3, bias = false>, leaky_relu<alpha = 0.1>, dense<2, l2 = 0.5, bias = false>,
            }
        }));
    }

    #[test]
    fn expansion_fallback() {
        insta::assert_snapshot!(expand(quote! {
            pub(crate) Broken<784> { dense<0> }
        }));
    }
}
