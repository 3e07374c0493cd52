//! Issue 13, first contact: an image serves the tree it sits in. A tree copied, moved or
//! renamed with its image inside never writes into the tree the image was made for.

use std::collections::BTreeMap;
use std::path::Path;

use crate::image_build::copy_tree;
use crate::util::{Dir, repo_path};

/// Every file under `dir` with its bytes, the image directory included.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                todo.push(path);
            } else if entry.file_type().unwrap().is_file() {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The source files only (what a user's edits would touch).
fn sources(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(dir)
        .into_iter()
        .filter(|(path, _)| !path.starts_with(".spry-image"))
        .collect()
}

/// `cp -r from to`, hidden files and the image included.
fn copy_all(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_all(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

const PING: &str = "ping = func [\"pong\"]";

/// `put Stack::ping`, the text from a file outside the trees.
fn put_ping(dir: &Dir) -> Vec<String> {
    let file = dir.create("ping.txt", PING);
    vec![
        "put".to_string(),
        "Stack::ping".to_string(),
        "--file".to_string(),
        file.to_string_lossy().into_owned(),
    ]
}

#[test]
fn issue_13_a_copied_tree_with_its_image_changes_only_the_copy() {
    let dir = Dir::new("issue_13_copy");
    copy_tree(&repo_path("spry-src"), &dir.join("proj"));
    dir.command().args(["build", "proj"]).expect_code(0);
    copy_all(&dir.join("proj"), &dir.join("proj-copy"));
    let original = snapshot(&dir.join("proj"));

    let copy = dir.join("proj-copy");
    let out = dir
        .command()
        .current_dir(&copy)
        .args(put_ping(&dir))
        .expect_code(0);
    assert!(
        out.stderr_str().contains("now serves") && out.stderr_str().contains("proj-copy"),
        "the move is said once: {out}"
    );
    let out = dir
        .command()
        .current_dir(&copy)
        .arg("export")
        .expect_code(0);
    assert!(
        !out.stderr_str().contains("now serves"),
        "said only once: {out}"
    );
    let stack =
        String::from_utf8(std::fs::read(copy.join("collections/stack.spry")).unwrap()).unwrap();
    assert!(stack.contains("ping = func [\"pong\"]"), "{stack}");

    // Nothing of the original changed, its image included.
    assert_eq!(snapshot(&dir.join("proj")), original);
    // And the copy's status is its own.
    let out = dir
        .command()
        .current_dir(&copy)
        .arg("status")
        .expect_code(0);
    assert!(out.stdout_str().contains("proj-copy"), "{out}");
}

#[test]
fn issue_13_a_moved_tree_takes_its_image_along() {
    let dir = Dir::new("issue_13_move");
    copy_tree(&repo_path("spry-src"), &dir.join("proj"));
    dir.command().args(["build", "proj"]).expect_code(0);
    std::fs::rename(dir.join("proj"), dir.join("moved")).unwrap();
    // Something lives at the old place again: it must never be written to.
    copy_tree(&repo_path("spry-src"), &dir.join("proj"));
    let before = sources(&dir.join("proj"));

    let moved = dir.join("moved");
    dir.command()
        .current_dir(&moved)
        .args(put_ping(&dir))
        .expect_code(0);
    dir.command()
        .current_dir(&moved)
        .arg("export")
        .expect_code(0);
    let stack = std::fs::read(moved.join("collections/stack.spry")).unwrap();
    assert!(String::from_utf8_lossy(&stack).contains("ping"));
    assert_eq!(sources(&dir.join("proj")), before);
    assert!(!dir.join("proj/.spry-image").exists());

    // A rebuild of the moved tree sees nothing changed but what export wrote.
    let out = dir
        .command()
        .current_dir(&moved)
        .args(["build", "--json"])
        .expect_code(0);
    let json: serde_json::Value = serde_json::from_str(out.stdout_str().trim()).unwrap();
    assert_eq!(json["added"].as_array().unwrap().len(), 0, "{json}");
    assert_eq!(json["removed"].as_array().unwrap().len(), 0, "{json}");
}

#[test]
fn issue_13_build_in_a_subdirectory_builds_the_enclosing_tree() {
    let dir = Dir::new("issue_13_subdirectory");
    copy_tree(&repo_path("spry-src"), &dir.join("proj"));
    dir.command().args(["build", "proj"]).expect_code(0);
    dir.create(
        "proj/collections/extra.spry",
        "{_meta = {name = 'Extra} x = 1}\n",
    );
    let out = dir
        .command()
        .current_dir(dir.join("proj/collections"))
        .args(["build", "--json"])
        .expect_code(0);
    let json: serde_json::Value = serde_json::from_str(out.stdout_str().trim()).unwrap();
    assert_eq!(json["added"], serde_json::json!(["Extra"]), "{json}");
    assert!(!dir.join("proj/collections/.spry-image").exists());
}

#[test]
fn issue_13_an_image_named_spry_image_cannot_serve_another_tree() {
    let dir = Dir::new("issue_13_foreign_home");
    copy_tree(&repo_path("spry-src"), &dir.join("proj"));
    std::fs::create_dir(dir.join("elsewhere")).unwrap();
    let out = dir
        .command()
        .args(["build", "proj"])
        .arg("--image")
        .arg(dir.join("elsewhere/.spry-image"))
        .expect_code(2);
    assert!(
        out.stderr_str().contains("belongs to its own directory"),
        "{out}"
    );
    assert!(!dir.join("elsewhere/.spry-image").exists());

    // An image kept outside its tree under another name works, and names the tree it writes.
    dir.command()
        .args(["build", "proj"])
        .arg("--image")
        .arg(dir.join("elsewhere/image"))
        .expect_code(0);
    let out = dir
        .command()
        .args(put_ping(&dir))
        .arg("--image")
        .arg(dir.join("elsewhere/image"))
        .expect_code(0);
    assert!(out.stderr_str().contains("writes to the tree at"), "{out}");
}
