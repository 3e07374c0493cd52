//! `spry-image watch`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use spry_image::diagnostic;
use spry_image::image::{IMAGE_DIR, Image};
use spry_image::{BatchReport, Cause, Lent, Stopper, WatchOptions, Watcher};
use spry_image::{BuildReport, FileFailure};

use super::{Shown, Status, failures_json, print_file_failure, report_error, shown_path};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The source tree (default: the current directory).
    #[arg(value_name = "SRC")]
    src: Option<PathBuf>,
    /// Print one JSON object per line: first when watching, then one per batch.
    #[arg(long)]
    json: bool,
}

pub fn run(image_dir: Option<&Path>, args: &WatchArgs) -> Status {
    let named = args.src.clone().or_else(|| super::default_tree(image_dir));
    let src = match super::source_tree(named.as_deref()) {
        Ok(src) => src,
        Err(status) => return status,
    };
    let dir = image_dir.map_or_else(|| src.join(IMAGE_DIR), Path::to_path_buf);
    let image = match open_unborrowed(&dir, &src) {
        Ok(image) => image,
        Err(status) => return status,
    };
    super::note_relocation(&image);
    let (stopper, early) = match stop_on_signals() {
        Ok(found) => found,
        Err(status) => return status,
    };
    let json = args.json;
    let shown = src.clone();
    // Batch lines wait until the first lines are out: `watching` always comes first.
    let gate = Arc::new(Mutex::new(()));
    let first_lines = gate.lock().unwrap_or_else(PoisonError::into_inner);
    let batch_gate = Arc::clone(&gate);
    let watcher = match Watcher::start(image, &src, &options(), move |batch| {
        let _turn = batch_gate.lock().unwrap_or_else(PoisonError::into_inner);
        print_batch(&shown, batch, json);
    }) {
        Ok(watcher) => watcher,
        Err(e) => return report_error(&e),
    };
    let _ = stopper.set(watcher.stopper());
    if early.load(Ordering::SeqCst) {
        watcher.stopper().stop();
    }
    if let Err(e) = watcher.lending() {
        eprintln!(
            "warning: other commands cannot borrow the image while this runs (they find it \
             locked): {e}"
        );
    }
    let generation = watcher.with_image(|image| image.generation());
    let generation = match generation {
        Ok(Ok(generation)) => generation,
        Ok(Err(e)) | Err(e) => {
            // Let the worker print (and stop) rather than wait on the gate forever.
            drop(first_lines);
            return report_error(&e);
        }
    };
    let root = watcher.root().display().to_string();
    if json {
        print_line(&WatchingLine {
            watching: &root,
            generation,
        });
    } else {
        println!("watching {root} at generation {generation} (Ctrl-C stops)");
    }
    let initial = watcher.initial();
    if initial.build.generation.is_some() || !initial.build.failed.is_empty() {
        print_batch(&src, initial, json);
    }
    drop(first_lines);
    stopped(watcher.wait(), json)
}

/// The image, created or opened, never borrowed from a running watcher: one watcher per
/// image.
fn open_unborrowed(dir: &Path, src: &Path) -> Result<Image, Status> {
    match Image::create(dir, src) {
        Ok(image) => Ok(image),
        Err(spry_image::Error::Locked { path, pid, command })
            if path.join(spry_image::SOCKET_FILE).exists() =>
        {
            eprintln!(
                "error: the image at {} is already watched by process {pid} ({command}); one \
                 watcher per image",
                path.display()
            );
            Err(Status::Trouble)
        }
        Err(e) => Err(report_error(&e)),
    }
}

/// The stopper slot and the early flag that Ctrl-C and SIGTERM set from now on: a signal
/// that comes while the watcher starts (its first build) stops it as soon as it has started.
fn stop_on_signals() -> Result<(Arc<OnceLock<Stopper>>, Arc<AtomicBool>), Status> {
    let stopper: Arc<OnceLock<Stopper>> = Arc::new(OnceLock::new());
    let early = Arc::new(AtomicBool::new(false));
    {
        let (stopper, early) = (Arc::clone(&stopper), Arc::clone(&early));
        // The flag first, then the stopper: a signal racing the start is never lost.
        if let Err(e) = ctrlc::set_handler(move || {
            early.store(true, Ordering::SeqCst);
            if let Some(stopper) = stopper.get() {
                stopper.stop();
            }
        }) {
            eprintln!("error: cannot handle Ctrl-C: {e}");
            return Err(Status::Trouble);
        }
    }
    Ok((stopper, early))
}

/// The exit status once the watcher stopped.
fn stopped<T>(outcome: spry_image::Result<T>, json: bool) -> Status {
    match outcome {
        Ok(_) => {
            if !json {
                eprintln!("stopped");
            }
            Status::Ok
        }
        Err(spry_image::Error::Locked { pid, command, .. }) => {
            // Stopped while the image was lent: the borrower keeps it, and nothing is lost.
            eprintln!("stopped; process {pid} ({command}) still holds the image");
            Status::Ok
        }
        Err(e) => report_error(&e),
    }
}

/// The default options, with the debounce and the debouncer's tick overridable (in
/// milliseconds) through `SPRY_IMAGE_WATCH_DEBOUNCE_MS` and `SPRY_IMAGE_WATCH_TICK_MS`, for
/// benchmarks.
fn options() -> WatchOptions {
    let mut options = WatchOptions::default();
    let ms = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(std::time::Duration::from_millis)
    };
    if let Some(debounce) = ms("SPRY_IMAGE_WATCH_DEBOUNCE_MS") {
        options.debounce = debounce;
    }
    if let Some(tick) = ms("SPRY_IMAGE_WATCH_TICK_MS") {
        options.tick = tick;
    }
    options
}

/// Reports one batch: failures on standard error, then a line on standard output (JSON, or a
/// sentence when the batch committed something).
fn print_batch(src: &Path, batch: &BatchReport, json: bool) {
    if let Some(lent) = &batch.lent {
        print_lent(src, lent, json);
        return;
    }
    let report = &batch.build;
    if let Some(reason) = &batch.reason {
        eprintln!("watch: full rescan: {reason}");
    }
    print_failures(src, &report.failed);
    if json {
        print_line(&batch_json(src, batch));
    } else if let Some(line) = summary(batch) {
        println!("{line}");
    }
}

/// Reports a loan once the image is back: a line on standard error (with what the export
/// wrote and skipped), and with `--json` a line on standard output.
fn print_lent(src: &Path, lent: &Lent, json: bool) {
    let export = &lent.export;
    let written: Vec<&str> = export.written.iter().map(|w| w.path.as_str()).collect();
    let wrote = if written.is_empty() {
        String::new()
    } else {
        let names = Shown::of(src);
        let shown: Vec<String> = written.iter().map(|p| names.path(p)).collect();
        format!("; wrote {}", shown.join(", "))
    };
    eprintln!(
        "watch: lent the image to process {} ({}) for {} ms{wrote}",
        lent.pid,
        lent.command,
        lent.held.as_millis()
    );
    print_failures(src, &export.failures);
    for skipped in &export.skipped {
        eprintln!(
            "watch: warning: {} not written: {}",
            shown_path(src, &skipped.path),
            skipped.reason
        );
    }
    for kept in &export.conflicts {
        eprintln!(
            "watch: conflict: {}: `{}::{}` left as the file has it (the image's text is kept)",
            src.join(&kept.path).display(),
            kept.module,
            kept.name
        );
    }
    if json {
        print_line(&LentLine {
            lent: &lent.command,
            pid: lent.pid,
            generation: lent.generation,
            held_ms: millis(lent.held),
            written,
            merged: &export.merged,
            skipped: super::json::skipped(&export.skipped),
            conflicts: super::json::conflicts_kept(&export.conflicts),
        });
    }
}

fn print_failures(src: &Path, failures: &[FileFailure]) {
    for failure in failures {
        if print_file_failure(src, failure) {
            eprintln!(
                "{}: the module keeps its last good version",
                shown_path(src, &failure.path)
            );
        }
    }
}

/// `generation 7: changed A, B (2 files, 12 ms)`; nothing for a batch that committed nothing.
fn summary(batch: &BatchReport) -> Option<String> {
    let report = &batch.build;
    let generation = report.generation?;
    let mut parts: Vec<String> = Vec::new();
    for (what, names) in [
        ("added", &report.added),
        ("changed", &report.changed),
        ("removed", &report.removed),
    ] {
        if !names.is_empty() {
            parts.push(format!("{what} {}", names.join(", ")));
        }
    }
    if !report.moved.is_empty() {
        let moved: Vec<String> = report
            .moved
            .iter()
            .map(|m| format!("{} ({} → {})", m.module, m.from, m.to))
            .collect();
        parts.push(format!("moved {}", moved.join(", ")));
    }
    if !report.failed.is_empty() {
        parts.push(format!("{} failed", report.failed.len()));
    }
    let files = match report.files {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    let cause = match batch.cause {
        Cause::Start => ", start",
        Cause::Rescan => ", full rescan",
        Cause::Events | Cause::Lent => "",
    };
    Some(format!(
        "generation {generation}: {} ({files}, {} ms{cause})",
        parts.join("; "),
        batch.latency.as_millis()
    ))
}

/// `watch --json`'s first line.
#[derive(Serialize)]
struct WatchingLine<'a> {
    watching: &'a str,
    generation: u64,
}

/// `watch --json`'s line for a loan.
#[derive(Serialize)]
struct LentLine<'a> {
    lent: &'a str,
    pid: u32,
    generation: u64,
    held_ms: f64,
    written: Vec<&'a str>,
    merged: &'a [String],
    skipped: Vec<super::json::SkippedJson<'a>>,
    conflicts: Vec<super::json::ConflictKeptJson<'a>>,
}

/// `watch --json`'s line for a batch.
#[derive(Serialize)]
struct BatchLine<'a> {
    generation: Option<u64>,
    files: usize,
    read: usize,
    paths: &'a [String],
    added: &'a [String],
    changed: &'a [String],
    removed: &'a [String],
    moved: Vec<super::json::MoveJson<'a>>,
    failed: Value,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rescan: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<bool>,
}

/// Milliseconds with microseconds, as JSON prints them.
fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// One line of JSON on standard output (a type that cannot fail to serialize).
fn print_line(value: &impl Serialize) {
    if let Ok(line) = serde_json::to_string(value) {
        println!("{line}");
    }
}

fn batch_json<'a>(src: &Path, batch: &'a BatchReport) -> BatchLine<'a> {
    let report: &BuildReport = &batch.build;
    // Each failure as `build --json` has it, plus the first error as one line.
    let mut failed = failures_json(&report.failed);
    if let Value::Array(rows) = &mut failed {
        for (row, f) in rows.iter_mut().zip(&report.failed) {
            let shown = shown_path(src, &f.path);
            let error = match f.errors().first() {
                Some(e) => format!(
                    "{}: {}",
                    diagnostic::location(&shown, f.text(), e),
                    e.message
                ),
                None => format!("{shown}: {}", f.message().as_deref().unwrap_or("failed")),
            };
            row["error"] = Value::from(error);
        }
    }
    let rescan = matches!(batch.cause, Cause::Rescan);
    BatchLine {
        generation: report.generation,
        files: report.files,
        read: report.read,
        paths: &batch.paths,
        added: &report.added,
        changed: &report.changed,
        removed: &report.removed,
        moved: super::json::moves(&report.moved),
        failed,
        latency_ms: millis(batch.latency),
        rescan: rescan.then_some(true),
        reason: rescan.then_some(batch.reason.as_deref()),
        start: matches!(batch.cause, Cause::Start).then_some(true),
    }
}
