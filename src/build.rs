//! Building an image from a source tree: walk, read what changed, parse in parallel, store in
//! one transaction.
//!
//! Unchanged files are skipped by size and modification time, and confirmed by hash where the
//! time cannot be trusted (a file modified within the file system's time granularity of the
//! moment it was last read). A file that does not parse leaves its module as it was.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image::{
    Conflict, Hash, Image, LOAD_MIN_KEYS, ModuleChange, Origin, PathRecord, Prepared, PreparedUnit,
    SavedUnit, Transaction,
};
use crate::source::{FailureKind, FileFailure, PartFilter, WalkedFile, default_read_limit};
use crate::source::{Unit, now_ns, parse_unit, read_text, stamp_matches};
use crate::store::{Bytes, Table, try_visit};
use crate::syntax::SourceUnit;
use crate::walk::{Prewalk, narrow, walk, walk_paths};

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
    /// [`default_read_limit`](crate::default_read_limit) for each file (the default, or twice
    /// what the image last read of it).
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// The module.
    pub module: String,
    /// Its old file.
    pub from: String,
    /// Its new file.
    pub to: String,
}

/// What a build did.
#[derive(Clone, Debug, Default)]
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
/// use spry_image::{NoProgress, build, image::Image};
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.spry"), "{_meta = {name = 'A} x = 1}\n")?;
/// let mut image = Image::create(&dir.path().join(".spry-image"), dir.path())?;
/// let report = build(&mut image, dir.path(), &Default::default(), &NoProgress)?;
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
    build_after(image, root, options, progress, None)
}

/// [`build`], with the tree at `root` walked already by `prewalk` (started before the image
/// was opened, so that the walk and fjall's open overlap): the walk is used if it agrees with
/// every stamp (nothing changed), else the tree is walked again now that the image is held.
///
/// # Errors
/// As [`build`].
pub fn build_prewalked(
    image: &mut Image,
    root: &Path,
    options: &BuildOptions,
    progress: &dyn Progress,
    prewalk: Prewalk,
) -> Result<BuildReport> {
    build_after(image, root, options, progress, Some(prewalk))
}

/// The first build of a new image: `create` makes the image on another thread while this one
/// walks the tree and reads and parses its first files (up to [`PREREAD_BYTES`] of them).
/// fjall makes each of the image's tables durable on its own as it makes them (some 170
/// `fsync`s, whatever the size of the tree): on a tree of small files that was most of a first
/// build. If `create` opens an image that is not empty after all (made since), it is built
/// as [`build`] builds, and what was read ahead is read again.
///
/// # Errors
/// As [`build`], and `create`'s error.
pub fn build_new<I>(
    create: impl FnOnce() -> Result<I> + Send,
    root: &Path,
    options: &BuildOptions,
    progress: &dyn Progress,
) -> Result<(I, BuildReport)>
where
    I: std::ops::DerefMut<Target = Image> + Send,
{
    std::thread::scope(|scope| {
        let creating = scope.spawn(create);
        let ahead = read_ahead(root, options, progress, || creating.is_finished());
        let mut image = creating
            .join()
            .unwrap_or_else(|p| Err(Error::panicked("making the image", &*p)))?;
        let Some((files, failed, preread)) = ahead? else {
            let report = build(&mut image, root, options, progress)?;
            return Ok((image, report));
        };
        let empty =
            image.generation()? == 0 && image.record().part.is_empty() && image.paths()?.is_empty();
        if !empty {
            let report = build(&mut image, root, options, progress)?;
            return Ok((image, report));
        }
        let mut build = Build::scope(&mut image, root, options)?;
        build.report.failed = failed;
        build.report.files = files.len();
        build.trace.lap("walk and read ahead");
        let to_read: Vec<&WalkedFile> = files.iter().collect();
        let report = build.first_fill(&image, &to_read, preread, progress)?;
        Ok((image, report))
    })
}

/// What [`build_new`] reads while the image is made: the tree's files as a first build of an
/// empty image sees them, what the walk could not look at, and the outcomes of the first
/// batches, read until `ready` or [`PREREAD_BYTES`]. `None` where a build of an empty image
/// would not read the whole tree (`paths` given).
#[allow(clippy::type_complexity)]
fn read_ahead(
    root: &Path,
    options: &BuildOptions,
    progress: &dyn Progress,
    ready: impl Fn() -> bool,
) -> Result<Option<(Vec<WalkedFile>, Vec<FileFailure>, Vec<Vec<Outcome>>)>> {
    if options.paths.is_some() {
        return Ok(None);
    }
    // What `Build::scope` decides for an image with no part and nothing built.
    let (_, scope) = part_and_scope(&[], false, options);
    let filter = PartFilter::new(&scope)?;
    let mut failed = Vec::new();
    let files = walk(root, &filter, &mut failed)?;
    let to_read: Vec<&WalkedFile> = files.iter().collect();
    progress.start(to_read.len() as u64);
    let mut preread = Vec::new();
    let mut bytes = 0;
    for batch in batches(&to_read, BATCH_FILES) {
        if ready() || bytes >= PREREAD_BYTES {
            break;
        }
        bytes += batch.iter().map(|f| f.size).sum::<u64>();
        preread.push(read_files(
            root,
            options.max_file_size,
            batch,
            None,
            progress,
        ));
    }
    Ok(Some((files, failed, preread)))
}

/// The part an image records after a build with `options` (`recorded` the part it held;
/// `whole_and_full` when it holds the whole tree, built), and the globs of the files that
/// build looks at: `--all` makes the image whole; `--only` on a whole image looks at those
/// files without making it partial; otherwise `--only` adds to the part.
fn part_and_scope(
    recorded: &[String],
    whole_and_full: bool,
    options: &BuildOptions,
) -> (Vec<String>, Vec<String>) {
    if options.all {
        return (Vec::new(), Vec::new());
    }
    if whole_and_full {
        return (Vec::new(), options.only.clone());
    }
    let mut part = recorded.to_vec();
    for glob in &options.only {
        if !part.contains(glob) {
            part.push(glob.clone());
        }
    }
    (part.clone(), part)
}

/// How many bytes of files [`build_new`] reads ahead while the image is made, at most (what
/// a first fill holds anyway: a batch and its budgets).
const PREREAD_BYTES: u64 = 32 << 20;

fn build_after(
    image: &mut Image,
    root: &Path,
    options: &BuildOptions,
    progress: &dyn Progress,
    prewalk: Option<Prewalk>,
) -> Result<BuildReport> {
    let mut build = Build::scope(image, root, options)?;
    let Survey {
        files,
        mut known,
        unseen,
    } = build.survey(image, prewalk)?;
    // Decide which files must be read.
    let (to_read, unchanged): (Vec<&WalkedFile>, Vec<&WalkedFile>) =
        files.iter().partition(|f| match known.get(&f.path) {
            Some(stamp) => !stamp_matches(stamp, f),
            None => true,
        });
    if build.nothing_changed(&known, files.len(), &to_read) {
        let mut modules: HashSet<&str> =
            HashSet::with_capacity_and_hasher(unchanged.len(), Default::default());
        modules.extend(
            unchanged
                .iter()
                .filter_map(|f| known.get(&f.path).map(|s| s.module.as_str())),
        );
        build.report.unchanged = modules.len();
        build.keep_clean_stamps(image, &known, files.len())?;
        build.trace.lap("nothing changed");
        return Ok(build.report);
    }
    if image.generation()? == 0 && known.is_empty() && build.targeted.is_none() {
        return build.first_fill(image, &to_read, Vec::new(), progress);
    }
    let mut outcomes = build.read_changed(image, &to_read, &known, progress);
    sort_read_again(image, &to_read, &mut outcomes)?;
    let texts = take_texts_if_many(&mut outcomes);
    let image: &Image = image;
    std::thread::scope(|scope| -> Result<()> {
        // Many new texts: written into the store on another thread while this one works out
        // the records. They are content-addressed, so they are harmless if the build stops
        // before its commit (texts nothing refers to).
        let loading = (!texts.is_empty()).then(|| scope.spawn(move || image.store_texts(texts)));
        let (mut claims, mut read) = build.claim(&unchanged, &to_read, outcomes, &known, &unseen);
        if build.targeted.is_some() {
            claim_unlisted(image, root, &mut claims, &read.units, &mut known)?;
        }
        let mut tx = image.begin(Origin::File)?;
        build.pick_holders(&mut tx, &mut claims, &mut read)?;
        build.trace.lap("stage modules");
        let same: Vec<(&str, &PathRecord)> = read
            .stamps
            .iter()
            .filter(|(path, _)| claims.holds(path))
            .map(|(path, stamp)| (path.as_str(), stamp))
            .collect();
        if same.len() >= LOAD_MIN_KEYS {
            image.store_same_stamps(same)?;
        } else {
            for (path, stamp) in same {
                tx.put_path(path, stamp);
            }
        }
        build.stage_removals(&mut tx, &known, &claims)?;
        build.summarize(&tx, &claims);
        build.trace.lap("stage removals");
        if let Some(loading) = loading {
            loading
                .join()
                .map_err(|p| Error::panicked("writing texts", &*p))??;
        }
        build.trace.lap("texts written");
        build.report.generation = tx.commit()?;
        build.trace.lap("commit");
        Ok(())
    })?;
    Ok(build.finish())
}

/// One build's state, moved through its stages (each a method, named as its trace label).
struct Build<'a> {
    root: &'a Path,
    options: &'a BuildOptions,
    /// The part of the tree this build reads.
    filter: PartFilter,
    /// Only these paths (narrowed: no path below another), or the whole tree.
    targeted: Option<Vec<String>>,
    report: BuildReport,
    trace: Trace,
    /// How a first fill cuts its work ([`FillLimits::for_bytes`] but in tests).
    limits: Option<FillLimits>,
}

/// How a first fill cuts its work: files per batch, and bytes gathered before a write.
#[derive(Clone, Copy)]
struct FillLimits {
    batch_files: usize,
    spill_bytes: usize,
}

impl FillLimits {
    /// The limits for a first fill of files of `bytes` in all: a write every fourteenth of
    /// them, within [`MIN_SPILL_BYTES`] and [`MAX_SPILL_BYTES`]. Small writes leave little
    /// to write when the reading ends (then with nothing left to overlap it, one core idle)
    /// and touch less memory afresh: a 10,000-module tree of 84 MB built a tenth faster, in
    /// 150 MB instead of 240, writing every 8 MB instead of every 32. But each write of a
    /// table is a run of it, and from [`crate::store`]'s sixteen runs on fjall merges them,
    /// on its one worker, while the build waits for it to let the last write in: every 32 MB,
    /// a 1 GB tree made 17 runs and waited 2.5 s at its end (11.5 s in all; 8.4 to 9.0 s with
    /// 13 runs of 48 MB). At most fourteen writes (and the commit's) stay below that.
    fn for_bytes(bytes: u64) -> FillLimits {
        let spill = usize::try_from(bytes / 14).unwrap_or(MAX_SPILL_BYTES);
        FillLimits {
            batch_files: BATCH_FILES,
            spill_bytes: spill.clamp(MIN_SPILL_BYTES, MAX_SPILL_BYTES),
        }
    }
}

/// What the walk and the stamps found.
struct Survey {
    /// The files of the tree (or of the listed paths) within the scope.
    files: Vec<WalkedFile>,
    /// The stamps the image holds for them (and for files that are gone).
    known: Stamps,
    /// What the walk could not look at (a directory or a file it could not read): not gone.
    unseen: Vec<String>,
}

/// The files read anew, and the stamps of files whose bytes had not changed.
#[derive(Default)]
struct Read {
    units: HashMap<String, (Staged, PathRecord)>,
    stamps: Vec<(String, PathRecord)>,
}

/// A unit read anew, as it is staged: merged, or its new texts taken.
enum Staged {
    /// Prepared for [`Transaction::put_unit`]'s merge.
    Merged(PreparedUnit),
    /// A save that changed only texts, for [`Transaction::put_saved`].
    Saved(SavedUnit),
}

impl Staged {
    fn name(&self) -> &str {
        match self {
            Staged::Merged(unit) => unit.name(),
            Staged::Saved(unit) => unit.name(),
        }
    }
}

/// Which files claim which module, and which files keep their stamps.
#[derive(Default)]
struct Claims {
    by_module: HashMap<String, Vec<String>>,
    kept: HashSet<String>,
}

impl Claims {
    /// `path` holds `module` (as far as this build can tell).
    fn claim(&mut self, module: &str, path: &str) {
        let first = self.kept.insert(path.to_string());
        debug_assert!(first, "`{path}` claims a module twice");
        self.by_module
            .entry(module.to_string())
            .or_default()
            .push(path.to_string());
    }

    /// `path` lost its claim to another file: its stamp is not kept.
    fn disown(&mut self, path: &str) {
        self.kept.remove(path);
    }

    /// Whether `path` keeps its stamp.
    fn holds(&self, path: &str) -> bool {
        self.kept.contains(path)
    }

    /// The first file that claimed `module`, if any did.
    fn holder(&self, module: &str) -> Option<&str> {
        self.by_module
            .get(module)
            .and_then(|paths| paths.first())
            .map(String::as_str)
    }

    /// Whether some file claims `module`.
    fn claimed(&self, module: &str) -> bool {
        self.by_module.contains_key(module)
    }
}

/// `SPRY_IMAGE_TRACE`: the time each stage ends, on standard error.
struct Trace {
    on: bool,
    t0: std::time::Instant,
}

impl Trace {
    fn lap(&self, what: &str) {
        if self.on {
            eprintln!("trace: {what}: {:?}", self.t0.elapsed());
        }
    }
}

impl<'a> Build<'a> {
    /// The part the image holds afterwards, and the files this build reads. `--only` on an
    /// empty or partial image adds to its part; on a whole image it only narrows this build
    /// (the image stays whole: nothing it holds is frozen outside a part).
    fn scope(image: &mut Image, root: &'a Path, options: &'a BuildOptions) -> Result<Build<'a>> {
        let whole_and_full = image.record().part.is_empty() && image.generation()? > 0;
        let (part, scope) = part_and_scope(&image.record().part, whole_and_full, options);
        let filter = PartFilter::new(&scope)?;
        if part != image.record().part {
            image.set_part(part.clone())?;
        }
        Ok(Build {
            root,
            options,
            filter,
            targeted: options.paths.as_deref().map(narrow),
            report: BuildReport {
                part,
                ..BuildReport::default()
            },
            trace: Trace {
                on: std::env::var_os("SPRY_IMAGE_TRACE").is_some(),
                t0: std::time::Instant::now(),
            },
            limits: None,
        })
    }

    /// The walk and the stamps, read at once (they are independent), or the stamps beside a
    /// walk made before the image was opened, if it agrees with them.
    fn survey(&mut self, image: &Image, prewalk: Option<Prewalk>) -> Result<Survey> {
        if let Some(prewalk) = prewalk
            && self.targeted.is_none()
        {
            let known = image.paths()?;
            self.trace.lap("stamps");
            let in_scope = known.keys().filter(|p| self.filter.contains(p)).count();
            let agreeing = prewalk.agreeing(self.root, &self.filter, in_scope, |file| {
                known
                    .get(&file.path)
                    .is_some_and(|s| stamp_matches(s, file))
            });
            if let Some(files) = agreeing {
                self.trace.lap("walk (before the open)");
                self.report.files = files.len();
                return Ok(Survey {
                    files,
                    known,
                    unseen: Vec::new(),
                });
            }
            // Something differs: the tree is walked again, now that the image is held.
            let files = walk(self.root, &self.filter, &mut self.report.failed)?;
            self.trace.lap("walk");
            return Ok(self.surveyed(files, known));
        }
        let (root, filter, targeted, trace) =
            (self.root, &self.filter, &self.targeted, &self.trace);
        let failed = &mut self.report.failed;
        let (files, known) = std::thread::scope(|scope| {
            let stamps = scope.spawn(|| {
                let stamps = match targeted {
                    None => image.paths(),
                    Some(paths) => stamps_under(image, paths),
                };
                trace.lap("stamps");
                stamps
            });
            let files = match targeted {
                None => walk(root, filter, failed),
                Some(paths) => walk_paths(root, filter, paths, failed),
            };
            trace.lap("walk");
            let known = stamps
                .join()
                .unwrap_or_else(|p| Err(Error::panicked("reading the file stamps", &*p)));
            (files, known)
        });
        let (files, known) = (files?, known?);
        self.trace.lap("walk and stamps");
        Ok(self.surveyed(files, known))
    }

    /// The survey of `files` walked and the stamps `known`.
    fn surveyed(&mut self, files: Vec<WalkedFile>, known: Stamps) -> Survey {
        // The files known there keep their modules, as a file that does not parse does.
        let unseen = self.report.failed.iter().map(|f| f.path.clone()).collect();
        self.report.files = files.len();
        Survey {
            files,
            known,
            unseen,
        }
    }

    /// Nothing to read, nothing unreadable, and every file known in this build's scope still
    /// there: no module can be read anew, claimed twice or left without its file.
    fn nothing_changed(&self, known: &Stamps, files: usize, to_read: &[&WalkedFile]) -> bool {
        to_read.is_empty()
            && self.report.failed.is_empty()
            && known.keys().filter(|p| self.filter.contains(p)).count() == files
    }

    /// After finding nothing changed: where this build looked at the whole tree and the image
    /// holds nothing the tree does not (no live edit, no conflict), the clean-stamps file is
    /// written, so that the next `build` or `status` need not open the store
    /// ([`crate::quick_look`]). A failure to write it is not the build's: it is a cache.
    ///
    /// # Errors
    /// Storage failures reading the `sync` table.
    fn keep_clean_stamps(&self, image: &Image, known: &Stamps, files: usize) -> Result<()> {
        let whole = self.targeted.is_none()
            && self.options.only.is_empty()
            && self.report.part.is_empty()
            && self.report.failed.is_empty()
            && known.len() == files;
        if !whole || !image.unsynced()?.is_empty() {
            return Ok(());
        }
        let mut stamps: Vec<(&str, &PathRecord)> =
            known.iter().map(|(p, s)| (p.as_str(), s)).collect();
        stamps.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let _ = image.write_clean_stamps(self.report.unchanged, &stamps);
        Ok(())
    }

    /// Reads, parses and prepares the files whose stamps changed, in parallel.
    fn read_changed(
        &mut self,
        image: &Image,
        to_read: &[&WalkedFile],
        known: &Stamps,
        progress: &dyn Progress,
    ) -> Vec<Outcome> {
        progress.start(to_read.len() as u64);
        let outcomes = self.read_batch(to_read, Some((image, known)), progress);
        self.report.read = outcomes.len();
        self.trace.lap("read+parse");
        outcomes
    }

    /// Who claims which module: files unchanged, read anew, failed (they keep their module),
    /// and known files below what the walk could not look at.
    fn claim(
        &mut self,
        unchanged: &[&WalkedFile],
        to_read: &[&WalkedFile],
        outcomes: Vec<Outcome>,
        known: &Stamps,
        unseen: &[String],
    ) -> (Claims, Read) {
        let mut claims = Claims::default();
        let mut read = Read::default();
        for file in unchanged {
            if let Some(stamp) = known.get(&file.path) {
                claims.claim(&stamp.module, &file.path);
            }
        }
        for (file, outcome) in to_read.iter().zip(outcomes) {
            let path = &file.path;
            match outcome {
                Outcome::Same(stamp) => {
                    claims.claim(&stamp.module, path);
                    read.stamps.push((path.clone(), stamp));
                }
                Outcome::Parsed(unit, stamp) => {
                    claims.claim(unit.name(), path);
                    read.units
                        .insert(path.clone(), (Staged::Merged(unit), stamp));
                }
                Outcome::Saved(unit, stamp) => {
                    claims.claim(unit.name(), path);
                    read.units
                        .insert(path.clone(), (Staged::Saved(unit), stamp));
                }
                // Sorted before (`sort_read_again`); merged whole if one were left.
                Outcome::Again(unit, stamp) => {
                    claims.claim(unit.name(), path);
                    read.units.insert(
                        path.clone(),
                        (Staged::Merged(PreparedUnit::hashed(&unit)), stamp),
                    );
                }
                // Only a first fill reads a unit so (`read_batch`); prepared whole here.
                Outcome::Large(unit, stamp) => {
                    claims.claim(unit.name(), path);
                    read.units.insert(
                        path.clone(),
                        (Staged::Merged(PreparedUnit::new(&unit)), stamp),
                    );
                }
                Outcome::Failed(failure) => {
                    // The module keeps its last good version: the file still claims it.
                    if let Some(stamp) = known.get(path) {
                        claims.claim(&stamp.module, path);
                    }
                    self.report.failed.push(failure);
                }
                Outcome::Vanished => {}
            }
        }
        for (path, stamp) in known {
            if !claims.holds(path) && unseen.iter().any(|dir| is_at_or_below(path, dir)) {
                claims.claim(&stamp.module, path);
            }
        }
        (claims, read)
    }

    /// Stages each module read anew or claimed twice from the one file that holds it: the
    /// only claimant, or the file the image already has it from, or the first by path.
    fn pick_holders(
        &mut self,
        tx: &mut Transaction<'_>,
        claims: &mut Claims,
        read: &mut Read,
    ) -> Result<()> {
        // In name order, so that the log lists modules in a stable order.
        let mut names: Vec<String> = claims
            .by_module
            .iter()
            .filter(|(_, paths)| {
                paths.len() > 1 || paths.iter().any(|p| read.units.contains_key(p))
            })
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        for name in names {
            let mut paths = claims.by_module[&name].clone();
            paths.sort();
            let holder = pick_holder(tx, &name, &paths)?;
            for loser in paths.iter().filter(|p| **p != holder) {
                self.report.failed.push(FileFailure::new(
                    loser,
                    FailureKind::ClaimedTwice {
                        module: name.clone(),
                        holder: holder.clone(),
                        path: loser.clone(),
                    },
                ));
                read.units.remove(loser);
                claims.disown(loser);
            }
            if let Some((unit, stamp)) = read.units.remove(&holder) {
                match unit {
                    Staged::Merged(unit) => tx.put_unit(unit, &holder)?,
                    Staged::Saved(unit) => tx.put_saved(unit, &holder)?,
                }
                tx.put_path(&holder, &stamp);
            }
        }
        debug_assert!(
            read.units.is_empty(),
            "every unit read has one holder, staged or refused"
        );
        Ok(())
    }

    /// Modules whose files left the tree (within the part) leave the image. Only modules read
    /// from files can leave this way: one made in the image and not yet exported has no file.
    /// A file still in the tree that now holds another module gives up its old one too.
    fn stage_removals(
        &self,
        tx: &mut Transaction<'_>,
        known: &Stamps,
        claims: &Claims,
    ) -> Result<()> {
        for (path, stamp) in known {
            if !self.filter.contains(path) {
                continue;
            }
            let left = !claims.claimed(&stamp.module)
                && tx.module(&stamp.module)?.map(|m| m.path).as_deref() == Some(path.as_str());
            if left && tx.file_deleted(&stamp.module)? {
                // The image holds changes the file never had: a modify/delete conflict. The
                // module and its stamp stay until it is resolved.
                continue;
            }
            if !claims.holds(path) {
                tx.remove_path(path);
            }
            if left {
                tx.remove_module(&stamp.module)?;
            }
        }
        Ok(())
    }

    /// The first build of an empty image, in batches: each batch's files are read and parsed
    /// in parallel and their modules staged; once the texts gathered pass the budget
    /// ([`FillLimits::for_bytes`]) they are written (on a second thread, while the next batches
    /// are read), and once the staged records do, they are moved into the tables (on a third),
    /// so that memory holds a few batches and budgets whatever the size of the tree. Each
    /// write makes a table file that fjall makes durable on its own: a write per batch cost a
    /// 10,000-module tree of small files some 260 `fsync`s, most of its time on a busy disk.
    /// Files come in path order, so a module's first claimant is its holder, as
    /// [`pick_holder`] decides for an empty image.
    fn first_fill(
        mut self,
        image: &Image,
        to_read: &[&WalkedFile],
        preread: Vec<Vec<Outcome>>,
        progress: &dyn Progress,
    ) -> Result<BuildReport> {
        debug_assert!(to_read.is_sorted_by(|a, b| a.path <= b.path));
        let mut tx = image.begin(Origin::File)?;
        // Every module is new and claimed once (`Claims`): nothing reads its records back.
        tx.append_new_records();
        let mut claims = Claims::default();
        progress.start(to_read.len() as u64);
        let (root, max_file_size) = (self.root, self.options.max_file_size);
        let limits = *self
            .limits
            .get_or_insert_with(|| FillLimits::for_bytes(to_read.iter().map(|f| f.size).sum()));
        let FillLimits {
            batch_files,
            spill_bytes,
        } = limits;
        std::thread::scope(|scope| -> Result<()> {
            let mut writing: Option<std::thread::ScopedJoinHandle<'_, Result<()>>> = None;
            // Staged records on their way into the tables (`take_first_fill_spill`).
            let mut loading: Option<std::thread::ScopedJoinHandle<'_, Result<()>>> = None;
            let mut texts: Vec<(Hash, Bytes)> = Vec::new();
            let mut text_bytes = 0;
            let mut batches = batches(to_read, batch_files).peekable();
            // The first batches may have been read while the image was made (`build_new`).
            let mut preread = preread.into_iter();
            // The batch after the one being staged, read meanwhile: staging is one thread's
            // work, and the other core would wait for it (a third of a first build's wall
            // clock on `gen`'s tree once the loads were spread over both).
            let mut reading: Option<std::thread::ScopedJoinHandle<'_, Vec<Outcome>>> = None;
            while let Some(batch) = batches.next() {
                let mut outcomes = match (preread.next(), reading.take()) {
                    (Some(outcomes), _) => outcomes,
                    (None, Some(read)) => read
                        .join()
                        .map_err(|p| Error::panicked("reading files", &*p))?,
                    (None, None) => self.read_batch(batch, None, progress),
                };
                if preread.len() == 0
                    && let Some(&following) = batches.peek()
                {
                    reading =
                        Some(scope.spawn(move || {
                            read_files(root, max_file_size, following, None, progress)
                        }));
                }
                for (hash, stored) in outcomes.iter_mut().flat_map(Outcome::take_texts) {
                    text_bytes += stored.len();
                    texts.push((hash, stored));
                }
                if text_bytes >= spill_bytes || batches.peek().is_none() {
                    join_pending(&mut writing, "writing texts")?;
                    // The next hand-off holds about as many: grown from nothing, the vector
                    // was moved a dozen times a hand-off.
                    let room = texts.len();
                    let full = std::mem::replace(&mut texts, Vec::with_capacity(room));
                    text_bytes = 0;
                    writing = Some(scope.spawn(move || image.store_texts(full)));
                }
                for (file, outcome) in batch.iter().zip(outcomes) {
                    if matches!(outcome, Outcome::Large(..)) {
                        // A large unit stages its texts with its records and moves them into
                        // the tables between its parts: not while texts are written beside,
                        // and after the records moved before.
                        join_pending(&mut writing, "writing texts")?;
                        join_pending(&mut loading, "loading records")?;
                    }
                    self.stage_first(&mut tx, &mut claims, &file.path, outcome, spill_bytes)?;
                }
                if let Some(writes) = tx.take_first_fill_spill(spill_bytes) {
                    // Moved into the tables on another thread while the next batch is
                    // staged: done here, it held this thread (and so the reading of the
                    // batches after) for a quarter of a 10,000-module build. One at a time,
                    // in order.
                    join_pending(&mut loading, "loading records")?;
                    loading = Some(scope.spawn(move || image.store().load(writes)));
                }
            }
            join_pending(&mut loading, "loading records")?;
            join_pending(&mut writing, "writing texts")
        })?;
        self.report.read = to_read.len();
        self.trace.lap("read, parse and stage in batches");
        self.summarize(&tx, &claims);
        self.report.generation = tx.commit()?;
        self.trace.lap("commit");
        Ok(self.finish())
    }

    /// Reads, parses and prepares files in parallel, each against its known stamp and the
    /// image's module (none in a first fill).
    fn read_batch(
        &self,
        batch: &[&WalkedFile],
        known: Option<(&Image, &Stamps)>,
        progress: &dyn Progress,
    ) -> Vec<Outcome> {
        read_files(
            self.root,
            self.options.max_file_size,
            batch,
            known,
            progress,
        )
    }

    /// Stages one file of a first fill: its module if it is the module's first claimant, else
    /// the file's failure (claimed twice). A large module's parts are moved into the tables
    /// once `spill_bytes` are staged.
    fn stage_first(
        &mut self,
        tx: &mut Transaction<'_>,
        claims: &mut Claims,
        path: &str,
        outcome: Outcome,
        spill_bytes: usize,
    ) -> Result<()> {
        let name = match &outcome {
            Outcome::Parsed(unit, _) => unit.name(),
            Outcome::Large(unit, _) | Outcome::Again(unit, _) => unit.name(),
            Outcome::Saved(unit, _) => unit.name(),
            _ => "",
        };
        if let Some(holder) = claims.holder(name) {
            self.report.failed.push(FileFailure::new(
                path,
                FailureKind::ClaimedTwice {
                    module: name.to_string(),
                    holder: holder.to_string(),
                    path: path.to_string(),
                },
            ));
            return Ok(());
        }
        match outcome {
            Outcome::Parsed(unit, stamp) => {
                claims.claim(unit.name(), path);
                if let Some(unit) = tx.put_new_unit(unit, path)? {
                    tx.put_unit(unit, path)?;
                }
                tx.put_path(path, &stamp);
            }
            // A first fill knows no file, so none is read again; staged whole if one were.
            Outcome::Saved(unit, stamp) => {
                claims.claim(unit.name(), path);
                tx.put_saved(unit, path)?;
                tx.put_path(path, &stamp);
            }
            Outcome::Large(unit, stamp) | Outcome::Again(unit, stamp) => {
                claims.claim(unit.name(), path);
                let prepare = |unit: &SourceUnit, range: std::ops::Range<usize>| {
                    range
                        .into_par_iter()
                        .map(|i| Prepared::new(unit.definition_text(i)))
                        .collect()
                };
                if !tx.put_new_unit_in_parts(
                    &unit,
                    path,
                    PART_DEFINITIONS,
                    spill_bytes,
                    &prepare,
                )? {
                    tx.put_unit(PreparedUnit::new(&unit), path)?;
                }
                tx.put_path(path, &stamp);
            }
            Outcome::Failed(failure) => self.report.failed.push(failure),
            // Nothing was known, so nothing can be the same; a file gone since the walk is
            // simply not there.
            Outcome::Same(_) | Outcome::Vanished => {}
        }
        Ok(())
    }

    /// The report, in the order people read it.
    fn finish(self) -> BuildReport {
        let mut report = self.report;
        report.added.sort();
        report.changed.sort();
        report.removed.sort();
        report.failed.sort_by(|a, b| a.path.cmp(&b.path));
        report
    }

    /// The report of what the transaction changed.
    fn summarize(&mut self, tx: &Transaction<'_>, claims: &Claims) {
        let report = &mut self.report;
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
        report.unchanged = claims.by_module.len().saturating_sub(touched);
    }
}

/// The file that keeps a module `paths` (sorted) claim: the only one; or, claimed twice, the
/// file the image already has it from; or the first.
fn pick_holder(tx: &Transaction<'_>, name: &str, paths: &[String]) -> Result<String> {
    if let [only] = paths {
        return Ok(only.clone());
    }
    let holder = tx.module(name)?.map(|m| m.path);
    Ok(holder
        .filter(|h| paths.contains(h))
        .unwrap_or_else(|| paths[0].clone()))
}

/// Whether `path` is `dir` or lies below it.
fn is_at_or_below(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Sorts the units of files read again (in parallel): a save that changed only texts of its
/// module's definitions is taken as such ([`Image::saved_texts`]: two passes over the
/// module's records, no map of them); any other unit is prepared for the merge, without the
/// texts its module holds already (every definition but the ones edited: they are stored,
/// nothing is written for them), with the one scan of its module's definitions that finds
/// them kept for its merge.
fn sort_read_again(image: &Image, to_read: &[&WalkedFile], outcomes: &mut [Outcome]) -> Result<()> {
    debug_assert_eq!(to_read.len(), outcomes.len());
    outcomes
        .par_iter_mut()
        .zip(to_read)
        .try_for_each(|(outcome, file)| {
            let Outcome::Again(..) = outcome else {
                return Ok(());
            };
            let Outcome::Again(unit, stamp) = std::mem::replace(outcome, Outcome::Vanished) else {
                return Ok(());
            };
            *outcome = match image.saved_texts(unit, &file.path)? {
                Ok(saved) => Outcome::Saved(saved, stamp),
                Err(unit) => {
                    let mut unit = PreparedUnit::hashed(&unit);
                    let index = image.definition_index(unit.name())?;
                    let stored: HashMap<Hash, u32> =
                        index.values().map(|d| (d.hash, d.stored)).collect();
                    if !stored.is_empty() {
                        unit.drop_stored(&stored);
                    }
                    // The merge reads the same records: it takes them from here.
                    unit.with_stored_index(index);
                    Outcome::Parsed(unit, stamp)
                }
            };
            Ok(())
        })
}

/// Takes the texts of the units read out of them when there are many, for a second thread to
/// write (from [`BACKGROUND_TEXTS_MIN`] on); else nothing.
fn take_texts_if_many(outcomes: &mut [Outcome]) -> Vec<(Hash, Bytes)> {
    let new_texts: usize = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Parsed(unit, _) => unit.unstored_count(),
            _ => 0,
        })
        .sum();
    if new_texts < BACKGROUND_TEXTS_MIN {
        return Vec::new();
    }
    // Taking them out compresses the texts only hashed: in parallel.
    outcomes
        .par_iter_mut()
        .flat_map_iter(Outcome::take_texts)
        .collect()
}

/// A targeted build sees only the files it lists. A module read anew from one of them may be
/// held by a file it does not list: if that file is still there and still holds it, the module
/// is claimed twice (the holder keeps it); if it is gone, its stamp goes and the module moves.
fn claim_unlisted(
    image: &Image,
    root: &Path,
    claims: &mut Claims,
    units: &HashMap<String, (Staged, PathRecord)>,
    known: &mut Stamps,
) -> Result<()> {
    let mut read: Vec<&str> = units.values().map(|(u, _)| u.name()).collect();
    read.sort();
    read.dedup();
    for name in read {
        let Some(holder) = image.module(name)?.map(|m| m.path) else {
            continue;
        };
        let claimed = claims.by_module.get(name);
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
            claims.claim(name, &holder);
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

/// A first fill's batch: up to this many files or [`BATCH_BYTES`] of them, whichever comes
/// first. Large enough to keep both cores busy, small enough to keep memory flat.
const BATCH_FILES: usize = 2048;
const BATCH_BYTES: u64 = 32 << 20;

/// Reads, parses and prepares the files of `batch` in parallel, each against its known stamp
/// (none in a first fill), within `given` bytes or each file's default limit.
fn read_files(
    root: &Path,
    given: Option<u64>,
    batch: &[&WalkedFile],
    known: Option<(&Image, &Stamps)>,
    progress: &dyn Progress,
) -> Vec<Outcome> {
    let work = || -> Vec<Outcome> {
        batch
            .par_iter()
            .map(|file| {
                let stamp = known.and_then(|(_, k)| k.get(&file.path));
                let image = known.map(|(image, _)| image);
                let max_file_size =
                    given.unwrap_or_else(|| default_read_limit(stamp.map(|s| s.size)));
                // A first fill (nothing known) may stage a large module in parts.
                let parts = known.is_none();
                let outcome = guarded(&file.path, || {
                    read_file(root, image, file, stamp, max_file_size, parts)
                });
                progress.advance(1);
                outcome
            })
            .collect()
    };
    match reading_pool() {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// Threads per core of the pool that reads files ([`read_files`]).
const READERS_PER_CORE: usize = 2;

/// The pool [`read_files`] runs in: twice as many threads as rayon's own pool (one per core,
/// or `RAYON_NUM_THREADS`), so that a file whose read waits on the disk (a tree not in the
/// page cache: after a clone, a reboot, or on a machine that trims its cache) leaves its core
/// to another file's parse. On 10,000 files not cached, a first build took 1.04 s instead of
/// 1.32 (medians); cached, the same. `None` (rayon's own pool) if the threads cannot be made.
fn reading_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = rayon::current_num_threads();
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores * READERS_PER_CORE)
            .thread_name(|i| format!("reader-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// The least a first fill gathers before it writes (of texts, compressed, and of staged
/// records, about, with their overhead in memory), however small the tree. What is left at
/// the end goes with the commit.
const MIN_SPILL_BYTES: usize = 8 << 20;

/// The most a first fill gathers before it writes, however large the tree: past about
/// 670 MB of files, more than fourteen writes (see [`FillLimits::for_bytes`]). 64 MB made a
/// 1 GB tree's build slower (more memory touched afresh) and its peak 382 MB, against 350.
const MAX_SPILL_BYTES: usize = 48 << 20;

/// `files` cut into consecutive batches of at most `max_files` files and (but for a
/// batch of one big file) [`BATCH_BYTES`] bytes.
fn batches<'f, 'w>(
    files: &'f [&'w WalkedFile],
    max_files: usize,
) -> impl Iterator<Item = &'f [&'w WalkedFile]> {
    let mut rest = files;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0u64;
        let mut n = 0;
        while n < rest.len() && n < max_files && (n == 0 || bytes + rest[n].size <= BATCH_BYTES) {
            bytes += rest[n].size;
            n += 1;
        }
        let (batch, after) = rest.split_at(n);
        rest = after;
        Some(batch)
    })
}

/// Waits for the write `pending` on another thread, if any, leaving none: its error, or its
/// panic as an error about `what` it was doing.
fn join_pending(
    pending: &mut Option<std::thread::ScopedJoinHandle<'_, Result<()>>>,
    what: &str,
) -> Result<()> {
    match pending.take() {
        Some(handle) => handle.join().map_err(|p| Error::panicked(what, &*p))?,
        None => Ok(()),
    }
}

/// A first fill prepares and stages a module of more than this many definitions this many at
/// a time: a module file of millions of definitions (hundreds of MB) then never holds all its
/// texts compressed, hashed and staged as records at once, only its file and its definitions'
/// spans (a file's parse still holds its whole tree for a moment).
const PART_DEFINITIONS: usize = 1 << 14;

/// From this many new texts on, a build writes them on a second thread.
const BACKGROUND_TEXTS_MIN: usize = 4096;

enum Outcome {
    /// Same bytes as last time: only the stamp is new.
    Same(PathRecord),
    /// Parsed, its texts hashed and compressed (the parallel part of the work).
    Parsed(PreparedUnit, PathRecord),
    /// Parsed, a file the image knew: not prepared yet ([`sort_read_again`] makes it
    /// `Saved` or `Parsed`).
    Again(SourceUnit, PathRecord),
    /// Parsed, a file whose save changed only texts of its module's definitions
    /// ([`Image::saved_texts`]): those are taken, without the merge.
    Saved(SavedUnit, PathRecord),
    /// Parsed, a module of more than [`PART_DEFINITIONS`] definitions new to a first fill:
    /// its texts are prepared and staged a part at a time
    /// ([`Transaction::put_new_unit_in_parts`]), not all at once.
    Large(SourceUnit, PathRecord),
    Failed(FileFailure),
    Vanished,
}

impl Outcome {
    /// The texts of a unit read, taken out of it (to be written apart from its records).
    fn take_texts(&mut self) -> Vec<(Hash, Bytes)> {
        match self {
            Outcome::Parsed(unit, _) => unit.take_texts(),
            _ => Vec::new(),
        }
    }
}

/// Runs one file's step, turning a panic (a bug: no known input causes one) into that file's
/// failure, so that one file can never take a build down.
fn guarded(path: &str, step: impl FnOnce() -> Outcome) -> Outcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        Outcome::Failed(FileFailure::new(path, FailureKind::Internal { message }))
    })
}

fn read_file(
    root: &Path,
    image: Option<&Image>,
    file: &WalkedFile,
    known: Option<&PathRecord>,
    max_file_size: u64,
    parts: bool,
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
        ctime_ns: file.ctime_ns,
        inode: file.inode,
        hash,
        stamped_ns,
    };
    let script_name = crate::tree_path::script_name(&file.path);
    let unit = match read_text(root, &file.path, max_file_size, known.map(|k| k.hash)) {
        Ok((text, hash)) => {
            // A file the image knows, read again: first as a save of definitions' texts,
            // without parsing it whole.
            let text = match (image, known) {
                (Some(image), Some(known)) => {
                    let size = text.len() as u64;
                    match image.saved_span(&known.module, &file.path, text) {
                        Ok(saved) => {
                            return Outcome::Saved(saved, stamp(&known.module, size, hash));
                        }
                        Err(text) => text,
                    }
                }
                _ => text,
            };
            match parse_unit(&file.path, text, script_name) {
                Ok(unit) => Unit::Parsed { unit, hash },
                Err(failure) => Unit::Failed(failure),
            }
        }
        Err(unit) => unit,
    };
    match unit {
        Unit::Gone => Outcome::Vanished,
        Unit::Failed(failure) => Outcome::Failed(failure),
        Unit::Same { size } => match known {
            Some(known) => Outcome::Same(stamp(&known.module, size, known.hash)),
            None => Outcome::Vanished, // `Same` only answers a known hash
        },
        Unit::Parsed { unit, hash } => {
            let record = stamp(unit.name(), unit.text().len() as u64, hash);
            if parts && unit.definitions().len() > PART_DEFINITIONS {
                return Outcome::Large(unit, record);
            }
            // A file read again mostly holds texts its module has: it is compared with the
            // module before anything is prepared (`sort_read_again`); a file new to the image
            // is compressed here, in parallel.
            // A first fill writes a new module's chunk index (`put_new_unit`); a merge would
            // not use it.
            match known {
                Some(_) => Outcome::Again(unit, record),
                None if parts => Outcome::Parsed(PreparedUnit::new_to_image(&unit), record),
                None => Outcome::Parsed(PreparedUnit::new(&unit), record),
            }
        }
    }
}

#[cfg(test)]
mod fixtures;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_panic_in_one_files_step_is_that_files_failure() {
        let outcome = guarded("a.spry", || panic!("the parser met a bug"));
        let Outcome::Failed(failure) = outcome else {
            panic!("a panic was not turned into a failure");
        };
        assert_eq!(failure.path, "a.spry");
        let message = failure.message().unwrap_or_default();
        assert!(message.contains("internal error"), "{message}");
        assert!(message.contains("the parser met a bug"), "{message}");
        // And a step that does not panic gives its own outcome.
        assert!(matches!(
            guarded("b.spry", || Outcome::Vanished),
            Outcome::Vanished
        ));
    }

    /// A tree whose files were last modified an hour ago (their stamps are trusted at once)
    /// and an image built from it: `a.spry` holds `A`.
    pub(crate) fn settled_tree() -> (tempfile::TempDir, Image) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        write_settled(dir.path(), "a.spry", "{_meta = {name = 'A} x = 1}\n");
        let mut image =
            Image::create(&dir.path().join(".spry-image"), dir.path()).expect("an image");
        build(
            &mut image,
            dir.path(),
            &BuildOptions::default(),
            &NoProgress,
        )
        .expect("a build");
        (dir, image)
    }

    /// Writes `text` to `name` under `root`, modified an hour ago.
    pub(crate) fn write_settled(root: &Path, name: &str, text: &str) {
        let path = root.join(name);
        std::fs::write(&path, text).expect("a file");
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(hour_ago))
            .expect("a modification time");
    }

    /// A walk made before the image was opened is used only where it agrees with every stamp:
    /// a file another build added between the walk and the open (a watcher's, say) is not
    /// taken for a file removed.
    #[test]
    fn a_walk_made_before_the_open_is_used_only_where_it_agrees() {
        let (dir, mut image) = settled_tree();
        let root = dir.path();
        let options = BuildOptions::default();
        // Agrees: nothing read, nothing changed.
        let prewalk = Prewalk::start(root);
        let report =
            build_prewalked(&mut image, root, &options, &NoProgress, prewalk).expect("a build");
        assert_eq!((report.read, report.unchanged, report.files), (0, 1, 1));
        // Walked before `b.spry` was written and built by another build.
        let mut prewalk = Prewalk::start(root);
        prewalk.wait();
        write_settled(root, "b.spry", "{_meta = {name = 'B} y = 2}\n");
        let report = build(&mut image, root, &options, &NoProgress).expect("a build");
        assert_eq!(report.added, ["B"]);
        let report =
            build_prewalked(&mut image, root, &options, &NoProgress, prewalk).expect("a build");
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!((report.files, report.unchanged), (2, 2));
        assert_eq!(image.definition_text("B", "y").expect("a text"), b"y = 2");
        // And a walk that saw a file another build removed since is not used either.
        let mut prewalk = Prewalk::start(root);
        prewalk.wait();
        std::fs::remove_file(root.join("b.spry")).expect("a removal");
        let report = build(&mut image, root, &options, &NoProgress).expect("a build");
        assert_eq!(report.removed, ["B"]);
        let report =
            build_prewalked(&mut image, root, &options, &NoProgress, prewalk).expect("a build");
        assert_eq!((report.files, report.unchanged, report.read), (1, 1, 0));
        assert!(report.added.is_empty(), "{report:?}");
    }

    /// A new image made on another thread while the tree is read: the same image as a build
    /// of an empty one; and an image that turns out not to be empty is built as any other.
    #[test]
    fn a_new_image_is_made_while_the_tree_is_read() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        std::fs::write(root.join("a.spry"), "{_meta = {name = 'A} x = 1}\n").expect("a file");
        std::fs::write(root.join("b.spry"), "{_meta = {name = 'A} x = 2}\n").expect("a file");
        std::fs::write(root.join("c.spry"), "{_meta = {name = 'C} y = 3}\n").expect("a file");
        let image_dir = root.join(".spry-image");
        let create = || Image::create(&image_dir, root).map(Box::new);
        let options = BuildOptions::default();
        let (image, report) = build_new(create, root, &options, &NoProgress).expect("a build");
        assert_eq!(report.added, ["A", "C"]);
        assert_eq!((report.files, report.read), (3, 3));
        assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
        assert_eq!(report.failed[0].path, "b.spry");
        assert_eq!(image.definition_text("A", "x").expect("a text"), b"x = 1");
        assert!(image.check().expect("a check").is_ok());
        let digest = image.check().expect("a check").digest;
        drop(image);
        // The same tree into an empty image, as `build` fills it: the same content.
        let other = tempfile::tempdir().expect("a temporary directory");
        let mut plain = Image::create(&other.path().join("image"), root).expect("an image");
        build(&mut plain, root, &options, &NoProgress).expect("a build");
        assert_eq!(plain.check().expect("a check").digest, digest);
        // The image is there already (made since the command looked): built as any other.
        std::fs::write(root.join("d.spry"), "{_meta = {name = 'D} z = 4}\n").expect("a file");
        let (image, report) = build_new(create, root, &options, &NoProgress).expect("a build");
        assert_eq!(report.added, ["D"]);
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(image.definition_text("C", "y").expect("a text"), b"y = 3");
    }

    /// A first fill cut into batches of three files that writes what it staged after each
    /// (on another thread while the next batch is staged), a large module among them, makes
    /// the image one write at the end makes.
    #[test]
    fn a_first_fill_written_batch_by_batch_makes_the_same_image() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        for i in 0..20 {
            let text =
                format!("{{_meta = {{name = 'M{i}}}\n  # {i}\n  a = {i}\n  b = [:x x + {i}]\n}}\n");
            std::fs::write(root.join(format!("m{i:02}.spry")), text).expect("a file");
        }
        std::fs::write(root.join("s.sy"), "x = 3\necho x\n").expect("a file");
        let mut big = String::from("{\n  _meta = {name = 'Big}\n");
        for i in 0..PART_DEFINITIONS + 3 {
            big.push_str(&format!("  d{i} = {i}\n"));
        }
        big.push_str("}\n");
        std::fs::write(root.join("m10a.spry"), &big).expect("a file");
        let options = BuildOptions::default();
        let fill = |limits: Option<FillLimits>, at: &Path| {
            let mut image = Image::create(at, root).expect("an image");
            let mut build = Build::scope(&mut image, root, &options).expect("a scope");
            build.limits = limits;
            let mut failed = Vec::new();
            let files = walk(root, &build.filter, &mut failed).expect("a walk");
            let to_read: Vec<&WalkedFile> = files.iter().collect();
            let report = build
                .first_fill(&image, &to_read, Vec::new(), &NoProgress)
                .expect("a first fill");
            (image, report)
        };
        let images = tempfile::tempdir().expect("a temporary directory");
        let (whole, whole_report) = fill(None, &images.path().join("whole"));
        let small = FillLimits {
            batch_files: 3,
            spill_bytes: 1,
        };
        let (cut, cut_report) = fill(Some(small), &images.path().join("cut"));
        assert_eq!(cut_report.added.len(), 22, "{cut_report:?}");
        assert_eq!(cut_report.added, whole_report.added);
        assert!(cut_report.failed.is_empty(), "{:?}", cut_report.failed);
        let (whole_check, cut_check) = (
            whole.check().expect("a check"),
            cut.check().expect("a check"),
        );
        assert!(cut_check.is_ok(), "{cut_check:?}");
        assert_eq!(cut_check.digest, whole_check.digest);
        assert_eq!(cut.module_text("Big").expect("a text"), big.as_bytes());
        assert_eq!(
            cut.definition_text("M7", "b").expect("a text"),
            b"b = [:x x + 7]"
        );
    }

    /// A first build of a module larger than a part ([`PART_DEFINITIONS`]) stages it in
    /// parts: the image holds the file's text, a second file claiming the module is refused
    /// as any other, and the module is merged as usual on the next build.
    #[test]
    fn a_large_module_is_built_in_parts() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let n = PART_DEFINITIONS + 7;
        let module = |k: usize| {
            let mut text = String::from("{\n  _meta = {name = 'Big}\n");
            for i in 0..n {
                text.push_str(&format!("  # {i}.\n  d{i} = {}\n", i * k));
            }
            text.push_str("}\n");
            text
        };
        std::fs::write(dir.path().join("a.spry"), module(1)).expect("a file");
        std::fs::write(dir.path().join("b.spry"), module(2)).expect("a file");
        std::fs::write(dir.path().join("c.spry"), "{_meta = {name = 'C} x = 1}\n").expect("a file");
        let mut image =
            Image::create(&dir.path().join(".spry-image"), dir.path()).expect("an image");
        let options = BuildOptions::default();
        let report = build(&mut image, dir.path(), &options, &NoProgress).expect("a build");
        assert_eq!(report.added, ["Big", "C"]);
        assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
        assert_eq!(report.failed[0].path, "b.spry");
        assert_eq!(
            image.module_text("Big").expect("a text"),
            module(1).as_bytes()
        );
        assert_eq!(
            image.definition_text("Big", "d7").expect("a text"),
            b"# 7.\n  d7 = 7"
        );
        // `check` compares the chunk index the build wrote with the module's text.
        assert!(image.check().expect("a check").is_ok());
        let edited = module(1).replace("d7 = 7\n", "d7 = 70\n");
        // A save of one definition reads along that index from the first save on.
        let saved = image
            .saved_by_chunks("Big", "a.spry", edited.as_bytes())
            .expect("read along the chunk index the first build wrote");
        let changes: Vec<_> = saved
            .changes()
            .map(|(n, t)| (n.to_string(), t.to_vec()))
            .collect();
        assert_eq!(changes, [("d7".to_string(), b"# 7.\n  d7 = 70".to_vec())]);
        // Read again: the whole merge, as for any module the image holds.
        std::fs::remove_file(dir.path().join("b.spry")).expect("a removal");
        std::fs::write(dir.path().join("a.spry"), &edited).expect("a file");
        let report = build(&mut image, dir.path(), &options, &NoProgress).expect("a build");
        assert_eq!(report.changed, ["Big"], "{report:?}");
        assert_eq!(image.module_text("Big").expect("a text"), edited.as_bytes());
    }
}
