//! `spry-image log`, `restore`, `resolve`, `gc`: history and settling conflicts.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anstyle::{AnsiColor, Style};
use clap::{Args, ValueEnum};

use spry_image::image::{Image, LogEntry, Origin, merge};

use super::edit::{EditSession, report_input_error};
use super::inspect::split_target;
use super::pager::{Paged, PagerArg};
use super::{Status, open_image, open_image_to_write, report_error};

#[derive(Args, Debug)]
pub struct LogArgs {
    /// A module, or one definition (`MODULE::NAME`), to list the changes of.
    #[arg(value_name = "MODULE[::NAME]")]
    target: Option<String>,
    /// Print JSON lines instead.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The definition and the generation whose version to bring back.
    #[arg(value_name = "MODULE::NAME@GEN")]
    target: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Take {
    /// The file's text wins.
    File,
    /// The image's text wins (export writes it).
    Image,
}

impl From<Take> for spry_image::image::Take {
    fn from(take: Take) -> Self {
        match take {
            Take::File => spry_image::image::Take::File,
            Take::Image => spry_image::image::Take::Image,
        }
    }
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// The definition in conflict (or a module whose file was deleted while the image held
    /// changes).
    #[arg(value_name = "MODULE[::NAME]")]
    target: String,
    /// Which side's text to keep.
    #[arg(
        long,
        value_enum,
        conflicts_with = "edit",
        required_unless_present = "edit"
    )]
    take: Option<Take>,
    /// Merge by hand: opens `$VISUAL` or `$EDITOR` on the definition with git's diff3 markers
    /// (image, base, file); the saved text, once it parses and holds no marker, settles the
    /// conflict (an empty text removes the definition).
    #[arg(long)]
    edit: bool,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// How many superseded versions of each definition to keep.
    #[arg(long, value_name = "N")]
    keep: usize,
}

pub fn log(image_dir: Option<&Path>, args: &LogArgs, pager: &PagerArg) -> Status {
    let image = match open_image(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    // Into a buffer first: an unknown module is an error, not an empty page.
    let mut out = Vec::new();
    let result = match args.target.as_deref().map(split_target) {
        Some((module, Some(name))) => definition_log(&image, module, name, args.json, &mut out),
        Some((module, None)) => change_log(&image, Some(module), args.json, &mut out),
        None => change_log(&image, None, args.json, &mut out),
    };
    drop(image);
    match result {
        Ok(()) => {
            if !out.is_empty() {
                let mut paged = Paged::start(pager);
                let _ = paged.out().write_all(&out);
                paged.finish();
            }
            Status::Ok
        }
        Err(e) => report_error(&e),
    }
}

/// A log entry's first line, `generation N  TIME  ORIGIN`, the generation in yellow as git
/// shows a commit.
fn entry_head(generation: u64, time: u64, origin: &str) -> String {
    const YELLOW: Style = AnsiColor::Yellow.on_default();
    format!(
        "{YELLOW}generation {generation}{YELLOW:#}  {}  {origin}",
        format_time(time)
    )
}

fn change_log(
    image: &Image,
    module: Option<&str>,
    json: bool,
    out: &mut Vec<u8>,
) -> spry_image::Result<()> {
    if let Some(module) = module
        && image.module(module)?.is_none()
        && !image
            .log()?
            .iter()
            .any(|e| e.modules.iter().any(|m| m.module == module))
    {
        return Err(spry_image::Error::NoModule(module.to_string()));
    }
    let mut entries: Vec<LogEntry> = image.log()?;
    entries.reverse();
    for mut entry in entries {
        if let Some(module) = module {
            entry.modules.retain(|m| m.module == module);
            if entry.modules.is_empty() {
                continue;
            }
        }
        if json {
            let _ = writeln!(out, "{}", serde_json::to_string(&entry).unwrap_or_default());
            continue;
        }
        let _ = writeln!(
            out,
            "{}",
            entry_head(entry.generation, entry.time, entry.origin.name())
        );
        for m in &entry.modules {
            let change = serde_json::to_value(m.change)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut line = format!("    {change} {}", m.module);
            match &m.from_path {
                Some(from) => line.push_str(&format!(" ({from} -> {})", m.path)),
                None => line.push_str(&format!(" ({})", m.path)),
            }
            if !m.definitions.is_empty() {
                line.push_str(&format!(": {}", m.definitions.join(", ")));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    Ok(())
}

fn definition_log(
    image: &Image,
    module: &str,
    name: &str,
    json: bool,
    out: &mut Vec<u8>,
) -> spry_image::Result<()> {
    let versions = image.history(module, name)?;
    if versions.is_empty() {
        return Err(spry_image::Error::NoDefinition {
            module: module.to_string(),
            name: name.to_string(),
        });
    }
    let times: std::collections::HashMap<u64, u64> = image
        .log()?
        .into_iter()
        .map(|e| (e.generation, e.time))
        .collect();
    for (generation, version) in versions.iter().rev() {
        let text = match version.hash {
            Some(hash) => Some(image.text(&hash)?),
            None => None,
        };
        let time = times.get(generation).copied().unwrap_or_default();
        if json {
            let row = serde_json::json!({
                "generation": generation,
                "time": time,
                "origin": version.origin,
                "removed": text.is_none(),
                "hash": version.hash.map(|h| h.to_hex()),
                "text": text.as_deref().map(String::from_utf8_lossy),
            });
            let _ = writeln!(out, "{row}");
            continue;
        }
        let _ = writeln!(
            out,
            "{}",
            entry_head(*generation, time, version.origin.name())
        );
        match text {
            Some(text) => {
                for line in String::from_utf8_lossy(&text).lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
            None => {
                let _ = writeln!(out, "    (removed)");
            }
        }
    }
    Ok(())
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
fn format_time(secs: u64) -> String {
    let rfc3339 = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
    // `2023-11-14T22:13:20Z`, read as people read it.
    rfc3339
        .to_string()
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_string()
}

pub fn restore(image_dir: Option<&Path>, args: &RestoreArgs) -> Status {
    let parsed = args
        .target
        .rsplit_once('@')
        .and_then(|(target, generation)| {
            let (module, name) = split_target(target);
            Some((module, name?, generation.parse::<u64>().ok()?))
        });
    let Some((module, name, generation)) = parsed else {
        eprintln!("error: `restore` takes `MODULE::NAME@GEN`, such as `Stack::push@12`");
        return Status::Trouble;
    };
    let image = match open_image_to_write(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let result = image.begin(Origin::Restore).and_then(|mut tx| {
        tx.restore(module, name, generation)?;
        tx.commit()
    });
    match result {
        Ok(Some(now)) => {
            println!("restored {module}::{name} as of generation {generation} (generation {now})");
            Status::Ok
        }
        Ok(None) => {
            println!("{module}::{name} is already as it was at generation {generation}");
            Status::Ok
        }
        Err(e @ spry_image::Error::Invalid(_)) => {
            eprintln!("error: {e}");
            Status::Failed
        }
        Err(e) => report_error(&e),
    }
}

pub fn resolve(image_dir: Option<&Path>, args: &ResolveArgs) -> Status {
    let (module, Some(name)) = split_target(&args.target) else {
        return resolve_module(image_dir, &args.target, args.take);
    };
    let Some(take) = args.take.filter(|_| !args.edit) else {
        return resolve_edit(image_dir, module, name);
    };
    let image = match open_image_to_write(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let result = image.resolve(module, name, take.into());
    match result {
        Ok(generation) => {
            let side = match take {
                Take::File => "the file's text",
                Take::Image => "the image's text (export writes it)",
            };
            println!(
                "resolved {module}::{name}: {side} (generation {})",
                generation.unwrap_or_default()
            );
            Status::Ok
        }
        Err(e @ spry_image::Error::Invalid(_)) => {
            eprintln!("error: {e}");
            Status::Failed
        }
        Err(e) => report_error(&e),
    }
}

/// `resolve MODULE --take file|image`: a module whose file was deleted while the image held
/// changes.
fn resolve_module(image_dir: Option<&Path>, module: &str, take: Option<Take>) -> Status {
    let Some(take) = take else {
        eprintln!(
            "error: `resolve MODULE` takes `--take file|image`; `--edit` needs `MODULE::NAME`"
        );
        return Status::Trouble;
    };
    let image = match open_image_to_write(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    match image.resolve_module(module, take.into()) {
        Ok(generation) => {
            let what = match take {
                Take::File => "removed, as its file was",
                Take::Image => "kept (export writes its file again)",
            };
            println!(
                "resolved {module}: {what} (generation {})",
                generation.unwrap_or_default()
            );
            Status::Ok
        }
        Err(e @ (spry_image::Error::Invalid(_) | spry_image::Error::NoModule(_))) => {
            eprintln!("error: {e}");
            Status::Failed
        }
        Err(e) => report_error(&e),
    }
}

/// The three texts of a conflict, as they stand.
type Sides = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

fn conflict_texts(image_dir: Option<&Path>, module: &str, name: &str) -> Result<Sides, Status> {
    let image = open_image_to_write(image_dir)?;
    match image.conflict_texts(module, name) {
        Ok(texts) => Ok(texts),
        Err(e @ spry_image::Error::Invalid(_)) => {
            eprintln!("error: {e}");
            Err(Status::Failed)
        }
        Err(e) => Err(report_error(&e)),
    }
}

/// `resolve --edit`: the conflict with diff3 markers in the editor; the image is not held
/// while it runs, and what was read is compared before storing. A text that cannot be stored
/// is kept in its temporary file, named.
fn resolve_edit(image_dir: Option<&Path>, module: &str, name: &str) -> Status {
    let sides = match conflict_texts(image_dir, module, name) {
        Ok(sides) => sides,
        Err(status) => return status,
    };
    let empty = Vec::new();
    let (base, ours, theirs) = &sides;
    let mut marked = merge::with_markers(
        base.as_ref().unwrap_or(&empty),
        ours.as_ref().unwrap_or(&empty),
        theirs.as_ref().unwrap_or(&empty),
    );
    // As a file ends, for the editor; the line break is not part of what is stored.
    if !marked.ends_with(b"\n") {
        marked.push(b'\n');
    }
    let (session, edited) = match EditSession::open("spry-image-resolve-", module, name, &marked) {
        Ok(opened) => opened,
        Err(status) => return status,
    };
    if edited == marked && merge::has_markers(&edited) {
        eprintln!("error: {module}::{name}: the text was not changed; still in conflict");
        return Status::Failed;
    }
    session.finish(|file| store_resolution(image_dir, module, name, &sides, &edited, file))
}

fn store_resolution(
    image_dir: Option<&Path>,
    module: &str,
    name: &str,
    before: &Sides,
    edited: &[u8],
    file: &Path,
) -> Status {
    let image = match open_image_to_write(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    match image.conflict_texts(module, name) {
        Ok(now) if now == *before => {}
        Ok(_) | Err(spry_image::Error::Invalid(_)) => {
            eprintln!("error: {module}::{name} changed while you were editing it");
            return Status::Failed;
        }
        Err(e) => return report_error(&e),
    }
    match image.resolve_with(module, name, edited) {
        Ok(generation) => {
            println!(
                "resolved {module}::{name}: your text (export writes it; generation {})",
                generation.unwrap_or_default()
            );
            Status::Ok
        }
        Err(e) => report_input_error(&e, &file.display().to_string(), edited),
    }
}

pub fn gc(image_dir: Option<&Path>, args: &GcArgs) -> Status {
    let image = match open_image(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    match image.gc(args.keep) {
        Ok(report) => {
            println!(
                "pruned {} old version(s) and {} text(s) nothing refers to; kept the newest {} of each",
                report.versions, report.texts, args.keep
            );
            Status::Ok
        }
        Err(e) => report_error(&e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::format_time(951_782_400), "2000-02-29 00:00:00");
    }
}
