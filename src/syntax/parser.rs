//! From bytes to a lossless tree and a list of errors, in one pass. Parsing never fails.

use std::ops::Range;

use super::error::{LineIndex, SyntaxError, SyntaxErrorKind};
use super::kind::SyntaxKind;
use super::literal::classify_plain;
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

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Largest text the tree addresses (offsets are 32-bit).
pub const MAX_SOURCE_LEN: usize = u32::MAX as usize - 1;

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

static CLASSES: [Class; 256] = {
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

struct Frame {
    composite: u32,
    close: u8,
    open_at: u32,
    keyword: KeywordState,
}

fn closer_for(open: u8) -> u8 {
    match open {
        b'[' => b']',
        b'(' => b')',
        _ => b'}',
    }
}

fn parse_bytes(text: Vec<u8>) -> Parse {
    let mut errors = Vec::new();
    if text.len() > MAX_SOURCE_LEN {
        errors.push(SyntaxError::new(
            SyntaxErrorKind::TooLarge,
            0..0,
            format!(
                "the file is {} bytes; the parser reads at most {} bytes",
                text.len(),
                MAX_SOURCE_LEN
            ),
        ));
        // The tree cannot address the text: keep it as one opaque token-free tree.
        return Parse {
            tree: SyntaxTree {
                text: Vec::new(),
                kinds: Vec::new(),
                starts: vec![0],
                composites: Vec::new(),
            },
            errors,
        };
    }
    check_encoding(&text, &mut errors);

    let len = text.len();
    let estimate = len / 3 + 16;
    let mut kinds: Vec<SyntaxKind> = Vec::with_capacity(estimate);
    let mut starts: Vec<u32> = Vec::with_capacity(estimate + 1);
    let mut composites: Vec<CompositeData> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root_keyword = KeywordState::Idle;

    let mut pos = 0usize;
    if text.starts_with(BOM) {
        kinds.push(SyntaxKind::ByteOrderMark);
        starts.push(0);
        pos = BOM.len();
    }

    macro_rules! keyword {
        () => {
            match stack.last_mut() {
                Some(frame) => &mut frame.keyword,
                None => &mut root_keyword,
            }
        };
    }

    while pos < len {
        let start = pos;
        let byte = text[pos];
        let kind = match CLASSES[byte as usize] {
            Class::Space => {
                pos += 1;
                while pos < len && CLASSES[text[pos] as usize] == Class::Space {
                    pos += 1;
                }
                SyntaxKind::Whitespace
            }
            Class::Hash => {
                pos = match memchr::memchr(b'\n', &text[pos..]) {
                    Some(i) if i > 1 && text[pos + i - 1] == b'\r' => pos + i - 1,
                    Some(i) => pos + i,
                    None => len,
                };
                SyntaxKind::Comment
            }
            Class::Plain => {
                pos += 1;
                while pos < len
                    && matches!(CLASSES[text[pos] as usize], Class::Plain | Class::Quote)
                {
                    pos += 1;
                }
                let kind = classify_plain(&text[start..pos]);
                match kind {
                    SyntaxKind::KeywordPart => {
                        if let (Some(waiting), _) = keyword!().key(start..pos) {
                            errors.push(keyword_error(&text, waiting, start..pos));
                        }
                    }
                    SyntaxKind::Malformed => {
                        errors.push(malformed_word(&text[start..pos], start..pos));
                    }
                    _ => {
                        keyword!().node();
                    }
                }
                kind
            }
            Class::Special => {
                pos += 1;
                while pos < len && CLASSES[text[pos] as usize] == Class::Special {
                    pos += 1;
                }
                keyword!().node();
                SyntaxKind::EvalWord
            }
            Class::Quote => {
                pos = scan_string(&text, pos);
                if pos == usize::MAX {
                    errors.push(SyntaxError::new(
                        SyntaxErrorKind::UnterminatedString,
                        start..start + 1,
                        "unterminated string: expected a closing `\"` for the string that starts here",
                    ));
                    pos = len;
                }
                keyword!().node();
                SyntaxKind::String
            }
            Class::Open => {
                pos += 1;
                keyword!().node();
                stack.push(Frame {
                    composite: composites.len() as u32,
                    close: closer_for(byte),
                    open_at: start as u32,
                    keyword: KeywordState::Idle,
                });
                composites.push(CompositeData {
                    open: kinds.len() as u32,
                    end: 0,
                    descendants: 0,
                    closed: false,
                });
                match byte {
                    b'[' => SyntaxKind::LBracket,
                    b'(' => SyntaxKind::LParen,
                    _ => SyntaxKind::LCurly,
                }
            }
            Class::Close => {
                pos += 1;
                let token = kinds.len() as u32;
                close_bracket(
                    &text,
                    byte,
                    start,
                    token,
                    &mut stack,
                    &mut composites,
                    &mut errors,
                );
                match byte {
                    b']' => SyntaxKind::RBracket,
                    b')' => SyntaxKind::RParen,
                    _ => SyntaxKind::RCurly,
                }
            }
        };
        kinds.push(kind);
        starts.push(start as u32);
    }

    let token_count = kinds.len() as u32;
    while let Some(frame) = stack.pop() {
        finish(&mut composites, &frame, token_count, false);
        let at = frame.open_at as usize;
        errors.push(SyntaxError::new(
            SyntaxErrorKind::UnclosedBracket,
            at..at + 1,
            format!(
                "unclosed `{}`: expected a `{}` before the end of the file",
                char::from(text[at]),
                char::from(frame.close)
            ),
        ));
    }
    starts.push(len as u32);
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    Parse {
        tree: SyntaxTree {
            text,
            kinds,
            starts,
            composites,
        },
        errors,
    }
}

/// Scans a string from its opening quote at `pos`; returns the offset after the closing quote,
/// or `usize::MAX` when there is none. A backslash escapes the next byte.
#[inline]
fn scan_string(text: &[u8], pos: usize) -> usize {
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
) {
    let closer = char::from(byte);
    let Some(top) = stack.last() else {
        errors.push(SyntaxError::new(
            SyntaxErrorKind::UnopenedBracket,
            at..at + 1,
            format!("unopened `{closer}`: there is no open bracket for it to close"),
        ));
        return;
    };
    if top.close == byte {
        if let Some(frame) = stack.pop() {
            finish(composites, &frame, token + 1, true);
        }
        return;
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
        if let Some(frame) = stack.pop() {
            finish(composites, &frame, token + 1, true);
        }
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

/// Reports invalid UTF-8 (each bad sequence, up to a bound) and NUL bytes.
fn check_encoding(text: &[u8], errors: &mut Vec<SyntaxError>) {
    const MAX_REPORTED: usize = 20;
    let mut reported = 0;
    let mut index: Option<LineIndex> = None;
    let mut rest = 0usize;
    while rest < text.len() {
        match std::str::from_utf8(&text[rest..]) {
            Ok(_) => break,
            Err(e) => {
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
}
