//! Finding the Spry files of a tree: one `read_dir` per directory (in parallel), one `lstat`
//! per source file, `.gitignore` and `.spryignore` rules read only where a directory has them.
//!
//! What counts: regular files named `*.spry` or `*.sy` ([`crate::tree_path::is_source_path`]),
//! not hidden (no name in their path starts with a `.`), not ignored by a `.gitignore` or
//! `.spryignore` (in the root, any directory below it, or any directory above it, in a git
//! checkout or not; deeper rules win, and in one directory `.spryignore`'s), never through a
//! symbolic link, and never inside the image directory.

mod listing;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image::IMAGE_DIR;
pub use crate::source::WalkedFile;
use crate::source::{FailureKind, FileFailure, PartFilter};
use listing::{Dir, Kind};

/// The `.spry` files of the tree at `root` within `filter`, sorted by path: skipping what
/// `.gitignore` ignores (in a git checkout or not), hidden files and directories, the image
/// directory, and links (never followed). Paths that cannot be used (names not UTF-8, files or
/// directories that cannot be read) are added to `failed`; a file gone before it could be
/// looked at is not in the tree.
///
/// # Errors
/// The root itself cannot be read (not a failure of one path: nothing of the tree is seen).
pub fn walk(
    root: &Path,
    filter: &PartFilter,
    failed: &mut Vec<FileFailure>,
) -> Result<Vec<WalkedFile>> {
    std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    let (above, mut found) = rules_above(root);
    let walk = Walk {
        root,
        filter,
        above,
        first: None,
    };
    walk.dir(root.to_path_buf(), Some(String::new()), None, &mut found);
    failed.extend(std::mem::take(&mut found.failures));
    let mut files = found.into_files();
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Whether [`walk`] would find any file: the walk stopped at the first one (a first build
/// refuses a tree without Spry files, and walking all of a big tree to learn that it has one
/// was most of a second walk).
///
/// # Errors
/// The root cannot be read.
pub fn has_files(root: &Path, filter: &PartFilter) -> Result<bool> {
    std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    let (above, mut found) = rules_above(root);
    let seen = AtomicBool::new(false);
    let walk = Walk {
        root,
        filter,
        above,
        first: Some(&seen),
    };
    walk.dir(root.to_path_buf(), Some(String::new()), None, &mut found);
    Ok(found.parts.iter().any(|part| !part.is_empty()))
}

/// A walk of the whole tree started before the image is opened, on a thread of its own: the
/// stats (git's index preloading makes the same ones in parallel threads) overlap fjall's open
/// and the read of the stamps, which is what a command that finds nothing changed spends its
/// time on. The walk runs before the image is locked, so another process (a watcher, a build)
/// may commit between it and the stamps: only a walk that agrees with every stamp in force is
/// used ([`Prewalk::agreeing`]); any difference is looked at again by a walk made under the
/// lock.
pub struct Prewalk {
    root: PathBuf,
    walking: Option<std::thread::JoinHandle<Walked>>,
    /// The walk's outcome, once waited for.
    walked: Option<Walked>,
}

/// What a walk found: the files, or the error that stopped it, and what it could not look at.
type Walked = (Result<Vec<WalkedFile>>, Vec<FileFailure>);

impl Prewalk {
    /// Starts walking the whole tree at `root` (no part filter) on another thread.
    pub fn start(root: &Path) -> Prewalk {
        let at = root.to_path_buf();
        let walking = std::thread::Builder::new()
            .name("prewalk".into())
            .spawn(move || {
                let mut failed = Vec::new();
                let files = walk(&at, &PartFilter::everything(), &mut failed);
                (files, failed)
            })
            // No thread to be had: the walk is made when it is needed, as without a prewalk.
            .ok();
        Prewalk {
            root: root.to_path_buf(),
            walking,
            walked: None,
        }
    }

    /// A walk of `root` made already (by [`crate::quick_look`], which found it did not agree
    /// with the clean stamps): used as a walk started before the image was opened.
    pub(crate) fn walked(
        root: &Path,
        files: Result<Vec<WalkedFile>>,
        failed: Vec<FileFailure>,
    ) -> Prewalk {
        Prewalk {
            root: root.to_path_buf(),
            walking: None,
            walked: Some((files, failed)),
        }
    }

    /// Waits for the walk to end.
    pub(crate) fn wait(&mut self) {
        if let Some(walking) = self.walking.take() {
            self.walked = walking.join().ok();
        }
    }

    /// The files the walk found at `root` within `filter`, if it walked that root, looked at
    /// everything it met, and agrees with `matches` for every file and with the number of
    /// stamps in force (`known`: files the image knows within `filter`); `None` otherwise
    /// (then the caller walks under the lock).
    pub(crate) fn agreeing(
        mut self,
        root: &Path,
        filter: &PartFilter,
        known: usize,
        matches: impl Fn(&WalkedFile) -> bool,
    ) -> Option<Vec<WalkedFile>> {
        self.wait();
        let (files, failed) = self.walked.take()?;
        let mut files = files.ok()?;
        if self.root != root || !failed.is_empty() {
            return None;
        }
        files.retain(|f| filter.contains(&f.path));
        (files.len() == known && files.iter().all(matches)).then_some(files)
    }
}

impl Drop for Prewalk {
    fn drop(&mut self) {
        // Not used: waited for, so that no walk outlives the command that started it.
        self.wait();
    }
}

/// The `.spry` files at or below the listed `paths` (relative to `root`, `/`-separated, as
/// [`narrow`] leaves them), by the rules of [`walk`]: a listed file counts if the walk would
/// find it; a listed directory is walked as the walk would walk it (with the `.gitignore` rules
/// of the directories above it); a listed path that is not there (or is hidden, ignored, a
/// link, not a `.spry` file) holds no files. Sorted by path.
///
/// # Errors
/// The root itself cannot be read.
pub fn walk_paths(
    root: &Path,
    filter: &PartFilter,
    paths: &[String],
    failed: &mut Vec<FileFailure>,
) -> Result<Vec<WalkedFile>> {
    std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    let (above, mut found) = rules_above(root);
    let walk = Walk {
        root,
        filter,
        above,
        first: None,
    };
    for path in paths {
        walk.listed(path, &mut found);
    }
    failed.extend(std::mem::take(&mut found.failures));
    let mut files = found.into_files();
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(files)
}

/// `paths` sorted, without repeats and without paths below another listed path (a listed
/// directory is walked whole). The empty path is the root: it covers everything.
pub fn narrow(paths: &[String]) -> Vec<String> {
    let mut paths: Vec<String> = paths
        .iter()
        .map(|p| p.trim_matches('/').to_string())
        .collect();
    if paths.iter().any(String::is_empty) {
        return vec![String::new()];
    }
    paths.sort();
    paths.dedup();
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    for path in paths {
        // Sorted: a path's ancestors among the listed ones come before it, and "d/x" sorts
        // after "d" but may come after "d-e" too, so look at every kept path's prefix.
        let covered = path
            .match_indices('/')
            .any(|(at, _)| out.binary_search(&path[..at].to_string()).is_ok());
        if !covered {
            out.push(path);
        }
    }
    out
}

/// `path` relative to `root`, `/`-separated; `None` if not UTF-8 or not under the root.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// What a walk (or a part of it) found.
#[derive(Default)]
struct Found {
    /// The files, a directory's at a time: joined once, at their number, at the end. Grown
    /// into one vector, they were copied again at each doubling and at each merge of two
    /// threads' finds, into pages touched for the first time (a sixth of the CPU of a `status`
    /// of 10,000 unchanged files was page faults, most of them these copies).
    parts: Vec<Vec<WalkedFile>>,
    failures: Vec<FileFailure>,
}

impl Found {
    /// Every file found, in no particular order.
    fn into_files(self) -> Vec<WalkedFile> {
        let mut files = Vec::with_capacity(self.parts.iter().map(Vec::len).sum());
        for part in self.parts {
            files.extend(part);
        }
        files
    }

    fn fail(&mut self, path: String, kind: FailureKind) {
        self.failures.push(FileFailure::new(path, kind));
    }

    fn unreadable(&mut self, path: String, error: std::io::Error) {
        self.failures.push(FileFailure::unreadable(path, error));
    }

    fn bad_gitignore(&mut self, path: String, error: ignore::Error) {
        self.fail(path, FailureKind::Ignore(std::sync::Arc::new(error)));
    }

    fn merge(mut self, mut other: Found) -> Found {
        self.parts.append(&mut other.parts);
        self.failures.append(&mut other.failures);
        self
    }
}

/// The `.gitignore` rules in force in a directory: its own, then its ancestors' within the
/// tree (only directories that have a `.gitignore` are links).
struct Rules<'a> {
    gitignore: Gitignore,
    up: Option<&'a Rules<'a>>,
}

struct Walk<'a> {
    root: &'a Path,
    filter: &'a PartFilter,
    /// The rules of the directories above the root, nearest first, with the root's
    /// canonical path they are matched through.
    above: Option<(PathBuf, Vec<Gitignore>)>,
    /// For [`has_files`]: raised at the first file found, which ends the walk.
    first: Option<&'a AtomicBool>,
}

impl Walk<'_> {
    /// Whether a walk for [`has_files`] found its file already.
    fn done(&self) -> bool {
        self.first.is_some_and(|seen| seen.load(Ordering::Relaxed))
    }
}

/// One directory to walk: its path and its path relative to the root (`None` if not UTF-8).
type Job = (PathBuf, Option<String>);

/// A directory, open, with the entries of it that may count (`true` for a directory), and
/// whether it has a `.gitignore`.
type Listed<'d> = (Dir<'d>, Vec<(OsString, bool)>, bool);

impl Walk<'_> {
    /// Walks the directory `dir` (`rel` relative to the root) and everything below it.
    fn dir(&self, dir: PathBuf, rel: Option<String>, up: Option<&Rules>, found: &mut Found) {
        if self.done() {
            return;
        }
        let Some((open, listed, has_gitignore)) = self.list(&dir, &rel, found) else {
            return;
        };
        let own;
        let rules = if has_gitignore {
            own = Rules {
                gitignore: self.gitignore(&dir, &rel, found),
                up,
            };
            Some(&own)
        } else {
            up
        };
        let mut subdirs: Vec<Job> = Vec::new();
        // Where no rule is in force, a file's full path is not needed (it is made only for a
        // failure): one allocation less per file of a tree without `.gitignore`s.
        let ruled = rules.is_some() || self.above.is_some();
        let mut files = Vec::with_capacity(listed.len());
        for (name, is_dir) in listed {
            if self.done() {
                break;
            }
            let path = (ruled || is_dir).then(|| dir.join(&name));
            if let Some(path) = &path
                && self.ignored(rules, path, is_dir)
            {
                continue;
            }
            let rel = child(&rel, &name);
            if is_dir {
                if name != IMAGE_DIR {
                    subdirs.push((path.unwrap_or_else(|| dir.join(&name)), rel));
                }
                continue;
            }
            self.file(&open, &name, rel, &mut files, found);
        }
        drop(open);
        if !files.is_empty() {
            found.parts.push(files);
        }
        if self.done() {
            return;
        }
        self.subdirs(subdirs, rules, found);
    }

    /// `dir`, open, with the entries that may count (directories and `.spry` files, not
    /// hidden; `true` for a directory), and whether it has a `.gitignore`; `None` when it is
    /// gone or cannot be read (a failure).
    fn list<'d>(
        &self,
        dir: &'d Path,
        rel: &Option<String>,
        found: &mut Found,
    ) -> Option<Listed<'d>> {
        let shown = |rel: &Option<String>, path: &Path| match rel {
            Some(rel) if !rel.is_empty() => rel.clone(),
            _ => path.to_string_lossy().into_owned(),
        };
        let open = match Dir::open(dir) {
            Ok(open) => open,
            // Gone since its parent was read: nothing of it is in the tree.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel_is_root(rel) => return None,
            Err(e) => {
                found.unreadable(shown(rel, dir), e);
                return None;
            }
        };
        let mut listed: Vec<(OsString, bool)> = Vec::new();
        let mut has_gitignore = false;
        let listing = open.entries(|name, kind| {
            if IGNORE_FILES.iter().any(|f| name == *f) {
                has_gitignore = true;
            }
            if name.as_encoded_bytes().first() == Some(&b'.') {
                return; // hidden (the image directory among them)
            }
            match kind {
                Ok(Kind::Dir) => listed.push((name.to_os_string(), true)),
                Ok(Kind::File) if is_spry(name) => listed.push((name.to_os_string(), false)),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => found.unreadable(shown(&child(rel, name), &dir.join(name)), e),
            }
        });
        if let Err(e) = listing {
            found.unreadable(shown(rel, dir), e);
        }
        Some((open, listed, has_gitignore))
    }

    /// A `.spry` file the listing found in `open` and no rule ignores: in the tree if it is
    /// in the part.
    fn file(
        &self,
        open: &Dir<'_>,
        name: &OsStr,
        rel: Option<String>,
        files: &mut Vec<WalkedFile>,
        found: &mut Found,
    ) {
        let Some(rel) = rel else {
            found.fail(
                open.path().join(name).to_string_lossy().into_owned(),
                FailureKind::NameNotUtf8,
            );
            return;
        };
        if !self.filter.contains(&rel) {
            return;
        }
        // Not following links (an `lstat` beside the entry).
        match open.stat(name) {
            Ok(stat) => {
                files.push(stat.walked(rel));
                if let Some(seen) = self.first {
                    // In the tree: all `has_files` asks.
                    seen.store(true, Ordering::Relaxed);
                }
            }
            // Gone between the directory read and the stat: it is not in the tree.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => found.unreadable(rel, e),
        }
    }

    /// Walks the subdirectories of one directory: in parallel when there are several.
    fn subdirs(&self, subdirs: Vec<Job>, rules: Option<&Rules>, found: &mut Found) {
        match subdirs.len() {
            0 => {}
            1 => {
                for (dir, rel) in subdirs {
                    self.dir(dir, rel, rules, found);
                }
            }
            _ => {
                let below = subdirs
                    .into_par_iter()
                    .map(|(dir, rel)| {
                        let mut found = Found::default();
                        self.dir(dir, rel, rules, &mut found);
                        found
                    })
                    .reduce(Found::default, Found::merge);
                let mine = std::mem::take(found);
                *found = mine.merge(below);
            }
        }
    }

    /// One listed path of [`walk_paths`]: the file or the directory tree at `rel`.
    fn listed(&self, rel: &str, found: &mut Found) {
        if rel.is_empty() {
            return self.dir(self.root.to_path_buf(), Some(String::new()), None, found);
        }
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || p.starts_with('.')) {
            return; // hidden (the image directory among them), or not a plain relative path
        }
        // The rules in force in each directory from the root down to the path's parent, each
        // directory on the way checked as the walk would check it.
        let mut chain: Vec<Gitignore> = Vec::new();
        let mut dir = self.root.to_path_buf();
        for (depth, part) in parts.iter().enumerate() {
            if has_ignore_file(&dir) {
                let (gitignore, errors) = read_rules(&dir);
                for (file, error) in errors {
                    let shown = match parts.get(..depth) {
                        Some(up) if !up.is_empty() => format!("{}/{file}", up.join("/")),
                        _ => file.to_string(),
                    };
                    found.bad_gitignore(shown, error);
                }
                chain.push(gitignore);
            }
            dir.push(part);
            let is_last = depth + 1 == parts.len();
            let meta = match std::fs::symlink_metadata(&dir) {
                Ok(meta) => meta,
                // Not there: nothing of it is in the tree.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) => {
                    let shown = parts.get(..=depth).map_or(rel.to_string(), |p| p.join("/"));
                    return found.unreadable(shown, e);
                }
            };
            let file_type = meta.file_type();
            if !is_last {
                if !file_type.is_dir() || self.ignored_by(&chain, &dir, true) {
                    return;
                }
                continue;
            }
            if file_type.is_dir() {
                if *part == IMAGE_DIR || self.ignored_by(&chain, &dir, true) {
                    return;
                }
                let rel = Some(rel.to_string());
                let dir = std::mem::take(&mut dir);
                let mut chain = chain.into_iter();
                return nest(&mut chain, None, &mut |rules| {
                    self.dir(dir.clone(), rel.clone(), rules, found)
                });
            }
            if !file_type.is_file()
                || !is_spry(OsStr::new(part))
                || self.ignored_by(&chain, &dir, false)
                || !self.filter.contains(rel)
            {
                return;
            }
            found
                .parts
                .push(vec![WalkedFile::from_metadata(rel.to_string(), &meta)]);
        }
    }

    /// [`Self::ignored`] for rules given root first.
    fn ignored_by(&self, chain: &[Gitignore], path: &Path, is_dir: bool) -> bool {
        for gitignore in chain.iter().rev() {
            match gitignore.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        self.ignored_above(path, is_dir)
    }

    /// The rules of `dir`'s `.gitignore` and `.spryignore`; a file that cannot be read or a
    /// bad line is a failure (the rest of the file still counts).
    fn gitignore(&self, dir: &Path, rel: &Option<String>, found: &mut Found) -> Gitignore {
        let (gitignore, errors) = read_rules(dir);
        for (file, error) in errors {
            let shown = match rel {
                Some(rel) if !rel.is_empty() => format!("{rel}/{file}"),
                Some(_) => file.to_string(),
                None => dir.join(file).to_string_lossy().into_owned(),
            };
            found.bad_gitignore(shown, error);
        }
        gitignore
    }

    /// Whether `path` (under the root) is ignored: the deepest rule that matches decides.
    fn ignored(&self, rules: Option<&Rules>, path: &Path, is_dir: bool) -> bool {
        let mut rules = rules;
        while let Some(r) = rules {
            match r.gitignore.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => rules = r.up,
            }
        }
        self.ignored_above(path, is_dir)
    }

    /// Whether `path` is ignored by the rules of the directories above the root.
    fn ignored_above(&self, path: &Path, is_dir: bool) -> bool {
        if let Some((canonical, above)) = &self.above {
            let Ok(rel) = path.strip_prefix(self.root) else {
                return false;
            };
            let path = canonical.join(rel);
            for gitignore in above {
                match gitignore.matched(&path, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
        }
        false
    }
}

/// The `.gitignore` rules of the directories above `root` (nearest first, only those that
/// have any), with the root's canonical path; failures to read them are reported.
fn rules_above(root: &Path) -> (Option<(PathBuf, Vec<Gitignore>)>, Found) {
    let mut found = Found::default();
    let Ok(canonical) = root.canonicalize() else {
        return (None, found);
    };
    let mut above = Vec::new();
    for dir in canonical.ancestors().skip(1) {
        if !has_ignore_file(dir) {
            continue;
        }
        let (gitignore, errors) = read_rules(dir);
        for (file, error) in errors {
            found.bad_gitignore(dir.join(file).to_string_lossy().into_owned(), error);
        }
        if !gitignore.is_empty() {
            above.push(gitignore);
        }
    }
    let above = (!above.is_empty()).then_some((canonical, above));
    (above, found)
}

/// The files whose rules say what a directory leaves out, in gitignore syntax: git's, and
/// the image's own (as ripgrep reads `.ignore`: in a git checkout or not, and taking
/// precedence over `.gitignore` in the same directory).
pub const IGNORE_FILES: [&str; 2] = [".gitignore", ".spryignore"];

/// Whether `dir` holds a `.gitignore` or a `.spryignore`.
fn has_ignore_file(dir: &Path) -> bool {
    IGNORE_FILES
        .iter()
        .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok())
}

/// The rules of `dir`'s `.gitignore` and `.spryignore` (the latter's later, so they win where
/// both match), and what went wrong reading each.
fn read_rules(dir: &Path) -> (Gitignore, Vec<(&'static str, ignore::Error)>) {
    let mut builder = GitignoreBuilder::new(dir);
    let mut errors = Vec::new();
    for file in IGNORE_FILES {
        let path = dir.join(file);
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        if let Some(error) = builder.add(&path) {
            errors.push((file, error));
        }
    }
    match builder.build() {
        Ok(gitignore) => (gitignore, errors),
        Err(e) => {
            if errors.is_empty() {
                errors.push((IGNORE_FILES[0], e));
            }
            (Gitignore::empty(), errors)
        }
    }
}

/// Calls `f` with the rules `rest` (root first) linked below `up`.
fn nest(
    rest: &mut std::vec::IntoIter<Gitignore>,
    up: Option<&Rules>,
    f: &mut dyn FnMut(Option<&Rules>),
) {
    match rest.next() {
        None => f(up),
        Some(gitignore) => {
            let own = Rules { gitignore, up };
            nest(rest, Some(&own), f);
        }
    }
}

fn rel_is_root(rel: &Option<String>) -> bool {
    rel.as_deref() == Some("")
}

/// The relative path of `name` in the directory at `rel` (`None` if either is not UTF-8).
fn child(rel: &Option<String>, name: &OsStr) -> Option<String> {
    let rel = rel.as_deref()?;
    let name = name.to_str()?;
    // Pushed, not formatted: this runs once per entry of the tree.
    let mut out = String::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        out.push_str(rel);
        out.push('/');
    }
    out.push_str(name);
    Some(out)
}

fn is_spry(name: &OsStr) -> bool {
    name.to_str().is_some_and(crate::tree_path::is_source_path)
}

#[cfg(test)]
mod tests {
    /// `fixtures/walk`: a tree in, the files the walk finds and its failures out
    /// (`crate::fixtures`).
    #[test]
    fn walk_fixtures() {
        crate::fixtures::check("walk");
    }
}
