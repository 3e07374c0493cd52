//! A `build` or `status` that finds nothing changed, told without opening the image's store:
//! the clean-stamps file (`image/clean_stamps.rs`) and one walk of the tree, as `git status`
//! tells it from its index and one `lstat` per file.
//!
//! The answer is "unchanged" only where the old path could not have found anything: the file
//! reads whole, the image's format is this build's, the image sits in the tree it serves and
//! was not moved since the file was written, the walk looked at everything it met, and the
//! files are exactly those stamped, each matching its stamp as strictly as a build asks
//! (size, both times, inode, the racy window). Anything else is looked at by the old path,
//! with the walk made here handed on so that it is not made twice.

use std::path::Path;

use crate::image::clean_stamps;
use crate::image::{FORMAT_FILE, FORMAT_VERSION, IMAGE_DIR, home_tree};
use crate::source::{PartFilter, WalkedFile, stamp_fields_match};
use crate::walk::{Prewalk, walk};

/// What a clean image and its unchanged tree are: what a `build` or `status` that found nothing
/// changed reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchanged {
    /// The image's generation.
    pub generation: u64,
    /// How many modules image and tree agree on.
    pub modules: usize,
    /// How many source files the tree holds.
    pub files: usize,
}

/// What [`quick_look`] found.
pub enum QuickLook {
    /// Nothing changed since the image and its tree last agreed.
    Unchanged(Unchanged),
    /// Something may have: open the image, with this walk of the tree (made, or started).
    Look(Prewalk),
}

/// Whether the tree at `root` is unchanged since the image in `image_dir` (which serves it)
/// last agreed with it, without opening the image (nor taking its lock: see ARCHITECTURE.md's
/// invariant on the clean-stamps file for what such a reader may see).
pub fn quick_look(image_dir: &Path, root: &Path) -> QuickLook {
    let Some(clean) = clean_stamps_of(image_dir, root) else {
        return QuickLook::Look(Prewalk::start(root));
    };
    let mut failed = Vec::new();
    let files = walk(root, &PartFilter::everything(), &mut failed);
    match &files {
        Ok(found) if failed.is_empty() && agree(&clean, found) => QuickLook::Unchanged(Unchanged {
            generation: clean.image().generation,
            modules: usize::try_from(clean.image().modules).unwrap_or(usize::MAX),
            files: found.len(),
        }),
        _ => QuickLook::Look(Prewalk::walked(root, files, failed)),
    }
}

/// The clean-stamps file of the image in `image_dir`, if it may answer for the tree at `root`:
/// the image is of this build's format, sits in `root` and has not been moved since.
fn clean_stamps_of(image_dir: &Path, root: &Path) -> Option<clean_stamps::CleanStamps> {
    let format = std::fs::read_to_string(image_dir.join(FORMAT_FILE)).ok()?;
    if format.trim() != format!("spry-image format {FORMAT_VERSION}") {
        return None;
    }
    if image_dir.file_name()? != IMAGE_DIR {
        return None;
    }
    let clean = clean_stamps::read(image_dir)?;
    let home = home_tree(image_dir)?;
    let tree = std::fs::canonicalize(root).ok()?;
    (home == tree && home.to_str() == Some(clean.image().root.as_str())).then_some(clean)
}

/// Whether `files` (a walk's, sorted by path) are exactly the files `clean` stamps, each
/// matching its stamp as strictly as a build asks ([`crate::source::stamp_matches`]: size,
/// both times, inode, the racy window).
fn agree(clean: &clean_stamps::CleanStamps, files: &[WalkedFile]) -> bool {
    if files.len() != clean.len() {
        return false;
    }
    let mut files = files.iter();
    clean.all(|stamp| {
        files.next().is_some_and(|file| {
            stamp.path == file.path.as_bytes()
                && stamp_fields_match(
                    stamp.size,
                    stamp.mtime_ns,
                    stamp.ctime_ns,
                    stamp.inode,
                    stamp.stamped_ns,
                    file,
                )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::PathRecord;
    use crate::image::clean_stamps::tests::stamp;

    fn walked(path: &str, size: u64) -> WalkedFile {
        WalkedFile {
            path: path.to_string(),
            size,
            mtime_ns: 1_000_000_000,
            ctime_ns: 1_000_000_001,
            inode: 9,
        }
    }

    #[test]
    fn clean_stamps_agree_only_with_their_files_each_matching() {
        let dir = tempfile::tempdir().unwrap();
        let image = clean_stamps::CleanImage {
            generation: 7,
            modules: 2,
            root: "/tree".to_string(),
        };
        let (a, b) = (stamp(5), stamp(6));
        clean_stamps::write(dir.path(), &image, &[("a.spry", &a), ("b/c.spry", &b)]).unwrap();
        let clean = clean_stamps::read(dir.path()).unwrap();
        assert!(agree(&clean, &[walked("a.spry", 5), walked("b/c.spry", 6)]));
        assert!(!agree(&clean, &[walked("a.spry", 5)]), "a file gone");
        let three = [
            walked("a.spry", 5),
            walked("b/c.spry", 6),
            walked("d.spry", 1),
        ];
        assert!(!agree(&clean, &three), "a file added");
        assert!(
            !agree(&clean, &[walked("a.spry", 5), walked("b/d.spry", 6)]),
            "another file"
        );
        assert!(
            !agree(&clean, &[walked("a.spry", 5), walked("b/c.spry", 7)]),
            "a size"
        );
        let moved = WalkedFile {
            inode: 10,
            ..walked("b/c.spry", 6)
        };
        assert!(!agree(&clean, &[walked("a.spry", 5), moved]), "an inode");
        let touched = WalkedFile {
            ctime_ns: 2_000_000_000,
            ..walked("b/c.spry", 6)
        };
        assert!(
            !agree(&clean, &[walked("a.spry", 5), touched]),
            "a change time"
        );
        // A stamp taken within the racy window of the file's time matches nothing.
        let racy = PathRecord {
            stamped_ns: 1_000_000_000 + crate::source::RACY_NS,
            ..stamp(5)
        };
        clean_stamps::write(dir.path(), &image, &[("a.spry", &racy)]).unwrap();
        let clean = clean_stamps::read(dir.path()).unwrap();
        assert!(!agree(&clean, &[walked("a.spry", 5)]));
        let trusted = PathRecord {
            stamped_ns: 1_000_000_001 + crate::source::RACY_NS,
            ..stamp(5)
        };
        clean_stamps::write(dir.path(), &image, &[("a.spry", &trusted)]).unwrap();
        let clean = clean_stamps::read(dir.path()).unwrap();
        assert!(agree(&clean, &[walked("a.spry", 5)]));
    }
}
