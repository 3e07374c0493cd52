//! A file saved with only the texts of some definitions changed (what a watched save of one
//! definition is), found without the three-way merge's maps: one pass over the module's
//! `order` records compares the file's names and gaps in file order, one pass over its
//! definition records compares the file's texts against their hashes, and what is held while
//! they run is one order key per definition. The merge would read both sets of records into
//! maps by name (a `Layout`, a definition index): at millions of definitions, gigabytes.
//!
//! When the module agreed with its file (its sync record is clean: no live edit, removal or
//! conflict pending), holds the file's names in the file's order with the file's text between
//! them, and each of its definitions still holds the text last agreed with the file, the only
//! thing a merge can do is take the file's new texts: [`Transaction::put_saved`] does that and
//! nothing else. It writes each new text as the merge does: the merge leaves out a text the
//! module's records hold already, and none can hold a changed one (a text names its
//! definition, and every record is one of the file's definitions, whose own record holds
//! another text). Anything else, or anything unexpected in a record, hands the unit back for
//! the whole merge ([`Transaction::put_unit`]), which also reports a damaged record.
//!
//! [`Transaction::put_saved`]: super::Transaction::put_saved
//! [`Transaction::put_unit`]: super::Transaction::put_unit

use super::chunks::{self, Chunk, ChunkIndex, Piece};
use super::record::{
    CLOSING, DefinitionRecord, Layout, ModuleKind, SyncRecord, decode_order_entry, order_key,
    order_position, order_prefix,
};
use super::{Hash, Image};
use crate::error::Result;
use crate::store::Table;
use std::hash::Hasher;
use std::ops::Range;

use crate::syntax::{SourceUnit, UnitKind, span_reads_back};

/// A file read again whose new texts can be taken without a merge ([`Image::saved_span`],
/// [`Image::saved_texts`]).
#[derive(Debug)]
pub struct SavedUnit {
    /// The module's name.
    pub(super) name: String,
    /// The module kind it reads as.
    pub(super) kind: ModuleKind,
    /// The file's text.
    pub(super) text: Vec<u8>,
    /// The definitions whose texts the file changed, in file order.
    pub(super) changes: Vec<SavedText>,
    /// The module's chunk index for the file as saved, encoded (`chunks.rs`), when the save
    /// was read by its stretch; `None` leaves the index as it is (removed by any change).
    pub(super) index: Option<Vec<u8>>,
}

/// One definition whose text the file changed.
#[derive(Debug)]
pub(super) struct SavedText {
    /// Its name.
    pub(super) name: String,
    /// Where its text lies in the file.
    pub(super) span: Range<usize>,
    /// The hash of that text.
    pub(super) hash: Hash,
    /// Its record as the image holds it.
    pub(super) record: DefinitionRecord,
}

impl SavedUnit {
    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The definitions whose texts the file changed, in file order: name and new text.
    pub fn changes(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.changes.iter().map(|c| {
            (
                c.name.as_str(),
                self.text.get(c.span.clone()).unwrap_or_default(),
            )
        })
    }
}

/// The image's kind for a unit's.
pub(super) fn kind_of(unit: &SourceUnit) -> ModuleKind {
    match unit.kind() {
        UnitKind::Module => ModuleKind::Module,
        UnitKind::Script => ModuleKind::Script,
    }
}

impl Image {
    /// `unit`, read again from the file `path`, as a save that changed only definitions'
    /// texts ([`SavedUnit`]), or the unit handed back when anything else may have changed
    /// (then the whole merge decides). Reads the module's records in two passes and holds one
    /// order key per definition; hashes each definition of the file once.
    ///
    /// # Errors
    /// Storage failures, a damaged module or sync record. A damaged order or definition
    /// record hands the unit back (the merge reports it).
    pub fn saved_texts(
        &self,
        unit: SourceUnit,
        path: &str,
    ) -> Result<std::result::Result<SavedUnit, SourceUnit>> {
        let kind = kind_of(&unit);
        if !self.agrees_with_file(unit.name(), path, kind)? {
            return Ok(Err(unit));
        }
        let Some(positions) = self.same_order(&unit)? else {
            return Ok(Err(unit));
        };
        let Some(changes) = self.changed_texts(&unit, &positions)? else {
            return Ok(Err(unit));
        };
        let changes = changes
            .into_iter()
            .map(|(at, hash, record)| SavedText {
                name: unit.definitions()[at].name.clone(),
                span: unit.definitions()[at].span.clone(),
                hash,
                record,
            })
            .collect();
        Ok(Ok(SavedUnit {
            name: unit.name().to_string(),
            kind,
            text: unit.into_text(),
            changes,
            index: None,
        }))
    }

    /// Whether the module `name` is held as the file `path` read as `kind` last agreed with
    /// it, with nothing the file lacks (no live edit, removal or conflict): what a save taken
    /// without the merge needs.
    ///
    /// # Errors
    /// Storage failures, a damaged module or sync record.
    fn agrees_with_file(&self, name: &str, path: &str, kind: ModuleKind) -> Result<bool> {
        Ok(self
            .module(name)?
            .is_some_and(|m| m.path == path && m.kind == kind)
            && self.sync(name)? == SyncRecord::default())
    }

    /// Whether the module's `order` records hold the unit's names in its order with its gaps
    /// between them, and the closing gap after them: their order keys, in file order, if so.
    fn same_order(&self, unit: &SourceUnit) -> Result<Option<Vec<u64>>> {
        let definitions = unit.definitions();
        let mut positions = Vec::with_capacity(definitions.len());
        let mut closed = false;
        let mut same = true;
        self.store.visit(
            Table::Order,
            &order_prefix(unit.name()),
            &mut |key, value| {
                let at = positions.len();
                same = !closed
                    && match (order_position(key), decode_order_entry(value)) {
                        (Ok(CLOSING), Ok((_, gap))) => {
                            closed = true;
                            at == definitions.len() && gap == unit.gap_before(at)
                        }
                        (Ok(position), Ok((name, gap))) => {
                            positions.push(position);
                            definitions.get(at).is_some_and(|d| d.name == name)
                                && gap == unit.gap_before(at)
                        }
                        _ => false,
                    };
                same
            },
        )?;
        Ok((same && closed).then_some(positions))
    }

    /// One pass over the module's definition records, in key order, each found in the file
    /// by its order key (`positions`, rising, from [`same_order`](Self::same_order)): the
    /// definitions whose file text differs from their record's, when every record is one of
    /// the file's definitions (one each) and holds the text last agreed with the file.
    fn changed_texts(
        &self,
        unit: &SourceUnit,
        positions: &[u64],
    ) -> Result<Option<Vec<(usize, Hash, DefinitionRecord)>>> {
        let definitions = unit.definitions();
        let prefix = order_prefix(unit.name());
        let mut seen = vec![false; definitions.len()];
        let mut count = 0;
        let mut changes = Vec::new();
        let mut same = true;
        self.store
            .visit(Table::Definitions, &prefix, &mut |key, value| {
                count += 1;
                let found = DefinitionRecord::decode(value).ok().and_then(|record| {
                    let at = positions.binary_search(&record.position).ok()?;
                    let name = key.get(prefix.len()..)?;
                    let fits = !seen[at]
                        && definitions[at].name.as_bytes() == name
                        && record.base == Some(record.hash);
                    fits.then_some((at, record))
                });
                let Some((at, record)) = found else {
                    same = false;
                    return false;
                };
                seen[at] = true;
                let hash = Hash::of(unit.definition_text(at));
                if hash != record.hash {
                    changes.push((at, hash, record));
                }
                true
            })?;
        if !same || count != definitions.len() {
            return Ok(None);
        }
        changes.sort_by_key(|c| c.0);
        Ok(Some(changes))
    }
}

/// What the image holds of one definition, for reading a save without parsing it: where it is
/// in the module's order, its text's length and hash, and its name's (a check that the
/// definition and `order` records agree).
#[derive(Clone, Copy)]
struct Held {
    position: u64,
    size: usize,
    hash: Hash,
    name: u64,
}

/// The definitions a save is read along: the module's whole (`base` 0, every definition,
/// the whole file), or a window of whole chunks (`chunks.rs`) and the bytes of the file they
/// stand for, the file outside them the same as the module's.
struct Frame {
    /// The definitions held, in file order: the module's from `base` on.
    held: Vec<Held>,
    /// The module's definition at `held[0]`.
    base: usize,
    /// How many definitions the module has.
    n: usize,
    /// Where the window starts in the file.
    lo: usize,
    /// Where it ends (the file's end when it holds the module's last definition).
    hi: usize,
    /// The gaps' lengths before the window's definitions, and the closing gap's when the
    /// window holds the module's end (read with a window, not with the whole module).
    gaps: Vec<usize>,
}

impl Frame {
    /// The held definition at `at` in the module's file order.
    fn at(&self, at: usize) -> Option<&Held> {
        self.held.get(at.checked_sub(self.base)?)
    }

    /// The definition after the window's last.
    fn end(&self) -> usize {
        self.base + self.held.len()
    }

    /// Whether the window holds the module's last definition and closing gap.
    fn closes(&self) -> bool {
        self.end() == self.n
    }

    /// The held definition at `at`, if it is the one the `order` record at `position` naming
    /// `name` places there (the definition and `order` records agree).
    fn held_at(&self, at: usize, position: u64, name: &str) -> Option<&Held> {
        self.at(at)
            .filter(|h| h.position == position && h.name == name_key(name.as_bytes()))
    }

    /// The keys of the window's `order` records: from its first definition's (or the
    /// module's first) to past its last definition's (or the closing one).
    fn order_range(&self, module: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let prefix = order_prefix(module);
        let start = match self.base {
            0 => prefix.clone(),
            _ => order_key(module, self.held.first()?.position),
        };
        let end = if self.closes() {
            let mut end = prefix;
            end.extend_from_slice(&[0xff; 9]);
            end
        } else {
            order_key(module, self.held.last()?.position.checked_add(1)?)
        };
        Some((start, end))
    }
}

/// A short hash of a definition's name.
fn name_key(name: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(name);
    hasher.finish()
}

/// How far the file reads as the module from its start ([`Image::saved_span`]).
struct Front {
    /// The first definition whose text is not where it was (`n`: none).
    first: usize,
    /// Where its text starts (the gap before it is the module's).
    start: usize,
    /// Where the definition before it starts.
    before: usize,
}

/// How far the file reads as the module from its end.
struct Back {
    /// The last definition whose text is not where it was.
    last: usize,
    /// Where its text ends (the gap after it is the module's).
    end: usize,
    /// Where the definition after it starts.
    after: usize,
}

/// A save read by its stretch: the definitions whose texts changed, and the module's chunk
/// index for the file as saved (encoded; `None`: leave the index as it is).
type Taken = (Vec<SavedText>, Option<Vec<u8>>);

/// A window's chunks are extended by whole chunks on either side until they hold this many
/// definitions that did not change: the stretch read again starts one definition before the
/// first that changed (two when that one's own start moved) and ends one after the last.
const NEIGHBOURS: u32 = 2;

impl Image {
    /// The file `path`, read again as `text` and last read as `module`, as a save that changed
    /// only definitions' texts, found without parsing the file: the module's records walked
    /// along the file from both ends (each gap the same bytes, each definition a text of the
    /// same length and hash) up to the stretch that changed, and only that stretch, with the
    /// definitions on either side, read again ([`span_reads_back`]). Its definitions must
    /// read as the same names with the same gaps between them. With the module's chunk index
    /// (`chunks.rs`), the file is first compared with it chunk by chunk, and only the records
    /// of the chunks that differ (and a neighbour on either side) are read and walked;
    /// without one (or when the chunks cannot tell), every definition's record is read and
    /// one entry per definition held (its order key, length and hash). The text is handed
    /// back when the module has a change the file lacks, when the file may differ in more
    /// than texts (then it is parsed whole), and on a damaged record or a storage failure
    /// (the merge that follows reads the same records, and reports it).
    pub fn saved_span(
        &self,
        module: &str,
        path: &str,
        text: Vec<u8>,
    ) -> std::result::Result<SavedUnit, Vec<u8>> {
        match self.span_changes(module, path, &text) {
            Ok(Some((changes, index))) => Ok(SavedUnit {
                name: module.to_string(),
                kind: ModuleKind::Module,
                text,
                changes,
                index,
            }),
            Ok(None) | Err(_) => Err(text),
        }
    }

    /// [`saved_span`](Self::saved_span)'s changes and the new chunk index, or `None` to
    /// parse the file whole.
    fn span_changes(&self, module: &str, path: &str, text: &[u8]) -> Result<Option<Taken>> {
        if !self.agrees_with_file(module, path, ModuleKind::Module)? {
            return Ok(None);
        }
        if let Some(index) = self.chunk_index(module)?
            && let Some(found) = self.chunked_changes(module, &index, text)?
        {
            return Ok(Some(found));
        }
        let Some(held) = self.held(module)? else {
            return Ok(None);
        };
        let frame = Frame {
            base: 0,
            n: held.len(),
            held,
            lo: 0,
            hi: text.len(),
            gaps: Vec::new(),
        };
        let Some(front) = self.front(module, &frame, text)? else {
            return Ok(None);
        };
        if front.first == frame.n {
            // The file holds the module's text as it is: nothing to take.
            return Ok(Some((Vec::new(), None)));
        }
        let Some(back) = self.back(module, &frame, text, &front)? else {
            return Ok(None);
        };
        let Some(changes) = self.stretch(module, &frame, text, &front, &back)? else {
            return Ok(None);
        };
        let index = self.fresh_index(module, &frame, text, &changes)?;
        Ok(Some((changes, index.map(|i| i.encode()))))
    }

    /// The module's chunk index, if it has one that reads.
    fn chunk_index(&self, module: &str) -> Result<Option<ChunkIndex>> {
        Ok(self
            .store
            .get(Table::Chunks, module.as_bytes())?
            .and_then(|bytes| ChunkIndex::decode(&bytes)))
    }

    /// Sets the number of bytes of texts the chunks of the indexes this image writes hold
    /// about (`chunks.rs`; tests give small ones, so that small modules have many chunks).
    #[doc(hidden)]
    pub fn set_chunk_target(&mut self, bytes: u64) {
        self.chunk_target = bytes.max(1);
    }

    /// The save read along the chunks of `index` that differ from the file, widened to
    /// whole chunks holding [`NEIGHBOURS`] definitions on either side: its changes and the
    /// index with those chunks cut again from the file. `None` when the window cannot tell
    /// (then the whole module is read).
    fn chunked_changes(
        &self,
        module: &str,
        index: &ChunkIndex,
        text: &[u8],
    ) -> Result<Option<Taken>> {
        let chunks = &index.chunks;
        let matched = chunks::walk(chunks, text);
        if matched.front == chunks.len() && matched.lo == text.len() {
            // The file holds the module's text as it is: nothing to take, the index stays.
            return Ok(Some((Vec::new(), None)));
        }
        let (mut first, mut lo) = (matched.front, matched.lo);
        let mut before = 0;
        while first > 0 && before < NEIGHBOURS {
            first -= 1;
            before += chunks[first].count;
            lo -= chunks[first].len as usize;
        }
        let (mut end, mut hi) = (matched.back, matched.hi);
        let mut after = 0;
        while end < chunks.len() && after < NEIGHBOURS {
            after += chunks[end].count;
            hi += chunks[end].len as usize;
            end += 1;
        }
        let Some(frame) = self.window(module, chunks, first..end, lo, hi)? else {
            return Ok(None);
        };
        let Some(front) = self.front(module, &frame, text)? else {
            return Ok(None);
        };
        let Some(back) = self.back(module, &frame, text, &front)? else {
            return Ok(None);
        };
        let Some(changes) = self.stretch(module, &frame, text, &front, &back)? else {
            return Ok(None);
        };
        // The window's chunks cut again from the file, between the ones that stay.
        let closing = frame.closes().then(|| frame.gaps.last().copied()).flatten();
        let pieces = pieces(&frame.held, frame.gaps.iter().copied(), &changes);
        let Some((cut, at)) = chunks::cut(text, frame.lo, pieces, closing, index.target) else {
            return Ok(None);
        };
        if at != frame.hi {
            return Ok(None);
        }
        let mut new = ChunkIndex {
            target: index.target,
            chunks: Vec::with_capacity(chunks.len() + cut.len()),
        };
        new.chunks.extend_from_slice(&chunks[..first]);
        new.chunks.extend(cut);
        new.chunks.extend_from_slice(&chunks[end..]);
        Ok(Some((changes, Some(new.encode()))))
    }

    /// The module's definitions of `chunks[range]`, standing in the file from `lo` to `hi`,
    /// as a [`Frame`]: their `order` records read in one range scan, their definition records
    /// one by one. `None` when a record does not fit the index or does not hold the text last
    /// agreed with the file.
    fn window(
        &self,
        module: &str,
        chunks: &[Chunk],
        range: Range<usize>,
        lo: usize,
        hi: usize,
    ) -> Result<Option<Frame>> {
        let Some(first) = chunks.get(range.start) else {
            return Ok(None);
        };
        let base: usize = chunks[..range.start].iter().map(|c| c.count as usize).sum();
        let n: usize = chunks.iter().map(|c| c.count as usize).sum();
        let count: usize = chunks[range.clone()].iter().map(|c| c.count as usize).sum();
        let closes = range.end == chunks.len();
        let end = match chunks.get(range.end) {
            Some(next) => order_key(module, next.first),
            None => {
                let mut end = order_prefix(module);
                end.extend_from_slice(&[0xff; 9]);
                end
            }
        };
        let mut entries: Vec<(u64, String, usize)> = Vec::with_capacity(count + 1);
        let mut fits = true;
        self.store.visit_range(
            Table::Order,
            &order_key(module, first.first),
            &end,
            false,
            &mut |key, value| match (order_position(key), decode_order_entry(value)) {
                (Ok(position), Ok((name, gap))) => {
                    entries.push((position, name.to_string(), gap.len()));
                    true
                }
                _ => {
                    fits = false;
                    false
                }
            },
        )?;
        // The window's definitions, then the closing gap when it holds the module's end.
        let closing = match entries.last() {
            Some(&(CLOSING, _, gap)) if closes => {
                entries.pop();
                Some(gap)
            }
            _ if closes => return Ok(None),
            _ => None,
        };
        if !fits || entries.len() != count {
            return Ok(None);
        }
        // Each chunk's first definition is the one the index names.
        let mut at = 0;
        for c in &chunks[range] {
            if entries.get(at).map(|e| e.0) != Some(c.first) {
                return Ok(None);
            }
            at += c.count as usize;
        }
        let mut held = Vec::with_capacity(count);
        let mut gaps = Vec::with_capacity(count + 1);
        for (position, name, gap) in entries {
            let Some(record) = self.definition(module, &name)? else {
                return Ok(None);
            };
            if record.base != Some(record.hash) || record.position != position {
                return Ok(None);
            }
            held.push(Held {
                position,
                size: record.size as usize,
                hash: record.hash,
                name: name_key(name.as_bytes()),
            });
            gaps.push(gap);
        }
        gaps.extend(closing);
        Ok(Some(Frame {
            held,
            base,
            n,
            lo,
            hi,
            gaps,
        }))
    }

    /// A chunk index of the module as saved, from the whole module's [`Frame`]: its `order`
    /// records read once more for the gaps' lengths (4 bytes a definition held), and the
    /// file cut along them. `None` when the records do not fit (no index is written then).
    fn fresh_index(
        &self,
        module: &str,
        frame: &Frame,
        text: &[u8],
        changes: &[SavedText],
    ) -> Result<Option<ChunkIndex>> {
        let mut gaps: Vec<u32> = Vec::with_capacity(frame.n + 1);
        let mut fits = true;
        self.store.visit(
            Table::Order,
            &order_prefix(module),
            &mut |key, value| match (order_position(key), decode_order_entry(value)) {
                (Ok(position), Ok((_, gap))) => {
                    let at = gaps.len();
                    let len = u32::try_from(gap.len()).ok();
                    fits = len.is_some()
                        && (position == CLOSING
                            || frame.at(at).is_some_and(|h| h.position == position));
                    gaps.extend(len);
                    fits
                }
                _ => {
                    fits = false;
                    false
                }
            },
        )?;
        if !fits || gaps.len() != frame.n + 1 {
            return Ok(None);
        }
        let closing = gaps.last().map(|&g| g as usize);
        let pieces = pieces(&frame.held, gaps.iter().map(|&g| g as usize), changes);
        Ok(
            chunks::cut(text, 0, pieces, closing, self.chunk_target).and_then(|(chunks, at)| {
                (at == text.len()).then_some(ChunkIndex {
                    target: self.chunk_target,
                    chunks,
                })
            }),
        )
    }

    /// The module's definitions as [`Held`], in file order, read in one pass over their
    /// records; `None` when one of them does not hold the text last agreed with the file.
    fn held(&self, module: &str) -> Result<Option<Vec<Held>>> {
        let prefix = order_prefix(module);
        let mut held = Vec::new();
        let mut agreed = true;
        self.store
            .visit(Table::Definitions, &prefix, &mut |key, value| {
                let record = DefinitionRecord::decode(value).ok();
                match (record, key.get(prefix.len()..)) {
                    (Some(r), Some(name)) if r.base == Some(r.hash) => {
                        held.push(Held {
                            position: r.position,
                            size: r.size as usize,
                            hash: r.hash,
                            name: name_key(name),
                        });
                        true
                    }
                    _ => {
                        agreed = false;
                        false
                    }
                }
            })?;
        held.sort_unstable_by_key(|h| h.position);
        let distinct = held.windows(2).all(|w| w[0].position < w[1].position);
        Ok((agreed && distinct && !held.is_empty()).then_some(held))
    }

    /// Walks the frame's `order` records along `text` from the frame's start: each gap must
    /// be there byte for byte, each definition a text of its length and hash, until the first
    /// that is not. `None` when a gap differs or a record does not fit.
    fn front(&self, module: &str, frame: &Frame, text: &[u8]) -> Result<Option<Front>> {
        let Some((start_key, end_key)) = frame.order_range(module) else {
            return Ok(None);
        };
        let mut front = Front {
            first: frame.base,
            start: frame.lo,
            before: frame.lo,
        };
        let mut at = frame.lo;
        // Where the definition before `front.before`'s starts.
        let mut earlier = frame.lo;
        let mut fits = true;
        let mut stopped = false;
        self.store.visit_range(
            Table::Order,
            &start_key,
            &end_key,
            false,
            &mut |key, value| {
                stopped = true;
                let (Ok(position), Ok((name, gap))) =
                    (order_position(key), decode_order_entry(value))
                else {
                    fits = false;
                    return false;
                };
                let start = at + gap.len();
                let closing = position == CLOSING;
                if text.get(at..start) != Some(gap) || (closing && start != text.len()) {
                    // The definition before the gap may run on (its old text the start of its
                    // new one), or the gap changed: the stretch starts with that definition.
                    // Before the first, the file's own start changed: not a save of texts.
                    match front.first.checked_sub(1).filter(|&b| b >= frame.base) {
                        Some(before) => {
                            front.first = before;
                            front.start = front.before;
                            front.before = earlier;
                        }
                        None => fits = false,
                    }
                    return false;
                }
                if closing {
                    // Every definition where it was: the whole text, then.
                    fits = front.first == frame.n;
                    return false;
                }
                let Some(h) = frame.held_at(front.first, position, name) else {
                    fits = false;
                    return false;
                };
                front.start = start;
                let end = start + h.size;
                if text.get(start..end).is_some_and(|t| Hash::of(t) == h.hash) {
                    earlier = front.before;
                    front.before = start;
                    front.first += 1;
                    at = end;
                    stopped = false;
                    true
                } else {
                    false
                }
            },
        )?;
        // A window walked to its end without a difference is not what its chunks said.
        let walked = stopped || frame.closes();
        Ok((fits && walked).then_some(front))
    }

    /// Walks the frame's `order` records along `text` from the frame's end, as
    /// [`front`](Self::front) from its start, down to the first definition that changed
    /// (`front.first`) at most.
    fn back(
        &self,
        module: &str,
        frame: &Frame,
        text: &[u8],
        front: &Front,
    ) -> Result<Option<Back>> {
        let Some((start_key, end_key)) = frame.order_range(module) else {
            return Ok(None);
        };
        let mut back = Back {
            last: frame.end(),
            end: frame.hi,
            after: frame.hi,
        };
        let mut fits = true;
        // A window short of the module's end has no closing gap to start with.
        let mut closed = !frame.closes();
        self.store.visit_range(
            Table::Order,
            &start_key,
            &end_key,
            true,
            &mut |key, value| {
                let (Ok(position), Ok((name, gap))) =
                    (order_position(key), decode_order_entry(value))
                else {
                    fits = false;
                    return false;
                };
                if !closed {
                    // The closing gap comes first, and ends the file.
                    closed = position == CLOSING;
                    fits = closed
                        && back.end >= front.start + gap.len()
                        && text.get(back.end - gap.len()..back.end) == Some(gap);
                    back.end -= if fits { gap.len() } else { 0 };
                    return fits;
                }
                let Some(at) = back.last.checked_sub(1).filter(|&a| a >= frame.base) else {
                    fits = false;
                    return false;
                };
                let Some(h) = frame.held_at(at, position, name) else {
                    fits = false;
                    return false;
                };
                back.last = at;
                if at == front.first {
                    return false;
                }
                let start = back.end.wrapping_sub(h.size);
                let same = back.end >= front.start + h.size
                    && text
                        .get(start..back.end)
                        .is_some_and(|t| Hash::of(t) == h.hash)
                    && start >= front.start + gap.len()
                    && text.get(start - gap.len()..start) == Some(gap);
                if same {
                    back.after = start;
                    back.end = start - gap.len();
                }
                same
            },
        )?;
        Ok((fits && closed && back.last < frame.end() && back.end >= front.start).then_some(back))
    }

    /// Reads the stretch of `text` between `front` and `back` again, with a definition on
    /// either side ([`span_reads_back`]): the definitions whose texts changed, when it reads
    /// as the module's definitions there with the module's gaps between them.
    fn stretch(
        &self,
        module: &str,
        frame: &Frame,
        text: &[u8],
        front: &Front,
        back: &Back,
    ) -> Result<Option<Vec<SavedText>>> {
        let n = frame.n;
        let (k, m) = (front.first, back.last);
        let first = k.saturating_sub(1);
        let last = (m + 1).min(n - 1);
        // The neighbours must be the frame's.
        let (Some(held_first), Some(held_last)) = (frame.at(first), frame.at(last)) else {
            return Ok(None);
        };
        let held = |j: usize| frame.at(j).copied();
        // The `order` records of the window: names, and the gaps inside the stretch.
        let mut names = Vec::with_capacity(last + 1 - first);
        let mut gaps = Vec::with_capacity(last + 1 - first);
        let Some(end) = held_last.position.checked_add(1) else {
            return Ok(None);
        };
        let mut fits = true;
        self.store.visit_range(
            Table::Order,
            &order_key(module, held_first.position),
            &order_key(module, end),
            false,
            &mut |key, value| {
                let at = first + names.len();
                match (order_position(key), decode_order_entry(value)) {
                    (Ok(p), Ok((name, gap))) if held(at).is_some_and(|h| h.position == p) => {
                        names.push(name.to_string());
                        gaps.push(gap.to_vec());
                        true
                    }
                    _ => {
                        fits = false;
                        false
                    }
                }
            },
        )?;
        if !fits || names.len() != last + 1 - first {
            return Ok(None);
        }
        let window = if first == 0 { 0 } else { front.before }..if last == n - 1 {
            text.len()
        } else {
            back.after + held_last.size
        };
        let expected: Vec<&str> = names.iter().map(String::as_str).collect();
        let Some(spans) =
            span_reads_back(text, window, first == 0, last == n - 1, module, &expected)
        else {
            return Ok(None);
        };
        // The walks met without a stretch between them (the window's file bytes are its
        // records' text: a chunk a live edit marked stale, the file since exported), or
        // crossed: what lies between is not known here, so the whole module is read.
        if k > m || spans.len() != last + 1 - first {
            return Ok(None);
        }
        let span = |i: usize| &spans[i - first];
        // The neighbours where they were, the stretch's ends where the walks left them, and
        // the module's gaps between the definitions inside it.
        let placed = (first == k || *span(first) == (front.before..front.before + held_first.size))
            && (last == m || *span(last) == (back.after..back.after + held_last.size))
            && span(k).start == front.start
            && span(m).end == back.end
            && (k + 1..=m)
                .all(|j| text.get(span(j - 1).end..span(j).start) == Some(&gaps[j - first][..]));
        if !placed {
            return Ok(None);
        }
        let mut changes = Vec::new();
        for j in k..=m {
            let Some(h) = held(j) else {
                return Ok(None);
            };
            let hash = Hash::of(&text[span(j).clone()]);
            if hash == h.hash {
                continue;
            }
            let Some(record) = self.definition(module, &names[j - first])? else {
                return Ok(None);
            };
            if record.base != Some(record.hash) || record.position != h.position {
                return Ok(None);
            }
            changes.push(SavedText {
                name: names[j - first].clone(),
                span: span(j).clone(),
                hash,
                record,
            });
        }
        Ok(Some(changes))
    }
}

/// Held definitions as the save leaves them (a changed one with its new text's length and
/// hash), with the gaps before them, for a cut into chunks.
fn pieces<'a>(
    held: &'a [Held],
    gaps: impl Iterator<Item = usize> + 'a,
    changes: &'a [SavedText],
) -> impl Iterator<Item = Piece> + 'a {
    let mut changes = changes.iter().peekable();
    held.iter().zip(gaps).map(move |(h, gap)| {
        let (size, hash) = match changes.next_if(|c| c.record.position == h.position) {
            Some(c) => (c.span.len(), c.hash),
            None => (h.size, h.hash),
        };
        Piece {
            position: h.position,
            gap,
            size,
            hash,
        }
    })
}

impl Image {
    /// Whether the module's chunk index, if it has one, is the one its text as it stands
    /// cuts into: what `check` verifies. (Whether the file holds that text is the sync
    /// record's and the stamp's to say: a live edit not yet exported keeps the index of the
    /// module's text, which the file will hold once exported.) `None` when it has none.
    /// Public for tests that must know a live edit kept the index.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    #[doc(hidden)]
    pub fn chunk_index_agrees(&self, module: &str) -> Result<Option<bool>> {
        let layout = self.layout(module)?;
        let index = self.definition_index(module)?;
        self.chunk_index_agrees_with(module, &layout, |name| index.get(name).copied())
    }

    /// [`chunk_index_agrees`](Self::chunk_index_agrees) with the module's layout and its
    /// definition records (`record`, by name) read already, as `check` has them: only the
    /// texts are read.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub(super) fn chunk_index_agrees_with(
        &self,
        module: &str,
        layout: &Layout,
        record: impl Fn(&str) -> Option<DefinitionRecord>,
    ) -> Result<Option<bool>> {
        let Some(bytes) = self.store.get(Table::Chunks, module.as_bytes())? else {
            return Ok(None);
        };
        let Some(index) = ChunkIndex::decode(&bytes) else {
            return Ok(Some(false));
        };
        if layout.gaps.len() != layout.names.len() + 1 {
            return Ok(Some(false));
        }
        let mut pieces = Vec::with_capacity(layout.names.len());
        let mut text = Vec::new();
        for (i, name) in layout.names.iter().enumerate() {
            let Some(record) = record(name) else {
                return Ok(Some(false));
            };
            pieces.push(Piece {
                position: layout.positions[i],
                gap: layout.gaps[i].len(),
                size: record.size as usize,
                hash: record.hash,
            });
            text.extend_from_slice(&layout.gaps[i]);
            text.extend_from_slice(&self.text(&record.hash)?);
        }
        let closing = layout.gaps.last().map(Vec::len);
        text.extend_from_slice(layout.gaps.last().map_or(&[][..], Vec::as_slice));
        // A stale chunk (a live edit's) agrees by place, count and length: its hash is not
        // known until a save cuts it again.
        let agrees = |cut: &Chunk, held: &Chunk| {
            cut.first == held.first
                && cut.count == held.count
                && cut.len == held.len
                && (cut.hash == held.hash || held.hash == chunks::STALE)
        };
        Ok(Some(
            chunks::cut(&text, 0, pieces, closing, index.target).is_some_and(|(chunks, at)| {
                at == text.len()
                    && chunks.len() == index.chunks.len()
                    && chunks.iter().zip(&index.chunks).all(|(c, h)| agrees(c, h))
            }),
        ))
    }

    /// [`saved_span`](Self::saved_span) by the module's chunk index alone: `None` when it has
    /// none, or when its chunks cannot tell (then `saved_span` reads the whole module). For
    /// tests that must know the index was used.
    #[doc(hidden)]
    pub fn saved_by_chunks(&self, module: &str, path: &str, text: &[u8]) -> Option<SavedUnit> {
        if !self
            .agrees_with_file(module, path, ModuleKind::Module)
            .ok()?
        {
            return None;
        }
        let index = self.chunk_index(module).ok()??;
        let (changes, index) = self.chunked_changes(module, &index, text).ok()??;
        Some(SavedUnit {
            name: module.to_string(),
            kind: ModuleKind::Module,
            text: text.to_vec(),
            changes,
            index,
        })
    }
}
