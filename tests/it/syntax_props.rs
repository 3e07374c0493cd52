//! Property tests of the syntax layer.
//!
//! - Arbitrary bytes never panic and always print back exactly.
//! - Mutations of the real files under `spry-src/` likewise; when a mutant has no errors, its
//!   canonical and pretty forms read back to the same tree.
//! - Random streams of valid tokens joined by random trivia: every token is read with the kind
//!   it was made as, the text prints back exactly, and the printers read back.
//! - Random trees built with `Ast::build` (trees that parsing can give): the canonical form
//!   reads back equal and is a fixed point; the pretty form reads back equal and is stable.
//!
//! The number of cases per property is small by default, so that the suite stays fast; the
//! `PROPTEST_CASES` variable sets it. To run them long:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release --test it syntax_props
//! ```

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;

use spry_image::syntax::{
    Ast, AstNode, CompositeKind, LineIndex, SourceUnit, SyntaxErrorKind, SyntaxKind, Word, parse,
};

use crate::syntax_fixtures::round_trip_failures;
use crate::util::{files_with_extension, repo_path, show};

/// Cases per property: `PROPTEST_CASES` when set, else `default`.
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

/// Everything that must hold for any input whatsoever.
fn check_any(text: &[u8]) -> Result<(), TestCaseError> {
    let parsed = parse(text);
    prop_assert!(
        parsed.tree.to_bytes() == text,
        "the exact printer changed {}",
        show(text)
    );
    // Tokens tile the text.
    let mut at = 0;
    for t in parsed.tree.tokens() {
        prop_assert_eq!(t.range().start, at);
        prop_assert!(t.range().end > at, "empty token");
        at = t.range().end;
    }
    prop_assert_eq!(at, text.len());
    // Errors are in bounds, in order, and have a position.
    let index = LineIndex::new(text);
    let mut last = 0;
    for e in &parsed.errors {
        prop_assert!(
            e.span.start <= e.span.end && e.span.end <= text.len(),
            "{:?}",
            e
        );
        prop_assert!(e.span.start >= last, "errors out of order");
        last = e.span.start;
        let lc = index.line_col(text, e.span.start);
        prop_assert!(lc.line >= 1 && lc.column >= 1);
        prop_assert!(!e.message.is_empty());
        for (span, _) in &e.related {
            prop_assert!(span.end <= text.len());
        }
    }
    let _ = parsed.tree.debug_dump();
    let ast = Ast::from_tree(&parsed.tree);
    let canonical = ast.canonical();
    let mut from_tree = Vec::new();
    prop_assert!(parsed.tree.write_canonical(&mut from_tree).is_ok());
    prop_assert!(
        from_tree == canonical.as_bytes(),
        "the tree's canonical form is not the view's for {}:\n{}\n{}",
        show(text),
        String::from_utf8_lossy(&from_tree),
        canonical
    );
    let _ = ast.pretty();
    let _ = SourceUnit::parse(text, "prop");
    if parsed.errors.is_empty() {
        let failures = round_trip_failures(Path::new("<generated>"), text);
        prop_assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
    Ok(())
}

/// Bytes that matter to the lexer, to make interesting inputs more likely than pure noise.
const INTERESTING: &[u8] =
    b"[](){}\"\\#:'$@;^&%|,~=-+._0123456789eE xa\n\r\t\x0b\x0c\0\xff\xc3\xa9";

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => proptest::sample::select(INTERESTING),
        1 => any::<u8>(),
    ]
}

// ---------------------------------------------------------------------------------------------
// (a) Arbitrary bytes.

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_print_back_exactly(text in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_any(&text)?;
    }

    #[test]
    fn lexer_shaped_bytes_print_back_exactly(
        text in proptest::collection::vec(interesting_byte(), 0..300)
    ) {
        check_any(&text)?;
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Mutations of real files.

fn spry_src() -> &'static [Vec<u8>] {
    static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        files_with_extension(&repo_path("spry-src"), "spry")
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    })
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Replace(Index, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<Index>(),
            proptest::collection::vec(interesting_byte(), 1..4)
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
    ]
}

fn apply(text: &mut Vec<u8>, edit: &Edit) {
    match edit {
        Edit::Insert(i, bytes) => {
            let at = i.index(text.len() + 1);
            text.splice(at..at, bytes.iter().copied());
        }
        Edit::Delete(i, n) if !text.is_empty() => {
            let at = i.index(text.len());
            let end = (at + n).min(text.len());
            text.drain(at..end);
        }
        Edit::Replace(i, b) if !text.is_empty() => {
            let at = i.index(text.len());
            text[at] = *b;
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn mutated_spry_files_print_back_exactly(
        file in any::<Index>(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let files = spry_src();
        let mut text = file.get(files).clone();
        for e in &edits {
            apply(&mut text, e);
        }
        check_any(&text)?;
    }
}

/// `parse --canonical` prints from the tree without building the view: on every repository file
/// and fixture, and on keyword messages nested, unclosed and joined across many keys, it gives
/// what the view's printer gives (the property tests above check the same on generated input).
#[test]
fn canonical_from_the_tree_is_the_views() {
    let mut texts: Vec<Vec<u8>> = spry_src().to_vec();
    for dir in ["fixtures/syntax/ok", "fixtures/syntax/err"] {
        for path in files_with_extension(&repo_path(dir), "spry") {
            texts.push(std::fs::read(&path).unwrap());
        }
    }
    for text in [
        &b"a at: [x k: 1 j: (2] put: 3 b c: d"[..],
        b"k: = at: 1\nb at: put: 2 q: [1 r: 2] (s: 3",
        b"x a: b: c: d: e: f: g: h: i: j: k: l: m: n: o: p: 1 2 3",
        b"M::at: 1 N::put: 2 ) ] } at: # c\n [ ] 'x: \"s\\x41\\\"\" -0 +1_0 1e400 -.5 +nan",
        b"{ [ ( at: at: at: \xff: \xc3\xa9: \x00 @ ' :$ $@",
    ] {
        texts.push(text.to_vec());
    }
    for text in &texts {
        let parsed = parse(text.as_slice());
        let mut from_tree = Vec::new();
        parsed.tree.write_canonical(&mut from_tree).unwrap();
        let view = Ast::from_tree(&parsed.tree).canonical();
        assert!(
            from_tree == view.as_bytes(),
            "{}:\n{}\n{view}",
            show(text),
            String::from_utf8_lossy(&from_tree)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Valid tokens, by kind.

/// A name: letters, digits, `_`, and a few non-ASCII letters.
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Zéλ_][a-zA-Z0-9éλ_]{0,5}"
}

/// A word of each kind that is not keyword-shaped, with the token kind it reads as.
fn plain_word() -> impl Strategy<Value = (SyntaxKind, String)> {
    use SyntaxKind as K;
    prop_oneof![
        6 => name().prop_map(|n| (K::EvalWord, n)),
        2 => proptest::sample::select(vec![
            "=", ":=", ":", "$", "-", "+", "<=", "..one", ".one", "12abc", "0x10", "1.2.3",
            "12:30", "-_1", "inf", "nan", "a\"b", "x.y", "!", "*", "/", "?",
        ])
        .prop_map(|w| (K::EvalWord, w.to_string())),
        1 => name().prop_map(|n| (K::ArgWord, format!(":{n}"))),
        1 => name().prop_map(|n| (K::GetArgWord, format!(":${n}"))),
        1 => name().prop_map(|n| (K::GetSelfWord, format!("$@{n}"))),
        1 => (name(), name()).prop_map(|(m, n)| (K::GetModuleWord, format!("${m}::{n}"))),
        1 => name().prop_map(|n| (K::GetWord, format!("${n}"))),
        1 => name().prop_map(|n| (K::GetWord, format!("${n}:"))),
        1 => name().prop_map(|n| (K::LitWord, format!("'{n}"))),
        1 => name().prop_map(|n| (K::LitWord, format!("''{n}"))),
        1 => name().prop_map(|n| (K::LitWord, format!("':{n}"))),
        1 => (name(), name()).prop_map(|(a, b)| (K::LitWord, format!("'{a}:{b}:"))),
        1 => name().prop_map(|n| (K::SelfWord, format!("@{n}"))),
        1 => (name(), name()).prop_map(|(m, n)| (K::ModuleWord, format!("{m}::{n}"))),
        1 => "[;\\\\^&%|,~]{1,3}".prop_map(|s| (K::EvalWord, s)),
    ]
}

/// A keyword part: `at:`, `at:put:`, `Foo::at:`, `@x:`.
fn keyword_part() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => name().prop_map(|n| format!("{n}:")),
        1 => (name(), name()).prop_map(|(a, b)| format!("{a}:{b}:")),
        1 => (name(), name()).prop_map(|(m, n)| format!("{m}::{n}:")),
        1 => name().prop_map(|n| format!("@{n}:")),
    ]
}

fn integer() -> impl Strategy<Value = String> {
    (any::<i64>(), any::<bool>(), any::<u32>()).prop_map(|(v, plus, underscores)| {
        let mut s = String::new();
        if plus && v >= 0 {
            s.push('+');
        }
        // Underscores may follow any digit.
        for (i, c) in v.to_string().chars().enumerate() {
            s.push(c);
            if c.is_ascii_digit() && underscores & (1 << (i % 32)) != 0 && i % 3 == 0 {
                s.push('_');
            }
        }
        s
    })
}

fn float() -> impl Strategy<Value = String> {
    let finite = any::<f64>().prop_filter("finite", |v| v.is_finite());
    prop_oneof![
        3 => finite.clone().prop_map(|v| format!("{v:?}")),
        2 => finite.prop_map(|v| format!("{v:e}")),
        1 => (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        1 => proptest::sample::select(vec![
            "5.", "-5.", "1e3", "1E3", "2.5e+2", "-1.5e-3", "1_0.2_5", "1e400", "-inf", "+inf",
            "+INF", "+nan", "-NaN", "99999999999999999999", "0.0", "-0.0",
        ])
        .prop_map(str::to_string),
    ]
}

/// A string literal, with every kind of escape, lines, quotes and brackets inside.
fn string_literal() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zé日 #\\[\\](){}'\n\r\t:;]{1,4}",
        1 => Just("\\\\".to_string()),
        1 => Just("\\\"".to_string()),
        1 => Just("\\'".to_string()),
        1 => "\\\\x[0-9a-fA-F]{2}",
        1 => "\\\\[ntq0]",
    ];
    proptest::collection::vec(piece, 0..5).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

/// A leaf token and the kind it must be read as.
fn leaf() -> impl Strategy<Value = (SyntaxKind, String)> {
    prop_oneof![
        6 => plain_word(),
        2 => keyword_part().prop_map(|k| (SyntaxKind::KeywordPart, k)),
        2 => integer().prop_map(|s| (SyntaxKind::Integer, s)),
        2 => float().prop_map(|s| (SyntaxKind::Float, s)),
        2 => string_literal().prop_map(|s| (SyntaxKind::String, s)),
    ]
}

// ---------------------------------------------------------------------------------------------
// (c) Random token streams.

#[derive(Clone, Debug)]
enum Tok {
    Leaf(SyntaxKind, String),
    Group(CompositeKind, Vec<Tok>),
}

fn token_tree() -> impl Strategy<Value = Vec<Tok>> {
    let leaf = leaf().prop_map(|(k, s)| Tok::Leaf(k, s));
    let tree = leaf.prop_recursive(5, 48, 6, |inner| {
        (
            prop_oneof![
                Just(CompositeKind::Block),
                Just(CompositeKind::Paren),
                Just(CompositeKind::Curly)
            ],
            proptest::collection::vec(inner, 0..6),
        )
            .prop_map(|(k, children)| Tok::Group(k, children))
    });
    proptest::collection::vec(tree, 0..12)
}

/// Trivia between two tokens; `None` allows nothing at all (next to a bracket).
fn separator() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        " ",
        " ",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\n\n  ",
        "\x0b",
        "\x0c",
        " # comment\n",
        "# ]\"[ :x\r\n",
        "\n  # two\n  # lines\n",
    ])
}

/// Writes the tokens with trivia; collects the (kind, text) of every token that is not trivia.
fn serialize(
    toks: &[Tok],
    seps: &mut impl Iterator<Item = (&'static str, bool)>,
    out: &mut String,
    expected: &mut Vec<(SyntaxKind, String)>,
) {
    // Whether the last thing written was a bracket (then no trivia is needed).
    let mut after_bracket = true;
    for t in toks {
        let (sep, omit) = seps.next().unwrap_or((" ", false));
        let is_group = matches!(t, Tok::Group(..));
        if !(omit && (after_bracket || is_group)) {
            out.push_str(sep);
        }
        match t {
            Tok::Leaf(kind, text) => {
                out.push_str(text);
                expected.push((*kind, text.clone()));
                after_bracket = false;
            }
            Tok::Group(kind, children) => {
                let (open, close) = kind.brackets();
                out.push(open);
                expected.push((open_kind(*kind), open.to_string()));
                serialize(children, seps, out, expected);
                let (sep, omit) = seps.next().unwrap_or((" ", false));
                if !omit {
                    out.push_str(sep);
                }
                out.push(close);
                expected.push((close_kind(*kind), close.to_string()));
                after_bracket = true;
            }
        }
    }
}

fn open_kind(kind: CompositeKind) -> SyntaxKind {
    match kind {
        CompositeKind::Block => SyntaxKind::LBracket,
        CompositeKind::Paren => SyntaxKind::LParen,
        CompositeKind::Curly => SyntaxKind::LCurly,
    }
}

fn close_kind(kind: CompositeKind) -> SyntaxKind {
    match kind {
        CompositeKind::Block => SyntaxKind::RBracket,
        CompositeKind::Paren => SyntaxKind::RParen,
        CompositeKind::Curly => SyntaxKind::RCurly,
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn token_streams_read_as_made(
        toks in token_tree(),
        seps in proptest::collection::vec((separator(), any::<bool>()), 0..200),
        bom in any::<bool>(),
        tail in proptest::sample::select(vec!["", "\n", " # last comment", "\r\n"]),
    ) {
        let mut text = String::new();
        if bom {
            text.push('\u{feff}');
        }
        let mut expected = Vec::new();
        serialize(&toks, &mut seps.into_iter(), &mut text, &mut expected);
        text.push_str(tail);

        let parsed = parse(text.as_bytes());
        prop_assert!(parsed.tree.to_bytes() == text.as_bytes());
        let actual: Vec<(SyntaxKind, String)> = parsed
            .tree
            .tokens()
            .filter(|t| !t.kind().is_trivia())
            .map(|t| (t.kind(), String::from_utf8(t.text().to_vec()).unwrap()))
            .collect();
        prop_assert_eq!(&actual, &expected, "in {:?}", text);
        // Valid tokens can only go wrong by putting a key where an argument belongs.
        for e in &parsed.errors {
            prop_assert_eq!(e.kind, SyntaxErrorKind::KeywordWithoutArgument, "{:?} in {:?}", e, text);
        }
        check_any(text.as_bytes())?;
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Random trees built by code.

#[derive(Clone, Debug)]
enum Gen {
    Leaf(AstNode),
    /// A word that may be keyword-shaped.
    Key(String),
    Group(CompositeKind, Vec<Gen>),
}

fn gen_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => proptest::sample::select(vec![
            f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.0, -0.0, f64::MIN_POSITIVE,
            5e-324, -5e-324, f64::MAX, f64::MIN, 1e16, 1e17, 1e-7, 1e-6, 0.1, 1e20, -1.5e-3,
        ]),
        2 => (-1_000_000i64..1_000_000).prop_map(|v| v as f64 / 8.0),
    ]
}

fn gen_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => proptest::sample::select(b"\"\\'x#[]{} \n\r\t:\0\xff\xc3\xa9".to_vec()),
        2 => any::<u8>(),
    ];
    prop_oneof![
        2 => proptest::collection::vec(byte, 0..12),
        1 => "[a-zé日😀 \\\\\"]{0,8}".prop_map(String::into_bytes),
    ]
}

fn gen_leaf() -> impl Strategy<Value = Gen> {
    prop_oneof![
        2 => any::<i64>().prop_map(|v| Gen::Leaf(AstNode::Integer(v))),
        2 => gen_float().prop_map(|v| Gen::Leaf(AstNode::Float(v))),
        2 => gen_bytes().prop_map(|b| Gen::Leaf(AstNode::String(b.into_boxed_slice()))),
        5 => plain_word().prop_map(|(_, w)| Gen::Leaf(AstNode::Word(Word::new(&w)))),
        2 => keyword_part().prop_map(Gen::Key),
    ]
}

fn gen_tree() -> impl Strategy<Value = Vec<Gen>> {
    let tree = gen_leaf().prop_recursive(5, 48, 6, |inner| {
        (
            prop_oneof![
                Just(CompositeKind::Block),
                Just(CompositeKind::Paren),
                Just(CompositeKind::Curly)
            ],
            proptest::collection::vec(inner, 0..6),
        )
            .prop_map(|(k, children)| Gen::Group(k, children))
    });
    proptest::collection::vec(tree, 0..10)
}

/// Where a keyword message stands in a list of siblings, as the parser tracks it.
#[derive(Clone, Copy, PartialEq)]
enum KeyState {
    Idle,
    Expecting,
    Balanced,
}

/// Pushes the nodes through the builder. A keyword-shaped word can only come from parsing
/// where no message is being read (elsewhere it would be an error, or join the message before
/// it), so in other places it is replaced by a plain word.
fn build(b: &mut spry_image::syntax::AstBuilder, nodes: &[Gen]) {
    let mut state = KeyState::Idle;
    for node in nodes {
        match node {
            Gen::Key(key) if state == KeyState::Idle => {
                b.push(AstNode::Word(Word::new(key)));
                state = KeyState::Expecting;
                continue;
            }
            Gen::Key(_) => b.push(AstNode::Word(Word::new("plain"))),
            Gen::Leaf(leaf) => b.push(leaf.clone()),
            Gen::Group(kind, children) => {
                b.open(*kind);
                build(b, children);
                b.close();
            }
        }
        state = match state {
            KeyState::Expecting => KeyState::Balanced,
            KeyState::Balanced | KeyState::Idle => KeyState::Idle,
        };
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn built_trees_print_and_read_back(nodes in gen_tree()) {
        let tree = Ast::build(|b| build(b, &nodes));

        let canonical = tree.canonical();
        let parsed = parse(canonical.as_bytes());
        prop_assert!(parsed.errors.is_empty(), "{:?} in {}", parsed.errors, canonical);
        let reread = Ast::from_tree(&parsed.tree);
        prop_assert!(reread == tree, "the canonical form reads to another tree:\n{}", canonical);
        prop_assert_eq!(reread.canonical(), canonical.clone(), "not a fixed point");

        let pretty = tree.pretty();
        let parsed = parse(pretty.as_bytes());
        prop_assert!(parsed.errors.is_empty(), "{:?} in\n{}", parsed.errors, pretty);
        let reread = Ast::from_tree(&parsed.tree);
        prop_assert!(reread == tree, "the pretty form reads to another tree:\n{}", pretty);
        prop_assert_eq!(reread.pretty(), pretty.clone(), "the pretty form is not stable");
        // Both printers agree on the tree.
        prop_assert_eq!(reread.canonical(), canonical);
    }
}
