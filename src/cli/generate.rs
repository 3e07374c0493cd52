//! `spry-image gen`: a deterministic corpus for benchmarks.

use std::path::PathBuf;

use clap::Args;

use spry_image::corpus::{self, CorpusOptions};

use super::Status;

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Write a tree of this many modules into OUT (a directory).
    #[arg(
        long,
        conflicts_with = "megabytes",
        required_unless_present = "megabytes"
    )]
    modules: Option<usize>,
    /// Write one module file of at least this many megabytes to OUT (a file).
    #[arg(long)]
    megabytes: Option<usize>,
    /// The generator's seed: the same seed gives the same bytes.
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write.
    #[arg(value_name = "OUT")]
    out: PathBuf,
}

pub fn run(args: &GenArgs) -> Status {
    let options = match args.seed {
        Some(seed) => CorpusOptions::with_seed(seed),
        None => CorpusOptions::default(),
    };
    let result = match (args.modules, args.megabytes) {
        (Some(modules), _) => corpus::write_tree(&args.out, modules, &options).map(|bytes| {
            format!(
                "wrote {modules} modules ({bytes} bytes) to {}",
                args.out.display()
            )
        }),
        (None, Some(mb)) => {
            let text = corpus::generate_file(mb * 1_000_000, &options);
            std::fs::write(&args.out, &text)
                .map(|()| format!("wrote {} bytes to {}", text.len(), args.out.display()))
        }
        (None, None) => return Status::Trouble,
    };
    match result {
        Ok(message) => {
            eprintln!("{message}");
            Status::Ok
        }
        Err(e) => {
            eprintln!("{}: error: {e}", args.out.display());
            Status::Trouble
        }
    }
}
