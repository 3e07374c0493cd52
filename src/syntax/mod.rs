//! Reading and writing Spry source without losing a byte.
//!
//! - [`parse`] gives a lossless [`SyntaxTree`] and a list of [`SyntaxError`]s; it never fails.
//! - [`Ast`] is the semantic view the language sees: trivia gone, literals decoded, keyword
//!   messages joined.
//! - [`SourceUnit`] is the module view: a module's name and its definitions with exact spans.
//! - Printers: the exact one ([`SyntaxTree::to_bytes`]), the canonical one-line form
//!   ([`Ast::canonical`]) and a pretty form for trees with no source text ([`Ast::pretty`]).

mod ast;
mod canonical;
mod error;
mod kind;
mod lexer;
mod literal;
mod module;
mod parser;
mod pretty;
mod reads_back;
mod tree;

pub use ast::{
    Ast, AstBuilder, AstList, AstNode, AstRef, ChildRange, CompositeKind, Word, WordKind,
};
pub use canonical::format_float;
pub use error::{LineCol, LineIndex, SyntaxError, SyntaxErrorKind};
pub use kind::SyntaxKind;
pub use literal::{classify_word, decode_string, parse_float, parse_integer};
pub use module::{
    Definition, Piece, SourceUnit, UnitErrors, UnitKind, format_new_definition, read_definition,
};
pub use parser::{MAX_SOURCE_LEN, Parse, parse};
pub use pretty::{DEFAULT_INDENT, DEFAULT_WIDTH, PrettyOptions};
pub use reads_back::{
    ReadsBackError, span_reads_back, whole_reads_back, window_reads_back, window_reads_back_part,
};
pub use tree::{SyntaxElement, SyntaxNode, SyntaxToken, SyntaxTree};
