//! Syntax errors and source positions.

use std::fmt;
use std::ops::Range;

/// What is wrong with a piece of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyntaxErrorKind {
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// A NUL byte.
    NulByte,
    /// A string with no closing quote (reported at its opening quote).
    UnterminatedString,
    /// An opening bracket with no closing one.
    UnclosedBracket,
    /// A closing bracket with no opening one.
    UnopenedBracket,
    /// A closing bracket of another kind than the one open.
    MismatchedBracket,
    /// A keyword part where an argument was expected, or none at all.
    KeywordWithoutArgument,
    /// `'`, `@`, `:$` or `$@` alone.
    MalformedWord,
    /// Two definitions with one name in a module.
    DuplicateDefinition,
    /// A `_meta` that does not give the module a name.
    InvalidModuleMeta,
    /// Input larger than the tree can address (4 GiB).
    TooLarge,
    /// A text given as one definition that is not exactly one.
    NotADefinition,
    /// A binding whose keyword message runs on, across a line break, into a keyword-named
    /// binding below it (`x ifFalse: y` then `do: = ...` is the one message `ifFalse:do:`).
    KeywordRunsOn,
    /// Definitions that the module view cannot cut apart (they would overlap).
    OverlappingDefinitions,
}

impl SyntaxErrorKind {
    /// A short stable name for scripts and JSON output.
    pub fn code(self) -> &'static str {
        match self {
            SyntaxErrorKind::InvalidUtf8 => "invalid-utf8",
            SyntaxErrorKind::NulByte => "nul-byte",
            SyntaxErrorKind::UnterminatedString => "unterminated-string",
            SyntaxErrorKind::UnclosedBracket => "unclosed-bracket",
            SyntaxErrorKind::UnopenedBracket => "unopened-bracket",
            SyntaxErrorKind::MismatchedBracket => "mismatched-bracket",
            SyntaxErrorKind::KeywordWithoutArgument => "keyword-without-argument",
            SyntaxErrorKind::MalformedWord => "malformed-word",
            SyntaxErrorKind::DuplicateDefinition => "duplicate-definition",
            SyntaxErrorKind::InvalidModuleMeta => "invalid-module-meta",
            SyntaxErrorKind::TooLarge => "too-large",
            SyntaxErrorKind::NotADefinition => "not-a-definition",
            SyntaxErrorKind::KeywordRunsOn => "keyword-runs-on",
            SyntaxErrorKind::OverlappingDefinitions => "overlapping-definitions",
        }
    }
}

/// One error found in a piece of source: what, where (a byte range), and other places that
/// explain it (the opening bracket of a mismatch, the first of two definitions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// What kind of error.
    pub kind: SyntaxErrorKind,
    /// The byte range the error is about.
    pub span: Range<usize>,
    /// A sentence that says what is wrong and what was expected.
    pub message: String,
    /// Other byte ranges that take part, each with a label.
    pub related: Vec<(Range<usize>, String)>,
}

impl SyntaxError {
    pub(crate) fn new(
        kind: SyntaxErrorKind,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        SyntaxError {
            kind,
            span,
            message: message.into(),
            related: Vec::new(),
        }
    }

    pub(crate) fn with_related(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// A 1-based line and column; the column counts characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineCol {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Maps byte offsets of one text to lines and columns.
///
/// # Examples
/// ```
/// use spry_image::syntax::LineIndex;
/// let index = LineIndex::new("ab\nçd".as_bytes());
/// assert_eq!(index.line_col("ab\nçd".as_bytes(), 5).to_string(), "2:2");
/// ```
#[derive(Clone, Debug)]
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes the line starts of `text`.
    pub fn new(text: &[u8]) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', text).map(|i| i + 1));
        LineIndex { line_starts }
    }

    /// The line and column of byte `offset` in `text` (the text this index was made from).
    pub fn line_col(&self, text: &[u8], offset: usize) -> LineCol {
        let offset = offset.min(text.len());
        let line = self
            .line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        // A character starts at every byte that is not a UTF-8 continuation byte. (An index
        // made from another text gives a wrong column, never a panic.)
        let column = text
            .get(start..offset)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        LineCol {
            line: line as u32 + 1,
            column: column as u32 + 1,
        }
    }

    /// The byte range of 1-based `line`, without its line ending.
    pub fn line_range(&self, text: &[u8], line: u32) -> Option<Range<usize>> {
        let i = (line as usize).checked_sub(1)?;
        let start = *self.line_starts.get(i)?;
        let mut end = self
            .line_starts
            .get(i + 1)
            .map_or(text.len(), |&next| next - 1);
        if end > start && text.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        Some(start..end)
    }
}
