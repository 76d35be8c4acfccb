//! netdsl-macros: the `network!` procedural macro. Use it through
//! `netdsl_runtime::network` (the expansion names `::netdsl_runtime` paths).
//!
//! Pipeline: `ast.rs` parses (fail-fast) → `check.rs` validates arguments
//! (combined errors) and infers shapes with `shape.rs` → `expand.rs` generates code.
//! Tests: `cargo test -p netdsl-macros` (parsing, shape arithmetic, an expansion
//! snapshot) and `cargo test -p netdsl-tests` (ui suite, the study's architectures).
//!

#![doc = include_str!("grammar.md")]

use proc_macro::TokenStream;
use syn::parse_macro_input;

mod args;
mod ast;
mod check;
mod errors;
mod expand;
mod shape;

/// Declare neural networks in a compact layer syntax, with shapes checked while compiling.
///
#[doc = include_str!("grammar.md")]
#[proc_macro]
pub fn network(input: TokenStream) -> TokenStream {
    let networks = parse_macro_input!(input as ast::Networks);
    expand::networks(&networks).into()
}
