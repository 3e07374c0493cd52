//! Staged changes to an image that commit together: a module's definitions, its record, its
//! history and the log entry, all or nothing.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use super::blob::{Hash, compress};
use super::record::{
    DefinitionRecord, HistoryRecord, LogEntry, ModuleChange, ModuleKind, ModuleLog, ModuleRecord,
    Origin, PathRecord, decode_layout, definition_key, encode_layout, history_key,
};
use super::{Image, META_GENERATION};
use crate::error::{Error, Result};
use crate::store::{Table, Write};
use crate::syntax::{SourceUnit, UnitKind, read_definition};

/// A definition changed on both sides since they last agreed: the image kept its text, the
/// file's text is here.
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

/// Changes staged against an [`Image`]; see [`Image::begin`].
pub struct Transaction<'a> {
    image: &'a Image,
    origin: Origin,
    generation: u64,
    overlay: HashMap<(Table, Vec<u8>), Option<Vec<u8>>>,
    blobs: HashSet<Hash>,
    log: Vec<ModuleLog>,
    conflicts: Vec<Conflict>,
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(image: &'a Image, origin: Origin) -> Transaction<'a> {
        Transaction {
            image,
            origin,
            generation: image.generation().unwrap_or(0) + 1,
            overlay: HashMap::new(),
            blobs: HashSet::new(),
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
        match self.overlay.get(&(table, key.to_vec())) {
            Some(staged) => Ok(staged.clone()),
            None => self.image.store().get(table, key),
        }
    }

    fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.overlay.insert((table, key), Some(value));
    }

    fn delete(&mut self, table: Table, key: Vec<u8>) {
        self.overlay.insert((table, key), None);
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

    fn store_text(&mut self, text: &[u8]) -> (Hash, u32) {
        let hash = Hash::of(text);
        let stored = compress(text);
        let len = stored.len() as u32;
        if self.blobs.insert(hash) {
            self.put(Table::Blobs, hash.0.to_vec(), stored);
        }
        (hash, len)
    }

    fn write_module(&mut self, name: &str, record: &ModuleRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(|e| Error::Store(e.to_string()))?;
        self.put(Table::Modules, name.as_bytes().to_vec(), bytes);
        Ok(())
    }

    fn write_definition(&mut self, module: &str, name: &str, record: &DefinitionRecord) {
        self.put(
            Table::Definitions,
            definition_key(module, name),
            record.encode(),
        );
    }

    fn record_history(&mut self, module: &str, name: &str, hash: Option<Hash>) {
        let record = HistoryRecord {
            origin: self.origin,
            hash,
        };
        self.put(
            Table::History,
            history_key(module, name, self.generation),
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

    fn set_layout(&mut self, module: &str, gaps: &[&[u8]]) -> (String, bool) {
        let encoded = encode_layout(gaps);
        let (hash, _) = self.store_text(&encoded);
        let old = self
            .module(module)
            .ok()
            .flatten()
            .map(|m| m.layout)
            .unwrap_or_default();
        let hex = hash.to_hex();
        let changed = old != hex;
        if changed {
            self.record_history(module, "", Some(hash));
        }
        (hex, changed)
    }

    /// Stores a unit read from the file `path`, merging with the image three ways: a
    /// definition changed only in the file is taken, one changed only in the image is kept
    /// (to be exported), one changed on both sides to different texts is a [`Conflict`] and
    /// keeps the image's text.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn put_unit(&mut self, unit: &SourceUnit, path: &str) -> Result<()> {
        let name = unit.name();
        let old = self.module(name)?;
        let kind = match unit.kind() {
            UnitKind::Module => ModuleKind::Module,
            UnitKind::Script => ModuleKind::Script,
        };
        let old_gaps = match &old {
            Some(record) => decode_layout(&self.text(&record.layout_hash()?)?)?,
            None => Vec::new(),
        };
        let mut gaps: Vec<Vec<u8>> = Vec::new();
        let mut order: Vec<String> = Vec::new();
        let mut changed_defs: Vec<String> = Vec::new();
        let mut in_file: HashSet<&str> = HashSet::new();
        for piece in unit.pieces() {
            match piece {
                crate::syntax::Piece::Gap(gap) => gaps.push(gap.to_vec()),
                crate::syntax::Piece::Definition(def, text) => {
                    in_file.insert(def.name.as_str());
                    order.push(def.name.clone());
                    if self.merge_from_file(name, &def.name, Some(text))? {
                        changed_defs.push(def.name.clone());
                    }
                }
            }
        }
        // Definitions the image has and the file does not.
        if let Some(old) = &old {
            for (i, def) in old.definitions.iter().enumerate() {
                if in_file.contains(def.as_str()) {
                    continue;
                }
                if self.merge_from_file(name, def, None)? {
                    changed_defs.push(def.clone());
                } else if self.definition(name, def)?.is_some() {
                    // Kept (a live addition or a conflict): it stays after its old neighbour.
                    let after = old.definitions[..i]
                        .iter()
                        .rev()
                        .find_map(|prev| order.iter().position(|o| o == prev));
                    let at = after.map_or(0, |p| p + 1);
                    let gap = old_gaps.get(i).cloned().unwrap_or_else(|| b"\n".to_vec());
                    order.insert(at, def.clone());
                    gaps.insert(at + 1, gap);
                }
            }
        }
        let gap_refs: Vec<&[u8]> = gaps.iter().map(Vec::as_slice).collect();
        let (layout, layout_changed) = self.set_layout(name, &gap_refs);
        let moved_from = old
            .as_ref()
            .filter(|o| o.path != path)
            .map(|o| o.path.clone());
        let record = ModuleRecord {
            path: path.to_string(),
            kind,
            definitions: order,
            layout,
            generation: self.generation,
        };
        let same_order = old
            .as_ref()
            .is_some_and(|o| o.definitions == record.definitions && o.kind == record.kind);
        if old.is_some()
            && same_order
            && !layout_changed
            && changed_defs.is_empty()
            && moved_from.is_none()
        {
            return Ok(());
        }
        self.write_module(name, &record)?;
        let change = match (&old, &moved_from) {
            (None, _) => ModuleChange::Added,
            (Some(_), Some(_)) => ModuleChange::Moved,
            (Some(_), None) => ModuleChange::Changed,
        };
        self.note(name, change, path, moved_from.as_deref(), &changed_defs);
        Ok(())
    }

    /// Merges one definition's file side (`None`: absent from the file). Returns whether the
    /// image's definition changed.
    fn merge_from_file(&mut self, module: &str, name: &str, file: Option<&[u8]>) -> Result<bool> {
        let current = self.definition(module, name)?;
        let file_hash = file.map(Hash::of);
        match (current, file) {
            (None, None) => Ok(false),
            (None, Some(text)) => {
                let (hash, stored) = self.store_text(text);
                self.write_definition(
                    module,
                    name,
                    &DefinitionRecord {
                        hash,
                        base: Some(hash),
                        size: text.len() as u32,
                        stored,
                        generation: self.generation,
                    },
                );
                self.record_history(module, name, Some(hash));
                Ok(true)
            }
            (Some(record), _) if Some(record.hash) == file_hash => {
                if record.base != file_hash {
                    // Both sides reached the same text: that is the new agreement.
                    self.write_definition(
                        module,
                        name,
                        &DefinitionRecord {
                            base: file_hash,
                            ..record
                        },
                    );
                }
                Ok(false)
            }
            (Some(record), _) if record.base == file_hash => {
                // The file did not change since the last agreement; the image did: keep it.
                Ok(false)
            }
            (Some(record), file) if record.base == Some(record.hash) => {
                // Only the file changed: take it.
                match file {
                    Some(text) => {
                        let (hash, stored) = self.store_text(text);
                        self.write_definition(
                            module,
                            name,
                            &DefinitionRecord {
                                hash,
                                base: Some(hash),
                                size: text.len() as u32,
                                stored,
                                generation: self.generation,
                            },
                        );
                        self.record_history(module, name, Some(hash));
                    }
                    None => {
                        self.delete(Table::Definitions, definition_key(module, name));
                        self.record_history(module, name, None);
                    }
                }
                Ok(true)
            }
            (Some(record), None) if record.base.is_none() => {
                // Added in the image and never exported: nothing to merge.
                Ok(false)
            }
            (Some(record), _) => {
                self.conflicts.push(Conflict {
                    module: module.to_string(),
                    name: name.to_string(),
                    image: Some(record.hash),
                    file: file_hash,
                });
                if let Some(text) = file {
                    // Keep the file's side in the store so nothing of it is lost.
                    self.store_text(text);
                }
                Ok(false)
            }
        }
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
        let (hash, stored) = self.store_text(meta.as_bytes());
        self.write_definition(
            name,
            "_meta",
            &DefinitionRecord {
                hash,
                base: None,
                size: meta.len() as u32,
                stored,
                generation: self.generation,
            },
        );
        self.record_history(name, "_meta", Some(hash));
        let gaps: [&[u8]; 2] = [b"{\n  ", b"\n}\n"];
        let (layout, _) = self.set_layout(name, &gaps);
        let record = ModuleRecord {
            path: path.to_string(),
            kind: ModuleKind::Module,
            definitions: vec!["_meta".to_string()],
            layout,
            generation: self.generation,
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
    /// the module's last one.
    ///
    /// # Errors
    /// [`Error::Syntax`] when the text does not parse or defines another name (nothing is
    /// changed); [`Error::NoModule`]; storage failures.
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
        let (hash, stored) = self.store_text(text);
        let existing = self.definition(module, name)?;
        if existing.is_some_and(|d| d.hash == hash) {
            return Ok(());
        }
        self.write_definition(
            module,
            name,
            &DefinitionRecord {
                hash,
                base: existing.and_then(|d| d.base),
                size: text.len() as u32,
                stored,
                generation: self.generation,
            },
        );
        self.record_history(module, name, Some(hash));
        if existing.is_none() {
            let mut gaps = decode_layout(&self.text(&record.layout_hash()?)?)?;
            // The new one goes after the last, separated as the last is from its neighbour.
            let separator = match gaps.len() {
                0 | 1 => b"\n".to_vec(),
                2 => trailing_indentation(&gaps[0]),
                n => gaps[n - 2].clone(),
            };
            let at = gaps.len().saturating_sub(1);
            gaps.insert(at, separator);
            record.definitions.push(name.to_string());
            let refs: Vec<&[u8]> = gaps.iter().map(Vec::as_slice).collect();
            record.layout = self.set_layout(module, &refs).0;
        }
        record.generation = self.generation;
        let path = record.path.clone();
        self.write_module(module, &record)?;
        self.note(
            module,
            ModuleChange::Changed,
            &path,
            None,
            &[name.to_string()],
        );
        Ok(())
    }

    /// Removes one definition (its history stays).
    ///
    /// # Errors
    /// [`Error::NoDefinition`]; storage failures.
    pub fn remove_definition(&mut self, module: &str, name: &str) -> Result<()> {
        let mut record = self
            .module(module)?
            .ok_or_else(|| Error::NoModule(module.to_string()))?;
        let Some(index) = record.definitions.iter().position(|d| d == name) else {
            return Err(Error::NoDefinition {
                module: module.to_string(),
                name: name.to_string(),
            });
        };
        let mut gaps = decode_layout(&self.text(&record.layout_hash()?)?)?;
        // The definition leaves with the separator before it (its comments are its own).
        if index + 1 < gaps.len() {
            gaps.remove(if index == 0 { 1 } else { index });
        }
        record.definitions.remove(index);
        let refs: Vec<&[u8]> = gaps.iter().map(Vec::as_slice).collect();
        record.layout = self.set_layout(module, &refs).0;
        record.generation = self.generation;
        self.delete(Table::Definitions, definition_key(module, name));
        self.record_history(module, name, None);
        let path = record.path.clone();
        self.write_module(module, &record)?;
        self.note(
            module,
            ModuleChange::Changed,
            &path,
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
            self.delete(Table::Definitions, definition_key(name, def));
            self.record_history(name, def, None);
        }
        self.record_history(name, "", None);
        self.delete(Table::Modules, name.as_bytes().to_vec());
        self.note(name, ModuleChange::Removed, &record.path, None, &[]);
        Ok(())
    }

    /// Records what was read from file `path`.
    pub fn put_path(&mut self, path: &str, record: &PathRecord) {
        if let Ok(bytes) = serde_json::to_vec(record) {
            self.put(Table::Paths, path.as_bytes().to_vec(), bytes);
        }
    }

    /// Forgets file `path`.
    pub fn remove_path(&mut self, path: &str) {
        self.delete(Table::Paths, path.as_bytes().to_vec());
    }

    /// Commits everything staged, atomically; with `durable`, returns only once it would
    /// survive a power cut. Returns the new generation, or `None` when no module changed (file
    /// stamps alone are still saved).
    ///
    /// # Errors
    /// Storage failures; then nothing was committed.
    pub fn commit(mut self, durable: bool) -> Result<Option<u64>> {
        if self.overlay.is_empty() {
            return Ok(None);
        }
        let generation = if self.log.is_empty() {
            // Stamps only: no new generation, and drop history staged for no change.
            self.overlay.retain(|(table, _), _| *table == Table::Paths);
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
        let writes = self
            .overlay
            .into_iter()
            .map(|((table, key), value)| match value {
                Some(value) => Write::Put(table, key, value),
                None => Write::Delete(table, key),
            })
            .collect();
        self.image.store().commit(writes, durable)?;
        Ok(generation)
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
