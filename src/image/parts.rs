//! A run of modules read whole, for an export that writes each of them: their records, layouts
//! and definition records by one range read of each table over the run, instead of a point
//! read and two prefix scans per module.
//!
//! The `modules`, `order` and `definitions` tables are all keyed by module name first (then
//! NUL), and module names hold no NUL, so the modules from `first` to `last` in name order are
//! the keys from `first` to `last` in the first table and from `first\0` to `last\1` in the
//! two others. A prefix scan costs a seek in every run of every level of its table (a first
//! build leaves up to 16 overlapping runs); a range read over 1,024 modules pays that once.

use rustc_hash::FxHashMap as HashMap;

use super::Image;
use super::record::{DefinitionRecord, Layout, ModuleRecord};
use crate::error::{Error, Result};
use crate::store::Table;

/// What writing one module whole needs: its record, its layout and its definitions' records.
#[derive(Clone, Debug)]
pub struct ModuleParts {
    /// The module's record.
    pub record: ModuleRecord,
    /// Its order and own text.
    pub layout: Layout,
    /// Its definition records, by name.
    pub index: HashMap<String, DefinitionRecord>,
}

/// One module's parts as read: `Ok(None)` when the image does not hold it (any more).
pub type PartsRead = Result<Option<ModuleParts>>;

impl Image {
    /// The parts of each module of `names`, in that order. When `names` rise strictly (a run
    /// of [`module_names`](Self::module_names), or any sorted selection), one range read of
    /// each table covers them all; otherwise, or when a range read fails as a whole, each
    /// module is read on its own, as [`module`](Self::module), [`layout`](Self::layout) and
    /// [`definition_index`](Self::definition_index) would. Either way a damaged record fails
    /// only its own module.
    ///
    /// A range covers every module between the first name and the last, so a caller with a
    /// sparse selection should pass it in runs that are close in name order.
    pub fn module_parts(&self, names: &[String]) -> Vec<(String, PartsRead)> {
        let rising = names.windows(2).all(|w| w[0] < w[1]);
        if rising && let Ok(read) = self.parts_by_range(names) {
            return read;
        }
        names
            .iter()
            .map(|name| (name.clone(), self.parts_by_key(name)))
            .collect()
    }

    /// One module's parts, read by key and prefix.
    fn parts_by_key(&self, name: &str) -> PartsRead {
        let Some(record) = self.module(name)? else {
            return Ok(None);
        };
        Ok(Some(ModuleParts {
            record,
            layout: self.layout(name)?,
            index: self.definition_index(name)?,
        }))
    }

    /// The parts of `names` (rising) by one range read of each table.
    ///
    /// # Errors
    /// A failed range read, or a key that names no module (no NUL): the caller reads the
    /// modules one at a time instead, which fails only the module concerned.
    fn parts_by_range(&self, names: &[String]) -> Result<Vec<(String, PartsRead)>> {
        let (Some(first), Some(last)) = (names.first(), names.last()) else {
            return Ok(Vec::new());
        };
        let wanted: HashMap<&[u8], usize> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_bytes(), i))
            .collect();
        let mut records: Vec<Option<Vec<u8>>> = vec![None; names.len()];
        let mut end = last.as_bytes().to_vec();
        end.push(0);
        self.store.visit_range(
            Table::Modules,
            first.as_bytes(),
            &end,
            false,
            &mut |k, v| {
                if let Some(&i) = wanted.get(k) {
                    records[i] = Some(v.to_vec());
                }
                true
            },
        )?;

        let start = [first.as_bytes(), &[0]].concat();
        let end = [last.as_bytes(), &[1]].concat();
        let mut damaged_key = false;
        // Each module's order records as (order key's last 8 bytes, value), in key order.
        let mut orders: Vec<Vec<([u8; 8], Vec<u8>)>> = vec![Vec::new(); names.len()];
        self.store
            .visit_range(Table::Order, &start, &end, false, &mut |k, v| {
                let Some((module, rest)) = split_module(k) else {
                    damaged_key = true;
                    return false;
                };
                if let Some(&i) = wanted.get(module) {
                    // A key too short keeps zeros here and its module fails below, as
                    // `Layout::from_entries` fails it when read alone.
                    let mut position = [0; 8];
                    if let Some(tail) = rest.len().checked_sub(8).map(|at| &rest[at..]) {
                        position.copy_from_slice(tail);
                    } else {
                        damaged_key = true;
                        return false;
                    }
                    orders[i].push((position, v.to_vec()));
                }
                true
            })?;
        let mut indexes: Vec<Result<HashMap<String, DefinitionRecord>>> =
            (0..names.len()).map(|_| Ok(HashMap::default())).collect();
        self.store
            .visit_range(Table::Definitions, &start, &end, false, &mut |k, v| {
                let Some((module, def)) = split_module(k) else {
                    damaged_key = true;
                    return false;
                };
                if let Some(&i) = wanted.get(module)
                    && let Ok(index) = &mut indexes[i]
                {
                    match DefinitionRecord::decode(v) {
                        Ok(record) => {
                            index.insert(String::from_utf8_lossy(def).into_owned(), record);
                        }
                        Err(e) => indexes[i] = Err(e),
                    }
                }
                true
            })?;
        if damaged_key {
            return Err(Error::corrupt("a key names no module"));
        }

        let mut out = Vec::with_capacity(names.len());
        for (((name, record), order), index) in names.iter().zip(records).zip(orders).zip(indexes) {
            let parts = match record {
                None => Ok(None),
                Some(bytes) => serde_json::from_slice::<ModuleRecord>(&bytes)
                    .map_err(|e| Error::corrupt_by(format!("module record `{name}`"), e))
                    .and_then(|record| {
                        Ok(Some(ModuleParts {
                            record,
                            layout: Layout::from_entries(name, order)?,
                            index: index?,
                        }))
                    }),
            };
            out.push((name.clone(), parts));
        }
        Ok(out)
    }
}

/// A key's module name and what follows its NUL.
fn split_module(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = memchr::memchr(0, key)?;
    Some((&key[..at], &key[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Origin;

    /// A range read gives each module exactly what reading it alone gives, for every module
    /// of a run, including names that are prefixes of others (`A` and `AB`: `A\0` sorts
    /// before `AB\0`) and a name the image does not hold.
    #[test]
    fn a_range_read_agrees_with_reading_each_module_alone() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::create(&dir.path().join(".spry-image"), dir.path()).unwrap();
        let mut tx = image.begin(Origin::Live).unwrap();
        for (module, defs) in [("A", 3), ("AB", 2), ("A_", 1), ("B", 4)] {
            tx.create_module(module, &format!("{}.spry", module.to_lowercase()))
                .unwrap();
            for d in 0..defs {
                tx.put_definition(module, &format!("d{d}"), format!("d{d} = {d}").as_bytes())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        let mut names = image.module_names().unwrap();
        names.push("C".to_string());
        assert_eq!(names.len(), 5);
        let ranged = image.parts_by_range(&names).unwrap();
        assert_eq!(ranged.len(), names.len());
        for (name, parts) in ranged {
            let alone = image.parts_by_key(&name).unwrap();
            let parts = parts.unwrap();
            assert_eq!(parts.is_some(), name != "C", "{name}");
            let (Some(parts), Some(alone)) = (parts, alone) else {
                continue;
            };
            assert_eq!(parts.record, alone.record, "{name}");
            assert_eq!(parts.layout, alone.layout, "{name}");
            assert_eq!(parts.index, alone.index, "{name}");
            assert!(!parts.index.is_empty());
        }
        // Not rising: read one at a time, in the order asked.
        let backwards: Vec<String> = names.iter().rev().cloned().collect();
        let read = image.module_parts(&backwards);
        let order: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, ["C", "B", "A_", "AB", "A"]);
    }
}
