//! `spry-image parse`, run as the real binary.

use spry_image::syntax::{Ast, parse};

use crate::util::{Dir, files_with_extension, repo_path, show};

fn ast_of(text: &[u8]) -> Ast {
    let parsed = parse(text);
    assert!(
        parsed.errors.is_empty(),
        "{}: {:?}",
        show(text),
        parsed.errors
    );
    Ast::from_tree(&parsed.tree)
}

#[test]
fn check_of_the_sample_library_succeeds() {
    let dir = Dir::new("check_spry_src");
    let out = dir
        .command()
        .args(["parse", "--check"])
        .arg(repo_path("spry-src"))
        .expect_code(0);
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.is_empty(), "{out}");
    // `--check` is the default.
    dir.command()
        .arg("parse")
        .arg(repo_path("spry-src"))
        .expect_code(0);
}

#[test]
fn check_reports_each_error_with_its_place_and_goes_on() {
    let dir = Dir::new("check_bad");
    dir.create("a_bad.spry", "x = [1\n  y ]]\n");
    dir.create("b_good.spry", "a = 1\n");
    dir.create("c_bad.spry", "\"日本\" 'ok x: y: 1\n");
    let out = dir
        .command()
        .args([
            "parse",
            "--check",
            "a_bad.spry",
            "b_good.spry",
            "c_bad.spry",
        ])
        .expect_code(1);
    let err = out.stderr_str();
    // path:line:col, the code and the message.
    assert!(
        err.contains("a_bad.spry:2:6: error[unopened-bracket]: unopened `]`"),
        "{out}"
    );
    // The source line and a caret under the place, with a label.
    assert!(err.contains("2 │   y ]]"), "{out}");
    assert!(err.contains("╭─[a_bad.spry:2:6]"), "{out}");
    // The caret stands under the second `]` (the first closes the `[`), counted in characters
    // since the gutter holds multi-byte art.
    let source_line = err.lines().find(|l| l.contains("2 │   y ]]")).unwrap();
    let caret_line = err.lines().find(|l| l.contains('┬')).unwrap();
    assert_eq!(
        caret_line.chars().position(|c| c == '┬'),
        Some(source_line.chars().count() - 1),
        "{out}"
    );
    assert!(err.contains("nothing to close"), "{out}");
    // The error in the last file is found too: the first bad file did not stop the run.
    assert!(
        err.contains(
            "c_bad.spry:1:13: error[keyword-without-argument]: keyword `x:` expects an argument"
        ),
        "{out}"
    );
    assert!(!err.contains("b_good.spry"), "{out}");
}

#[test]
fn check_reports_module_errors() {
    let dir = Dir::new("check_module");
    dir.create(
        "dup.spry",
        "{\n  _meta = {name = 'Dup}\n  x = 1\n  x = 2\n}\n",
    );
    let out = dir
        .command()
        .args(["parse", "--check", "dup.spry"])
        .expect_code(1);
    assert!(
        out.stderr_str()
            .contains("dup.spry:4:3: error[duplicate-definition]"),
        "{out}"
    );
}

#[test]
fn check_reports_invalid_utf8_with_line_and_column() {
    let dir = Dir::new("check_utf8");
    dir.create("bin.spry", b"ok\n\xc3\xa9 \xff\n");
    let out = dir.command().args(["parse", "bin.spry"]).expect_code(1);
    assert!(
        out.stderr_str()
            .contains("bin.spry:2:3: error[invalid-utf8]: invalid UTF-8 at byte offset 6"),
        "{out}"
    );
}

#[test]
fn print_gives_back_the_exact_bytes() {
    let dir = Dir::new("print");
    let files: [(&str, &[u8]); 5] = [
        ("crlf.spry", b"# c\r\nx = [\r\n  1\r\n]\r\n"),
        ("bom.spry", b"\xef\xbb\xbfx = 1\n"),
        ("tabs.spry", b"\tx\t=\t\"a\tb\"\x0b\x0c# end"),
        ("bad.spry", b"x = [\"open \xff\0"),
        ("empty.spry", b""),
    ];
    for (name, text) in files {
        dir.create(name, text);
        let stdout = dir
            .command()
            .args(["parse", "--print", name])
            .output()
            .stdout;
        assert!(
            stdout == text,
            "{name}: {} != {}",
            show(&stdout),
            show(text)
        );
    }
    // Several files: their texts one after the other, even after a file with errors.
    let out = dir
        .command()
        .args(["parse", "--print", "bad.spry", "crlf.spry", "bom.spry"])
        .expect_code(1);
    let expected = [files[3].1, files[0].1, files[1].1].concat();
    assert!(out.stdout == expected, "{}", show(&out.stdout));
    assert!(
        out.stderr_str()
            .contains("bad.spry:1:6: error[unterminated-string]"),
        "{out}"
    );
}

#[test]
fn print_is_exact_for_every_file_of_the_sample_library() {
    let dir = Dir::new("print_spry_src");
    let files = files_with_extension(&repo_path("spry-src"), "spry");
    let out = dir
        .command()
        .args(["parse", "--print"])
        .args(&files)
        .expect_code(0);
    let expected: Vec<u8> = files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(
        out.stdout == expected,
        "the printed files differ from the files"
    );
}

#[test]
fn canonical_prints_one_line_per_file() {
    let dir = Dir::new("canonical");
    dir.create("one.spry", "a at: 1 put: 2 # set\n");
    dir.create("two.spry", "{x = [ 1\n  +2 ]\n}\n\n# end\n");
    dir.create("three.spry", "");
    let out = dir
        .command()
        .args(["parse", "--canonical", "one.spry", "two.spry", "three.spry"])
        .expect_code(0);
    assert_eq!(out.stdout_str(), "a at:put: 1 2\n{x = [1 2]}\n\n");
}

#[test]
fn pretty_output_reads_back_to_the_same_tree() {
    let dir = Dir::new("pretty");
    for path in files_with_extension(&repo_path("spry-src"), "spry")
        .iter()
        .step_by(7)
    {
        let text = std::fs::read(path).unwrap();
        let out = dir
            .command()
            .args(["parse", "--pretty"])
            .arg(path)
            .expect_code(0);
        let printed = out
            .stdout
            .strip_suffix(b"\n")
            .unwrap_or_else(|| panic!("{}: no final newline", path.display()));
        assert!(
            ast_of(printed) == ast_of(&text),
            "{}: the pretty form reads to another tree",
            path.display()
        );
    }
}

#[test]
fn a_missing_file_is_trouble_and_is_named() {
    let dir = Dir::new("missing");
    dir.create("good.spry", "x = 1\n");
    let out = dir
        .command()
        .args(["parse", "--check", "nope/missing.spry", "good.spry"])
        .expect_code(2);
    assert!(out.stderr_str().contains("nope/missing.spry"), "{out}");
    assert!(!out.stderr_str().contains("good.spry"), "{out}");
    // Missing beats failing.
    dir.create("bad.spry", "[");
    dir.command()
        .args(["parse", "bad.spry", "missing.spry"])
        .expect_code(2);
}

#[test]
fn a_directory_argument_finds_spry_files() {
    let dir = Dir::new("directory");
    dir.create("src/b/second.spry", "b = 2\n");
    dir.create("src/a/first.spry", "a = 1\n");
    dir.create("src/notes.txt", "[ not spry\n");
    dir.create("src/a/readme.md", "]");
    let out = dir
        .command()
        .args(["parse", "--canonical", "src"])
        .expect_code(0);
    // Sorted by path.
    assert_eq!(out.stdout_str(), "a = 1\nb = 2\n");
    dir.create("src/c/bad.spry", "(]");
    let out = dir.command().args(["parse", "src"]).expect_code(1);
    assert!(out.stderr_str().contains("bad.spry:1:1"), "{out}");
    assert!(!out.stderr_str().contains("notes.txt"), "{out}");
}

#[test]
fn a_directory_search_honours_gitignore() {
    let dir = Dir::new("gitignore");
    dir.create("src/.gitignore", "generated/\n");
    dir.create("src/generated/bad.spry", "]");
    dir.create("src/ok.spry", "x\n");
    let out = dir
        .command()
        .args(["parse", "--canonical", "src"])
        .expect_code(0);
    assert_eq!(out.stdout_str(), "x\n");
}
