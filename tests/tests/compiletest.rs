//! The ui suite: every kind of `network!` mistake, with its expected compiler output.
//!
//! Run: `cargo test -p netdsl-tests --test compiletest`.
//! After changing a message: `TRYBUILD=overwrite cargo test -p netdsl-tests --test compiletest`,
//! then read the changed `tests/ui/*.stderr` before committing them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
