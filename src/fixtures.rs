//! Data-driven checks of `build`, `status`, `export` and the walk, in the manner of the
//! syntax fixtures: a tree and edits in, each report and the tree out. One runner serves
//! `fixtures/{build,status,export,walk}`; each room's own `#[cfg(test)]` check runs its
//! directory (`build::fixtures::build_fixtures`, `status::tests::status_fixtures`,
//! `export::tests::export_fixtures`, `walk::tests::walk_fixtures`).
//!
//! Each `fixtures/ROOM/NNNN_name/steps` is a script, one step a line:
//!
//! - `write PATH` then the file's lines up to a line `.` (a file without a final line feed is
//!   written with `write-raw PATH`, the same way, its last line feed dropped);
//! - `remove PATH` (a file or a whole directory), `mkdir PATH`;
//! - `put MODULE::NAME TEXT`: a live edit of one definition in the image; `rm MODULE::NAME`:
//!   a live removal; `rm MODULE`: a whole module removed in the image;
//! - `build [--only GLOB]... [--all] [--paths PATH,PATH...] [--max-file-size BYTES]`;
//! - `status [--definitions] [MODULE...]`: how image and tree differ;
//! - `export [--to DIR] [--force] [MODULE...]`: the image into the tree (or `DIR`, relative to
//!   the tree);
//! - `walk [GLOB...]`: the files the walk finds (within the globs), and its failures (and
//!   `has_files` must say whether it found any);
//! - `image`: every module the image holds: name, file and definitions;
//! - `cat PATH`: a file of the tree as it is now, byte for byte (`(none)` when it is not there);
//! - `# ...`: a comment.
//!
//! Beside it, `expected` holds each step's output under `== step`. The file-read count of a
//! build is left out: whether a file just written is read again depends on the clock (the
//! racy window of a stamp), not on what the build must do.
//!
//! `UPDATE_EXPECT=1 cargo test --lib fixtures` rewrites the expected files instead of
//! comparing; read every change before keeping it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::build::{BuildOptions, BuildReport, NoProgress, build};
use crate::export::{ExportOptions, ExportReport, export};
use crate::image::{IMAGE_DIR, Image, Origin};
use crate::source::PartFilter;
use crate::status::{StatusOptions, TreeStatus, status};
use crate::walk::walk;

fn fixtures_dir(room: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(room)
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
            "write" | "write-raw" => write_file(root, rest, &mut lines, verb == "write-raw"),
            "remove" | "mkdir" | "put" | "rm" => edit(&image, root, verb, rest),
            _ => {
                let _ = writeln!(out, "== {line}");
                report(&mut out, &mut image, root, verb, rest);
            }
        }
    }
    out
}

/// `write PATH` / `write-raw PATH`: the lines up to `.` into the file.
fn write_file<'a>(root: &Path, path: &str, lines: &mut impl Iterator<Item = &'a str>, raw: bool) {
    let mut text = String::new();
    for body in lines.by_ref() {
        if body == "." {
            break;
        }
        text.push_str(body);
        text.push('\n');
    }
    if raw {
        text.pop();
    }
    let path = root.join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// The steps that change the tree or the image and print nothing.
fn edit(image: &Image, root: &Path, verb: &str, rest: &str) {
    match verb {
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
        _ => {
            let mut tx = image.begin(Origin::Live).unwrap();
            match rest.split_once("::") {
                Some((module, name)) => tx.remove_definition(module, name).unwrap(),
                None => tx.remove_module(rest).unwrap(),
            }
            tx.commit().unwrap();
        }
    }
}

/// The steps that print what they found (under `== step`).
fn report(out: &mut String, image: &mut Image, root: &Path, verb: &str, rest: &str) {
    match verb {
        "build" => match build(image, root, &build_options(rest), &NoProgress) {
            Ok(report) => show_report(out, &report),
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
            }
        },
        "status" => match status(image, root, &status_options(rest)) {
            Ok(report) => show_status(out, &report),
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
            }
        },
        "export" => match export(image, &export_options(rest, root)) {
            Ok(report) => show_export(out, &report),
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
            }
        },
        "cat" => match std::fs::read(root.join(rest)) {
            Ok(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => out.push_str("(none)\n"),
        },
        "walk" => {
            let globs: Vec<String> = rest.split_whitespace().map(String::from).collect();
            let filter = PartFilter::new(&globs).unwrap();
            let mut failed = Vec::new();
            let files = walk(root, &filter, &mut failed).unwrap();
            // The walk that stops at its first file finds one exactly when the whole one does.
            assert_eq!(
                crate::walk::has_files(root, &filter).unwrap(),
                !files.is_empty(),
                "has_files disagrees with the walk"
            );
            for file in files {
                let _ = writeln!(out, "{} ({} bytes)", file.path, file.size);
            }
            for failure in failed {
                let _ = writeln!(out, "failed {}: {}", failure.path, failure.kind);
            }
        }
        "image" => {
            for (name, module) in image.modules().unwrap() {
                let _ = writeln!(
                    out,
                    "{name} in {}: {}",
                    module.path,
                    image.layout(&name).unwrap().names.join(" ")
                );
            }
        }
        other => panic!("unknown step `{other}`"),
    }
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

fn status_options(args: &str) -> StatusOptions {
    let mut options = StatusOptions::default();
    for arg in args.split_whitespace() {
        match arg {
            "--definitions" => options.definitions = true,
            module => options.modules.push(module.to_string()),
        }
    }
    options
}

fn export_options(args: &str, root: &Path) -> ExportOptions {
    let mut options = ExportOptions::default();
    let mut args = args.split_whitespace();
    while let Some(arg) = args.next() {
        match arg {
            "--to" => options.to = Some(root.join(args.next().unwrap())),
            "--force" => options.force = true,
            module => options.modules.push(module.to_string()),
        }
    }
    options
}

fn show_status(out: &mut String, report: &TreeStatus) {
    let _ = writeln!(out, "{} clean", report.clean);
    for m in &report.modules {
        let from = m
            .from_path
            .as_ref()
            .map(|f| format!(" from {f}"))
            .unwrap_or_default();
        let _ = writeln!(out, "{} {:?} in {}{from}", m.module, m.state, m.path);
        if !m.conflicts.is_empty() {
            let _ = writeln!(out, "  conflicts: {}", m.conflicts.join(" "));
        }
        for d in &m.definitions {
            let other = d
                .other
                .as_ref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {} {:?} {:?}{other}", d.name, d.change, d.side);
        }
    }
    for path in &report.outside {
        let _ = writeln!(out, "outside {path}");
    }
    if !report.part.is_empty() {
        let _ = writeln!(out, "part: {}", report.part.join(" "));
    }
    for failure in &report.failed {
        let _ = writeln!(out, "failed {}: {}", failure.path, failure.kind);
    }
}

fn show_export(out: &mut String, report: &ExportReport) {
    let _ = writeln!(
        out,
        "generation {}, {} unchanged",
        report
            .generation
            .map_or_else(|| "none".to_string(), |g| g.to_string()),
        report.unchanged
    );
    for w in &report.written {
        let how = if w.created { "created" } else { "wrote" };
        let _ = writeln!(out, "{how} {} ({})", w.path, w.module);
    }
    if !report.merged.is_empty() {
        let _ = writeln!(out, "merged: {}", report.merged.join(" "));
    }
    for s in &report.skipped {
        let _ = writeln!(out, "skipped {} ({}): {}", s.path, s.module, s.reason);
    }
    for path in &report.would_overwrite {
        let _ = writeln!(out, "would overwrite {path}");
    }
    for k in &report.conflicts {
        let _ = writeln!(out, "conflict kept: {}::{} in {}", k.module, k.name, k.path);
    }
    for failure in &report.failures {
        let _ = writeln!(out, "failed {}: {}", failure.path, failure.kind);
    }
}

/// Runs every fixture of `fixtures/ROOM` and compares (or, with `UPDATE_EXPECT=1`, rewrites)
/// its expected output.
pub(crate) fn check(room: &str) {
    let update = update_expect();
    let root = fixtures_dir(room);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("steps").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures in {}", root.display());
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
