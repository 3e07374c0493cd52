//! The source tree, one file at a time: reading a file safely, parsing it into a unit, its
//! stamp, the part of the tree an image holds, and what goes wrong with single files.
//!
//! This is the room beneath `walk`, `build`, `status` and `export`: it knows files and syntax,
//! and the image only as far as a file's stamp ([`crate::image::PathRecord`]). Nothing here
//! imports from the rooms above it.

mod failure;
mod part;
mod stamp;

use std::path::Path;

use crate::image::Hash;
use crate::syntax::SourceUnit;

pub use failure::{FailureKind, FileFailure};
pub use part::PartFilter;
#[cfg(test)]
pub(crate) use stamp::RACY_NS;
pub use stamp::WalkedFile;
pub(crate) use stamp::{ctime_ns, inode, mtime_ns, now_ns, stamp_fields_match, stamp_matches};

/// The default largest file a build reads: 64 MiB (the biggest file of a large real tree is
/// well under 1 MiB). A file this large is far more likely a mistake than source.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 << 20;

/// The largest size to read a file at when no limit was given: the default, or, for a file the
/// image already holds, twice the size it was last read or written at. A user who built a large
/// module once (`build --max-file-size`) must not be refused it after adding a definition to it,
/// by `build`, `status`, `watch` or `export` alike; a file that suddenly doubles is still
/// suspect.
pub fn default_read_limit(known_size: Option<u64>) -> u64 {
    DEFAULT_MAX_FILE_SIZE.max(known_size.map_or(0, |s| s.saturating_mul(2)))
}

/// What [`read_source`] found.
pub(crate) enum Source {
    /// The file's bytes.
    Text(Vec<u8>),
    /// More bytes than the limit (at least this many): not read to the end.
    TooLarge(u64),
    /// Not a regular file (a FIFO, a device, a directory put there since the walk).
    NotAFile,
}

/// Reads the regular file at `full`, at most `limit` bytes: never blocks on a FIFO put where
/// a file was (it is opened without waiting for a writer) and never holds more than the limit
/// in memory, even if the file grows while it is read.
pub(crate) fn read_source(full: &Path, limit: u64) -> std::io::Result<Source> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(full)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Source::NotAFile);
    }
    if meta.len() > limit {
        return Ok(Source::TooLarge(meta.len()));
    }
    let mut text = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut text)?;
    if text.len() as u64 > limit {
        return Ok(Source::TooLarge(text.len() as u64));
    }
    Ok(Source::Text(text))
}

/// One file of the tree, read (and parsed, unless its bytes are the ones last read).
pub(crate) enum Unit {
    /// Not there (any more).
    Gone,
    /// Its bytes hash to the hash it was last read with: not parsed.
    Same {
        /// Its size in bytes.
        size: u64,
    },
    /// Read and parsed.
    Parsed {
        /// The unit (it holds the text).
        unit: SourceUnit,
        /// The text's hash.
        hash: Hash,
    },
    /// Could not be taken: unreadable, too large, not a regular file, does not parse.
    Failed(FileFailure),
}

/// Reads the file at `path` (relative to `root`) by [`read_source`] and parses it as a unit
/// named `script` if it is a script; a file whose bytes hash to `last` is not parsed.
pub(crate) fn read_unit(
    root: &Path,
    path: &str,
    script: &str,
    limit: u64,
    last: Option<Hash>,
) -> Unit {
    match read_text(root, path, limit, last) {
        Ok((text, hash)) => match parse_unit(path, text, script) {
            Ok(unit) => Unit::Parsed { unit, hash },
            Err(failure) => Unit::Failed(failure),
        },
        Err(unit) => unit,
    }
}

/// Reads the file at `path` (relative to `root`) by [`read_source`]: its bytes and their
/// hash, or what [`read_unit`] answers without parsing (gone, the same bytes as `last`, a
/// failure).
pub(crate) fn read_text(
    root: &Path,
    path: &str,
    limit: u64,
    last: Option<Hash>,
) -> Result<(Vec<u8>, Hash), Unit> {
    let text = match read_source(&root.join(path), limit) {
        Ok(Source::Text(text)) => text,
        Ok(Source::TooLarge(size)) => {
            return Err(Unit::Failed(FileFailure::new(
                path,
                FailureKind::TooLarge { size, limit },
            )));
        }
        Ok(Source::NotAFile) => {
            return Err(Unit::Failed(FileFailure::new(path, FailureKind::NotAFile)));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unit::Gone),
        Err(e) => return Err(Unit::Failed(FileFailure::unreadable(path, e))),
    };
    let hash = Hash::of(&text);
    if last == Some(hash) {
        return Err(Unit::Same {
            size: text.len() as u64,
        });
    }
    Ok((text, hash))
}

/// Parses `text`, read from `path`, as a unit (named `script` if it is a script).
pub(crate) fn parse_unit(
    path: &str,
    text: Vec<u8>,
    script: &str,
) -> Result<SourceUnit, FileFailure> {
    SourceUnit::parse(text, script).map_err(|e| {
        FileFailure::new(
            path,
            FailureKind::Syntax {
                text: e.text,
                errors: e.errors,
            },
        )
    })
}

/// Whether `a` and `b` are the same directory (both exist and resolve to one path).
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
