//! Every definition of spry-src, called: the library is built into an image (of a copy of the
//! tree), and each of its modules' definitions is run by a small call chosen for it, in a fresh
//! system reading the image, its printed result compared with the one expected.
//!
//! The calls are in `fixtures/spry-src-calls/MODULE.txt`, one entry per definition:
//!
//! ```text
//! @@ Module::name
//! code that calls it (one or more lines)
//! --
//! what echo/probe printed, then `=> ` and the last value, or the error's report
//! ```
//!
//! Every definition of the image but `_meta` must have an entry, every entry must name a
//! definition, and no call may fail: so that "runs spry-src's modules" is shown, not hoped. The
//! word `tmpDir` is the copy's directory (shown as `<tmp>` in expected texts), for the file
//! functions.
//! `UPDATE_EXPECT=1 cargo test --test it spry_src_calls` rewrites the expected parts; read
//! every change before keeping it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use spry_image::Image;
use spry_image::eval::{Interp, Options, Value, repr, run_with_stack};

use crate::image_build::copy_tree;
use crate::util::{Dir, files_with_extension, repo_path};

/// One call of the table.
struct Entry {
    /// `Module::name`.
    name: String,
    code: String,
    expected: String,
}

/// The entries of one table file, in order.
fn entries(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut in_expected = false;
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("@@ ") {
            entries.push(Entry {
                name: name.trim().to_string(),
                code: String::new(),
                expected: String::new(),
            });
            in_expected = false;
            continue;
        }
        let Some(entry) = entries.last_mut() else {
            continue;
        };
        if !in_expected && line.trim_end() == "--" {
            in_expected = true;
        } else if in_expected {
            entry.expected.push_str(line);
        } else {
            entry.code.push_str(line);
        }
    }
    for entry in &mut entries {
        let kept = entry.expected.trim_end().len();
        entry.expected.truncate(kept);
        entry.expected.push('\n');
    }
    entries
}

/// A table file written back with `actual` as the expected parts.
fn rewrite(entries: &[Entry], actual: &BTreeMap<String, (String, bool)>) -> String {
    let mut out = String::new();
    for entry in entries {
        let shown = actual.get(&entry.name).map_or(&entry.expected, |a| &a.0);
        out.push_str(&format!(
            "@@ {}\n{}--\n{}\n\n",
            entry.name,
            entry.code,
            shown.trim_end()
        ));
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// Runs each call in a fresh system reading the image at `proj`: its rendered outcome (the
/// temporary directory's path shown as `<tmp>`) and whether it failed.
fn run_calls(proj: PathBuf, calls: Vec<(String, String)>) -> BTreeMap<String, (String, bool)> {
    run_with_stack(move || {
        let image = Image::open(&proj.join(".spry-image")).expect("the image opens");
        let tmp = proj.display().to_string();
        let mut results = BTreeMap::new();
        for (name, code) in calls {
            let mut out = Vec::new();
            let result = {
                let options = Options {
                    max_steps: Some(50_000_000),
                    ..Options::default()
                };
                let mut spry = Interp::new(options, Box::new(&mut out));
                spry.set_source(Box::new(&image));
                spry.define("tmpDir", Value::str(tmp.as_bytes()));
                spry.eval_text(&name, code.as_bytes())
            };
            let mut shown = String::from_utf8_lossy(&out).into_owned();
            let failed = result.is_err();
            match result {
                Ok(value) => shown.push_str(&format!("=> {}\n", repr(&value))),
                Err(e) => shown.push_str(&e.report()),
            }
            results.insert(name, (shown.replace(&tmp, "<tmp>"), failed));
        }
        results
    })
    .expect("the evaluation thread runs")
}

/// `Module::name` of every definition of the image but `_meta`.
fn definitions(image_dir: &Path) -> Vec<String> {
    let image = Image::open(image_dir).unwrap();
    let mut names = Vec::new();
    for (module, _) in image.modules().unwrap() {
        if module.starts_with("scripts/") {
            continue;
        }
        for (name, _) in image.definitions(&module).unwrap() {
            if name != "_meta" {
                names.push(format!("{module}::{name}"));
            }
        }
    }
    names
}

#[test]
fn spry_src_calls_every_definition_of_every_module() {
    let dir = Dir::new("spry_src_calls");
    let proj = dir.join("proj");
    copy_tree(&repo_path("spry-src"), &proj);
    let out = dir.command().args(["build", "proj"]).output();
    assert!(out.code == Some(0), "{out}");

    let tables = files_with_extension(&repo_path("fixtures/spry-src-calls"), "txt");
    let mut all = Vec::new();
    let mut calls = Vec::new();
    for table in &tables {
        let text = std::fs::read_to_string(table).unwrap();
        let entries = entries(&text);
        for entry in &entries {
            calls.push((entry.name.clone(), entry.code.clone()));
        }
        all.push((table.clone(), entries));
    }
    let actual = run_calls(proj.clone(), calls);

    // Every definition has an entry, and every entry names a definition, once.
    let defined = definitions(&proj.join(".spry-image"));
    let mut listed: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, entries) in &all {
        for entry in entries {
            *listed.entry(entry.name.as_str()).or_default() += 1;
        }
    }
    let missing: Vec<&String> = defined
        .iter()
        .filter(|d| !listed.contains_key(d.as_str()))
        .collect();
    let unknown: Vec<&&str> = listed
        .iter()
        .filter(|(n, _)| !defined.iter().any(|d| d == *n))
        .map(|(n, _)| n)
        .collect();
    let twice: Vec<&&str> = listed
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| n)
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty() && twice.is_empty(),
        "no entry for {missing:?}; no definition for {unknown:?}; listed twice: {twice:?}"
    );

    if std::env::var_os("UPDATE_EXPECT").is_some_and(|v| !v.is_empty() && v != "0") {
        for (table, entries) in &all {
            std::fs::write(table, rewrite(entries, &actual)).unwrap();
        }
        return;
    }
    let mut failures = Vec::new();
    for (_, entries) in &all {
        for entry in entries {
            if let Some((shown, _)) = actual.get(&entry.name)
                && *shown != entry.expected
            {
                failures.push(format!(
                    "{}:\n{}--- expected\n{}--- actual\n{shown}",
                    entry.name, entry.code, entry.expected
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // No call fails: an expected error would only pin a gap.
    let errors: Vec<&String> = actual
        .iter()
        .filter(|(_, (_, failed))| *failed)
        .map(|(name, _)| name)
        .collect();
    assert!(errors.is_empty(), "calls that fail: {errors:?}");
}
