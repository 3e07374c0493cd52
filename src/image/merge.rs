//! The line-level three-way merge of one definition's texts, as `git merge-file` does it: the
//! image's and the file's changes since their base are combined when they touch different
//! lines; changes that overlap (or touch at a line boundary, as xdiff counts them) are a
//! conflict, unless both made the same change. The diffs are `similar`'s (Myers, per line).
//!
//! This only merges text. Whether a merged text may be taken (it must parse, define the same
//! name, and read back the same in its file) is the transaction's decision.

use std::ops::Range;

use similar::{ConflictStyle, TextMerge};

/// What merging three texts came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Merged {
    /// No overlapping change: the combined text.
    Clean(Vec<u8>),
    /// Some changes overlap: where, in lines of each text.
    Conflict(Vec<Hunk>),
}

/// A region in conflict: 1-based line ranges (`start..end`, end exclusive) in each text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hunk {
    /// Lines of the base.
    pub base: Lines,
    /// Lines of the image's text.
    pub image: Lines,
    /// Lines of the file's text.
    pub file: Lines,
}

/// Lines `start..end` of a text, 1-based, end exclusive (`start == end`: none, an insertion
/// before line `start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lines {
    /// The first line.
    pub start: usize,
    /// The line after the last.
    pub end: usize,
}

impl From<Range<usize>> for Lines {
    fn from(range: Range<usize>) -> Lines {
        Lines {
            start: range.start + 1,
            end: range.end + 1,
        }
    }
}

/// Texts that are not UTF-8 are merged only when equal; otherwise the whole text is one hunk.
fn as_text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn line_count(text: &[u8]) -> usize {
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    if text.last().is_some_and(|&b| b != b'\n') {
        lines + 1
    } else {
        lines
    }
}

fn whole(base: &[u8], image: &[u8], file: &[u8]) -> Hunk {
    Hunk {
        base: (0..line_count(base)).into(),
        image: (0..line_count(image)).into(),
        file: (0..line_count(file)).into(),
    }
}

/// Merges the image's and the file's text of one definition, `base` being the text they last
/// agreed on.
///
/// # Examples
/// ```
/// use spry_image::image::merge::{merge, Merged};
/// let base = b"# Doc.\nx = [\n  1\n]";
/// let image = b"# Doc.\nx = [\n  2\n]";
/// let file = b"# Better doc.\nx = [\n  1\n]";
/// assert_eq!(
///     merge(base, image, file),
///     Merged::Clean(b"# Better doc.\nx = [\n  2\n]".to_vec())
/// );
/// ```
pub fn merge(base: &[u8], image: &[u8], file: &[u8]) -> Merged {
    if image == file || base == file {
        return Merged::Clean(image.to_vec());
    }
    if base == image {
        return Merged::Clean(file.to_vec());
    }
    let (Some(b), Some(i), Some(f)) = (as_text(base), as_text(image), as_text(file)) else {
        return Merged::Conflict(vec![whole(base, image, file)]);
    };
    let merged = TextMerge::from_lines(b, i, f);
    if merged.is_conflicted() {
        return Merged::Conflict(
            merged
                .conflicts()
                .map(|r| Hunk {
                    base: r.base_range().into(),
                    image: r.ours_range().into(),
                    file: r.theirs_range().into(),
                })
                .collect(),
        );
    }
    Merged::Clean(merged.to_string().into_bytes())
}

/// The regions in conflict between the three texts (none when they merge).
pub fn hunks(base: &[u8], image: &[u8], file: &[u8]) -> Vec<Hunk> {
    match merge(base, image, file) {
        Merged::Clean(_) => Vec::new(),
        Merged::Conflict(hunks) => hunks,
    }
}

/// The three texts merged with git's diff3 markers around each conflict (`<<<<<<< image`,
/// `||||||| base`, `=======`, `>>>>>>> file`), the rest merged. Texts that are not UTF-8 are
/// shown with `?` for what is not.
pub fn with_markers(base: &[u8], image: &[u8], file: &[u8]) -> Vec<u8> {
    let b = String::from_utf8_lossy(base);
    let i = String::from_utf8_lossy(image);
    let f = String::from_utf8_lossy(file);
    let mut merged = TextMerge::from_lines(b.as_ref(), i.as_ref(), f.as_ref());
    merged
        .conflict_style(ConflictStyle::Diff3)
        .labels("base", "image", "file");
    merged.to_string().into_bytes()
}

/// Whether a text still holds a conflict marker line (of [`with_markers`]).
pub fn has_markers(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|line| {
        [b"<<<<<<<", b"|||||||", b"=======", b">>>>>>>"]
            .iter()
            .any(|m| line.starts_with(*m))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &[u8] = b"# Doc.\nx = method [:a\n  a + 1\n  a * 2\n]";

    #[test]
    fn changes_to_different_lines_merge() {
        let image = b"# Doc.\nx = method [:a\n  a + 1\n  a * 3\n]";
        let file = b"# Better doc.\nx = method [:a\n  a + 1\n  a * 2\n]";
        assert_eq!(
            merge(BASE, image, file),
            Merged::Clean(b"# Better doc.\nx = method [:a\n  a + 1\n  a * 3\n]".to_vec())
        );
    }

    #[test]
    fn the_same_line_changed_differently_is_a_conflict_with_its_ranges() {
        let image = b"# Doc.\nx = method [:a\n  a + 10\n  a * 2\n]";
        let file = b"# Doc.\nx = method [:a\n  a + 20\n  a * 2\n]";
        let Merged::Conflict(hunks) = merge(BASE, image, file) else {
            panic!("a conflict expected");
        };
        assert_eq!(hunks.len(), 1);
        assert_eq!(hunks[0].base, Lines { start: 3, end: 4 });
        assert_eq!(hunks[0].image, Lines { start: 3, end: 4 });
        assert_eq!(hunks[0].file, Lines { start: 3, end: 4 });
    }

    #[test]
    fn adjacent_changes_conflict_as_in_git() {
        let image = b"# Doc.\nx = method [:a\n  a + 10\n  a * 2\n]";
        let file = b"# Doc.\nx = method [:a\n  a + 1\n  a * 20\n]";
        assert!(matches!(merge(BASE, image, file), Merged::Conflict(_)));
    }

    #[test]
    fn the_same_change_on_both_sides_merges() {
        let both = b"# Doc.\nx = method [:a\n  a + 10\n  a * 2\n]";
        assert_eq!(merge(BASE, both, both), Merged::Clean(both.to_vec()));
    }

    #[test]
    fn one_side_unchanged_takes_the_other() {
        let file = b"x = 1";
        assert_eq!(merge(BASE, BASE, file), Merged::Clean(file.to_vec()));
        assert_eq!(merge(BASE, file, BASE), Merged::Clean(file.to_vec()));
    }

    #[test]
    fn a_last_line_without_newline_merges_with_a_change_above() {
        let base = b"x = [\n  1\n  2\n  3\n]";
        let image = b"x = [\n  one\n  2\n  3\n]";
        let file = b"x = [\n  1\n  2\n  3\n] # done";
        assert_eq!(
            merge(base, image, file),
            Merged::Clean(b"x = [\n  one\n  2\n  3\n] # done".to_vec())
        );
    }

    #[test]
    fn markers_show_the_three_texts() {
        let image = b"# Doc.\nx = method [:a\n  a + 10\n  a * 2\n]";
        let file = b"# Doc.\nx = method [:a\n  a + 20\n  a * 2\n]";
        let marked = String::from_utf8(with_markers(BASE, image, file)).unwrap();
        assert_eq!(
            marked,
            "# Doc.\nx = method [:a\n<<<<<<< image\n  a + 10\n||||||| base\n  a + 1\n=======\n  a + 20\n>>>>>>> file\n  a * 2\n]"
        );
        assert!(has_markers(marked.as_bytes()));
        assert!(!has_markers(image));
    }

    #[test]
    fn texts_that_are_not_utf8_conflict_whole() {
        let image = b"x = \"\xff\"";
        let file = b"x = \"\xfe\"\n";
        let Merged::Conflict(hunks) = merge(b"x = 1", image, file) else {
            panic!("a conflict expected");
        };
        assert_eq!(hunks[0].file, Lines { start: 1, end: 2 });
    }
}
