//! `spry-image completions SHELL` and `spry-image man`: generated from the clap definitions,
//! so they never disagree with `--help`.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Status};

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

pub fn completions(args: &CompletionsArgs) -> Status {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "spry-image",
        &mut std::io::stdout(),
    );
    Status::Ok
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// A command: its own page (`spry-image-status.1`), with all its options.
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
}

pub fn man(args: &ManArgs) -> Status {
    let mut top = Cli::command();
    top.build();
    let page = match &args.command {
        None => top,
        Some(name) => match top.find_subcommand(name) {
            Some(sub) => {
                let title = format!("spry-image-{}", sub.get_name());
                sub.clone().name(title).version(env!("CARGO_PKG_VERSION"))
            }
            None => {
                eprintln!("error: no command `{name}` (see `spry-image --help`)");
                return Status::Trouble;
            }
        },
    };
    let man = clap_mangen::Man::new(page);
    let mut out = std::io::stdout().lock();
    match man.render(&mut out) {
        Ok(()) => Status::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Ok,
        Err(e) => {
            eprintln!("error: cannot write: {e}");
            Status::Trouble
        }
    }
}
