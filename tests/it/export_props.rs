//! Property test of export after live edits (issue 15): whichever way export writes a module
//! back (the changed texts spliced into the file, additions and removals spliced, or the module
//! assembled whole), the file it writes is the image's text of the module, byte for byte; the
//! definitions read back as the edits left them; the bytes between two definitions no edit
//! touched are the file's own; and a build of the written file changes nothing.
//!
//! Modules come from `incremental_props`' awkward generator (open keyword messages, trailing
//! comments, strings holding brackets, loose comments, CRLF, no final newline) behind leads the
//! generator never writes (a byte order mark, a comment before the curly). Each case runs up to
//! 24 live edits (replaced texts, new definitions, removals, mixed, more than the 16 a splice
//! takes), with exports between some of them, and saves of the file that take all the image's
//! changes but one text (a build merges them; the file then holds other bytes than the ones
//! the edits were noted against).
//!
//! ```text
//! PROPTEST_CASES=2000 cargo test --release --test it export_props
//! ```

use proptest::prelude::*;

use spry_image::image::{Image, Origin};
use spry_image::syntax::{SourceUnit, read_definition};
use spry_image::{BuildOptions, ExportOptions, NoProgress, build, export};

use crate::image_lib::built;
use crate::incremental_props::{self as modules, Kept};
use crate::util::Dir;

const MODULE: &str = "Gen";
const FILE: &str = "gen.spry";

/// What may stand before the module's curly.
const LEADS: &[&str] = &["", "\u{feff}", "# a module\n", "\u{feff}# c\r\n\r\n"];

#[derive(Clone, Debug)]
enum Edit {
    /// A new text for a definition (by index, modulo the count; never `_meta`).
    Replace(usize, usize),
    /// A new definition with a text from the template.
    Append(usize),
    /// `rm` of a definition (by index, never `_meta`).
    Remove(usize),
    /// A save of the file between edits: it takes every change the image made but the new
    /// text of one definition (by index, modulo the count of those with new texts), which
    /// keeps the text the file had, and a build reads it. The image is as it was, and the file holds other bytes.
    Save(usize),
    /// An export between edits.
    Export,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), 0..modules::TEXTS.len()).prop_map(|(at, t)| Edit::Replace(at, t)),
        3 => (0..modules::TEXTS.len()).prop_map(Edit::Append),
        3 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Save),
        1 => Just(Edit::Export),
    ]
}

/// A definition as the edits leave it: its name, its text, and where it stood in the file
/// first built (`None` for one added since).
#[derive(Clone, Debug)]
struct Current {
    name: String,
    text: Vec<u8>,
    first: Option<usize>,
    /// Whether a live edit gave it a new text.
    replaced: bool,
}

/// Runs one live edit through a transaction of its own, as `put` and `rm` do; a refused edit
/// (a text that does not read as its definition where it goes) leaves the image and `defs` as
/// they were.
fn apply(image: &Image, defs: &mut Vec<Current>, edit: &Edit, added: &mut usize) {
    let mut tx = image.begin(Origin::Live).unwrap();
    let done = match *edit {
        Edit::Replace(at, template) if defs.len() > 1 => {
            let at = 1 + at % (defs.len() - 1);
            let text = modules::text_for(template, &defs[at].name);
            if read_definition(text.as_bytes()).ok().as_deref() != Some(defs[at].name.as_str()) {
                return;
            }
            tx.put_definition(MODULE, &defs[at].name, text.as_bytes())
                .is_ok()
                .then(|| {
                    defs[at].text = text.into_bytes();
                    defs[at].replaced = true;
                })
        }
        Edit::Append(template) => {
            *added += 1;
            let name = format!("new{added}");
            let text = modules::text_for(template, &name);
            if read_definition(text.as_bytes()).ok().as_deref() != Some(name.as_str()) {
                return;
            }
            tx.put_definition(MODULE, &name, text.as_bytes())
                .is_ok()
                .then(|| {
                    defs.push(Current {
                        name,
                        text: text.into_bytes(),
                        first: None,
                        replaced: false,
                    })
                })
        }
        Edit::Remove(at) if defs.len() > 1 => {
            let at = 1 + at % (defs.len() - 1);
            tx.remove_definition(MODULE, &defs[at].name)
                .is_ok()
                .then(|| drop(defs.remove(at)))
        }
        _ => None,
    };
    if done.is_some() {
        tx.commit().unwrap();
    }
}

/// [`Edit::Save`]: the file takes the image's text of the module, but for the `at`-th of the
/// definitions whose texts differ, which keeps the text the file has for it (when the
/// image's text of it stands there once); a build reads it. The image's text stays what it was.
fn save(image: &mut Image, dir: &Dir, at: usize) -> Result<(), TestCaseError> {
    let before = image.module_text(MODULE).unwrap();
    let file = dir.read(FILE);
    let (Ok(now), Ok(was)) = (
        SourceUnit::parse(before.clone(), FILE),
        SourceUnit::parse(file, FILE),
    ) else {
        return Ok(());
    };
    // The definitions both hold with other texts: one of them keeps the file's.
    let differ: Vec<(&[u8], &[u8])> = (0..now.definitions().len())
        .filter_map(|i| {
            let name = &now.definitions()[i].name;
            let j = was.definitions().iter().position(|d| d.name == *name)?;
            let (mine, theirs) = (now.definition_text(i), was.definition_text(j));
            (mine != theirs).then_some((mine, theirs))
        })
        .collect();
    let mut saved = before.clone();
    if let Some((mine, theirs)) = differ.get(at % differ.len().max(1)) {
        let places = before.windows(mine.len()).filter(|w| w == mine).count();
        if places == 1 {
            let start = before
                .windows(mine.len())
                .position(|w| w == *mine)
                .unwrap_or(0);
            saved.splice(start..start + mine.len(), theirs.iter().copied());
        }
        // Only a file that reads as the image's definitions, that one's text as the file's
        // (an open keyword message before a definition put since would take it in, say).
        let reads = SourceUnit::parse(saved.clone(), FILE).is_ok_and(|unit| {
            unit.definitions().len() == now.definitions().len()
                && (0..unit.definitions().len()).all(|i| {
                    let text = unit.definition_text(i);
                    unit.definitions()[i].name == now.definitions()[i].name
                        && (text == now.definition_text(i) || text == *theirs)
                })
        });
        if !reads {
            return Ok(());
        }
    }
    // A new modification time, whatever the file system's granularity.
    dir.create(FILE, &saved);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2 + at as u64 % 60);
    std::fs::File::options()
        .write(true)
        .open(dir.join(FILE))
        .and_then(|f| f.set_modified(later))
        .unwrap();
    build(image, dir.path(), &BuildOptions::default(), &NoProgress).unwrap();
    let after = image.module_text(MODULE).unwrap();
    prop_assert_eq!(
        String::from_utf8_lossy(&after),
        String::from_utf8_lossy(&before)
    );
    Ok(())
}

/// Exports and checks that the file written is the image's text of the module.
fn export_matches(image: &Image, dir: &Dir) -> Result<Vec<u8>, TestCaseError> {
    export(image, &ExportOptions::default()).unwrap();
    let file = dir.read(FILE);
    let whole = image.module_text(MODULE).unwrap();
    prop_assert_eq!(
        String::from_utf8_lossy(&file),
        String::from_utf8_lossy(&whole)
    );
    prop_assert!(image.unsynced().unwrap().is_empty());
    Ok(file)
}

/// The definitions of `file`, read whole, are `defs`; the bytes between two definitions that
/// were neighbours in the first file and are both still there are the first file's.
fn reads_as_edited(
    image: &Image,
    file: &[u8],
    defs: &[Current],
    kept: &Kept,
) -> Result<(), TestCaseError> {
    let unit = SourceUnit::parse(file.to_vec(), FILE).unwrap();
    let names: Vec<&str> = unit.definitions().iter().map(|d| d.name.as_str()).collect();
    let expected: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    prop_assert_eq!(names, expected);
    for (i, d) in defs.iter().enumerate() {
        let text = unit.definition_text(i);
        // The image's text is the file's; a text put is kept as given, but a new definition
        // is placed in the pretty form (`Transaction::put_definition`).
        prop_assert_eq!(text, &image.definition_text(MODULE, &d.name).unwrap()[..]);
        if d.first.is_some() || d.replaced {
            prop_assert_eq!(text, &d.text[..], "text of {}", d.name);
        }
    }
    for pair in defs.windows(2) {
        if let (Some(a), Some(b)) = (pair[0].first, pair[1].first)
            && b == a + 1
        {
            let mut stretch = pair[0].text.clone();
            stretch.extend_from_slice(&kept.gaps[b]);
            stretch.extend_from_slice(&pair[1].text);
            prop_assert!(
                file.windows(stretch.len()).any(|w| w == &stretch[..]),
                "the bytes between {} and {} were not kept",
                pair[0].name,
                pair[1].name
            );
        }
    }
    Ok(())
}

fn run(kept: &Kept, lead: &str, edits: &[Edit]) -> Result<(), TestCaseError> {
    let mut first = lead.as_bytes().to_vec();
    first.extend_from_slice(&kept.text());
    // Only a file that reads as the generated module with the lead before it.
    let Ok(unit) = SourceUnit::parse(first.clone(), FILE) else {
        return Ok(());
    };
    if unit.name() != MODULE || unit.definitions().len() != kept.names.len() {
        return Ok(());
    }
    let dir = Dir::new("export_props");
    dir.create(FILE, &first);
    let mut image = built(&dir);
    let mut defs: Vec<Current> = (kept.names.iter().zip(&kept.texts).enumerate())
        .map(|(i, (name, text))| Current {
            name: name.clone(),
            text: text.clone(),
            first: Some(i),
            replaced: false,
        })
        .collect();
    let mut added = 0;
    for edit in edits {
        match edit {
            Edit::Export => {
                let file = export_matches(&image, &dir)?;
                reads_as_edited(&image, &file, &defs, kept)?;
            }
            Edit::Save(at) => save(&mut image, &dir, *at)?,
            _ => apply(&image, &mut defs, edit, &mut added),
        }
    }
    let file = export_matches(&image, &dir)?;
    reads_as_edited(&image, &file, &defs, kept)?;
    prop_assert!(image.check().unwrap().is_ok());
    build(
        &mut image,
        dir.path(),
        &BuildOptions::default(),
        &NoProgress,
    )
    .unwrap();
    prop_assert_eq!(image.module_text(MODULE).unwrap(), file);
    prop_assert!(image.unsynced().unwrap().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(modules::config(48))]

    #[test]
    fn export_after_live_edits_writes_the_images_text_and_keeps_the_rest(
        defs in proptest::collection::vec((any::<u8>(), 0..modules::TEXTS.len(), 0..modules::GAPS.len()), 0..8),
        first in 0..modules::GAPS.len(),
        end in 0..modules::ENDS.len(),
        lead in 0..LEADS.len(),
        edits in proptest::collection::vec(edit(), 0..24),
    ) {
        let Some(kept) = modules::build(&defs, first, end) else {
            return Ok(());
        };
        run(&kept, LEADS[lead], &edits)?;
    }
}

/// The case the property above is after, fixed: a definition added, another given a new
/// text, then a save of the file holding the addition but not the new text. The addition
/// noted before (at the file's end) must not be made to the saved file a second time.
#[test]
fn regression_a_save_holding_an_addition_does_not_get_it_twice() {
    let kept = modules::build(&[(0, 0, 0), (0, 0, 0)], 0, 0).unwrap();
    let edits = [
        Edit::Append(0),
        Edit::Replace(0, 2),
        Edit::Save(1),
        Edit::Export,
    ];
    run(&kept, "", &edits).unwrap();
}
