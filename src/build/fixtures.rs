//! Data-driven checks of `build` and `walk`, in the manner of the syntax fixtures: a tree and
//! edits in, each report and the image out.
//!
//! Each `fixtures/build/NNNN_name/steps` is a script, one step a line:
//!
//! - `write PATH` then the file's lines up to a line `.` (a file without a final line feed is
//!   written with `write-raw PATH`, the same way, its last line feed dropped);
//! - `remove PATH` (a file or a whole directory), `mkdir PATH`;
//! - `put MODULE::NAME TEXT`: a live edit of one definition in the image;
//! - `build [--only GLOB]... [--all] [--paths PATH,PATH...] [--max-file-size BYTES]`;
//! - `walk [GLOB...]`: the files the walk finds (within the globs), and its failures;
//! - `image`: every module the image holds: name, file and definitions;
//! - `# ...`: a comment.
//!
//! Beside it, `expected` holds each step's output under `== step`. The file-read count of a
//! build is left out: whether a file just written is read again depends on the clock (the
//! racy window of a stamp), not on what the build must do.
//!
//! `UPDATE_EXPECT=1 cargo test --lib build::fixtures` rewrites the expected files instead of
//! comparing; read every change before keeping it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{BuildOptions, BuildReport, NoProgress, PartFilter, build, walk};
use crate::image::{IMAGE_DIR, Image, Origin};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/build")
}

fn update_expect() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Runs the script `steps` in the empty directory `root`; returns the transcript.
fn run(steps: &str, root: &Path) -> String {
    let mut image = Image::create(&root.join(IMAGE_DIR), root).unwrap();
    let mut out = String::new();
    let mut lines = steps.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "write" | "write-raw" => {
                let mut text = String::new();
                for body in lines.by_ref() {
                    if body == "." {
                        break;
                    }
                    text.push_str(body);
                    text.push('\n');
                }
                if verb == "write-raw" {
                    text.pop();
                }
                let path = root.join(rest);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).unwrap();
                }
                std::fs::write(path, text).unwrap();
            }
            "remove" => {
                let path = root.join(rest);
                if path.is_dir() {
                    std::fs::remove_dir_all(path).unwrap();
                } else {
                    std::fs::remove_file(path).unwrap();
                }
            }
            "mkdir" => std::fs::create_dir_all(root.join(rest)).unwrap(),
            "put" => {
                let (target, text) = rest.split_once(' ').unwrap();
                let (module, name) = target.split_once("::").unwrap();
                let mut tx = image.begin(Origin::Live).unwrap();
                tx.put_definition(module, name, text.as_bytes()).unwrap();
                tx.commit().unwrap();
            }
            "build" => {
                let _ = writeln!(out, "== {line}");
                let options = build_options(rest);
                match build(&mut image, root, &options, &NoProgress) {
                    Ok(report) => show_report(&mut out, &report),
                    Err(e) => {
                        let _ = writeln!(out, "error: {e}");
                    }
                }
            }
            "walk" => {
                let _ = writeln!(out, "== {line}");
                let globs: Vec<String> = rest.split_whitespace().map(String::from).collect();
                let filter = PartFilter::new(&globs).unwrap();
                let mut failed = Vec::new();
                for file in walk(root, &filter, &mut failed).unwrap() {
                    let _ = writeln!(out, "{} ({} bytes)", file.path, file.size);
                }
                for failure in failed {
                    let _ = writeln!(out, "failed {}: {}", failure.path, failure.kind);
                }
            }
            "image" => {
                let _ = writeln!(out, "== {line}");
                for (name, module) in image.modules().unwrap() {
                    let _ = writeln!(
                        out,
                        "{name} in {}: {}",
                        module.path,
                        module.definitions.join(" ")
                    );
                }
            }
            other => panic!("unknown step `{other}`"),
        }
    }
    out
}

fn build_options(args: &str) -> BuildOptions {
    let mut options = BuildOptions::default();
    let mut args = args.split_whitespace();
    while let Some(arg) = args.next() {
        match arg {
            "--only" => options.only.push(args.next().unwrap().to_string()),
            "--all" => options.all = true,
            "--paths" => {
                let paths = args.next().unwrap().split(',').map(String::from).collect();
                options.paths = Some(paths);
            }
            "--max-file-size" => {
                options.max_file_size = Some(args.next().unwrap().parse().unwrap());
            }
            other => panic!("unknown build option `{other}`"),
        }
    }
    options
}

fn show_report(out: &mut String, report: &BuildReport) {
    let _ = writeln!(
        out,
        "generation {}, {} files, {} unchanged",
        report
            .generation
            .map_or_else(|| "none".to_string(), |g| g.to_string()),
        report.files,
        report.unchanged
    );
    for (label, names) in [
        ("added", &report.added),
        ("changed", &report.changed),
        ("removed", &report.removed),
    ] {
        if !names.is_empty() {
            let _ = writeln!(out, "{label}: {}", names.join(" "));
        }
    }
    for moved in &report.moved {
        let _ = writeln!(
            out,
            "moved: {} {} -> {}",
            moved.module, moved.from, moved.to
        );
    }
    for conflict in &report.conflicts {
        let _ = writeln!(out, "conflict: {}::{}", conflict.module, conflict.name);
    }
    if !report.part.is_empty() {
        let _ = writeln!(out, "part: {}", report.part.join(" "));
    }
    for failure in &report.failed {
        let _ = writeln!(out, "failed {}: {}", failure.path, failure.kind);
    }
}

#[test]
fn build_fixtures() {
    let update = update_expect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("steps").is_file())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no fixtures in {}",
        fixtures_dir().display()
    );
    let mut failures = Vec::new();
    for dir in dirs {
        let steps = std::fs::read_to_string(dir.join("steps")).unwrap();
        let tree = tempfile::tempdir().unwrap();
        let actual = run(&steps, tree.path());
        let expected_path = dir.join("expected");
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with UPDATE_EXPECT=1 to create it",
                expected_path.display()
            )
        });
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                dir.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ (UPDATE_EXPECT=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
