//! netdsl-runtime
