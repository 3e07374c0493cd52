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
use serde::Serialize;

use crate::error::Result;
use crate::image::merge::{Merged, merge};
use crate::image::{DefinitionRecord, Hash, Image, ModuleRecord, PathRecord, SyncRecord};
use crate::source::{
    DEFAULT_MAX_FILE_SIZE, FailureKind, FileFailure, PartFilter, Unit, WalkedFile, read_unit,
    same_dir, stamp_matches,
};
use crate::syntax::{Ast, SourceUnit, parse};
use crate::walk::walk;

/// What to compare.
#[derive(Clone, Debug, Default)]
pub struct StatusOptions {
    /// Only these modules (default: all).
    pub modules: Vec<String>,
    /// Work out each module's differences by definition, with both texts (for `diff`).
    pub definitions: bool,
}

/// Which side changed since image and file last agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
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
#[derive(Clone, Debug, Serialize)]
pub struct DefinitionDiff {
    /// Its name.
    pub name: String,
    /// How it differs.
    pub change: Change,
    /// Which side moved.
    pub side: Side,
    /// For a move: the module on the other end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// The image's text.
    #[serde(skip)]
    pub image: Option<Vec<u8>>,
    /// The file's text.
    #[serde(skip)]
    pub file: Option<Vec<u8>>,
    /// For a change on both sides: the text they last agreed on (`None`: none known).
    #[serde(skip)]
    pub base: Option<Vec<u8>>,
}

/// One module that differs.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleStatus {
    /// The module.
    pub module: String,
    /// Its file (the new one for a move).
    pub path: String,
    /// Its old file, for a move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_path: Option<String>,
    /// Its state.
    pub state: ModuleState,
    /// Definitions in conflict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// Definitions that differ (with `definitions` asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub definitions: Vec<DefinitionDiff>,
}

/// How image and tree differ.
#[derive(Clone, Debug, Default, Serialize)]
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
    let own = same_dir(root, &image.source_root());
    let part = image.record().part.clone();
    let filter = PartFilter::new(&part)?;
    let mut report = TreeStatus {
        root: root.display().to_string(),
        part: part.clone(),
        ..TreeStatus::default()
    };
    let everything = PartFilter::everything();
    let files = walk(root, &everything, &mut report.failed)?;
    let only: HashSet<&str> = options.modules.iter().map(String::as_str).collect();
    let wanted = |module: &str| only.is_empty() || only.contains(module);

    let stamps: HashMap<String, PathRecord> = if own {
        image.paths()?.into_iter().collect()
    } else {
        HashMap::default()
    };
    let unsynced: HashMap<String, SyncRecord> = if own {
        image.unsynced()?.into_iter().collect()
    } else {
        HashMap::default()
    };

    // Files that may have changed, read and parsed; the others hold what their stamp says.
    let mut on_disk: HashSet<String> = HashSet::default();
    let mut read: Vec<&WalkedFile> = Vec::new();
    for file in &files {
        if !filter.contains(&file.path) {
            report.outside.push(file.path.clone());
            continue;
        }
        on_disk.insert(file.path.clone());
        match stamps.get(&file.path) {
            Some(stamp) if stamp_matches(stamp, file) => {
                if options.definitions && unsynced.contains_key(&stamp.module) {
                    read.push(file);
                }
            }
            _ => read.push(file),
        }
    }
    let mut sides: HashMap<String, FileSide> = HashMap::default();
    let mut holders: HashMap<String, String> = HashMap::default();
    let mut unparsable: HashMap<String, String> = HashMap::default();
    for file in read {
        let stamp = stamps.get(&file.path);
        let last = stamp
            .filter(|s| !(options.definitions && unsynced.contains_key(&s.module)))
            .map(|s| s.hash);
        let script = crate::tree_path::script_name(&file.path);
        match read_unit(root, &file.path, script, DEFAULT_MAX_FILE_SIZE, last) {
            Unit::Same { .. } => {}
            Unit::Gone => {
                on_disk.remove(&file.path);
            }
            Unit::Failed(FileFailure {
                kind: FailureKind::NotAFile,
                ..
            }) => {
                on_disk.remove(&file.path);
            }
            Unit::Parsed { unit, .. } => {
                holders.insert(unit.name().to_string(), file.path.clone());
                sides.insert(
                    file.path.clone(),
                    FileSide {
                        path: file.path.clone(),
                        text: unit.text().to_vec(),
                        unit,
                    },
                );
            }
            Unit::Failed(failure) => {
                if let (Some(stamp), FailureKind::Syntax { .. }) = (stamp, &failure.kind) {
                    unparsable.insert(stamp.module.clone(), file.path.clone());
                }
                report.failed.push(failure);
            }
        }
    }

    refuse_claimed_twice(
        image,
        &on_disk,
        &stamps,
        &mut sides,
        &mut holders,
        &mut report,
    )?;

    // Modules of the image that may differ: against its own tree, those the sync table names
    // and those whose files changed, left or were claimed anew (the others agree, and their
    // records are not read); against another tree, all.
    let mut examine: Vec<(String, ModuleRecord)> = Vec::new();
    let mut known = 0usize;
    if own {
        let mut names: HashSet<&str> = HashSet::default();
        let mut all: HashSet<&str> = HashSet::default();
        for (path, stamp) in &stamps {
            all.insert(stamp.module.as_str());
            if !on_disk.contains(path)
                || sides.contains_key(path)
                || unparsable.contains_key(&stamp.module)
            {
                names.insert(stamp.module.as_str());
            }
        }
        for name in unsynced.keys() {
            all.insert(name.as_str());
        }
        known = all.iter().filter(|n| wanted(n)).count();
        for name in unsynced.keys().chain(holders.keys()) {
            names.insert(name.as_str());
        }
        let mut names: Vec<&str> = names.into_iter().filter(|n| wanted(n)).collect();
        names.sort_unstable();
        for name in names {
            if let Some(record) = image.module(name)? {
                examine.push((name.to_string(), record));
            }
        }
    } else {
        for (name, record) in image.modules()? {
            if wanted(&name) {
                known += 1;
                examine.push((name, record));
            }
        }
    }
    let mut seen: HashSet<String> = HashSet::default();
    for (name, record) in examine {
        seen.insert(name.clone());
        let sync = unsynced.get(&name).cloned().unwrap_or_default();
        let image_changed = sync.unexported || !sync.removed.is_empty();
        let mut conflicts: Vec<String> = sync.conflicts.keys().cloned().collect();
        // Where the module's file side is: its own path (if the file there still holds it),
        // or another file that now claims it.
        let own_side = sides.get(&record.path).filter(|s| s.unit.name() == name);
        let elsewhere = holders
            .get(&name)
            .filter(|p| **p != record.path)
            .and_then(|p| sides.get(p));
        // The file is still there and (as far as is known) still holds this module.
        let at_path = on_disk.contains(&record.path)
            && sides
                .get(&record.path)
                .is_none_or(|s| s.unit.name() == name);
        let stamped = stamps.get(&record.path).is_some_and(|s| s.module == name);
        let (state, side, from_path) = if let Some(path) = unparsable.get(&name) {
            (
                ModuleState::Unparsable,
                None,
                (path != &record.path).then(|| path.clone()),
            )
        } else if let Some(side) = own_side {
            let (changed, side_conflicts) = file_changes(
                image,
                &name,
                &record,
                &sync,
                Some(side),
                own,
                options.definitions,
            )?;
            conflicts.extend(side_conflicts);
            conflicts.sort();
            conflicts.dedup();
            let file_changed = !own
                || stamps
                    .get(&record.path)
                    .is_none_or(|s| s.hash != Hash::of(&side.text));
            let state = if !conflicts.is_empty() {
                ModuleState::Conflict
            } else if !own {
                if changed.is_empty() {
                    continue;
                }
                ModuleState::FileChanged
            } else if file_changed && image_changed {
                ModuleState::BothChanged
            } else if file_changed {
                ModuleState::FileChanged
            } else if image_changed {
                ModuleState::ImageChanged
            } else {
                continue;
            };
            report.modules.push(ModuleStatus {
                module: name,
                path: record.path,
                from_path: None,
                state,
                conflicts,
                definitions: changed,
            });
            continue;
        } else if let Some(side) = elsewhere.filter(|_| !at_path || !stamped) {
            (ModuleState::Moved, Some(side), Some(record.path.clone()))
        } else if at_path && (stamped || !own) {
            // Unchanged on disk (by stamp).
            if !conflicts.is_empty() {
                (ModuleState::Conflict, None, None)
            } else if image_changed {
                (ModuleState::ImageChanged, None, None)
            } else {
                continue;
            }
        } else if stamped && (image_changed || !conflicts.is_empty() || sync.file_deleted) {
            (ModuleState::DeletedChanged, None, None)
        } else if stamped {
            (ModuleState::FileDeleted, None, None)
        } else if own {
            (ModuleState::NotExported, None, None)
        } else {
            (ModuleState::FileDeleted, None, None)
        };
        // A file that does not parse says nothing about its definitions: it is shown with its
        // errors, never as everything removed.
        let definitions = if options.definitions && state != ModuleState::Unparsable {
            file_changes(image, &name, &record, &sync, side, own, true)?.0
        } else {
            Vec::new()
        };
        let path = side.map_or(record.path.clone(), |s| s.path.clone());
        report.modules.push(ModuleStatus {
            module: name,
            path,
            from_path,
            state,
            conflicts,
            definitions,
        });
    }
    let differing = report.modules.len();
    // Files holding modules the image does not have.
    for (name, path) in &holders {
        if seen.contains(name) || !wanted(name) {
            continue;
        }
        let Some(side) = sides.get(path) else {
            continue;
        };
        let definitions = if options.definitions {
            side.unit
                .definitions()
                .iter()
                .enumerate()
                .map(|(i, d)| DefinitionDiff {
                    name: d.name.clone(),
                    change: Change::Added,
                    side: if own { Side::File } else { Side::Unknown },
                    other: None,
                    image: None,
                    file: Some(side.unit.definition_text(i).to_vec()),
                    base: None,
                })
                .collect()
        } else {
            Vec::new()
        };
        report.modules.push(ModuleStatus {
            module: name.clone(),
            path: path.clone(),
            from_path: None,
            state: ModuleState::FileAdded,
            conflicts: Vec::new(),
            definitions,
        });
    }
    report.clean = known.saturating_sub(differing);
    if options.definitions {
        pair_moves(&mut report.modules);
    }
    report.modules.sort_by(|a, b| a.module.cmp(&b.module));
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// A module defined in two files is refused in all but one, as a build refuses it (the file
/// the image has it from keeps it, else the first by path): those files are failures.
fn refuse_claimed_twice(
    image: &Image,
    on_disk: &HashSet<String>,
    stamps: &HashMap<String, PathRecord>,
    sides: &mut HashMap<String, FileSide>,
    holders: &mut HashMap<String, String>,
    report: &mut TreeStatus,
) -> Result<()> {
    let mut claims: HashMap<&str, Vec<&str>> = HashMap::default();
    for path in on_disk {
        let module = match sides.get(path) {
            Some(side) => Some(side.unit.name()),
            None => stamps.get(path).map(|s| s.module.as_str()),
        };
        if report.failed.iter().any(|f| f.path == *path) {
            continue;
        }
        if let Some(module) = module {
            claims.entry(module).or_default().push(path);
        }
    }
    let mut losers: Vec<(String, String, String)> = Vec::new();
    for (module, mut paths) in claims {
        if paths.len() < 2 {
            continue;
        }
        paths.sort_unstable();
        let holder = image.module(module)?.map(|m| m.path);
        let winner = holder
            .filter(|h| paths.contains(&h.as_str()))
            .unwrap_or_else(|| paths[0].to_string());
        for loser in paths.into_iter().filter(|p| *p != winner) {
            losers.push((module.to_string(), winner.clone(), loser.to_string()));
        }
    }
    losers.sort();
    for (module, winner, loser) in losers {
        report.failed.push(FileFailure::new(
            loser.clone(),
            FailureKind::ClaimedTwice {
                module: module.clone(),
                holder: winner.clone(),
                path: loser.clone(),
            },
        ));
        sides.remove(&loser);
        if holders.get(&module) == Some(&loser) {
            if sides.contains_key(&winner) {
                holders.insert(module, winner);
            } else {
                holders.remove(&module);
            }
        }
    }
    Ok(())
}

/// A module's differences by definition, image against file (`None`: no file), and the
/// definitions in conflict among them. Texts are kept with `texts`.
fn file_changes(
    image: &Image,
    module: &str,
    record: &ModuleRecord,
    sync: &SyncRecord,
    file: Option<&FileSide>,
    own: bool,
    texts: bool,
) -> Result<(Vec<DefinitionDiff>, Vec<String>)> {
    let mut out = Vec::new();
    let mut conflicts = Vec::new();
    let mut in_file: HashMap<&str, (Hash, &[u8])> = HashMap::default();
    let mut file_order: Vec<&str> = Vec::new();
    if let Some(file) = file {
        for (i, def) in file.unit.definitions().iter().enumerate() {
            let text = file.unit.definition_text(i);
            in_file.insert(def.name.as_str(), (Hash::of(text), text));
            file_order.push(def.name.as_str());
        }
    }
    let mut in_image: HashSet<&str> = HashSet::default();
    for name in &record.definitions {
        in_image.insert(name.as_str());
        let Some(def) = image.definition(module, name)? else {
            continue;
        };
        let image_text = || image.text(&def.hash);
        match in_file.get(name.as_str()) {
            Some((hash, _)) if *hash == def.hash => {}
            Some((hash, text)) => {
                let side = if !own {
                    Side::Unknown
                } else if def.base == Some(def.hash) {
                    Side::File
                } else if def.base == Some(*hash) {
                    Side::Image
                } else {
                    if !merges_cleanly(image, &def, text) {
                        conflicts.push(name.clone());
                    }
                    Side::Both
                };
                let image_text = image_text()?;
                let change = if same_tree(&image_text, text) {
                    Change::FormattingOnly
                } else {
                    Change::Changed
                };
                out.push(DefinitionDiff {
                    name: name.clone(),
                    change,
                    side,
                    other: None,
                    image: texts.then_some(image_text),
                    file: texts.then(|| text.to_vec()),
                    base: base_text(image, &def, texts && side == Side::Both),
                });
            }
            None => {
                let side = if !own {
                    Side::Unknown
                } else if def.base.is_none() {
                    Side::Image
                } else if def.base == Some(def.hash) {
                    Side::File
                } else {
                    if file.is_some() {
                        conflicts.push(name.clone());
                    }
                    Side::Both
                };
                out.push(DefinitionDiff {
                    name: name.clone(),
                    change: Change::Removed,
                    side,
                    other: None,
                    image: if texts { Some(image_text()?) } else { None },
                    file: None,
                    base: base_text(image, &def, texts && side == Side::Both),
                });
            }
        }
    }
    for name in file_order {
        if in_image.contains(name) {
            continue;
        }
        let (hash, text) = in_file[name];
        let side = match sync.removed.get(name).and_then(|h| Hash::from_hex(h)) {
            _ if !own => Side::Unknown,
            Some(base) if base == hash => Side::Image,
            Some(_) => {
                conflicts.push(name.to_string());
                Side::Both
            }
            None if sync.conflicts.contains_key(name) => Side::Both,
            None => Side::File,
        };
        out.push(DefinitionDiff {
            name: name.to_string(),
            change: Change::Added,
            side,
            other: None,
            image: None,
            file: texts.then(|| text.to_vec()),
            base: None,
        });
    }
    Ok((out, conflicts))
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
