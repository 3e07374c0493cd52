//! spry-image: a partial, transactional image of Spry source code in an embedded database,
//! kept in step with a tree of `.spry` files under git.
//!
//! - [`syntax`]: reading and writing Spry source without losing a byte.
//! - [`image`]: the image itself: modules and definitions in a store, changed in transactions.
//! - [`build`]: a source tree into an image, incrementally.
//! - [`export`]: the image back into files, touching only what changed.
//! - [`watch`]: an image kept in step with its tree while a person edits.
//! - [`status`]: how the image and a tree differ, by module and by definition.
//! - [`diagnostic`]: errors rendered for people.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod build;
pub mod corpus;
pub mod diagnostic;
mod error;
pub mod export;
pub mod image;
mod source;
pub mod status;
pub mod store;
pub mod syntax;
pub mod tree_path;
mod walk;
pub mod watch;

pub use error::{Error, Result};
