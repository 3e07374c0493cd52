//! Issue 12: real Spry trees in (`.sy` files, `.spryignore`, a tree in the language's own
//! style), and no input can take a build down (a keyword message running on into a
//! keyword-named binding is the error `keyword-runs-on`, never a panic).

use serde_json::Value;

use crate::image_build::{build, names};
use crate::util::Dir;

/// The file of issue 12: Spry reads `x ifFalse: y` and `do: = method [...]` on the next line
/// as the one message `ifFalse:do:`.
pub(crate) const RUN_ON: &str =
    "{\n  _meta = {\n    name = 'A\n  }\n  acc = x ifFalse: y\n  do: = method [:n n]\n  z = 1\n}\n";

/// A small good module named `name`.
pub(crate) fn good_module(name: &str) -> String {
    format!(
        "{{\n  _meta = {{\n    name = '{name}\n  }}\n\n  # Doubles.\n  twice = func [:x x * 2]\n  at:put: = method [:k :v v]\n  size = 3\n}}\n"
    )
}

fn failed_paths(json: &Value) -> Vec<String> {
    json["failed"]
        .as_array()
        .unwrap_or_else(|| panic!("no `failed` in {json}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn issue_12_keyword_runs_on_does_not_crash_build() {
    let dir = Dir::new("issue_12");
    for i in 0..99 {
        dir.create(
            format!("mods/m{i:02}.spry"),
            good_module(&format!("M{i:02}")),
        );
    }
    dir.create("mods/run_on.spry", RUN_ON);
    let (json, out) = build(&dir, &[], 1);
    let stderr = out.stderr_str();
    assert!(!stderr.contains("panicked"), "{out}");
    assert_eq!(
        names(&json, "added").len(),
        99,
        "the 99 good modules\n{out}"
    );
    assert_eq!(failed_paths(&json), ["mods/run_on.spry"], "{out}");
    assert!(
        stderr.contains("mods/run_on.spry:6:3: error[keyword-runs-on]"),
        "the file, line and column, and the kind\n{out}"
    );
    assert!(
        stderr.contains("`ifFalse:do:`"),
        "read as Spry reads it\n{out}"
    );
    assert!(
        stderr.contains("line 5") && stderr.contains("line 6"),
        "{out}"
    );
    // `parse --check` says the same of the same file.
    let check = dir
        .command()
        .args(["parse", "--check", "mods/run_on.spry"])
        .expect_code(1);
    assert!(
        check
            .stderr_str()
            .contains("mods/run_on.spry:6:3: error[keyword-runs-on]"),
        "{check}"
    );
    // Every other command still works on the image.
    let ls = dir.command().arg("ls").stdout();
    assert_eq!(
        String::from_utf8_lossy(&ls).lines().count(),
        100,
        "a header and 99"
    );
}

#[test]
fn a_module_that_comes_to_run_on_keeps_its_last_good_version() {
    let dir = Dir::new("run_on_keeps");
    let good = RUN_ON.replace("acc = x ifFalse: y", "acc = (x ifFalse: y)");
    dir.create("a.spry", &good);
    build(&dir, &[], 0);
    dir.create("a.spry", RUN_ON);
    crate::image_build::set_mtime(&dir.join("a.spry"), 100);
    let (json, out) = build(&dir, &[], 1);
    assert_eq!(failed_paths(&json), ["a.spry"], "{out}");
    let shown = dir.command().args(["show", "A"]).stdout();
    assert_eq!(
        String::from_utf8_lossy(&shown),
        good,
        "the last good version"
    );
    assert_eq!(
        dir.command().args(["show", "A::do:"]).stdout(),
        b"do: = method [:n n]\n"
    );
}

#[test]
fn every_run_on_is_reported_not_only_overlapping_ones() {
    let dir = Dir::new("run_on_every");
    // `right` is an argument of `else:into:`, not a second definition of `right`.
    dir.create(
        "tree.spry",
        "{\n  _meta = {name = 'Tree}\n  right = 1\n  entries = entry else: right\n  into: = method [:acc acc]\n  left = x at: 1\n  put: = 2\n}\n",
    );
    let out = dir
        .command()
        .args(["parse", "--check", "tree.spry"])
        .expect_code(1);
    let stderr = out.stderr_str();
    assert!(!stderr.contains("duplicate"), "{out}");
    assert!(
        stderr.contains("tree.spry:5:3: error[keyword-runs-on]"),
        "{out}"
    );
    assert!(
        stderr.contains("tree.spry:7:3: error[keyword-runs-on]"),
        "{out}"
    );
    let (_, build_out) = build(&dir, &[], 1);
    assert!(
        build_out
            .stderr_str()
            .contains("tree.spry:5:3: error[keyword-runs-on]")
            && build_out
                .stderr_str()
                .contains("tree.spry:7:3: error[keyword-runs-on]"),
        "{build_out}"
    );
}

#[test]
fn a_put_that_would_make_a_run_on_says_keyword_runs_on() {
    let dir = Dir::new("put_run_on");
    dir.create(
        "a.spry",
        "{\n  _meta = {\n    name = 'A\n  }\n  z = x at: 1\n}\n",
    );
    build(&dir, &[], 0);
    let input = dir.create("do.spry.txt", "do: = method [:n n]");
    let out = dir
        .command()
        .args(["put", "A::do:", "--file"])
        .arg(&input)
        .expect_code(1);
    let stderr = out.stderr_str();
    assert!(stderr.contains("error[keyword-runs-on]"), "{out}");
    assert!(stderr.contains("`at:do:`"), "{out}");
    assert!(stderr.contains("nothing was stored"), "{out}");
    assert!(
        stderr.contains("a.spry (as the change would make it):6:3: error[keyword-runs-on]"),
        "placed in the module as the put would leave it\n{out}"
    );
    assert_eq!(
        String::from_utf8_lossy(&dir.command().args(["show", "A"]).stdout()),
        "{\n  _meta = {\n    name = 'A\n  }\n  z = x at: 1\n}\n",
        "the module is unchanged"
    );
    // A whole module put with a run-on: the error points into the file given.
    let module = dir.create("whole.txt", RUN_ON);
    let out = dir
        .command()
        .args(["put", "A", "--file"])
        .arg(&module)
        .expect_code(1);
    assert!(
        out.stderr_str()
            .contains("whole.txt:6:3: error[keyword-runs-on]"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// `.sy` files, `.spryignore`, and a tree in the language's own style.

/// `fixtures/sy-tree` copied into a fresh directory.
fn sy_tree(name: &str) -> Dir {
    let dir = Dir::new(name);
    crate::image_build::copy_tree(&crate::util::repo_path("fixtures/sy-tree"), dir.path());
    dir
}

/// The last line of `check`: `digest <hex>`.
fn digest(dir: &Dir) -> String {
    let out = dir.command().arg("check").stdout();
    let out = String::from_utf8_lossy(&out).into_owned();
    let last = out.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("digest "), "{out}");
    last
}

/// Every file under `root` (relative, sorted), the image directory left out.
fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() == ".spry-image" {
                continue;
            }
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                found.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_tree_in_the_languages_own_style_builds_lists_exports_and_rebuilds() {
    let dir = sy_tree("sy_tree");
    let files = files_under(dir.path());
    assert!(files.iter().all(|f| f.ends_with(".sy")), "{files:?}");
    // Two files claim `Stack`: the build names them and exits 1.
    let (json, out) = build(&dir, &[], 1);
    assert_eq!(json["failed"].as_array().unwrap().len(), 1, "{out}");
    let stderr = out.stderr_str();
    assert!(
        stderr.contains(
            "module `Stack` is defined in both `examples/stack_example.sy` and `modules/stack.sy`"
        ),
        "{out}"
    );
    // `ls` lists every file but the one that lost the name.
    let ls = String::from_utf8_lossy(&dir.command().arg("ls").stdout()).into_owned();
    let loser = json["failed"][0]["path"].as_str().unwrap().to_string();
    let held: Vec<&String> = files.iter().filter(|f| **f != loser).collect();
    assert_eq!(held.len(), files.len() - 1);
    for file in &held {
        assert!(ls.contains(file.as_str()), "{file} not listed\n{ls}");
    }
    assert!(
        ls.contains("scripts/fib "),
        "a script is named by its path without `.sy`\n{ls}"
    );
    // Exported into another directory: every file the image holds, byte for byte, `.sy` kept.
    let out_dir = Dir::new("sy_tree_out");
    dir.command()
        .args(["export", "--to"])
        .arg(out_dir.path())
        .stdout();
    let exported = files_under(out_dir.path());
    assert_eq!(
        exported,
        held.iter().map(|f| f.to_string()).collect::<Vec<_>>()
    );
    for file in &exported {
        assert_eq!(out_dir.read(file), dir.read(file), "{file}");
    }
    // The exported tree rebuilds to the same image.
    build(&out_dir, &[], 0);
    assert_eq!(digest(&out_dir), digest(&dir));
    // With `.spryignore` naming the example copy, the tree builds whole.
    let clean = sy_tree("sy_tree_ignored");
    clean.create(
        ".spryignore",
        "# an example copy of a module\nexamples/stack_example.sy\n",
    );
    let (json, out) = build(&clean, &[], 0);
    assert_eq!(names(&json, "added").len(), files.len() - 1, "{out}");
    let ls = String::from_utf8_lossy(&clean.command().arg("ls").stdout()).into_owned();
    assert!(
        ls.contains("modules/stack.sy") && !ls.contains("examples/"),
        "{ls}"
    );
    // `parse --check` reads the same files.
    clean.command().args(["parse", "--check", "."]).stdout();
}

#[test]
fn sy_files_are_source_for_only_status_diff_and_export() {
    let dir = Dir::new("sy_commands");
    dir.create("lib/a.sy", good_module("A"));
    dir.create("lib/b.spry", good_module("B"));
    dir.create("notes.txt", "not Spry");
    dir.create("easy", "not Spry either");
    let (json, out) = build(&dir, &["--only", "lib/*.sy"], 0);
    assert_eq!(names(&json, "added"), ["A"], "{out}");
    build(&dir, &["--all"], 0);
    // An edit of a `.sy` file shows in status and diff.
    let text = String::from_utf8(dir.read("lib/a.sy")).unwrap();
    dir.create("lib/a.sy", text.replace("size = 3", "size = 4"));
    let status = dir.command().arg("status").output();
    assert!(
        status.stdout_str().contains("modified:       A (lib/a.sy)"),
        "{status}"
    );
    let diff = dir.command().arg("diff").output();
    assert!(diff.stdout_str().contains("size = 4"), "{diff}");
    // A live edit is exported to the `.sy` file it came from.
    build(&dir, &[], 0);
    let input = dir.create("size.txt", "size = 5");
    dir.command()
        .args(["put", "A::size", "--file"])
        .arg(&input)
        .stdout();
    dir.command().arg("export").stdout();
    assert!(
        String::from_utf8(dir.read("lib/a.sy"))
            .unwrap()
            .contains("size = 5")
    );
    assert!(!dir.join("lib/a.spry").exists());
}

#[test]
fn a_module_made_by_put_gets_the_extension_the_tree_uses_most() {
    let module = |name: &str| format!("{{\n  _meta = {{name = '{name}}}\n  x = 1\n}}\n");
    // An empty tree: `.spry`.
    let empty = Dir::new("put_ext_empty");
    build(&empty, &[], 0);
    let input = empty.create("in.txt", module("Fresh"));
    empty
        .command()
        .args(["put", "Fresh", "--file"])
        .arg(&input)
        .stdout();
    empty.command().arg("export").stdout();
    assert!(empty.join("fresh.spry").is_file());
    // A tree of mostly `.sy` files: `.sy`; `--ext` overrides.
    let dir = Dir::new("put_ext_sy");
    dir.create("a.sy", good_module("A"));
    dir.create("b.sy", good_module("B"));
    dir.create("c.spry", good_module("C"));
    build(&dir, &[], 0);
    let input = dir.create("in.txt", module("Net.HttpClient"));
    dir.command()
        .args(["put", "Net.HttpClient", "--file"])
        .arg(&input)
        .stdout();
    let input = dir.create("in2.txt", module("Other"));
    dir.command()
        .args(["put", "Other", "--ext", "spry", "--file"])
        .arg(&input)
        .stdout();
    dir.command().arg("export").stdout();
    assert!(dir.join("net/http_client.sy").is_file());
    assert!(dir.join("other.spry").is_file());
    let bad = dir
        .command()
        .args(["put", "Third", "--ext", "txt", "--file"])
        .arg(&input)
        .expect_code(2);
    assert!(
        bad.stderr_str().contains("`txt` is not `spry` or `sy`"),
        "{bad}"
    );
}

#[test]
fn spryignore_is_honoured_in_any_directory_in_and_out_of_git() {
    let dir = Dir::new("spryignore");
    dir.create("keep.spry", good_module("Keep"));
    dir.create("examples/copy.sy", good_module("Keep"));
    dir.create(
        "examples/broken.sy",
        "{\n  _meta = {name = 'Broken}\n  x = [1\n}\n",
    );
    dir.create("lib/x.sy", good_module("X"));
    dir.create("lib/gen/y.sy", good_module("Y"));
    dir.create("lib/.spryignore", "gen/\n");
    dir.create(".spryignore", "examples/\n");
    // `.spryignore` wins over `.gitignore` in the same directory (as ripgrep's `.ignore`).
    dir.create(".gitignore", "kept_by_spryignore.spry\n");
    dir.create("kept_by_spryignore.spry", good_module("Back"));
    dir.create(".spryignore", "examples/\n!kept_by_spryignore.spry\n");
    let (json, out) = build(&dir, &[], 0);
    let mut added = names(&json, "added");
    added.sort();
    assert_eq!(added, ["Back", "Keep", "X"], "{out}");
    // `parse DIR` walks by the same rules: the broken file under `examples/` is left out.
    let check = dir.command().args(["parse", "--check", "."]).stdout();
    assert!(check.is_empty());
    dir.command()
        .args(["parse", "--check", "examples/broken.sy"])
        .expect_code(1);
    // In a git checkout, the same.
    let git = std::process::Command::new("git")
        .arg("init")
        .arg("-q")
        .arg(dir.path())
        .status();
    if git.is_ok_and(|s| s.success()) {
        dir.create("lib/gen/z.sy", good_module("Z"));
        let (json, out) = build(&dir, &[], 0);
        assert!(names(&json, "added").is_empty(), "{out}");
    }
    // Without its rule, what `lib/.spryignore` left out comes in.
    std::fs::remove_file(dir.join("lib/.spryignore")).unwrap();
    let (json, out) = build(&dir, &[], 0);
    let mut added = names(&json, "added");
    added.sort();
    assert_eq!(added, ["Y", "Z"], "{out}");
}
