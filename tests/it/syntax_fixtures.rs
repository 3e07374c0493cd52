//! Data-driven tests of the syntax layer, in rust-analyzer's manner, and round trips over every
//! Spry file of the repository.
//!
//! Each `fixtures/syntax/{ok,err}/NNNN_name.spry` sits beside `NNNN_name.txt`, which holds:
//!
//! - the lossless tree (`SyntaxTree::debug_dump`);
//! - `--- canonical` and the canonical form;
//! - for `err/`, `--- errors` and one line per error, `line:col: code: message`, each related
//!   place below it as an indented `line:col: label`;
//! - for a module, `--- unit`: its kind, its name, and each definition's name and exact text.
//!
//! `UPDATE_EXPECT=1 cargo test --test it syntax_fixtures` rewrites the expected files instead
//! of comparing; read every change against `SPRY-SYNTAX.md` before keeping it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use spry_image::syntax::{Ast, LineIndex, SourceUnit, SyntaxError, UnitKind, parse};

use crate::util::{files_with_extension, repo_path, show};

fn fixture_dir(kind: &str) -> PathBuf {
    repo_path("fixtures/syntax").join(kind)
}

fn update_expect() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|v| !v.is_empty() && v != "0")
}

fn write_errors(out: &mut String, text: &[u8], errors: &[SyntaxError]) {
    let index = LineIndex::new(text);
    for e in errors {
        let at = index.line_col(text, e.span.start);
        let _ = writeln!(out, "{at}: {}: {}", e.kind.code(), e.message);
        for (span, label) in &e.related {
            let _ = writeln!(out, "    {}: {label}", index.line_col(text, span.start));
        }
    }
}

/// The expected-file text of one fixture, and the number of errors found.
fn render(text: &[u8], script_name: &str) -> (String, usize) {
    let parsed = parse(text);
    let mut out = parsed.tree.debug_dump();
    out.push_str("--- canonical\n");
    out.push_str(&Ast::from_tree(&parsed.tree).canonical());
    out.push('\n');
    let (errors, unit) = if parsed.errors.is_empty() {
        match SourceUnit::parse(text, script_name) {
            Ok(unit) => (Vec::new(), Some(unit)),
            Err(e) => (e.errors, None),
        }
    } else {
        (parsed.errors, None)
    };
    if !errors.is_empty() {
        out.push_str("--- errors\n");
        write_errors(&mut out, text, &errors);
    }
    if let Some(unit) = unit.filter(|u| u.kind() == UnitKind::Module) {
        out.push_str("--- unit\n");
        let _ = writeln!(out, "module {:?}", unit.name());
        for (i, d) in unit.definitions().iter().enumerate() {
            let _ = writeln!(out, "{:?} = {}", d.name, show(unit.definition_text(i)));
        }
    }
    (out, errors.len())
}

fn spry_fixtures(kind: &str) -> Vec<PathBuf> {
    let found = files_with_extension(&fixture_dir(kind), "spry");
    assert!(
        !found.is_empty(),
        "no fixtures in {}",
        fixture_dir(kind).display()
    );
    found
}

fn check_dir(kind: &str, must_have_errors: bool) {
    let update = update_expect();
    let mut failures = Vec::new();
    for path in spry_fixtures(kind) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let valid_name = name.len() > 5
            && name.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && name.as_bytes()[4] == b'_';
        assert!(
            valid_name,
            "{}: fixtures are named NNNN_name.spry",
            path.display()
        );
        let text = std::fs::read(&path).unwrap();
        let (actual, errors) = render(&text, &name);
        if must_have_errors && errors == 0 {
            failures.push(format!(
                "{}: an err/ fixture must have errors",
                path.display()
            ));
        }
        if !must_have_errors && errors != 0 {
            failures.push(format!(
                "{}: an ok/ fixture must have no errors:\n{actual}",
                path.display()
            ));
        }
        let expect_path = path.with_extension("txt");
        if update {
            let old = std::fs::read_to_string(&expect_path).ok();
            if old.as_deref() != Some(actual.as_str()) {
                std::fs::write(&expect_path, &actual).unwrap();
                eprintln!("updated {}", expect_path.display());
            }
            continue;
        }
        match std::fs::read_to_string(&expect_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}: differs from the expected file\n{}",
                path.display(),
                first_difference(&expected, &actual)
            )),
            Err(e) => failures.push(format!(
                "{}: cannot read {} ({e}); run with UPDATE_EXPECT=1 to create it",
                path.display(),
                expect_path.display()
            )),
        }
    }
    // Every expected file belongs to a fixture.
    for txt in files_with_extension(&fixture_dir(kind), "txt") {
        if !txt.with_extension("spry").exists() {
            failures.push(format!("{}: no fixture beside it", txt.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed (UPDATE_EXPECT=1 rewrites the expected files):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn first_difference(expected: &str, actual: &str) -> String {
    let mut e = expected.lines();
    let mut a = actual.lines();
    let mut line = 1;
    loop {
        match (e.next(), a.next()) {
            (None, None) => return "(only line endings differ)".to_string(),
            (x, y) if x == y => line += 1,
            (x, y) => {
                return format!(
                    "first difference at line {line}:\n  expected: {x:?}\n  actual:   {y:?}"
                );
            }
        }
    }
}

#[test]
fn ok_fixtures() {
    check_dir("ok", false);
}

#[test]
fn err_fixtures() {
    check_dir("err", true);
}

// ---------------------------------------------------------------------------------------------
// Round trips over every Spry file of the repository.

/// Every Spry file (`.spry`, `.sy`) under `spry-src/` and `fixtures/`.
pub fn corpus() -> Vec<PathBuf> {
    let mut files = files_with_extension(&repo_path("spry-src"), "spry");
    assert!(
        files.len() >= 10,
        "spry-src/ should hold the sample library"
    );
    files.extend(files_with_extension(&repo_path("fixtures"), "spry"));
    let sy = files_with_extension(&repo_path("fixtures"), "sy");
    assert!(sy.len() >= 5, "fixtures/sy-tree holds `.sy` files");
    files.extend(sy);
    files
}

fn ast_of(text: &[u8]) -> Ast {
    Ast::from_tree(&parse(text).tree)
}

/// Checks the round trips of one text; returns what went wrong.
pub fn round_trip_failures(path: &Path, text: &[u8]) -> Vec<String> {
    let mut failures = Vec::new();
    let p = path.display();
    let parsed = parse(text);
    if parsed.tree.to_bytes() != text {
        failures.push(format!("{p}: the exact printer changed the text"));
    }
    if !parsed.errors.is_empty() {
        return failures;
    }
    let ast = Ast::from_tree(&parsed.tree);

    let canonical = ast.canonical();
    let reread = parse(canonical.as_bytes());
    if !reread.errors.is_empty() {
        failures.push(format!(
            "{p}: the canonical form has errors: {:?}\n{canonical}",
            reread.errors
        ));
    }
    let canonical_ast = Ast::from_tree(&reread.tree);
    if canonical_ast != ast {
        failures.push(format!(
            "{p}: the canonical form reads to another tree\n{canonical}"
        ));
    }
    let again = canonical_ast.canonical();
    if again != canonical {
        failures.push(format!(
            "{p}: the canonical form is not a fixed point\n{canonical}\n{again}"
        ));
    }

    let pretty = ast.pretty();
    let reread = parse(pretty.as_bytes());
    if !reread.errors.is_empty() {
        failures.push(format!(
            "{p}: the pretty form has errors: {:?}\n{pretty}",
            reread.errors
        ));
    }
    let pretty_ast = Ast::from_tree(&reread.tree);
    if pretty_ast != ast {
        failures.push(format!(
            "{p}: the pretty form reads to another tree\n{pretty}"
        ));
    }
    let again = pretty_ast.pretty();
    if again != pretty {
        failures.push(format!(
            "{p}: the pretty form is not stable\n{pretty}\n---\n{again}"
        ));
    }
    failures
}

#[test]
fn corpus_round_trips() {
    let mut failures = Vec::new();
    let mut clean = 0;
    for path in corpus() {
        let text = std::fs::read(&path).unwrap();
        if parse(&text[..]).errors.is_empty() {
            clean += 1;
        }
        failures.extend(round_trip_failures(&path, &text));
    }
    assert!(clean > 40, "only {clean} files parse without errors");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn spry_src_has_no_errors() {
    // The sample library and the tree in the language's own style are valid Spry, module view
    // included.
    let sy_tree = files_with_extension(&repo_path("fixtures/sy-tree"), "sy");
    for path in files_with_extension(&repo_path("spry-src"), "spry")
        .into_iter()
        .chain(sy_tree)
    {
        let text = std::fs::read(&path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if let Err(e) = SourceUnit::parse(text, &name) {
            panic!("{}: {:?}", path.display(), e.errors);
        }
    }
}

#[test]
fn canonical_is_shared_by_equal_trees() {
    // Two sources that read to the same tree have the same canonical form, and the canonical
    // form of each corpus file is also that of its pretty form.
    for path in corpus() {
        let text = std::fs::read(&path).unwrap();
        let parsed = parse(&text[..]);
        if !parsed.errors.is_empty() {
            continue;
        }
        let ast = Ast::from_tree(&parsed.tree);
        let from_pretty = ast_of(ast.pretty().as_bytes());
        assert_eq!(
            from_pretty.canonical(),
            ast.canonical(),
            "{}",
            path.display()
        );
    }
}
