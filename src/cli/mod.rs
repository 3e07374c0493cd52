//! Command-line front end: argument parsing, output, exit codes. The library does the work.

mod build;
mod edit;
mod export;
mod generate;
mod history;
mod inspect;
mod parse;
mod status;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use spry_image::diagnostic::Style;
use spry_image::watch::{Borrowed, open_or_borrow};

/// A transactional, partial image of Spry source, kept in step with a git tree.
#[derive(Parser, Debug)]
#[command(name = "spry-image", version, about, long_about = None)]
struct Cli {
    /// The image directory (default: `SRC/.spry-image` for build; otherwise found from the
    /// current directory upward, as git finds `.git`).
    #[arg(long, global = true, value_name = "DIR")]
    image: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse Spry files: check them, or print them back in one of the printer forms.
    Parse(parse::ParseArgs),
    /// Build or update the image from a source tree.
    Build(build::BuildArgs),
    /// List modules, or one module's definitions, with sizes and hashes.
    Ls(inspect::LsArgs),
    /// Show a module or one definition as Spry source.
    Show(inspect::ShowArgs),
    /// Verify every text and reference of the image; print its content digest last.
    Check(inspect::CheckArgs),
    /// Add or replace a definition (or a whole module) as a live edit.
    Put(edit::PutArgs),
    /// Remove a definition as a live edit.
    Rm(edit::RmArgs),
    /// Edit a definition in $VISUAL or $EDITOR; it is stored when the editor exits.
    Edit(edit::EditArgs),
    /// Write the image's modules as files: changed ones only, each atomically.
    Export(export::ExportArgs),
    /// Keep the image in step with the tree while you edit (Ctrl-C stops).
    Watch(watch::WatchArgs),
    /// How the image and the tree differ, module by module, in the spirit of git status.
    Status(status::StatusArgs),
    /// The differences between image and tree, by module and definition.
    Diff(status::DiffArgs),
    /// List changes: of the image, of a module, or every version of one definition.
    Log(history::LogArgs),
    /// Bring back an earlier version of a definition as a new change.
    Restore(history::RestoreArgs),
    /// Settle a conflict: keep the file's text or the image's.
    Resolve(history::ResolveArgs),
    /// Prune history: keep the newest N superseded versions of each definition.
    Gc(history::GcArgs),
    /// Write a generated corpus of Spry modules (for benchmarks).
    Gen(generate::GenArgs),
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
        Command::Build(args) => build::run(cli.image.as_deref(), &args),
        Command::Ls(args) => inspect::ls(cli.image.as_deref(), &args),
        Command::Show(args) => inspect::show(cli.image.as_deref(), &args),
        Command::Check(args) => inspect::check(cli.image.as_deref(), &args),
        Command::Put(args) => edit::put(cli.image.as_deref(), &args),
        Command::Rm(args) => edit::rm(cli.image.as_deref(), &args),
        Command::Edit(args) => edit::edit(cli.image.as_deref(), &args),
        Command::Export(args) => export::run(cli.image.as_deref(), &args),
        Command::Watch(args) => watch::run(cli.image.as_deref(), &args),
        Command::Status(args) => status::status(cli.image.as_deref(), &args),
        Command::Diff(args) => status::diff(cli.image.as_deref(), &args),
        Command::Log(args) => history::log(cli.image.as_deref(), &args),
        Command::Restore(args) => history::restore(cli.image.as_deref(), &args),
        Command::Resolve(args) => history::resolve(cli.image.as_deref(), &args),
        Command::Gc(args) => history::gc(cli.image.as_deref(), &args),
        Command::Gen(args) => generate::run(&args),
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

/// Opens the image named by `--image`, or the one found from the current directory upward.
/// When a running `watch` holds it, borrows it from the watcher (which takes it back, and
/// writes what changed to the tree, when the returned image is dropped).
pub fn open_image(image: Option<&std::path::Path>) -> Result<Borrowed, Status> {
    let dir = match image {
        Some(dir) => dir.to_path_buf(),
        None => {
            let here = std::env::current_dir().map_err(|e| {
                eprintln!("error: cannot read the current directory: {e}");
                Status::Trouble
            })?;
            spry_image::image::Image::find(&here).map_err(|e| report_error(&e))?
        }
    };
    let image = open_or_borrow(&dir, || spry_image::image::Image::open(&dir))
        .map_err(|e| report_error(&e))?;
    note_relocation(&image);
    Ok(image)
}

/// [`open_image`] for a command that writes to the tree: an image kept outside its tree
/// (`--image`) names the tree it writes to, since nothing else says which one it is.
pub fn open_image_to_write(image: Option<&std::path::Path>) -> Result<Borrowed, Status> {
    let image = open_image(image)?;
    if !image.is_in_tree() {
        eprintln!(
            "note: the image at {} writes to the tree at {}",
            image.dir().display(),
            image.source_root().display()
        );
    }
    Ok(image)
}

/// Says, once, that an image found in a tree other than the one it recorded (a copied, moved
/// or re-cloned tree) now serves the tree it sits in.
pub fn note_relocation(image: &spry_image::image::Image) {
    if let Some(old) = image.relocated_from() {
        eprintln!(
            "note: this image was made for {}; it now serves {}, the tree it sits in",
            old.display(),
            image.source_root().display()
        );
    }
}

/// The tree `build` or `watch` works on when none is named: the tree of the image found from
/// the current directory upward (as git works on the whole checkout from a subdirectory),
/// else the current directory.
pub fn default_tree(image: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    if image.is_some() {
        return None;
    }
    let here = std::env::current_dir().ok()?;
    let found = spry_image::image::Image::find(&here).ok()?;
    found.parent().map(std::path::Path::to_path_buf)
}

/// Opens or creates the image in `dir` for the tree at `src` (`build`), borrowing it from a
/// running `watch` as [`open_image`] does.
pub fn create_image(dir: &std::path::Path, src: &std::path::Path) -> spry_image::Result<Borrowed> {
    let image = open_or_borrow(dir, || spry_image::image::Image::create(dir, src))?;
    note_relocation(&image);
    Ok(image)
}

/// Prints a library error and gives the exit status it deserves.
pub fn report_error(error: &spry_image::Error) -> Status {
    match error {
        spry_image::Error::Syntax { path, text, errors } => {
            eprint!(
                "{}",
                spry_image::diagnostic::render(
                    &path.display().to_string(),
                    text,
                    errors,
                    stderr_style()
                )
            );
            Status::Failed
        }
        spry_image::Error::NoModule(_) | spry_image::Error::NoDefinition { .. } => {
            eprintln!("error: {error}");
            Status::Failed
        }
        _ => {
            eprintln!("error: {error}");
            Status::Trouble
        }
    }
}

/// The tree a `build` or `watch` reads (default: the current directory), which must be a
/// directory: a mistyped tree must not become a new, empty one.
pub fn source_tree(src: Option<&std::path::Path>) -> Result<std::path::PathBuf, Status> {
    let src = src.map_or_else(
        || std::path::PathBuf::from("."),
        std::path::Path::to_path_buf,
    );
    match std::fs::metadata(&src) {
        Ok(meta) if meta.is_dir() => Ok(src),
        Ok(_) => {
            eprintln!("error: {}: not a directory", src.display());
            Err(Status::Trouble)
        }
        Err(e) => {
            eprintln!("error: {}: {e}", src.display());
            Err(Status::Trouble)
        }
    }
}

/// Prints files that could not be taken: syntax errors as diagnostics, the rest as one line.
pub fn print_file_failures(root: &std::path::Path, failures: &[spry_image::build::FileFailure]) {
    for failure in failures {
        print_file_failure(root, failure);
    }
}

/// Prints one file that could not be taken; returns whether it was a syntax error.
pub fn print_file_failure(
    root: &std::path::Path,
    failure: &spry_image::build::FileFailure,
) -> bool {
    let shown = root.join(&failure.path).display().to_string();
    if failure.errors().is_empty() {
        eprintln!(
            "{shown}: error: {}",
            failure.message().as_deref().unwrap_or("cannot be read")
        );
        return false;
    }
    eprint!(
        "{}",
        spry_image::diagnostic::render(&shown, failure.text(), failure.errors(), stderr_style())
    );
    true
}

/// Prints `value` as one line of JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), Status> {
    match serde_json::to_string(value) {
        Ok(json) => {
            println!("{json}");
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(Status::Trouble)
        }
    }
}
