//! Where tokens start: the first pass of the parser.
//!
//! Most token boundaries are changes of character class: a token starts at a byte whose class
//! differs from the byte before it (whitespace, a plain token, where a `"` counts as plain, a
//! special run), and every bracket is a token of its own. That rule is applied without a branch
//! per byte, 64 bytes at a time. Comments and strings break it; they are found in the same
//! blocks, stepped over one by one (with `memchr`), and the rule is applied between them.
//!
//! The second pass (in the parser) reads the kinds of plain tokens from their text.

use super::kind::SyntaxKind;

/// Bytes scanned per call of [`Lexer::fill`] (a comment or a string may take it further).
pub(super) const CHUNK: usize = 1 << 13;

/// The class of a byte, as the boundary rule sees it. Two neighbouring bytes of different
/// classes are in different tokens, and a bracket is always a token of its own. A `"` is plain
/// (a string start is found apart); `#` never comes into it.
const PLAIN: u8 = 0;
const SPACE: u8 = 1;
const SPECIAL: u8 = 2;
const BRACKET: u8 = 4;
/// The class before a forced token start: equal to no byte's class.
const FORCED: u8 = 0xFF;

/// A byte's class, computed (not looked up) so that a block of them is computed at once.
#[inline(always)]
const fn class(b: u8) -> u8 {
    let space = (b == b' ') | (b.wrapping_sub(b'\t') <= b'\r' - b'\t');
    // `[` `{` and `]` `}` differ in one bit, as do `(` and `)`; so do `\` `|` and `^` `~`.
    let folded = b | 0x20;
    let bracket = (folded == b'{') | (folded == b'}') | ((b & 0xFE) == b'(');
    let special = (folded == b'|')
        | (folded == b'~')
        | (b.wrapping_sub(b'%') <= 1)
        | (b == b',')
        | (b == b';');
    (space as u8 * SPACE) | (special as u8 * SPECIAL) | (bracket as u8 * BRACKET)
}

/// The kind of a token from its first byte; `Root` for a plain token, whose kind its text gives.
static FIRST_KINDS: [SyntaxKind; 256] = {
    let mut table = [SyntaxKind::Root; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = match b {
            b'#' => SyntaxKind::Comment,
            b'"' => SyntaxKind::String,
            b'[' => SyntaxKind::LBracket,
            b'(' => SyntaxKind::LParen,
            b'{' => SyntaxKind::LCurly,
            b']' => SyntaxKind::RBracket,
            b')' => SyntaxKind::RParen,
            b'}' => SyntaxKind::RCurly,
            _ => match class(b) {
                SPACE => SyntaxKind::Whitespace,
                SPECIAL => SyntaxKind::EvalWord,
                _ => SyntaxKind::Root,
            },
        };
        i += 1;
    }
    table
};

/// Finds token starts, a chunk at a time, appending them to a vector.
pub(super) struct Lexer<'a> {
    text: &'a [u8],
    /// The next byte to look at.
    pos: usize,
    /// The class of the byte before `pos`, or [`FORCED`] when a token starts at `pos` whatever
    /// its class.
    prev: u8,
    /// The opening quote of the string that has no closing one, if any.
    unterminated: Option<usize>,
    /// Whether the bytes before `pos` are ASCII and not NUL (so surely valid UTF-8).
    plain_ascii: bool,
    scratch: Box<Scratch>,
}

/// The lexer's working memory.
struct Scratch {
    /// The class of the byte before a block, then those of its bytes.
    classes: [u8; 65],
    /// Per byte of a block: whether a token starts there by the class rule, and whether a
    /// comment or a string starts there.
    starts_here: [u8; 64],
    events_here: [u8; 64],
    /// The starts found in a chunk and their tokens' kinds as their first bytes tell them:
    /// room for one per byte of a chunk (or of a shorter text) and a block's worth of overrun.
    starts: Vec<u32>,
    kinds: Vec<SyntaxKind>,
}

impl<'a> Lexer<'a> {
    /// A lexer whose first token starts at `pos`.
    pub(super) fn new(text: &'a [u8], pos: usize) -> Self {
        Lexer {
            text,
            pos,
            prev: FORCED,
            unterminated: None,
            plain_ascii: is_plain_ascii(&text[..pos.min(text.len())]),
            scratch: Box::new(Scratch {
                classes: [0; 65],
                starts_here: [0; 64],
                events_here: [0; 64],
                starts: vec![0; text.len().min(CHUNK) + 64],
                kinds: vec![SyntaxKind::Root; text.len().min(CHUNK) + 64],
            }),
        }
    }

    /// The opening quote of an unterminated string (known once the lexer reaches the end).
    pub(super) fn unterminated(&self) -> Option<usize> {
        self.unterminated
    }

    /// Whether the bytes read so far are ASCII and not NUL (so surely valid UTF-8).
    pub(super) fn plain_ascii(&self) -> bool {
        self.plain_ascii
    }

    /// Appends the starts of the tokens that begin in the next [`CHUNK`] bytes or so (a comment or
    /// a string is taken whole), and their kinds as their first bytes tell them (`Root` for a
    /// plain token). Returns whether bytes remain after them.
    ///
    /// Works on blocks of 64 bytes: their classes, and for each byte whether a token starts
    /// there by the class rule and whether a comment or a string does, are computed without a
    /// branch (the compiler does it on vectors) and gathered in 64-bit masks. Up to the first
    /// comment or string, the set bits are written out a few at a time; the comment or string
    /// is stepped over (with `memchr`), and the block goes on after it, or the next block
    /// starts there.
    pub(super) fn fill(&mut self, starts: &mut Vec<u32>, kinds: &mut Vec<SyntaxKind>) -> bool {
        let text = self.text;
        let len = text.len();
        let limit = len.min(self.pos + CHUNK);
        // (Borrowed apart, so that the loops keep their addresses in registers.)
        let Scratch {
            classes,
            starts_here,
            events_here,
            starts: found_starts,
            kinds: found_kinds,
        } = &mut *self.scratch;
        let (found_starts, found_kinds) = (&mut found_starts[..], &mut found_kinds[..]);
        let mut pos = self.pos;
        let mut prev = self.prev;
        // Each start is at a distinct byte of `self.pos..limit`, so `n` stays within CHUNK.
        let mut n = 0usize;
        // The last bytes of the text, padded to a block.
        let mut padded;
        while pos < limit {
            let count = (limit - pos).min(64);
            let block: &[u8; 64] = match text.get(pos..pos + 64) {
                Some(bytes) => bytes.try_into().unwrap_or(&[0; 64]),
                None => {
                    let tail = &text[pos..];
                    padded = [0; 64];
                    padded[..tail.len()].copy_from_slice(tail);
                    &padded
                }
            };
            classes[0] = prev;
            for (class_of, &b) in classes[1..].iter_mut().zip(block) {
                *class_of = class(b);
            }
            for (flag, pair) in starts_here.iter_mut().zip(classes.windows(2)) {
                *flag = u8::from(pair[1] != pair[0]) | u8::from(pair[1] & BRACKET != 0);
            }
            // A `#` always starts a comment; a `"` starts a string only at a token start, that
            // is after a byte that is not in a plain token.
            for ((flag, &b), &before) in events_here.iter_mut().zip(block).zip(&classes[..64]) {
                *flag = u8::from(b == b'#') | (u8::from(b == b'"') & u8::from(before != PLAIN));
            }
            let valid = u64::MAX >> (64 - count);
            let mut mask = gather(starts_here) & valid;
            let mut events = gather(events_here) & valid;
            let mut next = pos + count;
            let mut next_prev = classes[count];
            while events != 0 {
                let at = events.trailing_zeros() as usize;
                n = emit(
                    mask & ((1u64 << at) - 1),
                    pos,
                    block,
                    found_starts,
                    found_kinds,
                    n,
                );
                let event = pos + at;
                found_starts[n] = event as u32;
                found_kinds[n] = FIRST_KINDS[block[at] as usize];
                n += 1;
                let end = if block[at] == b'#' {
                    comment_end(text, event)
                } else {
                    match string_end(text, event) {
                        Some(end) => end,
                        None => {
                            self.unterminated = Some(event);
                            len
                        }
                    }
                };
                let resume = end - pos;
                if resume >= count {
                    // The next block starts after the comment or string.
                    mask = 0;
                    next = end;
                    next_prev = FORCED;
                    break;
                }
                // Go on in this block after the comment or string: a token starts there
                // whatever its class, and a `#` or `"` there starts a comment or a string.
                let above = u64::MAX << resume;
                let b = block[resume];
                mask = (mask & above) | (1u64 << resume);
                events = (events & (above << 1)) | (u64::from((b == b'#') | (b == b'"')) << resume);
            }
            n = emit(mask, pos, block, found_starts, found_kinds, n);
            pos = next;
            prev = next_prev;
        }
        starts.extend_from_slice(&found_starts[..n]);
        kinds.extend_from_slice(&found_kinds[..n]);
        // While the bytes are in the cache.
        self.plain_ascii = self.plain_ascii && is_plain_ascii(&text[self.pos..pos]);
        self.pos = pos;
        self.prev = prev;
        pos < len
    }
}

/// Writes the start of the token at each set bit of `mask` (offsets into `block`, which starts
/// at `base`) and its kind, from `n` on; returns the new `n`. Four at a time, past the last one
/// when they run out (the scratch has room).
#[inline(always)]
fn emit(
    mut mask: u64,
    base: usize,
    block: &[u8; 64],
    starts: &mut [u32],
    kinds: &mut [SyntaxKind],
    n: usize,
) -> usize {
    let found = mask.count_ones() as usize;
    let base = base as u32;
    let mut k = n;
    while mask != 0 {
        for (slot, kind) in starts[k..k + 4].iter_mut().zip(&mut kinds[k..k + 4]) {
            let at = mask.trailing_zeros();
            *slot = base.wrapping_add(at);
            *kind = FIRST_KINDS[block[(at & 63) as usize] as usize];
            mask &= mask.wrapping_sub(1);
        }
        k += 4;
    }
    n + found
}

/// The 64 flags (each 0 or 1) as the bits of a mask, eight at a time.
#[inline(always)]
fn gather(flags: &[u8; 64]) -> u64 {
    let mut mask = 0u64;
    for (i, eight) in flags.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(eight);
        let bits = u64::from_le_bytes(word).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= bits << (8 * i);
    }
    mask
}

/// Whether `text` is ASCII without NUL bytes, found with a loop the compiler does on vectors.
fn is_plain_ascii(text: &[u8]) -> bool {
    let mut any = 0u8;
    let mut least = u8::MAX;
    for &b in text {
        any |= b;
        least = least.min(b);
    }
    any < 0x80 && least != 0
}

/// The end of the comment that starts at `at`: before the line feed, or before a carriage return
/// directly before it.
#[inline]
fn comment_end(text: &[u8], at: usize) -> usize {
    match memchr::memchr(b'\n', &text[at..]) {
        Some(i) if i > 1 && text[at + i - 1] == b'\r' => at + i - 1,
        Some(i) => at + i,
        None => text.len(),
    }
}

/// The end (after the closing quote) of the string that opens at `at`, if it is closed. A
/// backslash escapes the next byte.
#[inline]
fn string_end(text: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while let Some(found) = memchr::memchr2(b'"', b'\\', &text[i..]) {
        let hit = i + found;
        if text[hit] == b'"' {
            return Some(hit + 1);
        }
        i = hit + 2;
        if i >= text.len() {
            break;
        }
    }
    None
}
