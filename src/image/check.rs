//! Verifying an image: every text against its hash, every reference against its target, and a
//! digest of the content that two images built from one tree share.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::Image;
use super::blob::{Hash, decompress};
use super::record::{DefinitionRecord, HistoryRecord, Layout, ModuleRecord};
use crate::error::Result;
use crate::store::Table;

/// What `check` found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Modules checked.
    pub modules: usize,
    /// Definitions checked.
    pub definitions: usize,
    /// Texts (blobs) checked.
    pub blobs: usize,
    /// Each problem, naming what is damaged.
    pub problems: Vec<String>,
    /// The content digest (hex).
    pub digest: String,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Image {
    /// Verifies the whole image and computes its digest. Damage is reported, not returned as an
    /// error, so that one bad text does not hide the rest.
    ///
    /// # Errors
    /// Only failures to read the store at all.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let texts = Texts::read(self, &mut report)?;
        let definitions = check_definitions(self, &mut report)?;
        let modules = match self.modules() {
            Ok(modules) => modules,
            Err(e) => {
                report.problems.push(e.to_string());
                Vec::new()
            }
        };
        report.modules = modules.len();
        let referenced = check_modules(self, &modules, &definitions, &texts, &mut report);
        for key in definitions.keys() {
            if !referenced.contains(key) {
                report.problems.push(format!(
                    "definition `{}` belongs to no module",
                    String::from_utf8_lossy(key).replace('\0', "::")
                ));
            }
        }
        // History and paths point at texts and modules that exist.
        check_history(self, &texts, &mut report)?;
        let module_names: HashSet<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
        check_paths(self, &module_names, &mut report);
        report.problems.sort();
        Ok(report)
    }

    /// The content digest alone: module names, paths, kinds, and definition names and texts (by
    /// hash), in name order. Equal for images built from the same tree.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn digest(&self) -> Result<Hash> {
        let mut digest = blake3::Hasher::new();
        for (name, module) in self.modules()? {
            digest_field(&mut digest, name.as_bytes());
            digest_field(&mut digest, module.path.as_bytes());
            digest_field(&mut digest, format!("{:?}", module.kind).as_bytes());
            let layout = self.layout(&name)?;
            digest_field(&mut digest, &layout.hash().0);
            for def in &layout.names {
                digest_field(&mut digest, def.as_bytes());
                let record = self.definition(&name, def)?.ok_or_else(|| {
                    crate::Error::corrupt(format!("`{name}::{def}` has no record"))
                })?;
                digest_field(&mut digest, &record.hash.0);
            }
        }
        Ok(Hash(*digest.finalize().as_bytes()))
    }
}

/// The texts of the image: every key, and those whose bytes do not decompress or do not match
/// it.
struct Texts {
    all: HashSet<[u8; 32]>,
    bad: HashSet<[u8; 32]>,
}

impl Texts {
    /// Reads every text, decompresses it and compares it with its key.
    fn read(image: &Image, report: &mut CheckReport) -> Result<Texts> {
        let mut texts = Texts {
            all: HashSet::default(),
            bad: HashSet::default(),
        };
        image.store().visit(Table::Blobs, b"", &mut |k, v| {
            report.blobs += 1;
            let Ok(key) = <[u8; 32]>::try_from(k) else {
                report
                    .problems
                    .push(format!("a text has a malformed key ({} bytes)", k.len()));
                return true;
            };
            texts.all.insert(key);
            if !matches!(decompress(v), Ok(text) if Hash::of(&text).0 == key) {
                texts.bad.insert(key);
            }
            true
        })?;
        Ok(texts)
    }

    fn ok(&self, hash: &Hash) -> bool {
        self.all.contains(&hash.0) && !self.bad.contains(&hash.0)
    }

    /// What is wrong with a text that is not [`ok`](Self::ok).
    fn describe(&self, hash: &Hash) -> String {
        if !self.all.contains(&hash.0) {
            format!("its text {} is missing", hash.short(12))
        } else {
            format!(
                "its text {} is damaged (does not decompress or match its hash)",
                hash.short(12)
            )
        }
    }
}

/// Every definition record that decodes, by key; the others are problems.
fn check_definitions(
    image: &Image,
    report: &mut CheckReport,
) -> Result<HashMap<Vec<u8>, DefinitionRecord>> {
    let mut definitions: HashMap<Vec<u8>, DefinitionRecord> = HashMap::default();
    image.store().visit(Table::Definitions, b"", &mut |k, v| {
        let name = String::from_utf8_lossy(k).replace('\0', "::");
        match DefinitionRecord::decode(v) {
            Ok(record) => {
                definitions.insert(k.to_vec(), record);
            }
            Err(_) => report
                .problems
                .push(format!("definition `{name}`: its record is damaged")),
        }
        true
    })?;
    report.definitions = definitions.len();
    Ok(definitions)
}

/// Each module's layout and definitions, into the digest; returns the definition keys the
/// modules list.
fn check_modules(
    image: &Image,
    modules: &[(String, ModuleRecord)],
    definitions: &HashMap<Vec<u8>, DefinitionRecord>,
    texts: &Texts,
    report: &mut CheckReport,
) -> HashSet<Vec<u8>> {
    let mut digest = blake3::Hasher::new();
    let mut referenced: HashSet<Vec<u8>> = HashSet::default();
    for (name, module) in modules {
        digest_field(&mut digest, name.as_bytes());
        digest_field(&mut digest, module.path.as_bytes());
        digest_field(&mut digest, format!("{:?}", module.kind).as_bytes());
        let layout = match image.layout(name) {
            Ok(layout) => layout,
            Err(e) => {
                report.problems.push(format!("module `{name}`: {e}"));
                Layout::default()
            }
        };
        digest_field(&mut digest, &layout.hash().0);
        for (i, def) in layout.names.iter().enumerate() {
            let key = super::record::definition_key(name, def);
            digest_field(&mut digest, def.as_bytes());
            match definitions.get(&key) {
                Some(record) => {
                    digest_field(&mut digest, &record.hash.0);
                    if layout.positions.get(i) != Some(&record.position) {
                        report.problems.push(format!(
                            "definition `{name}::{def}`: its order key is not its module's"
                        ));
                    }
                    if !texts.ok(&record.hash) {
                        report.problems.push(format!(
                            "definition `{name}::{def}`: {}",
                            texts.describe(&record.hash)
                        ));
                    }
                }
                None => report.problems.push(format!(
                    "module `{name}` lists `{def}`, which has no record"
                )),
            }
            referenced.insert(key);
        }
        // A module's chunk index describes its text as it stands.
        let record = |def: &str| {
            definitions
                .get(&super::record::definition_key(name, def))
                .copied()
        };
        match image.chunk_index_agrees_with(name, &layout, record) {
            Ok(Some(false)) => report.problems.push(format!(
                "module `{name}`: its chunk index is not its text's"
            )),
            Ok(_) => {}
            Err(e) => report.problems.push(format!("module `{name}`: {e}")),
        }
    }
    report.digest = digest.finalize().to_hex().to_string();
    referenced
}

/// Every history record decodes and points at a sound text.
fn check_history(image: &Image, texts: &Texts, report: &mut CheckReport) -> Result<()> {
    image.store().visit(Table::History, b"", &mut |k, v| {
        match HistoryRecord::decode(v) {
            Ok(record) => {
                if let Some(hash) = record.hash
                    && !texts.ok(&hash)
                {
                    let shown: String =
                        String::from_utf8_lossy(k.get(..k.len().saturating_sub(9)).unwrap_or(k))
                            .replace('\0', "::");
                    report
                        .problems
                        .push(format!("history of `{shown}`: {}", texts.describe(&hash)));
                }
            }
            Err(_) => report
                .problems
                .push("a history record is damaged".to_string()),
        }
        true
    })?;
    Ok(())
}

/// Every file stamp names a module the image holds.
fn check_paths(image: &Image, module_names: &HashSet<&str>, report: &mut CheckReport) {
    match image.paths() {
        Ok(paths) => {
            for (path, record) in paths {
                if !module_names.contains(record.module.as_str()) {
                    report.problems.push(format!(
                        "file `{path}` is recorded as module `{}`, which the image does not hold",
                        record.module
                    ));
                }
            }
        }
        Err(e) => report.problems.push(e.to_string()),
    }
}

fn digest_field(digest: &mut blake3::Hasher, bytes: &[u8]) {
    digest.update(&(bytes.len() as u64).to_le_bytes());
    digest.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{DB_DIR, IMAGE_DIR, compress};
    use crate::store::{FjallStore, Store, Write};

    const SHAPES: &str = "{\n  _meta = {name = 'Shapes}\n  square = func [:x x * x]\n  cube = func [:x x * x * x]\n}\n";
    const OTHER: &str = "{\n  _meta = {name = 'Other}\n  answer = 42\n}\n";

    /// An image holding Shapes and Other, and the hash of `Shapes::cube`'s text.
    fn image_with_two_modules(dir: &std::path::Path) -> Hash {
        std::fs::write(dir.join("shapes.spry"), SHAPES).unwrap();
        std::fs::write(dir.join("other.spry"), OTHER).unwrap();
        let mut image = Image::create(&dir.join(IMAGE_DIR), dir).unwrap();
        let options = crate::build::BuildOptions::default();
        let built = crate::build::build(&mut image, dir, &options, &crate::build::NoProgress);
        assert!(built.unwrap().is_clean());
        let report = image.check().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!((report.modules, report.definitions), (2, 5));
        image.definition("Shapes", "cube").unwrap().unwrap().hash
    }

    /// Overwrites the stored text with hash `hash` by going around the image.
    fn overwrite_blob(dir: &std::path::Path, hash: &Hash, stored: Vec<u8>) {
        let store = FjallStore::open(&dir.join(IMAGE_DIR).join(DB_DIR)).unwrap();
        assert!(store.get(Table::Blobs, &hash.0).unwrap().is_some());
        store
            .commit(vec![Write::put(Table::Blobs, hash.0.to_vec(), stored)])
            .unwrap();
    }

    fn assert_damage_found(dir: &std::path::Path, hash: &Hash, digest: &str) {
        let image = Image::open(&dir.join(IMAGE_DIR)).unwrap();
        let report = image.check().unwrap();
        assert!(!report.is_ok());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("`Shapes::cube`") && p.contains(&hash.short(12))),
            "{:?}",
            report.problems
        );
        // Only the damaged text is reported: its definition and its history.
        assert!(
            report.problems.iter().all(|p| p.contains("Shapes::cube")),
            "{:?}",
            report.problems
        );
        assert_eq!(report.digest, digest);
        assert!(matches!(
            image.definition_text("Shapes", "cube"),
            Err(crate::Error::Corrupt(_))
        ));
        assert!(image.module_text("Shapes").is_err());
        // Everything else still loads.
        assert_eq!(
            image.definition_text("Shapes", "square").unwrap(),
            b"square = func [:x x * x]"
        );
        assert_eq!(
            image.definition_text("Other", "answer").unwrap(),
            b"answer = 42"
        );
        assert_eq!(image.module_text("Other").unwrap(), OTHER.as_bytes());
    }

    fn clean_digest(dir: &std::path::Path) -> String {
        let image = Image::open(&dir.join(IMAGE_DIR)).unwrap();
        image.check().unwrap().digest
    }

    #[test]
    fn check_names_the_definition_of_a_text_that_does_not_match_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let hash = image_with_two_modules(dir.path());
        let digest = clean_digest(dir.path());
        // Decompresses fine, but to another text.
        overwrite_blob(dir.path(), &hash, compress(b"cube = func [:x x]").to_vec());
        assert_damage_found(dir.path(), &hash, &digest);
    }

    #[test]
    fn check_names_the_definition_of_a_text_that_does_not_decompress() {
        let dir = tempfile::tempdir().unwrap();
        let hash = image_with_two_modules(dir.path());
        let digest = clean_digest(dir.path());
        overwrite_blob(dir.path(), &hash, vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
        assert_damage_found(dir.path(), &hash, &digest);
    }

    #[test]
    fn check_names_the_definition_of_a_missing_text() {
        let dir = tempfile::tempdir().unwrap();
        let hash = image_with_two_modules(dir.path());
        {
            let store = FjallStore::open(&dir.path().join(IMAGE_DIR).join(DB_DIR)).unwrap();
            store
                .commit(vec![Write::delete(Table::Blobs, hash.0.to_vec())])
                .unwrap();
        }
        let image = Image::open(&dir.path().join(IMAGE_DIR)).unwrap();
        let report = image.check().unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("`Shapes::cube`") && p.contains("missing")),
            "{:?}",
            report.problems
        );
        assert_eq!(
            image.definition_text("Other", "answer").unwrap(),
            b"answer = 42"
        );
    }

    /// A module's chunk index that is not its text's cut is named (a wrong hash, a wrong
    /// length), and one that is passes; a chunk marked stale agrees by its place alone.
    #[test]
    fn check_names_a_chunk_index_that_is_not_its_modules_text() {
        use crate::image::{Origin, chunks};
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("{\n  _meta = {name = 'A}\n");
        for i in 0..200 {
            text.push_str(&format!("  d{i} = {i}\n"));
        }
        text.push_str("}\n");
        std::fs::write(dir.path().join("a.spry"), &text).unwrap();
        let mut image = Image::create(&dir.path().join(IMAGE_DIR), dir.path()).unwrap();
        let options = crate::build::BuildOptions::default();
        crate::build::build(&mut image, dir.path(), &options, &crate::build::NoProgress).unwrap();
        image.set_chunk_target(64);
        // A save of one definition writes the module's index.
        let text = text.replace("d7 = 7", "d7 = 'seven");
        let unit = image.saved_span("A", "a.spry", text.into_bytes()).unwrap();
        let mut tx = image.begin(Origin::File).unwrap();
        tx.put_saved(unit, "a.spry").unwrap();
        tx.commit().unwrap();
        assert!(image.check().unwrap().is_ok());
        let stored = image.store().get(Table::Chunks, b"A").unwrap().unwrap();
        let index = chunks::ChunkIndex::decode(&stored).unwrap();
        assert!(index.chunks.len() > 4, "{}", index.chunks.len());
        let with = |change: &dyn Fn(&mut chunks::ChunkIndex)| {
            let mut changed = index.clone();
            change(&mut changed);
            let write = Write::put(Table::Chunks, b"A".to_vec(), changed.encode());
            image.store().commit(vec![write]).unwrap();
            image.check().unwrap().problems
        };
        let named = ["module `A`: its chunk index is not its text's".to_string()];
        assert_eq!(with(&|i| i.chunks[2].hash = Hash::of(b"other")), named);
        assert_eq!(with(&|i| i.chunks[3].len += 1), named);
        assert!(with(&|i| i.chunks[2].hash = chunks::STALE).is_empty());
        assert!(with(&|_| {}).is_empty());
    }
}
