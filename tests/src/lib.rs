//! netdsl-tests: integration tests of the `network!` DSL (not published).
//!
//! - `tests/compiletest.rs`: the trybuild ui suite, one case per mistake kind in `ui/`.
//! - `tests/architectures.rs`: the study's seven architectures: summaries (insta
//!   snapshots in `tests/snapshots/`), parameter counts, a forward pass on `Cpu`.
//!
//! Run all: `cargo test -p netdsl-tests`.
