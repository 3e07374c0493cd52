//! Helpers shared by the integration tests, in ripgrep's manner: every test gets a fresh
//! temporary directory ([`Dir`]) to write files into, and runs the real binary in it
//! ([`TestCommand`]), getting back its stdout, stderr and exit code ([`Output`]).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate's root directory (where `Cargo.toml`, `spry-src/` and `fixtures/` are).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A path below the crate's root.
pub fn repo_path(relative: impl AsRef<Path>) -> PathBuf {
    repo_root().join(relative)
}

/// The real binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_spry-image"))
}

/// `program`, linked (or copied) into a directory of its own that every user may enter, for
/// tests that run it as another user: the checkout that holds the original may be closed to
/// them (a clone in a `mktemp -d` directory is). The directory lives as long as the result.
pub fn runnable_by_anyone(program: &Path) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("spry-image-test-bin-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = program.file_name().unwrap_or(OsStr::new("program"));
    let copy = dir.path().join(name);
    if std::fs::hard_link(program, &copy).is_err() {
        std::fs::copy(program, &copy).unwrap();
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

/// Every file under `dir` (recursively) whose name ends with `.{ext}`, sorted, among those a
/// checkout would track ([`tracked_files`]).
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    tracked_files(dir)
        .into_iter()
        .filter(|path| path.extension() == Some(OsStr::new(ext)))
        .map(|path| dir.join(path))
        .collect()
}

/// The files under `dir` that a checkout would track, relative to it, sorted: what
/// `.gitignore` files (in `dir`, below it, and in the checkout above it) ignore is left out,
/// and so are image directories and `.git`, whether or not `dir` is in a git checkout.
pub fn tracked_files(dir: &Path) -> Vec<PathBuf> {
    let walk = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .filter_entry(|entry| {
            let name = entry.file_name();
            name != ".spry-image" && name != ".git"
        })
        .build();
    let mut files = Vec::new();
    for entry in walk {
        let entry = entry.unwrap_or_else(|e| panic!("cannot walk {}: {e}", dir.display()));
        if entry.file_type().is_some_and(|t| t.is_file()) {
            files.push(entry.path().strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    files.sort();
    files
}

/// A fresh temporary directory for one test, removed when dropped.
pub struct Dir {
    name: String,
    dir: tempfile::TempDir,
}

impl Dir {
    /// A new empty directory; `name` (the test's name) is part of its path, to spot leftovers.
    pub fn new(name: &str) -> Dir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("spry-image-test-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        Dir {
            name: name.to_string(),
            dir,
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The path of `relative` inside the directory.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.path().join(relative)
    }

    /// Writes `contents` to `relative` (parent directories are created).
    pub fn create(&self, relative: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Creates the directory `relative` and its parents.
    pub fn create_dir(&self, relative: impl AsRef<Path>) -> PathBuf {
        let path = self.join(relative);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        path
    }

    /// Reads `relative` inside the directory.
    pub fn read(&self, relative: impl AsRef<Path>) -> Vec<u8> {
        let path = self.join(relative);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// Runs `repl` in `cwd` with `input` as its standard input, and checks that it exits 0.
    pub fn repl(&self, cwd: &Path, input: &str) -> Output {
        let file = self.create("repl-input.txt", input);
        let mut cmd = self.command();
        cmd.current_dir(cwd).arg("repl");
        cmd.cmd().stdin(
            std::fs::File::open(&file)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display())),
        );
        let out = cmd.output();
        assert_eq!(out.code, Some(0), "{out}");
        out
    }

    /// A command running the binary with this directory as its working directory.
    pub fn command(&self) -> TestCommand {
        self.command_of(&binary())
    }

    /// A command running `program` (a copy of the binary, say) as [`command`](Self::command)
    /// runs the binary.
    pub fn command_of(&self, program: &Path) -> TestCommand {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.path());
        // Plain, stable diagnostics whatever the environment of the test run.
        cmd.env("NO_COLOR", "1");
        cmd.env_remove("CLICOLOR_FORCE");
        cmd.env_remove("FORCE_COLOR");
        cmd.env("COLUMNS", "100");
        TestCommand {
            test: self.name.clone(),
            cmd,
        }
    }
}

/// A command to run the binary, with helpers that check its outcome.
pub struct TestCommand {
    test: String,
    cmd: Command,
}

impl TestCommand {
    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, A>(&mut self, args: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.env(key, value);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut TestCommand {
        self.cmd.current_dir(dir);
        self
    }

    /// The underlying command.
    pub fn cmd(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Runs the command to its end.
    pub fn output(&mut self) -> Output {
        let out = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("[{}] cannot run {:?}: {e}", self.test, self.cmd));
        Output {
            command: format!("{:?}", self.cmd),
            stdout: out.stdout,
            stderr: out.stderr,
            code: out.status.code(),
        }
    }

    /// Runs the command, checks that it exits with `code`, and returns its output.
    pub fn expect_code(&mut self, code: i32) -> Output {
        let out = self.output();
        assert_eq!(
            out.code,
            Some(code),
            "[{}] expected exit code {code}\n{out}",
            self.test
        );
        out
    }

    /// Runs the command, checks that it succeeds, and returns its stdout.
    pub fn stdout(&mut self) -> Vec<u8> {
        self.expect_code(0).stdout
    }
}

/// What a finished command gave.
pub struct Output {
    /// The command, for messages.
    pub command: String,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
    /// Its exit code (`None` when a signal ended it).
    pub code: Option<i32>,
}

impl Output {
    /// Standard output as text (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (lossy).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        writeln!(f, "exit code: {:?}", self.code)?;
        writeln!(f, "--- stdout\n{}", self.stdout_str())?;
        write!(f, "--- stderr\n{}", self.stderr_str())
    }
}

/// Text for a failure message: bytes shown as an escaped string.
pub fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}
