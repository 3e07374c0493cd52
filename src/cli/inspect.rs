//! `spry-image ls`, `show`, `check`: looking inside an image.

use std::io::Write;
use std::path::Path;

use clap::Args;

use spry_image::image::{Hash, Image};

use super::{Status, open_image, report_error};

#[derive(Args, Debug)]
pub struct LsArgs {
    /// A module: list its definitions instead of the modules.
    module: Option<String>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// `MODULE` or `MODULE::NAME`.
    #[arg(value_name = "MODULE[::NAME]")]
    target: String,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Splits `MODULE::NAME` at the first `::` (module names never hold one).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once("::") {
        Some((module, name)) => (module, Some(name)),
        None => (target, None),
    }
}

pub fn ls(image: Option<&Path>, args: &LsArgs) -> Status {
    let image = match open_image(image) {
        Ok(image) => image,
        Err(status) => return status,
    };
    match list(&image, args) {
        Ok(()) => Status::Ok,
        Err(e) => report_error(&e),
    }
}

fn list(image: &Image, args: &LsArgs) -> spry_image::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut rows: Vec<Vec<String>> = Vec::new();
    match &args.module {
        Some(module) => {
            for (name, def) in image.definitions(module)? {
                if args.json {
                    let row = serde_json::json!({
                        "name": name, "size": def.size, "stored": def.stored,
                        "hash": def.hash.to_hex(), "generation": def.generation,
                    });
                    let _ = writeln!(out, "{row}");
                } else {
                    rows.push(vec![
                        name,
                        def.size.to_string(),
                        def.stored.to_string(),
                        def.hash.short(12),
                    ]);
                }
            }
        }
        None => {
            for (name, module) in image.modules()? {
                let mut size = 0u64;
                let mut stored = 0u64;
                let mut digest = blake3::Hasher::new();
                let layout = image.layout(&name)?;
                digest.update(&layout.hash().0);
                let own = layout.gaps.iter().map(|g| g.len() as u64).sum::<u64>();
                // The module's own text is kept uncompressed, in its `order` records.
                size += own;
                stored += own;
                for (_, def) in image.definitions(&name)? {
                    size += u64::from(def.size);
                    stored += u64::from(def.stored);
                    digest.update(&def.hash.0);
                }
                let hash = Hash(*digest.finalize().as_bytes());
                if args.json {
                    let row = serde_json::json!({
                        "module": name, "path": module.path, "definitions": layout.names.len(),
                        "size": size, "stored": stored, "hash": hash.to_hex(),
                    });
                    let _ = writeln!(out, "{row}");
                } else {
                    rows.push(vec![
                        name,
                        layout.names.len().to_string(),
                        size.to_string(),
                        stored.to_string(),
                        hash.short(12),
                        module.path,
                    ]);
                }
            }
        }
    }
    if !args.json {
        let header: &[&str] = if args.module.is_some() {
            &["NAME", "SIZE", "STORED", "HASH"]
        } else {
            &["MODULE", "DEFS", "SIZE", "STORED", "HASH", "PATH"]
        };
        let _ = write!(out, "{}", table(header, rows));
    }
    Ok(())
}

/// Rows under a header, each column as wide as its widest cell, two spaces between columns,
/// numbers right-aligned.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, presets};
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        column.set_constraint(ColumnConstraint::ContentWidth);
        if matches!(header[i], "DEFS" | "SIZE" | "STORED") {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

pub fn show(image: Option<&Path>, args: &ShowArgs) -> Status {
    let image = match open_image(image) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let text = match split_target(&args.target) {
        (module, Some(name)) => image.definition_text(module, name).map(|mut t| {
            if !t.ends_with(b"\n") {
                t.push(b'\n');
            }
            t
        }),
        (module, None) => image.module_text(module),
    };
    match text {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&text).and_then(|()| out.flush()) {
                Ok(()) => Status::Ok,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Ok,
                Err(e) => {
                    eprintln!("error: cannot write: {e}");
                    Status::Trouble
                }
            }
        }
        Err(e @ spry_image::Error::Corrupt(_)) => {
            eprintln!(
                "error: `{}`: {e}; `spry-image check` lists all damage",
                args.target
            );
            Status::Trouble
        }
        Err(e) => report_error(&e),
    }
}

pub fn check(image: Option<&Path>, args: &CheckArgs) -> Status {
    let image = match open_image(image) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let report = match image.check() {
        Ok(report) => report,
        Err(e) => return report_error(&e),
    };
    if args.json {
        if let Err(status) = super::print_json(&super::json::check_report(&report)) {
            return status;
        }
    } else {
        for problem in &report.problems {
            println!("problem: {problem}");
        }
        println!(
            "{} modules, {} definitions, {} texts checked; {}",
            report.modules,
            report.definitions,
            report.blobs,
            if report.is_ok() {
                "no problems".to_string()
            } else {
                format!("{} problem(s)", report.problems.len())
            }
        );
        println!("digest {}", report.digest);
    }
    if report.is_ok() {
        Status::Ok
    } else {
        Status::Failed
    }
}
