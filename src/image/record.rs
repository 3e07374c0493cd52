//! The records the image keeps, and their encodings. ARCHITECTURE.md shows the schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::blob::Hash;
use crate::error::{Error, Result};

/// The version of the image's format this build writes and reads.
/// Format 2 keeps a module's order and layout as one record per definition (the `order`
/// table) instead of a list of names and a layout blob per module; format 1 images are
/// migrated when opened (`migrate.rs`). Format 3 stamps a file with its change time and inode
/// too (a [`PathRecord`] of version 2); format 2's stamps are read as they are (a file they
/// stamp is hashed again once), so opening a format 2 image rewrites nothing but the format
/// file, and an older build refuses a format 3 image instead of taking its stamps for damage.
/// Format 4 adds the `chunks` table (a module's chunk index, `chunks.rs`), which every change
/// of a module must update or remove: an older build would leave it stale, so it refuses a
/// format 4 image; a format 3 image has no index, which reads as such (nothing to rewrite).
/// Format 5 adds the clean-stamps file beside the store (`clean_stamps.rs`), which every
/// process that writes to the image must remove first: an older build, which would commit
/// without removing it, refuses a format 5 image. Its tables are format 4's (opening a format
/// 4 image rewrites only the format file and the image's record).
pub const FORMAT_VERSION: u32 = 5;

/// The image's own record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The format version the image was written in.
    pub format_version: u32,
    /// The source tree the image mirrors (absolute).
    pub source_root: String,
    /// The part of the tree the image holds: globs over paths relative to the root; empty means
    /// the whole tree.
    #[serde(default)]
    pub part: Vec<String>,
}

/// Whether a unit is a module or a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    /// One curly with a `_meta` name.
    Module,
    /// A file with no `_meta`.
    Script,
}

/// A module as the image holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    /// The file it lives in, relative to the source root, `/`-separated.
    pub path: String,
    /// Module or script.
    pub kind: ModuleKind,
    /// The generation that last changed this record (the module's order of definitions, its
    /// layout, its file). An edit of one definition's text changes only that definition's
    /// record, which has a generation of its own.
    pub generation: u64,
    /// The generation that last changed its layout (the text around its definitions).
    #[serde(default)]
    pub layout_generation: u64,
}

/// A module record as format 1 wrote it (read only to migrate it, `migrate.rs`). A record
/// without `layout` is of format 2 already (a migration committed, but the format file not
/// yet rewritten).
#[derive(Deserialize)]
pub(crate) struct V1ModuleRecord {
    pub(crate) path: String,
    pub(crate) kind: ModuleKind,
    #[serde(default)]
    pub(crate) definitions: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) layout: Option<String>,
    pub(crate) generation: u64,
    #[serde(default)]
    pub(crate) layout_generation: u64,
}

/// A module's order and own text, as its `order` records hold them: definition `i` is
/// `names[i]` at `positions[i]`, with `gaps[i]` before it; `gaps[n]` closes the module.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Definition names in file order.
    pub names: Vec<String>,
    /// The module's own text cut at its definitions: one more gap than names.
    pub gaps: Vec<Vec<u8>>,
    /// Each definition's order key (rising, with room between).
    pub positions: Vec<u64>,
}

impl Layout {
    /// The hash of the layout in [`encode_layout`]'s form: what format 1 stored as the
    /// module's layout blob, kept for the digest (equal for images of the same tree).
    pub fn hash(&self) -> Hash {
        let refs: Vec<&[u8]> = self.gaps.iter().map(Vec::as_slice).collect();
        Hash::of(&encode_layout(&refs))
    }

    /// Reads a module's `order` records (key, value), in key order.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when a record is damaged or the closing one is missing.
    pub fn from_entries<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        module: &str,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Layout> {
        let mut layout = Layout::default();
        let mut closed = false;
        for (key, value) in entries {
            let position = order_position(key.as_ref())?;
            let (name, gap) = decode_order_entry(value.as_ref())?;
            if closed {
                return Err(Error::corrupt(format!(
                    "module `{module}`: its layout goes on after its end"
                )));
            }
            layout.gaps.push(gap.to_vec());
            if position == CLOSING {
                closed = true;
            } else {
                layout.names.push(name.to_string());
                layout.positions.push(position);
            }
        }
        if !closed {
            return Err(Error::corrupt(format!(
                "module `{module}`: its layout has no end"
            )));
        }
        Ok(layout)
    }
}

/// The order key of a module's closing gap (the text after its last definition).
pub const CLOSING: u64 = u64::MAX;
/// The room left between the order keys of neighbouring definitions.
pub const ORDER_STEP: u64 = 1 << 32;

/// Key of an `order` record: module, NUL, order key (big-endian, so records sort by it).
pub fn order_key(module: &str, position: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(module.len() + 9);
    key.extend_from_slice(module.as_bytes());
    key.push(0);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// The prefix of a module's `order` records.
pub fn order_prefix(module: &str) -> Vec<u8> {
    let mut key = module.as_bytes().to_vec();
    key.push(0);
    key
}

/// The order key at the end of an `order` record's key.
///
/// # Errors
/// [`Error::Corrupt`] on a key too short.
pub fn order_position(key: &[u8]) -> Result<u64> {
    key.len()
        .checked_sub(8)
        .and_then(|at| <[u8; 8]>::try_from(&key[at..]).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::corrupt("an order key is damaged"))
}

/// An `order` record: the definition's name (empty for the closing gap) and the gap before it.
pub fn encode_order_entry(name: &str, gap: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + name.len() + gap.len());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(gap);
    out
}

/// Reads [`encode_order_entry`]'s form.
///
/// # Errors
/// [`Error::Corrupt`] on bytes of another shape.
pub fn decode_order_entry(bytes: &[u8]) -> Result<(&str, &[u8])> {
    let bad = || Error::corrupt("an order record is damaged");
    let len = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(|b| u32::from_le_bytes(b) as usize)
        .ok_or_else(bad)?;
    let name = bytes.get(4..4 + len).ok_or_else(bad)?;
    let name = std::str::from_utf8(name).map_err(|_| bad())?;
    Ok((name, &bytes[4 + len..]))
}

/// A definition as the image holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefinitionRecord {
    /// The hash of its current text.
    pub hash: Hash,
    /// The hash of the text last agreed with its file (`None`: never in a file yet).
    pub base: Option<Hash>,
    /// The text's length in bytes.
    pub size: u32,
    /// The stored (compressed) length in bytes.
    pub stored: u32,
    /// The generation that last changed it.
    pub generation: u64,
    /// Where its current text came from.
    pub origin: Origin,
    /// Its order key in the module (the key of its `order` record).
    pub position: u64,
}

const DEFINITION_RECORD_VERSION: u8 = 3;
const DEFINITION_RECORD_LEN: usize = 91;
/// Format 1's definition record: no order key.
const DEFINITION_RECORD_V2: (u8, usize) = (2, 83);

impl DefinitionRecord {
    /// The binary form: version, hash, base flag and hash, sizes, generation, origin.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DEFINITION_RECORD_LEN);
        out.push(DEFINITION_RECORD_VERSION);
        out.extend_from_slice(&self.hash.0);
        match self.base {
            Some(base) => {
                out.push(1);
                out.extend_from_slice(&base.0);
            }
            None => {
                out.push(0);
                out.extend_from_slice(&[0; 32]);
            }
        }
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.stored.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.push(self.origin.code());
        out.extend_from_slice(&self.position.to_le_bytes());
        out
    }

    /// Reads the binary form (format 1's too, with order key 0, for the migration).
    ///
    /// # Errors
    /// [`Error::Corrupt`] on a record of another shape.
    pub fn decode(bytes: &[u8]) -> Result<DefinitionRecord> {
        let bad = || Error::corrupt("a definition record is damaged");
        let current = (bytes.first().copied(), bytes.len())
            == (Some(DEFINITION_RECORD_VERSION), DEFINITION_RECORD_LEN);
        let old = (bytes.first().copied(), bytes.len())
            == (Some(DEFINITION_RECORD_V2.0), DEFINITION_RECORD_V2.1);
        if !current && !old {
            return Err(bad());
        }
        let hash = Hash::from_slice(&bytes[1..33]).ok_or_else(bad)?;
        let base = match bytes[33] {
            0 => None,
            1 => Some(Hash::from_slice(&bytes[34..66]).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
        };
        let size = u32_at(66).ok_or_else(bad)?;
        let stored = u32_at(70).ok_or_else(bad)?;
        let generation = bytes
            .get(74..82)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(bad)?;
        let origin = Origin::from_code(bytes[82]).ok_or_else(bad)?;
        let position = match bytes.get(83..91) {
            Some(b) => <[u8; 8]>::try_from(b)
                .map(u64::from_le_bytes)
                .map_err(|_| bad())?,
            None => 0,
        };
        Ok(DefinitionRecord {
            hash,
            base,
            size,
            stored,
            generation,
            origin,
            position,
        })
    }
}

/// How a module's text in the image and its file differ: the `sync` table holds one for every
/// module where they do not agree (none: the file holds exactly the image's text).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// The image's text changed since it last agreed with the file: export has work to do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unexported: bool,
    /// Definitions removed in the image while the file still has them: name → hex hash of the
    /// text the file had when they last agreed. A build that finds that very text in the file
    /// leaves the definition removed; another text there is a conflict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub removed: BTreeMap<String, String>,
    /// Definitions changed on both sides to different texts: name → hex hash of the file's
    /// text (`None`: the file removed it). Neither side is overwritten until resolved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conflicts: BTreeMap<String, Option<String>>,
    /// The module's file was deleted (or replaced by something else) while the image held
    /// changes the file never had: a modify/delete conflict. The module stays until
    /// resolved (`resolve MODULE --take file` removes it, `--take image` writes it back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub file_deleted: bool,
    /// Definitions whose text live edits replaced since the module last agreed with its file,
    /// when nothing else of it changed since (`edited_at`): export then writes only these into
    /// the file as it is, not the whole module.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub edited: std::collections::BTreeSet<String>,
    /// The module record's generation when the first of `edited` was made: a later change of
    /// the module's order or layout gives the record another, and `edited` no longer tells
    /// all that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
    /// The definitions live edits added, removed or gave new texts since the module last
    /// agreed with its file, in the order made, when nothing else of it changed since: export
    /// then makes those changes to the file as it is, not the whole module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reshaped: Vec<Reshape>,
}

/// One definition added to or removed from a module's text, or given a new text, as a change
/// of its file's bytes: the bytes `from` stand for, found in the file (at its end when
/// `at_end`, else exactly once), give way to those `to` stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reshape {
    /// The module record's generation after the edit (an addition or removal gives it a new
    /// one, a new text leaves it): any later change of the module's order or layout gives it
    /// another, and this no longer tells all that changed.
    pub generation: u64,
    /// The definition added or given a new text (export marks its text agreed), or removed.
    pub name: String,
    /// Whether `from` must be the file's last bytes.
    pub at_end: bool,
    /// What the file holds now, around the change.
    pub from: Vec<Span>,
    /// What the image holds there now.
    pub to: Vec<Span>,
}

/// A run of a module's text: a gap's bytes, or a definition's text by its hash (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Span {
    /// Bytes between definitions, as they stand.
    Gap(Vec<u8>),
    /// A definition's text.
    Text(String),
}

impl SyncRecord {
    /// Whether image and file agree (nothing to record).
    pub fn is_clean(&self) -> bool {
        !self.unexported
            && self.removed.is_empty()
            && self.conflicts.is_empty()
            && !self.file_deleted
    }

    /// Whether the only difference left is conflicts (which the file holds as its side):
    /// nothing for an export to write.
    pub fn only_conflicts(&self) -> bool {
        !self.unexported
            && self.removed.is_empty()
            && !self.conflicts.is_empty()
            && !self.file_deleted
    }

    /// The file side of a conflict over `name`: `Some(None)` when the file removed it.
    pub fn conflict(&self, name: &str) -> Option<Option<Hash>> {
        self.conflicts
            .get(name)
            .map(|h| h.as_deref().and_then(Hash::from_hex))
    }
}

/// What was last read from a file of the tree (for incremental builds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRecord {
    /// The unit the file holds.
    pub module: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch (0: not known, as in a stamp recorded
    /// before change times were; such a stamp matches no file and the file is hashed again).
    pub ctime_ns: i128,
    /// The inode number (0: not known).
    pub inode: u64,
    /// blake3 of the file's bytes.
    pub hash: Hash,
    /// When the stamp was taken, nanoseconds since the epoch (a file modified within the
    /// file system's time granularity of this moment is hashed again next time).
    pub stamped_ns: i128,
}

/// Version 2 added the change time and the inode; version 1 is still read (without them).
const PATH_RECORD_VERSION: u8 = 2;

impl PathRecord {
    /// The binary form (read for every file on every build, so it is kept cheap): version,
    /// size, mtime, stamp time, hash, change time, inode, then the module name.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 16 + 16 + 32 + 16 + 8 + self.module.len());
        out.push(PATH_RECORD_VERSION);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.stamped_ns.to_le_bytes());
        out.extend_from_slice(&self.hash.0);
        out.extend_from_slice(&self.ctime_ns.to_le_bytes());
        out.extend_from_slice(&self.inode.to_le_bytes());
        out.extend_from_slice(self.module.as_bytes());
        out
    }

    /// Reads the binary form.
    ///
    /// # Errors
    /// [`Error::Corrupt`] on a record of another shape.
    pub fn decode(bytes: &[u8]) -> Result<PathRecord> {
        const WHAT: &str = "a file stamp is damaged";
        let bad = || Error::corrupt(WHAT);
        let bad_by = |cause| Error::corrupt_by(WHAT, cause);
        // Where the module name starts: version 1 had no change time nor inode.
        let name_at = match bytes.first() {
            Some(1) => 73,
            Some(&PATH_RECORD_VERSION) => 97,
            _ => return Err(bad()),
        };
        if bytes.len() < name_at {
            return Err(bad());
        }
        let u64_at = |at: usize| <[u8; 8]>::try_from(&bytes[at..at + 8]).map(u64::from_le_bytes);
        let i128_at =
            |at: usize| <[u8; 16]>::try_from(&bytes[at..at + 16]).map(i128::from_le_bytes);
        let (ctime_ns, inode) = if name_at == 97 {
            (i128_at(73).map_err(bad_by)?, u64_at(89).map_err(bad_by)?)
        } else {
            (0, 0)
        };
        Ok(PathRecord {
            size: u64_at(1).map_err(bad_by)?,
            mtime_ns: i128_at(9).map_err(bad_by)?,
            ctime_ns,
            inode,
            stamped_ns: i128_at(25).map_err(bad_by)?,
            hash: Hash::from_slice(&bytes[41..73]).ok_or_else(bad)?,
            module: String::from_utf8(bytes[name_at..].to_vec())
                .map_err(|e| Error::corrupt_by(WHAT, e))?,
        })
    }
}

/// Where a change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Read from a file (build or watch).
    File,
    /// A live edit in the image.
    Live,
    /// A merge of both sides.
    Merge,
    /// A conflict settled by `resolve`.
    Resolve,
    /// An earlier version brought back.
    Restore,
    /// Written out to a file by export (the base moved).
    Export,
}

impl Origin {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Live => "live",
            Origin::Merge => "merge",
            Origin::Resolve => "resolve",
            Origin::Restore => "restore",
            Origin::Export => "export",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Origin::File => 0,
            Origin::Live => 1,
            Origin::Merge => 2,
            Origin::Resolve => 3,
            Origin::Restore => 4,
            Origin::Export => 5,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Origin> {
        Some(match code {
            0 => Origin::File,
            1 => Origin::Live,
            2 => Origin::Merge,
            3 => Origin::Resolve,
            4 => Origin::Restore,
            5 => Origin::Export,
            _ => return None,
        })
    }
}

/// How a module changed in one commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleChange {
    /// New in the image.
    Added,
    /// Its text changed.
    Changed,
    /// Gone from the image.
    Removed,
    /// Now in another file (its text may have changed too).
    Moved,
    /// Written to its file (the agreed text moved; its text did not change).
    Exported,
}

/// One module's part of a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleLog {
    /// The module.
    pub module: String,
    /// What happened to it.
    pub change: ModuleChange,
    /// Its file now (or last, when removed).
    pub path: String,
    /// Its file before a move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_path: Option<String>,
    /// Definitions added, changed or removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definitions: Vec<String>,
}

/// One commit of the change log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The commit's generation.
    pub generation: u64,
    /// Seconds since the epoch.
    pub time: u64,
    /// Where the changes came from.
    pub origin: Origin,
    /// What changed.
    pub modules: Vec<ModuleLog>,
}

/// One version of a definition (or of a module's own text, under the empty name) in history:
/// the history table keeps the versions that were superseded, the current one is the
/// definition's own record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRecord {
    /// Where it came from.
    pub origin: Origin,
    /// The text's hash; `None` when this version is the removal.
    pub hash: Option<Hash>,
}

impl HistoryRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.origin.code()];
        if let Some(hash) = self.hash {
            out.extend_from_slice(&hash.0);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<HistoryRecord> {
        let bad = || Error::corrupt("a history record is damaged");
        let origin = bytes
            .first()
            .and_then(|&c| Origin::from_code(c))
            .ok_or_else(bad)?;
        let hash = match bytes.len() {
            1 => None,
            33 => Some(Hash::from_slice(&bytes[1..]).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        Ok(HistoryRecord { origin, hash })
    }
}

/// A module's own text cut at its definitions: `gaps[0]`, definition 0, `gaps[1]`, …, `gaps[n]`.
pub fn encode_layout(gaps: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + gaps.iter().map(|g| 4 + g.len()).sum::<usize>());
    out.extend_from_slice(&(gaps.len() as u32).to_le_bytes());
    for gap in gaps {
        out.extend_from_slice(&(gap.len() as u32).to_le_bytes());
        out.extend_from_slice(gap);
    }
    out
}

/// Reads [`encode_layout`]'s form without copying: each gap a slice of `bytes` (what an edit
/// that looks at a few gaps of a large module wants).
///
/// # Errors
/// [`Error::Corrupt`] on bytes of another shape.
pub fn decode_layout_slices(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let bad = || Error::corrupt("a module layout is damaged");
    let read_u32 = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_le_bytes(b) as usize)
    };
    let count = read_u32(0).ok_or_else(bad)?;
    let mut at = 4;
    let mut gaps = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let len = read_u32(at).ok_or_else(bad)?;
        at += 4;
        gaps.push(bytes.get(at..at + len).ok_or_else(bad)?);
        at += len;
    }
    if at != bytes.len() {
        return Err(bad());
    }
    Ok(gaps)
}

/// Reads [`encode_layout`]'s form.
///
/// # Errors
/// [`Error::Corrupt`] on bytes of another shape.
pub fn decode_layout(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    Ok(decode_layout_slices(bytes)?
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect())
}

/// Key of a definition: module, NUL, name.
pub fn definition_key(module: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(module.len() + name.len() + 1);
    key.extend_from_slice(module.as_bytes());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

/// Key of a history entry: module, NUL, name, NUL, generation (big-endian, so keys sort by it).
pub fn history_key(module: &str, name: &str, generation: u64) -> Vec<u8> {
    let mut key = definition_key(module, name);
    key.push(0);
    key.extend_from_slice(&generation.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_records_round_trip() {
        let record = DefinitionRecord {
            hash: Hash::of(b"a"),
            base: Some(Hash::of(b"b")),
            size: 7,
            stored: 9,
            generation: 42,
            origin: Origin::Live,
            position: 7 << 32,
        };
        assert_eq!(
            DefinitionRecord::decode(&record.encode()).ok(),
            Some(record)
        );
        let fresh = DefinitionRecord {
            base: None,
            ..record
        };
        assert_eq!(DefinitionRecord::decode(&fresh.encode()).ok(), Some(fresh));
        assert!(DefinitionRecord::decode(&record.encode()[1..]).is_err());
    }

    #[test]
    fn path_records_round_trip() {
        let record = PathRecord {
            module: "Stack".to_string(),
            size: 1234,
            mtime_ns: -5,
            ctime_ns: 1_700_000_000_123_456_789,
            inode: 98_765,
            hash: Hash::of(b"x"),
            stamped_ns: 1_700_000_000_000_000_000,
        };
        assert_eq!(
            PathRecord::decode(&record.encode()).ok(),
            Some(record.clone())
        );
        assert!(PathRecord::decode(&record.encode()[..90]).is_err());
        // A stamp of version 1 (no change time, no inode) is read with neither.
        let mut v1 = record.encode();
        v1.drain(73..97);
        v1[0] = 1;
        assert_eq!(
            PathRecord::decode(&v1).ok(),
            Some(PathRecord {
                ctime_ns: 0,
                inode: 0,
                ..record.clone()
            })
        );
        assert!(PathRecord::decode(&v1[..40]).is_err());
    }

    #[test]
    fn layouts_round_trip_and_reject_damage() {
        let gaps: Vec<&[u8]> = vec![b"{\n  ", b"\n\n  ", b"", b"\n}\n"];
        let encoded = encode_layout(&gaps);
        let decoded = decode_layout(&encoded).ok();
        assert_eq!(
            decoded,
            Some(gaps.iter().map(|g| g.to_vec()).collect::<Vec<_>>())
        );
        assert!(decode_layout(&encoded[..encoded.len() - 1]).is_err());
    }
}
