//! The module view of a large file, read a window of its text at a time.
//!
//! The whole parse of a file holds its text, its lossless tree and the module's top-level
//! view together: six times the file at its peak, gigabytes for a module of millions of
//! definitions. Here the module's top level is read a window (about 1 MiB) at a time: the
//! window is parsed on its own, its definitions are cut as the whole parse would cut them,
//! and its tree and view are dropped before the next window is read. What is held is the text
//! and the definitions' spans and names.
//!
//! A window starts where a definition starts, inside the module's curly, with no keyword
//! message going on: there the whole parse is in the state a fresh parse of the rest of the
//! text starts in, token for token, composite for composite and error for error, until the
//! module's closing brace (which the window sees as a stray one). It ends at the last such
//! place it holds whole (the text after it is read again by the next window), or at that
//! brace. Anything this reading cannot vouch for (an error anywhere, a script, a layout the
//! first window reads otherwise, two names that hash alike) gives `None`, and the caller
//! parses the file whole, so that every error is the whole parse's own.

use std::hash::BuildHasher as _;

use super::{
    Definition, check_layout, comments_above, cut_definitions, find_binding, is_definition_at,
    module_name, run_ons,
};
use crate::syntax::ast::{Ast, AstList};
use crate::syntax::kind::SyntaxKind;
use crate::syntax::parser::{BOM, KeywordState, MAX_SOURCE_LEN, parse};
use crate::syntax::tree::{SyntaxElement, SyntaxTree};

/// The text a window parses at first (a window with no place to end in is read again at
/// twice the size): large enough that a window's fixed costs are nothing, small enough that
/// its tree and view are a few megabytes.
pub(super) const WINDOW: usize = 1 << 20;

/// The module's name and its definitions, as [`super::SourceUnit::parse`] would read them
/// from `text`, read `window` bytes at a time; `None` when this reading cannot vouch for
/// that (the caller then parses the text whole).
pub(super) fn read_module(text: &[u8], window: usize) -> Option<(String, Vec<Definition>)> {
    if text.len() > MAX_SOURCE_LEN {
        return None;
    }
    let mut at = module_start(text)?;
    let mut name: Option<String> = None;
    let mut definitions: Vec<Definition> = Vec::new();
    let mut size = window.max(1);
    // The window's text, in one buffer handed to each parse and taken back from its tree.
    let mut buffer: Vec<u8> = Vec::new();
    let mut first = true;
    let close = loop {
        let end = at.saturating_add(size).min(text.len());
        buffer.clear();
        buffer.extend_from_slice(text.get(at..end)?);
        let parsed = parse(std::mem::take(&mut buffer));
        let tree = &parsed.tree;
        // The first window starts after the module's `{`: a comment right there would read as
        // starting its line, which it does not.
        if first && tree.kinds.first() == Some(&SyntaxKind::Comment) {
            return None;
        }
        let ast = Ast::from_tree_shallow(tree);
        let root = ast.root();
        let brace = closing_brace(tree)?;
        let (count, next) = match brace {
            Some(brace) => (
                root.iter().take_while(|n| n.span().end <= brace).count(),
                None,
            ),
            None => match last_cut(tree, &root) {
                Some((count, cut)) => (count, Some(cut)),
                None if end == text.len() => return None,
                None => {
                    // No place to end in: read again, twice as much.
                    size = size.saturating_mul(2);
                    buffer = parsed.tree.into_text();
                    continue;
                }
            },
        };
        let limit = next.or(brace).unwrap_or(0);
        if parsed.errors.iter().any(|e| e.span.start < limit) {
            return None;
        }
        let piece = root.prefix(count);
        let (errors, _) = run_ons(tree, &piece);
        if !errors.is_empty() {
            return None;
        }
        if name.is_none() && find_binding(piece, "_meta").is_some() {
            name = Some(module_name(tree, &piece).ok()?);
        }
        let bindings: Vec<usize> = (0..piece.len())
            .filter(|&i| is_definition_at(&piece, i))
            .collect();
        definitions.extend(
            cut_definitions(tree, &piece, &bindings)
                .into_iter()
                .map(|d| Definition {
                    name: d.name,
                    span: d.span.start + at..d.span.end + at,
                    name_span: d.name_span.start + at..d.name_span.end + at,
                }),
        );
        drop(ast);
        buffer = parsed.tree.into_text();
        first = false;
        match (next, brace) {
            (Some(cut), _) => {
                at += cut;
                size = window.max(1);
            }
            (None, Some(brace)) => break at + brace,
            (None, None) => return None,
        }
    };
    // After the module's `}`: comments and white space only, as the whole parse reads them.
    let tail = text.get(close + 1..)?;
    if tail.starts_with(BOM) || !only_trivia(tail) {
        return None;
    }
    let name = name?;
    check_layout(&definitions, text.len()).ok()?;
    if names_may_repeat(&definitions) {
        return None;
    }
    Some((name, definitions))
}

/// Where the module's top level starts: just after its `{`, when the text before that is a
/// byte order mark, white space and comments (as a parse of it alone confirms).
fn module_start(text: &[u8]) -> Option<usize> {
    let mut at = if text.starts_with(BOM) { BOM.len() } else { 0 };
    loop {
        match text.get(at)? {
            b' ' | b'\t'..=b'\r' => at += 1,
            b'#' => at += memchr::memchr(b'\n', text.get(at..)?)? + 1,
            b'{' => break,
            _ => return None,
        }
    }
    let head = text.get(..at)?;
    let start = at + 1;
    // A byte order mark there would be read as one by a window, not as the word it starts.
    if !only_trivia(head) || text.get(start..)?.starts_with(BOM) {
        return None;
    }
    Some(start)
}

/// Whether `text`, parsed alone, is white space and comments (a leading byte order mark
/// included) and nothing else, with no error.
fn only_trivia(text: &[u8]) -> bool {
    let parsed = parse(text);
    parsed.errors.is_empty() && parsed.tree.kinds.iter().all(|k| k.is_trivia())
}

/// The module's closing brace in a window: its first closing bracket at the top level.
/// `Some(None)` when there is none; `None` when that bracket is not a `}` (the whole parse
/// finds it mismatched).
fn closing_brace(tree: &SyntaxTree) -> Option<Option<usize>> {
    for element in tree.root().children() {
        if let SyntaxElement::Token(token) = element
            && token.kind().is_close()
        {
            return (token.kind() == SyntaxKind::RCurly).then_some(Some(token.range().start));
        }
    }
    Some(None)
}

/// The last place in a window where a definition starts and the next window may start: the
/// number of top-level nodes before it and its offset (its comments above included). Such a
/// place is a definition's name followed by `=`, both ended within the window, with no key
/// of a keyword message waiting for its argument before it (nor any message a key there
/// would extend), and not at the window's start.
fn last_cut(tree: &SyntaxTree, root: &AstList<'_>) -> Option<(usize, usize)> {
    let states = keyword_states(tree);
    let len = tree.text.len();
    (1..root.len()).rev().find_map(|i| {
        if !is_definition_at(root, i) || root.get(i + 1)?.span().end >= len {
            return None;
        }
        let start = root.get(i)?.span().start;
        let state = states
            .binary_search_by_key(&start, |&(at, _)| at)
            .ok()
            .and_then(|s| states.get(s))?
            .1;
        let key = tree
            .token_at_offset(start)
            .and_then(|t| tree.kinds.get(t))
            .is_some_and(|&k| k == SyntaxKind::KeywordPart);
        let clear = match state {
            KeywordState::Idle => true,
            KeywordState::Balanced => !key,
            KeywordState::Expecting(..) => false,
        };
        let cut = comments_above(tree, start);
        let bom = tree.text.get(cut..).is_some_and(|t| t.starts_with(BOM));
        (clear && cut > 0 && !bom).then_some((i, cut))
    })
}

/// The keyword state before each top-level node of a window that the language sees (by its
/// start), as the parser follows it.
fn keyword_states(tree: &SyntaxTree) -> Vec<(usize, KeywordState)> {
    let mut states = Vec::new();
    let mut state = KeywordState::Idle;
    for element in tree.root().children() {
        let kind = element.kind();
        if kind.is_trivia() || kind.is_close() || kind == SyntaxKind::Malformed {
            continue;
        }
        states.push((element.range().start, state));
        if kind == SyntaxKind::KeywordPart {
            state.key(element.range());
        } else {
            state.node();
        }
    }
    states
}

/// Whether two definitions may share a name: two names hash alike (the whole parse then says
/// which, and where). A sorted list of hashes holds far less than a map of the names.
fn names_may_repeat(definitions: &[Definition]) -> bool {
    let hasher = rustc_hash::FxBuildHasher;
    let mut hashes: Vec<u64> = definitions
        .iter()
        .map(|d| hasher.hash_one(&d.name))
        .collect();
    hashes.sort_unstable();
    hashes.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    use super::super::{SourceUnit, UnitErrors, UnitKind};

    /// The whole parse's reading and the reading in windows of `window` bytes, compared field
    /// by field (errors included). Returns whether the windows were used.
    fn agree(text: &[u8], window: usize) -> bool {
        let whole = SourceUnit::parse_whole(text.to_vec(), "script");
        let (streamed, used) = SourceUnit::parse_in_windows(text.to_vec(), "script", 0, window);
        let show = String::from_utf8_lossy(text);
        match (&whole, &streamed) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.kind, b.kind, "window {window}: {show}");
                assert_eq!(a.name, b.name, "window {window}: {show}");
                assert_eq!(a.definitions, b.definitions, "window {window}: {show}");
                assert_eq!(a.text, b.text);
            }
            (Err(UnitErrors { errors: a, text: t }), Err(UnitErrors { errors: b, text: u })) => {
                assert_eq!(a, b, "window {window}: {show}");
                assert_eq!(t, u);
            }
            _ => panic!(
                "window {window}: whole {:?}, in windows {:?}: {show}",
                whole.is_ok(),
                streamed.is_ok()
            ),
        }
        used
    }

    /// What a module's top level is made of: definitions of every shape (keyword-named, with
    /// comments above and after, messages left open, nested curlies), `_meta`, comments,
    /// every kind of line break and blank, and now and then a fault (a stray or missing
    /// bracket, a key without argument, a run-on, a name defined twice, bytes that are not
    /// UTF-8, a byte order mark inside a word).
    fn item() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            30 => (0..1_000_000u32).prop_map(|i| format!("d{i}")),
            4 => (0..1_000_000u32).prop_map(|i| format!("k{i}:at:")),
            1 => (0..40u32).prop_map(|i| format!("d{i}")),
            1 => Just("at:put:".to_string()),
            1 => Just("do:".to_string()),
            1 => Just("+".to_string()),
            1 => Just("_meta".to_string()),
            1 => Just("\u{FEFF}w".to_string()),
            1 => Just("é".to_string()),
        ];
        let expression = prop_oneof![
            Just("func [:x x + 1]"),
            Just("method [:a :b a * b + 1]"),
            Just("\"text ] with # inside\""),
            Just("\"two\nlines\""),
            Just("x at: 1"),
            Just("x at: 1 put: (y)"),
            Just("x ifFalse: y"),
            Just("x at:"),
            Just("{a = 1 b = [2]}"),
            Just("{name = 'Mod}"),
            Just("[\n    :x\n    x # inner\n  ]"),
            Just("3.5"),
            Just("'lit"),
            Just("Foo::bar"),
            Just("(1 + 2)"),
            Just("1"),
        ];
        let definition = (name, expression).prop_map(|(n, e)| format!("{n} = {e}"));
        let other = prop_oneof![
            Just("_meta = {name = 'Mod}".to_string()),
            Just("# a comment".to_string()),
            Just("#".to_string()),
            Just("x".to_string()),
            Just("at: 2".to_string()),
            Just("]".to_string()),
            Just("[".to_string()),
            Just("}".to_string()),
            Just("\"open".to_string()),
            Just("x: y: 1".to_string()),
            Just("\u{FEFF}".to_string()),
            Just("\0".to_string()),
            Just("z := 3".to_string()),
        ];
        let gap = prop_oneof![
            Just("\n  "),
            Just("\n  "),
            Just("\r\n  "),
            Just("\n\n  "),
            Just(" "),
            Just("\t"),
            Just(" # after\n  "),
            Just("\n  # above\n  "),
            Just("\n\n  # above\n  # and above\n  "),
            Just(""),
        ];
        (prop_oneof![30 => definition, 1 => other], gap)
            .prop_map(|(item, gap)| format!("{item}{gap}"))
    }

    fn module() -> impl Strategy<Value = Vec<u8>> {
        let head = prop_oneof![
            8 => Just("{\n  "),
            2 => Just("\u{FEFF}{\n  "),
            2 => Just("# A module.\n\n{\n  "),
            2 => Just("{\r\n  "),
            1 => Just("{ "),
            1 => Just("{# same line\n  "),
            1 => Just("{"),
            1 => Just("x {\n  "),
        ];
        let tail = prop_oneof![
            8 => Just("\n}\n"),
            2 => Just("}"),
            2 => Just("\r\n}\r\n# after\r\n"),
            2 => Just("\n} # after"),
            1 => Just("\n}\n\u{FEFF}"),
            1 => Just("\n}\nx\n"),
            1 => Just("\n"),
        ];
        let meta = prop_oneof![
            4 => Just("_meta = {name = 'Mod}\n  "),
            1 => Just(""),
        ];
        (
            head,
            meta,
            proptest::collection::vec(item(), 0..40),
            tail,
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(head, meta, items, tail, bad)| {
                let mut text = format!("{head}{meta}{}{tail}", items.concat()).into_bytes();
                if bad && text.len() > 8 {
                    let at = text.len() / 2;
                    text.insert(at, 0xFF);
                }
                text
            })
    }

    /// `PROPTEST_CASES` sets the number of cases (256 by default).
    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn the_reading_in_windows_is_the_whole_reading(text in module(), window in 1..400usize) {
            agree(&text, window);
            agree(&text, 1 << 20);
        }
    }

    /// The property above holds trivially when the windows give up: the generator's valid
    /// modules (not its scripts, which the windows leave to the whole parse) must nearly all
    /// be read in windows.
    #[test]
    fn most_valid_modules_are_read_in_windows() {
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        let strategy = module();
        let (mut valid, mut streamed) = (0, 0);
        for _ in 0..400 {
            let Ok(tree) = strategy.new_tree(&mut runner) else {
                continue;
            };
            let text = tree.current();
            let used = agree(&text, 48);
            if SourceUnit::parse_whole(text.clone(), "s").is_ok_and(|u| u.kind == UnitKind::Module)
            {
                valid += 1;
                streamed += usize::from(used);
            }
        }
        eprintln!("{streamed} of {valid} valid modules read in windows");
        assert!(valid >= 40, "{valid} valid modules");
        assert!(
            streamed * 10 >= valid * 9,
            "{streamed} of {valid} read in windows"
        );
    }

    #[test]
    fn a_large_module_is_read_in_windows_as_whole() {
        let mut text = String::from("\u{FEFF}# Big.\r\n{\r\n  _meta = {name = 'Big}\r\n");
        for i in 0..3_000 {
            match i % 4 {
                0 => text.push_str(&format!(
                    "  # Definition {i}.\r\n  d{i} = func [:x x + {i}]\r\n"
                )),
                1 => text.push_str(&format!(
                    "  d{i} = method [:a :b a * b + {i}] # product\r\n"
                )),
                2 => text.push_str(&format!("  d{i} = \"text {i} with ] and # inside\"\r\n")),
                _ => text.push_str(&format!(
                    "\r\n  k{i}:at: = x at: 1 put: [\r\n    {i}\r\n  ]\r\n"
                )),
            }
        }
        text.push_str("}\r\n# End.\r\n");
        for window in [1, 50, 4096, 1 << 20] {
            assert!(agree(text.as_bytes(), window), "window {window}");
        }
        let unit = SourceUnit::parse(text.as_bytes(), "big").expect("a module");
        assert_eq!(unit.definitions().len(), 3_001);
    }

    /// Every Spry file of the repository (fixtures, `spry-src`, benches) and `gen`'s corpus
    /// (a tree's modules and scripts, and one 2 MB module): text nobody wrote for this test.
    #[test]
    fn the_repository_s_files_and_gen_s_corpus_read_alike() {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if path.is_dir() && !name.starts_with('.') && name != "target" {
                    dirs.push(path);
                } else if name.ends_with(".spry") || name.ends_with(".sy") {
                    texts.extend(std::fs::read(&path));
                }
            }
        }
        assert!(texts.len() >= 200, "{} files", texts.len());
        let options = crate::corpus::CorpusOptions::default();
        texts.extend(
            crate::corpus::generate_tree(300, &options)
                .into_iter()
                .map(|f| f.text.into_bytes()),
        );
        let big = crate::corpus::generate_file(2_000_000, &options).into_bytes();
        let mut streamed = 0;
        for text in &texts {
            streamed += usize::from(agree(text, 64));
        }
        assert!(
            streamed >= 300,
            "{streamed} of {} read in windows",
            texts.len()
        );
        assert!(agree(&big, 4096));
        assert!(agree(&big, 1 << 20));
    }

    #[test]
    fn faults_in_a_large_module_are_the_whole_parse_s_own() {
        let mut base = String::from("{\n  _meta = {name = 'Big}\n");
        for i in 0..2_000 {
            base.push_str(&format!("  d{i} = func [:x x + {i}]\n"));
        }
        base.push_str("}\n");
        let middle = base.find("d1000 =").expect("a definition");
        for fault in ["d5 = 1\n  ", "] ", "[ ", "x: y: 1\n  ", "\"open ", "\0"] {
            let mut text = base.clone();
            text.insert_str(middle, fault);
            assert!(!agree(text.as_bytes(), 64), "{fault:?} was read in windows");
            assert!(
                SourceUnit::parse(text.as_bytes(), "big").is_err(),
                "{fault:?}"
            );
        }
        let run_on = base.replace("d1000 = func [:x x + 1000]", "d1000 = x at: 1\n  at: = 2");
        assert!(!agree(run_on.as_bytes(), 64));
    }
}
