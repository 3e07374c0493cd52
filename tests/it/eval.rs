//! The evaluator: data-driven fixtures, laziness of image loading, limits, a property test,
//! and `spry-image run` through the real binary.
//!
//! Each `fixtures/eval/NNNN_name.spry` sits beside `NNNN_name.txt`: what `echo`/`probe`
//! printed, then `=> ` and the last value (as `probe` prints it), or `error: ` and the error
//! with its position and call chain. `UPDATE_EXPECT=1 cargo test --test it eval_fixtures`
//! rewrites the expected files; read every change before keeping it.

use proptest::prelude::*;
use spry_image::eval::{ErrorKind, Interp, MapSource, Options, repr, run_with_stack};

use crate::image_build::copy_tree;
use crate::util::{Dir, files_with_extension, repo_path};

fn update_expect() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Runs `text` in a fresh system (on a thread with the evaluator's stack) and renders the
/// output and the result as a fixture's expected file holds them.
fn render(name: String, text: Vec<u8>) -> String {
    render_with(name, text, true)
}

/// [`render`], compiling functions of integer arithmetic or not.
fn render_with(name: String, text: Vec<u8>, compile: bool) -> String {
    run_with_stack(move || {
        let mut out = Vec::new();
        let result = {
            let options = Options {
                max_steps: Some(10_000_000),
                compile,
                ..Options::default()
            };
            let mut spry = Interp::new(options, Box::new(&mut out));
            spry.eval_text(&name, &text)
        };
        let mut shown = String::from_utf8_lossy(&out).into_owned();
        match result {
            Ok(value) => shown.push_str(&format!("=> {}\n", repr(&value))),
            Err(e) => shown.push_str(&e.report()),
        }
        shown
    })
    .expect("the evaluation thread runs")
}

#[test]
fn eval_fixtures() {
    let dir = repo_path("fixtures/eval");
    let files = files_with_extension(&dir, "spry");
    assert!(files.len() >= 30, "the fixtures are there");
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let actual = render(name.clone(), text.clone());
        // Compiled functions change nothing a program can see.
        let interpreted = render_with(name.clone(), text, false);
        if interpreted != actual {
            failures.push(format!(
                "{name} compiled and interpreted:\n--- compiled\n{actual}--- interpreted\n{interpreted}"
            ));
        }
        let expected_path = file.with_extension("txt");
        if update_expect() {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn source() -> MapSource {
    let mut source = MapSource::default();
    source.insert("Geo", "square", "# The square.\nsquare = func [:x * x]");
    source.insert("Geo", "cube", "cube = func [:x * (square x)]");
    source.insert("Geo", "unused", "unused = func [1 / 0]");
    source.insert("Geo", "broken", "broken = func [1 + \"a\"]");
    source
}

#[test]
fn eval_reads_only_the_definitions_it_touches() {
    let source = std::rc::Rc::new(source());
    let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
    spry.set_source(Box::new(source.clone()));
    let value = spry.eval_text("-e", b"Geo::cube 3").unwrap();
    assert_eq!(repr(&value), "27");
    // cube, then square (found unqualified through the module cube lives in).
    assert_eq!(source.reads(), 2);
    // Cached: asked again, nothing is read.
    spry.eval_text("-e", b"Geo::cube 4 Geo::square 2 square 5")
        .unwrap();
    assert_eq!(source.reads(), 2);
    // A name the module lacks is nil, as in the reference VM, and asked once.
    let value = spry.eval_text("-e", b"Geo::nothing").unwrap();
    assert_eq!(repr(&value), "nil");
}

#[test]
fn eval_errors_in_image_code_name_the_definition() {
    let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
    spry.set_source(Box::new(source()));
    let e = spry.eval_text("main.spry", b"\n  Geo::broken").unwrap_err();
    let report = e.report();
    assert!(
        report.starts_with("Geo::broken:1:18: error: cannot evaluate 1 + \"a\""),
        "{report}"
    );
    assert!(report.contains("called at main.spry:2:3"), "{report}");
}

#[test]
fn eval_partial_image_names_what_is_missing() {
    let mut partial = source();
    partial.partial = true;
    let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
    spry.set_source(Box::new(partial));
    let e = spry
        .eval_text("-e", b"Geo::square 2 Net::get 1")
        .unwrap_err();
    assert!(
        e.message
            .contains("Net::get is not in this image; build --only"),
        "{e}"
    );
    // A whole image: an unknown module's word is nil, as in the reference.
    let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
    spry.set_source(Box::new(source()));
    assert_eq!(repr(&spry.eval_text("-e", b"Net::get").unwrap()), "nil");
}

#[test]
fn eval_limits_end_in_spry_errors() {
    let outcome = run_with_stack(|| {
        let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
        let deep = spry.eval_text("-e", b"f = func [1 + f] f").unwrap_err();
        let nested = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        let parens = spry.eval_text("-e", nested.as_bytes()).unwrap_err();
        let dos = format!("{}[1]", "do ".repeat(100_000));
        let dos = spry.eval_text("-e", dos.as_bytes()).unwrap_err();
        let cycle = spry.eval_text("-e", b"x = reify 'x x").unwrap_err();
        (deep, parens, dos, cycle)
    })
    .unwrap();
    for e in [&outcome.0, &outcome.1, &outcome.2, &outcome.3] {
        assert_eq!(e.kind, ErrorKind::StackOverflow, "{e}");
        assert!(e.message.contains("stack overflow at depth 10000"), "{e}");
    }
    // Steps and the interrupt flag stop an endless loop.
    let mut spry = Interp::new(
        Options {
            max_steps: Some(10_000),
            ..Options::default()
        },
        Box::new(std::io::sink()),
    );
    let e = spry.eval_text("-e", b"[true] whileTrue: [1]").unwrap_err();
    assert_eq!(e.kind, ErrorKind::StepLimit);
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut spry = Interp::new(
        Options {
            interrupt: Some(flag),
            ..Options::default()
        },
        Box::new(std::io::sink()),
    );
    let e = spry.eval_text("-e", b"[true] whileTrue: [1]").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Interrupted);
}

/// Random programs over the words the evaluator knows: they may fail, never panic.
fn program() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("1".to_string()),
        Just("-3".to_string()),
        Just("2.5".to_string()),
        Just("\"ab\"".to_string()),
        Just("x".to_string()),
        Just(":x".to_string()),
        Just(":$y".to_string()),
        Just("$x".to_string()),
        Just("'x".to_string()),
        Just("@x".to_string()),
        Just("Foo::x".to_string()),
        Just("nil".to_string()),
        Just("true".to_string()),
        prop::sample::select(vec![
            "+",
            "-",
            "*",
            "/",
            "<",
            "==",
            "=",
            ":=",
            ",",
            "then:",
            "else:",
            "then:else:",
            "do",
            "func",
            "method",
            "^",
            "repeat:",
            "whileTrue:",
            "to:do:",
            "at:",
            "at:put:",
            "add:",
            "size",
            "do:",
            "map:",
            "select:",
            "throw",
            "catch:",
            "echo",
            "probe",
            "print",
            "clone",
            "reify",
            "parse",
            "serialize",
            "tag:",
            "tags",
            "first",
            "next",
            "reduce",
            "activation",
            "caller",
            "locals",
            "self",
            ";",
            "node",
            "mod",
            "not",
            "and",
            "eval",
            "type",
            "copyFrom:to:",
            "split:",
            "max:default:",
        ])
        .prop_map(str::to_string),
    ];
    let tree = atom.prop_recursive(4, 48, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_flat_map(|items| {
            let body = items.join(" ");
            prop_oneof![
                Just(format!("[{body}]")),
                Just(format!("({body})")),
                Just(format!("{{{body}}}")),
                Just(body),
            ]
        })
    });
    prop::collection::vec(tree, 1..8).prop_map(|nodes| nodes.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]
    #[test]
    fn eval_random_programs_never_panic(code in program()) {
        let ran = run_with_stack(move || {
            let mut spry = Interp::new(
                Options { max_steps: Some(20_000), ..Options::default() },
                Box::new(std::io::sink()),
            );
            let _ = spry.eval_text("-e", code.as_bytes());
        });
        prop_assert!(ran.is_ok(), "the evaluation panicked");
    }
}

// ---- spry-image run, the real binary ----

#[test]
fn eval_run_script_with_shebang_args_and_exit_codes() {
    let dir = Dir::new("eval_run_script");
    dir.create(
        "hello.spry",
        "#!/usr/bin/env spry-image run\n# Greets.\necho (\"hello \" , (args at: 0))\n",
    );
    let out = dir.command().args(["run", "hello.spry", "world"]).output();
    assert!(out.code == Some(0), "{out}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world\n");

    dir.create("bad.spry", "f = func [:a + \"x\"]\ng = func [f 1]\n\ng\n");
    let out = dir.command().args(["run", "bad.spry"]).output();
    assert_eq!(out.code, Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.spry:1:14: error: cannot evaluate 1 + \"x\""),
        "{err}"
    );
    assert!(err.contains("in f called at bad.spry:2:11"), "{err}");
    assert!(err.contains("in g called at bad.spry:4:1"), "{err}");

    let out = dir.command().args(["run", "-e", "3 + 4 * 2"]).output();
    assert!(out.code == Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "14\n");

    let out = dir.command().args(["run", "-e", "f = func [f] f"]).output();
    assert_eq!(out.code, Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stack overflow at depth 10000"));

    // The highest depth allowed still ends in a Spry error, not in Rust's stack overflow.
    let out = dir
        .command()
        .args(["run", "--max-depth", "25000", "-e", "f = func [1 + f] f"])
        .output();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stack overflow at depth 25000"));
    let out = dir
        .command()
        .args(["run", "--max-depth", "30000", "-e", "1"])
        .output();
    assert_eq!(out.code, Some(2), "{out}");

    let out = dir.command().args(["run", "missing.spry"]).output();
    assert_eq!(out.code, Some(2));

    dir.create("syntax.spry", "x = [1 2\n");
    let out = dir.command().args(["run", "syntax.spry"]).output();
    assert_eq!(out.code, Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("syntax.spry:1:5: error:"));
}

#[test]
fn eval_run_definition_from_an_image() {
    let dir = Dir::new("eval_run_image");
    dir.create(
        "src/geo.spry",
        "{\n  _meta = {name = 'Geo}\n  # Squares.\n  square = func [:x * x]\n  twice = func [:s , s]\n  main = func [echo (twice \"ab\") square 9]\n}\n",
    );
    dir.create(
        "src/other.spry",
        "{\n  _meta = {name = 'Other}\n  x = 1\n}\n",
    );
    let out = dir.command().args(["build", "src"]).output();
    assert!(out.code == Some(0), "{out}");
    let src = dir.join("src");
    let out = dir
        .command()
        .current_dir(&src)
        .args(["run", "Geo::main"])
        .output();
    assert!(out.code == Some(0), "{out}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "abab\n81\n");
    let out = dir
        .command()
        .current_dir(&src)
        .args(["run", "Geo::twice", "xy"])
        .output();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\"xyxy\"\n");
    // A script run in the tree reaches the image's modules.
    dir.create("src/use.spry", "echo (Geo::square 12)\n");
    let out = dir
        .command()
        .current_dir(&src)
        .args(["run", "use.spry"])
        .output();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "144\n");
    // A partial image (a fresh tree built with --only) names what it lacks.
    dir.create("part/geo.spry", dir.read("src/geo.spry"));
    dir.create("part/other.spry", dir.read("src/other.spry"));
    let out = dir
        .command()
        .args(["build", "part", "--only", "geo.spry"])
        .output();
    assert!(out.code == Some(0), "{out}");
    let part = dir.join("part");
    let out = dir
        .command()
        .current_dir(&part)
        .args(["run", "-e", "Geo::square 3 Other::x"])
        .output();
    assert_eq!(out.code, Some(1), "{out}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Other::x is not in this image; build --only"),
        "{err}"
    );
}

#[test]
fn eval_repl_evaluates_lines_multiline_input_modules_and_commands() {
    let dir = Dir::new("eval_repl");
    dir.create(
        "src/geo.spry",
        "{\n  _meta = {name = 'Geo}\n  square = func [:x * x]\n}\n",
    );
    let out = dir.command().args(["build", "src"]).output();
    assert!(out.code == Some(0), "{out}");
    let out = dir.repl(
        &dir.join("src"),
        "x = 3\nx * 2\nf = func [\n  :a + 1\n]\nf 41\nGeo::square 5\n:ls\n:show Geo::square\n\
         :module Geo\ncube = func [:x * (square x)]\n:module\nGeo::cube 2\n1 + \"a\"\n:quit\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "3",
            "6",
            "func [:a + 1]",
            "42",
            "25",
            "modules: Geo",
            "bound here: x f Geo",
            "square = func [:x * x]",
            "func [:x * (square x)]",
            "8",
        ],
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("repl-8:1:3: error: cannot evaluate 1 + \"a\""),
        "{stderr}"
    );
    // The definition made in module Geo is a live edit: in the image and in its file, so
    // that a build after it finds nothing to do.
    assert!(stderr.contains("stored Geo::cube"), "{stderr}");
    let file = String::from_utf8_lossy(&dir.read("src/geo.spry")).into_owned();
    assert_eq!(
        file,
        "{\n  _meta = {name = 'Geo}\n  square = func [:x * x]\n  cube = func [:x * (square x)]\n}\n"
    );
    let out = dir.command().args(["build", "src"]).output();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to commit"),
        "{out}"
    );
    // History persists in the image directory.
    let history = dir.read("src/.spry-image/repl_history");
    assert!(String::from_utf8_lossy(&history).contains("Geo::cube 2"));
}

#[test]
fn eval_colors_its_errors_on_a_terminal_only() {
    let dir = Dir::new("eval_colors");
    // Into a pipe: plain.
    let out = dir.command().args(["run", "-e", "1 + nil"]).output();
    assert_eq!(out.code, Some(1), "{out}");
    let plain = String::from_utf8_lossy(&out.stderr);
    assert!(
        plain.contains("-e:1:3: error: cannot evaluate 1 + nil"),
        "{plain}"
    );
    assert!(!plain.contains('\x1b'), "{plain:?}");
    // Asked for (as a terminal would have it): red.
    let out = dir
        .command()
        .args(["run", "--color=always", "-e", "1 + nil"])
        .output();
    let colored = String::from_utf8_lossy(&out.stderr);
    assert!(colored.contains("\x1b[31m"), "{colored:?}");
}

#[test]
fn eval_a_module_definition_comes_before_a_primitive_of_the_same_name() {
    // Inside module Counter, `next` is the module's own method (read from the image on first
    // use), not the block primitive `next` bound at the top level, as in the reference VM.
    let mut source = MapSource::default();
    source.insert("Counter", "next", "next = method [42]");
    source.insert("Counter", "twice", "twice = method [(self next) * 2]");
    let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
    spry.set_source(Box::new(source));
    let value = spry.eval_text("-e", b"c = {} c Counter::twice").unwrap();
    assert_eq!(repr(&value), "84");
    // Outside the module the primitive still answers.
    let value = spry.eval_text("-e", b"b = [7 8] b next").unwrap();
    assert_eq!(repr(&value), "7");
}

#[test]
fn eval_spry_src_library_code_runs_on_a_copy() {
    // spry-src's own modules, built into an image in a copy of the tree (never the tracked
    // files): the set and the interval, whose methods once called themselves for ever (inside a
    // module its `do:` and `add:` come before the primitives), and listFiles, FileUtil's need.
    let dir = Dir::new("eval_spry_src");
    let proj = dir.join("proj");
    copy_tree(&repo_path("spry-src"), &proj);
    let out = dir.command().args(["build", "proj"]).output();
    assert!(out.code == Some(0), "{out}");
    let code = "s = (OrderedSet::withAll: [\"b\" \"a\" \"b\"]) s OrderedSet::add: \"c\" \
        probe (s OrderedSet::printString) probe (s OrderedSet::size) \
        i = (Interval::from: 1 to: 10 by: 3) probe (i Interval::collect: [:x x * 2]) \
        probe (i Interval::select: [:x x > 3]) probe (i Interval::inject: 0 into: [:a :b a + b]) \
        probe ((Interval::from: 5 to: 1 by: -2) Interval::asBlock) \
        probe ((listFiles \"scripts\") size)";
    let out = dir
        .command()
        .current_dir(&proj)
        .args(["run", "-e", code])
        .output();
    assert!(out.code == Some(0), "{out}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\"OrderedSet(b, a, c)\"\n3\n[2 8 14 20]\n[4 7 10]\n22\n[5 3 1]\n4\n4\n"
    );
    // Every script of spry-src runs to its end (exit 0) under Spry's rules, and says what it
    // should: a line each script prints when its library code works.
    let json = dir.join("doc.json");
    std::fs::write(
        &json,
        r#"{"a": [1, 2.5, null, true], "b": {"c": "d\u0041"}}"#,
    )
    .unwrap();
    for script in files_with_extension(&proj.join("scripts"), "spry") {
        let name = script.file_stem().unwrap().to_string_lossy().into_owned();
        let mut cmd = dir.command();
        cmd.current_dir(&proj).args(["run"]).arg(&script);
        if name == "json_roundtrip" {
            cmd.arg(&json);
        }
        let out = cmd.output();
        assert!(out.code == Some(0), "{}: {out}", script.display());
        let stdout = out.stdout_str();
        let expected: &[&str] = match name.as_str() {
            "demo" => &[
                "set: OrderedSet(pear, apple, fig)\n",
                "most common: the and\n",
                "reversed: (4 -> 3 -> 2 -> 1)\n",
                "parse_json_value\n",
                "Dear Zoë,\n",
                "  - Tea (2 × 3.5 €)\n",
                "1/2 + 1/3 = 5/6\n",
                "Thursday, 29 February 2024\n",
                "1h 30m 15s\n",
                "emoji: 👋🙂\n",
                "Hiroさん、こんにちは\n",
            ],
            "bench" => &[
                "quick",
                "merge",
                "insertion",
                "slowFib 20",
                "json writes/s: ",
            ],
            "run_tests" => &[
                "5/5 passed, 0 skipped",
                "3/3 passed, 0 skipped",
                "4/4 passed, 1 skipped",
                "  ok    errors\n",
                "[INFO ] tests: finished in ",
            ],
            "json_roundtrip" => &["ok   ", "\"unicode\": \"日本 ✓\"", "0 failure(s)\n"],
            _ => &[],
        };
        assert!(!stdout.is_empty(), "{}: {out}", script.display());
        for line in expected {
            assert!(
                stdout.contains(line),
                "{}: no {line:?} in {out}",
                script.display()
            );
        }
        assert!(!stdout.contains("FAIL"), "{}: {out}", script.display());
    }
    // A file that is not there is a failure the script reports, and its exit code says so.
    let out = dir
        .command()
        .current_dir(&proj)
        .args(["run", "scripts/json_roundtrip.spry", "no-such.json"])
        .output();
    assert!(out.code == Some(1), "{out}");
    assert!(
        out.stdout_str()
            .contains("FAIL no-such.json: no such file: no-such.json"),
        "{out}"
    );
}

/// Redefining a definition at the prompt replaces its code, not the comment above it: one types
/// code there, and the file's documentation must not vanish with the old text.
#[test]
fn eval_repl_redefinition_keeps_the_comment_above_the_definition() {
    let dir = Dir::new("eval_repl_comment");
    dir.create(
        "src/geo.spry",
        "{\n  _meta = {name = 'Geo}\n  # the answer,\n  # twice over\n  answer = 42\n\n  # squares\n  square = func [:x * x]\n}\n",
    );
    let out = dir.command().args(["build", "src"]).output();
    assert!(out.code == Some(0), "{out}");
    dir.repl(
        &dir.join("src"),
        ":module Geo\nanswer = 43\nsquare = func [:x * x * 1]\nGeo::square 3\n:quit\n",
    );
    let file = String::from_utf8_lossy(&dir.read("src/geo.spry")).into_owned();
    assert_eq!(
        file,
        "{\n  _meta = {name = 'Geo}\n  # the answer,\n  # twice over\n  answer = 43\n\n  # squares\n  square = func [:x * x * 1]\n}\n"
    );
    let out = dir.command().args(["build", "src"]).output();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to commit"),
        "{out}"
    );
}

/// `:=` on a module's definition that was not read from the image yet (`Foo::x := 5` first,
/// or `x := 5` in one of its functions) assigns it, as on one already read: the definition is
/// read first, so the assignment is not lost to the lazy loading.
#[test]
fn eval_assigning_a_definition_not_read_yet_assigns_it() {
    let dir = Dir::new("eval_assign_lazy");
    dir.create(
        "src/foo.spry",
        "{\n  _meta = {name = 'Foo}\n  x = 1\n  getx = func [x]\n  setx = func [x := 5]\n  f = func [10]\n}\n",
    );
    let out = dir.command().args(["build", "src"]).output();
    assert!(out.code == Some(0), "{out}");
    let src = dir.join("src");
    for (code, expected) in [
        // The module not loaded yet.
        ("Foo::x := 5\necho Foo::x", "5\n"),
        // The module loaded, `x` not read yet.
        ("echo Foo::f\nFoo::x := 5\necho Foo::x", "10\n5\n"),
        // Read already (as before).
        ("echo Foo::x\nFoo::x := 5\necho Foo::x", "1\n5\n"),
        // Unqualified, in a function of the module.
        ("Foo::setx\necho Foo::getx", "5\n"),
        // A name the module lacks is bound nowhere, as before.
        ("Foo::y := 5\necho Foo::y", "nil\n"),
    ] {
        let out = dir
            .command()
            .current_dir(&src)
            .args(["run", "-e", code])
            .output();
        assert!(out.code == Some(0), "{code}: {out}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{code}");
    }
}

// ---- compiled functions against the interpreter ----

/// An integer expression as a function body holds it: literals (some near overflow), the
/// arguments, values that are not integers, operators, conditionals, parens and calls of the
/// program's functions (which may recurse without end: the limits must stop both the same).
fn int_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        6 => (-3i64..14).prop_map(|i| i.to_string()),
        1 => prop_oneof![
            Just("9223372036854775807".to_string()),
            Just("3037000500".to_string()),
            Just("-9223372036854775807".to_string()),
        ],
        6 => prop_oneof![Just("a".to_string()), Just("b".to_string())],
        1 => prop_oneof![
            Just("nil".to_string()),
            Just("true".to_string()),
            Just("1.5".to_string()),
            Just("\"s\"".to_string()),
            Just("self".to_string()),
        ],
    ];
    leaf.prop_recursive(5, 40, 3, |inner| {
        let op = prop_oneof![
            Just("+"),
            Just("-"),
            Just("*"),
            Just("<"),
            Just(">"),
            Just("<="),
            Just(">="),
        ];
        prop_oneof![
            4 => (inner.clone(), op, inner.clone()).prop_map(|(l, o, r)| format!("{l} {o} {r}")),
            2 => inner.clone().prop_map(|e| format!("({e})")),
            3 => (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, y, n)| format!("{c} then: [{y}] else: [{n}]")),
            1 => (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, y, n)| format!("{c} else: [{y}] then: [{n}]")),
            1 => (inner.clone(), inner.clone()).prop_map(|(c, y)| format!("{c} then: [{y}]")),
            1 => (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("[{x} {y}] do")),
            3 => (0usize..3, inner.clone(), inner.clone())
                .prop_map(|(f, x, y)| match f {
                    1 => format!("f1 {x} {y}"),
                    f => format!("f{f} {x}"),
                }),
            1 => (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("{x} {y}")),
        ]
    })
}

/// A program of three functions (`f1` takes two arguments), calls of them that show their
/// results and what a cascade sees after them, and a redefinition between calls: pieces run
/// one after the other in one system, so that one piece's error does not hide the next.
fn int_program() -> impl Strategy<Value = Vec<String>> {
    (
        int_expr(),
        int_expr(),
        int_expr(),
        int_expr(),
        0i64..9,
        0i64..9,
    )
        .prop_map(|(b0, b1, b2, b1_again, x, y)| {
            vec![
                format!("f0 = func [:a {b0}]\nf1 = func [:a :b {b1}]\nf2 = func [:a {b2}]"),
                format!("echo (f0 {x})"),
                format!("f0 {y} + (f0 {x})"),
                format!("f1 {x} {y} ;"),
                format!("echo (f2 {y} ;)"),
                format!("f1 = func [:a :b {b1_again}]"),
                format!("f1 {y} {x}"),
                format!("f2 (f0 {y}) ;"),
                format!("n = 0 1 to: 5 do: [:i n := (n + (f2 i))] n"),
            ]
        })
}

/// What a run shows: its output, the value or error of each piece, and the steps it counted.
fn run_compiled(pieces: &[String], compile: bool, max_depth: usize) -> (String, Vec<String>, u64) {
    let pieces = pieces.to_vec();
    run_with_stack(move || {
        let mut out = Vec::new();
        let (results, steps) = {
            let options = Options {
                max_steps: Some(30_000),
                max_depth,
                compile,
                ..Options::default()
            };
            let mut spry = Interp::new(options, Box::new(&mut out));
            let results = pieces
                .iter()
                .map(|piece| match spry.eval_text("-e", piece.as_bytes()) {
                    Ok(v) => repr(&v),
                    Err(e) => e.report(),
                })
                .collect();
            (results, spry.steps())
        };
        (String::from_utf8_lossy(&out).into_owned(), results, steps)
    })
    .expect("the evaluation thread runs")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]
    #[test]
    fn eval_compiled_functions_agree_with_the_interpreter(
        pieces in int_program(),
        max_depth in prop_oneof![Just(10_000usize), 150usize..400],
    ) {
        let compiled = run_compiled(&pieces, true, max_depth);
        let interpreted = run_compiled(&pieces, false, max_depth);
        prop_assert_eq!(compiled, interpreted, "{:#?}", pieces);
    }
}

#[test]
fn eval_compiled_run_stops_at_an_interrupt() {
    // fib 90 takes years: compiled, it must still end at Ctrl-C, as the interpreter does.
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let raise = flag.clone();
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        raise.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let e = run_with_stack(move || {
        let options = Options {
            interrupt: Some(flag),
            ..Options::default()
        };
        let mut spry = Interp::new(options, Box::new(std::io::sink()));
        let code = b"fib = func [:n n < 2 then: [n] else: [(fib (n - 1)) + (fib (n - 2))]]\n\
                     fib 20\nfib 90";
        spry.eval_text("-e", code).unwrap_err()
    })
    .unwrap();
    raiser.join().unwrap();
    assert_eq!(e.kind, ErrorKind::Interrupted, "{e}");
}
