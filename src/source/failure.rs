//! A file of the tree that could not be taken, and why.

use std::fmt;
use std::sync::Arc;

use crate::syntax::SyntaxError;

/// A file (or directory) of the tree that could not be taken. It never aborts a build, a
/// status or an export: it is reported, and its module keeps its last good version.
#[derive(Clone, Debug)]
pub struct FileFailure {
    /// Path relative to the root (or as the system gave it, when it is not UTF-8).
    pub path: String,
    /// Why.
    pub kind: FailureKind,
}

/// Why a file could not be taken.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum FailureKind {
    /// The system refused to read the file or directory (or its metadata).
    Unreadable(Arc<std::io::Error>),
    /// More bytes than the limit: not read.
    TooLarge {
        /// Its size (at least this many bytes).
        size: u64,
        /// The limit it is over.
        limit: u64,
    },
    /// Not a regular file (a FIFO, a device, a directory put there since the walk).
    NotAFile,
    /// Its name is not UTF-8.
    NameNotUtf8,
    /// A `.gitignore` or `.spryignore` that cannot be read, or holds a bad line (the rest of it
    /// still counts).
    Ignore(Arc<ignore::Error>),
    /// It does not parse.
    Syntax {
        /// The text read.
        text: Vec<u8>,
        /// What is wrong with it.
        errors: Vec<SyntaxError>,
    },
    /// Reading it met a bug of spry-image (a panic, caught so that one file cannot take the
    /// build down); its module keeps its last version.
    Internal {
        /// What the panic said.
        message: String,
    },
    /// It holds a module another file holds: that file keeps it.
    ClaimedTwice {
        /// The module.
        module: String,
        /// The file that keeps it.
        holder: String,
        /// This file.
        path: String,
    },
}

impl FileFailure {
    /// A failure of `path`.
    pub fn new(path: impl Into<String>, kind: FailureKind) -> FileFailure {
        FileFailure {
            path: path.into(),
            kind,
        }
    }

    /// The system could not read `path`.
    pub(crate) fn unreadable(path: impl Into<String>, error: std::io::Error) -> FileFailure {
        FileFailure::new(path, FailureKind::Unreadable(Arc::new(error)))
    }

    /// The text read (empty unless it is a syntax failure).
    pub fn text(&self) -> &[u8] {
        match &self.kind {
            FailureKind::Syntax { text, .. } => text,
            _ => &[],
        }
    }

    /// The syntax errors (empty unless it is a syntax failure).
    pub fn errors(&self) -> &[SyntaxError] {
        match &self.kind {
            FailureKind::Syntax { errors, .. } => errors,
            _ => &[],
        }
    }

    /// A sentence for failures that are not syntax errors (those are shown as diagnostics).
    pub fn message(&self) -> Option<String> {
        match &self.kind {
            FailureKind::Syntax { .. } => None,
            kind => Some(kind.to_string()),
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Unreadable(e) => write!(f, "cannot read: {e}"),
            FailureKind::TooLarge { size, limit } => write!(
                f,
                "not read: {size} bytes is more than the limit of {limit} bytes; raise it with `spry-image build --max-file-size BYTES`"
            ),
            FailureKind::NotAFile => f.write_str("not a regular file"),
            FailureKind::NameNotUtf8 => f.write_str("the file name is not UTF-8"),
            FailureKind::Ignore(e) => write!(f, "{e}"),
            FailureKind::Syntax { errors, .. } => match errors.first() {
                Some(first) => write!(
                    f,
                    "{} syntax error(s); the first: {}",
                    errors.len(),
                    first.message
                ),
                None => f.write_str("it does not parse"),
            },
            FailureKind::Internal { message } => write!(
                f,
                "internal error while reading it ({message}); its module keeps its last version; please report it"
            ),
            FailureKind::ClaimedTwice {
                module,
                holder,
                path,
            } => write!(
                f,
                "module `{module}` is defined in both `{holder}` and `{path}`; `{holder}` keeps it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_failure_is_its_errors_not_a_sentence() {
        let large = FileFailure::new("big.spry", FailureKind::TooLarge { size: 9, limit: 4 });
        assert!(large.errors().is_empty() && large.message().is_some());
        let syntax = crate::syntax::SourceUnit::parse(&b"{x = [1}"[..], "x").unwrap_err();
        let failure = FileFailure::new(
            "x.spry",
            FailureKind::Syntax {
                text: syntax.text,
                errors: syntax.errors,
            },
        );
        assert!(failure.message().is_none());
        assert!(!failure.errors().is_empty() && failure.text() == b"{x = [1}");
    }

    #[test]
    fn a_module_claimed_twice_names_both_files_and_the_keeper() {
        let failure = FileFailure::new(
            "b.spry",
            FailureKind::ClaimedTwice {
                module: "A".into(),
                holder: "a.spry".into(),
                path: "b.spry".into(),
            },
        );
        assert_eq!(
            failure.message().unwrap(),
            "module `A` is defined in both `a.spry` and `b.spry`; `a.spry` keeps it"
        );
        let unreadable = FileFailure::unreadable("d", std::io::Error::other("no"));
        assert_eq!(unreadable.message().unwrap(), "cannot read: no");
    }
}
