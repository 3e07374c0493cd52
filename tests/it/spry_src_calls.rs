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

/// A child process killed when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `spry-image repl` in `proj` fed `input`; its output.
/// `text` with `definition` added as a new last definition of its module's curly: after the
/// last line before the closing brace, one blank line between, in the file's line endings.
fn with_new_definition(text: &[u8], definition: &str, eol: &str) -> Vec<u8> {
    let close = format!("{eol}}}");
    let at = text
        .windows(close.len())
        .rposition(|w| w == close.as_bytes())
        .expect("a closing brace on a line of its own");
    let mut out = text[..at].to_vec();
    out.extend_from_slice(format!("{eol}{eol}{definition}").as_bytes());
    out.extend_from_slice(&text[at..]);
    out
}

#[test]
fn spry_src_repl_definitions_land_in_their_files_byte_exact() {
    let dir = Dir::new("spry_src_repl");
    let proj = dir.join("proj");
    copy_tree(&repo_path("spry-src"), &proj);
    dir.command().args(["build", "proj"]).expect_code(0);
    let greetings = proj.join("text/greetings.spry");
    let csv = proj.join("text/csv.spry");
    let list = proj.join("collections/linked_list.spry");
    let before: Vec<Vec<u8>> = [&greetings, &csv, &list]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();

    // New definitions in three modules (a BOM, CRLF line endings, tab indents), a definition
    // replaced, and the session uses them at once, with the modules' own code.
    let out = dir.repl(
        &proj,
        ":module Greetings\n\
         shout: = func [:lang (Greetings::hello: lang) , \"!\"]\n\
         party: = func [:n StringUtil::repeat: \"🎈\" times: n]\n\
         :module Csv\n\
         semicolon = \";\"\n\
         :module LinkedList\n\
         empty? = method [@length == 0]\n\
         :module\n\
         Greetings::shout: 'de\n\
         Greetings::length: (Greetings::party: 2)\n\
         Csv::semicolon\n\
         (LinkedList::new) LinkedList::empty?\n",
    );
    let stdout = out.stdout_str();
    assert!(
        stdout.ends_with("\"Gr\\xC3\\xBC\\xC3\\x9F Gott!\"\n2\n\";\"\ntrue\n"),
        "{out}"
    );
    for stored in [
        "Greetings::shout:",
        "Greetings::party:",
        "Csv::semicolon",
        "LinkedList::empty?",
    ] {
        assert!(
            out.stderr_str().contains(&format!("stored {stored} ")),
            "{out}"
        );
    }

    let greetings_text = String::from_utf8(before[0].clone()).unwrap();
    let old_party = "  # Celebrate 🎉 a number of times.\n  party: = func [:n\n    StringUtil::repeat: \"🎉\" times: n\n  ]";
    assert_eq!(greetings_text.matches(old_party).count(), 1);
    let expected = with_new_definition(
        greetings_text
            .replace(
                old_party,
                // The comment above the replaced definition stays (one types code at the
                // prompt, not its documentation).
                "  # Celebrate 🎉 a number of times.\n  party: = func [:n StringUtil::repeat: \"🎈\" times: n]",
            )
            .as_bytes(),
        "  shout: = func [:lang (Greetings::hello: lang) , \"!\"]",
        "\n",
    );
    assert_eq!(std::fs::read(&greetings).unwrap(), expected);
    assert!(expected.starts_with(b"\xEF\xBB\xBF"));
    assert_eq!(
        std::fs::read(&csv).unwrap(),
        with_new_definition(&before[1], "  semicolon = \";\"", "\r\n")
    );
    assert_eq!(
        std::fs::read(&list).unwrap(),
        with_new_definition(&before[2], "\tempty? = method [@length == 0]", "\n")
    );
    let out = dir.command().args(["build", "proj"]).expect_code(0);
    assert!(out.stdout_str().contains("nothing to commit"), "{out}");
    let out = dir
        .command()
        .current_dir(&proj)
        .arg("status")
        .expect_code(0);
    assert!(out.stdout_str().contains("agree"), "{out}");

    // With a watcher running, the REPL borrows the image from it and the file is written too.
    let mut watch = Reaped(
        dir.command()
            .args(["watch", "--json"])
            .arg(&proj)
            .cmd()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Its lines, read on a thread, waited for at most ten seconds each.
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = watch.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            if line.map(|l| tx.send(l)).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a line from watch --json")
    };
    let started = next();
    assert!(started.contains("watching"), "{started}");
    let before = std::fs::read(&greetings).unwrap();
    let out = dir.repl(
        &proj,
        ":module Greetings\nwave: = func [:n StringUtil::repeat: \"👋\" times: n]\n:module\nGreetings::wave: 2\n",
    );
    assert!(
        out.stderr_str().contains("stored Greetings::wave: "),
        "{out}"
    );
    assert!(
        out.stdout_str()
            .ends_with("\"\\xF0\\x9F\\x91\\x8B\\xF0\\x9F\\x91\\x8B\"\n"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&greetings).unwrap(),
        with_new_definition(
            &before,
            "  wave: = func [:n StringUtil::repeat: \"👋\" times: n]",
            "\n"
        )
    );
    // The watcher lent the image to the REPL.
    let lent = std::iter::repeat_with(next)
        .find(|l| l.contains("\"lent\""))
        .unwrap();
    assert!(lent.contains("repl"), "{lent}");
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(watch.0.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(watch.0.wait().unwrap().code(), Some(0));
    let out = dir.command().args(["build", "proj"]).expect_code(0);
    assert!(out.stdout_str().contains("nothing to commit"), "{out}");
}
