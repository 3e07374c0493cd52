//! `spry-image status` and `diff`: how the image and the tree differ.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use similar::{Algorithm, TextDiff};

use spry_image::build::FileFailure;
use spry_image::status::{
    self, Change, DefinitionDiff, ModuleState, ModuleStatus, Side, StatusOptions, TreeStatus,
};
use spry_image::syntax::LineIndex;
use spry_image::watch::Borrowed;

use super::{Status, open_image, print_file_failures, report_error};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The tree to compare with (default: the image's source tree).
    #[arg(value_name = "SRC")]
    src: Option<PathBuf>,
    /// Print one JSON object instead.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The tree to compare with (default: the image's source tree).
    #[arg(value_name = "SRC")]
    src: Option<PathBuf>,
    /// Only this module (repeatable).
    #[arg(long, value_name = "M")]
    module: Vec<String>,
    /// Per module, how many definitions differ, instead of the texts.
    #[arg(long, conflicts_with = "name_only")]
    stat: bool,
    /// Only the files that differ.
    #[arg(long)]
    name_only: bool,
    /// Exit with 1 when there are differences, 0 when there are none (as git does).
    #[arg(long)]
    exit_code: bool,
    /// Print one JSON object instead.
    #[arg(long)]
    json: bool,
}

fn compare(
    image_dir: Option<&Path>,
    src: Option<&Path>,
    options: &StatusOptions,
) -> Result<(Borrowed, TreeStatus), Status> {
    let image = open_image(image_dir)?;
    let root = src.map_or_else(|| image.source_root(), Path::to_path_buf);
    match status::status(&image, &root, options) {
        Ok(report) => Ok((image, report)),
        Err(e) => Err(report_error(&e)),
    }
}

/// One failure as JSON: path, and each error's line, column and message.
fn failure_json(root: &Path, failure: &FileFailure) -> serde_json::Value {
    let index = LineIndex::new(failure.text());
    let errors: Vec<serde_json::Value> = failure
        .errors()
        .iter()
        .map(|e| {
            let at = index.line_col(failure.text(), e.span.start);
            serde_json::json!({"line": at.line, "column": at.column, "message": e.message})
        })
        .collect();
    serde_json::json!({
        "path": root.join(&failure.path).display().to_string(),
        "message": failure.message(),
        "errors": errors,
    })
}

fn report_json(report: &TreeStatus, generation: u64) -> serde_json::Value {
    let root = PathBuf::from(&report.root);
    let failed: Vec<serde_json::Value> = report
        .failed
        .iter()
        .map(|f| failure_json(&root, f))
        .collect();
    serde_json::json!({
        "root": report.root,
        "generation": generation,
        "clean": report.is_clean(),
        "modules": report.modules,
        "conflicts": conflicts_json(report),
        "unchanged": report.clean,
        "failed": failed,
        "outside": report.outside,
        "part": report.part,
    })
}

pub fn status(image_dir: Option<&Path>, args: &StatusArgs) -> Status {
    let (image, mut report) =
        match compare(image_dir, args.src.as_deref(), &StatusOptions::default()) {
            Ok(found) => found,
            Err(status) => return status,
        };
    if report.has_conflicts() {
        // Both versions of each conflict, read for the modules in conflict only.
        let modules: Vec<String> = report
            .modules
            .iter()
            .filter(|m| !m.conflicts.is_empty())
            .map(|m| m.module.clone())
            .collect();
        let options = StatusOptions {
            modules,
            definitions: true,
        };
        match status::status(&image, Path::new(&report.root), &options) {
            Ok(detail) => {
                for m in &mut report.modules {
                    if let Some(d) = detail.modules.iter().find(|d| d.module == m.module) {
                        m.definitions = d
                            .definitions
                            .iter()
                            .filter(|d| m.conflicts.contains(&d.name))
                            .cloned()
                            .collect();
                    }
                }
            }
            Err(e) => return report_error(&e),
        }
    }
    let generation = image.generation().unwrap_or_default();
    if args.json {
        if let Err(status) = super::print_json(&report_json(&report, generation)) {
            return status;
        }
    } else {
        print_failures_quietly(&report);
        print!("{}", status_text(&report, generation));
    }
    if report.has_conflicts() || !report.failed.is_empty() {
        Status::Failed
    } else {
        Status::Ok
    }
}

fn print_failures_quietly(report: &TreeStatus) {
    print_file_failures(Path::new(&report.root), &report.failed);
}

fn state_label(state: ModuleState) -> &'static str {
    match state {
        ModuleState::ImageChanged => "changed",
        ModuleState::FileChanged => "modified",
        ModuleState::BothChanged => "both changed",
        ModuleState::Conflict => "conflict",
        ModuleState::NotExported => "new",
        ModuleState::FileDeleted => "deleted",
        ModuleState::FileAdded => "new file",
        ModuleState::Moved => "moved",
        ModuleState::Unparsable => "does not parse",
    }
}

/// One side of a conflict, each line behind its side's name.
fn version(side: &str, text: Option<&[u8]>) -> String {
    let Some(text) = text else {
        return format!("        {side:<5} | (removed)\n");
    };
    String::from_utf8_lossy(text)
        .lines()
        .map(|line| format!("        {side:<5} | {line}\n"))
        .collect()
}

/// The conflicts with both texts, for `status --json`.
fn conflicts_json(report: &TreeStatus) -> Vec<serde_json::Value> {
    let text = |t: &Option<Vec<u8>>| {
        t.as_deref()
            .map(|t| String::from_utf8_lossy(t).into_owned())
    };
    report
        .modules
        .iter()
        .flat_map(|m| {
            m.definitions
                .iter()
                .filter(|d| m.conflicts.contains(&d.name))
                .map(|d| {
                    serde_json::json!({
                        "module": m.module,
                        "name": d.name,
                        "image": text(&d.image),
                        "file": text(&d.file),
                    })
                })
        })
        .collect()
}

fn status_text(report: &TreeStatus, generation: u64) -> String {
    let mut out = format!("image generation {generation}, tree {}\n", report.root);
    if !report.part.is_empty() {
        out.push_str(&format!("partial image: {}\n", report.part.join(", ")));
    }
    let group = |title: &str, states: &[ModuleState]| -> String {
        let rows: Vec<&ModuleStatus> = report
            .modules
            .iter()
            .filter(|m| states.contains(&m.state))
            .collect();
        if rows.is_empty() {
            return String::new();
        }
        let mut text = format!("\n{title}\n");
        for m in rows {
            let place = match &m.from_path {
                Some(from) => format!("{from} -> {}", m.path),
                None => m.path.clone(),
            };
            text.push_str(&format!(
                "  {:<15} {} ({place})\n",
                format!("{}:", state_label(m.state)),
                m.module
            ));
            for name in &m.conflicts {
                text.push_str(&format!("      {}::{name}\n", m.module));
                if let Some(d) = m.definitions.iter().find(|d| &d.name == name) {
                    text.push_str(&version("image", d.image.as_deref()));
                    text.push_str(&version("file", d.file.as_deref()));
                }
            }
        }
        text
    };
    out.push_str(&group(
        "Changed in the image, not yet exported (spry-image export):",
        &[ModuleState::ImageChanged, ModuleState::NotExported],
    ));
    out.push_str(&group(
        "Changed on disk, not yet built (spry-image build):",
        &[
            ModuleState::FileChanged,
            ModuleState::FileAdded,
            ModuleState::FileDeleted,
            ModuleState::Moved,
        ],
    ));
    out.push_str(&group(
        "Changed on both sides, in different definitions (build, then export, merge them):",
        &[ModuleState::BothChanged],
    ));
    out.push_str(&group(
        "Conflicts, changed on both sides (spry-image resolve MODULE::NAME --take file|image):",
        &[ModuleState::Conflict],
    ));
    out.push_str(&group(
        "Files that do not parse (the image keeps the last good version):",
        &[ModuleState::Unparsable],
    ));
    let unowned: Vec<&FileFailure> = report
        .failed
        .iter()
        .filter(|f| {
            !report
                .modules
                .iter()
                .any(|m| m.state == ModuleState::Unparsable && m.path == f.path)
        })
        .collect();
    if !unowned.is_empty() {
        out.push_str("\nFiles that cannot be taken:\n");
        for failure in unowned {
            out.push_str(&format!("  {}\n", failure.path));
        }
    }
    if !report.outside.is_empty() {
        out.push_str(&format!(
            "\nOutside the image's part: {} file(s) (not held, never treated as removed)\n",
            report.outside.len()
        ));
    }
    if report.is_clean() {
        out.push_str(&format!(
            "\nimage and tree agree ({} modules)\n",
            report.clean
        ));
    }
    out
}

pub fn diff(image_dir: Option<&Path>, args: &DiffArgs) -> Status {
    let options = StatusOptions {
        modules: args.module.clone(),
        definitions: true,
    };
    let (image, report) = match compare(image_dir, args.src.as_deref(), &options) {
        Ok(found) => found,
        Err(status) => return status,
    };
    print_failures_quietly(&report);
    let generation = image.generation().unwrap_or_default();
    if args.json {
        if let Err(status) = super::print_json(&report_json(&report, generation)) {
            return status;
        }
    } else {
        let color = stdout_color();
        let mut out = std::io::stdout().lock();
        let text = if args.name_only {
            name_only(&report)
        } else if args.stat {
            stat(&report)
        } else {
            full_diff(&report, color)
        };
        let _ = out.write_all(text.as_bytes());
    }
    // Files that do not parse and conflicts are worth a status of their own, as in build.
    if !report.failed.is_empty() || report.has_conflicts() || (args.exit_code && !report.is_clean())
    {
        Status::Failed
    } else {
        Status::Ok
    }
}

fn stdout_color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

fn name_only(report: &TreeStatus) -> String {
    let mut paths: Vec<&str> = report.modules.iter().map(|m| m.path.as_str()).collect();
    paths.extend(report.failed.iter().map(|f| f.path.as_str()));
    paths.sort();
    paths.dedup();
    paths.iter().map(|p| format!("{p}\n")).collect()
}

fn stat(report: &TreeStatus) -> String {
    let mut out = String::new();
    let width = report
        .modules
        .iter()
        .map(|m| m.path.len())
        .max()
        .unwrap_or(0);
    for m in &report.modules {
        let count = |c: Change| m.definitions.iter().filter(|d| d.change == c).count();
        out.push_str(&format!(
            " {:<width$} | {} added, {} removed, {} changed, {} formatting only, {} moved ({})\n",
            m.path,
            count(Change::Added),
            count(Change::Removed),
            count(Change::Changed),
            count(Change::FormattingOnly),
            count(Change::Moved),
            state_label(m.state),
        ));
    }
    out.push_str(&format!(
        " {} module(s) differ, {} file(s) do not parse\n",
        report.modules.len(),
        report.failed.len()
    ));
    out
}

fn side_label(side: Side) -> &'static str {
    match side {
        Side::File => "changed on disk",
        Side::Image => "changed in the image",
        Side::Both => "CONFLICT: changed on both sides",
        Side::Unknown => "differs",
    }
}

fn change_label(change: Change) -> &'static str {
    match change {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Changed => "changed",
        Change::FormattingOnly => "formatting only",
        Change::Moved => "moved",
    }
}

fn full_diff(report: &TreeStatus, color: bool) -> String {
    let mut out = String::new();
    for m in &report.modules {
        let place = match &m.from_path {
            Some(from) => format!("{from} -> {}", m.path),
            None => m.path.clone(),
        };
        out.push_str(&paint(
            color,
            "1",
            &format!("module {} ({place}): {}", m.module, state_label(m.state)),
        ));
        out.push('\n');
        for def in &m.definitions {
            out.push_str(&definition_diff(m, def, color));
        }
    }
    out
}

fn definition_diff(module: &ModuleStatus, def: &DefinitionDiff, color: bool) -> String {
    let mut head = format!(
        "{} {}::{} ({})",
        change_label(def.change),
        module.module,
        def.name,
        side_label(def.side)
    );
    if let Some(other) = &def.other {
        let direction = if def.image.is_some() { "to" } else { "from" };
        head.push_str(&format!(", {direction} {other}"));
    }
    let mut out = paint(color, "1", &head);
    out.push('\n');
    // Definitions end without a line break; give both sides one, so that the diff does not
    // say so on every line.
    let lines = |text: Option<&[u8]>| {
        let mut text = String::from_utf8_lossy(text.unwrap_or_default()).into_owned();
        if !text.is_empty() {
            text.push('\n');
        }
        text
    };
    let (old, new) = (lines(def.image.as_deref()), lines(def.file.as_deref()));
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Histogram)
        .timeout(Duration::from_secs(2))
        .diff_lines(&old, &new);
    let a = format!("image/{}::{}", module.module, def.name);
    let b = format!("file/{}", module.path);
    let unified = diff
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string();
    for line in unified.lines() {
        let code = if line.starts_with("+++") || line.starts_with("---") {
            "1"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else if line.starts_with("@@") {
            "36"
        } else {
            ""
        };
        out.push_str(&paint(color && !code.is_empty(), code, line));
        out.push('\n');
    }
    out
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}
