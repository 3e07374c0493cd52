//! The command line keeps the conventions of git, cargo and ripgrep: colors when and only when
//! asked (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`), long output through the user's pager on a
//! terminal, one way to name a file, a diagnostic that says its message once, JSON that
//! carries the errors, aligned tables, options only where they mean something, completions
//! and a man page. Colors and the pager are tested on a real pseudo-terminal (util-linux
//! `script`), the rest through pipes.

use std::path::Path;

use serde_json::Value;

use crate::util::{Dir, Output, binary};

const MODULE_A: &str = "{\n  _meta = {name = 'A}\n  x = 1\n}\n";
const ESC: &str = "\x1b[";

/// A tree with module A built, then `A::y` added in the image (so that `status` and `diff`
/// have something to say).
fn tree_with_live_edit(name: &str) -> Dir {
    let dir = Dir::new(name);
    dir.create("a.spry", MODULE_A);
    dir.command().arg("build").expect_code(0);
    let text = dir.create("y.txt", "y = 2");
    dir.command()
        .args(["put", "A::y", "--file"])
        .arg(&text)
        .expect_code(0);
    std::fs::remove_file(dir.join("y.txt")).unwrap();
    dir
}

fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Runs the binary with `args` in `dir` on a pseudo-terminal (standard output and error both
/// on it), with `NO_COLOR` unset, `TERM=xterm-256color` and `env` on top. Returns the exit
/// code and what the terminal showed (line ends as a terminal writes them: `\r\n`).
fn on_terminal(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut line = quote(&binary().to_string_lossy());
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut cmd = dir.command_of(Path::new("script"));
    cmd.cmd().env_remove("NO_COLOR");
    cmd.cmd().env_remove("SPRY_IMAGE_PAGER");
    cmd.cmd().env_remove("PAGER");
    cmd.cmd().env_remove("LESS");
    cmd.env("TERM", "xterm-256color");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.args(["-qec", &line, "/dev/null"]);
    let out = cmd.output();
    (out.code, out.stdout_str())
}

/// Whether `script` can give the tests a terminal here.
fn have_script() -> bool {
    let ok = std::process::Command::new("script")
        .args(["-qec", "true", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: util-linux `script` cannot run here to give a pseudo-terminal");
    }
    ok
}

#[test]
fn color_follows_the_flag_and_the_environment() {
    if !have_script() {
        return;
    }
    let dir = tree_with_live_edit("color");
    // On a terminal, status is colored as git status is: the image's side in green.
    let (code, shown) = on_terminal(&dir, &["status"], &[]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("\x1b[32mchanged:"),
        "green on a terminal\n{shown:?}"
    );
    // NO_COLOR, and --color=never, turn it off on a terminal.
    let (_, shown) = on_terminal(&dir, &["status"], &[("NO_COLOR", "1")]);
    assert!(!shown.contains(ESC), "{shown:?}");
    let (_, shown) = on_terminal(&dir, &["status", "--color=never"], &[]);
    assert!(!shown.contains(ESC), "{shown:?}");
    // The flag wins over NO_COLOR, as cargo's does.
    let (_, shown) = on_terminal(&dir, &["status", "--color=always"], &[("NO_COLOR", "1")]);
    assert!(shown.contains(ESC), "{shown:?}");
    // Into a pipe: plain, unless asked for (the flag, or CLICOLOR_FORCE).
    let plain = dir.command().arg("status").stdout();
    assert!(!String::from_utf8_lossy(&plain).contains(ESC));
    let forced = dir.command().args(["status", "--color=always"]).stdout();
    assert!(String::from_utf8_lossy(&forced).contains("\x1b[32m"));
    let mut cmd = dir.command();
    cmd.cmd().env_remove("NO_COLOR");
    let forced = cmd.arg("status").env("CLICOLOR_FORCE", "1").stdout();
    assert!(String::from_utf8_lossy(&forced).contains("\x1b[32m"));
}

#[test]
fn diagnostics_follow_the_same_choice() {
    if !have_script() {
        return;
    }
    let dir = Dir::new("color_diagnostics");
    dir.create("bad.spry", "{\n  _meta = {name = 'Bad}\n  x = [1\n}\n");
    let (code, shown) = on_terminal(&dir, &["parse", "bad.spry"], &[]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains(ESC), "colored on a terminal\n{shown:?}");
    let (_, shown) = on_terminal(&dir, &["parse", "--color=never", "bad.spry"], &[]);
    assert!(!shown.contains(ESC), "{shown:?}");
    assert!(
        shown.contains("bad.spry:4:1: error[mismatched-bracket]"),
        "{shown}"
    );
    // Into a pipe, --color=always colors standard error too.
    let out = dir
        .command()
        .args(["parse", "--color=always", "bad.spry"])
        .expect_code(1);
    assert!(out.stderr_str().contains(ESC), "{out}");
    let out = dir.command().args(["parse", "bad.spry"]).expect_code(1);
    assert!(!out.stderr_str().contains(ESC), "{out}");
}

#[test]
fn a_diagnostic_says_its_message_once() {
    let dir = Dir::new("message_once");
    dir.create("bad.spry", "{\n  _meta = {name = 'Bad}\n  x = [1\n}\n");
    let out = dir.command().args(["parse", "bad.spry"]).expect_code(1);
    let stderr = out.stderr_str();
    assert_eq!(stderr.matches("mismatched `}`").count(), 1, "{out}");
    assert!(!stderr.contains('×'), "{out}");
    // The source line and the caret are still there.
    assert!(stderr.contains("3 │   x = [1"), "{out}");
    assert!(stderr.contains("this `[` is still open"), "{out}");
}

#[test]
fn long_output_goes_through_the_pager_on_a_terminal() {
    if !have_script() {
        return;
    }
    let dir = tree_with_live_edit("pager");
    // A pager that keeps what it was given, and the LESS it ran with.
    let pager = dir.create(
        "pager.sh",
        "cat > \"$(dirname \"$0\")/paged.txt\"; echo \"LESS=$LESS\" >> \"$(dirname \"$0\")/paged.txt\"\n",
    );
    let pager = format!("sh {}", pager.display());
    let (code, shown) = on_terminal(&dir, &["diff"], &[("PAGER", &pager)]);
    assert_eq!(code, Some(0), "{shown}");
    let paged = String::from_utf8(dir.read("paged.txt")).unwrap();
    assert!(paged.contains("A::y: added in the image"), "{paged}");
    assert!(paged.contains(ESC), "colors go to the pager\n{paged:?}");
    assert!(paged.contains("LESS=FRX"), "less as git runs it\n{paged}");
    assert!(!shown.contains("added in the image"), "{shown}");
    std::fs::remove_file(dir.join("paged.txt")).unwrap();
    // SPRY_IMAGE_PAGER comes before PAGER, and log pages too; LESS set by the user stays.
    let (code, _) = on_terminal(
        &dir,
        &["log"],
        &[
            ("SPRY_IMAGE_PAGER", &pager),
            ("PAGER", "false"),
            ("LESS", "R"),
        ],
    );
    assert_eq!(code, Some(0));
    let paged = String::from_utf8(dir.read("paged.txt")).unwrap();
    assert!(paged.contains("generation 2"), "{paged}");
    assert!(paged.contains("LESS=R\n"), "{paged}");
    std::fs::remove_file(dir.join("paged.txt")).unwrap();
    // --no-pager, or a pipe: straight to standard output.
    let (_, shown) = on_terminal(&dir, &["diff", "--no-pager"], &[("PAGER", &pager)]);
    assert!(shown.contains("A::y: added in the image"), "{shown}");
    assert!(!dir.join("paged.txt").exists());
    let out = dir.command().arg("diff").env("PAGER", &pager).stdout();
    assert!(String::from_utf8_lossy(&out).contains("added in the image"));
    assert!(!dir.join("paged.txt").exists());
    // `cat` or an empty value: no pager.
    let (_, shown) = on_terminal(&dir, &["log"], &[("PAGER", "")]);
    assert!(shown.contains("generation 2"), "{shown}");
}

#[test]
fn diff_names_the_side_that_added_or_removed() {
    let dir = tree_with_live_edit("diff_sides");
    let out = dir.command().arg("diff").stdout();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("A::y: added in the image"), "{text}");
    assert!(!text.contains("removed"), "{text}");
    dir.command().arg("export").expect_code(0);
    // Removed in the image, still in the file.
    dir.command().args(["rm", "A::x"]).expect_code(0);
    let text = String::from_utf8(dir.command().arg("diff").stdout()).unwrap();
    assert!(text.contains("A::x: removed in the image"), "{text}");
    // Added on disk.
    dir.command().arg("export").expect_code(0);
    let with_z = String::from_utf8(dir.read("a.spry"))
        .unwrap()
        .replace("y = 2", "y = 2\n  z = 3");
    dir.create("a.spry", with_z);
    let text = String::from_utf8(dir.command().arg("diff").stdout()).unwrap();
    assert!(text.contains("A::z: added on disk"), "{text}");
}

#[test]
fn files_are_named_one_way_in_every_command() {
    let dir = Dir::new("paths");
    let tree = dir.create_dir("tree");
    dir.create("tree/a.spry", MODULE_A);
    dir.create(
        "tree/sub/bad.spry",
        "{\n  _meta = {name = 'Bad}\n  x = (1\n}\n",
    );
    // From above the tree: the path from here.
    let out = dir.command().args(["build", "tree"]).expect_code(1);
    assert!(
        out.stderr_str().contains("tree/sub/bad.spry:4:1: error["),
        "{out}"
    );
    // From inside it, `.` or nothing: relative, never `./` nor absolute.
    for args in [&["build", "."][..], &["build"], &["status"], &["diff"]] {
        let out = dir.command().args(args).current_dir(&tree).output();
        let stderr = out.stderr_str();
        assert!(
            stderr.contains("\nsub/bad.spry:4:1: error[")
                || stderr.starts_with("sub/bad.spry:4:1: error["),
            "{args:?}\n{out}"
        );
        assert!(!stderr.contains("./sub"), "{args:?}\n{out}");
        assert!(
            !stderr.contains(&*tree.to_string_lossy()),
            "{args:?}\n{out}"
        );
    }
    // From below it: the way back up.
    dir.create("tree/top.spry", "{\n  _meta = {name = 'Top}\n  x = (1\n}\n");
    let out = dir
        .command()
        .arg("status")
        .current_dir(tree.join("sub"))
        .expect_code(1);
    let stderr = out.stderr_str();
    assert!(stderr.contains("../top.spry:4:1: error["), "{out}");
    assert!(
        stderr.starts_with("bad.spry:4:1: error[") || stderr.contains("\nbad.spry:4:1: error["),
        "{out}"
    );
    assert!(out.stdout_str().contains("  ../top.spry\n"), "{out}");
    // `parse` names files as they were typed, and a walk of `.` adds no `./`.
    let out = dir
        .command()
        .args(["parse", "."])
        .current_dir(&tree)
        .expect_code(1);
    assert!(out.stderr_str().starts_with("sub/bad.spry:4:1"), "{out}");
}

#[test]
fn build_json_failures_carry_their_errors() {
    let dir = Dir::new("build_json");
    dir.create("a.spry", MODULE_A);
    dir.create("bad.spry", "{\n  _meta = {name = 'Bad}\n  x = (1\n}\n");
    let out = dir.command().args(["build", "--json"]).expect_code(1);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = &json["failed"][0];
    assert_eq!(failed["path"], "bad.spry", "{json}");
    assert_eq!(failed["errors"][0]["line"], 4, "{json}");
    assert_eq!(failed["errors"][0]["column"], 1, "{json}");
    assert_eq!(failed["errors"][0]["code"], "mismatched-bracket", "{json}");
    assert!(
        failed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("mismatched"),
        "{json}"
    );
    // status --json says it the same way.
    let out = dir.command().args(["status", "--json"]).expect_code(1);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["failed"], json["failed"], "{status}");
}

#[test]
fn ls_columns_stand_under_their_headers() {
    let dir = Dir::new("ls_table");
    dir.create("a.spry", MODULE_A);
    dir.create(
        "net/http_client.spry",
        "{\n  _meta = {name = 'Net.HttpClient}\n  get: = method [:url url]\n}\n",
    );
    dir.command().arg("build").expect_code(0);
    let text = String::from_utf8(dir.command().arg("ls").stdout()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header = lines[0];
    for name in ["MODULE", "HASH", "PATH"] {
        // Left-aligned columns start where their header starts.
        let at = header.find(name).unwrap();
        for row in &lines[1..] {
            let before = &row[..at];
            assert!(before.ends_with(' ') || at == 0, "{name} column\n{text}");
            assert_ne!(row.as_bytes()[at], b' ', "{name} column\n{text}");
        }
    }
    for name in ["DEFS", "SIZE", "STORED"] {
        // Numbers end where their header ends.
        let end = header.find(name).unwrap() + name.len();
        for row in &lines[1..] {
            assert!(row.as_bytes()[end - 1].is_ascii_digit(), "{name}\n{text}");
            assert_eq!(row.as_bytes()[end], b' ', "{name}\n{text}");
        }
    }
    assert!(
        lines[2].trim_end().ends_with("net/http_client.spry"),
        "{text}"
    );
}

#[test]
fn build_of_a_tree_without_spry_files_says_what_it_found() {
    let dir = Dir::new("no_spry");
    dir.create("src/main.rs", "fn main() {}\n");
    dir.create("src/lib.rs", "\n");
    dir.create("README.md", "# hi\n");
    let out = dir.command().arg("build").expect_code(1);
    let stderr = out.stderr_str();
    assert!(stderr.contains("no Spry source file"), "{out}");
    assert!(stderr.contains("3 other files (2 .rs, 1 .md)"), "{out}");
    assert!(
        !dir.join(".spry-image").exists(),
        "no image was made\n{out}"
    );
    // An empty tree is a fine start: an empty image.
    let empty = Dir::new("no_spry_empty");
    empty.command().arg("build").expect_code(0);
}

#[test]
fn only_that_matches_nothing_is_a_warning() {
    let dir = Dir::new("only_nothing");
    dir.create("a.spry", MODULE_A);
    dir.create("lib/b.spry", "{\n  _meta = {name = 'B}\n}\n");
    // Nothing matches: nothing is built, the image is not made partial.
    let out = dir
        .command()
        .args(["build", "--only", "nowhere/**"])
        .expect_code(1);
    assert!(
        out.stderr_str()
            .contains("warning: --only `nowhere/**` matches no Spry file"),
        "{out}"
    );
    assert!(!dir.join(".spry-image").exists(), "{out}");
    // One of two matches: that one is kept, the other left out of the part.
    let out = dir
        .command()
        .args(["build", "--json", "--only", "lib/**", "--only", "typo/**"])
        .expect_code(0);
    assert!(out.stderr_str().contains("`typo/**`"), "{out}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["part"], serde_json::json!(["lib/**"]), "{json}");
    assert_eq!(json["added"], serde_json::json!(["B"]), "{json}");
}

#[test]
fn image_is_an_option_only_where_an_image_is_used() {
    let dir = Dir::new("image_option");
    dir.create("a.spry", MODULE_A);
    let out = dir
        .command()
        .args(["parse", "--image", "x", "a.spry"])
        .expect_code(2);
    assert!(
        out.stderr_str().contains("unexpected argument '--image'"),
        "{out}"
    );
    dir.command()
        .args(["gen", "--image", "x", "--modules", "1", "out"])
        .expect_code(2);
    assert!(!dir.join("out").exists());
    // Where it is used, it works after the command.
    dir.command()
        .args(["build", ".", "--image"])
        .arg(dir.join("img"))
        .expect_code(0);
    let out = dir
        .command()
        .args(["ls", "--image"])
        .arg(dir.join("img"))
        .stdout();
    assert!(String::from_utf8_lossy(&out).contains("a.spry"));
    // And before it, as scripts written for earlier versions give it.
    let out = dir
        .command()
        .arg("--image")
        .arg(dir.join("img"))
        .arg("ls")
        .stdout();
    assert!(String::from_utf8_lossy(&out).contains("a.spry"));
    // Before a command that opens no image, it is refused, not ignored.
    let out = dir
        .command()
        .args(["--image", "x", "parse", "a.spry"])
        .expect_code(2);
    assert!(out.stderr_str().contains("`parse` opens no image"), "{out}");
    dir.command()
        .args(["--image", "x", "gen", "--modules", "1", "out"])
        .expect_code(2);
    assert!(!dir.join("out").exists());
}

#[test]
fn completions_and_man_page_come_from_the_definitions() {
    let dir = Dir::new("completions");
    for shell in ["bash", "zsh", "fish"] {
        let out = dir.command().args(["completions", shell]).stdout();
        let text = String::from_utf8(out).unwrap();
        for word in ["status", "no-pager", "color"] {
            assert!(text.contains(word), "{shell} lacks {word}");
        }
    }
    dir.command().args(["completions", "tcsh"]).expect_code(2);
    let man = String::from_utf8(dir.command().arg("man").stdout()).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH spry-image 1"),
        "{man}"
    );
    assert!(man.contains(".TH spry-image 1"), "{man}");
    for word in ["status", "export", "completions"] {
        assert!(man.contains(word), "the man page names {word}");
    }
    // Each command has a page of its own, with its options.
    let status = String::from_utf8(dir.command().args(["man", "status"]).stdout()).unwrap();
    assert!(status.contains(".TH spry-image-status 1"), "{status}");
    assert!(
        status.contains("no\\-pager") || status.contains("no-pager") || status.contains("color"),
        "{status}"
    );
    dir.command().args(["man", "nosuch"]).expect_code(2);
    // The page reads as one (when man is here to read it).
    let out = std::process::Command::new("man").arg("--version").output();
    if out.is_ok_and(|o| o.status.success()) {
        let path = dir.create("spry-image.1", &man);
        let shown = std::process::Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("spry-image"), "{text}");
    }
}

#[test]
fn sizes_take_the_usual_suffixes() {
    let dir = Dir::new("sizes");
    dir.create("a.spry", MODULE_A);
    for size in ["1k", "1KiB", "64m", "1g", "4096"] {
        dir.command()
            .args(["build", "--max-file-size", size])
            .expect_code(0);
    }
    let out: Output = dir
        .command()
        .args(["build", "--max-file-size", "lots"])
        .expect_code(2);
    assert!(out.stderr_str().contains("`lots` is not a size"), "{out}");
}

#[test]
fn log_dates_are_utc() {
    let dir = Dir::new("log_dates");
    dir.create("a.spry", MODULE_A);
    dir.command().arg("build").expect_code(0);
    let text = String::from_utf8(dir.command().arg("log").stdout()).unwrap();
    let line = text.lines().next().unwrap();
    // `generation 1  2026-01-02 03:04:05  file`
    let date = line.split("  ").nth(1).unwrap();
    assert_eq!(date.len(), 19, "{line}");
    assert_eq!(&date[4..5], "-", "{line}");
    assert_eq!(&date[10..11], " ", "{line}");
    assert_eq!(&date[13..14], ":", "{line}");
}

#[test]
fn watch_json_lines_keep_their_field_order() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Duration;

    let dir = Dir::new("watch_json_order");
    dir.create("a.spry", MODULE_A);
    let mut child = dir
        .command()
        .args(["watch", "--json"])
        .cmd()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line from watch --json")
    };
    let first = next();
    assert!(first.starts_with("{\"watching\":"), "{first}");
    dir.create("b.spry", "{\n  _meta = {name = 'B}\n}\n");
    let batch = loop {
        let line = next();
        let value: Value = serde_json::from_str(&line).unwrap();
        if value["added"] == serde_json::json!(["B"]) {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let keys = [
        "\"generation\":",
        "\"files\":",
        "\"read\":",
        "\"paths\":",
        "\"added\":",
        "\"changed\":",
        "\"removed\":",
        "\"moved\":",
        "\"failed\":",
        "\"latency_ms\":",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| batch.find(k).unwrap_or_else(|| panic!("{k} in {batch}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{batch}");
    assert_eq!(at[0], 1, "{batch}");
}
