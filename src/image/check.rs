//! Verifying an image: every text against its hash, every reference against its target, and a
//! digest of the content that two images built from one tree share.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::Image;
use super::blob::{Hash, decompress};
use super::record::{DefinitionRecord, HistoryRecord, decode_layout};
use crate::error::Result;
use crate::store::Table;

/// What `check` found.
#[derive(Clone, Debug, Default, Serialize)]
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
        let store = self.store();
        let mut report = CheckReport::default();
        // Blobs: decompress and compare with the key.
        let mut bad_blobs: HashSet<[u8; 32]> = HashSet::new();
        let mut blobs: HashSet<[u8; 32]> = HashSet::new();
        store.visit(Table::Blobs, b"", &mut |k, v| {
            report.blobs += 1;
            let Ok(key) = <[u8; 32]>::try_from(k) else {
                report
                    .problems
                    .push(format!("a text has a malformed key ({} bytes)", k.len()));
                return true;
            };
            blobs.insert(key);
            match decompress(v) {
                Ok(text) if Hash::of(&text).0 == key => {}
                Ok(_) => {
                    bad_blobs.insert(key);
                }
                Err(_) => {
                    bad_blobs.insert(key);
                }
            }
            true
        })?;
        let blob_ok = |hash: &Hash| blobs.contains(&hash.0) && !bad_blobs.contains(&hash.0);
        let describe = |hash: &Hash| {
            if !blobs.contains(&hash.0) {
                format!("its text {} is missing", hash.short(12))
            } else {
                format!(
                    "its text {} is damaged (does not decompress or match its hash)",
                    hash.short(12)
                )
            }
        };

        // Definitions, by key.
        let mut definitions: HashMap<Vec<u8>, DefinitionRecord> = HashMap::new();
        store.visit(Table::Definitions, b"", &mut |k, v| {
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

        let mut digest = blake3::Hasher::new();
        let mut referenced: HashSet<Vec<u8>> = HashSet::new();
        let modules = match self.modules() {
            Ok(modules) => modules,
            Err(e) => {
                report.problems.push(e.to_string());
                Vec::new()
            }
        };
        report.modules = modules.len();
        for (name, module) in &modules {
            digest_field(&mut digest, name.as_bytes());
            digest_field(&mut digest, module.path.as_bytes());
            digest_field(&mut digest, format!("{:?}", module.kind).as_bytes());
            match module.layout_hash() {
                Ok(layout) if blob_ok(&layout) => {
                    digest_field(&mut digest, &layout.0);
                    match self.text(&layout).and_then(|t| decode_layout(&t)) {
                        Ok(gaps) if gaps.len() == module.definitions.len() + 1 => {}
                        Ok(_) => report.problems.push(format!(
                            "module `{name}`: its layout does not fit its definitions"
                        )),
                        Err(e) => report.problems.push(format!("module `{name}`: {e}")),
                    }
                }
                Ok(layout) => report
                    .problems
                    .push(format!("module `{name}`: {}", describe(&layout))),
                Err(e) => report.problems.push(format!("module `{name}`: {e}")),
            }
            for def in &module.definitions {
                let key = super::record::definition_key(name, def);
                digest_field(&mut digest, def.as_bytes());
                match definitions.get(&key) {
                    Some(record) => {
                        digest_field(&mut digest, &record.hash.0);
                        if !blob_ok(&record.hash) {
                            report.problems.push(format!(
                                "definition `{name}::{def}`: {}",
                                describe(&record.hash)
                            ));
                        }
                    }
                    None => report.problems.push(format!(
                        "module `{name}` lists `{def}`, which has no record"
                    )),
                }
                referenced.insert(key);
            }
        }
        for key in definitions.keys() {
            if !referenced.contains(key) {
                report.problems.push(format!(
                    "definition `{}` belongs to no module",
                    String::from_utf8_lossy(key).replace('\0', "::")
                ));
            }
        }
        // History and paths point at texts and modules that exist.
        let module_names: HashSet<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
        store.visit(Table::History, b"", &mut |k, v| {
            match HistoryRecord::decode(v) {
                Ok(record) => {
                    if let Some(hash) = record.hash
                        && !blob_ok(&hash)
                    {
                        let shown: String = String::from_utf8_lossy(
                            k.get(..k.len().saturating_sub(9)).unwrap_or(k),
                        )
                        .replace('\0', "::");
                        report
                            .problems
                            .push(format!("history of `{shown}`: {}", describe(&hash)));
                    }
                }
                Err(_) => report
                    .problems
                    .push("a history record is damaged".to_string()),
            }
            true
        })?;
        match self.paths() {
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
        report.problems.sort();
        report.digest = digest.finalize().to_hex().to_string();
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
            digest_field(&mut digest, &module.layout_hash()?.0);
            for def in &module.definitions {
                digest_field(&mut digest, def.as_bytes());
                let record = self.definition(&name, def)?.ok_or_else(|| {
                    crate::Error::Corrupt(format!("`{name}::{def}` has no record"))
                })?;
                digest_field(&mut digest, &record.hash.0);
            }
        }
        Ok(Hash(*digest.finalize().as_bytes()))
    }
}

fn digest_field(digest: &mut blake3::Hasher, bytes: &[u8]) {
    digest.update(&(bytes.len() as u64).to_le_bytes());
    digest.update(bytes);
}
