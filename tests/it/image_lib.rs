//! The image through the library: creating, transactions (live edits, atomic commits, dropped
//! transactions), reading back after reopening, the format guard and the lock.

use spry_image::Error;
use spry_image::image::{FORMAT_VERSION, IMAGE_DIR, Image, ModuleChange, Origin};
use spry_image::{BuildOptions, NoProgress, build};

use crate::image_build::{copy_tree, set_mtime};
use crate::util::{Dir, repo_path, show};

/// A new image in `dir` for the tree `dir` (empty unless files are written first).
fn create(dir: &Dir) -> Image {
    Image::create(&dir.join(IMAGE_DIR), dir.path()).unwrap()
}

/// An image built (by the library) from the files written into `dir`.
pub(crate) fn built(dir: &Dir) -> Image {
    let mut image = create(dir);
    let report = build(
        &mut image,
        dir.path(),
        &BuildOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(report.is_clean(), "{:?}", report.failed);
    image
}

fn text(image: &Image, module: &str) -> String {
    String::from_utf8(image.module_text(module).unwrap()).unwrap()
}

const GREETING: &str = "# Greets.\n{\n  _meta = {name = 'Greeting}\n\n  # Says hello.\n  hello = func [\"hi\"]\n\n  bye = func [\"bye\"]\n}\n";

#[test]
fn a_live_transaction_adds_changes_and_removes_definitions() {
    let dir = Dir::new("live_tx");
    dir.create("greeting.spry", GREETING);
    let image = built(&dir);
    assert_eq!(image.generation().unwrap(), 1);
    assert_eq!(text(&image, "Greeting"), GREETING);

    let mut tx = image.begin(Origin::Live).unwrap();
    assert_eq!(tx.generation(), 2);
    // New: goes after the last one, separated as the last is from its neighbour.
    tx.put_definition("Greeting", "wave", b"# Waves.\nwave = func [\"o/\"]")
        .unwrap();
    // Existing: replaced in place, with its comment.
    tx.put_definition(
        "Greeting",
        "hello",
        b"# Says hello, loudly.\nhello = func [\"HI\"]",
    )
    .unwrap();
    tx.remove_definition("Greeting", "bye").unwrap();
    let changes = tx.changes().to_vec();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].change, ModuleChange::Changed);
    let mut touched = changes[0].definitions.clone();
    touched.sort();
    assert_eq!(touched, ["bye", "hello", "wave"]);
    // Nothing is visible before the commit.
    assert!(matches!(
        image.definition_text("Greeting", "wave"),
        Err(Error::NoDefinition { .. })
    ));
    assert_eq!(text(&image, "Greeting"), GREETING);
    assert_eq!(tx.commit().unwrap(), Some(2));

    assert_eq!(
        image.definition_text("Greeting", "wave").unwrap(),
        b"# Waves.\n  wave = func [\"o/\"]",
        "a new definition is indented like its neighbours"
    );
    assert_eq!(
        image.definition_text("Greeting", "hello").unwrap(),
        b"# Says hello, loudly.\nhello = func [\"HI\"]"
    );
    assert!(matches!(
        image.definition_text("Greeting", "bye"),
        Err(Error::NoDefinition { .. })
    ));
    assert_eq!(
        text(&image, "Greeting"),
        "# Greets.\n{\n  _meta = {name = 'Greeting}\n\n  # Says hello, loudly.\nhello = func [\"HI\"]\n\n  # Waves.\n  wave = func [\"o/\"]\n}\n"
    );
    let names: Vec<String> = image
        .definitions("Greeting")
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["_meta", "hello", "wave"]);
    let hello = image.definition("Greeting", "hello").unwrap().unwrap();
    assert_eq!(hello.generation, 2);
    assert_ne!(
        hello.base,
        Some(hello.hash),
        "a live edit is not in the file yet"
    );
    let meta = image.definition("Greeting", "_meta").unwrap().unwrap();
    assert_eq!(meta.generation, 1);
    let wave = image.definition("Greeting", "wave").unwrap().unwrap();
    assert_eq!(wave.base, None, "never in a file");

    let log = image.log().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].origin, Origin::Live);
    assert_eq!(log[1].generation, 2);
    // The removal is in history after the version from the file.
    let bye = image.history("Greeting", "bye").unwrap();
    assert_eq!(bye.len(), 2);
    assert_eq!((bye[0].0, bye[0].1.origin), (1, Origin::File));
    assert_eq!(
        (bye[1].0, bye[1].1.origin, bye[1].1.hash),
        (2, Origin::Live, None)
    );
    let report = image.check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[test]
fn a_new_definition_follows_the_last_in_every_layout() {
    // Stack from spry-src: indented, blank lines between definitions.
    let dir = Dir::new("append_layouts");
    copy_tree(&repo_path("spry-src/collections"), &dir.join("collections"));
    copy_tree(&repo_path("spry-src/util"), &dir.join("util"));
    copy_tree(&repo_path("spry-src/text"), &dir.join("text"));
    let image = built(&dir);
    let mut tx = image.begin(Origin::Live).unwrap();
    tx.put_definition("Stack", "size", b"size = method [@elements size]")
        .unwrap();
    tx.put_definition("Tiny", "triple", b"triple = func [:n n * 3]")
        .unwrap();
    tx.put_definition("LinkedList", "isEmpty", b"isEmpty = method [@length = 0]")
        .unwrap();
    tx.put_definition("Csv", "tab", b"tab = \"\\t\"").unwrap();
    tx.commit().unwrap();

    let stack = String::from_utf8(dir.read("collections/stack.spry")).unwrap();
    let end = stack.rfind("\n}\n").unwrap();
    let expected = format!(
        "{}\n\n  size = method [@elements size]{}",
        &stack[..end],
        &stack[end..]
    );
    assert_eq!(text(&image, "Stack"), expected);

    let tiny = String::from_utf8(dir.read("util/tiny.spry")).unwrap();
    assert_eq!(
        text(&image, "Tiny"),
        tiny.replace("blank = {} }", "blank = {} triple = func [:n n * 3] }")
    );

    // Tabs stay tabs.
    let list = String::from_utf8(dir.read("collections/linked_list.spry")).unwrap();
    let end = list.rfind("\n}").unwrap();
    let expected = format!(
        "{}\n\n\tisEmpty = method [@length = 0]{}",
        &list[..end],
        &list[end..]
    );
    assert_eq!(text(&image, "LinkedList"), expected);

    // CRLF stays CRLF.
    let csv = String::from_utf8(dir.read("text/csv.spry")).unwrap();
    let end = csv.rfind("\r\n}").unwrap();
    let expected = format!("{}\r\n\r\n  tab = \"\\t\"{}", &csv[..end], &csv[end..]);
    assert_eq!(text(&image, "Csv"), expected);
}

#[test]
fn a_new_definition_does_not_repeat_a_comment_between_the_last_two() {
    let dir = Dir::new("append_section");
    let module =
        "{\n  _meta = {name = 'Sections}\n\n  a = 1\n\n  # ---- Second half ----\n\n  b = 2\n}\n";
    dir.create("sections.spry", module);
    let image = built(&dir);
    assert_eq!(text(&image, "Sections"), module);
    let mut tx = image.begin(Origin::Live).unwrap();
    tx.put_definition("Sections", "c", b"c = 3").unwrap();
    tx.commit().unwrap();
    let got = text(&image, "Sections");
    assert_eq!(
        got.matches("Second half").count(),
        1,
        "the section comment is not copied: {}",
        show(got.as_bytes())
    );
    assert_eq!(
        got,
        "{\n  _meta = {name = 'Sections}\n\n  a = 1\n\n  # ---- Second half ----\n\n  b = 2\n\n  c = 3\n}\n"
    );
}

#[test]
fn a_new_image_takes_its_first_module_and_definitions() {
    let dir = Dir::new("create_image");
    let image = create(&dir);
    assert_eq!(image.generation().unwrap(), 0);
    assert!(image.modules().unwrap().is_empty());
    assert_eq!(
        std::path::PathBuf::from(&image.record().source_root),
        std::fs::canonicalize(dir.path()).unwrap()
    );
    let mut tx = image.begin(Origin::Live).unwrap();
    tx.create_module("Greeting", "greeting.spry").unwrap();
    tx.put_definition("Greeting", "hello", b"hello = func [\"hi\"]")
        .unwrap();
    tx.put_definition("Greeting", "bye", b"bye = func [\"bye\"]")
        .unwrap();
    assert_eq!(tx.commit().unwrap(), Some(1));
    assert_eq!(
        text(&image, "Greeting"),
        "{\n  _meta = {name = 'Greeting}\n  hello = func [\"hi\"]\n  bye = func [\"bye\"]\n}\n"
    );
    // A second module of the same name is refused.
    let mut tx = image.begin(Origin::Live).unwrap();
    assert!(matches!(
        tx.create_module("Greeting", "other.spry"),
        Err(Error::Invalid(_))
    ));
    // Into a module that is not there.
    assert!(matches!(
        tx.put_definition("Nope", "x", b"x = 1"),
        Err(Error::NoModule(_))
    ));
    assert!(matches!(
        tx.remove_definition("Greeting", "nope"),
        Err(Error::NoDefinition { .. })
    ));
    assert_eq!(tx.commit().unwrap(), None);
    assert_eq!(image.generation().unwrap(), 1);
    assert!(image.check().unwrap().is_ok());
}

#[test]
fn invalid_text_is_refused_and_changes_nothing() {
    let dir = Dir::new("invalid_text");
    dir.create("greeting.spry", GREETING);
    let image = built(&dir);
    let digest = image.digest().unwrap();
    let hello = image.definition_text("Greeting", "hello").unwrap();

    let mut tx = image.begin(Origin::Live).unwrap();
    let cases: [(&str, &[u8]); 6] = [
        ("hello", b"hello = func [\"hi\""),
        ("hello", b"hello = func [\"hi\"]]"),
        ("hello", b"bye = func [\"bye\"]"),
        ("hello", b"hello = 1 bye = 2"),
        ("hello", b"# only a comment"),
        ("fresh", b"fresh = \"unterminated"),
    ];
    for (name, bad) in cases {
        let result = tx.put_definition("Greeting", name, bad);
        assert!(
            matches!(result, Err(Error::Syntax { .. } | Error::Invalid(_))),
            "{} was taken for `{name}`: {result:?}",
            show(bad)
        );
    }
    match tx.put_definition("Greeting", "hello", b"bye = func [\"bye\"]") {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("bye") && message.contains("hello"),
                "{message}"
            );
        }
        Ok(()) => panic!("a text defining another name was taken"),
    }
    assert!(tx.changes().is_empty());
    // A good change after the refused ones commits alone.
    tx.put_definition("Greeting", "wave", b"wave = 1").unwrap();
    assert_eq!(tx.commit().unwrap(), Some(2));
    assert_eq!(image.definition_text("Greeting", "hello").unwrap(), hello);
    assert!(image.definition("Greeting", "fresh").unwrap().is_none());
    let names: Vec<String> = image
        .definitions("Greeting")
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["_meta", "hello", "bye", "wave"]);

    // Only refused texts: nothing at all is committed.
    let mut tx = image.begin(Origin::Live).unwrap();
    let digest2 = image.digest().unwrap();
    assert_ne!(digest, digest2);
    assert!(
        tx.put_definition("Greeting", "hello", b"hello = [")
            .is_err()
    );
    assert_eq!(tx.commit().unwrap(), None);
    assert_eq!(image.generation().unwrap(), 2);
    assert_eq!(image.digest().unwrap(), digest2);
}

#[test]
fn a_dropped_transaction_changes_nothing() {
    let dir = Dir::new("dropped_tx");
    dir.create("greeting.spry", GREETING);
    let image_path = dir.join(IMAGE_DIR);
    let (digest, generation) = {
        let image = built(&dir);
        let before = (image.digest().unwrap(), image.generation().unwrap());
        {
            let mut tx = image.begin(Origin::Live).unwrap();
            tx.put_definition("Greeting", "hello", b"hello = 2")
                .unwrap();
            tx.put_definition("Greeting", "wave", b"wave = 3").unwrap();
            tx.remove_definition("Greeting", "bye").unwrap();
            tx.create_module("Other", "other.spry").unwrap();
            // Dropped here, not committed.
        }
        assert_eq!(image.digest().unwrap(), before.0);
        assert_eq!(image.generation().unwrap(), before.1);
        assert_eq!(text(&image, "Greeting"), GREETING);
        assert!(image.module("Other").unwrap().is_none());
        before
    };
    // Nor after reopening.
    let image = Image::open(&image_path).unwrap();
    assert_eq!(image.digest().unwrap(), digest);
    assert_eq!(image.generation().unwrap(), generation);
    assert_eq!(text(&image, "Greeting"), GREETING);
    assert_eq!(image.log().unwrap().len(), 1);
    assert!(image.history("Greeting", "wave").unwrap().is_empty());
    assert!(image.check().unwrap().is_ok());
}

#[test]
fn a_commit_is_whole_after_reopening() {
    let dir = Dir::new("atomic_commit");
    let image_path = dir.join(IMAGE_DIR);
    let names: Vec<String> = (0..40).map(|i| format!("def{i}")).collect();
    {
        let image = create(&dir);
        let mut tx = image.begin(Origin::Live).unwrap();
        tx.create_module("Many", "many.spry").unwrap();
        for (i, name) in names.iter().enumerate() {
            tx.put_definition("Many", name, format!("{name} = {i}").as_bytes())
                .unwrap();
        }
        tx.create_module("Second", "second.spry").unwrap();
        tx.put_definition("Second", "x", b"x = 1").unwrap();
        assert_eq!(tx.commit().unwrap(), Some(1));
    }
    let image = Image::open(&image_path).unwrap();
    assert_eq!(image.generation().unwrap(), 1);
    let listed: Vec<String> = image
        .definitions("Many")
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut expected = vec!["_meta".to_string()];
    expected.extend(names.iter().cloned());
    assert_eq!(listed, expected);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            image.definition_text("Many", name).unwrap(),
            format!("{name} = {i}").as_bytes()
        );
    }
    let many = text(&image, "Many");
    assert!(many.starts_with("{\n  _meta = {name = 'Many}\n  def0 = 0\n  def1 = 1\n"));
    assert!(many.ends_with("\n  def39 = 39\n}\n"), "{many}");
    assert_eq!(image.definition_text("Second", "x").unwrap(), b"x = 1");
    let log = image.log().unwrap();
    assert_eq!(log.len(), 1);
    let mut modules: Vec<&str> = log[0].modules.iter().map(|m| m.module.as_str()).collect();
    modules.sort();
    assert_eq!(modules, ["Many", "Second"]);
    assert!(image.check().unwrap().is_ok());
}

#[test]
fn a_reopened_image_sees_what_was_committed() {
    let dir = Dir::new("reopen");
    dir.create("greeting.spry", GREETING);
    let image_path = dir.join(IMAGE_DIR);
    let digest = {
        let image = built(&dir);
        let mut tx = image.begin(Origin::Live).unwrap();
        tx.put_definition("Greeting", "hello", b"hello = func [\"hey\"]")
            .unwrap();
        tx.commit_buffered().unwrap();
        image.digest().unwrap()
    };
    let image = Image::open(&image_path).unwrap();
    assert_eq!(image.digest().unwrap(), digest);
    assert_eq!(image.generation().unwrap(), 2);
    assert_eq!(
        image.definition_text("Greeting", "hello").unwrap(),
        b"hello = func [\"hey\"]"
    );
    assert_eq!(image.history("Greeting", "hello").unwrap().len(), 2);
    assert_eq!(image.paths().unwrap()["greeting.spry"].module, "Greeting");
    // `create` on an existing image opens it, keeping everything.
    drop(image);
    let image = create(&dir);
    assert_eq!(image.digest().unwrap(), digest);
    assert_eq!(image.generation().unwrap(), 2);
}

#[test]
fn a_newer_format_is_refused_naming_both_versions() {
    let dir = Dir::new("newer_format");
    dir.create("greeting.spry", GREETING);
    drop(built(&dir));
    let image_path = dir.join(IMAGE_DIR);
    std::fs::write(image_path.join("FORMAT"), "spry-image format 7\n").unwrap();
    for result in [
        Image::open(&image_path),
        Image::create(&image_path, dir.path()),
    ] {
        let error = result.expect_err("a newer format was opened");
        let Error::NewerFormat {
            found, supported, ..
        } = &error
        else {
            panic!("not NewerFormat: {error:?}");
        };
        assert_eq!((*found, *supported), (7, FORMAT_VERSION));
        let message = error.to_string();
        assert!(message.contains("format version 7"), "{message}");
        let supported = format!("format version {FORMAT_VERSION}");
        assert!(message.contains(&supported), "{message}");
    }
    // The same version again opens.
    std::fs::write(image_path.join("FORMAT"), "spry-image format 1\n").unwrap();
    let image = Image::open(&image_path).unwrap();
    assert_eq!(image.modules().unwrap().len(), 1);
}

#[test]
fn a_second_open_is_refused_while_the_first_holds_the_image() {
    let dir = Dir::new("second_open");
    let image = create(&dir);
    let image_path = dir.join(IMAGE_DIR);
    match Image::open(&image_path) {
        Err(Error::Locked { pid, path, .. }) => {
            assert_eq!(pid, std::process::id());
            assert_eq!(path, image_path);
        }
        other => panic!("a second open was allowed: {other:?}"),
    }
    assert_eq!(
        spry_image::image::owner(&image_path).map(|o| o.pid),
        Some(std::process::id())
    );
    drop(image);
    assert_eq!(spry_image::image::owner(&image_path), None);
    Image::open(&image_path).unwrap();
}

#[test]
fn the_library_build_is_incremental_by_stamp() {
    let dir = Dir::new("library_build");
    let a = dir.create("a.spry", "{_meta = {name = 'A} x = 1}\n");
    let b = dir.create("b.spry", "{_meta = {name = 'B} y = 2}\n");
    set_mtime(&a, 0);
    set_mtime(&b, 0);
    let mut image = create(&dir);
    let options = BuildOptions::default();
    let report = build(&mut image, dir.path(), &options, &NoProgress).unwrap();
    assert_eq!(report.added, ["A", "B"]);
    assert_eq!(report.generation, Some(1));
    let report = build(&mut image, dir.path(), &options, &NoProgress).unwrap();
    assert_eq!(report.read, 0);
    assert_eq!(report.generation, None);
    std::fs::write(&a, "{_meta = {name = 'A} x = 10}\n").unwrap();
    set_mtime(&a, 5);
    let report = build(&mut image, dir.path(), &options, &NoProgress).unwrap();
    assert_eq!(report.read, 1);
    assert_eq!(report.changed, ["A"]);
    assert_eq!(report.unchanged, 1);
    assert_eq!(image.definition_text("A", "x").unwrap(), b"x = 10");
    assert_eq!(
        image.definition("A", "_meta").unwrap().unwrap().generation,
        1
    );
    assert_eq!(image.definition("A", "x").unwrap().unwrap().generation, 2);
}

#[test]
fn removing_the_only_definition_leaves_a_whole_layout() {
    // The layout of a module with one definition: taking it out leaves the text around it.
    let mut gaps = vec![b"{\n  ".to_vec(), b"\n}\n".to_vec()];
    spry_image::image::drop_slot(&mut gaps, 0);
    assert_eq!(gaps, [b"{\n  \n}\n".to_vec()]);
    // In the image that definition is `_meta`: without it the file would read back as a
    // script, not as the module, so `rm` refuses it and changes nothing.
    let dir = Dir::new("remove_only");
    let image = create(&dir);
    let mut tx = image.begin(Origin::Live).unwrap();
    tx.create_module("Bare", "bare.spry").unwrap();
    tx.commit().unwrap();
    let before = text(&image, "Bare");
    let mut tx = image.begin(Origin::Live).unwrap();
    let refused = tx.remove_definition("Bare", "_meta");
    assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
    drop(tx);
    assert_eq!(text(&image, "Bare"), before);
    assert_eq!(image.definitions("Bare").unwrap().len(), 1);
    let report = image.check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[test]
fn a_script_takes_no_definitions() {
    let dir = Dir::new("script_put");
    let script = "#!/usr/bin/env spry\necho 1\necho 2\n";
    dir.create("scripts/hello.spry", script);
    let image = built(&dir);
    assert!(image.definitions("scripts/hello").unwrap().is_empty());
    let mut tx = image.begin(Origin::Live).unwrap();
    let result = tx.put_definition("scripts/hello", "x", b"x = 1");
    assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
    assert_eq!(tx.commit().unwrap(), None);
    assert_eq!(text(&image, "scripts/hello"), script);
}

#[test]
fn a_file_changed_within_the_time_granularity_is_read_again() {
    let dir = Dir::new("racy_stamp");
    let a = dir.create("a.spry", "{_meta = {name = 'A} x = 1}\n");
    let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
    let mut image = create(&dir);
    let options = BuildOptions::default();
    let report = build(&mut image, dir.path(), &options, &NoProgress).unwrap();
    assert_eq!(report.added, ["A"]);
    // Same size, same time (as on a file system with coarse times): only the hash can tell.
    std::fs::write(&a, "{_meta = {name = 'A} x = 2}\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let report = build(&mut image, dir.path(), &options, &NoProgress).unwrap();
    assert_eq!(report.changed, ["A"]);
    assert_eq!(image.definition_text("A", "x").unwrap(), b"x = 2");
}

/// Issue 17: a live edit refused because the module would not read back keeps the syntax
/// error that showed it as the refusal's cause (`source()`), not only as words.
#[test]
fn a_refused_edit_keeps_the_syntax_error_as_its_cause() {
    use std::error::Error as _;
    let dir = Dir::new("refusal_cause");
    dir.create("one.spry", "{_meta = {name = 'One} a = 1}\n");
    let image = built(&dir);
    let mut tx = image.begin(Origin::Live).unwrap();
    // On one line, a trailing comment swallows the module's closing bracket.
    let result = tx.put_definition("One", "a", b"a = 2 # two");
    let Err(error @ Error::Invalid(_)) = result else {
        panic!("not refused: {result:?}");
    };
    assert!(
        error.to_string().contains("read back differently"),
        "{error}"
    );
    let cause = error.source().expect("a cause");
    let syntax = cause
        .downcast_ref::<spry_image::SyntaxError>()
        .expect("the syntax error");
    assert!(error.to_string().contains(&syntax.message), "{error}");
    drop(tx);
    assert_eq!(text(&image, "One"), "{_meta = {name = 'One} a = 1}\n");
}
