//! Staged changes to an image that commit together: a module's definitions, its record, its
//! history and the log entry, all or nothing.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use super::blob::{Hash, compress};
use super::record::{
    DefinitionRecord, HistoryRecord, LogEntry, ModuleChange, ModuleKind, ModuleLog, ModuleRecord,
    Origin, PathRecord, decode_layout, definition_key, encode_layout, history_key,
};
use super::{Image, META_GENERATION};
use crate::error::{Error, Result};
use crate::store::{Table, Write};
use crate::syntax::{Piece, SourceUnit, UnitKind, read_definition};

/// A definition changed on both sides since they last agreed: the image kept its text, the
/// file's text is stored too (nothing is lost) and named here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The module.
    pub module: String,
    /// The definition.
    pub name: String,
    /// The image's text hash.
    pub image: Option<Hash>,
    /// The file's text hash (`None`: removed in the file).
    pub file: Option<Hash>,
}

/// A text ready to store: its hash and stored form, computed before the transaction (in
/// parallel, where a build has cores to spare).
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The text's hash.
    pub hash: Hash,
    /// The text's length.
    pub len: u32,
    /// The compressed form (empty once taken out by [`PreparedUnit::take_texts`]).
    pub stored: Vec<u8>,
    /// The compressed form's length.
    pub stored_len: u32,
}

impl Prepared {
    /// Hashes and compresses `text`.
    pub fn new(text: &[u8]) -> Prepared {
        let stored = compress(text);
        Prepared {
            hash: Hash::of(text),
            len: text.len() as u32,
            stored_len: stored.len() as u32,
            stored,
        }
    }
}

/// A unit read from a file, its texts hashed and compressed, ready for
/// [`Transaction::put_unit`].
#[derive(Clone, Debug)]
pub struct PreparedUnit {
    name: String,
    kind: ModuleKind,
    definitions: Vec<(String, Prepared)>,
    gaps: Vec<Vec<u8>>,
}

impl PreparedUnit {
    /// Prepares `unit`.
    pub fn new(unit: &SourceUnit) -> PreparedUnit {
        let mut definitions = Vec::with_capacity(unit.definitions().len());
        let mut gaps = Vec::with_capacity(unit.definitions().len() + 1);
        for piece in unit.pieces() {
            match piece {
                Piece::Gap(gap) => gaps.push(gap.to_vec()),
                Piece::Definition(def, text) => {
                    definitions.push((def.name.clone(), Prepared::new(text)));
                }
            }
        }
        PreparedUnit {
            name: unit.name().to_string(),
            kind: match unit.kind() {
                UnitKind::Module => ModuleKind::Module,
                UnitKind::Script => ModuleKind::Script,
            },
            definitions,
            gaps,
        }
    }

    /// The unit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many texts the unit holds (its definitions).
    pub fn text_count(&self) -> usize {
        self.definitions.len()
    }

    /// Takes the stored forms of its texts out, to be written by
    /// [`Image::store_texts`](super::Image::store_texts); the transaction then only refers to
    /// them.
    pub fn take_texts(&mut self) -> Vec<(Hash, Vec<u8>)> {
        self.definitions
            .iter_mut()
            .map(|(_, text)| (text.hash, std::mem::take(&mut text.stored)))
            .collect()
    }
}

/// Changes staged against an [`Image`]; see [`Image::begin`]. Dropped without
/// [`commit`](Self::commit), it changes nothing.
pub struct Transaction<'a> {
    image: &'a Image,
    origin: Origin,
    generation: u64,
    /// Staged writes by table; `None` stages a removal.
    overlay: Vec<HashMap<Vec<u8>, Option<Vec<u8>>>>,
    blobs: HashSet<Hash>,
    log: Vec<ModuleLog>,
    conflicts: Vec<Conflict>,
}

/// From this many writes on, the first commit of an image loads tables directly.
const BULK_MIN_WRITES: usize = 10_000;

fn slot(table: Table) -> usize {
    Table::ALL.iter().position(|t| *t == table).unwrap_or(0)
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(image: &'a Image, origin: Origin) -> Transaction<'a> {
        Transaction {
            image,
            origin,
            generation: image.generation().unwrap_or(0) + 1,
            overlay: vec![HashMap::default(); Table::ALL.len()],
            blobs: HashSet::default(),
            log: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    /// The generation this transaction commits as.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Definitions that changed on both sides, seen so far.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// What the transaction changes so far, by module.
    pub fn changes(&self) -> &[ModuleLog] {
        &self.log
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.overlay[slot(table)].get(key) {
            Some(staged) => Ok(staged.clone()),
            None => self.image.store().get(table, key),
        }
    }

    fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.overlay[slot(table)].insert(key, Some(value));
    }

    fn delete(&mut self, table: Table, key: Vec<u8>) {
        self.overlay[slot(table)].insert(key, None);
    }

    /// A module's record as this transaction sees it.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn module(&self, name: &str) -> Result<Option<ModuleRecord>> {
        self.get(Table::Modules, name.as_bytes())?
            .map(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| Error::Corrupt(format!("module record `{name}`: {e}")))
            })
            .transpose()
    }

    /// A definition's record as this transaction sees it.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn definition(&self, module: &str, name: &str) -> Result<Option<DefinitionRecord>> {
        self.get(Table::Definitions, &definition_key(module, name))?
            .map(|b| DefinitionRecord::decode(&b))
            .transpose()
    }

    fn text(&self, hash: &Hash) -> Result<Vec<u8>> {
        match self.get(Table::Blobs, &hash.0)? {
            Some(stored) => super::blob::decompress(&stored),
            None => Err(Error::Corrupt(format!(
                "text {} is missing",
                hash.short(12)
            ))),
        }
    }

    fn put_blob(&mut self, text: Prepared) -> (Hash, u32, u32) {
        let hash = text.hash;
        let stored = text.stored_len;
        // An empty stored form was taken out and written ahead (`PreparedUnit::take_texts`):
        // no compressed text is ever empty, since the length comes first.
        if self.blobs.insert(hash) && !text.stored.is_empty() {
            self.put(Table::Blobs, hash.0.to_vec(), text.stored);
        }
        (hash, text.len, stored)
    }

    fn gaps(&self, record: &ModuleRecord) -> Result<Vec<Vec<u8>>> {
        decode_layout(&self.text(&record.layout_hash()?)?)
    }

    fn write_module(&mut self, name: &str, record: &ModuleRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(|e| Error::Store(e.to_string()))?;
        self.put(Table::Modules, name.as_bytes().to_vec(), bytes);
        Ok(())
    }

    /// Sets a definition's text, keeping the version it replaces in history.
    fn set_definition(
        &mut self,
        module: &str,
        name: &str,
        text: Prepared,
        base: Option<Hash>,
        old: Option<&DefinitionRecord>,
    ) {
        if let Some(old) = old {
            self.supersede(module, name, old);
        }
        let (hash, size, stored) = self.put_blob(text);
        let record = DefinitionRecord {
            hash,
            base,
            size,
            stored,
            generation: self.generation,
            origin: self.origin,
        };
        self.put(
            Table::Definitions,
            definition_key(module, name),
            record.encode(),
        );
    }

    fn set_base(
        &mut self,
        module: &str,
        name: &str,
        record: &DefinitionRecord,
        base: Option<Hash>,
    ) {
        let record = DefinitionRecord { base, ..*record };
        self.put(
            Table::Definitions,
            definition_key(module, name),
            record.encode(),
        );
    }

    fn unset_definition(&mut self, module: &str, name: &str, old: &DefinitionRecord) {
        self.supersede(module, name, old);
        let removal = HistoryRecord {
            origin: self.origin,
            hash: None,
        };
        self.put(
            Table::History,
            history_key(module, name, self.generation),
            removal.encode(),
        );
        self.delete(Table::Definitions, definition_key(module, name));
    }

    /// Moves a version into history, under the generation that made it.
    fn supersede(&mut self, module: &str, name: &str, old: &DefinitionRecord) {
        let record = HistoryRecord {
            origin: old.origin,
            hash: Some(old.hash),
        };
        self.put(
            Table::History,
            history_key(module, name, old.generation),
            record.encode(),
        );
    }

    fn note(
        &mut self,
        module: &str,
        change: ModuleChange,
        path: &str,
        from_path: Option<&str>,
        definitions: &[String],
    ) {
        if let Some(entry) = self.log.iter_mut().find(|e| e.module == module) {
            if change != ModuleChange::Changed || entry.change == ModuleChange::Removed {
                entry.change = change;
            }
            if from_path.is_some() {
                entry.from_path = from_path.map(str::to_string);
            }
            entry.path = path.to_string();
            for d in definitions {
                if !entry.definitions.contains(d) {
                    entry.definitions.push(d.clone());
                }
            }
            return;
        }
        self.log.push(ModuleLog {
            module: module.to_string(),
            change,
            path: path.to_string(),
            from_path: from_path.map(str::to_string),
            definitions: definitions.to_vec(),
        });
    }

    /// Stores a module's layout; keeps the one it replaces in history. Returns the new record
    /// fields (hash, generation) and whether it changed.
    fn set_layout(
        &mut self,
        module: &str,
        old: Option<&ModuleRecord>,
        gaps: &[Vec<u8>],
    ) -> (String, u64, bool) {
        let refs: Vec<&[u8]> = gaps.iter().map(Vec::as_slice).collect();
        let (hash, _, _) = self.put_blob(Prepared::new(&encode_layout(&refs)));
        let hex = hash.to_hex();
        match old {
            Some(old) if old.layout == hex => (hex, old.layout_generation, false),
            Some(old) => {
                if let Ok(previous) = old.layout_hash() {
                    let record = HistoryRecord {
                        origin: Origin::File,
                        hash: Some(previous),
                    };
                    self.put(
                        Table::History,
                        history_key(module, "", old.layout_generation),
                        record.encode(),
                    );
                }
                (hex, self.generation, true)
            }
            None => (hex, self.generation, true),
        }
    }

    /// Stores a unit read from the file `path`, merging with the image three ways: a
    /// definition changed only in the file is taken, one changed only in the image is kept
    /// (to be exported), one changed on both sides to different texts is a [`Conflict`] and
    /// keeps the image's text (the file's is stored too).
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn put_unit(&mut self, unit: PreparedUnit, path: &str) -> Result<()> {
        let PreparedUnit {
            name,
            kind,
            definitions,
            mut gaps,
        } = unit;
        let old = self.module(&name)?;
        let mut order: Vec<String> = Vec::with_capacity(definitions.len());
        let mut changed: Vec<String> = Vec::new();
        let mut in_file: HashSet<String> = HashSet::default();
        for (def, text) in definitions {
            // A module new to the image has no definitions to merge with.
            let current = match &old {
                Some(_) => self.definition(&name, &def)?,
                None => None,
            };
            if self.merge_from_file(&name, &def, current, Some(text))? {
                changed.push(def.clone());
            }
            in_file.insert(def.clone());
            order.push(def);
        }
        if let Some(old) = &old {
            let old_gaps = self.gaps(old)?;
            for (i, def) in old.definitions.iter().enumerate() {
                if in_file.contains(def) {
                    continue;
                }
                let current = self.definition(&name, def)?;
                if self.merge_from_file(&name, def, current, None)? {
                    changed.push(def.clone());
                } else if self.definition(&name, def)?.is_some() {
                    // Kept (a live addition or a conflict): it stays after its old neighbour.
                    let after = old.definitions[..i]
                        .iter()
                        .rev()
                        .find_map(|prev| order.iter().position(|o| o == prev));
                    let at = after.map_or(0, |p| p + 1);
                    let gap = old_gaps.get(i).cloned().unwrap_or_else(|| b"\n".to_vec());
                    order.insert(at, def.clone());
                    gaps.insert((at + 1).min(gaps.len()), gap);
                }
            }
        }
        let (layout, layout_generation, layout_changed) =
            self.set_layout(&name, old.as_ref(), &gaps);
        let moved_from = old
            .as_ref()
            .filter(|o| o.path != path)
            .map(|o| o.path.clone());
        let unchanged = old.as_ref().is_some_and(|o| {
            o.definitions == order && o.kind == kind && !layout_changed && changed.is_empty()
        });
        if unchanged && moved_from.is_none() {
            return Ok(());
        }
        let record = ModuleRecord {
            path: path.to_string(),
            kind,
            definitions: order,
            layout,
            generation: self.generation,
            layout_generation,
        };
        self.write_module(&name, &record)?;
        let change = match (&old, &moved_from) {
            (None, _) => ModuleChange::Added,
            (Some(_), Some(_)) => ModuleChange::Moved,
            (Some(_), None) => ModuleChange::Changed,
        };
        self.note(&name, change, path, moved_from.as_deref(), &changed);
        Ok(())
    }

    /// Merges one definition's file side (`None`: absent from the file) with its image side
    /// `current`. Returns whether the image's definition changed.
    fn merge_from_file(
        &mut self,
        module: &str,
        name: &str,
        current: Option<DefinitionRecord>,
        file: Option<Prepared>,
    ) -> Result<bool> {
        let file_hash = file.as_ref().map(|f| f.hash);
        let Some(record) = current else {
            return Ok(match file {
                Some(text) => {
                    let hash = text.hash;
                    self.set_definition(module, name, text, Some(hash), None);
                    true
                }
                None => false,
            });
        };
        if Some(record.hash) == file_hash {
            if record.base != file_hash {
                // Both sides reached the same text: that is the new agreement.
                self.set_base(module, name, &record, file_hash);
            }
            return Ok(false);
        }
        if record.base == file_hash {
            // The file did not change since the last agreement; the image did: keep it.
            return Ok(false);
        }
        if record.base == Some(record.hash) {
            // Only the file changed: take it.
            match file {
                Some(text) => {
                    let hash = text.hash;
                    self.set_definition(module, name, text, Some(hash), Some(&record));
                }
                None => self.unset_definition(module, name, &record),
            }
            return Ok(true);
        }
        if record.base.is_none() && file.is_none() {
            // Added in the image and never exported: nothing to merge.
            return Ok(false);
        }
        self.conflicts.push(Conflict {
            module: module.to_string(),
            name: name.to_string(),
            image: Some(record.hash),
            file: file_hash,
        });
        if let Some(text) = file {
            // Keep the file's side in the store so that nothing of it is lost.
            self.put_blob(text);
        }
        Ok(false)
    }

    /// Creates an empty module `name` to live in file `path` (relative to the source root),
    /// holding only its `_meta`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the module exists; storage failures.
    pub fn create_module(&mut self, name: &str, path: &str) -> Result<()> {
        if self.module(name)?.is_some() {
            return Err(Error::Invalid(format!("module `{name}` exists already")));
        }
        let meta = format!("_meta = {{name = '{name}}}");
        self.set_definition(name, "_meta", Prepared::new(meta.as_bytes()), None, None);
        let gaps = vec![b"{\n  ".to_vec(), b"\n}\n".to_vec()];
        let (layout, layout_generation, _) = self.set_layout(name, None, &gaps);
        let record = ModuleRecord {
            path: path.to_string(),
            kind: ModuleKind::Module,
            definitions: vec!["_meta".to_string()],
            layout,
            generation: self.generation,
            layout_generation,
        };
        self.write_module(name, &record)?;
        self.note(
            name,
            ModuleChange::Added,
            path,
            None,
            &["_meta".to_string()],
        );
        Ok(())
    }

    /// Adds or replaces one definition as a live edit. `text` is the definition as it stands
    /// in a file (`name = expression`, comments above allowed). A new definition goes after
    /// the module's last one, separated from it as the last one is from its neighbour.
    ///
    /// # Errors
    /// [`Error::Syntax`] when the text does not parse, [`Error::Invalid`] when it defines
    /// another name or the module is a script (nothing is changed either way);
    /// [`Error::NoModule`]; storage failures.
    pub fn put_definition(&mut self, module: &str, name: &str, text: &[u8]) -> Result<()> {
        let defined = read_definition(text).map_err(|e| Error::Syntax {
            path: format!("{module}::{name}").into(),
            text: e.text,
            errors: e.errors,
        })?;
        if defined != name {
            return Err(Error::Invalid(format!(
                "the text defines `{defined}`, not `{name}`"
            )));
        }
        let mut record = self
            .module(module)?
            .ok_or_else(|| Error::NoModule(module.to_string()))?;
        if record.kind == ModuleKind::Script {
            return Err(Error::Invalid(format!(
                "`{module}` is a script: it holds no definitions"
            )));
        }
        let prepared = Prepared::new(text);
        let existing = self.definition(module, name)?;
        if existing.is_some_and(|d| d.hash == prepared.hash) {
            return Ok(());
        }
        self.set_definition(
            module,
            name,
            prepared,
            existing.and_then(|d| d.base),
            existing.as_ref(),
        );
        if existing.is_none() {
            let mut gaps = self.gaps(&record)?;
            let separator = match gaps.len() {
                0 | 1 => b"\n".to_vec(),
                2 => trailing_indentation(&gaps[0]),
                n => leading_whitespace(&gaps[n - 2]),
            };
            let at = gaps.len().saturating_sub(1);
            gaps.insert(at, separator);
            record.definitions.push(name.to_string());
            return self.write_changed_module(module, record, Some(&gaps), name);
        }
        self.write_changed_module(module, record, None, name)
    }

    /// Removes one definition (its history stays).
    ///
    /// # Errors
    /// [`Error::NoDefinition`]; storage failures.
    pub fn remove_definition(&mut self, module: &str, name: &str) -> Result<()> {
        let mut record = self
            .module(module)?
            .ok_or_else(|| Error::NoModule(module.to_string()))?;
        let (Some(index), Some(old)) = (
            record.definitions.iter().position(|d| d == name),
            self.definition(module, name)?,
        ) else {
            return Err(Error::NoDefinition {
                module: module.to_string(),
                name: name.to_string(),
            });
        };
        let mut gaps = self.gaps(&record)?;
        // The definition leaves with the separator before it (its comments are its own).
        if gaps.len() > 2 {
            gaps.remove(if index == 0 { 1 } else { index });
        } else if gaps.len() == 2 {
            // The only definition: the text around it becomes one gap.
            let last = gaps.remove(1);
            gaps[0].extend_from_slice(&last);
        }
        record.definitions.remove(index);
        self.unset_definition(module, name, &old);
        self.write_changed_module(module, record, Some(&gaps), name)
    }

    /// Writes a module one of whose definitions (`name`) changed: its new layout if given,
    /// its generation, and the log note.
    fn write_changed_module(
        &mut self,
        module: &str,
        mut record: ModuleRecord,
        gaps: Option<&[Vec<u8>]>,
        name: &str,
    ) -> Result<()> {
        if let Some(gaps) = gaps {
            let (layout, layout_generation, _) = self.set_layout(module, Some(&record), gaps);
            record.layout = layout;
            record.layout_generation = layout_generation;
        }
        record.generation = self.generation;
        self.write_module(module, &record)?;
        self.note(
            module,
            ModuleChange::Changed,
            &record.path,
            None,
            &[name.to_string()],
        );
        Ok(())
    }

    /// Removes a module and its definitions (their history stays).
    ///
    /// # Errors
    /// Storage failures.
    pub fn remove_module(&mut self, name: &str) -> Result<()> {
        let Some(record) = self.module(name)? else {
            return Ok(());
        };
        for def in &record.definitions {
            if let Some(old) = self.definition(name, def)? {
                self.unset_definition(name, def, &old);
            }
        }
        if let Ok(layout) = record.layout_hash() {
            let kept = HistoryRecord {
                origin: Origin::File,
                hash: Some(layout),
            };
            self.put(
                Table::History,
                history_key(name, "", record.layout_generation),
                kept.encode(),
            );
        }
        self.delete(Table::Modules, name.as_bytes().to_vec());
        self.note(name, ModuleChange::Removed, &record.path, None, &[]);
        Ok(())
    }

    /// Records what was read from file `path`.
    pub fn put_path(&mut self, path: &str, record: &PathRecord) {
        self.put(Table::Paths, path.as_bytes().to_vec(), record.encode());
    }

    /// Forgets file `path`.
    pub fn remove_path(&mut self, path: &str) {
        self.delete(Table::Paths, path.as_bytes().to_vec());
    }

    /// Commits everything staged, atomically; with `durable`, returns only once it would
    /// survive a power cut. Returns the new generation, or `None` when no module changed (file
    /// stamps alone are still saved, and texts of conflicts).
    ///
    /// # Errors
    /// Storage failures; then nothing was committed.
    pub fn commit(mut self, durable: bool) -> Result<Option<u64>> {
        let generation = if self.log.is_empty() {
            // No module changed: keep stamps, texts and agreements, but write no log entry.
            for table in [Table::Modules, Table::History, Table::Log, Table::Meta] {
                self.overlay[slot(table)].clear();
            }
            None
        } else {
            let entry = LogEntry {
                generation: self.generation,
                time: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                origin: self.origin,
                modules: std::mem::take(&mut self.log),
            };
            let bytes = serde_json::to_vec(&entry).map_err(|e| Error::Store(e.to_string()))?;
            self.put(Table::Log, self.generation.to_be_bytes().to_vec(), bytes);
            self.put(
                Table::Meta,
                META_GENERATION.to_vec(),
                self.generation.to_be_bytes().to_vec(),
            );
            Some(self.generation)
        };
        let mut writes = Vec::new();
        for (i, staged) in self.overlay.into_iter().enumerate() {
            let table = Table::ALL[i];
            writes.extend(staged.into_iter().map(|(key, value)| match value {
                Some(value) => Write::Put(table, key, value),
                None => Write::Delete(table, key),
            }));
        }
        if writes.is_empty() {
            return Ok(None);
        }
        let store = self.image.store();
        if self.generation == 1 && writes.len() >= BULK_MIN_WRITES {
            // The first fill of an empty image: straight into tables, then the generation as
            // the commit mark. An image found holding data at generation 0 was interrupted
            // here, and `Image::open` empties it.
            let (mark, rest): (Vec<Write>, Vec<Write>) = writes
                .into_iter()
                .partition(|w| matches!(w, Write::Put(Table::Meta, ..)));
            store.load(rest)?;
            store.commit(mark, durable)?;
        } else {
            store.commit(writes, durable)?;
        }
        Ok(generation)
    }
}

/// The whitespace a gap between two definitions starts with (`"\n\n  # Section\n\n  "` →
/// `"\n\n  "`): how the last definition is separated from the next, without the comments that
/// belong to neither. Never empty, so the new definition cannot run into the last.
fn leading_whitespace(gap: &[u8]) -> Vec<u8> {
    let end = gap
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(gap.len());
    if end == 0 {
        b" ".to_vec()
    } else {
        gap[..end].to_vec()
    }
}

/// The indentation at the end of a gap (`"{\n  "` → `"\n  "`), as the separator before a
/// first definition added to a module that has none but `_meta`.
fn trailing_indentation(gap: &[u8]) -> Vec<u8> {
    match gap.iter().rposition(|&b| b == b'\n') {
        Some(at) => gap[at..].to_vec(),
        None => b"\n".to_vec(),
    }
}
