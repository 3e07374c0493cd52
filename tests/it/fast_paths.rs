//! An adversarial review, by tests, of the fast paths that must give exactly what the slow,
//! whole paths give: a save read without parsing the file (`Image::saved_span`), a large
//! module read a window at a time, and a new image made while the tree is walked
//! (`build_new`). Every edit here is one an attacker (or a clumsy editor) would try: a string
//! or comment opened so that it swallows the next definition, a definition split in two or
//! renamed, edits at the first definition, `_meta`, the last one and the closing curly, CRLF
//! and LF mixed, a byte order mark added or removed, multi-byte characters, bytes that are
//! not UTF-8.

use spry_image::image::Image;
use spry_image::syntax::SourceUnit;

use crate::image_lib::built;
use crate::util::{Dir, show};

/// Modules that read back as written, each awkward in its own way.
const MODULES: &[&str] = &[
    "\u{feff}# header\r\n{\r\n  _meta = {name = 'Gen}\r\n  a = \"é ] # {\"\r\n  b = [1 2] # c ]\n  # above c\n  c = x at: 1 put: (y)\r\n  d = {p = 1 q = \"}\"}\n  k: = func [:x\n    x + 1]\n}\n",
    "{_meta = {name = 'Gen} a = 1 b = x at: 2 c = 'sym d = \"ü\" # 日本\n}",
    "{\n  _meta = {name = 'Gen}\n\n  # loose\n\n  w = method [:a :b a * b] # ]\n  k:v: = [x\n# inside\n  y]\n  z = 1\n  # below, loose\n}\n# after\n",
];

/// What is put into a file at every place, or put instead of the byte there.
const BITS: &[&[u8]] = &[
    b"\"",
    b"#",
    b"\n",
    b"\r",
    b"\r\n",
    "é".as_bytes(),
    "\u{feff}".as_bytes(),
    b"\xff",
    b"\xc3",
    b"]",
    b"[",
    b"{",
    b"}",
    b"(",
    b" ",
    b"x = 1\n  ",
    b" y = 2",
    b":",
    b"'",
    b"\\",
    b"\0",
    b"\t",
    b"=",
    b"_meta = {name = 'Gen}\n",
    b"a",
    b"# ",
];

/// The whole reading of a save: the file parsed whole reads as the module with the same
/// names and gaps; then the definitions whose texts changed. `None` when it reads otherwise.
fn whole_save(old: &SourceUnit, text: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let unit = SourceUnit::parse(text, "gen").ok()?;
    let n = old.definitions().len();
    let same = unit.name() == old.name()
        && unit.kind() == old.kind()
        && unit.definitions().len() == n
        && (0..n).all(|i| unit.definitions()[i].name == old.definitions()[i].name)
        && (0..=n).all(|i| unit.gap_before(i) == old.gap_before(i));
    same.then(|| {
        (0..n)
            .filter(|&i| unit.definition_text(i) != old.definition_text(i))
            .map(|i| {
                (
                    unit.definitions()[i].name.clone(),
                    unit.definition_text(i).to_vec(),
                )
            })
            .collect()
    })
}

/// `saved_span`'s reading of `text`, checked against the whole reading.
fn agrees(image: &Image, old: &SourceUnit, text: &[u8]) -> bool {
    let span = image
        .saved_span(old.name(), "gen.spry", text.to_vec())
        .ok()
        .map(|saved| {
            saved
                .changes()
                .map(|(n, t)| (n.to_string(), t.to_vec()))
                .collect::<Vec<_>>()
        });
    let whole = whole_save(old, text);
    assert!(
        span.is_none() || span == whole,
        "saved_span {span:?}, whole {whole:?}:\n{}\nas\n{}",
        show(old.text()),
        show(text)
    );
    span.is_some()
}

/// Every bit put at every place of every module, or instead of the byte there, and every
/// byte removed: what `saved_span` takes, the whole parse takes, text for text.
#[test]
fn every_one_byte_edit_reads_by_its_stretch_as_whole() {
    let mut taken = 0;
    let mut tried = 0;
    for module in MODULES {
        let dir = Dir::new("fast_every_edit");
        std::fs::write(dir.join("gen.spry"), module).unwrap();
        let image = built(&dir);
        let old = SourceUnit::parse(module.as_bytes(), "gen").unwrap();
        let bytes = module.as_bytes();
        for at in 0..=bytes.len() {
            for bit in BITS {
                for replace in [false, true] {
                    if replace && at == bytes.len() {
                        continue;
                    }
                    let mut text = bytes[..at].to_vec();
                    text.extend_from_slice(bit);
                    text.extend_from_slice(&bytes[(at + usize::from(replace)).min(bytes.len())..]);
                    tried += 1;
                    taken += usize::from(agrees(&image, &old, &text));
                }
            }
            if at < bytes.len() {
                let mut text = bytes.to_vec();
                text.remove(at);
                tried += 1;
                taken += usize::from(agrees(&image, &old, &text));
            }
        }
    }
    eprintln!("{taken} of {tried} edits read by their stretch");
    assert!(taken * 10 >= tried, "{taken} of {tried}");
}
