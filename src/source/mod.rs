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
    let mut file = options.open(full)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Source::NotAFile);
    }
    if meta.len() > limit {
        return Ok(Source::TooLarge(meta.len()));
    }
    let mut text = first_read(&mut file, meta.len())?;
    let got = text.len() as u64;
    if got != meta.len() {
        // Cut short, grown since, or large: read on to the end (or just past the limit).
        (&mut file)
            .take(limit.saturating_add(1).saturating_sub(got))
            .read_to_end(&mut text)?;
    }
    if text.len() as u64 > limit {
        return Ok(Source::TooLarge(text.len() as u64));
    }
    Ok(Source::Text(text))
}

/// Files up to this size are read with one `read` of one byte more than their size.
const SINGLE_READ_MAX: u64 = 1 << 20;

/// The first read of a file of `size` bytes. A small file is read with one `read` asking one
/// byte more than its size: a regular file's read comes back short only at its end, so
/// getting exactly its size means the end was reached, and the `read` that would only find
/// the end is saved (a tenth of the system calls of a first build or export). A larger file
/// gets an empty buffer of its size, read whole by the caller (zeroing it first would cost
/// more than the call saved).
fn first_read(file: &mut std::fs::File, size: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if size > SINGLE_READ_MAX {
        return Ok(Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
    }
    let mut text = vec![0; size as usize + 1];
    let got = loop {
        match file.read(&mut text) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            read => break read?,
        }
    };
    text.truncate(got);
    Ok(text)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(source: Source) -> Vec<u8> {
        match source {
            Source::Text(text) => text,
            Source::TooLarge(size) => panic!("too large: {size}"),
            Source::NotAFile => panic!("not a file"),
        }
    }

    #[test]
    fn a_file_is_read_whole_at_every_size_around_the_single_read() {
        let dir = tempfile::tempdir().unwrap();
        let max = SINGLE_READ_MAX as usize;
        for size in [0, 1, 4095, 4096, 65_537, max - 1, max, max + 1, 3 * max + 7] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let path = dir.path().join(format!("f{size}.spry"));
            std::fs::write(&path, &bytes).unwrap();
            let read = text_of(read_source(&path, DEFAULT_MAX_FILE_SIZE).unwrap());
            assert_eq!(read.len(), size);
            assert!(read == bytes, "size {size}");
        }
    }

    #[test]
    fn the_limit_holds_on_either_side_of_the_single_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.spry");
        std::fs::write(&path, vec![b'x'; 100]).unwrap();
        assert!(matches!(read_source(&path, 99), Ok(Source::TooLarge(100))));
        assert_eq!(text_of(read_source(&path, 100).unwrap()).len(), 100);
        assert!(matches!(read_source(dir.path(), 100), Ok(Source::NotAFile)));
    }
}
