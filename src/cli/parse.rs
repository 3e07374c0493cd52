//! `spry-image parse`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use spry_image::syntax::{self, Ast, PrettyOptions, SourceUnit};
use spry_image::{diagnostic, tree_path};

use super::{Status, stderr_style};

#[derive(Args, Debug)]
pub struct ParseArgs {
    #[command(flatten)]
    mode: Mode,
    /// Files, or directories to search for `.spry` files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[group(multiple = false)]
struct Mode {
    /// Only check: exit 0 when every file parses (the default).
    #[arg(long)]
    check: bool,
    /// Print each file back with the exact printer (equal to the file).
    #[arg(long)]
    print: bool,
    /// Print each file's top-level nodes in the one-line canonical form, one line per file.
    #[arg(long)]
    canonical: bool,
    /// Print each file in the pretty form.
    #[arg(long)]
    pretty: bool,
}

pub fn run(args: &ParseArgs) -> Status {
    let mode = &args.mode;
    let mut status = Status::Ok;
    let mut files = Vec::new();
    for path in &args.files {
        if path.is_dir() {
            match spry_files(path) {
                Ok(found) => files.extend(found),
                Err(e) => {
                    eprintln!("{}: error: {e}", path.display());
                    status = status.max(Status::Trouble);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &files {
        // As typed; `./` is what a walk of `.` adds, not what anyone types.
        let shown = path.strip_prefix(".").unwrap_or(path).display().to_string();
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{shown}: error: cannot read: {e}");
                status = status.max(Status::Trouble);
                continue;
            }
        };
        let (errors, text) = if mode.print || mode.canonical || mode.pretty {
            let parsed = syntax::parse(text);
            let written = if mode.print {
                parsed.tree.write_to(&mut out)
            } else if mode.canonical {
                // Straight from the tree: the same text as the view's printer, without the view.
                parsed
                    .tree
                    .write_canonical(&mut out)
                    .and_then(|()| out.write_all(b"\n"))
            } else {
                let mut shown =
                    Ast::from_tree(&parsed.tree).pretty_bytes(&PrettyOptions::default());
                shown.push(b'\n');
                out.write_all(&shown)
            };
            if let Err(e) = written {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return status;
                }
                eprintln!("error: cannot write: {e}");
                return Status::Trouble;
            }
            (parsed.errors, parsed.tree.into_text())
        } else {
            match SourceUnit::parse(text, &script_name(path)) {
                Ok(_) => continue,
                Err(e) => (e.errors, e.text),
            }
        };
        if !errors.is_empty() {
            status = status.max(Status::Failed);
            eprint!(
                "{}",
                diagnostic::render(&shown, &text, &errors, stderr_style())
            );
        }
    }
    if let Err(e) = out.flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write: {e}");
        return Status::Trouble;
    }
    status
}

fn script_name(path: &Path) -> String {
    path.with_extension("").to_string_lossy().replace('\\', "/")
}

/// The Spry files (`.spry`, `.sy`) under `dir`, by the rules `build` walks a tree with:
/// `.gitignore` and `.spryignore` in a git checkout or not, hidden entries skipped, nothing
/// else (no `.ignore`, no global excludes). Sorted.
fn spry_files(dir: &Path) -> Result<Vec<PathBuf>, ignore::Error> {
    let mut files = Vec::new();
    let walk = ignore::WalkBuilder::new(dir)
        .require_git(false)
        .ignore(false)
        .git_global(false)
        .git_exclude(false)
        .add_custom_ignore_filename(".spryignore")
        .build();
    for entry in walk {
        let entry = entry?;
        if entry.file_type().is_some_and(|t| t.is_file())
            && entry
                .file_name()
                .to_str()
                .is_some_and(tree_path::is_source_path)
        {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}
