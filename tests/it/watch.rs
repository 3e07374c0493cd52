//! Keeping an image in step with its tree: the targeted build a watcher runs (only the paths
//! its events name), then a real watcher on real temporary trees with scripted editor
//! behaviour, and the `watch` command itself. Every wait is on the watcher's own signal (its
//! batch reports, or its JSON lines) with a bound, never a fixed sleep.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;
use spry_image::image::{IMAGE_DIR, Image, ModuleChange};
use spry_image::{BatchReport, Cause, WatchOptions, Watcher};
use spry_image::{BuildOptions, BuildReport, NoProgress, build};

use crate::util::Dir;

/// How long any wait for the watcher may take before the test fails. Every wait is for
/// something to happen, so a passing run never waits this long; it is generous because a
/// debug binary started on a loaded 2-core machine took more than 10 s to print its first line.
const BOUND: Duration = Duration::from_secs(30);

fn module(name: &str, body: &str) -> String {
    format!("{{\n  _meta = {{name = '{name}}}\n  {body}\n}}\n")
}

fn text(image: &Image, module: &str, name: &str) -> Option<String> {
    image
        .definition_text(module, name)
        .ok()
        .map(|t| String::from_utf8(t).unwrap())
}

fn create(dir: &Dir) -> Image {
    Image::create(&dir.join(IMAGE_DIR), dir.path()).unwrap()
}

fn build_paths(image: &mut Image, dir: &Dir, paths: Option<&[&str]>) -> BuildReport {
    let options = BuildOptions {
        paths: paths.map(|p| p.iter().map(|s| s.to_string()).collect()),
        ..BuildOptions::default()
    };
    build(image, dir.path(), &options, &NoProgress).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The targeted build.

#[test]
fn a_targeted_build_looks_only_at_the_listed_paths() {
    let dir = Dir::new("targeted_only");
    dir.create("a.spry", module("A", "x = 1"));
    dir.create("b.spry", module("B", "y = 1"));
    let mut image = create(&dir);
    build_paths(&mut image, &dir, None);
    dir.create("a.spry", module("A", "x = 2"));
    dir.create("b.spry", module("B", "y = 2"));
    let report = build_paths(&mut image, &dir, Some(&["a.spry"]));
    assert_eq!(report.changed, ["A"]);
    assert_eq!((report.files, report.read), (1, 1));
    assert_eq!(text(&image, "A", "x").unwrap(), "x = 2");
    assert_eq!(
        text(&image, "B", "y").unwrap(),
        "y = 1",
        "b.spry was not listed"
    );
    // The unlisted file is still known: a full build finds it changed, nothing removed.
    let report = build_paths(&mut image, &dir, None);
    assert_eq!(report.changed, ["B"]);
    assert!(report.removed.is_empty());
}

#[test]
fn a_listed_path_that_is_gone_is_a_file_removed() {
    let dir = Dir::new("targeted_removed");
    dir.create("a.spry", module("A", "x = 1"));
    dir.create("lib/b.spry", module("B", "y = 1"));
    dir.create("lib/deep/c.spry", module("C", "z = 1"));
    dir.create("keep.spry", module("K", "k = 1"));
    let mut image = create(&dir);
    build_paths(&mut image, &dir, None);
    std::fs::remove_file(dir.join("a.spry")).unwrap();
    std::fs::remove_dir_all(dir.join("lib")).unwrap();
    let report = build_paths(&mut image, &dir, Some(&["a.spry", "lib"]));
    assert_eq!(report.removed, ["A", "B", "C"]);
    assert!(image.module("K").unwrap().is_some());
    let paths = image.paths().unwrap();
    let mut known: Vec<&String> = paths.keys().collect();
    known.sort();
    assert_eq!(known, ["keep.spry"]);
}

#[test]
fn a_rename_in_one_batch_is_a_move_that_keeps_history() {
    let dir = Dir::new("targeted_rename");
    dir.create("a.spry", module("A", "x = 1"));
    let mut image = create(&dir);
    build_paths(&mut image, &dir, None);
    dir.create("a.spry", module("A", "x = 2"));
    build_paths(&mut image, &dir, Some(&["a.spry"]));
    std::fs::rename(dir.join("a.spry"), dir.join("b.spry")).unwrap();
    let report = build_paths(&mut image, &dir, Some(&["a.spry", "b.spry"]));
    assert_eq!(report.moved.len(), 1, "{report:?}");
    assert_eq!(
        (report.moved[0].from.as_str(), report.moved[0].to.as_str()),
        ("a.spry", "b.spry")
    );
    assert!(report.added.is_empty() && report.removed.is_empty());
    assert_eq!(image.module("A").unwrap().unwrap().path, "b.spry");
    assert_eq!(
        image.history("A", "x").unwrap().len(),
        2,
        "x = 1, then x = 2"
    );
}

#[test]
fn a_new_file_claiming_a_module_an_unlisted_file_holds_is_claimed_twice() {
    let dir = Dir::new("targeted_claimed_twice");
    dir.create("a.spry", module("A", "x = 1"));
    let mut image = create(&dir);
    build_paths(&mut image, &dir, None);
    dir.create("copy.spry", module("A", "x = 2"));
    let report = build_paths(&mut image, &dir, Some(&["copy.spry"]));
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].path, "copy.spry");
    let message = report.failed[0].message().unwrap();
    assert!(message.contains("`a.spry` keeps it"), "{message}");
    assert!(report.moved.is_empty() && report.changed.is_empty());
    assert_eq!(image.module("A").unwrap().unwrap().path, "a.spry");
    assert_eq!(text(&image, "A", "x").unwrap(), "x = 1");
    assert!(image.paths().unwrap().contains_key("a.spry"));
}

#[test]
fn a_new_file_claiming_a_module_whose_unlisted_file_is_gone_moves_it() {
    let dir = Dir::new("targeted_holder_gone");
    dir.create("a.spry", module("A", "x = 1"));
    let mut image = create(&dir);
    build_paths(&mut image, &dir, None);
    std::fs::rename(dir.join("a.spry"), dir.join("b.spry")).unwrap();
    // Only the new path is listed (the old one's event was lost, say).
    let report = build_paths(&mut image, &dir, Some(&["b.spry"]));
    assert_eq!(report.moved.len(), 1, "{report:?}");
    assert!(report.failed.is_empty() && report.removed.is_empty());
    let paths = image.paths().unwrap();
    assert!(paths.contains_key("b.spry") && !paths.contains_key("a.spry"));
}

#[test]
fn a_listed_directory_is_walked_by_the_walker_rules() {
    let dir = Dir::new("targeted_dir");
    dir.create("top.spry", module("Top", "t = 1"));
    let mut image = create(&dir);
    build_paths(&mut image, &dir, None);
    dir.create(".gitignore", "ignored.spry\nskip/\n");
    dir.create("lib/x.spry", module("X", "x = 1"));
    dir.create("lib/deep/y.spry", module("Y", "y = 1"));
    dir.create("lib/ignored.spry", module("Ignored", "i = 1"));
    dir.create("lib/skip/s.spry", module("Skipped", "s = 1"));
    dir.create("lib/.hidden/h.spry", module("Hidden", "h = 1"));
    dir.create("lib/notes.txt", "not spry");
    dir.create("lib/sub/.gitignore", "z.spry\n");
    dir.create("lib/sub/z.spry", module("Z", "z = 1"));
    dir.create("skip/w.spry", module("W", "w = 1"));
    let report = build_paths(
        &mut image,
        &dir,
        Some(&[
            "lib",
            "lib/x.spry",
            "skip/w.spry",
            ".hidden.spry",
            "lib/ignored.spry",
        ]),
    );
    assert_eq!(report.added, ["X", "Y"], "{report:?}");
    assert_eq!(report.files, 2);
    // The same files a full walk finds.
    let full = build_paths(&mut image, &dir, None);
    assert!(full.added.is_empty() && full.removed.is_empty(), "{full:?}");
    assert_eq!(full.files, 3);
}

#[test]
fn a_module_renamed_inside_a_listed_file_leaves_under_its_old_name() {
    let dir = Dir::new("targeted_renamed_module");
    dir.create("a.spry", module("A", "x = 1"));
    let mut image = create(&dir);
    build_paths(&mut image, &dir, None);
    dir.create("a.spry", module("Renamed", "x = 1"));
    let report = build_paths(&mut image, &dir, Some(&["a.spry"]));
    assert_eq!(report.added, ["Renamed"]);
    assert_eq!(report.removed, ["A"]);
}

// ---------------------------------------------------------------------------------------------
// A real watcher.

/// A watcher on a temporary tree, with its batch reports.
struct Session {
    dir: Dir,
    watcher: Option<Watcher>,
    batches: Receiver<BatchReport>,
    seen: Vec<BatchReport>,
}

impl Session {
    /// Starts a watcher on `dir` (an image is created and built first by the watcher).
    fn start(dir: Dir) -> Session {
        let image = create(&dir);
        let (tx, batches) = channel();
        let watcher = Watcher::start(image, dir.path(), &WatchOptions::default(), move |b| {
            let _ = tx.send(b.clone());
        })
        .unwrap();
        Session {
            dir,
            watcher: Some(watcher),
            batches,
            seen: Vec::new(),
        }
    }

    fn watcher(&self) -> &Watcher {
        self.watcher.as_ref().unwrap()
    }

    fn check<R>(&self, f: impl FnOnce(&Image) -> R) -> R {
        self.watcher().with_image(f).unwrap()
    }

    /// Waits (on the watcher's batches, at most [`BOUND`]) until `done` holds for the image.
    fn until(&mut self, what: &str, done: impl Fn(&Image) -> bool) {
        let deadline = Instant::now() + BOUND;
        loop {
            if self.check(&done) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.batches.recv_timeout(left) {
                Ok(batch) => self.seen.push(batch),
                Err(_) => panic!(
                    "waited {BOUND:?} for {what}; batches seen:\n{:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the next batch that names `path`.
    fn batch_naming(&mut self, path: &str) -> BatchReport {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.batches.recv_timeout(left) {
                Ok(batch) => {
                    self.seen.push(batch.clone());
                    if batch.paths.iter().any(|p| p == path) {
                        return batch;
                    }
                }
                Err(_) => panic!(
                    "waited {BOUND:?} for a batch naming {path}; batches seen:\n{:#?}",
                    self.seen
                ),
            }
        }
    }

    fn stop(&mut self) -> Image {
        self.watcher.take().unwrap().stop().unwrap()
    }

    /// How each module changed over the whole log, oldest first.
    fn log_of(&self, name: &str) -> Vec<ModuleChange> {
        self.check(|image| {
            image
                .log()
                .unwrap()
                .iter()
                .flat_map(|e| e.modules.iter())
                .filter(|m| m.module == name)
                .map(|m| m.change)
                .collect()
        })
    }
}

fn has_text(
    module: &'static str,
    name: &'static str,
    want: &'static str,
) -> impl Fn(&Image) -> bool {
    move |image| text(image, module, name).as_deref() == Some(want)
}

fn tree(name: &str, files: &[(&str, String)]) -> Dir {
    let dir = Dir::new(name);
    for (path, body) in files {
        dir.create(path, body);
    }
    dir
}

#[test]
fn watch_a_save_in_place() {
    let mut s = Session::start(tree("watch_in_place", &[("a.spry", module("A", "x = 1"))]));
    assert_eq!(s.watcher().initial().build.added, ["A"]);
    s.dir.create("a.spry", module("A", "x = 2"));
    s.until("x = 2", has_text("A", "x", "x = 2"));
    // Appending through an open file, as an editor that writes in place does.
    {
        use std::io::Write;
        let mut file = std::fs::File::options()
            .write(true)
            .open(s.dir.join("a.spry"))
            .unwrap();
        file.write_all(module("A", "x = 3").as_bytes()).unwrap();
        file.sync_all().unwrap();
    }
    s.until("x = 3", has_text("A", "x", "x = 3"));
    assert!(s.seen.iter().all(|b| b.build.removed.is_empty()));
    let image = s.stop();
    assert_eq!(image.generation().unwrap(), 3);
}

#[test]
fn watch_atomic_saves_write_a_temporary_file_and_rename_it() {
    let mut s = Session::start(tree("watch_atomic", &[("m/a.spry", module("A", "x = 1"))]));
    let file = s.dir.join("m/a.spry");
    // VS Code and most: write a temporary file, rename it onto the original.
    let tmp = s.dir.create("m/a.spry.tmp", module("A", "x = 2"));
    std::fs::rename(&tmp, &file).unwrap();
    s.until("x = 2", has_text("A", "x", "x = 2"));
    // JetBrains' safe write: temporary file, original moved to a backup, temporary file
    // renamed onto the original, backup removed.
    let tmp = s.dir.create("m/a.spry___jb_tmp___", module("A", "x = 3"));
    let old = s.dir.join("m/a.spry___jb_old___");
    std::fs::rename(&file, &old).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    std::fs::remove_file(&old).unwrap();
    s.until("x = 3", has_text("A", "x", "x = 3"));
    // vim: probe file 4913, the original renamed to a~ backup, a new file written, backup
    // removed.
    std::fs::write(s.dir.join("m/4913"), "").unwrap();
    std::fs::remove_file(s.dir.join("m/4913")).unwrap();
    let backup = s.dir.join("m/a.spry~");
    std::fs::rename(&file, &backup).unwrap();
    std::fs::write(&file, module("A", "x = 4")).unwrap();
    std::fs::remove_file(&backup).unwrap();
    s.until("x = 4", has_text("A", "x", "x = 4"));
    assert_eq!(
        s.log_of("A"),
        [
            ModuleChange::Added,
            ModuleChange::Changed,
            ModuleChange::Changed,
            ModuleChange::Changed
        ],
        "an atomic save is a change, never a removal; batches:\n{:#?}",
        s.seen
    );
    for batch in &s.seen {
        assert!(batch.build.failed.is_empty(), "{batch:#?}");
        for path in &batch.paths {
            assert!(
                path.ends_with(".spry") || path == "m",
                "{path} in {batch:#?}"
            );
        }
    }
}

#[test]
fn watch_delete_and_recreate() {
    let mut s = Session::start(tree(
        "watch_delete",
        &[
            ("a.spry", module("A", "x = 1")),
            ("b.spry", module("B", "y = 1")),
        ],
    ));
    std::fs::remove_file(s.dir.join("a.spry")).unwrap();
    s.until("A removed", |image| image.module("A").unwrap().is_none());
    s.dir.create("a.spry", module("A", "x = 2"));
    s.until("A back", has_text("A", "x", "x = 2"));
    assert_eq!(
        s.log_of("A"),
        [
            ModuleChange::Added,
            ModuleChange::Removed,
            ModuleChange::Added
        ]
    );
    // Its definition's history runs through the removal.
    let versions = s.check(|image| image.history("A", "x").unwrap().len());
    assert_eq!(versions, 3, "x = 1, removed, x = 2");
    assert!(s.check(|image| image.module("B").unwrap().is_some()));
}

#[test]
fn watch_a_new_directory_with_files_inside() {
    let mut s = Session::start(tree("watch_mkdir", &[("a.spry", module("A", "x = 1"))]));
    // Files made at once with their directories: before any watch on them exists.
    for (path, name) in [
        ("lib/one.spry", "One"),
        ("lib/two.spry", "Two"),
        ("lib/deep/er/three.spry", "Three"),
    ] {
        s.dir.create(path, module(name, "v = 1"));
    }
    s.until("lib's modules", |image| {
        ["One", "Two", "Three"]
            .iter()
            .all(|m| image.module(m).unwrap().is_some())
    });
    // The new directories are watched without a restart.
    s.dir
        .create("lib/deep/er/three.spry", module("Three", "v = 2"));
    s.dir.create("lib/deep/four.spry", module("Four", "v = 1"));
    s.until("edits in the new directories", |image| {
        text(image, "Three", "v").as_deref() == Some("v = 2")
            && image.module("Four").unwrap().is_some()
    });
    // And a removed directory takes its modules along.
    std::fs::remove_dir_all(s.dir.join("lib/deep")).unwrap();
    s.until("deep removed", |image| {
        image.module("Three").unwrap().is_none() && image.module("Four").unwrap().is_none()
    });
    assert!(s.check(|image| image.module("One").unwrap().is_some()));
}

#[test]
fn watch_a_folder_moved_whole_is_recorded_as_moved() {
    let mut s = Session::start(tree(
        "watch_mv_folder",
        &[
            ("old/a.spry", module("A", "x = 1")),
            ("old/sub/b.spry", module("B", "y = 1")),
            ("c.spry", module("C", "z = 1")),
        ],
    ));
    std::fs::rename(s.dir.join("old"), s.dir.join("new")).unwrap();
    s.until("A and B in new/", |image| {
        image.module("A").unwrap().unwrap().path == "new/a.spry"
            && image.module("B").unwrap().unwrap().path == "new/sub/b.spry"
    });
    for name in ["A", "B"] {
        assert_eq!(
            s.log_of(name),
            [ModuleChange::Added, ModuleChange::Moved],
            "{name}: batches {:#?}",
            s.seen
        );
    }
    let moved: Vec<String> = s
        .seen
        .iter()
        .flat_map(|b| {
            b.build
                .moved
                .iter()
                .map(|m| format!("{} {} {}", m.module, m.from, m.to))
        })
        .collect();
    assert_eq!(
        moved,
        ["A old/a.spry new/a.spry", "B old/sub/b.spry new/sub/b.spry"]
    );
    // Moved in from outside the tree, and out again.
    let outside = Dir::new("watch_mv_outside");
    outside.create("lib/d.spry", module("D", "w = 1"));
    std::fs::rename(outside.join("lib"), s.dir.join("lib")).unwrap();
    s.until("D moved in", |image| image.module("D").unwrap().is_some());
    std::fs::rename(s.dir.join("new"), outside.join("away")).unwrap();
    s.until("A and B moved out", |image| {
        image.module("A").unwrap().is_none() && image.module("B").unwrap().is_none()
    });
}

#[test]
fn watch_a_thousand_files_at_once() {
    let mut s = Session::start(tree("watch_thousand", &[("a.spry", module("A", "x = 1"))]));
    for i in 0..1000 {
        s.dir.create(
            format!("m{}/f{i:04}.spry", i % 10),
            module(&format!("F{i:04}"), "v = 1"),
        );
    }
    s.until("1,000 modules", |image| {
        image.modules().unwrap().len() == 1001
    });
    // And all of them changed at once, in place.
    for i in 0..1000 {
        std::fs::write(
            s.dir.join(format!("m{}/f{i:04}.spry", i % 10)),
            module(&format!("F{i:04}"), "v = 2"),
        )
        .unwrap();
    }
    s.until("1,000 modules changed", |image| {
        (0..1000).all(|i| text(image, &format!("F{i:04}"), "v").as_deref() == Some("v = 2"))
    });
    assert!(s.seen.iter().all(|b| b.build.failed.is_empty()));
}

#[test]
fn watch_a_bad_file_keeps_its_last_good_version_and_is_reported() {
    let mut s = Session::start(tree("watch_bad", &[("a.spry", module("A", "x = 1"))]));
    s.dir
        .create("a.spry", "{\n  _meta = {name = 'A}\n  x = [1\n}\n");
    let batch = s.batch_naming("a.spry");
    let batch = if batch.build.failed.is_empty() {
        s.batch_naming("a.spry") // a first batch saw the file half written
    } else {
        batch
    };
    assert_eq!(batch.build.failed.len(), 1, "{batch:#?}");
    let failure = &batch.build.failed[0];
    assert_eq!(failure.path, "a.spry");
    let at = spry_image::diagnostic::location("a.spry", failure.text(), &failure.errors()[0]);
    assert!(at.starts_with("a.spry:"), "{at}");
    assert_eq!(batch.build.generation, None);
    assert!(
        s.check(has_text("A", "x", "x = 1")),
        "the last good version stays"
    );
    s.dir.create("a.spry", module("A", "x = 2"));
    s.until("fixed", has_text("A", "x", "x = 2"));
}

#[test]
fn watch_ignores_editor_files_and_its_own_writes() {
    let mut s = Session::start(tree("watch_ignores", &[("a.spry", module("A", "x = 1"))]));
    let generation = s.check(|image| image.generation().unwrap());
    for name in [
        "a.spry~",
        "4913",
        ".a.spry.swp",
        "#a.spry#",
        "a.tmp",
        "a.spry.swx",
    ] {
        s.dir.create(name, module("Temp", "t = 1"));
    }
    std::fs::remove_file(s.dir.join("4913")).unwrap();
    // The same bytes written again, as an export of the image would write them.
    s.dir.create("a.spry", module("A", "x = 1"));
    let batch = s.batch_naming("a.spry");
    assert_eq!(batch.build.generation, None, "{batch:#?}");
    assert_eq!(s.check(|image| image.generation().unwrap()), generation);
    for batch in &s.seen {
        assert_eq!(batch.paths, ["a.spry"], "{batch:#?}");
    }
    assert!(s.check(|image| image.module("Temp").unwrap().is_none()));
}

#[test]
fn watch_catches_changes_made_before_it_started_and_gitignore_changes() {
    let dir = tree(
        "watch_start",
        &[
            ("a.spry", module("A", "x = 1")),
            ("b.spry", module("B", "y = 1")),
        ],
    );
    {
        let mut image = create(&dir);
        build_paths(&mut image, &dir, None);
    }
    dir.create("a.spry", module("A", "x = 22"));
    let mut s = Session::start(dir);
    assert_eq!(s.watcher().initial().cause, Cause::Start);
    assert_eq!(s.watcher().initial().build.changed, ["A"]);
    s.dir.create(".gitignore", "b.spry\n");
    s.until("B ignored", |image| image.module("B").unwrap().is_none());
    let rescan = s.seen.iter().find(|b| b.cause == Cause::Rescan).unwrap();
    assert_eq!(rescan.reason.as_deref(), Some(".gitignore changed"));
}

#[test]
fn watch_sy_files_new_changed_renamed_removed_and_a_spryignore() {
    let mut s = Session::start(tree("watch_sy", &[("a.sy", module("A", "x = 1"))]));
    assert_eq!(s.watcher().initial().build.added, ["A"]);
    s.dir.create("lib/b.sy", module("B", "y = 1"));
    s.until("B added", |image| image.module("B").unwrap().is_some());
    s.dir.create("a.sy", module("A", "x = 2"));
    s.until("x = 2", has_text("A", "x", "x = 2"));
    std::fs::rename(s.dir.join("lib/b.sy"), s.dir.join("lib/c.sy")).unwrap();
    s.until("B moved to lib/c.sy", |image| {
        image
            .module("B")
            .unwrap()
            .is_some_and(|m| m.path == "lib/c.sy")
    });
    std::fs::remove_file(s.dir.join("a.sy")).unwrap();
    s.until("A removed", |image| image.module("A").unwrap().is_none());
    // A file that runs on into a keyword-named binding is reported as `build` reports it.
    s.dir.create("r.sy", crate::real_input::RUN_ON);
    let batch = s.batch_naming("r.sy");
    let batch = if batch.build.failed.is_empty() {
        s.batch_naming("r.sy") // a first batch saw the file half written
    } else {
        batch
    };
    assert_eq!(batch.build.failed.len(), 1, "{batch:#?}");
    let failure = &batch.build.failed[0];
    assert_eq!(
        failure.errors()[0].kind,
        spry_image::syntax::SyntaxErrorKind::KeywordRunsOn
    );
    assert_eq!(
        spry_image::diagnostic::location("r.sy", failure.text(), &failure.errors()[0]),
        "r.sy:6:3"
    );
    // A `.spryignore` is a change of what the tree holds: a full build.
    s.dir.create(".spryignore", "lib/\n");
    s.until("B ignored", |image| image.module("B").unwrap().is_none());
    let rescan = s.seen.iter().find(|b| b.cause == Cause::Rescan).unwrap();
    assert_eq!(rescan.reason.as_deref(), Some(".spryignore changed"));
}

// ---------------------------------------------------------------------------------------------
// The command.

/// `spry-image watch --json` running on a tree, its stdout read line by line on a thread.
struct Command {
    child: Child,
    lines: Receiver<String>,
}

impl Command {
    fn start(dir: &Dir) -> Command {
        let mut child = dir
            .command()
            .arg("watch")
            .arg("--json")
            .arg(dir.path())
            .cmd()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        Command { child, lines }
    }

    /// The next JSON line, within [`BOUND`].
    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("no line from watch --json within {BOUND:?}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Lines until one for which `done` holds.
    fn until(&self, done: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = self.next();
            if done(&line) {
                return line;
            }
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    fn terminate(mut self) -> (Option<i32>, String) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                use std::io::Read;
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                return (status.code(), stderr);
            }
            assert!(Instant::now() < deadline, "watch did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn watch_command_prints_json_lines_and_stops_on_sigterm() {
    let dir = tree("watch_cli", &[("a.spry", module("A", "x = 1"))]);
    let watch = Command::start(&dir);
    let first = watch.next();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(first["watching"], root.to_str().unwrap());
    assert_eq!(first["generation"], 1);
    let start = watch.next();
    assert_eq!(start["start"], true);
    assert_eq!(strings(&start["added"]), ["A"]);

    dir.create("a.spry", module("A", "x = 2"));
    let line = watch.until(|l| l["generation"] == 2);
    assert_eq!(strings(&line["changed"]), ["A"]);
    assert_eq!(strings(&line["paths"]), ["a.spry"]);
    assert_eq!(line["files"], 1);
    assert!(line["latency_ms"].as_f64().unwrap() > 0.0, "{line}");

    std::fs::rename(dir.join("a.spry"), dir.join("b.spry")).unwrap();
    let line = watch.until(|l| l["generation"] == 3);
    assert_eq!(line["moved"][0]["module"], "A");
    assert_eq!(line["moved"][0]["from"], "a.spry");
    assert_eq!(line["moved"][0]["to"], "b.spry");

    dir.create("b.spry", "{_meta = {name = 'A} x = (1}\n");
    let line = watch.until(|l| !l["failed"].as_array().unwrap().is_empty());
    assert_eq!(line["generation"], Value::Null);
    let error = line["failed"][0]["error"].as_str().unwrap();
    assert!(error.contains("b.spry:1:"), "{error}");

    let (code, stderr) = watch.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("b.spry:1:"), "{stderr}");
    // The image was left whole and unlocked: the command can open it again.
    let image = Image::open(&dir.join(IMAGE_DIR)).unwrap();
    assert_eq!(text(&image, "A", "x").unwrap(), "x = 2");
    assert_eq!(image.generation().unwrap(), 3);
}

#[test]
fn watch_command_refuses_a_missing_tree_and_a_held_image() {
    let dir = Dir::new("watch_cli_trouble");
    let out = dir
        .command()
        .arg("watch")
        .arg(dir.join("nope"))
        .expect_code(2);
    assert!(out.stderr_str().contains("nope"), "{out}");
    dir.create("a.spry", module("A", "x = 1"));
    let _held = create(&dir);
    let out = dir.command().arg("watch").arg(dir.path()).expect_code(2);
    assert!(out.stderr_str().contains("in use by process"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Lending the image: other commands while a watcher runs.

/// Waits for the watcher's JSON line about the loan to a command whose line holds `what`.
fn lent_to(watch: &Command, what: &str) -> Value {
    watch.until(|l| l["lent"].as_str().is_some_and(|c| c.contains(what)))
}

#[test]
fn watch_lends_the_image_to_other_commands_and_writes_what_they_change() {
    let dir = tree(
        "watch_lend",
        &[
            ("a.spry", module("A", "x = 1\n  y = 1")),
            ("b.spry", module("B", "z = 1")),
        ],
    );
    let watch = Command::start(&dir);
    assert!(watch.next()["watching"].is_string());
    assert_eq!(watch.next()["start"], true);
    let socket = dir.join(IMAGE_DIR).join(spry_image::SOCKET_FILE);
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let meta = std::fs::metadata(&socket).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    // Reading commands work, and print what they print without a watcher.
    let out = dir.command().arg("status").expect_code(0);
    assert!(out.stdout_str().contains("agree"), "{out}");
    let line = lent_to(&watch, " status");
    assert_eq!(strings(&line["written"]), Vec::<String>::new(), "{line}");
    assert_eq!(dir.command().args(["show", "A::x"]).stdout(), b"x = 1\n");
    let out = dir.command().arg("ls").expect_code(0);
    assert!(out.stdout_str().contains("b.spry"), "{out}");
    let out = dir.command().arg("check").expect_code(0);
    assert!(out.stdout_str().contains("digest "), "{out}");
    dir.command().args(["diff", "--exit-code"]).expect_code(0);
    lent_to(&watch, " diff");

    // A put changes the image and the file; the file's change is not taken for an edit.
    let inputs = Dir::new("watch_lend_inputs");
    let text = inputs.create("x.txt", "x = 2");
    let out = dir
        .command()
        .args(["put", "A::x", "--file"])
        .arg(&text)
        .expect_code(0);
    assert!(out.stdout_str().starts_with("put A::x"), "{out}");
    // put returns once the watcher has written the file.
    assert_eq!(
        String::from_utf8(dir.read("a.spry")).unwrap(),
        module("A", "x = 2\n  y = 1")
    );
    let line = lent_to(&watch, " put A::x");
    assert_eq!(strings(&line["written"]), ["a.spry"], "{line}");
    let after_put = line["generation"].as_u64().unwrap();
    assert_eq!(
        String::from_utf8(dir.read("a.spry")).unwrap(),
        module("A", "x = 2\n  y = 1")
    );
    // The export's own write comes back as an event, and changes nothing.
    let echo = watch.until(|l| l.get("paths").is_some());
    assert_eq!(strings(&echo["paths"]), ["a.spry"], "{echo}");
    assert_eq!(echo["generation"], Value::Null, "{echo}");

    // rm likewise.
    dir.command().args(["rm", "A::y"]).expect_code(0);
    assert_eq!(
        String::from_utf8(dir.read("a.spry")).unwrap(),
        "{\n  _meta = {name = 'A}\n  x = 2\n}\n"
    );
    let line = lent_to(&watch, " rm A::y");
    assert_eq!(strings(&line["written"]), ["a.spry"], "{line}");
    assert!(line["generation"].as_u64().unwrap() > after_put);
    assert_eq!(
        String::from_utf8(dir.read("a.spry")).unwrap(),
        "{\n  _meta = {name = 'A}\n  x = 2\n}\n"
    );
    let echo = watch.until(|l| l.get("paths").is_some());
    assert_eq!(echo["generation"], Value::Null, "{echo}");

    // An export runs through the watcher too (into another directory here: the tree is
    // already written).
    let copy = Dir::new("watch_lend_copy");
    dir.command()
        .args(["export", "--to"])
        .arg(copy.path())
        .expect_code(0);
    let line = lent_to(&watch, " export --to");
    assert_eq!(strings(&line["written"]), Vec::<String>::new(), "{line}");
    assert_eq!(copy.read("a.spry"), dir.read("a.spry"));
    assert_eq!(copy.read("b.spry"), dir.read("b.spry"));

    // The watcher still follows the tree.
    dir.create("b.spry", module("B", "z = 2"));
    let line = watch.until(|l| l["changed"].as_array().is_some_and(|c| !c.is_empty()));
    assert_eq!(strings(&line["changed"]), ["B"]);

    // A second watcher does not borrow: it is refused, naming the first.
    let out = dir.command().arg("watch").arg(dir.path()).expect_code(2);
    assert!(out.stderr_str().contains("already watched"), "{out}");

    let (code, stderr) = watch.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("lent the image to process"), "{stderr}");
    assert!(!socket.exists(), "the socket is removed on a clean stop");
    // Tree and image agree, opened directly now.
    let out = dir.command().args(["status"]).expect_code(0);
    assert!(out.stdout_str().contains("agree"), "{out}");
    dir.command().args(["diff", "--exit-code"]).expect_code(0);
}

#[test]
fn watch_serves_borrowers_one_after_another() {
    let dir = tree("watch_lend_queue", &[("a.spry", module("A", "x = 0"))]);
    let watch = Command::start(&dir);
    watch.next();
    watch.next();
    // Several commands at once: each one waits its turn, none fails on the lock.
    let inputs = Dir::new("watch_lend_queue_inputs");
    let children: Vec<Child> = (1..=4)
        .map(|n| {
            let file = inputs.create(format!("{n}.txt"), format!("v{n} = {n}"));
            dir.command()
                .args(["put", &format!("A::v{n}"), "--file"])
                .arg(&file)
                .cmd()
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = || String::from_utf8(dir.read("a.spry")).unwrap();
    let deadline = Instant::now() + BOUND;
    while !(1..=4).all(|n| text().contains(&format!("v{n} = {n}"))) {
        assert!(Instant::now() < deadline, "not all written: {}", text());
        watch.next();
    }
    let (code, stderr) = watch.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let out = dir.command().args(["status"]).expect_code(0);
    assert!(out.stdout_str().contains("agree"), "{out}");
}

#[test]
fn a_stale_socket_harms_neither_commands_nor_the_next_watcher() {
    let dir = tree("watch_stale_socket", &[("a.spry", module("A", "x = 1"))]);
    let held = create(&dir);
    // The socket of a watcher that was killed: nobody listens.
    let socket = dir.join(IMAGE_DIR).join(spry_image::SOCKET_FILE);
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let out = dir.command().arg("status").expect_code(2);
    assert!(out.stderr_str().contains("in use by process"), "{out}");
    drop(held);
    // Nobody holds the image: the stale socket is not even looked at.
    dir.command().arg("ls").expect_code(0);
    // A watcher replaces it, and lends through it.
    let watch = Command::start(&dir);
    watch.next();
    dir.command().arg("ls").expect_code(0);
    lent_to(&watch, " ls");
    let (code, stderr) = watch.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!socket.exists());
}

#[test]
fn a_borrowed_image_returns_with_what_changed_meanwhile() {
    let mut s = Session::start(tree("watch_lend_lib", &[("a.spry", module("A", "x = 1"))]));
    let dir = s.dir.join(IMAGE_DIR);
    assert_eq!(
        s.watcher().lending().unwrap(),
        dir.join(spry_image::SOCKET_FILE)
    );
    {
        // This process borrows it (a second handle on the lock is refused even here).
        let borrowed = spry_image::open_or_borrow(&dir, || Image::open(&dir)).unwrap();
        assert!(borrowed.is_borrowed());
        let mut tx = borrowed.begin(spry_image::image::Origin::Live).unwrap();
        tx.put_definition("A", "x", b"x = 2").unwrap();
        tx.commit().unwrap();
        // Edits on disk while the image is lent queue up.
        s.dir.create("b.spry", module("B", "y = 1"));
    }
    let lent = loop {
        let batch = s.batches.recv_timeout(BOUND).expect("a loan report");
        s.seen.push(batch.clone());
        if batch.cause == Cause::Lent {
            break batch;
        }
    };
    // What queued was built before the loan was reported and exported.
    assert!(
        s.seen.iter().any(|b| b.build.added == ["B"]),
        "{:#?}",
        s.seen
    );
    let loan = lent.lent.unwrap();
    assert_eq!(loan.pid, std::process::id());
    let written: Vec<&str> = loan
        .export
        .written
        .iter()
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(written, ["a.spry"]);
    assert_eq!(s.dir.read("a.spry"), module("A", "x = 2").into_bytes());
    s.until("B", |image| image.module("B").unwrap().is_some());

    // A stop while the image is lent: the borrower keeps it; the watcher stops without it.
    let borrowed = spry_image::open_or_borrow(&dir, || Image::open(&dir)).unwrap();
    let watcher = s.watcher.take().unwrap();
    match watcher.stop() {
        Err(spry_image::Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("{other:?}"),
    }
    assert!(borrowed.module("A").unwrap().is_some());
    assert!(!dir.join(spry_image::SOCKET_FILE).exists());
}

/// Not a test on its own: run by [`only_the_same_user_may_borrow`] as another user, it
/// connects to the socket named by `SPRY_TEST_SOCKET`, asks to borrow, and prints the answer.
#[test]
#[ignore = "run as another user by only_the_same_user_may_borrow"]
fn borrow_as_another_user() {
    use std::io::{Read, Write};
    let Some(path) = std::env::var_os("SPRY_TEST_SOCKET") else {
        return;
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    // The watcher may answer (and close) before reading: the write can fail, the answer
    // is still there to read.
    let _ = stream.write_all(b"borrow 1 intruder\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    println!("answer: {}", answer.trim());
}

#[test]
fn only_the_same_user_may_borrow() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tree("watch_lend_user", &[("a.spry", module("A", "x = 1"))]);
    let watch = Command::start(&dir);
    watch.next();
    watch.next();
    let socket = dir.join(IMAGE_DIR).join(spry_image::SOCKET_FILE);
    // The socket is the owner's alone.
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "note: not root, so no other user to connect as: only the socket's mode is checked"
        );
        return;
    }
    // Opened to everyone by mistake, the watcher still checks who connected.
    let open = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(dir.path(), 0o755);
    open(&dir.join(IMAGE_DIR), 0o755);
    open(&socket, 0o666);
    let (_keep, test_binary) = crate::util::runnable_by_anyone(&std::env::current_exe().unwrap());
    let out = std::process::Command::new(&test_binary)
        .args([
            "--exact",
            "watch::borrow_as_another_user",
            "--ignored",
            "--nocapture",
        ])
        .env("SPRY_TEST_SOCKET", &socket)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("answer: refused: not the same user"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing was lent to it: the next loan is the owner's command.
    assert_eq!(dir.command().args(["show", "A::x"]).stdout(), b"x = 1\n");
    let line = watch.until(|l| l.get("lent").is_some());
    assert!(
        line["lent"].as_str().unwrap().contains(" show A::x"),
        "{line}"
    );
    let (code, stderr) = watch.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_loan_exports_only_what_the_borrower_changed() {
    let dir = tree(
        "watch_lend_only",
        &[
            ("a.spry", module("A", "x = 1")),
            ("b.spry", module("B", "z = 1")),
        ],
    );
    dir.command().args(["build", "."]).expect_code(0);
    // A live edit left unexported on purpose, before the watcher runs.
    let inputs = Dir::new("watch_lend_only_inputs");
    let x = inputs.create("x.txt", "x = 2");
    dir.command()
        .args(["put", "A::x", "--file"])
        .arg(&x)
        .expect_code(0);
    let a_before = dir.read("a.spry");
    let watch = Command::start(&dir);
    watch.next();
    // A reading command exports nothing.
    dir.command().arg("status").expect_code(0);
    let line = lent_to(&watch, " status");
    assert_eq!(strings(&line["written"]), Vec::<&str>::new(), "{line}");
    // A put exports its own module only.
    let z = inputs.create("z.txt", "z = 2");
    dir.command()
        .args(["put", "B::z", "--file"])
        .arg(&z)
        .expect_code(0);
    let line = lent_to(&watch, " put B::z");
    assert_eq!(strings(&line["written"]), ["b.spry"], "{line}");
    assert_eq!(
        dir.read("a.spry"),
        a_before,
        "the earlier edit is still not exported"
    );
    let (code, stderr) = watch.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}

/// Removes a directory the running watcher's store may still be writing a file into (fjall's
/// background flush): `remove_dir_all` then finds the directory not empty, so try again.
fn remove_while_written(path: &std::path::Path) {
    let deadline = Instant::now() + BOUND;
    while let Err(e) = std::fs::remove_dir_all(path) {
        if !path.exists() {
            return;
        }
        assert!(Instant::now() < deadline, "{}: {e}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_watcher_whose_image_is_deleted_stops_and_says_so() {
    let dir = tree("watch_image_deleted", &[("a.spry", module("A", "x = 1"))]);
    let mut watch = Command::start(&dir);
    assert!(watch.next()["watching"].is_string());
    watch.next();
    remove_while_written(&dir.join(IMAGE_DIR));
    // An edit after the deletion: the watcher must not take it into a deleted database.
    dir.create("a.spry", module("A", "x = 2"));
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = watch.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the watcher did not stop");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    use std::io::Read;
    watch
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was deleted while the watcher ran"),
        "{stderr}"
    );
    // The edit is in its file, and a new image takes it.
    assert_eq!(dir.read("a.spry"), module("A", "x = 2").as_bytes());
    dir.command().arg("build").arg(dir.path()).expect_code(0);
    assert_eq!(dir.command().args(["show", "A::x"]).stdout(), b"x = 2\n");
}

#[test]
fn a_repl_definition_reaches_its_file_through_a_running_watcher() {
    let dir = tree(
        "watch_repl",
        &[("a.spry", module("A", "# x's comment\n  x = 1"))],
    );
    let watch = Command::start(&dir);
    assert!(watch.next()["watching"].is_string());
    assert_eq!(watch.next()["start"], true);
    let inputs = Dir::new("watch_repl_inputs");
    let input = inputs.create(
        "input.txt",
        ":module A\ndouble = func [:n * 2]\n:module\nA::double x\n:quit\n",
    );
    let mut repl = dir.command();
    repl.current_dir(dir.path()).arg("repl");
    repl.cmd().stdin(std::fs::File::open(&input).unwrap());
    let out = repl.output();
    assert_eq!(out.code, Some(0), "{out}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["func [:n * 2]", "2"],
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stored A::double"),
        "{out}"
    );
    // The watcher lent the image to the session and wrote the module's file, byte-exact:
    // the other definition and its comment untouched.
    lent_to(&watch, " repl");
    assert_eq!(
        String::from_utf8_lossy(&dir.read("a.spry")),
        module("A", "# x's comment\n  x = 1\n  double = func [:n * 2]")
    );
    let (code, stderr) = watch.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let out = dir.command().args(["build", "."]).output();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to commit"),
        "{out}"
    );
}
