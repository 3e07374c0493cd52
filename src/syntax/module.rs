//! The module view: which module a file is, and its definitions with their exact spans.
//!
//! A file holding one curly whose bindings include `_meta = {name = 'Name ...}` is the module
//! `Name`; its definitions are the curly's top-level `name = ...` bindings. A definition's span
//! runs from the comments directly above its name (no blank line between) to the end of its
//! last node, plus a comment on that same line. Everything else (the text before the first
//! definition, between definitions, after the last) is the module's own text. A file with no
//! `_meta` is a script: one unit with no definitions, named by its path.

use std::ops::Range;

use super::ast::{Ast, AstList, AstNode, WordKind};
use super::error::{LineIndex, SyntaxError, SyntaxErrorKind};
use super::kind::SyntaxKind;
use super::parser::parse;
use super::tree::SyntaxTree;

mod streamed;

/// From this size on, a module file is read a window at a time ([`streamed`]): below it the
/// whole parse's tree and view are a few megabytes, and one parse is the simpler reading.
const STREAM_FROM: usize = 4 << 20;

/// Whether a file is a module or a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// One curly with a `_meta` name.
    Module,
    /// Anything else: a single unit named by its path.
    Script,
}

/// One definition of a module: `name = expression`, with the comments above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    /// The bound name (`size`, `at:put:`, `_meta`).
    pub name: String,
    /// The byte range of the whole definition in the file.
    pub span: Range<usize>,
    /// The byte range of the name.
    pub name_span: Range<usize>,
}

/// A parsed file seen as a unit of the image: a module with definitions, or a script.
///
/// # Examples
/// ```
/// use spry_image::syntax::{SourceUnit, UnitKind};
/// let text = "{\n  _meta = {name = 'Foo}\n\n  # Doubles.\n  twice = func [:x x * 2]\n}\n";
/// let unit = SourceUnit::parse(text, "foo").unwrap();
/// assert_eq!(unit.kind(), UnitKind::Module);
/// assert_eq!(unit.name(), "Foo");
/// assert_eq!(unit.definitions()[1].name, "twice");
/// assert_eq!(unit.definition_text(1), b"# Doubles.\n  twice = func [:x x * 2]");
/// ```
#[derive(Clone, Debug)]
pub struct SourceUnit {
    text: Vec<u8>,
    kind: UnitKind,
    name: String,
    definitions: Vec<Definition>,
}

/// Why a text is not a unit: the text and its errors.
#[derive(Clone, Debug)]
pub struct UnitErrors {
    /// The text that was read.
    pub text: Vec<u8>,
    /// What is wrong with it, in source order.
    pub errors: Vec<SyntaxError>,
}

/// A piece of a unit's text, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text of the module itself (before, between or after definitions).
    Gap(&'a [u8]),
    /// A definition's text.
    Definition(&'a Definition, &'a [u8]),
}

impl SourceUnit {
    /// Parses `text` and reads it as a unit; `script_name` names it if it is a script (the
    /// path relative to the tree, without `.spry`).
    ///
    /// # Errors
    /// Every syntax error of the text, a `_meta` that names no module, and definitions that
    /// share a name.
    pub fn parse(text: impl Into<Vec<u8>>, script_name: &str) -> Result<SourceUnit, UnitErrors> {
        SourceUnit::parse_in_windows(text.into(), script_name, STREAM_FROM, streamed::WINDOW).0
    }

    /// [`parse`](Self::parse), reading a text of `stream_from` bytes or more a `window` at a
    /// time when it can; also says whether it did (the tests compare the two readings).
    fn parse_in_windows(
        text: Vec<u8>,
        script_name: &str,
        stream_from: usize,
        window: usize,
    ) -> (Result<SourceUnit, UnitErrors>, bool) {
        if text.len() >= stream_from
            && let Some((name, definitions)) = streamed::read_module(&text, window)
        {
            let unit = SourceUnit {
                text,
                kind: UnitKind::Module,
                name,
                definitions,
            };
            return (Ok(unit), true);
        }
        (SourceUnit::parse_whole(text, script_name), false)
    }

    /// Parses the whole text at once and reads the unit from its tree.
    fn parse_whole(text: Vec<u8>, script_name: &str) -> Result<SourceUnit, UnitErrors> {
        let parsed = parse(text);
        if !parsed.errors.is_empty() {
            return Err(UnitErrors {
                errors: parsed.errors,
                text: parsed.tree.into_text(),
            });
        }
        // The module view reads the top of the file and the module's curly; `_meta` on demand.
        let ast = Ast::from_tree_shallow(&parsed.tree);
        let read = read_unit(&parsed.tree, &ast, script_name);
        // Names are checked once the tree and its view are gone: a module of millions of
        // definitions then never holds the map of their names beside them.
        drop(ast);
        let text = parsed.tree.into_text();
        match read {
            Ok(((kind, name, definitions), mut errors)) => {
                errors.extend(duplicates(&definitions, &text));
                if errors.is_empty() {
                    Ok(SourceUnit {
                        text,
                        kind,
                        name,
                        definitions,
                    })
                } else {
                    errors.sort_by_key(|e| e.span.start);
                    Err(UnitErrors { errors, text })
                }
            }
            Err(errors) => Err(UnitErrors { errors, text }),
        }
    }

    /// Module or script.
    pub fn kind(&self) -> UnitKind {
        self.kind
    }

    /// The module's name, or the script's path name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Gives up the unit and returns its text.
    pub fn into_text(self) -> Vec<u8> {
        self.text
    }

    /// The definitions in file order (none for a script).
    pub fn definitions(&self) -> &[Definition] {
        &self.definitions
    }

    /// The exact text of definition `i`.
    pub fn definition_text(&self, i: usize) -> &[u8] {
        self.definitions
            .get(i)
            .and_then(|d| self.text.get(d.span.clone()))
            .unwrap_or_default()
    }

    /// The text in file order, cut into the module's own text and definitions. Concatenated,
    /// the pieces are the file.
    pub fn pieces(&self) -> Vec<Piece<'_>> {
        // `parse` hands out only layouts that `check_layout` accepted, so no slice below can
        // be out of range; the fallbacks keep even a broken invariant from panicking.
        debug_assert!(check_layout(&self.definitions, self.text.len()).is_ok());
        let mut pieces = Vec::with_capacity(self.definitions.len() * 2 + 1);
        for (i, d) in self.definitions.iter().enumerate() {
            pieces.push(Piece::Gap(self.gap_before(i)));
            pieces.push(Piece::Definition(
                d,
                self.text.get(d.span.clone()).unwrap_or_default(),
            ));
        }
        pieces.push(Piece::Gap(self.gap_before(self.definitions.len())));
        pieces
    }

    /// The module's own text before definition `i` (after the one before it, or from the
    /// file's start); for `i` = the number of definitions, the text after the last. One gap
    /// of [`pieces`](Self::pieces), without cutting the whole file.
    pub fn gap_before(&self, i: usize) -> &[u8] {
        // Out of range only for a layout `check_layout` would refuse: then empty, no panic.
        let start = i
            .checked_sub(1)
            .and_then(|before| self.definitions.get(before))
            .map_or(0, |d| d.span.end);
        let end = self
            .definitions
            .get(i)
            .map_or(self.text.len(), |d| d.span.start);
        self.text.get(start..end).unwrap_or_default()
    }
}

/// Checks the module view's invariant: definitions in file order, disjoint, each name inside
/// its definition, all within the text (so gaps and definitions concatenate to the text).
/// Returns the first definition that breaks it.
fn check_layout(definitions: &[Definition], len: usize) -> Result<(), usize> {
    let mut at = 0;
    for (i, d) in definitions.iter().enumerate() {
        let fits = at <= d.span.start
            && d.span.start <= d.name_span.start
            && d.name_span.start <= d.name_span.end
            && d.name_span.end <= d.span.end
            && d.span.end <= len;
        if !fits {
            return Err(i);
        }
        at = d.span.end;
    }
    Ok(())
}

/// Reads a text that should hold exactly one definition, `name = expression` (comments above
/// allowed), as `put` receives it. Returns the defined name.
///
/// # Examples
/// ```
/// use spry_image::syntax::read_definition;
/// assert_eq!(read_definition(b"# Doubles.\nat:put: = method [:k :v]").unwrap(), "at:put:");
/// assert!(read_definition(b"x = 1 y = 2").is_err());
/// ```
///
/// # Errors
/// Syntax errors, or a text that is not one definition.
pub fn read_definition(text: &[u8]) -> Result<String, UnitErrors> {
    let parsed = parse(text);
    if !parsed.errors.is_empty() {
        return Err(UnitErrors {
            errors: parsed.errors,
            text: parsed.tree.into_text(),
        });
    }
    let ast = Ast::from_tree(&parsed.tree);
    let root = ast.root();
    let starts: Vec<usize> = (0..root.len())
        .filter(|&i| is_definition_at(&root, i))
        .collect();
    let fail = |span: Range<usize>, message: &str| UnitErrors {
        errors: vec![SyntaxError::new(
            SyntaxErrorKind::NotADefinition,
            span,
            message.to_string(),
        )],
        text: text.to_vec(),
    };
    match starts.as_slice() {
        [0] => Ok(root
            .get(0)
            .and_then(|n| n.as_word().map(|w| w.text().to_string()))
            .unwrap_or_default()),
        [] => Err(fail(
            root.get(0).map_or(0..0, |n| n.span()),
            "expected a definition, `name = expression`",
        )),
        [first, ..] if *first != 0 || starts.len() == 1 => Err(fail(
            root.get(0).map_or(0..0, |n| n.span()),
            "expected the definition's name first: `name = expression`",
        )),
        [_, second, ..] | [second] => Err(fail(
            root.get(*second).map_or(0..0, |n| n.span()),
            "expected one definition; a second one starts here",
        )),
    }
}

/// A definition's text as it goes into a module at indentation `indent`: comments above its
/// name are kept, one per line; the definition itself in the pretty form, its later lines
/// starting with `indent`. A definition with comments inside keeps its own layout (a pretty
/// form would lose them), only re-indented: `indent` is put after each line break outside
/// strings. So does one whose pretty form would spell a literal otherwise (`"\t"` is kept, not
/// turned into the equal `"\\t"`). A trailing comment on its last line stays. Line breaks are
/// CR LF with `crlf`. Text that does not parse is returned as it is.
///
/// # Examples
/// ```
/// use spry_image::syntax::format_new_definition;
/// let text = b"# Doubles.\nx = func [:n   n * 2]\n";
/// assert_eq!(
///     format_new_definition(text, "  ", false),
///     b"# Doubles.\n  x = func [:n n * 2]"
/// );
/// ```
pub fn format_new_definition(text: &[u8], indent: &str, crlf: bool) -> Vec<u8> {
    let parsed = parse(text);
    if !parsed.errors.is_empty() {
        return text.to_vec();
    }
    let tree = &parsed.tree;
    let tokens: Vec<_> = tree.tokens().collect();
    let Some(first) = tokens.iter().position(|t| !t.kind().is_trivia()) else {
        return text.to_vec();
    };
    let last = tokens
        .iter()
        .rposition(|t| !t.kind().is_trivia())
        .unwrap_or(first);
    let mut out = Vec::with_capacity(text.len() + 16);
    for token in &tokens[..first] {
        if token.kind() == SyntaxKind::Comment {
            out.extend_from_slice(trim_end(token.text()));
            out.push(b'\n');
            out.extend_from_slice(indent.as_bytes());
        }
    }
    let inner_comment = tokens[first..=last]
        .iter()
        .any(|t| t.kind() == SyntaxKind::Comment);
    let options = super::pretty::PrettyOptions {
        base: indent.to_string(),
        ..Default::default()
    };
    let pretty = (!inner_comment)
        .then(|| Ast::from_tree(tree).pretty_with(&options))
        .filter(|pretty| literals(tree) == literals(&parse(pretty.as_bytes()).tree));
    if let Some(pretty) = pretty {
        out.extend_from_slice(pretty.as_bytes());
    } else {
        for token in &tokens[first..=last] {
            if token.kind() == SyntaxKind::Whitespace {
                reindent(token.text(), indent, &mut out);
            } else {
                out.extend_from_slice(token.text());
            }
        }
    }
    // A comment on the definition's last line belongs to it.
    let tail = &tokens[last + 1..];
    if let Some(comment) = tail
        .iter()
        .take_while(|t| t.kind() != SyntaxKind::Whitespace || !t.text().contains(&b'\n'))
        .find(|t| t.kind() == SyntaxKind::Comment)
    {
        out.push(b' ');
        out.extend_from_slice(trim_end(comment.text()));
    }
    if crlf { with_crlf(&out) } else { out }
}

/// The spellings of a tree's literals, in order.
fn literals(tree: &SyntaxTree) -> Vec<&[u8]> {
    tree.tokens()
        .filter(|t| {
            matches!(
                t.kind(),
                SyntaxKind::String | SyntaxKind::Integer | SyntaxKind::Float
            )
        })
        .map(|t| t.text())
        .collect()
}

/// `text` with each line feed outside strings and comments preceded by a carriage return.
fn with_crlf(text: &[u8]) -> Vec<u8> {
    let parsed = parse(text);
    let mut out = Vec::with_capacity(text.len() + 16);
    for token in parsed.tree.tokens() {
        if token.kind() != SyntaxKind::Whitespace {
            out.extend_from_slice(token.text());
            continue;
        }
        let mut previous = 0u8;
        for &b in token.text() {
            if b == b'\n' && previous != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            previous = b;
        }
    }
    out
}

fn trim_end(text: &[u8]) -> &[u8] {
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |at| at + 1);
    &text[..end]
}

/// Whitespace with `indent` after its last line feed (blanks at the ends of lines dropped).
fn reindent(whitespace: &[u8], indent: &str, out: &mut Vec<u8>) {
    let Some(last) = whitespace.iter().rposition(|&b| b == b'\n') else {
        out.extend_from_slice(whitespace);
        return;
    };
    let breaks = whitespace.iter().filter(|&&b| b == b'\n').count();
    out.extend(std::iter::repeat_n(b'\n', breaks));
    out.extend_from_slice(indent.as_bytes());
    out.extend_from_slice(&whitespace[last + 1..]);
}

type UnitParts = (UnitKind, String, Vec<Definition>);

/// The unit's parts and the errors found so far (the caller adds those of names defined
/// twice); `Err` when no cut into definitions can be had.
fn read_unit(
    tree: &SyntaxTree,
    ast: &Ast,
    script_name: &str,
) -> Result<(UnitParts, Vec<SyntaxError>), Vec<SyntaxError>> {
    let root = ast.root();
    let Some(curly) = root.iter().find(|n| {
        n.composite_kind() == Some(super::ast::CompositeKind::Curly)
            && find_binding(n.children(), "_meta").is_some()
    }) else {
        return Ok((
            (UnitKind::Script, script_name.to_string(), Vec::new()),
            Vec::new(),
        ));
    };
    if root.len() != 1 {
        let stray = root.iter().find(|n| n.span() != curly.span());
        let span = stray.map_or(0..0, |n| n.span());
        return Err(vec![SyntaxError::new(
            SyntaxErrorKind::InvalidModuleMeta,
            span,
            "a module file holds one curly and nothing else: expected only comments outside the module's `{ }`",
        )
        .with_related(curly.span().start..curly.span().start + 1, "the module starts here")]);
    }
    let children = curly.children();
    let name = module_name(tree, &children)?;
    let text = tree.text();
    let (mut errors, absorbed) = run_ons(tree, &children);
    let bindings: Vec<usize> = (0..children.len())
        .filter(|&i| is_definition_at(&children, i) && !absorbed.get(i).is_some_and(|&a| a))
        .collect();
    let definitions = cut_definitions(tree, &children, &bindings);
    if let Err(i) = check_layout(&definitions, text.len()) {
        // Only a reading the run-on check missed could get here: refuse the file rather than
        // hand out a cut that does not give the file back.
        let span = definitions.get(i).map_or(0..0, |d| d.name_span.clone());
        errors.push(SyntaxError::new(
            SyntaxErrorKind::OverlappingDefinitions,
            span,
            "this definition overlaps the one before it: the module cannot be cut into definitions; parenthesise the expression above it",
        ));
        return Err(errors);
    }
    Ok(((UnitKind::Module, name, definitions), errors))
}

/// The definitions starting at `bindings` (indices of name nodes in `children`), each running
/// to its last node before the next one, with the comments above and on its last line.
fn cut_definitions(
    tree: &SyntaxTree,
    children: &AstList<'_>,
    bindings: &[usize],
) -> Vec<Definition> {
    let text = tree.text();
    let mut definitions: Vec<Definition> = Vec::with_capacity(bindings.len());
    for (j, &b) in bindings.iter().enumerate() {
        let next = bindings.get(j + 1).copied().unwrap_or(children.len());
        let Some(name_node) = children.get(b) else {
            continue;
        };
        let name_span = name_node.span();
        let end = (b..next)
            .filter_map(|i| children.get(i))
            .map(|n| n.span().end)
            .max()
            .unwrap_or(name_span.end);
        let start = comments_above(tree, name_span.start);
        let end = trailing_comment(tree, end);
        definitions.push(Definition {
            name: String::from_utf8_lossy(text.get(name_span.clone()).unwrap_or_default())
                .into_owned(),
            span: start..end,
            name_span,
        });
    }
    definitions
}

/// Two definitions with one name: an error at the second.
fn duplicates(definitions: &[Definition], text: &[u8]) -> Vec<SyntaxError> {
    let mut errors = Vec::new();
    // Sized once: grown by doubling, a map of millions of names held two copies at a time.
    let mut seen: std::collections::HashMap<&str, &Definition> =
        std::collections::HashMap::with_capacity(definitions.len());
    let mut line_index = None;
    for d in definitions {
        if let Some(first) = seen.get(d.name.as_str()) {
            let index = line_index.get_or_insert_with(|| LineIndex::new(text));
            let first_line = index.line_col(text, first.name_span.start).line;
            let line = index.line_col(text, d.name_span.start).line;
            errors.push(
                SyntaxError::new(
                    SyntaxErrorKind::DuplicateDefinition,
                    d.name_span.clone(),
                    format!(
                        "duplicate definition of `{}` on line {line}: it is already defined on line {first_line}",
                        d.name
                    ),
                )
                .with_related(first.name_span.clone(), "first defined here"),
            );
        } else {
            seen.insert(&d.name, d);
        }
    }
    errors
}

/// Keyword messages at the module's top level that run on into a keyword-named binding: a
/// key after the first whose argument is the word `=` (`acc = x ifFalse: y`, then on the next
/// line `do: = method [...]`, is the one message `ifFalse:do:` with the arguments `y` and
/// `=`, since line breaks do not end a keyword message). Returns an error for each, and the
/// nodes (by index: `true`) that merely look like a binding's name (`y`, followed by `=`).
fn run_ons(tree: &SyntaxTree, children: &AstList<'_>) -> (Vec<SyntaxError>, Vec<bool>) {
    let text = tree.text();
    let mut errors = Vec::new();
    // Lines are counted for an error's message only: a valid file of millions of lines
    // holds no index of them.
    let line_index = std::cell::OnceCell::new();
    let index = || line_index.get_or_init(|| LineIndex::new(text));
    // By node index: a file of many run-ons must not cost a search per node.
    let mut absorbed = vec![false; children.len()];
    let absorb = |absorbed: &mut Vec<bool>, i: usize| {
        if let Some(a) = absorbed.get_mut(i) {
            *a = true;
        }
    };
    let mut binding: Option<usize> = None;
    for w in 0..children.len() {
        if is_definition_at(children, w) && !absorbed.get(w).is_some_and(|&a| a) {
            binding = Some(w);
        }
        let Some(node) = children.get(w) else {
            continue;
        };
        let Some(word) = node.as_word() else {
            continue;
        };
        let span = node.span();
        if tree
            .token_at_offset(span.start)
            .is_none_or(|t| tree.kinds.get(t) != Some(&SyntaxKind::KeywordPart))
        {
            continue;
        }
        let keys = message_keys(tree, children, w, span.clone());
        let first_key = keys.first().cloned().unwrap_or(span.start..span.start);
        if let Some(second) = keys.get(1).filter(|_| takes_equals(children, w + 1)) {
            // `k: = at: 1`: the binding's own key takes `=`, and its expression's first key
            // extends it: Spry reads `k:at: = 1`, binding no `k:`.
            absorb(&mut absorbed, w);
            errors.push(leading_key_error(
                text,
                index(),
                first_key.clone(),
                second.clone(),
                word.text(),
            ));
        }
        for (k, key) in keys.iter().cloned().enumerate().skip(1) {
            if !takes_equals(children, w + 1 + k) {
                continue;
            }
            absorb(&mut absorbed, w + k);
            let binding = binding.filter(|&b| b + 2 <= w);
            // The expression of the binding above, up to the argument before `=`.
            let expression = binding
                .and_then(|b| children.get(b + 2))
                .zip(children.get(w + k))
                .map(|(first, last)| first.span().start..last.span().end);
            errors.push(run_on_error(
                text,
                index(),
                &RunOn {
                    binding: binding.and_then(|b| children.get(b)).map(|n| n.span()),
                    expression,
                    message: first_key.clone(),
                    key,
                    joined: word.text(),
                },
            ));
        }
        // `a = x at:` then `b = 2` on the next line: the last key takes the name `b` as its
        // argument, and `b` is never bound.
        let last = w + keys.len();
        if let Some(key) = keys.last().filter(|_| is_definition_at(children, last)) {
            absorb(&mut absorbed, last);
            let name = children.get(last).map_or(0..0, |n| n.span());
            let above = binding.and_then(|b| children.get(b)).map(|n| n.span());
            errors.push(name_taken_error(text, index(), above, key.clone(), name));
        }
    }
    (errors, absorbed)
}

/// A key whose argument is the name of the binding below: the binding is never made.
fn name_taken_error(
    text: &[u8],
    index: &LineIndex,
    above: Option<Range<usize>>,
    key: Range<usize>,
    name: Range<usize>,
) -> SyntaxError {
    let slice = |span: &Range<usize>| {
        String::from_utf8_lossy(text.get(span.clone()).unwrap_or_default()).into_owned()
    };
    let (name_text, key_text) = (slice(&name), slice(&key));
    let name_line = index.line_col(text, name.start).line;
    let key_line = index.line_col(text, key.start).line;
    let above_text = above.as_ref().map_or_else(
        || format!("the expression on line {key_line}"),
        |span| format!("the binding `{}` on line {key_line}", slice(span)),
    );
    SyntaxError::new(
        SyntaxErrorKind::KeywordRunsOn,
        name.clone(),
        format!(
            "{above_text} runs on into the binding `{name_text} =` on line {name_line}: \
             keyword messages run on across line breaks, so the key `{key_text}` takes \
             `{name_text}` as its argument, and `{name_text}` is never bound; give \
             `{key_text}` its argument"
        ),
    )
    .with_related(above.unwrap_or(key.clone()), "the binding that runs on")
    .with_related(
        key,
        format!("`{key_text}` takes `{name_text}` as its argument"),
    )
}

/// Whether `children[i]` is the word `=`.
fn takes_equals(children: &AstList<'_>, i: usize) -> bool {
    children
        .get(i)
        .and_then(|n| n.as_word())
        .is_some_and(|a| a.is_eval("="))
}

/// A keyword-named binding whose expression starts with a key: the two keys join.
fn leading_key_error(
    text: &[u8],
    index: &LineIndex,
    name: Range<usize>,
    key: Range<usize>,
    joined: &str,
) -> SyntaxError {
    let slice = |span: &Range<usize>| {
        String::from_utf8_lossy(text.get(span.clone()).unwrap_or_default()).into_owned()
    };
    let name_text = slice(&name);
    let key_text = slice(&key);
    let name_line = index.line_col(text, name.start).line;
    SyntaxError::new(
        SyntaxErrorKind::KeywordRunsOn,
        key.clone(),
        format!(
            "the keyword-named binding `{name_text}` on line {name_line} runs on into the key \
             `{key_text}` that starts its expression: Spry reads the two as the one message \
             `{joined}`, and `{name_text}` is never bound; parenthesise the expression \
             (`{name_text} = ({key_text} ...)`)"
        ),
    )
    .with_related(name.clone(), "the binding that runs on")
    .with_related(name, format!("the message `{joined}` starts here"))
}

/// The byte ranges of the keys of the keyword message whose joined word is `children[w]`
/// (spanning `span`, from its first key to its last): the first key starts the word, each
/// later one is the first token after the argument of the key before it.
fn message_keys(
    tree: &SyntaxTree,
    children: &AstList<'_>,
    w: usize,
    span: Range<usize>,
) -> Vec<Range<usize>> {
    let mut keys = Vec::new();
    let Some(first) = tree.token_at_offset(span.start).and_then(|t| tree.token(t)) else {
        return keys;
    };
    keys.push(first.range());
    let mut k = 0;
    // The arguments of every key but the last lie inside the joined word's span.
    while let Some(argument) = children
        .get(w + 1 + k)
        .filter(|a| a.span().start < span.end)
    {
        let Some(key) = next_token(tree, argument.span().end) else {
            break;
        };
        if key.start >= span.end {
            break;
        }
        keys.push(key);
        k += 1;
    }
    keys
}

/// The first token at or after `offset` that is not trivia.
fn next_token(tree: &SyntaxTree, offset: usize) -> Option<Range<usize>> {
    let mut t = tree.token_at_offset(offset)?;
    while let Some(token) = tree.token(t) {
        if !token.kind().is_trivia() {
            return Some(token.range());
        }
        t += 1;
    }
    None
}

/// One keyword message running on into a keyword-named binding.
struct RunOn<'a> {
    /// The name of the binding whose expression holds the message.
    binding: Option<Range<usize>>,
    /// That binding's expression, up to the argument before `=`.
    expression: Option<Range<usize>>,
    /// The message's first key.
    message: Range<usize>,
    /// The key that takes `=`: the keyword-named binding's name.
    key: Range<usize>,
    /// The message as Spry reads it (`ifFalse:do:`).
    joined: &'a str,
}

fn run_on_error(text: &[u8], index: &LineIndex, run_on: &RunOn<'_>) -> SyntaxError {
    let slice =
        |span: &Range<usize>| String::from_utf8_lossy(text.get(span.clone()).unwrap_or_default());
    let key_text = slice(&run_on.key);
    let key_line = index.line_col(text, run_on.key.start).line;
    let joined = run_on.joined;
    let (above, binding_span) = match &run_on.binding {
        Some(span) => {
            let line = index.line_col(text, span.start).line;
            (
                format!("the binding `{}` on line {line}", slice(span)),
                span.clone(),
            )
        }
        None => {
            let line = index.line_col(text, run_on.message.start).line;
            (
                format!("the expression on line {line}"),
                run_on.message.clone(),
            )
        }
    };
    // Show the parenthesised binding when it is short enough to read in a message.
    let example = run_on
        .binding
        .as_ref()
        .zip(run_on.expression.as_ref())
        .map(|(name, expression)| (slice(name), slice(expression)))
        .filter(|(_, e)| e.len() <= 60 && !e.contains(['\n', '\r', '#']))
        .map_or(String::new(), |(name, e)| format!(" (`{name} = ({e})`)"));
    SyntaxError::new(
        SyntaxErrorKind::KeywordRunsOn,
        run_on.key.clone(),
        format!(
            "{above} runs on into the keyword-named binding `{key_text} =` on line {key_line}: \
             keyword messages run on across line breaks, so Spry reads the two as the one \
             message `{joined}` and `{key_text}` is never bound; parenthesise the expression \
             above{example}, or move `{key_text}` after a binding that does not end in a \
             keyword message (one that ends with a closing bracket of its own)"
        ),
    )
    .with_related(binding_span, "the binding that runs on")
    .with_related(
        run_on.message.clone(),
        format!("the message `{joined}` starts here"),
    )
}

/// A definition starts where an eval word is followed by the word `=` (`:=` re-assigns and
/// defines nothing).
fn is_definition_at(list: &AstList<'_>, i: usize) -> bool {
    let is_name = list
        .get(i)
        .and_then(|n| n.as_word())
        .is_some_and(|w| w.kind() == WordKind::Eval && !w.is_eval("=") && !w.is_eval(":="));
    is_name
        && list
            .get(i + 1)
            .and_then(|n| n.as_word())
            .is_some_and(|w| w.is_eval("="))
}

fn find_binding(list: AstList<'_>, name: &str) -> Option<usize> {
    (0..list.len()).find(|&i| {
        is_definition_at(&list, i)
            && list
                .get(i)
                .and_then(|n| n.as_word())
                .is_some_and(|w| w.as_bytes() == name.as_bytes())
    })
}

fn module_name(tree: &SyntaxTree, children: &AstList<'_>) -> Result<String, Vec<SyntaxError>> {
    let at = find_binding(*children, "_meta").unwrap_or(0);
    let meta_span = children.get(at).map_or(0..0, |n| n.span());
    let invalid = |message: &str| {
        vec![SyntaxError::new(
            SyntaxErrorKind::InvalidModuleMeta,
            meta_span.clone(),
            message.to_string(),
        )]
    };
    let Some(meta) = children
        .get(at + 2)
        .filter(|n| n.composite_kind() == Some(super::ast::CompositeKind::Curly))
    else {
        return Err(invalid("`_meta` must be a curly such as `{name = 'Name}`"));
    };
    // The shallow view stops at the module's curly: read `_meta`'s own curly now.
    let Some(node) = tree
        .token_at_offset(meta.span().start)
        .and_then(|t| super::tree::SyntaxNode::at_token(tree, t))
    else {
        return Err(invalid("`_meta` must be a curly such as `{name = 'Name}`"));
    };
    let meta_ast = Ast::from_node(tree, &node, 1);
    let fields = meta_ast.root();
    let Some(name_at) = find_binding(fields, "name") else {
        return Err(invalid(
            "`_meta` must hold `name = 'Name` (the module's name as a literal word)",
        ));
    };
    match fields.get(name_at + 2).map(|n| n.node()) {
        Some(AstNode::Word(w)) if w.kind() == WordKind::Literal && !w.name().is_empty() => {
            Ok(w.name().to_string())
        }
        _ => Err(invalid(
            "`_meta`'s `name` must be a literal word such as `'Name`",
        )),
    }
}

/// Moves `start` up over comment lines directly above it (each starting its own line, no blank
/// line between).
fn comments_above(tree: &SyntaxTree, start: usize) -> usize {
    let Some(mut t) = tree.token_at_offset(start) else {
        return start;
    };
    let kinds = &tree.kinds;
    loop {
        if t < 2 {
            break;
        }
        let ws = t - 1;
        let comment = t - 2;
        let gap = tree.token(ws).map_or(&[][..], |tok| tok.text());
        if kinds.get(ws) != Some(&SyntaxKind::Whitespace)
            || memchr::memchr_iter(b'\n', gap).count() != 1
            || kinds.get(comment) != Some(&SyntaxKind::Comment)
        {
            break;
        }
        let starts_line = comment == 0
            || (kinds.get(comment - 1) == Some(&SyntaxKind::Whitespace)
                && tree
                    .token(comment - 1)
                    .is_some_and(|tok| tok.text().contains(&b'\n')))
            || kinds.get(comment - 1) == Some(&SyntaxKind::ByteOrderMark);
        if !starts_line {
            break;
        }
        t = comment;
    }
    tree.starts.get(t).map_or(start, |&s| s as usize)
}

/// Moves `end` over a comment on the same line.
fn trailing_comment(tree: &SyntaxTree, end: usize) -> usize {
    let Some(t) = tree.token_at_offset(end) else {
        return end;
    };
    let kinds = &tree.kinds;
    let comment = match kinds.get(t).copied().unwrap_or(SyntaxKind::Whitespace) {
        SyntaxKind::Comment => t,
        SyntaxKind::Whitespace
            if !tree.token(t).is_some_and(|tok| tok.text().contains(&b'\n'))
                && kinds.get(t + 1) == Some(&SyntaxKind::Comment) =>
        {
            t + 1
        }
        _ => return end,
    };
    tree.starts.get(comment + 1).map_or(end, |&s| s as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(span: Range<usize>, name_span: Range<usize>) -> Definition {
        Definition {
            name: "x".to_string(),
            span,
            name_span,
        }
    }

    #[test]
    fn the_layout_check_refuses_every_cut_that_would_not_give_the_file_back() {
        assert_eq!(check_layout(&[], 0), Ok(()));
        assert_eq!(check_layout(&[def(0..5, 0..1), def(5..9, 6..7)], 9), Ok(()));
        // Overlapping, out of order, a name outside its definition, past the end.
        assert_eq!(check_layout(&[def(0..6, 0..1), def(5..9, 6..7)], 9), Err(1));
        assert_eq!(check_layout(&[def(5..9, 6..7), def(0..5, 0..1)], 9), Err(1));
        assert_eq!(check_layout(&[def(2..5, 0..1)], 9), Err(0));
        assert_eq!(check_layout(&[def(0..10, 0..1)], 9), Err(0));
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = def(4..3, 4..3);
        assert_eq!(check_layout(&[backwards], 9), Err(0));
    }

    #[test]
    fn every_run_on_of_a_large_module_is_reported() {
        let mut text = String::from("{\n  _meta = {name = 'Big}\n");
        for i in 0..20_000 {
            text.push_str(&format!("  a{i} = x at: y\n  k{i}: = 1\n"));
        }
        text.push('}');
        let errors = SourceUnit::parse(text, "big").err().map(|e| e.errors);
        let errors = errors.unwrap_or_default();
        assert_eq!(errors.len(), 20_000);
        assert!(
            errors
                .iter()
                .all(|e| e.kind == SyntaxErrorKind::KeywordRunsOn)
        );
    }

    #[test]
    fn the_issue_12_file_is_keyword_runs_on_and_never_a_cut() {
        let text = "{\n  _meta = {\n    name = 'A\n  }\n  acc = x ifFalse: y\n  do: = method [:n n]\n  z = 1\n}\n";
        let errors = SourceUnit::parse(text, "a").err().map(|e| e.errors);
        let errors = errors.unwrap_or_default();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].kind, SyntaxErrorKind::KeywordRunsOn);
        assert!(errors[0].message.contains("`ifFalse:do:`"));
        assert_eq!(&text[errors[0].span.clone()], "do:");
    }
}
