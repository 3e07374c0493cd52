//! `spry-image put`, `rm`, `edit`: live edits of the image.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;

use spry_image::image::{Hash, Image, Origin, PreparedUnit, trim_line_end};
use spry_image::syntax::SourceUnit;
use spry_image::tree_path::SourceExtension;
use spry_image::{Error, Refusal, diagnostic, tree_path};

use super::inspect::split_target;
use super::{Status, open_image_to_write, report_error, stderr_style};

#[derive(Args, Debug)]
pub struct PutArgs {
    /// `MODULE::NAME` for one definition, `MODULE` for a whole module.
    #[arg(value_name = "MODULE[::NAME]")]
    target: String,
    /// Read the text from this file (default: standard input).
    #[arg(long, value_name = "F")]
    file: Option<PathBuf>,
    /// The extension of a new module's file, `spry` or `sy` (default: the one most files of
    /// the image use; `spry` in an empty image). A module that has a file keeps it.
    #[arg(long, value_name = "EXT", value_parser = parse_extension)]
    ext: Option<SourceExtension>,
}

fn parse_extension(text: &str) -> Result<SourceExtension, String> {
    SourceExtension::parse(text).ok_or_else(|| format!("`{text}` is not `spry` or `sy`"))
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// The definition to remove.
    #[arg(value_name = "MODULE::NAME")]
    target: String,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    /// The definition to edit (a new one if it does not exist).
    #[arg(value_name = "MODULE::NAME")]
    target: String,
}

pub fn put(image: Option<&Path>, args: &PutArgs) -> Status {
    let (text, source) = match read_input(args.file.as_deref()) {
        Ok(read) => read,
        Err(status) => return status,
    };
    let image = match open_image_to_write(image) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let (module, name) = split_target(&args.target);
    let result = match name {
        Some(name) => put_definition(&image, module, name, &text),
        None => put_module(&image, module, &text, args.ext),
    };
    match result {
        Ok(Some(generation)) => {
            println!("put {} (generation {generation})", args.target);
            Status::Ok
        }
        Ok(None) => {
            println!("put {}: unchanged", args.target);
            Status::Ok
        }
        Err(e) => report_input_error(&e, &source, &text),
    }
}

fn put_definition(
    image: &Image,
    module: &str,
    name: &str,
    text: &[u8],
) -> spry_image::Result<Option<u64>> {
    let mut tx = image.begin(Origin::Live)?;
    tx.put_definition(module, name, trim_line_end(text))?;
    tx.commit()
}

fn put_module(
    image: &Image,
    module: &str,
    text: &[u8],
    ext: Option<SourceExtension>,
) -> spry_image::Result<Option<u64>> {
    let unit = SourceUnit::parse(text.to_vec(), module).map_err(|e| Error::Syntax {
        path: module.into(),
        text: e.text,
        errors: e.errors,
    })?;
    if unit.name() != module {
        return Err(Error::Invalid(Refusal::new(format!(
            "the text is module `{}`, not `{module}`",
            unit.name()
        ))));
    }
    let path = match image.module(module)? {
        Some(record) => record.path,
        None => {
            let ext = match ext {
                Some(ext) => ext,
                None => usual_extension(image)?,
            };
            let path = tree_path::module_path_with(module, ext)?;
            if let Some((holder, _)) = image.modules()?.into_iter().find(|(_, m)| m.path == path) {
                return Err(Error::Invalid(Refusal::new(format!(
                    "`{path}`, the file for `{module}`, already holds module `{holder}`"
                ))));
            }
            path
        }
    };
    let mut tx = image.begin(Origin::Live)?;
    tx.put_module(PreparedUnit::new(&unit), &path)?;
    tx.commit()
}

/// The extension most of the image's files have (`.spry` on a tie or in an empty image).
fn usual_extension(image: &Image) -> spry_image::Result<SourceExtension> {
    let modules = image.modules()?;
    let sy = modules
        .iter()
        .filter(|(_, m)| SourceExtension::of(&m.path) == Some(SourceExtension::Sy))
        .count();
    let spry = modules
        .iter()
        .filter(|(_, m)| SourceExtension::of(&m.path) == Some(SourceExtension::Spry))
        .count();
    Ok(if sy > spry {
        SourceExtension::Sy
    } else {
        SourceExtension::Spry
    })
}

pub fn rm(image: Option<&Path>, args: &RmArgs) -> Status {
    let (module, Some(name)) = split_target(&args.target) else {
        eprintln!("error: `rm` takes `MODULE::NAME`, one definition");
        return Status::Trouble;
    };
    let image = match open_image_to_write(image) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let result = image.begin(Origin::Live).and_then(|mut tx| {
        tx.remove_definition(module, name)?;
        tx.commit()
    });
    match result {
        Ok(generation) => {
            println!(
                "removed {} (generation {})",
                args.target,
                generation.unwrap_or_default()
            );
            Status::Ok
        }
        Err(e) => report_error(&e),
    }
}

pub fn edit(image_dir: Option<&Path>, args: &EditArgs) -> Status {
    let (module, Some(name)) = split_target(&args.target) else {
        eprintln!("error: `edit` takes `MODULE::NAME`, one definition");
        return Status::Trouble;
    };
    // The image is not held while the editor runs; what was read is compared before storing.
    let (original, before) = {
        let image = match open_image_to_write(image_dir) {
            Ok(image) => image,
            Err(status) => return status,
        };
        match image.definition(module, name) {
            Ok(Some(def)) => match image.text(&def.hash) {
                Ok(text) => (text, Some(def.hash)),
                Err(e) => return report_error(&e),
            },
            Ok(None) => match image.module(module) {
                Ok(Some(_)) => (format!("{name} = ").into_bytes(), None),
                Ok(None) => return report_error(&Error::NoModule(module.to_string())),
                Err(e) => return report_error(&e),
            },
            Err(e) => return report_error(&e),
        }
    };
    let (session, edited) = match EditSession::open("spry-image-edit-", module, name, &original) {
        Ok(opened) => opened,
        Err(status) => return status,
    };
    if edited == original {
        println!("{}: unchanged", args.target);
        return Status::Ok;
    }
    session.finish(|file| store_edit(image_dir, module, name, before, &edited, file, &args.target))
}

/// A definition's text in a temporary file of its own, edited in the user's editor: the file
/// is kept (and named) when what was saved cannot be stored, so no edit is ever lost.
pub(super) struct EditSession {
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl EditSession {
    /// Writes `text` to a file named for `module::name` in a new temporary directory (named
    /// with `prefix`), runs the editor on it, and returns the session with what was saved.
    pub(super) fn open(
        prefix: &str,
        module: &str,
        name: &str,
        text: &[u8],
    ) -> Result<(EditSession, Vec<u8>), Status> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| {
                eprintln!("error: cannot make a temporary directory: {e}");
                Status::Trouble
            })?;
        let file = dir
            .path()
            .join(format!("{module}.{}.spry", safe_file_name(name)));
        std::fs::write(&file, text).map_err(|e| {
            eprintln!("error: {}: {e}", file.display());
            Status::Trouble
        })?;
        run_editor(&file)?;
        let edited = std::fs::read(&file).map_err(|e| {
            eprintln!("error: {}: {e}", file.display());
            Status::Trouble
        })?;
        Ok((EditSession { dir, file }, edited))
    }

    /// Stores what was saved with `store` (given the file, for messages); the file goes once
    /// it is stored, and is kept and named otherwise.
    pub(super) fn finish(self, store: impl FnOnce(&Path) -> Status) -> Status {
        let kept = self.dir.keep();
        let file = kept.join(self.file.file_name().unwrap_or_default());
        let status = store(&file);
        if status == Status::Ok {
            let _ = std::fs::remove_dir_all(&kept);
        } else {
            eprintln!("note: your text is kept in {}", file.display());
        }
        status
    }
}

fn store_edit(
    image_dir: Option<&Path>,
    module: &str,
    name: &str,
    before: Option<Hash>,
    edited: &[u8],
    file: &Path,
    target: &str,
) -> Status {
    let image = match open_image_to_write(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let now = match image.definition(module, name) {
        Ok(def) => def.map(|d| d.hash),
        Err(e) => return report_error(&e),
    };
    if now != before {
        eprintln!("error: {target} changed in the image while you were editing it");
        return Status::Failed;
    }
    match put_definition(&image, module, name, edited) {
        Ok(generation) => {
            println!(
                "put {target} (generation {})",
                generation.unwrap_or_default()
            );
            Status::Ok
        }
        Err(e) => report_input_error(&e, &file.display().to_string(), edited),
    }
}

/// Runs `$VISUAL`, else `$EDITOR`, else `vi` on `file`, through the shell (an editor setting
/// may hold arguments, as git allows).
pub(super) fn run_editor(file: &Path) -> Result<(), Status> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} \"$@\"", editor.to_string_lossy()))
        .arg("spry-image-editor")
        .arg(file)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            eprintln!(
                "error: the editor ({}) failed ({s}); nothing was stored",
                editor.to_string_lossy()
            );
            Err(Status::Failed)
        }
        Err(e) => {
            eprintln!(
                "error: cannot run the editor ({}): {e}",
                editor.to_string_lossy()
            );
            Err(Status::Trouble)
        }
    }
}

pub(super) fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads the input text: the file, or standard input. Returns it with the name to show in
/// diagnostics.
fn read_input(file: Option<&Path>) -> Result<(Vec<u8>, String), Status> {
    match file {
        Some(file) => match std::fs::read(file) {
            Ok(text) => Ok((text, file.display().to_string())),
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                Err(Status::Trouble)
            }
        },
        None => {
            let mut text = Vec::new();
            match std::io::stdin().lock().read_to_end(&mut text) {
                Ok(_) => Ok((text, "<stdin>".to_string())),
                Err(e) => {
                    eprintln!("error: standard input: {e}");
                    Err(Status::Trouble)
                }
            }
        }
    }
}

/// Reports an error about the text given (`input`, read from `source`): syntax errors point
/// into it by that name, or into the module as the change would leave it by the module's
/// path (a keyword message running on into the new definition); a wrong name or kind is the
/// input's fault (status 1).
pub(super) fn report_input_error(error: &Error, source: &str, input: &[u8]) -> Status {
    match error {
        Error::Syntax { path, text, errors } => {
            let shown = if text.as_slice() != input {
                path.display().to_string()
            } else {
                source.to_string()
            };
            eprint!(
                "{}",
                diagnostic::render(&shown, text, errors, stderr_style())
            );
            eprintln!("error: nothing was stored");
            Status::Failed
        }
        Error::Invalid(message) => {
            eprintln!("{source}: error: {message}; nothing was stored");
            Status::Failed
        }
        _ => report_error(error),
    }
}
