//! Error collection for `network!`: gather several `syn::Error`s, report them together.
//!
//! As in cxx's `syntax/report.rs` and serde_derive's `Ctxt`: checks push errors
//! and carry on, and a phase ends with [`Errors::propagate`], which turns the
//! collected errors into one combined `syn::Error` (each keeps its own span, so
//! rustc prints them separately).

use proc_macro2::Span;
use quote::ToTokens;
use std::fmt::Display;

/// Errors collected during one phase of the macro.
#[derive(Default)]
pub struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record an error at `span`.
    pub fn error(&mut self, span: Span, msg: impl Display) {
        self.errors.push(syn::Error::new(span, msg));
    }

    /// Record an error covering all of `tokens` (e.g. both `-` and `3` in `-3`).
    pub fn error_spanned(&mut self, tokens: impl ToTokens, msg: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, msg));
    }

    /// How many errors have been recorded (to tell whether a check added one).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// `Err` with every collected error combined, or `Ok` when there are none.
    pub fn propagate(&mut self) -> syn::Result<()> {
        let mut iter = std::mem::take(&mut self.errors).into_iter();
        match iter.next() {
            None => Ok(()),
            Some(mut first) => {
                for error in iter {
                    first.combine(error);
                }
                Err(first)
            }
        }
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be
/// a plausible typo (at most a third of the word's letters, and at least one, differ).
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.len() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// " (did you mean `x`?)" when a candidate is near, else "".
pub fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    match nearest(word, candidates) {
        Some(near) => format!(" (did you mean `{near}`?)"),
        None => String::new(),
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions and
/// transpositions of neighbours (`mxapool` is one edit from `maxpool`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j] = distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYERS: &[&str] = &[
        "dense", "conv", "maxpool", "flatten", "dropout", "relu", "tanh", "sigmoid",
    ];

    #[test]
    fn distance() {
        assert_eq!(edit_distance("conv", "conv"), 0);
        assert_eq!(edit_distance("cnv", "conv"), 1);
        assert_eq!(edit_distance("mxapool", "maxpool"), 1);
        assert_eq!(edit_distance("", "relu"), 4);
    }

    #[test]
    fn suggestions() {
        assert_eq!(nearest("cnv", LAYERS), Some("conv"));
        assert_eq!(nearest("Dense", LAYERS), Some("dense"));
        assert_eq!(nearest("maxpol", LAYERS), Some("maxpool"));
        assert_eq!(nearest("flaten", LAYERS), Some("flatten"));
        assert_eq!(nearest("softmax", LAYERS), None);
        assert_eq!(did_you_mean("lstm", LAYERS), "");
    }

    #[test]
    fn combined() {
        let mut errors = Errors::new();
        assert!(errors.propagate().is_ok());
        errors.error(Span::call_site(), "first");
        errors.error(Span::call_site(), "second");
        let combined = errors.propagate().unwrap_err();
        assert_eq!(combined.into_iter().count(), 2);
        assert!(errors.propagate().is_ok());
    }
}
