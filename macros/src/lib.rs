//! netdsl-macros (stub until the DSL lands).
use proc_macro::TokenStream;

#[proc_macro]
pub fn network(_input: TokenStream) -> TokenStream {
    "compile_error!(\"network! is not implemented yet\");".parse().unwrap()
}
