//! Building an image from a source tree: walk, read what changed, parse in parallel, store in
//! one transaction.
//!
//! Unchanged files are skipped by size and modification time, and confirmed by hash where the
//! time cannot be trusted (a file modified within the file system's time granularity of the
//! moment it was last read). A file that does not parse leaves its module as it was.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::{Conflict, Hash, IMAGE_DIR, Image, ModuleChange, Origin, PathRecord};
use crate::syntax::{SourceUnit, SyntaxError};

/// How to build.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Globs (over paths relative to the root) to add to the part of the tree the image holds.
    pub only: Vec<String>,
    /// Make the image hold the whole tree again.
    pub all: bool,
}

/// Told how far a build has come (the command line shows a bar; the library shows nothing).
pub trait Progress: Sync {
    /// `total` files will be read.
    fn start(&self, total: u64);
    /// `n` more files were read.
    fn advance(&self, n: u64);
}

/// A progress sink that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64) {}
    fn advance(&self, _n: u64) {}
}

/// A file the build could not take.
#[derive(Clone, Debug, Serialize)]
pub struct FileFailure {
    /// Path relative to the root.
    pub path: String,
    /// The text read (empty when it could not be read).
    #[serde(skip)]
    pub text: Vec<u8>,
    /// Syntax errors (empty for an I/O failure or a module claimed twice).
    #[serde(skip)]
    pub errors: Vec<SyntaxError>,
    /// A sentence for failures that are not syntax errors.
    pub message: Option<String>,
}

/// A module that moved to another file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Move {
    /// The module.
    pub module: String,
    /// Its old file.
    pub from: String,
    /// Its new file.
    pub to: String,
}

/// What a build did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BuildReport {
    /// The generation committed, if anything changed.
    pub generation: Option<u64>,
    /// Modules new in the image.
    pub added: Vec<String>,
    /// Modules whose text changed.
    pub changed: Vec<String>,
    /// Modules gone from the image.
    pub removed: Vec<String>,
    /// Modules now in another file.
    pub moved: Vec<Move>,
    /// How many modules were unchanged.
    pub unchanged: usize,
    /// How many `.spry` files the tree (or its part) holds.
    pub files: usize,
    /// How many files were read (the others were skipped by stamp).
    pub read: usize,
    /// Files that could not be taken.
    pub failed: Vec<FileFailure>,
    /// Definitions changed on both sides: the image kept its text.
    #[serde(skip)]
    pub conflicts: Vec<Conflict>,
    /// The part of the tree the image holds (empty: all).
    pub part: Vec<String>,
}

impl BuildReport {
    /// Whether every file was taken.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Builds (or brings up to date) `image` from the tree at `root`.
///
/// # Examples
/// ```
/// use spry_image::{build, image::Image};
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.spry"), "{_meta = {name = 'A} x = 1}\n")?;
/// let mut image = Image::create(&dir.path().join(".spry-image"), dir.path())?;
/// let report = build::build(&mut image, dir.path(), &Default::default(), &build::NoProgress)?;
/// assert_eq!(report.added, ["A"]);
/// assert_eq!(image.definition_text("A", "x")?, b"x = 1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// Failures of the image or of the walk itself (not of single files: those are in the
/// report, and the rest of the build goes on).
pub fn build(
    image: &mut Image,
    root: &Path,
    options: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildReport> {
    let part = if options.all {
        Vec::new()
    } else {
        let mut part = image.record().part.clone();
        for glob in &options.only {
            if !part.contains(glob) {
                part.push(glob.clone());
            }
        }
        part
    };
    let filter = PartFilter::new(&part)?;
    if part != image.record().part {
        image.set_part(part.clone())?;
    }
    let mut report = BuildReport {
        part: part.clone(),
        ..BuildReport::default()
    };

    let files = walk(root, &filter, &mut report.failed)?;
    report.files = files.len();
    let known = image.paths()?;

    // Decide which files must be read.
    let (to_read, unchanged): (Vec<&WalkedFile>, Vec<&WalkedFile>) =
        files.iter().partition(|f| match known.get(&f.path) {
            Some(stamp) => !stamp_matches(stamp, f),
            None => true,
        });
    progress.start(to_read.len() as u64);
    let outcomes: Vec<(usize, Outcome)> = to_read
        .par_iter()
        .enumerate()
        .map(|(i, file)| {
            let outcome = read_file(root, file, known.get(&file.path));
            progress.advance(1);
            (i, outcome)
        })
        .collect();
    report.read = outcomes.len();

    // Who claims which module.
    let mut claims: HashMap<String, Vec<String>> = HashMap::new();
    let mut units: HashMap<String, (SourceUnit, PathRecord)> = HashMap::new();
    let mut stamps: Vec<(String, PathRecord)> = Vec::new();
    let mut keep_paths: HashSet<String> = HashSet::new();
    for file in &unchanged {
        if let Some(stamp) = known.get(&file.path) {
            claims
                .entry(stamp.module.clone())
                .or_default()
                .push(file.path.clone());
            keep_paths.insert(file.path.clone());
        }
    }
    for (i, outcome) in outcomes {
        let path = to_read[i].path.clone();
        match outcome {
            Outcome::Same(stamp) => {
                claims
                    .entry(stamp.module.clone())
                    .or_default()
                    .push(path.clone());
                keep_paths.insert(path.clone());
                stamps.push((path, stamp));
            }
            Outcome::Parsed(unit, stamp) => {
                claims
                    .entry(unit.name().to_string())
                    .or_default()
                    .push(path.clone());
                keep_paths.insert(path.clone());
                units.insert(path, (unit, stamp));
            }
            Outcome::Failed(failure) => {
                // The module keeps its last good version: the file still claims it.
                if let Some(stamp) = known.get(&path) {
                    claims
                        .entry(stamp.module.clone())
                        .or_default()
                        .push(path.clone());
                    keep_paths.insert(path.clone());
                }
                report.failed.push(failure);
            }
            Outcome::Vanished => {}
        }
    }

    let mut tx = image.begin(Origin::File);
    let mut claimed: HashSet<String> = HashSet::new();
    let mut names: Vec<&String> = claims.keys().collect();
    names.sort();
    for name in names {
        let mut paths = claims[name].clone();
        paths.sort();
        let holder = tx.module(name)?.map(|m| m.path);
        let winner = holder
            .filter(|h| paths.contains(h))
            .unwrap_or_else(|| paths[0].clone());
        claimed.insert(name.clone());
        for loser in paths.iter().filter(|p| **p != winner) {
            report.failed.push(FileFailure {
                path: loser.clone(),
                text: Vec::new(),
                errors: Vec::new(),
                message: Some(format!(
                    "module `{name}` is defined in both `{winner}` and `{loser}`; `{winner}` keeps it"
                )),
            });
            units.remove(loser);
            keep_paths.remove(loser);
        }
        if let Some((unit, stamp)) = units.get(&winner) {
            tx.put_unit(unit, &winner)?;
            tx.put_path(&winner, stamp);
        }
    }
    for (path, stamp) in &stamps {
        if keep_paths.contains(path) {
            tx.put_path(path, stamp);
        }
    }
    // Modules whose files left the tree (within the part) leave the image.
    for (name, module) in image.modules()? {
        if !claimed.contains(&name) && filter.contains(&module.path) {
            tx.remove_module(&name)?;
        }
    }
    for path in known.keys() {
        if filter.contains(path) && !keep_paths.contains(path) {
            tx.remove_path(path);
        }
    }
    for change in tx.changes() {
        match change.change {
            ModuleChange::Added => report.added.push(change.module.clone()),
            ModuleChange::Changed => report.changed.push(change.module.clone()),
            ModuleChange::Removed => report.removed.push(change.module.clone()),
            ModuleChange::Moved => report.moved.push(Move {
                module: change.module.clone(),
                from: change.from_path.clone().unwrap_or_default(),
                to: change.path.clone(),
            }),
        }
    }
    report.conflicts = tx.conflicts().to_vec();
    let touched = report.added.len() + report.changed.len() + report.moved.len();
    report.unchanged = claimed.len().saturating_sub(touched);
    report.generation = tx.commit(true)?;
    if report.generation.is_some() {
        image.settle()?;
    }
    report.added.sort();
    report.changed.sort();
    report.removed.sort();
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// The part of a tree an image holds.
#[derive(Clone, Debug)]
pub struct PartFilter {
    globs: Option<GlobSet>,
}

impl PartFilter {
    /// A filter for `part` (globs over relative paths; empty: everything).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a glob that does not parse.
    pub fn new(part: &[String]) -> Result<PartFilter> {
        if part.is_empty() {
            return Ok(PartFilter { globs: None });
        }
        let mut builder = GlobSetBuilder::new();
        for glob in part {
            builder
                .add(Glob::new(glob).map_err(|e| Error::Invalid(format!("--only `{glob}`: {e}")))?);
        }
        let globs = builder
            .build()
            .map_err(|e| Error::Invalid(format!("--only: {e}")))?;
        Ok(PartFilter { globs: Some(globs) })
    }

    /// Whether the relative path lies in the part.
    pub fn contains(&self, path: &str) -> bool {
        self.globs.as_ref().is_none_or(|g| g.is_match(path))
    }
}

/// A `.spry` file found by the walk.
#[derive(Clone, Debug)]
pub struct WalkedFile {
    /// Relative to the root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

/// The `.spry` files of the tree at `root` within `filter`: skipping what `.gitignore` ignores
/// (in a git checkout or not), hidden files, the image directory, and links (never followed).
/// Paths that cannot be used are added to `failed`.
///
/// # Errors
/// The root itself cannot be read.
pub fn walk(
    root: &Path,
    filter: &PartFilter,
    failed: &mut Vec<FileFailure>,
) -> Result<Vec<WalkedFile>> {
    std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    let mut files = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| entry.file_name() != IMAGE_DIR)
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                failed.push(FileFailure {
                    path: walk_error_path(&e, root),
                    text: Vec::new(),
                    errors: Vec::new(),
                    message: Some(e.to_string()),
                });
                continue;
            }
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        if entry.path().extension().is_none_or(|e| e != "spry") {
            continue;
        }
        let Some(path) = relative(root, entry.path()) else {
            failed.push(FileFailure {
                path: entry.path().to_string_lossy().into_owned(),
                text: Vec::new(),
                errors: Vec::new(),
                message: Some("the file name is not UTF-8".to_string()),
            });
            continue;
        };
        if !filter.contains(&path) {
            continue;
        }
        match entry.metadata() {
            Ok(meta) => files.push(WalkedFile {
                path,
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
            }),
            // Gone between the directory read and the stat: it is not in the tree.
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) => {}
            Err(e) => failed.push(FileFailure {
                path,
                text: Vec::new(),
                errors: Vec::new(),
                message: Some(e.to_string()),
            }),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk_error_path(error: &ignore::Error, root: &Path) -> String {
    fn find(error: &ignore::Error) -> Option<&Path> {
        match error {
            ignore::Error::WithPath { path, .. } => Some(path),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                find(err)
            }
            ignore::Error::Loop { child, .. } => Some(child),
            _ => None,
        }
    }
    find(error)
        .and_then(|p| relative(root, p))
        .unwrap_or_else(|| root.display().to_string())
}

/// `path` relative to `root`, `/`-separated; `None` if not UTF-8 or not under the root.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128)
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// File systems keep times at a granularity of up to two seconds: a file modified that close to
/// when it was stamped may change again without its time changing.
const RACY_NS: i128 = 2_000_000_000;

fn stamp_matches(stamp: &PathRecord, file: &WalkedFile) -> bool {
    stamp.size == file.size
        && stamp.mtime_ns == file.mtime_ns
        && file.mtime_ns < stamp.stamped_ns - RACY_NS
}

enum Outcome {
    /// Same bytes as last time: only the stamp is new.
    Same(PathRecord),
    Parsed(SourceUnit, PathRecord),
    Failed(FileFailure),
    Vanished,
}

fn read_file(root: &Path, file: &WalkedFile, known: Option<&PathRecord>) -> Outcome {
    let full: PathBuf = root.join(&file.path);
    let stamped_ns = now_ns();
    let text = match std::fs::read(&full) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Vanished,
        Err(e) => {
            return Outcome::Failed(FileFailure {
                path: file.path.clone(),
                text: Vec::new(),
                errors: Vec::new(),
                message: Some(format!("cannot read: {e}")),
            });
        }
    };
    let hash = Hash::of(&text).to_hex();
    let stamp = |module: &str| PathRecord {
        module: module.to_string(),
        size: text.len() as u64,
        mtime_ns: file.mtime_ns,
        hash: hash.clone(),
        stamped_ns,
    };
    if let Some(known) = known
        && known.hash == hash
    {
        return Outcome::Same(stamp(&known.module));
    }
    let script_name = file.path.strip_suffix(".spry").unwrap_or(&file.path);
    match SourceUnit::parse(text.clone(), script_name) {
        Ok(unit) => {
            let record = stamp(unit.name());
            Outcome::Parsed(unit, record)
        }
        Err(e) => Outcome::Failed(FileFailure {
            path: file.path.clone(),
            text: e.text,
            errors: e.errors,
            message: None,
        }),
    }
}
