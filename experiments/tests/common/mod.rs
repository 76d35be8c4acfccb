//! Helpers shared by the `study` binary's integration tests
//! (`mod common;` in each; not every test file uses every helper).
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// The `study` binary, outside any Slurm array task (a test run inside one
/// must not shard itself).
pub fn study() -> Command {
    let mut cmd = Command::cargo_bin("study").unwrap();
    for var in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"] {
        cmd.env_remove(var);
    }
    cmd
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Asserts success without a panic; returns stderr.
pub fn ok(out: Output) -> String {
    let err = stderr(&out);
    assert!(out.status.success(), "failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Asserts exit code 1 with one line on stderr, no panic, and no cause
/// printed twice; returns the line.
pub fn one_line_error(out: Output) -> String {
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    let causes: Vec<&str> = err.trim().split(": ").filter(|c| c.len() >= 10).collect();
    for (i, c) in causes.iter().enumerate() {
        assert!(!causes[i + 1..].contains(c), "`{c}` twice in: {err}");
    }
    err
}

pub fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A run's JSON with the wall-clock fields (and the thread count) blanked.
pub fn without_clock(path: &Path) -> Value {
    let mut v = read_json(path);
    v["train_seconds"] = 0.into();
    v["test_seconds"] = 0.into();
    v["settings"]["threads"] = 0.into();
    for e in v["epochs"].as_array_mut().unwrap() {
        e["seconds"] = 0.into();
    }
    v
}
