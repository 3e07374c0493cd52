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

pub fn man() -> Status {
    let man = clap_mangen::Man::new(Cli::command());
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
