//! The pretty form, for trees that have no source text yet (definitions made in the image).
//!
//! Rules (documented in ARCHITECTURE.md): two-space indentation; a composite stays on one line
//! when it fits in the width and is not a curly of two or more bindings; otherwise its body goes
//! on indented lines, a new line before each binding (`name =`, `name :=`), a block's argument
//! words (`[:a :b`) staying on the opening line; keyword messages are re-sugared
//! (`at: 1 put: 2`) wherever the sugared form reads back to the same tree. Printing is a
//! function of the tree alone, so print → parse → print changes nothing.

use super::ast::{Ast, AstNode, ChildRange, CompositeKind, Word, WordKind};
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
        let widths = self.flat_widths();
        let mut printer = Printer {
            ast: self,
            widths: &widths,
            options,
            out: String::new(),
            column: 0,
        };
        printer.body(self.root_range(), 0, 0);
        printer.out
    }

    /// Flat (canonical) width of every arena node, children before parents.
    fn flat_widths(&self) -> Vec<(usize, bool)> {
        let mut widths: Vec<(usize, bool)> = Vec::with_capacity(self.node_count());
        for node in self.nodes_in(ChildRange::all(self.node_count())) {
            let entry = match node {
                AstNode::Composite(kind, children) => {
                    let nodes = self.nodes_in(*children);
                    let base = children.start_index();
                    let mut width = 2 + nodes.len().saturating_sub(1);
                    let mut must_break = *kind == CompositeKind::Curly && binding_count(nodes) >= 2;
                    for i in 0..nodes.len() {
                        let (w, b) = widths[base + i];
                        width += w;
                        must_break |= b;
                    }
                    (width, must_break)
                }
                leaf => {
                    let mut s = String::new();
                    write_leaf(leaf, &mut s);
                    (s.chars().count(), false)
                }
            };
            widths.push(entry);
        }
        widths
    }
}

fn is_binding_at(nodes: &[AstNode], i: usize) -> bool {
    matches!(&nodes[i], AstNode::Word(w) if w.kind == WordKind::Eval && !is_assign(w))
        && matches!(nodes.get(i + 1), Some(AstNode::Word(w)) if is_assign(w))
}

fn is_assign(word: &Word) -> bool {
    word.kind == WordKind::Eval && (&*word.text == "=" || &*word.text == ":=")
}

fn binding_count(nodes: &[AstNode]) -> usize {
    (0..nodes.len())
        .filter(|&i| is_binding_at(nodes, i))
        .count()
}

/// Splits a joined keyword word into its keys (`Foo::at:put:` → `Foo::at:`, `put:`), or `None`
/// when it is not made of keys that each read back as a keyword part.
fn keyword_keys(word: &Word) -> Option<Vec<&str>> {
    if !matches!(word.kind, WordKind::Eval | WordKind::Module) || !word.text.ends_with(':') {
        return None;
    }
    let text = &*word.text;
    let bytes = text.as_bytes();
    let mut keys = Vec::new();
    let mut start = 0;
    for i in 0..bytes.len() {
        let colon = bytes[i] == b':';
        let in_separator =
            (i + 1 < bytes.len() && bytes[i + 1] == b':') || (i > 0 && bytes[i - 1] == b':');
        if colon && !in_separator {
            keys.push(&text[start..=i]);
            start = i + 1;
        }
    }
    if start != bytes.len() || keys.is_empty() {
        return None;
    }
    // A key is printed as a token of its own: one starting with `"` would open a string
    // (`t:"hen:` is one key; `t: 1 "hen: 2` is not what it reads back as).
    keys.iter()
        .all(|k| !k.starts_with('"') && classify_word(k.as_bytes()) == SyntaxKind::KeywordPart)
        .then_some(keys)
}

fn reads_as_key(node: &AstNode) -> bool {
    matches!(node, AstNode::Word(w) if classify_word(w.text.as_bytes()) == SyntaxKind::KeywordPart)
}

struct Printer<'a> {
    ast: &'a Ast,
    widths: &'a [(usize, bool)],
    options: &'a PrettyOptions,
    out: String,
    column: usize,
}

/// One unit of a line: a node, or a keyword message printed with its keys between arguments.
enum Item<'k> {
    Node(usize),
    Message(Vec<&'k str>, usize),
}

impl<'a> Printer<'a> {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn newline(&mut self, level: usize) {
        self.out.push('\n');
        self.out.push_str(&self.options.base);
        for _ in 0..level {
            self.out.push_str(&self.options.indent);
        }
        self.column =
            self.options.base.chars().count() + level * self.options.indent.chars().count();
    }

    fn items(&self, range: ChildRange) -> Vec<Item<'a>> {
        let nodes = self.ast.nodes_in(range);
        let mut items = Vec::new();
        let mut i = 0;
        while i < nodes.len() {
            if let AstNode::Word(word) = &nodes[i]
                && let Some(keys) = keyword_keys(word)
            {
                let n = keys.len();
                let args_ok =
                    i + n < nodes.len() && nodes[i + 1..=i + n].iter().all(|a| !reads_as_key(a));
                let next_ok = nodes.get(i + n + 1).is_none_or(|next| !reads_as_key(next));
                // `at:put: = method [...]` binds a name: `at: = put: method [...]` would read
                // back the same but no longer look like a definition.
                let binds = matches!(nodes.get(i + 1), Some(AstNode::Word(w)) if is_assign(w));
                if args_ok && next_ok && !binds {
                    items.push(Item::Message(keys, i));
                    i += n + 1;
                    continue;
                }
            }
            items.push(Item::Node(i));
            i += 1;
        }
        items
    }

    fn item_width(&self, base: usize, item: &Item<'_>) -> usize {
        match item {
            Item::Node(i) => self.widths[base + i].0,
            Item::Message(keys, i) => {
                keys.iter().map(|k| k.chars().count() + 1).sum::<usize>()
                    + (1..=keys.len())
                        .map(|j| self.widths[base + i + j].0)
                        .sum::<usize>()
                    + keys.len()
                    - 1
            }
        }
    }

    /// Prints a sequence of siblings as lines at `level`, a new line before each binding.
    fn body(&mut self, range: ChildRange, level: usize, depth: usize) {
        let nodes = self.ast.nodes_in(range);
        let base = range.start_index();
        let items = self.items(range);
        let mut line_empty = true;
        for item in &items {
            let first = match item {
                Item::Node(i) | Item::Message(_, i) => *i,
            };
            let width = self.item_width(base, item);
            if !line_empty
                && (is_binding_at(nodes, first) || self.column + 1 + width > self.options.width)
            {
                self.newline(level);
                line_empty = true;
            }
            if !line_empty {
                self.push(" ");
            }
            match item {
                Item::Node(i) => self.node(base + i, level, depth),
                Item::Message(keys, i) => {
                    for (j, key) in keys.iter().enumerate() {
                        if j > 0 {
                            self.push(" ");
                        }
                        self.push(key);
                        self.push(" ");
                        self.node(base + i + 1 + j, level, depth);
                    }
                }
            }
            line_empty = false;
        }
    }

    fn node(&mut self, index: usize, level: usize, depth: usize) {
        let node = &self.ast.nodes_in(ChildRange::all(self.ast.node_count()))[index];
        let AstNode::Composite(kind, children) = node else {
            let mut s = String::new();
            write_leaf(node, &mut s);
            self.push(&s);
            return;
        };
        let (width, must_break) = self.widths[index];
        let (open, close) = kind.brackets();
        if depth >= MAX_PRETTY_DEPTH {
            let mut s = String::new();
            s.push(open);
            self.ast.write_canonical(*children, &mut s);
            s.push(close);
            self.push(&s);
            return;
        }
        let fits = self.column + width <= self.options.width;
        if children.is_empty() || (fits && !must_break) {
            self.push(&open.to_string());
            self.inline(*children, level, depth + 1);
            self.push(&close.to_string());
            return;
        }
        self.push(&open.to_string());
        let nodes = self.ast.nodes_in(*children);
        // A block's argument words stay on the opening line: `[:a :b`.
        let mut skip = 0;
        if *kind == CompositeKind::Block {
            while let Some(AstNode::Word(w)) = nodes.get(skip) {
                if !matches!(w.kind, WordKind::Arg | WordKind::GetArg) {
                    break;
                }
                self.push(&w.text);
                if skip + 1 < nodes.len() {
                    self.push(" ");
                }
                skip += 1;
            }
            if skip > 0 && self.out.ends_with(' ') {
                self.out.pop();
                self.column -= 1;
            }
        }
        let rest = children.skip(skip);
        if !rest.is_empty() {
            self.newline(level + 1);
            self.body(rest, level + 1, depth + 1);
        }
        self.newline(level);
        self.push(&close.to_string());
    }

    /// The children of a composite that fits on the line, keyword messages re-sugared.
    fn inline(&mut self, range: ChildRange, level: usize, depth: usize) {
        let base = range.start_index();
        let items = self.items(range);
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                self.push(" ");
            }
            match item {
                Item::Node(i) => self.node(base + i, level, depth),
                Item::Message(keys, i) => {
                    for (j, key) in keys.iter().enumerate() {
                        if j > 0 {
                            self.push(" ");
                        }
                        self.push(key);
                        self.push(" ");
                        self.node(base + i + 1 + j, level, depth);
                    }
                }
            }
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
