//! The pretty form, for trees that have no source text yet (definitions made in the image).
//!
//! Rules (documented in ARCHITECTURE.md): two-space indentation; a composite stays on one line
//! when it fits in the width and is not a curly of two or more bindings; otherwise its body goes
//! on indented lines, a new line before each binding (`name =`, `name :=`), a block's argument
//! words (`[:a :b`) staying on the opening line; keyword messages are re-sugared
//! (`at: 1 put: 2`) wherever the sugared form reads back to the same tree. Printing is a
//! function of the tree alone, so print → parse → print changes nothing.

use super::ast::{Ast, ChildRange, CompositeKind, Leaf, Node, WordKind};
use super::canonical::write_leaf;
use super::kind::SyntaxKind;
use super::literal::classify_word;

/// Options of the pretty printer.
#[derive(Clone, Debug)]
pub struct PrettyOptions {
    /// One level of indentation.
    pub indent: String,
    /// Text put at the start of every line after the first (the indentation of the place the
    /// text goes to).
    pub base: String,
    /// Preferred maximum line width.
    pub width: usize,
}

impl Default for PrettyOptions {
    fn default() -> Self {
        PrettyOptions {
            indent: DEFAULT_INDENT.to_string(),
            base: String::new(),
            width: DEFAULT_WIDTH,
        }
    }
}

/// The indentation unit of the pretty form.
pub const DEFAULT_INDENT: &str = "  ";
/// The preferred line width of the pretty form.
pub const DEFAULT_WIDTH: usize = 80;
/// Deeper composites print in canonical form on one line (still reads back the same), so that
/// the printer's recursion is bounded whatever the input.
const MAX_PRETTY_DEPTH: usize = 128;

impl Ast {
    /// The pretty form of the top-level nodes with default options.
    ///
    /// # Examples
    /// ```
    /// use spry_image::syntax::{parse, Ast};
    /// let ast = Ast::from_tree(&parse("m = {_meta = {name = 'M} x = [a at:put: 1 2]}").tree);
    /// assert_eq!(
    ///     ast.pretty(),
    ///     "m = {\n  _meta = {name = 'M}\n  x = [a at: 1 put: 2]\n}"
    /// );
    /// ```
    pub fn pretty(&self) -> String {
        self.pretty_with(&PrettyOptions::default())
    }

    /// The pretty form of the top-level nodes.
    pub fn pretty_with(&self, options: &PrettyOptions) -> String {
        // Words hold UTF-8 and strings are escaped to it: the check never fails.
        match String::from_utf8(self.pretty_bytes(options)) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// The pretty form as bytes (valid UTF-8; what `parse --pretty` writes).
    pub fn pretty_bytes(&self, options: &PrettyOptions) -> Vec<u8> {
        let widths = self.flat_widths();
        let mut printer = Printer {
            ast: self,
            all: self.nodes_in(ChildRange::all(self.node_count())),
            widths: &widths,
            options,
            base_columns: char_count(options.base.as_bytes()),
            indent_columns: char_count(options.indent.as_bytes()),
            out: Vec::with_capacity(self.source_len_estimate()),
            line_starts: [b"\n", options.base.as_bytes()]
                .into_iter()
                .chain(std::iter::repeat_n(
                    options.indent.as_bytes(),
                    CACHED_LEVELS,
                ))
                .flatten()
                .copied()
                .collect(),
            column: 0,
            counted: 0,
        };
        printer.body(self.root_range(), 0, 0);
        printer.out
    }

    /// Flat (canonical) width in characters of every arena node, and whether it must break (a
    /// curly of two or more bindings, or holding one): one `u32` per node, the flags in the top
    /// bits (with what the printer asks of every word: may it be a keyword message, is it a
    /// binding's name or its `=`). Filled from the arena's end, so that a composite's children
    /// (which lie after it) are done before it.
    fn flat_widths(&self) -> Vec<u32> {
        let all = self.nodes_in(ChildRange::all(self.node_count()));
        let mut widths: Vec<u32> = vec![0; all.len()];
        for (at, node) in all.iter().enumerate().rev() {
            let entry = match self.leaf(node) {
                Leaf::Composite(kind, children) => {
                    let nodes = self.nodes_in(children);
                    let mut width = 2 + nodes.len().saturating_sub(1);
                    let mut must_break = false;
                    for &w in widths.get(children.range()).unwrap_or_default() {
                        width += (w & WIDTH) as usize;
                        must_break |= w & BREAK != 0;
                    }
                    // Only asked when no child already breaks it.
                    must_break = must_break
                        || (kind == CompositeKind::Curly
                            && has_two_bindings(widths.get(children.range()).unwrap_or_default()));
                    width.min(WIDTH as usize) as u32 | if must_break { BREAK } else { 0 }
                }
                leaf => leaf_width(leaf).min(WIDTH as usize) as u32 | word_flags(leaf),
            };
            widths[at] = entry;
        }
        widths
    }
}

/// How many levels of indentation a new line's start is copied for in one piece.
const CACHED_LEVELS: usize = 32;

/// The flags of [`Ast::flat_widths`]: the composite must break; the word is shaped like a
/// keyword message (an eval or module word ending in `:`); it is an eval word other than `=`
/// and `:=` (a binding's name if one follows); it is `=` or `:=`.
const BREAK: u32 = 1 << 31;
const KEYWORD: u32 = 1 << 30;
const NAME: u32 = 1 << 29;
const ASSIGN: u32 = 1 << 28;
/// The width bits of [`Ast::flat_widths`] (a width saturates there: far wider than any line).
const WIDTH: u32 = ASSIGN - 1;

/// The word flags of [`Ast::flat_widths`] for a leaf.
fn word_flags(leaf: Leaf<'_>) -> u32 {
    let Leaf::Word(kind, word) = leaf else {
        return 0;
    };
    let keyword = matches!(kind, WordKind::Eval | WordKind::Module) && word.ends_with(b":");
    let role = if is_assign(kind, word) {
        ASSIGN
    } else if kind == WordKind::Eval {
        NAME
    } else {
        0
    };
    role | if keyword { KEYWORD } else { 0 }
}

/// The number of characters in UTF-8 `bytes` (bytes that do not continue a character).
#[inline]
fn char_count(bytes: &[u8]) -> usize {
    if bytes.is_ascii() {
        return bytes.len();
    }
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

/// The canonical width in characters of a node that is not a composite, without printing it
/// (but for the rare string that needs escapes).
fn leaf_width(node: Leaf<'_>) -> usize {
    match node {
        Leaf::Integer(v) => {
            v.unsigned_abs()
                .checked_ilog10()
                .map_or(1, |d| d as usize + 1)
                + usize::from(v < 0)
        }
        Leaf::Word(_, bytes) => char_count(bytes),
        Leaf::String(bytes)
            if bytes.is_ascii() && memchr::memchr3(b'\\', b'"', 0, bytes).is_none() =>
        {
            bytes.len() + 2
        }
        leaf => {
            let mut out = Vec::new();
            write_leaf(leaf, &mut out);
            char_count(&out)
        }
    }
}

/// The word at `nodes[i]`, if it is one.
#[inline]
fn word_at<'a>(ast: &'a Ast, nodes: &'a [Node], i: usize) -> Option<(WordKind, &'a [u8])> {
    ast.leaf(nodes.get(i)?).word()
}

/// Whether a binding (`name =`, `name :=`) starts at `i` of a list whose flat widths are
/// `widths`.
fn is_binding_at(widths: &[u32], i: usize) -> bool {
    widths.get(i).is_some_and(|w| w & NAME != 0)
        && widths.get(i + 1).is_some_and(|w| w & ASSIGN != 0)
}

fn is_assign(kind: WordKind, word: &[u8]) -> bool {
    kind == WordKind::Eval && (word == b"=" || word == b":=")
}

/// Whether `nodes` hold two bindings or more: stops at the second, so that a module's curly
/// of thousands of definitions is not scanned whole for every width.
fn has_two_bindings(widths: &[u32]) -> bool {
    (0..widths.len())
        .filter(|&i| is_binding_at(widths, i))
        .nth(1)
        .is_some()
}

/// The number of keys of a joined keyword word (`Foo::at:put:` has `Foo::at:` and `put:`), or
/// `None` when it is not made of keys that each read back as a keyword part.
fn keyword_keys(kind: WordKind, bytes: &[u8]) -> Option<usize> {
    if !matches!(kind, WordKind::Eval | WordKind::Module) || !bytes.ends_with(b":") {
        return None;
    }
    let mut count = 0;
    let mut start = 0;
    for end in key_ends(bytes) {
        let key = &bytes[start..end];
        // A key is printed as a token of its own: one starting with `"` would open a string
        // (`t:"hen:` is one key; `t: 1 "hen: 2` is not what it reads back as).
        if key.starts_with(b"\"") || classify_word(key) != SyntaxKind::KeywordPart {
            return None;
        }
        count += 1;
        start = end;
    }
    (start == bytes.len() && count > 0).then_some(count)
}

/// Where each key of a joined keyword word ends: after each colon that is not half of `::`.
fn key_ends(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() {
            let i = at;
            at += 1;
            if bytes[i] == b':'
                && bytes.get(i + 1) != Some(&b':')
                && (i == 0 || bytes[i - 1] != b':')
            {
                return Some(at);
            }
        }
        None
    })
}

fn reads_as_key(ast: &Ast, node: &Node) -> bool {
    matches!(ast.leaf(node), Leaf::Word(_, w) if classify_word(w) == SyntaxKind::KeywordPart)
}

/// Writes into one byte buffer and counts the column in characters when it is asked for (a
/// leaf inside a line is written without counting: only the width checks read the column).
struct Printer<'a> {
    ast: &'a Ast,
    /// The whole arena (a node's index is its place here).
    all: &'a [Node],
    widths: &'a [u32],
    options: &'a PrettyOptions,
    base_columns: usize,
    indent_columns: usize,
    out: Vec<u8>,
    /// A line break, the base and [`CACHED_LEVELS`] indentations: a new line's start is a
    /// prefix of it.
    line_starts: Vec<u8>,
    /// The column at `counted`: the bytes after it are not counted yet.
    column: usize,
    counted: usize,
}

/// One unit of a line: a node, or a keyword message printed with its keys between arguments
/// (the word at this index, then as many arguments as keys).
#[derive(Clone, Copy)]
enum Item {
    Node(usize),
    Message(usize, usize),
}

impl Item {
    fn first(self) -> usize {
        match self {
            Item::Node(i) | Item::Message(i, _) => i,
        }
    }

    /// The index of the item after this one.
    fn next(self) -> usize {
        match self {
            Item::Node(i) => i + 1,
            Item::Message(i, keys) => i + keys + 1,
        }
    }
}

impl<'a> Printer<'a> {
    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    fn push_byte(&mut self, byte: u8) {
        self.out.push(byte);
    }

    /// The column the next byte goes to, in characters.
    #[inline]
    fn column(&mut self) -> usize {
        self.column += char_count(self.out.get(self.counted..).unwrap_or_default());
        self.counted = self.out.len();
        self.column
    }

    fn newline(&mut self, level: usize) {
        let cached = 1 + self.options.base.len() + level * self.options.indent.len();
        match self.line_starts.get(..cached) {
            Some(start) => self.out.extend_from_slice(start),
            None => {
                self.out.push(b'\n');
                self.out.extend_from_slice(self.options.base.as_bytes());
                for _ in 0..level {
                    self.out.extend_from_slice(self.options.indent.as_bytes());
                }
            }
        }
        self.column = self.base_columns + level * self.indent_columns;
        self.counted = self.out.len();
    }

    /// The item starting at `nodes[i]`: a keyword message re-sugared where it reads back the
    /// same, else the node alone.
    fn item(&self, base: usize, nodes: &[Node], i: usize) -> Item {
        let ast = self.ast;
        if self.widths.get(base + i).is_some_and(|w| w & KEYWORD != 0)
            && let Some((kind, word)) = word_at(ast, nodes, i)
            && let Some(n) = keyword_keys(kind, word)
        {
            let args_ok =
                i + n < nodes.len() && nodes[i + 1..=i + n].iter().all(|a| !reads_as_key(ast, a));
            let next_ok = nodes
                .get(i + n + 1)
                .is_none_or(|next| !reads_as_key(ast, next));
            // `at:put: = method [...]` binds a name: `at: = put: method [...]` would read
            // back the same but no longer look like a definition.
            let binds = word_at(ast, nodes, i + 1).is_some_and(|(k, w)| is_assign(k, w));
            if args_ok && next_ok && !binds {
                return Item::Message(i, n);
            }
        }
        Item::Node(i)
    }

    fn item_width(&self, base: usize, item: Item) -> usize {
        let width = |i: usize| (self.widths[base + i] & WIDTH) as usize;
        match item {
            Item::Node(i) => width(i),
            // The keys' characters are the word's, each key followed by a space, and a space
            // between one argument and the next key.
            Item::Message(i, keys) => {
                width(i) + keys + (1..=keys).map(|j| width(i + j)).sum::<usize>() + keys - 1
            }
        }
    }

    /// Prints an item: a node, or a message's keys each before its argument.
    fn print_item(&mut self, base: usize, item: Item, level: usize, depth: usize) {
        match item {
            Item::Node(i) => match self.ast.leaf(&self.all[base + i]) {
                Leaf::Composite(..) => self.node(base + i, level, depth),
                _ => self.ast.write_leaf(&self.all[base + i], &mut self.out),
            },
            Item::Message(i, _) => {
                let (ast, all) = (self.ast, self.all);
                let Some((_, bytes)) = word_at(ast, all, base + i) else {
                    return;
                };
                let mut start = 0;
                for (j, end) in key_ends(bytes).enumerate() {
                    if j > 0 {
                        self.push_byte(b' ');
                    }
                    self.push(&bytes[start..end]);
                    self.push_byte(b' ');
                    self.node(base + i + 1 + j, level, depth);
                    start = end;
                }
            }
        }
    }

    /// Prints a sequence of siblings as lines at `level`, a new line before each binding.
    fn body(&mut self, range: ChildRange, level: usize, depth: usize) {
        let nodes = self.ast.nodes_in(range);
        let base = range.start_index();
        let mut line_empty = true;
        let mut i = 0;
        while i < nodes.len() {
            let item = self.item(base, nodes, i);
            i = item.next();
            let width = self.item_width(base, item);
            if !line_empty
                && (is_binding_at(&self.widths[range.range()], item.first())
                    || self.column() + 1 + width > self.options.width)
            {
                self.newline(level);
                line_empty = true;
            }
            if !line_empty {
                self.push_byte(b' ');
            }
            self.print_item(base, item, level, depth);
            line_empty = false;
        }
    }

    fn node(&mut self, index: usize, level: usize, depth: usize) {
        let (ast, all) = (self.ast, self.all);
        let Leaf::Composite(kind, children) = ast.leaf(&all[index]) else {
            ast.write_leaf(&all[index], &mut self.out);
            return;
        };
        let width = (self.widths[index] & WIDTH) as usize;
        let must_break = self.widths[index] & BREAK != 0;
        let (open, close) = kind.brackets();
        let (open, close) = (open as u8, close as u8);
        if depth >= MAX_PRETTY_DEPTH {
            self.out.push(open);
            self.ast.write_canonical(children, &mut self.out);
            self.out.push(close);
            return;
        }
        let fits = self.column() + width <= self.options.width;
        if children.is_empty() || (fits && !must_break) {
            self.push_byte(open);
            self.inline(children, level, depth + 1);
            self.push_byte(close);
            return;
        }
        self.push_byte(open);
        let nodes = ast.nodes_in(children);
        // A block's argument words stay on the opening line: `[:a :b`.
        let mut skip = 0;
        if kind == CompositeKind::Block {
            while let Some((kind, w)) = word_at(ast, nodes, skip) {
                if !matches!(kind, WordKind::Arg | WordKind::GetArg) {
                    break;
                }
                self.push(w);
                if skip + 1 < nodes.len() {
                    self.push_byte(b' ');
                }
                skip += 1;
            }
            if skip > 0 && self.out.ends_with(b" ") {
                self.out.pop();
                if self.counted > self.out.len() {
                    self.counted = self.out.len();
                    self.column -= 1;
                }
            }
        }
        let rest = children.skip(skip);
        if !rest.is_empty() {
            self.newline(level + 1);
            self.body(rest, level + 1, depth + 1);
        }
        self.newline(level);
        self.push_byte(close);
    }

    /// The children of a composite that fits on the line, keyword messages re-sugared.
    fn inline(&mut self, range: ChildRange, level: usize, depth: usize) {
        let nodes = self.ast.nodes_in(range);
        let base = range.start_index();
        let mut i = 0;
        while i < nodes.len() {
            if i > 0 {
                self.push_byte(b' ');
            }
            let item = self.item(base, nodes, i);
            i = item.next();
            self.print_item(base, item, level, depth);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Ast, parse};

    #[test]
    fn a_key_that_would_open_a_string_is_not_re_sugared() {
        // Found by `PROPTEST_CASES=100000 ... syntax_props`: `t:"hen:` is one keyword part.
        let text = "x t:\"hen: [1] y";
        let ast = Ast::from_tree(&parse(text).tree);
        let pretty = ast.pretty();
        let reread = parse(pretty.as_bytes());
        assert!(reread.errors.is_empty(), "{pretty}: {:?}", reread.errors);
        assert_eq!(Ast::from_tree(&reread.tree), ast, "{pretty}");
    }
}
