//! The image: Spry modules in a database, one record per definition, texts content-addressed
//! and LZ4-compressed, every change atomic and logged.
//!
//! [`Image`] is the narrow set of operations a Spry VM or IDE needs: open, read a definition by
//! key, list, iterate a module, change definitions in a [`Transaction`]. It stands on a
//! [`crate::store::Store`] (the storage trait), so the engine underneath can change without touching the sync code.

mod blob;
mod check;
mod chunks;
pub(crate) mod clean_stamps;
mod gc;
mod lock;
pub mod merge;
mod migrate;
mod parts;
mod record;
mod save;
mod transaction;

use rustc_hash::FxHashMap as HashMap;
use std::path::{Path, PathBuf};

pub use blob::{Hash, compress, decompress, stored_text_len};
pub use check::CheckReport;
pub use gc::GcReport;
pub use lock::{Owner, owner};
pub use parts::{ModuleParts, PartsRead};
pub use record::{
    DefinitionRecord, FORMAT_VERSION, HistoryRecord, ImageRecord, Layout, LogEntry, ModuleChange,
    ModuleKind, ModuleLog, ModuleRecord, Origin, PathRecord, Reshape, Span, SyncRecord,
    decode_layout, decode_layout_slices, definition_key, encode_layout, history_key,
};
pub use save::SavedUnit;
pub use transaction::{Conflict, Prepared, PreparedUnit, Take, Transaction, drop_slot};

use crate::error::{Error, IoContext, Result};
use crate::store::{Bytes, FjallStore, Store, Table, try_visit};
use clean_stamps::{CleanWriter, Invalidating};
use lock::Lock;

/// The name of the image directory at the root of a source tree.
pub const IMAGE_DIR: &str = ".spry-image";

/// The tree an image directory named [`IMAGE_DIR`] serves: the directory it sits in.
pub fn home_tree(dir: &Path) -> Option<PathBuf> {
    if dir.file_name()? != IMAGE_DIR {
        return None;
    }
    std::fs::canonicalize(dir)
        .ok()?
        .parent()
        .map(Path::to_path_buf)
}

/// An image named [`IMAGE_DIR`] serves the directory it sits in: making one in another tree
/// than `source_root` would make a later command write into the wrong tree.
fn refuse_foreign_home(dir: &Path, source_root: &Path) -> Result<()> {
    if dir.file_name().is_none_or(|name| name != IMAGE_DIR) {
        return Ok(());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tree = std::fs::canonicalize(source_root).with_path(source_root)?;
    if std::fs::canonicalize(parent).is_ok_and(|parent| parent == tree) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{} would serve the tree it sits in, not {}: an image named {IMAGE_DIR} belongs to its own directory; give the image another name to keep it outside the tree",
        dir.display(),
        source_root.display()
    )))
}
pub(crate) const FORMAT_FILE: &str = "FORMAT";
const DB_DIR: &str = "db";
const META_IMAGE: &[u8] = b"image";
const META_GENERATION: &[u8] = b"generation";

/// An open image, owned by this process until dropped.
///
/// # Examples
/// ```
/// use spry_image::image::{Image, Origin};
/// let dir = tempfile::tempdir()?;
/// let image = Image::create(&dir.path().join(".spry-image"), dir.path())?;
/// let mut tx = image.begin(Origin::Live)?;
/// tx.create_module("Greeting", "greeting.spry")?;
/// tx.put_definition("Greeting", "hello", b"hello = func [\"hi\"]")?;
/// tx.commit()?;
/// assert_eq!(image.definition_text("Greeting", "hello")?, b"hello = func [\"hi\"]");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Image {
    dir: PathBuf,
    record: ImageRecord,
    /// The tree the image serves: the directory it sits in (`DIR/.spry-image` serves `DIR`),
    /// or the recorded tree of an image kept elsewhere.
    root: PathBuf,
    /// The tree the image had recorded, when it now sits in another one (a copied, moved or
    /// re-cloned tree).
    relocated_from: Option<PathBuf>,
    store: Box<dyn Store>,
    /// Writes the clean-stamps file, which `store` removes before any write (`clean_stamps.rs`).
    clean_writer: CleanWriter,
    /// About how many bytes of texts the chunks of the module indexes it writes hold
    /// (`chunks.rs`).
    chunk_target: u64,
    _lock: Lock,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("dir", &self.dir)
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Opens the image in `dir`, creating it (for the tree at `source_root`) if there is none.
    ///
    /// # Errors
    /// Another process holds the image ([`Error::Locked`]), the image is of a newer format
    /// ([`Error::NewerFormat`]), or the directory cannot be made or read.
    pub fn create(dir: &Path, source_root: &Path) -> Result<Image> {
        refuse_foreign_home(dir, source_root)?;
        std::fs::create_dir_all(dir).with_path(dir)?;
        let format_path = dir.join(FORMAT_FILE);
        // An empty format file is a creation that was interrupted before it was written.
        if std::fs::metadata(&format_path).map_or(true, |m| m.len() == 0) {
            write_format_file(&format_path)?;
            // git (and tools that read .gitignore) leave the image out of the tree it mirrors.
            let ignore = dir.join(".gitignore");
            if !ignore.exists() {
                std::fs::write(
                    &ignore,
                    "# The spry-image image: a database, not source.\n*\n",
                )
                .with_path(&ignore)?;
            }
        }
        let mut image = Image::open(dir)?;
        if image.store.get(Table::Meta, META_IMAGE)?.is_none() {
            let root = std::fs::canonicalize(source_root).with_path(source_root)?;
            let record = ImageRecord {
                format_version: FORMAT_VERSION,
                source_root: root.to_string_lossy().into_owned(),
                part: Vec::new(),
            };
            image.write_record(&record)?;
            image.record = record;
            image.root = root;
        }
        Ok(image)
    }

    /// Opens an existing image.
    ///
    /// # Errors
    /// As [`create`](Self::create), and [`Error::NoImage`] when `dir` holds no image.
    pub fn open(dir: &Path) -> Result<Image> {
        let format_path = dir.join(FORMAT_FILE);
        let format = match std::fs::read_to_string(&format_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoImage(format!(
                    "{} is not an image; make one with `spry-image build`",
                    dir.display()
                )));
            }
            Err(e) => return Err(Error::io(format_path, e)),
        };
        let found = format
            .trim()
            .strip_prefix("spry-image format ")
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| {
                Error::corrupt(format!("{} is not a format file", format_path.display()))
            })?;
        if found > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                path: dir.to_path_buf(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        let lock = Lock::acquire(dir)?;
        // Every write of this process removes the clean-stamps file first (`clean_stamps.rs`).
        let (store, clean_writer) =
            Invalidating::new(Box::new(FjallStore::open(&dir.join(DB_DIR))?), dir);
        let record = match store.get(Table::Meta, META_IMAGE)? {
            Some(bytes) => serde_json::from_slice::<ImageRecord>(&bytes)
                .map_err(|e| Error::corrupt_by("the image record", e))?,
            None => ImageRecord {
                format_version: FORMAT_VERSION,
                source_root: String::new(),
                part: Vec::new(),
            },
        };
        if record.format_version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                path: dir.to_path_buf(),
                found: record.format_version,
                supported: FORMAT_VERSION,
            });
        }
        discard_interrupted_first_load(&store)?;
        // Format 2 changed the records of modules; format 3 only added to file stamps, which
        // are read in either version, format 4 the chunk indexes, absent in older images, and
        // format 5 the clean-stamps file, absent too.
        if found < 2 {
            migrate::migrate(&store)?;
        }
        let mut image = Image {
            dir: dir.to_path_buf(),
            root: PathBuf::from(&record.source_root),
            record,
            relocated_from: None,
            store: Box::new(store),
            clean_writer,
            chunk_target: chunks::CHUNK_TARGET,
            _lock: lock,
        };
        if found < FORMAT_VERSION {
            if image.record.format_version < FORMAT_VERSION && !image.record.source_root.is_empty()
            {
                let mut record = image.record.clone();
                record.format_version = FORMAT_VERSION;
                image.write_record(&record)?;
                image.record = record;
            }
            write_format_file(&format_path)?;
        }
        image.settle_home()?;
        Ok(image)
    }

    /// An image in `DIR/.spry-image` serves `DIR`, wherever it was made: a tree copied,
    /// moved or cloned anew takes its image along, and the recorded path (the old tree, which
    /// may still exist) is never written to again. The new home is recorded, so the move is
    /// noticed once.
    fn settle_home(&mut self) -> Result<()> {
        let Some(home) = home_tree(&self.dir) else {
            return Ok(());
        };
        self.root = home.clone();
        if self.record.source_root.is_empty() {
            return Ok(());
        }
        let recorded = PathBuf::from(&self.record.source_root);
        let same = recorded == home
            || std::fs::canonicalize(&recorded).is_ok_and(|recorded| recorded == home);
        if !same {
            let mut record = self.record.clone();
            record.source_root = home.to_string_lossy().into_owned();
            self.write_record(&record)?;
            self.record = record;
            self.relocated_from = Some(recorded);
        }
        Ok(())
    }

    /// Finds the image for `start` as git finds `.git`: `start/.spry-image`, then upward.
    ///
    /// # Errors
    /// [`Error::NoImage`] when there is none up to the file system's root.
    pub fn find(start: &Path) -> Result<PathBuf> {
        let start = std::fs::canonicalize(start).with_path(start)?;
        for dir in start.ancestors() {
            let candidate = dir.join(IMAGE_DIR);
            if candidate.join(FORMAT_FILE).is_file() {
                return Ok(candidate);
            }
        }
        Err(Error::NoImage(format!(
            "no {IMAGE_DIR} in {} or any parent; run `spry-image build` first or give --image",
            start.display()
        )))
    }

    /// The image directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The image's own record.
    pub fn record(&self) -> &ImageRecord {
        &self.record
    }

    /// The source tree the image mirrors: the directory it sits in for an image named
    /// [`IMAGE_DIR`], else the tree recorded when it was made.
    pub fn source_root(&self) -> PathBuf {
        self.root.clone()
    }

    /// The tree this image had recorded before it was found in another one (its tree was
    /// copied, moved or cloned anew), the first time it is opened there. The image now serves
    /// the tree it sits in ([`source_root`](Self::source_root)).
    pub fn relocated_from(&self) -> Option<&Path> {
        self.relocated_from.as_deref()
    }

    /// Whether the image sits in the tree it serves (`DIR/.spry-image` for `DIR`), rather
    /// than being kept elsewhere with `--image`.
    pub fn is_in_tree(&self) -> bool {
        home_tree(&self.dir).is_some()
    }

    /// Sets the part of the tree the image holds (globs; empty: all).
    ///
    /// # Errors
    /// Storage failures.
    pub fn set_part(&mut self, part: Vec<String>) -> Result<()> {
        let mut record = self.record.clone();
        record.part = part;
        self.write_record(&record)?;
        self.record = record;
        Ok(())
    }

    fn write_record(&self, record: &ImageRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(Error::store)?;
        self.store.commit(vec![crate::store::Write::put(
            Table::Meta,
            META_IMAGE.to_vec(),
            bytes,
        )])
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The generation of the last commit (0 for an empty image).
    ///
    /// # Errors
    /// Storage failures; [`Error::Corrupt`] when the stored value is not 8 bytes.
    pub fn generation(&self) -> Result<u64> {
        match self.store.get(Table::Meta, META_GENERATION)? {
            None => Ok(0),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    Error::corrupt(format!(
                        "the generation record is {} bytes, not 8",
                        bytes.len()
                    ))
                }),
        }
    }

    /// Every module, by name.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn modules(&self) -> Result<Vec<(String, ModuleRecord)>> {
        let mut out = Vec::new();
        try_visit(self.store(), Table::Modules, b"", |k, v| {
            let record = serde_json::from_slice::<ModuleRecord>(v).map_err(|e| {
                Error::corrupt_by(format!("module record `{}`", String::from_utf8_lossy(k)), e)
            })?;
            out.push((String::from_utf8_lossy(k).into_owned(), record));
            Ok(())
        })?;
        Ok(out)
    }

    /// Every module's name, in order, without reading the records: a walk over the whole image
    /// that holds only names (records are then read by key, a batch at a time).
    ///
    /// # Errors
    /// Storage failures.
    pub fn module_names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        try_visit(self.store(), Table::Modules, b"", |k, _| {
            out.push(String::from_utf8_lossy(k).into_owned());
            Ok(())
        })?;
        Ok(out)
    }

    /// One module's record, read by key.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn module(&self, name: &str) -> Result<Option<ModuleRecord>> {
        self.store
            .get(Table::Modules, name.as_bytes())?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::corrupt_by(format!("module record `{name}`"), e))
            })
            .transpose()
    }

    /// One definition's record, read by key.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn definition(&self, module: &str, name: &str) -> Result<Option<DefinitionRecord>> {
        self.store
            .get(Table::Definitions, &definition_key(module, name))?
            .map(|bytes| DefinitionRecord::decode(&bytes))
            .transpose()
    }

    /// A module's definitions in file order.
    ///
    /// # Errors
    /// [`Error::NoModule`], storage failures, damaged records.
    pub fn definitions(&self, module: &str) -> Result<Vec<(String, DefinitionRecord)>> {
        if self.module(module)?.is_none() {
            return Err(Error::NoModule(module.to_string()));
        }
        let layout = self.layout(module)?;
        let mut out = Vec::with_capacity(layout.names.len());
        for name in layout.names {
            let def = self
                .definition(module, &name)?
                .ok_or_else(|| Error::corrupt(format!("`{module}::{name}` has no record")))?;
            out.push((name, def));
        }
        Ok(out)
    }

    /// A module's order and own text: its `order` records, read in one scan.
    ///
    /// # Errors
    /// Storage failures, damaged records (a module the image does not hold has none: an
    /// error too).
    pub fn layout(&self, module: &str) -> Result<Layout> {
        Layout::from_entries(
            module,
            self.store
                .scan(Table::Order, &record::order_prefix(module))?,
        )
    }

    /// The `order` records of `module` nearest `position` (by order key): up to `before` below
    /// it, the one at it (if any) and up to `after` above it (the closing one included), in
    /// order: (order key, name, gap before). Two short range reads, whatever the module's size.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn order_around(
        &self,
        module: &str,
        position: u64,
        before: usize,
        after: usize,
    ) -> Result<Vec<(u64, String, Vec<u8>)>> {
        let found = self.order_records_around(module, position, before, after)?;
        pick_around(&found, position, before, after)
    }

    /// The stored `order` records [`order_around`](Self::order_around) picks from, by order
    /// key.
    pub(crate) fn order_records_around(
        &self,
        module: &str,
        position: u64,
        before: usize,
        after: usize,
    ) -> Result<std::collections::BTreeMap<u64, Vec<u8>>> {
        let prefix = record::order_prefix(module);
        let mut found = std::collections::BTreeMap::new();
        let at = record::order_key(module, position);
        let mut take = |k: &[u8], v: &[u8], left: &mut usize| {
            if let Ok(p) = record::order_position(k) {
                found.insert(p, v.to_vec());
            }
            *left = left.saturating_sub(1);
            *left > 0
        };
        let mut left = before;
        if left > 0 {
            self.store
                .visit_range(Table::Order, &prefix, &at, true, &mut |k, v| {
                    take(k, v, &mut left)
                })?;
        }
        let mut end = prefix.clone();
        end.extend_from_slice(&[0xff; 9]);
        // The record at `position` itself, and `after` above it.
        let mut left = after + 1;
        self.store
            .visit_range(Table::Order, &at, &end, false, &mut |k, v| {
                take(k, v, &mut left)
            })?;
        Ok(found)
    }

    /// The text with hash `hash`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when it is missing, does not decompress or does not match its hash.
    pub fn text(&self, hash: &Hash) -> Result<Vec<u8>> {
        let stored = self
            .store
            .get(Table::Blobs, &hash.0)?
            .ok_or_else(|| Error::corrupt(format!("text {} is missing", hash.short(12))))?;
        let text = lz4_flex::decompress_size_prepended(&stored).map_err(|e| {
            Error::corrupt_by(format!("text {} does not decompress", hash.short(12)), e)
        })?;
        if Hash::of(&text) != *hash {
            return Err(Error::corrupt(format!(
                "text {} does not match its hash",
                hash.short(12)
            )));
        }
        Ok(text)
    }

    /// The stored size of the text with hash `hash`, if present.
    ///
    /// # Errors
    /// Storage failures.
    pub fn stored_size(&self, hash: &Hash) -> Result<Option<usize>> {
        Ok(self.store.get(Table::Blobs, &hash.0)?.map(|b| b.len()))
    }

    /// One definition's exact text: two reads by key and one decompression, nothing else.
    ///
    /// # Errors
    /// [`Error::NoDefinition`], or a damaged image.
    pub fn definition_text(&self, module: &str, name: &str) -> Result<Vec<u8>> {
        let record = self
            .definition(module, name)?
            .ok_or_else(|| Error::NoDefinition {
                module: module.to_string(),
                name: name.to_string(),
            })?;
        self.text(&record.hash)
    }

    /// A module's whole text, as its file would hold it.
    ///
    /// # Errors
    /// [`Error::NoModule`], or a damaged image.
    pub fn module_text(&self, module: &str) -> Result<Vec<u8>> {
        if self.module(module)?.is_none() {
            return Err(Error::NoModule(module.to_string()));
        }
        let layout = self.layout(module)?;
        self.assemble(module, &layout)
    }

    /// How a module's image text and its file differ (the default, clean record when they
    /// agree).
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn sync(&self, module: &str) -> Result<SyncRecord> {
        match self.store.get(Table::Sync, module.as_bytes())? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt_by(format!("sync record `{module}`"), e)),
            None => Ok(SyncRecord::default()),
        }
    }

    /// Every module whose image text and file do not agree, by name: changed in the image
    /// and not yet exported, or in conflict. One scan of a table that is empty when all is
    /// exported.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn unsynced(&self) -> Result<Vec<(String, SyncRecord)>> {
        let mut out = Vec::new();
        for (key, value) in self.store.scan(Table::Sync, b"")? {
            let name = String::from_utf8_lossy(&key).into_owned();
            let record = serde_json::from_slice(&value)
                .map_err(|e| Error::corrupt_by(format!("sync record `{name}`"), e))?;
            out.push((name, record));
        }
        Ok(out)
    }

    /// Every definition record of `module`, by name, read in one scan rather than one point
    /// read each.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn definition_index(&self, module: &str) -> Result<HashMap<String, DefinitionRecord>> {
        let mut prefix = module.as_bytes().to_vec();
        prefix.push(0);
        let mut out = HashMap::default();
        try_visit(self.store(), Table::Definitions, &prefix, |k, v| {
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.insert(name, DefinitionRecord::decode(v)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// A module's whole text from its record: its definitions read in one scan, not one
    /// read each (what an export of many modules wants).
    ///
    /// # Errors
    /// A damaged image.
    pub fn assemble(&self, module: &str, layout: &Layout) -> Result<Vec<u8>> {
        self.assemble_reusing(module, layout, &[])
    }

    /// [`assemble`](Self::assemble), taking the texts of unchanged definitions from `file`
    /// (what the module's file holds now, usually the text the image last agreed with it)
    /// instead of the store: walking the layout along the file, each gap must be there byte
    /// for byte, and a definition's bytes there are taken when they hash to its current text.
    /// Export of one changed definition so reads one text from the store, not every one.
    /// From the first place the file does not follow the layout (a definition added or
    /// removed since), the texts come from the store. The result is the same as
    /// `assemble`'s either way: every gap is the layout's and every text hashes to its record.
    ///
    /// # Errors
    /// A damaged image.
    pub fn assemble_reusing(&self, module: &str, layout: &Layout, file: &[u8]) -> Result<Vec<u8>> {
        let index = self.definition_index(module)?;
        self.assemble_with(module, layout, file, &index)
    }

    /// [`assemble_reusing`](Self::assemble_reusing) with the module's definition records read
    /// already ([`definition_index`](Self::definition_index)), for a caller that wants them
    /// again afterwards (export marks them agreed).
    ///
    /// # Errors
    /// A damaged image.
    pub fn assemble_with(
        &self,
        module: &str,
        layout: &Layout,
        file: &[u8],
        index: &HashMap<String, DefinitionRecord>,
    ) -> Result<Vec<u8>> {
        let gaps = &layout.gaps;
        if gaps.len() != layout.names.len() + 1 {
            return Err(Error::corrupt(format!(
                "module `{module}`: its layout does not fit its definitions"
            )));
        }
        let mut out = Vec::with_capacity(file.len().max(layout.names.len() * 64));
        // Where the walk along the file is; `None` once the file no longer follows the layout.
        let mut at = Some(0);
        for (i, gap) in gaps.iter().enumerate() {
            out.extend_from_slice(gap);
            at = at.filter(|&a| file.get(a..a + gap.len()) == Some(gap.as_slice()));
            at = at.map(|a| a + gap.len());
            let Some(name) = layout.names.get(i) else {
                break;
            };
            let def = index
                .get(name)
                .ok_or_else(|| Error::corrupt(format!("`{module}::{name}` has no record")))?;
            // The file holds the text last agreed on (the base), unless it changed since.
            let held = match (at, def.base) {
                (Some(a), Some(base)) if base == def.hash => {
                    file.get(a..a + def.size as usize).map(|t| (t, t.len()))
                }
                (Some(a), Some(base)) => {
                    let len = self.text(&base)?.len();
                    file.get(a..a + len).map(|t| (t, len))
                }
                _ => None,
            };
            at = at.zip(held).map(|(a, (_, len))| a + len);
            match held {
                Some((text, _)) if Hash::of(text) == def.hash => out.extend_from_slice(text),
                _ => out.extend_from_slice(&self.text(&def.hash)?),
            }
        }
        Ok(out)
    }

    /// Settles a conflict over `module::name`, keeping the file's text ([`Take::File`]) or
    /// the image's ([`Take::Image`]). Taking the image's side commits twice: first the file's text as a version of
    /// its own (history keeps it, since export will overwrite it in the file), then the
    /// image's text again, agreed with the file's as base. Returns the last generation.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the definition is not in conflict; storage failures.
    pub fn resolve(&self, module: &str, name: &str, take: Take) -> Result<Option<u64>> {
        if self.sync(module)?.file_deleted {
            return self.resolve_module(module, take);
        }
        if take == Take::File {
            let mut tx = self.begin(Origin::Resolve)?;
            tx.resolve_take_file(module, name)?;
            return tx.commit();
        }
        let mut tx = self.begin(Origin::File)?;
        let image_side = tx.resolve_record_file(module, name)?;
        tx.commit()?;
        let mut tx = self.begin(Origin::Resolve)?;
        tx.resolve_take_image(module, name, image_side)?;
        tx.commit()
    }

    /// Settles a modify/delete conflict over `module` (its file deleted while the image held
    /// changes): the file's side removes the module, the image's has export write it back.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the module's file is not deleted; storage failures.
    pub fn resolve_module(&self, module: &str, take: Take) -> Result<Option<u64>> {
        let mut tx = self.begin(Origin::Resolve)?;
        tx.resolve_deleted(module, take)?;
        tx.commit()
    }

    /// The three texts of a conflict over `module::name`: base (the text both sides last
    /// agreed on), image, file; `None` where a side removed it or no base is known.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the definition is not in conflict; storage failures.
    #[allow(clippy::type_complexity)]
    pub fn conflict_texts(
        &self,
        module: &str,
        name: &str,
    ) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>)> {
        let Some(file) = self.sync(module)?.conflict(name) else {
            return Err(Error::invalid(format!(
                "`{module}::{name}` is not in conflict"
            )));
        };
        let current = self.definition(module, name)?;
        let base = match current.and_then(|d| d.base) {
            Some(hash) => Some(self.text(&hash)?),
            None => None,
        };
        let image = match current {
            Some(d) => Some(self.text(&d.hash)?),
            None => None,
        };
        let file = match file {
            Some(hash) => Some(self.text(&hash)?),
            None => None,
        };
        Ok((base, image, file))
    }

    /// Settles a conflict over `module::name` with a text of its user's (merged by hand):
    /// it becomes the image's text, the file's side going to history, and export writes it.
    /// An empty text (white space only) settles it as removed.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the definition is not in conflict, or the text still holds a
    /// conflict marker or defines another name; [`Error::Syntax`] when it does not parse;
    /// storage failures. Nothing is changed then.
    pub fn resolve_with(&self, module: &str, name: &str, text: &[u8]) -> Result<Option<u64>> {
        if self.sync(module)?.conflict(name).is_none() {
            return Err(Error::invalid(format!(
                "`{module}::{name}` is not in conflict"
            )));
        }
        if merge::has_markers(text) {
            return Err(Error::invalid(
                "the text still holds a conflict marker (<<<<<<<, |||||||, =======, >>>>>>>)",
            ));
        }
        let mut tx = self.begin(Origin::Resolve)?;
        if text.trim_ascii().is_empty() {
            if tx.definition(module, name)?.is_none() {
                // Removed in the image: the image's side.
                drop(tx);
                return self.resolve(module, name, Take::Image);
            }
            tx.remove_definition(module, name)?;
        } else {
            tx.put_definition(module, name, trim_line_end(text))?;
        }
        tx.commit()
    }

    /// What the last export into directory `dir` (other than the source tree) left there:
    /// relative path → hex hash of the file's text. Empty when the image never exported there.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn copy_manifest(&self, dir: &Path) -> Result<std::collections::BTreeMap<String, String>> {
        match self.store.get(Table::Meta, &copy_key(dir))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt_by(format!("export record of {}", dir.display()), e)),
            None => Ok(Default::default()),
        }
    }

    /// Records what an export into directory `dir` left there (see
    /// [`copy_manifest`](Self::copy_manifest)). Not a change of the image: no generation.
    pub(crate) fn set_copy_manifest(
        &self,
        dir: &Path,
        manifest: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(manifest).map_err(Error::store)?;
        let write = vec![crate::store::Write::put(Table::Meta, copy_key(dir), bytes)];
        if manifest.len() >= LOAD_MIN_KEYS {
            // One key is all or nothing either way; loaded into a table it stays out of the
            // journal every open reads (a 10,000-file copy's manifest is 1 MB).
            self.store.load(write)
        } else {
            self.store.commit(write)
        }
    }

    /// Records the stamps of files whose bytes are what the image last read from them (only
    /// their times are new), ahead of the transaction that takes the rest of a build: they
    /// hold whether or not it commits. Many are loaded into the table directly, out of the
    /// journal every open reads (the build after a first one, whose stamps were all too close
    /// to the files' times to be trusted, stamps every file again).
    ///
    /// # Errors
    /// Storage failures.
    pub(crate) fn store_same_stamps(&self, stamps: Vec<(&str, &PathRecord)>) -> Result<()> {
        let writes = stamps
            .into_iter()
            .map(|(path, stamp)| {
                crate::store::Write::put(Table::Paths, path.as_bytes().to_vec(), stamp.encode())
            })
            .collect();
        self.store.load(writes)
    }

    /// Writes the clean-stamps file (`clean_stamps.rs`): image and tree agree, `stamps` are
    /// every stamp the image holds (sorted by path), each matching its file, and `modules`
    /// modules agree. Only for an image that sits in its tree and holds all of it; `false`
    /// where nothing was written. Callers ignore its errors: the file is a cache.
    ///
    /// # Errors
    /// Storage failures, or the file cannot be written.
    pub(crate) fn write_clean_stamps(
        &self,
        modules: usize,
        stamps: &[(&str, &PathRecord)],
    ) -> Result<bool> {
        if !self.record.part.is_empty() || !self.is_in_tree() || self.relocated_from.is_some() {
            return Ok(false);
        }
        let clean = clean_stamps::CleanImage {
            generation: self.generation()?,
            modules: modules as u64,
            root: self.root.to_string_lossy().into_owned(),
        };
        self.clean_writer.write(&clean, stamps)
    }

    /// Whether the image's directory (its format file) is gone from the disk while it is open:
    /// someone deleted it. Commits would go nowhere anyone can reopen.
    pub fn is_gone(&self) -> bool {
        !self.dir.join(FORMAT_FILE).exists()
    }

    /// What was last read from (or written to) file `path`, by key.
    ///
    /// # Errors
    /// Storage failures, a damaged record.
    pub fn path(&self, path: &str) -> Result<Option<PathRecord>> {
        self.store
            .get(Table::Paths, path.as_bytes())?
            .map(|bytes| PathRecord::decode(&bytes))
            .transpose()
    }

    /// What the last build read from each file, by relative path.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn paths(&self) -> Result<HashMap<String, PathRecord>> {
        // Sized at once: grown insert by insert, the map of a 10,000-file tree was rehashed
        // a dozen times, most of a no-change build's page faults.
        let mut out = HashMap::with_capacity_and_hasher(
            self.store.approximate_len(Table::Paths),
            Default::default(),
        );
        try_visit(self.store(), Table::Paths, b"", |k, v| {
            out.insert(
                String::from_utf8_lossy(k).into_owned(),
                PathRecord::decode(v)?,
            );
            Ok(())
        })?;
        Ok(out)
    }

    /// The change log, oldest first.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn log(&self) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        for (_, v) in self.store.scan(Table::Log, b"")? {
            out.push(serde_json::from_slice(&v).map_err(|e| Error::corrupt_by("log entry", e))?);
        }
        Ok(out)
    }

    /// The versions of one definition (or, with the empty name, of a module's own text),
    /// oldest first, with the generations that made them; the last is the current one (or its
    /// removal).
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn history(&self, module: &str, name: &str) -> Result<Vec<(u64, HistoryRecord)>> {
        let mut versions = self.superseded(module, name)?;
        // A module's own text is no longer one blob (format 2): only format 1's superseded
        // layouts are in its history.
        let current = if name.is_empty() {
            None
        } else {
            self.definition(module, name)?.map(|d| {
                (
                    d.generation,
                    HistoryRecord {
                        origin: d.origin,
                        hash: Some(d.hash),
                    },
                )
            })
        };
        versions.extend(current);
        Ok(versions)
    }

    fn superseded(&self, module: &str, name: &str) -> Result<Vec<(u64, HistoryRecord)>> {
        let mut prefix = definition_key(module, name);
        prefix.push(0);
        let mut out = Vec::new();
        for (k, v) in self.store.scan(Table::History, &prefix)? {
            let generation = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| Error::corrupt("a history key is damaged"))?;
            out.push((generation, HistoryRecord::decode(&v)?));
        }
        Ok(out)
    }

    /// Writes texts into the store ahead of the transaction that will refer to them, straight
    /// into tables (bulk). Not atomic, and need not be: a text is named by its hash, and one
    /// that nothing refers to harms nothing.
    ///
    /// # Errors
    /// Storage failures.
    pub fn store_texts(&self, mut texts: Vec<(Hash, Bytes)>) -> Result<()> {
        texts.sort_unstable_by_key(|t| t.0);
        texts.dedup_by(|a, b| a.0 == b.0);
        let writes = texts
            .into_iter()
            .map(|(hash, stored)| crate::store::Write::put(Table::Blobs, hash.0, stored))
            .collect();
        self.store.load(writes)
    }

    /// Starts a transaction: changes staged in it commit together or not at all.
    ///
    /// # Errors
    /// Storage failures; [`Error::Corrupt`] when the stored generation is damaged.
    pub fn begin(&self, origin: Origin) -> Result<Transaction<'_>> {
        Transaction::new(self, origin)
    }

    /// Makes the next open of the image fast (after a large write).
    ///
    /// # Errors
    /// Storage failures.
    pub fn settle(&self) -> Result<()> {
        self.store.settle()
    }
}

/// The records of `found` nearest `position`: up to `before` below it, the one at it and up
/// to `after` above it, decoded, in order.
fn pick_around(
    found: &std::collections::BTreeMap<u64, Vec<u8>>,
    position: u64,
    before: usize,
    after: usize,
) -> Result<Vec<(u64, String, Vec<u8>)>> {
    use std::ops::Bound::{Excluded, Unbounded};
    let mut picked: Vec<(&u64, &Vec<u8>)> = found.range(..position).rev().take(before).collect();
    picked.reverse();
    picked.extend(found.get_key_value(&position));
    picked.extend(found.range((Excluded(position), Unbounded)).take(after));
    picked
        .into_iter()
        .map(|(p, value)| {
            let (name, gap) = record::decode_order_entry(value)?;
            Ok((*p, name.to_string(), gap.to_vec()))
        })
        .collect()
}

/// From this many keys (a copy's manifest: files), a write goes straight into the tables
/// instead of through fjall's journal, which every open reads whole.
pub(crate) const LOAD_MIN_KEYS: usize = 1024;

/// A first build loads tables directly and commits its generation last: data at generation 0
/// is such a load that never finished, which nothing can have seen. Start again from empty.
fn discard_interrupted_first_load(store: &dyn Store) -> Result<()> {
    if store.get(Table::Meta, META_GENERATION)?.is_some() {
        return Ok(());
    }
    let mut holds_data = false;
    for table in [Table::Modules, Table::Definitions, Table::Blobs] {
        store.visit(table, b"", &mut |_, _| {
            holds_data = true;
            false
        })?;
    }
    if holds_data {
        let record = store.get(Table::Meta, META_IMAGE)?;
        store.clear()?;
        if let Some(record) = record {
            store.commit(vec![crate::store::Write::put(
                Table::Meta,
                META_IMAGE.to_vec(),
                record,
            )])?;
        }
    }
    Ok(())
}

fn write_format_file(path: &Path) -> Result<()> {
    std::fs::write(path, format!("spry-image format {FORMAT_VERSION}\n")).with_path(path)
}

/// A text without the line break a file or standard input ends with: it is not part of a
/// definition (which ends with its last node).
pub fn trim_line_end(text: &[u8]) -> &[u8] {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.strip_suffix(b"\r").unwrap_or(text)
}

/// The `meta` key of what an export left in directory `dir`: `copy`, NUL, its canonical path.
fn copy_key(dir: &Path) -> Vec<u8> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut key = b"copy\0".to_vec();
    key.extend_from_slice(dir.to_string_lossy().as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Write;
    use crate::{BuildOptions, NoProgress, build};

    /// An image of format 3 (no `chunks` table: made by a build before chunk indexes) opens
    /// as it is, only its format rewritten; its modules have no index, so a save of one
    /// definition reads the module whole, and writes one that the next save reads along.
    #[test]
    fn a_format_3_image_opens_and_a_save_writes_its_first_chunk_index() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let text = module_of_200(dir.path());
        let path = dir.path().join(IMAGE_DIR);
        {
            let image = built(&path, dir.path());
            assert!(
                image
                    .store()
                    .scan(Table::Chunks, b"")
                    .expect("a scan")
                    .is_empty()
            );
            marked_as_format(&image, &path, 3);
        }
        let mut image = opens_upgraded(&path);
        image.set_chunk_target(64);
        let saved = text.replace("d7 = 7", "d7 = 'seven");
        assert!(
            image
                .saved_by_chunks("A", "a.spry", saved.as_bytes())
                .is_none()
        );
        let unit = image
            .saved_span("A", "a.spry", saved.as_bytes().to_vec())
            .expect("a save of one text");
        let mut tx = image.begin(Origin::File).expect("a transaction");
        tx.put_saved(unit, "a.spry").expect("a save");
        tx.commit().expect("a commit");
        assert_eq!(image.module_text("A").expect("a text"), saved.as_bytes());
        let report = image.check().expect("a check");
        assert!(report.is_ok(), "{:?}", report.problems);
        let again = saved.replace("d150 = 150", "d150 = 'later");
        let along = image
            .saved_by_chunks("A", "a.spry", again.as_bytes())
            .expect("a save read along the index");
        assert_eq!(
            along.changes().collect::<Vec<_>>(),
            [("d150", &b"d150 = 'later"[..])]
        );
    }

    /// Regression: a chunk left stale (a live edit's, its hash not known) with the file's
    /// bytes equal to the records all the same. The walk along the chunks stops at it, the
    /// walks along the records meet with nothing between them, and the stretch between
    /// them was indexed out of bounds (a panic). Now the module is read whole: no change,
    /// and a real change still found.
    #[test]
    fn regression_a_stale_chunk_over_unchanged_bytes_is_no_change_and_no_panic() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let text = module_of_200(dir.path());
        let mut image = built(&dir.path().join(IMAGE_DIR), dir.path());
        image.set_chunk_target(64);
        // A save of one definition, which writes the module's first index.
        let text = text.replace("d7 = 7", "d7 = 'seven");
        let unit = image
            .saved_span("A", "a.spry", text.as_bytes().to_vec())
            .expect("a save");
        let mut tx = image.begin(Origin::File).expect("a transaction");
        tx.put_saved(unit, "a.spry").expect("a save");
        tx.commit().expect("a commit");
        let stored = image
            .store()
            .get(Table::Chunks, b"A")
            .expect("a read")
            .expect("an index");
        let mut index = chunks::ChunkIndex::decode(&stored).expect("an index");
        assert!(index.chunks.len() > 4, "{}", index.chunks.len());
        // The last chunk: the walk along the records reaches the module's end.
        let last = index.chunks.len() - 1;
        index.chunks[last].hash = chunks::STALE;
        image
            .store()
            .commit(vec![Write::put(
                Table::Chunks,
                b"A".to_vec(),
                index.encode(),
            )])
            .expect("a write");
        let same = image.saved_by_chunks("A", "a.spry", text.as_bytes());
        assert!(same.is_none_or(|s| s.changes().next().is_none()));
        let whole = image
            .saved_span("A", "a.spry", text.as_bytes().to_vec())
            .expect("a save");
        assert_eq!(whole.changes().count(), 0);
        let changed = text.replace("d150 = 150", "d150 = 'later");
        let whole = image
            .saved_span("A", "a.spry", changed.into_bytes())
            .expect("a save");
        assert_eq!(
            whole.changes().collect::<Vec<_>>(),
            [("d150", &b"d150 = 'later"[..])]
        );
    }

    /// Writes `a.spry` under `dir`: module `A` of 200 one-line definitions. Returns its text.
    fn module_of_200(dir: &Path) -> String {
        let mut text = String::from("{\n  _meta = {name = 'A}\n");
        for i in 0..200 {
            text.push_str(&format!("  d{i} = {i}\n"));
        }
        text.push_str("}\n");
        std::fs::write(dir.join("a.spry"), &text).expect("a file");
        text
    }

    /// A new image at `path` built from the tree at `tree`.
    fn built(path: &Path, tree: &Path) -> Image {
        let mut image = Image::create(path, tree).expect("an image");
        build(&mut image, tree, &BuildOptions::default(), &NoProgress).expect("a build");
        image
    }

    /// Marks `image` (at `path`) as written by a binary of format `version`.
    fn marked_as_format(image: &Image, path: &Path, version: u32) {
        let mut record = image.record().clone();
        record.format_version = version;
        image.write_record(&record).expect("a record");
        std::fs::write(
            path.join(FORMAT_FILE),
            format!("spry-image format {version}\n"),
        )
        .expect("a file");
    }

    /// Opens the older image at `path`, checking that it is now marked as this format.
    fn opens_upgraded(path: &Path) -> Image {
        let image = Image::open(path).expect("an older image opens");
        assert_eq!(image.record().format_version, FORMAT_VERSION);
        assert_eq!(
            std::fs::read_to_string(path.join(FORMAT_FILE)).expect("a file"),
            format!("spry-image format {FORMAT_VERSION}\n")
        );
        image
    }

    /// An image of format 2 (stamps of version 1, without change time nor inode) opens as it
    /// is: only its format is rewritten; its files are hashed once more, nothing changes, and
    /// the next build reads nothing.
    #[test]
    fn a_format_2_image_opens_and_its_old_stamps_are_read() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("a.spry");
        std::fs::write(&file, "{_meta = {name = 'A} x = 1}\n").expect("a file");
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(old))
            .expect("a time");
        let path = dir.path().join(IMAGE_DIR);
        let options = BuildOptions::default();
        {
            let mut image = Image::create(&path, dir.path()).expect("an image");
            build(&mut image, dir.path(), &options, &NoProgress).expect("a build");
            // Written back as format 2 wrote them.
            let mut writes = Vec::new();
            for (key, stamp) in image.paths().expect("stamps") {
                let mut v1 = stamp.encode();
                v1.drain(73..97);
                v1[0] = 1;
                writes.push(Write::put(Table::Paths, key.into_bytes(), v1));
            }
            image.store().commit(writes).expect("a commit");
            marked_as_format(&image, &path, 2);
        }
        let mut image = opens_upgraded(&path);
        assert_eq!(image.paths().expect("stamps")["a.spry"].inode, 0);
        let report = build(&mut image, dir.path(), &options, &NoProgress).expect("a build");
        assert_eq!((report.read, report.changed.len()), (1, 0), "{report:?}");
        let report = build(&mut image, dir.path(), &options, &NoProgress).expect("a build");
        assert_eq!(report.read, 0, "{report:?}");
        assert!(image.check().expect("a check").is_ok());
    }
}
