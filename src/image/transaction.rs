//! Staged changes to an image that commit together: a module's definitions, its record, its
//! history and the log entry, all or nothing.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use super::blob::{Hash, compress};
use super::chunks::{self, ChunkIndex, Cutter};
use super::record::{
    CLOSING, DefinitionRecord, HistoryRecord, Layout, LogEntry, ModuleChange, ModuleKind,
    ModuleLog, ModuleRecord, ORDER_STEP, Origin, PathRecord, Reshape, Span, SyncRecord,
    definition_key, encode_order_entry, history_key, order_key, order_position, order_prefix,
};
use super::save::SavedUnit;
use super::{Image, META_GENERATION};
use crate::error::{Error, Result};
use crate::store::{Bytes, Store, Table, Write, try_visit};
use crate::syntax::{
    Piece, ReadsBackError, SourceUnit, SyntaxErrorKind, UnitKind, format_new_definition,
    read_definition, whole_reads_back, window_reads_back_part,
};

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
    pub stored: Bytes,
    /// The compressed form's length.
    pub stored_len: u32,
    /// The text itself while it is only hashed ([`Prepared::hashed`]): it is compressed when
    /// it is written, if ever.
    raw: Vec<u8>,
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
            raw: Vec::new(),
        }
    }

    /// Hashes `text` and leaves its compression until it is written: a file read again
    /// mostly holds texts its module has already, which are never written.
    pub fn hashed(text: &[u8]) -> Prepared {
        debug_assert!(!text.is_empty(), "a definition's text is never empty");
        Prepared {
            hash: Hash::of(text),
            len: text.len() as u32,
            stored: Bytes::empty(),
            stored_len: 0,
            raw: text.to_vec(),
        }
    }

    /// Whether its stored form is still to be written (not taken out, not already stored).
    fn unstored(&self) -> bool {
        !self.stored.is_empty() || !self.raw.is_empty()
    }

    /// Compresses a text that was only hashed.
    fn compress_now(&mut self) {
        if self.stored.is_empty() && !self.raw.is_empty() {
            self.stored = compress(&self.raw);
            self.stored_len = self.stored.len() as u32;
            self.raw = Vec::new();
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
    /// The image's definition records of the module as they were read before the
    /// transaction began ([`with_stored_index`](Self::with_stored_index)): the merge then
    /// need not scan them again.
    stored_index: Option<HashMap<String, DefinitionRecord>>,
    /// For a module of [`chunks::INDEX_AT_BUILD`] bytes or more prepared to be new to the
    /// image: its chunk index, which a first build writes beside it, so that the first save
    /// of one of its definitions reads its chunks, not the whole module.
    chunks: Option<ChunkIndex>,
}

/// The chunk index a first build writes for a module new to the image (see
/// [`PreparedUnit::chunks`]), cut as its definitions are prepared: nothing for a script or a
/// module shorter than [`chunks::INDEX_AT_BUILD`].
struct BuildIndex(Option<Cutter>);

impl BuildIndex {
    fn new(unit: &SourceUnit) -> BuildIndex {
        let wanted = unit.kind() == UnitKind::Module && unit.text().len() >= chunks::INDEX_AT_BUILD;
        BuildIndex(wanted.then(|| Cutter::new(0, chunks::CHUNK_TARGET)))
    }

    /// Takes the `at`th definition, prepared as `text`, numbered as a new module's are.
    fn push(&mut self, unit: &SourceUnit, at: usize, text: &Prepared) {
        if let Some(cutter) = &mut self.0 {
            let piece = chunks::Piece {
                position: (at as u64 + 1) * ORDER_STEP,
                gap: unit.gap_before(at).len(),
                size: text.len as usize,
                hash: text.hash,
            };
            cutter.push(unit.text(), piece);
        }
    }

    /// The index, when the definitions and gaps cover the text exactly.
    fn finish(self, unit: &SourceUnit) -> Option<ChunkIndex> {
        let closing = unit.gap_before(unit.definitions().len()).len();
        let (chunks, end) = self.0?.finish(unit.text(), Some(closing))?;
        (end == unit.text().len()).then_some(ChunkIndex {
            target: chunks::CHUNK_TARGET,
            chunks,
        })
    }
}

impl PreparedUnit {
    /// Prepares `unit`: its texts hashed and compressed.
    pub fn new(unit: &SourceUnit) -> PreparedUnit {
        PreparedUnit::with(unit, Prepared::new, false)
    }

    /// [`new`](Self::new) for a first fill, which stages the unit as a module new to the
    /// image ([`Transaction::put_new_unit`]): with its chunk index, which only that writes.
    pub(crate) fn new_to_image(unit: &SourceUnit) -> PreparedUnit {
        PreparedUnit::with(unit, Prepared::new, true)
    }

    /// Prepares `unit` read again from its file: its texts hashed, compressed only when
    /// written ([`Prepared::hashed`]).
    pub fn hashed(unit: &SourceUnit) -> PreparedUnit {
        PreparedUnit::with(unit, Prepared::hashed, false)
    }

    /// Prepares `unit`, each definition's text by `prepare`, and its chunk index with `index`.
    fn with(unit: &SourceUnit, prepare: fn(&[u8]) -> Prepared, index: bool) -> PreparedUnit {
        // The layout is the gaps between the definitions: it relies on their spans being
        // sorted, disjoint and within the text, and on the pieces giving the text back.
        debug_assert!(
            unit.definitions()
                .windows(2)
                .all(|w| w[0].span.end <= w[1].span.start)
                && unit
                    .definitions()
                    .last()
                    .is_none_or(|d| d.span.end <= unit.text().len()),
            "the definitions of `{}` overlap or lie outside its text",
            unit.name()
        );
        debug_assert!(
            unit.pieces()
                .iter()
                .flat_map(|p| match p {
                    Piece::Gap(gap) => gap.iter(),
                    Piece::Definition(_, text) => text.iter(),
                })
                .eq(unit.text().iter()),
            "the pieces of `{}` do not concatenate to its text",
            unit.name()
        );
        let mut definitions = Vec::with_capacity(unit.definitions().len());
        let mut gaps = Vec::with_capacity(unit.definitions().len() + 1);
        for piece in unit.pieces() {
            match piece {
                Piece::Gap(gap) => gaps.push(gap.to_vec()),
                Piece::Definition(def, text) => {
                    definitions.push((def.name.clone(), prepare(text)));
                }
            }
        }
        let chunks = index
            .then(|| {
                let mut cutter = BuildIndex::new(unit);
                for (at, (_, text)) in definitions.iter().enumerate() {
                    cutter.push(unit, at, text);
                }
                cutter.finish(unit)
            })
            .flatten();
        PreparedUnit {
            name: unit.name().to_string(),
            kind: match unit.kind() {
                UnitKind::Module => ModuleKind::Module,
                UnitKind::Script => ModuleKind::Script,
            },
            definitions,
            gaps,
            stored_index: None,
            chunks,
        }
    }

    /// Keeps `index`, the module's definition records as the image held them (from
    /// [`Image::definition_index`](super::Image::definition_index)), for
    /// [`Transaction::put_unit`] to merge against, instead of scanning them again. It must be
    /// read from the image the transaction is begun on, with no write in between; the
    /// transaction reads them again when it has staged writes of the module.
    pub fn with_stored_index(&mut self, index: HashMap<String, DefinitionRecord>) {
        self.stored_index = Some(index);
    }

    /// The unit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many texts the unit holds (its definitions).
    pub fn text_count(&self) -> usize {
        self.definitions.len()
    }

    /// How many of its texts are still to be written (not taken out, not already stored).
    pub fn unstored_count(&self) -> usize {
        self.definitions
            .iter()
            .filter(|(_, text)| text.unstored())
            .count()
    }

    /// Forgets the stored forms of the texts whose hashes are in `stored`, with their stored
    /// lengths (the image holds them already): the transaction then only refers to them, as to
    /// texts taken out.
    pub fn drop_stored(&mut self, stored: &HashMap<Hash, u32>) {
        for (_, text) in &mut self.definitions {
            if let Some(&stored_len) = stored.get(&text.hash) {
                text.stored = Bytes::empty();
                if !text.raw.is_empty() {
                    text.raw = Vec::new();
                    text.stored_len = stored_len;
                }
            }
        }
    }

    /// Takes the stored forms of its texts out, to be written by
    /// [`Image::store_texts`](super::Image::store_texts); the transaction then only refers to
    /// them. Texts already stored ([`drop_stored`](Self::drop_stored)) are left out.
    pub fn take_texts(&mut self) -> Vec<(Hash, Bytes)> {
        self.definitions
            .iter_mut()
            .filter(|(_, text)| text.unstored())
            .map(|(_, text)| {
                text.compress_now();
                (text.hash, std::mem::take(&mut text.stored))
            })
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
    overlay: Vec<HashMap<Vec<u8>, Option<Bytes>>>,
    log: Vec<ModuleLog>,
    /// Where each module's entry is in `log`: a first build notes every module of the tree.
    logged: HashMap<String, usize>,
    /// Staged records already loaded into the tables ([`spill_first_fill`](Self::spill_first_fill)).
    spilled: bool,
    /// About how much memory the staged writes hold (keys, values and the map's share),
    /// counted since the last spill: what decides when a first fill spills.
    staged_bytes: usize,
    /// File sides kept in history by [`keep_file_side`](Self::keep_file_side), each logged
    /// under the generation it took.
    kept: Vec<(u64, ModuleLog)>,
    conflicts: Vec<Conflict>,
    /// Modules whose definition or order records have staged writes: only their
    /// [`definition_index`](Self::definition_index) and [`layout`](Self::layout) must look
    /// through the staged writes too.
    touched: HashSet<Vec<u8>>,
    /// The order key a definition new to its module gets when its record is first written:
    /// a module new to the image takes its file's order as it comes, so its records are
    /// written once, not again by [`set_layout`](Self::set_layout).
    new_position: u64,
    /// On a first fill ([`append_new_records`](Self::append_new_records)): the definition,
    /// order and text records of its new modules, as writes in the order they came, not in the
    /// overlay. Nothing reads them back before the commit, and keyed in a map they cost a
    /// first build's main thread a hash and an entry per record, and a copy into a write.
    appended: Vec<Write>,
    appending: bool,
}

/// What merging one definition's file side into the image came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Merged {
    /// The image took the file's side (changed or removed it).
    Taken,
    /// Both sides hold the same text (or neither holds it).
    Agreed,
    /// Only the image changed: it keeps its text, for export.
    Kept,
    /// Both changed, in lines that do not overlap: the image holds the merged text, for
    /// export.
    Combined,
    /// Both changed, to different texts; the file's side (`None`: removed there).
    Conflict(Option<Hash>),
}

/// A file's unit as read, for checking a merged text in its place.
struct FileSide {
    script: String,
    gaps: Vec<Vec<u8>>,
    names: Vec<String>,
    hashes: Vec<Hash>,
}

impl FileSide {
    /// Whether the file, with `merged` in place of its definition `at`, reads back as the same
    /// definitions with the same texts: a merge must parse, keep its name, and not change how
    /// its neighbours read. Any text that cannot be had makes it a conflict.
    fn fits(
        &self,
        tx: &Transaction,
        pending: &[Option<(String, Prepared)>],
        at: usize,
        merged: &[u8],
    ) -> bool {
        if self.gaps.len() != self.names.len() + 1 {
            return false;
        }
        let mut text = Vec::new();
        for (k, gap) in self.gaps.iter().enumerate() {
            text.extend_from_slice(gap);
            if k == at {
                text.extend_from_slice(merged);
            } else if k < self.names.len() {
                let piece = match pending.get(k).and_then(Option::as_ref) {
                    Some((_, p)) => tx.prepared_text(p),
                    None => tx.text(&self.hashes[k]),
                };
                match piece {
                    Ok(piece) => text.extend_from_slice(&piece),
                    Err(_) => return false,
                }
            }
        }
        let Ok(unit) = SourceUnit::parse(text, &self.script) else {
            return false;
        };
        unit.definitions().len() == self.names.len()
            && unit.definitions().iter().enumerate().all(|(k, d)| {
                d.name == self.names[k]
                    && if k == at {
                        unit.definition_text(k) == merged
                    } else {
                        Hash::of(unit.definition_text(k)) == self.hashes[k]
                    }
            })
    }
}

/// Which side of a conflict is kept when it is settled (`resolve --take`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// The file's text wins.
    File,
    /// The image's text wins (export writes it).
    Image,
}

/// From this many writes on, the first commit of an image loads tables directly.
const BULK_MIN_WRITES: usize = 10_000;

/// What a staged write costs beyond its key and value: the map's entry and the two vectors'
/// headers and allocations, about.
const STAGED_ENTRY_BYTES: usize = 96;

/// The tables whose records a first fill appends ([`Transaction::append_new_records`]).
const APPENDED: [Table; 3] = [Table::Definitions, Table::Order, Table::Blobs];

fn slot(table: Table) -> usize {
    table.index()
}

impl<'a> Transaction<'a> {
    /// A transaction on `image`, to commit as the generation after its last.
    ///
    /// # Errors
    /// Storage failures; [`Error::Corrupt`] when the stored generation is damaged or the last
    /// one there can be.
    pub(crate) fn new(image: &'a Image, origin: Origin) -> Result<Transaction<'a>> {
        let generation = image
            .generation()?
            .checked_add(1)
            .ok_or_else(|| Error::corrupt("the generation is at its largest value"))?;
        Ok(Transaction {
            image,
            origin,
            generation,
            overlay: vec![HashMap::default(); Table::ALL.len()],
            log: Vec::new(),
            logged: HashMap::default(),
            spilled: false,
            staged_bytes: 0,
            kept: Vec::new(),
            conflicts: Vec::new(),
            touched: HashSet::default(),
            new_position: 0,
            appended: Vec::new(),
            appending: false,
        })
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
        debug_assert!(
            !(self.appending && APPENDED.contains(&table)),
            "a first fill's appended records are never read back"
        );
        match self.overlay[slot(table)].get(key) {
            Some(staged) => Ok(staged.as_deref().map(<[u8]>::to_vec)),
            None => self.image.store().get(table, key),
        }
    }

    fn put(&mut self, table: Table, key: Vec<u8>, value: impl Into<Bytes>) {
        if self.appending && APPENDED.contains(&table) {
            let write = Write::put(table, key, value);
            if let Write::Put(_, key, value) = &write {
                self.staged_bytes += key.len() + value.len() + STAGED_ENTRY_BYTES;
            }
            self.appended.push(write);
            return;
        }
        self.touch(table, &key);
        self.stage(table, key, value);
    }

    /// Stages `value` under `key` of `table`, with no other effect ([`put`](Self::put)
    /// also notes what the write changes).
    fn stage(&mut self, table: Table, key: Vec<u8>, value: impl Into<Bytes>) {
        let value = value.into();
        self.staged_bytes += key.len() + value.len() + STAGED_ENTRY_BYTES;
        self.overlay[slot(table)].insert(key, Some(value));
    }

    fn delete(&mut self, table: Table, key: Vec<u8>) {
        self.touch(table, &key);
        self.staged_bytes += key.len() + STAGED_ENTRY_BYTES;
        self.overlay[slot(table)].insert(key, None);
    }

    /// Notes the module of a definition or order key about to be staged, and removes the
    /// chunk index of any module whose text may change (`chunks.rs`: it describes the text
    /// its records hold; [`put_saved`](Self::put_saved) writes a new one after its changes,
    /// a live edit of one text its index with that text's chunk cut again). A sync record
    /// says how the module stands with its file, not what its text is: a save asks it before
    /// it reads the index (`Image::saved_span`), and its writes leave the index.
    fn touch(&mut self, table: Table, key: &[u8]) {
        if !matches!(table, Table::Definitions | Table::Order | Table::Modules) {
            return;
        }
        let module = key.split(|&b| b == 0).next().unwrap_or(key);
        self.drop_index(module);
        if table != Table::Modules {
            self.note_touched(module);
        }
    }

    /// Removes the chunk index of `module` in this transaction.
    fn drop_index(&mut self, module: &[u8]) {
        // The first commit of an image finds no index to remove.
        let chunks = &mut self.overlay[slot(Table::Chunks)];
        if self.generation != 1 && !matches!(chunks.get(module), Some(None)) {
            self.staged_bytes += module.len() + STAGED_ENTRY_BYTES;
            chunks.insert(module.to_vec(), None);
        }
    }

    /// Notes that `module`'s definition or order records change in this transaction.
    fn note_touched(&mut self, module: &[u8]) {
        if !self.touched.contains(module) {
            self.touched.insert(module.to_vec());
        }
    }

    /// Stages `index` (encoded) as the chunk index of `module`.
    fn stage_index(&mut self, module: &str, index: Vec<u8>) {
        self.stage(Table::Chunks, module.as_bytes().to_vec(), index);
    }

    /// The chunk index of `module` as this transaction sees it (`None`: none, or damaged).
    ///
    /// # Errors
    /// Storage failures.
    fn chunk_index(&self, module: &str) -> Result<Option<ChunkIndex>> {
        Ok(self
            .get(Table::Chunks, module.as_bytes())?
            .and_then(|bytes| ChunkIndex::decode(&bytes)))
    }

    /// The chunk index of `module` once its definition `old` (standing at `old.position`) has
    /// `text` (of `hash`) instead: the chunk that holds it keeps its place and its number of
    /// definitions, takes the new length, and is marked [`chunks::STALE`] (its hash not known:
    /// the next save reads that chunk again and cuts it anew). Nothing but the index is read:
    /// computing the chunk's new hash meant reading every definition of it, some 1,200 point
    /// reads into a cold image (0.11 s of a `put` into a 9,000,000-definition module, against
    /// 0.02 s without). `None` when the module has no index, or when the new text would end a
    /// chunk where the old did not or the other way round (the cut would move: the index is
    /// then dropped, and the next save writes one).
    ///
    /// # Errors
    /// Storage failures.
    fn index_after_edit(
        &self,
        module: &str,
        old: &DefinitionRecord,
        text: &[u8],
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>> {
        let Some(mut index) = self.chunk_index(module)? else {
            return Ok(None);
        };
        if chunks::ends_chunk(&old.hash, old.size as usize, index.target)
            != chunks::ends_chunk(hash, text.len(), index.target)
        {
            return Ok(None);
        }
        let at = index.chunks.partition_point(|c| c.first <= old.position);
        let Some(chunk) = at.checked_sub(1).and_then(|at| index.chunks.get_mut(at)) else {
            return Ok(None);
        };
        let Some(len) = chunk
            .len
            .checked_sub(u64::from(old.size))
            .and_then(|len| len.checked_add(text.len() as u64))
        else {
            return Ok(None);
        };
        chunk.len = len;
        chunk.hash = chunks::STALE;
        Ok(Some(index.encode()))
    }

    /// The chunk index of `module` once its definition `old` has left it (`around`: the
    /// `order` records around it as the removal read them, `at` its place among them), as
    /// [`ChunkIndex::without`] makes it from the index alone. `None` when the module has no
    /// index or it cannot be kept.
    ///
    /// # Errors
    /// Storage failures.
    fn index_after_removal(
        &self,
        module: &str,
        old: &DefinitionRecord,
        around: &[(u64, String, Vec<u8>)],
        at: usize,
    ) -> Result<Option<Vec<u8>>> {
        let Some(index) = self.chunk_index(module)? else {
            return Ok(None);
        };
        let (Some((_, _, gap)), Some((next, _, next_gap))) = (around.get(at), around.get(at + 1))
        else {
            return Ok(None);
        };
        let next = (*next != CLOSING).then_some(*next);
        // What `remove_definition` takes out: the definition with the gap before it, or the
        // first with the gap after it (the one before it stays, the next one's).
        let bytes = match (at, next) {
            (0, None) => return Ok(None),
            (0, Some(_)) => u64::from(old.size) + next_gap.len() as u64,
            _ => gap.len() as u64 + u64::from(old.size),
        };
        let removal = chunks::Removal {
            position: old.position,
            next,
            first: at == 0,
            ends: chunks::ends_chunk(&old.hash, old.size as usize, index.target),
            bytes,
        };
        Ok(index.without(&removal).map(|index| index.encode()))
    }

    /// The chunk index of `module` once a definition (order key `position`) is added after
    /// its last one, `last`: `added` (its gap and text) goes before the closing gap
    /// `closing`, as [`ChunkIndex::with_last`] makes it from the index and the last one's
    /// record. `None` when the module has no index or it cannot be kept.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    fn index_after_append(
        &self,
        module: &str,
        last: &str,
        position: u64,
        added: &[u8],
        closing: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let Some(index) = self.chunk_index(module)? else {
            return Ok(None);
        };
        let Some(last) = self.definition(module, last)? else {
            return Ok(None);
        };
        let ends = chunks::ends_chunk(&last.hash, last.size as usize, index.target);
        Ok(index
            .with_last(position, ends, added, closing)
            .map(|index| index.encode()))
    }

    /// Gives the chunks of `module`'s index that live edits marked [`chunks::STALE`] the
    /// hashes of their bytes in `text`, the module's text as an export has just written it
    /// to its file, so that the saves after the export read along the whole index again.
    /// Done only when `text` is the image's text (no definition in conflict, whose file keeps
    /// its own text) and the chunks' lengths add up to it; otherwise the stale chunks stay,
    /// and the next save reads them again from their records.
    ///
    /// # Errors
    /// Storage failures, a damaged sync record.
    pub(crate) fn refresh_stale_chunks(&mut self, module: &str, text: &[u8]) -> Result<()> {
        let Some(mut index) = self.chunk_index(module)? else {
            return Ok(());
        };
        if !index.chunks.iter().any(|c| c.hash == chunks::STALE)
            || !self.sync(module)?.conflicts.is_empty()
        {
            return Ok(());
        }
        let total = index
            .chunks
            .iter()
            .try_fold(0u64, |total, c| total.checked_add(c.len));
        if total != Some(text.len() as u64) {
            return Ok(());
        }
        let mut at = 0usize;
        for chunk in &mut index.chunks {
            let end = at + chunk.len as usize;
            if chunk.hash == chunks::STALE {
                let Some(bytes) = text.get(at..end) else {
                    return Ok(());
                };
                chunk.hash = Hash::of(bytes);
            }
            at = end;
        }
        self.stage_index(module, index.encode());
        Ok(())
    }

    /// Every definition record of `module` as this transaction sees it, read in one scan
    /// rather than one point read per definition (what an export, a merge of a whole file or
    /// a check of a whole module wants).
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn definition_index(&self, module: &str) -> Result<HashMap<String, DefinitionRecord>> {
        debug_assert!(
            !self.appending,
            "a first fill's appended records are never read back"
        );
        let mut prefix = module.as_bytes().to_vec();
        prefix.push(0);
        let mut out = HashMap::default();
        try_visit(self.image.store(), Table::Definitions, &prefix, |k, v| {
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.insert(name, DefinitionRecord::decode(v)?);
            Ok(())
        })?;
        if self.touched.contains(module.as_bytes()) {
            for (key, staged) in &self.overlay[slot(Table::Definitions)] {
                let Some(name) = key.strip_prefix(prefix.as_slice()) else {
                    continue;
                };
                let name = String::from_utf8_lossy(name).into_owned();
                match staged {
                    Some(bytes) => {
                        out.insert(name, DefinitionRecord::decode(bytes)?);
                    }
                    None => {
                        out.remove(&name);
                    }
                }
            }
        }
        Ok(out)
    }

    /// A module's record as this transaction sees it.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn module(&self, name: &str) -> Result<Option<ModuleRecord>> {
        self.get(Table::Modules, name.as_bytes())?
            .map(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| Error::corrupt_by(format!("module record `{name}`"), e))
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

    /// How a module's image text and file differ, as this transaction sees it (default: they
    /// agree).
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn sync(&self, module: &str) -> Result<SyncRecord> {
        match self.get(Table::Sync, module.as_bytes())? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt_by(format!("sync record `{module}`"), e)),
            None => Ok(SyncRecord::default()),
        }
    }

    fn write_sync(&mut self, module: &str, record: &SyncRecord) -> Result<()> {
        if record.is_clean() {
            if self.get(Table::Sync, module.as_bytes())?.is_some() {
                self.delete(Table::Sync, module.as_bytes().to_vec());
            }
            return Ok(());
        }
        let bytes = serde_json::to_vec(record).map_err(Error::store)?;
        self.put(Table::Sync, module.as_bytes().to_vec(), bytes);
        Ok(())
    }

    /// Notes a live change of `module`'s text: export has work to do.
    fn mark_unexported(&mut self, module: &str) -> Result<SyncRecord> {
        let mut sync = self.sync(module)?;
        sync.unexported = true;
        Ok(sync)
    }

    /// A module's whole text as this transaction sees it.
    ///
    /// # Errors
    /// [`Error::NoModule`], a damaged image.
    pub fn module_text(&self, module: &str) -> Result<Vec<u8>> {
        if self.module(module)?.is_none() {
            return Err(Error::NoModule(module.to_string()));
        }
        let layout = self.layout(module)?;
        let mut out = Vec::new();
        for (i, gap) in layout.gaps.iter().enumerate() {
            out.extend_from_slice(gap);
            if let Some(name) = layout.names.get(i) {
                let def = self
                    .definition(module, name)?
                    .ok_or_else(|| Error::corrupt(format!("`{module}::{name}` has no record")))?;
                out.extend_from_slice(&self.text(&def.hash)?);
            }
        }
        Ok(out)
    }

    pub(crate) fn text(&self, hash: &Hash) -> Result<Vec<u8>> {
        match self.get(Table::Blobs, &hash.0)? {
            Some(stored) => super::blob::decompress(&stored),
            None => Err(Error::corrupt(format!(
                "text {} is missing",
                hash.short(12)
            ))),
        }
    }

    fn put_blob(&mut self, mut text: Prepared) -> (Hash, u32, u32) {
        text.compress_now();
        let hash = text.hash;
        let stored = text.stored_len;
        // An empty stored form was taken out and written ahead (`PreparedUnit::take_texts`):
        // no compressed text is ever empty, since the length comes first. A text staged twice
        // is one key in the overlay: no set of hashes is kept (a first build would hold one
        // per definition of the tree).
        if !text.stored.is_empty() {
            self.put(Table::Blobs, hash.0.to_vec(), text.stored);
        }
        (hash, text.len, stored)
    }

    /// A module's order and own text as this transaction sees it: its `order` records, read
    /// in one scan (what a whole module's merge or check wants; a live edit reads only its
    /// neighbours, [`order_around`](Self::order_around)).
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn layout(&self, module: &str) -> Result<Layout> {
        debug_assert!(
            !self.appending,
            "a first fill's appended records are never read back"
        );
        let prefix = order_prefix(module);
        if !self.touched.contains(module.as_bytes()) {
            return Layout::from_entries(module, self.image.store().scan(Table::Order, &prefix)?);
        }
        let mut entries: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = self
            .image
            .store()
            .scan(Table::Order, &prefix)?
            .into_iter()
            .collect();
        for (key, staged) in &self.overlay[slot(Table::Order)] {
            if key.len() == prefix.len() + 8 && key.starts_with(&prefix) {
                match staged {
                    Some(value) => entries.insert(key.clone(), value.to_vec()),
                    None => entries.remove(key),
                };
            }
        }
        Layout::from_entries(module, entries)
    }

    /// The `order` records of `module` nearest `position`, as this transaction sees them:
    /// up to `before` below it, the one at it (if any) and up to `after` above it (the
    /// closing one included), in order: (order key, name, gap before).
    fn order_around(
        &self,
        module: &str,
        position: u64,
        before: usize,
        after: usize,
    ) -> Result<Vec<(u64, String, Vec<u8>)>> {
        debug_assert!(
            !self.appending,
            "a first fill's appended records are never read back"
        );
        let prefix = order_prefix(module);
        let mut staged: std::collections::BTreeMap<u64, Option<&Bytes>> = Default::default();
        if self.touched.contains(module.as_bytes()) {
            for (key, value) in &self.overlay[slot(Table::Order)] {
                if key.len() == prefix.len() + 8 && key.starts_with(&prefix) {
                    staged.insert(order_position(key)?, value.as_ref());
                }
            }
        }
        // Staged removals may hide stored records: read as many more.
        let extra = staged.values().filter(|v| v.is_none()).count();
        let mut found =
            self.image
                .order_records_around(module, position, before + extra, after + extra)?;
        for (p, value) in staged {
            match value {
                Some(value) => found.insert(p, value.to_vec()),
                None => found.remove(&p),
            };
        }
        super::pick_around(&found, position, before, after)
    }

    fn write_module(&mut self, name: &str, record: &ModuleRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(Error::store)?;
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
            // A new definition's order key is set with the module's order.
            position: old.map_or(self.new_position, |o| o.position),
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
        // The text stays: so does the module's chunk index (`touch`).
        self.note_touched(module.as_bytes());
        self.stage(
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
        if let Some(entry) = self.logged.get(module).and_then(|&at| self.log.get_mut(at)) {
            // An export notes no change of its own over one made in the same commit.
            let replaces = match change {
                ModuleChange::Exported => false,
                ModuleChange::Changed => {
                    matches!(entry.change, ModuleChange::Removed | ModuleChange::Exported)
                }
                _ => true,
            };
            if replaces {
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
        self.logged.insert(module.to_string(), self.log.len());
        self.log.push(ModuleLog {
            module: module.to_string(),
            change,
            path: path.to_string(),
            from_path: from_path.map(str::to_string),
            definitions: definitions.to_vec(),
        });
    }

    /// Stores a module's order and layout (`names`, `gaps`) over `old` (what the module had),
    /// writing only the `order` records that differ: a definition that keeps its place among
    /// the others keeps its order key, one that is new or moved gets one between its
    /// neighbours (all are renumbered only when no room is left there). Definition records
    /// whose order key changed are written again. Returns whether anything changed.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn set_layout(
        &mut self,
        module: &str,
        old: Option<&Layout>,
        names: &[String],
        gaps: &[Vec<u8>],
    ) -> Result<bool> {
        let Some(old) = old else {
            // A module new to the image: its definitions were numbered in order as their
            // records were written (`new_position`).
            for (i, name) in names.iter().enumerate() {
                let gap = gaps.get(i).map_or(&[][..], Vec::as_slice);
                let position = (i as u64 + 1) * ORDER_STEP;
                self.put(
                    Table::Order,
                    order_key(module, position),
                    encode_order_entry(name, gap),
                );
            }
            let closing = gaps.last().map_or(&[][..], Vec::as_slice);
            self.put(
                Table::Order,
                order_key(module, CLOSING),
                encode_order_entry("", closing),
            );
            return Ok(true);
        };
        if old.names == names && old.gaps == gaps {
            return Ok(false);
        }
        let was: HashMap<&str, u64> = old
            .names
            .iter()
            .map(String::as_str)
            .zip(old.positions.iter().copied())
            .collect();
        let positions = place(&was, names);
        let mut kept: HashMap<u64, (&str, &[u8])> = HashMap::default();
        for (i, p) in old.positions.iter().enumerate() {
            kept.insert(*p, (old.names[i].as_str(), old.gaps[i].as_slice()));
        }
        let now: HashSet<u64> = positions.iter().copied().collect();
        for p in &old.positions {
            if !now.contains(p) {
                self.delete(Table::Order, order_key(module, *p));
            }
        }
        for (i, name) in names.iter().enumerate() {
            let (p, gap) = (positions[i], gaps.get(i).map_or(&[][..], Vec::as_slice));
            if kept.get(&p) != Some(&(name.as_str(), gap)) {
                self.put(
                    Table::Order,
                    order_key(module, p),
                    encode_order_entry(name, gap),
                );
            }
            if was.get(name.as_str()) != Some(&p)
                && let Some(record) = self.definition(module, name)?
                && record.position != p
            {
                let record = DefinitionRecord {
                    position: p,
                    ..record
                };
                self.put(
                    Table::Definitions,
                    definition_key(module, name),
                    record.encode(),
                );
            }
        }
        let closing = gaps.last().map_or(&[][..], Vec::as_slice);
        if old.gaps.last().map(Vec::as_slice) != Some(closing) {
            self.put(
                Table::Order,
                order_key(module, CLOSING),
                encode_order_entry("", closing),
            );
        }
        Ok(true)
    }

    /// Stores a unit read from the file `path`, merging with the image three ways: a
    /// definition changed only in the file is taken, one changed only in the image is kept
    /// (to be exported), one changed on both sides to different texts is a [`Conflict`],
    /// recorded in the module's [`SyncRecord`]: the image keeps its text, the file's is stored
    /// too, neither is overwritten until it is resolved. A definition removed in the image
    /// stays removed while the file still holds the text it had then.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn put_unit(&mut self, unit: PreparedUnit, path: &str) -> Result<()> {
        self.put_unit_with(unit, path, true)
    }

    /// [`put_unit`](Self::put_unit); with `shortcut` false, always the whole three-way merge
    /// (what the shortcuts for a file that changed only texts are tested against).
    fn put_unit_with(&mut self, unit: PreparedUnit, path: &str, shortcut: bool) -> Result<()> {
        let PreparedUnit {
            name,
            kind,
            definitions,
            gaps,
            stored_index,
            chunks: _,
        } = unit;
        let old = self.module(&name)?;
        let old_sync = match &old {
            Some(_) => self.sync(&name)?,
            None => SyncRecord::default(),
        };
        let old_layout = match &old {
            Some(_) => Some(self.layout(&name)?),
            None => None,
        };
        // The image's side of every definition, read in one scan (a module new to the image
        // has none to merge with), or as read before the transaction began.
        let index = match (&old, stored_index) {
            (None, _) => None,
            (Some(_), Some(index)) if !self.touched.contains(name.as_bytes()) => Some(index),
            (Some(_), _) => Some(self.definition_index(&name)?),
        };
        if let (Some(old), Some(old_layout), Some(index)) = (&old, &old_layout, &index)
            && shortcut
            && old.path == path
            && old.kind == kind
            && old_sync == SyncRecord::default()
            && let Some(taken) = only_file_changed(index, old_layout, &definitions, &gaps)
        {
            return self.take_file_texts(&name, &old.path, index, definitions, &taken);
        }
        let mut unit = UnitMerge {
            sync: old_sync.clone(),
            order: Vec::with_capacity(definitions.len()),
            changed: Vec::new(),
            in_file: HashSet::default(),
            differs: false,
            gaps,
        };
        // A file read again is not deleted (any more).
        unit.sync.file_deleted = false;
        // The live additions, removals and new texts were noted as changes of the file's
        // bytes as last agreed; the file now holds other bytes (the stamp becomes theirs), so
        // they no longer tell how to make it the image's text (a definition the file now
        // holds as the image does would be added to it again): export assembles the module.
        unit.sync.reshaped.clear();
        self.take_file_definitions(&name, index, path, definitions, &mut unit)?;
        let in_file = &unit.in_file;
        unit.sync.removed.retain(|def, _| in_file.contains(def));
        if let Some(old) = &old_layout {
            self.keep_image_definitions(&name, old, &mut unit)?;
        }
        self.record_merged(&name, &unit)?;
        unit.sync.unexported = unit.differs || !unit.sync.removed.is_empty();
        if unit.sync != old_sync {
            self.write_sync(&name, &unit.sync)?;
        }
        self.store_unit(&name, kind, path, old.as_ref(), old_layout.as_ref(), unit)
    }

    /// A save of its file read as [`SavedUnit`] (by [`Image::saved_texts`], on the image this
    /// transaction is begun on): its new texts taken, exactly as [`put_unit`](Self::put_unit)
    /// would take them, without reading the module's other records. When this transaction
    /// has changed the module, its sync record or its file since, the whole `put_unit`.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn put_saved(&mut self, saved: SavedUnit, path: &str) -> Result<()> {
        let name = saved.name.as_str();
        let still = !self.touched.contains(name.as_bytes())
            && self
                .module(name)?
                .is_some_and(|m| m.path == path && m.kind == saved.kind)
            && self.sync(name)? == SyncRecord::default();
        if !still {
            let script = crate::tree_path::script_name(path);
            // The text read as its module when it was sorted: it parses.
            let unit = SourceUnit::parse(saved.text, script).map_err(|_| {
                Error::invalid(format!("`{path}` no longer reads as the module `{name}`"))
            })?;
            return self.put_unit(PreparedUnit::hashed(&unit), path);
        }
        let mut changed = Vec::with_capacity(saved.changes.len());
        let index = saved.index;
        for change in saved.changes {
            let text = Prepared::new(saved.text.get(change.span).unwrap_or_default());
            debug_assert_eq!(text.hash, change.hash);
            self.set_definition(
                name,
                &change.name,
                text,
                Some(change.hash),
                Some(&change.record),
            );
            changed.push(change.name);
        }
        if !changed.is_empty() {
            self.note(name, ModuleChange::Changed, path, None, &changed);
        }
        // The module's text is now the file's: the index of its chunks, found by the save.
        if let Some(index) = index {
            self.stage_index(name, index);
        }
        Ok(())
    }

    /// Stages `unit`, read from the file `path`, as a module new to the image in parts of
    /// `part` definitions: `prepare` hashes and compresses each part's texts (in parallel, as
    /// the caller likes), and after each part what is staged moves into the tables once it
    /// holds `spill_bytes` ([`spill_first_fill`](Self::spill_first_fill); on a first fill
    /// only). The records are the ones [`put_unit`](Self::put_unit) writes for a module new
    /// to the image (each definition's text and record, its `order` record, the closing one,
    /// the module's record and log line), but a module of millions of definitions is never
    /// prepared and staged whole: a first build holds its file and its definitions' spans,
    /// and one part. Returns `false`, staging nothing, when the image (or this transaction)
    /// holds the module already: that is [`put_unit`](Self::put_unit)'s merge.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub(crate) fn put_new_unit_in_parts(
        &mut self,
        unit: &SourceUnit,
        path: &str,
        part: usize,
        spill_bytes: usize,
        prepare: &dyn Fn(&SourceUnit, std::ops::Range<usize>) -> Vec<Prepared>,
    ) -> Result<bool> {
        let name = unit.name();
        if self.module(name)?.is_some() {
            return Ok(false);
        }
        let kind = match unit.kind() {
            UnitKind::Module => ModuleKind::Module,
            UnitKind::Script => ModuleKind::Script,
        };
        let definitions = unit.definitions();
        let mut index = BuildIndex::new(unit);
        let mut start = 0;
        while start < definitions.len() {
            let end = definitions.len().min(start + part.max(1));
            let prepared = prepare(unit, start..end);
            debug_assert_eq!(prepared.len(), end - start);
            for (at, text) in (start..end).zip(prepared) {
                index.push(unit, at, &text);
                self.stage_new_definition(
                    name,
                    at,
                    &definitions[at].name,
                    text,
                    unit.gap_before(at),
                );
            }
            self.spill_first_fill(spill_bytes)?;
            start = end;
        }
        self.stage_new_module(name, kind, path, unit.gap_before(definitions.len()))?;
        self.stage_new_index(name, index.finish(unit));
        Ok(true)
    }

    /// Stages `unit`, read from the file `path`, as a module new to the image: the records
    /// [`put_unit`](Self::put_unit) writes for it (each definition's record, its `order`
    /// record, the closing one, the module's record and log line, as
    /// [`put_new_unit_in_parts`](Self::put_new_unit_in_parts) writes them), without the
    /// merge's bookkeeping, which a module new to the image does not need (a first build
    /// spent a third of its main thread's staging in it). Gives `unit` back, staging nothing,
    /// when the image (or this transaction) holds the module already: that is `put_unit`'s
    /// merge.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub(crate) fn put_new_unit(
        &mut self,
        unit: PreparedUnit,
        path: &str,
    ) -> Result<Option<PreparedUnit>> {
        if self.module(&unit.name)?.is_some() {
            return Ok(Some(unit));
        }
        let PreparedUnit {
            name,
            kind,
            definitions,
            gaps,
            stored_index: _,
            chunks,
        } = unit;
        for (at, (def, text)) in definitions.into_iter().enumerate() {
            let gap = gaps.get(at).map_or(&[][..], Vec::as_slice);
            self.stage_new_definition(&name, at, &def, text, gap);
        }
        let closing = gaps.last().map_or(&[][..], Vec::as_slice);
        self.stage_new_module(&name, kind, path, closing)?;
        self.stage_new_index(&name, chunks);
        Ok(None)
    }

    /// Stages definition `def`, the `at`th of module `name` new to the image, with `text` and
    /// the `gap` before it: numbered in file order, as `put_unit` numbers a module new to the
    /// image.
    fn stage_new_definition(
        &mut self,
        name: &str,
        at: usize,
        def: &str,
        text: Prepared,
        gap: &[u8],
    ) {
        let position = (at as u64 + 1) * ORDER_STEP;
        self.new_position = position;
        let hash = text.hash;
        self.set_definition(name, def, text, Some(hash), None);
        self.new_position = 0;
        self.put(
            Table::Order,
            order_key(name, position),
            encode_order_entry(def, gap),
        );
    }

    /// Stages the chunk index of module `name` new to the image, its records all staged (the
    /// last write of the module: any write to its records removes its index).
    fn stage_new_index(&mut self, name: &str, index: Option<ChunkIndex>) {
        if let Some(index) = index {
            self.stage_index(name, index.encode());
        }
    }

    /// Stages what closes module `name` new to the image once its definitions are staged: its
    /// `closing` gap, its record and its log line.
    fn stage_new_module(
        &mut self,
        name: &str,
        kind: ModuleKind,
        path: &str,
        closing: &[u8],
    ) -> Result<()> {
        self.put(
            Table::Order,
            order_key(name, CLOSING),
            encode_order_entry("", closing),
        );
        let record = ModuleRecord {
            path: path.to_string(),
            kind,
            generation: self.generation,
            layout_generation: self.generation,
        };
        self.write_module(name, &record)?;
        self.note(name, ModuleChange::Added, path, None, &[]);
        Ok(())
    }

    /// The fast side of [`put_unit`](Self::put_unit), for a module that agreed with its file
    /// and whose file changed only texts ([`only_file_changed`]): the file's new texts are
    /// taken (the three-way merge would take each of them, since only the file changed), and
    /// nothing else is read or written.
    fn take_file_texts(
        &mut self,
        name: &str,
        path: &str,
        index: &HashMap<String, DefinitionRecord>,
        definitions: Vec<(String, Prepared)>,
        taken: &[usize],
    ) -> Result<()> {
        let mut pending: Vec<Option<(String, Prepared)>> =
            definitions.into_iter().map(Some).collect();
        let mut changed = Vec::with_capacity(taken.len());
        for &at in taken {
            let Some((def, text)) = pending.get_mut(at).and_then(Option::take) else {
                continue;
            };
            let record = index
                .get(&def)
                .ok_or_else(|| Error::corrupt(format!("`{name}::{def}` has no record")))?;
            let hash = text.hash;
            self.set_definition(name, &def, text, Some(hash), Some(record));
            changed.push(def);
        }
        if !changed.is_empty() {
            self.note(name, ModuleChange::Changed, path, None, &changed);
        }
        Ok(())
    }

    /// Merges each definition of the file, in file order, with the image's.
    fn take_file_definitions(
        &mut self,
        name: &str,
        mut index: Option<HashMap<String, DefinitionRecord>>,
        path: &str,
        definitions: Vec<(String, Prepared)>,
        unit: &mut UnitMerge,
    ) -> Result<()> {
        // The file as read, for checking a line merge in place (see `FileSide::fits`).
        let file = FileSide {
            script: crate::tree_path::script_name(path).to_string(),
            gaps: if index.is_some() {
                unit.gaps.clone()
            } else {
                Vec::new()
            },
            names: definitions.iter().map(|(d, _)| d.clone()).collect(),
            hashes: definitions.iter().map(|(_, t)| t.hash).collect(),
        };
        let mut pending: Vec<Option<(String, Prepared)>> =
            definitions.into_iter().map(Some).collect();
        for at in 0..pending.len() {
            let Some((def, text)) = pending[at].take() else {
                continue;
            };
            let again = !unit.in_file.insert(def.clone());
            // A name the file holds twice sees what its first merge left.
            let current = match &mut index {
                Some(_) if again => self.definition(name, &def)?,
                Some(index) => index.remove(&def),
                None => None,
            };
            if current.is_none()
                && let Some(base) = unit.sync.removed.get(&def).and_then(|h| Hash::from_hex(h))
            {
                self.removed_in_image(name, def, text, base, unit);
                continue;
            }
            let fits = |tx: &Transaction, merged: &[u8]| file.fits(tx, &pending, at, merged);
            // A module new to the image is numbered in file order (`place` does the same).
            self.new_position = match index {
                None => (at as u64 + 1) * ORDER_STEP,
                Some(_) => 0,
            };
            let merged = self.merge_from_file(name, &def, current, Some(text), &fits);
            self.new_position = 0;
            let merged = merged?;
            unit.settle(&def, merged);
            unit.order.push(def);
        }
        Ok(())
    }

    /// A definition removed in the image that the file still holds. The file still holds the
    /// text it had then: it stays removed (and the file is still to be written); another text
    /// is a conflict.
    fn removed_in_image(
        &mut self,
        name: &str,
        def: String,
        text: Prepared,
        base: Hash,
        unit: &mut UnitMerge,
    ) {
        if base != text.hash {
            self.conflicts.push(Conflict {
                module: name.to_string(),
                name: def.clone(),
                image: None,
                file: Some(text.hash),
            });
            unit.sync
                .conflicts
                .insert(def.clone(), Some(text.hash.to_hex()));
            self.put_blob(text);
            unit.sync.removed.remove(&def);
        }
        unit.differs = true;
        drop_slot(&mut unit.gaps, unit.order.len());
    }

    /// Merges the image's definitions the file does not hold: taken out, or kept (a live
    /// addition or a conflict) after the neighbour they had.
    fn keep_image_definitions(
        &mut self,
        name: &str,
        old: &Layout,
        unit: &mut UnitMerge,
    ) -> Result<()> {
        let old_gaps = &old.gaps;
        for (i, def) in old.names.iter().enumerate() {
            if unit.in_file.contains(def) {
                continue;
            }
            let current = self.definition(name, def)?;
            let merged = self.merge_from_file(name, def, current, None, &|_, _| false)?;
            unit.settle(def, merged);
            if merged == Merged::Taken || self.definition(name, def)?.is_none() {
                continue;
            }
            let after = old.names[..i]
                .iter()
                .rev()
                .find_map(|prev| unit.order.iter().position(|o| o == prev));
            let at = after.map_or(0, |p| p + 1);
            unit.order.insert(at, def.clone());
            // Gap k comes before definition k: a kept definition brings the separator it had
            // before it; as the first, the one it had after it.
            let (gap, slot) = if at == 0 {
                (old_gaps.get(i + 1), 1)
            } else {
                (old_gaps.get(i), at)
            };
            let gap = gap.cloned().unwrap_or_else(|| b"\n".to_vec());
            unit.gaps.insert(slot.min(unit.gaps.len()), gap);
        }
        Ok(())
    }

    /// The module now holds the file's changes and the image's own: what it took from the
    /// file is recorded as a merge.
    fn record_merged(&mut self, name: &str, unit: &UnitMerge) -> Result<()> {
        if !unit.differs || unit.changed.is_empty() || self.origin != Origin::File {
            return Ok(());
        }
        for def in &unit.changed {
            if let Some(record) = self.definition(name, def)? {
                let record = DefinitionRecord {
                    origin: Origin::Merge,
                    ..record
                };
                self.put(
                    Table::Definitions,
                    definition_key(name, def),
                    record.encode(),
                );
            }
        }
        Ok(())
    }

    /// Stores the module's record (and notes the change) unless nothing changed.
    fn store_unit(
        &mut self,
        name: &str,
        kind: ModuleKind,
        path: &str,
        old: Option<&ModuleRecord>,
        old_layout: Option<&Layout>,
        unit: UnitMerge,
    ) -> Result<()> {
        let layout_changed = self.set_layout(name, old_layout, &unit.order, &unit.gaps)?;
        let moved_from = old.filter(|o| o.path != path).map(|o| o.path.clone());
        let unchanged =
            old.is_some_and(|o| o.kind == kind && !layout_changed && unit.changed.is_empty());
        if unchanged && moved_from.is_none() {
            return Ok(());
        }
        if let Some(old) = old.filter(|o| o.kind == kind && !layout_changed && o.path == path) {
            // Only texts changed: the module's record (its order, its layout) stays as it is.
            self.note(name, ModuleChange::Changed, &old.path, None, &unit.changed);
            return Ok(());
        }
        let layout_generation = match old {
            Some(old) if !layout_changed => old.layout_generation,
            _ => self.generation,
        };
        let record = ModuleRecord {
            path: path.to_string(),
            kind,
            generation: self.generation,
            layout_generation,
        };
        self.write_module(name, &record)?;
        let change = match (old, &moved_from) {
            (None, _) => ModuleChange::Added,
            (Some(_), Some(_)) => ModuleChange::Moved,
            (Some(_), None) => ModuleChange::Changed,
        };
        // A module new to the image logs no list: all its definitions are new, and a first
        // build would otherwise log every name of the tree in one entry.
        let changed: &[String] = match change {
            ModuleChange::Added => &[],
            _ => &unit.changed,
        };
        self.note(name, change, path, moved_from.as_deref(), changed);
        Ok(())
    }

    /// Merges one definition's file side (`None`: absent from the file) with its image side
    /// `current`. Changed on both sides, the texts are merged line by line
    /// ([`merge`](super::merge)); a clean result that `fits` (reads back as this definition in
    /// the file) is taken as a merge, anything else is a conflict.
    fn merge_from_file(
        &mut self,
        module: &str,
        name: &str,
        current: Option<DefinitionRecord>,
        file: Option<Prepared>,
        fits: &dyn Fn(&Transaction, &[u8]) -> bool,
    ) -> Result<Merged> {
        let file_hash = file.as_ref().map(|f| f.hash);
        let Some(record) = current else {
            return Ok(match file {
                Some(text) => {
                    let hash = text.hash;
                    self.set_definition(module, name, text, Some(hash), None);
                    Merged::Taken
                }
                None => Merged::Agreed,
            });
        };
        if Some(record.hash) == file_hash {
            if record.base != file_hash {
                // Both sides reached the same text: that is the new agreement.
                self.set_base(module, name, &record, file_hash);
            }
            return Ok(Merged::Agreed);
        }
        if record.base == file_hash {
            // The file did not change since the last agreement; the image did: keep it.
            return Ok(Merged::Kept);
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
            return Ok(Merged::Taken);
        }
        if record.base.is_none() && file.is_none() {
            // Added in the image and never exported: nothing to merge.
            return Ok(Merged::Kept);
        }
        let file = match file {
            Some(text) => match self.line_merge(module, name, &record, text, fits)? {
                Ok(()) => return Ok(Merged::Combined),
                Err(text) => Some(text),
            },
            None => None,
        };
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
        Ok(Merged::Conflict(file_hash))
    }

    /// Both sides changed `module::name` since `record.base`: merges the texts line by line.
    /// A clean merge that `fits` becomes the image's text (origin `merge`), the image's and the
    /// file's texts going to history (the base is there already), the file's text its base,
    /// so that export writes the merge. Otherwise gives the file's text back (a conflict).
    fn line_merge(
        &mut self,
        module: &str,
        name: &str,
        record: &DefinitionRecord,
        file: Prepared,
        fits: &dyn Fn(&Transaction, &[u8]) -> bool,
    ) -> Result<std::result::Result<(), Prepared>> {
        let Some(base) = record.base else {
            return Ok(Err(file));
        };
        let (Ok(base), Ok(image)) = (self.text(&base), self.text(&record.hash)) else {
            return Ok(Err(file));
        };
        let file_text = match self.prepared_text(&file) {
            Ok(text) => text,
            Err(_) => return Ok(Err(file)),
        };
        let super::merge::Merged::Clean(merged) = super::merge::merge(&base, &image, &file_text)
        else {
            return Ok(Err(file));
        };
        if !fits(self, &merged) {
            return Ok(Err(file));
        }
        let file_hash = file.hash;
        self.put_blob(file);
        self.keep_file_side(module, name, file_hash);
        self.set_definition(
            module,
            name,
            Prepared::new(&merged),
            Some(file_hash),
            Some(record),
        );
        if let Some(current) = self.definition(module, name)? {
            let current = DefinitionRecord {
                origin: Origin::Merge,
                ..current
            };
            self.put(
                Table::Definitions,
                definition_key(module, name),
                current.encode(),
            );
        }
        Ok(Ok(()))
    }

    /// A prepared text's bytes: from its stored form, or from the store when that was
    /// written ahead ([`PreparedUnit::take_texts`]).
    fn prepared_text(&self, text: &Prepared) -> Result<Vec<u8>> {
        if !text.stored.is_empty() {
            super::blob::decompress(&text.stored)
        } else if !text.raw.is_empty() {
            Ok(text.raw.clone())
        } else {
            self.text(&text.hash)
        }
    }

    /// Creates an empty module `name` to live in file `path` (relative to the source root),
    /// holding only its `_meta`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the module exists; storage failures.
    pub fn create_module(&mut self, name: &str, path: &str) -> Result<()> {
        if self.module(name)?.is_some() {
            return Err(Error::invalid(format!("module `{name}` exists already")));
        }
        let meta = format!("{{\n  _meta = {{name = '{name}}}\n}}\n");
        let unit = SourceUnit::parse(meta.into_bytes(), name).map_err(|e| Error::Syntax {
            path: name.into(),
            text: e.text,
            errors: e.errors,
        })?;
        if unit.name() != name {
            return Err(Error::invalid(format!(
                "`{name}` cannot be a module's name"
            )));
        }
        self.put_module(PreparedUnit::new(&unit), path)
    }

    /// Sets a whole module as a live edit: its definitions, their order and the text around
    /// them become `unit`'s. A module new to the image lives in file `path` (relative to the
    /// source root); an existing one keeps its file. Definitions it no longer has are removed
    /// (their history stays); a definition in conflict is settled by the new text.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the unit is of another kind than the module it replaces;
    /// storage failures.
    pub fn put_module(&mut self, unit: PreparedUnit, path: &str) -> Result<()> {
        let PreparedUnit {
            name,
            kind,
            definitions,
            gaps,
            stored_index: _,
            chunks: _,
        } = unit;
        let old = self.module(&name)?;
        if let Some(old) = &old
            && old.kind != kind
        {
            return Err(Error::invalid(format!(
                "`{name}` is a {}, the text is a {}",
                kind_name(old.kind),
                kind_name(kind)
            )));
        }
        let mut sync = self.mark_unexported(&name)?;
        let mut changed = Vec::new();
        let mut order = Vec::with_capacity(definitions.len());
        let mut names: HashSet<String> = HashSet::default();
        for (i, (def, text)) in definitions.into_iter().enumerate() {
            let existing = match &old {
                Some(_) => self.definition(&name, &def)?,
                None => None,
            };
            if existing.is_none_or(|d| d.hash != text.hash) || sync.conflicts.contains_key(&def) {
                let new = Some(text.hash);
                let base = self.live_base(&name, &mut sync, &def, existing.as_ref(), new);
                // A module new to the image is numbered in order (`set_layout`).
                if old.is_none() {
                    self.new_position = (i as u64 + 1) * ORDER_STEP;
                }
                self.set_definition(&name, &def, text, base, existing.as_ref());
                self.new_position = 0;
                changed.push(def.clone());
            }
            names.insert(def.clone());
            order.push(def);
        }
        let old_layout = match &old {
            Some(_) => Some(self.layout(&name)?),
            None => None,
        };
        if let Some(old) = &old_layout {
            for def in old.names.iter().filter(|d| !names.contains(*d)) {
                if let Some(existing) = self.definition(&name, def)? {
                    self.live_removal(&name, &mut sync, def, &existing);
                    self.unset_definition(&name, def, &existing);
                    changed.push(def.clone());
                }
            }
        }
        self.write_sync(&name, &sync)?;
        let layout_changed = self.set_layout(&name, old_layout.as_ref(), &order, &gaps)?;
        if old.is_some() && !layout_changed && changed.is_empty() {
            return Ok(());
        }
        let path = old.as_ref().map_or(path, |o| o.path.as_str()).to_string();
        let layout_generation = match &old {
            Some(old) if !layout_changed => old.layout_generation,
            _ => self.generation,
        };
        let record = ModuleRecord {
            path: path.clone(),
            kind,
            generation: self.generation,
            layout_generation,
        };
        self.write_module(&name, &record)?;
        let change = if old.is_some() {
            ModuleChange::Changed
        } else {
            ModuleChange::Added
        };
        self.note(&name, change, &path, None, &changed);
        Ok(())
    }

    /// The base a live edit of `def` keeps: its agreed text; for a definition in conflict, the
    /// file's side (the edit settles the conflict: export writes it over that text); for one
    /// removed earlier in the image, the text the file still holds.
    fn live_base(
        &mut self,
        module: &str,
        sync: &mut SyncRecord,
        def: &str,
        existing: Option<&DefinitionRecord>,
        new: Option<Hash>,
    ) -> Option<Hash> {
        if let Some(file) = sync.conflicts.remove(def) {
            let file = file.as_deref().and_then(Hash::from_hex);
            if let Some(file) = file.filter(|f| Some(*f) != new) {
                self.keep_file_side(module, def, file);
            }
            return file;
        }
        if let Some(base) = sync.removed.remove(def) {
            return Hash::from_hex(&base);
        }
        existing.and_then(|d| d.base)
    }

    /// A live edit settles a conflict over `module::name`: the file's side, a text the image
    /// never held as a version, goes to history (an export will overwrite it in the file), at
    /// this transaction's generation; the edit itself then takes the next generation, so that
    /// the two versions have a key each. The commit is logged under the later one.
    fn keep_file_side(&mut self, module: &str, name: &str, file: Hash) {
        let record = HistoryRecord {
            origin: Origin::File,
            hash: Some(file),
        };
        self.put(
            Table::History,
            history_key(module, name, self.generation),
            record.encode(),
        );
        let path = self
            .module(module)
            .ok()
            .flatten()
            .map(|m| m.path)
            .unwrap_or_default();
        let entry = ModuleLog {
            module: module.to_string(),
            change: ModuleChange::Changed,
            path,
            from_path: None,
            definitions: vec![name.to_string()],
        };
        self.kept.push((self.generation, entry));
        self.generation += 1;
    }

    /// Notes a live removal of `def` in the sync state: while the file still holds the text
    /// it agreed on, a build must not bring it back.
    fn live_removal(
        &mut self,
        module: &str,
        sync: &mut SyncRecord,
        def: &str,
        existing: &DefinitionRecord,
    ) {
        let file_side = match sync.conflicts.remove(def) {
            Some(file) => {
                let file = file.as_deref().and_then(Hash::from_hex);
                if let Some(file) = file {
                    self.keep_file_side(module, def, file);
                }
                file
            }
            None => existing.base,
        };
        if let Some(base) = file_side {
            sync.removed.insert(def.to_string(), base.to_hex());
        }
    }

    /// Adds or replaces one definition as a live edit. `text` is the definition as it stands
    /// in a file (`name = expression`, comments above allowed). A replaced definition keeps
    /// the text exactly as given. A new one goes after the module's last one, separated from
    /// it as the last one is from its neighbour, in the pretty form and indented like its
    /// neighbours (comments kept; a text with comments inside is kept as given, re-indented).
    ///
    /// # Errors
    /// [`Error::Syntax`] when the text does not parse, [`Error::Invalid`] when it defines
    /// another name or the module is a script (nothing is changed either way);
    /// [`Error::NoModule`]; storage failures.
    pub fn put_definition(&mut self, module: &str, name: &str, text: &[u8]) -> Result<()> {
        self.set_live(module, name, text, true)
    }

    /// [`put_definition`](Self::put_definition), the new text formatted (`format`) or kept
    /// exactly (an earlier version brought back).
    fn set_live(&mut self, module: &str, name: &str, text: &[u8], format: bool) -> Result<()> {
        let defined = read_definition(text).map_err(|e| Error::Syntax {
            path: format!("{module}::{name}").into(),
            text: e.text,
            errors: e.errors,
        })?;
        if defined != name {
            return Err(Error::invalid(format!(
                "the text defines `{defined}`, not `{name}`"
            )));
        }
        let mut record = self
            .module(module)?
            .ok_or_else(|| Error::NoModule(module.to_string()))?;
        if record.kind == ModuleKind::Script {
            return Err(Error::invalid(format!(
                "`{module}` is a script: it holds no definitions"
            )));
        }
        let existing = self.definition(module, name)?;
        let mut sync = self.sync(module)?;
        if let Some(existing) = existing {
            let prepared = Prepared::new(text);
            if existing.hash == prepared.hash && !sync.conflicts.contains_key(name) {
                return Ok(());
            }
            // The file (with the changes before) takes the new text where the old one stands.
            let reshape = if reshapes_hold(&sync, &record) {
                let around = self.order_around(module, existing.position, 0, 1)?;
                edit_reshape(record.generation, name, &existing, &prepared.hash, &around)
            } else {
                None
            };
            note_edited(&mut sync, &record, name, reshape);
            let new = Some(prepared.hash);
            let base = self.live_base(module, &mut sync, name, Some(&existing), new);
            sync.unexported = true;
            self.write_sync(module, &sync)?;
            // The module's record (its order, its layout) does not change: only the
            // definition's record is written, and its chunk of the index.
            let position = existing.position;
            let index = self.index_after_edit(module, &existing, text, &prepared.hash)?;
            self.set_definition(module, name, prepared, base, Some(&existing));
            if let Some(index) = index {
                self.stage_index(module, index);
            }
            let changed = [name.to_string()];
            self.note(module, ModuleChange::Changed, &record.path, None, &changed);
            return self.verify_edit(module, Some(position));
        }
        self.append_live(module, name, text, format, &mut record, &mut sync)
    }

    /// [`set_live`](Self::set_live) of a definition new to the module: it goes last, after
    /// the last one, before the closing gap (one `order` record written).
    fn append_live(
        &mut self,
        module: &str,
        name: &str,
        text: &[u8],
        format: bool,
        record: &mut ModuleRecord,
        sync: &mut SyncRecord,
    ) -> Result<()> {
        let tail = self.order_around(module, CLOSING, 2, 0)?;
        let last = tail.iter().rev().find(|(p, _, _)| *p != CLOSING);
        let mut separator = match last {
            None => b"\n".to_vec(),
            Some((_, _, gap)) if tail.len() == 2 => trailing_indentation(gap),
            Some((_, _, gap)) => leading_whitespace(gap),
        };
        if text.trim_ascii_start().starts_with(b"#") && !separator.contains(&b'\n') {
            // Comments above a definition must start on a line of their own.
            separator.insert(0, b'\n');
        }
        let indent = indentation_of(&separator);
        let crlf = separator.windows(2).any(|w| w == b"\r\n");
        let formatted = if format {
            format_new_definition(text, &indent, crlf)
        } else {
            text.to_vec()
        };
        let prepared = Prepared::new(&formatted);
        // The file (with the additions and removals before) takes the new text before its
        // closing gap.
        let reshapes = reshapes_hold(sync, record);
        let closing = tail.iter().find(|(p, _, _)| *p == CLOSING);
        let reshape = match closing {
            Some((_, _, gap)) if reshapes => Some(Reshape {
                generation: self.generation,
                name: name.to_string(),
                at_end: true,
                from: vec![Span::Gap(gap.clone())],
                to: vec![
                    Span::Gap(separator.clone()),
                    Span::Text(prepared.hash.to_hex()),
                    Span::Gap(gap.clone()),
                ],
            }),
            _ => None,
        };
        note_reshaped(sync, reshape);
        let base = self.live_base(module, sync, name, None, Some(prepared.hash));
        sync.unexported = true;
        self.write_sync(module, sync)?;
        let after = last.map_or(0, |(p, _, _)| *p);
        let position = match after.checked_add(ORDER_STEP).filter(|p| *p < CLOSING) {
            Some(p) => p,
            None => after + (CLOSING - after) / 2,
        };
        if position == after {
            // No room left after the last key: the whole order numbered anew (rare).
            self.set_definition(module, name, prepared, base, None);
            let mut layout = self.layout(module)?;
            let old = layout.clone();
            let at = layout.names.len();
            layout.names.push(name.to_string());
            layout.gaps.insert(at, separator);
            self.set_layout(module, Some(&old), &layout.names, &layout.gaps)?;
            self.write_changed_module(module, record, true, name)?;
        } else {
            let index = match (last, closing) {
                (Some((_, last, _)), Some((_, _, closing))) => {
                    let added = [separator.as_slice(), &formatted].concat();
                    self.index_after_append(module, last, position, &added, closing)?
                }
                _ => None,
            };
            self.set_definition(module, name, prepared, base, None);
            if let Some(record) = self.definition(module, name)? {
                let record = DefinitionRecord { position, ..record };
                self.put(
                    Table::Definitions,
                    definition_key(module, name),
                    record.encode(),
                );
            }
            self.put(
                Table::Order,
                order_key(module, position),
                encode_order_entry(name, &separator),
            );
            self.write_changed_module(module, record, true, name)?;
            // After every write of the module, each of which drops it.
            if let Some(index) = index {
                self.stage_index(module, index);
            }
        }
        let position = self.definition(module, name)?.map(|d| d.position);
        self.verify_edit(module, position)
    }

    /// [`verify_module`](Self::verify_module) after a live edit of the definition at order
    /// key `position`, at the cost of that definition: only the edit and its neighbours are
    /// read again ([`window_reads_back_part`]). When the window cannot prove the module reads
    /// back the same, the whole check decides and gives the error.
    fn verify_edit(&self, module: &str, position: Option<u64>) -> Result<()> {
        if let Some(position) = position
            && self.window_reads_back(module, position)?
        {
            return Ok(());
        }
        self.verify_module(module)
    }

    /// Whether the window around the definition at `position` proves the module reads back
    /// the same: two `order` records on either side are read, and at most three texts.
    fn window_reads_back(&self, module: &str, position: u64) -> Result<bool> {
        let entries = self.order_around(module, position, 2, 2)?;
        let Some(at) = entries.iter().position(|(p, _, _)| *p == position) else {
            return Ok(false);
        };
        let first = at.saturating_sub(1);
        // Definition indices count from one when something comes before the window.
        let offset = usize::from(first > 0);
        let defs: Vec<&(u64, String, Vec<u8>)> =
            entries.iter().filter(|(p, _, _)| *p != CLOSING).collect();
        let last = (at + 1).min(defs.len().saturating_sub(1));
        let Some(part) = defs.get(first..=last) else {
            return Ok(false);
        };
        let names: Vec<String> = part.iter().map(|(_, n, _)| n.clone()).collect();
        let mut gaps: Vec<&[u8]> = part.iter().map(|(_, _, g)| g.as_slice()).collect();
        let Some(next) = entries.get(last + 1) else {
            return Ok(false);
        };
        gaps.push(&next.2);
        let total = offset + names.len() + usize::from(next.0 != CLOSING);
        let text = |i: usize| {
            let name = names.get(i.checked_sub(offset)?)?;
            let def = self.definition(module, name).ok()??;
            self.text(&def.hash).ok()
        };
        // A storage failure in the window is met again, and reported, by the whole check.
        Ok(window_reads_back_part(
            &gaps,
            &names,
            offset,
            total,
            offset + at - first,
            text,
        ))
    }

    /// Checks that a module's text, as it now stands, reads back as the same definitions
    /// with the same texts: a live edit must never make a file that means something else
    /// (a trailing comment swallowing a closing bracket in a one-line module, say).
    fn verify_module(&self, module: &str) -> Result<()> {
        let Some(record) = self.module(module)? else {
            return Ok(());
        };
        let text = self.module_text(module)?;
        let names = self.layout(module)?.names;
        let script = crate::tree_path::script_name(&record.path);
        let said = |why: &str| {
            format!(
                "the change would make `{}` read back differently ({why}); nothing was changed",
                record.path
            )
        };
        let refuse = |why: String| Error::invalid(said(&why));
        // Each definition's hash, read once: the check asks for them in order.
        let index = self.definition_index(module)?;
        let hashes: Vec<Option<Hash>> = names
            .iter()
            .map(|name| index.get(name).map(|d| d.hash))
            .collect();
        let same = |i: usize, text: &[u8]| hashes.get(i).copied().flatten() == Some(Hash::of(text));
        match whole_reads_back(text, script, module, &names, same) {
            Ok(()) => Ok(()),
            Err(ReadsBackError::Syntax(e)) => {
                // A run-on is a mistake the user can fix in what they put: say it as `parse
                // --check` and `build` would, at its place in the module as it would stand.
                if e.errors
                    .iter()
                    .any(|e| e.kind == SyntaxErrorKind::KeywordRunsOn)
                {
                    return Err(Error::Syntax {
                        path: format!("{} (as the change would make it)", record.path).into(),
                        errors: e
                            .errors
                            .into_iter()
                            .filter(|e| e.kind == SyntaxErrorKind::KeywordRunsOn)
                            .collect(),
                        text: e.text,
                    });
                }
                // The syntax error that shows it stays the refusal's cause.
                Err(match e.errors.into_iter().next() {
                    Some(first) => Error::invalid_by(said(&first.message), first),
                    None => refuse("it does not parse".to_string()),
                })
            }
            Err(ReadsBackError::OtherDefinitions) => {
                Err(refuse("its definitions would not be the same".to_string()))
            }
            Err(ReadsBackError::OtherText(i)) => Err(refuse(format!(
                "`{}` would read back as another text",
                names.get(i).map_or("", String::as_str)
            ))),
        }
    }

    /// Removes one definition (its history stays). While the file still holds it, a build
    /// leaves it removed.
    ///
    /// # Errors
    /// [`Error::NoDefinition`]; storage failures.
    pub fn remove_definition(&mut self, module: &str, name: &str) -> Result<()> {
        let mut record = self
            .module(module)?
            .ok_or_else(|| Error::NoModule(module.to_string()))?;
        let old = self.definition(module, name)?;
        let around = match &old {
            Some(old) => self.order_around(module, old.position, 1, 1)?,
            None => Vec::new(),
        };
        let (Some(old), Some(at)) = (
            old,
            around
                .iter()
                .position(|(p, n, _)| old.is_some_and(|o| o.position == *p) && n == name),
        ) else {
            return Err(Error::NoDefinition {
                module: module.to_string(),
                name: name.to_string(),
            });
        };
        let index = self.index_after_removal(module, &old, &around, at)?;
        let mut sync = self.sync(module)?;
        let reshape = reshapes_hold(&sync, &record)
            .then(|| removal_reshape(self.generation, name, &old, &around, at))
            .flatten();
        note_reshaped(&mut sync, reshape);
        sync.unexported = true;
        self.live_removal(module, &mut sync, name, &old);
        self.write_sync(module, &sync)?;
        // It leaves with the separator before it (its comments are its own); the first
        // leaves its gap to the one after it, the only one the text around it as one gap.
        self.delete(Table::Order, order_key(module, old.position));
        let next = around.get(at + 1);
        if at == 0
            && let Some((p, next_name, next_gap)) = next
        {
            let (_, _, gap) = &around[at];
            let gap = if *p == CLOSING {
                [gap.as_slice(), next_gap.as_slice()].concat()
            } else {
                gap.clone()
            };
            self.put(
                Table::Order,
                order_key(module, *p),
                encode_order_entry(next_name, &gap),
            );
        }
        self.unset_definition(module, name, &old);
        self.write_changed_module(module, &mut record, true, name)?;
        // After every write of the module, each of which drops it.
        if let Some(index) = index {
            self.stage_index(module, index);
        }
        // The definitions on either side of the removed one now meet: they must still read
        // back as themselves (a trailing comment running into the next line, say). The window
        // is the one after the removed definition (or the new last one).
        let window = match next {
            Some((p, _, _)) if *p != CLOSING => Some(*p),
            _ => at.checked_sub(1).map(|b| around[b].0),
        };
        self.verify_edit(module, window)
    }

    /// Settles a conflict over `module::name` by taking the file's text: the image's text
    /// goes to history, the file's becomes current and agreed (origin of this transaction).
    /// Taking the image's side needs two generations (the file's text must enter history
    /// before export overwrites it): see [`Image::resolve`](super::Image::resolve).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the definition is not in conflict; storage failures.
    pub fn resolve_take_file(&mut self, module: &str, name: &str) -> Result<()> {
        let mut sync = self.sync(module)?;
        let Some(file) = sync.conflict(name) else {
            return Err(not_in_conflict(module, name));
        };
        sync.conflicts.remove(name);
        self.write_sync(module, &sync)?;
        match file {
            Some(hash) => {
                let text = self.text(&hash)?;
                self.set_live(module, name, &text, false)?;
                if let Some(record) = self.definition(module, name)? {
                    self.set_base(module, name, &record, Some(hash));
                }
            }
            None => {
                self.remove_definition(module, name)?;
                // The file has no such definition: nothing is left to export for it.
                let mut sync = self.sync(module)?;
                sync.removed.remove(name);
                self.write_sync(module, &sync)?;
            }
        }
        self.settle_if_agreed(module)
    }

    /// When `module`'s text is now exactly what its file holds (by the file's stamp), nothing
    /// is left to export: the module's sync state is cleared.
    fn settle_if_agreed(&mut self, module: &str) -> Result<()> {
        let sync = self.sync(module)?;
        if !sync.conflicts.is_empty() || sync.file_deleted || sync.is_clean() {
            return Ok(());
        }
        let Some(record) = self.module(module)? else {
            return Ok(());
        };
        let stamp = match self.get(Table::Paths, record.path.as_bytes())? {
            Some(bytes) => PathRecord::decode(&bytes)?,
            None => return Ok(()),
        };
        if stamp.module != module || Hash::of(&self.module_text(module)?) != stamp.hash {
            return Ok(());
        }
        for def in &self.layout(module)?.names {
            if let Some(current) = self.definition(module, def)?
                && current.base != Some(current.hash)
            {
                self.set_base(module, def, &current, Some(current.hash));
            }
        }
        self.write_sync(module, &SyncRecord::default())
    }

    /// The first half of taking the image's side of a conflict: the file's text becomes a
    /// version of its own (so that history keeps it), the conflict stays. Returns the image's
    /// text hash to make current again in the second half (`None`: the image had removed it).
    pub(crate) fn resolve_record_file(&mut self, module: &str, name: &str) -> Result<Option<Hash>> {
        let sync = self.sync(module)?;
        let Some(file) = sync.conflict(name) else {
            return Err(not_in_conflict(module, name));
        };
        let current = self.definition(module, name)?;
        let image_side = current.map(|c| c.hash);
        if let Some(hash) = file {
            let text = self.text(&hash)?;
            self.set_live(module, name, &text, false)?;
        }
        self.write_sync(module, &sync)?;
        Ok(image_side)
    }

    /// The second half: the image's text (`None`: removed) current again, the file's text
    /// agreed as base, the conflict settled; export writes the image's text.
    pub(crate) fn resolve_take_image(
        &mut self,
        module: &str,
        name: &str,
        image_side: Option<Hash>,
    ) -> Result<()> {
        let mut sync = self.sync(module)?;
        let Some(file) = sync.conflict(name) else {
            return Err(not_in_conflict(module, name));
        };
        sync.conflicts.remove(name);
        self.write_sync(module, &sync)?;
        match image_side {
            Some(hash) => {
                let text = self.text(&hash)?;
                self.set_live(module, name, &text, false)?;
                if let Some(record) = self.definition(module, name)? {
                    self.set_base(module, name, &record, file);
                }
            }
            None => {
                if self.definition(module, name)?.is_some() {
                    self.remove_definition(module, name)?;
                }
                let mut sync = self.sync(module)?;
                match file {
                    Some(file) => {
                        sync.removed.insert(name.to_string(), file.to_hex());
                    }
                    None => {
                        sync.removed.remove(name);
                    }
                }
                self.write_sync(module, &sync)?;
            }
        }
        let mut sync = self.sync(module)?;
        sync.unexported = true;
        self.write_sync(module, &sync)
    }

    /// Brings back the version of `module::name` that was current at `generation` (the
    /// newest one made at or before it) as a new change; a version that was a removal removes
    /// it. History keeps every version.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the definition had no version then (or it was pruned);
    /// storage failures.
    pub fn restore(&mut self, module: &str, name: &str, generation: u64) -> Result<()> {
        let versions = self.image.history(module, name)?;
        let Some((_, version)) = versions.iter().rev().find(|(g, _)| *g <= generation) else {
            return Err(Error::invalid(format!(
                "`{module}::{name}` has no version at generation {generation}"
            )));
        };
        if self.module(module)?.is_none() && version.hash.is_some() {
            self.bring_back(module, generation)?;
        }
        match version.hash {
            Some(hash) => {
                let text = self.text(&hash)?;
                self.set_live(module, name, &text, false)
            }
            None => match self.definition(module, name)? {
                Some(_) => self.remove_definition(module, name),
                None => Ok(()),
            },
        }
    }

    /// A module removed from the image comes back (for [`restore`](Self::restore)) in the file
    /// it was last logged in (the log names every module's file), with its `_meta` as it was at
    /// `generation` (else a new one); export writes it.
    fn bring_back(&mut self, module: &str, generation: u64) -> Result<()> {
        let path = self.image.log()?.into_iter().rev().find_map(|entry| {
            entry
                .modules
                .into_iter()
                .find(|m| m.module == module)
                .map(|m| m.path)
        });
        let Some(path) = path else {
            return Err(Error::invalid(format!(
                "module `{module}` is gone, and no file of it is logged to bring it back to"
            )));
        };
        self.create_module(module, &path)?;
        let meta = self.image.history(module, "_meta")?;
        if let Some((_, old)) = meta.iter().rev().find(|(g, _)| *g <= generation)
            && let Some(hash) = old.hash
        {
            let text = self.text(&hash)?;
            self.set_live(module, "_meta", &text, false)?;
        }
        Ok(())
    }

    /// Records that `module`'s file now holds its image text (an export wrote it, or found it
    /// there), except its definitions in conflict, which the file holds as its own side: every
    /// other definition's agreed text becomes its current one, the sync state keeps only the
    /// conflicts, and `stamp` is what the file now is.
    ///
    /// # Errors
    /// [`Error::NoModule`]; storage failures.
    pub fn mark_exported(&mut self, module: &str, stamp: &PathRecord) -> Result<()> {
        let record = self
            .module(module)?
            .ok_or_else(|| Error::NoModule(module.to_string()))?;
        let index = self.definition_index(module)?;
        self.mark_agreed(module, stamp, &record, &index)
    }

    /// [`mark_exported`](Self::mark_exported) with the module's record and definition records
    /// as the export read them to write the file (one scan of them, not two). They are read
    /// again if this transaction has changed the module's definitions since.
    ///
    /// # Errors
    /// [`Error::NoModule`]; storage failures.
    pub(crate) fn mark_exported_as_read(
        &mut self,
        module: &str,
        stamp: &PathRecord,
        record: &ModuleRecord,
        index: &HashMap<String, DefinitionRecord>,
    ) -> Result<()> {
        if self.touched.contains(module.as_bytes())
            || self.get(Table::Modules, module.as_bytes())?.is_none()
        {
            return self.mark_exported(module, stamp);
        }
        self.mark_agreed(module, stamp, record, index)
    }

    /// Every definition of `record` but those in conflict agrees with the file; `stamp` is
    /// what the file now is.
    fn mark_agreed(
        &mut self,
        module: &str,
        stamp: &PathRecord,
        record: &ModuleRecord,
        index: &HashMap<String, DefinitionRecord>,
    ) -> Result<()> {
        let sync = self.sync(module)?;
        // Every definition record of the module is in the index (in no particular order).
        for (def, current) in index {
            if sync.conflicts.contains_key(def) {
                continue;
            }
            if current.base != Some(current.hash) {
                self.set_base(module, def, current, Some(current.hash));
            }
        }
        let left = SyncRecord {
            conflicts: sync.conflicts,
            ..SyncRecord::default()
        };
        self.write_sync(module, &left)?;
        self.put_path(&record.path, stamp);
        self.note(module, ModuleChange::Exported, &record.path, None, &[]);
        Ok(())
    }

    /// Writes a module one of whose definitions (`name`) changed: its record (its generation,
    /// and its layout's when `layout_changed`: its `order` records are written by the caller),
    /// and the log note.
    fn write_changed_module(
        &mut self,
        module: &str,
        record: &mut ModuleRecord,
        layout_changed: bool,
        name: &str,
    ) -> Result<()> {
        if layout_changed {
            record.layout_generation = self.generation;
        }
        record.generation = self.generation;
        self.write_module(module, record)?;
        self.note(
            module,
            ModuleChange::Changed,
            &record.path,
            None,
            &[name.to_string()],
        );
        Ok(())
    }

    /// The file of `module` is gone: when the image holds changes the file never had (live
    /// edits not exported, or conflicts), notes a modify/delete conflict and returns `true`:
    /// the module must stay. Otherwise `false`: the module may leave with its file.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn file_deleted(&mut self, module: &str) -> Result<bool> {
        let mut sync = self.sync(module)?;
        if sync.is_clean() {
            return Ok(false);
        }
        if !sync.file_deleted {
            sync.file_deleted = true;
            self.write_sync(module, &sync)?;
        }
        Ok(true)
    }

    /// Settles a modify/delete conflict over `module` (see
    /// [`file_deleted`](Self::file_deleted)): taking the file's side removes the module (its
    /// history stays); taking the image's clears the note, so that export writes the file
    /// again (the stamp of the deleted file goes).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the module's file is not deleted; storage failures.
    pub fn resolve_deleted(&mut self, module: &str, take: Take) -> Result<()> {
        let mut sync = self.sync(module)?;
        let record = self
            .module(module)?
            .ok_or_else(|| Error::NoModule(module.to_string()))?;
        if !sync.file_deleted {
            return Err(Error::invalid(format!(
                "the file of `{module}` is not deleted: nothing to resolve for the module"
            )));
        }
        self.remove_path(&record.path);
        // The file's last text of each definition in conflict: kept in history, since neither
        // way keeps it current.
        for (name, file) in std::mem::take(&mut sync.conflicts) {
            if let Some(file) = file.as_deref().and_then(Hash::from_hex) {
                self.keep_file_side(module, &name, file);
            }
        }
        if take == Take::File {
            return self.remove_module(module);
        }
        sync.file_deleted = false;
        sync.unexported = true;
        self.write_sync(module, &sync)?;
        self.note(module, ModuleChange::Changed, &record.path, None, &[]);
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
        let layout = self.layout(name)?;
        for def in &layout.names {
            if let Some(old) = self.definition(name, def)? {
                self.unset_definition(name, def, &old);
            }
        }
        for position in layout.positions.iter().copied().chain([CLOSING]) {
            self.delete(Table::Order, order_key(name, position));
        }
        self.delete(Table::Modules, name.as_bytes().to_vec());
        self.write_sync(name, &SyncRecord::default())?;
        // A file that still holds the module (a removal in the image: export never deletes a
        // file) must not pass for read: without its stamp it is read again, `status` shows
        // it as a file holding a module the image does not have, and `build` takes it anew.
        // A stamp that already names another module (a build's) stays.
        if let Some(bytes) = self.get(Table::Paths, record.path.as_bytes())?
            && PathRecord::decode(&bytes)?.module == name
        {
            self.remove_path(&record.path);
        }
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

    /// Commits everything staged, atomically, and returns only once it would survive a power
    /// cut. Returns the new generation, or `None` when no module changed (file stamps alone
    /// are still saved, and texts of conflicts).
    ///
    /// # Errors
    /// Storage failures; then nothing was committed.
    pub fn commit(self) -> Result<Option<u64>> {
        self.commit_with(|store, writes| store.commit(writes))
    }

    /// As [`commit`](Self::commit), but returns once the change has reached the operating
    /// system's buffers: a crash of the process loses nothing, a power cut may lose the commit
    /// (whole: never half of it).
    ///
    /// # Errors
    /// Storage failures; then nothing was committed.
    pub fn commit_buffered(self) -> Result<Option<u64>> {
        self.commit_with(|store, writes| store.commit_buffered(writes))
    }

    /// On the first fill of an empty image, once what is staged holds at least `min_bytes`,
    /// moves it straight into the tables, as [`commit`](Self::commit)'s bulk load would at the
    /// end: a first build of any size then holds at most about `min_bytes` of records (and
    /// its current batch) in memory. Below `min_bytes` it waits: each spill writes a table
    /// file per table, and fjall makes each one durable on its own (five to seven `fsync`s),
    /// which a first build of many small files paid once per batch, hundreds of times. Nothing
    /// is visible before the commit writes the generation: data at generation 0 is a first
    /// load that never finished, which [`Image::open`] discards. On any later transaction it
    /// does nothing (an image that readers have seen changes only atomically).
    ///
    /// # Errors
    /// Storage failures.
    pub(crate) fn spill_first_fill(&mut self, min_bytes: usize) -> Result<()> {
        match self.take_first_fill_spill(min_bytes) {
            Some(writes) => self.image.store().load(writes),
            None => Ok(()),
        }
    }

    /// From now on, stages the definition, order and text records of modules new to the
    /// image as writes appended in order, not in the overlay: for a first fill of an empty
    /// image, where every module is new and claimed once, so nothing reads those records back
    /// before the commit (a read of them is a bug: debug builds check). Does nothing on any
    /// later transaction.
    pub(crate) fn append_new_records(&mut self) {
        self.appending = self.generation == 1;
    }

    /// What [`spill_first_fill`](Self::spill_first_fill) would move into the tables, taken
    /// out of the transaction for the caller to load ([`Store::load`]), on another thread
    /// say, while it stages more. Loads must be made in the order they were taken, each
    /// before the next is taken, and all of them before the commit: a key staged again after
    /// a spill must land after it.
    pub(crate) fn take_first_fill_spill(&mut self, min_bytes: usize) -> Option<Vec<Write>> {
        if self.generation != 1 || self.staged_bytes < min_bytes {
            return None;
        }
        self.staged_bytes = 0;
        let mut writes = std::mem::take(&mut self.appended);
        for table in Table::ALL {
            // The generation is the commit mark, and the log is written by the commit. Modules,
            // paths and chunk indexes (a record per file at most) wait for it too: each write
            // of a table is one more run of it for every later open to read, and they are
            // few enough to hold.
            if matches!(
                table,
                Table::Meta | Table::Log | Table::Modules | Table::Paths | Table::Chunks
            ) {
                continue;
            }
            // Drained, not taken: the map keeps its room for the next fill's records
            // instead of growing again from nothing (its rehashes were a sixteenth of a
            // first build's main thread).
            writes.extend(
                self.overlay[slot(table)]
                    .drain()
                    .map(|(key, value)| match value {
                        Some(value) => Write::put(table, key, value),
                        None => Write::delete(table, key),
                    }),
            );
        }
        if writes.is_empty() {
            return None;
        }
        self.spilled = true;
        Some(writes)
    }

    /// Commits with `apply`: durable or buffered.
    fn commit_with(
        mut self,
        apply: impl Fn(&dyn Store, Vec<Write>) -> Result<()>,
    ) -> Result<Option<u64>> {
        // One process owns the image: nothing can have committed since `begin`.
        debug_assert!(
            !matches!(self.image.generation(), Ok(stored) if stored >= self.generation),
            "a commit's generation is above the stored one"
        );
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
            let bytes = serde_json::to_vec(&entry).map_err(Error::store)?;
            self.put(Table::Log, self.generation.to_be_bytes().to_vec(), bytes);
            // The generations file sides were kept under: logged too, as the file's.
            for (generation, module) in std::mem::take(&mut self.kept) {
                let kept = LogEntry {
                    generation,
                    time: entry.time,
                    origin: Origin::File,
                    modules: vec![module],
                };
                let bytes = serde_json::to_vec(&kept).map_err(Error::store)?;
                self.put(Table::Log, generation.to_be_bytes().to_vec(), bytes);
            }
            self.put(
                Table::Meta,
                META_GENERATION.to_vec(),
                self.generation.to_be_bytes().to_vec(),
            );
            Some(self.generation)
        };
        let mut writes = std::mem::take(&mut self.appended);
        for (i, staged) in self.overlay.into_iter().enumerate() {
            writes.extend(writes_of(Table::ALL[i], staged));
        }
        if writes.is_empty() {
            return Ok(None);
        }
        let store = self.image.store();
        // A first fill that spilled is a bulk load whatever is left: its log entry alone (one
        // line per module) would otherwise sit in the journal, replayed by every open.
        if self.generation == 1 && (writes.len() >= BULK_MIN_WRITES || self.spilled) {
            // The first fill of an empty image: straight into tables, then the generation as
            // the commit mark. An image found holding data at generation 0 was interrupted
            // here, and `Image::open` empties it.
            let (mark, rest): (Vec<Write>, Vec<Write>) = writes
                .into_iter()
                .partition(|w| matches!(w, Write::Put(Table::Meta, ..)));
            store.load(rest)?;
            apply(store, mark)?;
        } else {
            apply(store, writes)?;
        }
        Ok(generation)
    }
}

/// The store's writes for what a table's overlay stages (`None`: a removal).
fn writes_of(table: Table, staged: HashMap<Vec<u8>, Option<Bytes>>) -> impl Iterator<Item = Write> {
    staged.into_iter().map(move |(key, value)| match value {
        Some(value) => Write::put(table, key, value),
        None => Write::delete(table, key),
    })
}

fn not_in_conflict(module: &str, name: &str) -> Error {
    Error::invalid(format!("`{module}::{name}` is not in conflict"))
}

/// When a file holds the same definitions as the image's module, in the same order and with
/// the same text between them, and every definition the image holds agrees with its base
/// (the image changed nothing since it last agreed with the file): the definitions whose
/// texts the file changed, by their place in the file. `None` when anything else differs:
/// the whole three-way merge is then needed.
fn only_file_changed(
    index: &HashMap<String, DefinitionRecord>,
    layout: &Layout,
    definitions: &[(String, Prepared)],
    gaps: &[Vec<u8>],
) -> Option<Vec<usize>> {
    if layout.names.len() != definitions.len()
        || layout.gaps != gaps
        || index.len() != definitions.len()
    {
        return None;
    }
    let mut taken = Vec::new();
    for (at, ((def, text), old_name)) in definitions.iter().zip(&layout.names).enumerate() {
        let record = index.get(def)?;
        if def != old_name || record.base != Some(record.hash) {
            return None;
        }
        if record.hash != text.hash {
            taken.push(at);
        }
    }
    Some(taken)
}

/// What `put_unit` gathers while it merges a file's unit into the image's module.
struct UnitMerge {
    /// The module's sync state as it becomes.
    sync: SyncRecord,
    /// The module's definitions, in their new order.
    order: Vec<String>,
    /// Definitions that took the file's text (alone or merged).
    changed: Vec<String>,
    /// Names the file defines.
    in_file: HashSet<String>,
    /// The image now holds something the file does not: export has work to do.
    differs: bool,
    /// The module's layout as it becomes.
    gaps: Vec<Vec<u8>>,
}

impl UnitMerge {
    /// Records what merging one definition came to.
    fn settle(&mut self, def: &str, merged: Merged) {
        match merged {
            Merged::Taken => {
                self.changed.push(def.to_string());
                self.sync.conflicts.remove(def);
            }
            Merged::Agreed => {
                self.sync.conflicts.remove(def);
            }
            Merged::Kept => {
                self.differs = true;
                self.sync.conflicts.remove(def);
            }
            Merged::Combined => {
                self.differs = true;
                self.changed.push(def.to_string());
                self.sync.conflicts.remove(def);
            }
            Merged::Conflict(file) => {
                self.sync
                    .conflicts
                    .insert(def.to_string(), file.map(|h| h.to_hex()));
            }
        }
    }
}

/// Notes a new text of `name` in `sync`: export may write just the definitions edited so,
/// while nothing else of the module changed since it agreed with its file (then its sync
/// record was clean) or since the first of them (its record's generation is the same). The
/// edit is also one more change of the file's bytes (`reshape`, see [`reshapes_hold`]), so
/// that export can make edits mixed with additions and removals one by one too.
fn note_edited(sync: &mut SyncRecord, record: &ModuleRecord, name: &str, reshape: Option<Reshape>) {
    let agreed = sync.is_clean();
    note_reshaped(sync, reshape);
    if agreed || sync.edited_at == Some(record.generation) {
        sync.edited.insert(name.to_string());
        sync.edited_at = Some(record.generation);
    } else {
        sync.edited.clear();
        sync.edited_at = None;
    }
}

/// At most this many additions and removals are kept for export to make one by one; more,
/// and the module is assembled whole.
const MOST_RESHAPED: usize = 16;

/// Whether the module's text (its record `record`, its sync state `sync`) is still its file's
/// bytes as last agreed with the changes `sync.reshaped` made to them (additions, removals,
/// new texts), and nothing else changed: then one more of them may be noted.
fn reshapes_hold(sync: &SyncRecord, record: &ModuleRecord) -> bool {
    if sync.is_clean() {
        return true;
    }
    let names: HashSet<&str> = sync.reshaped.iter().map(|r| r.name.as_str()).collect();
    sync.reshaped.len() < MOST_RESHAPED
        && sync
            .reshaped
            .last()
            .is_some_and(|r| r.generation == record.generation)
        && sync.edited.iter().all(|def| names.contains(def.as_str()))
        && sync.conflicts.is_empty()
        && !sync.file_deleted
        && sync.removed.keys().all(|def| names.contains(def.as_str()))
}

/// Notes one more addition or removal (`None`: one that cannot be made to the file's bytes;
/// then export assembles the module whole). A clean sync state starts the list anew.
fn note_reshaped(sync: &mut SyncRecord, reshape: Option<Reshape>) {
    if sync.is_clean() {
        sync.reshaped.clear();
    }
    match reshape {
        Some(reshape) => sync.reshaped.push(reshape),
        None => sync.reshaped.clear(),
    }
}

/// The removal of `name` (its record `old`, at `at` among the `order` records `around` it:
/// one before when there is one, one after) as a change of the module's text as it stood
/// before: the definition leaves with the gap before it, the first with
/// the gap after it (its own gap stays for the next, or joins the closing one). `None` when
/// the records around it are not all there.
fn removal_reshape(
    generation: u64,
    name: &str,
    old: &DefinitionRecord,
    around: &[(u64, String, Vec<u8>)],
    at: usize,
) -> Option<Reshape> {
    let (_, _, gap) = around.get(at)?;
    let (next, _, next_gap) = around.get(at + 1)?;
    let text = Span::Text(old.hash.to_hex());
    let from = vec![Span::Gap(gap.clone()), text, Span::Gap(next_gap.clone())];
    let to = if at > 0 {
        vec![Span::Gap(next_gap.clone())]
    } else if *next == CLOSING {
        vec![Span::Gap(gap.clone()), Span::Gap(next_gap.clone())]
    } else {
        vec![Span::Gap(gap.clone())]
    };
    Some(Reshape {
        generation,
        name: name.to_string(),
        at_end: *next == CLOSING,
        from,
        to,
    })
}

/// The new text (`new`) of `name` (its record `old`, the first of the `order` records
/// `around` it, the other the one after) as a change of the module's text as it stood
/// before: the old text gives way to the new between the same two gaps. `generation` is the
/// module record's, which a new text leaves as it is. `None` when the records around it are
/// not both there.
fn edit_reshape(
    generation: u64,
    name: &str,
    old: &DefinitionRecord,
    new: &Hash,
    around: &[(u64, String, Vec<u8>)],
) -> Option<Reshape> {
    let [(at, named, gap), (next, _, next_gap)] = around else {
        return None;
    };
    if *at != old.position || named != name {
        return None;
    }
    let with = |hash: &Hash| {
        vec![
            Span::Gap(gap.clone()),
            Span::Text(hash.to_hex()),
            Span::Gap(next_gap.clone()),
        ]
    };
    Some(Reshape {
        generation,
        name: name.to_string(),
        at_end: *next == CLOSING,
        from: with(&old.hash),
        to: with(new),
    })
}

/// Takes the definition at `at` out of a layout: it leaves with the separator before it (its
/// comments are its own); the only definition leaves the text around it as one gap.
pub fn drop_slot(gaps: &mut Vec<Vec<u8>>, at: usize) {
    if gaps.len() > 2 {
        gaps.remove(if at == 0 { 1 } else { at.min(gaps.len() - 2) });
    } else if gaps.len() == 2 {
        let last = gaps.remove(1);
        gaps[0].extend_from_slice(&last);
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

/// The indentation a separator ends with (`"\n\n  "` → `"  "`).
fn indentation_of(separator: &[u8]) -> String {
    let start = separator
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    String::from_utf8_lossy(&separator[start..]).into_owned()
}

fn kind_name(kind: ModuleKind) -> &'static str {
    match kind {
        ModuleKind::Module => "module",
        ModuleKind::Script => "script",
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

/// Order keys for `names` given the keys `was` the module's definitions had: each definition
/// that keeps its place relative to those before it keeps its key; the others get keys spread
/// between their neighbours'. With no room between two neighbours, every definition is
/// numbered anew, [`ORDER_STEP`] apart.
fn place(was: &HashMap<&str, u64>, names: &[String]) -> Vec<u64> {
    let mut out: Vec<Option<u64>> = Vec::with_capacity(names.len());
    let mut last = 0;
    for name in names {
        match was.get(name.as_str()) {
            Some(&p) if p > last && p < CLOSING => {
                out.push(Some(p));
                last = p;
            }
            _ => out.push(None),
        }
    }
    let renumbered = || (1..=names.len() as u64).map(|i| i * ORDER_STEP).collect();
    let mut i = 0;
    while i < out.len() {
        if out[i].is_some() {
            i += 1;
            continue;
        }
        let start = i;
        while i < out.len() && out[i].is_none() {
            i += 1;
        }
        let run = (i - start) as u64;
        let low = start.checked_sub(1).and_then(|j| out[j]).unwrap_or(0);
        let high = out.get(i).copied().flatten().unwrap_or(CLOSING);
        // After the last kept definition, keys go on a step apart (appending stays cheap);
        // between two, they are spread evenly.
        let step = if high == CLOSING {
            ORDER_STEP.min((high - low) / (run + 1))
        } else {
            (high - low) / (run + 1)
        };
        if step == 0 {
            return renumbered();
        }
        for (k, slot) in out[start..i].iter_mut().enumerate() {
            *slot = Some(low + step * (k as u64 + 1));
        }
    }
    out.into_iter().map(|p| p.unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module of definitions `a`, `b`, `c` as the image holds it (agreed with its file), and
    /// the same file read again.
    fn agreed() -> (
        HashMap<String, DefinitionRecord>,
        Layout,
        Vec<(String, Prepared)>,
    ) {
        let names = ["a", "b", "c"];
        let mut index = HashMap::default();
        let mut definitions = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let text = Prepared::new(format!("{name} = {i}").as_bytes());
            index.insert(
                name.to_string(),
                DefinitionRecord {
                    hash: text.hash,
                    base: Some(text.hash),
                    size: text.len,
                    stored: text.stored_len,
                    generation: 1,
                    origin: Origin::File,
                    position: (i as u64 + 1) * ORDER_STEP,
                },
            );
            definitions.push((name.to_string(), text));
        }
        let layout = Layout {
            names: names.iter().map(|n| n.to_string()).collect(),
            gaps: vec![
                b"{\n".to_vec(),
                b"\n".to_vec(),
                b"\n".to_vec(),
                b"\n}".to_vec(),
            ],
            positions: vec![ORDER_STEP, 2 * ORDER_STEP, 3 * ORDER_STEP],
        };
        (index, layout, definitions)
    }

    #[test]
    fn only_texts_the_file_changed_are_taken_without_a_merge() {
        let (index, layout, mut definitions) = agreed();
        let gaps = layout.gaps.clone();
        assert_eq!(
            only_file_changed(&index, &layout, &definitions, &gaps),
            Some(vec![])
        );
        definitions[1].1 = Prepared::new(b"b = 10");
        assert_eq!(
            only_file_changed(&index, &layout, &definitions, &gaps),
            Some(vec![1])
        );
    }

    #[test]
    fn anything_but_the_files_texts_changed_needs_the_whole_merge() {
        let (index, layout, definitions) = agreed();
        let gaps = layout.gaps.clone();
        // The image changed a text since it last agreed with the file.
        let mut live = index.clone();
        if let Some(b) = live.get_mut("b") {
            b.hash = Hash::of(b"b = 20");
        }
        assert_eq!(only_file_changed(&live, &layout, &definitions, &gaps), None);
        // The file moved a definition, or changed the text between two.
        let mut moved = definitions.clone();
        moved.swap(0, 1);
        assert_eq!(only_file_changed(&index, &layout, &moved, &gaps), None);
        let mut spaced = gaps.clone();
        spaced[1] = b"\n\n".to_vec();
        assert_eq!(
            only_file_changed(&index, &layout, &definitions, &spaced),
            None
        );
        // The file dropped a definition; the image holds one the file never had.
        assert_eq!(
            only_file_changed(&index, &layout, &definitions[..2], &gaps),
            None
        );
        let mut added = index.clone();
        if let Some(c) = index.get("c") {
            added.insert("d".to_string(), *c);
        }
        assert_eq!(
            only_file_changed(&added, &layout, &definitions, &gaps),
            None
        );
    }

    #[test]
    fn order_keys_stay_where_they_can_and_make_room_where_they_must() {
        let was: HashMap<&str, u64> = [("a", ORDER_STEP), ("b", 2 * ORDER_STEP)]
            .into_iter()
            .collect();
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Appended: the others keep their keys, the new one goes a step further.
        assert_eq!(
            place(&was, &names(&["a", "b", "x"])),
            [ORDER_STEP, 2 * ORDER_STEP, 3 * ORDER_STEP]
        );
        // Between two: half way.
        assert_eq!(
            place(&was, &names(&["a", "x", "b"])),
            [ORDER_STEP, ORDER_STEP + ORDER_STEP / 2, 2 * ORDER_STEP]
        );
        // Moved: `b` before `a` keeps its key, `a` goes after it.
        assert_eq!(
            place(&was, &names(&["b", "a"])),
            [2 * ORDER_STEP, 3 * ORDER_STEP]
        );
        // No room between two neighbours: all numbered anew.
        let tight: HashMap<&str, u64> = [("a", 1), ("b", 2)].into_iter().collect();
        assert_eq!(
            place(&tight, &names(&["a", "x", "b"])),
            [ORDER_STEP, 2 * ORDER_STEP, 3 * ORDER_STEP]
        );
    }

    #[test]
    fn a_first_fill_holds_its_records_until_they_pass_the_budget() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let image = Image::create(&dir.path().join(".spry-image"), dir.path()).expect("an image");
        let stamp = PathRecord {
            module: "A".to_string(),
            size: 1,
            mtime_ns: 1,
            ctime_ns: 1,
            inode: 1,
            hash: Hash::of(b"x"),
            stamped_ns: 1,
        };
        let stored = |table: Table, key: &str| {
            image
                .store()
                .get(table, key.as_bytes())
                .expect("a read")
                .is_some()
        };
        let put = |tx: &mut Transaction<'_>, key: &str| {
            tx.put(Table::Order, key.as_bytes().to_vec(), b"v".to_vec());
        };
        let mut tx = image.begin(Origin::File).expect("a transaction");
        put(&mut tx, "a");
        tx.put_path("a.spry", &stamp);
        // Under the budget: nothing is written yet (each write is a table file per table).
        tx.spill_first_fill(4 * STAGED_ENTRY_BYTES)
            .expect("a spill");
        assert!(!stored(Table::Order, "a"), "a spill under its budget wrote");
        for k in 0..4 {
            put(&mut tx, &format!("b{k}"));
        }
        // Past it: everything staged so far goes into the tables, before the commit; but
        // paths (one per file) wait for the commit, not to make one more run of their table
        // per write.
        tx.spill_first_fill(4 * STAGED_ENTRY_BYTES)
            .expect("a spill");
        assert!(
            stored(Table::Order, "a") && stored(Table::Order, "b3"),
            "a spill past its budget held back"
        );
        assert!(!stored(Table::Paths, "a.spry"), "a spill wrote a path");
        // And the count starts again.
        put(&mut tx, "c");
        tx.spill_first_fill(4 * STAGED_ENTRY_BYTES)
            .expect("a spill");
        assert!(
            !stored(Table::Order, "c"),
            "the budget was not counted again from the spill"
        );
        tx.commit().expect("a commit");
        assert!(
            stored(Table::Order, "a")
                && stored(Table::Order, "c")
                && stored(Table::Paths, "a.spry"),
            "the commit left staged records out"
        );
    }

    /// A module's file as it is saved, one version after another: a comment before the module,
    /// CRLF and tab gaps, comments between definitions, no final newline.
    fn saved_versions() -> Vec<String> {
        let module = |texts: [&str; 4]| {
            format!(
                "# Saved.\r\n{{\r\n\t_meta = {{name = 'Saved}}\r\n\t{}\r\n\t# loose\r\n\r\n\t{}\r\n{}\t{} # last\r\n}}",
                texts[0], texts[1], texts[2], texts[3]
            )
        };
        vec![
            module(["a = 1", "b = func [:x x]", "# c.\r\n\tc = 'c", "d = [1 2]"]),
            module(["a = 2", "b = func [:x x]", "# c.\r\n\tc = 'c", "d = [1 2]"]),
            module([
                "a = 2",
                "b = func [:x x + 1]",
                "# c, changed.\r\n\tc = 'c",
                "d = [1 2 3]",
            ]),
            // Back to the first texts: their stored forms are held already (in history).
            module(["a = 1", "b = func [:x x]", "# c.\r\n\tc = 'c", "d = [1 2]"]),
            // The same file again: nothing to take.
            module(["a = 1", "b = func [:x x]", "# c.\r\n\tc = 'c", "d = [1 2]"]),
        ]
    }

    /// Every record of `image` but the log's entries (their times), the meta record (its
    /// directory) and the chunk indexes (a cache only a save read by its stretch writes;
    /// `check` verifies each against its module's text).
    fn records(image: &Image) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        Table::ALL
            .iter()
            .filter(|t| !matches!(t, Table::Log | Table::Meta | Table::Chunks))
            .map(|t| image.store().scan(*t, b"").expect("a scan"))
            .collect()
    }

    /// Saves `version` into `image` (which has a small chunk target) by its stretch and
    /// checks it writes what the whole merge wrote into `whole` (`log`), that its chunk index
    /// is the module's text's, and that a reading along the index alone, when it can tell,
    /// takes the same texts. 1 when it could, else 0.
    fn save_along_chunks(
        image: &Image,
        version: &str,
        whole: &Image,
        log: &[ModuleLog],
        k: usize,
    ) -> usize {
        let chunks = image.saved_by_chunks("Saved", "saved.spry", version.as_bytes());
        let saved = image
            .saved_span("Saved", "saved.spry", version.as_bytes().to_vec())
            .expect("a save of texts only, read by its stretch");
        let pairs = |s: &SavedUnit| {
            s.changes()
                .map(|(n, t)| (n.to_string(), t.to_vec()))
                .collect::<Vec<_>>()
        };
        if let Some(chunks) = &chunks {
            assert_eq!(pairs(chunks), pairs(&saved), "version {k}: other changes");
        }
        let mut tx = image.begin(Origin::File).expect("a transaction");
        tx.put_saved(saved, "saved.spry").expect("a save");
        assert_eq!(tx.changes(), log, "version {k}: another log");
        tx.commit().expect("a commit");
        assert!(
            records(image) == records(whole),
            "version {k}: other records, read along chunks"
        );
        let report = image.check().expect("a check");
        assert!(report.is_ok(), "version {k}: {:?}", report.problems);
        let index = image.store().get(Table::Chunks, b"Saved").expect("a read");
        assert!(index.is_some(), "version {k}: no chunk index");
        usize::from(chunks.is_some())
    }

    /// A save that changed only texts, taken without the merge (`Image::saved_texts`,
    /// `put_saved`), writes exactly what the whole three-way merge writes for it, as a build
    /// prepares it (texts held already dropped, the definitions read ahead): every table
    /// compared after each save, and the log.
    #[test]
    fn a_save_of_texts_writes_what_the_whole_merge_writes() {
        let versions = saved_versions();
        let (fast_dir, span_dir, whole_dir) = (
            tempfile::tempdir().expect("a temporary directory"),
            tempfile::tempdir().expect("a temporary directory"),
            tempfile::tempdir().expect("a temporary directory"),
        );
        let open = |dir: &tempfile::TempDir| {
            let image =
                Image::create(&dir.path().join(".spry-image"), dir.path()).expect("an image");
            let unit = SourceUnit::parse(versions[0].as_bytes(), "saved").expect("a module");
            let mut tx = image.begin(Origin::File).expect("a transaction");
            tx.put_unit(PreparedUnit::new(&unit), "saved.spry")
                .expect("a put");
            tx.commit().expect("a commit");
            image
        };
        let (fast, span, whole) = (open(&fast_dir), open(&span_dir), open(&whole_dir));
        assert!(records(&fast) == records(&whole));
        // The same saves read by their stretch along chunk indexes of one definition a chunk
        // and of a few: the first save reads the whole module and writes the index, the later
        // ones read the chunks that differ.
        let chunked_dirs = [
            tempfile::tempdir().expect("a temporary directory"),
            tempfile::tempdir().expect("a temporary directory"),
        ];
        let chunked: Vec<Image> = chunked_dirs
            .iter()
            .zip([1, 16])
            .map(|(dir, target)| {
                let mut image = open(dir);
                image.set_chunk_target(target);
                image
            })
            .collect();
        let mut by_chunks = 0;
        for (k, version) in versions.iter().enumerate().skip(1) {
            let unit = SourceUnit::parse(version.as_bytes(), "saved").expect("a module");
            let saved = fast
                .saved_texts(unit.clone(), "saved.spry")
                .expect("a read")
                .expect("a save of texts only");
            let mut tx = fast.begin(Origin::File).expect("a transaction");
            tx.put_saved(saved, "saved.spry").expect("a save");
            let fast_log = tx.changes().to_vec();
            tx.commit().expect("a commit");
            // The same save read without parsing the file (`Image::saved_span`).
            let saved = span
                .saved_span("Saved", "saved.spry", version.as_bytes().to_vec())
                .expect("a save of texts only, read by its stretch");
            let mut tx = span.begin(Origin::File).expect("a transaction");
            tx.put_saved(saved, "saved.spry").expect("a save");
            let span_log = tx.changes().to_vec();
            tx.commit().expect("a commit");
            let mut prepared = PreparedUnit::hashed(&unit);
            let index = whole.definition_index("Saved").expect("an index");
            prepared.drop_stored(&index.values().map(|d| (d.hash, d.stored)).collect());
            prepared.with_stored_index(index);
            let mut tx = whole.begin(Origin::File).expect("a transaction");
            tx.put_unit_with(prepared, "saved.spry", false)
                .expect("a merge");
            let whole_log = tx.changes().to_vec();
            tx.commit().expect("a commit");
            for image in &chunked {
                by_chunks += save_along_chunks(image, version, &whole, &whole_log, k);
            }
            assert_eq!(fast_log, whole_log, "version {k}: another log");
            assert_eq!(span_log, whole_log, "version {k}: another log");
            assert!(
                records(&fast) == records(&whole),
                "version {k}: other records"
            );
            assert!(
                records(&span) == records(&whole),
                "version {k}: other records, read by its stretch"
            );
            assert_eq!(
                fast.module_text("Saved").expect("a text"),
                version.as_bytes()
            );
        }
        assert!(fast.check().expect("a check").is_ok());
        assert!(by_chunks >= 4, "read along chunks {by_chunks} times");
    }

    /// Anything but the file's texts changed, or a change the image holds that the file
    /// lacks: the unit is handed back for the whole merge.
    #[test]
    fn a_save_of_more_than_texts_is_left_to_the_merge() {
        let versions = saved_versions();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let image = Image::create(&dir.path().join(".spry-image"), dir.path()).expect("an image");
        let unit = |text: &str| SourceUnit::parse(text.as_bytes(), "saved").expect("a module");
        let mut tx = image.begin(Origin::File).expect("a transaction");
        tx.put_unit(PreparedUnit::new(&unit(&versions[0])), "saved.spry")
            .expect("a put");
        tx.commit().expect("a commit");
        let saved = |text: &str, path: &str| {
            let parsed = image.saved_texts(unit(text), path).expect("a read").is_ok();
            let span = image
                .saved_span("Saved", path, text.as_bytes().to_vec())
                .is_ok();
            assert_eq!(parsed, span, "read whole and by its stretch:\n{text}");
            parsed
        };
        assert!(saved(&versions[1], "saved.spry"));
        let others = [
            // A gap, a definition added, one removed, two swapped.
            versions[1].replace("# loose", "# looser"),
            versions[1].replace("d = [1 2]", "d = [1 2]\r\n\te = 5"),
            versions[1].replace("\ta = 2\r\n", ""),
            versions[1]
                .replace("a = 2", "@")
                .replace("d = [1 2]", "a = 2")
                .replace('@', "d = [1 2]"),
            // No final newline added: the closing gap.
            format!("{}\n", versions[1]),
        ];
        for other in &others {
            assert!(
                !saved(other, "saved.spry"),
                "taken without a merge:\n{other}"
            );
        }
        // Held by another file.
        assert!(!saved(&versions[1], "elsewhere.spry"));
        // A live edit pending: the image holds a text the file lacks.
        let mut tx = image.begin(Origin::Live).expect("a transaction");
        tx.put_definition("Saved", "b", b"b = 7").expect("a put");
        tx.commit().expect("a commit");
        assert!(!saved(&versions[1], "saved.spry"));
    }

    /// A module new to the image staged in parts (a first fill's large file) holds exactly
    /// the records the whole `put_unit` writes: every table compared, whatever the part size
    /// and however often the staged records spill between parts.
    #[test]
    fn a_new_module_staged_in_parts_is_the_one_put_whole() {
        let mut text = String::from("# A module.\n{\n  _meta = {name = 'Big}\n");
        for i in 0..23 {
            match i % 3 {
                0 => text.push_str(&format!(
                    "  # Definition {i}.\n  d{i} = func [:x x + {i}]\n"
                )),
                1 => text.push_str(&format!("\n  d{i} = method [:a a * {i}] # product\n")),
                _ => text.push_str(&format!("  d{i} = \"text {i} with ] inside\"\n")),
            }
        }
        text.push_str("}\n# After.\n");
        let unit = SourceUnit::parse(text.as_bytes(), "big").expect("a module");
        let empty =
            SourceUnit::parse(&b"{_meta = {name = 'Empty}}\n"[..], "empty").expect("a module");
        let records = |image: &Image| -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
            Table::ALL
                .iter()
                // The log's entry has its time, the meta record its image's directory.
                .filter(|t| !matches!(t, Table::Log | Table::Meta))
                .map(|t| image.store().scan(*t, b"").expect("a scan"))
                .collect()
        };
        let whole = {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let image =
                Image::create(&dir.path().join(".spry-image"), dir.path()).expect("an image");
            let mut tx = image.begin(Origin::File).expect("a transaction");
            tx.put_unit(PreparedUnit::new(&unit), "big.spry")
                .expect("a put");
            tx.put_unit(PreparedUnit::new(&empty), "empty.spry")
                .expect("a put");
            let log = tx.changes().to_vec();
            tx.commit().expect("a commit");
            (records(&image), log)
        };
        let prepare = |unit: &SourceUnit, range: std::ops::Range<usize>| -> Vec<Prepared> {
            range
                .map(|i| Prepared::new(unit.definition_text(i)))
                .collect()
        };
        for (part, spill) in [(1, 0), (4, 0), (5, 600), (100, usize::MAX)] {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let image =
                Image::create(&dir.path().join(".spry-image"), dir.path()).expect("an image");
            let mut tx = image.begin(Origin::File).expect("a transaction");
            for (unit, path) in [(&unit, "big.spry"), (&empty, "empty.spry")] {
                let staged = tx
                    .put_new_unit_in_parts(unit, path, part, spill, &prepare)
                    .expect("a put in parts");
                assert!(staged, "a module new to the image was not staged in parts");
            }
            // Held already: the merge's work, not staged again.
            assert!(
                !tx.put_new_unit_in_parts(&unit, "big.spry", part, spill, &prepare)
                    .expect("a put")
            );
            let log = tx.changes().to_vec();
            tx.commit().expect("a commit");
            assert_eq!(log, whole.1, "parts of {part}: another log");
            let parts = records(&image);
            assert!(
                parts == whole.0,
                "parts of {part}, spilled past {spill}: other records"
            );
            assert_eq!(image.module_text("Big").expect("a text"), text.as_bytes());
            assert!(image.check().expect("a check").is_ok());
        }
        // Whole but without the merge's bookkeeping (`put_new_unit`, a first build's way for
        // a module of usual size): the same records and log.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let image = Image::create(&dir.path().join(".spry-image"), dir.path()).expect("an image");
        let mut tx = image.begin(Origin::File).expect("a transaction");
        for (unit, path) in [(&unit, "big.spry"), (&empty, "empty.spry")] {
            let left = tx
                .put_new_unit(PreparedUnit::new(unit), path)
                .expect("a put");
            assert!(left.is_none(), "a module new to the image was not staged");
        }
        // Held already: given back for the merge.
        let left = tx
            .put_new_unit(PreparedUnit::new(&unit), "big.spry")
            .expect("a put");
        assert!(
            left.is_some(),
            "a module the transaction holds was staged again"
        );
        let log = tx.changes().to_vec();
        tx.commit().expect("a commit");
        assert_eq!(log, whole.1, "without the merge: another log");
        assert!(
            records(&image) == whole.0,
            "without the merge: other records"
        );
        assert!(image.check().expect("a check").is_ok());
    }
}
