//! Checks of the source code itself, in rust-analyzer's `tidy` manner: the layering that
//! ARCHITECTURE.md describes, read from the `use` lines of each room.

use std::path::{Path, PathBuf};

/// The rooms, lowest first: a room may use rooms at its own level or below, never above.
/// `syntax`, `store` and `error` use no other room; `source` knows the image only for a
/// file's stamp (`PathRecord`); `tree_path` (which paths are source, where a file may be
/// written) uses only `error`, so that the image can name a script as the walk does; `eval`
/// reads trees from `syntax` and code from the image, and nothing above.
const LAYERS: &[(&str, usize)] = &[
    ("syntax", 0),
    ("store", 0),
    ("error", 0),
    ("image", 1),
    ("source", 2),
    ("tree_path", 1),
    ("walk", 3),
    ("build", 4),
    ("status", 5),
    ("export", 5),
    ("watch", 6),
    ("diagnostic", 1),
    ("corpus", 0),
    ("eval", 2),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `.rs` files of a room (a file `src/NAME.rs`, a directory `src/NAME/`, or both).
fn files_of(room: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src().join(format!("{room}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut dirs = vec![src().join(room)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The code of a file: its test module and comments left out (tests and doc links may reach
/// anywhere).
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn level(room: &str) -> Option<usize> {
    LAYERS.iter().find(|(r, _)| *r == room).map(|(_, l)| *l)
}

#[test]
fn rooms_use_only_rooms_below_them() {
    let mut wrong = Vec::new();
    for (room, at) in LAYERS {
        for file in files_of(room) {
            let text = code_of(&file);
            for (other, other_at) in LAYERS {
                if other == room || other_at <= at {
                    continue;
                }
                if text.contains(&format!("crate::{other}::"))
                    || text.contains(&format!("crate::{other}}}"))
                    || text.contains(&format!("crate::{{{other}"))
                {
                    wrong.push(format!("{} uses `{other}`", file.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn syntax_does_no_io_and_the_image_reaches_fjall_only_through_the_store() {
    for file in files_of("syntax") {
        let text = code_of(&file);
        for io in ["std::fs", "std::net", "std::process", "File::"] {
            assert!(!text.contains(io), "{} uses {io}", file.display());
        }
    }
    for file in files_of("image") {
        let text = code_of(&file);
        assert!(!text.contains("fjall::"), "{} uses fjall", file.display());
    }
    assert!(level("build") > level("source") && level("source") > level("image"));
}
