//! A module's chunk index: its text as last agreed with its file, cut into chunks of whole
//! definitions (each with the gap before it; the last chunk with the closing gap too), each
//! kept as its first definition's order key, its number of definitions, its length and its
//! hash. A save of one definition compares the file with it chunk by chunk from both ends, one
//! pass over the file's bytes, and reads the module's records only for the chunks that differ
//! ([`Image::saved_span`](super::Image::saved_span)), instead of every record of the module.
//!
//! Where a chunk ends depends on its last definition alone (its text's hash and length, see
//! [`ends_chunk`]), so a save that changes some texts leaves every chunk that holds none of
//! them as it was: the chunks of the stretch that changed, cut again, are the ones a cut of
//! the whole new text gives. A chunk holds about [`CHUNK_TARGET`] bytes of texts whatever the
//! definitions' sizes (each byte of a text ends its chunk with the same chance).
//!
//! The index is a cache, kept in the `chunks` table under the module's name, and valid only
//! for the module's text as its records hold it: every write to a module's record, its
//! definitions' records or its `order` records removes it in the same commit
//! ([`Transaction`](super::Transaction)), but for a live edit of one definition's text, which
//! gives the one chunk that holds it its new length and marks it [`STALE`] (when the new text
//! ends a chunk where the old one did; the next save reads that chunk again), a live removal
//! or addition of one definition, which changes the chunks around it as a cut of the new text
//! would ([`ChunkIndex::without`], [`ChunkIndex::with_last`]), and a definition's base, which
//! is not its text. A save writes a new one, and so does a
//! first build for each new module of [`INDEX_AT_BUILD`] bytes or more. An export, writing
//! the sync records, leaves it: the file then holds the text the index was cut from. An
//! absent or damaged index reads the module's records whole, as before.

use super::Hash;

/// About how many bytes of definitions' texts a chunk holds: the stretch a save reads again
/// is one or a few chunks, and the index of a 430 MB module about 14,000 entries (700 KB).
pub const CHUNK_TARGET: u64 = 32 * 1024;

/// From this many bytes on, a first build writes a module's index (a save of a shorter one
/// reads it whole at about the cost of reading its chunks).
pub const INDEX_AT_BUILD: usize = 2 * CHUNK_TARGET as usize;

/// The hash of a chunk that a live edit changed: not known until a save cuts it again. It is
/// no text's hash (blake3 gives all zeros to no input anyone can find), so the file's bytes
/// never match it, and a save reads that chunk again from its records.
pub(super) const STALE: Hash = Hash([0; 32]);

/// The form of the encoded index.
const VERSION: u8 = 1;
/// One chunk's bytes: first order key, count, length, hash.
const ENTRY: usize = 8 + 4 + 8 + 32;
/// The header: version, target.
const HEADER: usize = 1 + 8;

/// One chunk of a module's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    /// The order key of its first definition.
    pub(super) first: u64,
    /// How many definitions it holds (at least one).
    pub(super) count: u32,
    /// Its length in bytes.
    pub(super) len: u64,
    /// The hash of its bytes.
    pub(super) hash: Hash,
}

/// A module's chunks, in file order, and the target they were cut for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ChunkIndex {
    /// What [`ends_chunk`] was given.
    pub(super) target: u64,
    /// The chunks, covering the module's text from its first byte to its last.
    pub(super) chunks: Vec<Chunk>,
}

impl ChunkIndex {
    /// The stored form.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + ENTRY * self.chunks.len());
        out.push(VERSION);
        out.extend_from_slice(&self.target.to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&c.first.to_le_bytes());
            out.extend_from_slice(&c.count.to_le_bytes());
            out.extend_from_slice(&c.len.to_le_bytes());
            out.extend_from_slice(&c.hash.0);
        }
        out
    }

    /// Reads [`encode`](Self::encode)'s form; `None` for anything else (the index is then
    /// taken as absent).
    pub(super) fn decode(bytes: &[u8]) -> Option<ChunkIndex> {
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION || rest.len() < 8 || (rest.len() - 8) % ENTRY != 0 {
            return None;
        }
        let target = u64::from_le_bytes(rest[..8].try_into().ok()?);
        let chunks = rest[8..]
            .chunks_exact(ENTRY)
            .map(|e| {
                Some(Chunk {
                    first: u64::from_le_bytes(e[..8].try_into().ok()?),
                    count: u32::from_le_bytes(e[8..12].try_into().ok()?),
                    len: u64::from_le_bytes(e[12..20].try_into().ok()?),
                    hash: Hash::from_slice(&e[20..])?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        (target > 0 && !chunks.is_empty() && chunks.iter().all(|c| c.count > 0))
            .then_some(ChunkIndex { target, chunks })
    }
}

/// Whether a chunk ends after the definition whose text has `hash` and `size` bytes: with a
/// chance of `size / target` (always from `target` bytes on), from the hash alone.
pub(super) fn ends_chunk(hash: &Hash, size: usize, target: u64) -> bool {
    let mut low = [0; 8];
    low.copy_from_slice(&hash.0[..8]);
    u64::from_le_bytes(low) % target.max(1) < size as u64
}

/// One definition of a module in file order, as a cut into chunks needs it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Piece {
    /// Its order key.
    pub(super) position: u64,
    /// The length of the gap before it.
    pub(super) gap: usize,
    /// Its text's length.
    pub(super) size: usize,
    /// Its text's hash.
    pub(super) hash: Hash,
}

/// Cuts `text` from `start` into chunks along `pieces` (consecutive definitions of a module);
/// `closing` is the closing gap's length when they run to the module's end (the last chunk
/// ends after it). Returns the chunks and where the last ends, or `None` when the text is
/// shorter than the pieces say, or when they stop inside a chunk.
pub(super) fn cut(
    text: &[u8],
    start: usize,
    pieces: impl IntoIterator<Item = Piece>,
    closing: Option<usize>,
    target: u64,
) -> Option<(Vec<Chunk>, usize)> {
    let mut cutter = Cutter::new(start, target);
    for p in pieces {
        cutter.push(text, p);
    }
    cutter.finish(text, closing)
}

/// [`cut`] as the pieces come, a part of a module at a time (a first build stages a module
/// of millions of definitions in parts, and never holds all their hashes at once).
pub(super) struct Cutter {
    target: u64,
    chunks: Vec<Chunk>,
    /// Where the open chunk starts, and where the pieces taken so far end.
    from: usize,
    at: usize,
    /// The open chunk's first order key and count.
    open: Option<(u64, u32)>,
    /// The last piece pushed: whether it is the module's last is known only at the end.
    pending: Option<Piece>,
    broken: bool,
}

impl Cutter {
    /// A cut of a text from `start`, for chunks of about `target` bytes.
    pub(super) fn new(start: usize, target: u64) -> Cutter {
        Cutter {
            target,
            chunks: Vec::new(),
            from: start,
            at: start,
            open: None,
            pending: None,
            broken: false,
        }
    }

    /// Takes the next piece; `text` is the whole text, as every call gives it.
    pub(super) fn push(&mut self, text: &[u8], piece: Piece) {
        if let Some(previous) = self.pending.replace(piece) {
            self.take(text, previous, None);
        }
    }

    /// The chunks and where the last ends, as [`cut`] gives them.
    pub(super) fn finish(
        mut self,
        text: &[u8],
        closing: Option<usize>,
    ) -> Option<(Vec<Chunk>, usize)> {
        if let Some(last) = self.pending.take() {
            self.take(text, last, closing);
        }
        (!self.broken && self.open.is_none()).then_some((self.chunks, self.at))
    }

    /// Adds `p` to the open chunk, and ends the chunk after it when its hash says so, or when
    /// it is the module's last (`closing`, the closing gap, then ends the chunk too).
    fn take(&mut self, text: &[u8], p: Piece, closing: Option<usize>) {
        if self.broken {
            return;
        }
        let (first, count) = self.open.unwrap_or((p.position, 0));
        self.open = Some((first, count + 1));
        let at = self
            .at
            .checked_add(p.gap)
            .and_then(|at| at.checked_add(p.size))
            .and_then(|at| at.checked_add(closing.unwrap_or(0)));
        let Some(at) = at else {
            self.broken = true;
            return;
        };
        self.at = at;
        if closing.is_some() || ends_chunk(&p.hash, p.size, self.target) {
            let Some(bytes) = text.get(self.from..at) else {
                self.broken = true;
                return;
            };
            self.chunks.push(Chunk {
                first,
                count: count + 1,
                len: bytes.len() as u64,
                hash: Hash::of(bytes),
            });
            self.from = at;
            self.open = None;
        }
    }
}

/// A definition a live edit takes out of a module's text, as its chunk index sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Removal {
    /// Its order key.
    pub(super) position: u64,
    /// The order key of the definition after it; `None` when it was the last.
    pub(super) next: Option<u64>,
    /// Whether it was the module's first definition: the gap before it stays, as the next
    /// one's, and the next one's own gap leaves with it.
    pub(super) first: bool,
    /// Whether its text ended a chunk ([`ends_chunk`]).
    pub(super) ends: bool,
    /// How many bytes the module's text loses.
    pub(super) bytes: u64,
}

impl ChunkIndex {
    /// The index of the text without `r`'s definition, as a cut of that text gives it: the
    /// chunk that held it loses its bytes and is marked [`STALE`]; when the definition ended
    /// that chunk, what is left of it joins the next, and when it was the last, the closing
    /// gap joins the chunk of the new last one. `None` when the index does not fit the
    /// removal (the index is then dropped) or no definition is left.
    pub(super) fn without(mut self, r: &Removal) -> Option<ChunkIndex> {
        let at = self
            .chunks
            .partition_point(|c| c.first <= r.position)
            .checked_sub(1)?;
        let held = *self.chunks.get(at)?;
        // What is left of its chunk (the first definition's removal takes the next one's
        // gap, which may be in the next chunk: see the last arm).
        let len = held.len.checked_sub(r.bytes);
        match r.next {
            // The last: its chunk keeps the closing gap, or gives it to the one before.
            None if held.count == 1 => {
                self.chunks.remove(at);
                let before = self.chunks.get_mut(at.checked_sub(1)?)?;
                before.len = before.len.checked_add(len?)?;
                before.hash = STALE;
            }
            None => self.chunks[at] = stale(held.first, held.count - 1, len?),
            Some(next) if !r.ends => {
                // The next definition is in the same chunk.
                let first = if held.first == r.position {
                    next
                } else {
                    held.first
                };
                self.chunks[at] = stale(first, held.count.checked_sub(1)?, len?);
            }
            Some(next) => {
                let after = *self.chunks.get(at + 1)?;
                if after.first != next {
                    return None;
                }
                if held.count == 1 && !r.first {
                    // The chunk was the definition and the gap before it: the rest is as
                    // it was.
                    if len != Some(0) {
                        return None;
                    }
                    self.chunks.remove(at);
                } else {
                    let first = if held.first == r.position {
                        next
                    } else {
                        held.first
                    };
                    let count = (held.count - 1).checked_add(after.count)?;
                    let len = held.len.checked_add(after.len)?.checked_sub(r.bytes)?;
                    self.chunks[at] = stale(first, count, len);
                    self.chunks.remove(at + 1);
                }
            }
        }
        (!self.chunks.is_empty() && self.chunks.iter().all(|c| c.count > 0)).then_some(self)
    }

    /// The index of the text with a definition (order key `position`) added after the last
    /// one: `added`, its gap and text, goes before the closing gap `closing`. The last chunk
    /// takes it when the last definition did not end a chunk (`last_ends`); otherwise that
    /// chunk ends before the closing gap, and the new definition with the closing gap is a
    /// chunk of its own, whose hash is known. `None` when the index does not fit.
    pub(super) fn with_last(
        mut self,
        position: u64,
        last_ends: bool,
        added: &[u8],
        closing: &[u8],
    ) -> Option<ChunkIndex> {
        let last = self.chunks.last_mut()?;
        if last.first >= position {
            return None;
        }
        if last_ends {
            *last = stale(
                last.first,
                last.count,
                last.len.checked_sub(closing.len() as u64)?,
            );
            let bytes = [added, closing].concat();
            self.chunks.push(Chunk {
                first: position,
                count: 1,
                len: bytes.len() as u64,
                hash: Hash::of(&bytes),
            });
        } else {
            let len = last.len.checked_add(added.len() as u64)?;
            *last = stale(last.first, last.count.checked_add(1)?, len);
        }
        Some(self)
    }
}

/// A chunk whose hash is not known.
fn stale(first: u64, count: u32, len: u64) -> Chunk {
    Chunk {
        first,
        count,
        len,
        hash: STALE,
    }
}

/// How far `text` holds the index's chunks from its start and from its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Matched {
    /// How many chunks the text starts with.
    pub(super) front: usize,
    /// Where the first chunk it does not start with would start.
    pub(super) lo: usize,
    /// The first of the chunks the text ends with (`front` at least).
    pub(super) back: usize,
    /// Where they start.
    pub(super) hi: usize,
}

/// Compares `text` with `chunks` from its start, then from its end down to the first chunk
/// that differed: each chunk's bytes hashed once at most.
pub(super) fn walk(chunks: &[Chunk], text: &[u8]) -> Matched {
    let same = |from: usize, c: &Chunk| {
        usize::try_from(c.len)
            .ok()
            .and_then(|len| text.get(from..from.checked_add(len)?))
            .is_some_and(|bytes| Hash::of(bytes) == c.hash)
    };
    let (mut front, mut lo) = (0, 0);
    while let Some(c) = chunks.get(front) {
        if !same(lo, c) {
            break;
        }
        lo += c.len as usize;
        front += 1;
    }
    let (mut back, mut hi) = (chunks.len(), text.len());
    while back > front {
        let c = &chunks[back - 1];
        let Some(from) = usize::try_from(c.len)
            .ok()
            .and_then(|len| hi.checked_sub(len))
        else {
            break;
        };
        if from < lo || !same(from, c) {
            break;
        }
        hi = from;
        back -= 1;
    }
    Matched {
        front,
        lo,
        back,
        hi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &[u8], spans: &[(usize, usize)], gaps: &[usize]) -> Vec<Piece> {
        spans
            .iter()
            .zip(gaps)
            .enumerate()
            .map(|(i, (&(s, e), &gap))| Piece {
                position: (i as u64 + 1) << 32,
                gap,
                size: e - s,
                hash: Hash::of(&text[s..e]),
            })
            .collect()
    }

    #[test]
    fn an_index_round_trips_and_damage_reads_as_none() {
        let index = ChunkIndex {
            target: 64,
            chunks: vec![
                Chunk {
                    first: 1 << 32,
                    count: 3,
                    len: 40,
                    hash: Hash::of(b"a"),
                },
                Chunk {
                    first: 4 << 32,
                    count: 1,
                    len: 9,
                    hash: Hash::of(b"b"),
                },
            ],
        };
        let bytes = index.encode();
        assert_eq!(ChunkIndex::decode(&bytes), Some(index));
        assert_eq!(ChunkIndex::decode(&bytes[..bytes.len() - 1]), None);
        let mut other = bytes.clone();
        other[0] = 9;
        assert_eq!(ChunkIndex::decode(&other), None);
    }

    #[test]
    fn a_cut_covers_the_text_and_a_walk_finds_the_chunks_that_changed() {
        // `{` gap, then definitions of one letter each, a space before each, `}` to close.
        let text = b"{ a b c d e f g h i j}".to_vec();
        let spans: Vec<(usize, usize)> = (0..10).map(|i| (2 + 2 * i, 3 + 2 * i)).collect();
        let gaps = [2, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        // Target 1: every definition ends a chunk.
        let (chunks, end) = cut(&text, 0, pieces(&text, &spans, &gaps), Some(1), 1).unwrap();
        assert_eq!((chunks.len(), end), (10, text.len()));
        assert_eq!(chunks.iter().map(|c| c.len).sum::<u64>(), text.len() as u64);
        assert_eq!(
            walk(&chunks, &text),
            Matched {
                front: 10,
                lo: text.len(),
                back: 10,
                hi: text.len()
            }
        );
        // `e` changed: chunks 0..4 from the start, 5.. from the end.
        let edited = b"{ a b c d E f g h i j}".to_vec();
        let m = walk(&chunks, &edited);
        assert_eq!((m.front, m.lo, m.back, m.hi), (4, 9, 5, 11));
        // `e` made longer: its chunk starts as it did, the next does not.
        let longer = b"{ a b c d eee f g h i j}".to_vec();
        let m = walk(&chunks, &longer);
        assert_eq!((m.front, m.lo, m.back, m.hi), (5, 11, 5, 13));
        // Stopping inside a chunk is not a cut.
        let huge = 1 << 40;
        assert!(cut(&text, 0, pieces(&text, &spans, &gaps), None, huge).is_none());
        // A text shorter than the pieces say.
        assert!(cut(&text[..10], 0, pieces(&text, &spans, &gaps), Some(1), 1).is_none());
    }

    #[test]
    fn chunks_end_by_the_size_of_their_last_text() {
        let hashes: Vec<Hash> = (0..10_000u32).map(|i| Hash::of(&i.to_le_bytes())).collect();
        let ends = |size: usize| hashes.iter().filter(|h| ends_chunk(h, size, 1024)).count();
        assert_eq!(ends(1024), 10_000);
        let small = ends(16);
        // About one in 64.
        assert!((100..=220).contains(&small), "{small}");
    }

    /// A module as gaps and texts (`gaps[i]` before `texts[i]`, the last gap the closing
    /// one), its text and its fresh cut for `target`.
    #[derive(Clone, Debug)]
    struct Model {
        gaps: Vec<Vec<u8>>,
        texts: Vec<Vec<u8>>,
        positions: Vec<u64>,
    }

    impl Model {
        fn text(&self) -> Vec<u8> {
            let mut out = Vec::new();
            for (i, gap) in self.gaps.iter().enumerate() {
                out.extend_from_slice(gap);
                if let Some(t) = self.texts.get(i) {
                    out.extend_from_slice(t);
                }
            }
            out
        }

        fn index(&self, target: u64) -> ChunkIndex {
            let text = self.text();
            let pieces = (0..self.texts.len()).map(|i| Piece {
                position: self.positions[i],
                gap: self.gaps[i].len(),
                size: self.texts[i].len(),
                hash: Hash::of(&self.texts[i]),
            });
            let closing = self.gaps.last().map(Vec::len);
            let (chunks, at) = cut(&text, 0, pieces, closing, target).unwrap();
            assert_eq!(at, text.len());
            ChunkIndex { target, chunks }
        }
    }

    /// What `check` asks of a kept index: the fresh cut's chunks, a stale one agreeing by
    /// place, count and length.
    fn agrees(kept: &ChunkIndex, fresh: &ChunkIndex) -> bool {
        kept.chunks.len() == fresh.chunks.len()
            && kept.chunks.iter().zip(&fresh.chunks).all(|(k, f)| {
                k.first == f.first
                    && k.count == f.count
                    && k.len == f.len
                    && (k.hash == f.hash || k.hash == STALE)
            })
    }

    fn model() -> impl proptest::strategy::Strategy<Value = Model> {
        use proptest::prelude::*;
        let def = (
            proptest::collection::vec(any::<u8>(), 0..4),
            proptest::collection::vec(any::<u8>(), 1..12),
        );
        (
            proptest::collection::vec(def, 1..24),
            proptest::collection::vec(any::<u8>(), 0..4),
        )
            .prop_map(|(defs, closing)| {
                let positions = (1..=defs.len() as u64).map(|i| i << 8).collect();
                let (mut gaps, texts): (Vec<_>, Vec<_>) = defs.into_iter().unzip();
                gaps.push(closing);
                Model {
                    gaps,
                    texts,
                    positions,
                }
            })
    }

    proptest::proptest! {
        /// Issue 15: a live removal keeps the module's index as the cut of the new text
        /// gives it (`ChunkIndex::without`), whichever definition goes: the first, the last,
        /// one that ended its chunk, the only one of its chunk.
        #[test]
        fn an_index_without_a_definition_is_the_cut_of_the_text_without_it(
            m in model(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            target in 1u64..64,
        ) {
            let old = m.index(target);
            let at = at.index(m.texts.len());
            let last = at + 1 == m.texts.len();
            let bytes = if at == 0 && !last {
                m.texts[0].len() + m.gaps[1].len()
            } else {
                m.gaps[at].len() + m.texts[at].len()
            };
            let removal = Removal {
                position: m.positions[at],
                next: m.positions.get(at + 1).copied(),
                first: at == 0,
                ends: ends_chunk(&Hash::of(&m.texts[at]), m.texts[at].len(), target),
                bytes: bytes as u64,
            };
            let mut after = m.clone();
            after.texts.remove(at);
            after.positions.remove(at);
            after.gaps.remove(if at == 0 { 1 } else { at });
            let kept = old.without(&removal);
            if after.texts.is_empty() {
                proptest::prop_assert!(kept.is_none());
            } else {
                let fresh = after.index(target);
                let kept = kept.expect("an index kept");
                proptest::prop_assert!(agrees(&kept, &fresh), "{:?}\n{:?}", kept, fresh);
            }
        }

        /// Issue 15: a live addition keeps the module's index as the cut of the new text
        /// gives it (`ChunkIndex::with_last`), after a last definition that ended its chunk
        /// or did not.
        #[test]
        fn an_index_with_a_definition_added_is_the_cut_of_the_text_with_it(
            m in model(),
            gap in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
            text in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..12),
            target in 1u64..64,
        ) {
            let old = m.index(target);
            let last = m.texts.len() - 1;
            let ends = ends_chunk(&Hash::of(&m.texts[last]), m.texts[last].len(), target);
            let position = m.positions[last] + 1;
            let added = [gap.as_slice(), &text].concat();
            let closing = m.gaps[last + 1].clone();
            let kept = old.with_last(position, ends, &added, &closing).expect("an index kept");
            let mut after = m.clone();
            after.gaps.insert(last + 1, gap);
            after.texts.push(text);
            after.positions.push(position);
            let fresh = after.index(target);
            proptest::prop_assert!(agrees(&kept, &fresh), "{:?}\n{:?}", kept, fresh);
        }
    }
}
