//! The semantic view: the tree the language sees. Trivia are gone, literals decoded, keyword
//! messages joined (`a at: 1 put: 2` is the word `at:put:` and its two arguments).
//!
//! Nodes live in one arena, children of a composite side by side and after it, so that walking,
//! comparing, printing and dropping never recurse: a million nested brackets are as safe as one.
//! A node of the arena is 24 bytes with its span: a word of up to 13 bytes is kept inside it,
//! and strings and longer words lie in one byte heap beside the arena, so that reading a file
//! into its view makes no allocation per node and dropping the view frees two buffers.

use std::ops::Range;

use super::kind::SyntaxKind;
use super::literal::{contains_module_separator, decode_string_into, parse_float, parse_integer};
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
///
/// A spelling of up to 21 bytes (nearly every word) is kept inside the word itself, so that
/// taking words out of a view or building one by code makes no allocation per word.
#[derive(Clone)]
pub struct Word(Repr);

/// The longest spelling kept inline: what fits beside the kind and the length in 24 bytes.
const INLINE: usize = 21;

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is the spelling, valid UTF-8; the bytes after it mean nothing (a word
    /// read from a text may hold the text's next bytes there) and are never read.
    Inline {
        kind: WordKind,
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap {
        kind: WordKind,
        text: Box<str>,
    },
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
        Word::with_kind(kind, text)
    }

    /// Makes a word of the given kind (the caller vouches that the spelling reads as it).
    pub fn with_kind(kind: WordKind, text: &str) -> Word {
        match inline_bytes(text.as_bytes()) {
            Some((len, bytes)) => Word(Repr::Inline { kind, len, bytes }),
            None => Word(Repr::Heap {
                kind,
                text: text.into(),
            }),
        }
    }

    /// A word from the view's bytes, which are valid UTF-8 (the view keeps only such).
    pub(crate) fn from_view(kind: WordKind, bytes: &[u8]) -> Word {
        match inline_bytes(bytes) {
            Some((len, bytes)) => Word(Repr::Inline { kind, len, bytes }),
            None => Word(Repr::Heap {
                kind,
                text: String::from_utf8_lossy(bytes).into(),
            }),
        }
    }

    /// The word's kind.
    #[inline]
    pub fn kind(&self) -> WordKind {
        match &self.0 {
            Repr::Inline { kind, .. } | Repr::Heap { kind, .. } => *kind,
        }
    }

    /// The spelling, sigils included.
    #[inline]
    pub fn text(&self) -> &str {
        match &self.0 {
            // Only valid UTF-8 is ever stored inline, so this never falls back.
            Repr::Inline { len, bytes, .. } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap { text, .. } => text,
        }
    }

    /// The spelling's bytes (what printing and comparing need, without a UTF-8 check).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Repr::Heap { text, .. } => text.as_bytes(),
        }
    }

    /// Whether the word is an eval word spelled `spelling` (`=`, `:=`).
    #[inline]
    pub fn is_eval(&self, spelling: &str) -> bool {
        self.kind() == WordKind::Eval && self.as_bytes() == spelling.as_bytes()
    }

    /// The name without sigils: `x` for `$@x`, `'one` for `''one`, `Mod::name` for `$Mod::name`.
    pub fn name(&self) -> &str {
        self.text().get(self.kind().sigil_len()..).unwrap_or("")
    }

    /// Whether this is an eval word shaped like a keyword (`at:put:`, `ti:di:`).
    pub fn is_keyword_shaped(&self) -> bool {
        let bytes = self.as_bytes();
        self.kind() == WordKind::Eval && bytes.len() > 1 && bytes.ends_with(b":")
    }
}

/// `bytes` in an inline buffer, if they fit.
#[inline]
fn inline_bytes(bytes: &[u8]) -> Option<(u8, [u8; INLINE])> {
    let mut inline = [0u8; INLINE];
    inline.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some((bytes.len() as u8, inline))
}

impl PartialEq for Word {
    fn eq(&self, other: &Word) -> bool {
        self.kind() == other.kind() && self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Word {}

impl std::hash::Hash for Word {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind().hash(state);
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Word")
            .field("kind", &self.kind())
            .field("text", &self.text())
            .finish()
    }
}

/// One node of the semantic view, as a value of its own: what [`AstRef::node`] gives (copied
/// out of the view's arena) and what [`AstBuilder::push`] takes.
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
    /// No children.
    pub(crate) const EMPTY: ChildRange = ChildRange { start: 0, len: 0 };

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

    pub(crate) fn range(self) -> Range<usize> {
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

/// The longest spelling an arena node keeps inside it (what fits in its 16 bytes beside the
/// tag, the kind and the length); a longer one, and every string, lies in the view's heap.
const SHORT: usize = 13;

/// A node of the arena: what it is in 16 bytes, and its byte range in the source.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    slot: Slot,
    span: (u32, u32),
}

/// What a node is. No variant owns memory, so that dropping a view of millions of nodes does
/// not visit them.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Integer(i64),
    Float(f64),
    /// The decoded bytes at `heap[start..start + len]`.
    String {
        start: u32,
        len: u32,
    },
    /// A spelling of up to [`SHORT`] bytes, `bytes[..len]` (what follows means nothing).
    ShortWord {
        kind: WordKind,
        len: u8,
        bytes: [u8; SHORT],
    },
    /// A longer spelling, at `heap[start..start + len]`.
    LongWord {
        kind: WordKind,
        start: u32,
        len: u32,
    },
    Composite(CompositeKind, ChildRange),
}

/// A node of the arena as the printers and comparisons read it, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Leaf<'a> {
    Integer(i64),
    Float(f64),
    String(&'a [u8]),
    /// A word's kind and spelling (valid UTF-8).
    Word(WordKind, &'a [u8]),
    Composite(CompositeKind, ChildRange),
}

impl<'a> Leaf<'a> {
    /// The word's kind and spelling, if this is a word.
    #[inline]
    pub(crate) fn word(self) -> Option<(WordKind, &'a [u8])> {
        match self {
            Leaf::Word(kind, bytes) => Some((kind, bytes)),
            _ => None,
        }
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
    nodes: Vec<Node>,
    /// Strings' bytes and words longer than [`SHORT`], where the nodes say.
    heap: Vec<u8>,
    root: ChildRange,
}

/// A node of an [`Ast`] with access to its children and source span.
#[derive(Clone, Copy, Debug)]
pub struct AstRef<'a> {
    ast: &'a Ast,
    index: u32,
}

impl<'a> AstRef<'a> {
    /// The node, copied out of the view (a string's bytes and a long word's spelling are
    /// copied; a composite's children stay in the view: [`children`](Self::children)).
    pub fn node(&self) -> AstNode {
        match self.leaf() {
            Leaf::Integer(v) => AstNode::Integer(v),
            Leaf::Float(v) => AstNode::Float(v),
            Leaf::String(bytes) => AstNode::String(bytes.into()),
            Leaf::Word(kind, bytes) => AstNode::Word(Word::from_view(kind, bytes)),
            Leaf::Composite(kind, range) => AstNode::Composite(kind, range),
        }
    }

    #[inline]
    fn leaf(&self) -> Leaf<'a> {
        self.ast.leaf(&self.ast.nodes[self.index as usize])
    }

    /// The node's byte range in the source it was read from (a keyword message's joined word
    /// spans from its first key to its last). Empty for nodes built by code.
    pub fn span(&self) -> Range<usize> {
        let (s, e) = self.ast.nodes[self.index as usize].span;
        s as usize..e as usize
    }

    /// The node's children (none unless it is a composite).
    pub fn children(&self) -> AstList<'a> {
        let range = match self.leaf() {
            Leaf::Composite(_, range) => range,
            _ => ChildRange::EMPTY,
        };
        AstList {
            ast: self.ast,
            range,
        }
    }

    /// The word, if this node is one (copied out of the view).
    pub fn as_word(&self) -> Option<Word> {
        let (kind, bytes) = self.leaf().word()?;
        Some(Word::from_view(kind, bytes))
    }

    /// The composite kind, if this node is one.
    pub fn composite_kind(&self) -> Option<CompositeKind> {
        match self.leaf() {
            Leaf::Composite(kind, _) => Some(kind),
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

    /// The first `n` nodes (all of them if there are fewer).
    pub(crate) fn prefix(&self, n: usize) -> AstList<'a> {
        AstList {
            ast: self.ast,
            range: ChildRange {
                start: self.range.start,
                len: self.range.len.min(u32::try_from(n).unwrap_or(u32::MAX)),
            },
        }
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

/// A composite whose children are still to be read: its node's place in the arena, the tokens
/// inside its brackets, the index of the first composite among them, and its children's level
/// (the top level is 1).
struct Unread {
    node: u32,
    tokens: Range<u32>,
    first_composite: u32,
    level: u32,
}

/// Lowering a range of tokens into a view, one sibling list at a time: a list's nodes go
/// straight to their places in `nodes` (a composite as a node whose children are not read
/// yet), and each composite it holds is read later as a list of its own. Every node is
/// written once, and a composite's children come after it in the arena.
///
/// This is on the path of `parse --pretty`, `put` and every reader of whole definitions, so
/// it is written for speed: it walks the tree's arrays directly, skips a nested composite in
/// one step (the tree knows where it ends), keeps short words in their nodes and everything
/// else in one heap (no allocation per node, and a node of 24 bytes with its span: the view
/// is bound by the fresh memory it writes), copies word bytes without checking UTF-8 again
/// when the parser found the text valid, and reserves its arrays once (capacity not written
/// to costs no memory).
struct Lowering<'t> {
    tree: &'t SyntaxTree,
    /// The whole text is valid UTF-8.
    utf8: bool,
    nodes: Vec<Node>,
    heap: Vec<u8>,
    /// The composites whose children are still to be read, the next one last.
    unread: Vec<Unread>,
    /// The node of the keyword message being joined whose spelling outgrew its node, and
    /// that spelling so far: it goes to the heap when the message ends (so that the strings
    /// among its arguments, which go there first, never make it move).
    joining: Option<usize>,
    joined: Vec<u8>,
    max_depth: usize,
}

impl Lowering<'_> {
    /// Reads every list: `tokens` as the top level, then each composite's children, in the
    /// order of their opening brackets. Returns the top level's range.
    fn run(&mut self, tokens: Range<usize>, first_composite: usize) -> ChildRange {
        let root = self.list(tokens, first_composite, 1);
        while let Some(unread) = self.unread.pop() {
            let tokens = unread.tokens.start as usize..unread.tokens.end as usize;
            let children = self.list(
                tokens,
                unread.first_composite as usize,
                unread.level as usize,
            );
            if let Some(Node {
                slot: Slot::Composite(_, range),
                ..
            }) = self.nodes.get_mut(unread.node as usize)
            {
                *range = children;
            }
        }
        root
    }

    /// Reads one list of siblings at nesting `level` into consecutive nodes; the composites
    /// among them wait in `unread` (unless deeper than `max_depth`: no children then).
    fn list(&mut self, tokens: Range<usize>, first_composite: usize, level: usize) -> ChildRange {
        let tree = self.tree;
        let kinds = &tree.kinds[..];
        let starts = &tree.starts[..];
        let end = tokens.end.min(kinds.len());
        let start = self.nodes.len();
        let unread_from = self.unread.len();
        let mut keyword = KeywordState::Idle;
        // The joined word a keyword message's next key extends, if any.
        let mut slot: Option<usize> = None;
        let mut composite = first_composite;
        let mut cursor = tokens.start;
        while cursor < end {
            let kind = kinds[cursor];
            let index = cursor;
            cursor += 1;
            match kind {
                // A composite's own closer is outside its list; a stray one is no node.
                SyntaxKind::Whitespace
                | SyntaxKind::Comment
                | SyntaxKind::ByteOrderMark
                | SyntaxKind::Malformed
                | SyntaxKind::RBracket
                | SyntaxKind::RParen
                | SyntaxKind::RCurly => {}
                SyntaxKind::LBracket | SyntaxKind::LParen | SyntaxKind::LCurly => {
                    if keyword.node() {
                        self.end_message(&mut slot);
                    }
                    let span = (starts[index], starts[index + 1]);
                    let composite_kind = match kind {
                        SyntaxKind::LBracket => CompositeKind::Block,
                        SyntaxKind::LParen => CompositeKind::Paren,
                        _ => CompositeKind::Curly,
                    };
                    let data = tree.composites.get(composite).copied();
                    composite += 1;
                    let Some(data) = data else {
                        // Not in the tree's records (never so for a tree the parser made).
                        self.push(Slot::Composite(composite_kind, ChildRange::EMPTY), span);
                        continue;
                    };
                    let first_inside = composite;
                    composite += data.descendants as usize;
                    // It ends where the tree says, after its closer if it has one.
                    let after = (data.end as usize).clamp(cursor, end);
                    cursor = after;
                    if level <= self.max_depth {
                        let inside_end = if data.closed { after - 1 } else { after };
                        self.unread.push(Unread {
                            node: self.nodes.len() as u32,
                            tokens: index as u32 + 1..inside_end.max(index + 1) as u32,
                            first_composite: first_inside as u32,
                            level: level as u32 + 1,
                        });
                    }
                    self.push(
                        Slot::Composite(composite_kind, ChildRange::EMPTY),
                        (span.0, starts[after]),
                    );
                }
                SyntaxKind::KeywordPart => {
                    let span = (starts[index], starts[index + 1]);
                    let (_, starts_new) = keyword.key(span.0 as usize..span.1 as usize);
                    self.key(span, starts_new, &mut slot);
                }
                _ => {
                    if keyword.node() {
                        self.end_message(&mut slot);
                    }
                    let span = (starts[index], starts[index + 1]);
                    let leaf = self.leaf(kind, span);
                    self.push(leaf, span);
                }
            }
        }
        self.end_message(&mut slot);
        // Read the composites in the order of their opening brackets: the first one last.
        self.unread[unread_from..].reverse();
        ChildRange {
            start: start as u32,
            len: (self.nodes.len() - start) as u32,
        }
    }

    #[inline]
    fn push(&mut self, slot: Slot, span: (u32, u32)) {
        self.nodes.push(Node { slot, span });
    }

    /// The end of a keyword message (or of its list): its joined word, if it outgrew its
    /// node, goes to the heap.
    fn end_message(&mut self, slot: &mut Option<usize>) {
        *slot = None;
        if let Some(at) = self.joining.take() {
            let start = self.heap.len() as u32;
            self.heap.extend_from_slice(&self.joined);
            if let Some(Node {
                slot: Slot::LongWord { start: s, len, .. },
                ..
            }) = self.nodes.get_mut(at)
            {
                (*s, *len) = (start, self.joined.len() as u32);
            }
            self.joined.clear();
        }
    }

    /// A keyword part: a new word, or joined to the key of the message it continues
    /// (`at:` `put:` → `at:put:`); `slot` is the word the list's message joins into.
    fn key(&mut self, span: (u32, u32), starts_new: bool, slot: &mut Option<usize>) {
        let tree = self.tree;
        let token_text = &tree.text[span.0 as usize..span.1 as usize];
        let module = contains_module_separator(token_text);
        let utf8 = self.utf8_at(span);
        match *slot {
            Some(at) if !starts_new => {
                let Some(node) = self.nodes.get_mut(at) else {
                    return;
                };
                node.span.1 = span.1;
                match &mut node.slot {
                    Slot::ShortWord { kind, len, bytes }
                        if utf8 && usize::from(*len) + token_text.len() <= SHORT =>
                    {
                        let from = usize::from(*len);
                        bytes[from..from + token_text.len()].copy_from_slice(token_text);
                        *len += token_text.len() as u8;
                        // The joined spelling holds `::`, so it reads back as a module word:
                        // so must it be here, or the canonical form would not.
                        if module {
                            *kind = WordKind::Module;
                        }
                    }
                    Slot::ShortWord { kind, len, bytes } => {
                        // Outgrows the node: joined aside until the message ends.
                        self.joined.clear();
                        self.joined.extend_from_slice(&bytes[..usize::from(*len)]);
                        push_text(&mut self.joined, token_text, utf8);
                        let kind = if module { WordKind::Module } else { *kind };
                        node.slot = Slot::LongWord {
                            kind,
                            start: 0,
                            len: 0,
                        };
                        self.joining = Some(at);
                    }
                    Slot::LongWord { kind, start, len } => {
                        if self.joining != Some(at) {
                            // A first key longer than a node: its spelling is in the heap.
                            let (from, to) = (*start as usize, (*start + *len) as usize);
                            self.joined.clear();
                            self.joined
                                .extend_from_slice(self.heap.get(from..to).unwrap_or_default());
                            self.joining = Some(at);
                        }
                        push_text(&mut self.joined, token_text, utf8);
                        if module {
                            *kind = WordKind::Module;
                        }
                    }
                    _ => {}
                }
            }
            _ => {
                self.end_message(slot);
                let kind = if module {
                    WordKind::Module
                } else {
                    WordKind::Eval
                };
                *slot = Some(self.nodes.len());
                let word = self.word(kind, span, utf8);
                self.push(word, span);
            }
        }
    }

    /// Whether the token at `span` can be copied as UTF-8 without a check: the text is valid
    /// and the token neither starts nor ends inside a character.
    #[inline]
    fn utf8_at(&self, span: (u32, u32)) -> bool {
        let text = &self.tree.text;
        let boundary = |at: u32| text.get(at as usize).is_none_or(|&b| (b as i8) >= -0x40);
        self.utf8 && boundary(span.0) && boundary(span.1)
    }

    /// A word spelled as the token at `span`: in its node if short and known to be UTF-8,
    /// else in the heap (with replacement characters where it is not UTF-8).
    #[inline]
    fn word(&mut self, kind: WordKind, span: (u32, u32), utf8: bool) -> Slot {
        let text = &self.tree.text;
        let (start, end) = (span.0 as usize, span.1 as usize);
        let spelling = text.get(start..end).unwrap_or_default();
        if utf8 && spelling.len() <= SHORT {
            // A copy of fixed size (what follows the spelling comes along, never to be read)
            // is a few moves, where one of the spelling's size is a call.
            let bytes = match text.get(start..start + SHORT) {
                Some(window) => window.try_into().unwrap_or([0; SHORT]),
                None => {
                    let mut bytes = [0; SHORT];
                    bytes[..spelling.len()].copy_from_slice(spelling);
                    bytes
                }
            };
            return Slot::ShortWord {
                kind,
                len: spelling.len() as u8,
                bytes,
            };
        }
        let from = self.heap.len();
        push_text(&mut self.heap, spelling, utf8);
        Slot::LongWord {
            kind,
            start: from as u32,
            len: (self.heap.len() - from) as u32,
        }
    }

    /// A token that is a node of its own: a literal or a word.
    #[inline]
    fn leaf(&mut self, kind: SyntaxKind, span: (u32, u32)) -> Slot {
        let token_text = &self.tree.text[span.0 as usize..span.1 as usize];
        match kind {
            SyntaxKind::Integer => Slot::Integer(parse_integer(token_text).unwrap_or(0)),
            SyntaxKind::Float => Slot::Float(parse_float(token_text).unwrap_or(f64::NAN)),
            SyntaxKind::String => {
                let inner = token_text.get(1..).unwrap_or(b"");
                let inner = if inner.ends_with(b"\"") && token_text.len() >= 2 {
                    &inner[..inner.len() - 1]
                } else {
                    inner
                };
                let start = self.heap.len();
                decode_string_into(inner, &mut self.heap);
                Slot::String {
                    start: start as u32,
                    len: (self.heap.len() - start) as u32,
                }
            }
            other => {
                let utf8 = self.utf8_at(span);
                self.word(
                    WordKind::from_token(other).unwrap_or(WordKind::Eval),
                    span,
                    utf8,
                )
            }
        }
    }
}

/// Appends a token's bytes: as they are when known to be UTF-8, else with replacement
/// characters where they are not.
#[inline]
fn push_text(out: &mut Vec<u8>, bytes: &[u8], utf8: bool) {
    if utf8 {
        out.extend_from_slice(bytes);
    } else {
        out.extend_from_slice(String::from_utf8_lossy(bytes).as_bytes());
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
        // Every token may be a node, and the heap holds at most the tokens' bytes (but for
        // replacement characters): reserving that much costs address space, not memory.
        let bytes = |at: usize| tree.starts.get(at).copied().unwrap_or(0) as usize;
        let heap = bytes(tokens.end).saturating_sub(bytes(tokens.start));
        let mut lowering = Lowering {
            tree,
            utf8: tree.utf8,
            nodes: Vec::with_capacity(tokens.len()),
            heap: Vec::with_capacity(heap),
            unread: Vec::new(),
            joining: None,
            joined: Vec::new(),
            max_depth,
        };
        let root = lowering.run(tokens, first_composite);
        // Each node's span starts within the text and does not end before it starts.
        debug_assert!(
            lowering
                .nodes
                .iter()
                .all(|n| n.span.0 <= n.span.1 && n.span.1 as usize <= tree.text.len()),
            "a node's span lies outside the text"
        );
        let ast = Ast {
            nodes: lowering.nodes,
            heap: lowering.heap,
            root,
        };
        debug_assert!(ast.children_follow_parents());
        ast
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
        // The builder keeps children before their parents; a view keeps them after. Moving
        // each list once, in the order it is reached, does that (code-built views are small).
        let mut from = builder.nodes;
        let mut order: Vec<AstNode> = Vec::with_capacity(from.len() + builder.pending.len());
        let count = builder.pending.len() as u32;
        order.append(&mut builder.pending);
        let mut at = 0;
        while at < order.len() {
            if let AstNode::Composite(_, children) = order[at] {
                let start = order.len() as u32;
                let moved = from
                    .get_mut(children.range())
                    .unwrap_or_default()
                    .iter_mut()
                    .map(|node| std::mem::replace(node, AstNode::Integer(0)));
                order.extend(moved);
                if let AstNode::Composite(_, range) = &mut order[at] {
                    range.start = start;
                }
            }
            at += 1;
        }
        let mut heap = Vec::new();
        let nodes = order
            .into_iter()
            .map(|node| Node {
                slot: Slot::of(node, &mut heap),
                span: (0, 0),
            })
            .collect();
        let ast = Ast {
            nodes,
            heap,
            root: ChildRange {
                start: 0,
                len: count,
            },
        };
        debug_assert!(ast.children_follow_parents());
        ast
    }

    /// The arena's order, which the pretty printer's width pass relies on: a composite's
    /// children lie after it, inside the arena.
    fn children_follow_parents(&self) -> bool {
        self.nodes
            .iter()
            .enumerate()
            .all(|(i, node)| match node.slot {
                Slot::Composite(_, children) => {
                    children.is_empty()
                        || (children.start as usize > i && children.range().end <= self.nodes.len())
                }
                _ => true,
            })
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

    /// The bytes the view holds (its arena's nodes and its heap's bytes; not its capacity).
    pub fn heap_size(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<Node>() + self.heap.len()
    }

    pub(crate) fn nodes_in(&self, range: ChildRange) -> &[Node] {
        &self.nodes[range.range()]
    }

    /// What an arena node is, its bytes borrowed from the view.
    #[inline]
    pub(crate) fn leaf<'s>(&'s self, node: &'s Node) -> Leaf<'s> {
        let heap = |start: u32, len: u32| {
            self.heap
                .get(start as usize..start as usize + len as usize)
                .unwrap_or_default()
        };
        match &node.slot {
            Slot::Integer(v) => Leaf::Integer(*v),
            Slot::Float(v) => Leaf::Float(*v),
            Slot::String { start, len } => Leaf::String(heap(*start, *len)),
            Slot::ShortWord { kind, len, bytes } => {
                Leaf::Word(*kind, &bytes[..usize::from(*len).min(SHORT)])
            }
            Slot::LongWord { kind, start, len } => Leaf::Word(*kind, heap(*start, *len)),
            Slot::Composite(kind, range) => Leaf::Composite(*kind, *range),
        }
    }

    /// Writes a node that is not a composite as the canonical printer spells it: a short
    /// word by one copy of fixed size (a call to copy its few bytes costs more than the
    /// copy), anything else by [`write_leaf`](super::canonical::write_leaf).
    #[inline]
    pub(crate) fn write_leaf(&self, node: &Node, out: &mut Vec<u8>) {
        if let Slot::ShortWord { len, bytes, .. } = &node.slot {
            let at = out.len();
            out.extend_from_slice(bytes);
            out.truncate(at + usize::from(*len).min(SHORT));
            return;
        }
        super::canonical::write_leaf(self.leaf(node), out);
    }

    pub(crate) fn root_range(&self) -> ChildRange {
        self.root
    }

    /// About how long a printed form of the view is: the source bytes its top level spans
    /// (0 for a view built by code). A capacity to start with, not a bound.
    pub(crate) fn source_len_estimate(&self) -> usize {
        let range = self.root.range();
        let first = self.nodes.get(range.start).map_or(0, |n| n.span.0);
        let last = range
            .end
            .checked_sub(1)
            .and_then(|i| self.nodes.get(i))
            .map_or(0, |n| n.span.1);
        last.saturating_sub(first) as usize + 16
    }
}

impl Slot {
    /// A node made by code, its bytes moved to `heap` where they do not fit in the node.
    fn of(node: AstNode, heap: &mut Vec<u8>) -> Slot {
        let mut stored = |bytes: &[u8]| {
            let start = heap.len() as u32;
            heap.extend_from_slice(bytes);
            (start, bytes.len() as u32)
        };
        match node {
            AstNode::Integer(v) => Slot::Integer(v),
            AstNode::Float(v) => Slot::Float(v),
            AstNode::String(bytes) => {
                let (start, len) = stored(&bytes);
                Slot::String { start, len }
            }
            AstNode::Word(word) => {
                let (kind, spelling) = (word.kind(), word.as_bytes());
                match spelling.len() {
                    len @ 0..=SHORT => {
                        let mut bytes = [0; SHORT];
                        bytes[..len].copy_from_slice(spelling);
                        Slot::ShortWord {
                            kind,
                            len: len as u8,
                            bytes,
                        }
                    }
                    _ => {
                        let (start, len) = stored(spelling);
                        Slot::LongWord { kind, start, len }
                    }
                }
            }
            AstNode::Composite(kind, range) => Slot::Composite(kind, range),
        }
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
                let same = match (self.leaf(x), other.leaf(y)) {
                    (Leaf::Integer(x), Leaf::Integer(y)) => x == y,
                    (Leaf::Float(x), Leaf::Float(y)) => same_float(x, y),
                    (Leaf::String(x), Leaf::String(y)) => x == y,
                    (Leaf::Word(kx, x), Leaf::Word(ky, y)) => kx == ky && x == y,
                    (Leaf::Composite(kx, rx), Leaf::Composite(ky, ry)) => {
                        work.push((rx, ry));
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

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn a_node_is_24_bytes_with_its_span() {
        // Short words inside the node, everything else in the heap: the arena writes 24
        // bytes a node, where it wrote 32 (a 24-byte node and an 8-byte span beside it).
        assert_eq!(std::mem::size_of::<Node>(), 24);
    }

    #[test]
    fn words_inline_or_not_read_the_same() {
        for len in [1, 12, 13, 14, 20, 21, 22, 40] {
            let text = "w".repeat(len);
            let ast = Ast::from_tree(&parse(text.as_str()).tree);
            let word = ast.root().get(0).and_then(|n| n.as_word());
            assert_eq!(word, Some(Word::new(&text)), "{len}");
            assert_eq!(word.map(|w| w.text().to_string()), Some(text.clone()));
            let built = Ast::build(|b| b.push(AstNode::Word(Word::new(&text))));
            assert_eq!(built, ast, "{len}");
        }
    }

    #[test]
    fn keys_join_across_the_inline_limit() {
        // 4 + 4 + 4 bytes fit in a node, the fourth key does not; the strings among the
        // arguments go to the heap while the word is being joined.
        let text = "x abc: \"1\" ghi: 2 mno: \"3\" stu: 4 y";
        let ast = Ast::from_tree(&parse(text).tree);
        let joined = ast.root().get(1).and_then(|n| n.as_word());
        assert_eq!(joined, Some(Word::new("abc:ghi:mno:stu:")));
        assert_eq!(ast.canonical(), "x abc:ghi:mno:stu: \"1\" 2 \"3\" 4 y");
        let text = "x abcdefghijklmn: 1 b: \"2\" c: 3";
        let ast = Ast::from_tree(&parse(text).tree);
        let joined = ast.root().get(1).and_then(|n| n.as_word());
        assert_eq!(joined, Some(Word::new("abcdefghijklmn:b:c:")));
        assert_eq!(ast.root().get(1).map(|n| n.span()), Some(2..29));
        let ast = Ast::from_tree(&parse("x Éé: 1 M::k: 2").tree);
        let joined = ast.root().get(1).and_then(|n| n.as_word());
        assert_eq!(joined.as_ref().map(Word::kind), Some(WordKind::Module));
        assert_eq!(joined.as_ref().map(Word::text), Some("Éé:M::k:"));
        let ast = Ast::from_tree(&parse("x a: 1 M::k: 2").tree);
        let joined = ast.root().get(1).and_then(|n| n.as_word());
        assert_eq!(joined.as_ref().map(Word::kind), Some(WordKind::Module));
    }

    #[test]
    fn words_of_text_that_is_not_utf8_are_replaced() {
        let ast = Ast::from_tree(&parse(&b"ab\xffc d\xc3\xa9 k\xff: 1 j: 2"[..]).tree);
        let words: Vec<String> = ast
            .root()
            .iter()
            .filter_map(|n| n.as_word().map(|w| w.text().to_string()))
            .collect();
        assert_eq!(words, ["ab\u{fffd}c", "dé", "k\u{fffd}:j:"]);
    }
}
