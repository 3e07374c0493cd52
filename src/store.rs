//! The storage the image stands on, behind a narrow interface.
//!
//! The image asks for a handful of operations on named tables: point reads, prefix scans and
//! atomic write batches. [`FjallStore`] implements them on fjall; a shared, multi-user image on
//! a server database would implement [`Store`] and leave the image and sync code untouched.

use std::path::Path;

use fjall::compaction::Leveled;
use fjall::{
    CompressionType, KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase,
    SingleWriterTxKeyspace,
};

use crate::error::{Error, Result};

/// The tables of an image. ARCHITECTURE.md documents their keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// The image's own record.
    Meta,
    /// Module name → module record.
    Modules,
    /// Module name, NUL, definition name → definition record.
    Definitions,
    /// blake3 hash → LZ4-compressed text.
    Blobs,
    /// Relative file path → what was last read from it.
    Paths,
    /// Generation → what one commit changed.
    Log,
    /// Module, NUL, definition name, NUL, generation → that version of the definition.
    History,
    /// Module name → how its image text and its file differ (absent: they agree).
    Sync,
    /// Module name, NUL, order key → a definition's name and the gap before it (the module's
    /// order and layout, one record per definition).
    Order,
    /// Module name → its chunk index: its text as last agreed with its file, in chunks
    /// (absent: not known; a cache, removed by any change of the module).
    Chunks,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 10] = [
        Table::Meta,
        Table::Modules,
        Table::Definitions,
        Table::Blobs,
        Table::Paths,
        Table::Log,
        Table::History,
        Table::Sync,
        Table::Order,
        Table::Chunks,
    ];

    /// The table's place in [`Table::ALL`] (its declaration order: the test
    /// `tables_are_listed_in_declaration_order` pins it).
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Modules => "modules",
            Table::Definitions => "definitions",
            Table::Blobs => "blobs",
            Table::Paths => "paths",
            Table::Log => "log",
            Table::History => "history",
            Table::Sync => "sync",
            Table::Order => "order",
            Table::Chunks => "chunks",
        }
    }
}

/// A key's or a value's bytes as the store takes them (fjall's own slice): what is made in
/// this form reaches a table without another copy. A first build hands fjall half a million
/// records; made as vectors, each was copied (and allocated) once more on its way in.
pub type Bytes = fjall::Slice;

/// One change of a write batch.
#[derive(Clone, Debug)]
pub enum Write {
    /// Set `key` to `value`.
    Put(Table, Bytes, Bytes),
    /// Remove `key`.
    Delete(Table, Bytes),
}

impl Write {
    /// Sets `key` to `value`, from bytes in any form.
    pub fn put(table: Table, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Write {
        Write::Put(table, key.into(), value.into())
    }

    /// Removes `key`, given in any form.
    pub fn delete(table: Table, key: impl Into<Bytes>) -> Write {
        Write::Delete(table, key.into())
    }
}

impl Write {
    fn target(&self) -> (Table, &[u8]) {
        match self {
            Write::Put(table, key, _) | Write::Delete(table, key) => (*table, key),
        }
    }
}

/// From this many new texts in one commit on, they are written straight into tables
/// (fjall's ingestion: written once, not journal and then flush).
const INGEST_MIN_BLOBS: usize = 4096;

/// How many tables a table's first level gathers before fjall merges them into the next
/// (fjall's default is 4). A first build loads each table a batch at a time, one run per
/// batch, and texts are keyed by hash, so every run overlaps all the others: merging every 4
/// runs rewrote everything loaded so far each time, most of a 30,000-module build's
/// compaction (6 s of it, against 1.8 s with 16). It stays below 20, where fjall starts to
/// slow writes down until compaction catches up (and at 30 stops them). Kept by fjall with
/// each table when it is made: images made before keep 4.
const L0_THRESHOLD: u8 = 16;

/// What the image needs from a database.
pub trait Store: Send + Sync {
    /// The value at `key`.
    ///
    /// # Errors
    /// Any storage failure.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Every key and value whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// Any storage failure.
    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Calls `visit` with every key and value of `table` whose key starts with `prefix`, in key
    /// order, without collecting them; `visit` returns `false` to stop.
    ///
    /// # Errors
    /// Any storage failure.
    fn visit(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;

    /// Calls `visit` with the keys and values of `table` from `start` (included) to `end`
    /// (excluded), in key order, or from the end backwards with `backwards`; `visit` returns
    /// `false` to stop. What finds a definition's neighbours without reading its module.
    ///
    /// # Errors
    /// Any storage failure.
    fn visit_range(
        &self,
        table: Table,
        start: &[u8],
        end: &[u8],
        backwards: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;

    /// About how many records `table` holds (more where some were overwritten or removed
    /// and not yet merged away): a capacity for whoever collects a whole table, not a count.
    fn approximate_len(&self, table: Table) -> usize;

    /// Applies `writes` atomically: all or none, and a reader sees all or none. Returns only
    /// once the batch would survive a power cut.
    ///
    /// # Errors
    /// Any storage failure; nothing was applied.
    fn commit(&self, writes: Vec<Write>) -> Result<()>;

    /// As [`commit`](Self::commit), but returns once the batch has reached the operating
    /// system's buffers: a power cut may lose it (whole, never half of it).
    ///
    /// # Errors
    /// Any storage failure; nothing was applied.
    fn commit_buffered(&self, writes: Vec<Write>) -> Result<()>;

    /// Loads `writes` into tables directly, bypassing the journal: fast and durable, but not
    /// atomic. Only for filling an empty store, followed by a [`commit`](Self::commit) that
    /// marks the load complete (see [`Image`](crate::image::Image) for how an interrupted load
    /// is recognised); or for writes that hold whether or not anything else is committed (one
    /// key alone, texts named by their hash, stamps of files whose bytes did not change). Such
    /// writes stay out of fjall's journal, which every open reads whole (up to 64 MB: fjall
    /// starts a new one only then), however long ago they were flushed.
    ///
    /// # Errors
    /// Any storage failure.
    fn load(&self, writes: Vec<Write>) -> Result<()>;

    /// Removes everything (used to discard an interrupted first load).
    ///
    /// # Errors
    /// Any storage failure.
    fn clear(&self) -> Result<()>;

    /// Makes the next open fast (fjall: flush the journal into tables).
    ///
    /// # Errors
    /// Any storage failure.
    fn settle(&self) -> Result<()>;
}

/// Calls `visit` with every key and value of `table` whose key starts with `prefix`, in key
/// order, stopping at its first error (a damaged record, say), which it returns.
///
/// # Errors
/// Storage failures, and `visit`'s first error.
pub(crate) fn try_visit(
    store: &dyn Store,
    table: Table,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    let mut failure = None;
    store.visit(table, prefix, &mut |k, v| match visit(k, v) {
        Ok(()) => true,
        Err(e) => {
            failure = Some(e);
            false
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// An image store in a fjall database.
pub struct FjallStore {
    db: SingleWriterTxDatabase,
    tables: Vec<(Table, SingleWriterTxKeyspace)>,
    /// The database directory, named in every error (a damaged image says which one).
    dir: std::path::PathBuf,
}

impl FjallStore {
    /// Opens (creating if needed) the database in `dir`.
    ///
    /// # Errors
    /// The database cannot be opened (another process holds it, damaged files, I/O).
    pub fn open(dir: &Path) -> Result<FjallStore> {
        if creation_was_interrupted(dir) {
            // fjall creates its files with `create_new`: a creation killed before its version
            // marker was written would fail every later open with "File exists". Nothing can
            // have been stored yet, so the partial database is made anew.
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        // One background worker: with two or more, fjall's first worker hands compaction work
        // back to the queue while the others are busy and takes it again at once, spinning a
        // core that a build's parsing needs (a fifth of a 30,000-module first build's CPU).
        let db = SingleWriterTxDatabase::builder(dir)
            .worker_threads(1)
            .open()
            .map_err(|e| {
                Error::store_doing(format!("opening the database {}", dir.display()), e)
            })?;
        let mut tables = Vec::with_capacity(Table::ALL.len());
        for table in Table::ALL {
            let keyspace = db
                .keyspace(table.name(), || {
                    // Index and filter blocks cut into partitions at every level (fjall
                    // does so from the fourth down): a first build leaves each table in up
                    // to fifteen overlapping runs, and texts are keyed by hash, so a point
                    // read looks into every run; whole blocks made one `show` in a 1 GB
                    // image read 10 MB of them (22 ms), partitions 0.4 MB (8 ms).
                    let options = KeyspaceCreateOptions::default()
                        .compaction_strategy(std::sync::Arc::new(
                            Leveled::default().with_l0_threshold(L0_THRESHOLD),
                        ))
                        .index_block_partitioning_policy(fjall::config::PartitioningPolicy::all(
                            true,
                        ))
                        .filter_block_partitioning_policy(fjall::config::PartitioningPolicy::all(
                            true,
                        ));
                    // A bloom filter answers "not here" without a read: order records are
                    // read only by ranges, which filters do not serve, so building them cost
                    // a first build a hash per definition for nothing. (Texts keep theirs:
                    // keyed by hash, every run of the table spans every key, and a read
                    // would look into each run that does not hold it.)
                    let options = if table == Table::Order {
                        options.filter_policy(fjall::config::FilterPolicy::disabled())
                    } else {
                        options
                    };
                    if table == Table::Blobs {
                        // Blobs are LZ4-compressed by us already: compressing again only costs.
                        options.data_block_compression_policy(
                            fjall::config::CompressionPolicy::all(CompressionType::None),
                        )
                    } else {
                        options
                    }
                })
                .map_err(|e| {
                    Error::store_doing(
                        format!("opening table `{}` of {}", table.name(), dir.display()),
                        e,
                    )
                })?;
            tables.push((table, keyspace));
        }
        Ok(FjallStore {
            db,
            tables,
            dir: dir.to_path_buf(),
        })
    }

    /// The error for `cause`, met while `doing` something with `table` (or the whole
    /// database).
    fn fail(&self, doing: &str, table: Option<Table>) -> impl Fn(fjall::Error) -> Error {
        let what = match table {
            Some(table) => format!("{doing} table `{}` of {}", table.name(), self.dir.display()),
            None => format!("{doing} {}", self.dir.display()),
        };
        move |e| Error::store_doing(what.clone(), e)
    }

    /// [`fail`](Self::fail) applied at once: for hot paths, where the words must be made only
    /// once an error is there.
    fn failed(&self, doing: &str, table: Option<Table>, e: fjall::Error) -> Error {
        self.fail(doing, table)(e)
    }

    fn keyspace(&self, table: Table) -> &SingleWriterTxKeyspace {
        // Every table is opened in `open`, in `Table::ALL` order.
        &self.tables[table.index()].1
    }

    /// Applies `writes` as one batch; with `persist`, made durable before it returns.
    fn apply(&self, mut writes: Vec<Write>, persist: Option<PersistMode>) -> Result<()> {
        let new_blobs = writes
            .iter()
            .filter(|w| matches!(w, Write::Put(Table::Blobs, ..)))
            .count();
        if new_blobs >= INGEST_MIN_BLOBS {
            // Texts are content-addressed: if the process dies after this and before the batch
            // below, they are texts nothing refers to yet, which harms nothing.
            let (blobs, rest): (Vec<Write>, Vec<Write>) = writes
                .into_iter()
                .partition(|w| matches!(w, Write::Put(Table::Blobs, ..)));
            writes = rest;
            self.ingest(Table::Blobs, blobs)?;
        }
        // Everything else in one batch: one journal entry, applied all or nothing (in key
        // order, which the memtable inserts faster).
        writes.sort_unstable_by(|a, b| a.target().cmp(&b.target()));
        let mut batch = self.db.inner().batch().durability(persist);
        for write in writes {
            match write {
                Write::Put(table, k, v) => batch.insert(self.keyspace(table).inner(), k, v),
                Write::Delete(table, k) => batch.remove(self.keyspace(table).inner(), k),
            }
        }
        batch.commit().map_err(self.fail("committing to", None))?;
        if let Some(mode) = persist {
            self.db
                .persist(mode)
                .map_err(self.fail("making durable", None))?;
        }
        Ok(())
    }
}

impl FjallStore {
    /// Hands each record of `guards` to `visit` until it returns `false`: what `visit` and
    /// `visit_range` share. The error's words are made only on an error, not once per record.
    fn visit_each(
        &self,
        table: Table,
        guards: impl Iterator<Item = fjall::Guard>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        for guard in guards {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| self.failed("reading", Some(table), e))?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }
}

impl FjallStore {
    /// Writes `writes`, all of `table`, into it as one table file (fjall's ingestion, which
    /// takes keys in order).
    fn ingest(&self, table: Table, writes: Vec<Write>) -> Result<()> {
        let keyspace = self.keyspace(table).inner();
        let fail = self.fail("loading", Some(table));
        let mut ingestion = keyspace.start_ingestion().map_err(&fail)?;
        for write in sorted_by_key(writes) {
            match write {
                Write::Put(_, key, value) => ingestion.write(key, value),
                Write::Delete(_, key) => ingestion.write_tombstone(key),
            }
            .map_err(&fail)?;
        }
        ingestion.finish().map_err(&fail)
    }
}

/// `writes` (of one table) in key order, the last of several writes of one key alone (as a
/// batch applies them; fjall's ingestion takes each key once). Each is sorted by its key's
/// first 16 bytes as one integer, and by the whole key only where those are equal: a first
/// build's load sorted some 500,000 records by comparing their keys in memory, a sixth of its
/// main thread.
fn sorted_by_key(writes: Vec<Write>) -> impl Iterator<Item = Write> {
    // Sorts small (prefix, index) pairs and moves each write once, at the end: sorting the
    // writes themselves moved each several times.
    let mut keyed: Vec<(u128, u32)> = writes
        .iter()
        .enumerate()
        .map(|(i, write)| (key_prefix(write.target().1), i as u32))
        .collect();
    let key = |i: u32| writes[i as usize].target().1;
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| key(a.1).cmp(key(b.1)))
            .then(a.1.cmp(&b.1))
    });
    let mut last = vec![true; keyed.len()];
    for (at, pair) in keyed.windows(2).enumerate() {
        last[at] = pair[0].0 != pair[1].0 || key(pair[0].1) != key(pair[1].1);
    }
    let mut writes: Vec<Option<Write>> = writes.into_iter().map(Some).collect();
    keyed
        .into_iter()
        .zip(last)
        .filter(|(_, last)| *last)
        .filter_map(move |((_, i), _)| writes.get_mut(i as usize).and_then(Option::take))
}

/// The first 16 bytes of `key`, big-endian, zeros after a shorter key: ordered as the keys
/// are, but for keys equal in those bytes (a shorter key among them too).
fn key_prefix(key: &[u8]) -> u128 {
    let mut head = [0u8; 16];
    let n = key.len().min(16);
    head[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(head)
}

/// Whether `dir` holds a database whose creation was killed before it could hold anything:
/// no version marker (fjall writes it last, once every file of an empty database exists), no
/// table file, and no journal that anything was written to. Anything else is left to fjall
/// (and, if damaged, to the user: `build --fresh`), never removed.
fn creation_was_interrupted(dir: &Path) -> bool {
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    if std::fs::metadata(dir.join("version")).is_ok_and(|m| m.len() > 0) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in entries {
        let Ok(entry) = entry else {
            return false;
        };
        let name = entry.file_name();
        let fresh = match name.to_str() {
            Some("lock" | "version") => true,
            Some(n) if n.ends_with(".jnl") => journal_is_blank(&entry.path()),
            // An empty keyspaces folder (fjall makes it before the marker).
            Some("keyspaces") => {
                std::fs::read_dir(entry.path()).is_ok_and(|mut d| d.next().is_none())
            }
            _ => false,
        };
        if !fresh {
            return false;
        }
    }
    true
}

/// Whether a journal file holds no entry: fjall makes a journal 64 MiB long at once (a hole,
/// zeros) and writes entries from its start, each beginning with a non-zero tag, so one that
/// anything was written to has a non-zero byte in its first 4 KiB. (Its length says nothing:
/// a creation killed after the journal was made left one of 64 MiB, which a test of its length
/// took for a used one, and fjall's next creation then failed with "File exists".)
fn journal_is_blank(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_end(&mut head))
        .is_ok_and(|_| head.iter().all(|&b| b == 0))
}

impl Store for FjallStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        // The error's words are made only on an error: a point read is hot.
        Ok(self
            .keyspace(table)
            .get(key)
            .map_err(|e| self.failed("reading", Some(table), e))?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.visit(table, prefix, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    fn visit(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let snapshot = self.db.read_tx();
        self.visit_each(table, snapshot.prefix(self.keyspace(table), prefix), visit)
    }

    fn visit_range(
        &self,
        table: Table,
        start: &[u8],
        end: &[u8],
        backwards: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let snapshot = self.db.read_tx();
        let range = snapshot.range(self.keyspace(table), start..end);
        if backwards {
            self.visit_each(table, range.rev(), visit)
        } else {
            self.visit_each(table, range, visit)
        }
    }

    fn approximate_len(&self, table: Table) -> usize {
        self.keyspace(table).inner().approximate_len()
    }

    fn commit(&self, writes: Vec<Write>) -> Result<()> {
        self.apply(writes, Some(PersistMode::SyncAll))
    }

    fn commit_buffered(&self, writes: Vec<Write>) -> Result<()> {
        self.apply(writes, None)
    }

    fn load(&self, writes: Vec<Write>) -> Result<()> {
        // Each table is sorted and written on its own, the tables side by side: a first
        // build's last load (its definitions, order, paths and modules) otherwise ran on one
        // core while the other waited.
        // Each table's writes in a vector of its final size: grown from nothing, they were
        // moved a dozen times each.
        let mut counts = [0usize; Table::ALL.len()];
        for write in &writes {
            counts[write.target().0.index()] += 1;
        }
        let mut tables: Vec<Vec<Write>> = counts.iter().map(|&n| Vec::with_capacity(n)).collect();
        for write in writes {
            tables[write.target().0.index()].push(write);
        }
        let tables: Vec<(Table, Vec<Write>)> = Table::ALL
            .into_iter()
            .zip(tables)
            .filter(|(_, writes)| !writes.is_empty())
            .collect();
        if tables.len() == 1 {
            return tables
                .into_iter()
                .try_for_each(|(table, writes)| self.ingest(table, writes));
        }
        use rayon::prelude::*;
        tables
            .into_par_iter()
            .try_for_each(|(table, writes)| self.ingest(table, writes))
    }

    fn clear(&self) -> Result<()> {
        for table in Table::ALL {
            let mut keys = Vec::new();
            self.visit(table, b"", &mut |k, _| {
                keys.push(Write::delete(table, k));
                true
            })?;
            self.commit(keys)?;
        }
        Ok(())
    }

    fn settle(&self) -> Result<()> {
        for (table, keyspace) in &self.tables {
            keyspace
                .inner()
                .rotate_memtable_and_wait()
                .map_err(self.fail("flushing", Some(*table)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A creation killed after fjall made its lock, its keyspaces folder and its first journal
    /// (64 MiB at once, all zeros) but before its version marker: the next open makes the
    /// database anew instead of failing with "File exists" (fjall's creation makes `0.jnl`
    /// with `create_new`). The flake of long crash runs, a killed `watch` or `build` that was
    /// making its image.
    #[test]
    fn a_creation_killed_after_the_journal_was_made_opens_anew() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir_all(db.join("keyspaces")).unwrap();
        std::fs::write(db.join("lock"), b"").unwrap();
        let journal = std::fs::File::create(db.join("0.jnl")).unwrap();
        journal.set_len(64 << 20).unwrap();
        drop(journal);
        assert!(creation_was_interrupted(&db));
        let store = FjallStore::open(&db).unwrap();
        store
            .commit(vec![Write::put(Table::Meta, b"k", b"v")])
            .unwrap();
        assert_eq!(store.get(Table::Meta, b"k").unwrap(), Some(b"v".to_vec()));
    }

    /// A load given one key twice keeps the later write, as a batch would (fjall's ingestion
    /// takes each key once, and panics on a repeat): a first fill appends its records in
    /// the order they come, a text staged twice among them.
    #[test]
    fn a_load_keeps_the_last_write_of_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(&dir.path().join("db")).unwrap();
        let mut writes = Vec::new();
        for i in 0..50u8 {
            writes.push(Write::put(Table::Blobs, [i % 7; 32], vec![i]));
        }
        writes.push(Write::put(Table::Order, b"a", b"1"));
        writes.push(Write::delete(Table::Order, b"b"));
        writes.push(Write::put(Table::Order, b"b", b"2"));
        store.load(writes).unwrap();
        for k in 0..7u8 {
            let last = (0..50u8).filter(|i| i % 7 == k).max().unwrap();
            assert_eq!(store.get(Table::Blobs, &[k; 32]).unwrap(), Some(vec![last]));
        }
        assert_eq!(store.get(Table::Order, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(Table::Order, b"b").unwrap(), Some(b"2".to_vec()));
    }

    /// A journal that anything was written to is never taken for a blank one: such a database
    /// is left to fjall, never removed.
    #[test]
    fn a_journal_with_an_entry_is_not_blank() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        drop(FjallStore::open(&db).unwrap());
        std::fs::remove_file(db.join("version")).unwrap();
        let journal = db.join("0.jnl");
        let mut bytes = vec![0u8; 8192];
        bytes[0] = 1;
        std::fs::write(&journal, &bytes).unwrap();
        assert!(!journal_is_blank(&journal));
        std::fs::write(&journal, vec![0u8; 8192]).unwrap();
        assert!(journal_is_blank(&journal));
    }

    #[test]
    fn tables_are_listed_in_declaration_order() {
        for (i, table) in Table::ALL.into_iter().enumerate() {
            assert_eq!(table.index(), i, "{table:?}");
        }
    }

    proptest::proptest! {
        /// Sorting by the keys' first 16 bytes, then by the whole key where those tie, gives
        /// the keys' own order: with keys shorter than 16 bytes, keys ending in zeros, keys
        /// that share long prefixes.
        #[test]
        fn writes_are_sorted_in_key_order(
            keys in proptest::collection::hash_set(
                proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(0u8), proptest::strategy::Just(1u8), proptest::strategy::Just(255u8), proptest::num::u8::ANY], 0..24),
                0..64,
            ),
            shared in proptest::collection::vec(proptest::num::u8::ANY, 0..20),
        ) {
            let keys: Vec<Vec<u8>> = keys
                .into_iter()
                .enumerate()
                .map(|(i, k)| if i % 2 == 0 { [shared.clone(), k].concat() } else { k })
                .collect::<std::collections::HashSet<_>>()
                .into_iter()
                .collect();
            let writes = keys
                .iter()
                .map(|k| Write::put(Table::Order, k.clone(), Vec::new()))
                .collect();
            let sorted: Vec<Vec<u8>> = sorted_by_key(writes)
                .map(|w| w.target().1.to_vec())
                .collect();
            let mut expected = keys;
            expected.sort();
            proptest::prop_assert_eq!(sorted, expected);
        }
    }
}
