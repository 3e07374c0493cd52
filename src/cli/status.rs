//! `spry-image status` and `diff`: how the image and the tree differ.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use clap::Args;
use similar::{Algorithm, TextDiff};

use spry_image::image::{Hash, merge};
use spry_image::{
    Borrowed, Change, DefinitionDiff, FileFailure, ModuleState, ModuleStatus, QuickLook, Side,
    StatusOptions, TreeStatus,
};

use super::pager::{Paged, PagerArg};
use super::{
    Shown, Status, failures_json, image_dir_of, open_image, print_file_failures, report_error,
};

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

/// What `status` and `diff` compare: the report, the image's generation, and the image,
/// unless nothing changed and the clean-stamps file said so without opening it.
struct Compared {
    image: Option<Borrowed>,
    report: TreeStatus,
    generation: u64,
}

fn compare(
    image_dir: Option<&Path>,
    src: Option<&Path>,
    options: &StatusOptions,
) -> Result<Compared, Status> {
    // The tree an image named `.spry-image` serves (an image kept elsewhere names its tree
    // inside) is walked while the image is opened, or before, where the clean-stamps file may
    // tell that nothing changed without opening it; another tree (compared without stamps,
    // where the walk could not be checked) is walked after.
    let dir = image_dir_of(image_dir)?;
    let tree = spry_image::image::home_tree(&dir).and_then(|home| match src {
        None => Some(home),
        Some(src) => std::fs::canonicalize(src)
            .is_ok_and(|src| src == home)
            .then(|| src.to_path_buf()),
    });
    let whole = options.modules.is_empty() && !options.definitions;
    let prewalk = match tree.as_deref() {
        Some(tree) if whole => match spry_image::quick_look(&dir, tree) {
            QuickLook::Unchanged(unchanged) => {
                let report = TreeStatus {
                    root: tree.display().to_string(),
                    clean: unchanged.modules,
                    ..TreeStatus::default()
                };
                return Ok(Compared {
                    image: None,
                    report,
                    generation: unchanged.generation,
                });
            }
            QuickLook::Look(prewalk) => Some(prewalk),
        },
        Some(tree) => Some(spry_image::Prewalk::start(tree)),
        None => None,
    };
    let image = open_image(Some(&dir))?;
    let root = src.map_or_else(|| image.source_root(), Path::to_path_buf);
    let result = match prewalk {
        Some(prewalk) => spry_image::status_prewalked(&image, &root, options, prewalk),
        None => spry_image::status(&image, &root, options),
    };
    match result {
        Ok(report) => {
            let generation = image.generation().unwrap_or_default();
            Ok(Compared {
                image: Some(image),
                report,
                generation,
            })
        }
        Err(e) => Err(report_error(&e)),
    }
}

fn report_json(report: &TreeStatus, generation: u64) -> serde_json::Value {
    let failed = failures_json(&report.failed);
    serde_json::json!({
        "root": report.root,
        "generation": generation,
        "clean": report.is_clean(),
        "modules": super::json::modules(&report.modules),
        "conflicts": conflicts_json(report),
        "unchanged": report.clean,
        "failed": failed,
        "outside": report.outside,
        "part": report.part,
    })
}

pub fn status(image_dir: Option<&Path>, args: &StatusArgs) -> Status {
    let Compared {
        image,
        mut report,
        generation,
    } = match compare(image_dir, args.src.as_deref(), &StatusOptions::default()) {
        Ok(found) => found,
        Err(status) => return status,
    };
    if let Some(image) = image.as_ref().filter(|_| report.has_conflicts()) {
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
        match spry_image::status(image, Path::new(&report.root), &options) {
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
    if args.json {
        if let Err(status) = super::print_json(&report_json(&report, generation)) {
            return status;
        }
    } else {
        print_failures_quietly(&report);
        anstream::print!("{}", status_text(&report, generation));
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
        ModuleState::DeletedChanged => "deleted/changed",
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

/// The conflicts with the three texts, their hashes and the line ranges in conflict, for
/// `status --json` and `diff --json`.
fn conflicts_json(report: &TreeStatus) -> Vec<serde_json::Value> {
    let text = |t: &Option<Vec<u8>>| {
        t.as_deref()
            .map(|t| String::from_utf8_lossy(t).into_owned())
    };
    let hash = |t: &Option<Vec<u8>>| t.as_deref().map(|t| Hash::of(t).to_hex());
    report
        .modules
        .iter()
        .flat_map(|m| {
            m.definitions
                .iter()
                .filter(|d| m.conflicts.contains(&d.name))
                .map(|d| {
                    let empty = Vec::new();
                    let hunks = merge::hunks(
                        d.base.as_ref().unwrap_or(&empty),
                        d.image.as_ref().unwrap_or(&empty),
                        d.file.as_ref().unwrap_or(&empty),
                    );
                    serde_json::json!({
                        "module": m.module,
                        "name": d.name,
                        "path": m.path,
                        "base": text(&d.base),
                        "image": text(&d.image),
                        "file": text(&d.file),
                        "hashes": {
                            "base": hash(&d.base),
                            "image": hash(&d.image),
                            "file": hash(&d.file),
                        },
                        "hunks": super::json::hunks(&hunks),
                    })
                })
        })
        .collect()
}

/// The rows of the modules in `states`, under `title` (nothing if there are none).
fn module_group(
    report: &TreeStatus,
    root: &Path,
    title: &str,
    states: &[ModuleState],
    style: Style,
) -> String {
    let rows: Vec<&ModuleStatus> = report
        .modules
        .iter()
        .filter(|m| states.contains(&m.state))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let shown = Shown::of(root);
    let mut text = format!("\n{title}\n");
    for m in rows {
        let place = match &m.from_path {
            Some(from) => format!("{} -> {}", shown.path(from), shown.path(&m.path)),
            None => shown.path(&m.path),
        };
        let row = format!(
            "{:<15} {} ({place})",
            format!("{}:", state_label(m.state)),
            m.module
        );
        text.push_str(&format!("  {}\n", paint(style, &row)));
        for name in &m.conflicts {
            text.push_str(&format!("      {}::{name}\n", m.module));
            if let Some(d) = m.definitions.iter().find(|d| &d.name == name) {
                text.push_str(&version("image", d.image.as_deref()));
                text.push_str(&version("file", d.file.as_deref()));
            }
        }
    }
    text
}

/// The files that cannot be taken, those that do not parse aside (their modules say so).
fn unowned_failures(report: &TreeStatus, root: &Path) -> String {
    let mut out = String::new();
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
        let shown = Shown::of(root);
        for failure in unowned {
            out.push_str(&format!("  {}\n", paint(RED, &shown.path(&failure.path))));
        }
    }
    out
}

fn status_text(report: &TreeStatus, generation: u64) -> String {
    let mut out = format!("image generation {generation}, tree {}\n", report.root);
    let root = Path::new(&report.root);
    if !report.part.is_empty() {
        out.push_str(&format!("partial image: {}\n", report.part.join(", ")));
    }
    let group = |title: &str, states: &[ModuleState], style: Style| {
        module_group(report, root, title, states, style)
    };
    out.push_str(&group(
        "Changed in the image, not yet exported (spry-image export):",
        &[ModuleState::ImageChanged, ModuleState::NotExported],
        GREEN,
    ));
    out.push_str(&group(
        "Changed on disk, not yet built (spry-image build):",
        &[
            ModuleState::FileChanged,
            ModuleState::FileAdded,
            ModuleState::FileDeleted,
            ModuleState::Moved,
        ],
        RED,
    ));
    out.push_str(&group(
        "Changed on both sides, in different definitions (build, then export, merge them):",
        &[ModuleState::BothChanged],
        YELLOW,
    ));
    out.push_str(&group(
        "Conflicts, changed on both sides (spry-image resolve MODULE::NAME --edit, or --take file|image):",
        &[ModuleState::Conflict],
        RED.bold(),
    ));
    out.push_str(&group(
        "Deleted on disk, changed in the image (spry-image resolve MODULE --take file removes it, --take image writes it back):",
        &[ModuleState::DeletedChanged],
        RED.bold(),
    ));
    out.push_str(&group(
        "Files that do not parse (the image keeps the last good version):",
        &[ModuleState::Unparsable],
        RED,
    ));
    out.push_str(&unowned_failures(report, root));
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

pub fn diff(image_dir: Option<&Path>, args: &DiffArgs, pager: &PagerArg) -> Status {
    let options = StatusOptions {
        modules: args.module.clone(),
        definitions: true,
    };
    let Compared {
        report, generation, ..
    } = match compare(image_dir, args.src.as_deref(), &options) {
        Ok(found) => found,
        Err(status) => return status,
    };
    print_failures_quietly(&report);
    if args.json {
        if let Err(status) = super::print_json(&report_json(&report, generation)) {
            return status;
        }
    } else {
        let text = if args.name_only {
            name_only(&report)
        } else if args.stat {
            stat(&report)
        } else {
            full_diff(&report)
        };
        if !text.is_empty() {
            let mut paged = Paged::start(pager);
            let _ = paged.out().write_all(text.as_bytes());
            paged.finish();
        }
    }
    // Files that do not parse and conflicts are worth a status of their own, as in build.
    if !report.failed.is_empty() || report.has_conflicts() || (args.exit_code && !report.is_clean())
    {
        Status::Failed
    } else {
        Status::Ok
    }
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

/// What happened to a definition, and where: image (`-`) against file (`+`), so a definition
/// only the image has was added in the image (or removed on disk).
fn change_label(def: &DefinitionDiff) -> String {
    let mut label = match (def.change, def.side) {
        (_, Side::Both) => "CONFLICT: changed on both sides",
        (Change::Added, Side::File) => "added on disk",
        (Change::Added, Side::Image) => "removed in the image",
        (Change::Added, Side::Unknown) => "only on disk",
        (Change::Removed, Side::File) => "removed on disk",
        (Change::Removed, Side::Image) => "added in the image",
        (Change::Removed, Side::Unknown) => "only in the image",
        (Change::Changed, Side::File) => "changed on disk",
        (Change::Changed, Side::Image) => "changed in the image",
        (Change::Changed, Side::Unknown) => "differs",
        (Change::FormattingOnly, Side::File) => "formatting changed on disk",
        (Change::FormattingOnly, Side::Image) => "formatting changed in the image",
        (Change::FormattingOnly, Side::Unknown) => "formatting differs",
        (Change::Moved, Side::File) => "moved on disk",
        (Change::Moved, Side::Image) => "moved in the image",
        (Change::Moved, Side::Unknown) => "moved",
    }
    .to_string();
    if let Some(other) = &def.other {
        let direction = if def.image.is_some() { "to" } else { "from" };
        label.push_str(&format!(", {direction} {other}"));
    }
    label
}

const BOLD: Style = Style::new().bold();
const RED: Style = AnsiColor::Red.on_default();
const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const CYAN: Style = AnsiColor::Cyan.on_default();

/// `text` in `style`; the stream it is written to drops the style when colors are off.
fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn full_diff(report: &TreeStatus) -> String {
    let mut out = String::new();
    for m in &report.modules {
        let place = match &m.from_path {
            Some(from) => format!("{from} -> {}", m.path),
            None => m.path.clone(),
        };
        out.push_str(&paint(
            BOLD,
            &format!("module {} ({place}): {}", m.module, state_label(m.state)),
        ));
        out.push('\n');
        for def in &m.definitions {
            out.push_str(&definition_diff(m, def));
        }
    }
    out
}

fn definition_diff(module: &ModuleStatus, def: &DefinitionDiff) -> String {
    let head = format!("{}::{}: {}", module.module, def.name, change_label(def));
    let mut out = paint(BOLD, &head);
    out.push('\n');
    if module.conflicts.contains(&def.name) {
        // A conflict shows its three texts, as `resolve --edit` will: git's diff3 markers.
        let empty = Vec::new();
        let marked = merge::with_markers(
            def.base.as_ref().unwrap_or(&empty),
            def.image.as_ref().unwrap_or(&empty),
            def.file.as_ref().unwrap_or(&empty),
        );
        let mut text = String::from_utf8_lossy(&marked).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        for line in text.lines() {
            if merge::has_markers(line.as_bytes()) {
                out.push_str(&paint(YELLOW, line));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        return out;
    }
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
        let style = if line.starts_with("+++") || line.starts_with("---") {
            BOLD
        } else if line.starts_with('+') {
            GREEN
        } else if line.starts_with('-') {
            RED
        } else if line.starts_with("@@") {
            CYAN
        } else {
            Style::new()
        };
        out.push_str(&paint(style, line));
        out.push('\n');
    }
    out
}
