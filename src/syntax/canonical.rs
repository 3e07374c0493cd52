//! The canonical one-line form: the form Spry's reference parser prints.
//!
//! Nodes are separated by single spaces, composites have no inner padding (`[1 2]`, `{}`),
//! comments are dropped, keyword sugar is resolved (`at:put: 1 2`), integers print in decimal,
//! floats as Nim's `$` prints them, strings quoted with `\\` and `\"` escaped.

use std::fmt::Write as _;

use super::ast::{Ast, ChildRange, Leaf};
use super::kind::SyntaxKind;
use super::literal::{decode_string, parse_float, parse_integer};
use super::parser::KeywordState;

impl Ast {
    /// The canonical one-line form of the top-level nodes.
    ///
    /// # Examples
    /// ```
    /// use spry_image::syntax::{parse, Ast};
    /// let ast = Ast::from_tree(&parse("x = [ +11  5. ] # c\n\"a\\\\\"").tree);
    /// assert_eq!(ast.canonical(), r#"x = [11 5.0] "a\\""#);
    /// ```
    pub fn canonical(&self) -> String {
        // Words hold UTF-8 and strings are escaped to it, so the check never fails; it is one
        // pass over the output, cheap beside building it.
        match String::from_utf8(self.canonical_bytes()) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// The canonical form as bytes (valid UTF-8; what `parse --canonical` writes).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.source_len_estimate());
        self.write_canonical(self.root_children(), &mut out);
        out
    }

    pub(crate) fn root_children(&self) -> ChildRange {
        self.root_range()
    }

    /// Appends the canonical form of the nodes in `range` to `out`. Walks without recursion:
    /// a stack of the open composites, each the end of its children and its closer.
    pub(crate) fn write_canonical(&self, range: ChildRange, out: &mut Vec<u8>) {
        let all = self.nodes_in(ChildRange::all(self.node_count()));
        let mut stack: Vec<(usize, usize, u8)> = Vec::new();
        let (mut at, mut end) = (range.start_index(), range.start_index() + range.len());
        let mut closer = 0u8;
        let mut first = true;
        loop {
            let Some(node) = all.get(at).filter(|_| at < end) else {
                if closer != 0 {
                    out.push(closer);
                }
                let Some((next_at, next_end, next_closer)) = stack.pop() else {
                    return;
                };
                (at, end, closer) = (next_at, next_end, next_closer);
                first = false;
                continue;
            };
            if !first {
                out.push(b' ');
            }
            first = false;
            at += 1;
            match self.leaf(node) {
                Leaf::Composite(kind, children) => {
                    let (open, close) = kind.brackets();
                    out.push(open as u8);
                    stack.push((at, end, closer));
                    (at, end, closer) = (
                        children.start_index(),
                        children.start_index() + children.len(),
                        close as u8,
                    );
                    first = true;
                }
                leaf => write_leaf(leaf, out),
            }
        }
    }
}

/// The canonical form straight from the lossless tree: what `Ast::from_tree(tree).canonical()`
/// gives, without building the view (`parse --canonical` on a large file spends most of its
/// time writing fresh memory, and the view is four times the tree). Written in chunks to `out`.
///
/// It reads the tokens as [`Ast::from_tree`] lowers them, in one pass: a stack of the open
/// composites (closed where the parser ended them), trivia and malformed words left out, and a
/// keyword message's keys joined. The joined word comes before the message's first argument,
/// so at a message's first key the keys that continue it are looked up ahead, at the same
/// level (skipping over nested composites), and then passed over when they come.
/// `syntax_props::canonical_from_the_tree_is_the_views` pins that the two agree.
impl super::tree::SyntaxTree {
    /// Writes the canonical form of the whole text to `out` (no final line break).
    ///
    /// # Errors
    /// Any error of `out`.
    ///
    /// # Examples
    /// ```
    /// use spry_image::syntax::parse;
    /// let tree = parse("x = [ +11  5. ] a at: 1 put: 2 # c").tree;
    /// let mut out = Vec::new();
    /// tree.write_canonical(&mut out).unwrap();
    /// assert_eq!(out, b"x = [11 5.0] a at:put: 1 2");
    /// ```
    pub fn write_canonical(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        TreePrinter::new(self).run(out)
    }
}

/// The flush size of [`SyntaxTree::write_canonical`]'s buffer.
const CHUNK: usize = 1 << 16;

struct TreeFrame {
    closer: u8,
    keyword: KeywordState,
    /// No node printed in this composite yet (no space before the next one).
    first: bool,
}

struct TreePrinter<'t> {
    tree: &'t super::tree::SyntaxTree,
    buffer: Vec<u8>,
    frames: Vec<TreeFrame>,
    /// End token index of each open composite, as in the lowering.
    ends: Vec<u32>,
    next_composite: usize,
}

impl<'t> TreePrinter<'t> {
    fn new(tree: &'t super::tree::SyntaxTree) -> Self {
        TreePrinter {
            tree,
            buffer: Vec::with_capacity(CHUNK + 1024),
            frames: vec![TreeFrame {
                closer: 0,
                keyword: KeywordState::Idle,
                first: true,
            }],
            ends: Vec::new(),
            next_composite: 0,
        }
    }

    fn run(mut self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let tree = self.tree;
        let kinds = &tree.kinds[..];
        let starts = &tree.starts[..];
        let mut next_end = u32::MAX;
        let mut cursor = 0;
        while cursor < kinds.len() {
            let kind = kinds[cursor];
            let index = cursor as u32;
            cursor += 1;
            if next_end <= index {
                while self.ends.last().is_some_and(|&end| end <= index) {
                    self.ends.pop();
                    self.close();
                }
                next_end = self.ends.last().copied().unwrap_or(u32::MAX);
            }
            match kind {
                SyntaxKind::Whitespace
                | SyntaxKind::Comment
                | SyntaxKind::ByteOrderMark
                | SyntaxKind::Malformed => continue,
                SyntaxKind::LBracket | SyntaxKind::LParen | SyntaxKind::LCurly => {
                    self.node();
                    let data = tree.composites[self.next_composite];
                    self.next_composite += 1;
                    let (open, close) = match kind {
                        SyntaxKind::LBracket => (b'[', b']'),
                        SyntaxKind::LParen => (b'(', b')'),
                        _ => (b'{', b'}'),
                    };
                    self.buffer.push(open);
                    self.ends.push(data.end);
                    next_end = data.end;
                    self.frames.push(TreeFrame {
                        closer: close,
                        keyword: KeywordState::Idle,
                        first: true,
                    });
                }
                SyntaxKind::RBracket | SyntaxKind::RParen | SyntaxKind::RCurly => {
                    if next_end == index + 1 {
                        self.ends.pop();
                        self.close();
                        next_end = self.ends.last().copied().unwrap_or(u32::MAX);
                    }
                }
                SyntaxKind::KeywordPart => {
                    let span = starts[index as usize]..starts[index as usize + 1];
                    let Some(frame) = self.frames.last_mut() else {
                        break;
                    };
                    let (_, starts_new) = frame.keyword.key(span.start as usize..span.end as usize);
                    if starts_new {
                        if !std::mem::replace(&mut frame.first, false) {
                            self.buffer.push(b' ');
                        }
                        self.joined_keys(cursor - 1, next_end);
                    }
                }
                _ => {
                    self.node();
                    let span = (starts[index as usize], starts[index as usize + 1]);
                    self.leaf(kind, span);
                }
            }
            if self.buffer.len() >= CHUNK {
                out.write_all(&self.buffer)?;
                self.buffer.clear();
            }
        }
        while self.frames.len() > 1 {
            self.close();
        }
        out.write_all(&self.buffer)
    }

    /// A node arrives in the innermost composite: a space before it but for the first, and
    /// the keyword state moves on.
    #[inline]
    fn node(&mut self) {
        if let Some(frame) = self.frames.last_mut() {
            frame.keyword.node();
            if !std::mem::replace(&mut frame.first, false) {
                self.buffer.push(b' ');
            }
        }
    }

    fn close(&mut self) {
        if self.frames.len() > 1
            && let Some(frame) = self.frames.pop()
        {
            self.buffer.push(frame.closer);
        }
    }

    /// Prints the keys of the message whose first key is token `first`, joined: that key and
    /// every key after it at the same level that the lowering joins to it. `end` is the
    /// token the innermost composite ends before.
    fn joined_keys(&mut self, first: usize, end: u32) {
        let tree = self.tree;
        let kinds = &tree.kinds[..];
        let starts = &tree.starts[..];
        let end = (end as usize).min(kinds.len());
        let mut state = KeywordState::Idle;
        let mut composite = self.next_composite;
        let mut at = first;
        while at < end {
            let kind = kinds[at];
            match kind {
                SyntaxKind::Whitespace
                | SyntaxKind::Comment
                | SyntaxKind::ByteOrderMark
                | SyntaxKind::Malformed => {}
                SyntaxKind::KeywordPart => {
                    let span = starts[at]..starts[at + 1];
                    let (_, starts_new) = state.key(span.start as usize..span.end as usize);
                    if starts_new && at != first {
                        return;
                    }
                    self.word_text((span.start, span.end));
                }
                SyntaxKind::LBracket | SyntaxKind::LParen | SyntaxKind::LCurly => {
                    if state.node() {
                        return;
                    }
                    // Over the composite and all it holds.
                    let data = tree.composites[composite];
                    composite += 1 + data.descendants as usize;
                    at = data.end as usize;
                    continue;
                }
                // The innermost composite's own closer ends the message; a stray one is no
                // node.
                SyntaxKind::RBracket | SyntaxKind::RParen | SyntaxKind::RCurly => {}
                _ => {
                    if state.node() {
                        return;
                    }
                }
            }
            at += 1;
        }
    }

    /// A word's text as the view keeps it: its bytes, or with replacement characters where
    /// they are not UTF-8.
    #[inline]
    fn word_text(&mut self, span: (u32, u32)) {
        let text = &self.tree.text;
        let bytes = &text[span.0 as usize..span.1 as usize];
        let boundary = |at: u32| text.get(at as usize).is_none_or(|&b| (b as i8) >= -0x40);
        if self.tree.utf8 && boundary(span.0) && boundary(span.1) {
            self.buffer.extend_from_slice(bytes);
        } else {
            self.buffer
                .extend_from_slice(String::from_utf8_lossy(bytes).as_bytes());
        }
    }

    /// A literal or a word (not a keyword part), as the view decodes it and the canonical form
    /// prints it.
    #[inline]
    fn leaf(&mut self, kind: SyntaxKind, span: (u32, u32)) {
        let token = &self.tree.text[span.0 as usize..span.1 as usize];
        match kind {
            SyntaxKind::Integer => {
                write_integer(parse_integer(token).unwrap_or(0), &mut self.buffer);
            }
            SyntaxKind::Float => write_leaf(
                Leaf::Float(parse_float(token).unwrap_or(f64::NAN)),
                &mut self.buffer,
            ),
            SyntaxKind::String => {
                let inner = token.get(1..).unwrap_or(b"");
                let inner = if inner.ends_with(b"\"") && token.len() >= 2 {
                    &inner[..inner.len() - 1]
                } else {
                    inner
                };
                if memchr::memchr(b'\\', inner).is_none() {
                    write_string(inner, &mut self.buffer);
                } else {
                    write_string(&decode_string(inner), &mut self.buffer);
                }
            }
            _ => self.word_text(span),
        }
    }
}

/// Appends the canonical spelling of a node that is not a composite.
#[inline]
pub(crate) fn write_leaf(node: Leaf<'_>, out: &mut Vec<u8>) {
    match node {
        Leaf::Integer(v) => write_integer(v, out),
        Leaf::Float(v) => {
            // `inf` and `nan` alone read back as words: only a sign makes them floats.
            if v.is_nan() || v == f64::INFINITY {
                out.push(b'+');
            }
            let mut text = SmallText::default();
            format_float(v, &mut text);
            out.extend_from_slice(text.as_bytes());
        }
        Leaf::String(bytes) => write_string(bytes, out),
        Leaf::Word(_, bytes) => out.extend_from_slice(bytes),
        Leaf::Composite(..) => {}
    }
}

/// An integer in decimal, without the formatting machinery.
#[inline]
fn write_integer(value: i64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// A short text built on the stack (a float's spelling is at most 26 bytes).
#[derive(Default)]
pub(crate) struct SmallText {
    bytes: [u8; 32],
    len: usize,
}

impl SmallText {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for SmallText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let slot = self
            .bytes
            .get_mut(self.len..self.len + s.len())
            .ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// A string literal: `\` and `"` escaped; bytes that are not UTF-8, and NUL (an error in
/// source), as `\xHH` so that the text stays valid UTF-8 and reads back to the same bytes.
pub(crate) fn write_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    // Most strings are plain ASCII with nothing to escape: copied as they are.
    if bytes.is_ascii() && memchr::memchr3(b'\\', b'"', 0, bytes).is_none() {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '"' => out.extend_from_slice(b"\\\""),
                '\0' => out.extend_from_slice(b"\\x00"),
                c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        for b in chunk.invalid() {
            out.extend_from_slice(b"\\x");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
    }
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A float as Nim's `$` prints it (shortest round-trip digits; fixed notation while the decimal
/// point lies within -6..=17 digits, with a trailing `.0` for whole numbers; otherwise `1e+20`).
pub fn format_float(value: f64, out: &mut impl std::fmt::Write) {
    let _ = try_format_float(value, out);
}

fn try_format_float(value: f64, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    if value.is_nan() {
        return out.write_str("nan");
    }
    if value.is_sign_negative() {
        out.write_char('-')?;
    }
    let value = value.abs();
    if value.is_infinite() {
        return out.write_str("inf");
    }
    if value == 0.0 {
        return out.write_str("0.0");
    }
    // The shortest digits that round-trip (like Nim's Dragonbox) and the exponent of the
    // first: without the formatting machinery for a short decimal, else from Rust's `{:e}`.
    let mut digits = SmallText::default();
    let exponent = match short_decimal(value, &mut digits) {
        Some(exponent) => exponent,
        None => {
            let mut sci = SmallText::default();
            write!(sci, "{value:e}")?;
            let sci = std::str::from_utf8(sci.as_bytes()).unwrap_or("0e0");
            let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
            // The mantissa's digits without its point (`1.25` → `125`).
            for part in mantissa.split('.') {
                digits.write_str(part)?;
            }
            exponent.parse().unwrap_or(0)
        }
    };
    // Trailing zeros dropped.
    let all = std::str::from_utf8(digits.as_bytes()).unwrap_or("0");
    let digits = all.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let n = digits.len() as i32;
    let point = exponent + 1;
    if (-6..=17).contains(&point) {
        if point <= 0 {
            out.write_str("0.")?;
            for _ in 0..-point {
                out.write_char('0')?;
            }
            out.write_str(digits)?;
        } else if point < n {
            out.write_str(&digits[..point as usize])?;
            out.write_char('.')?;
            out.write_str(&digits[point as usize..])?;
        } else {
            out.write_str(digits)?;
            for _ in 0..point - n {
                out.write_char('0')?;
            }
            out.write_str(".0")?;
        }
    } else {
        out.write_str(&digits[..1])?;
        if n > 1 {
            out.write_char('.')?;
            out.write_str(&digits[1..])?;
        }
        let e = point - 1;
        write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs())?;
    }
    Ok(())
}

/// The digits of a positive finite `value` and the exponent of the first, when it is a
/// decimal of at most 15 significant digits and 8 places (nearly every float written in
/// source): the first `k` for which `m / 10^k` is `value` (division rounds correctly, and `m`
/// and `10^k` are exact) gives them, and they are the shortest that read back, since two
/// decimals of at most 15 digits never round to the same double. `None` otherwise.
fn short_decimal(value: f64, digits: &mut SmallText) -> Option<i32> {
    const POWERS: [f64; 9] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];
    for (places, &power) in POWERS.iter().enumerate() {
        let m = (value * power).round();
        if m >= 1e15 {
            return None;
        }
        if m >= 1.0 && m / power == value {
            let mut rest = m as u64;
            let mut at = digits.bytes.len();
            while rest > 0 && at > 0 {
                at -= 1;
                digits.bytes[at] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            let count = digits.bytes.len() - at;
            digits.bytes.copy_within(at.., 0);
            digits.len = count;
            return Some(count as i32 - places as i32 - 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        format_float(v, &mut s);
        s
    }

    /// The formatting machinery's digits, for comparing with [`short_decimal`]'s.
    fn slow(v: f64) -> (String, i32) {
        let sci = format!("{v:e}");
        let (mantissa, exponent) = sci.split_once('e').unwrap();
        let digits: String = mantissa.split('.').collect();
        (digits, exponent.parse().unwrap())
    }

    #[test]
    fn short_decimals_have_the_shortest_digits() {
        let mut values: Vec<f64> = (1..20_000).map(|i| i as f64 / 1000.0).collect();
        values.extend((1..2_000).map(|i| i as f64 * 0.1 + 1e-8 * i as f64));
        values.extend([
            0.1 + 0.2,
            1e-7,
            123456789012345.0,
            999999999999999.0,
            1e15,
            2.5e-3,
        ]);
        values.extend([std::f64::consts::PI, 1.0 / 3.0, 5e-324, f64::MAX, 4.35, 0.3]);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            values.push((state % 1_000_000_000) as f64 / 10f64.powi((state >> 60) as i32 % 9));
        }
        for v in values {
            let mut digits = SmallText::default();
            if let Some(exponent) = short_decimal(v, &mut digits) {
                let (mut expected, e) = slow(v);
                let fast = std::str::from_utf8(digits.as_bytes())
                    .unwrap()
                    .trim_end_matches('0');
                while expected.len() > 1 && expected.ends_with('0') {
                    expected.pop();
                }
                assert_eq!((fast, exponent), (expected.as_str(), e), "{v:e}");
            }
        }
    }

    #[test]
    fn floats_print_as_nim_does() {
        assert_eq!(f(3.5), "3.5");
        assert_eq!(f(5.0), "5.0");
        assert_eq!(f(1000.0), "1000.0");
        assert_eq!(f(-0.0015), "-0.0015");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1e16), "10000000000000000.0");
        assert_eq!(f(1e17), "1e+17");
        assert_eq!(f(1e-7), "0.0000001");
        assert_eq!(f(1e-8), "1e-8");
        assert_eq!(f(1.5e-8), "1.5e-8");
        assert_eq!(f(0.000001), "0.000001");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(f64::NAN), "nan");
        assert_eq!(f(0.0), "0.0");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(123.456), "123.456");
        assert_eq!(f(1.7976931348623157e308), "1.7976931348623157e+308");
    }

    #[test]
    fn printed_floats_read_back() {
        for v in [3.5, 1e20, 1e-7, 0.1, 123456789.125, 2.5e-300, 1e17] {
            let s = f(v);
            assert_eq!(
                super::super::literal::parse_float(s.as_bytes()),
                Some(v),
                "{s}"
            );
        }
    }

    #[test]
    fn strings_escape_backslash_and_quote_only() {
        let mut s = Vec::new();
        write_string(b"a\\b\"c'\n\xff\0", &mut s);
        assert_eq!(s, b"\"a\\\\b\\\"c'\n\\xFF\\x00\"");
        s.clear();
        write_string("plain é text".as_bytes(), &mut s);
        assert_eq!(s, "\"plain é text\"".as_bytes());
    }

    #[test]
    fn integers_print_in_decimal() {
        for v in [0, 7, -7, 10, 1_000_000, i64::MAX, i64::MIN] {
            let mut s = Vec::new();
            write_integer(v, &mut s);
            assert_eq!(s, v.to_string().as_bytes());
        }
    }
}
