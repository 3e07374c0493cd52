//! Building an image from a tree with the real binary: every file becomes a unit that gives its
//! bytes back, rebuilds are incremental and report what changed, partial builds keep to their
//! part, and bad files fail alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use spry_image::image::{IMAGE_DIR, Image};

use crate::util::{Dir, Output, files_with_extension, repo_path, show};

/// The time every copied file is stamped with: long ago, so no build takes it for a file
/// modified while it was being read.
pub(crate) fn base_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_600_000_000)
}

/// Sets the modification time of `path` to `base_time() + secs`.
pub(crate) fn set_mtime(path: &Path, secs: u64) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.set_modified(base_time() + Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("cannot set the time of {}: {e}", path.display()));
}

/// Copies the source tree at `from` into `to` (created), every file stamped with
/// `base_time()`: only what git would track, never an image (a copied image would still serve
/// its old tree), so a test never reaches back into the checkout.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    for relative in crate::util::tracked_files(from) {
        let target = to.join(&relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&relative), &target).unwrap();
        set_mtime(&target, 0);
    }
    std::fs::create_dir_all(to).unwrap();
}

/// A fresh directory holding a copy of `spry-src`.
pub(crate) fn spry_tree(name: &str) -> Dir {
    let dir = Dir::new(name);
    copy_tree(&repo_path("spry-src"), dir.path());
    dir
}

/// The image directory of the tree in `dir`.
pub(crate) fn image_dir(dir: &Dir) -> PathBuf {
    dir.join(IMAGE_DIR)
}

/// Opens the tree's image in this process (drop it before running the binary again).
pub(crate) fn open(dir: &Dir) -> Image {
    Image::open(&image_dir(dir)).unwrap()
}

/// Writes `contents` to `relative` and stamps it `base_time() + secs`.
pub(crate) fn write(dir: &Dir, relative: &str, contents: impl AsRef<[u8]>, secs: u64) {
    let path = dir.create(relative, contents);
    set_mtime(&path, secs);
}

/// Replaces the one occurrence of `from` in `relative` with `to`, stamped `base_time() + secs`.
pub(crate) fn edit(dir: &Dir, relative: &str, from: &str, to: &str, secs: u64) {
    let text = String::from_utf8(dir.read(relative)).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` is not in {relative} exactly once"
    );
    write(dir, relative, text.replacen(from, to, 1), secs);
}

/// Runs `spry-image build --json ARGS ROOT`, expects exit code `code`, returns the summary.
pub(crate) fn build(dir: &Dir, args: &[&str], code: i32) -> (Value, Output) {
    let out = dir
        .command()
        .arg("build")
        .arg("--json")
        .args(args)
        .arg(dir.path())
        .expect_code(code);
    let stdout = out.stdout_str();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected\n{out}");
    let json: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("build --json printed no JSON ({e})\n{out}"));
    (json, out)
}

/// The names in a JSON array of strings.
pub(crate) fn names(json: &Value, field: &str) -> Vec<String> {
    json[field]
        .as_array()
        .unwrap_or_else(|| panic!("`{field}` is not an array in {json}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The modules `ls` lists (first column, header left out).
pub(crate) fn ls_modules(dir: &Dir) -> Vec<String> {
    let out = dir.command().arg("ls").expect_code(0);
    let stdout = out.stdout_str();
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("MODULE"), "no header\n{out}");
    lines
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// `spry-image show TARGET`'s stdout.
pub(crate) fn show_text(dir: &Dir, target: &str) -> Vec<u8> {
    dir.command().arg("show").arg(target).stdout()
}

/// The unit a file of spry-src holds: `scripts/x` for scripts, else its `_meta` name.
fn unit_name(root: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(root)
        .unwrap()
        .to_str()
        .unwrap()
        .replace('\\', "/");
    if rel.starts_with("scripts/") {
        return rel.strip_suffix(".spry").unwrap().to_string();
    }
    let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
    let at = text.find("name = '").unwrap() + "name = '".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

const COLLECTIONS: [&str; 7] = [
    "Bag",
    "Interval",
    "LinkedList",
    "OrderedSet",
    "Queue",
    "Sorting",
    "Stack",
];

#[test]
fn every_file_becomes_a_unit_that_shows_byte_for_byte() {
    let dir = spry_tree("every_file");
    let (json, _) = build(&dir, &[], 0);
    let files = files_with_extension(dir.path(), "spry");
    assert_eq!(files.len(), 51, "spry-src changed: fix this test");
    let mut expected: Vec<String> = files.iter().map(|f| unit_name(dir.path(), f)).collect();
    expected.sort();
    let mut added = names(&json, "added");
    added.sort();
    assert_eq!(added, expected);
    assert_eq!(json["files"], 51);
    assert_eq!(ls_modules(&dir), expected, "ls lists every unit, by name");

    // The unusual files are what they claim to be, so that the round trip below covers them.
    let csv = dir.read("text/csv.spry");
    assert!(csv.windows(2).filter(|w| w == b"\r\n").count() > 10);
    assert!(dir.read("text/greetings.spry").starts_with(b"\xEF\xBB\xBF"));
    assert!(!dir.read("time/stopwatch.spry").ends_with(b"\n"));
    assert!(dir.read("collections/linked_list.spry").contains(&b'\t'));
    assert!(
        dir.read("collections/bag.spry")
            .windows(2)
            .any(|w| w == b" \n")
    );

    for file in &files {
        let name = unit_name(dir.path(), file);
        let bytes = std::fs::read(file).unwrap();
        let shown = show_text(&dir, &name);
        assert!(
            shown == bytes,
            "show {name} differs from {}\nshown: {}\nfile:  {}",
            file.display(),
            show(&shown),
            show(&bytes)
        );
    }
}

#[test]
fn definitions_show_their_exact_text_with_the_comments_above() {
    let dir = spry_tree("definition_text");
    build(&dir, &[], 0);
    let cases: [(&str, &[u8]); 7] = [
        (
            "Stack::bounded:",
            b"# A stack that refuses to grow past n elements; 0 means unbounded.\n  bounded: = func [:n\n    s = (Stack::new)\n    s at: 'limit put: n\n    ^ s\n  ]\n",
        ),
        ("Stack::new", b"new = func [{elements = newBlock limit = 0}]\n"),
        (
            "Stack::top",
            b"# Answer the top element without removing it, nil when empty.\n  top = method [\n    @elements empty? then: [^ nil]\n    @elements last\n  ]\n",
        ),
        ("Tiny::double", b"double = func [:n n * 2]\n"),
        ("Tiny::blank", b"blank = {}\n"),
        (
            "LinkedList::from:",
            b"# Build a list from a block, keeping order.\n\tfrom: = func [:block\n\t\tlist = (LinkedList::new)\n\t\tblock map: [:each list addLast: each]\n\t\tlist\n\t]\n",
        ),
        ("Csv::separator", b"separator = \",\"\n"),
    ];
    for (target, expected) in cases {
        let shown = show_text(&dir, target);
        assert!(
            shown == expected,
            "show {target}\nshown:    {}\nexpected: {}",
            show(&shown),
            show(expected)
        );
    }
    // Two comment lines in a CRLF file, the line ends kept.
    let parse_line = show_text(&dir, "Csv::parseLine:");
    assert!(
        parse_line.starts_with(
            b"# Parse one record. Quoted fields may contain the separator and doubled\r\n  # quotes: a,\"b,c\""
        ),
        "{}",
        show(&parse_line)
    );
    assert!(parse_line.ends_with(b"]\n"), "{}", show(&parse_line));
    // A comment separated from the definition by blank lines is not the definition's.
    let bfs = show_text(&dir, "Queue::bfs:from:");
    assert!(
        bfs.starts_with(b"# Breadth-first walk over a graph"),
        "{}",
        show(&bfs)
    );
    assert!(!String::from_utf8_lossy(&bfs).contains("Graph helpers"));

    // Every definition of every module is a piece of its file, in file order, and the file is
    // nothing but its pieces.
    let image = open(&dir);
    for (module, record) in image.modules().unwrap() {
        let file = dir.read(&record.path);
        let mut at = 0;
        for (name, _) in image.definitions(&module).unwrap() {
            let text = image.definition_text(&module, &name).unwrap();
            let found = file[at..]
                .windows(text.len())
                .position(|w| w == text.as_slice())
                .unwrap_or_else(|| panic!("{module}::{name} is not in its file after {at}"));
            at += found + text.len();
        }
        assert_eq!(image.module_text(&module).unwrap(), file, "{module}");
    }
}

#[test]
fn editing_one_definition_changes_only_its_module() {
    let dir = spry_tree("edit_one");
    let (first, _) = build(&dir, &[], 0);
    assert_eq!(first["generation"], 1);
    edit(
        &dir,
        "collections/stack.spry",
        "^ error \"Stack overflow\"",
        "^ error \"Stack is full\"",
        10,
    );
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "changed"), ["Stack"], "{out}");
    assert!(names(&json, "added").is_empty(), "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(json["moved"], serde_json::json!([]), "{out}");
    assert_eq!(json["unchanged"], 50, "{out}");
    assert_eq!(json["read"], 1, "only the edited file is read\n{out}");
    assert_eq!(json["generation"], 2, "{out}");

    let push = String::from_utf8(show_text(&dir, "Stack::push:")).unwrap();
    assert!(push.contains("Stack is full"), "{push}");
    assert_eq!(show_text(&dir, "Stack"), dir.read("collections/stack.spry"));

    let image = open(&dir);
    assert_eq!(image.generation().unwrap(), 2);
    for (module, record) in image.modules().unwrap() {
        // Only a text changed, not the module's order or layout: its record stays as it was
        // (an edit writes its definition's record alone).
        assert_eq!(record.generation, 1, "{module}");
        for (name, def) in image.definitions(&module).unwrap() {
            let expected = if module == "Stack" && name == "push:" {
                2
            } else {
                1
            };
            assert_eq!(def.generation, expected, "{module}::{name}");
        }
    }
    let history = image.history("Stack", "push:").unwrap();
    assert_eq!(history.iter().map(|(g, _)| *g).collect::<Vec<_>>(), [1, 2]);
    assert!(history.iter().all(|(_, h)| h.hash.is_some()));
    assert_eq!(image.history("Stack", "pop").unwrap().len(), 1);
}

#[test]
fn adding_a_file_adds_one_module() {
    let dir = spry_tree("add_one");
    build(&dir, &[], 0);
    let deque =
        "# A double-ended queue.\n{\n  _meta = {name = 'Deque}\n\n  new = func [{items = []}]\n}\n";
    write(&dir, "collections/deque.spry", deque, 10);
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "added"), ["Deque"], "{out}");
    assert!(names(&json, "changed").is_empty(), "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(json["unchanged"], 51, "{out}");
    assert_eq!(show_text(&dir, "Deque"), deque.as_bytes());
    assert_eq!(
        show_text(&dir, "Deque::new"),
        b"new = func [{items = []}]\n"
    );
}

#[test]
fn removing_a_file_removes_its_module_and_keeps_its_history() {
    let dir = spry_tree("remove_one");
    build(&dir, &[], 0);
    let original = dir.read("collections/stack.spry");
    std::fs::remove_file(dir.join("collections/stack.spry")).unwrap();
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "removed"), ["Stack"], "{out}");
    assert!(names(&json, "added").is_empty(), "{out}");
    assert!(names(&json, "changed").is_empty(), "{out}");
    assert_eq!(json["unchanged"], 50, "{out}");
    assert!(!ls_modules(&dir).contains(&"Stack".to_string()));
    dir.command().args(["show", "Stack"]).expect_code(1);

    {
        let image = open(&dir);
        assert!(image.module("Stack").unwrap().is_none());
        assert!(image.definition("Stack", "push:").unwrap().is_none());
        let history = image.history("Stack", "push:").unwrap();
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[0].0, 1);
        assert!(history[0].1.hash.is_some());
        assert_eq!(history[1].0, 2);
        assert!(
            history[1].1.hash.is_none(),
            "the last version is the removal"
        );
        // The removed text is still there to be brought back.
        let old = image.text(&history[0].1.hash.unwrap()).unwrap();
        assert!(String::from_utf8_lossy(&old).starts_with("push: = method"));
        let check = image.check().unwrap();
        assert!(check.is_ok(), "{:?}", check.problems);
    }

    // Back again: a third version.
    write(&dir, "collections/stack.spry", &original, 20);
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "added"), ["Stack"], "{out}");
    assert_eq!(show_text(&dir, "Stack"), original);
    let image = open(&dir);
    let generations: Vec<u64> = image
        .history("Stack", "push:")
        .unwrap()
        .iter()
        .map(|(g, _)| *g)
        .collect();
    assert_eq!(generations, [1, 2, 3]);
}

#[test]
fn moving_a_file_is_a_move_not_a_removal() {
    let dir = spry_tree("move_one");
    build(&dir, &[], 0);
    let text = dir.read("collections/stack.spry");
    std::fs::create_dir_all(dir.join("structures")).unwrap();
    std::fs::rename(
        dir.join("collections/stack.spry"),
        dir.join("structures/lifo.spry"),
    )
    .unwrap();
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(
        json["moved"],
        serde_json::json!([{"module": "Stack", "from": "collections/stack.spry", "to": "structures/lifo.spry"}]),
        "{out}"
    );
    assert!(names(&json, "added").is_empty(), "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert!(names(&json, "changed").is_empty(), "{out}");
    assert_eq!(json["unchanged"], 50, "{out}");
    assert_eq!(show_text(&dir, "Stack"), text);

    {
        let image = open(&dir);
        assert_eq!(
            image.module("Stack").unwrap().unwrap().path,
            "structures/lifo.spry"
        );
        // The definitions did not change: same generation, one version in history.
        for (name, def) in image.definitions("Stack").unwrap() {
            assert_eq!(def.generation, 1, "Stack::{name}");
            assert_eq!(image.history("Stack", &name).unwrap().len(), 1, "{name}");
        }
        let paths = image.paths().unwrap();
        assert!(!paths.contains_key("collections/stack.spry"));
        assert_eq!(paths["structures/lifo.spry"].module, "Stack");
        assert!(image.check().unwrap().is_ok());
    }

    // Nothing left to do afterwards.
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(json["generation"], Value::Null, "{out}");
    assert_eq!(json["read"], 0, "{out}");
}

#[test]
fn swapping_two_files_moves_both_modules() {
    let dir = spry_tree("swap_two");
    build(&dir, &[], 0);
    let stack = dir.read("collections/stack.spry");
    let queue = dir.read("collections/queue.spry");
    write(&dir, "collections/stack.spry", &queue, 10);
    write(&dir, "collections/queue.spry", &stack, 10);
    let (json, out) = build(&dir, &[], 0);
    let mut moved: Vec<(String, String, String)> = json["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["module"].as_str().unwrap().to_string(),
                m["from"].as_str().unwrap().to_string(),
                m["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    moved.sort();
    assert_eq!(
        moved,
        [
            (
                "Queue".to_string(),
                "collections/queue.spry".to_string(),
                "collections/stack.spry".to_string()
            ),
            (
                "Stack".to_string(),
                "collections/stack.spry".to_string(),
                "collections/queue.spry".to_string()
            ),
        ],
        "{out}"
    );
    assert!(names(&json, "added").is_empty(), "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(show_text(&dir, "Stack"), stack);
    assert_eq!(show_text(&dir, "Queue"), queue);
    let image = open(&dir);
    let paths = image.paths().unwrap();
    assert_eq!(paths["collections/stack.spry"].module, "Queue");
    assert_eq!(paths["collections/queue.spry"].module, "Stack");
    assert!(image.check().unwrap().is_ok());
}

#[test]
fn touching_a_file_commits_nothing() {
    let dir = spry_tree("touch_one");
    build(&dir, &[], 0);
    set_mtime(&dir.join("collections/stack.spry"), 30);
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(json["generation"], Value::Null, "{out}");
    assert_eq!(json["read"], 1, "the touched file is read again\n{out}");
    assert!(names(&json, "changed").is_empty(), "{out}");
    assert_eq!(json["unchanged"], 51, "{out}");
    assert!(out.stdout_str().contains("\"generation\":null"));
    {
        let image = open(&dir);
        assert_eq!(image.generation().unwrap(), 1);
        assert_eq!(image.log().unwrap().len(), 1);
    }
    // Its new stamp was kept: the next build reads nothing.
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(json["read"], 0, "{out}");
    assert_eq!(json["generation"], Value::Null, "{out}");
}

#[test]
fn a_file_whose_module_is_renamed_removes_the_old_and_adds_the_new() {
    let dir = spry_tree("rename_module");
    build(&dir, &[], 0);
    edit(
        &dir,
        "collections/stack.spry",
        "name = 'Stack",
        "name = 'Lifo",
        10,
    );
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "removed"), ["Stack"], "{out}");
    assert_eq!(names(&json, "added"), ["Lifo"], "{out}");
    assert_eq!(json["moved"], serde_json::json!([]), "{out}");
    assert!(names(&json, "changed").is_empty(), "{out}");
    assert_eq!(show_text(&dir, "Lifo"), dir.read("collections/stack.spry"));
    dir.command().args(["show", "Stack"]).expect_code(1);
    let image = open(&dir);
    assert_eq!(
        image.paths().unwrap()["collections/stack.spry"].module,
        "Lifo"
    );
    assert!(image.check().unwrap().is_ok());
}

#[test]
fn a_partial_build_holds_its_part_and_keeps_to_it() {
    let dir = spry_tree("partial");
    let (json, out) = build(&dir, &["--only", "collections/**"], 0);
    assert_eq!(names(&json, "added"), COLLECTIONS, "{out}");
    assert_eq!(json["files"], 7, "{out}");
    assert_eq!(names(&json, "part"), ["collections/**"], "{out}");
    assert_eq!(ls_modules(&dir), COLLECTIONS);
    dir.command().args(["show", "Vector"]).expect_code(1);

    // Outside the part: an edit and a deletion. Inside: an edit.
    edit(
        &dir,
        "math/vector.spry",
        "_meta = {",
        "_meta = {\n    edited = true",
        10,
    );
    std::fs::remove_file(dir.join("text/csv.spry")).unwrap();
    edit(
        &dir,
        "collections/bag.spry",
        "name = 'Bag",
        "name = 'Bag ",
        10,
    );
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "changed"), ["Bag"], "{out}");
    assert!(names(&json, "added").is_empty(), "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(json["files"], 7, "{out}");
    assert_eq!(json["read"], 1, "{out}");
    assert_eq!(names(&json, "part"), ["collections/**"], "{out}");
    assert_eq!(ls_modules(&dir), COLLECTIONS);
    {
        let image = open(&dir);
        let paths = image.paths().unwrap();
        assert_eq!(paths.len(), 7, "{:?}", paths.keys());
        assert!(paths.keys().all(|p| p.starts_with("collections/")));
    }

    // `--only` adds to the part.
    let (json, out) = build(&dir, &["--only", "math/**"], 0);
    let math = [
        "Fraction",
        "MathUtil",
        "Primes",
        "Random",
        "Statistics",
        "Vector",
    ];
    assert_eq!(names(&json, "added"), math, "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(json["unchanged"], 7, "{out}");
    assert_eq!(names(&json, "part"), ["collections/**", "math/**"], "{out}");
    let mut both: Vec<&str> = COLLECTIONS.iter().chain(math.iter()).copied().collect();
    both.sort();
    assert_eq!(ls_modules(&dir), both);
    assert_eq!(show_text(&dir, "Vector"), dir.read("math/vector.spry"));

    // `--all` makes it whole: everything left is added, the deleted file is simply absent.
    let (json, out) = build(&dir, &["--all"], 0);
    assert_eq!(names(&json, "added").len(), 50 - 13, "{out}");
    assert!(!names(&json, "added").contains(&"Csv".to_string()), "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(json["part"], serde_json::json!([]), "{out}");
    assert_eq!(json["files"], 50, "{out}");
    assert_eq!(ls_modules(&dir).len(), 50);
    let image = open(&dir);
    assert!(image.record().part.is_empty());
    assert!(image.check().unwrap().is_ok());
}

#[test]
fn deleting_a_file_outside_the_part_does_nothing() {
    let dir = spry_tree("partial_delete");
    build(&dir, &["--only", "collections/**"], 0);
    std::fs::remove_file(dir.join("math/vector.spry")).unwrap();
    std::fs::remove_dir_all(dir.join("text")).unwrap();
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(json["generation"], Value::Null, "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(json["unchanged"], 7, "{out}");
    let image = open(&dir);
    assert_eq!(image.generation().unwrap(), 1);
    assert_eq!(image.modules().unwrap().len(), 7);
}

#[test]
fn a_file_with_a_syntax_error_fails_alone() {
    let dir = spry_tree("syntax_error");
    write(
        &dir,
        "collections/broken.spry",
        "{\n  _meta = {name = 'Broken}\n  x = [1 2\n  y = 3\n}\n",
        0,
    );
    let (json, out) = build(&dir, &[], 1);
    let stderr = out.stderr_str();
    assert!(
        stderr.contains("collections/broken.spry:5:1"),
        "the error names path:line:col\n{out}"
    );
    assert_eq!(
        names(&json, "added").len(),
        51,
        "every other module is built\n{out}"
    );
    assert!(!names(&json, "added").contains(&"Broken".to_string()));
    let failed = json["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(failed[0]["path"], "collections/broken.spry");
    assert!(!stderr.contains("panicked"), "{out}");
    dir.command().args(["show", "Broken"]).expect_code(1);
    // The plain summary says so too.
    let out = dir.command().arg("build").arg(dir.path()).expect_code(1);
    assert!(out.stdout_str().contains("1 failed"), "{out}");
}

#[test]
fn a_broken_file_keeps_its_last_good_version_until_fixed() {
    let dir = spry_tree("broken_keeps");
    build(&dir, &[], 0);
    let good = dir.read("collections/stack.spry");
    edit(
        &dir,
        "collections/stack.spry",
        "pop = method [",
        "pop = method [[",
        10,
    );
    let (json, out) = build(&dir, &[], 1);
    assert!(
        out.stderr_str().contains("collections/stack.spry:"),
        "{out}"
    );
    assert!(names(&json, "changed").is_empty(), "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(json["generation"], Value::Null, "{out}");
    assert_eq!(
        show_text(&dir, "Stack"),
        good,
        "the last good version stays"
    );
    dir.command().arg("check").expect_code(0);

    // Still broken: still reported, still kept.
    let (_, out) = build(&dir, &[], 1);
    assert!(
        out.stderr_str().contains("collections/stack.spry:"),
        "{out}"
    );
    assert_eq!(show_text(&dir, "Stack"), good);

    // Fixed (differently from before): taken.
    edit(
        &dir,
        "collections/stack.spry",
        "pop = method [[",
        "pop = method [ ",
        20,
    );
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "changed"), ["Stack"], "{out}");
    assert_eq!(show_text(&dir, "Stack"), dir.read("collections/stack.spry"));
    assert_ne!(show_text(&dir, "Stack"), good);
}

#[test]
fn two_files_claiming_one_module_in_a_new_image_go_by_path_order() {
    let dir = spry_tree("claim_fresh");
    let original = dir.read("collections/stack.spry");
    let copy = String::from_utf8(original.clone())
        .unwrap()
        .replace("Stack overflow", "Stack copy overflow");
    write(&dir, "a/stack_copy.spry", &copy, 0);
    let (json, out) = build(&dir, &[], 1);
    let stderr = out.stderr_str();
    assert!(stderr.contains("a/stack_copy.spry"), "{out}");
    assert!(stderr.contains("collections/stack.spry"), "{out}");
    assert!(
        stderr.contains("`a/stack_copy.spry` keeps it"),
        "the first by path order keeps it\n{out}"
    );
    let failed = json["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(failed[0]["path"], "collections/stack.spry");
    assert_eq!(names(&json, "added").len(), 51, "{out}");
    assert_eq!(show_text(&dir, "Stack"), copy.as_bytes());
    let image = open(&dir);
    assert_eq!(
        image.module("Stack").unwrap().unwrap().path,
        "a/stack_copy.spry"
    );
}

#[test]
fn two_files_claiming_one_module_the_holder_keeps_it() {
    let dir = spry_tree("claim_holder");
    build(&dir, &[], 0);
    let original = dir.read("collections/stack.spry");
    let copy = String::from_utf8(original.clone())
        .unwrap()
        .replace("Stack overflow", "Stack copy overflow");
    // Sorts before the holder's path, so path order alone would pick it.
    write(&dir, "a/stack_copy.spry", &copy, 10);
    let (json, out) = build(&dir, &[], 1);
    let stderr = out.stderr_str();
    assert!(stderr.contains("a/stack_copy.spry"), "{out}");
    assert!(
        stderr.contains("`collections/stack.spry` keeps it"),
        "the image's holder keeps it\n{out}"
    );
    assert!(names(&json, "changed").is_empty(), "{out}");
    assert!(json["moved"].as_array().unwrap().is_empty(), "{out}");
    assert_eq!(show_text(&dir, "Stack"), original);
    // The claim is refused again on every build while both files are there.
    let (_, out) = build(&dir, &[], 1);
    assert!(out.stderr_str().contains("a/stack_copy.spry"), "{out}");
    // The copy gone: all well, nothing changed.
    std::fs::remove_file(dir.join("a/stack_copy.spry")).unwrap();
    let (json, out) = build(&dir, &[], 0);
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert_eq!(show_text(&dir, "Stack"), original);
}

#[test]
fn a_duplicate_definition_names_both_lines() {
    let dir = Dir::new("duplicate_definition");
    write(
        &dir,
        "dup.spry",
        "{\n  _meta = {name = 'Dup}\n  x = 1\n\n  y = 2\n  x = 3\n}\n",
        0,
    );
    write(
        &dir,
        "ok.spry",
        "{\n  _meta = {name = 'Ok}\n  x = 1\n}\n",
        0,
    );
    let (json, out) = build(&dir, &[], 1);
    let stderr = out.stderr_str();
    assert!(stderr.contains("dup.spry:6:3"), "{out}");
    assert!(stderr.contains("line 3"), "{out}");
    assert!(stderr.contains("line 6"), "{out}");
    assert_eq!(names(&json, "added"), ["Ok"], "{out}");
    dir.command().args(["show", "Dup"]).expect_code(1);
}

#[test]
fn building_a_tree_that_is_not_there_fails_and_makes_nothing() {
    let dir = Dir::new("no_tree");
    let out = dir.command().args(["build", "typo"]).expect_code(2);
    assert!(out.stderr_str().contains("typo"), "{out}");
    assert!(!dir.join("typo").exists(), "the tree was made up\n{out}");
    dir.create("file.spry", "{_meta = {name = 'F}}\n");
    let out = dir.command().args(["build", "file.spry"]).expect_code(2);
    assert!(out.stderr_str().contains("not a directory"), "{out}");
    assert!(!dir.join("file.spry/.spry-image").exists());
}

#[test]
fn moving_and_editing_a_file_at_once_is_a_move_with_the_new_text() {
    let dir = spry_tree("move_edit");
    build(&dir, &[], 0);
    let text = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    std::fs::remove_file(dir.join("collections/stack.spry")).unwrap();
    write(
        &dir,
        "lifo.spry",
        text.replace("Stack underflow", "Stack is empty"),
        10,
    );
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(json["moved"][0]["module"], "Stack", "{out}");
    assert_eq!(json["moved"][0]["to"], "lifo.spry", "{out}");
    assert!(names(&json, "removed").is_empty(), "{out}");
    assert!(names(&json, "added").is_empty(), "{out}");
    assert_eq!(show_text(&dir, "Stack"), dir.read("lifo.spry"));
    let image = open(&dir);
    assert_eq!(
        image
            .definition("Stack", "pop")
            .unwrap()
            .unwrap()
            .generation,
        2
    );
    assert_eq!(
        image
            .definition("Stack", "push:")
            .unwrap()
            .unwrap()
            .generation,
        1
    );
    assert_eq!(image.history("Stack", "pop").unwrap().len(), 2);
}

#[test]
fn build_json_is_one_object_and_no_bar_is_drawn_off_a_terminal() {
    let dir = spry_tree("json_summary");
    let (json, out) = build(&dir, &[], 0);
    assert!(json.is_object());
    for field in ["added", "changed", "removed"] {
        assert!(json[field].is_array(), "`{field}` in {json}");
    }
    assert!(json["unchanged"].is_u64(), "{json}");
    assert_eq!(json["generation"], 1);
    let no_bar = |out: &Output| {
        let stderr = out.stderr_str();
        for bar in ["reading", "\r", "\u{1b}", "█", "░", "▏", "#>", "files"] {
            assert!(!stderr.contains(bar), "a bar on stderr ({bar:?})\n{out}");
        }
    };
    no_bar(&out);
    // The plain summary: one line, no bar either.
    edit(&dir, "util/tiny.spry", "answer = 42", "answer = 43", 10);
    let out = dir.command().arg("build").arg(dir.path()).expect_code(0);
    no_bar(&out);
    let stdout = out.stdout_str();
    assert_eq!(stdout.lines().count(), 1, "{out}");
    assert!(stdout.contains("1 changed"), "{out}");
    assert!(stdout.contains("generation 2"), "{out}");
}

#[test]
fn only_on_a_whole_image_narrows_one_build_and_keeps_the_image_whole() {
    let dir = spry_tree("only_on_whole");
    build(&dir, &[], 0);
    edit(
        &dir,
        "collections/stack.spry",
        "Last in, first out",
        "LIFO",
        10,
    );
    edit(
        &dir,
        "math/vector.spry",
        "name = 'Vector",
        "name = 'Vec",
        10,
    );
    let (json, out) = build(&dir, &["--only", "collections/**"], 0);
    assert_eq!(names(&json, "changed"), ["Stack"], "{out}");
    assert!(names(&json, "added").is_empty(), "outside the glob: {out}");
    assert!(
        names(&json, "removed").is_empty(),
        "outside the glob: {out}"
    );
    assert_eq!(
        json["part"],
        serde_json::json!([]),
        "the image stays whole: {out}"
    );
    // The next plain build takes the rest.
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "added"), ["Vec"], "{out}");
    assert_eq!(names(&json, "removed"), ["Vector"], "{out}");
}

#[test]
fn a_star_in_only_stays_within_one_directory() {
    let dir = spry_tree("only_star");
    let (json, out) = build(&dir, &["--only", "*.spry", "--only", "util/*.spry"], 0);
    let added = names(&json, "added");
    assert!(added.contains(&"Tiny".to_string()), "{out}");
    assert!(
        !added.contains(&"Stack".to_string()),
        "`*.spry` must not match collections/stack.spry: {out}"
    );
}

/// A module file named `name`.
fn module(name: &str) -> String {
    format!("{{\n  _meta = {{name = '{name}}}\n}}\n")
}

#[test]
fn the_walk_honours_gitignore_files_at_every_level() {
    let dir = Dir::new("walk_gitignore");
    write(&dir, ".gitignore", "ignored/\n*.gen.spry\n/top.spry\n", 0);
    write(&dir, "a.spry", module("A"), 0);
    write(&dir, "top.spry", module("Top"), 0);
    write(&dir, "ignored/b.spry", module("B"), 0);
    write(&dir, "x.gen.spry", module("Gen"), 0);
    // Deeper rules: a negation beats the root's `*.gen.spry`, a directory-only rule spares a
    // file of that name, and the root's anchored `/top.spry` does not reach down here.
    write(&dir, "sub/.gitignore", "!keep.gen.spry\nlib.spry/\n", 0);
    write(&dir, "sub/keep.gen.spry", module("Keep"), 0);
    write(&dir, "sub/drop.gen.spry", module("Drop"), 0);
    write(&dir, "sub/top.spry", module("SubTop"), 0);
    write(&dir, "sub/lib.spry/m.spry", module("InLibDir"), 0);
    write(&dir, "sub/other/lib.spry", module("LibFile"), 0);
    let (json, out) = build(&dir, &[], 0);
    let mut added = names(&json, "added");
    added.sort();
    assert_eq!(added, ["A", "Keep", "LibFile", "SubTop"], "{out}");
    assert!(json["failed"].as_array().unwrap().is_empty(), "{out}");
}

#[test]
fn the_walk_skips_hidden_files_and_the_image_directory() {
    let dir = Dir::new("walk_hidden");
    write(&dir, "a.spry", module("A"), 0);
    write(&dir, ".hidden/h.spry", module("Hidden"), 0);
    write(&dir, "sub/.h.spry", module("HiddenFile"), 0);
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "added"), ["A"], "{out}");
    write(&dir, &format!("{IMAGE_DIR}/stray.spry"), module("Stray"), 0);
    let (json, out) = build(&dir, &[], 0);
    assert!(names(&json, "added").is_empty(), "{out}");
    assert_eq!(json["files"], 1, "{out}");
}

#[cfg(unix)]
#[test]
fn the_walk_does_not_follow_links() {
    let dir = Dir::new("walk_links");
    write(&dir, "a.spry", module("A"), 0);
    write(&dir, "real/b.spry", module("B"), 0);
    std::os::unix::fs::symlink(dir.join("a.spry"), dir.join("link.spry")).unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("linked")).unwrap();
    let (json, out) = build(&dir, &[], 0);
    let mut added = names(&json, "added");
    added.sort();
    assert_eq!(added, ["A", "B"], "{out}");
    assert_eq!(json["files"], 2, "{out}");
    assert!(json["failed"].as_array().unwrap().is_empty(), "{out}");
}

#[test]
fn many_files_read_again_unchanged_keep_their_new_stamps_out_of_the_journal() {
    let dir = Dir::new("image_build_many_stamps");
    dir.command()
        .args(["gen", "--modules", "1100"])
        .arg(dir.path())
        .expect_code(0);
    let (first, _) = build(&dir, &[], 0);
    let files = files_with_extension(dir.path(), "spry");
    assert!(files.len() >= 1100, "{first}");
    // Every file's time moves: the next build reads each again and finds its bytes the same.
    for file in &files {
        set_mtime(file, 0);
    }
    let (second, _) = build(&dir, &[], 0);
    assert_eq!(second["read"], files.len(), "{second}");
    assert!(names(&second, "changed").is_empty(), "{second}");
    // Their stamps were stored (the next build reads nothing), straight into the table: the
    // journal, which every open reads, did not take them.
    let (third, _) = build(&dir, &[], 0);
    assert_eq!(third["read"], 0, "{third}");
    let journal: u64 = std::fs::read_dir(dir.join(".spry-image/db"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jnl"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(journal < 16 * 1024, "{journal} bytes of journal");
}

/// Runs `spry-image status --json` and gives the summary.
fn status_json(dir: &Dir) -> Value {
    let out = dir.command().args(["status", "--json"]).expect_code(0);
    serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| panic!("status --json printed no JSON ({e})\n{out}"))
}

/// A file rewritten with the size it had and its old time put back (`touch -r`, `cp -p`, an
/// archive or a sync tool that keeps times), or replaced by another file of that size and
/// time (`mv`), changed: its change time and its inode say so where size and time cannot.
/// Status and build both see it, as git does.
#[test]
fn a_file_rewritten_with_its_old_size_and_time_is_read_again() {
    let dir = Dir::new("same_size_same_time");
    write(&dir, "a.spry", "{_meta = {name = 'A}\n  x = 1\n}\n", 0);
    build(&dir, &[], 0);
    assert_eq!(status_json(&dir)["clean"], true);
    // Rewritten in place, its time set back.
    write(&dir, "a.spry", "{_meta = {name = 'A}\n  x = 2\n}\n", 0);
    let status = status_json(&dir);
    assert_eq!(status["clean"], false, "{status}");
    assert_eq!(status["modules"][0]["module"], "A", "{status}");
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "changed"), ["A"], "{out}");
    assert_eq!(show_text(&dir, "A::x"), b"x = 2\n");
    // Replaced by another file of the same size and time.
    write(&dir, "next.tmp", "{_meta = {name = 'A}\n  x = 3\n}\n", 0);
    std::fs::rename(dir.join("next.tmp"), dir.join("a.spry")).unwrap();
    let status = status_json(&dir);
    assert_eq!(status["clean"], false, "{status}");
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "changed"), ["A"], "{out}");
    assert_eq!(show_text(&dir, "A::x"), b"x = 3\n");
    // Nothing changed since: nothing is read.
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(json["read"], 0, "{out}");
}
