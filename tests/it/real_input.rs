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
    assert_eq!(
        String::from_utf8_lossy(&dir.command().args(["show", "A"]).stdout()),
        "{\n  _meta = {\n    name = 'A\n  }\n  z = x at: 1\n}\n",
        "the module is unchanged"
    );
}
