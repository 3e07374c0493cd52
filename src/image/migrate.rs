//! Opening an image of an older format: its records are rewritten in this build's format, in
//! one commit, before anything else reads them.
//!
//! Format 1 kept a module's order as a list of all its names in the module record and its own
//! text as one layout blob: adding or removing one definition rewrote both, at the cost of the
//! module. Format 2 keeps one `order` record per definition (see [`super::Layout`]), and each
//! definition record its order key.

use super::record::{
    CLOSING, DefinitionRecord, ModuleRecord, ORDER_STEP, V1ModuleRecord, decode_layout,
    definition_key, encode_order_entry, order_key,
};
use crate::error::{Error, Result};
use crate::store::{Store, Table, Write, try_visit};

/// Rewrites every module of a format 1 image in format 2, in one commit (all or nothing: an
/// interrupted migration is done again on the next open).
///
/// # Errors
/// Storage failures, damaged records.
pub(super) fn migrate(store: &dyn Store) -> Result<()> {
    let mut modules = Vec::new();
    try_visit(store, Table::Modules, b"", |k, v| {
        let name = String::from_utf8_lossy(k).into_owned();
        let record = serde_json::from_slice::<V1ModuleRecord>(v)
            .map_err(|e| Error::corrupt_by(format!("module record `{name}`"), e))?;
        modules.push((name, record));
        Ok(())
    })?;
    let mut writes = Vec::new();
    for (name, old) in modules {
        let (Some(names), Some(layout)) = (old.definitions, old.layout) else {
            continue;
        };
        let hash = super::Hash::from_hex(&layout)
            .ok_or_else(|| Error::corrupt(format!("module `{name}`: bad layout hash")))?;
        let stored = store
            .get(Table::Blobs, &hash.0)?
            .ok_or_else(|| Error::corrupt(format!("module `{name}`: its layout is missing")))?;
        let gaps = decode_layout(&super::blob::decompress(&stored)?)?;
        if gaps.len() != names.len() + 1 {
            return Err(Error::corrupt(format!(
                "module `{name}`: its layout does not fit its definitions"
            )));
        }
        for (i, (def, gap)) in names.iter().zip(&gaps).enumerate() {
            let position = (i as u64 + 1) * ORDER_STEP;
            writes.push(Write::put(
                Table::Order,
                order_key(&name, position),
                encode_order_entry(def, gap),
            ));
            let key = definition_key(&name, def);
            let bytes = store
                .get(Table::Definitions, &key)?
                .ok_or_else(|| Error::corrupt(format!("`{name}::{def}` has no record")))?;
            let record = DefinitionRecord {
                position,
                ..DefinitionRecord::decode(&bytes)?
            };
            writes.push(Write::put(Table::Definitions, key, record.encode()));
        }
        let closing = gaps.last().map_or(&[][..], Vec::as_slice);
        writes.push(Write::put(
            Table::Order,
            order_key(&name, CLOSING),
            encode_order_entry("", closing),
        ));
        let record = ModuleRecord {
            path: old.path,
            kind: old.kind,
            generation: old.generation,
            layout_generation: old.layout_generation,
        };
        let bytes = serde_json::to_vec(&record).map_err(Error::store)?;
        writes.push(Write::put(Table::Modules, name.into_bytes(), bytes));
    }
    if writes.is_empty() {
        return Ok(());
    }
    store.commit(writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::record::FORMAT_VERSION;
    use crate::image::{Image, Origin, PreparedUnit, compress, encode_layout};
    use crate::syntax::SourceUnit;

    const SHAPES: &str = "{\n  _meta = {name = 'Shapes}\n  # Area.\n  area = func [:r r * r * 3]\n  name = \"shapes ] #\" # trailing\n}\n";

    /// Rewrites a format 2 image as format 1 wrote it: the names and a layout blob in each
    /// module record, definition records without order keys, no `order` table, the format
    /// files saying 1. Made by hand at test time, so that no old image need be kept.
    fn downgrade(image: &Image) {
        let store = image.store();
        let mut writes = Vec::new();
        for (name, record) in image.modules().unwrap() {
            let layout = image.layout(&name).unwrap();
            let refs: Vec<&[u8]> = layout.gaps.iter().map(Vec::as_slice).collect();
            let blob = encode_layout(&refs);
            let hash = crate::image::Hash::of(&blob);
            writes.push(Write::put(Table::Blobs, hash.0.to_vec(), compress(&blob)));
            let v1 = serde_json::json!({
                "path": record.path, "kind": record.kind, "definitions": layout.names,
                "layout": hash.to_hex(), "generation": record.generation,
                "layout_generation": record.layout_generation,
            });
            writes.push(Write::put(
                Table::Modules,
                name.as_bytes().to_vec(),
                serde_json::to_vec(&v1).unwrap(),
            ));
            for (def, position) in layout.names.iter().zip(&layout.positions) {
                let key = definition_key(&name, def);
                let mut bytes = image
                    .store()
                    .get(Table::Definitions, &key)
                    .unwrap()
                    .unwrap();
                bytes.truncate(83);
                bytes[0] = 2;
                writes.push(Write::put(Table::Definitions, key, bytes));
                writes.push(Write::delete(Table::Order, order_key(&name, *position)));
            }
            writes.push(Write::delete(Table::Order, order_key(&name, CLOSING)));
        }
        store.commit(writes).unwrap();
        let mut record = image.record().clone();
        record.format_version = 1;
        let bytes = serde_json::to_vec(&record).unwrap();
        store
            .commit(vec![Write::put(Table::Meta, b"image".to_vec(), bytes)])
            .unwrap();
        std::fs::write(image.dir().join("FORMAT"), "spry-image format 1\n").unwrap();
    }

    #[test]
    fn a_format_1_image_is_migrated_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".spry-image");
        let image = Image::create(&path, dir.path()).unwrap();
        let unit = SourceUnit::parse(SHAPES.as_bytes().to_vec(), "Shapes").unwrap();
        let mut tx = image.begin(Origin::File).unwrap();
        tx.put_unit(PreparedUnit::new(&unit), "shapes.spry")
            .unwrap();
        tx.create_module("Empty", "empty.spry").unwrap();
        tx.commit().unwrap();
        let digest = image.digest().unwrap();
        downgrade(&image);
        assert!(image.store().scan(Table::Order, b"").unwrap().is_empty());
        drop(image);

        let image = Image::open(&path).unwrap();
        assert_eq!(image.record().format_version, FORMAT_VERSION);
        assert_eq!(
            std::fs::read_to_string(path.join("FORMAT")).unwrap(),
            format!("spry-image format {FORMAT_VERSION}\n")
        );
        assert_eq!(image.module_text("Shapes").unwrap(), SHAPES.as_bytes());
        assert_eq!(
            image.digest().unwrap(),
            digest,
            "the digest survives the migration"
        );
        let report = image.check().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        // Edits after the migration write one definition's records.
        let mut tx = image.begin(Origin::Live).unwrap();
        tx.put_definition("Shapes", "side", b"side = 4").unwrap();
        tx.remove_definition("Shapes", "area").unwrap();
        tx.commit().unwrap();
        assert_eq!(
            image.module_text("Shapes").unwrap(),
            b"{\n  _meta = {name = 'Shapes}\n  name = \"shapes ] #\" # trailing\n  side = 4\n}\n"
        );
        assert!(image.check().unwrap().is_ok());
        drop(image);
        // Opened again, nothing is migrated twice.
        let image = Image::open(&path).unwrap();
        assert_eq!(
            image.layout("Shapes").unwrap().names,
            ["_meta", "name", "side"]
        );
    }
}
