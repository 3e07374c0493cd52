//! spry-image: a partial, transactional image of Spry source code in an embedded database,
//! kept in step with a tree of Spry files (`.spry`, `.sy`) under git.
//!
//! The rooms a Spry VM or IDE uses, each a module with a curated surface:
//!
//! - [`syntax`]: reading and writing Spry source without losing a byte.
//! - [`image`]: the image itself: modules and definitions in a store, changed in transactions.
//! - [`build`](mod@build): a source tree into an image, incrementally.
//! - [`export`](mod@export): the image back into files, touching only what changed.
//! - [`watch`]: an image kept in step with its tree while a person edits.
//! - [`status`](mod@status): how the image and a tree differ, by module and by definition.
//! - [`diagnostic`]: errors rendered for people.
//! - [`eval`]: a Spry evaluator running code from files and, by key, from an image.
//!
//! The types used most are also here at the top: [`Image`], [`Transaction`], [`Origin`],
//! [`build()`], [`BuildOptions`], [`BuildReport`], [`FileFailure`], [`export()`],
//! [`ExportOptions`], [`status()`], [`SourceUnit`], [`parse`], [`Ast`], and the one error type
//! [`Error`].
//!
//! The tree walk, the source-file layer and the storage engine's internals are not part of
//! the documented surface; `store`, `tree_path` and `corpus` stay reachable for the
//! command line, the tests and the benchmarks only.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod build;
#[doc(hidden)]
pub mod corpus;
pub mod diagnostic;
mod error;
pub mod eval;
pub mod export;
pub mod image;
mod source;
pub mod status;
#[doc(hidden)]
pub mod store;
pub mod syntax;
#[cfg(test)]
mod tidy;
#[doc(hidden)]
pub mod tree_path;
mod walk;
pub mod watch;

pub use build::{BuildOptions, BuildReport, FailureKind, FileFailure, build};
pub use error::{Corruption, Error, Refusal, Result, StoreError};
pub use export::{ExportOptions, ExportReport, export};
pub use image::{Image, ModuleChange, Origin, Transaction};
pub use status::{StatusOptions, TreeStatus, status};
pub use syntax::{Ast, SourceUnit, SyntaxError, SyntaxTree, parse};
pub use watch::{WatchOptions, Watcher};
