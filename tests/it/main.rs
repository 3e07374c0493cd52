//! The integration tests, in one binary (one link, one process to start): each module tests one
//! area through the public API or the real `spry-image` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod clean_stamps;
mod cli_conventions;
mod crash;
mod eval;
mod export;
mod export_props;
mod fast_paths;
mod first_contact;
mod history;
mod hostile;
mod image_build;
mod image_cli;
mod image_lib;
mod incremental_props;
mod model;
mod module_props;
mod nothing_lost;
mod parse_cli;
mod real_input;
mod spry_src_calls;
mod syntax_fixtures;
mod syntax_props;
mod syntax_rules;
mod watch;
