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
    ("quick_look", 4),
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
    files.extend(rs_files_under(&src().join(room)));
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

/// Every `.rs` file under `src/`.
fn all_files() -> Vec<PathBuf> {
    let mut files = rs_files_under(&src());
    files.sort();
    files
}

/// Every `.rs` file at or below `dir` (none if it is not a directory).
fn rs_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
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

/// The functions of a file as (line, name, length in lines): from a line holding `fn NAME`
/// to the closing brace at the same indentation. A declaration without a body (a trait's)
/// ends at a `;` at that indentation and is not counted.
fn functions_of(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        let Some(at) = code.find("fn ") else {
            continue;
        };
        let before = &code[..at];
        let header = before.split_whitespace().all(|w| {
            matches!(
                w,
                "pub" | "const" | "async" | "unsafe" | "extern" | "default"
            ) || w.starts_with("pub(")
        });
        if !header || code.starts_with("//") || code.trim_end().ends_with(';') {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if code.trim_end().ends_with('}') {
            continue; // one line
        }
        for (j, later) in lines.iter().enumerate().skip(i + 1) {
            let rest = later.strip_prefix(indent).unwrap_or("");
            let at_indent = !rest.is_empty() && !rest.starts_with(char::is_whitespace);
            if at_indent && rest.trim_end().ends_with(';') && !rest.starts_with('}') {
                break; // a declaration: its signature ended without a body
            }
            if at_indent && rest.starts_with('}') {
                found.push((i + 1, name, j - i + 1));
                break;
            }
        }
    }
    found
}

/// Issue 17: a function that does more than a screen holds stages without names; give them
/// names (a state struct with a method per stage, or helpers).
#[test]
fn no_function_is_over_100_lines() {
    let mut long = Vec::new();
    for file in all_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name, length) in functions_of(&text) {
            if length > 100 {
                long.push(format!(
                    "{}:{line} `{name}`: {length} lines",
                    file.display()
                ));
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn function_lengths_are_counted_from_fn_to_its_closing_brace() {
    let text = "impl A {\n    pub(crate) fn f(\n        x: u8,\n    ) -> u8 {\n        x\n    }\n    fn g(&self);\n    fn h(\n        &self,\n    ) -> u8;\n}\nfn one() {}\n";
    let found = functions_of(text);
    assert_eq!(found, vec![(2, "f".to_string(), 5)]);
}

/// The path of a file under `src/`, with `/` between parts.
fn relative_to_src(file: &Path) -> String {
    let relative = file.strip_prefix(src()).unwrap_or(file);
    relative.to_string_lossy().replace('\\', "/")
}

/// Issue 17, rust-analyzer's rule: only the outermost layer knows JSON. The command line
/// (`src/cli/`) owns every JSON view; below it only the image serializes, and only its own
/// storage records (`image/record.rs`, the lock file's owner in `image/lock.rs`), for the
/// store. No report of the library carries `Serialize` or `#[serde(skip)]` holes.
#[test]
fn only_the_command_line_knows_json() {
    let mut wrong = Vec::new();
    for file in all_files() {
        let path = relative_to_src(&file);
        if path.starts_with("cli/") || path == "tidy.rs" {
            continue;
        }
        let code = code_of(&file);
        if code.contains("serde_json") && !path.starts_with("image/") {
            wrong.push(format!("{path} uses serde_json"));
        }
        let storage = path == "image/record.rs" || path == "image/lock.rs";
        if (code.contains("Serialize") || code.contains("serde(")) && !storage {
            wrong.push(format!("{path} serializes"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// ARCHITECTURE.md: `eval` reads code from an image only through `Source`, by key: only
/// `eval/loader.rs` (where `Source` is implemented for `Image`) names the image, and nothing
/// in `eval` names the store.
#[test]
fn eval_reads_the_image_only_through_source() {
    let mut wrong = Vec::new();
    for file in files_of("eval") {
        let path = relative_to_src(&file);
        let code = code_of(&file);
        if code.contains("crate::store") || code.contains("store::") {
            wrong.push(format!("{path} names the store"));
        }
        if path != "eval/loader.rs" && code.contains("crate::image") {
            wrong.push(format!("{path} names the image"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Every `fn NAME` of the tests and of `src/` (a test may sit in either), and the names of
/// the fixture directories.
fn known_tests() -> std::collections::HashSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = std::collections::HashSet::new();
    let mut files = rs_files_under(&root.join("tests"));
    files.extend(rs_files_under(&src()));
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (_, name, _) in functions_of(&text) {
            names.insert(name);
        }
        // Test files and modules are named too (`module_props`).
        if let Some(stem) = path.file_stem() {
            names.insert(stem.to_string_lossy().into_owned());
        }
    }
    for room in std::fs::read_dir(root.join("fixtures")).unwrap().flatten() {
        for case in std::fs::read_dir(room.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            names.insert(case.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

/// Issue 17: every Architecture Invariant names the test that pins it ("Pinned by"), and
/// every test it names (`file::name`, a fixture `NNNN_name`) exists.
#[test]
fn every_architecture_invariant_names_a_test_that_exists() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let known = known_tests();
    let mut wrong = Vec::new();
    let mut seen = 0;
    for paragraph in text.split("\n\n") {
        if !paragraph.contains("**Architecture Invariant:**") {
            continue;
        }
        seen += 1;
        let head: String = paragraph.chars().take(70).collect();
        let Some(at) = paragraph.find("Pinned by") else {
            wrong.push(format!("names no test: {head}"));
            continue;
        };
        let pins: Vec<&str> = paragraph[at..]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|pin| {
                let test_path = pin.contains("::")
                    && pin.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':'
                    });
                let fixture = pin.len() > 5 && pin[..4].bytes().all(|b| b.is_ascii_digit());
                test_path || fixture
            })
            .collect();
        if pins.is_empty() {
            wrong.push(format!("names no test: {head}"));
        }
        for pin in pins {
            let name = pin.rsplit("::").next().unwrap_or(pin);
            if !known.contains(name) {
                wrong.push(format!("`{pin}` does not exist: {head}"));
            }
        }
    }
    assert!(seen >= 20, "only {seen} invariants found");
    assert!(wrong.is_empty(), "{wrong:#?}");
}
