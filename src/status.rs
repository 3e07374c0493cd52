//! How the image and a source tree differ: by module and, on request, by definition. `status`
//! and `diff` are two views of this.
//!
//! Against the image's own tree, a file is read only when its stamp (size, modification
//! time) says it may have changed, and a module's image text only when the `sync` table says
//! it changed since it last agreed with its file; an unchanged tree costs a walk, one read of
//! the stamps and one of an empty table. Against any other directory, every file is read and
//! compared by content.
//!
//! Each difference says which side moved since the two last agreed (the definition's base):
//! the file, the image, or both (a conflict).

use std::path::Path;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::error::{Error, Result};
use crate::image::merge::{Merged, merge};
use crate::image::{DefinitionRecord, Hash, Image, ModuleRecord, PathRecord, SyncRecord};
use crate::source::{
    FailureKind, FileFailure, PartFilter, Unit, WalkedFile, default_read_limit, read_unit,
    same_dir, stamp_matches,
};
use crate::syntax::{Ast, Definition, SourceUnit, parse};
use crate::walk::{Prewalk, walk};

/// What to compare.
#[derive(Clone, Debug, Default)]
pub struct StatusOptions {
    /// Only these modules (default: all).
    pub modules: Vec<String>,
    /// Work out each module's differences by definition, with both texts (for `diff`).
    pub definitions: bool,
}

/// Which side changed since image and file last agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The file changed; the image has not taken it yet (build would).
    File,
    /// The image changed; the file has not been written yet (export would).
    Image,
    /// Both changed, differently: a conflict.
    Both,
    /// Unknown: compared with a tree the image does not mirror.
    Unknown,
}

/// A module's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleState {
    /// Changed in the image, not yet exported.
    ImageChanged,
    /// Changed on disk, not yet built.
    FileChanged,
    /// Changed on both sides, in different definitions: build and export merge them.
    BothChanged,
    /// Changed on both sides in the same definition: see `conflicts`.
    Conflict,
    /// In the image, never written to a file yet.
    NotExported,
    /// Its file is gone from the tree (not yet built).
    FileDeleted,
    /// Its file is gone while the image holds changes it never had: a modify/delete conflict
    /// (resolve the module: `--take file` removes it, `--take image` writes it back).
    DeletedChanged,
    /// A file holds a module the image does not have (not yet built).
    FileAdded,
    /// Now in another file (not yet built).
    Moved,
    /// Its file changed and does not parse: see `failed`.
    Unparsable,
}

/// What happened to one definition, from the image (`a`) to the file (`b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// In the file, not in the image.
    Added,
    /// In the image, not in the file.
    Removed,
    /// Different texts, different trees.
    Changed,
    /// Different texts, the same tree: spacing, comments, spelling only.
    FormattingOnly,
    /// Gone from this module, now in another (`other`), or the other way round.
    Moved,
}

/// One definition that differs.
#[derive(Clone, Debug)]
pub struct DefinitionDiff {
    /// Its name.
    pub name: String,
    /// How it differs.
    pub change: Change,
    /// Which side moved.
    pub side: Side,
    /// For a move: the module on the other end.
    pub other: Option<String>,
    /// The image's text.
    pub image: Option<Vec<u8>>,
    /// The file's text.
    pub file: Option<Vec<u8>>,
    /// For a change on both sides: the text they last agreed on (`None`: none known).
    pub base: Option<Vec<u8>>,
}

/// One module that differs.
#[derive(Clone, Debug)]
pub struct ModuleStatus {
    /// The module.
    pub module: String,
    /// Its file (the new one for a move).
    pub path: String,
    /// Its old file, for a move.
    pub from_path: Option<String>,
    /// Its state.
    pub state: ModuleState,
    /// Definitions in conflict.
    pub conflicts: Vec<String>,
    /// Definitions that differ (with `definitions` asked for).
    pub definitions: Vec<DefinitionDiff>,
}

/// How image and tree differ.
#[derive(Clone, Debug, Default)]
pub struct TreeStatus {
    /// The tree compared.
    pub root: String,
    /// Modules that differ, by name.
    pub modules: Vec<ModuleStatus>,
    /// How many modules agree.
    pub clean: usize,
    /// Files that do not parse (their modules keep their image text).
    pub failed: Vec<FileFailure>,
    /// `.spry` files outside the part a partial image holds (never treated as removed).
    pub outside: Vec<String>,
    /// The part the image holds (empty: all).
    pub part: Vec<String>,
}

impl TreeStatus {
    /// Whether image and tree agree everywhere (files outside a part aside).
    pub fn is_clean(&self) -> bool {
        self.modules.is_empty() && self.failed.is_empty()
    }

    /// Whether some module is in conflict.
    pub fn has_conflicts(&self) -> bool {
        self.modules
            .iter()
            .any(|m| matches!(m.state, ModuleState::Conflict | ModuleState::DeletedChanged))
    }
}

/// A file's side of a module.
struct FileSide {
    path: String,
    text: Vec<u8>,
    unit: SourceUnit,
}

/// Compares the image with the tree at `root` (its own source tree, or any other).
///
/// # Errors
/// Failures of the image or of the walk itself (single files that cannot be read or parsed
/// are in the report).
pub fn status(image: &Image, root: &Path, options: &StatusOptions) -> Result<TreeStatus> {
    status_after(image, root, options, None)
}

/// [`status`], with the tree at `root` walked already by `prewalk` (started before the image
/// was opened): the walk is used if it agrees with every stamp, else the tree is walked again
/// now that the image is held.
///
/// # Errors
/// As [`status`].
pub fn status_prewalked(
    image: &Image,
    root: &Path,
    options: &StatusOptions,
    prewalk: Prewalk,
) -> Result<TreeStatus> {
    status_after(image, root, options, Some(prewalk))
}

fn status_after(
    image: &Image,
    root: &Path,
    options: &StatusOptions,
    prewalk: Option<Prewalk>,
) -> Result<TreeStatus> {
    let mut failed = Vec::new();
    let (survey, files) = match prewalk {
        Some(prewalk) => {
            let survey = Survey::scope(image, root, options)?;
            let agreeing = if survey.own {
                let stamps = &survey.stamps;
                prewalk.agreeing(root, &PartFilter::everything(), stamps.len(), |file| {
                    stamps
                        .get(&file.path)
                        .is_some_and(|stamp| stamp_matches(stamp, file))
                })
            } else {
                None
            };
            let files = match agreeing {
                Some(files) => files,
                // Something differs: walked again, now that the image is held.
                None => walk(root, &PartFilter::everything(), &mut failed)?,
            };
            (survey, files)
        }
        // The stamps and the walk at once, as build reads them: they are independent.
        None => {
            let (survey, files) = std::thread::scope(|scope| {
                let survey = scope.spawn(|| Survey::scope(image, root, options));
                let files = walk(root, &PartFilter::everything(), &mut failed);
                let survey = survey
                    .join()
                    .unwrap_or_else(|p| Err(Error::panicked("reading the file stamps", &*p)));
                (survey, files)
            });
            (survey?, files?)
        }
    };
    let mut survey = survey;
    survey.report.failed = failed;
    let stale = survey.sort_files(&files);
    let fresh = stale.is_empty();
    survey.read_changed(&stale);
    survey.refuse_claimed_twice()?;
    let (examine, known) = survey.to_examine()?;
    for (name, record) in examine {
        survey.examine(name, record)?;
    }
    let differing = survey.report.modules.len();
    survey.files_added();
    survey.keep_clean_stamps(fresh, files.len(), known);
    Ok(survey.summarize(known, differing))
}

/// The state `status` moves through its stages: what the image recorded of the tree and what
/// the tree holds now.
struct Survey<'a> {
    image: &'a Image,
    root: &'a Path,
    options: &'a StatusOptions,
    /// The tree is the image's own (stamps and the `sync` table apply), not another directory.
    own: bool,
    filter: PartFilter,
    /// The modules asked for (empty: all).
    only: HashSet<&'a str>,
    /// The image's stamps by path (own tree only).
    stamps: HashMap<String, PathRecord>,
    /// Modules that do not agree with their files, by name (own tree only).
    unsynced: HashMap<String, SyncRecord>,
    /// Files in the part that are still there.
    on_disk: HashSet<String>,
    /// Files read and parsed, by path.
    sides: HashMap<String, FileSide>,
    /// Module → the read file that holds it.
    holders: HashMap<String, String>,
    /// Module → its file that changed and does not parse.
    unparsable: HashMap<String, String>,
    /// Modules of the image looked at.
    seen: HashSet<String>,
    report: TreeStatus,
}

impl<'a> Survey<'a> {
    /// What is compared: the part, the stamps and the `sync` table (for the image's own tree).
    fn scope(image: &'a Image, root: &'a Path, options: &'a StatusOptions) -> Result<Survey<'a>> {
        let own = same_dir(root, &image.source_root());
        let part = image.record().part.clone();
        let filter = PartFilter::new(&part)?;
        let (stamps, unsynced) = if own {
            (
                image.paths()?.into_iter().collect(),
                image.unsynced()?.into_iter().collect(),
            )
        } else {
            (HashMap::default(), HashMap::default())
        };
        Ok(Survey {
            image,
            root,
            options,
            own,
            filter,
            only: options.modules.iter().map(String::as_str).collect(),
            stamps,
            unsynced,
            on_disk: HashSet::default(),
            sides: HashMap::default(),
            holders: HashMap::default(),
            unparsable: HashMap::default(),
            seen: HashSet::default(),
            report: TreeStatus {
                root: root.display().to_string(),
                part,
                ..TreeStatus::default()
            },
        })
    }

    fn wanted(&self, module: &str) -> bool {
        self.only.is_empty() || self.only.contains(module)
    }

    /// Whether a module's image text must be read to tell its definitions apart.
    fn definitions_unsynced(&self, module: &str) -> bool {
        self.options.definitions && self.unsynced.contains_key(module)
    }

    /// The walked files outside the part are set aside; of the others, those that may have
    /// changed are returned to be read (the rest hold what their stamp says).
    fn sort_files<'f>(&mut self, files: &'f [WalkedFile]) -> Vec<&'f WalkedFile> {
        let mut stale = Vec::new();
        self.on_disk.reserve(files.len());
        for file in files {
            if !self.filter.contains(&file.path) {
                self.report.outside.push(file.path.clone());
                continue;
            }
            self.on_disk.insert(file.path.clone());
            let fresh = self.stamps.get(&file.path).is_some_and(|stamp| {
                stamp_matches(stamp, file) && !self.definitions_unsynced(&stamp.module)
            });
            if !fresh {
                stale.push(file);
            }
        }
        stale
    }

    /// Reads and parses the files that may have changed.
    fn read_changed(&mut self, stale: &[&WalkedFile]) {
        for file in stale {
            let stamp = self.stamps.get(&file.path);
            let last = stamp
                .filter(|s| !self.definitions_unsynced(&s.module))
                .map(|s| s.hash);
            let script = crate::tree_path::script_name(&file.path);
            // As build and export do (a file built with `build --max-file-size` is not refused).
            let limit = default_read_limit(stamp.map(|s| s.size));
            match read_unit(self.root, &file.path, script, limit, last) {
                Unit::Same { .. } => {}
                Unit::Gone
                | Unit::Failed(FileFailure {
                    kind: FailureKind::NotAFile,
                    ..
                }) => {
                    self.on_disk.remove(&file.path);
                }
                Unit::Parsed { unit, .. } => {
                    self.holders
                        .insert(unit.name().to_string(), file.path.clone());
                    let side = FileSide {
                        path: file.path.clone(),
                        text: unit.text().to_vec(),
                        unit,
                    };
                    self.sides.insert(file.path.clone(), side);
                }
                Unit::Failed(failure) => {
                    if let (Some(stamp), FailureKind::Syntax { .. }) = (stamp, &failure.kind) {
                        self.unparsable
                            .insert(stamp.module.clone(), file.path.clone());
                    }
                    self.report.failed.push(failure);
                }
            }
        }
    }

    /// A module defined in two files is refused in all but one, as a build refuses it (the
    /// file the image has it from keeps it, else the first by path): those files are failures.
    fn refuse_claimed_twice(&mut self) -> Result<()> {
        let failed: HashSet<&str> = self.report.failed.iter().map(|f| f.path.as_str()).collect();
        let claimed = self
            .on_disk
            .iter()
            .filter(|path| !failed.contains(path.as_str()))
            .filter_map(|path| {
                let module = match self.sides.get(path) {
                    Some(side) => Some(side.unit.name()),
                    None => self.stamps.get(path).map(|s| s.module.as_str()),
                };
                module.map(|module| (module, path.as_str()))
            });
        // Counted first, without a list per module (a module is nearly always claimed once):
        // only the modules claimed more than once get their files listed.
        let mut count: HashMap<&str, u32> =
            HashMap::with_capacity_and_hasher(self.on_disk.len(), Default::default());
        for (module, _) in claimed.clone() {
            *count.entry(module).or_default() += 1;
        }
        let mut claims: HashMap<&str, Vec<&str>> = HashMap::default();
        for (module, path) in claimed.filter(|(module, _)| count.get(module) > Some(&1)) {
            claims.entry(module).or_default().push(path);
        }
        let mut losers: Vec<(String, String, String)> = Vec::new();
        for (module, mut paths) in claims {
            if paths.len() < 2 {
                continue;
            }
            paths.sort_unstable();
            let holder = self.image.module(module)?.map(|m| m.path);
            let winner = holder
                .filter(|h| paths.contains(&h.as_str()))
                .unwrap_or_else(|| paths[0].to_string());
            for loser in paths.into_iter().filter(|p| *p != winner) {
                losers.push((module.to_string(), winner.clone(), loser.to_string()));
            }
        }
        losers.sort();
        for (module, winner, loser) in losers {
            self.report.failed.push(FileFailure::new(
                loser.clone(),
                FailureKind::ClaimedTwice {
                    module: module.clone(),
                    holder: winner.clone(),
                    path: loser.clone(),
                },
            ));
            self.sides.remove(&loser);
            if self.holders.get(&module) == Some(&loser) {
                if self.sides.contains_key(&winner) {
                    self.holders.insert(module, winner);
                } else {
                    self.holders.remove(&module);
                }
            }
        }
        Ok(())
    }

    /// Modules of the image that may differ, and how many modules are known: against its own
    /// tree, those the sync table names and those whose files changed, left or were claimed
    /// anew (the others agree, and their records are not read); against another tree, all.
    fn to_examine(&self) -> Result<(Vec<(String, ModuleRecord)>, usize)> {
        if !self.own {
            let examine: Vec<(String, ModuleRecord)> = self
                .image
                .modules()?
                .into_iter()
                .filter(|(name, _)| self.wanted(name))
                .collect();
            let known = examine.len();
            return Ok((examine, known));
        }
        let mut names: HashSet<&str> = HashSet::default();
        let mut all: HashSet<&str> =
            HashSet::with_capacity_and_hasher(self.stamps.len(), Default::default());
        for (path, stamp) in &self.stamps {
            all.insert(stamp.module.as_str());
            if !self.on_disk.contains(path)
                || self.sides.contains_key(path)
                || self.unparsable.contains_key(&stamp.module)
            {
                names.insert(stamp.module.as_str());
            }
        }
        all.extend(self.unsynced.keys().map(String::as_str));
        let known = all.iter().filter(|n| self.wanted(n)).count();
        names.extend(
            self.unsynced
                .keys()
                .chain(self.holders.keys())
                .map(String::as_str),
        );
        let mut names: Vec<&str> = names.into_iter().filter(|n| self.wanted(n)).collect();
        names.sort_unstable();
        let mut examine = Vec::new();
        for name in names {
            if let Some(record) = self.image.module(name)? {
                examine.push((name.to_string(), record));
            }
        }
        Ok((examine, known))
    }

    /// Looks at one module of the image; a module that differs goes into the report.
    fn examine(&mut self, name: String, record: ModuleRecord) -> Result<()> {
        self.seen.insert(name.clone());
        if let Some(status) = self.classify(name, record)? {
            self.report.modules.push(status);
        }
        Ok(())
    }

    /// How one module of the image differs from the tree (`None`: it does not).
    fn classify(&self, name: String, record: ModuleRecord) -> Result<Option<ModuleStatus>> {
        let sync = self.unsynced.get(&name).cloned().unwrap_or_default();
        let conflicts: Vec<String> = sync.conflicts.keys().cloned().collect();
        if let Some(path) = self.unparsable.get(&name) {
            // A file that does not parse says nothing about its definitions: it is shown with
            // its errors, never as everything removed.
            let from_path = (path != &record.path).then(|| path.clone());
            return Ok(Some(ModuleStatus {
                module: name,
                path: record.path,
                from_path,
                state: ModuleState::Unparsable,
                conflicts,
                definitions: Vec::new(),
            }));
        }
        // The module's file side at its own path, if the file there still holds it.
        if let Some(side) = self
            .sides
            .get(&record.path)
            .filter(|s| s.unit.name() == name)
        {
            return self.file_read(name, record, &sync, side, conflicts);
        }
        let Some((state, side, from_path)) = self.state_unread(&name, &record, &sync, &conflicts)
        else {
            return Ok(None);
        };
        let definitions = if self.options.definitions {
            self.differ(true).changes(&name, &sync, side)?.definitions
        } else {
            Vec::new()
        };
        let path = side.map_or(record.path, |s| s.path.clone());
        Ok(Some(ModuleStatus {
            module: name,
            path,
            from_path,
            state,
            conflicts,
            definitions,
        }))
    }

    /// A module whose own file was read: compared definition by definition.
    fn file_read(
        &self,
        name: String,
        record: ModuleRecord,
        sync: &SyncRecord,
        side: &FileSide,
        mut conflicts: Vec<String>,
    ) -> Result<Option<ModuleStatus>> {
        let changes = self
            .differ(self.options.definitions)
            .changes(&name, sync, Some(side))?;
        conflicts.extend(changes.conflicts);
        conflicts.sort();
        conflicts.dedup();
        let image_changed = sync.unexported || !sync.removed.is_empty();
        let file_changed = !self.own
            || self
                .stamps
                .get(&record.path)
                .is_none_or(|s| s.hash != Hash::of(&side.text));
        let state = if !conflicts.is_empty() {
            ModuleState::Conflict
        } else if !self.own {
            if changes.definitions.is_empty() {
                return Ok(None);
            }
            ModuleState::FileChanged
        } else {
            match (file_changed, image_changed) {
                (true, true) => ModuleState::BothChanged,
                (true, false) => ModuleState::FileChanged,
                (false, true) => ModuleState::ImageChanged,
                (false, false) => return Ok(None),
            }
        };
        Ok(Some(ModuleStatus {
            module: name,
            path: record.path,
            from_path: None,
            state,
            conflicts,
            definitions: changes.definitions,
        }))
    }

    /// The state of a module whose own file was not read (unchanged by stamp, gone, never
    /// written, or the module moved to another file), with the file side if it moved and its
    /// old path; `None`: it agrees.
    fn state_unread(
        &self,
        name: &str,
        record: &ModuleRecord,
        sync: &SyncRecord,
        conflicts: &[String],
    ) -> Option<(ModuleState, Option<&FileSide>, Option<String>)> {
        let image_changed = sync.unexported || !sync.removed.is_empty();
        // The file is still there and (as far as is known) still holds this module.
        let at_path = self.on_disk.contains(&record.path)
            && self
                .sides
                .get(&record.path)
                .is_none_or(|s| s.unit.name() == name);
        let stamped = self
            .stamps
            .get(&record.path)
            .is_some_and(|s| s.module == name);
        // Another file that now claims it.
        let elsewhere = self
            .holders
            .get(name)
            .filter(|p| **p != record.path)
            .and_then(|p| self.sides.get(p));
        if let Some(side) = elsewhere.filter(|_| !at_path || !stamped) {
            return Some((ModuleState::Moved, Some(side), Some(record.path.clone())));
        }
        let state = if at_path && (stamped || !self.own) {
            // Unchanged on disk (by stamp).
            if !conflicts.is_empty() {
                ModuleState::Conflict
            } else if image_changed {
                ModuleState::ImageChanged
            } else {
                return None;
            }
        } else if stamped && (image_changed || !conflicts.is_empty() || sync.file_deleted) {
            ModuleState::DeletedChanged
        } else if stamped || !self.own {
            ModuleState::FileDeleted
        } else {
            ModuleState::NotExported
        };
        Some((state, None, None))
    }

    fn differ(&self, texts: bool) -> Differ<'a> {
        Differ {
            image: self.image,
            own: self.own,
            texts,
        }
    }

    /// Files holding modules the image does not have.
    fn files_added(&mut self) {
        let side_of = if self.own { Side::File } else { Side::Unknown };
        for (name, path) in &self.holders {
            if self.seen.contains(name) || !self.wanted(name) {
                continue;
            }
            let Some(side) = self.sides.get(path) else {
                continue;
            };
            let definitions = if self.options.definitions {
                let unit = &side.unit;
                let added = |(i, d): (usize, &Definition)| DefinitionDiff {
                    name: d.name.clone(),
                    change: Change::Added,
                    side: side_of,
                    other: None,
                    image: None,
                    file: Some(unit.definition_text(i).to_vec()),
                    base: None,
                };
                unit.definitions().iter().enumerate().map(added).collect()
            } else {
                Vec::new()
            };
            self.report.modules.push(ModuleStatus {
                module: name.clone(),
                path: path.clone(),
                from_path: None,
                state: ModuleState::FileAdded,
                conflicts: Vec::new(),
                definitions,
            });
        }
    }

    /// Where image and tree agree (nothing to report, nothing unsynced, every file matching
    /// its stamp, and each stamped file there: `fresh`, `files` walked), the clean-stamps file
    /// is written for the next `build` or `status` ([`crate::quick_look`]); `known` modules
    /// agree. Its failure is ignored: it is a cache.
    fn keep_clean_stamps(&self, fresh: bool, files: usize, known: usize) {
        let clean = self.own
            && fresh
            && self.only.is_empty()
            && self.unsynced.is_empty()
            && self.report.modules.is_empty()
            && self.report.failed.is_empty()
            && self.report.outside.is_empty()
            && self.stamps.len() == files;
        if !clean {
            return;
        }
        let mut stamps: Vec<(&str, &PathRecord)> =
            self.stamps.iter().map(|(p, s)| (p.as_str(), s)).collect();
        stamps.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let _ = self.image.write_clean_stamps(known, &stamps);
    }

    /// The report in order, with the clean count and (by definition) the moves paired.
    fn summarize(mut self, known: usize, differing: usize) -> TreeStatus {
        self.report.clean = known.saturating_sub(differing);
        if self.options.definitions {
            pair_moves(&mut self.report.modules);
        }
        self.report.modules.sort_by(|a, b| a.module.cmp(&b.module));
        self.report.failed.sort_by(|a, b| a.path.cmp(&b.path));
        self.report
    }
}

/// A module's definitions that differ, and those in conflict among them.
struct Changes {
    definitions: Vec<DefinitionDiff>,
    conflicts: Vec<String>,
}

/// Compares a module's definitions, image against file.
struct Differ<'a> {
    image: &'a Image,
    /// Against the image's own tree: which side moved is known from the definitions' bases.
    own: bool,
    /// Keep both texts (and the base of a conflict) in each difference.
    texts: bool,
}

impl Differ<'_> {
    /// A module's differences by definition, image against file (`None`: no file), and the
    /// definitions in conflict among them.
    fn changes(&self, module: &str, sync: &SyncRecord, file: Option<&FileSide>) -> Result<Changes> {
        let mut out = Changes {
            definitions: Vec::new(),
            conflicts: Vec::new(),
        };
        let mut in_file: HashMap<&str, (Hash, &[u8])> = HashMap::default();
        let mut file_order: Vec<&str> = Vec::new();
        if let Some(file) = file {
            for (i, def) in file.unit.definitions().iter().enumerate() {
                let text = file.unit.definition_text(i);
                in_file.insert(def.name.as_str(), (Hash::of(text), text));
                file_order.push(def.name.as_str());
            }
        }
        let names = self.image.layout(module)?.names;
        for name in &names {
            let Some(def) = self.image.definition(module, name)? else {
                continue;
            };
            let diff = match in_file.get(name.as_str()) {
                Some((hash, _)) if *hash == def.hash => continue,
                Some((hash, text)) => self.changed(name, &def, *hash, text, &mut out.conflicts)?,
                None => self.removed(name, &def, file.is_some(), &mut out.conflicts)?,
            };
            out.definitions.push(diff);
        }
        let in_image: HashSet<&str> = names.iter().map(String::as_str).collect();
        for name in file_order {
            if !in_image.contains(name) {
                let (hash, text) = in_file[name];
                let diff = self.added(name, hash, text, sync, &mut out.conflicts);
                out.definitions.push(diff);
            }
        }
        Ok(out)
    }

    /// A definition whose texts differ.
    fn changed(
        &self,
        name: &str,
        def: &DefinitionRecord,
        hash: Hash,
        text: &[u8],
        conflicts: &mut Vec<String>,
    ) -> Result<DefinitionDiff> {
        let side = if !self.own {
            Side::Unknown
        } else if def.base == Some(def.hash) {
            Side::File
        } else if def.base == Some(hash) {
            Side::Image
        } else {
            if !merges_cleanly(self.image, def, text) {
                conflicts.push(name.to_string());
            }
            Side::Both
        };
        let image_text = self.image.text(&def.hash)?;
        let change = if same_tree(&image_text, text) {
            Change::FormattingOnly
        } else {
            Change::Changed
        };
        Ok(DefinitionDiff {
            name: name.to_string(),
            change,
            side,
            other: None,
            image: self.texts.then_some(image_text),
            file: self.texts.then(|| text.to_vec()),
            base: base_text(self.image, def, self.texts && side == Side::Both),
        })
    }

    /// A definition the image has and the file (if there is one) does not.
    fn removed(
        &self,
        name: &str,
        def: &DefinitionRecord,
        has_file: bool,
        conflicts: &mut Vec<String>,
    ) -> Result<DefinitionDiff> {
        let side = if !self.own {
            Side::Unknown
        } else if def.base.is_none() {
            Side::Image
        } else if def.base == Some(def.hash) {
            Side::File
        } else {
            if has_file {
                conflicts.push(name.to_string());
            }
            Side::Both
        };
        let image = if self.texts {
            Some(self.image.text(&def.hash)?)
        } else {
            None
        };
        Ok(DefinitionDiff {
            name: name.to_string(),
            change: Change::Removed,
            side,
            other: None,
            image,
            file: None,
            base: base_text(self.image, def, self.texts && side == Side::Both),
        })
    }

    /// A definition the file has and the image does not.
    fn added(
        &self,
        name: &str,
        hash: Hash,
        text: &[u8],
        sync: &SyncRecord,
        conflicts: &mut Vec<String>,
    ) -> DefinitionDiff {
        let side = match sync.removed.get(name).and_then(|h| Hash::from_hex(h)) {
            _ if !self.own => Side::Unknown,
            Some(base) if base == hash => Side::Image,
            Some(_) => {
                conflicts.push(name.to_string());
                Side::Both
            }
            None if sync.conflicts.contains_key(name) => Side::Both,
            None => Side::File,
        };
        DefinitionDiff {
            name: name.to_string(),
            change: Change::Added,
            side,
            other: None,
            image: None,
            file: self.texts.then(|| text.to_vec()),
            base: None,
        }
    }
}

/// The agreed text of a definition, when `wanted` and known.
fn base_text(image: &Image, def: &DefinitionRecord, wanted: bool) -> Option<Vec<u8>> {
    def.base
        .filter(|_| wanted)
        .and_then(|base| image.text(&base).ok())
}

/// Whether a definition changed on both sides merges line by line (as a build would merge
/// it; whether the merge reads back in its file is the build's to find out).
fn merges_cleanly(image: &Image, def: &DefinitionRecord, file: &[u8]) -> bool {
    let Some(base) = def.base else {
        return false;
    };
    match (image.text(&base), image.text(&def.hash)) {
        (Ok(base), Ok(ours)) => matches!(merge(&base, &ours, file), Merged::Clean(_)),
        _ => false,
    }
}

/// Whether two definition texts read as the same tree.
fn same_tree(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (parse(a), parse(b));
    a.errors.is_empty() && b.errors.is_empty() && Ast::from_tree(&a.tree) == Ast::from_tree(&b.tree)
}

/// A definition removed from one module and added to another under the same name is a move:
/// both ends say so and name the other.
fn pair_moves(modules: &mut [ModuleStatus]) {
    let mut removed: HashMap<String, Vec<(usize, usize)>> = HashMap::default();
    for (m, module) in modules.iter().enumerate() {
        for (d, def) in module.definitions.iter().enumerate() {
            if def.change == Change::Removed && def.name != "_meta" {
                removed.entry(def.name.clone()).or_default().push((m, d));
            }
        }
    }
    let mut pairs = Vec::new();
    for (m, module) in modules.iter().enumerate() {
        for (d, def) in module.definitions.iter().enumerate() {
            if def.change != Change::Added || def.name == "_meta" {
                continue;
            }
            if let Some(ends) = removed.get_mut(&def.name)
                && let Some(at) = ends.iter().position(|(rm, _)| *rm != m)
            {
                let (rm, rd) = ends.remove(at);
                pairs.push(((rm, rd), (m, d)));
            }
        }
    }
    for ((rm, rd), (am, ad)) in pairs {
        let from = modules[rm].module.clone();
        let to = modules[am].module.clone();
        modules[rm].definitions[rd].change = Change::Moved;
        modules[rm].definitions[rd].other = Some(to);
        modules[am].definitions[ad].change = Change::Moved;
        modules[am].definitions[ad].other = Some(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::{settled_tree, write_settled};
    use crate::{BuildOptions, NoProgress, build};

    /// As for build: a walk made before the image was opened that no longer agrees with the
    /// stamps (another build added a file since) is not used; one that agrees is.
    #[test]
    fn a_walk_made_before_the_open_is_used_only_where_it_agrees() {
        let (dir, mut image) = settled_tree();
        let root = dir.path();
        let options = StatusOptions::default();
        let report =
            status_prewalked(&image, root, &options, Prewalk::start(root)).expect("a status");
        assert!(report.is_clean() && report.modules.is_empty(), "{report:?}");
        assert_eq!(report.clean, 1);
        let mut prewalk = Prewalk::start(root);
        prewalk.wait();
        write_settled(root, "b.spry", "{_meta = {name = 'B} y = 2}\n");
        build(&mut image, root, &BuildOptions::default(), &NoProgress).expect("a build");
        let report = status_prewalked(&image, root, &options, prewalk).expect("a status");
        assert!(report.modules.is_empty(), "{report:?}");
        assert_eq!(report.clean, 2);
    }

    /// `fixtures/status`: a tree and edits in, each status out (`crate::fixtures`).
    #[test]
    fn status_fixtures() {
        crate::fixtures::check("status");
    }
}
