//! Three-way sync, conflicts and history through the real binary: `resolve`, `log`, `restore`,
//! `gc`.

use serde_json::Value;

use crate::image_build::{build, edit, open, spry_tree};
use crate::util::Dir;

fn put(dir: &Dir, target: &str, text: &str) {
    dir.create("put.txt", text);
    dir.command()
        .args(["put", target, "--file", "put.txt"])
        .expect_code(0);
}

fn log_json(dir: &Dir, target: &str) -> Vec<Value> {
    let out = dir.command().args(["log", target, "--json"]).expect_code(0);
    out.stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A conflict over `Stack::depth`: the image says `+ 1`, the file `+ 2`.
fn conflicted(name: &str) -> Dir {
    let dir = spry_tree(name);
    build(&dir, &[], 0);
    put(&dir, "Stack::depth", "depth = method [@elements size + 1]");
    edit(
        &dir,
        "collections/stack.spry",
        "depth = method [@elements size]",
        "depth = method [@elements size + 2]",
        10,
    );
    let (json, out) = build(&dir, &[], 0);
    assert!(out.stderr_str().contains("changed both"), "{out}");
    assert_eq!(
        json["generation"],
        Value::Null,
        "a conflict changes nothing: {json}"
    );
    dir
}

#[test]
fn changes_to_different_definitions_merge_both_ways() {
    let dir = spry_tree("merge_both_ways");
    build(&dir, &[], 0);
    put(&dir, "Stack::depth", "depth = method [@elements size + 0]");
    edit(
        &dir,
        "collections/stack.spry",
        "\"Stack\" ,",
        "\"Stack!\" ,",
        10,
    );
    build(&dir, &[], 0);
    let image = open(&dir);
    assert_eq!(
        image.definition_text("Stack", "depth").unwrap(),
        b"depth = method [@elements size + 0]",
        "the live edit was kept"
    );
    assert!(
        String::from_utf8(image.definition_text("Stack", "printString").unwrap())
            .unwrap()
            .contains("\"Stack!\""),
        "the file's edit was taken"
    );
    drop(image);
    // What the build took from the file while the image kept its own edit: a merge.
    let merged = |versions: &[Value], needle: &str| {
        versions
            .iter()
            .any(|v| v["origin"] == "merge" && v["text"].as_str().unwrap().contains(needle))
    };
    let versions = log_json(&dir, "Stack::printString");
    assert!(merged(&versions, "\"Stack!\""), "{versions:#?}");
    dir.command().arg("export").expect_code(0);
    let text = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    assert!(text.contains("@elements size + 0]") && text.contains("\"Stack!\""));

    // The other way: an export merges a file changed since the last build first.
    put(&dir, "Stack::depth", "depth = method [@elements size + 3]");
    edit(
        &dir,
        "collections/stack.spry",
        "\"Stack!\" ,",
        "\"Stack?\" ,",
        20,
    );
    dir.command().arg("export").expect_code(0);
    let text = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    assert!(text.contains("@elements size + 3]") && text.contains("\"Stack?\""));
    let versions = log_json(&dir, "Stack::printString");
    assert!(merged(&versions, "\"Stack?\""), "{versions:#?}");
    // A file change alone is a file change.
    let depth = log_json(&dir, "Stack::depth");
    assert!(depth.iter().all(|v| v["origin"] != "merge"), "{depth:#?}");
}

#[test]
fn resolve_take_file_settles_a_conflict() {
    let dir = conflicted("resolve_file");
    dir.command().arg("status").expect_code(1);
    dir.command()
        .args(["resolve", "Stack::depth", "--take", "file"])
        .expect_code(0);
    let image = open(&dir);
    assert_eq!(
        image.definition_text("Stack", "depth").unwrap(),
        b"depth = method [@elements size + 2]"
    );
    drop(image);
    dir.command().arg("export").expect_code(0);
    dir.command().args(["status"]).expect_code(0);
    // The image's side is in history.
    let versions = log_json(&dir, "Stack::depth");
    assert!(
        versions
            .iter()
            .any(|v| v["text"] == "depth = method [@elements size + 1]"),
        "{versions:?}"
    );
    assert_eq!(versions[0]["origin"], "resolve");
    // Resolving again: nothing is in conflict.
    dir.command()
        .args(["resolve", "Stack::depth", "--take", "file"])
        .expect_code(1);
}

#[test]
fn resolve_take_image_keeps_the_files_text_in_history() {
    let dir = conflicted("resolve_image");
    dir.command()
        .args(["resolve", "Stack::depth", "--take", "image"])
        .expect_code(0);
    dir.command().arg("export").expect_code(0);
    let text = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    assert!(
        text.contains("depth = method [@elements size + 1]"),
        "{text}"
    );
    let versions = log_json(&dir, "Stack::depth");
    assert!(
        versions
            .iter()
            .any(|v| v["text"] == "depth = method [@elements size + 2]"),
        "the file's text is gone: {versions:?}"
    );
    dir.command().arg("status").expect_code(0);
}

#[test]
fn a_put_of_a_merged_text_settles_a_conflict() {
    let dir = conflicted("resolve_put");
    put(&dir, "Stack::depth", "depth = method [@elements size + 3]");
    dir.command().arg("export").expect_code(0);
    let text = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    assert!(
        text.contains("depth = method [@elements size + 3]"),
        "{text}"
    );
    dir.command().arg("status").expect_code(0);
    // The file's side, overwritten by the export, is in history.
    let versions = log_json(&dir, "Stack::depth");
    assert!(
        versions
            .iter()
            .any(|v| v["text"] == "depth = method [@elements size + 2]"),
        "{versions:#?}"
    );
}

/// Found by the long model run: a conflict settled by removing the definition in the image,
/// then an export, lost the file's side (the image had never held it as a version).
#[test]
fn an_rm_that_settles_a_conflict_keeps_the_files_side_in_history() {
    let dir = conflicted("resolve_rm");
    dir.command().args(["rm", "Stack::depth"]).expect_code(0);
    dir.command().arg("export").expect_code(0);
    let text = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    assert!(!text.contains("depth = method"), "{text}");
    let versions = log_json(&dir, "Stack::depth");
    let texts: Vec<&str> = versions.iter().filter_map(|v| v["text"].as_str()).collect();
    for side in ["+ 1]", "+ 2]"] {
        assert!(
            texts.iter().any(|t| t.ends_with(side)),
            "`{side}` is gone: {versions:#?}"
        );
    }
    // And it can be brought back.
    let file_side = versions
        .iter()
        .find(|v| v["text"] == "depth = method [@elements size + 2]")
        .unwrap();
    assert!(
        file_side["time"].as_u64().unwrap() > 0,
        "its generation is in the log: {file_side}"
    );
    let target = format!("Stack::depth@{}", file_side["generation"]);
    dir.command().args(["restore", &target]).expect_code(0);
    assert_eq!(
        open(&dir).definition_text("Stack", "depth").unwrap(),
        b"depth = method [@elements size + 2]"
    );
}

#[test]
fn log_and_restore_bring_back_any_version() {
    let dir = spry_tree("restore");
    build(&dir, &[], 0);
    put(&dir, "Tiny::answer", "answer = 43");
    put(&dir, "Tiny::answer", "answer = 44");
    dir.command().args(["rm", "Tiny::answer"]).expect_code(0);
    let versions = log_json(&dir, "Tiny::answer");
    let shown: Vec<(u64, &str, bool)> = versions
        .iter()
        .map(|v| {
            (
                v["generation"].as_u64().unwrap(),
                v["origin"].as_str().unwrap(),
                v["removed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (4, "live", true),
            (3, "live", false),
            (2, "live", false),
            (1, "file", false)
        ]
    );
    // A removed definition comes back as a new change.
    let out = dir
        .command()
        .args(["restore", "Tiny::answer@2"])
        .expect_code(0);
    assert!(out.stdout_str().contains("generation 5"), "{out}");
    assert_eq!(
        open(&dir).definition_text("Tiny", "answer").unwrap(),
        b"answer = 43"
    );
    assert_eq!(log_json(&dir, "Tiny::answer")[0]["origin"], "restore");
    // The log of the whole image and of a module.
    let out = dir.command().args(["log", "Tiny"]).expect_code(0);
    assert_eq!(out.stdout_str().matches("generation ").count(), 5, "{out}");
    dir.command()
        .args(["restore", "Tiny::answer@0"])
        .expect_code(1);
    dir.command()
        .args(["restore", "Tiny::answer"])
        .expect_code(2);
    dir.command().args(["log", "Nope::x"]).expect_code(1);
}

#[test]
fn history_survives_removal_and_is_pruned_only_by_gc() {
    let dir = spry_tree("gc");
    build(&dir, &[], 0);
    for v in 1..=4 {
        put(&dir, "Tiny::answer", &format!("answer = {v}"));
    }
    // Exported, then the module's file goes away: its history stays. (Unexported, the
    // module would stay: a modify/delete conflict.)
    dir.command().arg("export").expect_code(0);
    std::fs::remove_file(dir.join("util/tiny.spry")).unwrap();
    build(&dir, &[], 0);
    assert_eq!(log_json(&dir, "Tiny::answer").len(), 6);
    let out = dir.command().args(["gc", "--keep", "2"]).expect_code(0);
    assert!(out.stdout_str().contains("pruned"), "{out}");
    let versions = log_json(&dir, "Tiny::answer");
    assert_eq!(versions.len(), 2, "{versions:?}");
    let out = dir.command().arg("check").expect_code(0);
    assert!(out.stdout_str().contains("digest"));
}

#[test]
fn a_live_removal_and_a_file_change_of_the_same_definition_conflict() {
    let dir = spry_tree("remove_conflict");
    build(&dir, &[], 0);
    dir.command().args(["rm", "Stack::depth"]).expect_code(0);
    edit(
        &dir,
        "collections/stack.spry",
        "depth = method [@elements size]",
        "depth = method [@elements size * 1]",
        10,
    );
    build(&dir, &[], 0);
    let status: Value = serde_json::from_str(
        dir.command()
            .args(["status", "--json"])
            .expect_code(1)
            .stdout_str()
            .trim(),
    )
    .unwrap();
    assert_eq!(status["modules"][0]["state"], "conflict", "{status}");
    dir.command()
        .args(["resolve", "Stack::depth", "--take", "file"])
        .expect_code(0);
    assert_eq!(
        open(&dir).definition_text("Stack", "depth").unwrap(),
        b"depth = method [@elements size * 1]"
    );
}
