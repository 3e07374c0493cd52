//! The clean-stamps file: a flat copy of the image's file stamps, kept in the image directory
//! only while image and tree agree (what `status` would call "image and tree agree"), so that a
//! `build` or `status` that finds nothing changed reads one small file instead of opening the
//! store. It is a cache with one rule, which ARCHITECTURE.md states as an invariant: **a file
//! that is there and reads whole describes the image as it is** (its generation, its stamps).
//!
//! - Written ([`write`]) only under the image's lock, by a `build` or `status` that has just
//!   seen, from the store, that image and tree agree and that every file matches its stamp.
//! - Removed ([`Invalidating`]) by every process before its first write of any kind to the
//!   store (a commit, a direct load, a clear), and the removal made durable before that write.
//!   Why durable: a removal still in the page cache when the power goes, after a commit that
//!   was made durable, would bring back a file describing the state before that commit. So
//!   each process, at its first write, removes the file and `fsync`s the directory, whether
//!   or not it found a file there: another process may have removed it and died before its
//!   own `fsync` (it then committed nothing, but this process is about to). Later writes of
//!   the same process need nothing: only [`write`] brings the file back, and it clears the
//!   flag. The cost is one directory `fsync` per writing process, beside the several each
//!   commit makes anyway.
//! - Read ([`read`]) without the lock: the file is renamed into place whole, so a reader sees
//!   the file of a state, or none. A reader that sees it and then finds every file of the tree
//!   as it says may answer from it; a commit that happened meanwhile had removed it first, so
//!   the reader's answer is the state before that commit (as if it had run just before), never
//!   a mix. Anything else (no file, a file that does not read whole or by another version of
//!   this format, a file of the tree that differs) and the command opens the image as before.
//! - Its writes are not made durable: after a crash it may be missing (the store is opened) or
//!   hold blocks never written (its checksum fails: the store is opened).
//!
//! [`Transaction::commit_buffered`](super::Transaction::commit_buffered) (which no command
//! uses) returns before its commit is durable: a clean-stamps file written after it (by a later
//! `status`) could outlive the commit if the power goes. The commands never commit so.
//!
//! The layout (integers little-endian): the tag `spry-image clean stamps 1\n`, the blake3 hash
//! of everything after it, the generation (u64), the number of modules (u64), the number of
//! records (u64), the tree's canonical path (u32 length, bytes), then per file, sorted by path:
//! its path (u32 length, bytes), size (u64), modification time, change time (i64 nanoseconds),
//! inode (u64), and when it was stamped (i64 nanoseconds).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::PathRecord;
use crate::error::{Error, Result};
use crate::store::{Store, Table, Write};

/// The file's name in the image directory.
pub(crate) const CLEAN_STAMPS_FILE: &str = "clean-stamps";

/// The first bytes: what the file is, and the version of its layout.
const TAG: &[u8] = b"spry-image clean stamps 1\n";

const HASH_LEN: usize = 32;

/// What a clean-stamps file says besides its stamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanImage {
    /// The image's generation when it was written.
    pub generation: u64,
    /// How many modules image and tree agree on.
    pub modules: u64,
    /// The tree's canonical path.
    pub root: String,
}

/// A clean-stamps file read whole and checked: its header, and its records not yet decoded.
pub(crate) struct CleanStamps {
    image: CleanImage,
    count: usize,
    bytes: Vec<u8>,
    /// Where the records start in `bytes`.
    records: usize,
}

/// Writes the clean-stamps file of the image in `dir`: `stamps` (every stamp the image holds,
/// sorted by path) agree with the tree at `image.root`, and nothing else differs. Only under
/// the image's lock, right after the store said so. Does nothing (and says so with `false`)
/// where a time does not fit the file's 64 bits.
///
/// # Errors
/// The file cannot be written (the caller may ignore it: the file is a cache).
pub(crate) fn write(
    dir: &Path,
    image: &CleanImage,
    stamps: &[(&str, &PathRecord)],
) -> Result<bool> {
    let mut body = Vec::with_capacity(64 + image.root.len() + stamps.len() * 64);
    body.extend_from_slice(&image.generation.to_le_bytes());
    body.extend_from_slice(&image.modules.to_le_bytes());
    body.extend_from_slice(&(stamps.len() as u64).to_le_bytes());
    let Ok(root_len) = u32::try_from(image.root.len()) else {
        return Ok(false);
    };
    body.extend_from_slice(&root_len.to_le_bytes());
    body.extend_from_slice(image.root.as_bytes());
    for (path, stamp) in stamps {
        let (Ok(len), Ok(mtime), Ok(ctime), Ok(stamped)) = (
            u32::try_from(path.len()),
            i64::try_from(stamp.mtime_ns),
            i64::try_from(stamp.ctime_ns),
            i64::try_from(stamp.stamped_ns),
        ) else {
            return Ok(false);
        };
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(path.as_bytes());
        body.extend_from_slice(&stamp.size.to_le_bytes());
        body.extend_from_slice(&mtime.to_le_bytes());
        body.extend_from_slice(&ctime.to_le_bytes());
        body.extend_from_slice(&stamp.inode.to_le_bytes());
        body.extend_from_slice(&stamped.to_le_bytes());
    }
    let mut bytes = Vec::with_capacity(TAG.len() + HASH_LEN + body.len());
    bytes.extend_from_slice(TAG);
    bytes.extend_from_slice(blake3::hash(&body).as_bytes());
    bytes.extend_from_slice(&body);
    // Made whole beside it, then renamed into place: a reader never sees half of it.
    let path = dir.join(CLEAN_STAMPS_FILE);
    let temporary = dir.join(format!("{CLEAN_STAMPS_FILE}.new"));
    std::fs::write(&temporary, &bytes).map_err(|e| Error::io(&temporary, e))?;
    std::fs::rename(&temporary, &path).map_err(|e| Error::io(&path, e))?;
    Ok(true)
}

/// The clean-stamps file of the image in `dir`, if there is one that reads whole (its tag, its
/// checksum, its lengths). Reads without the lock.
pub(crate) fn read(dir: &Path) -> Option<CleanStamps> {
    let bytes = std::fs::read(dir.join(CLEAN_STAMPS_FILE)).ok()?;
    let body = bytes.strip_prefix(TAG)?;
    let (hash, body) = body.split_at_checked(HASH_LEN)?;
    if blake3::hash(body).as_bytes() != hash {
        return None;
    }
    let mut at = Reader {
        bytes: &bytes,
        at: TAG.len() + HASH_LEN,
    };
    let generation = at.u64()?;
    let modules = at.u64()?;
    let count = usize::try_from(at.u64()?).ok()?;
    let root_len = at.u32()? as usize;
    let root = String::from_utf8(at.take(root_len)?.to_vec()).ok()?;
    let records = at.at;
    Some(CleanStamps {
        image: CleanImage {
            generation,
            modules,
            root,
        },
        count,
        records,
        bytes,
    })
}

impl CleanStamps {
    /// What the file says besides its stamps.
    pub(crate) fn image(&self) -> &CleanImage {
        &self.image
    }

    /// How many files it stamps.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Calls `each` with every record, in path order, while it returns `true`; `true` if it
    /// did for every record and the records read whole, up to the file's end.
    pub(crate) fn all(&self, mut each: impl FnMut(&CleanRecord<'_>) -> bool) -> bool {
        let mut at = Reader {
            bytes: &self.bytes,
            at: self.records,
        };
        for _ in 0..self.count {
            match at.record() {
                Some(record) if each(&record) => {}
                _ => return false,
            }
        }
        at.at == self.bytes.len()
    }
}

/// One file's stamp, as the clean-stamps file keeps it.
pub(crate) struct CleanRecord<'a> {
    /// Relative to the root, `/`-separated.
    pub(crate) path: &'a [u8],
    pub(crate) size: u64,
    pub(crate) mtime_ns: i128,
    pub(crate) ctime_ns: i128,
    pub(crate) inode: u64,
    pub(crate) stamped_ns: i128,
}

/// Reads the file's fields in order.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i128> {
        Some(i128::from(i64::from_le_bytes(
            self.take(8)?.try_into().ok()?,
        )))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// The next record (`None`: it does not read whole).
    fn record(&mut self) -> Option<CleanRecord<'a>> {
        let len = self.u32()? as usize;
        Some(CleanRecord {
            path: self.take(len)?,
            size: self.u64()?,
            mtime_ns: self.i64()?,
            ctime_ns: self.i64()?,
            inode: self.u64()?,
            stamped_ns: self.i64()?,
        })
    }
}

/// Removes the clean-stamps file of the image in `dir` and makes its removal durable (see the
/// module's documentation for why even where there was no file).
///
/// # Errors
/// The file is there and cannot be removed, or the directory cannot be synced: the write
/// that asked must not go ahead.
pub(crate) fn invalidate(dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_STAMPS_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    // Directories cannot be opened for syncing here; the removal is as durable as the system
    // makes it.
    Ok(())
}

/// The image's store, which removes the clean-stamps file (durably) before this process's
/// first write of any kind: every way the image's state can change goes through here.
pub(crate) struct Invalidating {
    inner: Box<dyn Store>,
    dir: std::path::PathBuf,
    /// The file is known to be gone, durably, since this process last wrote it: shared with
    /// the [`CleanWriter`] of the same image.
    gone: Arc<AtomicBool>,
}

/// What writes the clean-stamps file of an image whose store is [`Invalidating`]: writing it
/// tells the store that its next write must remove it again.
pub(crate) struct CleanWriter {
    dir: std::path::PathBuf,
    gone: Arc<AtomicBool>,
}

impl CleanWriter {
    /// [`write`] for this image: the file is there again, and the next write removes it.
    ///
    /// # Errors
    /// As [`write`].
    pub(crate) fn write(&self, image: &CleanImage, stamps: &[(&str, &PathRecord)]) -> Result<bool> {
        self.gone.store(false, Ordering::Release);
        write(&self.dir, image, stamps)
    }
}

impl Invalidating {
    /// `inner`, the store of the image in `dir`, and the writer of its clean-stamps file.
    pub(crate) fn new(inner: Box<dyn Store>, dir: &Path) -> (Invalidating, CleanWriter) {
        let gone = Arc::new(AtomicBool::new(false));
        let writer = CleanWriter {
            dir: dir.to_path_buf(),
            gone: Arc::clone(&gone),
        };
        let store = Invalidating {
            inner,
            dir: dir.to_path_buf(),
            gone,
        };
        (store, writer)
    }

    fn before_write(&self) -> Result<()> {
        if !self.gone.load(Ordering::Acquire) {
            invalidate(&self.dir)?;
            self.gone.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl Store for Invalidating {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(table, key)
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(table, prefix)
    }

    fn visit(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.inner.visit(table, prefix, visit)
    }

    fn visit_range(
        &self,
        table: Table,
        start: &[u8],
        end: &[u8],
        backwards: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.inner.visit_range(table, start, end, backwards, visit)
    }

    fn approximate_len(&self, table: Table) -> usize {
        self.inner.approximate_len(table)
    }

    fn commit(&self, writes: Vec<Write>) -> Result<()> {
        self.before_write()?;
        self.inner.commit(writes)
    }

    fn commit_buffered(&self, writes: Vec<Write>) -> Result<()> {
        self.before_write()?;
        self.inner.commit_buffered(writes)
    }

    fn load(&self, writes: Vec<Write>) -> Result<()> {
        self.before_write()?;
        self.inner.load(writes)
    }

    fn clear(&self) -> Result<()> {
        self.before_write()?;
        self.inner.clear()
    }

    fn settle(&self) -> Result<()> {
        // Moves what is committed from the journal into tables: the state does not change.
        self.inner.settle()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::image::Hash;

    /// A stamp of a file of `size` bytes, old enough to be trusted.
    pub(crate) fn stamp(size: u64) -> PathRecord {
        PathRecord {
            module: "A".to_string(),
            size,
            mtime_ns: 1_000_000_000,
            ctime_ns: 1_000_000_001,
            inode: 9,
            hash: Hash::of(b""),
            stamped_ns: 10_000_000_000,
        }
    }

    #[test]
    fn a_file_written_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let image = CleanImage {
            generation: 7,
            modules: 2,
            root: "/tree".to_string(),
        };
        let (a, b) = (stamp(5), stamp(6));
        assert!(write(dir.path(), &image, &[("a.spry", &a), ("b/c.spry", &b)]).unwrap());
        let read = read(dir.path()).unwrap();
        assert_eq!(read.image(), &image);
        assert_eq!(read.len(), 2);
        let mut seen = Vec::new();
        assert!(read.all(|r| {
            seen.push((
                r.path.to_vec(),
                r.size,
                r.mtime_ns,
                r.ctime_ns,
                r.inode,
                r.stamped_ns,
            ));
            true
        }));
        let fields = |s: &PathRecord| (s.size, s.mtime_ns, s.ctime_ns, s.inode, s.stamped_ns);
        let expected: Vec<_> = [("a.spry", &a), ("b/c.spry", &b)]
            .iter()
            .map(|(p, s)| {
                let (size, m, c, i, st) = fields(s);
                (p.as_bytes().to_vec(), size, m, c, i, st)
            })
            .collect();
        assert_eq!(seen, expected);
        assert!(!read.all(|r| r.path == b"a.spry"), "stopped");
    }

    #[test]
    fn every_write_of_the_store_removes_the_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let fjall = crate::store::FjallStore::open(&dir.path().join("db")).unwrap();
        let (store, writer) = Invalidating::new(Box::new(fjall), dir.path());
        let image = CleanImage {
            generation: 1,
            modules: 1,
            root: "/tree".to_string(),
        };
        let file = dir.path().join(CLEAN_STAMPS_FILE);
        let put = || vec![Write::put(Table::Meta, b"k".to_vec(), b"v".to_vec())];
        let writes: [&dyn Fn() -> Result<()>; 4] = [
            &|| store.commit(put()),
            &|| store.commit_buffered(put()),
            &|| store.load(put()),
            &|| store.clear(),
        ];
        for (i, write) in writes.iter().enumerate() {
            assert!(writer.write(&image, &[("a.spry", &stamp(5))]).unwrap());
            assert!(file.exists());
            assert!(store.get(Table::Meta, b"zz").unwrap().is_none(), "a read");
            assert!(file.exists(), "a read leaves it");
            write().unwrap();
            assert!(!file.exists(), "write {i}");
        }
    }

    #[test]
    fn a_damaged_file_does_not_read_and_invalidation_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let image = CleanImage {
            generation: 1,
            modules: 1,
            root: "/tree".to_string(),
        };
        write(dir.path(), &image, &[("a.spry", &stamp(5))]).unwrap();
        let path = dir.path().join(CLEAN_STAMPS_FILE);
        let whole = std::fs::read(&path).unwrap();
        for cut in [0, 5, TAG.len() + 3, whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            assert!(read(dir.path()).is_none(), "cut at {cut}");
        }
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(read(dir.path()).is_none(), "a bit flipped");
        std::fs::write(&path, &whole).unwrap();
        assert!(read(dir.path()).is_some());
        invalidate(dir.path()).unwrap();
        assert!(!path.exists());
        invalidate(dir.path()).unwrap();
    }
}
