//! Command-line front end: argument parsing, output, exit codes. The library does the work.

mod build;
mod edit;
mod export;
mod generate;
mod help;
mod history;
mod inspect;
mod json;
mod pager;
mod parse;
mod repl;
mod run;
mod status;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use spry_image::FileFailure;
use spry_image::diagnostic::Style;
use spry_image::{Borrowed, open_or_borrow};

pub use json::{failures_json, print_json};

/// A transactional, partial image of Spry source, kept in step with a git tree.
#[derive(Parser, Debug)]
#[command(name = "spry-image", version, about, long_about = None)]
pub struct Cli {
    /// The image directory, for the command that follows (as `COMMAND --image DIR`); refused
    /// before a command that opens no image.
    #[arg(long, value_name = "DIR")]
    image: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// `--image DIR`, on the commands that open an image.
#[derive(Args, Debug)]
struct ImageArg {
    /// The image directory (default: `SRC/.spry-image` for build and watch; otherwise found
    /// from the current directory upward, as git finds `.git`).
    #[arg(long, value_name = "DIR")]
    image: Option<PathBuf>,
}

/// `--color WHEN`, on the commands that color what they print.
#[derive(Args, Debug)]
struct ColorArg {
    /// When to color: `auto` on a terminal (unless `NO_COLOR` is set; `CLICOLOR_FORCE`
    /// forces it), `always`, `never`.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    color: clap::ColorChoice,
}

impl ColorArg {
    /// Makes this choice the one every colored stream of the process follows.
    fn apply(&self) {
        let choice = match self.color {
            clap::ColorChoice::Auto => anstream::ColorChoice::Auto,
            clap::ColorChoice::Always => anstream::ColorChoice::Always,
            clap::ColorChoice::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse Spry files: check them, or print them back in one of the printer forms.
    Parse {
        #[command(flatten)]
        args: parse::ParseArgs,
        #[command(flatten)]
        color: ColorArg,
    },
    /// Build or update the image from a source tree.
    Build {
        #[command(flatten)]
        args: build::BuildArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
    },
    /// List modules, or one module's definitions, with sizes and hashes.
    Ls {
        #[command(flatten)]
        args: inspect::LsArgs,
        #[command(flatten)]
        at: ImageArg,
    },
    /// Show a module or one definition as Spry source.
    Show {
        #[command(flatten)]
        args: inspect::ShowArgs,
        #[command(flatten)]
        at: ImageArg,
    },
    /// Verify every text and reference of the image; print its content digest last.
    Check {
        #[command(flatten)]
        args: inspect::CheckArgs,
        #[command(flatten)]
        at: ImageArg,
    },
    /// Add or replace a definition (or a whole module) as a live edit.
    Put {
        #[command(flatten)]
        args: edit::PutArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
    },
    /// Remove a definition as a live edit.
    Rm {
        #[command(flatten)]
        args: edit::RmArgs,
        #[command(flatten)]
        at: ImageArg,
    },
    /// Edit a definition in $VISUAL or $EDITOR; it is stored when the editor exits.
    Edit {
        #[command(flatten)]
        args: edit::EditArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
    },
    /// Write the image's modules as files: changed ones only, each atomically.
    Export {
        #[command(flatten)]
        args: export::ExportArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
    },
    /// Keep the image in step with the tree while you edit (Ctrl-C stops).
    Watch {
        #[command(flatten)]
        args: watch::WatchArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
    },
    /// How the image and the tree differ, module by module, in the spirit of git status.
    Status {
        #[command(flatten)]
        args: status::StatusArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
    },
    /// The differences between image and tree, by module and definition.
    Diff {
        #[command(flatten)]
        args: status::DiffArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
        #[command(flatten)]
        pager: pager::PagerArg,
    },
    /// List changes: of the image, of a module, or every version of one definition.
    Log {
        #[command(flatten)]
        args: history::LogArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
        #[command(flatten)]
        pager: pager::PagerArg,
    },
    /// Bring back an earlier version of a definition as a new change.
    Restore {
        #[command(flatten)]
        args: history::RestoreArgs,
        #[command(flatten)]
        at: ImageArg,
    },
    /// Settle a conflict: keep the file's text or the image's.
    Resolve {
        #[command(flatten)]
        args: history::ResolveArgs,
        #[command(flatten)]
        at: ImageArg,
    },
    /// Prune history: keep the newest N superseded versions of each definition.
    Gc {
        #[command(flatten)]
        args: history::GcArgs,
        #[command(flatten)]
        at: ImageArg,
    },
    /// Write a generated corpus of Spry modules (for benchmarks).
    Gen(generate::GenArgs),
    /// Print a shell's completion script for spry-image.
    Completions(help::CompletionsArgs),
    /// Print the manual page (roff), or one command's, to read with `man -l` or install.
    Man(help::ManArgs),
    /// Run a Spry script, a definition of the image (MODULE::NAME) or -e CODE.
    Run {
        #[command(flatten)]
        args: run::RunArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
    },
    /// An interactive Spry session over the image's modules.
    Repl {
        #[command(flatten)]
        args: repl::ReplArgs,
        #[command(flatten)]
        at: ImageArg,
        #[command(flatten)]
        color: ColorArg,
    },
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
    run(cli.image, cli.command).into()
}

/// `--image` given before a command that opens no image: said, rather than ignored.
fn no_image_for(command: &str) -> Status {
    eprintln!("error: `{command}` opens no image: --image is for the commands that do");
    Status::Trouble
}

fn run(before: Option<PathBuf>, command: Command) -> Status {
    use Command as C;
    // `spry-image --image DIR COMMAND` and `spry-image COMMAND --image DIR` both work, as
    // scripts written either way expect; the one after the command wins.
    let image = |at: &ImageArg| at.image.clone().or_else(|| before.clone());
    let unused = before.is_some();
    match command {
        C::Parse { .. } if unused => no_image_for("parse"),
        C::Gen(_) if unused => no_image_for("gen"),
        C::Completions(_) if unused => no_image_for("completions"),
        C::Man(_) if unused => no_image_for("man"),
        C::Parse { args, color } => {
            color.apply();
            parse::run(&args)
        }
        C::Build { args, at, color } => {
            color.apply();
            build::run(image(&at).as_deref(), &args)
        }
        C::Ls { args, at } => inspect::ls(image(&at).as_deref(), &args),
        C::Show { args, at } => inspect::show(image(&at).as_deref(), &args),
        C::Check { args, at } => inspect::check(image(&at).as_deref(), &args),
        C::Put { args, at, color } => {
            color.apply();
            edit::put(image(&at).as_deref(), &args)
        }
        C::Rm { args, at } => edit::rm(image(&at).as_deref(), &args),
        C::Edit { args, at, color } => {
            color.apply();
            edit::edit(image(&at).as_deref(), &args)
        }
        C::Export { args, at, color } => {
            color.apply();
            export::run(image(&at).as_deref(), &args)
        }
        C::Watch { args, at, color } => {
            color.apply();
            watch::run(image(&at).as_deref(), &args)
        }
        C::Status { args, at, color } => {
            color.apply();
            status::status(image(&at).as_deref(), &args)
        }
        C::Diff {
            args,
            at,
            color,
            pager,
        } => {
            color.apply();
            status::diff(image(&at).as_deref(), &args, &pager)
        }
        C::Log {
            args,
            at,
            color,
            pager,
        } => {
            color.apply();
            history::log(image(&at).as_deref(), &args, &pager)
        }
        C::Restore { args, at } => history::restore(image(&at).as_deref(), &args),
        C::Resolve { args, at } => history::resolve(image(&at).as_deref(), &args),
        C::Gc { args, at } => history::gc(image(&at).as_deref(), &args),
        C::Gen(args) => generate::run(&args),
        C::Completions(args) => help::completions(&args),
        C::Man(args) => help::man(&args),
        C::Run { args, at, color } => {
            color.apply();
            run::run(image(&at).as_deref(), &args)
        }
        C::Repl { args, at, color } => {
            color.apply();
            repl::run(image(&at).as_deref(), &args)
        }
    }
}

/// `text` in red (an error), for a stream that drops the color when colors are off
/// (`anstream`'s, which follows `--color`).
pub fn red(text: &str) -> String {
    let style = anstyle::AnsiColor::Red.on_default();
    format!("{style}{text}{style:#}")
}

/// Whether diagnostics on standard error get colors: as `--color` says, and with `auto` as
/// anstream decides (a terminal; `NO_COLOR` unset; `CLICOLOR_FORCE` forces colors).
pub fn stderr_style() -> Style {
    match anstream::AutoStream::choice(&std::io::stderr()) {
        anstream::ColorChoice::Never => Style::Plain,
        _ => Style::Color,
    }
}

/// Opens the image named by `--image`, or the one found from the current directory upward.
/// When a running `watch` holds it, borrows it from the watcher (which takes it back, and
/// writes what changed to the tree, when the returned image is dropped).
pub fn open_image(image: Option<&Path>) -> Result<Borrowed, Status> {
    let dir = image_dir_of(image)?;
    let image = open_or_borrow(&dir, || spry_image::image::Image::open(&dir))
        .map_err(|e| report_error(&e))?;
    note_relocation(&image);
    Ok(image)
}

/// The image directory [`open_image`] opens: the one given, else the one found from the
/// current directory upward.
pub fn image_dir_of(image: Option<&Path>) -> Result<PathBuf, Status> {
    match image {
        Some(dir) => Ok(dir.to_path_buf()),
        None => {
            let here = std::env::current_dir().map_err(|e| {
                eprintln!("error: cannot read the current directory: {e}");
                Status::Trouble
            })?;
            spry_image::image::Image::find(&here).map_err(|e| report_error(&e))
        }
    }
}

/// [`open_image`] for a command that writes to the tree: an image kept outside its tree
/// (`--image`) names the tree it writes to, since nothing else says which one it is.
pub fn open_image_to_write(image: Option<&Path>) -> Result<Borrowed, Status> {
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
pub fn default_tree(image: Option<&Path>) -> Option<PathBuf> {
    if image.is_some() {
        return None;
    }
    let here = std::env::current_dir().ok()?;
    let found = spry_image::image::Image::find(&here).ok()?;
    found.parent().map(Path::to_path_buf)
}

/// Opens or creates the image in `dir` for the tree at `src` (`build`), borrowing it from a
/// running `watch` as [`open_image`] does.
pub fn create_image(dir: &Path, src: &Path) -> spry_image::Result<Borrowed> {
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
        spry_image::Error::Corrupt(_) | spry_image::Error::Store(_) => {
            eprintln!("error: {error}");
            eprintln!(
                "hint: if the image is damaged, `spry-image build --fresh` moves it aside and builds a new one from the tree"
            );
            Status::Trouble
        }
        _ => {
            eprintln!("error: {error}");
            Status::Trouble
        }
    }
}

/// The tree a `build` or `watch` reads (default: the current directory), which must be a
/// directory: a mistyped tree must not become a new, empty one.
pub fn source_tree(src: Option<&Path>) -> Result<PathBuf, Status> {
    let src = src.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
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

/// How a file of the tree at `root` is named in every message: relative to the current
/// directory, as the user would type it (`a.spry` inside the tree, `tree/a.spry` above it,
/// `../a.spry` below it); the absolute path only when there is no relative one. For many
/// files of one tree, [`Shown`] asks the file system once instead of once a file.
pub fn shown_path(root: &Path, relative: &str) -> String {
    Shown::of(root).path(relative)
}

/// Names files of one tree as [`shown_path`] does, with the current directory and the
/// tree's real path looked up once: an export of 10,000 files printed each name after a
/// `getcwd` and three `readlink`s of its own, a third of the system calls of the whole run.
pub struct Shown {
    /// The tree's root as the kernel names it, as the current directory is: no `.`, no link.
    root: PathBuf,
    here: Option<PathBuf>,
}

impl Shown {
    /// The names of files under `root`.
    pub fn of(root: &Path) -> Shown {
        let here = std::env::current_dir().ok();
        let root = match &here {
            Some(here) => std::fs::canonicalize(root).unwrap_or_else(|_| here.join(root)),
            None => root.to_path_buf(),
        };
        Shown { root, here }
    }

    /// The name of the file at `relative` under the tree's root.
    pub fn path(&self, relative: &str) -> String {
        let full = self.root.join(relative);
        let shown = self
            .here
            .as_ref()
            .and_then(|here| pathdiff::diff_paths(&full, here));
        match shown {
            Some(shown) if !shown.as_os_str().is_empty() => shown.display().to_string(),
            _ => full.display().to_string(),
        }
    }
}

/// Prints files that could not be taken: syntax errors as diagnostics, the rest as one line.
pub fn print_file_failures(root: &Path, failures: &[FileFailure]) {
    if failures.is_empty() {
        return;
    }
    let shown = Shown::of(root);
    for failure in failures {
        print_failure_as(&shown.path(&failure.path), failure);
    }
}

/// Prints one file that could not be taken; returns whether it was a syntax error.
pub fn print_file_failure(root: &Path, failure: &FileFailure) -> bool {
    print_failure_as(&shown_path(root, &failure.path), failure)
}

/// Prints one file that could not be taken under the name `shown`; returns whether it was a
/// syntax error.
fn print_failure_as(shown: &str, failure: &FileFailure) -> bool {
    if failure.errors().is_empty() {
        eprintln!(
            "{shown}: error: {}",
            failure.message().as_deref().unwrap_or("cannot be read")
        );
        return false;
    }
    eprint!(
        "{}",
        spry_image::diagnostic::render(shown, failure.text(), failure.errors(), stderr_style())
    );
    true
}
