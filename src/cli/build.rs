//! `spry-image build`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use spry_image::image::IMAGE_DIR;
use spry_image::{BuildOptions, BuildReport, PartFilter, Progress, QuickLook, Unchanged};

use super::{Status, print_file_failures, report_error};

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The source tree (default: the current directory).
    #[arg(value_name = "SRC")]
    src: Option<PathBuf>,
    /// Build only files matching this glob (relative to SRC; repeatable). The image records the
    /// part it holds; later builds keep to it and add to it.
    #[arg(long, value_name = "GLOB")]
    only: Vec<String>,
    /// Hold the whole tree again (undo earlier `--only`).
    #[arg(long, conflicts_with = "only")]
    all: bool,
    /// Print a machine-readable summary on standard output.
    #[arg(long)]
    json: bool,
    /// Do not read files larger than this (bytes; `k`, `m`, `g` for KiB, MiB, GiB): they are
    /// reported, and their modules keep their last version. Default: 64m, or for a file the
    /// image already holds, twice the size it was last read at
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_file_size: Option<u64>,
    /// Move the image aside (a damaged one, say) and build a new one from the tree; say what
    /// the old one held that the tree does not, as far as it can be read.
    #[arg(long)]
    fresh: bool,
}

/// A size in bytes, with an optional binary suffix: `1048576`, `1024k`, `64m`, `1g`, `64MiB`
/// (`k`, `m`, `g` are powers of 1024, as for `--max-file-size` they always were).
fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(text.trim())
        .map_err(|e| format!("`{text}` is not a size (bytes, or a number with k, m or g): {e}"))
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

pub fn run(image_dir: Option<&Path>, args: &BuildArgs) -> Status {
    let named = args.src.clone().or_else(|| super::default_tree(image_dir));
    let src = match super::source_tree(named.as_deref()) {
        Ok(src) => src,
        Err(status) => return status,
    };
    let dir = image_dir.map_or_else(|| src.join(IMAGE_DIR), Path::to_path_buf);
    // An image that is there already: the tree is walked while it is opened (a first build
    // walks in `check_tree`; `--only` walks a part), or before, where the clean-stamps file
    // may tell that nothing changed without opening it.
    let prewalk = if dir.exists() && args.only.is_empty() && !args.fresh {
        if args.all {
            Some(spry_image::Prewalk::start(&src))
        } else {
            match spry_image::quick_look(&dir, &src) {
                QuickLook::Unchanged(unchanged) => {
                    return print_unchanged(&src, &unchanged, args.json);
                }
                QuickLook::Look(prewalk) => Some(prewalk),
            }
        }
    } else {
        None
    };
    let only = match check_tree(&src, &dir, &args.only) {
        Ok(only) => only,
        Err(status) => return status,
    };
    let old = if args.fresh {
        match move_aside(&dir) {
            Ok(old) => old,
            Err(status) => return status,
        }
    } else {
        None
    };
    let options = BuildOptions {
        only,
        all: args.all,
        paths: None,
        max_file_size: args.max_file_size,
    };
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} reading {pos}/{len} files {wide_bar}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = Bar(bar.clone());
    let (image, result) = if dir.exists() {
        let mut image = match super::create_image(&dir, &src) {
            Ok(image) => image,
            Err(e) => return report_error(&e),
        };
        let result = match prewalk {
            Some(prewalk) => {
                spry_image::build_prewalked(&mut image, &src, &options, &progress, prewalk)
            }
            None => spry_image::build(&mut image, &src, &options, &progress),
        };
        (image, result)
    } else {
        // A new image: made while the tree is walked and its first files read.
        let create = || super::create_image(&dir, &src);
        match spry_image::build_new(create, &src, &options, &progress) {
            Ok((image, report)) => (image, Ok(report)),
            Err(e) => {
                bar.finish_and_clear();
                return build_error(&dir, &e);
            }
        }
    };
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(e) => return build_error(&dir, &e),
    };
    print_failures(&src, &report);
    if let Some((aside, held)) = &old {
        report_salvage(aside, held, &image);
    }
    if args.json {
        if let Err(status) = print_report_json(&report) {
            return status;
        }
    } else {
        println!("{}", summary(&src, &report));
    }
    if report.is_clean() {
        Status::Ok
    } else {
        Status::Failed
    }
}

/// A build that found nothing changed without opening the image ([`spry_image::quick_look`]):
/// reported as the build that opens it reports it.
fn print_unchanged(src: &Path, unchanged: &Unchanged, json: bool) -> Status {
    let report = BuildReport {
        unchanged: unchanged.modules,
        files: unchanged.files,
        ..BuildReport::default()
    };
    if json {
        if let Err(status) = print_report_json(&report) {
            return status;
        }
    } else {
        println!("{}", summary(src, &report));
    }
    Status::Ok
}

/// A build's error: a storage failure names the image (the disk it is on may be full, or
/// failing).
fn build_error(dir: &Path, error: &spry_image::Error) -> Status {
    match error {
        spry_image::Error::Store(_) => {
            eprintln!("error: {}: {error}", dir.display());
            Status::Trouble
        }
        _ => report_error(error),
    }
}

/// Before a build that would make something of nothing: a new image of a tree that holds no
/// Spry file but other files (a mistyped tree: say what is there, build nothing), and
/// `--only` globs that match no Spry file (a warning each; they are left out, so that they do
/// not make the image partial for nothing; when none is left, nothing is built). Returns the
/// globs to build with.
fn check_tree(src: &Path, image_dir: &Path, only: &[String]) -> Result<Vec<String>, Status> {
    let new_image = !image_dir.exists();
    if !new_image && only.is_empty() {
        return Ok(Vec::new());
    }
    let everything = PartFilter::new(&[]).map_err(|e| report_error(&e))?;
    // Without `--only`, one Spry file is all a new image needs to know of: the build walks
    // the tree itself.
    if only.is_empty() {
        let any = spry_image::has_files(src, &everything).map_err(|e| report_error(&e))?;
        return if any {
            Ok(Vec::new())
        } else {
            no_spry_files(src)
        };
    }
    let files =
        spry_image::walk(src, &everything, &mut Vec::new()).map_err(|e| report_error(&e))?;
    if new_image && files.is_empty() {
        no_spry_files(src)?;
    }
    let mut kept = Vec::new();
    for glob in only {
        let filter = PartFilter::new(std::slice::from_ref(glob)).map_err(|e| report_error(&e))?;
        if files.iter().any(|f| filter.contains(&f.path)) {
            kept.push(glob.clone());
        } else {
            eprintln!(
                "warning: --only `{glob}` matches no Spry file in {}; left out",
                src.display()
            );
        }
    }
    if !only.is_empty() && kept.is_empty() {
        eprintln!("error: no --only glob matches a Spry file; nothing was built");
        return Err(Status::Failed);
    }
    Ok(kept)
}

/// A new image's tree holds no Spry file: an error when it holds other files (else an empty
/// tree builds an empty image).
fn no_spry_files(src: &Path) -> Result<Vec<String>, Status> {
    let others = other_files(src);
    if others.total > 0 {
        eprintln!(
            "error: {} holds no Spry source file, but {}; nothing was built",
            src.display(),
            others
        );
        return Err(Status::Failed);
    }
    Ok(Vec::new())
}

/// The files of a tree that are not Spry source, counted by extension.
struct OtherFiles {
    total: usize,
    by_extension: Vec<(String, usize)>,
}

fn other_files(src: &Path) -> OtherFiles {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut total = 0;
    let walk = ignore::WalkBuilder::new(src)
        .require_git(false)
        .filter_entry(|e| e.file_name() != IMAGE_DIR)
        .build();
    for entry in walk.flatten() {
        if entry.file_type().is_some_and(|t| t.is_file()) {
            total += 1;
            let extension = entry.path().extension().map_or_else(
                || "(none)".to_string(),
                |e| format!(".{}", e.to_string_lossy()),
            );
            *counts.entry(extension).or_default() += 1;
        }
    }
    let mut by_extension: Vec<(String, usize)> = counts.into_iter().collect();
    by_extension.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    OtherFiles {
        total,
        by_extension,
    }
}

impl std::fmt::Display for OtherFiles {
    /// `3 other files (2 .rs, 1 .md)`, the five commonest extensions named.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let noun = if self.total == 1 { "file" } else { "files" };
        let named: Vec<String> = self
            .by_extension
            .iter()
            .take(5)
            .map(|(ext, n)| format!("{n} {ext}"))
            .collect();
        let rest: usize = self.by_extension.iter().skip(5).map(|(_, n)| n).sum();
        let more = if rest > 0 {
            format!(", {rest} more")
        } else {
            String::new()
        };
        write!(
            f,
            "{} other {noun} ({}{more})",
            self.total,
            named.join(", ")
        )
    }
}

/// The report as one JSON object, each failure with its errors (line, column, message), as
/// `status --json` has them.
fn print_report_json(report: &BuildReport) -> Result<(), Status> {
    super::print_json(&super::json::build_report(report))
}

/// What a moved-aside image held: module → its text (`None`: it could not be read).
type Salvage = Vec<(String, Option<Vec<u8>>)>;

/// `build --fresh`: moves the image at `dir` aside (beside it, named with the time), after
/// reading what it holds as far as it can. `None` when there was no image.
fn move_aside(dir: &Path) -> Result<Option<(PathBuf, Salvage)>, Status> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(None);
    }
    let held = match spry_image::image::Image::open(dir) {
        Ok(image) => match image.modules() {
            Ok(modules) => modules
                .into_iter()
                .map(|(name, _)| {
                    let text = image.module_text(&name).ok();
                    (name, text)
                })
                .collect(),
            Err(e) => {
                eprintln!("note: {}: its modules cannot be listed: {e}", dir.display());
                Vec::new()
            }
        },
        Err(e @ spry_image::Error::Locked { .. }) => {
            eprintln!("error: {e}; not moved aside");
            return Err(Status::Trouble);
        }
        Err(e) => {
            eprintln!(
                "note: {}: cannot be read ({e}); moved aside as it is",
                dir.display()
            );
            Vec::new()
        }
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = dir
        .file_name()
        .map_or_else(|| IMAGE_DIR.into(), |n| n.to_string_lossy().into_owned());
    // Never over an earlier one moved aside in the same second.
    let aside = (1..)
        .map(|n| match n {
            1 => dir.with_file_name(format!("{name}.old-{secs}")),
            n => dir.with_file_name(format!("{name}.old-{secs}-{n}")),
        })
        .find(|path| std::fs::symlink_metadata(path).is_err())
        .unwrap_or_else(|| dir.with_file_name(format!("{name}.old-{secs}")));
    if let Err(e) = std::fs::rename(dir, &aside) {
        eprintln!(
            "error: cannot move {} aside to {}: {e}",
            dir.display(),
            aside.display()
        );
        return Err(Status::Trouble);
    }
    eprintln!("moved the old image aside to {}", aside.display());
    Ok(Some((aside, held)))
}

/// After `build --fresh`: each module the old image held that the new one (the tree) does
/// not hold as it did, named with where its text still is.
fn report_salvage(aside: &Path, held: &Salvage, image: &spry_image::image::Image) {
    let mut differs = 0;
    for (name, text) in held {
        let now = image.module_text(name).ok();
        match text {
            Some(text) if now.as_ref() == Some(text) => {}
            Some(_) => {
                differs += 1;
                let how = if now.is_some() {
                    "differently"
                } else {
                    "and the tree does not"
                };
                eprintln!(
                    "note: the old image held `{name}` {how}: `spry-image show --image {} {name}`",
                    aside.display()
                );
            }
            None => {
                differs += 1;
                eprintln!("note: the old image held `{name}`, but its text cannot be read");
            }
        }
    }
    if differs == 0 && !held.is_empty() {
        eprintln!("the old image held nothing the tree does not");
    }
}

fn print_failures(src: &Path, report: &BuildReport) {
    print_file_failures(src, &report.failed);
    for conflict in &report.conflicts {
        eprintln!(
            "warning: `{}::{}` changed both in the image and in its file; the image kept its text",
            conflict.module, conflict.name
        );
    }
}

fn summary(src: &Path, report: &BuildReport) -> String {
    let mut line = format!(
        "built {}: {} added, {} changed, {} removed, {} moved, {} unchanged ({} files, {} read",
        src.display(),
        report.added.len(),
        report.changed.len(),
        report.removed.len(),
        report.moved.len(),
        report.unchanged,
        report.files,
        report.read,
    );
    if !report.failed.is_empty() {
        line.push_str(&format!(", {} failed", report.failed.len()));
    }
    line.push(')');
    match report.generation {
        Some(g) => line.push_str(&format!("; generation {g}")),
        // The file's side of each conflict was stored, though no module changed.
        None if !report.conflicts.is_empty() => line.push_str(&format!(
            "; {} conflict(s) recorded, the image kept its text",
            report.conflicts.len()
        )),
        None => line.push_str("; nothing to commit"),
    }
    if !report.part.is_empty() {
        line.push_str(&format!("; part: {}", report.part.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_size("10"), Ok(10));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2MB"), Ok(2 << 20));
        assert!(parse_size("many").is_err());
        assert!(parse_size("99999999999999999999g").is_err());
    }
}
