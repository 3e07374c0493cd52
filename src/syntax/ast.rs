//! The semantic view: the tree the language sees. Trivia are gone, literals decoded, keyword
//! messages joined (`a at: 1 put: 2` is the word `at:put:` and its two arguments).
//!
//! Nodes live in one arena, children of a composite side by side, so that walking, comparing,
//! printing and dropping never recurse: a million nested brackets are as safe as one.

use std::ops::Range;

use super::kind::SyntaxKind;
use super::literal::{contains_module_separator, decode_string, parse_float, parse_integer};
use super::parser::KeywordState;
use super::tree::{SyntaxNode, SyntaxTree};

/// The kind of a word, as the syntax page's table names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WordKind {
    /// `foo`, `=`, `at:put:` (a joined keyword message), a special run such as `,`.
    Eval,
    /// `:name`
    Arg,
    /// `:$name`
    GetArg,
    /// `$@name`
    GetSelf,
    /// `$Mod::name`
    GetModule,
    /// `$name`
    Get,
    /// `'name`
    Literal,
    /// `@name`
    SelfWord,
    /// `Mod::name`, or a keyword message with a module key (`Foo::at: 1 put: 2`, or a later
    /// key such as `Other::at:`: the joined spelling reads back as a module word).
    Module,
}

impl WordKind {
    fn from_token(kind: SyntaxKind) -> Option<WordKind> {
        Some(match kind {
            SyntaxKind::EvalWord => WordKind::Eval,
            SyntaxKind::ArgWord => WordKind::Arg,
            SyntaxKind::GetArgWord => WordKind::GetArg,
            SyntaxKind::GetSelfWord => WordKind::GetSelf,
            SyntaxKind::GetModuleWord => WordKind::GetModule,
            SyntaxKind::GetWord => WordKind::Get,
            SyntaxKind::LitWord => WordKind::Literal,
            SyntaxKind::SelfWord => WordKind::SelfWord,
            SyntaxKind::ModuleWord => WordKind::Module,
            _ => return None,
        })
    }

    /// How many bytes of sigil precede the name (`:$` is two, `$` one, `foo` none).
    pub fn sigil_len(self) -> usize {
        match self {
            WordKind::Eval | WordKind::Module => 0,
            WordKind::Arg | WordKind::Get | WordKind::Literal | WordKind::SelfWord => 1,
            WordKind::GetArg | WordKind::GetSelf => 2,
            WordKind::GetModule => 1,
        }
    }
}

/// The three kinds of brackets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompositeKind {
    /// `[ ... ]`
    Block,
    /// `( ... )`
    Paren,
    /// `{ ... }`
    Curly,
}

impl CompositeKind {
    /// The opening and closing brackets.
    pub fn brackets(self) -> (char, char) {
        match self {
            CompositeKind::Block => ('[', ']'),
            CompositeKind::Paren => ('(', ')'),
            CompositeKind::Curly => ('{', '}'),
        }
    }
}

/// A word: its kind and its whole spelling, sigils included (`$@x`, `Foo::at:put:`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Word {
    /// The word's kind.
    pub kind: WordKind,
    /// The spelling, sigils included.
    pub text: Box<str>,
}

impl Word {
    /// Makes a word, reading its kind from its spelling as the parser would.
    pub fn new(text: &str) -> Word {
        let kind = match super::literal::classify_word(text.as_bytes()) {
            // A keyword-shaped word is what a keyword message joins into.
            SyntaxKind::KeywordPart if contains_module_separator(text.as_bytes()) => {
                WordKind::Module
            }
            other => WordKind::from_token(other).unwrap_or(WordKind::Eval),
        };
        Word {
            kind,
            text: text.into(),
        }
    }

    /// The name without sigils: `x` for `$@x`, `'one` for `''one`, `Mod::name` for `$Mod::name`.
    pub fn name(&self) -> &str {
        self.text.get(self.kind.sigil_len()..).unwrap_or("")
    }

    /// Whether this is an eval word shaped like a keyword (`at:put:`, `ti:di:`).
    pub fn is_keyword_shaped(&self) -> bool {
        self.kind == WordKind::Eval && self.text.len() > 1 && self.text.ends_with(':')
    }
}

/// One node of the semantic view.
#[derive(Clone, Debug)]
pub enum AstNode {
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A string, decoded (bytes: `\xHH` may make it other than UTF-8).
    String(Box<[u8]>),
    /// A word.
    Word(Word),
    /// A block, paren or curly; its children are [`AstRef::children`].
    Composite(CompositeKind, ChildRange),
}

/// Where a composite's children lie in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChildRange {
    start: u32,
    len: u32,
}

impl ChildRange {
    /// The whole arena of `count` nodes (for index-based access inside the crate).
    pub(crate) fn all(count: usize) -> ChildRange {
        ChildRange {
            start: 0,
            len: count as u32,
        }
    }

    pub(crate) fn start_index(self) -> usize {
        self.start as usize
    }

    /// The same range without its first `n` nodes.
    pub(crate) fn skip(self, n: usize) -> ChildRange {
        let n = (n as u32).min(self.len);
        ChildRange {
            start: self.start + n,
            len: self.len - n,
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }

    /// The number of children.
    pub fn len(self) -> usize {
        self.len as usize
    }

    /// Whether there are no children.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// The semantic view of a whole file: its top-level nodes, as if wrapped in a block.
///
/// # Examples
/// ```
/// use spry_image::syntax::{parse, Ast};
/// let a = Ast::from_tree(&parse("a at: 1 put: 2 # set").tree);
/// let b = Ast::from_tree(&parse("a  at:put: 1\n 2").tree);
/// assert_eq!(a, b); // same tree, other formatting
/// assert_eq!(a.canonical(), "a at:put: 1 2");
/// ```
#[derive(Clone, Debug)]
pub struct Ast {
    nodes: Vec<AstNode>,
    spans: Vec<(u32, u32)>,
    root: ChildRange,
}

/// A node of an [`Ast`] with access to its children and source span.
#[derive(Clone, Copy, Debug)]
pub struct AstRef<'a> {
    ast: &'a Ast,
    index: u32,
}

impl<'a> AstRef<'a> {
    /// The node.
    pub fn node(&self) -> &'a AstNode {
        &self.ast.nodes[self.index as usize]
    }

    /// The node's byte range in the source it was read from (a keyword message's joined word
    /// spans from its first key to its last). Empty for nodes built by code.
    pub fn span(&self) -> Range<usize> {
        let (s, e) = self.ast.spans[self.index as usize];
        s as usize..e as usize
    }

    /// The node's children (none unless it is a composite).
    pub fn children(&self) -> AstList<'a> {
        match self.node() {
            AstNode::Composite(_, range) => AstList {
                ast: self.ast,
                range: *range,
            },
            _ => AstList {
                ast: self.ast,
                range: ChildRange { start: 0, len: 0 },
            },
        }
    }

    /// The word, if this node is one.
    pub fn as_word(&self) -> Option<&'a Word> {
        match self.node() {
            AstNode::Word(w) => Some(w),
            _ => None,
        }
    }

    /// The composite kind, if this node is one.
    pub fn composite_kind(&self) -> Option<CompositeKind> {
        match self.node() {
            AstNode::Composite(kind, _) => Some(*kind),
            _ => None,
        }
    }
}

/// A list of sibling nodes (a composite's children, or the top level).
#[derive(Clone, Copy, Debug)]
pub struct AstList<'a> {
    ast: &'a Ast,
    range: ChildRange,
}

impl<'a> AstList<'a> {
    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// The `i`-th node.
    pub fn get(&self, i: usize) -> Option<AstRef<'a>> {
        (i < self.len()).then(|| AstRef {
            ast: self.ast,
            index: self.range.start + i as u32,
        })
    }

    /// The nodes in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = AstRef<'a>> + 'a {
        let ast = self.ast;
        self.range.range().map(move |i| AstRef {
            ast,
            index: i as u32,
        })
    }
}

struct Frame {
    kind: CompositeKind,
    pending_start: usize,
    open_at: u32,
    keyword: KeywordState,
    keyword_slot: Option<usize>,
}

/// Lowering a range of tokens into a view: nodes are finished a composite at a time (its
/// children pending until it closes, then moved side by side into `nodes`).
struct Lowering<'t> {
    tree: &'t SyntaxTree,
    nodes: Vec<AstNode>,
    spans: Vec<(u32, u32)>,
    /// Nodes of the open composites, innermost last, with their spans.
    pending: Vec<(AstNode, (u32, u32))>,
    frames: Vec<Frame>,
    /// End token index of each open composite, to close unclosed ones where the parser did.
    ends: Vec<u32>,
    next_composite: usize,
    max_depth: usize,
}

impl Lowering<'_> {
    fn run(&mut self, tokens: Range<usize>) {
        let tree = self.tree;
        let mut cursor = tokens.start;
        while let Some(token) = tree.token(cursor).filter(|_| cursor < tokens.end) {
            cursor += 1;
            let index = token.index() as u32;
            while self.ends.last().is_some_and(|&end| end <= index) {
                self.ends.pop();
                self.close(token.range().start as u32);
            }
            let kind = token.kind();
            let range = token.range();
            let span = (range.start as u32, range.end as u32);
            if self.frames.is_empty() {
                break;
            }
            if kind.is_trivia() || kind == SyntaxKind::Malformed {
                continue;
            }
            if kind.is_open() {
                if let Some(end) = self.open(kind, span) {
                    cursor = end;
                }
            } else if kind.is_close() {
                // A closer that ends a composite is handled by `ends`; a stray one is no node.
                if self.ends.last() == Some(&(index + 1)) {
                    self.ends.pop();
                    self.close(span.1);
                }
            } else if kind == SyntaxKind::KeywordPart {
                self.keyword_part(token.text(), range, span);
            } else {
                self.end_keyword_slot();
                self.pending.push((leaf(kind, token.text()), span));
            }
        }
    }

    /// A node that is not part of a keyword message's key ends the slot its parts join into.
    fn end_keyword_slot(&mut self) {
        if let Some(frame) = self.frames.last_mut()
            && frame.keyword.node()
        {
            frame.keyword_slot = None;
        }
    }

    /// An opening bracket: a new frame, or, too deep to read, a node with its span and no
    /// children and the token to go on from (after its composite).
    fn open(&mut self, kind: SyntaxKind, span: (u32, u32)) -> Option<usize> {
        self.end_keyword_slot();
        let tree = self.tree;
        let data = tree.composites[self.next_composite];
        self.next_composite += 1;
        let composite = match kind {
            SyntaxKind::LBracket => CompositeKind::Block,
            SyntaxKind::LParen => CompositeKind::Paren,
            _ => CompositeKind::Curly,
        };
        if self.frames.len() > self.max_depth {
            self.next_composite += data.descendants as usize;
            let end = tree.starts[data.end as usize];
            self.pending.push((
                AstNode::Composite(composite, ChildRange { start: 0, len: 0 }),
                (span.0, end),
            ));
            return Some(data.end as usize);
        }
        self.ends.push(data.end);
        self.frames.push(Frame {
            kind: composite,
            pending_start: self.pending.len(),
            open_at: span.0,
            keyword: KeywordState::Idle,
            keyword_slot: None,
        });
        None
    }

    /// A keyword part: a new word, or joined to the key of the message it continues
    /// (`at:` `put:` → `at:put:`).
    fn keyword_part(&mut self, token_text: &[u8], range: Range<usize>, span: (u32, u32)) {
        let Some(frame) = self.frames.last_mut() else {
            return;
        };
        let (_, starts_new) = frame.keyword.key(range);
        let key = String::from_utf8_lossy(token_text);
        let module = contains_module_separator(token_text);
        match frame.keyword_slot {
            Some(slot) if !starts_new => {
                if let (AstNode::Word(word), word_span) = &mut self.pending[slot] {
                    let mut joined = String::from(std::mem::take(&mut word.text));
                    joined.push_str(&key);
                    word.text = joined.into();
                    // The joined spelling holds `::`, so it reads back as a module word: so
                    // must it be here, or the canonical form would not.
                    if module {
                        word.kind = WordKind::Module;
                    }
                    word_span.1 = span.1;
                }
            }
            _ => {
                let kind = if module {
                    WordKind::Module
                } else {
                    WordKind::Eval
                };
                frame.keyword_slot = Some(self.pending.len());
                self.pending.push((
                    AstNode::Word(Word {
                        kind,
                        text: key.into(),
                    }),
                    span,
                ));
            }
        }
    }

    /// Ends the innermost composite at `end_offset`: its children move into `nodes`, and it
    /// becomes a pending node of its parent.
    fn close(&mut self, end_offset: u32) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let start = self.nodes.len() as u32;
        let mut count = 0u32;
        for (node, span) in self.pending.drain(frame.pending_start..) {
            self.nodes.push(node);
            self.spans.push(span);
            count += 1;
        }
        self.pending.push((
            AstNode::Composite(frame.kind, ChildRange { start, len: count }),
            (frame.open_at, end_offset),
        ));
    }

    /// Closes what is still open at the end of the text; the top level becomes the root.
    fn finish(mut self) -> Ast {
        let end = self.tree.text().len() as u32;
        while self.frames.len() > 1 {
            self.close(end);
        }
        let start = self.nodes.len() as u32;
        let count = self.pending.len() as u32;
        for (node, span) in self.pending {
            self.nodes.push(node);
            self.spans.push(span);
        }
        // Each node's span starts within the text and does not end before it starts.
        debug_assert!(
            self.spans.iter().all(|&(a, b)| a <= b && b <= end),
            "a node's span lies outside the text"
        );
        Ast {
            nodes: self.nodes,
            spans: self.spans,
            root: ChildRange { start, len: count },
        }
    }
}

/// A token that is a node of its own: a literal or a word.
fn leaf(kind: SyntaxKind, token_text: &[u8]) -> AstNode {
    match kind {
        SyntaxKind::Integer => AstNode::Integer(parse_integer(token_text).unwrap_or(0)),
        SyntaxKind::Float => AstNode::Float(parse_float(token_text).unwrap_or(f64::NAN)),
        SyntaxKind::String => {
            let inner = token_text.get(1..).unwrap_or(b"");
            let inner = if inner.ends_with(b"\"") && token_text.len() >= 2 {
                &inner[..inner.len() - 1]
            } else {
                inner
            };
            AstNode::String(decode_string(inner).into_boxed_slice())
        }
        other => AstNode::Word(Word {
            kind: WordKind::from_token(other).unwrap_or(WordKind::Eval),
            text: String::from_utf8_lossy(token_text).into(),
        }),
    }
}

impl Ast {
    /// The semantic view of a lossless tree. Tokens that are errors (a malformed word) are left
    /// out; everything else is kept, so a tree with errors still has a view.
    pub fn from_tree(tree: &SyntaxTree) -> Ast {
        Ast::lower(tree, 0..tree.token_count(), 0, usize::MAX)
    }

    /// The semantic view of the top level only: composites are nodes with their spans but no
    /// children. Reading no deeper is what makes the module view cheap.
    pub fn from_tree_shallow(tree: &SyntaxTree) -> Ast {
        Ast::lower(tree, 0..tree.token_count(), 0, 1)
    }

    /// The semantic view of the inside of one composite node (its children become the top
    /// level), `depth` levels deep.
    pub fn from_node(tree: &SyntaxTree, node: &SyntaxNode<'_>, depth: usize) -> Ast {
        let tokens = node.token_range();
        let (first, composite) = match node.kind() {
            SyntaxKind::Root => (tokens.start, 0),
            _ => (tokens.start + 1, node.composite_index() + 1),
        };
        let end = if node.kind() != SyntaxKind::Root && node.is_closed() {
            tokens.end - 1
        } else {
            tokens.end
        };
        Ast::lower(tree, first..end.max(first), composite, depth)
    }

    fn lower(
        tree: &SyntaxTree,
        tokens: Range<usize>,
        first_composite: usize,
        max_depth: usize,
    ) -> Ast {
        let mut lowering = Lowering {
            tree,
            nodes: Vec::new(),
            spans: Vec::new(),
            pending: Vec::new(),
            frames: vec![Frame {
                kind: CompositeKind::Block,
                pending_start: 0,
                open_at: 0,
                keyword: KeywordState::Idle,
                keyword_slot: None,
            }],
            ends: Vec::new(),
            next_composite: first_composite,
            max_depth,
        };
        lowering.run(tokens);
        lowering.finish()
    }

    /// Builds a view from nodes made by code (no source spans): `build` pushes nodes through
    /// an [`AstBuilder`].
    pub fn build(build: impl FnOnce(&mut AstBuilder)) -> Ast {
        let mut builder = AstBuilder {
            nodes: Vec::new(),
            pending: Vec::new(),
            marks: Vec::new(),
        };
        build(&mut builder);
        while !builder.marks.is_empty() {
            builder.close();
        }
        let start = builder.nodes.len() as u32;
        let count = builder.pending.len() as u32;
        builder.nodes.append(&mut builder.pending);
        let spans = vec![(0, 0); builder.nodes.len()];
        Ast {
            nodes: builder.nodes,
            spans,
            root: ChildRange { start, len: count },
        }
    }

    /// The top-level nodes.
    pub fn root(&self) -> AstList<'_> {
        AstList {
            ast: self,
            range: self.root,
        }
    }

    /// The total number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn nodes_in(&self, range: ChildRange) -> &[AstNode] {
        &self.nodes[range.range()]
    }

    pub(crate) fn root_range(&self) -> ChildRange {
        self.root
    }
}

/// Builds an [`Ast`] from code: push leaves, open and close composites.
///
/// # Examples
/// ```
/// use spry_image::syntax::{Ast, AstNode, CompositeKind, Word};
/// let ast = Ast::build(|b| {
///     b.push(AstNode::Word(Word::new("x")));
///     b.push(AstNode::Word(Word::new("=")));
///     b.open(CompositeKind::Block);
///     b.push(AstNode::Integer(1));
///     b.close();
/// });
/// assert_eq!(ast.canonical(), "x = [1]");
/// ```
pub struct AstBuilder {
    nodes: Vec<AstNode>,
    pending: Vec<AstNode>,
    marks: Vec<(CompositeKind, usize)>,
}

impl AstBuilder {
    /// Adds a leaf (a composite pushed here must come from this builder's own arena; use
    /// [`open`](Self::open) and [`close`](Self::close) for composites).
    pub fn push(&mut self, node: AstNode) {
        if let AstNode::Composite(kind, _) = node {
            self.open(kind);
            self.close();
        } else {
            self.pending.push(node);
        }
    }

    /// Opens a composite; nodes pushed until [`close`](Self::close) are its children.
    pub fn open(&mut self, kind: CompositeKind) {
        self.marks.push((kind, self.pending.len()));
    }

    /// Closes the innermost open composite.
    pub fn close(&mut self) {
        let Some((kind, mark)) = self.marks.pop() else {
            return;
        };
        let start = self.nodes.len() as u32;
        let children: Vec<AstNode> = self.pending.drain(mark..).collect();
        let len = children.len() as u32;
        self.nodes.extend(children);
        self.pending
            .push(AstNode::Composite(kind, ChildRange { start, len }));
    }
}

/// Float equality for structural comparison: every NaN equals every NaN; otherwise bit equality
/// (so `0.0` and `-0.0`, which print differently, differ).
fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

impl PartialEq for Ast {
    /// Structural equality: same nodes in the same shape; trivia, spelling of numbers (`+11`
    /// and `11`), string escapes and keyword sugar do not matter.
    fn eq(&self, other: &Ast) -> bool {
        let mut work = vec![(self.root, other.root)];
        while let Some((a, b)) = work.pop() {
            if a.len != b.len {
                return false;
            }
            for (x, y) in self.nodes_in(a).iter().zip(other.nodes_in(b)) {
                let same = match (x, y) {
                    (AstNode::Integer(x), AstNode::Integer(y)) => x == y,
                    (AstNode::Float(x), AstNode::Float(y)) => same_float(*x, *y),
                    (AstNode::String(x), AstNode::String(y)) => x == y,
                    (AstNode::Word(x), AstNode::Word(y)) => x == y,
                    (AstNode::Composite(kx, rx), AstNode::Composite(ky, ry)) => {
                        work.push((*rx, *ry));
                        kx == ky
                    }
                    _ => false,
                };
                if !same {
                    return false;
                }
            }
        }
        true
    }
}
