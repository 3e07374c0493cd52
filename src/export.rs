//! Export: the image's modules back to files.
//!
//! Into the source tree, only modules whose image text changed since it last agreed with
//! their file are looked at (the `sync` table lists them), so an export with nothing to do
//! reads one empty table and touches no file. A module's file is its layout's gaps and its
//! definitions' texts, so an unchanged definition keeps every byte, a changed one replaces
//! exactly its own span. A file that changed on disk since the last build is merged into the
//! image first (three ways, per definition, line by line within one); a definition in conflict
//! is written as the file has it, the rest of its module as the image has it.
//!
//! Files are written atomically: a temporary file in the same directory, fsync, rename, fsync
//! of the directory. The image records what was written only after the files are durable: a
//! crash in between leaves files that a later build finds equal to the image. Into another
//! directory, a file that was not there is made in place with `create_new` instead (it never
//! replaces anything, so nothing needs the rename), and one sync at the end makes them all
//! durable before the copy's manifest records them (earlier ones run beside the writing,
//! so that the last finds little left to write).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::image::{
    DefinitionRecord, Hash, Image, Layout, ModuleParts, ModuleRecord, Origin, PathRecord,
    PreparedUnit, Span, SyncRecord, drop_slot,
};
use crate::source::{
    DEFAULT_MAX_FILE_SIZE, FileFailure, Source, ctime_ns, default_read_limit, inode, mtime_ns,
    now_ns, parse_unit, read_source, same_dir,
};
use crate::syntax::{Piece, SourceUnit};
use crate::tree_path;
use rustc_hash::FxHashMap as HashMap;

/// What to export, and where.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// The directory to write into (default: the image's source tree). Another directory is
    /// written as a copy: every module held is compared with what is there and written if it
    /// differs; the image's agreement with its own tree does not move.
    pub to: Option<PathBuf>,
    /// Only these modules (default: all).
    pub modules: Vec<String>,
    /// Into another directory: write over files changed there since the last export (by
    /// default such an export writes nothing and lists them in
    /// [`ExportReport::would_overwrite`]).
    pub force: bool,
}

/// A file export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The module.
    pub module: String,
    /// The file, relative to the target directory.
    pub path: String,
    /// Whether the file is new.
    pub created: bool,
}

/// A module export did not write, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The module.
    pub module: String,
    /// Its file, relative to the target directory.
    pub path: String,
    /// Why it was not written.
    pub reason: String,
}

/// A definition in conflict that export left as the file has it (the image's side is kept in
/// the conflict record until it is settled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictKept {
    /// The module.
    pub module: String,
    /// The definition.
    pub name: String,
    /// The module's file, relative to the target directory.
    pub path: String,
}

/// What an export did.
#[derive(Clone, Debug, Default)]
pub struct ExportReport {
    /// The directory written into.
    pub target: String,
    /// Files written.
    pub written: Vec<Written>,
    /// Modules looked at whose files already held their text.
    pub unchanged: usize,
    /// Modules whose files had changed on disk: their changes were merged into the image
    /// first.
    pub merged: Vec<String>,
    /// Modules not written, for reasons of the whole file (unsafe paths, files in the way,
    /// files deleted while the image holds changes, files that do not parse, write failures).
    pub skipped: Vec<Skipped>,
    /// Into another directory: files changed there since the last export there (or never
    /// written by one) that the export would have written over; nothing was written.
    pub would_overwrite: Vec<String>,
    /// Definitions in conflict, left in their files as the files have them while the rest of
    /// their modules was written.
    pub conflicts: Vec<ConflictKept>,
    /// Files that do not parse, with their errors (for diagnostics).
    pub failures: Vec<FileFailure>,
    /// The image's generation after recording the export (none when nothing was recorded).
    pub generation: Option<u64>,
}

impl ExportReport {
    /// Whether every module asked for was written or already up to date, with no conflict
    /// left.
    pub fn is_clean(&self) -> bool {
        self.skipped.is_empty() && self.conflicts.is_empty() && self.would_overwrite.is_empty()
    }
}

/// Writes the image's modules as files.
///
/// # Examples
/// ```
/// use spry_image::{NoProgress, build, export, image::{Image, Origin}};
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.spry"), "{\n  _meta = {name = 'A}\n  x = 1\n}\n")?;
/// let mut image = Image::create(&dir.path().join(".spry-image"), dir.path())?;
/// build(&mut image, dir.path(), &Default::default(), &NoProgress)?;
/// let mut tx = image.begin(Origin::Live)?;
/// tx.put_definition("A", "x", b"x = 2")?;
/// tx.commit()?;
/// let report = export(&image, &Default::default())?;
/// assert_eq!(report.written.len(), 1);
/// assert_eq!(std::fs::read(dir.path().join("a.spry"))?, b"{\n  _meta = {name = 'A}\n  x = 2\n}\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::NoModule`] for a module asked for that the image does not hold; failures of the
/// image or of the target directory itself (not of single files: those are in the report).
pub fn export(image: &Image, options: &ExportOptions) -> Result<ExportReport> {
    let root = image.source_root();
    for name in &options.modules {
        if image.module(name)?.is_none() {
            return Err(Error::NoModule(name.clone()));
        }
    }
    match &options.to {
        Some(to) if !same_dir(to, &root) => export_copy(image, to, &options.modules, options.force),
        _ => export_to_source(image, &root, &options.modules),
    }
}

/// One file to write.
struct Job {
    module: String,
    path: String,
    full: PathBuf,
    text: Vec<u8>,
    created: bool,
}

fn export_to_source(image: &Image, root: &Path, only: &[String]) -> Result<ExportReport> {
    let mut export = ToSource::new(image, root);
    for name in export.select(only)? {
        export.read_current(name)?;
    }
    export.merge_changed_files()?;
    let jobs = export.assemble()?;
    let outcomes = write_all(root, jobs);
    export.record(outcomes)
}

/// A module export may write: its file (relative and resolved) and what the file holds now
/// (`None`: there is none).
struct Candidate {
    name: String,
    path: String,
    full: PathBuf,
    current: Option<Vec<u8>>,
}

/// A file changed on disk since the last build, to be merged into the image first.
struct ChangedFile {
    name: String,
    path: String,
    unit: SourceUnit,
    stamp: PathRecord,
}

/// The state `export_to_source` moves through its stages.
struct ToSource<'a> {
    image: &'a Image,
    root: &'a Path,
    report: ExportReport,
    /// Files changed on disk, merged into the image before anything is written.
    changed_files: Vec<ChangedFile>,
    candidates: Vec<Candidate>,
    /// Modules whose file already holds the text export would write: recorded, not written.
    in_place: Vec<(String, PathBuf, Vec<u8>)>,
    /// What was read of each module to assemble its text (its record and definition
    /// records), to mark it exported without reading it all again.
    read: HashMap<String, (ModuleRecord, HashMap<String, DefinitionRecord>)>,
}

impl<'a> ToSource<'a> {
    fn new(image: &'a Image, root: &'a Path) -> ToSource<'a> {
        ToSource {
            image,
            root,
            report: ExportReport {
                target: root.display().to_string(),
                ..ExportReport::default()
            },
            changed_files: Vec::new(),
            candidates: Vec::new(),
            in_place: Vec::new(),
            read: HashMap::default(),
        }
    }

    /// The modules to look at: those asked for, or those the `sync` table names.
    fn select(&self, only: &[String]) -> Result<Vec<String>> {
        let mut names: Vec<String> = if only.is_empty() {
            self.image
                .unsynced()?
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        } else {
            only.to_vec()
        };
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn skip(&mut self, module: &str, path: &str, reason: String) {
        self.report.skipped.push(Skipped {
            module: module.to_string(),
            path: path.to_string(),
            reason,
        });
    }

    /// Reads a module's file as it is now; a module that cannot be written is skipped, one
    /// whose file changed since the last build is to be merged first (as a build would: three
    /// ways, per definition).
    fn read_current(&mut self, name: String) -> Result<()> {
        let Some(record) = self.image.module(&name)? else {
            return Ok(());
        };
        if self.image.sync(&name)?.is_clean() {
            self.report.unchanged += 1;
            return Ok(());
        }
        let full = match tree_path::resolve(self.root, &record.path) {
            Ok(full) => full,
            Err(e) => {
                self.skip(&name, &record.path, e.to_string());
                return Ok(());
            }
        };
        let Some(current) = self.read_file(&name, &record.path, &full) else {
            return Ok(());
        };
        if self.check_file(&name, &record, &full, current.as_deref())? {
            self.candidates.push(Candidate {
                name,
                path: record.path,
                full,
                current,
            });
        }
        Ok(())
    }

    /// The file's bytes (`Some(None)`: no file); `None`: skipped. Never blocks on a FIFO put
    /// where the file was, never holds a huge file: at most [`default_read_limit`] of the size the image last read or
    /// wrote there for this module (a module built from a larger file with
    /// `build --max-file-size`).
    fn read_file(&mut self, name: &str, path: &str, full: &Path) -> Option<Option<Vec<u8>>> {
        let stamped = match self.image.path(path) {
            Ok(Some(stamp)) if stamp.module == name => Some(stamp.size),
            _ => None,
        };
        let limit = default_read_limit(stamped);
        let reason = match read_source(full, limit) {
            Ok(Source::Text(bytes)) => return Some(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(None),
            Ok(Source::TooLarge(size)) => {
                format!("the file is {size} bytes, more than {limit}: not read")
            }
            Ok(Source::NotAFile) => "not a regular file: not written over".to_string(),
            Err(e) => format!("cannot read it: {e}"),
        };
        self.skip(name, path, reason);
        None
    }

    /// Whether the file may be written over, compared with what the image last read there
    /// (its stamp); a file changed since is queued to be merged. `false`: skipped.
    fn check_file(
        &mut self,
        name: &str,
        record: &ModuleRecord,
        full: &Path,
        current: Option<&[u8]>,
    ) -> Result<bool> {
        let path = record.path.as_str();
        let stamp = self.image.path(path)?;
        let reason = match (current, &stamp) {
            (Some(_), Some(stamp)) if stamp.module != name => {
                format!("the file holds module `{}`", stamp.module)
            }
            (Some(bytes), None)
                if *bytes != self.image.assemble(name, &self.image.layout(name)?)? =>
            {
                "a file the image has not read is in the way; build first, or move it".to_string()
            }
            (Some(bytes), Some(stamp)) if Hash::of(bytes) != stamp.hash => {
                return self.changed_on_disk(name, path, full, bytes);
            }
            (None, Some(_)) => format!(
                "the file was deleted while the image holds changes it never had: `spry-image resolve {name} --take image` writes it back, `--take file` removes the module"
            ),
            _ => return Ok(true),
        };
        self.skip(name, path, reason);
        Ok(false)
    }

    /// A file changed on disk since the last build: queued to be merged if it still holds its
    /// module and parses. `false`: skipped.
    fn changed_on_disk(
        &mut self,
        name: &str,
        path: &str,
        full: &Path,
        bytes: &[u8],
    ) -> Result<bool> {
        let script = crate::tree_path::script_name(path);
        let reason = match parse_unit(path, bytes.to_vec(), script) {
            Ok(unit) if unit.name() == name => {
                // What was read is recorded as read, as a build would.
                let stamp = stamp_of(full, name, bytes)?;
                self.changed_files.push(ChangedFile {
                    name: name.to_string(),
                    path: path.to_string(),
                    unit,
                    stamp,
                });
                return Ok(true);
            }
            Ok(unit) => format!("the file now holds module `{}`; build first", unit.name()),
            Err(failure) => {
                self.report.failures.push(failure);
                "the file changed on disk and does not parse; fix it first".to_string()
            }
        };
        self.skip(name, path, reason);
        Ok(false)
    }

    /// The files' changes join the image's own: a merge, one commit.
    fn merge_changed_files(&mut self) -> Result<()> {
        if self.changed_files.is_empty() {
            return Ok(());
        }
        let mut tx = self.image.begin(Origin::Merge)?;
        for changed in std::mem::take(&mut self.changed_files) {
            tx.put_unit(PreparedUnit::new(&changed.unit), &changed.path)?;
            tx.put_path(&changed.path, &changed.stamp);
            self.report.merged.push(changed.name);
        }
        tx.commit()?;
        Ok(())
    }

    /// Each candidate's text as export writes it; the files to write.
    fn assemble(&mut self) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        for candidate in std::mem::take(&mut self.candidates) {
            if let Some(job) = self.assemble_one(candidate)? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// One module's text; `None` when there is nothing to write (skipped, or the file holds
    /// it already).
    fn assemble_one(&mut self, candidate: Candidate) -> Result<Option<Job>> {
        let Candidate {
            name,
            path,
            full,
            current,
        } = candidate;
        let sync = self.image.sync(&name)?;
        let record = self
            .image
            .module(&name)?
            .ok_or_else(|| Error::NoModule(name.clone()))?;
        for def in sync.conflicts.keys() {
            self.report.conflicts.push(ConflictKept {
                module: name.clone(),
                name: def.clone(),
                path: path.clone(),
            });
        }
        let spliced = match splice_reshape(self.image, &name, &record, &sync, current.as_deref())? {
            Some(spliced) => Some(spliced),
            None => splice_edits(self.image, &name, &record, &sync, current.as_deref())?,
        };
        if let Some((text, index)) = spliced {
            self.read.insert(name.clone(), (record, index));
            return Ok(Some(Job {
                module: name,
                path,
                full,
                created: false,
                text,
            }));
        }
        let index = self.image.definition_index(&name)?;
        let layout = self.image.layout(&name)?;
        let text = if sync.conflicts.is_empty() {
            // The file's bytes serve for every definition it holds as the image does.
            let file = current.as_deref().unwrap_or_default();
            Ok(self.image.assemble_with(&name, &layout, file, &index)?)
        } else {
            text_for_file(
                self.image,
                &name,
                &record,
                &layout,
                &sync,
                current.as_deref(),
            )?
        };
        let text = match text {
            Ok(text) => text,
            Err(reason) => {
                self.skip(&name, &path, reason);
                return Ok(None);
            }
        };
        self.read.insert(name.clone(), (record, index));
        if current.as_deref() == Some(text.as_slice()) {
            if sync.only_conflicts() {
                // Nothing but conflicts, which the file holds already: nothing to record.
                self.report.unchanged += 1;
            } else {
                self.in_place.push((name, full, text));
            }
            return Ok(None);
        }
        Ok(Some(Job {
            module: name,
            path,
            full,
            created: current.is_none(),
            text,
        }))
    }

    /// Records what is in the files now, once they are durable: one commit.
    fn record(mut self, outcomes: Vec<(Job, Result<PathRecord>)>) -> Result<ExportReport> {
        let mut tx = self.image.begin(Origin::Export)?;
        for (name, full, text) in std::mem::take(&mut self.in_place) {
            // Already there (a crash after writing, or both sides made the same change).
            let stamp = stamp_of(&full, &name, &text)?;
            mark(&mut tx, &mut self.read, &name, &stamp)?;
            tx.refresh_stale_chunks(&name, &text)?;
            self.report.unchanged += 1;
        }
        for (job, outcome) in outcomes {
            match outcome {
                Ok(stamp) => {
                    mark(&mut tx, &mut self.read, &job.module, &stamp)?;
                    tx.refresh_stale_chunks(&job.module, &job.text)?;
                    self.report.written.push(Written {
                        module: job.module,
                        path: job.path,
                        created: job.created,
                    });
                }
                Err(e) => self.skip(&job.module, &job.path, e.to_string()),
            }
        }
        self.report.generation = tx.commit()?;
        self.report.written.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(self.report)
    }
}

/// Marks `module` exported, with what was read of it to write it when there is that.
fn mark(
    tx: &mut crate::image::Transaction,
    read: &mut HashMap<String, (ModuleRecord, HashMap<String, DefinitionRecord>)>,
    module: &str,
    stamp: &PathRecord,
) -> Result<()> {
    match read.remove(module) {
        Some((record, index)) => tx.mark_exported_as_read(module, stamp, &record, &index),
        None => tx.mark_exported(module, stamp),
    }
}

/// At most this many edited definitions are spliced into a file one by one; more, and the
/// module is assembled whole.
const MOST_SPLICED: usize = 64;

/// Export of a module whose only changes since it agreed with its file are new texts of some
/// definitions (`SyncRecord::edited`): those texts put into the file as it is, each where the
/// one it replaces stands, with the records of those definitions (what marking it exported
/// needs), at the cost of the edits and one pass over the file's bytes per edit, without
/// reading the module's other records. `None` when that cannot be had (anything else
/// changed, the file is not the one last agreed on, a text stands in more than one place):
/// the module is then assembled whole.
///
/// The file is the module's text as it last agreed (its bytes hash to its stamp, nothing but
/// these texts changed since), so each old text stands in it between its two gaps; found there
/// exactly once, that is its place, and the result is the image's text of the module, which
/// each edit checked reads back the same (`Transaction::verify_edit`).
///
/// # Errors
/// A damaged image.
fn splice_edits(
    image: &Image,
    name: &str,
    record: &ModuleRecord,
    sync: &SyncRecord,
    current: Option<&[u8]>,
) -> Result<Option<Spliced>> {
    let Some(file) = current else {
        return Ok(None);
    };
    if sync.edited.is_empty()
        || sync.edited.len() > MOST_SPLICED
        || sync.edited_at != Some(record.generation)
        || !sync.conflicts.is_empty()
        || !sync.removed.is_empty()
        || sync.file_deleted
    {
        return Ok(None);
    }
    if !file_last_agreed(image, name, record, file)? {
        return Ok(None);
    }
    // Each edit as the bytes to find (the old text between its gaps), where in them the old
    // text starts and ends, and the new text.
    let mut edits = Vec::with_capacity(sync.edited.len());
    let mut index = HashMap::default();
    for def in &sync.edited {
        let Some(now) = image.definition(name, def)? else {
            return Ok(None);
        };
        let Some(base) = now.base else {
            return Ok(None);
        };
        if base != now.hash {
            let around = image.order_around(name, now.position, 0, 1)?;
            let [(at, named, before), (_, _, after)] = around.as_slice() else {
                return Ok(None);
            };
            if *at != now.position || named != def {
                return Ok(None);
            }
            let old = image.text(&base)?;
            let pattern = [before.as_slice(), &old, after.as_slice()].concat();
            let span = before.len()..before.len() + old.len();
            edits.push((pattern, span, image.text(&now.hash)?));
        }
        index.insert(def.clone(), now);
    }
    // Room for every edit at once (see `splice_reshape`).
    let most = file.len() + edits.iter().map(|(_, _, new)| new.len()).sum::<usize>();
    let mut text = Vec::with_capacity(most);
    text.extend_from_slice(file);
    for (pattern, span, new) in edits {
        let Some(place) = only_place(&text, &pattern) else {
            return Ok(None);
        };
        text.splice(place + span.start..place + span.end, new);
    }
    Ok(Some((text, index)))
}

/// Export of a module whose only changes since it agreed with its file are definitions added,
/// removed or given new texts by live edits (`SyncRecord::reshaped`), in any mix: those
/// changes made to the file as it is, one by one in the order made, with the records of the
/// definitions added or edited (what marking it exported needs), at the cost of the
/// definitions and one pass over the file's bytes per change, without reading the module's
/// other records. `None` when that cannot be had
/// (anything else changed, the file is not the one last agreed on, the bytes to change are not
/// found in exactly one place): the module is then assembled whole.
///
/// The file is the module's text as it last agreed, and each change was noted against the
/// text the ones before made, so the bytes each replaces stand in the text made so far (they
/// hold a definition's text, or the closing gap at the end); found there exactly once, that
/// is their place, and the result is the image's text of the module, which each edit checked
/// reads back the same (`Transaction::verify_edit`).
///
/// # Errors
/// A damaged image.
fn splice_reshape(
    image: &Image,
    name: &str,
    record: &ModuleRecord,
    sync: &SyncRecord,
    current: Option<&[u8]>,
) -> Result<Option<Spliced>> {
    let (Some(file), Some(last)) = (current, sync.reshaped.last()) else {
        return Ok(None);
    };
    let by_them = |def: &String| sync.reshaped.iter().any(|r| r.name == *def);
    if last.generation != record.generation
        || !sync.edited.iter().all(by_them)
        || !sync.conflicts.is_empty()
        || !sync.removed.keys().all(by_them)
        || sync.file_deleted
    {
        return Ok(None);
    }
    if !file_last_agreed(image, name, record, file)? {
        return Ok(None);
    }
    let bytes = |spans: &[Span]| -> Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        for span in spans {
            match span {
                Span::Gap(gap) => out.extend_from_slice(gap),
                Span::Text(hex) => match Hash::from_hex(hex) {
                    Some(hash) => out.extend_from_slice(&image.text(&hash)?),
                    None => return Ok(None),
                },
            }
        }
        Ok(Some(out))
    };
    let mut changes = Vec::with_capacity(sync.reshaped.len());
    for reshape in &sync.reshaped {
        let (Some(from), Some(to)) = (bytes(&reshape.from)?, bytes(&reshape.to)?) else {
            return Ok(None);
        };
        changes.push((reshape, from, to));
    }
    // Room for every change at once: growing a big module's text by doubling would hold
    // three of it.
    let most = file.len() + changes.iter().map(|(_, _, to)| to.len()).sum::<usize>();
    let mut text = Vec::with_capacity(most);
    text.extend_from_slice(file);
    let mut index = HashMap::default();
    for (reshape, from, to) in changes {
        let place = if reshape.at_end {
            text.ends_with(&from).then(|| text.len() - from.len())
        } else {
            only_place(&text, &from)
        };
        let Some(place) = place else {
            return Ok(None);
        };
        text.splice(place..place + from.len(), to);
        if !index.contains_key(&reshape.name)
            && let Some(now) = image.definition(name, &reshape.name)?
        {
            index.insert(reshape.name.clone(), now);
        }
    }
    Ok(Some((text, index)))
}

/// A module's text made by a splice, with the records of the definitions it wrote (what
/// marking it exported needs).
type Spliced = (Vec<u8>, HashMap<String, DefinitionRecord>);

/// Whether `file` is the module's file as it last agreed with the image: its stamp names the
/// module and the bytes hash to the stamp's hash. What a splice into it starts from.
///
/// # Errors
/// A damaged image.
fn file_last_agreed(image: &Image, name: &str, record: &ModuleRecord, file: &[u8]) -> Result<bool> {
    Ok(image
        .path(&record.path)?
        .is_some_and(|stamp| stamp.module == name && stamp.hash == Hash::of(file)))
}

/// Where `needle` stands in `haystack`, if it stands there exactly once.
fn only_place(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let finder = memchr::memmem::Finder::new(needle);
    let first = finder.find(haystack)?;
    let rest = haystack.get(first + 1..)?;
    finder.find(rest).is_none().then_some(first)
}

/// What export writes for a module in conflict: its image text, except that each definition
/// in conflict stays as the file has it (`current`), and the image keeps its side in the
/// conflict record.
/// `Err` (why) when that text cannot be made: the file is gone, or the result would not read
/// back as the definitions it was made of.
fn text_for_file(
    image: &Image,
    name: &str,
    record: &ModuleRecord,
    layout: &Layout,
    sync: &SyncRecord,
    current: Option<&[u8]>,
) -> Result<std::result::Result<Vec<u8>, String>> {
    let Some(current) = current else {
        return Ok(Err(
            "in conflict, and its file is gone: settle it with `spry-image resolve`".to_string(),
        ));
    };
    let mut gaps = layout.gaps.clone();
    if gaps.len() != layout.names.len() + 1 {
        return Err(Error::corrupt(format!(
            "module `{name}`: its layout does not fit its definitions"
        )));
    }
    let mut order: Vec<(String, Vec<u8>)> = Vec::with_capacity(layout.names.len());
    let mut dropped = Vec::new();
    for (i, def) in layout.names.iter().enumerate() {
        match sync.conflict(def) {
            Some(Some(file)) => order.push((def.clone(), image.text(&file)?)),
            // The file removed it: it stays removed there.
            Some(None) => dropped.push(i),
            None => order.push((def.clone(), image.definition_text(name, def)?)),
        }
    }
    for at in dropped.into_iter().rev() {
        drop_slot(&mut gaps, at);
    }
    // Conflicts the image removed and the file changed: the file's text stays where the file
    // has it, after the nearest definition before it that the image has too.
    let file_only: Vec<(&String, Hash)> = sync
        .conflicts
        .keys()
        .filter(|def| !layout.names.contains(def))
        .filter_map(|def| sync.conflict(def).flatten().map(|h| (def, h)))
        .collect();
    if !file_only.is_empty() {
        let script = crate::tree_path::script_name(&record.path);
        let Ok(unit) = SourceUnit::parse(current.to_vec(), script) else {
            return Ok(Err("the file does not parse; fix it first".to_string()));
        };
        let file_gaps: Vec<&[u8]> = unit
            .pieces()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Gap(gap) => Some(gap),
                Piece::Definition(..) => None,
            })
            .collect();
        let file_names: Vec<&str> = unit.definitions().iter().map(|d| d.name.as_str()).collect();
        for (def, hash) in file_only {
            let Some(i) = file_names.iter().position(|n| *n == def) else {
                continue;
            };
            let after = file_names[..i]
                .iter()
                .rev()
                .find_map(|prev| order.iter().position(|(o, _)| o == prev));
            let at = after.map_or(0, |p| p + 1);
            let (gap, slot) = if at == 0 {
                (file_gaps.get(i + 1), 1)
            } else {
                (file_gaps.get(i), at)
            };
            order.insert(at, (def.clone(), image.text(&hash)?));
            let gap = gap.map_or_else(|| b"\n".to_vec(), |g| g.to_vec());
            gaps.insert(slot.min(gaps.len()), gap);
        }
    }
    let mut out = Vec::new();
    for (i, gap) in gaps.iter().enumerate() {
        out.extend_from_slice(gap);
        if let Some((_, text)) = order.get(i) {
            out.extend_from_slice(text);
        }
    }
    // Texts of two sides side by side may read differently than each did alone.
    let script = crate::tree_path::script_name(&record.path);
    let reads_back = SourceUnit::parse(out.clone(), script).is_ok_and(|unit| {
        unit.name() == name
            && unit.definitions().len() == order.len()
            && order.iter().enumerate().all(|(i, (def, text))| {
                unit.definitions()[i].name == *def && unit.definition_text(i) == text.as_slice()
            })
    });
    if !reads_back {
        return Ok(Err(
            "with its conflicts kept as the file has them, the file would read back differently: settle them with `spry-image resolve`"
                .to_string(),
        ));
    }
    Ok(Ok(out))
}

fn export_copy(image: &Image, to: &Path, only: &[String], force: bool) -> Result<ExportReport> {
    std::fs::create_dir_all(to).with_path(to)?;
    let mut copy = ToCopy {
        image,
        to,
        source: image.source_root(),
        in_name_order: only.is_empty(),
        manifest: image.copy_manifest(to)?,
        report: ExportReport {
            target: to.display().to_string(),
            ..ExportReport::default()
        },
    };
    let modules = copy.select(only)?;
    // Into an empty directory (a first export there), every file is new: nothing to find
    // or compare, file by file. `create` still makes each with `create_new`, which never
    // writes over a file that appeared since.
    let to_write = if is_empty_dir(to) {
        modules.into_iter().map(|name| (name, true)).collect()
    } else {
        copy.compare(modules)
    };
    copy.report.would_overwrite.sort();
    if !copy.report.would_overwrite.is_empty() && !force {
        copy.report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        return Ok(copy.report);
    }
    copy.report.would_overwrite.clear();
    let (to_create, to_replace): (Vec<_>, Vec<_>) =
        to_write.into_iter().partition(|(_, created)| *created);
    copy.create(to_create.into_iter().map(|(name, _)| name).collect());
    copy.write(to_replace.into_iter().map(|(name, _)| name).collect());
    image.set_copy_manifest(to, &copy.manifest)?;
    copy.report.written.sort_by(|a, b| a.path.cmp(&b.path));
    copy.report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(copy.report)
}

/// Whether `dir` holds nothing (one look; a directory that cannot be read is not known to be
/// empty).
fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// A copy's modules go through in batches of this many: texts are assembled, compared and
/// written a batch at a time, so memory holds a batch, not the image.
const COPY_BATCH: usize = 1024;

/// An export into another directory, moved through its stages.
struct ToCopy<'a> {
    image: &'a Image,
    to: &'a Path,
    /// The image's own tree, whose files usually hold their modules' texts whole.
    source: PathBuf,
    /// Whether the modules go in name order, every one of them: a batch is then a run of the
    /// image's modules, read by one range read of each table ([`Image::module_parts`]).
    in_name_order: bool,
    /// What the last export there wrote, path by path (its text's hash).
    manifest: std::collections::BTreeMap<String, String>,
    report: ExportReport,
}

impl ToCopy<'_> {
    /// The modules to copy: all, or those named (that the image holds).
    fn select(&self, only: &[String]) -> Result<Vec<String>> {
        if only.is_empty() {
            return self.image.module_names();
        }
        let mut out = Vec::new();
        for name in only {
            if self.image.module(name)?.is_some() {
                out.push(name.clone());
            }
        }
        Ok(out)
    }

    /// Each module's record, read by key (in parallel); a module gone or unreadable is skipped.
    fn records(&mut self, names: &[String]) -> Vec<(String, ModuleRecord)> {
        let read: Vec<(String, Result<Option<ModuleRecord>>)> = names
            .par_iter()
            .map(|name| (name.clone(), self.image.module(name)))
            .collect();
        self.readable(read)
    }

    /// Each module's parts (record, layout, definition records): by range over a run of the
    /// image's modules, else one module at a time. A module gone is left out, one that cannot
    /// be read is skipped.
    fn parts(&mut self, names: &[String]) -> Vec<(String, ModuleParts)> {
        let read = if self.in_name_order {
            self.image.module_parts(names)
        } else {
            names
                .iter()
                .flat_map(|name| self.image.module_parts(std::slice::from_ref(name)))
                .collect()
        };
        self.readable(read)
    }

    /// What was read of each module: a module gone is left out, one that could not be read is
    /// skipped (and reported).
    fn readable<T>(&mut self, read: Vec<(String, Result<Option<T>>)>) -> Vec<(String, T)> {
        let mut out = Vec::with_capacity(read.len());
        for (name, value) in read {
            match value {
                Ok(Some(value)) => out.push((name, value)),
                Ok(None) => {}
                Err(e) => self.skip_module(name, String::new(), &e),
            }
        }
        out
    }

    fn skip_module(&mut self, module: String, path: String, e: &Error) {
        self.report.skipped.push(Skipped {
            module,
            path,
            reason: e.to_string(),
        });
    }

    /// Compares each module with the file there (a batch at a time, in parallel; a module that
    /// fails is skipped, not fatal): the same text is kept, a file the last export did not
    /// leave as it is now would be written over. Returns the modules to write, without their
    /// texts (assembled again when written), each with whether nothing was there. Only the
    /// modules whose files are there have their texts assembled here.
    fn compare(&mut self, modules: Vec<String>) -> Vec<(String, bool)> {
        let mut to_write = Vec::new();
        for names in modules.chunks(COPY_BATCH) {
            let batch = self.records(names);
            let found: Vec<std::result::Result<Found, Skipped>> = batch
                .par_iter()
                .map(|(name, record)| find_copy(self.to, name, record))
                .collect();
            let mut there = Vec::new();
            for ((name, record), found) in batch.into_iter().zip(found) {
                match found {
                    Ok((_, None)) => to_write.push((name, true)),
                    Ok((full, Some(current))) => there.push((name, record.path, full, current)),
                    Err(skipped) => self.report.skipped.push(skipped),
                }
            }
            if there.is_empty() {
                continue;
            }
            let names: Vec<String> = there.iter().map(|t| t.0.clone()).collect();
            let mut parts: HashMap<String, ModuleParts> = self.parts(&names).into_iter().collect();
            let compared: Vec<(String, std::result::Result<Copy, Skipped>)> = there
                .into_iter()
                .filter_map(|(name, path, full, current)| {
                    let parts = parts.remove(&name)?;
                    Some((name, path, full, current, parts))
                })
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|(name, path, full, current, parts)| {
                    let outcome =
                        compare_copy(self.image, &self.source, &name, &parts, full, Some(current))
                            .map_err(|e| Skipped {
                                module: name.clone(),
                                path,
                                reason: e.to_string(),
                            });
                    (name, outcome)
                })
                .collect();
            for (name, outcome) in compared {
                match outcome {
                    Ok(Copy::Write(job, found)) => {
                        // A file there that the last export did not leave as it is now: edited
                        // there (or never written by an export); never written over silently.
                        if let Some(found) = found
                            && self.manifest.get(&job.path) != Some(&found.to_hex())
                        {
                            self.report.would_overwrite.push(job.path.clone());
                        }
                        to_write.push((name, job.created));
                    }
                    Ok(Copy::Same(path, hash)) => {
                        self.manifest.insert(path, hash.to_hex());
                        self.report.unchanged += 1;
                    }
                    Err(skipped) => self.report.skipped.push(skipped),
                }
            }
        }
        to_write
    }

    /// Writes the modules whose files were not there when compared, a batch at a time: each
    /// file made at its place with `create_new`, which never replaces anything (a file that
    /// appeared there since is left alone, and its module skipped), so no temporary file and
    /// no rename is needed. From [`SYNCFS_MIN_FILES`] files on, one `syncfs` at the end makes
    /// them all durable (below, an fsync each and of their directories); only then does the
    /// manifest take them. A crash before leaves files that no manifest names: the next
    /// export there adopts those that hold their text and, unless forced, writes over none of
    /// the others (a file cut short by the crash is to it a file changed there).
    fn create(&mut self, modules: Vec<String>) {
        let many = modules.len() >= SYNCFS_MIN_FILES && cfg!(target_os = "linux");
        let mut made: Vec<(String, String, PathBuf, Hash)> = Vec::new();
        let mut early = EarlySync::default();
        let batches = modules.len().div_ceil(COPY_BATCH);
        for (i, names) in modules.chunks(COPY_BATCH).enumerate() {
            if many && i > 0 && i + 1 < batches {
                // The batches before this one go to disk while it is made.
                early.start(self.to);
            }
            let batch = self.parts(names);
            let outcomes: Vec<(&String, &ModuleParts, Result<Made>)> = batch
                .par_iter()
                .map(|(name, parts)| {
                    let made = create_copy(self.image, self.to, &self.source, name, parts, !many);
                    (name, parts, made)
                })
                .collect();
            for (name, parts, outcome) in outcomes {
                let path = parts.record.path.clone();
                match outcome {
                    Ok((full, hash)) => made.push((name.clone(), path, full, hash)),
                    Err(e) => self.skip_module(name.clone(), path, &e),
                }
            }
        }
        if made.is_empty() {
            return;
        }
        early.finish();
        let durable = if many {
            sync_file_system(self.to)
        } else {
            let mut dirs: Vec<&Path> = made.iter().filter_map(|m| m.2.parent()).collect();
            dirs.sort();
            dirs.dedup();
            dirs.into_iter().try_for_each(sync_dir)
        }
        .map_err(Arc::new);
        for (module, path, _, hash) in made {
            match &durable {
                Ok(()) => {
                    self.manifest.insert(path.clone(), hash.to_hex());
                    self.report.written.push(Written {
                        module,
                        path,
                        created: true,
                    });
                }
                Err(e) => self.report.skipped.push(Skipped {
                    module,
                    path,
                    reason: Error::NotDurable {
                        what: "written, but could not be made durable".to_string(),
                        source: Arc::clone(e),
                    }
                    .to_string(),
                }),
            }
        }
    }

    /// Writes the modules whose files were there, a batch at a time, each file atomically.
    fn write(&mut self, modules: Vec<String>) {
        for names in modules.chunks(COPY_BATCH) {
            let batch = self.parts(names);
            let mut jobs = Vec::with_capacity(batch.len());
            let prepared: Vec<std::result::Result<Copy, Skipped>> = batch
                .par_iter()
                .map(|(name, parts)| {
                    let (full, current) = find_copy(self.to, name, &parts.record)?;
                    compare_copy(self.image, &self.source, name, parts, full, current).map_err(
                        |e| Skipped {
                            module: name.clone(),
                            path: parts.record.path.clone(),
                            reason: e.to_string(),
                        },
                    )
                })
                .collect();
            for outcome in prepared {
                match outcome {
                    Ok(Copy::Write(job, _)) => jobs.push(job),
                    // Changed since the comparison: nothing can, as the image is held.
                    Ok(Copy::Same(path, hash)) => {
                        self.manifest.insert(path, hash.to_hex());
                    }
                    Err(skipped) => self.report.skipped.push(skipped),
                }
            }
            for (job, outcome) in write_all(self.to, jobs) {
                match outcome {
                    Ok(_) => {
                        self.manifest
                            .insert(job.path.clone(), Hash::of(&job.text).to_hex());
                        self.report.written.push(Written {
                            module: job.module,
                            path: job.path,
                            created: job.created,
                        });
                    }
                    Err(e) => self.report.skipped.push(Skipped {
                        module: job.module,
                        path: job.path,
                        reason: e.to_string(),
                    }),
                }
            }
        }
    }
}

/// A module's file in a copy (resolved) and what it holds now (`None`: nothing is there).
type Found = (PathBuf, Option<Vec<u8>>);

/// Where a module's file goes in a copy, and what is there now.
fn find_copy(to: &Path, name: &str, record: &ModuleRecord) -> std::result::Result<Found, Skipped> {
    let skip = |reason: String| Skipped {
        module: name.to_string(),
        path: record.path.clone(),
        reason,
    };
    let full = tree_path::resolve(to, &record.path).map_err(|e| skip(e.to_string()))?;
    let current = match read_source(&full, DEFAULT_MAX_FILE_SIZE) {
        Ok(Source::Text(bytes)) => Some(bytes),
        // Too large to be this module's text: written over, as any other text.
        Ok(Source::TooLarge(_)) => Some(Vec::new()),
        Ok(Source::NotAFile) => {
            return Err(skip("not a regular file: not written over".to_string()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(skip(format!("cannot read it: {e}"))),
    };
    Ok((full, current))
}

/// One module's text for a copy, compared with what is there (`current`).
///
/// # Errors
/// A damaged image.
fn compare_copy(
    image: &Image,
    source: &Path,
    name: &str,
    parts: &ModuleParts,
    full: PathBuf,
    current: Option<Vec<u8>>,
) -> Result<Copy> {
    let text = copy_text(image, source, name, parts)?;
    if current.as_deref() == Some(text.as_slice()) {
        return Ok(Copy::Same(parts.record.path.clone(), Hash::of(&text)));
    }
    Ok(Copy::Write(
        Job {
            module: name.to_string(),
            path: parts.record.path.clone(),
            full,
            created: current.is_none(),
            text,
        },
        current.map(|c| Hash::of(&c)),
    ))
}

/// A module's whole text for a copy: the text `Image::assemble` gives, made mostly from the
/// module's file in the image's own tree, which usually holds it already (the tree was built
/// from it, or exported to). `Image::assemble_with` walks the layout along that file and takes
/// each definition it holds from its bytes, checked against the definition's hash, and every
/// gap from the layout; only what the file does not hold (a live edit not yet exported, a
/// file changed or gone) is read from the store, a point read and a decompression each. The
/// bytes are the same either way.
///
/// # Errors
/// A damaged image.
fn copy_text(image: &Image, source: &Path, name: &str, parts: &ModuleParts) -> Result<Vec<u8>> {
    let held = tree_path::check_relative(&parts.record.path)
        .ok()
        .and_then(
            |()| match read_source(&source.join(&parts.record.path), DEFAULT_MAX_FILE_SIZE) {
                Ok(Source::Text(bytes)) => Some(bytes),
                _ => None,
            },
        )
        .unwrap_or_default();
    image.assemble_with(name, &parts.layout, &held, &parts.index)
}

/// A file `create_copy` made, and the hash of its text.
type Made = (PathBuf, Hash);

/// Makes a module's file in a copy, where nothing was when compared: the file with
/// `create_new` (it fails if anything is there by now), and its directories first when they
/// are missing; fsynced with `fsync`. Returns the file and the hash of its text. A file this
/// call made and could not fill is removed again: half a text is nobody's edit.
fn create_copy(
    image: &Image,
    to: &Path,
    source: &Path,
    name: &str,
    parts: &ModuleParts,
    fsync: bool,
) -> Result<Made> {
    use std::io::Write;
    let record = &parts.record;
    let full = tree_path::resolve(to, &record.path)?;
    let text = copy_text(image, source, name, parts)?;
    let parent = full
        .parent()
        .ok_or_else(|| Error::invalid(format!("`{}` has no directory", record.path)))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        // Read and write for all, narrowed by the umask, as for any file a program creates.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o666);
    }
    let opened = open_new(|| options.open(&full), || create_dirs(to, parent, fsync))?;
    let mut file = opened.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::invalid(format!(
                "`{}` appeared there since it was compared: not written over",
                record.path
            ))
        } else {
            Error::io(&full, e)
        }
    })?;
    let written = file
        .write_all(&text)
        .and_then(|()| if fsync { file.sync_all() } else { Ok(()) });
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(&full);
        return Err(Error::io(&full, e));
    }
    Ok((full, Hash::of(&text)))
}

/// A `syncfs` running beside the writing of the next batch, so the disk takes the batches
/// written so far while the next is made, and the final `syncfs` finds little left to do.
/// Makes nothing durable on its own: only the final one counts, and its error.
#[derive(Default)]
struct EarlySync(Option<std::thread::JoinHandle<()>>);

impl EarlySync {
    /// Starts a `syncfs` of the file system `root` is on, unless one is still running.
    fn start(&mut self, root: &Path) {
        if self
            .0
            .as_ref()
            .is_some_and(|running| !running.is_finished())
        {
            return;
        }
        self.finish();
        let root = root.to_path_buf();
        self.0 = Some(std::thread::spawn(move || {
            let _ = sync_file_system(&root);
        }));
    }

    /// Waits for the running `syncfs`, if any.
    fn finish(&mut self) {
        if let Some(running) = self.0.take() {
            let _ = running.join();
        }
    }
}

/// Opens a new file with `open`, making its directories with `make_dirs` first when `open`
/// finds one missing, and trying once more: one `open` per file where the directories exist,
/// rather than a `stat` and an `open`. A missing directory is not asked about again before it
/// is made: another thread may have made it in between (`make_dirs` makes only what is still
/// missing), and the first `open`'s error would then be given for a file that can be made.
fn open_new<F>(
    mut open: impl FnMut() -> std::io::Result<F>,
    make_dirs: impl FnOnce() -> Result<()>,
) -> Result<std::io::Result<F>> {
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            make_dirs()?;
            Ok(open())
        }
        opened => Ok(opened),
    }
}

/// What exporting one module into another directory comes to.
enum Copy {
    /// The file there holds the text already (its path and hash).
    Same(String, Hash),
    /// To write, with the hash of what is there now (`None`: nothing).
    Write(Job, Option<Hash>),
}

/// From this many files on, one `syncfs` makes them durable instead of an fsync each: one
/// call instead of thousands (it flushes the whole file system, which costs little more when
/// that many files are waiting anyway).
const SYNCFS_MIN_FILES: usize = 64;

/// Writes every job atomically: all temporary files written (in parallel), made durable,
/// renamed into place, and the directories made durable. Returns each job with the stamp of
/// what is now on disk, or why it failed.
fn write_all(root: &Path, jobs: Vec<Job>) -> Vec<(Job, Result<PathRecord>)> {
    let many = jobs.len() >= SYNCFS_MIN_FILES && cfg!(target_os = "linux");
    let staged: Vec<(Job, Result<tempfile::TempPath>)> = jobs
        .into_par_iter()
        .map(|job| {
            let temp = stage(root, &job, !many);
            (job, temp)
        })
        .collect();
    let mut staged = staged;
    if many && let Err(e) = sync_file_system(root) {
        let e = Arc::new(e);
        for (_, temp) in &mut staged {
            if temp.is_ok() {
                *temp = Err(Error::NotDurable {
                    what: "could not be made durable".to_string(),
                    source: Arc::clone(&e),
                });
            }
        }
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut out = Vec::with_capacity(staged.len());
    for (job, temp) in staged {
        let result = temp.and_then(|temp| {
            temp.persist(&job.full)
                .map_err(|e| Error::io(&job.full, e.error))?;
            if let Some(parent) = job.full.parent() {
                dirs.push(parent.to_path_buf());
            }
            stamp_of(&job.full, &job.module, &job.text)
        });
        out.push((job, result));
    }
    dirs.sort();
    dirs.dedup();
    let synced: Vec<(PathBuf, Result<(), Arc<Error>>)> = if many {
        let result = sync_file_system(root).map_err(Arc::new);
        dirs.into_iter().map(|d| (d, result.clone())).collect()
    } else {
        dirs.into_par_iter()
            .map(|dir| {
                let result = sync_dir(&dir).map_err(Arc::new);
                (dir, result)
            })
            .collect()
    };
    for (dir, result) in synced {
        if let Err(e) = result {
            // The files are in place but their names may not survive a power cut: say so
            // for each file of that directory.
            for (job, outcome) in &mut out {
                if job.full.parent() == Some(dir.as_path()) && outcome.is_ok() {
                    *outcome = Err(Error::NotDurable {
                        what: "written, but its directory could not be synced".to_string(),
                        source: Arc::clone(&e),
                    });
                }
            }
        }
    }
    out
}

/// Flushes the whole file system `root` is on to disk (Linux `syncfs`).
#[cfg(target_os = "linux")]
fn sync_file_system(root: &Path) -> Result<()> {
    let dir = std::fs::File::open(root).with_path(root)?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::io(root, e.into()))
}

#[cfg(not(target_os = "linux"))]
fn sync_file_system(_root: &Path) -> Result<()> {
    Err(Error::invalid("syncfs is only used on Linux"))
}

/// Writes a job's text into a temporary file beside its target (fsynced with `fsync`).
fn stage(root: &Path, job: &Job, fsync: bool) -> Result<tempfile::TempPath> {
    use std::io::Write;
    let parent = job
        .full
        .parent()
        .ok_or_else(|| Error::invalid(format!("`{}` has no directory", job.path)))?;
    if !parent.is_dir() {
        create_dirs(root, parent, true)?;
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix(".spry-image-").suffix(".tmp");
    #[cfg(unix)]
    {
        // Read and write for all, which `open` narrows by the umask, as for any file a
        // program creates (tempfile's own default is 0600).
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut file = builder.tempfile_in(parent).with_path(parent)?;
    keep_mode_and_owner(file.as_file(), &job.full)?;
    file.write_all(&job.text).with_path(&job.full)?;
    if fsync {
        file.as_file().sync_all().with_path(&job.full)?;
    }
    Ok(file.into_temp_path())
}

/// A file rewritten keeps its mode (an executable script its x bit) and, where the process
/// may, its owner and group; a new file keeps what it was created with.
#[cfg(unix)]
fn keep_mode_and_owner(temp: &std::fs::File, target: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(old) = std::fs::symlink_metadata(target) else {
        return Ok(());
    };
    if !old.is_file() {
        return Ok(());
    }
    temp.set_permissions(old.permissions()).with_path(target)?;
    let mine = temp.metadata().with_path(target)?;
    if (mine.uid(), mine.gid()) != (old.uid(), old.gid()) {
        // Only root may give a file away; a group the user is in may be kept. Failing that,
        // the file is the writer's, as with any editor's save.
        let _ = std::os::unix::fs::fchown(temp, Some(old.uid()), Some(old.gid()))
            .or_else(|_| std::os::unix::fs::fchown(temp, None, Some(old.gid())));
        // chown may clear set-id bits: the mode once more.
        temp.set_permissions(old.permissions()).with_path(target)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn keep_mode_and_owner(temp: &std::fs::File, target: &Path) -> Result<()> {
    if let Ok(old) = std::fs::metadata(target) {
        temp.set_permissions(old.permissions()).with_path(target)?;
    }
    Ok(())
}

/// Creates the directories down to `dir` (inside `root`), each made durable in its parent
/// with `sync` (else a later `syncfs` does it).
fn create_dirs(root: &Path, dir: &Path, sync: bool) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() && at != root {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for made in missing.iter().rev() {
        match std::fs::create_dir(made) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(made, e)),
        }
        if let Some(parent) = made.parent().filter(|_| sync) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_path(dir)
}

/// The stamp of a file just written (or found) with `text` (what the image records as agreed
/// with it).
fn stamp_of(full: &Path, module: &str, text: &[u8]) -> Result<PathRecord> {
    let stamped_ns = now_ns();
    let meta = std::fs::metadata(full).with_path(full)?;
    Ok(PathRecord {
        module: module.to_string(),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        ctime_ns: ctime_ns(&meta),
        inode: inode(&meta),
        hash: Hash::of(text),
        stamped_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (`export --to` said "No such file or directory" now and then): the open that
    /// found the directory missing is tried again after `make_dirs`, even when another thread
    /// made the directory meanwhile and `make_dirs` has nothing left to do.
    #[test]
    fn regression_a_directory_made_by_another_thread_meanwhile_does_not_fail_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let file = sub.join("a.spry");
        let mut tries = 0;
        let opened = open_new(
            || {
                tries += 1;
                if tries == 1 {
                    // Missing when this thread looked; made by another one right after.
                    let missing = std::fs::File::open(&file).map(|_| ());
                    std::fs::create_dir(&sub).unwrap();
                    missing?;
                }
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)
            },
            || create_dirs(dir.path(), &sub, false),
        )
        .unwrap();
        assert!(opened.is_ok(), "{opened:?}");
        assert_eq!(tries, 2);
        assert!(file.is_file());
    }

    /// `create_copy` makes a file only where nothing is: one that appeared since the
    /// comparison is never written over, and its module is not counted as written.
    #[test]
    fn a_copy_never_creates_over_a_file_that_appeared_since_the_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let text = "{_meta = {name = 'A} x = 1}\n";
        std::fs::write(tree.join("a.spry"), text).unwrap();
        let mut image = Image::create(&tree.join(".spry-image"), &tree).unwrap();
        crate::build(&mut image, &tree, &Default::default(), &crate::NoProgress).unwrap();
        let parts = image.module_parts(&["A".to_string()]).remove(0).1;
        let parts = parts.unwrap().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();

        std::fs::write(out.join("a.spry"), "mine").unwrap();
        let refused = create_copy(&image, &out, &tree, "A", &parts, false).unwrap_err();
        assert!(
            refused.to_string().contains("not written over"),
            "{refused}"
        );
        assert_eq!(std::fs::read(out.join("a.spry")).unwrap(), b"mine");

        std::fs::remove_file(out.join("a.spry")).unwrap();
        let (full, hash) = create_copy(&image, &out, &tree, "A", &parts, true).unwrap();
        assert_eq!(full, out.join("a.spry"));
        assert_eq!(std::fs::read(&full).unwrap(), text.as_bytes());
        assert_eq!(hash, Hash::of(text.as_bytes()));
    }

    /// One live edit of a module: a definition put (new or replaced) or removed.
    enum Edit {
        Put(&'static str, &'static str),
        Rm(&'static str),
    }

    /// An image built from a tree holding one module file, `a.spry`.
    struct Built {
        _dir: tempfile::TempDir,
        tree: std::path::PathBuf,
        image: Image,
        module: String,
    }

    impl Built {
        /// `file` written as `a.spry` and built.
        fn new(file: &str) -> Built {
            let dir = tempfile::tempdir().unwrap();
            let tree = dir.path().join("tree");
            std::fs::create_dir(&tree).unwrap();
            std::fs::write(tree.join("a.spry"), file).unwrap();
            let mut image = Image::create(&tree.join(".spry-image"), &tree).unwrap();
            crate::build(&mut image, &tree, &Default::default(), &crate::NoProgress).unwrap();
            let module = image.module_names().unwrap().into_iter().next();
            Built {
                _dir: dir,
                tree,
                image,
                module: module.expect("a module"),
            }
        }

        /// Makes `edits`, each a live edit in a transaction of its own; `false` when one is
        /// refused (it is then left out).
        fn edit(&self, edits: &[Edit]) -> bool {
            let mut applied = true;
            for edit in edits {
                let mut tx = self.image.begin(Origin::Live).unwrap();
                let done = match edit {
                    Edit::Put(name, text) => tx.put_definition(&self.module, name, text.as_bytes()),
                    Edit::Rm(name) => tx.remove_definition(&self.module, name),
                };
                match done {
                    Ok(()) => {
                        tx.commit().unwrap();
                    }
                    Err(_) => applied = false,
                }
            }
            applied
        }

        /// What `splice_reshape` makes of `file` (`None`: the module is to be assembled).
        fn spliced(&self, file: &[u8]) -> Option<Vec<u8>> {
            let record = self.image.module(&self.module).unwrap().unwrap();
            let sync = self.image.sync(&self.module).unwrap();
            splice_reshape(&self.image, &self.module, &record, &sync, Some(file))
                .unwrap()
                .map(|(text, _)| text)
        }

        /// The module's file as it is now.
        fn file(&self) -> Vec<u8> {
            std::fs::read(self.tree.join("a.spry")).unwrap()
        }

        fn rebuild(&mut self) {
            let tree = &self.tree;
            crate::build(
                &mut self.image,
                tree,
                &Default::default(),
                &crate::NoProgress,
            )
            .unwrap();
        }
    }

    /// Issue 15: export after definitions added or removed (one, or several in a row) splices
    /// those changes into the file (`splice_reshape` answers), and the file is then byte for
    /// byte what the whole module's assembly writes (the image's text); so too with replaced
    /// texts before, between or after them. At the first definition, the last, next to
    /// `_meta`, in CRLF files, with a BOM, without a final newline, on one line.
    #[test]
    fn an_added_or_removed_definition_is_spliced_to_the_whole_modules_bytes() {
        use Edit::{Put, Rm};
        let files: [&str; 6] = [
            "{\n  _meta = {name = 'A}\n  a = 1\n  b = 2 # two\n\n  c = 3\n}\n",
            "{\r\n  _meta = {name = 'A}\r\n  a = 1\r\n  b = 2\r\n  c = 3\r\n}\r\n",
            "\u{feff}{\n  _meta = {name = 'A}\n  a = 1\n  b = 2\n  c = 3\n}\n",
            "{\n  _meta = {name = 'A}\n  a = 1\n  b = 2\n  c = 3\n}",
            "{_meta = {name = 'A} a = 1 b = 2 c = 3}\n",
            "# a module\n{\n  a = 1\n  # the second\n  b = 2\n  c = 3\n}\n",
        ];
        const MANY: [Edit; 17] = [
            Put("a", "a = 10"),
            Put("a", "a = 11"),
            Put("a", "a = 12"),
            Put("a", "a = 13"),
            Put("a", "a = 14"),
            Put("a", "a = 15"),
            Put("a", "a = 16"),
            Put("a", "a = 17"),
            Put("a", "a = 18"),
            Put("a", "a = 19"),
            Put("a", "a = 20"),
            Put("a", "a = 21"),
            Put("a", "a = 22"),
            Put("a", "a = 23"),
            Put("a", "a = 24"),
            Put("a", "a = 25"),
            Put("a", "a = 26"),
        ];
        // The edits, and whether the export splices.
        let scripts: [(&[Edit], bool); 21] = [
            (&[Put("d", "d = 4")], true),
            (&[Put("d", "# four\nd = 4")], true),
            (&[Rm("a")], true),
            (&[Rm("b")], true),
            (&[Rm("c")], true),
            (&[Rm("_meta")], true),
            (&[Put("d", "d = 4"), Rm("a")], true),
            (&[Put("d", "d = 4"), Put("e", "e = 5")], true),
            (&[Rm("a"), Rm("c")], true),
            (&[Rm("c"), Put("c", "c = 33")], true),
            (&[Put("d", "d = 4"), Rm("d")], true),
            (&[Rm("b"), Rm("a"), Rm("c")], true),
            // New texts mixed with additions and removals, in either order.
            (&[Put("d", "d = 4"), Put("b", "b = 22")], true),
            (&[Put("b", "b = 22"), Put("d", "d = 4")], true),
            (
                &[Put("a", "# one\na = 11"), Rm("c"), Put("c", "c = 33")],
                true,
            ),
            (&[Put("c", "c = 33"), Rm("c")], true),
            (&[Rm("a"), Put("b", "b = 22"), Put("b", "b = 222")], true),
            (&[Put("d", "d = 4"), Put("d", "d = 44"), Rm("a")], true),
            (
                &[
                    Put("_meta", "_meta = {name = 'A version = 2}"),
                    Put("d", "d = 4"),
                ],
                true,
            ),
            // Only new texts: `splice_edits` would do it, this does too.
            (&[Put("a", "a = 11"), Put("c", "c = 33")], true),
            // More than 16 changes: `splice_edits` or the whole assembly.
            (&MANY, false),
        ];
        for (f, file) in files.iter().enumerate() {
            for (s, (edits, splices)) in scripts.iter().enumerate() {
                splices_as_assembled(file, edits, *splices, &format!("file {f}, script {s}"));
            }
        }
    }

    /// One case of the test above: `file` built, `edits` made, and the export.
    fn splices_as_assembled(file: &str, edits: &[Edit], splices: bool, case: &str) {
        let mut built = Built::new(file);
        // No such definition in this file (`_meta` in a module without).
        if !built.edit(edits) {
            return;
        }
        let (image, module) = (&built.image, &built.module);
        let whole = image.module_text(module).unwrap();
        let spliced = built.spliced(file.as_bytes());
        if splices {
            assert_eq!(
                spliced.as_deref().map(String::from_utf8_lossy),
                Some(String::from_utf8_lossy(&whole)),
                "{case}"
            );
        } else {
            assert_eq!(spliced, None, "{case}");
        }
        let report = crate::export(image, &Default::default()).unwrap();
        assert_eq!(report.written.len(), 1, "{case}: {report:?}");
        assert_eq!(
            String::from_utf8_lossy(&built.file()),
            String::from_utf8_lossy(&whole),
            "{case}"
        );
        assert!(image.unsynced().unwrap().is_empty(), "{case}");
        assert!(image.check().unwrap().is_ok(), "{case}");
        // A build of the written file finds nothing to change.
        let before = image.module_text(module).unwrap();
        built.rebuild();
        let (image, module) = (&built.image, &built.module);
        assert_eq!(image.module_text(module).unwrap(), before, "{case}");
        assert!(image.unsynced().unwrap().is_empty(), "{case}");
    }

    /// A save between live edits whose file already holds a definition put since (typed in
    /// by hand, the same text): the build agrees on it, the module's order and layout stay,
    /// and the addition noted before (its `from` the closing gap alone) must not be made
    /// to the saved file a second time. So too when the added definition had a new text put
    /// after (issue 15, the edit noted as one more change).
    #[test]
    fn a_save_that_holds_a_definition_put_since_is_not_given_it_twice() {
        use Edit::{Put, Rm};
        let cases: [(&[Edit], &str); 2] = [
            (
                &[Rm("a"), Put("d", "d = 4")],
                "{\n  _meta = {name = 'A}\n  a = 1\n  b = 2\n  c = 3\n  d = 4\n}\n",
            ),
            (
                &[Rm("a"), Put("d", "d = 4"), Put("d", "d = 44")],
                "{\n  _meta = {name = 'A}\n  a = 1\n  b = 2\n  c = 3\n  d = 44\n}\n",
            ),
        ];
        for (c, (edits, saved)) in cases.iter().enumerate() {
            let mut built = Built::new("{\n  _meta = {name = 'A}\n  a = 1\n  b = 2\n  c = 3\n}\n");
            assert!(built.edit(edits), "case {c}");
            std::fs::write(built.tree.join("a.spry"), saved).unwrap();
            built.rebuild();
            let whole = built.image.module_text(&built.module).unwrap();
            if let Some(spliced) = built.spliced(saved.as_bytes()) {
                assert_eq!(
                    String::from_utf8_lossy(&spliced),
                    String::from_utf8_lossy(&whole),
                    "case {c}"
                );
            }
            crate::export(&built.image, &Default::default()).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&built.file()),
                String::from_utf8_lossy(&whole),
                "case {c}"
            );
        }
    }

    /// `fixtures/export`: a tree and edits in, each export's report and the files out
    /// (`crate::fixtures`).
    #[test]
    fn export_fixtures() {
        crate::fixtures::check("export");
    }
}
