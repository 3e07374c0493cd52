//! Stamps: what a file looked like when it was last read (size, modification time, hash), and
//! whether it can have changed since.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::image::PathRecord;

/// File systems keep times at a granularity of up to two seconds: a file modified that close to
/// when it was stamped may change again without its time changing.
pub(crate) const RACY_NS: i128 = 2_000_000_000;

/// A file's size and modification time as a directory listing gives them.
#[derive(Clone, Debug)]
pub struct WalkedFile {
    /// Relative to the root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch (0 where the system has none): a write
    /// moves it even when the modification time is set back afterwards.
    pub ctime_ns: i128,
    /// The inode number (0 where the system has none): another file moved over this one has
    /// another.
    pub inode: u64,
}

impl WalkedFile {
    /// `path` with what `meta` (an `lstat`'s) says of its size and times.
    pub(crate) fn from_metadata(path: String, meta: &std::fs::Metadata) -> WalkedFile {
        WalkedFile {
            path,
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            ctime_ns: ctime_ns(meta),
            inode: inode(meta),
        }
    }
}

/// Whether `file` still has the bytes it had when `stamp` was taken, as far as its size and
/// times can tell: same size, same modification and change time, same inode, and the
/// modification time far enough before the stamp that a later write would have moved it. The
/// change time and the inode are what see a file rewritten with its old size and its old time
/// put back (`touch -r`, `cp -p`, archives and sync tools), or another file moved over it, as
/// git's index sees them; a stamp that has neither (recorded before they were) matches no file.
pub(crate) fn stamp_matches(stamp: &PathRecord, file: &WalkedFile) -> bool {
    stamp_fields_match(
        stamp.size,
        stamp.mtime_ns,
        stamp.ctime_ns,
        stamp.inode,
        stamp.stamped_ns,
        file,
    )
}

/// [`stamp_matches`] on a stamp's fields, as the clean-stamps file keeps them
/// (`crate::image::clean_stamps`): one rule for both.
pub(crate) fn stamp_fields_match(
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    stamped_ns: i128,
    file: &WalkedFile,
) -> bool {
    size == file.size
        && mtime_ns == file.mtime_ns
        && ctime_ns == file.ctime_ns
        && inode == file.inode
        && file.mtime_ns < stamped_ns - RACY_NS
}

/// A file's status change time in nanoseconds since the epoch (0 where the system has none).
pub(crate) fn ctime_ns(meta: &std::fs::Metadata) -> i128 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// A file's inode number (0 where the system has none).
pub(crate) fn inode(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// Now, in nanoseconds since the epoch (0 for a clock before it).
pub(crate) fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// A file's modification time in nanoseconds since the epoch (0 when unknown).
pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Hash;

    fn stamp(size: u64, mtime_ns: i128, stamped_ns: i128) -> PathRecord {
        PathRecord {
            module: "A".to_string(),
            size,
            mtime_ns,
            ctime_ns: 7,
            inode: 3,
            hash: Hash::of(b""),
            stamped_ns,
        }
    }

    fn file(size: u64, mtime_ns: i128) -> WalkedFile {
        WalkedFile {
            path: "a.spry".to_string(),
            size,
            mtime_ns,
            ctime_ns: 7,
            inode: 3,
        }
    }

    #[test]
    fn a_stamp_matches_only_a_file_modified_well_before_it() {
        let old = 10 * RACY_NS;
        assert!(stamp_matches(
            &stamp(5, old, old + RACY_NS + 1),
            &file(5, old)
        ));
        assert!(
            !stamp_matches(&stamp(5, old, old + RACY_NS), &file(5, old)),
            "racy"
        );
        assert!(
            !stamp_matches(&stamp(5, old, old * 2), &file(6, old)),
            "size"
        );
        assert!(
            !stamp_matches(&stamp(5, old, old * 2), &file(5, old + 1)),
            "time"
        );
        let moved = WalkedFile {
            inode: 4,
            ..file(5, old)
        };
        assert!(
            !stamp_matches(&stamp(5, old, old * 2), &moved),
            "another file moved over it"
        );
        let rewritten = WalkedFile {
            ctime_ns: 8,
            ..file(5, old)
        };
        assert!(
            !stamp_matches(&stamp(5, old, old * 2), &rewritten),
            "rewritten, its time set back"
        );
    }
}
