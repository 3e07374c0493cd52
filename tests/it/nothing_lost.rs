//! Issue 14, "nothing lost, per definition": a conflict holds one definition, never its module;
//! both sides' other changes reach the other side. Real binary, real images, real files.

use serde_json::Value;

use crate::export::{export, put_stdin, status};
use crate::image_build::{build, edit, open};
use crate::util::Dir;

/// A module of the 20-module tree.
fn module_text(n: usize) -> String {
    format!(
        "# Module {n}.\n{{\n  _meta = {{name = 'Mod{n}}}\n\n  # Keeps what the test rejects.\n  ifFalse:collect: = method [:test :blk\n    r = []\n    @elements do: [:x (test value: x) else: [r add: (blk value: x)]]\n    r\n  ]\n\n  at: = method [:i\n    @elements at: i\n  ]\n\n  cacheFirst = method [\n    @cache = (@elements first)\n  ]\n}}\n"
    )
}

/// A tree of 20 modules, built.
pub(crate) fn twenty(name: &str) -> Dir {
    let dir = Dir::new(name);
    for n in 0..20 {
        dir.create(format!("mod{n}.spry"), module_text(n));
    }
    build(&dir, &[], 0);
    dir
}

fn conflicts(status: &Value) -> Vec<String> {
    status["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}::{}",
                c["module"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_conflict_blocks_one_definition_not_its_module() {
    let dir = twenty("per_definition");
    // The image side: `at:` one way, `cacheFirst`.
    put_stdin(
        &dir,
        "Mod3::at:",
        "at: = method [:i\n    @elements at: i + 1\n  ]",
        0,
    );
    put_stdin(
        &dir,
        "Mod3::cacheFirst",
        "cacheFirst = method [\n    @cache = (@elements last)\n  ]",
        0,
    );
    // The file side: `ifFalse:collect:`, and `at:` another way.
    edit(&dir, "mod3.spry", "    r\n  ]", "    r reverse\n  ]", 10);
    edit(
        &dir,
        "mod3.spry",
        "@elements at: i\n",
        "@elements at: i - 1\n",
        10,
    );
    build(&dir, &[], 0);
    let (json, out) = export(&dir, &[], 1);
    assert_eq!(json["skipped"], serde_json::json!([]), "{out}");
    assert_eq!(json["written"][0]["path"], "mod3.spry", "{out}");
    assert_eq!(json["conflicts"][0]["name"], "at:", "{out}");
    assert!(out.stderr_str().contains("Mod3::at:"), "{out}");
    let text = String::from_utf8(dir.read("mod3.spry")).unwrap();
    assert!(
        text.contains("@cache = (@elements last)"),
        "image's cacheFirst:\n{text}"
    );
    assert!(
        text.contains("    r reverse\n"),
        "file's ifFalse:collect:\n{text}"
    );
    assert!(
        text.contains("@elements at: i - 1"),
        "file's at: kept:\n{text}"
    );
    assert!(!text.contains("i + 1"), "{text}");
    // The image keeps its side.
    let shown = dir.command().args(["show", "Mod3::at:"]).stdout();
    assert!(String::from_utf8_lossy(&shown).contains("@elements at: i + 1"));
    let image = open(&dir);
    assert_eq!(
        image.definition_text("Mod3", "ifFalse:collect:").unwrap(),
        b"# Keeps what the test rejects.\n  ifFalse:collect: = method [:test :blk\n    r = []\n    @elements do: [:x (test value: x) else: [r add: (blk value: x)]]\n    r reverse\n  ]"
    );
    drop(image);
    // One conflict, named; exit 1 because of it only.
    let st = status(&dir, 1);
    assert_eq!(conflicts(&st), ["Mod3::at:"], "{st}");
    assert_eq!(st["modules"].as_array().unwrap().len(), 1, "{st}");
    // A second build and export change nothing more.
    let (json, _) = build(&dir, &[], 0);
    assert_eq!(json["generation"], Value::Null, "{json}");
    let before = dir.read("mod3.spry");
    let (json, out) = export(&dir, &[], 1);
    assert_eq!(json["written"], serde_json::json!([]), "{out}");
    assert_eq!(json["generation"], Value::Null, "{out}");
    assert_eq!(dir.read("mod3.spry"), before);
    // Settled for the image: export writes its side.
    dir.command()
        .args(["resolve", "Mod3::at:", "--take", "image"])
        .expect_code(0);
    export(&dir, &[], 0);
    let text = String::from_utf8(dir.read("mod3.spry")).unwrap();
    assert!(text.contains("@elements at: i + 1"), "{text}");
    assert!(text.contains("    r reverse\n"), "{text}");
    assert_eq!(status(&dir, 0)["clean"], true);
}

#[test]
fn a_removal_on_one_side_and_a_change_on_the_other_block_only_that_definition() {
    let dir = twenty("per_definition_removal");
    // The image removes `at:` and changes `cacheFirst`; the file changes `at:`.
    dir.command().args(["rm", "Mod5::at:"]).expect_code(0);
    put_stdin(
        &dir,
        "Mod5::cacheFirst",
        "cacheFirst = method [\n    @cache = nil\n  ]",
        0,
    );
    edit(
        &dir,
        "mod5.spry",
        "@elements at: i\n",
        "@elements at: i - 1\n",
        10,
    );
    // The image changes `ifFalse:collect:` in Mod6, whose file removes it.
    put_stdin(
        &dir,
        "Mod6::ifFalse:collect:",
        "ifFalse:collect: = method [:test :blk\n    nil\n  ]",
        0,
    );
    put_stdin(&dir, "Mod6::at:", "at: = method [:i\n    nil\n  ]", 0);
    let six = String::from_utf8(dir.read("mod6.spry")).unwrap();
    let start = six.find("  # Keeps").unwrap();
    let end = six.find("  at: =").unwrap();
    dir.create("mod6.spry", format!("{}{}", &six[..start], &six[end..]));
    build(&dir, &[], 0);
    let (json, out) = export(&dir, &[], 1);
    assert_eq!(json["skipped"], serde_json::json!([]), "{out}");
    assert_eq!(json["conflicts"].as_array().unwrap().len(), 2, "{out}");
    let five = String::from_utf8(dir.read("mod5.spry")).unwrap();
    assert!(five.contains("@elements at: i - 1"), "{five}");
    assert!(five.contains("@cache = nil"), "{five}");
    let six = String::from_utf8(dir.read("mod6.spry")).unwrap();
    assert!(!six.contains("ifFalse"), "{six}");
    assert!(six.contains("at: = method [:i\n    nil\n  ]"), "{six}");
    let st = status(&dir, 1);
    assert_eq!(
        conflicts(&st),
        ["Mod5::at:", "Mod6::ifFalse:collect:"],
        "{st}"
    );
    // Settled either way, both sides end equal.
    dir.command()
        .args(["resolve", "Mod5::at:", "--take", "file"])
        .expect_code(0);
    dir.command()
        .args(["resolve", "Mod6::ifFalse:collect:", "--take", "image"])
        .expect_code(0);
    export(&dir, &[], 0);
    let six = String::from_utf8(dir.read("mod6.spry")).unwrap();
    assert!(
        six.contains("ifFalse:collect: = method [:test :blk\n    nil\n  ]"),
        "{six}"
    );
    assert_eq!(status(&dir, 0)["clean"], true);
    let (json, _) = build(&dir, &[], 0);
    assert_eq!(json["generation"], Value::Null, "{json}");
}

/// The texts of `module::name`'s versions, oldest first, with their origins.
fn versions(dir: &Dir, module: &str, name: &str) -> Vec<(String, String)> {
    let image = open(dir);
    image
        .history(module, name)
        .unwrap()
        .into_iter()
        .filter_map(|(_, v)| {
            v.hash.map(|h| {
                (
                    v.origin.name().to_string(),
                    String::from_utf8(image.text(&h).unwrap()).unwrap(),
                )
            })
        })
        .collect()
}

#[test]
fn edits_to_different_lines_of_one_definition_merge() {
    let dir = twenty("line_merge");
    let base = "# Keeps what the test rejects.\n  ifFalse:collect: = method [:test :blk\n    r = []\n    @elements do: [:x (test value: x) else: [r add: (blk value: x)]]\n    r\n  ]";
    // The image changes the body's last line; the file the comment above.
    put_stdin(
        &dir,
        "Mod7::ifFalse:collect:",
        &base.replace("    r\n  ]", "    r copy\n  ]"),
        0,
    );
    edit(
        &dir,
        "mod7.spry",
        "# Keeps what the test rejects.",
        "# Collects what the test rejects.",
        10,
    );
    let st = status(&dir, 0);
    assert_eq!(conflicts(&st), Vec::<String>::new(), "{st}");
    build(&dir, &[], 0);
    let merged = base
        .replace("    r\n  ]", "    r copy\n  ]")
        .replace("# Keeps", "# Collects");
    let image = open(&dir);
    assert_eq!(
        image.definition_text("Mod7", "ifFalse:collect:").unwrap(),
        merged.as_bytes()
    );
    assert_eq!(
        image
            .definition("Mod7", "ifFalse:collect:")
            .unwrap()
            .unwrap()
            .origin
            .name(),
        "merge"
    );
    drop(image);
    // History holds the base, the image's and the file's texts.
    let texts: Vec<String> = versions(&dir, "Mod7", "ifFalse:collect:")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(texts.contains(&base.to_string()), "{texts:?}");
    assert!(
        texts.contains(&base.replace("    r\n  ]", "    r copy\n  ]")),
        "{texts:?}"
    );
    assert!(
        texts.contains(&base.replace("# Keeps", "# Collects")),
        "{texts:?}"
    );
    let (json, out) = export(&dir, &[], 0);
    assert_eq!(json["written"][0]["path"], "mod7.spry", "{out}");
    let text = String::from_utf8(dir.read("mod7.spry")).unwrap();
    assert!(text.contains(&merged), "{text}");
    assert_eq!(status(&dir, 0)["clean"], true);
    let (json, _) = build(&dir, &[], 0);
    assert_eq!(json["generation"], Value::Null, "{json}");
    let log = dir
        .command()
        .args(["log", "Mod7::ifFalse:collect:"])
        .expect_code(0);
    assert!(log.stdout_str().contains("merge"), "{log}");
}

/// `Mod1::at:`'s one line changed to different texts in the image (`put`) and in its file.
fn edit_the_same_line_on_both_sides(dir: &Dir) {
    put_stdin(
        dir,
        "Mod1::at:",
        "at: = method [:i\n    @elements at: i + 1\n  ]",
        0,
    );
    edit(
        dir,
        "mod1.spry",
        "@elements at: i\n",
        "@elements at: i + 2\n",
        10,
    );
}

#[test]
fn the_same_line_edited_on_both_sides_is_a_conflict_showing_both() {
    let dir = twenty("line_conflict");
    edit_the_same_line_on_both_sides(&dir);
    let st = status(&dir, 1);
    assert_eq!(conflicts(&st), ["Mod1::at:"], "{st}");
    build(&dir, &[], 0);
    let st = status(&dir, 1);
    assert_eq!(conflicts(&st), ["Mod1::at:"], "{st}");
    assert!(
        st["conflicts"][0]["image"]
            .as_str()
            .unwrap()
            .contains("i + 1")
    );
    assert!(
        st["conflicts"][0]["file"]
            .as_str()
            .unwrap()
            .contains("i + 2")
    );
}

#[test]
fn a_merge_that_would_not_parse_is_a_conflict() {
    let dir = Dir::new("merge_reads_back");
    dir.create(
        "m.spry",
        "{\n  _meta = {name = 'M}\n  x = [\n    1\n    2\n    3\n    4\n    5\n  ]\n}\n",
    );
    build(&dir, &[], 0);
    // Each side alone is one string and a block; together the quotes pair up otherwise.
    put_stdin(
        &dir,
        "M::x",
        "x = [\n    \"s\n    2\n    3\n    4\n    t\"\n  ]",
        0,
    );
    edit(&dir, "m.spry", "    3\n", "    \"]\"\n", 10);
    // The lines do not overlap: status expects a merge; the build finds it does not parse.
    assert_eq!(conflicts(&status(&dir, 0)), Vec::<String>::new());
    build(&dir, &[], 0);
    let st = status(&dir, 1);
    assert_eq!(conflicts(&st), ["M::x"], "{st}");
    let image = open(&dir);
    assert!(
        String::from_utf8(image.definition_text("M", "x").unwrap())
            .unwrap()
            .contains("t\"")
    );
}

/// An `$EDITOR`: a shell script that keeps what it was given in `seen` and saves `text`.
fn editor(dir: &Dir, text: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    dir.create("answer", text);
    let script = dir.create(
        "editor.sh",
        format!(
            "#!/bin/sh\ncp \"$1\" '{seen}'\ncat '{answer}' > \"$1\"\n",
            seen = dir.join("seen").display(),
            answer = dir.join("answer").display()
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn at_conflict(name: &str) -> Dir {
    let dir = twenty(name);
    edit_the_same_line_on_both_sides(&dir);
    build(&dir, &[], 0);
    dir
}

const MARKED: &str = "at: = method [:i\n<<<<<<< image\n    @elements at: i + 1\n||||||| base\n    @elements at: i\n=======\n    @elements at: i + 2\n>>>>>>> file\n  ]\n";

#[test]
fn resolve_edit_settles_a_conflict_from_the_editor() {
    let dir = at_conflict("resolve_edit");
    let script = editor(&dir, "at: = method [:i\n    @elements at: i + 3\n  ]\n");
    let out = dir
        .command()
        .args(["resolve", "Mod1::at:", "--edit"])
        .env("VISUAL", "")
        .env("EDITOR", &script)
        .expect_code(0);
    assert_eq!(
        String::from_utf8(dir.read("seen")).unwrap(),
        MARKED,
        "{out}"
    );
    let shown = String::from_utf8(dir.command().args(["show", "Mod1::at:"]).stdout()).unwrap();
    assert!(shown.contains("at: i + 3"), "{shown}");
    let st = status(&dir, 0);
    assert_eq!(conflicts(&st), Vec::<String>::new(), "{st}");
    export(&dir, &[], 0);
    let text = String::from_utf8(dir.read("mod1.spry")).unwrap();
    assert!(
        text.contains("  at: = method [:i\n    @elements at: i + 3\n  ]\n"),
        "{text}"
    );
    assert_eq!(status(&dir, 0)["clean"], true);
    // Both earlier sides are in history.
    let texts: Vec<String> = versions(&dir, "Mod1", "at:")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(texts.iter().any(|t| t.contains("i + 1")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("i + 2")), "{texts:?}");
}

#[test]
fn resolve_edit_keeps_a_text_it_cannot_store() {
    let dir = at_conflict("resolve_edit_fails");
    for answer in [
        MARKED,
        "at: = method [:i\n    @elements at: (i\n  ]\n",
        "other = 1\n",
    ] {
        let script = editor(&dir, answer);
        let out = dir
            .command()
            .args(["resolve", "Mod1::at:", "--edit"])
            .env("VISUAL", &script)
            .expect_code(1);
        let stderr = out.stderr_str();
        if answer != MARKED {
            let kept = stderr
                .lines()
                .find_map(|l| l.strip_prefix("note: your text is kept in "))
                .unwrap_or_else(|| panic!("no kept file named\n{out}"));
            assert_eq!(std::fs::read_to_string(kept).unwrap(), answer);
            std::fs::remove_file(kept).unwrap();
        }
        let st = status(&dir, 1);
        assert_eq!(conflicts(&st), ["Mod1::at:"], "{out}\n{st}");
    }
    // A marker left in an edited text is refused too.
    let script = editor(&dir, &MARKED.replace("i + 2", "i + 4"));
    let out = dir
        .command()
        .args(["resolve", "Mod1::at:", "--edit"])
        .env("VISUAL", &script)
        .expect_code(1);
    assert!(out.stderr_str().contains("marker"), "{out}");
}

#[test]
fn diff_and_status_json_show_a_conflicts_three_texts() {
    let dir = at_conflict("conflict_diff");
    let out = dir
        .command()
        .args(["diff", "--module", "Mod1"])
        .expect_code(1);
    assert!(out.stdout_str().contains(MARKED), "{out}");
    for command in ["status", "diff"] {
        let out = dir.command().args([command, "--json"]).expect_code(1);
        let json: Value = serde_json::from_str(out.stdout_str().trim()).unwrap();
        let c = &json["conflicts"][0];
        assert_eq!(c["name"], "at:", "{json}");
        assert_eq!(c["base"], "at: = method [:i\n    @elements at: i\n  ]");
        let image = open(&dir);
        let record = image.definition("Mod1", "at:").unwrap().unwrap();
        assert_eq!(c["hashes"]["image"], record.hash.to_hex());
        assert_eq!(c["hashes"]["base"], record.base.unwrap().to_hex());
        let file = image
            .sync("Mod1")
            .unwrap()
            .conflict("at:")
            .unwrap()
            .unwrap();
        assert_eq!(c["hashes"]["file"], file.to_hex());
        drop(image);
        assert_eq!(
            c["hunks"],
            serde_json::json!([{
                "base": {"start": 2, "end": 3},
                "image": {"start": 2, "end": 3},
                "file": {"start": 2, "end": 3},
            }]),
            "{json}"
        );
    }
}

#[test]
fn put_takes_a_definition_with_a_trailing_newline_in_a_one_line_module() {
    let dir = Dir::new("put_newline");
    dir.create("m.spry", "{_meta = {name = 'M} a = 1}");
    build(&dir, &[], 0);
    put_stdin(&dir, "M::a", "a = 3\n", 0);
    export(&dir, &[], 0);
    assert_eq!(dir.read("m.spry"), b"{_meta = {name = 'M} a = 3}");
}

fn state_of(status: &Value, module: &str) -> Option<String> {
    status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == module)
        .map(|m| m["state"].as_str().unwrap().to_string())
}

/// `Mod2` with a live edit of `at:` not yet exported, then its file deleted (or replaced by a
/// directory, with `directory`).
fn deleted_with_edit(name: &str, directory: bool) -> Dir {
    let dir = twenty(name);
    put_stdin(
        &dir,
        "Mod2::at:",
        "at: = method [:i\n    @elements at: i * 2\n  ]",
        0,
    );
    std::fs::remove_file(dir.join("mod2.spry")).unwrap();
    if directory {
        dir.create("mod2.spry/inner.txt", "not Spry");
    }
    dir
}

fn assert_kept_as_deleted_and_changed(dir: &Dir) {
    for _ in 0..2 {
        let st = status(dir, 1);
        assert_eq!(
            state_of(&st, "Mod2").as_deref(),
            Some("deleted-changed"),
            "{st}"
        );
        let out = dir.command().arg("status").expect_code(1);
        assert!(
            out.stdout_str()
                .contains("Deleted on disk, changed in the image"),
            "{out}"
        );
        dir.command().arg("diff").expect_code(1);
        build(dir, &[], 0);
        let shown = String::from_utf8(dir.command().args(["show", "Mod2::at:"]).stdout()).unwrap();
        assert!(shown.contains("i * 2"), "{shown}");
    }
    let (json, out) = export(dir, &[], 1);
    assert_eq!(json["skipped"][0]["module"], "Mod2", "{out}");
    if dir.join("mod2.spry").is_dir() {
        assert!(out.stderr_str().contains("not a regular file"), "{out}");
    } else {
        assert!(out.stderr_str().contains("--take image"), "{out}");
    }
}

#[test]
fn a_deleted_file_with_a_pending_image_edit_is_a_modify_delete_conflict() {
    let dir = deleted_with_edit("modify_delete_image", false);
    assert_kept_as_deleted_and_changed(&dir);
    dir.command()
        .args(["resolve", "Mod2", "--take", "image"])
        .expect_code(0);
    let (json, out) = export(&dir, &[], 0);
    assert_eq!(json["written"][0]["created"], true, "{out}");
    let text = String::from_utf8(dir.read("mod2.spry")).unwrap();
    assert!(text.contains("@elements at: i * 2"), "{text}");
    assert!(text.contains("cacheFirst"), "{text}");
    assert_eq!(status(&dir, 0)["clean"], true);
}

#[test]
fn taking_the_deletion_removes_the_module_and_restore_brings_it_back() {
    let dir = deleted_with_edit("modify_delete_file", false);
    assert_kept_as_deleted_and_changed(&dir);
    let generation = open(&dir).generation().unwrap();
    dir.command()
        .args(["resolve", "Mod2", "--take", "file"])
        .expect_code(0);
    assert_eq!(status(&dir, 0)["clean"], true);
    dir.command().args(["show", "Mod2::at:"]).expect_code(1);
    // The removed module's live text is still in history: restore brings the module back.
    dir.command()
        .args(["restore", &format!("Mod2::at:@{generation}")])
        .expect_code(0);
    export(&dir, &[], 0);
    let text = String::from_utf8(dir.read("mod2.spry")).unwrap();
    assert!(text.contains("@elements at: i * 2"), "{text}");
    assert!(text.contains("name = 'Mod2"), "{text}");
    build(&dir, &[], 0);
    assert_eq!(status(&dir, 0)["clean"], true);
}

#[test]
fn a_file_replaced_by_a_directory_keeps_a_pending_edit() {
    let dir = deleted_with_edit("modify_delete_dir", true);
    assert_kept_as_deleted_and_changed(&dir);
    dir.command()
        .args(["resolve", "Mod2", "--take", "file"])
        .expect_code(0);
    assert_eq!(state_of(&status(&dir, 0), "Mod2"), None);
}

#[test]
fn a_deleted_file_with_a_conflict_keeps_both_sides() {
    let dir = at_conflict("modify_delete_conflict");
    std::fs::remove_file(dir.join("mod1.spry")).unwrap();
    build(&dir, &[], 0);
    let st = status(&dir, 1);
    assert_eq!(
        state_of(&st, "Mod1").as_deref(),
        Some("deleted-changed"),
        "{st}"
    );
    dir.command()
        .args(["resolve", "Mod1::at:", "--take", "file"])
        .expect_code(0);
    assert_eq!(state_of(&status(&dir, 0), "Mod1"), None);
    // The file's side of the conflict is in history.
    let texts: Vec<String> = versions(&dir, "Mod1", "at:")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(texts.iter().any(|t| t.contains("i + 2")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("i + 1")), "{texts:?}");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn export_keeps_a_files_mode_and_gives_a_new_one_the_umasks() {
    let dir = twenty("export_mode");
    set_mode(&dir.join("mod4.spry"), 0o644);
    set_mode(&dir.join("mod5.spry"), 0o755);
    put_stdin(&dir, "Mod4::at:", "at: = method [:i\n    nil\n  ]", 0);
    put_stdin(&dir, "Mod5::at:", "at: = method [:i\n    nil\n  ]", 0);
    put_stdin(&dir, "New", "{\n  _meta = {name = 'New}\n  x = 1\n}\n", 0);
    // The binary under a known umask, through the shell.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 027 && exec \"$0\" export")
        .arg(crate::util::binary())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(dir.read("mod4.spry"))
            .unwrap()
            .contains("nil")
    );
    assert_eq!(mode(&dir.join("mod4.spry")), 0o644);
    assert_eq!(mode(&dir.join("mod5.spry")), 0o755);
    assert_eq!(mode(&dir.join("new.spry")), 0o640);
    // Into another directory too.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" export --to copy")
        .arg(crate::util::binary())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir.join("copy/mod4.spry")), 0o644);
}

#[test]
fn after_resolve_take_file_status_agrees() {
    let dir = at_conflict("resolve_file_status");
    dir.command()
        .args(["resolve", "Mod1::at:", "--take", "file"])
        .expect_code(0);
    let st = status(&dir, 0);
    assert_eq!(st["clean"], true, "{st}");
    let (json, _) = export(&dir, &[], 0);
    assert_eq!(json["written"], serde_json::json!([]));
}

#[test]
fn status_lists_a_file_whose_module_another_file_defines() {
    let dir = twenty("status_twice");
    dir.create(
        "copy_of_mod8.spry",
        module_text(8).replace("Module 8", "Copy"),
    );
    let out = dir.command().args(["status", "--json"]).expect_code(1);
    let st: Value = serde_json::from_str(out.stdout_str().trim()).unwrap();
    assert!(
        st["failed"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("copy_of_mod8.spry"),
        "{st}"
    );
    let text = dir.command().arg("status").expect_code(1);
    assert!(
        text.stderr_str()
            .contains("defined in both `mod8.spry` and `copy_of_mod8.spry`")
            || text.stdout_str().contains("copy_of_mod8.spry"),
        "{text}"
    );
    // As build says.
    let (json, _) = build(&dir, &[], 1);
    assert!(
        json["failed"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("copy_of_mod8.spry"),
        "{json}"
    );
    let out = dir.command().args(["status", "--json"]).expect_code(1);
    let st: Value = serde_json::from_str(out.stdout_str().trim()).unwrap();
    assert!(
        st["failed"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("copy_of_mod8.spry"),
        "{st}"
    );
}

#[test]
fn export_to_a_directory_never_overwrites_edits_made_there() {
    let dir = twenty("export_to_edits");
    export(&dir, &["--to", "out"], 0);
    // Edited in the copy; changed in the image.
    let edited = module_text(3).replace("@elements at: i", "@elements at: i + 9");
    dir.create("out/mod3.spry", &edited);
    put_stdin(&dir, "Mod3::at:", "at: = method [:i\n    nil\n  ]", 0);
    put_stdin(&dir, "Mod4::at:", "at: = method [:i\n    nil\n  ]", 0);
    let (json, out) = export(&dir, &["--to", "out"], 1);
    assert_eq!(
        json["would_overwrite"],
        serde_json::json!(["mod3.spry"]),
        "{out}"
    );
    assert!(out.stderr_str().contains("mod3.spry"), "{out}");
    assert_eq!(json["written"], serde_json::json!([]), "{out}");
    assert_eq!(
        String::from_utf8(dir.read("out/mod3.spry")).unwrap(),
        edited
    );
    assert_eq!(dir.read("out/mod4.spry"), module_text(4).as_bytes());
    // A file the export never wrote there counts too.
    dir.create("other/mod4.spry", "hand-made");
    let (json, _) = export(&dir, &["--to", "other"], 1);
    assert_eq!(json["would_overwrite"], serde_json::json!(["mod4.spry"]));
    // --force writes anyway; then the next export there is free again.
    let (json, out) = export(&dir, &["--to", "out", "--force"], 0);
    assert_eq!(json["written"].as_array().unwrap().len(), 2, "{out}");
    assert!(
        String::from_utf8(dir.read("out/mod3.spry"))
            .unwrap()
            .contains("nil")
    );
    put_stdin(&dir, "Mod3::at:", "at: = method [:i\n    0\n  ]", 0);
    let (json, out) = export(&dir, &["--to", "out"], 0);
    assert_eq!(json["written"][0]["path"], "mod3.spry", "{out}");
}

#[test]
fn build_fresh_moves_the_image_aside_and_says_what_it_held() {
    let dir = twenty("build_fresh");
    put_stdin(&dir, "Mod9::at:", "at: = method [:i\n    nil\n  ]", 0);
    let out = dir
        .command()
        .args(["build", "--fresh", "--json"])
        .arg(dir.path())
        .expect_code(0);
    let stderr = out.stderr_str();
    assert!(stderr.contains("moved the old image aside to"), "{out}");
    assert!(
        stderr.contains("the old image held `Mod9` differently"),
        "{out}"
    );
    assert!(!stderr.contains("`Mod8`"), "{out}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".spry-image.old-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    // The old image is still readable where it was put.
    let shown = dir
        .command()
        .args(["show", "--image"])
        .arg(dir.join(&aside[0]))
        .arg("Mod9::at:")
        .stdout();
    assert!(String::from_utf8_lossy(&shown).contains("nil"));
    // The new one holds the tree.
    assert_eq!(status(&dir, 0)["clean"], true);

    // A damaged image: moved aside as it is, and a new one built.
    std::fs::write(dir.join(".spry-image/FORMAT"), "garbage").unwrap();
    let out = dir.command().arg("status").expect_code(2);
    assert!(out.stderr_str().contains(".spry-image"), "{out}");
    let out = dir
        .command()
        .args(["build", "--fresh"])
        .arg(dir.path())
        .expect_code(0);
    assert!(out.stderr_str().contains("cannot be read"), "{out}");
    assert_eq!(status(&dir, 0)["clean"], true);
}

/// A build whose only news is a conflict (the file's side stored, no module changed) says
/// it recorded the conflict, not "nothing to commit".
#[test]
fn a_build_that_only_records_a_conflict_does_not_say_nothing_to_commit() {
    let dir = twenty("conflict_only_build");
    edit_the_same_line_on_both_sides(&dir);
    let out = dir.command().arg("build").arg(dir.path()).expect_code(0);
    let stdout = out.stdout_str();
    assert!(!stdout.contains("nothing to commit"), "{out}");
    assert!(stdout.contains("1 conflict(s) recorded"), "{out}");
    assert!(out.stderr_str().contains("Mod1::at:"), "{out}");
}
