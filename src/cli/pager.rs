//! Long output (`diff`, `log`) through the user's pager when standard output is a terminal, as
//! git does: `SPRY_IMAGE_PAGER` (git's `GIT_PAGER`), else `PAGER`, else `less`, run by the
//! shell, with `LESS=FRX` unless `LESS` is set (quit when it fits one screen, pass colors,
//! leave the text on the screen). An empty value or `cat` means no pager.

use std::io::{IsTerminal, Write};
use std::process::{Child, Command, Stdio};

use anstream::AutoStream;
use clap::Args;

/// `--no-pager`, on the commands whose output may be long.
#[derive(Args, Debug)]
pub struct PagerArg {
    /// Write to standard output even on a terminal, without a pager.
    #[arg(long)]
    no_pager: bool,
}

/// Where a command writes its long output: the pager's input, or standard output. Colors
/// follow `--color` and standard output (a pager on a terminal gets them; a pipe does not).
pub struct Paged {
    child: Option<Child>,
    out: AutoStream<Box<dyn Write>>,
}

impl Paged {
    /// Starts the pager if one is wanted; standard output otherwise (also when the pager
    /// cannot be started).
    pub fn start(arg: &PagerArg) -> Paged {
        let choice = AutoStream::choice(&std::io::stdout());
        if !arg.no_pager
            && std::io::stdout().is_terminal()
            && let Some(command) = pager_command()
        {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(&command).stdin(Stdio::piped());
            if std::env::var_os("LESS").is_none() {
                cmd.env("LESS", "FRX");
            }
            if std::env::var_os("LV").is_none() {
                cmd.env("LV", "-c");
            }
            match cmd.spawn() {
                Ok(mut child) => {
                    if let Some(stdin) = child.stdin.take() {
                        return Paged {
                            child: Some(child),
                            out: AutoStream::new(Box::new(stdin), choice),
                        };
                    }
                    let _ = child.wait();
                }
                Err(e) => eprintln!("warning: cannot run the pager `{command}`: {e}"),
            }
        }
        Paged {
            child: None,
            out: AutoStream::new(Box::new(std::io::stdout().lock()), choice),
        }
    }

    /// The stream to write to.
    pub fn out(&mut self) -> &mut impl Write {
        &mut self.out
    }

    /// Closes the pager's input and waits until the user quits it. A write that failed
    /// because the user quit early (a broken pipe) is not an error.
    pub fn finish(mut self) {
        let _ = self.out.flush();
        let Paged { child, out } = self;
        drop(out);
        if let Some(mut child) = child {
            let _ = child.wait();
        }
    }
}

/// The pager to run, if any: `SPRY_IMAGE_PAGER`, `PAGER`, `less`; none for `` or `cat`.
fn pager_command() -> Option<String> {
    let command = ["SPRY_IMAGE_PAGER", "PAGER"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .unwrap_or_else(|| "less".to_string());
    let trimmed = command.trim();
    (!trimmed.is_empty() && trimmed != "cat").then(|| trimmed.to_string())
}
