//! Diagnostics: a problem in a configuration, with its position and a
//! message bounded in size.

use std::fmt;

use crate::yaml::{Mark, shorten};

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a configuration, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub mark: Mark,
    pub message: String,
    /// A key gatehouse does not know (a warning; `--strict` makes it an
    /// error, see [`crate::Loaded::strict`]).
    pub unknown_key: bool,
}

impl Diagnostic {
    pub fn error(mark: Mark, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            mark,
            message: bounded(message.into()),
            unknown_key: false,
        }
    }

    pub fn warning(mark: Mark, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            mark,
            message: bounded(message.into()),
            unknown_key: false,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: message`, with `warning: ` before warnings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.mark, self.message),
            Severity::Warning => write!(f, "{}: warning: {}", self.mark, self.message),
        }
    }
}

/// Every message quotes values between backticks: each quoted value is
/// shortened (see [`shorten`]), and a message is cut at 1 KiB whatever it
/// holds, so a huge bad value is never echoed whole to a terminal or a log.
fn bounded(message: String) -> String {
    const MAX: usize = 1024;
    if message.len() <= 160 {
        return message;
    }
    let mut out = String::with_capacity(message.len().min(MAX + 32));
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            out.push_str(&shorten(part));
        } else {
            out.push_str(part);
        }
    }
    if out.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| out.is_char_boundary(i))
            .unwrap_or(0);
        let total = out.len();
        out.truncate(cut);
        out.push_str(&format!("…({total} bytes)"));
    }
    out
}
