//! Pruning history on request (`spry-image gc --keep N`): never implicitly.

use rustc_hash::FxHashSet as HashSet;

use super::Image;
use super::blob::Hash;
use super::record::{DefinitionRecord, HistoryRecord, SyncRecord};
use crate::error::{Error, Result};
use crate::store::{Table, Write, try_visit};

/// What a pruning removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Superseded versions dropped from history.
    pub versions: usize,
    /// Texts no longer referred to by anything, dropped from the store.
    pub texts: usize,
}

impl Image {
    /// Keeps the newest `keep` superseded versions of each definition (and of each module's
    /// own text) and drops older ones, then drops every text nothing refers to any more
    /// (current texts, agreed bases, kept history, layouts, the file sides of conflicts stay).
    /// One atomic commit.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn gc(&self, keep: usize) -> Result<GcReport> {
        let store = self.store();
        let mut report = GcReport::default();
        let mut writes = Vec::new();
        let mut referenced: HashSet<Hash> = HashSet::default();

        // History, grouped by definition (key minus its 8-byte generation), oldest first.
        let mut group: Vec<u8> = Vec::new();
        let mut entries: Vec<(Vec<u8>, HistoryRecord)> = Vec::new();
        let flush = |entries: &mut Vec<(Vec<u8>, HistoryRecord)>,
                     writes: &mut Vec<Write>,
                     referenced: &mut HashSet<Hash>,
                     report: &mut GcReport| {
            let drop = entries.len().saturating_sub(keep);
            for (i, (key, record)) in entries.drain(..).enumerate() {
                if i < drop {
                    writes.push(Write::delete(Table::History, key));
                    report.versions += 1;
                } else if let Some(hash) = record.hash {
                    referenced.insert(hash);
                }
            }
        };
        try_visit(store, Table::History, b"", |k, v| {
            let split = k
                .len()
                .checked_sub(8)
                .ok_or_else(|| Error::corrupt("a history key is damaged"))?;
            if k[..split] != group[..] {
                flush(&mut entries, &mut writes, &mut referenced, &mut report);
                group = k[..split].to_vec();
            }
            entries.push((k.to_vec(), HistoryRecord::decode(v)?));
            Ok(())
        })?;
        flush(&mut entries, &mut writes, &mut referenced, &mut report);

        try_visit(store, Table::Definitions, b"", |_, v| {
            let def = DefinitionRecord::decode(v)?;
            referenced.insert(def.hash);
            referenced.extend(def.base);
            Ok(())
        })?;
        for (_, v) in store.scan(Table::Sync, b"")? {
            let record: SyncRecord =
                serde_json::from_slice(&v).map_err(|e| Error::corrupt_by("sync record", e))?;
            for file in record.conflicts.values().flatten() {
                referenced.extend(Hash::from_hex(file));
            }
        }
        store.visit(Table::Blobs, b"", &mut |k, _| {
            if Hash::from_slice(k).is_none_or(|h| !referenced.contains(&h)) {
                writes.push(Write::delete(Table::Blobs, k.to_vec()));
                report.texts += 1;
            }
            true
        })?;
        if !writes.is_empty() {
            store.commit(writes)?;
        }
        Ok(report)
    }
}
