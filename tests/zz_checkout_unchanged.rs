//! The guard of the test suite: after the tests (cargo runs test targets in name order, so this
//! one comes after `it`), the checkout's tracked source and fixtures are as git has them. Tests
//! work on copies in temporary directories; a test that wrote into `spry-src/` or `fixtures/`
//! (through an image that still named the checkout as its tree, say) fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_checkout_is_unchanged_by_the_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        eprintln!("UPDATE_EXPECT is set: fixtures are being rewritten on purpose; not checked");
        return;
    }
    let status = Command::new("git")
        .current_dir(root)
        .args(["status", "--porcelain", "--untracked-files=all", "--"])
        .args(["spry-src", "fixtures"])
        .output();
    let output = match status {
        Ok(output) if output.status.success() => output,
        _ => {
            eprintln!("not a git checkout (or no git): the checkout guard is skipped");
            return;
        }
    };
    let changed = String::from_utf8_lossy(&output.stdout);
    assert!(
        changed.trim().is_empty(),
        "the tests changed the checkout (tests must work on copies in temporary directories; \
         if these are your own uncommitted edits, commit or stash them):\n{changed}"
    );
}
