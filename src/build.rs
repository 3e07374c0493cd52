//! Building an image from a source tree: walk, read what changed, parse in parallel, store in
//! one transaction.
//!
//! Unchanged files are skipped by size and modification time, and confirmed by hash where the
//! time cannot be trusted (a file modified within the file system's time granularity of the
//! moment it was last read). A file that does not parse leaves its module as it was.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::{Conflict, Hash, Image, ModuleChange, Origin, PathRecord, PreparedUnit};
pub use crate::source::{DEFAULT_MAX_FILE_SIZE, FailureKind, FileFailure, PartFilter, WalkedFile};
use crate::source::{Unit, now_ns, read_unit, stamp_matches};
use crate::store::{Table, try_visit};
pub use crate::walk::{narrow, relative, walk, walk_paths};

/// How to build.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Globs (over paths relative to the root) to add to the part of the tree the image holds.
    pub only: Vec<String>,
    /// Make the image hold the whole tree again.
    pub all: bool,
    /// Look only at these paths (relative to the root, `/`-separated; files or directories)
    /// instead of walking the whole tree: a listed file is read if its stamp changed, a listed
    /// directory is walked, and a listed path (or a file known under a listed directory) that
    /// is no longer there is a file removed. `None`: the whole tree. A watcher passes the
    /// paths its events named.
    pub paths: Option<Vec<String>>,
    /// Files larger than this many bytes are not read: each is reported as a failure that
    /// names its size and the limit, and its module keeps its last version. `None`:
    /// [`DEFAULT_MAX_FILE_SIZE`].
    pub max_file_size: Option<u64>,
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
    // The part the image holds afterwards, and the files this build reads. `--only` on an
    // empty or partial image adds to its part; on a whole image it only narrows this build
    // (the image stays whole: nothing it holds is frozen outside a part).
    let whole_and_full = image.record().part.is_empty() && image.generation()? > 0;
    let (part, scope) = if options.all {
        (Vec::new(), Vec::new())
    } else if whole_and_full {
        (Vec::new(), options.only.clone())
    } else {
        let mut part = image.record().part.clone();
        for glob in &options.only {
            if !part.contains(glob) {
                part.push(glob.clone());
            }
        }
        (part.clone(), part)
    };
    let filter = PartFilter::new(&scope)?;
    if part != image.record().part {
        image.set_part(part.clone())?;
    }
    let mut report = BuildReport {
        part: part.clone(),
        ..BuildReport::default()
    };

    let trace = std::env::var_os("SPRY_IMAGE_TRACE").is_some();
    let t0 = std::time::Instant::now();
    let lap = |what: &str| {
        if trace {
            eprintln!("trace: {what}: {:?}", t0.elapsed());
        }
    };
    // Only these paths (narrowed: no path below another), or the whole tree.
    let targeted: Option<Vec<String>> = options.paths.as_deref().map(narrow);
    // The walk and the stamps are independent: read both at once.
    let (files, known) = std::thread::scope(|scope| {
        let stamps = scope.spawn(|| {
            let stamps = match &targeted {
                None => image.paths(),
                Some(paths) => stamps_under(image, paths),
            };
            lap("stamps");
            stamps
        });
        let files = match &targeted {
            None => walk(root, &filter, &mut report.failed),
            Some(paths) => walk_paths(root, &filter, paths, &mut report.failed),
        };
        lap("walk");
        let known = stamps
            .join()
            .unwrap_or_else(|p| Err(Error::panicked("reading the file stamps", &*p)));
        (files, known)
    });
    let (files, mut known) = (files?, known?);
    // What the walk could not look at (a directory or a file it could not read) is not gone:
    // the files known there keep their modules, as a file that does not parse does.
    let unseen: Vec<String> = report.failed.iter().map(|f| f.path.clone()).collect();
    lap("walk and stamps");
    report.files = files.len();

    // Decide which files must be read.
    let (to_read, unchanged): (Vec<&WalkedFile>, Vec<&WalkedFile>) =
        files.iter().partition(|f| match known.get(&f.path) {
            Some(stamp) => !stamp_matches(stamp, f),
            None => true,
        });
    // Nothing to read, nothing unreadable, and every file known in this build's scope still
    // there: no module can be read anew, claimed twice or left without its file.
    if to_read.is_empty()
        && report.failed.is_empty()
        && known.keys().filter(|p| filter.contains(p)).count() == files.len()
    {
        let modules: HashSet<&str> = unchanged
            .iter()
            .filter_map(|f| known.get(&f.path).map(|s| s.module.as_str()))
            .collect();
        report.unchanged = modules.len();
        lap("nothing changed");
        return Ok(report);
    }
    let max_file_size = options.max_file_size.unwrap_or(DEFAULT_MAX_FILE_SIZE);
    progress.start(to_read.len() as u64);
    let outcomes: Vec<(usize, Outcome)> = to_read
        .par_iter()
        .enumerate()
        .map(|(i, file)| {
            let outcome = read_file(root, file, known.get(&file.path), max_file_size);
            progress.advance(1);
            (i, outcome)
        })
        .collect();
    report.read = outcomes.len();
    lap("read+parse");
    let mut outcomes = outcomes;
    // Many new texts: write them into the store on another thread while this one works out
    // the records. They are content-addressed, so they are harmless if the build stops before
    // its commit (texts nothing refers to).
    let new_texts: usize = outcomes
        .iter()
        .map(|(_, o)| match o {
            Outcome::Parsed(unit, _) => unit.text_count(),
            _ => 0,
        })
        .sum();
    let texts: Vec<(Hash, Vec<u8>)> = if new_texts >= BACKGROUND_TEXTS_MIN {
        outcomes
            .iter_mut()
            .flat_map(|(_, o)| match o {
                Outcome::Parsed(unit, _) => unit.take_texts(),
                _ => Vec::new(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let image: &Image = image;
    std::thread::scope(|scope| -> Result<()> {
        let loading = (!texts.is_empty()).then(|| scope.spawn(move || image.store_texts(texts)));

        // Who claims which module.
        let mut claims: HashMap<String, Vec<String>> = HashMap::default();
        let mut units: HashMap<String, (PreparedUnit, PathRecord)> = HashMap::default();
        let mut stamps: Vec<(String, PathRecord)> = Vec::new();
        let mut keep_paths: HashSet<String> = HashSet::default();
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
        if !unseen.is_empty() {
            for (path, stamp) in &known {
                let below = |dir: &String| {
                    path == dir
                        || path
                            .strip_prefix(dir.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                };
                if !keep_paths.contains(path) && unseen.iter().any(below) {
                    claims
                        .entry(stamp.module.clone())
                        .or_default()
                        .push(path.clone());
                    keep_paths.insert(path.clone());
                }
            }
        }
        if targeted.is_some() {
            claim_unlisted(
                image,
                root,
                &mut claims,
                &units,
                &mut known,
                &mut keep_paths,
            )?;
        }

        let mut tx = image.begin(Origin::File)?;
        // Only names read anew or claimed twice need a decision; in name order, so that the
        // log lists modules in a stable order.
        let mut names: Vec<&String> = claims
            .iter()
            .filter(|(_, paths)| paths.len() > 1 || paths.iter().any(|p| units.contains_key(p)))
            .map(|(name, _)| name)
            .collect();
        names.sort();
        for name in names {
            let mut paths = claims[name].clone();
            paths.sort();
            let winner = if paths.len() == 1 {
                paths[0].clone()
            } else {
                // Claimed twice: the file the image already has it from keeps it.
                let holder = tx.module(name)?.map(|m| m.path);
                holder
                    .filter(|h| paths.contains(h))
                    .unwrap_or_else(|| paths[0].clone())
            };
            for loser in paths.iter().filter(|p| **p != winner) {
                report.failed.push(FileFailure::new(
                    loser,
                    FailureKind::ClaimedTwice {
                        module: name.clone(),
                        holder: winner.clone(),
                        path: loser.clone(),
                    },
                ));
                units.remove(loser);
                keep_paths.remove(loser);
            }
            if let Some((unit, stamp)) = units.remove(&winner) {
                tx.put_unit(unit, &winner)?;
                tx.put_path(&winner, &stamp);
            }
        }
        lap("stage modules");
        for (path, stamp) in &stamps {
            if keep_paths.contains(path) {
                tx.put_path(path, stamp);
            }
        }
        // Modules whose files left the tree (within the part) leave the image. Only modules read
        // from files can leave this way: one made in the image and not yet exported has no file.
        // A file still in the tree that now holds another module gives up its old one too.
        for (path, stamp) in &known {
            if !filter.contains(path) {
                continue;
            }
            if !keep_paths.contains(path) {
                tx.remove_path(path);
            }
            if !claims.contains_key(&stamp.module) {
                let holder = tx.module(&stamp.module)?.map(|m| m.path);
                if holder.as_deref() == Some(path.as_str()) {
                    tx.remove_module(&stamp.module)?;
                }
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
                ModuleChange::Exported => {}
            }
        }
        report.conflicts = tx.conflicts().to_vec();
        let touched = report.added.len() + report.changed.len() + report.moved.len();
        report.unchanged = claims.len().saturating_sub(touched);
        lap("stage removals");
        if let Some(loading) = loading {
            loading
                .join()
                .map_err(|p| Error::panicked("writing texts", &*p))??;
        }
        lap("texts written");
        report.generation = tx.commit()?;
        lap("commit");
        Ok(())
    })?;
    report.added.sort();
    report.changed.sort();
    report.removed.sort();
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// A targeted build sees only the files it lists. A module read anew from one of them may be
/// held by a file it does not list: if that file is still there and still holds it, the module
/// is claimed twice (the holder keeps it); if it is gone, its stamp goes and the module moves.
fn claim_unlisted(
    image: &Image,
    root: &Path,
    claims: &mut HashMap<String, Vec<String>>,
    units: &HashMap<String, (PreparedUnit, PathRecord)>,
    known: &mut Stamps,
    keep_paths: &mut HashSet<String>,
) -> Result<()> {
    let mut read: Vec<&str> = units.values().map(|(u, _)| u.name()).collect();
    read.sort();
    read.dedup();
    for name in read {
        let Some(holder) = image.module(name)?.map(|m| m.path) else {
            continue;
        };
        let claimed = claims.get(name);
        if claimed.is_some_and(|c| c.contains(&holder)) || known.contains_key(&holder) {
            continue; // the build sees the holder itself
        }
        // A module made in the image and never exported has no file to hold it.
        let Some(stamp) = stamp_of(image, &holder)? else {
            continue;
        };
        if stamp.module != name {
            continue;
        }
        if std::fs::symlink_metadata(root.join(&holder)).is_ok() {
            claims
                .entry(name.to_string())
                .or_default()
                .push(holder.clone());
            keep_paths.insert(holder);
        } else {
            known.insert(holder, stamp);
        }
    }
    Ok(())
}

/// The stamps of the files at or below `paths` (as [`narrow`] leaves them).
fn stamps_under(image: &Image, paths: &[String]) -> Result<Stamps> {
    if paths.iter().any(String::is_empty) {
        return image.paths();
    }
    let store = image.store();
    let mut out = Stamps::default();
    for path in paths {
        if let Some(stamp) = stamp_of(image, path)? {
            out.insert(path.clone(), stamp);
        }
        let prefix = format!("{path}/");
        try_visit(store, Table::Paths, prefix.as_bytes(), |k, v| {
            out.insert(
                String::from_utf8_lossy(k).into_owned(),
                PathRecord::decode(v)?,
            );
            Ok(())
        })?;
    }
    Ok(out)
}

/// File stamps by relative path, as [`Image::paths`] gives them.
type Stamps = HashMap<String, PathRecord>;

/// The stamp of one file, by a point read.
fn stamp_of(image: &Image, path: &str) -> Result<Option<PathRecord>> {
    image
        .store()
        .get(Table::Paths, path.as_bytes())?
        .map(|v| PathRecord::decode(&v))
        .transpose()
}

/// From this many new texts on, a build writes them on a second thread.
const BACKGROUND_TEXTS_MIN: usize = 4096;

enum Outcome {
    /// Same bytes as last time: only the stamp is new.
    Same(PathRecord),
    /// Parsed, its texts hashed and compressed (the parallel part of the work).
    Parsed(PreparedUnit, PathRecord),
    Failed(FileFailure),
    Vanished,
}

fn read_file(
    root: &Path,
    file: &WalkedFile,
    known: Option<&PathRecord>,
    max_file_size: u64,
) -> Outcome {
    let stamped_ns = now_ns();
    // The size the walk saw decides first: a file over the limit is not even opened.
    if file.size > max_file_size {
        return Outcome::Failed(FileFailure::new(
            &file.path,
            FailureKind::TooLarge {
                size: file.size,
                limit: max_file_size,
            },
        ));
    }
    let stamp = |module: &str, size: u64, hash: Hash| PathRecord {
        module: module.to_string(),
        size,
        mtime_ns: file.mtime_ns,
        hash,
        stamped_ns,
    };
    let script_name = file.path.strip_suffix(".spry").unwrap_or(&file.path);
    match read_unit(
        root,
        &file.path,
        script_name,
        max_file_size,
        known.map(|k| k.hash),
    ) {
        Unit::Gone => Outcome::Vanished,
        Unit::Failed(failure) => Outcome::Failed(failure),
        Unit::Same { size } => match known {
            Some(known) => Outcome::Same(stamp(&known.module, size, known.hash)),
            None => Outcome::Vanished, // `Same` only answers a known hash
        },
        Unit::Parsed { unit, hash } => {
            let record = stamp(unit.name(), unit.text().len() as u64, hash);
            Outcome::Parsed(PreparedUnit::new(&unit), record)
        }
    }
}
