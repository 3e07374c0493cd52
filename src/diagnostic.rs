//! Rendering errors for people: the file, line and column, the source line and a caret, by
//! miette. Only the lines around an error are handed to miette, so a huge file costs nothing.

use std::fmt;
use std::ops::Range;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError,
    MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};

use crate::syntax::{LineIndex, SyntaxError};

/// How to render diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Unicode art and ANSI colors (a terminal).
    Color,
    /// Unicode art without colors (a pipe, a file, `NO_COLOR`).
    Plain,
}

/// Renders `errors` of the file `path` whose text is `text`: for each, a first line
/// `path:line:col: error[code]: message`, then the source lines with carets.
///
/// # Examples
/// ```
/// use spry_image::{diagnostic, syntax};
/// let text = b"x = \"open";
/// let errors = syntax::parse(&text[..]).errors;
/// let shown = diagnostic::render("a.spry", text, &errors, diagnostic::Style::Plain);
/// assert!(shown.starts_with("a.spry:1:5: error[unterminated-string]"));
/// ```
pub fn render(path: &str, text: &[u8], errors: &[SyntaxError], style: Style) -> String {
    let index = LineIndex::new(text);
    let theme = match style {
        Style::Color => GraphicalTheme::unicode(),
        Style::Plain => GraphicalTheme::unicode_nocolor(),
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for error in errors.iter().take(MAX_RENDERED) {
        let at = index.line_col(text, error.span.start);
        out.push_str(&format!(
            "{path}:{at}: error[{}]: {}\n",
            error.kind.code(),
            error.message
        ));
        let Some(report) = Report::new(path, text, &index, error) else {
            // miette cannot lay out lines this long (and nobody could read them).
            out.push_str(&format!(
                "  (the source is not shown: a line of it is longer than {MAX_SHOWN_LINE} bytes)\n"
            ));
            continue;
        };
        let mut snippet = String::new();
        if handler.render_report(&mut snippet, &report).is_ok() {
            // miette's first line is its `×` and the (empty) message: the header said it.
            out.push_str(snippet.split_once('\n').map_or("", |(_, rest)| rest));
        }
    }
    if errors.len() > MAX_RENDERED {
        out.push_str(&format!(
            "{path}: {} more error(s) not shown\n",
            errors.len() - MAX_RENDERED
        ));
    }
    out
}

/// Errors shown per file: past this many, the rest are counted, not rendered (a file of a
/// million stray brackets must not take minutes to report).
pub const MAX_RENDERED: usize = 50;

/// Lines longer than this (in bytes) are not shown under an error, only its position.
const MAX_SHOWN_LINE: usize = 4096;

/// The position of an error as `path:line:col`.
pub fn location(path: &str, text: &[u8], error: &SyntaxError) -> String {
    let at = LineIndex::new(text).line_col(text, error.span.start);
    format!("{path}:{at}")
}

/// What miette lays out: the source lines and labels. Its message is empty: the header line
/// (`path:line:col: error[code]: message`) already says it, and miette would say it again on
/// a line of its own.
#[derive(Debug)]
struct Report {
    labels: Vec<LabeledSpan>,
    source: Window,
}

impl Report {
    /// `None` when a line to show is longer than [`MAX_SHOWN_LINE`].
    fn new(path: &str, text: &[u8], index: &LineIndex, error: &SyntaxError) -> Option<Report> {
        let spans: Vec<&Range<usize>> = std::iter::once(&error.span)
            .chain(error.related.iter().map(|(s, _)| s))
            .collect();
        let low = spans.iter().map(|s| s.start).min().unwrap_or(0);
        let high = spans.iter().map(|s| s.end).max().unwrap_or(0);
        let source = Window::new(path, text, index, low, high)?;
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(short_label(error)),
            source.span(&error.span),
        )];
        for (span, label) in &error.related {
            labels.push(LabeledSpan::new_with_span(
                Some(label.clone()),
                source.span(span),
            ));
        }
        Some(Report { labels, source })
    }
}

fn short_label(error: &SyntaxError) -> String {
    use crate::syntax::SyntaxErrorKind as K;
    match error.kind {
        K::InvalidUtf8 => "not UTF-8",
        K::NulByte => "NUL byte",
        K::UnterminatedString => "this string is never closed",
        K::UnclosedBracket => "never closed",
        K::UnopenedBracket => "nothing to close",
        K::MismatchedBracket => "does not match",
        K::KeywordWithoutArgument => "expected an argument before this",
        K::MalformedWord => "malformed word",
        K::DuplicateDefinition => "defined again here",
        K::InvalidModuleMeta => "here",
        K::TooLarge => "too large",
        K::NotADefinition => "here",
        K::KeywordRunsOn => "this key takes `=` as its argument",
        K::OverlappingDefinitions => "overlaps the definition above",
    }
    .to_string()
}

impl fmt::Display for Report {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl std::error::Error for Report {}

impl Diagnostic for Report {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// The lines of a file around some spans, as UTF-8 with the same byte offsets (a byte that is
/// not UTF-8 shows as `?`), knowing which line of the file it starts at.
#[derive(Debug)]
struct Window {
    name: String,
    text: String,
    offset: usize,
    first_line: usize,
}

impl Window {
    /// `None` when one of its lines is longer than [`MAX_SHOWN_LINE`].
    fn new(path: &str, text: &[u8], index: &LineIndex, low: usize, high: usize) -> Option<Window> {
        let first = index.line_col(text, low).line.saturating_sub(2).max(1);
        let last = index.line_col(text, high).line + 2;
        let start = index.line_range(text, first).map_or(0, |r| r.start);
        let end = index
            .line_range(text, last)
            .map_or(text.len(), |r| (r.end + 2).min(text.len()));
        let mut line_start = start;
        for at in memchr::memchr_iter(b'\n', &text[start..end]).chain([end - start]) {
            if start + at - line_start > MAX_SHOWN_LINE {
                return None;
            }
            line_start = start + at + 1;
        }
        let mut shown = String::with_capacity(end - start);
        for chunk in text[start..end].utf8_chunks() {
            // A carriage return alone ends no line for us, but would for miette: show it as
            // `?` too, so that both count the same lines.
            let mut chars = chunk.valid().chars().peekable();
            while let Some(c) = chars.next() {
                let lone_cr = c == '\r' && chars.peek().is_none_or(|n| *n != '\n');
                shown.push(if lone_cr { '?' } else { c });
            }
            for _ in chunk.invalid() {
                shown.push('?');
            }
        }
        Some(Window {
            name: path.to_string(),
            text: shown,
            offset: start,
            first_line: first as usize - 1,
        })
    }

    fn span(&self, span: &Range<usize>) -> SourceSpan {
        let start = span.start.saturating_sub(self.offset).min(self.text.len());
        let len = span.len().min(self.text.len() - start);
        SourceSpan::new(start.into(), len)
    }
}

impl SourceCode for Window {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        // miette counts the column in bytes; people count characters.
        let start = inner.span().offset();
        let line_start = start.saturating_sub(inner.column());
        let column = self
            .text
            .get(line_start..start)
            .map_or(inner.column(), |s| s.chars().count());
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            column,
            inner.line_count(),
        )))
    }
}
