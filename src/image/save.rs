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

use super::record::{
    CLOSING, DefinitionRecord, ModuleKind, SyncRecord, decode_order_entry, order_position,
    order_prefix,
};
use super::{Hash, Image};
use crate::error::Result;
use crate::store::Table;
use crate::syntax::{SourceUnit, UnitKind};

/// A unit read again from its file whose new texts can be taken without a merge
/// ([`Image::saved_texts`]).
#[derive(Debug)]
pub struct SavedUnit {
    /// The unit as read (its text, its definitions).
    pub(super) unit: SourceUnit,
    /// The module kind it reads as.
    pub(super) kind: ModuleKind,
    /// The definitions whose texts the file changed, in file order.
    pub(super) changes: Vec<SavedText>,
}

/// One definition whose text the file changed.
#[derive(Debug)]
pub(super) struct SavedText {
    /// Its place in the file.
    pub(super) at: usize,
    /// The hash of the file's text.
    pub(super) hash: Hash,
    /// Its record as the image holds it.
    pub(super) record: DefinitionRecord,
}

impl SavedUnit {
    /// The module's name.
    pub fn name(&self) -> &str {
        self.unit.name()
    }

    /// How many definitions' texts the file changed.
    pub fn changed(&self) -> usize {
        self.changes.len()
    }

    /// Gives the unit back (for the whole merge).
    pub fn into_unit(self) -> SourceUnit {
        self.unit
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
        let agreed = self
            .module(unit.name())?
            .is_some_and(|m| m.path == path && m.kind == kind)
            && self.sync(unit.name())? == SyncRecord::default();
        if !agreed {
            return Ok(Err(unit));
        }
        let Some(positions) = self.same_order(&unit)? else {
            return Ok(Err(unit));
        };
        let Some(changes) = self.changed_texts(&unit, &positions)? else {
            return Ok(Err(unit));
        };
        Ok(Ok(SavedUnit {
            unit,
            kind,
            changes,
        }))
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
    ) -> Result<Option<Vec<SavedText>>> {
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
                    changes.push(SavedText { at, hash, record });
                }
                true
            })?;
        if !same || count != definitions.len() {
            return Ok(None);
        }
        changes.sort_by_key(|c| c.at);
        Ok(Some(changes))
    }
}
