//! The commands that look into an image (`ls`, `show`, `check`) with the real binary: listings,
//! the content digest, a second process refused, and commands without an image.

use std::process::Stdio;
use std::time::{Duration, Instant};

use spry_image::image::{Image, Origin};
use spry_image::store::{FjallStore, Store, Table, Write};

use crate::image_build::{build, copy_tree, edit, image_dir, ls_modules, open, spry_tree, write};
use crate::util::{Dir, Output, repo_path};

/// `check`'s output, checking that its last line is `digest <64 hex digits>`; returns the hex.
fn digest_of(out: &Output) -> String {
    let stdout = out.stdout_str();
    let last = stdout.lines().last().unwrap_or_default();
    let hex = last
        .strip_prefix("digest ")
        .unwrap_or_else(|| panic!("the last line is not the digest\n{out}"));
    assert_eq!(hex.len(), 64, "{out}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{out}");
    hex.to_string()
}

fn check_digest(dir: &Dir) -> String {
    digest_of(&dir.command().arg("check").expect_code(0))
}

#[test]
fn ls_lists_every_module_with_a_header() {
    let dir = spry_tree("ls_all");
    build(&dir, &[], 0);
    let out = dir.command().arg("ls").expect_code(0);
    let stdout = out.stdout_str();
    let header = stdout.lines().next().unwrap();
    for column in ["MODULE", "DEFS", "SIZE", "STORED", "HASH", "PATH"] {
        assert!(header.contains(column), "{column} missing\n{out}");
    }
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 51, "{out}");
    let stack = rows
        .iter()
        .find(|r| r.starts_with("Stack "))
        .unwrap_or_else(|| panic!("no Stack row\n{out}"));
    let cells: Vec<&str> = stack.split_whitespace().collect();
    assert_eq!(cells[1], "16", "Stack has 16 definitions\n{out}");
    assert_eq!(
        cells[2],
        dir.read("collections/stack.spry").len().to_string(),
        "SIZE is the file's size\n{out}"
    );
    assert_eq!(cells.last(), Some(&"collections/stack.spry"), "{out}");
    let demo = rows
        .iter()
        .find(|r| r.starts_with("scripts/demo "))
        .unwrap();
    assert!(demo.ends_with("scripts/demo.spry"), "{out}");
    let names = ls_modules(&dir);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "modules are listed by name");

    // Found from a subdirectory too, as git finds `.git`.
    let out = dir
        .command()
        .current_dir(dir.join("collections"))
        .arg("ls")
        .expect_code(0);
    assert_eq!(out.stdout_str().lines().count(), 52, "{out}");

    // JSON lines: one object per module.
    let out = dir.command().args(["ls", "--json"]).expect_code(0);
    let stdout = out.stdout_str();
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 51);
    let stack = rows.iter().find(|r| r["module"] == "Stack").unwrap();
    assert_eq!(stack["path"], "collections/stack.spry");
    assert_eq!(stack["definitions"], 16);
}

#[test]
fn ls_module_lists_its_definitions_in_file_order() {
    let dir = spry_tree("ls_module");
    build(&dir, &[], 0);
    let out = dir.command().args(["ls", "Stack"]).expect_code(0);
    let stdout = out.stdout_str();
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("NAME"), "{out}");
    let names: Vec<&str> = lines
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "_meta",
            "new",
            "bounded:",
            "push:",
            "pop",
            "top",
            "depth",
            "isEmpty",
            "popN:",
            "swap",
            "dup",
            "over",
            "rot",
            "rpn:",
            "balanced:",
            "printString"
        ],
        "{out}"
    );
    // A definition's SIZE is its text's length.
    let new_row = stdout.lines().find(|l| l.starts_with("new ")).unwrap();
    let size: usize = new_row.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(size, "new = func [{elements = newBlock limit = 0}]".len());

    // A script has no definitions: the header alone.
    let out = dir.command().args(["ls", "scripts/demo"]).expect_code(0);
    assert_eq!(out.stdout_str().lines().count(), 1, "{out}");
    // No such module.
    let out = dir.command().args(["ls", "Nope"]).expect_code(1);
    assert!(out.stderr_str().contains("no module `Nope`"), "{out}");
}

#[test]
fn show_of_what_is_not_there_fails_clearly() {
    let dir = spry_tree("show_missing");
    build(&dir, &[], 0);
    let out = dir.command().args(["show", "Nope"]).expect_code(1);
    assert!(out.stdout.is_empty(), "{out}");
    assert!(
        out.stderr_str().contains("no module `Nope` in the image"),
        "{out}"
    );
    let out = dir.command().args(["show", "Stack::nope"]).expect_code(1);
    assert!(
        out.stderr_str()
            .contains("no definition `Stack::nope` in the image"),
        "{out}"
    );
    let out = dir.command().args(["show", "Nope::push:"]).expect_code(1);
    assert!(out.stderr_str().contains("Nope::push:"), "{out}");
    assert!(!out.stderr_str().contains("panicked"), "{out}");
}

#[test]
fn commands_outside_any_image_say_how_to_make_one() {
    let dir = Dir::new("no_image");
    for args in [
        &["ls"][..],
        &["show", "Stack"],
        &["check"],
        &["ls", "Stack"],
    ] {
        let out = dir.command().args(args).expect_code(2);
        let stderr = out.stderr_str();
        assert!(stderr.contains("no image"), "{out}");
        assert!(stderr.contains("spry-image build"), "{out}");
        assert!(out.stdout.is_empty(), "{out}");
    }
    // Looking did not make one.
    assert!(!image_dir(&dir).exists());
    // `--image` naming a directory that holds none.
    let out = dir
        .command()
        .arg("ls")
        .arg("--image")
        .arg(dir.join("nowhere"))
        .expect_code(2);
    assert!(out.stderr_str().contains("not an image"), "{out}");
    assert!(out.stderr_str().contains("spry-image build"), "{out}");
    assert!(!dir.join("nowhere").exists());
}

#[test]
fn digests_agree_for_one_tree_however_it_was_built() {
    // In one go.
    let whole = spry_tree("digest_whole");
    build(&whole, &[], 0);
    let digest = check_digest(&whole);

    // Part by part, with plain builds in between.
    let parts = spry_tree("digest_parts");
    build(&parts, &["--only", "collections/**"], 0);
    build(&parts, &[], 0);
    let partial = check_digest(&parts);
    assert_ne!(partial, digest, "a part is not the whole");
    build(&parts, &["--only", "math/**", "--only", "json/**"], 0);
    build(&parts, &[], 0);
    build(&parts, &["--only", "scripts/**"], 0);
    build(&parts, &["--all"], 0);
    build(&parts, &[], 0);
    assert_eq!(check_digest(&parts), digest);

    // A copy of the tree elsewhere (deeper, another name): paths are relative.
    let elsewhere = Dir::new("digest_elsewhere");
    let root = elsewhere.join("deeper/tree");
    copy_tree(&repo_path("spry-src"), &root);
    let out = elsewhere.command().arg("build").arg(&root).expect_code(0);
    assert!(root.join(".spry-image").is_dir(), "{out}");
    let out = elsewhere
        .command()
        .current_dir(&root)
        .arg("check")
        .expect_code(0);
    assert_eq!(digest_of(&out), digest);

    // The library computes the same digest.
    {
        let image = open(&whole);
        assert_eq!(image.digest().unwrap().to_hex(), digest);
        assert_eq!(image.check().unwrap().digest, digest);
    }

    // An edit changes it; reverting the edit brings it back.
    let original = whole.read("strings/glob.spry");
    edit(
        &whole,
        "strings/glob.spry",
        "name = 'Glob",
        "name = 'Glob ",
        10,
    );
    build(&whole, &[], 0);
    let edited = check_digest(&whole);
    assert_ne!(edited, digest);
    write(&whole, "strings/glob.spry", &original, 20);
    let (json, out) = build(&whole, &[], 0);
    assert_eq!(json["changed"], serde_json::json!(["Glob"]), "{out}");
    assert_eq!(check_digest(&whole), digest);

    // A layout-only edit (a blank line between definitions) changes it too.
    edit(
        &whole,
        "collections/stack.spry",
        "\n  pop = method [",
        "\n\n  pop = method [",
        30,
    );
    build(&whole, &[], 0);
    assert_ne!(check_digest(&whole), digest);
}

/// Runs the command, failing the test if it has not ended within `limit`.
fn run_with_limit(mut cmd: std::process::Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still runs after {limit:?}: it waits for the image instead of failing");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    let out = child.wait_with_output().unwrap();
    (
        Output {
            command: format!("{cmd:?}"),
            stdout: out.stdout,
            stderr: out.stderr,
            code: out.status.code(),
        },
        elapsed,
    )
}

#[test]
fn a_second_process_is_refused_at_once() {
    let dir = spry_tree("locked");
    build(&dir, &[], 0);
    let holder = Image::open(&image_dir(&dir)).unwrap();
    let pid = std::process::id().to_string();
    for args in [
        &["ls"][..],
        &["show", "Stack"],
        &["check"],
        &["build", "."],
        &["build", "--only", "math/**", "."],
    ] {
        let mut command = dir.command();
        command.args(args);
        let cmd = std::mem::replace(command.cmd(), std::process::Command::new("true"));
        let (out, elapsed) = run_with_limit(cmd, Duration::from_secs(20));
        assert_eq!(out.code, Some(2), "{args:?}\n{out}");
        assert!(
            elapsed < Duration::from_secs(10),
            "{args:?} took {elapsed:?}"
        );
        let stderr = out.stderr_str();
        assert!(
            stderr.contains(&format!("in use by process {pid}")),
            "the error names the holder's pid {pid}\n{out}"
        );
        assert!(!stderr.contains("panicked"), "{out}");
        assert!(out.stdout.is_empty(), "{out}");
    }
    // The holder's image is untouched, and so is the part.
    assert!(holder.record().part.is_empty());
    assert_eq!(holder.generation().unwrap(), 1);
    drop(holder);
    // Released: the next process gets in.
    assert_eq!(ls_modules(&dir).len(), 51);
}

#[test]
fn a_newer_format_is_refused_by_the_binary() {
    let dir = spry_tree("newer_format_cli");
    build(&dir, &[], 0);
    std::fs::write(image_dir(&dir).join("FORMAT"), "spry-image format 99\n").unwrap();
    for args in [&["ls"][..], &["build", "."]] {
        let out = dir.command().args(args).expect_code(2);
        let stderr = out.stderr_str();
        assert!(stderr.contains("format version 99"), "{out}");
        let supported = format!("format version {}", spry_image::image::FORMAT_VERSION);
        assert!(stderr.contains(&supported), "{out}");
    }
    // Refused, and left as it was.
    assert_eq!(
        std::fs::read_to_string(image_dir(&dir).join("FORMAT")).unwrap(),
        "spry-image format 99\n"
    );
}

#[test]
fn check_names_a_damaged_text_and_still_prints_the_digest_last() {
    let dir = spry_tree("check_damage");
    build(&dir, &[], 0);
    let clean = check_digest(&dir);
    let hash = {
        let image = open(&dir);
        image.definition("Stack", "rpn:").unwrap().unwrap().hash
    };
    {
        let store = FjallStore::open(&image_dir(&dir).join("db")).unwrap();
        assert!(store.get(Table::Blobs, &hash.0).unwrap().is_some());
        let damaged = spry_image::image::compress(b"rpn: = 666");
        store
            .commit(vec![Write::put(Table::Blobs, hash.0.to_vec(), damaged)])
            .unwrap();
    }
    let out = dir.command().arg("check").expect_code(1);
    let stdout = out.stdout_str();
    assert!(
        stdout.contains("problem: definition `Stack::rpn:`"),
        "check names the definition\n{out}"
    );
    assert!(stdout.contains(&hash.short(12)), "{out}");
    // The digest is of content by hash: the damage does not hide it.
    assert_eq!(digest_of(&out), clean);
    // The damaged text is refused, not shown; the rest still shows.
    let out = dir.command().args(["show", "Stack::rpn:"]).expect_code(2);
    assert!(out.stderr_str().contains("damaged image"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(
        dir.command().args(["show", "Queue"]).stdout(),
        dir.read("collections/queue.spry")
    );
}

#[test]
fn a_live_edit_shows_through_the_binary() {
    let dir = spry_tree("live_show");
    build(&dir, &[], 0);
    {
        let image = open(&dir);
        let mut tx = image.begin(Origin::Live).unwrap();
        tx.put_definition("Tiny", "triple", b"triple = func [:n n * 3]")
            .unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(
        dir.command().args(["show", "Tiny::triple"]).stdout(),
        b"triple = func [:n n * 3]\n"
    );
    assert_eq!(
        dir.command().args(["show", "Tiny"]).stdout(),
        b"{ _meta = {name = 'Tiny version = \"0.1\"} answer = 42 double = func [:n n * 2] empty = () nothing = [] blank = {} triple = func [:n n * 3] }\n"
    );
    let out = dir.command().args(["ls", "Tiny"]).expect_code(0);
    assert_eq!(
        out.stdout_str()
            .lines()
            .last()
            .unwrap()
            .split_whitespace()
            .next(),
        Some("triple"),
        "{out}"
    );
}
