//! `spry-image export`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use spry_image::{ExportOptions, ExportReport};

use super::{Shown, Status, open_image_to_write, print_file_failures, report_error};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write into this directory instead of the source tree.
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
    /// Export only this module (repeatable).
    #[arg(long, value_name = "NAME")]
    module: Vec<String>,
    /// With --to: write over files changed in DIR since the last export there.
    #[arg(long, requires = "to")]
    force: bool,
    /// Print a machine-readable summary on standard output.
    #[arg(long)]
    json: bool,
}

pub fn run(image_dir: Option<&Path>, args: &ExportArgs) -> Status {
    let image = match open_image_to_write(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let options = ExportOptions {
        to: args.to.clone(),
        modules: args.module.clone(),
        force: args.force,
    };
    let report = match spry_image::export(&image, &options) {
        Ok(report) => report,
        Err(e) => return report_error(&e),
    };
    let target = PathBuf::from(&report.target);
    let shown = Shown::of(&target);
    print_file_failures(&target, &report.failures);
    for skipped in &report.skipped {
        eprintln!(
            "{}: error: not exported ({}): {}",
            shown.path(&skipped.path),
            skipped.module,
            skipped.reason
        );
    }
    if !report.would_overwrite.is_empty() {
        eprintln!(
            "error: these files in {} changed since the last export there; nothing was written (--force writes over them):",
            target.display()
        );
        for path in &report.would_overwrite {
            eprintln!("  {path}");
        }
    }
    for kept in &report.conflicts {
        eprintln!(
            "{}: conflict: `{}::{}` left as the file has it (the image's text is kept): settle it with `spry-image resolve {}::{} --edit` (or --take file|image)",
            target.join(&kept.path).display(),
            kept.module,
            kept.name,
            kept.module,
            kept.name
        );
    }
    if args.json {
        if let Err(status) = super::print_json(&super::json::export_report(&report)) {
            return status;
        }
    } else {
        // One write for all the lines, not one a line: a first export prints thousands.
        let mut out = String::new();
        for written in &report.written {
            let how = if written.created { "created" } else { "wrote" };
            out.push_str(&format!(
                "{how} {} ({})\n",
                shown.path(&written.path),
                written.module
            ));
        }
        out.push_str(&summary(&report));
        out.push('\n');
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => {}
            // Whoever read the list stopped reading: the export is done all the same.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                eprintln!("error: cannot write: {e}");
                return Status::Trouble;
            }
        }
    }
    if report.is_clean() {
        Status::Ok
    } else {
        Status::Failed
    }
}

fn summary(report: &ExportReport) -> String {
    let mut line = format!(
        "exported to {}: {} written, {} unchanged",
        report.target,
        report.written.len(),
        report.unchanged
    );
    if !report.merged.is_empty() {
        line.push_str(&format!(
            ", {} merged from their files first",
            report.merged.len()
        ));
    }
    if !report.conflicts.is_empty() {
        line.push_str(&format!(
            ", {} in conflict left as the files have them",
            report.conflicts.len()
        ));
    }
    if !report.skipped.is_empty() {
        line.push_str(&format!(", {} not exported", report.skipped.len()));
    }
    if let Some(generation) = report.generation {
        line.push_str(&format!("; generation {generation}"));
    }
    line
}
