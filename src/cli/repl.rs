//! `spry-image repl`: an interactive Spry session over the image's modules, with line editing,
//! persistent history and multi-line input until the brackets balance.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use spry_image::eval::{ErrorKind, Interp, Options, Source, Value, repr, run_with_stack};
use spry_image::syntax::{SyntaxErrorKind, parse, read_definition};
use spry_image::{ExportOptions, Origin};

use super::{Borrowed, Status, open_image};

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Commands: :help, :ls, :show NAME, :module NAME, :module (back to the \
top level), :quit. Ctrl-C stops a running evaluation; Ctrl-D ends the session.\n\nIn a \
module of the image, a definition (`name = expression`) is also stored in the image as a live \
edit and written to the module's file."
)]
pub struct ReplArgs {}

pub fn run(image: Option<&Path>, args: &ReplArgs) -> Status {
    let _ = args;
    let image = image.map(Path::to_path_buf);
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    match run_with_stack(move || session(image.as_deref(), interrupt)) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: {e}");
            Status::Trouble
        }
    }
}

const HELP: &str = "\
Spry, with the image's modules loadable as Foo::bar.
  EXPRESSION        evaluate it and print its value
  :ls               the image's modules, and the names bound in this session
  :show NAME        a value (or, for Module::name, its text in the image)
  :module NAME      evaluate in module NAME from now on (bindings go into it; a definition
                    `name = ...` in a module of the image is stored there and in its file;
                    a redefinition keeps the comment above the old one)
  :module           back to the top level
  :help, :quit";

/// Whether more lines are needed: a bracket or a string is still open.
fn incomplete(text: &str) -> bool {
    parse(text.as_bytes()).errors.iter().any(|e| {
        matches!(
            e.kind,
            SyntaxErrorKind::UnclosedBracket | SyntaxErrorKind::UnterminatedString
        )
    })
}

fn history_path(image: Option<&Path>) -> Option<PathBuf> {
    match image {
        Some(dir) => Some(dir.join("repl_history")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".spry_image_history")),
    }
}

struct ImageRef<'a>(&'a spry_image::Image);

impl Source for ImageRef<'_> {
    fn has_module(&self, module: &str) -> spry_image::Result<bool> {
        self.0.has_module(module)
    }

    fn definition(&self, module: &str, name: &str) -> spry_image::Result<Option<Vec<u8>>> {
        Source::definition(self.0, module, name)
    }

    fn is_partial(&self) -> bool {
        Source::is_partial(self.0)
    }
}

/// The image of `image_dir`, or of the directory the REPL runs in (`None`: none found).
fn find_image(image_dir: Option<&Path>) -> Result<Option<Borrowed>, Status> {
    let found = match image_dir {
        Some(dir) => Some(dir.to_path_buf()),
        None => std::env::current_dir()
            .ok()
            .and_then(|here| spry_image::image::Image::find(&here).ok()),
    };
    match &found {
        Some(dir) => open_image(Some(dir)).map(Some),
        None => Ok(None),
    }
}

/// What the line editor gave.
enum Input {
    /// A complete input (continued over lines while brackets are open).
    Text(String),
    /// Nothing to run (Ctrl-C at the prompt).
    Nothing,
    /// End of input.
    End,
    /// The editor failed (reported).
    Failed,
}

/// Reads one input, asking for more lines while it is incomplete.
fn read_input(editor: &mut DefaultEditor, prompt: &str) -> Input {
    let mut input = match editor.readline(prompt) {
        Ok(line) => line,
        Err(ReadlineError::Interrupted) => return Input::Nothing,
        Err(ReadlineError::Eof) => return Input::End,
        Err(e) => {
            eprintln!("error: {e}");
            return Input::Failed;
        }
    };
    while incomplete(&input) {
        match editor.readline("....> ") {
            Ok(line) => {
                input.push('\n');
                input.push_str(&line);
            }
            Err(ReadlineError::Interrupted) => {
                input.clear();
                break;
            }
            Err(_) => break,
        }
    }
    Input::Text(input)
}

fn session(image_dir: Option<&Path>, interrupt: Arc<AtomicBool>) -> Status {
    let image = match find_image(image_dir) {
        Ok(image) => image,
        Err(status) => return status,
    };
    let mut editor = match DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return Status::Trouble;
        }
    };
    let history = history_path(image.as_ref().map(|i| i.dir()));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let options = Options {
        interrupt: Some(interrupt.clone()),
        ..Options::default()
    };
    let mut spry = Interp::new(options, Box::new(std::io::stdout()));
    if let Some(image) = &image {
        spry.set_source(Box::new(ImageRef(image)));
    }
    let mut module: Option<String> = None;
    let mut count = 0usize;
    loop {
        let prompt = match &module {
            Some(m) => format!("{m}> "),
            None => "spry> ".to_string(),
        };
        let input = match read_input(&mut editor, &prompt) {
            Input::Text(input) => input,
            Input::Nothing => continue,
            Input::End => break,
            Input::Failed => return Status::Trouble,
        };
        let line = input.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if let Some(command) = line.strip_prefix(':') {
            let (word, rest) = command.split_once(' ').unwrap_or((command, ""));
            match (word, rest.trim()) {
                ("q" | "quit", _) => break,
                ("help", _) => println!("{HELP}"),
                ("ls", _) => list(image.as_deref(), &spry),
                ("module", "") => module = None,
                ("module", name) => module = Some(name.to_string()),
                ("show", name) if !name.is_empty() => show(image.as_deref(), &mut spry, name),
                _ => println!("unknown command :{word} (try :help)"),
            }
            continue;
        }
        count += 1;
        let name = format!("repl-{count}");
        interrupt.store(false, Ordering::Relaxed);
        let result = match &module {
            Some(m) => spry.eval_in_module(m, &name, line.as_bytes()),
            None => spry.eval_text(&name, line.as_bytes()),
        };
        let _ = spry.flush();
        match result {
            Ok(value) => {
                if let (Some(m), Some(image)) = (&module, image.as_deref())
                    && let Ok(def) = read_definition(line.as_bytes())
                {
                    store(image, m, &def, line);
                }
                if !matches!(value, Value::Nil) {
                    let style = anstyle::AnsiColor::Green.on_default();
                    anstream::println!("{style}{}{style:#}", repr(&value));
                }
            }
            Err(e) if matches!(e.kind, ErrorKind::Quit(_)) => break,
            Err(e) => anstream::eprint!("{}", super::red(&e.report())),
        }
        let _ = std::io::stdout().flush();
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Status::Ok
}

fn list(image: Option<&spry_image::Image>, spry: &Interp<'_>) {
    if let Some(image) = image {
        match image.modules() {
            Ok(modules) => {
                let names: Vec<String> = modules.into_iter().map(|(name, _)| name).collect();
                println!("modules: {}", names.join(" "));
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
    println!("bound here: {}", spry.user_names().join(" "));
}

fn show(image: Option<&spry_image::Image>, spry: &mut Interp<'_>, name: &str) {
    if let (Some(image), Some((module, def))) = (image, name.split_once("::"))
        && let Ok(text) = image.definition_text(module, def)
    {
        println!("{}", String::from_utf8_lossy(&text));
        return;
    }
    match spry.eval_text("show", format!("${name}").as_bytes()) {
        Ok(value) => println!("{}", repr(&value)),
        Err(e) => anstream::eprint!("{}", super::red(&e.report())),
    }
}

/// The text to store for `name`: what was typed, after the comment lines that stand above the
/// definition it replaces. One types code at a prompt, not its documentation, so redefining
/// `answer` must not drop the `# the answer` above it; a text that brings comments of its own
/// replaces them, as `put` does.
fn with_kept_comment(
    image: &spry_image::Image,
    module: &str,
    name: &str,
    typed: &str,
) -> spry_image::Result<Vec<u8>> {
    let typed = typed.as_bytes();
    if typed.starts_with(b"#") {
        return Ok(typed.to_vec());
    }
    let old = match image.definition_text(module, name) {
        Ok(old) => old,
        Err(spry_image::Error::NoDefinition { .. }) => return Ok(typed.to_vec()),
        Err(e) => return Err(e),
    };
    let mut text = leading_comment(&old).to_vec();
    text.extend_from_slice(typed);
    Ok(text)
}

/// The comment lines that open a definition's text, with the indentation of the line after
/// them (the definition's own first line), or nothing when it opens with code.
fn leading_comment(text: &[u8]) -> &[u8] {
    let mut at = 0;
    let mut commented = false;
    while at < text.len() {
        let line_end = text[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| at + i + 1);
        let line = &text[at..line_end];
        let indent = line
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        match line.get(indent) {
            Some(b'#') => commented = true,
            Some(b'\n' | b'\r') | None => {}
            Some(_) => return if commented { &text[..at + indent] } else { &[] },
        }
        at = line_end;
    }
    &[]
}

/// A definition made in a module of the image is a live edit, as `put` makes one, and goes to
/// the module's file at once (through a running watcher's loan, the watcher writes it too).
fn store(image: &spry_image::Image, module: &str, name: &str, text: &str) {
    let stored = (|| -> spry_image::Result<Option<u64>> {
        if image.module(module)?.is_none() {
            return Ok(None);
        }
        let text = with_kept_comment(image, module, name, text)?;
        let mut tx = image.begin(Origin::Live)?;
        tx.put_definition(module, name, &text)?;
        let generation = tx.commit()?;
        let options = ExportOptions {
            modules: vec![module.to_string()],
            ..ExportOptions::default()
        };
        spry_image::export(image, &options)?;
        Ok(generation)
    })();
    match stored {
        Ok(Some(generation)) => {
            eprintln!("stored {module}::{name} (generation {generation}) and wrote its file");
        }
        Ok(None) => {}
        Err(e) => eprintln!("error: {module}::{name} is bound but not stored: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::leading_comment;

    #[test]
    fn leading_comment_is_the_comment_lines_and_the_indentation_of_the_code_after_them() {
        assert_eq!(
            leading_comment(b"# the answer\n  answer = 42"),
            b"# the answer\n  "
        );
        assert_eq!(
            leading_comment(b"# one\r\n\n  # two\r\n\tf = func [:x x]\n"),
            b"# one\r\n\n  # two\r\n\t"
        );
        assert_eq!(leading_comment(b"answer = 42 # trailing"), b"");
        assert_eq!(leading_comment(b"  answer = 42\n  # after"), b"");
        assert_eq!(leading_comment(b"# only a comment"), b"");
    }
}
