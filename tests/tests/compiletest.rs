//! The ui suite: every kind of `network!` mistake, with its expected compiler output,
//! and in `ui/pass/` declarations that must build and run.
//!
//! Run: `cargo test -p netdsl-tests --test compiletest` (append `-- ui trybuild=NAME`
//! to run only the cases whose path contains NAME).
//! After changing a message: `TRYBUILD=overwrite cargo test -p netdsl-tests --test compiletest`,
//! then read the changed `tests/ui/*.stderr` before committing them.
//!
//! With a pass case present, trybuild runs `cargo build`, not `cargo check`, for
//! every case: const assertions in the runtime's layers (E0080, which only a
//! build evaluates) fail a pass case, so the sizes the macro accepts are built.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
    t.pass("ui/pass/*.rs");
}
