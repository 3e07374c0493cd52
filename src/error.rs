//! The one error type of the library.

use std::io;
use std::path::PathBuf;

use crate::syntax::SyntaxError;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Another process holds the image.
    #[error(
        "the image at {} is in use by process {pid} ({command}); stop it or wait for it to finish",
        path.display()
    )]
    Locked {
        /// The image directory.
        path: PathBuf,
        /// The holder's process id (0 if unknown).
        pid: u32,
        /// The holder's command line, as it recorded it.
        command: String,
    },
    /// The image was written by a newer spry-image.
    #[error(
        "the image at {} has format version {found}; this spry-image reads format version {supported}: upgrade spry-image",
        path.display()
    )]
    NewerFormat {
        /// The image directory.
        path: PathBuf,
        /// The image's format version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// No image where one was looked for.
    #[error("no image found: {0}")]
    NoImage(String),
    /// No such module in the image.
    #[error("no module `{0}` in the image")]
    NoModule(String),
    /// No such definition in the image.
    #[error("no definition `{module}::{name}` in the image")]
    NoDefinition {
        /// The module.
        module: String,
        /// The definition's name.
        name: String,
    },
    /// Source text that does not parse, or is not what was asked for.
    #[error("{}: {} syntax error(s)", path.display(), errors.len())]
    Syntax {
        /// Where the text came from.
        path: PathBuf,
        /// The text.
        text: Vec<u8>,
        /// What is wrong.
        errors: Vec<SyntaxError>,
    },
    /// The image's content is damaged.
    #[error("damaged image: {0}")]
    Corrupt(#[source] Corruption),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Store(#[source] StoreError),
    /// A thread of the library panicked: a bug, said as one rather than taken for a storage
    /// failure.
    #[error(
        "internal error: {task} panicked{}; please report it",
        message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Panicked {
        /// What the thread was doing.
        task: String,
        /// What it said, when it said it in words.
        message: Option<String>,
    },
    /// A glob of a part (`--only`) that does not parse.
    #[error("--only{}: {source}", glob.as_ref().map(|g| format!(" `{g}`")).unwrap_or_default())]
    Glob {
        /// The glob (`None` when the set of them failed as a whole).
        glob: Option<String>,
        /// What globset said.
        #[source]
        source: globset::Error,
    },
    /// The file system watch cannot be set up or kept (a limit of the system, most often: the
    /// message names it and how to raise it).
    #[error("{message}")]
    Watch {
        /// What went wrong, and what to do about it.
        message: String,
        /// What notify said.
        #[source]
        source: notify::Error,
    },
    /// A state the library never expects to be in: a bug, said as one.
    #[error("internal error: {0}; please report it")]
    Internal(String),
    /// A request that cannot be carried out as asked: what is refused and why, with the
    /// error that showed it when there is one (returned from `source()`).
    #[error(transparent)]
    Invalid(Refusal),
    /// A file written but not made durable (or its directory not synced): one failure of the
    /// file system, shared by every file it concerns.
    #[error("{what}: {source}")]
    NotDurable {
        /// What was not done.
        what: String,
        /// Why.
        #[source]
        source: std::sync::Arc<Error>,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause of an error, whatever library it comes from.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The image is damaged: `what` says where.
    pub(crate) fn corrupt(what: impl Into<String>) -> Error {
        Error::Corrupt(Corruption {
            what: what.into(),
            cause: None,
        })
    }

    /// The image is damaged: `what` says where, `cause` what a decoder said.
    pub(crate) fn corrupt_by(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Corrupt(Corruption {
            what: what.into(),
            cause: Some(Box::new(cause)),
        })
    }

    /// A request refused: `message` says what and why.
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(Refusal::new(message))
    }

    /// A request refused because of `cause`: `message` says what and why (in words the user
    /// reads without the cause).
    pub(crate) fn invalid_by(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Invalid(Refusal::because(message, cause))
    }

    /// The storage engine (or the encoding of a record for it) failed with `cause`.
    pub(crate) fn store(cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Store(StoreError {
            doing: String::new(),
            cause: Box::new(cause),
        })
    }

    /// The storage engine failed with `cause` while `doing` something (which names the
    /// database and the table, so that a damaged image says where).
    pub(crate) fn store_doing(
        doing: String,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Store(StoreError {
            doing,
            cause: Box::new(cause),
        })
    }

    /// The thread doing `task` panicked with `payload`.
    pub(crate) fn panicked(task: &str, payload: &(dyn std::any::Any + Send)) -> Error {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        Error::Panicked {
            task: task.to_string(),
            message,
        }
    }
}

/// Where the image is damaged, and what the decoder said about it.
#[derive(Debug)]
pub struct Corruption {
    what: String,
    cause: Option<Cause>,
}

impl Corruption {
    /// Where the image is damaged (a record, a text, a key).
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// The sentence names the cause too, so that a message printed alone is complete.
impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{}: {cause}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for Corruption {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// A request that cannot be carried out as asked ([`Error::Invalid`]): the sentence that says
/// so, and the error that showed it when there is one (a syntax error in the text a change
/// would leave, say).
#[derive(Debug)]
pub struct Refusal {
    message: String,
    cause: Option<Cause>,
}

impl Refusal {
    /// A refusal with no cause but the request itself.
    pub fn new(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            cause: None,
        }
    }

    /// A refusal that `cause` showed to be needed.
    pub fn because(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Refusal {
        Refusal {
            message: message.into(),
            cause: Some(Box::new(cause)),
        }
    }

    /// What is refused, and why.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The message alone: it already says in words what the cause showed.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// A failure of the storage engine, with the engine's error as its cause.
#[derive(Debug)]
pub struct StoreError {
    /// What was being done, and where (empty when unknown).
    doing: String,
    cause: Cause,
}

impl StoreError {
    /// The I/O error beneath the engine's, if there is one (a full disk, a failing one).
    pub fn io(&self) -> Option<&io::Error> {
        let mut at: Option<&(dyn std::error::Error + 'static)> = Some(self.cause.as_ref());
        while let Some(e) = at {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return Some(io);
            }
            at = e.source();
        }
        None
    }
}

/// The system's own words when the cause is I/O (`No space left on device (os error 28)`),
/// the engine's otherwise.
impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.doing.is_empty() {
            write!(f, "{}: ", self.doing)?;
        }
        match self.io() {
            Some(io) => write!(f, "{io}"),
            None => write!(f, "{}", self.cause),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

/// Adds the path to an I/O error, in ripgrep's `WithPath` manner.
pub(crate) trait IoContext<T> {
    fn with_path(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn with_path(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn not_durable_keeps_its_cause_and_says_what_failed_first() {
        let cause = Arc::new(Error::io(
            "/tree/a.spry",
            io::Error::new(io::ErrorKind::StorageFull, "disk full"),
        ));
        let error = Error::NotDurable {
            what: "could not be made durable".to_string(),
            source: Arc::clone(&cause),
        };
        assert_eq!(
            error.to_string(),
            "could not be made durable: /tree/a.spry: disk full"
        );
        let source = error.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("/tree/a.spry: disk full"));
    }
}
