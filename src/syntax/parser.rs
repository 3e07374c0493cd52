//! From bytes to a lossless tree and a list of errors. Parsing never fails.
//!
//! The text is read a chunk of about 8 KiB at a time, in two passes over each chunk: the lexer
//! (`lexer`) finds where tokens start and gives each the kind its first byte tells; then the
//! [`Builder`] reads the kinds of plain tokens from their text, matches brackets into
//! composites and reports errors. The result is the same, token for token and error for error,
//! as reading the text once from left to right (the tests keep that single-pass parser as a
//! reference and compare the two).

use std::ops::Range;

use super::error::{LineIndex, SyntaxError, SyntaxErrorKind};
use super::kind::SyntaxKind;
use super::lexer::Lexer;
use super::literal::{classify_plain, parse_integer};
use super::tree::{CompositeData, SyntaxTree};

/// The result of parsing: a tree that holds every byte, and what is wrong with the text.
#[derive(Clone, Debug)]
pub struct Parse {
    /// The lossless tree.
    pub tree: SyntaxTree,
    /// Errors in source order of their position (empty for a valid file).
    pub errors: Vec<SyntaxError>,
}

impl Parse {
    /// Whether the text parsed without errors.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Parses Spry source. Never fails and never panics: errors are listed beside the tree, and the
/// tree still holds every byte of the input.
///
/// # Examples
/// ```
/// use spry_image::syntax::{parse, SyntaxErrorKind};
/// let ok = parse("a at: 1 put: 2");
/// assert!(ok.is_ok());
/// let bad = parse("x: y: 1");
/// assert_eq!(bad.errors[0].kind, SyntaxErrorKind::KeywordWithoutArgument);
/// ```
pub fn parse(text: impl Into<Vec<u8>>) -> Parse {
    parse_bytes(text.into())
}

/// A UTF-8 byte order mark: trivia at a text's start.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Largest text the tree addresses (offsets are 32-bit).
pub const MAX_SOURCE_LEN: usize = u32::MAX as usize - 1;

/// At most this many unclosed brackets are reported (the outermost ones).
const MAX_UNCLOSED_REPORTED: usize = 20;

/// How the first byte of a plain token starts its reading (see [`classify_token`]).
const GENERIC: u8 = 0;
const COLON: u8 = 1;
const DOLLAR: u8 = 2;
const QUOTE: u8 = 3;
const AT: u8 = 4;
const NUMBER: u8 = 5;

static FIRST_BYTES: [u8; 256] = {
    let mut table = [GENERIC; 256];
    table[b':' as usize] = COLON;
    table[b'$' as usize] = DOLLAR;
    table[b'\'' as usize] = QUOTE;
    table[b'@' as usize] = AT;
    table[b'+' as usize] = NUMBER;
    table[b'-' as usize] = NUMBER;
    let mut digit = b'0';
    while digit <= b'9' {
        table[digit as usize] = NUMBER;
        digit += 1;
    }
    table
};

/// The second bytes that matter to a word's kind: `$` (1), `=` (2), `@` (3); others are 0.
static SECOND_BYTES: [u8; 256] = {
    let mut table = [0; 256];
    table[b'$' as usize] = 1;
    table[b'=' as usize] = 2;
    table[b'@' as usize] = 3;
    table
};

/// The kind of a word (not a number) from what `classify_word` looks at, packed in an index:
/// bits 0–2 the first byte's reading, bit 3 whether it is longer than one byte and ends in `:`,
/// bit 4 whether it holds `::`, bit 5 whether it is one byte long, bit 6 two bytes long, bits
/// 7–8 the second byte (see [`SECOND_BYTES`]).
static WORD_KINDS: [SyntaxKind; 512] = {
    let mut table = [SyntaxKind::EvalWord; 512];
    let mut index = 0;
    while index < 512 {
        let keyword = index & 8 != 0;
        let separator = index & 16 != 0;
        let one = index & 32 != 0;
        let two = index & 64 != 0;
        let second = index >> 7;
        table[index] = match (index & 7) as u8 {
            COLON => {
                if one {
                    SyntaxKind::EvalWord
                } else if second == 1 {
                    if two {
                        SyntaxKind::Malformed
                    } else {
                        SyntaxKind::GetArgWord
                    }
                } else if second == 2 && two {
                    SyntaxKind::EvalWord
                } else {
                    SyntaxKind::ArgWord
                }
            }
            DOLLAR => {
                if one {
                    SyntaxKind::EvalWord
                } else if second == 3 {
                    if two {
                        SyntaxKind::Malformed
                    } else {
                        SyntaxKind::GetSelfWord
                    }
                } else if separator {
                    SyntaxKind::GetModuleWord
                } else {
                    SyntaxKind::GetWord
                }
            }
            QUOTE => {
                if one {
                    SyntaxKind::Malformed
                } else {
                    SyntaxKind::LitWord
                }
            }
            AT => {
                if keyword {
                    SyntaxKind::KeywordPart
                } else if one {
                    SyntaxKind::Malformed
                } else {
                    SyntaxKind::SelfWord
                }
            }
            _ => {
                if keyword {
                    SyntaxKind::KeywordPart
                } else if separator {
                    SyntaxKind::ModuleWord
                } else {
                    SyntaxKind::EvalWord
                }
            }
        };
        index += 1;
    }
    table
};

/// The kind of the plain token `text[start..end]`: the same as [`classify_plain`], read mostly
/// without branches from its first eight bytes, its last byte and its length.
#[inline(always)]
fn classify_token(text: &[u8], start: usize, end: usize) -> SyntaxKind {
    let len = end - start;
    let word = load_word(text, start);
    let reading = FIRST_BYTES[word as u8 as usize];
    if reading == NUMBER {
        return classify_number(text, start, end, word);
    }
    let keyword = (len > 1) & (text[end - 1] == b':');
    let separator = if len <= 8 {
        let colons = colon_bits(word & low_bytes(len));
        colons & (colons >> 8) != 0
    } else {
        has_module_separator(text, start, end)
    };
    let index = reading as usize
        | (keyword as usize) << 3
        | (separator as usize) << 4
        | ((len == 1) as usize) << 5
        | ((len == 2) as usize) << 6
        | (SECOND_BYTES[(word >> 8) as u8 as usize] as usize) << 7;
    WORD_KINDS[index]
}

/// The kind of a plain token that starts with a digit or a sign (`word` is its first eight
/// bytes): an integer of up to eight bytes without `_` is read at once, the rest as
/// [`classify_plain`] reads them.
#[inline(always)]
fn classify_number(text: &[u8], start: usize, end: usize, word: u64) -> SyntaxKind {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let len = end - start;
    if len <= 8 {
        let mask = low_bytes(len);
        let first = word as u8;
        let signed = first == b'+' || first == b'-';
        if signed && len == 1 {
            return SyntaxKind::EvalWord;
        }
        // The sign and the bytes past the token read as `0` digits.
        let digits = if signed { (word & !0xFF) | 0x30 } else { word };
        let digits = (digits & mask) | (ZEROS & !mask);
        let x = digits ^ ZEROS;
        if (x | x.wrapping_add(0x0606_0606_0606_0606)) & 0xF0F0_F0F0_F0F0_F0F0 == 0 {
            return SyntaxKind::Integer;
        }
    }
    classify_number_slow(&text[start..end])
}

/// The kinds of short plain tokens already read, by their text: source code says the same words
/// again and again, and finding one here costs less than reading it. A direct-mapped table whose
/// size grows with the text (up to `MEMO_MAX_BITS`).
struct Memo {
    entries: Vec<MemoEntry>,
    /// `64 - log2(entries.len())`: the shift that takes a hash to an index.
    shift: u32,
}

const MEMO_MAX_BITS: u32 = 13;

/// A token of up to eight bytes (its bytes, little-endian) and its kind.
#[derive(Clone, Copy)]
struct MemoEntry {
    word: u64,
    /// The token's length, or 0 for an empty entry.
    len: u8,
    kind: SyntaxKind,
}

impl Memo {
    /// A table for a text of `len` bytes: about one entry per 16 bytes.
    fn new(len: usize) -> Self {
        let bits = (len / 16).max(16).ilog2().min(MEMO_MAX_BITS);
        Memo {
            entries: vec![
                MemoEntry {
                    word: 0,
                    len: 0,
                    kind: SyntaxKind::Root,
                };
                1 << bits
            ],
            shift: 64 - bits,
        }
    }

    /// The kind of the plain token `text[start..end]`, as [`classify_token`] reads it.
    #[inline(always)]
    fn classify(&mut self, text: &[u8], start: usize, end: usize) -> SyntaxKind {
        let len = end - start;
        if len > 8 {
            return classify_token(text, start, end);
        }
        let word = load_word(text, start) & low_bytes(len);
        let hash = (word ^ len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift;
        let Some(entry) = self.entries.get_mut(hash as usize) else {
            return classify_token(text, start, end);
        };
        if entry.word == word && entry.len as usize == len {
            return entry.kind;
        }
        let kind = classify_token(text, start, end);
        *entry = MemoEntry {
            word,
            len: len as u8,
            kind,
        };
        kind
    }
}

/// [`classify_plain`] for a token that starts with a digit or a sign, without building a
/// float's value.
#[cold]
fn classify_number_slow(token: &[u8]) -> SyntaxKind {
    if parse_integer(token).is_none() && super::literal::is_float(token) {
        SyntaxKind::Float
    } else {
        classify_plain(token)
    }
}

/// A mask of the low `len` bytes of a word (all of them from eight on); `len` is at least 1.
#[inline(always)]
fn low_bytes(len: usize) -> u64 {
    u64::MAX >> (64 - 8 * len.min(8))
}

/// The eight bytes of `text` from `at` (zeros past its end), little-endian.
#[inline(always)]
fn load_word(text: &[u8], at: usize) -> u64 {
    match text.get(at..at + 8) {
        Some(bytes) => {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            u64::from_le_bytes(word)
        }
        None => load_word_at_end(text, at),
    }
}

#[cold]
fn load_word_at_end(text: &[u8], at: usize) -> u64 {
    let mut word = 0u64;
    for (i, &b) in text[at.min(text.len())..].iter().enumerate().take(8) {
        word |= u64::from(b) << (8 * i);
    }
    word
}

/// Bit 7 of each byte of `word` that is a `:`.
#[inline(always)]
fn colon_bits(word: u64) -> u64 {
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let x = word ^ 0x3A3A_3A3A_3A3A_3A3A;
    !(((x & LOW) + LOW) | x) & !LOW
}

/// Whether `text[start..end]` holds `::` (as [`super::literal::contains_module_separator`]),
/// eight bytes at a time.
fn has_module_separator(text: &[u8], start: usize, end: usize) -> bool {
    let mut carry = 0u64;
    let mut at = start;
    loop {
        let left = end - at;
        let colons = colon_bits(load_word(text, at) & low_bytes(left));
        if colons & ((colons >> 8) | carry) != 0 {
            return true;
        }
        if left <= 8 {
            return false;
        }
        carry = colons >> 56;
        at += 8;
    }
}

/// Where a keyword message stands inside one composite. Shared by the parser (to report a key
/// where an argument belongs) and the semantic view (to join the keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum KeywordState {
    /// No message being read.
    #[default]
    Idle,
    /// The last key (at this byte range) still waits for its argument.
    Expecting(u32, u32),
    /// Every key has its argument; another key extends the message.
    Balanced,
}

impl KeywordState {
    /// A node that is not a keyword part arrives. Returns whether it completes a message.
    #[inline]
    pub(crate) fn node(&mut self) -> bool {
        match *self {
            KeywordState::Expecting(..) => {
                *self = KeywordState::Balanced;
                false
            }
            KeywordState::Balanced => {
                *self = KeywordState::Idle;
                true
            }
            KeywordState::Idle => false,
        }
    }

    /// A keyword part arrives. Returns the key still waiting for an argument, if any (an error),
    /// and whether this key starts a new message (rather than extending one).
    #[inline]
    pub(crate) fn key(&mut self, span: Range<usize>) -> (Option<Range<usize>>, bool) {
        let previous = *self;
        *self = KeywordState::Expecting(span.start as u32, span.end as u32);
        match previous {
            KeywordState::Expecting(s, e) => (Some(s as usize..e as usize), false),
            KeywordState::Balanced => (None, false),
            KeywordState::Idle => (None, true),
        }
    }
}

/// Where a keyword message stands in one composite, as the parser tracks it: a
/// [`KeywordState`] as a number, and the span of the last key.
#[derive(Clone, Copy)]
struct Keyword {
    /// [`IDLE`], [`EXPECTING`] (the key at `start..end` waits for its argument) or [`BALANCED`].
    state: u8,
    start: u32,
    end: u32,
}

const IDLE: u8 = 0;
const EXPECTING: u8 = 1;
const BALANCED: u8 = 2;

impl Keyword {
    const IDLE: Keyword = Keyword {
        state: IDLE,
        start: 0,
        end: 0,
    };

    /// [`KeywordState::node`], without a branch.
    #[inline(always)]
    fn node(&mut self) {
        self.state = (self.state == EXPECTING) as u8 * BALANCED;
    }
}

struct Frame {
    composite: u32,
    close: u8,
    open_at: u32,
    /// The enclosing composite's keyword state, restored when this one closes.
    keyword: Keyword,
}

/// The closing bracket for an opening bracket's kind.
fn closer_for(open: SyntaxKind) -> u8 {
    match open {
        SyntaxKind::LBracket => b']',
        SyntaxKind::LParen => b')',
        _ => b'}',
    }
}

/// The second pass: kinds, composites and errors for the tokens the lexer has found.
///
/// While the brackets match, keyword messages need no state per composite: a keyword part is
/// an error exactly when the node before it in its composite is a keyword part too, and that
/// node is the token before it that the language sees (trivia and malformed words aside; a
/// composite shows as its bracket). So words and brackets are read in two simple loops. At
/// the first closing bracket that does not match, the tokens are read again from the start
/// with [`KeywordState`]'s rules and a keyword state per composite, as the language defines
/// them, and so on to the end.
struct Builder {
    kinds: Vec<SyntaxKind>,
    composites: Vec<CompositeData>,
    stack: Vec<Frame>,
    errors: Vec<SyntaxError>,
    /// Whether a closing bracket did not match (the tokens are then read one by one).
    exact: bool,
    /// The keyword state of the innermost open composite, in exact mode; each frame saves its
    /// parent's.
    keyword: Keyword,
    /// How many tokens have their final kinds.
    done: usize,
    /// While the brackets match: the open composites (see [`Builder::tokens`]), how many
    /// there are, and how many composites have been opened.
    open_stack: Vec<u64>,
    depth: usize,
    opened: usize,
    /// The kinds of short plain tokens read so far.
    memo: Memo,
    /// Scratch: the plain tokens of a batch, its brackets, and of these the opening ones and
    /// the closings.
    plain: Vec<u32>,
    brackets: Vec<u32>,
    opens: Vec<u32>,
    closes: Vec<Closing>,
}

/// A closing bracket that matches: the composite it closes, the token after it, and how many
/// composites were opened before it.
#[derive(Clone, Copy, Default)]
struct Closing {
    composite: u32,
    end: u32,
    opened: u32,
}

// Matching relies on the numbering of the bracket kinds: an opening one is odd, and the
// closing one that matches it is the next.
const _: () = {
    assert!(
        SyntaxKind::LBracket as u8 % 2 == 1
            && SyntaxKind::RBracket as u8 == SyntaxKind::LBracket as u8 + 1
    );
    assert!(
        SyntaxKind::LParen as u8 % 2 == 1
            && SyntaxKind::RParen as u8 == SyntaxKind::LParen as u8 + 1
    );
    assert!(
        SyntaxKind::LCurly as u8 % 2 == 1
            && SyntaxKind::RCurly as u8 == SyntaxKind::LCurly as u8 + 1
    );
    assert!(SyntaxKind::LBracket as u8 + 6 == SyntaxKind::RCurly as u8 + 1);
};

impl Builder {
    /// A builder for a text of `len` bytes, expecting about `estimate` tokens.
    fn new(len: usize, estimate: usize) -> Builder {
        Builder {
            kinds: Vec::with_capacity(estimate),
            composites: Vec::new(),
            stack: Vec::new(),
            errors: Vec::new(),
            exact: false,
            keyword: Keyword::IDLE,
            done: 0,
            memo: Memo::new(len),
            open_stack: vec![0],
            depth: 0,
            opened: 0,
            plain: Vec::new(),
            brackets: Vec::new(),
            opens: Vec::new(),
            closes: Vec::new(),
        }
    }

    /// Reads the tokens from the first one without a kind up to `known` (exclusive), whose ends
    /// `starts` holds. `unterminated` is the opening quote of an unterminated string, if any.
    fn tokens(&mut self, text: &[u8], starts: &[u32], known: usize, unterminated: Option<usize>) {
        // The plain tokens and the brackets (the lexer has given the other tokens their kinds).
        // (Fields are borrowed apart, so that the loops keep them in registers.)
        let first = self.done;
        self.done = known;
        let batch = known - first;
        if self.plain.len() < batch {
            // Once: a batch holds at most about `lexer::CHUNK` tokens.
            self.plain.resize(batch, 0);
            self.brackets.resize(batch, 0);
        }
        let (plain, brackets) = {
            let plain_list = &mut self.plain[..batch];
            let bracket_list = &mut self.brackets[..batch];
            let (mut plain, mut brackets) = (0, 0);
            for (token, &kind) in (first as u32..).zip(&self.kinds[first..known]) {
                plain_list[plain] = token;
                plain += (kind == SyntaxKind::Root) as usize;
                bracket_list[brackets] = token;
                brackets += is_bracket(kind) as usize;
            }
            (plain, brackets)
        };

        // The kinds of plain tokens, and (while the brackets match) keyword and word errors.
        let exact = self.exact;
        {
            let Builder {
                kinds,
                memo,
                errors,
                plain: plain_list,
                ..
            } = self;
            for &token in &plain_list[..plain] {
                let token = token as usize;
                let span = &starts[token..token + 2];
                let (start, end) = (span[0] as usize, span[1] as usize);
                let kind = memo.classify(text, start, end);
                kinds[token] = kind;
                if !exact && ((kind == SyntaxKind::KeywordPart) | (kind == SyntaxKind::Malformed)) {
                    word_errors(kinds, errors, text, starts, token);
                }
            }
            if !exact && let Some(at) = unterminated {
                // The string runs to the end: it is the last token.
                errors.push(unterminated_string(at));
            }
        }

        if exact {
            self.read_exactly(text, starts, first, known, unterminated);
            return;
        }
        if !self.match_brackets(brackets) {
            // A closing bracket that does not match: read everything again, one token at a
            // time.
            self.exact = true;
            self.errors.clear();
            self.composites.clear();
            self.stack.clear();
            self.keyword = Keyword::IDLE;
            self.read_exactly(text, starts, 0, known, unterminated);
        }
    }

    /// Matches the first `count` brackets of the batch, without a branch on which kind each is:
    /// the innermost open composites are on `open_stack` (above a sentinel that matches no
    /// closer), each as its index and the kind of its closing bracket; the new composites and
    /// the closings are listed, then written. Returns false, having changed nothing, at a
    /// closing bracket that does not match.
    fn match_brackets(&mut self, count: usize) -> bool {
        if self.opens.len() < count {
            self.opens.resize(count, 0);
            self.closes.resize(count, Closing::default());
        }
        let Builder {
            kinds,
            composites,
            open_stack,
            depth: saved_depth,
            opened: saved_opened,
            brackets,
            opens: open_list,
            closes: close_list,
            ..
        } = self;
        let (mut opens, mut closes) = (0, 0);
        let mut depth = *saved_depth;
        let mut opened = *saved_opened;
        for &token in &brackets[..count] {
            let kind = kinds[token as usize] as u8;
            let open = usize::from(kind & 1);
            if depth + 1 >= open_stack.len() {
                open_stack.resize(2 * open_stack.len() + 2, 0);
            }
            let top = open_stack[depth];
            open_stack[depth + 1] = (opened as u64) << 8 | u64::from(kind + 1);
            if open == 0 && top as u8 != kind {
                return false;
            }
            open_list[opens] = token;
            opens += open;
            close_list[closes] = Closing {
                composite: (top >> 8) as u32,
                end: token + 1,
                opened: opened as u32,
            };
            closes += 1 - open;
            opened += open;
            depth = depth + 2 * open - 1;
        }
        *saved_depth = depth;
        *saved_opened = opened;
        composites.extend(open_list[..opens].iter().map(|&open| CompositeData {
            open,
            end: 0,
            descendants: 0,
            closed: false,
        }));
        for closing in &close_list[..closes] {
            let data = &mut composites[closing.composite as usize];
            data.end = closing.end;
            data.closed = true;
            data.descendants = closing.opened - closing.composite - 1;
        }
        true
    }

    /// After the last token: the composites still open, as frames (outermost first).
    fn finish_matching(&mut self, starts: &[u32]) {
        if self.exact {
            return;
        }
        for &entry in &self.open_stack[1..=self.depth] {
            let composite = (entry >> 8) as u32;
            let open = self.composites[composite as usize].open as usize;
            self.stack.push(Frame {
                composite,
                close: closer_for(self.kinds[open]),
                open_at: starts[open],
                keyword: Keyword::IDLE,
            });
        }
    }

    /// Follows brackets and keyword messages through the tokens `from..to` one at a time, by
    /// the rules of [`KeywordState`]; their kinds are known.
    #[cold]
    fn read_exactly(
        &mut self,
        text: &[u8],
        starts: &[u32],
        from: usize,
        to: usize,
        unterminated: Option<usize>,
    ) {
        let mut keyword = self.keyword;
        for token in from..to {
            let kind = self.kinds[token];
            if kind.is_trivia() {
                continue;
            }
            let start = starts[token] as usize;
            let end = starts[token + 1] as usize;
            if kind.is_open() {
                keyword.node();
                self.stack.push(Frame {
                    composite: self.composites.len() as u32,
                    close: closer_for(kind),
                    open_at: start as u32,
                    keyword,
                });
                keyword = Keyword::IDLE;
                self.composites.push(CompositeData {
                    open: token as u32,
                    end: 0,
                    descendants: 0,
                    closed: false,
                });
                continue;
            }
            if kind.is_close() {
                if let Some(saved) = close_bracket(
                    text,
                    text[start],
                    start,
                    token as u32,
                    &mut self.stack,
                    &mut self.composites,
                    &mut self.errors,
                ) {
                    keyword = saved;
                }
                continue;
            }
            match kind {
                SyntaxKind::KeywordPart => {
                    if keyword.state == EXPECTING {
                        let waiting = keyword.start as usize..keyword.end as usize;
                        self.errors.push(keyword_error(text, waiting, start..end));
                    }
                    keyword = Keyword {
                        state: EXPECTING,
                        start: start as u32,
                        end: end as u32,
                    };
                }
                SyntaxKind::Malformed => {
                    self.errors
                        .push(malformed_word(&text[start..end], start..end));
                }
                _ => {
                    if unterminated == Some(start) {
                        self.errors.push(unterminated_string(start));
                    }
                    keyword.node();
                }
            }
        }
        self.keyword = keyword;
    }
}

/// The error, if any, of the keyword part or malformed word `token` (while the brackets
/// match); the kinds up to `token` are known.
#[cold]
fn word_errors(
    kinds: &[SyntaxKind],
    errors: &mut Vec<SyntaxError>,
    text: &[u8],
    starts: &[u32],
    token: usize,
) {
    let span = starts[token] as usize..starts[token + 1] as usize;
    if kinds[token] == SyntaxKind::Malformed {
        errors.push(malformed_word(&text[span.clone()], span));
    } else if let Some(waiting) = key_before(kinds, starts, token) {
        errors.push(keyword_error(text, waiting, span));
    }
}

/// The keyword part that waits for its argument when the keyword part `token` comes, if any:
/// the token before it that the language sees, trivia and malformed words aside, when that is a
/// keyword part.
fn key_before(kinds: &[SyntaxKind], starts: &[u32], token: usize) -> Option<Range<usize>> {
    let mut i = token;
    while i > 0 {
        i -= 1;
        match kinds[i] {
            SyntaxKind::Whitespace | SyntaxKind::Comment | SyntaxKind::Malformed => {}
            SyntaxKind::KeywordPart => {
                return Some(starts[i] as usize..starts[i + 1] as usize);
            }
            _ => return None,
        }
    }
    None
}

fn unterminated_string(start: usize) -> SyntaxError {
    SyntaxError::new(
        SyntaxErrorKind::UnterminatedString,
        start..start + 1,
        "unterminated string: expected a closing `\"` for the string that starts here",
    )
}

/// Whether a kind is an opening or a closing bracket.
#[inline(always)]
fn is_bracket(kind: SyntaxKind) -> bool {
    (kind as u8).wrapping_sub(SyntaxKind::LBracket as u8)
        <= SyntaxKind::RCurly as u8 - SyntaxKind::LBracket as u8
}

fn parse_bytes(text: Vec<u8>) -> Parse {
    if text.len() > MAX_SOURCE_LEN {
        return too_large(&text);
    }
    // The encoding is checked at the end, when the lexer has seen a byte that is not ASCII or is
    // NUL (errors are sorted by position at the end, and no other error covers such a byte).
    let len = text.len();
    let estimate = len / 3 + 16;
    let mut starts: Vec<u32> = Vec::with_capacity(estimate + 1);
    let mut builder = Builder::new(len, estimate);

    let mut pos = 0usize;
    if text.starts_with(BOM) {
        builder.kinds.push(SyntaxKind::ByteOrderMark);
        builder.done = 1;
        starts.push(0);
        pos = BOM.len();
    }

    // Tokens are found a chunk at a time (the first pass, in `lexer`); then the tokens whose
    // ends are known (all but the last) are read (the second pass).
    let mut lexer = Lexer::new(&text, pos);
    loop {
        let more = lexer.fill(&mut starts, &mut builder.kinds);
        if !more {
            starts.push(len as u32);
        }
        builder.tokens(&text, &starts, starts.len() - 1, lexer.unterminated());
        if !more {
            break;
        }
    }
    builder.finish_matching(&starts);
    let utf8 = lexer.plain_ascii() || check_encoding(&text, &mut builder.errors);

    let Builder {
        kinds,
        mut composites,
        stack,
        mut errors,
        ..
    } = builder;
    close_unclosed(
        &text,
        &mut composites,
        stack,
        kinds.len() as u32,
        &mut errors,
    );
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    // Every byte in exactly one token: the starts rise from 0 to the end, one per token.
    debug_assert!(
        starts.first() == Some(&0)
            && starts.last() == Some(&(len as u32))
            && starts.len() == kinds.len() + 1
            && starts.windows(2).all(|w| w[0] < w[1]),
        "tokens do not tile the text"
    );
    Parse {
        tree: SyntaxTree {
            text,
            kinds,
            starts,
            composites,
            utf8,
        },
        errors,
    }
}

/// The parse of a text too large for 32-bit offsets: an error, and a tree that holds nothing
/// (it cannot address the text).
fn too_large(text: &[u8]) -> Parse {
    let error = SyntaxError::new(
        SyntaxErrorKind::TooLarge,
        0..0,
        format!(
            "the file is {} bytes; the parser reads at most {} bytes",
            text.len(),
            MAX_SOURCE_LEN
        ),
    );
    Parse {
        tree: SyntaxTree {
            text: Vec::new(),
            kinds: Vec::new(),
            starts: vec![0],
            composites: Vec::new(),
            utf8: true,
        },
        errors: vec![error],
    }
}

/// Ends the composites still open at the end of the text (`stack`, innermost last) and
/// reports them. Only the outermost unclosed brackets are reported: a million of them is one
/// mistake repeated, not a million things for a person to read.
fn close_unclosed(
    text: &[u8],
    composites: &mut [CompositeData],
    mut stack: Vec<Frame>,
    token_count: u32,
    errors: &mut Vec<SyntaxError>,
) {
    let unreported = stack.len().saturating_sub(MAX_UNCLOSED_REPORTED);
    while let Some(frame) = stack.pop() {
        finish(composites, &frame, token_count, false);
        if stack.len() >= MAX_UNCLOSED_REPORTED {
            continue;
        }
        let at = frame.open_at as usize;
        let more = if stack.len() + 1 == MAX_UNCLOSED_REPORTED && unreported > 0 {
            format!(" (and {unreported} more unclosed brackets inside it)")
        } else {
            String::new()
        };
        errors.push(SyntaxError::new(
            SyntaxErrorKind::UnclosedBracket,
            at..at + 1,
            format!(
                "unclosed `{}`: expected a `{}` before the end of the file{more}",
                char::from(text[at]),
                char::from(frame.close)
            ),
        ));
    }
}

fn finish(composites: &mut [CompositeData], frame: &Frame, end: u32, closed: bool) {
    let count = composites.len() as u32;
    let data = &mut composites[frame.composite as usize];
    data.end = end;
    data.closed = closed;
    data.descendants = count - frame.composite - 1;
}

fn close_bracket(
    text: &[u8],
    byte: u8,
    at: usize,
    token: u32,
    stack: &mut Vec<Frame>,
    composites: &mut [CompositeData],
    errors: &mut Vec<SyntaxError>,
) -> Option<Keyword> {
    let closer = char::from(byte);
    let Some(top) = stack.last() else {
        errors.push(SyntaxError::new(
            SyntaxErrorKind::UnopenedBracket,
            at..at + 1,
            format!("unopened `{closer}`: there is no open bracket for it to close"),
        ));
        return None;
    };
    if top.close == byte {
        let frame = stack.pop()?;
        finish(composites, &frame, token + 1, true);
        return Some(frame.keyword);
    }
    let top_at = top.open_at as usize;
    let opener = char::from(text[top_at]);
    let expected = char::from(top.close);
    if let Some(depth) = stack.iter().rposition(|f| f.close == byte) {
        // The closer belongs to an outer bracket: the inner ones end here, unclosed.
        errors.push(
            SyntaxError::new(
                SyntaxErrorKind::MismatchedBracket,
                at..at + 1,
                format!(
                    "mismatched `{closer}`: expected `{expected}` to close the `{opener}` opened earlier"
                ),
            )
            .with_related(top_at..top_at + 1, format!("this `{opener}` is still open")),
        );
        while stack.len() > depth + 1 {
            if let Some(frame) = stack.pop() {
                finish(composites, &frame, token, false);
            }
        }
        let frame = stack.pop()?;
        finish(composites, &frame, token + 1, true);
        Some(frame.keyword)
    } else {
        errors.push(
            SyntaxError::new(
                SyntaxErrorKind::UnopenedBracket,
                at..at + 1,
                format!(
                    "unopened `{closer}`: no `{}` is open; expected `{expected}` to close the `{opener}` opened earlier",
                    match byte {
                        b']' => '[',
                        b')' => '(',
                        _ => '{',
                    }
                ),
            )
            .with_related(top_at..top_at + 1, format!("the innermost open bracket is this `{opener}`")),
        );
        None
    }
}

fn keyword_error(text: &[u8], waiting: Range<usize>, here: Range<usize>) -> SyntaxError {
    let key = String::from_utf8_lossy(&text[waiting.clone()]);
    SyntaxError::new(
        SyntaxErrorKind::KeywordWithoutArgument,
        here,
        format!("keyword `{key}` expects an argument, found another keyword part"),
    )
    .with_related(waiting, format!("`{key}` needs one argument after it"))
}

fn malformed_word(token: &[u8], span: Range<usize>) -> SyntaxError {
    let shown = String::from_utf8_lossy(token);
    let what = match token {
        b"'" => "a literal word needs a name after `'`",
        b"@" => "a self word needs a name after `@`",
        b":$" => "a get-argument word needs a name after `:$`",
        _ => "a get-self word needs a name after `$@`",
    };
    SyntaxError::new(
        SyntaxErrorKind::MalformedWord,
        span,
        format!("malformed word `{shown}`: {what}"),
    )
}

/// Reports invalid UTF-8 (each bad sequence, up to a bound) and NUL bytes. Returns whether the
/// text is valid UTF-8.
fn check_encoding(text: &[u8], errors: &mut Vec<SyntaxError>) -> bool {
    const MAX_REPORTED: usize = 20;
    let mut reported = 0;
    let mut index: Option<LineIndex> = None;
    let mut rest = 0usize;
    let mut valid = true;
    while rest < text.len() {
        match std::str::from_utf8(&text[rest..]) {
            Ok(_) => break,
            Err(e) => {
                valid = false;
                let at = rest + e.valid_up_to();
                let bad = e.error_len().unwrap_or(text.len() - at).max(1);
                if reported < MAX_REPORTED {
                    let index = index.get_or_insert_with(|| LineIndex::new(text));
                    let lc = index.line_col(text, at);
                    errors.push(SyntaxError::new(
                        SyntaxErrorKind::InvalidUtf8,
                        at..at + bad,
                        format!(
                            "invalid UTF-8 at byte offset {at} (line {}, column {}): byte 0x{:02X}; a source file must be UTF-8",
                            lc.line, lc.column, text[at]
                        ),
                    ));
                }
                reported += 1;
                rest = at + bad;
            }
        }
    }
    for at in memchr::memchr_iter(0, text).take(MAX_REPORTED) {
        errors.push(SyntaxError::new(
            SyntaxErrorKind::NulByte,
            at..at + 1,
            format!("NUL byte at byte offset {at}: a source file must not contain NUL"),
        ));
    }
    valid
}

/// The parser checked against the single-pass one it replaced (kept here verbatim as the
/// reference), on the repository's sources, the fixtures, generated modules and random bytes.
#[cfg(test)]
mod differential {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    enum Class {
        Plain,
        Space,
        Hash,
        Open,
        Close,
        Quote,
        Special,
    }

    static REF_CLASSES: [Class; 256] = {
        let mut table = [Class::Plain; 256];
        table[b' ' as usize] = Class::Space;
        table[b'\t' as usize] = Class::Space;
        table[b'\r' as usize] = Class::Space;
        table[b'\n' as usize] = Class::Space;
        table[0x0B] = Class::Space;
        table[0x0C] = Class::Space;
        table[b'#' as usize] = Class::Hash;
        table[b'(' as usize] = Class::Open;
        table[b'[' as usize] = Class::Open;
        table[b'{' as usize] = Class::Open;
        table[b')' as usize] = Class::Close;
        table[b']' as usize] = Class::Close;
        table[b'}' as usize] = Class::Close;
        table[b'"' as usize] = Class::Quote;
        let specials = b";\\^&%|,~";
        let mut i = 0;
        while i < specials.len() {
            table[specials[i] as usize] = Class::Special;
            i += 1;
        }
        table
    };

    const fn ref_class_table(members: [Class; 2]) -> [bool; 256] {
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let c = REF_CLASSES[i] as u8;
            table[i] = c == members[0] as u8 || c == members[1] as u8;
            i += 1;
        }
        table
    }

    static REF_SPACE: [bool; 256] = ref_class_table([Class::Space, Class::Space]);
    static REF_PLAIN: [bool; 256] = ref_class_table([Class::Plain, Class::Quote]);
    static REF_SPECIAL: [bool; 256] = ref_class_table([Class::Special, Class::Special]);

    fn ref_run(bytes: &[u8], table: &[bool; 256]) -> usize {
        bytes
            .iter()
            .position(|&b| !table[b as usize])
            .unwrap_or(bytes.len())
    }

    fn ref_scan_string(text: &[u8], pos: usize) -> usize {
        let mut i = pos + 1;
        while let Some(found) = memchr::memchr2(b'"', b'\\', &text[i..]) {
            let at = i + found;
            if text[at] == b'"' {
                return at + 1;
            }
            i = at + 2;
            if i >= text.len() {
                break;
            }
        }
        usize::MAX
    }

    struct RefFrame {
        composite: u32,
        close: u8,
        open_at: u32,
        /// The enclosing composite's keyword state, restored when this one closes.
        keyword: KeywordState,
    }

    fn ref_finish(composites: &mut [CompositeData], frame: &RefFrame, end: u32, closed: bool) {
        let count = composites.len() as u32;
        let data = &mut composites[frame.composite as usize];
        data.end = end;
        data.closed = closed;
        data.descendants = count - frame.composite - 1;
    }

    /// `closed`: the closing byte, its offset and its token index.
    fn ref_close_bracket(
        text: &[u8],
        (byte, at, token): (u8, usize, u32),
        stack: &mut Vec<RefFrame>,
        composites: &mut [CompositeData],
        errors: &mut Vec<SyntaxError>,
    ) -> Option<KeywordState> {
        let closer = char::from(byte);
        let Some(top) = stack.last() else {
            errors.push(SyntaxError::new(
                SyntaxErrorKind::UnopenedBracket,
                at..at + 1,
                format!("unopened `{closer}`: there is no open bracket for it to close"),
            ));
            return None;
        };
        if top.close == byte {
            let frame = stack.pop()?;
            ref_finish(composites, &frame, token + 1, true);
            return Some(frame.keyword);
        }
        let top_at = top.open_at as usize;
        let opener = char::from(text[top_at]);
        let expected = char::from(top.close);
        if let Some(depth) = stack.iter().rposition(|f| f.close == byte) {
            // The closer belongs to an outer bracket: the inner ones end here, unclosed.
            errors.push(
                SyntaxError::new(
                    SyntaxErrorKind::MismatchedBracket,
                    at..at + 1,
                    format!(
                        "mismatched `{closer}`: expected `{expected}` to close the `{opener}` opened earlier"
                    ),
                )
                .with_related(top_at..top_at + 1, format!("this `{opener}` is still open")),
            );
            while stack.len() > depth + 1 {
                if let Some(frame) = stack.pop() {
                    ref_finish(composites, &frame, token, false);
                }
            }
            let frame = stack.pop()?;
            ref_finish(composites, &frame, token + 1, true);
            Some(frame.keyword)
        } else {
            errors.push(
                SyntaxError::new(
                    SyntaxErrorKind::UnopenedBracket,
                    at..at + 1,
                    format!(
                        "unopened `{closer}`: no `{}` is open; expected `{expected}` to close the `{opener}` opened earlier",
                        match byte {
                            b']' => '[',
                            b')' => '(',
                            _ => '{',
                        }
                    ),
                )
                .with_related(top_at..top_at + 1, format!("the innermost open bracket is this `{opener}`")),
            );
            None
        }
    }

    fn ref_closer_for(open: u8) -> u8 {
        match open {
            b'[' => b']',
            b'(' => b')',
            _ => b'}',
        }
    }

    /// The single-pass parser as it was before the boundary pass (the reference).
    fn parse_reference(text: Vec<u8>) -> Parse {
        let mut errors = Vec::new();
        if text.len() > MAX_SOURCE_LEN {
            return too_large(&text);
        }
        check_encoding(&text, &mut errors);

        let len = text.len();
        let mut kinds: Vec<SyntaxKind> = Vec::new();
        let mut starts: Vec<u32> = Vec::new();
        let mut composites: Vec<CompositeData> = Vec::new();
        let mut stack: Vec<RefFrame> = Vec::new();
        let mut root_keyword = KeywordState::Idle;

        let mut pos = 0usize;
        if text.starts_with(BOM) {
            kinds.push(SyntaxKind::ByteOrderMark);
            starts.push(0);
            pos = BOM.len();
        }

        while pos < len {
            let start = pos;
            let byte = text[pos];
            let kind = match REF_CLASSES[byte as usize] {
                Class::Space => {
                    pos += 1 + ref_run(&text[pos + 1..], &REF_SPACE);
                    SyntaxKind::Whitespace
                }
                Class::Hash => {
                    pos = ref_comment_end(&text, pos);
                    SyntaxKind::Comment
                }
                Class::Plain => {
                    pos += 1 + ref_run(&text[pos + 1..], &REF_PLAIN);
                    ref_plain(&text, start..pos, &mut root_keyword, &mut errors)
                }
                Class::Special => {
                    pos += 1 + ref_run(&text[pos + 1..], &REF_SPECIAL);
                    root_keyword.node();
                    SyntaxKind::EvalWord
                }
                Class::Quote => {
                    pos = ref_string_end(&text, start, &mut errors);
                    root_keyword.node();
                    SyntaxKind::String
                }
                Class::Open => {
                    pos += 1;
                    root_keyword.node();
                    stack.push(RefFrame {
                        composite: composites.len() as u32,
                        close: ref_closer_for(byte),
                        open_at: start as u32,
                        keyword: std::mem::replace(&mut root_keyword, KeywordState::Idle),
                    });
                    composites.push(CompositeData {
                        open: kinds.len() as u32,
                        end: 0,
                        descendants: 0,
                        closed: false,
                    });
                    ref_opener_kind(byte)
                }
                Class::Close => {
                    pos += 1;
                    let token = kinds.len() as u32;
                    let closed = (byte, start, token);
                    if let Some(saved) =
                        ref_close_bracket(&text, closed, &mut stack, &mut composites, &mut errors)
                    {
                        root_keyword = saved;
                    }
                    ref_closer_kind(byte)
                }
            };
            kinds.push(kind);
            starts.push(start as u32);
        }

        ref_close_unclosed(
            &text,
            &mut composites,
            stack,
            kinds.len() as u32,
            &mut errors,
        );
        starts.push(len as u32);
        errors.sort_by_key(|e| (e.span.start, e.span.end));
        Parse {
            tree: SyntaxTree {
                utf8: std::str::from_utf8(&text).is_ok(),
                text,
                kinds,
                starts,
                composites,
            },
            errors,
        }
    }

    /// A plain token's kind; a keyword part without the argument of the one before it, or a
    /// malformed word, is an error.
    fn ref_plain(
        text: &[u8],
        span: Range<usize>,
        keyword: &mut KeywordState,
        errors: &mut Vec<SyntaxError>,
    ) -> SyntaxKind {
        let kind = classify_plain(&text[span.clone()]);
        match kind {
            SyntaxKind::KeywordPart => {
                if let (Some(waiting), _) = keyword.key(span.clone()) {
                    errors.push(keyword_error(text, waiting, span));
                }
            }
            SyntaxKind::Malformed => errors.push(malformed_word(&text[span.clone()], span)),
            _ => {
                keyword.node();
            }
        }
        kind
    }

    /// Where the string that opens at `start` ends (the end of the text, and an error, if
    /// it is never closed).
    fn ref_string_end(text: &[u8], start: usize, errors: &mut Vec<SyntaxError>) -> usize {
        let end = ref_scan_string(text, start);
        if end == usize::MAX {
            errors.push(unterminated_string(start));
            return text.len();
        }
        end
    }

    /// Where the comment at `pos` ends: before the line feed, and before a carriage return
    /// directly in front of it.
    fn ref_comment_end(text: &[u8], pos: usize) -> usize {
        match memchr::memchr(b'\n', &text[pos..]) {
            Some(i) if i > 1 && text[pos + i - 1] == b'\r' => pos + i - 1,
            Some(i) => pos + i,
            None => text.len(),
        }
    }

    fn ref_closer_kind(byte: u8) -> SyntaxKind {
        match byte {
            b']' => SyntaxKind::RBracket,
            b')' => SyntaxKind::RParen,
            _ => SyntaxKind::RCurly,
        }
    }

    fn ref_opener_kind(byte: u8) -> SyntaxKind {
        match byte {
            b'[' => SyntaxKind::LBracket,
            b'(' => SyntaxKind::LParen,
            _ => SyntaxKind::LCurly,
        }
    }

    /// Ends and reports the composites still open at the end (the outermost ones only).
    fn ref_close_unclosed(
        text: &[u8],
        composites: &mut [CompositeData],
        mut stack: Vec<RefFrame>,
        token_count: u32,
        errors: &mut Vec<SyntaxError>,
    ) {
        let unreported = stack.len().saturating_sub(MAX_UNCLOSED_REPORTED);
        while let Some(frame) = stack.pop() {
            ref_finish(composites, &frame, token_count, false);
            if stack.len() >= MAX_UNCLOSED_REPORTED {
                continue;
            }
            let at = frame.open_at as usize;
            let more = if stack.len() + 1 == MAX_UNCLOSED_REPORTED && unreported > 0 {
                format!(" (and {unreported} more unclosed brackets inside it)")
            } else {
                String::new()
            };
            errors.push(SyntaxError::new(
                SyntaxErrorKind::UnclosedBracket,
                at..at + 1,
                format!(
                    "unclosed `{}`: expected a `{}` before the end of the file{more}",
                    char::from(text[at]),
                    char::from(frame.close)
                ),
            ));
        }
    }

    /// Parses `text` both ways and fails with the first difference.
    fn check(text: &[u8]) {
        let new = parse_bytes(text.to_vec());
        let old = parse_reference(text.to_vec());
        let show = || String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
        assert_eq!(new.tree.text, old.tree.text, "text of {:?}", show());
        assert_eq!(new.tree.starts, old.tree.starts, "starts of {:?}", show());
        assert_eq!(new.tree.kinds, old.tree.kinds, "kinds of {:?}", show());
        let composites = |p: &Parse| {
            p.tree
                .composites
                .iter()
                .map(|c| (c.open, c.end, c.descendants, c.closed))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            composites(&new),
            composites(&old),
            "composites of {:?}",
            show()
        );
        assert_eq!(new.errors, old.errors, "errors of {:?}", show());
    }

    /// Every prefix and suffix cut of `text` at a few places, to exercise the ends.
    fn check_with_cuts(text: &[u8]) {
        check(text);
        let len = text.len();
        for cut in [1, 2, 3, 7, len / 3, len / 2, len.saturating_sub(1)] {
            if cut < len {
                check(&text[..cut]);
                check(&text[cut..]);
            }
        }
    }

    fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            // Hidden entries are not source: an image built in `spry-src/` (the README's
            // first command) holds megabytes of database files.
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }

    #[test]
    fn agrees_on_repository_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        walk(&root.join("spry-src"), &mut files);
        walk(&root.join("fixtures"), &mut files);
        assert!(files.len() > 10, "found only {} files", files.len());
        for path in files {
            let text = std::fs::read(&path).unwrap();
            check_with_cuts(&text);
            // The same text with CRLF line endings and behind a byte order mark.
            let crlf: Vec<u8> = text
                .iter()
                .flat_map(|&b| {
                    if b == b'\n' {
                        vec![b'\r', b'\n']
                    } else {
                        vec![b]
                    }
                })
                .collect();
            check(&crlf);
            let mut bom = BOM.to_vec();
            bom.extend_from_slice(&text);
            check(&bom);
        }
    }

    #[test]
    fn agrees_on_generated_modules() {
        use crate::corpus::{CorpusOptions, generate_file, generate_tree};
        for seed in 0..6u64 {
            let options = CorpusOptions {
                seed,
                ..CorpusOptions::default()
            };
            let text = generate_file(20_000 + 30_000 * seed as usize, &options);
            check_with_cuts(text.as_bytes());
        }
        let options = CorpusOptions {
            seed: 99,
            modules_per_script: 2,
            ..CorpusOptions::default()
        };
        for file in generate_tree(4, &options) {
            check_with_cuts(file.text.as_bytes());
        }
    }

    #[test]
    fn agrees_with_errors_far_into_a_file() {
        // Errors after many of the lexer's chunks: the parser reads the brackets and keyword
        // messages of a file that is fine one way and switches at the first bracket that does
        // not match.
        use crate::corpus::{CorpusOptions, generate_file};
        let text = generate_file(60_000, &CorpusOptions::default()).into_bytes();
        let insertions: &[&[u8]] = &[
            b")",
            b"]",
            b"}",
            b"[",
            b"(",
            b" x: y: 1 ",
            b" a: # note\n b: ",
            b" a: @ b: ",
            b" ' ",
            b" @ ",
            b" :$ ",
            b" $@ ",
            b" \"open",
            b"\xFF\x00",
            b"#",
        ];
        for (i, insertion) in insertions.iter().enumerate() {
            for at in [9_000 + i * 7, 33_333 + i * 13, text.len() - 2] {
                let mut changed = text[..at].to_vec();
                changed.extend_from_slice(insertion);
                changed.extend_from_slice(&text[at..]);
                check(&changed);
            }
        }
        // Two faults: an early keyword error and a late stray closer.
        let mut changed = text.clone();
        changed.splice(40_000..40_000, b" ] ".iter().copied());
        changed.splice(12_000..12_000, b" x: y: ".iter().copied());
        check(&changed);
    }

    #[test]
    fn agrees_on_words_and_numbers() {
        // Every kind of plain token, at every length the memo and the eight-byte reads care
        // about, also at the very end of the text.
        let mut words: Vec<Vec<u8>> = Vec::new();
        for stem in [
            &b"a"[..],
            b"ab:",
            b"::",
            b"Mod::x",
            b"$Mod::at:",
            b":$x",
            b":x",
            b":=",
            b"$@x",
            b"$x",
            b"@x",
            b"'x",
            b"1",
            b"-1",
            b"+7",
            b"1_0",
            b"1.5",
            b"-2e-3",
            b"1e",
            b"-inf",
            b"+NaN",
            b"9223372036854775807",
            b"9223372036854775808",
            b"-",
            b"x\0",
            b"\xC3\xA9:",
        ] {
            for pad in 0..18 {
                let mut word = stem.to_vec();
                word.splice(
                    stem.len() / 2..stem.len() / 2,
                    std::iter::repeat_n(b'k', pad),
                );
                words.push(word.clone());
                let mut colons = word.clone();
                colons.extend_from_slice(b"::z");
                words.push(colons);
            }
        }
        let mut text = Vec::new();
        for (i, word) in words.iter().enumerate() {
            text.extend_from_slice(word);
            text.push(if i % 3 == 0 { b'\n' } else { b' ' });
            check(word);
        }
        check(&text);
        // The same words twice, so that the second time they come from the memo.
        let twice = [text.clone(), text].concat();
        check(&twice);
    }

    #[test]
    fn agrees_on_edge_cases() {
        let cases: &[&[u8]] = &[
            b"",
            b"\"",
            b"\"\\",
            b"\"\\\"",
            b"\"a\\\\\"b",
            b"a\"b c\"",
            b"\"a\"\"b\"",
            b"\"a\"b",
            b"#",
            b"#\r",
            b"#\r\n",
            b"#\n",
            b"a#b\r\n#c\n",
            b"\xEF\xBB\xBF",
            b"\xEF\xBB\xBF\"x\"",
            b"\xEF\xBB\xBFabc",
            b"\xEF\xBB",
            b"\xEF\xBB\xBF\xEF\xBB\xBF",
            b";;a,b&&|c~=d",
            b"((]])}{",
            b"x: y: 1",
            b"a at: 1 put: 2",
            b"[at: 1] put: 2",
            b"' @ :$ $@ : := $ $foo: :$x",
            b"1 -1 +1 1_000 1_ -_1 1.5 5. 1e3 1e 1e+ -inf +nan inf 99999999999999999999",
            b"Mod::at: 1 put: 2 $Mod::x a::b :: ::: a:",
            b"\0\xff\xfe a\0b",
        ];
        for case in cases {
            check(case);
        }
    }

    #[test]
    fn agrees_across_chunk_boundaries() {
        // Long runs of every class, so that tokens, strings and comments straddle the lexer's
        // blocks (64 bytes) and chunks (8 KiB).
        let mut text = Vec::new();
        for piece in [
            &b"a"[..],
            b" ",
            b";",
            b"[",
            b"\"s\\\"",
            b"# c",
            b"\r\n",
            b"x:",
            b"\"",
        ] {
            for n in [1usize, 63, 64, 65, 4097, 8191, 8192, 8193, 20_000] {
                text.clear();
                text.extend_from_slice(b"q ");
                for _ in 0..n {
                    text.extend_from_slice(piece);
                }
                text.extend_from_slice(b" \"end\" z");
                check(&text);
                text.truncate(text.len() - 8);
                check(&text);
            }
        }
    }

    /// Case counts are kept small for `cargo test`; `SPRY_DIFF_SCALE=100` runs a hundred times more.
    fn cases(default: u32) -> u32 {
        let scale = std::env::var("SPRY_DIFF_SCALE")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1);
        default.saturating_mul(scale)
    }

    /// Tokens that are likely to trip a lexer up.
    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"\""[..]),
            Just(&b"#"[..]),
            Just(&b"\\"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"\r"[..]),
            Just(&b"\n"[..]),
            Just(&b" "[..]),
            Just(&b"\t\x0B\x0C"[..]),
            Just(&b"["[..]),
            Just(&b"]"[..]),
            Just(&b"("[..]),
            Just(&b")"[..]),
            Just(&b"{"[..]),
            Just(&b"}"[..]),
            Just(&b";"[..]),
            Just(&b"^&%|,~"[..]),
            Just(&b":"[..]),
            Just(&b"::"[..]),
            Just(&b"$"[..]),
            Just(&b"@"[..]),
            Just(&b"'"[..]),
            Just(&b"\xEF\xBB\xBF"[..]),
            Just(&b"\0"[..]),
            Just(&b"\xff"[..]),
            Just(&b"\xC3\xA9"[..]),
            Just(&b"a"[..]),
            Just(&b"at:"[..]),
            Just(&b"Mod::x"[..]),
            Just(&b"1"[..]),
            Just(&b"-"[..]),
            Just(&b"+"[..]),
            Just(&b"."[..]),
            Just(&b"e"[..]),
            Just(&b"_"[..]),
            Just(&b"inf"[..]),
        ];
        proptest::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(128)))]

        #[test]
        fn agrees_on_arbitrary_bytes(text in proptest::collection::vec(any::<u8>(), 0..256)) {
            check(&text);
        }

        #[test]
        fn agrees_on_token_soup(text in soup()) {
            check(&text);
        }

        #[test]
        fn reads_words_as_classify_plain(
            token in "[-+0-9._eEinfaNx:$@']{1,20}",
            after in proptest::collection::vec(any::<u8>(), 0..10),
        ) {
            let mut text = token.as_bytes().to_vec();
            text.extend_from_slice(&after);
            let expected = classify_plain(token.as_bytes());
            prop_assert_eq!(classify_token(&text, 0, token.len()), expected);
            let mut memo = Memo::new(text.len());
            prop_assert_eq!(memo.classify(&text, 0, token.len()), expected);
            prop_assert_eq!(memo.classify(&text, 0, token.len()), expected);
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(8)))]

        #[test]
        fn agrees_on_long_token_soup(parts in proptest::collection::vec(soup(), 1..100)) {
            check(&parts.concat());
        }
    }
}
