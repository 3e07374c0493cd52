//! spry-image: a partial, transactional image of Spry source code.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod diagnostic;
pub mod syntax;
