//! Spry errors: a message, where it happened, and the calls that led there.

use std::fmt;
use std::rc::Rc;

use super::value::Origin;
use crate::syntax::LineIndex;

/// A place in Spry source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file name, `-e`, or `Module::name`.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column in characters.
    pub column: u32,
}

impl Location {
    /// The place of byte `offset` of `origin`.
    pub fn of(origin: &Rc<Origin>, offset: u32) -> Location {
        let index = LineIndex::new(&origin.text);
        let at = index.line_col(&origin.text, offset.saturating_sub(origin.base) as usize);
        Location {
            file: origin.name.to_string(),
            line: at.line,
            column: at.column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A runtime error raised by Spry code or a primitive.
    Runtime,
    /// Spry code nested deeper than the limit.
    StackOverflow,
    /// The interrupt flag was raised (Ctrl-C).
    Interrupted,
    /// The step limit was reached.
    StepLimit,
    /// The source does not parse.
    Syntax,
    /// `quit N`: the program asked to stop with this status.
    Quit(i32),
    /// The image could not be read.
    Image,
}

/// A Spry error with its position and call chain. One pointer wide (the details are boxed):
/// every evaluation step returns a `Result`, and a small error keeps that cheap.
#[derive(Clone, Debug)]
pub struct EvalError(Box<ErrorDetails>);

/// What an [`EvalError`] holds (reached through it by `Deref`).
#[derive(Clone, Debug)]
pub struct ErrorDetails {
    /// What kind of error.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// Where it happened, when known.
    pub location: Option<Location>,
    /// The calls that led there, innermost first: the word called and where.
    pub trace: Vec<(String, Location)>,
    /// Calls left out of `trace` (it keeps the innermost [`MAX_TRACE`]).
    pub omitted: usize,
    pub(crate) crossed_call: bool,
}

/// How many calls an error's trace keeps.
pub const MAX_TRACE: usize = 32;

impl EvalError {
    /// A runtime error.
    pub fn runtime(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::Runtime, message)
    }

    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EvalError {
        EvalError(Box::new(ErrorDetails {
            kind,
            message: message.into(),
            location: None,
            trace: Vec::new(),
            omitted: 0,
            crossed_call: false,
        }))
    }

    /// The error with its location, its message and its call chain, one per line.
    pub fn report(&self) -> String {
        let mut out = String::new();
        if let Some(at) = &self.location {
            out.push_str(&format!("{at}: "));
        }
        out.push_str("error: ");
        out.push_str(&self.message);
        out.push('\n');
        // Recursion repeats one call many times: say it once, with the count.
        let mut i = 0;
        while let Some((word, at)) = self.trace.get(i) {
            let same = self.trace[i..]
                .iter()
                .take_while(|(w, a)| w == word && a == at)
                .count();
            out.push_str(&format!("  in {word} called at {at}"));
            if same > 1 {
                out.push_str(&format!(" ({same} times)"));
            }
            out.push('\n');
            i += same;
        }
        if self.omitted > 0 {
            out.push_str(&format!("  ... and {} more calls\n", self.omitted));
        }
        out
    }
}

impl std::ops::Deref for EvalError {
    type Target = ErrorDetails;
    fn deref(&self) -> &ErrorDetails {
        &self.0
    }
}

impl std::ops::DerefMut for EvalError {
    fn deref_mut(&mut self) -> &mut ErrorDetails {
        &mut self.0
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.location {
            write!(f, "{at}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}
