//! The model test of "nothing lost": random interleavings of file edits, live edits, builds,
//! exports and crashes on a small real tree and a real image, checked after every step:
//! every text that was ever current on either side (in the image, or in a file when a build
//! or an export looked at it) is still current on a side, or in a recorded conflict, or in
//! the image's history. Never gone.
//!
//! `PROPTEST_CASES` sets the number of interleavings (default here: 100, each of up to 40
//! steps; `PROPTEST_CASES=2000 cargo test --release --test it model` for the long run).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use proptest::prelude::*;
use spry_image::build::{self, BuildOptions, NoProgress};
use spry_image::export::{self, ExportOptions};
use spry_image::image::{Hash, IMAGE_DIR, Image, Origin};
use spry_image::syntax::SourceUnit;

const MODULES: usize = 3;
const NAMES: usize = 5;

#[derive(Clone, Debug)]
enum Step {
    /// Sets (or adds) definition `name` of module `module`'s file to value `value`.
    FileSet(usize, usize, u8),
    /// Removes a definition from a file.
    FileRemove(usize, usize),
    /// Breaks a file (it stops parsing until the next file edit of it).
    FileBreak(usize),
    /// A live edit in the image.
    LiveSet(usize, usize, u8),
    /// A live removal.
    LiveRemove(usize, usize),
    Build,
    Export,
    /// The process dies: an uncommitted change is lost (it was never reported), the image
    /// is reopened; with `true`, it dies in the middle of an export, after writing a file and
    /// before recording it.
    Crash(bool, usize),
    /// Settles conflicts, file side (`true`) or image side.
    Resolve(bool),
}

fn step() -> impl Strategy<Value = Step> {
    let m = 0..MODULES;
    let n = 0..NAMES;
    prop_oneof![
        4 => (m.clone(), n.clone(), any::<u8>()).prop_map(|(m, n, v)| Step::FileSet(m, n, v)),
        1 => (m.clone(), n.clone()).prop_map(|(m, n)| Step::FileRemove(m, n)),
        1 => m.clone().prop_map(Step::FileBreak),
        4 => (m.clone(), n.clone(), any::<u8>()).prop_map(|(m, n, v)| Step::LiveSet(m, n, v)),
        1 => (m.clone(), n).prop_map(|(m, n)| Step::LiveRemove(m, n)),
        3 => Just(Step::Build),
        3 => Just(Step::Export),
        1 => (any::<bool>(), m).prop_map(|(e, m)| Step::Crash(e, m)),
        1 => any::<bool>().prop_map(Step::Resolve),
    ]
}

fn module_name(m: usize) -> String {
    format!("M{m}")
}

fn file_of(m: usize) -> String {
    format!("m{m}.spry")
}

fn def_text(n: usize, value: u8) -> String {
    format!("d{n} = {value}")
}

/// The definitions a file holds now (`None`: it does not parse or is not there).
fn file_definitions(root: &Path, m: usize) -> Option<BTreeMap<String, Vec<u8>>> {
    let text = std::fs::read(root.join(file_of(m))).ok()?;
    let unit = SourceUnit::parse(text, "x").ok()?;
    Some(
        unit.definitions()
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), unit.definition_text(i).to_vec()))
            .collect(),
    )
}

/// Writes a module file holding `defs` (in name order).
fn write_file(root: &Path, m: usize, defs: &BTreeMap<String, Vec<u8>>) {
    let mut text = format!("{{\n  _meta = {{name = '{}}}\n", module_name(m));
    for (name, def) in defs {
        if name != "_meta" {
            text.push_str("  ");
            text.push_str(&String::from_utf8_lossy(def));
            text.push('\n');
        }
    }
    text.push_str("}\n");
    std::fs::write(root.join(file_of(m)), text).unwrap();
}

/// What was ever current on a side: (module, name, text hash). Image texts stay in it for
/// good; a file's texts only until its user edits that definition again (a user may
/// overwrite their own edit; the tool may not).
#[derive(Default)]
struct Seen {
    image: HashSet<(String, String, Hash)>,
    file: HashSet<(String, String, Hash)>,
}

impl Seen {
    fn forget_file(&mut self, module: &str, name: Option<&str>) {
        self.file
            .retain(|(m, n, _)| m != module || name.is_some_and(|name| name != n));
    }

    fn all(&self) -> impl Iterator<Item = &(String, String, Hash)> {
        self.image.iter().chain(self.file.iter())
    }
}

fn note_image(image: &Image, seen: &mut Seen) {
    for (module, _) in image.modules().unwrap() {
        for (name, def) in image.definitions(&module).unwrap() {
            seen.image.insert((module.clone(), name, def.hash));
        }
    }
}

fn note_files(root: &Path, seen: &mut Seen) {
    for m in 0..MODULES {
        if let Some(defs) = file_definitions(root, m) {
            for (name, text) in defs {
                seen.file.insert((module_name(m), name, Hash::of(&text)));
            }
        }
    }
}

fn note_changed_files(image: &Image, root: &Path, seen: &mut Seen) {
    for m in 0..MODULES {
        let Ok(bytes) = std::fs::read(root.join(file_of(m))) else {
            continue;
        };
        let stamp = image.path(&file_of(m)).unwrap();
        if stamp.is_some_and(|s| s.hash == Hash::of(&bytes)) {
            continue;
        }
        let module = module_name(m);
        let sync = image.sync(&module).unwrap();
        if let Some(defs) = file_definitions(root, m) {
            for (name, text) in defs {
                // A text the image already agreed with is not news: export may replace it
                // with the image's change.
                let hash = Hash::of(&text);
                let agreed = image
                    .definition(&module, &name)
                    .unwrap()
                    .is_some_and(|d| d.base == Some(hash))
                    || sync.removed.get(&name) == Some(&hash.to_hex());
                if !agreed {
                    seen.file.insert((module.clone(), name, hash));
                }
            }
        }
    }
}

/// The promise: every text ever current on a side is still somewhere.
fn check_nothing_lost(image: &Image, root: &Path, seen: &Seen, trace: &[Step]) {
    let files: Vec<Option<BTreeMap<String, Vec<u8>>>> =
        (0..MODULES).map(|m| file_definitions(root, m)).collect();
    for (module, name, hash) in seen.all() {
        let in_history = image
            .history(module, name)
            .unwrap()
            .iter()
            .any(|(_, v)| v.hash == Some(*hash));
        let m: usize = module[1..].parse().unwrap();
        let in_file = files[m]
            .as_ref()
            .and_then(|defs| defs.get(name))
            .is_some_and(|text| Hash::of(text) == *hash);
        let in_conflict = image.sync(module).unwrap().conflict(name) == Some(Some(*hash));
        assert!(
            in_history || in_file || in_conflict,
            "{module}::{name} text {} is gone\nsteps: {trace:#?}",
            hash.short(12)
        );
    }
    let report = image.check().unwrap();
    assert!(report.is_ok(), "{:?}\nsteps: {trace:#?}", report.problems);
}

/// A live edit of a definition in conflict is its user's settlement (as a `put` of a merged
/// text is): the file's side of it may be overwritten by the next export.
fn settles_conflict(image: &Image, seen: &mut Seen, m: usize, n: usize) {
    let name = format!("d{n}");
    if image
        .sync(&module_name(m))
        .unwrap()
        .conflict(&name)
        .is_some()
    {
        seen.forget_file(&module_name(m), Some(&name));
    }
}

fn run(steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for m in 0..MODULES {
        let defs = (0..2)
            .map(|n| (format!("d{n}"), def_text(n, m as u8).into_bytes()))
            .collect();
        write_file(root, m, &defs);
    }
    let image_dir = root.join(IMAGE_DIR);
    let mut image = Image::create(&image_dir, root).unwrap();
    let options = BuildOptions::default();
    build::build(&mut image, root, &options, &NoProgress).unwrap();
    let mut seen = Seen::default();
    note_image(&image, &mut seen);
    let mut trace = Vec::new();
    for step in steps {
        trace.push(step.clone());
        match step {
            Step::FileSet(m, n, v) => {
                let parsed = file_definitions(root, *m);
                // Over a broken file the user writes the module anew: every definition is theirs
                // to change.
                let name = format!("d{n}");
                seen.forget_file(&module_name(*m), parsed.as_ref().map(|_| name.as_str()));
                let mut defs = parsed.unwrap_or_default();
                defs.insert(format!("d{n}"), def_text(*n, *v).into_bytes());
                write_file(root, *m, &defs);
            }
            Step::FileRemove(m, n) => {
                seen.forget_file(&module_name(*m), Some(&format!("d{n}")));
                if let Some(mut defs) = file_definitions(root, *m) {
                    defs.remove(&format!("d{n}"));
                    write_file(root, *m, &defs);
                }
            }
            Step::FileBreak(m) => {
                // The user's own edit: what the file held is theirs to lose.
                seen.forget_file(&module_name(*m), None);
                let path = root.join(file_of(*m));
                let mut text = std::fs::read(&path).unwrap_or_default();
                text.extend_from_slice(b"\n[ unclosed\n");
                std::fs::write(&path, text).unwrap();
            }
            Step::LiveSet(m, n, v) => {
                settles_conflict(&image, &mut seen, *m, *n);
                let mut tx = image.begin(Origin::Live).unwrap();
                tx.put_definition(
                    &module_name(*m),
                    &format!("d{n}"),
                    def_text(*n, *v).as_bytes(),
                )
                .unwrap();
                tx.commit().unwrap();
            }
            Step::LiveRemove(m, n) => {
                settles_conflict(&image, &mut seen, *m, *n);
                let mut tx = image.begin(Origin::Live).unwrap();
                if tx
                    .remove_definition(&module_name(*m), &format!("d{n}"))
                    .is_ok()
                {
                    tx.commit().unwrap();
                }
            }
            Step::Build => {
                note_changed_files(&image, root, &mut seen);
                build::build(&mut image, root, &options, &NoProgress).unwrap();
            }
            Step::Export => {
                // Files changed since the image last read them hold edits export must not
                // overwrite (it merges them first); the others hold what the image knows.
                note_changed_files(&image, root, &mut seen);
                export::export(&image, &ExportOptions::default()).unwrap();
            }
            Step::Crash(mid_export, m) => {
                if *mid_export {
                    // The file is written, as export would write it, and then the process dies
                    // before the image records it: only if export would have written it (the
                    // module is unexported, the file unchanged since last read).
                    let module = module_name(*m);
                    let sync = image.sync(&module).unwrap();
                    let path = root.join(file_of(*m));
                    let stamp = image.path(&file_of(*m)).unwrap();
                    let unchanged_on_disk = std::fs::read(&path)
                        .ok()
                        .zip(stamp)
                        .is_some_and(|(bytes, stamp)| Hash::of(&bytes) == stamp.hash);
                    if sync.unexported && sync.conflicts.is_empty() && unchanged_on_disk {
                        note_files(root, &mut seen);
                        std::fs::write(&path, image.module_text(&module).unwrap()).unwrap();
                    }
                } else {
                    let mut tx = image.begin(Origin::Live).unwrap();
                    let _ = tx.put_definition(&module_name(*m), "d0", b"d0 = 999");
                    drop(tx);
                }
                drop(image);
                image = Image::open(&image_dir).unwrap();
            }
            Step::Resolve(take_file) => {
                for (module, sync) in image.unsynced().unwrap() {
                    for name in sync.conflicts.keys() {
                        image.resolve(&module, name, *take_file).unwrap();
                    }
                }
            }
        }
        note_image(&image, &mut seen);
        check_nothing_lost(&image, root, &seen, &trace);
    }
    // At the end, a build and an export with no conflicts left bring both sides together.
    for (module, sync) in image.unsynced().unwrap() {
        for name in sync.conflicts.keys() {
            image.resolve(&module, name, false).unwrap();
        }
    }
    for m in 0..MODULES {
        // Broken files are fixed by their user.
        if file_definitions(root, m).is_none() && root.join(file_of(m)).exists() {
            let text = String::from_utf8(std::fs::read(root.join(file_of(m))).unwrap()).unwrap();
            std::fs::write(root.join(file_of(m)), text.replace("\n[ unclosed\n", "")).unwrap();
        }
    }
    note_files(root, &mut seen);
    build::build(&mut image, root, &options, &NoProgress).unwrap();
    note_image(&image, &mut seen);
    check_nothing_lost(&image, root, &seen, &trace);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(100),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_edit_is_ever_lost(steps in proptest::collection::vec(step(), 1..40)) {
        run(&steps);
    }
}
