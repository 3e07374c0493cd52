//! `spry-image run`: runs a Spry script, a definition of the image, or `-e CODE`, with the
//! image's modules loadable by key when an image is found.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;

use spry_image::eval::{
    DEFAULT_MAX_DEPTH, ErrorKind, EvalError, Interp, Options, Source, Value, repr, run_with_stack,
};

use super::{Status, open_image};

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Scripts see their arguments as the block of strings `args`. A script's first \
line may be `#!/usr/bin/env spry-image run` (it is a comment).\n\nThe outside world beyond \
files is out of scope: no GUI, network, SQLite, threads, Python or shell primitives."
)]
pub struct RunArgs {
    /// Evaluate this code instead of a file (its last value is printed unless nil).
    #[arg(
        short = 'e',
        value_name = "CODE",
        conflicts_with = "target",
        allow_hyphen_values = true
    )]
    code: Option<String>,
    /// A script file, or `MODULE::NAME` of the image (called with ARGS as strings; its value is
    /// printed unless nil).
    #[arg(value_name = "FILE|MODULE::NAME", required_unless_present = "code")]
    target: Option<String>,
    /// Arguments for the script or definition.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<String>,
    /// Nested calls allowed before `stack overflow` (at most 25000: the evaluation thread's
    /// stack must outlast the limit).
    #[arg(
        long,
        value_name = "N",
        default_value_t = spry_image::eval::DEFAULT_MAX_DEPTH as u64,
        value_parser = clap::value_parser!(u64).range(1..=25_000)
    )]
    max_depth: u64,
    /// Interpret every call: compile no function of integer arithmetic on its first call
    /// (the results are the same; for comparing speed).
    #[arg(long)]
    no_compile: bool,
}

pub fn run(image: Option<&Path>, args: &RunArgs) -> Status {
    let image = image.map(Path::to_path_buf);
    let args = args.clone();
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    // A second Ctrl-C while the evaluation does not stop ends the process the usual way.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    });
    match run_with_stack(move || evaluate(image.as_deref(), &args, interrupt)) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: {e}");
            Status::Trouble
        }
    }
}

/// The image as the evaluator reads it (possibly borrowed from a running watcher).
struct ImageSource(spry_image::Borrowed);

impl Source for ImageSource {
    fn has_module(&self, module: &str) -> spry_image::Result<bool> {
        (*self.0).has_module(module)
    }

    fn definition(&self, module: &str, name: &str) -> spry_image::Result<Option<Vec<u8>>> {
        Source::definition(&*self.0, module, name)
    }

    fn is_partial(&self) -> bool {
        Source::is_partial(&*self.0)
    }
}

enum Program {
    Code(String),
    File(PathBuf),
    Definition(String),
}

fn program(args: &RunArgs) -> Program {
    if let Some(code) = &args.code {
        return Program::Code(code.clone());
    }
    let target = args.target.clone().unwrap_or_default();
    if target.contains("::") && !Path::new(&target).exists() {
        Program::Definition(target)
    } else {
        Program::File(PathBuf::from(target))
    }
}

fn evaluate(image_dir: Option<&Path>, args: &RunArgs, interrupt: Arc<AtomicBool>) -> Status {
    let program = program(args);
    // An image is optional for a script: one named by --image, or found upward.
    let found = match image_dir {
        Some(dir) => Some(dir.to_path_buf()),
        None => std::env::current_dir()
            .ok()
            .and_then(|here| spry_image::image::Image::find(&here).ok()),
    };
    let image = match found {
        Some(dir) => match open_image(Some(&dir)) {
            Ok(image) => Some(image),
            Err(status) => return status,
        },
        None => None,
    };
    if image.is_none() && matches!(program, Program::Definition(_)) {
        eprintln!("error: no image found here (use --image DIR, or run in a tree with an image)");
        return Status::Failed;
    }
    let stdout = std::io::stdout();
    let options = Options {
        max_depth: usize::try_from(args.max_depth).unwrap_or(DEFAULT_MAX_DEPTH),
        max_steps: None,
        interrupt: Some(interrupt),
        compile: !args.no_compile,
    };
    let mut spry = Interp::new(options, Box::new(stdout.lock()));
    if let Some(image) = image {
        spry.set_source(Box::new(ImageSource(image)));
    }
    let script_args: Vec<Value> = args.args.iter().map(|a| Value::str(a.as_bytes())).collect();
    let script_args = Value::block(script_args);
    // `args` as the reference's tools name them, `arguments` as spry-src's scripts do.
    spry.define("args", script_args.clone());
    spry.define("arguments", script_args);
    let (result, show) = match &program {
        Program::Code(code) => (spry.eval_text("-e", code.as_bytes()), true),
        Program::File(path) => match std::fs::read(path) {
            Ok(text) => (spry.eval_text(&path.display().to_string(), &text), false),
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return Status::Trouble;
            }
        },
        Program::Definition(target) => {
            let mut call = target.clone();
            for a in &args.args {
                call.push(' ');
                let mut quoted = String::new();
                spry_image::eval::value::escape_into(a.as_bytes(), &mut quoted);
                call.push_str(&quoted);
            }
            (spry.eval_text(target, call.as_bytes()), true)
        }
    };
    let _ = spry.flush();
    drop(spry);
    finish(result, show)
}

fn finish(result: Result<Value, EvalError>, show: bool) -> Status {
    match result {
        Ok(value) => {
            if show && !matches!(value, Value::Nil) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", repr(&value));
            }
            Status::Ok
        }
        Err(e) => match e.kind {
            ErrorKind::Quit(0) => Status::Ok,
            ErrorKind::Quit(_) => Status::Failed,
            ErrorKind::Image => {
                anstream::eprint!("{}", super::red(&e.report()));
                Status::Trouble
            }
            _ => {
                anstream::eprint!("{}", super::red(&e.report()));
                Status::Failed
            }
        },
    }
}
