//! Command-line front end: argument parsing, output, exit codes. The library does the work.

mod parse;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use spry_image::diagnostic::Style;

/// A transactional, partial image of Spry source, kept in step with a git tree.
#[derive(Parser, Debug)]
#[command(name = "spry-image", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse Spry files: check them, or print them back in one of the printer forms.
    Parse(parse::ParseArgs),
}

/// Exit status: 0 all well, 1 something in the input is wrong, 2 trouble (I/O, usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok = 0,
    Failed = 1,
    Trouble = 2,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Parse(args) => parse::run(&args),
    };
    status.into()
}

/// Whether diagnostics on standard error get colors: a terminal, and `NO_COLOR` unset.
pub fn stderr_style() -> Style {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if !no_color && std::io::stderr().is_terminal() {
        Style::Color
    } else {
        Style::Plain
    }
}
