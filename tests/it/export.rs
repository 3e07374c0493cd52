//! From image to files (issue 4): live edits with `put`/`rm`/`edit`, `export` that touches only
//! what changed, `diff` and `status`. Real binary, real images, real files.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use spry_image::image::Origin;

use crate::image_build::{build, edit, names, open, show_text, spry_tree, write};
use crate::util::{Dir, Output, files_with_extension};

/// `put TARGET` with `text` on standard input.
pub(crate) fn put_stdin(dir: &Dir, target: &str, text: &str, code: i32) -> Output {
    let mut command = dir.command();
    command.arg("put").arg(target);
    let cmd = command.cmd();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let output = Output {
        command: format!("put {target}"),
        stdout: out.stdout,
        stderr: out.stderr,
        code: out.status.code(),
    };
    assert_eq!(output.code, Some(code), "{output}");
    output
}

pub(crate) fn export(dir: &Dir, args: &[&str], code: i32) -> (Value, Output) {
    let out = dir
        .command()
        .arg("export")
        .arg("--json")
        .args(args)
        .expect_code(code);
    let json = serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| panic!("export --json printed no JSON ({e})\n{out}"));
    (json, out)
}

pub(crate) fn status(dir: &Dir, code: i32) -> Value {
    let out = dir.command().arg("status").arg("--json").expect_code(code);
    serde_json::from_str(out.stdout_str().trim()).unwrap()
}

/// The state `status --json` gives `module` (`None`: clean).
fn state_of(status: &Value, module: &str) -> Option<String> {
    status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == module)
        .map(|m| m["state"].as_str().unwrap().to_string())
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Every `.spry` file under `root` (image directory left out), relative, with its bytes.
fn spry_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    files_with_extension(root, "spry")
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(".spry-image"))
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).unwrap();
            (rel, bytes)
        })
        .collect()
}

fn digest(dir: &Dir, image: &Path) -> String {
    let out = dir
        .command()
        .arg("check")
        .arg("--image")
        .arg(image)
        .expect_code(0);
    out.stdout_str().lines().last().unwrap().to_string()
}

/// The digest of a fresh image built (by the binary) from the files of `dir` as they are.
fn fresh_digest(dir: &Dir) -> String {
    let fresh = dir.join("fresh-image");
    dir.command()
        .arg("build")
        .arg("--image")
        .arg(&fresh)
        .arg(dir.path())
        .expect_code(0);
    digest(dir, &fresh)
}

#[test]
fn export_into_an_empty_directory_gives_the_tree_back_byte_for_byte() {
    let dir = spry_tree("export_round_trip");
    build(&dir, &[], 0);
    let (json, _) = export(&dir, &["--to", "out"], 0);
    let written = json["written"].as_array().unwrap().len();
    let source = spry_files(dir.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with("out/"))
        .collect::<Vec<_>>();
    assert_eq!(written, source.len());
    assert_eq!(spry_files(&dir.join("out")), source, "diff -r is not clean");

    // A second export into the same directory writes nothing.
    let (json, _) = export(&dir, &["--to", "out"], 0);
    assert_eq!(json["written"].as_array().unwrap().len(), 0);
    assert_eq!(json["unchanged"], source.len());
}

/// Regression (`export --to` naming a file "No such file or directory" now and then): two
/// threads writing the first files of one new directory, the one that found it missing saw it
/// made by the other before asking again, and gave up with the first error. Modules in one
/// directory, exported into new directories a few times: both threads start there at once.
/// (The window is narrow; `export::tests::regression_a_directory_made_by_another_thread_...`
/// opens it deterministically.)
#[test]
fn regression_export_to_new_directories_shared_by_threads_writes_every_file() {
    let dir = Dir::new("export_shared_new_dirs");
    for m in 0..360 {
        dir.create(
            format!("lib/deep/m{m}.spry"),
            format!("{{_meta = {{name = 'M{m}}}\n  f = func [:x x + {m}]\n}}\n"),
        );
    }
    build(&dir, &[], 0);
    for round in 0..4 {
        let to = format!("out{round}");
        let (json, out) = export(&dir, &["--to", &to], 0);
        assert_eq!(json["written"].as_array().unwrap().len(), 360, "{out}");
        assert_eq!(files_with_extension(&dir.join(&to), "spry").len(), 360);
    }
}

/// A first export of more files than two batches into an empty directory: the path that
/// skips comparing (nothing is there) and makes the files durable with one `syncfs` after the
/// earlier ones ran beside the writing. Every file arrives whole, the human output names each
/// as the user would type it from where they stand, and a second export finds them all.
#[test]
fn a_first_export_of_thousands_of_modules_into_an_empty_directory_writes_and_names_each() {
    let dir = Dir::new("export_thousands");
    let n = 2_300;
    for m in 0..n {
        dir.create(
            format!("src/p{}/m{m}.sy", m % 7),
            format!("# module {m}\nf{m} = func [:x x + {m}]\n"),
        );
    }
    dir.command()
        .args(["build", "src"])
        .current_dir(dir.path())
        .expect_code(0);
    std::fs::create_dir(dir.join("out")).unwrap();
    let out = dir
        .command()
        .args(["--image", "src/.spry-image", "export", "--to", "out"])
        .current_dir(dir.path())
        .expect_code(0);
    let text = out.stdout_str();
    let created = text.lines().filter(|l| l.starts_with("created ")).count();
    assert_eq!(created, n, "{out}");
    assert!(text.contains("created out/p3/m3.sy (p3/m3)\n"), "{out}");
    assert!(
        text.ends_with(&format!("{n} written, 0 unchanged\n"))
            || text.contains(&format!(": {n} written, 0 unchanged")),
        "{out}"
    );
    for m in [0, 1, 1023, 1024, 2047, 2048, n - 1] {
        let path = format!("p{}/m{m}.sy", m % 7);
        assert_eq!(
            dir.read(format!("out/{path}")),
            dir.read(format!("src/{path}")),
            "{path}"
        );
    }
    assert_eq!(files_with_extension(&dir.join("out"), "sy").len(), n);
    let again = dir
        .command()
        .args(["--image", "src/.spry-image", "export", "--to", "out"])
        .current_dir(dir.path())
        .expect_code(0);
    assert!(
        again
            .stdout_str()
            .contains(&format!("0 written, {n} unchanged")),
        "{again}"
    );
}

#[test]
fn export_then_build_gives_the_same_digest() {
    let dir = spry_tree("export_digest");
    build(&dir, &[], 0);
    put_stdin(
        &dir,
        "Stack::size",
        "# How many.\nsize = method [@elements size]\n",
        0,
    );
    put_stdin(&dir, "Tiny::answer", "answer = 43", 0);
    dir.command().args(["rm", "Stack::swap"]).expect_code(0);
    let (json, _) = export(&dir, &[], 0);
    assert_eq!(json["written"].as_array().unwrap().len(), 2, "{json}");
    let before = digest(&dir, &dir.join(".spry-image"));

    // A fresh image of the exported tree holds the same content.
    assert_eq!(fresh_digest(&dir), before);
    // And the image's own rebuild changes nothing.
    let (json, _) = build(&dir, &[], 0);
    assert_eq!(json["generation"], Value::Null, "{json}");
    assert_eq!(status(&dir, 0)["clean"], true);
}

#[test]
fn export_touches_only_what_changed() {
    let dir = spry_tree("export_minimal");
    build(&dir, &[], 0);
    let before: Vec<(String, std::time::SystemTime)> = spry_files(dir.path())
        .into_iter()
        .map(|(p, _)| {
            let t = mtime(&dir.join(&p));
            (p, t)
        })
        .collect();
    let stack = String::from_utf8(dir.read("collections/stack.spry")).unwrap();

    // Nothing changed: nothing written.
    let (json, _) = export(&dir, &[], 0);
    assert_eq!(json["written"].as_array().unwrap().len(), 0);

    // A changed definition replaces exactly its own span.
    put_stdin(&dir, "Stack::depth", "depth = method [ @elements size ]", 0);
    export(&dir, &[], 0);
    assert_eq!(
        String::from_utf8(dir.read("collections/stack.spry")).unwrap(),
        stack.replacen(
            "depth = method [@elements size]",
            "depth = method [ @elements size ]",
            1
        )
    );
    for (path, time) in &before {
        if path != "collections/stack.spry" {
            assert_eq!(mtime(&dir.join(path)), *time, "{path} was touched");
        }
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk_names(dir.path())
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk_names(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                todo.push(entry.path());
            } else {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn a_new_definition_goes_after_the_last_one_pretty_and_indented() {
    let dir = spry_tree("export_new_definition");
    build(&dir, &[], 0);
    let stack = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    put_stdin(
        &dir,
        "Stack::sizeTimes:",
        "# Size times n.\nsizeTimes: = method [:n   (@elements size) * n]\n",
        0,
    );
    export(&dir, &[], 0);
    let end = stack.rfind("\n}").unwrap();
    let expected = format!(
        "{}\n\n  # Size times n.\n  sizeTimes: = method [:n (@elements size) * n]{}",
        &stack[..end],
        &stack[end..]
    );
    assert_eq!(
        String::from_utf8(dir.read("collections/stack.spry")).unwrap(),
        expected
    );
}

#[test]
fn a_removed_definition_leaves_with_its_comments() {
    let dir = Dir::new("export_removed");
    write(
        &dir,
        "m.spry",
        "{\n  _meta = {name = 'M}\n\n  # One.\n  # Really one.\n  one = 1\n\n  # Two.\n  two = 2\n}\n",
        0,
    );
    build(&dir, &[], 0);
    dir.command().args(["rm", "M::one"]).expect_code(0);
    export(&dir, &[], 0);
    assert_eq!(
        String::from_utf8(dir.read("m.spry")).unwrap(),
        "{\n  _meta = {name = 'M}\n\n  # Two.\n  two = 2\n}\n"
    );
}

#[test]
fn regression_a_live_removal_is_not_undone_by_a_later_file_edit() {
    let dir = Dir::new("removal_marker");
    write(
        &dir,
        "m.spry",
        "{\n  _meta = {name = 'M}\n  one = 1\n  two = 2\n}\n",
        0,
    );
    build(&dir, &[], 0);
    dir.command().args(["rm", "M::one"]).expect_code(0);
    // The file changes elsewhere and is built before the removal is exported.
    edit(&dir, "m.spry", "two = 2", "two = 22", 10);
    build(&dir, &[], 0);
    let image = open(&dir);
    assert!(
        image.definition("M", "one").unwrap().is_none(),
        "the removal was undone"
    );
    assert_eq!(image.definition_text("M", "two").unwrap(), b"two = 22");
    drop(image);
    export(&dir, &[], 0);
    assert_eq!(
        String::from_utf8(dir.read("m.spry")).unwrap(),
        "{\n  _meta = {name = 'M}\n  two = 22\n}\n"
    );
}

#[test]
fn put_refuses_text_that_does_not_parse_or_names_another_definition() {
    let dir = spry_tree("put_refuses");
    build(&dir, &[], 0);
    let before = digest(&dir, &dir.join(".spry-image"));
    let out = put_stdin(&dir, "Stack::depth", "depth = method [@elements size", 1);
    assert!(
        out.stderr_str().contains("<stdin>:1:16: error"),
        "no file:line:col\n{out}"
    );
    let out = put_stdin(&dir, "Stack::depth", "height = 3", 1);
    assert!(out.stderr_str().contains("`height`, not `depth`"), "{out}");
    let out = put_stdin(&dir, "Nope::x", "x = 1", 1);
    assert!(out.stderr_str().contains("no module `Nope`"), "{out}");
    // A trailing comment would swallow the closing bracket of a one-line module.
    let out = put_stdin(&dir, "Tiny::answer", "answer = 42 # the answer", 1);
    assert!(out.stderr_str().contains("read back differently"), "{out}");
    assert_eq!(digest(&dir, &dir.join(".spry-image")), before);
}

#[test]
fn put_from_a_file_and_a_whole_module_and_rm() {
    let dir = spry_tree("put_module");
    build(&dir, &[], 0);
    dir.create("def.txt", "depth = 7");
    dir.command()
        .args(["put", "Stack::depth", "--file", "def.txt"])
        .expect_code(0);
    dir.create(
        "module.txt",
        "# Shapes.\n{\n  _meta = {name = 'ShapeKit}\n  area = func [:w :h w * h]\n}\n",
    );
    dir.command()
        .args(["put", "ShapeKit", "--file", "module.txt"])
        .expect_code(0);
    assert_eq!(
        state_of(&status(&dir, 0), "ShapeKit").as_deref(),
        Some("not-exported")
    );
    let (json, _) = export(&dir, &[], 0);
    let created: Vec<&Value> = json["written"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["created"] == true)
        .collect();
    assert_eq!(created.len(), 1, "{json}");
    assert_eq!(created[0]["path"], "shape_kit.spry");
    assert_eq!(
        dir.read("shape_kit.spry"),
        b"# Shapes.\n{\n  _meta = {name = 'ShapeKit}\n  area = func [:w :h w * h]\n}\n"
    );
    // A module whose name is not the one given is refused.
    dir.command()
        .args(["put", "Other", "--file", "module.txt"])
        .expect_code(1);
    dir.command().args(["rm", "ShapeKit::area"]).expect_code(0);
    dir.command().args(["rm", "ShapeKit::area"]).expect_code(1);
    export(&dir, &[], 0);
    assert_eq!(
        dir.read("shape_kit.spry"),
        b"# Shapes.\n{\n  _meta = {name = 'ShapeKit}\n}\n"
    );
}

#[test]
fn edit_runs_the_editor_and_stores_on_save() {
    let dir = spry_tree("edit");
    build(&dir, &[], 0);
    let script = dir.create(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/@elements size/@elements size + 0/' \"$1\"\n",
    );
    let out = dir
        .command()
        .args(["edit", "Stack::depth"])
        .env("VISUAL", format!("sh {}", script.display()))
        .expect_code(0);
    assert!(out.stdout_str().contains("put Stack::depth"), "{out}");
    let image = open(&dir);
    assert_eq!(
        image.definition_text("Stack", "depth").unwrap(),
        b"depth = method [@elements size + 0]"
    );
    drop(image);
    // An editor that fails stores nothing.
    dir.command()
        .args(["edit", "Stack::depth"])
        .env("VISUAL", "false")
        .expect_code(1);
    // A save that does not parse is refused, and the text is kept for the user.
    let broken = dir.create("broken.sh", "#!/bin/sh\nprintf 'depth = [' > \"$1\"\n");
    let out = dir
        .command()
        .args(["edit", "Stack::depth"])
        .env("VISUAL", format!("sh {}", broken.display()))
        .expect_code(1);
    assert!(out.stderr_str().contains("your text is kept in"), "{out}");
}

#[test]
fn export_refuses_paths_leading_out_of_the_tree() {
    let dir = Dir::new("export_unsafe");
    let outside = Dir::new("export_unsafe_outside");
    write(&dir, "a.spry", "{\n  _meta = {name = 'A}\n}\n", 0);
    std::os::unix::fs::symlink(outside.path(), dir.join("link")).unwrap();
    build(&dir, &[], 0);
    let image = open(&dir);
    let mut tx = image.begin(Origin::Live).unwrap();
    tx.create_module("Up", "../../up.spry").unwrap();
    tx.create_module("Abs", "/tmp/spry-image-abs.spry").unwrap();
    tx.create_module("Linked", "link/linked.spry").unwrap();
    tx.create_module("Fine", "fine.spry").unwrap();
    tx.commit().unwrap();
    drop(image);
    let (json, out) = export(&dir, &[], 1);
    let skipped: Vec<&str> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["module"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 3, "{json}");
    for module in ["Up", "Abs", "Linked"] {
        assert!(skipped.contains(&module), "{module} not refused\n{out}");
    }
    assert!(out.stderr_str().contains("leads out of the tree"), "{out}");
    assert!(dir.join("fine.spry").exists());
    assert!(!outside.join("linked.spry").exists());
    assert!(!Path::new("/tmp/spry-image-abs.spry").exists());
    assert!(walk_names(outside.path()).is_empty());
}

#[test]
fn a_partial_image_exports_only_what_it_holds() {
    let dir = spry_tree("export_partial");
    build(&dir, &["--only", "collections/**"], 0);
    let (json, _) = export(&dir, &["--to", "out"], 0);
    let written = json["written"].as_array().unwrap();
    assert!(!written.is_empty());
    for w in written {
        assert!(
            w["path"].as_str().unwrap().starts_with("collections/"),
            "{w}"
        );
    }
    // Into the tree itself: nothing outside the part is deleted or written.
    let before = spry_files(dir.path());
    export(&dir, &[], 0);
    assert_eq!(spry_files(dir.path()), before);
    let st = status(&dir, 0);
    assert!(st["outside"].as_array().unwrap().len() > 10, "{st}");
    assert_eq!(st["clean"], true, "{st}");
}

#[test]
fn export_merges_file_changes_in_other_definitions_first() {
    let dir = spry_tree("export_merge");
    build(&dir, &[], 0);
    put_stdin(
        &dir,
        "Stack::depth",
        "depth = method [@elements size + 0]",
        0,
    );
    edit(
        &dir,
        "collections/stack.spry",
        "\"Stack\" , (@elements print)",
        "\"Stack:\" , (@elements print)",
        10,
    );
    let st = status(&dir, 0);
    assert_eq!(state_of(&st, "Stack").as_deref(), Some("both-changed"));
    let (json, _) = export(&dir, &[], 0);
    assert_eq!(json["merged"], serde_json::json!(["Stack"]));
    let text = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    assert!(text.contains("depth = method [@elements size + 0]"));
    assert!(text.contains("\"Stack:\" , (@elements print)"));
    assert_eq!(status(&dir, 0)["clean"], true);
}

#[test]
fn a_conflict_is_left_as_the_file_has_it() {
    let dir = spry_tree("export_conflict");
    build(&dir, &[], 0);
    put_stdin(
        &dir,
        "Stack::depth",
        "depth = method [@elements size + 1]",
        0,
    );
    edit(
        &dir,
        "collections/stack.spry",
        "depth = method [@elements size]",
        "depth = method [@elements size + 2]",
        10,
    );
    let st = status(&dir, 1);
    assert_eq!(state_of(&st, "Stack").as_deref(), Some("conflict"));
    // status shows both versions, as text and as JSON; seen on disk, then recorded by a build.
    for built in [false, true] {
        if built {
            build(&dir, &[], 0);
        }
        let st = status(&dir, 1);
        assert_eq!(st["conflicts"][0]["name"], "depth", "{st}");
        assert_eq!(
            st["conflicts"][0]["image"],
            "depth = method [@elements size + 1]"
        );
        assert_eq!(
            st["conflicts"][0]["file"],
            "depth = method [@elements size + 2]"
        );
        let out = dir.command().arg("status").expect_code(1);
        let text = out.stdout_str();
        assert!(text.contains("Stack::depth"), "{out}");
        assert!(
            text.contains("image | depth = method [@elements size + 1]"),
            "{out}"
        );
        assert!(
            text.contains("file  | depth = method [@elements size + 2]"),
            "{out}"
        );
    }
    let file_before = dir.read("collections/stack.spry");
    let (json, out) = export(&dir, &[], 1);
    assert!(out.stderr_str().contains("conflict"), "{out}");
    assert_eq!(json["conflicts"][0]["module"], "Stack", "{out}");
    assert_eq!(json["conflicts"][0]["name"], "depth", "{out}");
    assert_eq!(json["skipped"], serde_json::json!([]), "{out}");
    assert_eq!(dir.read("collections/stack.spry"), file_before);
    let image = open(&dir);
    assert_eq!(
        image.definition_text("Stack", "depth").unwrap(),
        b"depth = method [@elements size + 1]"
    );
    drop(image);
    // Both versions and their base show in the diff, with git's diff3 markers.
    let out = dir
        .command()
        .args(["diff", "--module", "Stack"])
        .expect_code(1);
    let text = out.stdout_str();
    assert!(text.contains("CONFLICT"), "{out}");
    assert!(
        text.contains(
            "<<<<<<< image\ndepth = method [@elements size + 1]\n||||||| base\ndepth = method [@elements size]\n=======\ndepth = method [@elements size + 2]\n>>>>>>> file\n"
        ),
        "{out}"
    );
}

#[test]
fn status_names_every_kind_of_difference() {
    let dir = spry_tree("status_kinds");
    build(&dir, &[], 0);
    assert_eq!(status(&dir, 0)["clean"], true);
    put_stdin(&dir, "Tiny::answer", "answer = 43", 0);
    edit(
        &dir,
        "collections/stack.spry",
        "@elements size]",
        "@elements size ]",
        10,
    );
    write(&dir, "new_one.spry", "{_meta = {name = 'NewOne} a = 1}", 10);
    std::fs::remove_file(dir.join("util/memo.spry")).unwrap();
    std::fs::rename(dir.join("util/option.spry"), dir.join("option.spry")).unwrap();
    write(
        &dir,
        "math/broken.spry",
        "{_meta = {name = 'Broken} a = [}",
        10,
    );
    let st = status(&dir, 1);
    assert_eq!(state_of(&st, "Tiny").as_deref(), Some("image-changed"));
    assert_eq!(state_of(&st, "Stack").as_deref(), Some("file-changed"));
    assert_eq!(state_of(&st, "NewOne").as_deref(), Some("file-added"));
    assert_eq!(state_of(&st, "Memo").as_deref(), Some("file-deleted"));
    assert_eq!(state_of(&st, "Option").as_deref(), Some("moved"));
    let failed = &st["failed"][0];
    assert!(
        failed["path"]
            .as_str()
            .unwrap()
            .ends_with("math/broken.spry")
    );
    assert_eq!(failed["errors"][0]["line"], 1);
    // The human form says it too, with file:line:col for the bad file.
    let out = dir.command().arg("status").expect_code(1);
    assert!(out.stdout_str().contains("not yet exported"), "{out}");
    assert!(out.stderr_str().contains("math/broken.spry:1:"), "{out}");
}

#[test]
fn diff_shows_changes_by_definition() {
    let dir = spry_tree("diff_kinds");
    build(&dir, &[], 0);
    let out = dir.command().args(["diff", "--exit-code"]).expect_code(0);
    assert_eq!(out.stdout_str(), "");
    edit(
        &dir,
        "collections/stack.spry",
        "@elements size]",
        "@elements size ]",
        10,
    );
    edit(
        &dir,
        "collections/stack.spry",
        "\"Stack\" , (@elements print)",
        "\"Stack:\" , (@elements print)",
        10,
    );
    // `resetStats` moves from Memo to Tiny.
    let memo = String::from_utf8(dir.read("util/memo.spry")).unwrap();
    let start = memo.find("  resetStats = func [").unwrap();
    let end = start + memo[start..].find("\n  ]\n").unwrap() + 4;
    let moved = &memo[start..end];
    write(
        &dir,
        "util/memo.spry",
        format!("{}{}", &memo[..start], &memo[end + 1..]),
        10,
    );
    let tiny = String::from_utf8(dir.read("util/tiny.spry")).unwrap();
    write(
        &dir,
        "util/tiny.spry",
        tiny.replace("blank = {} }", &format!("blank = {{}}\n{moved}\n}}")),
        10,
    );
    put_stdin(&dir, "Tiny::extra", "extra = 1", 0);

    let out = dir.command().args(["diff", "--exit-code"]).expect_code(1);
    let text = out.stdout_str();
    assert!(
        text.contains("Stack::depth: formatting changed on disk"),
        "{out}"
    );
    assert!(
        text.contains("Stack::printString: changed on disk"),
        "{out}"
    );
    assert!(text.contains("-    \"Stack\" , (@elements print)"), "{out}");
    assert!(
        text.contains("Memo::resetStats: moved on disk, to Tiny"),
        "{out}"
    );
    assert!(
        text.contains("Tiny::resetStats: moved on disk, from Memo"),
        "{out}"
    );
    assert!(text.contains("Tiny::extra: added in the image"), "{out}");
    assert!(!text.contains('\x1b'), "colored though NO_COLOR is set");

    let out = dir.command().args(["diff", "--name-only"]).expect_code(0);
    assert_eq!(
        out.stdout_str(),
        "collections/stack.spry\nutil/memo.spry\nutil/tiny.spry\n"
    );
    let out = dir.command().args(["diff", "--stat"]).expect_code(0);
    assert!(
        out.stdout_str()
            .contains("collections/stack.spry | 0 added, 0 removed, 1 changed, 1 formatting only"),
        "{out}"
    );
    let out = dir.command().args(["diff", "--json"]).expect_code(0);
    let json: Value = serde_json::from_str(out.stdout_str().trim()).unwrap();
    assert_eq!(json["modules"].as_array().unwrap().len(), 3, "{json}");
}

#[test]
fn diff_shows_a_file_that_does_not_parse_as_such() {
    let dir = spry_tree("diff_unparsable");
    build(&dir, &[], 0);
    edit(
        &dir,
        "collections/stack.spry",
        "depth = method [",
        "depth = method [[",
        10,
    );
    let out = dir.command().args(["diff", "--exit-code"]).expect_code(1);
    assert!(
        out.stderr_str().contains("collections/stack.spry:"),
        "{out}"
    );
    assert!(
        !out.stdout_str().contains("removed"),
        "shown as removed\n{out}"
    );
    let out = dir.command().args(["diff", "--json"]).expect_code(1);
    let json: Value = serde_json::from_str(out.stdout_str().trim()).unwrap();
    assert_eq!(json["modules"][0]["state"], "unparsable", "{json}");
}

/// Issue 15: export of definitions whose texts alone changed puts the new texts into the file
/// as it is (`splice_edits`); where the old text stands twice in the file (a string holding a
/// copy of it), or the module changed otherwise too, the module is assembled whole. Either
/// way the file is the image's text, byte for byte.
#[test]
fn an_edited_definition_is_spliced_into_its_file_only_where_it_stands_once() {
    let dir = Dir::new("splice_once");
    let twin =
        "{\n  _meta = {name = 'Twin}\n  s = \"\n  b = 1\n  \"\n  b = 1\n  c = 3 # three\n}\n";
    dir.create("twin.spry", twin);
    let image = crate::image_lib::built(&dir);
    let edits: [&[(&str, &[u8])]; 3] = [
        // `b = 1` stands in the string too: assembled whole.
        &[("b", b"b = 2")],
        // Two texts, each standing once.
        &[("b", b"b = 5"), ("c", b"c = 4 # four")],
        // A text and a new definition: the order changed too.
        &[("c", b"c = 6"), ("d", b"d = 7")],
    ];
    for edit in edits {
        for (name, text) in edit {
            let mut tx = image.begin(Origin::Live).unwrap();
            tx.put_definition("Twin", name, text).unwrap();
            tx.commit().unwrap();
        }
        let report = spry_image::export(&image, &Default::default()).unwrap();
        assert_eq!(report.written.len(), 1, "{report:?}");
        let file = dir.read("twin.spry");
        assert_eq!(file, image.module_text("Twin").unwrap());
        assert!(String::from_utf8_lossy(&file).contains("s = \"\n  b = 1\n  \""));
        assert!(image.unsynced().unwrap().is_empty());
        assert!(image.check().unwrap().is_ok());
    }
    assert_eq!(
        dir.read("twin.spry"),
        b"{\n  _meta = {name = 'Twin}\n  s = \"\n  b = 1\n  \"\n  b = 5\n  c = 6\n  d = 7\n}\n"
    );
}

/// A module file larger than build's default limit (64 MiB), built with `--max-file-size`:
/// `put` of one definition, then `export` writes it into that file (read up to the size the
/// image last read there, not refused as too large), the rest of the file byte for byte.
/// The bulk is comment lines above each definition (part of its text), so the file is large
/// while its definitions are few: the test stays quick even in a debug build.
#[test]
fn export_writes_one_change_into_a_file_over_64_mib() {
    let dir = Dir::new("export_over_64_mib");
    let comment = format!("  # {}\n", "x".repeat(1019)).repeat(1024); // 1 MiB
    let file = |edited: bool| {
        let mut text = String::from("{\n  _meta = {name = 'Big}\n");
        for i in 0..66 {
            if edited && i == 7 {
                text.push_str("  d7 = func [:x x * 7]\n");
            } else {
                text.push_str(&comment);
                text.push_str(&format!("  d{i} = func [:x x + {i}]\n"));
            }
        }
        text.push_str("}\n");
        text
    };
    let before = file(false);
    assert!(before.len() > 64 << 20, "{} bytes", before.len());
    dir.create("big.spry", &before);
    // Refused at the default limit, taken with a larger one.
    let (json, out) = build(&dir, &[], 1);
    assert!(json.to_string().contains("more than the limit"), "{out}");
    build(&dir, &["--max-file-size", "2g"], 0);
    // One definition given a new text in the image (its comments go with its old text).
    put_stdin(&dir, "Big::d7", "d7 = func [:x x * 7]", 0);
    let (json, out) = export(&dir, &[], 0);
    assert_eq!(json["written"].as_array().unwrap().len(), 1, "{out}");
    assert!(json["skipped"].as_array().unwrap().is_empty(), "{out}");
    let after = dir.read("big.spry");
    let expected = file(true);
    assert_eq!(after.len(), expected.len());
    assert!(
        after == expected.as_bytes(),
        "the exported file is not the old one with `d7` replaced"
    );
    assert_eq!(state_of(&status(&dir, 0), "Big"), None);

    // Grown by a definition in the file, it is still read by a plain build (without the
    // limit given again) and by status: the image holds it, so it is not refused.
    let mut grown = after;
    let end = grown.len() - 2;
    grown.splice(end..end, b"  d99 = 99\n".iter().copied());
    dir.create("big.spry", &grown);
    assert_eq!(
        state_of(&status(&dir, 0), "Big").as_deref(),
        Some("file-changed")
    );
    let (json, out) = build(&dir, &[], 0);
    assert_eq!(names(&json, "changed"), ["Big"], "{out}");
    assert!(show_text(&dir, "Big::d99").starts_with(b"d99 = 99"));
}

/// A module's chunk index (what a save of one definition is read along) stays its text's
/// through saves, `put` (a new text, a new definition), `rm` and export: after each, `check` (which compares the index with
/// the module's text) passes, the image holds the file's text, and a save read along the
/// index takes what the file parsed whole takes.
#[test]
fn the_chunk_index_follows_saves_put_rm_and_export() {
    let dir = Dir::new("chunk_index_follows");
    // About 190 KB: several chunks of about 32 KB.
    let mut text = String::from("{\n  _meta = {name = 'Big}\n");
    for i in 0..6000 {
        text.push_str(&format!("  d{i} = func [:x x + {i}] # {i}\n"));
    }
    text.push_str("}\n");
    write(&dir, "big.spry", &text, 0);
    build(&dir, &[], 0);
    let mut secs = 0;
    let mut save = |dir: &Dir, from: &str, to: &str| {
        secs += 10;
        edit(dir, "big.spry", from, to, secs);
        build(dir, &[], 0);
    };
    let holds_the_file = |dir: &Dir| {
        digest(dir, &dir.join(".spry-image"));
        let image = open(dir);
        assert_eq!(image.module_text("Big").unwrap(), dir.read("big.spry"));
        let report = image.check().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        // A save of one more text, read along the index (not committed).
        let file = String::from_utf8(dir.read("big.spry")).unwrap();
        let next = file.replacen("d3000 = func [:x x + 3000]", "d3000 = 'next", 1);
        image
            .saved_by_chunks("Big", "big.spry", next.as_bytes())
            .map(|s| {
                s.changes()
                    .map(|(n, t)| (n.to_string(), t.to_vec()))
                    .collect::<Vec<_>>()
            })
    };
    let next = Some(vec![(
        "d3000".to_string(),
        b"d3000 = 'next # 3000".to_vec(),
    )]);
    // The first build wrote the index (the module is longer than two chunks): the first
    // save reads along it too.
    assert_eq!(holds_the_file(&dir), next);
    save(&dir, "d10 = func [:x x + 10]", "d10 = 'ten");
    assert_eq!(holds_the_file(&dir), next);
    // Saves read along it: in the first chunk, the middle, the last, two at once.
    save(&dir, "d1 = func [:x x + 1]", "d1 = func [:x x + 1] + 1");
    assert_eq!(holds_the_file(&dir), next);
    save(&dir, "d5999 = func [:x x + 5999]", "d5999 = 'last");
    assert_eq!(holds_the_file(&dir), next);
    edit(&dir, "big.spry", "d2 = func [:x x + 2]", "d2 = 2", 1000);
    save(&dir, "d3 = func [:x x + 3]", "d3 = 3");
    assert_eq!(holds_the_file(&dir), next);
    // A live edit: the index is the module's text's (its chunk cut again), but no save reads
    // it while the file lacks the edit; after export, the next save reads along it.
    put_stdin(&dir, "Big::d4000", "d4000 = 'live", 0);
    {
        let image = open(&dir);
        let report = image.check().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        let file = dir.read("big.spry");
        assert!(image.saved_by_chunks("Big", "big.spry", &file).is_none());
    }
    export(&dir, &[], 0);
    assert_eq!(holds_the_file(&dir), next);
    save(&dir, "d4001 = func [:x x + 4001]", "d4001 = 'saved");
    assert_eq!(holds_the_file(&dir), next);
    // Two live edits in a row, in the first and the last chunk, then export.
    put_stdin(&dir, "Big::d5", "d5 = 'five", 0);
    put_stdin(&dir, "Big::d5998", "d5998 = 'near the end", 0);
    export(&dir, &[], 0);
    assert_eq!(holds_the_file(&dir), next);
    // A removal and an addition, each exported (issue 15: both keep the index, their
    // chunks cut again); a save reads along it.
    dir.command().args(["rm", "Big::d4500"]).expect_code(0);
    export(&dir, &[], 0);
    assert_eq!(holds_the_file(&dir), next);
    put_stdin(&dir, "Big::added", "added = 'new", 0);
    dir.command().args(["rm", "Big::d0"]).expect_code(0);
    export(&dir, &[], 0);
    assert_eq!(holds_the_file(&dir), next);
    // A save of a gap (the whole merge): no index until a save of texts writes one.
    save(&dir, "# 4600\n", "# 4600\n\n");
    assert_eq!(holds_the_file(&dir), None);
    save(&dir, "d4700 = func [:x x + 4700]", "d4700 = 'saved");
    assert_eq!(holds_the_file(&dir), next);
    // The same file in a fresh image: the same content.
    assert_eq!(fresh_digest(&dir), digest(&dir, &dir.join(".spry-image")));
}

/// Each module the image holds with a definition besides `_meta`, with its file and those
/// definitions' names (`ls --json`), in name order.
fn modules_with_definitions(dir: &Dir) -> Vec<(String, String, Vec<String>)> {
    let lines = |args: &[&str]| -> Vec<Value> {
        let out = dir
            .command()
            .arg("ls")
            .args(args)
            .arg("--json")
            .expect_code(0);
        out.stdout_str()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    lines(&[])
        .into_iter()
        .filter(|m| m["definitions"].as_u64().unwrap() > 1)
        .map(|m| {
            let module = m["module"].as_str().unwrap().to_string();
            let defs = lines(&[module.as_str()])
                .into_iter()
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|name| name != "_meta")
                .collect();
            (module, m["path"].as_str().unwrap().to_string(), defs)
        })
        .collect()
}

/// Issue 15: `export --to` takes each definition and gap a module's file in the image's own
/// tree holds from that file (checked against the image), and only the rest from the store.
/// With live edits not yet exported (a text replaced, a definition added, one removed) and
/// files changed on disk since the build and not built again (a line added before the first
/// definition, a definition's bytes changed in place to others of the same length, a file cut
/// in half, a file deleted), every file of the copy is byte for byte the image's text as
/// `show MODULE` assembles it from the store alone; on `gen`'s corpus and on Spry's own files.
#[test]
fn export_to_writes_the_images_text_whatever_the_tree_holds() {
    for corpus in ["gen", "spry-src"] {
        let dir = if corpus == "gen" {
            let dir = Dir::new("export_to_from_tree_gen");
            dir.command()
                .args(["gen", "--modules", "24", "."])
                .expect_code(0);
            dir
        } else {
            spry_tree("export_to_from_tree_spry")
        };
        build(&dir, &[], 0);
        let modules = modules_with_definitions(&dir);
        assert!(modules.len() >= 8, "{corpus}: {} modules", modules.len());
        let at = |i: usize| &modules[i * modules.len() / 8];

        // Live edits, not exported.
        let (module, _, defs) = at(0);
        let def = &defs[0];
        put_stdin(
            &dir,
            &format!("{module}::{def}"),
            &format!("{def} = 1\n"),
            0,
        );
        let (module, _, _) = at(1);
        put_stdin(&dir, &format!("{module}::addedLive"), "addedLive = 2", 0);
        let (module, _, defs) = at(2);
        dir.command()
            .args(["rm", &format!("{module}::{}", defs[defs.len() - 1])])
            .expect_code(0);
        // Files changed on disk, not built.
        let file = |i: usize| dir.join(&at(i).1);
        let text = std::fs::read(file(3)).unwrap();
        std::fs::write(
            file(3),
            [b"# a line added on disk\n".as_slice(), &text].concat(),
        )
        .unwrap();
        let (module, path, defs) = at(4);
        let def = dir
            .command()
            .args(["show", &format!("{module}::{}", defs[defs.len() / 2])])
            .expect_code(0)
            .stdout;
        let def = def.strip_suffix(b"\n").unwrap_or(&def);
        let text = std::fs::read(dir.join(path)).unwrap();
        let at_def = text
            .windows(def.len())
            .position(|w| w == def)
            .unwrap_or_else(|| panic!("{corpus}: {module}'s file does not hold its definition"));
        let mut changed = text.clone();
        let flip = at_def + def.len() / 2;
        changed[flip] = if changed[flip] == b'x' { b'y' } else { b'x' };
        std::fs::write(dir.join(path), &changed).unwrap();
        let text = std::fs::read(file(5)).unwrap();
        std::fs::write(file(5), &text[..text.len() / 2]).unwrap();
        std::fs::remove_file(file(6)).unwrap();

        let (json, _) = export(&dir, &["--to", "copy"], 0);
        assert_eq!(
            json["written"].as_array().unwrap().len(),
            modules.len() + {
                // Modules with no definition but `_meta` are written too; `modules` leaves them out.
                let all = dir.command().args(["ls", "--json"]).expect_code(0);
                all.stdout_str().lines().count() - modules.len()
            }
        );
        for (module, path, _) in &modules {
            let expected = dir.command().args(["show", module]).expect_code(0).stdout;
            let copied = std::fs::read(dir.join("copy").join(path)).unwrap();
            assert!(
                copied == expected,
                "{corpus}: {path} ({module}) is not the image's text"
            );
        }
    }
}
