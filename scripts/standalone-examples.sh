#!/usr/bin/env bash
# Builds each user-facing example as the only source file of a fresh crate
# outside this repository that depends on netdsl-runtime alone (no build
# flags, no allocator, no other dependency), then runs it: what a user who
# copies an example gets.
#
#   scripts/standalone-examples.sh [EXAMPLE...]     # default: custom_data fashion_mnist
#
# The crates live in a temporary folder; their build shares target/standalone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
examples=("$@")
[ ${#examples[@]} -gt 0 ] || examples=(custom_data fashion_mnist)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="$repo/target/standalone"
for name in "${examples[@]}"; do
    crate="$work/$name"
    mkdir -p "$crate/src"
    cp "$repo/runtime/examples/$name.rs" "$crate/src/main.rs"
    cat > "$crate/Cargo.toml" <<TOML
[package]
name = "standalone-$name"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
netdsl-runtime = { path = "$repo/runtime" }

[workspace]
TOML
    echo "== $name: a crate of its own, depending on netdsl-runtime alone" >&2
    (cd "$crate" && cargo run --release --quiet)
done
