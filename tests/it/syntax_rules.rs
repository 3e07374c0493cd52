//! One test per rule of the syntax page (`SPRY-SYNTAX.md`), through the public API: token
//! kinds, semantic nodes, canonical form, decoded strings, errors with their line:column, and
//! the module view. Every expected value here was checked by hand against the page.

use spry_image::syntax::{
    Ast, AstNode, AstRef, CompositeKind, LineIndex, Piece, SourceUnit, SyntaxElement,
    SyntaxErrorKind, SyntaxKind, UnitKind, Word, WordKind, parse,
};

use SyntaxKind as K;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The tokens that are not trivia, as (kind, text).
fn tokens(src: &str) -> Vec<(SyntaxKind, String)> {
    let parsed = parse(src);
    parsed
        .tree
        .tokens()
        .filter(|t| !t.kind().is_trivia())
        .map(|t| (t.kind(), String::from_utf8_lossy(t.text()).into_owned()))
        .collect()
}

/// The texts of the tokens that are not trivia.
fn token_texts(src: &str) -> Vec<String> {
    tokens(src).into_iter().map(|(_, t)| t).collect()
}

/// Every token, trivia included, as (kind, text).
fn all_tokens(src: &[u8]) -> Vec<(SyntaxKind, Vec<u8>)> {
    let parsed = parse(src);
    parsed
        .tree
        .tokens()
        .map(|t| (t.kind(), t.text().to_vec()))
        .collect()
}

/// The semantic view of a source that must have no errors.
fn ast(src: &str) -> Ast {
    let parsed = parse(src);
    assert!(parsed.errors.is_empty(), "{src:?}: {:?}", parsed.errors);
    Ast::from_tree(&parsed.tree)
}

/// The canonical form of a source that must have no errors.
fn canon(src: &str) -> String {
    ast(src).canonical()
}

/// The errors of a source, as (kind, "line:col").
fn errors(src: &[u8]) -> Vec<(SyntaxErrorKind, String)> {
    let parsed = parse(src);
    let index = LineIndex::new(src);
    parsed
        .errors
        .iter()
        .map(|e| (e.kind, index.line_col(src, e.span.start).to_string()))
        .collect()
}

/// The top-level words of a source, as (kind, text).
fn words(src: &str) -> Vec<(WordKind, String)> {
    ast(src)
        .root()
        .iter()
        .map(|n| {
            let w = n
                .as_word()
                .unwrap_or_else(|| panic!("{src:?}: {:?} is not a word", n.node()));
            (w.kind(), w.text().to_string())
        })
        .collect()
}

/// The one top-level node of a source.
fn only_node(src: &str) -> AstNode {
    let ast = ast(src);
    assert_eq!(ast.root().len(), 1, "{src:?}");
    ast.root().get(0).unwrap().node().clone()
}

/// The decoded bytes of the one string of a source.
fn string_value(src: &str) -> Vec<u8> {
    match only_node(src) {
        AstNode::String(bytes) => bytes.into_vec(),
        other => panic!("{src:?}: {other:?} is not a string"),
    }
}

/// A short description of a node, for comparing lists: `int 1`, `Module Foo::x`, `[int 1]`.
fn describe(n: AstRef<'_>) -> String {
    match n.node() {
        AstNode::Integer(v) => format!("int {v}"),
        AstNode::Float(v) => format!("float {v:?}"),
        AstNode::String(s) => format!("string {:?}", String::from_utf8_lossy(&s)),
        AstNode::Word(w) => format!("{:?} {}", w.kind(), w.text()),
        AstNode::Composite(kind, _) => {
            let (open, close) = kind.brackets();
            let inner: Vec<String> = n.children().iter().map(describe).collect();
            format!("{open}{}{close}", inner.join(", "))
        }
    }
}

/// The top-level nodes of a source without errors, described.
fn nodes(src: &str) -> Vec<String> {
    ast(src).root().iter().map(describe).collect()
}

fn word(kind: WordKind, text: &str) -> (WordKind, String) {
    (kind, text.to_string())
}

fn tok(kind: SyntaxKind, text: &str) -> (SyntaxKind, String) {
    (kind, text.to_string())
}

// ---------------------------------------------------------------------------------------------
// Source text.

#[test]
fn source_must_be_utf8_and_errors_name_offset_and_line_col() {
    let src = b"ok\n  \xff";
    let parsed = parse(&src[..]);
    assert_eq!(parsed.errors.len(), 1);
    let e = &parsed.errors[0];
    assert_eq!(e.kind, SyntaxErrorKind::InvalidUtf8);
    assert_eq!(e.span, 5..6);
    assert!(e.message.contains("byte offset 5"), "{}", e.message);
    assert!(e.message.contains("line 2, column 3"), "{}", e.message);
    assert_eq!(errors(src), [(SyntaxErrorKind::InvalidUtf8, "2:3".into())]);
    // A truncated sequence at the end of the file.
    assert_eq!(
        errors(b"ab\xc3"),
        [(SyntaxErrorKind::InvalidUtf8, "1:3".into())]
    );
    // Valid multi-byte text is fine.
    assert!(parse("é 日本 😀").errors.is_empty());
}

#[test]
fn nul_byte_is_an_error() {
    assert_eq!(errors(b"a\0b"), [(SyntaxErrorKind::NulByte, "1:2".into())]);
    assert_eq!(
        errors(b"\"\0\""),
        [(SyntaxErrorKind::NulByte, "1:2".into())]
    );
}

#[test]
fn a_file_is_a_sequence_of_top_level_nodes() {
    let tree = ast("a 1 [b] \"s\" (c) {d}");
    let kinds: Vec<_> = tree
        .root()
        .iter()
        .map(|n| match n.node() {
            AstNode::Word(_) => "word",
            AstNode::Integer(_) => "int",
            AstNode::String(_) => "string",
            AstNode::Composite(CompositeKind::Block, _) => "block",
            AstNode::Composite(CompositeKind::Paren, _) => "paren",
            AstNode::Composite(CompositeKind::Curly, _) => "curly",
            AstNode::Float(_) => "float",
        })
        .collect();
    assert_eq!(kinds, ["word", "int", "block", "string", "paren", "curly"]);
    assert!(ast("").root().is_empty());
}

#[test]
fn byte_order_mark_at_the_start_is_trivia() {
    let src = b"\xef\xbb\xbfx";
    assert_eq!(
        all_tokens(src),
        [
            (K::ByteOrderMark, b"\xef\xbb\xbf".to_vec()),
            (K::EvalWord, b"x".to_vec())
        ]
    );
    assert_eq!(Ast::from_tree(&parse(&src[..]).tree), ast("x"));
    // Anywhere else it is an ordinary character of a word.
    assert_eq!(
        tokens("a \u{feff}b"),
        [tok(K::EvalWord, "a"), tok(K::EvalWord, "\u{feff}b")]
    );
}

#[test]
fn line_endings_lf_and_crlf_are_whitespace_and_kept() {
    let src = b"a\r\nb\nc\r\n";
    assert_eq!(
        all_tokens(src),
        [
            (K::EvalWord, b"a".to_vec()),
            (K::Whitespace, b"\r\n".to_vec()),
            (K::EvalWord, b"b".to_vec()),
            (K::Whitespace, b"\n".to_vec()),
            (K::EvalWord, b"c".to_vec()),
            (K::Whitespace, b"\r\n".to_vec()),
        ]
    );
    assert_eq!(parse(&src[..]).tree.to_bytes(), src);
    assert_eq!(canon("a\r\nb\nc\r\n"), "a b c");
}

// ---------------------------------------------------------------------------------------------
// Trivia.

#[test]
fn whitespace_is_space_tab_cr_lf_vt_ff() {
    for ws in [" ", "\t", "\r", "\n", "\x0b", "\x0c"] {
        let src = format!("a{ws}b");
        assert_eq!(token_texts(&src), ["a", "b"], "{ws:?}");
        let all = all_tokens(src.as_bytes());
        assert_eq!(all[1], (K::Whitespace, ws.as_bytes().to_vec()), "{ws:?}");
    }
    // Other Unicode spaces are ordinary characters.
    assert_eq!(
        token_texts("a\u{a0}b a\u{2003}b"),
        ["a\u{a0}b", "a\u{2003}b"]
    );
    // A run of whitespace is one token.
    assert_eq!(all_tokens(b" \t\r\n\x0b\x0c ").len(), 1);
}

#[test]
fn comment_runs_to_the_end_of_the_line() {
    let src = b"a # one ] \"two\r\nb # end";
    assert_eq!(
        all_tokens(src),
        [
            (K::EvalWord, b"a".to_vec()),
            (K::Whitespace, b" ".to_vec()),
            (K::Comment, b"# one ] \"two".to_vec()),
            (K::Whitespace, b"\r\n".to_vec()),
            (K::EvalWord, b"b".to_vec()),
            (K::Whitespace, b" ".to_vec()),
            (K::Comment, b"# end".to_vec()),
        ]
    );
    assert_eq!(canon("a # one ] \"two\r\nb # end"), "a b");
}

#[test]
fn hash_ends_a_word_but_not_a_string() {
    assert_eq!(
        tokens("foo#bar baz"),
        [tok(K::EvalWord, "foo")],
        "`#bar baz` is a comment"
    );
    assert_eq!(
        tokens("foo#bar\nbaz"),
        [tok(K::EvalWord, "foo"), tok(K::EvalWord, "baz")]
    );
    assert_eq!(string_value("\"a#b # c\""), b"a#b # c");
    assert_eq!(
        tokens("\"#\"x"),
        [tok(K::String, "\"#\""), tok(K::EvalWord, "x")]
    );
}

// ---------------------------------------------------------------------------------------------
// Tokens.

#[test]
fn brackets_are_tokens_of_their_own_and_end_words() {
    assert_eq!(
        tokens("a(b)c[d]e{f}g"),
        [
            tok(K::EvalWord, "a"),
            tok(K::LParen, "("),
            tok(K::EvalWord, "b"),
            tok(K::RParen, ")"),
            tok(K::EvalWord, "c"),
            tok(K::LBracket, "["),
            tok(K::EvalWord, "d"),
            tok(K::RBracket, "]"),
            tok(K::EvalWord, "e"),
            tok(K::LCurly, "{"),
            tok(K::EvalWord, "f"),
            tok(K::RCurly, "}"),
            tok(K::EvalWord, "g"),
        ]
    );
    assert_eq!(token_texts("[[]]"), ["[", "[", "]", "]"]);
}

#[test]
fn the_token_examples_of_the_page() {
    // Left: source, right: its tokens, as the page lists them.
    let cases: &[(&str, &[&str])] = &[
        ("^x", &["^", "x"]),
        ("a,b;c^d", &["a", ",", "b", ";", "c", "^", "d"]),
        ("&&|a|", &["&&|", "a", "|"]),
        ("a ~= b", &["a", "~", "=", "b"]),
        ("a\\b", &["a", "\\", "b"]),
        ("a\"b c\"", &["a\"b", "c\""]),
    ];
    for (src, expected) in cases {
        assert_eq!(token_texts(src), *expected, "{src}");
    }
    // Special runs are eval words; the `"` inside tokens is ordinary.
    assert_eq!(
        tokens("a\"b c\""),
        [tok(K::EvalWord, "a\"b"), tok(K::EvalWord, "c\"")]
    );
    assert_eq!(words("&&|a|")[0], word(WordKind::Eval, "&&|"));
}

#[test]
fn special_runs_are_the_longest_run_of_the_eight_characters() {
    assert_eq!(token_texts(";\\^&%|,~"), [";\\^&%|,~"]);
    assert_eq!(token_texts("x;\\^&%|,~y"), ["x", ";\\^&%|,~", "y"]);
    // Each of the eight alone, and the first non-special character starts a new token.
    for c in [";", "\\", "^", "&", "%", "|", ",", "~"] {
        assert_eq!(token_texts(&format!("a{c}b")), ["a", c, "b"], "{c}");
        assert_eq!(
            tokens(&format!("{c}\"s\"")),
            [tok(K::EvalWord, c), tok(K::String, "\"s\"")]
        );
        assert_eq!(token_texts(&format!("{c}[1]")), [c, "[", "1", "]"]);
        assert_eq!(token_texts(&format!("{c}#x")), [c]);
    }
    // Characters that are not special stay in plain tokens.
    assert_eq!(token_texts("a=b<c>d*e/f!g?h.i"), ["a=b<c>d*e/f!g?h.i"]);
}

#[test]
fn a_string_starts_only_at_the_start_of_a_token() {
    assert_eq!(tokens("\"a\""), [tok(K::String, "\"a\"")]);
    assert_eq!(tokens("x\"a\""), [tok(K::EvalWord, "x\"a\"")]);
    // After a bracket, a special run or a string, a new token starts.
    assert_eq!(
        tokens("(\"a\")\"b\""),
        [
            tok(K::LParen, "("),
            tok(K::String, "\"a\""),
            tok(K::RParen, ")"),
            tok(K::String, "\"b\"")
        ]
    );
    assert_eq!(
        tokens("\"a\"\"b\"c"),
        [
            tok(K::String, "\"a\""),
            tok(K::String, "\"b\""),
            tok(K::EvalWord, "c")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Strings.

#[test]
fn strings_may_span_lines() {
    assert_eq!(string_value("\"a\nb\r\nc\""), b"a\nb\r\nc");
    assert_eq!(tokens("\"a\n\nb\" x").len(), 2);
}

#[test]
fn backslash_escapes_the_next_character_in_a_string() {
    // `\"` and `\\` do not end the string.
    assert_eq!(
        tokens("\"a\\\"b\" x"),
        [tok(K::String, "\"a\\\"b\""), tok(K::EvalWord, "x")]
    );
    assert_eq!(
        tokens("\"a\\\\\" x"),
        [tok(K::String, "\"a\\\\\""), tok(K::EvalWord, "x")]
    );
    // Deviation: `"a\\"` is the string `a\` (the reference parser misreads it).
    assert_eq!(string_value("\"a\\\\\""), b"a\\");
    assert_eq!(
        tokens("\"a\\\\\" \"b\""),
        [tok(K::String, "\"a\\\\\""), tok(K::String, "\"b\"")]
    );
}

#[test]
fn string_values_decode_four_escapes_and_keep_the_rest() {
    assert_eq!(string_value(r#""a\\b""#), b"a\\b");
    assert_eq!(string_value(r#""\"q\"""#), b"\"q\"");
    assert_eq!(string_value(r#""it\'s""#), b"it's");
    assert_eq!(string_value(r#""\x41\x4a\x4A""#), b"AJJ");
    assert_eq!(string_value(r#""\xff\x00""#), [0xff, 0x00]);
    assert_eq!(string_value(r#""\xc3\xa9""#), "é".as_bytes());
    // Any other backslash sequence stays as written, both characters.
    assert_eq!(string_value(r#""\n""#), b"\\n");
    assert_eq!(string_value(r#""\n""#).len(), 2);
    assert_eq!(string_value(r#""\t\r\q\0""#), b"\\t\\r\\q\\0");
    assert_eq!(string_value("\"\\é\""), "\\é".as_bytes());
    // Outside escapes, bytes are kept as they are.
    assert_eq!(string_value("\"tab\there\""), b"tab\there");
    assert_eq!(string_value("\"\""), b"");
}

#[test]
fn unterminated_string_is_an_error_at_the_opening_quote() {
    assert_eq!(
        errors(b"x = \"abc\ny z"),
        [(SyntaxErrorKind::UnterminatedString, "1:5".into())]
    );
    // An escaped quote does not close it.
    assert_eq!(
        errors(b"ab\n  \"c\\\""),
        [(SyntaxErrorKind::UnterminatedString, "2:3".into())]
    );
    assert_eq!(
        errors(b"\""),
        [(SyntaxErrorKind::UnterminatedString, "1:1".into())]
    );
    // The string runs to the end of the file, swallowing what looks like brackets.
    let parsed = parse("[\"]");
    let kinds: Vec<_> = parsed.errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            SyntaxErrorKind::UnclosedBracket,
            SyntaxErrorKind::UnterminatedString
        ]
    );
    assert_eq!(parsed.tree.to_bytes(), b"[\"]");
}

// ---------------------------------------------------------------------------------------------
// Plain tokens: numbers.

#[test]
fn integers_with_sign_digits_and_underscores() {
    let cases: &[(&str, i64)] = &[
        ("11", 11),
        ("+11", 11),
        ("-11", -11),
        ("1_000_000", 1_000_000),
        ("1_", 1),
        ("0", 0),
        ("-0", 0),
        ("007", 7),
        ("1__2", 12),
        ("9223372036854775807", i64::MAX),
        ("-9223372036854775808", i64::MIN),
    ];
    for (src, value) in cases {
        assert_eq!(tokens(src), [tok(K::Integer, src)], "{src}");
        assert!(
            matches!(only_node(src), AstNode::Integer(v) if v == *value),
            "{src}"
        );
    }
    // Spelling does not matter to the tree.
    assert_eq!(ast("+11"), ast("11"));
    assert_eq!(ast("1_000"), ast("1000"));
    assert_ne!(ast("11"), ast("-11"));
}

#[test]
fn integers_too_large_for_64_bits_are_floats() {
    let cases: &[(&str, f64)] = &[
        ("99999999999999999999", 1e20),
        ("9223372036854775808", 9223372036854775808.0),
        ("-9223372036854775809", -9223372036854775809.0),
    ];
    for (src, value) in cases {
        assert_eq!(tokens(src), [tok(K::Float, src)], "{src}");
        assert!(
            matches!(only_node(src), AstNode::Float(v) if v == *value),
            "{src}"
        );
    }
    assert_eq!(canon("99999999999999999999"), "1e+20");
}

#[test]
fn floats_with_a_point_or_an_exponent_and_signed_inf_nan() {
    let cases: &[(&str, f64)] = &[
        ("3.5", 3.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("-1.5e-3", -0.0015),
        ("1E3", 1000.0),
        ("2.5e+2", 250.0),
        ("1_0.2_5", 10.25),
        ("0.0", 0.0),
        ("-inf", f64::NEG_INFINITY),
        ("+inf", f64::INFINITY),
        ("-INF", f64::NEG_INFINITY),
        ("1e400", f64::INFINITY),
        ("-1e400", f64::NEG_INFINITY),
    ];
    for (src, value) in cases {
        assert_eq!(tokens(src), [tok(K::Float, src)], "{src}");
        match only_node(src) {
            AstNode::Float(v) => assert_eq!(v.to_bits(), value.to_bits(), "{src}"),
            other => panic!("{src}: {other:?}"),
        }
    }
    for src in ["+nan", "-nan", "+NaN"] {
        assert_eq!(tokens(src), [tok(K::Float, src)], "{src}");
        assert!(
            matches!(only_node(src), AstNode::Float(v) if v.is_nan()),
            "{src}"
        );
    }
    // -0.0 is kept apart from 0.0: they print differently.
    assert_ne!(ast("-0.0"), ast("0.0"));
    assert_eq!(ast("+nan"), ast("-nan"));
    // An integer and a float of the same value are different nodes.
    assert_ne!(ast("1"), ast("1.0"));
    assert_eq!(ast("5."), ast("5.0"));
}

#[test]
fn number_like_words_are_words() {
    for src in [
        ".5", "12abc", "0x10", "1.2.3", "12:30", "-", "+", "-_1", "inf", "nan", "1e", "1e+", "--",
        "+-1", "1.5x", "e3",
    ] {
        assert_eq!(tokens(src), [tok(K::EvalWord, src)], "{src}");
        assert_eq!(words(src), [word(WordKind::Eval, src)], "{src}");
    }
}

// ---------------------------------------------------------------------------------------------
// Plain tokens: word kinds.

#[test]
fn word_kinds_follow_the_table_in_order() {
    // (source, token kind, semantic kind, name without sigils)
    let cases: &[(&str, SyntaxKind, WordKind, &str)] = &[
        (":$x", K::GetArgWord, WordKind::GetArg, "x"),
        (":x", K::ArgWord, WordKind::Arg, "x"),
        (":x:", K::ArgWord, WordKind::Arg, "x:"),
        (":", K::EvalWord, WordKind::Eval, ":"),
        (":=", K::EvalWord, WordKind::Eval, ":="),
        ("$@x", K::GetSelfWord, WordKind::GetSelf, "x"),
        ("$Mod::x", K::GetModuleWord, WordKind::GetModule, "Mod::x"),
        ("$x", K::GetWord, WordKind::Get, "x"),
        ("$", K::EvalWord, WordKind::Eval, "$"),
        ("$foo:", K::GetWord, WordKind::Get, "foo:"),
        ("'x", K::LitWord, WordKind::Literal, "x"),
        ("''one", K::LitWord, WordKind::Literal, "'one"),
        ("':b", K::LitWord, WordKind::Literal, ":b"),
        ("'at:put:", K::LitWord, WordKind::Literal, "at:put:"),
        ("'Mod::x", K::LitWord, WordKind::Literal, "Mod::x"),
        ("@x", K::SelfWord, WordKind::SelfWord, "x"),
        ("Mod::x", K::ModuleWord, WordKind::Module, "Mod::x"),
        ("=", K::EvalWord, WordKind::Eval, "="),
        ("..one", K::EvalWord, WordKind::Eval, "..one"),
        (".one", K::EvalWord, WordKind::Eval, ".one"),
        ("foo", K::EvalWord, WordKind::Eval, "foo"),
        ("-", K::EvalWord, WordKind::Eval, "-"),
    ];
    for (src, token_kind, kind, name) in cases {
        assert_eq!(tokens(src), [tok(*token_kind, src)], "{src}");
        let ast = ast(src);
        let w = ast.root().get(0).unwrap().as_word().unwrap().clone();
        assert_eq!(
            (w.kind(), w.text(), w.name()),
            (*kind, *src, *name),
            "{src}"
        );
        // Word::new reads a spelling as the parser does.
        assert_eq!(Word::new(src), w, "{src}");
    }
}

#[test]
fn keyword_parts_are_tokens_ending_in_a_colon() {
    for src in ["at:", "a:", "at:put:", "Foo::at:", "@x:", "x::"] {
        assert_eq!(tokens(src), [tok(K::KeywordPart, src)], "{src}");
    }
    // Length one is not a keyword part; the sigils checked first win.
    assert_eq!(tokens(":"), [tok(K::EvalWord, ":")]);
    assert_eq!(tokens(":a:"), [tok(K::ArgWord, ":a:")]);
    assert_eq!(tokens("$a:"), [tok(K::GetWord, "$a:")]);
    assert_eq!(tokens("'a:"), [tok(K::LitWord, "'a:")]);
}

#[test]
fn malformed_words_are_errors() {
    for (src, sigil) in [("'", "'"), ("@", "@"), (":$", ":$"), ("$@", "$@")] {
        let parsed = parse(src);
        assert_eq!(tokens(src), [tok(K::Malformed, src)], "{src}");
        assert_eq!(parsed.errors.len(), 1, "{src}");
        let e = &parsed.errors[0];
        assert_eq!(e.kind, SyntaxErrorKind::MalformedWord, "{src}");
        assert_eq!(e.span, 0..src.len(), "{src}");
        assert!(e.message.contains(&format!("`{sigil}`")), "{}", e.message);
        // The semantic view leaves the word out.
        assert!(Ast::from_tree(&parsed.tree).root().is_empty(), "{src}");
    }
    // Longer, they are fine.
    for src in ["'a", "@a", ":$a", "$@a", "''", "@@", ":$$", "$@@"] {
        assert!(parse(src).errors.is_empty(), "{src}");
    }
    // Positions, in characters.
    assert_eq!(
        errors("é ' ü @".as_bytes()),
        [
            (SyntaxErrorKind::MalformedWord, "1:3".into()),
            (SyntaxErrorKind::MalformedWord, "1:7".into())
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Keyword messages.

#[test]
fn keyword_message_joins_keys_before_arguments() {
    assert_eq!(canon("a at: 1 put: 2"), "a at:put: 1 2");
    assert_eq!(
        words("a at: b put: c"),
        [
            word(WordKind::Eval, "a"),
            word(WordKind::Eval, "at:put:"),
            word(WordKind::Eval, "b"),
            word(WordKind::Eval, "c")
        ]
    );
    // Structural equality: sugar and trivia do not matter, order does.
    assert_eq!(ast("a at: 1 put: 2"), ast("a at:put: 1 2"));
    assert_eq!(ast("a at: 1 put: 2"), ast("a   at:put: # c\n 1\n2"));
    assert_ne!(ast("a at: 1 put: 2"), ast("a at:put: 2 1"));
    assert_ne!(ast("a at: 1 put: 2"), ast("a at: 1 put: 2 3"));
}

#[test]
fn keyword_message_completes_on_a_following_node() {
    assert_eq!(canon("a: b c: d e"), "a:c: b d e");
    assert_eq!(canon("foo: 1 2"), "foo: 1 2");
    assert_eq!(canon("foo: 1 2 bar: 3"), "foo: 1 2 bar: 3");
    assert_eq!(
        words("a: b c: d e"),
        [
            word(WordKind::Eval, "a:c:"),
            word(WordKind::Eval, "b"),
            word(WordKind::Eval, "d"),
            word(WordKind::Eval, "e")
        ]
    );
    // A whole bracketed node is one argument.
    assert_eq!(
        canon("x if: [a b] else: (c d) e"),
        "x if:else: [a b] (c d) e"
    );
    assert_eq!(canon("k: \"s\" j: 1.5 z"), "k:j: \"s\" 1.5 z");
}

#[test]
fn keyword_message_completes_at_a_closer_or_the_end() {
    assert_eq!(canon("[foo:]"), "[foo:]");
    assert_eq!(canon("(a at: 1) put: 2"), "(a at: 1) put: 2");
    assert_eq!(canon("a at: 1 put:"), "a at:put: 1");
    assert_eq!(words("foo:"), [word(WordKind::Eval, "foo:")]);
    let ast = ast("[foo:]");
    let block = ast.root().get(0).unwrap();
    assert_eq!(block.children().len(), 1);
}

#[test]
fn keyword_without_argument_is_an_error() {
    let parsed = parse("x: y: 1");
    assert_eq!(parsed.errors.len(), 1);
    let e = &parsed.errors[0];
    assert_eq!(e.kind, SyntaxErrorKind::KeywordWithoutArgument);
    assert_eq!(e.span, 3..5, "at the second key");
    assert!(
        e.message.contains("keyword `x:` expects an argument"),
        "{}",
        e.message
    );
    assert_eq!(e.related[0].0, 0..2, "and names the first");
    // Also inside a composite, and after a complete pair.
    assert_eq!(
        errors("[a: 1 b: c: 2]".as_bytes()),
        [(SyntaxErrorKind::KeywordWithoutArgument, "1:10".into())]
    );
    // A key where an argument belongs, after multi-byte characters.
    assert_eq!(errors("\"日本\" a:\n  ü b:".as_bytes()), []);
    assert_eq!(
        errors("\"日本\" a:\n  b: ü".as_bytes()),
        [(SyntaxErrorKind::KeywordWithoutArgument, "2:3".into())]
    );
}

#[test]
fn keyword_message_with_a_module_key_is_a_module_word() {
    assert_eq!(canon("Foo::at: 1 put: 2"), "Foo::at:put: 1 2");
    assert_eq!(
        nodes("Foo::at: 1 put: 2"),
        ["Module Foo::at:put:", "int 1", "int 2"]
    );
    assert_eq!(ast("Foo::at: 1 put: 2"), ast("Foo::at:put: 1 2"));
    // Referring to a module's word from outside.
    assert_eq!(nodes("Foo::baz"), ["Module Foo::baz"]);
    assert_eq!(Word::new("Foo::at:put:").kind(), WordKind::Module);
}

#[test]
fn keyword_messages_do_not_cross_brackets() {
    assert_eq!(canon("[at: 1] put: 2"), "[at: 1] put: 2");
    assert_eq!(
        nodes("[at: 1] put: 2"),
        ["[Eval at:, int 1]", "Eval put:", "int 2"]
    );
    // Nor does a message inside a bracket see keys outside it.
    assert_eq!(
        nodes("a: [b: 1 c] d"),
        ["Eval a:", "[Eval b:, int 1, Eval c]", "Eval d"]
    );
    assert_eq!(nodes("a: (b) c: d"), ["Eval a:c:", "(Eval b)", "Eval d"]);
}

#[test]
fn line_breaks_and_comments_do_not_end_a_keyword_message() {
    assert_eq!(canon("a at: # key\n 1\n\n put: # key\n 2"), "a at:put: 1 2");
    // The page's example: two lines read as one message.
    let src = "d at: 1 put: 2\nOther::at: 3 put: 4\n";
    assert_eq!(canon(src), "d at:put:Other::at:put: 1 2 3 4");
    // Its joined spelling holds `::`, so it is a module word, as it reads back.
    assert_eq!(
        nodes(src),
        [
            "Eval d",
            "Module at:put:Other::at:put:",
            "int 1",
            "int 2",
            "int 3",
            "int 4"
        ]
    );
    assert_eq!(ast(src), ast(&canon(src)));
}

#[test]
fn joined_keyword_word_spans_its_keys() {
    let src = "a at: 1 put: 2";
    let ast = ast(src);
    let joined = ast.root().get(1).unwrap();
    assert_eq!(joined.as_word().unwrap().text(), "at:put:");
    assert_eq!(&src[joined.span()], "at: 1 put:");
    assert_eq!(&src[ast.root().get(3).unwrap().span()], "2");
}

// ---------------------------------------------------------------------------------------------
// Composites.

#[test]
fn three_kinds_of_composites_nest() {
    assert_eq!(
        nodes("[1 (a {\"s\" []})] {} ()"),
        ["[int 1, (Eval a, {string \"s\", []})]", "{}", "()"]
    );
    let parsed = parse("[a (b) {c}]");
    let root = parsed.tree.root();
    let children: Vec<_> = root.children().collect();
    assert_eq!(children.len(), 1);
    let SyntaxElement::Node(block) = children[0] else {
        panic!("a block")
    };
    assert_eq!(block.kind(), K::Block);
    assert!(block.is_closed());
    let inner: Vec<_> = block.children().map(|c| c.kind()).collect();
    assert_eq!(
        inner,
        [
            K::LBracket,
            K::EvalWord,
            K::Whitespace,
            K::Paren,
            K::Whitespace,
            K::Curly,
            K::RBracket
        ]
    );
}

#[test]
fn unclosed_bracket_is_an_error_at_the_opener() {
    let src = "x = [1\n  (2 é";
    let parsed = parse(src);
    assert_eq!(
        errors(src.as_bytes()),
        [
            (SyntaxErrorKind::UnclosedBracket, "1:5".into()),
            (SyntaxErrorKind::UnclosedBracket, "2:3".into())
        ]
    );
    assert!(parsed.errors[0].message.contains("expected a `]`"));
    assert!(parsed.errors[1].message.contains("expected a `)`"));
    assert_eq!(parsed.tree.to_bytes(), src.as_bytes());
    // The view still has the composites, closed at the end.
    assert_eq!(Ast::from_tree(&parsed.tree).canonical(), "x = [1 (2 é)]");
}

#[test]
fn unopened_bracket_is_an_error_at_the_closer() {
    assert_eq!(
        errors(b"a ]\n b )\n}"),
        [
            (SyntaxErrorKind::UnopenedBracket, "1:3".into()),
            (SyntaxErrorKind::UnopenedBracket, "2:4".into()),
            (SyntaxErrorKind::UnopenedBracket, "3:1".into())
        ]
    );
    let parsed = parse("a ] b");
    assert_eq!(Ast::from_tree(&parsed.tree).canonical(), "a b");
}

#[test]
fn mismatched_bracket_names_both_positions() {
    let src = "{ ü [\n  x }";
    let parsed = parse(src);
    assert_eq!(
        errors(src.as_bytes()),
        [(SyntaxErrorKind::MismatchedBracket, "2:5".into())]
    );
    let e = &parsed.errors[0];
    assert!(e.message.contains("expected `]`"), "{}", e.message);
    let index = LineIndex::new(src.as_bytes());
    assert_eq!(e.related.len(), 1);
    assert_eq!(
        index
            .line_col(src.as_bytes(), e.related[0].0.start)
            .to_string(),
        "1:5"
    );
    // A closer that matches nothing open names the innermost open bracket.
    let parsed = parse("(]");
    let unopened = parsed
        .errors
        .iter()
        .find(|e| e.kind == SyntaxErrorKind::UnopenedBracket)
        .unwrap();
    assert_eq!(unopened.span, 1..2);
    assert_eq!(unopened.related[0].0, 0..1);
}

// ---------------------------------------------------------------------------------------------
// Errors and positions.

#[test]
fn error_positions_are_one_based_lines_and_character_columns() {
    // Multi-byte characters before the error count one column each.
    let src = "é日😀 ]";
    assert_eq!(
        errors(src.as_bytes()),
        [(SyntaxErrorKind::UnopenedBracket, "1:5".into())]
    );
    let src = "ab\n\"日本語\" 'x ]\r\n  ]";
    assert_eq!(
        errors(src.as_bytes()),
        [
            (SyntaxErrorKind::UnopenedBracket, "2:10".into()),
            (SyntaxErrorKind::UnopenedBracket, "3:3".into())
        ]
    );
    // Errors come in source order.
    let parsed = parse("] ' [");
    let starts: Vec<_> = parsed.errors.iter().map(|e| e.span.start).collect();
    assert_eq!(starts, [0, 2, 4]);
    let index = LineIndex::new(b"a\nb");
    assert_eq!(index.line_col(b"a\nb", 0).to_string(), "1:1");
    assert_eq!(index.line_col(b"a\nb", 2).to_string(), "2:1");
    assert_eq!(index.line_col(b"a\nb", 3).to_string(), "2:2");
}

#[test]
fn error_codes_are_stable() {
    let cases: &[(&[u8], &str)] = &[
        (b"\xff", "invalid-utf8"),
        (b"\0", "nul-byte"),
        (b"\"", "unterminated-string"),
        (b"[", "unclosed-bracket"),
        (b"]", "unopened-bracket"),
        (b"{[}", "mismatched-bracket"),
        (b"a: b: c", "keyword-without-argument"),
        (b"@", "malformed-word"),
    ];
    for (src, code) in cases {
        let parsed = parse(*src);
        let codes: Vec<_> = parsed.errors.iter().map(|e| e.kind.code()).collect();
        assert!(
            codes.contains(code),
            "{:?}: {codes:?}",
            String::from_utf8_lossy(src)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Modules.

const PAGE_MODULE: &str = r#"{
  # Loaded under the name Foo.
  _meta = {
    name = 'Foo
    version = "1.0"
    description = "Testing module closure"
  }

  # A method: self is the left-hand argument.
  ti:di: = method [:to :block
    n = self
    [n <= to] whileTrue: [
      do block n
      n := (n + 1)
    ]
  ]

  baz = func ["Foo Baz"]
}
"#;

fn unit(src: &str, name: &str) -> SourceUnit {
    match SourceUnit::parse(src, name) {
        Ok(unit) => unit,
        Err(e) => panic!("{src:?}: {:?}", e.errors),
    }
}

fn definition_texts(unit: &SourceUnit) -> Vec<(String, String)> {
    (0..unit.definitions().len())
        .map(|i| {
            (
                unit.definitions()[i].name.clone(),
                String::from_utf8_lossy(unit.definition_text(i)).into_owned(),
            )
        })
        .collect()
}

fn pieces_concatenate_to_the_file(unit: &SourceUnit) {
    let mut joined = Vec::new();
    for piece in unit.pieces() {
        match piece {
            Piece::Gap(text) | Piece::Definition(_, text) => joined.extend_from_slice(text),
        }
    }
    assert_eq!(joined, unit.text());
}

#[test]
fn module_example_of_the_page() {
    let unit = unit(PAGE_MODULE, "foo");
    assert_eq!(unit.kind(), UnitKind::Module);
    assert_eq!(unit.name(), "Foo");
    let names: Vec<_> = unit.definitions().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["_meta", "ti:di:", "baz"]);
    let texts = definition_texts(&unit);
    assert!(
        texts[0]
            .1
            .starts_with("# Loaded under the name Foo.\n  _meta = {")
    );
    assert!(texts[0].1.ends_with("closure\"\n  }"));
    assert!(
        texts[1]
            .1
            .starts_with("# A method: self is the left-hand argument.\n  ti:di: =")
    );
    assert!(texts[1].1.ends_with("n := (n + 1)\n    ]\n  ]"));
    assert_eq!(texts[2].1, "baz = func [\"Foo Baz\"]");
    // `n = self` inside the method and `n :=` are no definitions of the module.
    pieces_concatenate_to_the_file(&unit);
    // Each name span is the name itself.
    for d in unit.definitions() {
        assert_eq!(&unit.text()[d.name_span.clone()], d.name.as_bytes());
    }
}

#[test]
fn definition_spans_take_the_comments_directly_above() {
    let src = "{\n  _meta = {name = 'M}\n  # above a\n  # also above a\n  a = 1\n  # cut off by a blank line\n\n  b = 2\n}\n";
    let unit = unit(src, "m");
    assert_eq!(
        definition_texts(&unit),
        [
            ("_meta".into(), "_meta = {name = 'M}".into()),
            ("a".into(), "# above a\n  # also above a\n  a = 1".into()),
            ("b".into(), "b = 2".into()),
        ]
    );
    // The comment cut off by a blank line is the module's own text.
    let gaps: Vec<String> = unit
        .pieces()
        .into_iter()
        .filter_map(|p| match p {
            Piece::Gap(t) => Some(String::from_utf8_lossy(t).into_owned()),
            Piece::Definition(..) => None,
        })
        .collect();
    assert_eq!(
        gaps,
        [
            "{\n  ",
            "\n  ",
            "\n  # cut off by a blank line\n\n  ",
            "\n}\n"
        ]
    );
    pieces_concatenate_to_the_file(&unit);
}

#[test]
fn definition_spans_take_a_trailing_comment_on_the_same_line() {
    let src =
        "{_meta = {name = 'M}\n  a = 1 # about a\n  b = [\n  ] # about b\n  # above c\n  c = 3\n}";
    let unit = unit(src, "m");
    let texts = definition_texts(&unit);
    assert_eq!(texts[1].1, "a = 1 # about a");
    assert_eq!(texts[2].1, "b = [\n  ] # about b");
    assert_eq!(texts[3].1, "# above c\n  c = 3");
    // A comment after a definition on its own line is not trailing.
    let src = "{_meta = {name = 'M}\n  a = 1\n  # after a\n}";
    let after = self::unit(src, "m");
    assert_eq!(definition_texts(&after)[1].1, "a = 1");
    pieces_concatenate_to_the_file(&after);
}

#[test]
fn text_before_the_first_and_after_the_last_definition_is_the_modules() {
    let src = "# header\n{ # opening\n  _meta = {name = 'M} x = 1 # x\n  # footer inside\n} # after\n# trailer";
    let unit = unit(src, "m");
    let pieces = unit.pieces();
    assert_eq!(pieces.len(), 5);
    assert_eq!(pieces[0], Piece::Gap(b"# header\n{ # opening\n  "));
    assert_eq!(pieces[2], Piece::Gap(b" "));
    assert_eq!(
        pieces[4],
        Piece::Gap(b"\n  # footer inside\n} # after\n# trailer")
    );
    pieces_concatenate_to_the_file(&unit);
}

#[test]
fn binding_names_are_eval_or_keyword_shaped_words_and_reassignment_defines_nothing() {
    let src = "{_meta = {name = 'M} at:put: = method [:k :v] x = 1 x := 2 y = 3 :z = 4 'w = 5}";
    let unit = unit(src, "m");
    let names: Vec<_> = unit.definitions().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["_meta", "at:put:", "x", "y"]);
    assert_eq!(unit.definition_text(2), b"x = 1 x := 2");
}

#[test]
fn scripts_are_named_by_their_path() {
    let unit = unit("echo \"hi\"\nx = 1\n", "scripts/demo");
    assert_eq!(unit.kind(), UnitKind::Script);
    assert_eq!(unit.name(), "scripts/demo");
    assert!(unit.definitions().is_empty());
    assert_eq!(unit.pieces(), [Piece::Gap(b"echo \"hi\"\nx = 1\n")]);
    // A curly without `_meta` does not make a module.
    let unit = self::unit("{x = 1}", "plain");
    assert_eq!((unit.kind(), unit.name()), (UnitKind::Script, "plain"));
    assert_eq!(self::unit("", "empty").kind(), UnitKind::Script);
}

#[test]
fn duplicate_definition_names_both_lines() {
    let src = "{\n  _meta = {name = 'D}\n  x = 1\n  x = 2\n}";
    let e = SourceUnit::parse(src, "d").unwrap_err();
    assert_eq!(e.errors.len(), 1);
    let error = &e.errors[0];
    assert_eq!(error.kind, SyntaxErrorKind::DuplicateDefinition);
    assert!(error.message.contains("line 4"), "{}", error.message);
    assert!(error.message.contains("line 3"), "{}", error.message);
    let index = LineIndex::new(src.as_bytes());
    assert_eq!(
        index.line_col(src.as_bytes(), error.span.start).to_string(),
        "4:3"
    );
    assert_eq!(
        index
            .line_col(src.as_bytes(), error.related[0].0.start)
            .to_string(),
        "3:3"
    );
}

#[test]
fn meta_must_name_the_module_with_a_literal_word() {
    for src in [
        "{_meta = {version = \"1\"} x = 1}",
        "{_meta = {name = \"Foo\"}}",
        "{_meta = {name = Foo}}",
        "{_meta = 3}",
    ] {
        let e = SourceUnit::parse(src, "m").unwrap_err();
        assert_eq!(
            e.errors.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [SyntaxErrorKind::InvalidModuleMeta],
            "{src}"
        );
    }
    // Syntax errors come first, and the unit gives back the text.
    let e = SourceUnit::parse("{_meta = {name = 'M} x = [}", "m").unwrap_err();
    assert_eq!(e.text, b"{_meta = {name = 'M} x = [}");
    assert_eq!(e.errors[0].kind, SyntaxErrorKind::MismatchedBracket);
}

// ---------------------------------------------------------------------------------------------
// Canonical form.

#[test]
fn canonical_form_is_one_line_with_single_spaces_and_no_padding() {
    assert_eq!(canon("  [ 1   2 ]\n\n( a )\t{ }  "), "[1 2] (a) {}");
    assert_eq!(canon("x = [ # comment\n 1 ]"), "x = [1]");
    assert_eq!(canon("+11 1_000 0x10"), "11 1000 0x10");
    assert_eq!(
        canon("3.5 5. 1e3 -1.5e-3 1e400 -inf"),
        "3.5 5.0 1000.0 -0.0015 +inf -inf"
    );
    // `inf` and `nan` alone are words, so the floats print with a sign.
    assert_eq!(canon("+inf +nan"), "+inf +nan");
    assert_eq!(
        canon(r#""a\\b" "q\"" "it\'s" "\x41""#),
        r#""a\\b" "q\"" "it's" "A""#
    );
    // Bytes that cannot appear in source print as `\xHH`.
    assert_eq!(canon(r#""\xff\x00""#), r#""\xFF\x00""#);
    assert_eq!(canon(""), "");
}

#[test]
fn canonical_form_reads_back_and_is_shared_by_equal_trees() {
    let sources = [
        "a at: 1 put: 2",
        "a at:put: 1 2 # same",
        "x = [1 (2 {3})] \"s\\\"\" 'lit $get :arg",
        "Foo::at: 1 put: [x: 1] y",
        "+inf -inf +nan 1e400 -0.0 5e-324",
        "\"\\x00\\xff\\\\\"",
    ];
    for src in sources {
        let c = canon(src);
        assert_eq!(ast(&c), ast(src), "{src} -> {c}");
        assert_eq!(canon(&c), c, "{src}");
    }
    assert_eq!(canon(sources[0]), canon(sources[1]));
}

// ---------------------------------------------------------------------------------------------
// Pretty form.

#[test]
fn pretty_form_of_a_built_tree_reads_back() {
    let built = Ast::build(|b| {
        b.open(CompositeKind::Curly);
        for (name, value) in [("_meta", None), ("size", Some(3)), ("at:put:", Some(4))] {
            b.push(AstNode::Word(Word::new(name)));
            b.push(AstNode::Word(Word::new("=")));
            match value {
                None => {
                    b.open(CompositeKind::Curly);
                    b.push(AstNode::Word(Word::new("name")));
                    b.push(AstNode::Word(Word::new("=")));
                    b.push(AstNode::Word(Word::new("'Built")));
                    b.close();
                }
                Some(v) => b.push(AstNode::Integer(v)),
            }
        }
        b.close();
    });
    let pretty = built.pretty();
    assert_eq!(
        pretty,
        "{\n  _meta = {name = 'Built}\n  size = 3\n  at:put: = 4\n}"
    );
    assert_eq!(ast(&pretty), built);
    assert_eq!(ast(&pretty).pretty(), pretty);
    let unit = unit(&pretty, "built");
    assert_eq!(unit.name(), "Built");
    assert_eq!(unit.definitions().len(), 3);
}

#[test]
fn pretty_form_resugars_keyword_messages() {
    assert_eq!(ast("a at:put: 1 2").pretty(), "a at: 1 put: 2");
    assert_eq!(ast("Foo::at:put: 1 [x]").pretty(), "Foo::at: 1 put: [x]");
    // Only where the sugar reads back the same.
    assert_eq!(ast("at:put: 1").pretty(), "at:put: 1");
    for src in ["a at:put: 1 2", "at:put: 1", "x: 1 2 y: 3"] {
        let tree = ast(src);
        assert_eq!(ast(&tree.pretty()), tree, "{src}");
    }
}

// ---------------------------------------------------------------------------------------------
// Deep input: nothing recurses on the depth of the input.

/// Runs `f` on a thread with the default 2 MiB stack of spawned threads (set explicitly, so
/// that `RUST_MIN_STACK` cannot make the test pass by accident).
fn on_stack(bytes: usize, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap_or_else(|_| panic!("the thread panicked"));
}

const TWO_MIB: usize = 2 << 20;

#[test]
fn a_million_nested_blocks() {
    on_stack(TWO_MIB, || {
        let depth = 1_000_000;
        let mut text = "[".repeat(depth);
        text.push_str(&"]".repeat(depth));
        let parsed = parse(text.as_bytes());
        assert!(parsed.errors.is_empty(), "{:?}", &parsed.errors[..1]);
        assert_eq!(parsed.tree.composite_count(), depth);
        assert!(parsed.tree.to_bytes() == text.as_bytes());

        let tree = Ast::from_tree(&parsed.tree);
        assert_eq!(tree.node_count(), depth);
        assert!(
            tree.canonical() == text,
            "the canonical form of empty blocks is the text"
        );

        let pretty = tree.pretty();
        let reread = parse(pretty.as_bytes());
        assert!(reread.errors.is_empty());
        let pretty_tree = Ast::from_tree(&reread.tree);
        assert!(pretty_tree == tree);
        assert!(pretty_tree.pretty() == pretty);

        let unit = SourceUnit::parse(text.as_bytes(), "deep").unwrap();
        assert_eq!(unit.kind(), UnitKind::Script);
        // Everything is dropped here, on the small stack too.
    });
}

#[test]
fn deep_nesting_with_content_and_every_bracket_kind() {
    on_stack(TWO_MIB, || {
        let depth = 200_000;
        let mut text = String::new();
        for i in 0..depth {
            text.push_str(["(a ", "[k: ", "{x = "][i % 3]);
        }
        text.push('1');
        for i in (0..depth).rev() {
            text.push_str([")", "]", "}"][i % 3]);
        }
        let parsed = parse(text.as_bytes());
        assert!(parsed.errors.is_empty());
        let tree = Ast::from_tree(&parsed.tree);
        let canonical = tree.canonical();
        assert!(Ast::from_tree(&parse(canonical.as_bytes()).tree) == tree);
        let pretty = tree.pretty();
        let pretty_tree = Ast::from_tree(&parse(pretty.as_bytes()).tree);
        assert!(pretty_tree == tree);
        assert!(pretty_tree.pretty() == pretty);
    });
}

#[test]
fn a_million_unclosed_parens_give_a_short_clear_error() {
    on_stack(TWO_MIB, || {
        let text = "(".repeat(1_000_000);
        let parsed = parse(text.as_bytes());
        assert!(parsed.tree.to_bytes() == text.as_bytes());
        // The outermost ones are reported, the last saying how many more there are.
        assert_eq!(parsed.errors.len(), 20);
        assert!(
            parsed
                .errors
                .iter()
                .all(|e| e.kind == SyntaxErrorKind::UnclosedBracket)
        );
        assert_eq!(parsed.errors[0].span, 0..1);
        assert!(parsed.errors[0].message.contains("unclosed `(`"));
        let last = parsed.errors.last().unwrap();
        assert_eq!(last.span, 19..20);
        assert!(last.message.contains("999980 more"), "{}", last.message);
        // The view closes them all at the end.
        let tree = Ast::from_tree(&parsed.tree);
        assert_eq!(tree.node_count(), 1_000_000);
        let canonical = tree.canonical();
        assert_eq!(canonical.len(), 2_000_000);
        assert!(canonical.ends_with("))"));
        let _ = tree.pretty();
    });
    // A few unclosed brackets are each reported.
    assert_eq!(parse("((((").errors.len(), 4);
}

#[test]
fn debug_dump_does_not_recurse() {
    // The dump indents by depth, so its size grows with the square of the depth: a depth of a
    // few thousand on a stack far too small for as many recursive calls proves the point.
    on_stack(256 << 10, || {
        let depth = 3_000;
        let mut text = "[".repeat(depth);
        text.push_str(&"]".repeat(depth));
        let dump = parse(text.as_bytes()).tree.debug_dump();
        // The root, then per level the block, its `[` and its `]`.
        assert_eq!(dump.lines().count(), 1 + 3 * depth);
        assert!(dump.starts_with("ROOT@0..6000\n  BLOCK@0..6000\n    L_BRACKET@0..1 \"[\"\n"));
        assert!(dump.ends_with("  R_BRACKET@5999..6000 \"]\"\n"));
    });
}
