//! spry-image: a partial, transactional image of Spry source code in an embedded database,
//! kept in step with a tree of Spry files (`.spry`, `.sy`) under git.
//!
//! The rooms a Spry VM or IDE uses, each a module with a curated surface:
//!
//! - [`syntax`]: reading and writing Spry source without losing a byte.
//! - [`image`]: the image itself: modules and definitions in a store, changed in transactions.
//! - [`diagnostic`]: errors rendered for people.
//! - [`eval`]: a Spry evaluator running code from files and, by key, from an image.
//!
//! What works on a whole tree is here at the top, in fjall's manner (private rooms behind a
//! curated `pub use`):
//!
//! - a source tree into an image, incrementally: [`build()`], [`BuildOptions`],
//!   [`BuildReport`], with the files it could not take as [`FileFailure`]s;
//! - the image back into files, touching only what changed: [`export()`], [`ExportOptions`],
//!   [`ExportReport`];
//! - how the image and a tree differ, by module and by definition: [`status()`],
//!   [`StatusOptions`], [`TreeStatus`];
//! - an image kept in step with its tree while a person edits: [`Watcher`], [`WatchOptions`],
//!   [`BatchReport`], and [`open_or_borrow`] for a command that borrows the image from a
//!   running watcher.
//!
//! The types used most of the rooms are here too: [`Image`], [`Transaction`], [`Origin`],
//! [`SourceUnit`], [`parse`], [`Ast`], and the one error type [`Error`].
//!
//! The tree walk, the source-file layer and the storage engine's internals are not part of
//! the documented surface; `store`, `tree_path`, `corpus` and `walk` stay reachable for the
//! command line, the tests and the benchmarks only.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod build;
#[doc(hidden)]
pub mod corpus;
pub mod diagnostic;
mod error;
pub mod eval;
mod export;
pub mod image;
mod quick_look;
mod source;
mod status;
#[doc(hidden)]
pub mod store;
pub mod syntax;
#[cfg(test)]
mod tidy;
#[doc(hidden)]
pub mod tree_path;
mod walk;
mod watch;

#[cfg(test)]
mod fixtures;

pub use build::{
    BuildOptions, BuildReport, Move, NoProgress, Progress, build, build_new, build_prewalked,
};
pub use error::{Corruption, Error, Refusal, Result, StoreError};
pub use export::{ConflictKept, ExportOptions, ExportReport, Skipped, Written, export};
pub use image::{Image, ModuleChange, Origin, Transaction};
pub use source::{DEFAULT_MAX_FILE_SIZE, FailureKind, FileFailure, PartFilter, default_read_limit};
pub use status::{
    Change, DefinitionDiff, ModuleState, ModuleStatus, Side, StatusOptions, TreeStatus, status,
    status_prewalked,
};
pub use syntax::{Ast, SourceUnit, SyntaxError, SyntaxTree, parse};
pub use watch::{
    BatchReport, Borrowed, Cause, Lent, Stopper, WatchOptions, Watcher, open_or_borrow,
};

#[doc(hidden)]
pub use quick_look::{QuickLook, Unchanged, quick_look};
/// For the command line and the tests only: the tree walk and the watcher's socket.
#[doc(hidden)]
pub use source::WalkedFile;
#[doc(hidden)]
pub use walk::{Prewalk, has_files, walk};
#[doc(hidden)]
pub use watch::SOCKET_FILE;
