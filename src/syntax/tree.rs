//! The lossless syntax tree: every byte of the input belongs to exactly one token.
//!
//! The tree is flat, in the manner of a green tree stored in arrays: one kind and one start
//! offset per token, and one record per bracketed composite (its opening token, where it ends,
//! how many composites it holds). Nodes and tokens handed out are cheap `Copy` cursors into it.
//! Printing a node is concatenating the texts of its tokens.

use std::fmt::Write as _;
use std::io;
use std::ops::Range;

use super::kind::SyntaxKind;

/// One bracketed composite: its opening token, the token index it ends before, whether a
/// matching closer ended it, and how many composites it holds (so that it can be skipped).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CompositeData {
    pub(crate) open: u32,
    pub(crate) end: u32,
    pub(crate) descendants: u32,
    pub(crate) closed: bool,
}

/// A lossless tree over a source text. Build one with [`parse`](super::parse).
///
/// # Examples
/// ```
/// let parse = spry_image::syntax::parse("x = [1 2] # two\n");
/// assert!(parse.errors.is_empty());
/// assert_eq!(parse.tree.to_bytes(), b"x = [1 2] # two\n");
/// ```
#[derive(Clone, Debug)]
pub struct SyntaxTree {
    pub(crate) text: Vec<u8>,
    pub(crate) kinds: Vec<SyntaxKind>,
    /// Start offset of every token, plus the text length at the end.
    pub(crate) starts: Vec<u32>,
    /// Composites in pre-order (order of their opening brackets).
    pub(crate) composites: Vec<CompositeData>,
    /// The text is valid UTF-8 (the parser checked it), so a token's bytes need no check again.
    pub(crate) utf8: bool,
}

impl SyntaxTree {
    /// The source text the tree covers.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Gives up the tree and returns the source text.
    pub fn into_text(self) -> Vec<u8> {
        self.text
    }

    /// The number of tokens, trivia included.
    pub fn token_count(&self) -> usize {
        self.kinds.len()
    }

    /// The number of bracketed composites.
    pub fn composite_count(&self) -> usize {
        self.composites.len()
    }

    /// The root node: the whole file.
    pub fn root(&self) -> SyntaxNode<'_> {
        SyntaxNode {
            tree: self,
            kind: SyntaxKind::Root,
            first: 0,
            end: self.kinds.len() as u32,
            next_composite: 0,
        }
    }

    /// The `i`-th token.
    pub fn token(&self, i: usize) -> Option<SyntaxToken<'_>> {
        (i < self.kinds.len()).then_some(SyntaxToken {
            tree: self,
            index: i as u32,
        })
    }

    /// All tokens in order.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = SyntaxToken<'_>> + '_ {
        (0..self.kinds.len() as u32).map(move |index| SyntaxToken { tree: self, index })
    }

    /// The index of the token that holds byte `offset`.
    pub fn token_at_offset(&self, offset: usize) -> Option<usize> {
        if offset >= self.text.len() {
            return None;
        }
        Some(self.starts.partition_point(|&s| s as usize <= offset) - 1)
    }

    /// The exact printer: the texts of all tokens, concatenated. Equal to the input, always.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len());
        self.root().write_exact(&mut out);
        out
    }

    /// Writes the exact printer's output to `out`.
    ///
    /// # Errors
    /// Any error of `out`.
    pub fn write_to(&self, out: &mut impl io::Write) -> io::Result<()> {
        out.write_all(&self.to_bytes())
    }

    /// Heap bytes the tree itself uses beyond the source text (for the memory benchmark).
    pub fn heap_size(&self) -> usize {
        self.kinds.capacity() * std::mem::size_of::<SyntaxKind>()
            + self.starts.capacity() * std::mem::size_of::<u32>()
            + self.composites.capacity() * std::mem::size_of::<CompositeData>()
    }

    /// A readable dump of the tree, one line per node or token, indented by depth (used by the
    /// data-driven tests). Walks without recursion, so any depth is fine.
    pub fn debug_dump(&self) -> String {
        let mut out = String::new();
        let mut stack: Vec<(SyntaxNode<'_>, usize, ChildCursor)> = Vec::new();
        let root = self.root();
        dump_node_line(&mut out, 0, &root);
        stack.push((root, 1, root.cursor()));
        while let Some((node, depth, mut cursor)) = stack.pop() {
            let Some(child) = cursor.next(self, node.end) else {
                continue;
            };
            stack.push((node, depth, cursor));
            match child {
                SyntaxElement::Token(t) => {
                    let _ = writeln!(
                        out,
                        "{:indent$}{}@{}..{} {:?}",
                        "",
                        t.kind().name(),
                        t.range().start,
                        t.range().end,
                        String::from_utf8_lossy(t.text()),
                        indent = depth * 2
                    );
                }
                SyntaxElement::Node(n) => {
                    dump_node_line(&mut out, depth, &n);
                    stack.push((n, depth + 1, n.cursor()));
                }
            }
        }
        out
    }
}

fn dump_node_line(out: &mut String, depth: usize, node: &SyntaxNode<'_>) {
    let r = node.range();
    let unclosed = if node.kind() != SyntaxKind::Root && !node.is_closed() {
        " (unclosed)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{:indent$}{}@{}..{}{}",
        "",
        node.kind().name(),
        r.start,
        r.end,
        unclosed,
        indent = depth * 2
    );
}

/// A token of the tree: a cheap cursor.
#[derive(Clone, Copy)]
pub struct SyntaxToken<'t> {
    tree: &'t SyntaxTree,
    index: u32,
}

impl<'t> SyntaxToken<'t> {
    /// The token's kind.
    #[inline]
    pub fn kind(&self) -> SyntaxKind {
        self.tree.kinds[self.index as usize]
    }

    /// The token's index in the tree.
    #[inline]
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// The byte range of the token.
    #[inline]
    pub fn range(&self) -> Range<usize> {
        let i = self.index as usize;
        self.tree.starts[i] as usize..self.tree.starts[i + 1] as usize
    }

    /// The token's exact text.
    #[inline]
    pub fn text(&self) -> &'t [u8] {
        &self.tree.text[self.range()]
    }
}

impl std::fmt::Debug for SyntaxToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.range();
        write!(
            f,
            "{}@{}..{} {:?}",
            self.kind().name(),
            r.start,
            r.end,
            String::from_utf8_lossy(self.text())
        )
    }
}

/// A node of the tree (the root or a bracketed composite): a cheap cursor.
#[derive(Clone, Copy)]
pub struct SyntaxNode<'t> {
    tree: &'t SyntaxTree,
    kind: SyntaxKind,
    first: u32,
    end: u32,
    /// The first composite that may be a child (pre-order index).
    next_composite: u32,
}

impl<'t> SyntaxNode<'t> {
    fn composite(tree: &'t SyntaxTree, index: u32) -> Self {
        let data = tree.composites[index as usize];
        let kind = tree.kinds[data.open as usize]
            .composite()
            .unwrap_or(SyntaxKind::Block);
        SyntaxNode {
            tree,
            kind,
            first: data.open,
            end: data.end,
            next_composite: index + 1,
        }
    }

    /// The composite's pre-order index (0 for the root, like the first composite).
    pub fn composite_index(&self) -> usize {
        self.next_composite.saturating_sub(1) as usize
    }

    /// The composite whose opening bracket is token `token`, if any.
    pub fn at_token(tree: &'t SyntaxTree, token: usize) -> Option<SyntaxNode<'t>> {
        let index = tree
            .composites
            .binary_search_by_key(&(token as u32), |c| c.open)
            .ok()?;
        Some(SyntaxNode::composite(tree, index as u32))
    }

    /// `Root`, `Block`, `Paren` or `Curly`.
    pub fn kind(&self) -> SyntaxKind {
        self.kind
    }

    /// Whether a matching bracket closes this composite (the root always counts as closed).
    pub fn is_closed(&self) -> bool {
        match self.kind {
            SyntaxKind::Root => true,
            _ => self.tree.composites[self.next_composite as usize - 1].closed,
        }
    }

    /// The token index range the node covers.
    pub fn token_range(&self) -> Range<usize> {
        self.first as usize..self.end as usize
    }

    /// The byte range the node covers.
    pub fn range(&self) -> Range<usize> {
        self.tree.starts[self.first as usize] as usize..self.tree.starts[self.end as usize] as usize
    }

    /// The node's exact text (its tokens concatenated).
    pub fn text(&self) -> &'t [u8] {
        &self.tree.text[self.range()]
    }

    fn cursor(&self) -> ChildCursor {
        ChildCursor {
            token: self.first,
            composite: self.next_composite,
        }
    }

    /// The node's children, tokens (its brackets and trivia included) and nodes, in order.
    pub fn children(&self) -> impl Iterator<Item = SyntaxElement<'t>> + 't {
        let tree = self.tree;
        let end = self.end;
        let mut cursor = self.cursor();
        std::iter::from_fn(move || cursor.next(tree, end))
    }

    /// Appends the exact text of the node, token by token.
    pub fn write_exact(&self, out: &mut Vec<u8>) {
        let text = &self.tree.text;
        let starts = &self.tree.starts[self.first as usize..=self.end as usize];
        out.reserve(self.range().len());
        for pair in starts.windows(2) {
            out.extend_from_slice(&text[pair[0] as usize..pair[1] as usize]);
        }
    }
}

impl std::fmt::Debug for SyntaxNode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.range();
        write!(f, "{}@{}..{}", self.kind.name(), r.start, r.end)
    }
}

/// A child of a node: a token or a node.
#[derive(Clone, Copy, Debug)]
pub enum SyntaxElement<'t> {
    /// A token.
    Token(SyntaxToken<'t>),
    /// A composite.
    Node(SyntaxNode<'t>),
}

impl<'t> SyntaxElement<'t> {
    /// The element's kind.
    pub fn kind(&self) -> SyntaxKind {
        match self {
            SyntaxElement::Token(t) => t.kind(),
            SyntaxElement::Node(n) => n.kind(),
        }
    }

    /// The element's byte range.
    pub fn range(&self) -> Range<usize> {
        match self {
            SyntaxElement::Token(t) => t.range(),
            SyntaxElement::Node(n) => n.range(),
        }
    }
}

#[derive(Clone, Copy)]
struct ChildCursor {
    token: u32,
    composite: u32,
}

impl ChildCursor {
    #[inline]
    fn next<'t>(&mut self, tree: &'t SyntaxTree, end: u32) -> Option<SyntaxElement<'t>> {
        if self.token >= end {
            return None;
        }
        let index = self.token;
        if let Some(data) = tree.composites.get(self.composite as usize)
            && data.open == index
        {
            let node = SyntaxNode::composite(tree, self.composite);
            self.token = data.end;
            self.composite += 1 + data.descendants;
            return Some(SyntaxElement::Node(node));
        }
        self.token += 1;
        Some(SyntaxElement::Token(SyntaxToken { tree, index }))
    }
}
