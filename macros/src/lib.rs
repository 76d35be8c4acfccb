//! netdsl-macros
