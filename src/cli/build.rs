//! `spry-image build`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use spry_image::build::{self, BuildOptions, BuildReport, Progress};
use spry_image::image::IMAGE_DIR;

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
    /// reported, and their modules keep their last version.
    #[arg(long, value_name = "BYTES", default_value = "64m", value_parser = parse_size)]
    max_file_size: u64,
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
    let mut image = match super::create_image(&dir, &src) {
        Ok(image) => image,
        Err(e) => return report_error(&e),
    };
    let options = BuildOptions {
        only: args.only.clone(),
        all: args.all,
        paths: None,
        max_file_size: Some(args.max_file_size),
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
    let result = build::build(&mut image, &src, &options, &Bar(bar.clone()));
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(e @ spry_image::Error::Store(_)) => {
            // Say which image: the disk it is on may be full, or failing.
            eprintln!("error: {}: {e}", dir.display());
            return Status::Trouble;
        }
        Err(e) => return report_error(&e),
    };
    print_failures(&src, &report);
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

/// The report as one JSON object, each failure with its errors (line, column, message), as
/// `status --json` has them.
fn print_report_json(report: &BuildReport) -> Result<(), Status> {
    let mut value = serde_json::to_value(report).map_err(|e| {
        eprintln!("error: {e}");
        Status::Trouble
    })?;
    value["failed"] = super::failures_json(&report.failed);
    super::print_json(&value)
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
        assert!(parse_size("many").is_err());
        assert!(parse_size("99999999999999999999g").is_err());
    }
}
