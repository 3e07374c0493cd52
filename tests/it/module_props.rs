//! Property tests aimed at the module view (`SourceUnit`), the layer that cuts a file into
//! definitions (issue 12).
//!
//! Modules are generated from bindings whose expressions end in every way a binding can end
//! (a keyword message still open, an infix operator, a word, a literal, a closed bracket, a
//! comment), followed by plain and keyword-named bindings, with odd layouts: CRLF, tabs,
//! comments between tokens, no newline at the end, everything on one line. For each:
//!
//! - nothing panics;
//! - a keyword message running on into a keyword-named binding is `keyword-runs-on`, exactly
//!   where the generator put one, and nothing else is an error;
//! - otherwise the pieces concatenate to the file, definitions are in order and disjoint, and
//!   each definition's text read alone (`read_definition`) gives back its name;
//! - mutations of generated modules never panic and, when they read, cut exactly.
//!
//! `parse --check` and `build` agree file by file on a sample, run through the real binary.
//!
//! The number of cases is small by default; `PROPTEST_CASES` sets it:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release --test it module_props
//! ```

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use spry_image::syntax::{Piece, SourceUnit, SyntaxErrorKind, UnitKind, read_definition};

use crate::util::{Dir, show};

fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// How a binding's expression ends, and whether it leaves a keyword message open (every key
/// with its argument, so that a following key extends it) or a key waiting for its argument.
#[derive(Clone, Copy, Debug)]
struct Ending {
    text: &'static str,
    open: bool,
    dangling: bool,
}

const ENDINGS: &[Ending] = &[
    Ending {
        text: "x ifFalse: y",
        open: true,
        dangling: false,
    },
    Ending {
        text: "x at: 1",
        open: true,
        dangling: false,
    },
    Ending {
        text: "x at: [1 2]",
        open: true,
        dangling: false,
    },
    Ending {
        text: "x at: 1 put: (y)",
        open: true,
        dangling: false,
    },
    Ending {
        text: "x Foo::at: 1",
        open: true,
        dangling: false,
    },
    Ending {
        text: "x at: \"s\"",
        open: true,
        dangling: false,
    },
    Ending {
        text: "x at: 1 size",
        open: false,
        dangling: false,
    },
    Ending {
        text: "3 +",
        open: false,
        dangling: false,
    },
    Ending {
        text: "a , b",
        open: false,
        dangling: false,
    },
    Ending {
        text: "x",
        open: false,
        dangling: false,
    },
    Ending {
        text: "42",
        open: false,
        dangling: false,
    },
    Ending {
        text: "-1.5e3",
        open: false,
        dangling: false,
    },
    Ending {
        text: "\"a string\nover lines\"",
        open: false,
        dangling: false,
    },
    Ending {
        text: "'lit",
        open: false,
        dangling: false,
    },
    Ending {
        text: "$get",
        open: false,
        dangling: false,
    },
    Ending {
        text: "[:n n * 2]",
        open: false,
        dangling: false,
    },
    Ending {
        text: "(x ifFalse: y)",
        open: false,
        dangling: false,
    },
    Ending {
        text: "{a = 1 b: = 2}",
        open: false,
        dangling: false,
    },
    Ending {
        text: "method [:k :v v]",
        open: false,
        dangling: false,
    },
    Ending {
        text: "x at:",
        open: false,
        dangling: true,
    },
    Ending {
        text: "at: 1 size",
        open: false,
        dangling: false,
    },
];

/// A binding's name: a word, or keyword-shaped (one key, two keys in one token).
#[derive(Clone, Copy, Debug)]
enum NameShape {
    Word,
    Key,
    TwoKeys,
}

#[derive(Clone, Debug)]
struct Binding {
    name: NameShape,
    ending: usize,
    comment_above: bool,
    trailing_comment: bool,
    comment_inside: bool,
}

#[derive(Clone, Debug)]
struct Layout {
    crlf: bool,
    indent: &'static str,
    one_line: bool,
    final_newline: bool,
    blank_lines: bool,
}

fn binding() -> impl Strategy<Value = Binding> {
    (
        prop_oneof![
            2 => Just(NameShape::Word),
            2 => Just(NameShape::Key),
            1 => Just(NameShape::TwoKeys),
        ],
        0..ENDINGS.len(),
        any::<bool>(),
        any::<bool>(),
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(name, ending, comment_above, trailing_comment, comment_inside)| Binding {
                name,
                ending,
                comment_above,
                trailing_comment,
                comment_inside,
            },
        )
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        any::<bool>(),
        proptest::sample::select(vec!["  ", "\t", "", "    ", " \t"]),
        proptest::bool::weighted(0.15),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(crlf, indent, one_line, final_newline, blank_lines)| Layout {
                crlf,
                indent,
                one_line,
                final_newline,
                blank_lines,
            },
        )
}

/// A generated module and where the generator put run-ons (the keyword-named bindings that
/// follow an open keyword message).
#[derive(Clone, Debug)]
struct Generated {
    text: String,
    names: Vec<String>,
    run_ons: usize,
    /// A key waiting for its argument followed by a keyword-named binding: the parser's
    /// `keyword-without-argument` (`x at:` then `k: = 1`).
    missing_argument: bool,
}

fn module_text(bindings: &[Binding], layout: &Layout) -> Generated {
    let nl = if layout.crlf { "\r\n" } else { "\n" };
    let mut out = String::new();
    let mut names = vec!["_meta".to_string()];
    let mut run_ons = 0;
    out.push('{');
    out.push_str(nl);
    out.push_str(layout.indent);
    out.push_str("_meta = {name = 'Gen}");
    let mut open = false;
    let mut dangling = false;
    let mut missing_argument = false;
    for (i, b) in bindings.iter().enumerate() {
        let name = match b.name {
            NameShape::Word => format!("w{i}"),
            NameShape::Key => format!("k{i}:"),
            NameShape::TwoKeys => format!("k{i}:v{i}:"),
        };
        let ending = ENDINGS[b.ending];
        // A run-on into this binding, or else (`k: = at: 1` joining the name's key and the
        // expression's: `k:at: = 1`) a run-on inside it: one error either way.
        let keyword_named = !matches!(b.name, NameShape::Word);
        if keyword_named && (open || ending.text.starts_with("at:")) {
            run_ons += 1;
        }
        // `x at:` then `w = ...`: the key takes the name as its argument.
        if dangling && !keyword_named {
            run_ons += 1;
        }
        missing_argument |= dangling && !matches!(b.name, NameShape::Word);
        // Comments end at a line's end: on one line, a comment would swallow the rest.
        let comments = !layout.one_line;
        if layout.one_line {
            out.push(' ');
        } else {
            out.push_str(nl);
            if layout.blank_lines && i % 3 == 0 {
                out.push_str(nl);
            }
            if comments && b.comment_above {
                out.push_str(layout.indent);
                out.push_str("# about ");
                out.push_str(&name);
                out.push_str(nl);
            }
            out.push_str(layout.indent);
        }
        out.push_str(&name);
        if comments && b.comment_inside {
            out.push_str(" # between");
            out.push_str(nl);
            out.push_str(layout.indent);
            out.push('=');
            out.push_str("\t# and again");
            out.push_str(nl);
            out.push_str(layout.indent);
            out.push_str(layout.indent);
        } else {
            out.push_str(" = ");
        }
        let text = if layout.crlf {
            ending.text.replace('\n', "\r\n")
        } else {
            ending.text.to_string()
        };
        out.push_str(&text);
        if comments && b.trailing_comment {
            out.push_str("  # after");
        }
        names.push(name);
        open = ending.open;
        dangling = ending.dangling;
    }
    out.push_str(nl);
    out.push('}');
    if layout.final_newline {
        out.push_str(nl);
    }
    Generated {
        text: out,
        names,
        run_ons,
        missing_argument,
    }
}

fn generated() -> impl Strategy<Value = Generated> {
    (proptest::collection::vec(binding(), 0..12), layout())
        .prop_map(|(bindings, layout)| module_text(&bindings, &layout))
}

/// What must hold of any unit the module view hands out.
fn check_cut(text: &[u8], unit: &SourceUnit) -> Result<(), TestCaseError> {
    let mut joined = Vec::with_capacity(text.len());
    let mut at = 0;
    for piece in unit.pieces() {
        match piece {
            Piece::Gap(gap) => joined.extend_from_slice(gap),
            Piece::Definition(d, body) => {
                prop_assert!(d.span.start >= at, "definitions overlap in {}", show(text));
                prop_assert!(d.span.start <= d.name_span.start && d.name_span.end <= d.span.end);
                at = d.span.end;
                joined.extend_from_slice(body);
            }
        }
    }
    prop_assert!(
        joined == text,
        "the pieces are not the file: {}",
        show(text)
    );
    for (i, d) in unit.definitions().iter().enumerate() {
        let alone = unit.definition_text(i);
        match read_definition(alone) {
            Ok(name) => prop_assert_eq!(
                &name,
                &d.name,
                "{} read alone names another; file {}",
                show(alone),
                show(text)
            ),
            Err(e) => prop_assert!(
                false,
                "{} does not read alone: {:?}; file {}",
                show(alone),
                e.errors,
                show(text)
            ),
        }
    }
    Ok(())
}

fn check_generated(g: &Generated) -> Result<(), TestCaseError> {
    let text = g.text.as_bytes();
    if g.missing_argument {
        let errors = SourceUnit::parse(text, "gen").err().map(|e| e.errors);
        prop_assert!(
            errors.is_some_and(|e| e
                .iter()
                .any(|e| e.kind == SyntaxErrorKind::KeywordWithoutArgument)),
            "{}",
            show(text)
        );
        return Ok(());
    }
    match SourceUnit::parse(text, "gen") {
        Ok(unit) => {
            prop_assert_eq!(g.run_ons, 0, "a run-on was taken: {}", show(text));
            prop_assert_eq!(unit.kind(), UnitKind::Module);
            let names: Vec<&str> = unit.definitions().iter().map(|d| d.name.as_str()).collect();
            prop_assert_eq!(
                names,
                g.names.iter().map(String::as_str).collect::<Vec<_>>()
            );
            check_cut(text, &unit)?;
        }
        Err(e) => {
            let run_ons = e
                .errors
                .iter()
                .filter(|e| e.kind == SyntaxErrorKind::KeywordRunsOn)
                .count();
            prop_assert_eq!(
                run_ons,
                g.run_ons,
                "run-ons reported {:?} in {}",
                e.errors,
                show(text)
            );
            prop_assert_eq!(
                run_ons,
                e.errors.len(),
                "only run-ons: {:?} in {}",
                e.errors,
                show(text)
            );
            for err in &e.errors {
                prop_assert!(err.span.end <= text.len());
                prop_assert_eq!(err.related.len(), 2);
            }
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(Index, &'static str),
    Delete(Index, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<Index>(),
            proptest::sample::select(vec![
                "\n",
                "\r\n",
                " ",
                "do: = ",
                "x at: ",
                "=",
                "#c\n",
                "(",
                ")",
                "]",
                "[",
                "{",
                "}",
                "'",
                ":",
                "k: = 1 ",
                "\"",
                "_meta = {name = 'X} ",
            ])
        )
            .prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<Index>(), 1..6usize).prop_map(|(at, n)| Edit::Delete(at, n)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        match e {
            Edit::Insert(at, s) => {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, s.bytes());
            }
            Edit::Delete(at, n) if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                let end = (at + n).min(bytes.len());
                bytes.drain(at..end);
            }
            Edit::Delete(..) => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn generated_modules_cut_exactly_or_report_each_run_on(g in generated()) {
        check_generated(&g)?;
    }

    #[test]
    fn mutated_modules_never_panic_and_cut_exactly(
        g in generated(),
        edits in proptest::collection::vec(edit(), 1..5),
    ) {
        let text = apply(&g.text, &edits);
        if let Ok(unit) = SourceUnit::parse(&text[..], "gen") {
            check_cut(&text, &unit)?;
        }
    }
}

/// `parse --check` passes exactly the files `build` takes: a sample of generated and mutated
/// modules, through the real binary.
#[test]
fn parse_check_agrees_with_build_on_generated_modules() {
    let dir = Dir::new("module_props_agree");
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[12; 32]),
    );
    let strategy = (generated(), proptest::collection::vec(edit(), 0..3));
    let mut expected_bad = BTreeSet::new();
    for i in 0..60 {
        let (g, edits) = strategy.new_tree(&mut runner).unwrap().current();
        let mut text = apply(&g.text, if i % 3 == 0 { &edits } else { &[] });
        // Each file its own module name, so that no two claim one.
        let name = format!("'Gen{i}");
        if let Some(at) = text.windows(4).position(|w| w == b"'Gen") {
            text.splice(at..at + 4, name.bytes());
        }
        let path = format!("gen/m{i:02}.spry");
        if SourceUnit::parse(&text[..], &format!("gen/m{i:02}")).is_err() {
            expected_bad.insert(path.clone());
        }
        dir.create(&path, &text);
    }
    let check = dir.command().args(["parse", "--check", "gen"]).output();
    let stderr = check.stderr_str();
    let check_bad: BTreeSet<String> = stderr
        .lines()
        .filter(|l| l.contains(": error["))
        .filter_map(|l| l.split(':').next())
        .map(|p| p.trim_start_matches("./").to_string())
        .collect();
    let (json, out) =
        crate::image_build::build(&dir, &[], if expected_bad.is_empty() { 0 } else { 1 });
    assert!(!out.stderr_str().contains("panicked"), "{out}");
    let build_bad: BTreeSet<String> = json["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !expected_bad.is_empty() && expected_bad.len() < 60,
        "the sample should hold both good and bad files: {expected_bad:?}"
    );
    assert_eq!(check_bad, expected_bad, "parse --check\n{check}");
    assert_eq!(build_bad, expected_bad, "build\n{out}");
}
