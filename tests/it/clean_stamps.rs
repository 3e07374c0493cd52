//! The clean-stamps file (`src/image/clean_stamps.rs`): a `build` or `status` that finds
//! nothing changed answers from it without opening the image, and says exactly what the path
//! that opens the image says; anything that changed, on either side, is seen by that path.
//!
//! That a command took the quick path is shown by holding the image's lock in this process
//! while it runs: the path that opens the image would stop at the lock.

use std::path::PathBuf;

use spry_image::image::Image;

use crate::image_build::{image_dir, set_mtime};
use crate::util::Dir;

const CLEAN: &str = "clean-stamps";

/// A tree of three modules stamped long ago, built twice: the second build, finding nothing
/// changed, writes the clean-stamps file.
fn clean_tree(name: &str) -> Dir {
    let dir = Dir::new(name);
    for (file, module) in [("a.spry", "A"), ("b.spry", "B"), ("sub/c.sy", "C")] {
        let path = dir.create(
            file,
            format!("{{_meta = {{name = '{module}}} x = 1 y = 2}}\n"),
        );
        set_mtime(&path, 0);
    }
    dir.command().args(["build", "."]).expect_code(0);
    assert!(
        !clean_file(&dir).exists(),
        "a first build's stamps are racy"
    );
    dir.command().args(["build", "."]).expect_code(0);
    assert!(
        clean_file(&dir).exists(),
        "a build that found nothing changed"
    );
    dir
}

fn clean_file(dir: &Dir) -> PathBuf {
    image_dir(dir).join(CLEAN)
}

/// What `args` print (standard output and error) and the exit code.
fn run(dir: &Dir, args: &[&str]) -> (String, String, Option<i32>) {
    let out = dir.command().args(args).output();
    (out.stdout_str(), out.stderr_str(), out.code)
}

const COMMANDS: &[&[&str]] = &[
    &["status"],
    &["status", "--json"],
    &["status", "."],
    &["build", "."],
    &["build", ".", "--json"],
    &["build"],
];

/// Each command's output with the clean-stamps file and without it (the path that opens the
/// image, which writes the file again).
fn quick_and_slow(dir: &Dir) {
    for args in COMMANDS {
        assert!(clean_file(dir).exists());
        let quick = run(dir, args);
        std::fs::remove_file(clean_file(dir)).unwrap();
        let slow = run(dir, args);
        assert_eq!(quick, slow, "{args:?}");
        assert_eq!(quick.2, Some(0), "{args:?}: {quick:?}");
    }
}

#[test]
fn nothing_changed_is_told_without_opening_the_image_and_as_the_image_tells_it() {
    let dir = clean_tree("clean-quick");
    quick_and_slow(&dir);
    let (status, _, _) = run(&dir, &["status"]);
    assert!(
        status.contains("image and tree agree (3 modules)"),
        "{status}"
    );
    // The lock held here: only the quick path can answer.
    let image = Image::open(&image_dir(&dir)).unwrap();
    for args in COMMANDS {
        let (out, err, code) = run(&dir, args);
        assert_eq!(code, Some(0), "{args:?}: {out} {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    drop(image);
}

#[test]
fn a_live_edit_removes_the_file_and_status_shows_it() {
    let dir = clean_tree("clean-put");
    dir.create("put.txt", "x = 5");
    dir.command()
        .args(["put", "A::x", "--file", "put.txt"])
        .expect_code(0);
    assert!(!clean_file(&dir).exists(), "put");
    let (out, _, code) = run(&dir, &["status"]);
    assert!(out.contains("changed:        A (a.spry)"), "{out}");
    assert_eq!(code, Some(0));
    assert!(
        !clean_file(&dir).exists(),
        "the image holds a change the tree does not"
    );
    // Exported: image and tree agree again, once the export's stamp is old enough.
    dir.command().args(["export"]).expect_code(0);
    set_mtime(&dir.join("a.spry"), 5);
    dir.command().args(["build", "."]).expect_code(0);
    let (out, _, _) = run(&dir, &["status"]);
    assert!(out.contains("image and tree agree (3 modules)"), "{out}");
    assert!(clean_file(&dir).exists());
    dir.command().args(["rm", "B::y"]).expect_code(0);
    assert!(!clean_file(&dir).exists(), "rm");
    let (out, _, _) = run(&dir, &["status"]);
    assert!(out.contains("changed:        B (b.spry)"), "{out}");
    let (out, _, _) = run(&dir, &["build", "."]);
    assert!(out.contains("nothing to commit"), "{out}");
    assert!(
        !clean_file(&dir).exists(),
        "a build does not hide a live edit"
    );
}

#[test]
fn a_file_edited_added_or_removed_is_seen() {
    let dir = clean_tree("clean-files");
    // Edited, with its size and modification time kept: its change time moved.
    let path = dir.create("a.spry", "{_meta = {name = 'A} x = 9 y = 2}\n");
    set_mtime(&path, 0);
    let (out, _, _) = run(&dir, &["status"]);
    assert!(out.contains("modified:       A (a.spry)"), "{out}");
    let (out, _, _) = run(&dir, &["build", "."]);
    assert!(out.contains("1 changed"), "{out}");
    assert!(!clean_file(&dir).exists(), "the build committed");
    dir.command().args(["build", "."]).expect_code(0);
    assert!(clean_file(&dir).exists(), "nothing changed since");
    // Added.
    let added = dir.create("d.spry", "{_meta = {name = 'D} z = 1}\n");
    set_mtime(&added, 0);
    let (out, _, _) = run(&dir, &["status"]);
    assert!(out.contains("new file:       D (d.spry)"), "{out}");
    let (out, _, _) = run(&dir, &["build", "."]);
    assert!(out.contains("1 added"), "{out}");
    // Removed.
    std::fs::remove_file(dir.join("sub/c.sy")).unwrap();
    let (out, _, _) = run(&dir, &["status", "--json"]);
    assert!(out.contains("\"file-deleted\""), "{out}");
    let (out, _, _) = run(&dir, &["build", "."]);
    assert!(out.contains("1 removed"), "{out}");
}

#[test]
fn a_file_replaced_with_its_size_and_time_is_seen() {
    let dir = clean_tree("clean-inode");
    // Another file, of the same size and modification time, moved over it (a new inode and
    // change time, as `cp -p` then `mv` leave).
    let other = dir.create("new.tmp", "{_meta = {name = 'A} x = 7 y = 2}\n");
    set_mtime(&other, 0);
    std::fs::rename(&other, dir.join("a.spry")).unwrap();
    let (out, _, _) = run(&dir, &["status"]);
    assert!(out.contains("modified:       A (a.spry)"), "{out}");
    let (out, _, _) = run(&dir, &["build", "."]);
    assert!(out.contains("1 changed"), "{out}");
}

#[test]
fn a_file_changed_within_the_racy_window_is_read() {
    let dir = clean_tree("clean-racy");
    // Modified now, with its size kept: its stamp, taken now too, cannot be trusted.
    dir.create("a.spry", "{_meta = {name = 'A} x = 3 y = 2}\n");
    dir.command().args(["build", "."]).expect_code(0);
    let (out, _, _) = run(&dir, &["status"]);
    assert!(out.contains("image and tree agree (3 modules)"), "{out}");
    assert!(
        !clean_file(&dir).exists(),
        "no clean-stamps file while a stamp is racy"
    );
    // Changed again within the same moment, its size kept.
    dir.create("a.spry", "{_meta = {name = 'A} x = 4 y = 2}\n");
    let (out, _, _) = run(&dir, &["status"]);
    assert!(out.contains("modified:       A (a.spry)"), "{out}");
}

#[test]
fn a_damaged_file_falls_back_to_the_image() {
    let dir = clean_tree("clean-damaged");
    let (expected, _, _) = run(&dir, &["status"]);
    let whole = std::fs::read(clean_file(&dir)).unwrap();
    let mut flipped = whole.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    for damaged in [
        Vec::new(),
        whole[..whole.len() / 2].to_vec(),
        flipped,
        b"garbage".to_vec(),
    ] {
        std::fs::write(clean_file(&dir), &damaged).unwrap();
        // With the lock held, the quick path refuses the file: the image is needed.
        let image = Image::open(&image_dir(&dir)).unwrap();
        let (_, err, code) = run(&dir, &["status"]);
        assert_ne!(code, Some(0), "{err}");
        assert!(err.contains("lock") || err.contains("in use"), "{err}");
        drop(image);
        let (out, err, code) = run(&dir, &["status"]);
        assert_eq!((out.as_str(), code), (expected.as_str(), Some(0)), "{err}");
        assert_eq!(
            std::fs::read(clean_file(&dir)).unwrap(),
            whole,
            "written anew"
        );
    }
}

#[test]
fn an_image_of_the_last_format_has_no_file_and_gets_one() {
    let dir = clean_tree("clean-old");
    let format = image_dir(&dir).join("FORMAT");
    std::fs::remove_file(clean_file(&dir)).unwrap();
    std::fs::write(&format, "spry-image format 4\n").unwrap();
    let (out, _, code) = run(&dir, &["status"]);
    assert!(out.contains("image and tree agree (3 modules)"), "{out}");
    assert_eq!(code, Some(0));
    assert_eq!(
        std::fs::read_to_string(&format).unwrap(),
        "spry-image format 5\n"
    );
    assert!(clean_file(&dir).exists());
    // A file beside an image of another format is not trusted: the image is opened (and
    // here, held, it cannot be).
    let whole = std::fs::read(clean_file(&dir)).unwrap();
    let image = Image::open(&image_dir(&dir)).unwrap();
    std::fs::write(&format, "spry-image format 4\n").unwrap();
    std::fs::write(clean_file(&dir), &whole).unwrap();
    let (_, err, code) = run(&dir, &["status"]);
    assert_ne!(code, Some(0), "{err}");
    drop(image);
}

#[test]
fn a_watchers_build_removes_the_file() {
    use spry_image::{WatchOptions, Watcher};
    let dir = clean_tree("clean-watch");
    let image = Image::open(&image_dir(&dir)).unwrap();
    let watcher = Watcher::start(image, dir.path(), &WatchOptions::default(), |_| {}).unwrap();
    let path = dir.create("a.spry", "{_meta = {name = 'A} x = 8 y = 2}\n");
    set_mtime(&path, 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let taken = || {
        watcher
            .with_image(|image| image.definition_text("A", "x").unwrap() == b"x = 8")
            .unwrap()
    };
    while !taken() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher took the save"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !clean_file(&dir).exists(),
        "the watcher's commit removed it"
    );
    drop(watcher.stop().unwrap());
    let (out, _, _) = run(&dir, &["status"]);
    assert!(out.contains("image and tree agree (3 modules)"), "{out}");
}
