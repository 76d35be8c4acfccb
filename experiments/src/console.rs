//! Writing to stdout and stderr without panicking: `println!` and
//! `eprintln!` panic when the stream is closed or full (`study list | head
//! -1`, `2>/dev/full`); [`outln!`](crate::outln) and [`errln!`](crate::errln)
//! return a [`StreamError`] instead, which `main` turns into a non-zero exit.
//!
//! Also [`error_line`], the one line `study` prints for an error.

use std::fmt;
use std::io::{self, Write};

/// Writing to stdout or stderr failed.
#[derive(Debug)]
pub struct StreamError {
    /// `"stdout"` or `"stderr"`.
    pub stream: &'static str,
    pub source: io::Error,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing to {}: {}", self.stream, self.source)
    }
}

impl std::error::Error for StreamError {}

/// One line on stdout (results); see [`outln!`](crate::outln).
pub fn stdout_line(args: fmt::Arguments<'_>) -> Result<(), StreamError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{args}")
        .and_then(|()| out.flush())
        .map_err(|source| StreamError {
            stream: "stdout",
            source,
        })
}

/// One line on stderr (progress, notes, warnings); see [`errln!`](crate::errln).
pub fn stderr_line(args: fmt::Arguments<'_>) -> Result<(), StreamError> {
    writeln!(io::stderr().lock(), "{args}").map_err(|source| StreamError {
        stream: "stderr",
        source,
    })
}

/// `println!` that returns a [`StreamError`] instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::stdout_line(format_args!($($arg)*))
    };
}

/// `eprintln!` that returns a [`StreamError`] instead of panicking.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::stderr_line(format_args!($($arg)*))
    };
}

/// The error and its causes on one line, `context: cause: cause`, leaving out
/// a cause that the message before it already ends with: the runtime's I/O
/// and JSON errors print their source and also return it as `source()`, and
/// anyhow's `{:#}` would print it twice ("x.json: EOF while parsing ...: EOF
/// while parsing ...").
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !previous.is_empty() && previous.ends_with(&text) {
            previous = text;
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        previous = text;
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn error_line_prints_each_cause_once() {
        let json = serde_json::from_str::<serde_json::Value>("").unwrap_err();
        let io = netdsl_runtime::Error::Json {
            path: "r/cnn3a.json".into(),
            source: json,
        };
        let e = Err::<(), _>(io).context("variant cnn3a").unwrap_err();
        assert_eq!(
            error_line(&e),
            "variant cnn3a: r/cnn3a.json: EOF while parsing a value at line 1 column 0"
        );
        let plain = anyhow::anyhow!("outer").context("top");
        assert_eq!(error_line(&plain), "top: outer");
    }
}
