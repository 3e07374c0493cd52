//! Property tests of the incremental "reads back the same" check of a live edit (issue 15):
//! `window_reads_back`, which reads only the edited definition and its neighbours, agrees with
//! `whole_reads_back`, which reads the whole module again.
//!
//! Modules are generated from definitions that end in every awkward way (a keyword message
//! still open, a trailing comment, strings holding brackets and `#`, comments above, keyword
//! names) separated by odd gaps (none at all, one space, blank lines, loose comments, CRLF);
//! only those that read back as generated are kept (an image holds only such). An edit then
//! replaces one definition or appends a new one with another awkward text. The two checks
//! must give the same answer; the test also asserts that both answers occur.
//!
//! The number of cases is small by default; `PROPTEST_CASES` sets it:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release --test it incremental_props
//! ```

use proptest::prelude::*;

use spry_image::image::{Image, Origin, SavedUnit, drop_slot};
use spry_image::syntax::{Piece, SourceUnit, read_definition, whole_reads_back, window_reads_back};

use crate::image_lib::built;
use crate::util::Dir;

pub(crate) fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Definition texts; `N` stands for the name.
pub(crate) const TEXTS: &[&str] = &[
    "N = 1",
    "N = x",
    "N = 'sym",
    "N = x foo: 1",
    "N = x at: 1 put: (y)",
    "N = x at:",
    "N = x +",
    "N = 1 # trailing",
    "N = [1 2] # trailing ] }",
    "# above\nN = [1 2]",
    "# above\n# twice\nN = func [:x\n  x + 1]",
    "N = \"a string ] with # and { inside\"",
    "N = \"unbalanced [ looking\" # c ]",
    "N = {a = 1 b = 2}",
    "N = method [:a :b a * b] # ]",
    "N = \"ends with a quote \\\"\"",
    "N = x k: = 1",
    "N = [x\n# inside\n  y]",
    "N = 1\n  # below, loose",
];

/// What goes between definitions, before the first and after the last.
pub(crate) const GAPS: &[&str] = &[
    "\n  ",
    " ",
    "",
    "\n\n  ",
    "\n  # a loose comment\n\n  ",
    "\r\n\t",
    "  # same line\n  ",
    "\n",
];

pub(crate) const ENDS: &[&str] = &["\n}\n", "}", " }", "\n} # end\n", "\n  # last words\n}"];

pub(crate) fn name(shape: u8, i: usize) -> String {
    match shape % 3 {
        0 => format!("w{i}"),
        1 => format!("k{i}:"),
        _ => format!("k{i}:v{i}:"),
    }
}

pub(crate) fn text_for(template: usize, name: &str) -> String {
    TEXTS[template % TEXTS.len()].replace('N', name)
}

/// A module as the image keeps it: gaps and definitions.
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    pub(crate) gaps: Vec<Vec<u8>>,
    pub(crate) names: Vec<String>,
    pub(crate) texts: Vec<Vec<u8>>,
}

impl Kept {
    pub(crate) fn text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, gap) in self.gaps.iter().enumerate() {
            out.extend_from_slice(gap);
            if let Some(t) = self.texts.get(i) {
                out.extend_from_slice(t);
            }
        }
        out
    }

    fn whole(&self) -> bool {
        let texts = &self.texts;
        whole_reads_back(self.text(), "gen", "Gen", &self.names, |i, t| {
            texts.get(i).is_some_and(|x| x == t)
        })
        .is_ok()
    }

    fn window(&self, at: usize) -> bool {
        let texts = &self.texts;
        window_reads_back(&self.gaps, &self.names, at, |i| texts.get(i).cloned())
    }
}

/// Builds a module from (name shape, text template, gap before) triples; `None` when it does
/// not read back as built (the image would never hold it).
pub(crate) fn build(defs: &[(u8, usize, usize)], first: usize, end: usize) -> Option<Kept> {
    let mut kept = Kept {
        gaps: vec![format!("{{{}", GAPS[first % GAPS.len()]).into_bytes()],
        names: vec!["_meta".to_string()],
        texts: vec![b"_meta = {name = 'Gen}".to_vec()],
    };
    for (i, &(shape, template, gap)) in defs.iter().enumerate() {
        let n = name(shape, i);
        kept.gaps.push(GAPS[gap % GAPS.len()].as_bytes().to_vec());
        kept.texts.push(text_for(template, &n).into_bytes());
        kept.names.push(n);
    }
    kept.gaps.push(ENDS[end % ENDS.len()].as_bytes().to_vec());
    let unit = SourceUnit::parse(kept.text(), "gen").ok()?;
    let same = unit.name() == "Gen"
        && unit.definitions().len() == kept.names.len()
        && (0..kept.names.len()).all(|i| {
            unit.definitions()[i].name == kept.names[i] && unit.definition_text(i) == kept.texts[i]
        });
    same.then_some(kept)
}

#[derive(Clone, Debug)]
struct Edit {
    /// Which definition (modulo the count; one past the last appends).
    at: usize,
    template: usize,
    /// For an append: the gap put before the new definition.
    gap: usize,
}

fn edit() -> impl Strategy<Value = Edit> {
    (any::<usize>(), 0..TEXTS.len(), 0..GAPS.len()).prop_map(|(at, template, gap)| Edit {
        at,
        template,
        gap,
    })
}

/// Applies `edit` as a live edit would: the text must read alone as the definition of its
/// name. Returns the edited module and the edited index, or `None` when `put` would refuse the
/// text before any check.
fn apply(kept: &Kept, edit: &Edit) -> Option<(Kept, usize)> {
    let n = kept.names.len();
    // Never `_meta` (index 0): the edit is of a definition, or an append.
    let at = 1 + edit.at % n;
    let mut out = kept.clone();
    let name = if at == n {
        format!("new{n}")
    } else {
        kept.names[at].clone()
    };
    let text = text_for(edit.template, &name);
    if read_definition(text.as_bytes()).ok()? != name {
        return None;
    }
    if at == n {
        let last = out.gaps.len() - 1;
        out.gaps
            .insert(last, GAPS[edit.gap % GAPS.len()].as_bytes().to_vec());
        out.names.push(name);
        out.texts.push(text.into_bytes());
    } else {
        out.texts[at] = text.into_bytes();
    }
    Some((out, at))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn window_agrees_with_whole(
        defs in proptest::collection::vec((any::<u8>(), 0..TEXTS.len(), 0..GAPS.len()), 0..7),
        first in 0..GAPS.len(),
        end in 0..ENDS.len(),
        edit in edit(),
    ) {
        let Some(kept) = build(&defs, first, end) else {
            return Ok(());
        };
        let Some((edited, at)) = apply(&kept, &edit) else {
            return Ok(());
        };
        let whole = edited.whole();
        let window = edited.window(at);
        prop_assert_eq!(
            window,
            whole,
            "edit of {} in\n{}",
            at,
            String::from_utf8_lossy(&edited.text())
        );
    }
}

/// Removes a definition as `rm` does (never `_meta`: index 0): it leaves with the separator
/// before it. Returns the module and the window `rm` checks: the definition after the removed
/// one, or the new last one.
fn remove(kept: &Kept, at: usize) -> Option<(Kept, usize)> {
    let n = kept.names.len();
    if n < 2 {
        return None;
    }
    let at = 1 + at % (n - 1);
    let mut out = kept.clone();
    drop_slot(&mut out.gaps, at);
    out.names.remove(at);
    out.texts.remove(at);
    let window = at.min(out.names.len() - 1);
    Some((out, window))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn window_agrees_with_whole_after_removal(
        defs in proptest::collection::vec((any::<u8>(), 0..TEXTS.len(), 0..GAPS.len()), 0..7),
        first in 0..GAPS.len(),
        end in 0..ENDS.len(),
        at in any::<usize>(),
    ) {
        let Some(kept) = build(&defs, first, end) else {
            return Ok(());
        };
        let Some((removed, window)) = remove(&kept, at) else {
            return Ok(());
        };
        prop_assert_eq!(
            removed.window(window),
            removed.whole(),
            "removal before {} in\n{}",
            window,
            String::from_utf8_lossy(&removed.text())
        );
    }
}

/// Removals that do not read back occur too (a removal that joins a trailing comment to a
/// closing bracket, say), and the window sees them.
#[test]
fn some_removals_do_not_read_back() {
    let mut other = 0;
    for template in 0..TEXTS.len() {
        for gap in 0..GAPS.len() {
            let defs = [(0, 0, 0), (0, template, gap), (0, 0, 0), (0, 0, 1)];
            let Some(kept) = build(&defs, 0, 1) else {
                continue;
            };
            for at in 0..4 {
                let Some((removed, window)) = remove(&kept, at) else {
                    continue;
                };
                assert_eq!(removed.window(window), removed.whole());
                other += usize::from(!removed.whole());
            }
        }
    }
    assert!(other > 0, "every removal read back");
}

/// `rm` refuses a removal after which the module would read back otherwise, and changes
/// nothing: here the trailing comment of `w1` would swallow `w3`, which follows on its line.
#[test]
fn rm_refuses_a_removal_that_does_not_read_back() {
    let kept = build(&[(0, 0, 0), (0, 7, 0), (0, 0, 0), (0, 0, 1)], 0, 0).unwrap();
    let dir = Dir::new("rm_reads_back");
    let image = image_of(&dir, &kept);
    let before = image.module_text("Gen").unwrap();
    let mut tx = image.begin(Origin::Live).unwrap();
    let refused = tx.remove_definition("Gen", "w2");
    assert!(
        matches!(refused, Err(spry_image::Error::Invalid(_))),
        "{refused:?}"
    );
    drop(tx);
    assert_eq!(image.module_text("Gen").unwrap(), before);
    // Removing the one with the comment is fine.
    let mut tx = image.begin(Origin::Live).unwrap();
    tx.remove_definition("Gen", "w1").unwrap();
    tx.commit().unwrap();
    assert!(
        !image
            .layout("Gen")
            .unwrap()
            .names
            .contains(&"w1".to_string())
    );
}

/// A module of `defs` as a file and an image built from it.
fn image_of(dir: &Dir, kept: &Kept) -> Image {
    std::fs::write(dir.join("gen.spry"), kept.text()).unwrap();
    built(dir)
}

proptest! {
    #![proptest_config(config(24))]

    /// Export takes the texts of unchanged definitions from the file (`assemble_reusing`);
    /// whatever the file holds, the result is the image's text as read definition by
    /// definition (`module_text`): after edits and removals, against the file as it was, a
    /// damaged copy of it, or nothing.
    #[test]
    fn export_splices_what_the_image_holds(
        defs in proptest::collection::vec((any::<u8>(), 0..TEXTS.len(), 0..GAPS.len()), 1..7),
        first in 0..GAPS.len(),
        end in 0..ENDS.len(),
        edits in proptest::collection::vec((edit(), any::<bool>()), 1..4),
        damage in any::<usize>(),
    ) {
        let Some(kept) = build(&defs, first, end) else {
            return Ok(());
        };
        let dir = Dir::new("splice");
        let image = image_of(&dir, &kept);
        let file = kept.text();
        for (edit, removal) in &edits {
            let record = image.layout("Gen").unwrap();
            let n = record.names.len();
            let mut tx = image.begin(Origin::Live).unwrap();
            let done = if *removal && n > 1 {
                let name = record.names[1 + edit.at % (n - 1)].clone();
                tx.remove_definition("Gen", &name)
            } else {
                let at = 1 + edit.at % n;
                let name = record.names.get(at).cloned().unwrap_or_else(|| format!("new{n}"));
                tx.put_definition("Gen", &name, text_for(edit.template, &name).as_bytes())
            };
            if done.is_ok() {
                tx.commit().unwrap();
            }
        }
        let record = image.layout("Gen").unwrap();
        let whole = image.module_text("Gen").unwrap();
        let mut damaged = file.clone();
        if !damaged.is_empty() {
            let at = damage % damaged.len();
            damaged[at] = damaged[at].wrapping_add(1);
        }
        for agreed in [&file[..], &damaged[..], &[][..], &whole[..]] {
            let spliced = image.assemble_reusing("Gen", &record, agreed).unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(&spliced),
                String::from_utf8_lossy(&whole)
            );
        }
        // And what export writes is that text.
        spry_image::export(&image, &Default::default()).unwrap();
        prop_assert_eq!(std::fs::read(dir.join("gen.spry")).unwrap(), whole);
    }
}

/// The generator reaches both answers: edits that read back and edits that do not.
#[test]
fn both_answers_occur() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = (
        proptest::collection::vec((any::<u8>(), 0..TEXTS.len(), 0..GAPS.len()), 0..7),
        0..GAPS.len(),
        0..ENDS.len(),
        edit(),
    );
    let (mut same, mut other) = (0, 0);
    for _ in 0..2000 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let (defs, first, end, edit) = tree.current();
        let Some((edited, at)) = build(&defs, first, end).and_then(|k| apply(&k, &edit)) else {
            continue;
        };
        assert_eq!(edited.window(at), edited.whole());
        if edited.whole() {
            same += 1;
        } else {
            other += 1;
        }
    }
    assert!(same > 100 && other > 100, "same {same}, other {other}");
}

/// What may come before a module's curly: nothing, a byte order mark, a comment.
const LEADS: &[&str] = &["", "\u{feff}", "# header\r\n", "\u{feff}# header\n", "\t"];

/// A save of a file: what changes in its text.
#[derive(Clone, Debug)]
enum Save {
    /// Definition `at` (modulo the count) gets another text.
    Text { at: usize, template: usize },
    /// The gap before definition `at` becomes another.
    Gap { at: usize, gap: usize },
    /// A byte inserted at `at` (modulo the length): a typo.
    Insert { at: usize, byte: u8 },
    /// A byte removed at `at`.
    Remove { at: usize },
    /// A new definition appended after the last.
    Append { template: usize },
}

fn save() -> impl Strategy<Value = Save> {
    let bytes = prop_oneof![
        Just(b' '),
        Just(b'\n'),
        Just(b'#'),
        Just(b'"'),
        Just(b']'),
        Just(b'['),
        Just(b'}'),
        Just(b'x'),
        Just(b'='),
        Just(b':'),
    ];
    prop_oneof![
        6 => (any::<usize>(), 0..TEXTS.len()).prop_map(|(at, template)| Save::Text { at, template }),
        1 => (any::<usize>(), 0..GAPS.len()).prop_map(|(at, gap)| Save::Gap { at, gap }),
        2 => (any::<usize>(), bytes).prop_map(|(at, byte)| Save::Insert { at, byte }),
        1 => any::<usize>().prop_map(|at| Save::Remove { at }),
        1 => (0..TEXTS.len()).prop_map(|template| Save::Append { template }),
    ]
}

/// The file's new text after `saves`, each applied to the module as kept (several texts may
/// change in one save); byte edits go to the text as it is by then.
fn saved_text(kept: &Kept, saves: &[Save]) -> Vec<u8> {
    let mut module = kept.clone();
    let mut bytes: Vec<(usize, Option<u8>)> = Vec::new();
    for save in saves {
        let n = module.names.len();
        match *save {
            Save::Text { at, template } => {
                let at = at % n;
                if at > 0 {
                    module.texts[at] = text_for(template, &module.names[at]).into_bytes();
                }
            }
            Save::Gap { at, gap } => {
                module.gaps[1 + at % n] = GAPS[gap].as_bytes().to_vec();
            }
            Save::Insert { at, byte } => bytes.push((at, Some(byte))),
            Save::Remove { at } => bytes.push((at, None)),
            Save::Append { template } => {
                let name = format!("new{n}");
                let last = module.gaps.len() - 1;
                module.gaps.insert(last, b"\n  ".to_vec());
                module.texts.push(text_for(template, &name).into_bytes());
                module.names.push(name);
            }
        }
    }
    let mut text = module.text();
    for (at, byte) in bytes {
        if text.is_empty() {
            break;
        }
        let at = at % text.len();
        match byte {
            Some(b) => text.insert(at, b),
            None => {
                text.remove(at);
            }
        }
    }
    text
}

/// The whole check of a save: the file parsed whole reads as the module's definitions, in
/// its order, with its gaps between them; then the definitions whose texts changed (name,
/// new text). `None` when it reads otherwise.
fn whole_save(kept: &Kept, text: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let unit = SourceUnit::parse(text, "gen").ok()?;
    if unit.name() != "Gen" || unit.definitions().len() != kept.names.len() {
        return None;
    }
    let same_layout = (0..=kept.names.len()).all(|i| unit.gap_before(i) == kept.gaps[i])
        && (0..kept.names.len()).all(|i| unit.definitions()[i].name == kept.names[i]);
    if !same_layout {
        return None;
    }
    Some(
        (0..kept.names.len())
            .filter(|&i| unit.definition_text(i) != kept.texts[i])
            .map(|i| (kept.names[i].clone(), unit.definition_text(i).to_vec()))
            .collect(),
    )
}

proptest! {
    #![proptest_config(config(48))]

    /// A save read without parsing the file (`Image::saved_span`: the module's records walked
    /// along the file from both ends, only the stretch that changed read again with a
    /// definition on either side) agrees with the file parsed whole: what it takes, the whole
    /// parse takes too, text for text; what it leaves, the whole merge decides. Layouts a generator would not write
    /// included: a byte order mark, a comment before the module, CRLF and tabs, comments
    /// between definitions, no final newline; saves that change texts, gaps, stray bytes, or
    /// add a definition.
    #[test]
    fn a_save_read_by_its_stretch_agrees_with_the_whole_parse(
        defs in proptest::collection::vec((any::<u8>(), 0..TEXTS.len(), 0..GAPS.len()), 0..7),
        lead in 0..LEADS.len(),
        first in 0..GAPS.len(),
        end in 0..ENDS.len(),
        saves in proptest::collection::vec(proptest::collection::vec(save(), 1..4), 1..6),
        target in prop_oneof![Just(1u64), Just(8), Just(64), Just(1 << 15)],
        commit in any::<bool>(),
    ) {
        let Some(mut kept) = build(&defs, first, end) else {
            return Ok(());
        };
        kept.gaps[0].splice(0..0, LEADS[lead].bytes());
        if build_check(&kept).is_none() {
            return Ok(());
        }
        let dir = Dir::new("saved_span");
        let mut image = image_of(&dir, &kept);
        // Chunks of one definition, of a few, of all: read along them when the image has an
        // index (`index_of`), along the whole module when not.
        image.set_chunk_target(target);
        index_of(&image, &kept);
        for save in &saves {
            let text = saved_text(&kept, save);
            let whole = whole_save(&kept, &text);
            let by_chunks = image
                .saved_by_chunks("Gen", "gen.spry", &text)
                .map(|saved| changes_of(&saved));
            prop_assert!(
                by_chunks.is_none() || by_chunks == whole,
                "save {:?} of\n{}\nas\n{}\nalong chunks of {}",
                save,
                String::from_utf8_lossy(&kept.text()),
                String::from_utf8_lossy(&text),
                target
            );
            let saved = image.saved_span("Gen", "gen.spry", text.clone()).ok();
            let span = saved.as_ref().map(changes_of);
            // Read along the chunks, the stretch reads the same.
            prop_assert!(by_chunks.is_none() || by_chunks == span);
            // Agreeing means: whatever the stretch takes, the whole parse takes the same.
            // The stretch may leave to the whole parse what it cannot prove from one
            // definition on either side (a loose comment that now belongs to the next
            // definition, say); `saves_of_texts_and_of_more_both_occur` counts how often.
            prop_assert!(
                span.is_none() || span == whole,
                "save {:?} of\n{}\nas\n{}",
                save,
                String::from_utf8_lossy(&kept.text()),
                String::from_utf8_lossy(&text)
            );
            // Taken, the save leaves the module as the file and its index as the module's
            // text cuts into (`check`); the next save is read against it.
            if let (true, Some(saved), Some(changes)) = (commit, saved, span) {
                let mut tx = image.begin(Origin::File).unwrap();
                tx.put_saved(saved, "gen.spry").unwrap();
                tx.commit().unwrap();
                for (name, new) in changes {
                    let at = kept.names.iter().position(|n| *n == name).unwrap();
                    kept.texts[at] = new;
                }
                prop_assert_eq!(image.module_text("Gen").unwrap(), kept.text());
                let report = image.check().unwrap();
                prop_assert!(report.is_ok(), "{:?}", report.problems);
            }
        }
    }
}

/// A save's changes: name and new text.
fn changes_of(saved: &SavedUnit) -> Vec<(String, Vec<u8>)> {
    saved
        .changes()
        .map(|(name, text)| (name.to_string(), text.to_vec()))
        .collect()
}

/// Gives the image built from `kept` a chunk index (`chunks.rs`), which only a save read by
/// its stretch writes: a save of another text for its last definition, then one of the file
/// as kept, each committed. `false` when either is left to the merge (no index then).
fn index_of(image: &Image, kept: &Kept) -> bool {
    let n = kept.names.len();
    if n < 2 {
        return false;
    }
    let template = usize::from(kept.texts[n - 1] == text_for(0, &kept.names[n - 1]).into_bytes());
    let other = saved_text(
        kept,
        &[Save::Text {
            at: n - 1,
            template,
        }],
    );
    for text in [other, kept.text()] {
        let Ok(saved) = image.saved_span("Gen", "gen.spry", text) else {
            return false;
        };
        let mut tx = image.begin(Origin::File).unwrap();
        tx.put_saved(saved, "gen.spry").unwrap();
        tx.commit().unwrap();
    }
    let report = image.check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    image.module_text("Gen").unwrap() == kept.text()
}

/// A module's text as its gaps, names and texts.
fn kept_of(text: &[u8]) -> Kept {
    let unit = SourceUnit::parse(text.to_vec(), "gen").unwrap();
    let gaps = unit
        .pieces()
        .into_iter()
        .filter_map(|p| match p {
            Piece::Gap(gap) => Some(gap.to_vec()),
            Piece::Definition(..) => None,
        })
        .collect();
    let names = unit.definitions().iter().map(|d| d.name.clone()).collect();
    let texts = (0..unit.definitions().len())
        .map(|i| unit.definition_text(i).to_vec())
        .collect();
    Kept { gaps, names, texts }
}

/// `kept` reads back as kept (after a lead was put before it).
fn build_check(kept: &Kept) -> Option<()> {
    let unit = SourceUnit::parse(kept.text(), "gen").ok()?;
    let same = unit.name() == "Gen"
        && unit.definitions().len() == kept.names.len()
        && (0..kept.names.len()).all(|i| {
            unit.definitions()[i].name == kept.names[i] && unit.definition_text(i) == kept.texts[i]
        })
        && (0..=kept.names.len()).all(|i| unit.gap_before(i) == kept.gaps[i]);
    same.then_some(())
}

/// The generator reaches both answers for saves, and saves of several texts at once; the
/// stretch alone reads most saves of texts.
#[test]
fn saves_of_texts_and_of_more_both_occur() {
    let kept = [
        (&[(0, 0, 0), (1, 3, 5), (0, 8, 4), (2, 11, 1)][..], 5, 3),
        (&[(0, 0, 0), (0, 9, 3), (0, 11, 4), (0, 1, 0)][..], 5, 0),
        (&[(0, 0, 0), (0, 1, 0), (0, 2, 0), (0, 1, 0)][..], 0, 0),
    ]
    .iter()
    .find_map(|(defs, first, end)| build(defs, *first, *end))
    .unwrap();
    let dir = Dir::new("saved_span_both");
    let mut image = image_of(&dir, &kept);
    image.set_chunk_target(8);
    assert!(index_of(&image, &kept), "no chunk index");
    let (mut taken, mut left, mut several, mut by_stretch) = (0, 0, 0, 0);
    let mut by_chunks = 0;
    for template in 0..TEXTS.len() {
        for at in 0..6 {
            for gap in [None, Some(at % GAPS.len())] {
                let mut saves = vec![Save::Text { at, template }];
                if let Some(gap) = gap {
                    saves.push(Save::Gap { at: at + 1, gap });
                }
                saves.push(Save::Text {
                    at: at + 2,
                    template: (template + 1) % TEXTS.len(),
                });
                let text = saved_text(&kept, &saves);
                let whole = whole_save(&kept, &text);
                let chunks = image.saved_by_chunks("Gen", "gen.spry", &text);
                by_chunks += usize::from(chunks.is_some());
                let span = image.saved_span("Gen", "gen.spry", text).ok().map(|s| {
                    s.changes()
                        .map(|(n, t)| (n.to_string(), t.to_vec()))
                        .collect::<Vec<_>>()
                });
                by_stretch += usize::from(span.is_some());
                assert!(
                    span.is_none() || span == whole,
                    "{saves:?}\n{}\n{}",
                    String::from_utf8_lossy(&kept.text()),
                    String::from_utf8_lossy(&saved_text(&kept, &saves))
                );
                match &whole {
                    Some(changes) => {
                        taken += 1;
                        several += usize::from(changes.len() > 1);
                    }
                    None => left += 1,
                }
            }
        }
    }
    assert!(
        taken > 20 && left > 20 && several > 5,
        "{taken} {left} {several}"
    );
    // Most saves of texts are read by their stretch alone.
    assert!(by_stretch * 10 >= taken * 8, "{by_stretch} of {taken}");
    // And most of those along the module's chunks (`chunks.rs`), not its whole records.
    assert!(
        by_chunks * 10 >= by_stretch * 8,
        "{by_chunks} of {by_stretch}"
    );
}

proptest! {
    #![proptest_config(config(32))]

    /// Live edits keep the module's chunk index: a new text gives the chunk that holds it
    /// its new length and marks it stale (`Transaction::index_after_edit`), a removal or an
    /// addition changes the chunks around it as a cut of the new text would
    /// (`ChunkIndex::without`, `ChunkIndex::with_last`). After each edit `check` finds the
    /// index to be the cut of the module's text but for the stale hashes (and an addition
    /// or a removal never drops it), and after export (which gives the stale chunks the
    /// hashes of what it wrote) a save read along it takes what the whole parse takes and
    /// what the stretch takes; a save of the text as exported, with chunks of one
    /// definition, is read along the index (no chunk left stale) and changes nothing.
    /// Chunks of one definition, a few, or all; edits of any definition, the same one again,
    /// texts that end a chunk where the old did not; removals of the first, the last, one
    /// alone in its chunk; additions after a last definition that ended its chunk or not.
    #[test]
    fn live_edits_keep_the_chunk_index_through_export(
        defs in proptest::collection::vec((any::<u8>(), 0..TEXTS.len(), 0..GAPS.len()), 1..7),
        first in 0..GAPS.len(),
        end in 0..ENDS.len(),
        edits in proptest::collection::vec((0..3u8, any::<usize>(), 0..TEXTS.len()), 1..6),
        target in prop_oneof![Just(1u64), Just(8), Just(64), Just(1 << 15)],
        save in save(),
    ) {
        let Some(mut kept) = build(&defs, first, end) else {
            return Ok(());
        };
        let dir = Dir::new("live_index");
        let mut image = image_of(&dir, &kept);
        image.set_chunk_target(target);
        if !index_of(&image, &kept) {
            return Ok(());
        }
        let mut added = 0;
        for (kind, at, template) in &edits {
            let indexed = image.chunk_index_agrees("Gen").unwrap() == Some(true);
            let mut tx = image.begin(Origin::Live).unwrap();
            let n = kept.names.len();
            // Whether the edit was made, and whether it added or removed a definition.
            let (done, reshaped) = match kind {
                0 => {
                    let name = kept.names[1 + at % (n - 1)].clone();
                    let text = text_for(*template, &name);
                    (tx.put_definition("Gen", &name, text.as_bytes()).is_ok(), false)
                }
                1 => {
                    added += 1;
                    let name = format!("added{added}");
                    let text = text_for(*template, &name);
                    (tx.put_definition("Gen", &name, text.as_bytes()).is_ok(), true)
                }
                _ if n > 2 => {
                    let name = &kept.names[1 + at % (n - 1)];
                    (tx.remove_definition("Gen", name).is_ok(), true)
                }
                _ => (false, false),
            };
            if done {
                tx.commit().unwrap();
            }
            // What the edit made, read from the image: a new definition is placed in the
            // pretty form.
            kept = kept_of(&image.module_text("Gen").unwrap());
            if indexed && done && reshaped {
                prop_assert_eq!(image.chunk_index_agrees("Gen").unwrap(), Some(true));
            }
            let report = image.check().unwrap();
            prop_assert!(report.is_ok(), "{:?}", report.problems);
            // The image's text saved before any export (the file typed to match it): read
            // whole or along the index, never a change.
            let same = image.saved_by_chunks("Gen", "gen.spry", &kept.text());
            prop_assert!(same.is_none_or(|s| s.changes().next().is_none()));
        }
        spry_image::export(&image, &Default::default()).unwrap();
        prop_assert_eq!(std::fs::read(dir.join("gen.spry")).unwrap(), kept.text());
        let report = image.check().unwrap();
        prop_assert!(report.is_ok(), "{:?}", report.problems);
        if target == 1 {
            // Every definition ends its chunk, old text and new: no edit moves a cut, and
            // the index is always kept.
            let same = image.saved_by_chunks("Gen", "gen.spry", &kept.text());
            prop_assert!(same.is_some_and(|s| s.changes().next().is_none()));
        }
        let text = saved_text(&kept, &[save]);
        let whole = whole_save(&kept, &text);
        let by_chunks = image
            .saved_by_chunks("Gen", "gen.spry", &text)
            .map(|saved| changes_of(&saved));
        prop_assert!(by_chunks.is_none() || by_chunks == whole);
        let span = image
            .saved_span("Gen", "gen.spry", text)
            .ok()
            .map(|saved| changes_of(&saved));
        prop_assert!(by_chunks.is_none() || by_chunks == span);
    }
}
