//! The JSON forms of the library's reports. Only the command line knows JSON (rust-analyzer's
//! rule: the outermost layer owns the wire format), so the library's report types carry no
//! `Serialize` and no `#[serde(skip)]` holes: each form here says exactly which fields a
//! command prints, under which names. The image's storage records (`image/record.rs`) are
//! serialized by the image itself, for the store: that is storage, not a view.

use serde::Serialize;
use serde_json::Value;

use spry_image::image::CheckReport;
use spry_image::image::merge::{Hunk, Lines};
use spry_image::syntax::LineIndex;
use spry_image::{
    BuildReport, Change, ConflictKept, DefinitionDiff, ExportReport, FileFailure, ModuleState,
    ModuleStatus, Move, Side, Skipped, Written,
};

use super::Status;

/// Prints `value` as one line of JSON on standard output.
pub fn print_json(value: &impl Serialize) -> Result<(), Status> {
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

/// Files that could not be taken, as JSON (`build`, `status`, `diff`, `watch` alike): each
/// with its path relative to the tree, its message (`null` for syntax errors, which are
/// listed), and each error's line, column, code and message.
pub fn failures_json(failures: &[FileFailure]) -> Value {
    failures
        .iter()
        .map(|failure| {
            let index = LineIndex::new(failure.text());
            let errors: Vec<Value> = failure
                .errors()
                .iter()
                .map(|e| {
                    let at = index.line_col(failure.text(), e.span.start);
                    serde_json::json!({
                        "line": at.line,
                        "column": at.column,
                        "code": e.kind.code(),
                        "message": e.message,
                    })
                })
                .collect();
            serde_json::json!({
                "path": failure.path,
                "message": failure.message(),
                "errors": errors,
            })
        })
        .collect()
}

/// A module that moved to another file.
#[derive(Serialize)]
pub struct MoveJson<'a> {
    module: &'a str,
    from: &'a str,
    to: &'a str,
}

/// The moves of a build.
pub fn moves(moved: &[Move]) -> Vec<MoveJson<'_>> {
    moved
        .iter()
        .map(|m| MoveJson {
            module: &m.module,
            from: &m.from,
            to: &m.to,
        })
        .collect()
}

/// `build --json`: what the build did, each failure with its errors.
pub fn build_report(report: &BuildReport) -> Value {
    serde_json::json!({
        "generation": report.generation,
        "added": report.added,
        "changed": report.changed,
        "removed": report.removed,
        "moved": moves(&report.moved),
        "unchanged": report.unchanged,
        "files": report.files,
        "read": report.read,
        "failed": failures_json(&report.failed),
        "part": report.part,
    })
}

/// A file export wrote.
#[derive(Serialize)]
pub struct WrittenJson<'a> {
    module: &'a str,
    path: &'a str,
    created: bool,
}

/// A module export did not write, and why.
#[derive(Serialize)]
pub struct SkippedJson<'a> {
    module: &'a str,
    path: &'a str,
    reason: &'a str,
}

/// A definition in conflict that export left as the file has it.
#[derive(Serialize)]
pub struct ConflictKeptJson<'a> {
    module: &'a str,
    name: &'a str,
    path: &'a str,
}

pub fn written(written: &[Written]) -> Vec<WrittenJson<'_>> {
    written
        .iter()
        .map(|w| WrittenJson {
            module: &w.module,
            path: &w.path,
            created: w.created,
        })
        .collect()
}

pub fn skipped(skipped: &[Skipped]) -> Vec<SkippedJson<'_>> {
    skipped
        .iter()
        .map(|s| SkippedJson {
            module: &s.module,
            path: &s.path,
            reason: &s.reason,
        })
        .collect()
}

pub fn conflicts_kept(kept: &[ConflictKept]) -> Vec<ConflictKeptJson<'_>> {
    kept.iter()
        .map(|k| ConflictKeptJson {
            module: &k.module,
            name: &k.name,
            path: &k.path,
        })
        .collect()
}

/// `export --json`: what the export did (syntax failures go to standard error as
/// diagnostics, not here).
#[derive(Serialize)]
pub struct ExportJson<'a> {
    target: &'a str,
    written: Vec<WrittenJson<'a>>,
    unchanged: usize,
    merged: &'a [String],
    skipped: Vec<SkippedJson<'a>>,
    would_overwrite: &'a [String],
    conflicts: Vec<ConflictKeptJson<'a>>,
    generation: Option<u64>,
}

pub fn export_report(report: &ExportReport) -> ExportJson<'_> {
    ExportJson {
        target: &report.target,
        written: written(&report.written),
        unchanged: report.unchanged,
        merged: &report.merged,
        skipped: skipped(&report.skipped),
        would_overwrite: &report.would_overwrite,
        conflicts: conflicts_kept(&report.conflicts),
        generation: report.generation,
    }
}

/// `check --json`.
#[derive(Serialize)]
pub struct CheckJson<'a> {
    modules: usize,
    definitions: usize,
    blobs: usize,
    problems: &'a [String],
    digest: &'a str,
}

pub fn check_report(report: &CheckReport) -> CheckJson<'_> {
    CheckJson {
        modules: report.modules,
        definitions: report.definitions,
        blobs: report.blobs,
        problems: &report.problems,
        digest: &report.digest,
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::File => "file",
        Side::Image => "image",
        Side::Both => "both",
        Side::Unknown => "unknown",
    }
}

fn change_name(change: Change) -> &'static str {
    match change {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Changed => "changed",
        Change::FormattingOnly => "formatting-only",
        Change::Moved => "moved",
    }
}

fn state_name(state: ModuleState) -> &'static str {
    match state {
        ModuleState::ImageChanged => "image-changed",
        ModuleState::FileChanged => "file-changed",
        ModuleState::BothChanged => "both-changed",
        ModuleState::Conflict => "conflict",
        ModuleState::NotExported => "not-exported",
        ModuleState::FileDeleted => "file-deleted",
        ModuleState::DeletedChanged => "deleted-changed",
        ModuleState::FileAdded => "file-added",
        ModuleState::Moved => "moved",
        ModuleState::Unparsable => "unparsable",
    }
}

/// One definition that differs (its texts are not part of it: conflicts carry theirs).
#[derive(Serialize)]
pub struct DefinitionJson<'a> {
    name: &'a str,
    change: &'static str,
    side: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    other: Option<&'a str>,
}

/// One module that differs.
#[derive(Serialize)]
pub struct ModuleJson<'a> {
    module: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_path: Option<&'a str>,
    state: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    conflicts: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    definitions: Vec<DefinitionJson<'a>>,
}

fn definition(d: &DefinitionDiff) -> DefinitionJson<'_> {
    DefinitionJson {
        name: &d.name,
        change: change_name(d.change),
        side: side_name(d.side),
        other: d.other.as_deref(),
    }
}

/// The modules of `status --json` and `diff --json`.
pub fn modules(modules: &[ModuleStatus]) -> Vec<ModuleJson<'_>> {
    modules
        .iter()
        .map(|m| ModuleJson {
            module: &m.module,
            path: &m.path,
            from_path: m.from_path.as_deref(),
            state: state_name(m.state),
            conflicts: &m.conflicts,
            definitions: m.definitions.iter().map(definition).collect(),
        })
        .collect()
}

/// 1-based line ranges, end exclusive.
#[derive(Serialize)]
pub struct LinesJson {
    start: usize,
    end: usize,
}

/// A region in conflict, in lines of each text.
#[derive(Serialize)]
pub struct HunkJson {
    base: LinesJson,
    image: LinesJson,
    file: LinesJson,
}

fn lines(lines: Lines) -> LinesJson {
    LinesJson {
        start: lines.start,
        end: lines.end,
    }
}

/// The hunks of a conflict, for `status --json` and `diff --json`.
pub fn hunks(hunks: &[Hunk]) -> Vec<HunkJson> {
    hunks
        .iter()
        .map(|h| HunkJson {
            base: lines(h.base),
            image: lines(h.image),
            file: lines(h.file),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may fail by panicking
mod tests {
    use spry_image::syntax::SourceUnit;
    use spry_image::{FailureKind, FileFailure};

    use super::*;

    /// Moved here with the JSON form from `source/failure.rs`: a failure is its path and its
    /// sentence (`null` for syntax errors, which are listed as errors instead).
    #[test]
    fn as_json_a_failure_is_its_path_and_its_sentence() {
        let large = FileFailure::new("big.spry", FailureKind::TooLarge { size: 9, limit: 4 });
        let json = &failures_json(std::slice::from_ref(&large))[0];
        assert_eq!(json["path"], "big.spry");
        let message = json["message"].as_str().unwrap();
        for needle in ["9 bytes", "limit of 4 bytes", "--max-file-size"] {
            assert!(message.contains(needle), "{message}");
        }
        assert_eq!(json["errors"].as_array().map(Vec::len), Some(0));

        let syntax = SourceUnit::parse(&b"{x = [1}"[..], "x").unwrap_err();
        let failure = FileFailure::new(
            "x.spry",
            FailureKind::Syntax {
                text: syntax.text,
                errors: syntax.errors,
            },
        );
        let json = &failures_json(std::slice::from_ref(&failure))[0];
        assert!(json["message"].is_null());
        assert_eq!(json["errors"][0]["line"], 1);
    }

    #[test]
    fn every_state_change_and_side_has_the_name_it_always_had() {
        assert_eq!(state_name(ModuleState::DeletedChanged), "deleted-changed");
        assert_eq!(state_name(ModuleState::ImageChanged), "image-changed");
        assert_eq!(change_name(Change::FormattingOnly), "formatting-only");
        assert_eq!(side_name(Side::Unknown), "unknown");
    }
}
