//! The model test of "nothing lost": random interleavings of file edits, live edits, builds,
//! exports and crashes on a small real tree and a real image, checked after every step:
//! every text that was ever current on either side (in the image, or in a file when a build
//! or an export looked at it) is still current on a side, or in a recorded conflict, or in
//! the image's history. Never gone.
//!
//! Definitions span lines, so that both sides may change one definition in different lines
//! (a merge) or the same line (a conflict). At the end, after one build and one export, every
//! definition not in conflict is the same on both sides, and every conflict left is one that
//! a line merge could not settle.
//!
//! `PROPTEST_CASES` sets the number of interleavings (default here: 100, each of up to 40
//! steps; `PROPTEST_CASES=2000 cargo test --release --test it model` for the long run).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use proptest::prelude::*;
use spry_image::image::merge::{Merged, merge};
use spry_image::image::{Hash, IMAGE_DIR, Image, Origin};
use spry_image::syntax::SourceUnit;
use spry_image::{BuildOptions, NoProgress, build};
use spry_image::{ExportOptions, export};

const MODULES: usize = 3;
const NAMES: usize = 5;

#[derive(Clone, Debug)]
enum Step {
    /// Sets line `line` (0 or 1) of definition `name` of module `module`'s file to `value`
    /// (a definition not there is added with both lines set).
    FileSet(usize, usize, usize, u8),
    /// Removes a definition from a file.
    FileRemove(usize, usize),
    /// Breaks a file (it stops parsing until the next file edit of it).
    FileBreak(usize),
    /// Deletes a file.
    FileDelete(usize),
    /// A live edit in the image (one line, as `FileSet`).
    LiveSet(usize, usize, usize, u8),
    /// A live removal.
    LiveRemove(usize, usize),
    Build,
    Export,
    /// The process dies: an uncommitted change is lost (it was never reported), the image
    /// is reopened; with `true`, it dies in the middle of an export, after writing a file and
    /// before recording it.
    Crash(bool, usize),
    /// Settles conflicts (and modify/delete conflicts), file side (`true`) or image side.
    Resolve(bool),
}

fn step() -> impl Strategy<Value = Step> {
    let m = 0..MODULES;
    let n = 0..NAMES;
    let l = 0..2usize;
    prop_oneof![
        4 => (m.clone(), n.clone(), l.clone(), any::<u8>())
            .prop_map(|(m, n, l, v)| Step::FileSet(m, n, l, v)),
        1 => (m.clone(), n.clone()).prop_map(|(m, n)| Step::FileRemove(m, n)),
        1 => m.clone().prop_map(Step::FileBreak),
        1 => m.clone().prop_map(Step::FileDelete),
        4 => (m.clone(), n.clone(), l, any::<u8>())
            .prop_map(|(m, n, l, v)| Step::LiveSet(m, n, l, v)),
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

fn def_text(n: usize, first: u8, second: u8) -> String {
    format!("d{n} = [\n    {first}\n    {second}\n  ]")
}

/// `text` (a definition of [`def_text`]'s form, or none) with line `line` set to `value`.
fn with_line(text: Option<&[u8]>, n: usize, line: usize, value: u8) -> String {
    let values: Option<Vec<u8>> = text.and_then(|t| {
        let t = std::str::from_utf8(t).ok()?;
        let lines: Vec<&str> = t.lines().collect();
        if lines.len() != 4 {
            return None;
        }
        Some(vec![
            lines[1].trim().parse().ok()?,
            lines[2].trim().parse().ok()?,
        ])
    });
    let mut values = values.unwrap_or_else(|| vec![value, value]);
    values[line] = value;
    def_text(n, values[0], values[1])
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

/// Settles every conflict, and every modify/delete conflict, one way.
fn resolve_all(image: &Image, take_file: bool) {
    let take_file = if take_file {
        spry_image::image::Take::File
    } else {
        spry_image::image::Take::Image
    };
    for (module, sync) in image.unsynced().unwrap() {
        if sync.file_deleted {
            image.resolve_module(&module, take_file).unwrap();
            continue;
        }
        for name in sync.conflicts.keys() {
            image.resolve(&module, name, take_file).unwrap();
        }
    }
}

/// After one build and one export: in every module whose file is there, each definition not
/// in conflict is the same on both sides, whatever else of its module is in conflict; and a
/// conflict left is one that a line merge cannot settle.
fn check_per_definition(image: &Image, root: &Path, trace: &[Step]) {
    for m in 0..MODULES {
        let module = module_name(m);
        if image.module(&module).unwrap().is_none() {
            continue;
        }
        let sync = image.sync(&module).unwrap();
        if sync.file_deleted {
            // Its file is gone (or holds something else): a modify/delete conflict.
            continue;
        }
        let holds_it = std::fs::read(root.join(file_of(m)))
            .ok()
            .and_then(|text| SourceUnit::parse(text, "x").ok())
            .is_some_and(|unit| unit.name() == module);
        if root.join(file_of(m)).exists() && !holds_it {
            // Something else is in the way (an emptied file): a reason of the whole file.
            continue;
        }
        let Some(file) = file_definitions(root, m) else {
            assert!(
                sync.file_deleted || !root.join(file_of(m)).exists(),
                "{module}: no file, yet not a modify/delete conflict\nsteps: {trace:#?}"
            );
            continue;
        };
        let mut names: HashSet<String> = file.keys().cloned().collect();
        names.extend(image.layout(&module).unwrap().names);
        for name in names {
            let image_text = image.definition_text(&module, &name).ok();
            if let Some(file_side) = sync.conflict(&name) {
                let def = image.definition(&module, &name).unwrap();
                if let (Some(def), Some(file_side)) = (def, file_side)
                    && let Some(base) = def.base
                {
                    let base = image.text(&base).unwrap();
                    let ours = image.text(&def.hash).unwrap();
                    let theirs = image.text(&file_side).unwrap();
                    assert!(
                        !matches!(merge(&base, &ours, &theirs), Merged::Clean(_)),
                        "{module}::{name} is in conflict but merges\nsteps: {trace:#?}"
                    );
                }
                continue;
            }
            assert_eq!(
                image_text.as_deref(),
                file.get(&name).map(Vec::as_slice),
                "{module}::{name} differs after a build and an export\nsteps: {trace:#?}"
            );
        }
    }
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
            .map(|n| (format!("d{n}"), def_text(n, m as u8, 0).into_bytes()))
            .collect();
        write_file(root, m, &defs);
    }
    let image_dir = root.join(IMAGE_DIR);
    let mut image = Image::create(&image_dir, root).unwrap();
    let options = BuildOptions::default();
    build(&mut image, root, &options, &NoProgress).unwrap();
    let mut seen = Seen::default();
    note_image(&image, &mut seen);
    let mut trace = Vec::new();
    for step in steps {
        trace.push(step.clone());
        match step {
            Step::FileSet(m, n, l, v) => {
                let parsed = file_definitions(root, *m);
                // Over a broken file the user writes the module anew: every definition is theirs
                // to change.
                let name = format!("d{n}");
                seen.forget_file(&module_name(*m), parsed.as_ref().map(|_| name.as_str()));
                let mut defs = parsed.unwrap_or_default();
                let text = with_line(defs.get(&name).map(Vec::as_slice), *n, *l, *v);
                defs.insert(name, text.into_bytes());
                write_file(root, *m, &defs);
            }
            Step::FileDelete(m) => {
                // The user's own edit: what the file held is theirs to lose; what the image
                // holds stays (a modify/delete conflict while it holds changes).
                seen.forget_file(&module_name(*m), None);
                let _ = std::fs::remove_file(root.join(file_of(*m)));
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
            Step::LiveSet(m, n, l, v) => {
                settles_conflict(&image, &mut seen, *m, *n);
                let name = format!("d{n}");
                let current = image.definition_text(&module_name(*m), &name).ok();
                let text = with_line(current.as_deref(), *n, *l, *v);
                let mut tx = image.begin(Origin::Live).unwrap();
                match tx.put_definition(&module_name(*m), &name, text.as_bytes()) {
                    Ok(()) => {
                        tx.commit().unwrap();
                    }
                    // A module removed with its file (taken as deleted) takes no edit.
                    Err(spry_image::Error::NoModule(_)) => {}
                    Err(e) => panic!("{e}"),
                }
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
                build(&mut image, root, &options, &NoProgress).unwrap();
            }
            Step::Export => {
                // Files changed since the image last read them hold edits export must not
                // overwrite (it merges them first); the others hold what the image knows.
                note_changed_files(&image, root, &mut seen);
                export(&image, &ExportOptions::default()).unwrap();
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
                    if sync.unexported
                        && sync.conflicts.is_empty()
                        && !sync.file_deleted
                        && unchanged_on_disk
                    {
                        note_files(root, &mut seen);
                        std::fs::write(&path, image.module_text(&module).unwrap()).unwrap();
                    }
                } else {
                    let mut tx = image.begin(Origin::Live).unwrap();
                    let _ = tx.put_definition(&module_name(*m), "d0", def_text(0, 9, 9).as_bytes());
                    drop(tx);
                }
                drop(image);
                image = Image::open(&image_dir).unwrap();
            }
            Step::Resolve(take_file) => resolve_all(&image, *take_file),
        }
        note_image(&image, &mut seen);
        check_nothing_lost(&image, root, &seen, &trace);
    }
    for m in 0..MODULES {
        // Broken files are fixed by their user.
        if file_definitions(root, m).is_none() && root.join(file_of(m)).exists() {
            let text = String::from_utf8(std::fs::read(root.join(file_of(m))).unwrap()).unwrap();
            std::fs::write(root.join(file_of(m)), text.replace("\n[ unclosed\n", "")).unwrap();
        }
    }
    // One build and one export bring every definition not in conflict to both sides.
    note_changed_files(&image, root, &mut seen);
    build(&mut image, root, &options, &NoProgress).unwrap();
    note_image(&image, &mut seen);
    export(&image, &ExportOptions::default()).unwrap();
    check_nothing_lost(&image, root, &seen, &trace);
    check_per_definition(&image, root, &trace);
    // Then, with every conflict settled, a build and an export bring both sides together.
    resolve_all(&image, false);
    note_image(&image, &mut seen);
    export(&image, &ExportOptions::default()).unwrap();
    note_files(root, &mut seen);
    build(&mut image, root, &options, &NoProgress).unwrap();
    note_image(&image, &mut seen);
    check_nothing_lost(&image, root, &seen, &trace);
}

/// The cases the issue names, as fixed interleavings: edits of different lines of one
/// definition, one per side, merge (a conflict there fails `check_per_definition`); the same
/// line is a conflict while the module's other definitions still reach both sides; a file
/// deleted under a pending live edit keeps its module.
#[test]
fn the_named_interleavings() {
    run(&[
        Step::FileSet(0, 0, 0, 7),
        Step::LiveSet(0, 0, 1, 8),
        Step::LiveSet(0, 1, 0, 9),
        Step::FileSet(0, 2, 1, 10),
        Step::Build,
        Step::Export,
    ]);
    run(&[
        Step::FileSet(1, 0, 1, 7),
        Step::LiveSet(1, 0, 1, 8),
        Step::LiveSet(1, 1, 0, 9),
        Step::FileSet(1, 3, 1, 10),
        Step::Build,
        Step::Export,
    ]);
    run(&[
        Step::LiveSet(2, 0, 1, 8),
        Step::FileDelete(2),
        Step::Build,
        Step::Export,
        Step::Build,
    ]);
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
