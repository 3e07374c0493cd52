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
    Corrupt(String),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Store(String),
    /// A glob of a part (`--only`) that does not parse.
    #[error("--only{}: {source}", glob.as_ref().map(|g| format!(" `{g}`")).unwrap_or_default())]
    Glob {
        /// The glob (`None` when the set of them failed as a whole).
        glob: Option<String>,
        /// What globset said.
        #[source]
        source: globset::Error,
    },
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
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
