//! Whether a module, as the image keeps it (its own text cut at its definitions, and each
//! definition's text), reads back as the same definitions with the same texts: the check a
//! live edit must pass before it may stand.
//!
//! Two forms. [`whole_reads_back`] reads the whole module again: the reference, linear in the
//! module. [`window_reads_back`] reads only what an edit of one definition can change: that
//! definition, the gaps on either side and the definitions on either side, set in a stand-in
//! module. It answers `true` only when the edit provably reads back the same; on `false` the
//! caller runs the whole check (which also gives the error to show).
//!
//! Why a window suffices, given that the module read back the same before the edit and only
//! definition `at` changed (or was added): the text before the window is as it was, so the
//! reader reaches the window's start (a definition's start, or the file's) in the state it did
//! before: outside strings and comments, directly inside the module's curly, at a token's
//! start. The stand-in puts the window in that same state. Inside the window the stand-in and
//! the module are byte for byte the same, so they read the same; the stand-in proves that the
//! definition after the edited one starts where it should, as a definition, so from there on
//! the module reads as it did before. A definition's span looks at most one definition's
//! worth beyond itself (a comment on its last line, a run-on into the next binding), which the
//! window's neighbours cover.

use super::module::SourceUnit;

/// The stand-in's opening when the window does not start at the file's start: a module with
/// only its `_meta`, so that the window's definitions are read directly inside a module curly.
/// A window that holds a `_meta` of its own then has a duplicate name and is not accepted.
const OPENING: &[u8] = b"{_meta = {name = 'Window}\n";
/// The stand-in's closing when the window does not reach the file's end.
const CLOSING: &[u8] = b"\n}\n";

/// Checks a module whose edited definition is `at`. `gaps` are the module's own text
/// (`gaps[0]`, definition 0, `gaps[1]`, …, `gaps[n]`), `names` its definitions in order and
/// `text(i)` the text of definition `i` (called for at most three definitions). Returns `true`
/// when the module, with the edit, provably reads back as the same definitions with the same
/// texts (assuming it did before the edit); `false` when it may not (the whole check decides).
///
/// # Examples
/// ```
/// use spry_image::syntax::window_reads_back;
/// let gaps: Vec<&[u8]> = vec![b"{", b" ", b" ", b"}"];
/// let names = ["_meta".to_string(), "a".to_string(), "b".to_string()];
/// let good = [b"_meta = {name = 'M}".as_slice(), b"a = 1", b"b = 2"];
/// assert!(window_reads_back(&gaps, &names, 2, |i| good.get(i).map(|t| t.to_vec())));
/// // A trailing comment on a one-line module swallows the closing bracket.
/// let bad = [b"_meta = {name = 'M}".as_slice(), b"a = 1", b"b = 2 # two"];
/// assert!(!window_reads_back(&gaps, &names, 2, |i| bad.get(i).map(|t| t.to_vec())));
/// ```
pub fn window_reads_back<G: AsRef<[u8]>>(
    gaps: &[G],
    names: &[String],
    at: usize,
    text: impl FnMut(usize) -> Option<Vec<u8>>,
) -> bool {
    if gaps.len() != names.len() + 1 {
        return false;
    }
    window_reads_back_part(gaps, names, 0, names.len(), at, text)
}

/// [`window_reads_back`] given only part of the module around the edit: `names` are the
/// definitions from `offset` on (of `total`), `gaps[j]` the gap before definition
/// `offset + j`, and the last gap the one after the last of `names`. `at` and `text(i)`
/// count from the module's first definition. The part must hold the window: definitions
/// `at - 1` to `at + 1` (as far as they exist), and the gap after the last of them. What an
/// image that keeps its layout per definition reads, at the cost of the definition.
pub fn window_reads_back_part<G: AsRef<[u8]>>(
    gaps: &[G],
    names: &[String],
    offset: usize,
    total: usize,
    at: usize,
    mut text: impl FnMut(usize) -> Option<Vec<u8>>,
) -> bool {
    let n = total;
    if gaps.len() != names.len() + 1 || at >= n || offset + names.len() > n {
        return false;
    }
    // The first definition is usually `_meta`: a window reaching it starts at the file's start.
    let first = at.saturating_sub(1);
    let last = (at + 1).min(n - 1);
    if first < offset || last >= offset + names.len() {
        return false;
    }
    let gap = |i: usize| gaps.get(i - offset).map(AsRef::as_ref);
    let mut standin = Vec::new();
    let mut expected_names: Vec<&str> = Vec::with_capacity(4);
    if first > 0 {
        standin.extend_from_slice(OPENING);
        expected_names.push("_meta");
    } else if let Some(gap) = gap(0) {
        standin.extend_from_slice(gap);
    }
    let mut spans = Vec::with_capacity(last + 1 - first);
    for i in first..=last {
        if i > first {
            let Some(gap) = gap(i) else {
                return false;
            };
            standin.extend_from_slice(gap);
        }
        let Some(def) = text(i) else {
            return false;
        };
        spans.push(standin.len()..standin.len() + def.len());
        standin.extend_from_slice(&def);
        let Some(name) = names.get(i - offset) else {
            return false;
        };
        expected_names.push(name);
    }
    if last + 1 == n {
        let Some(gap) = gap(n) else {
            return false;
        };
        standin.extend_from_slice(gap);
    } else {
        standin.extend_from_slice(CLOSING);
    }
    let Ok(unit) = SourceUnit::parse(standin, "") else {
        return false;
    };
    let read: Vec<&str> = unit.definitions().iter().map(|d| d.name.as_str()).collect();
    if read != expected_names {
        return false;
    }
    // Same spans at the same places: the same texts, and the same gaps between them.
    let skip = usize::from(first > 0);
    unit.definitions()
        .iter()
        .skip(skip)
        .map(|d| d.span.clone())
        .eq(spans)
}

/// A file saved over a module that read back the same, read again only where it changed:
/// `window` is a stretch of `text` running from a definition's start (or the file's start,
/// `from_start`) to a definition's end (or the file's end, `to_end`), and the text outside it
/// is, byte for byte, what the module was read from last. The stretch is set in a stand-in
/// module as [`window_reads_back`] sets its window, for the same reasons: when the stretch
/// starts and ends with definitions that did not change (or the file's own ends), the file
/// reads as it did outside the stretch, and inside it as the stand-in does. Returns where the
/// definitions in the stretch lie in `text` when they read as `names`, in order (and, from the
/// file's start, as the module `module`); `None` when they may not (the whole file is then
/// read).
///
/// # Examples
/// ```
/// use spry_image::syntax::span_reads_back;
/// let text = b"{_meta = {name = 'M}\n a = 1\n b = 20\n c = 3\n}\n";
/// // `b` changed: the stretch from `a`'s start to `c`'s end.
/// let spans = span_reads_back(text, 22..42, false, false, "M", &["a", "b", "c"]);
/// assert_eq!(spans, Some(vec![22..27, 29..35, 37..42]));
/// ```
pub fn span_reads_back(
    text: &[u8],
    window: std::ops::Range<usize>,
    from_start: bool,
    to_end: bool,
    module: &str,
    names: &[&str],
) -> Option<Vec<std::ops::Range<usize>>> {
    let stretch = text.get(window.clone())?;
    if (from_start && window.start != 0) || (to_end && window.end != text.len()) {
        return None;
    }
    let mut standin = Vec::with_capacity(stretch.len() + OPENING.len() + CLOSING.len());
    if !from_start {
        standin.extend_from_slice(OPENING);
    }
    let shift = standin.len();
    standin.extend_from_slice(stretch);
    if !to_end {
        standin.extend_from_slice(CLOSING);
    }
    let unit = SourceUnit::parse(standin, "").ok()?;
    if from_start && unit.name() != module {
        return None;
    }
    let skip = usize::from(!from_start);
    let read = unit.definitions().get(skip..)?;
    if skip == 1 && unit.definitions()[0].name != "_meta" {
        return None;
    }
    if read.len() != names.len() || read.iter().zip(names).any(|(d, n)| d.name != *n) {
        return None;
    }
    read.iter()
        .map(|d| {
            let start = (d.span.start.checked_sub(shift)?) + window.start;
            let end = (d.span.end.checked_sub(shift)?) + window.start;
            (end <= window.end).then_some(start..end)
        })
        .collect()
}

/// Why a module does not read back the same (see [`whole_reads_back`]).
#[derive(Clone, Debug)]
pub enum ReadsBackError {
    /// The text does not read as a unit.
    Syntax(super::module::UnitErrors),
    /// It reads as another module name or other definition names.
    OtherDefinitions,
    /// Definition `0` reads back as another text.
    OtherText(usize),
}

/// The reference check, linear in the module: `text` (the module's whole text) reads as the
/// module `module` with the definitions `names`, definition `i` reading back as a text for
/// which `same(i, text)` holds. `script_name` names the text if it reads as a script.
///
/// # Errors
/// The first way it reads back otherwise.
///
/// # Examples
/// ```
/// use spry_image::syntax::whole_reads_back;
/// let text = b"{_meta = {name = 'M} a = 1}".to_vec();
/// let names = ["_meta".to_string(), "a".to_string()];
/// assert!(whole_reads_back(text, "m", "M", &names, |_, _| true).is_ok());
/// ```
pub fn whole_reads_back(
    text: Vec<u8>,
    script_name: &str,
    module: &str,
    names: &[String],
    mut same: impl FnMut(usize, &[u8]) -> bool,
) -> Result<(), ReadsBackError> {
    let unit = SourceUnit::parse(text, script_name).map_err(ReadsBackError::Syntax)?;
    let read: Vec<&str> = unit.definitions().iter().map(|d| d.name.as_str()).collect();
    if unit.name() != module || read != names {
        return Err(ReadsBackError::OtherDefinitions);
    }
    for i in 0..names.len() {
        if !same(i, unit.definition_text(i)) {
            return Err(ReadsBackError::OtherText(i));
        }
    }
    Ok(())
}
