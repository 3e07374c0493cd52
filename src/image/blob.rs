//! Content-addressed texts: blake3 of the text names it; LZ4 (lz4_flex) stores it.

use crate::error::{Error, Result};
use crate::store::Bytes;

/// A blake3 hash of a text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The hash of `text`.
    pub fn of(text: &[u8]) -> Hash {
        Hash(*blake3::hash(text).as_bytes())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The first `n` hex digits.
    pub fn short(&self, n: usize) -> String {
        let mut hex = self.to_hex();
        hex.truncate(n);
        hex
    }

    /// Reads lower- or upper-case hex.
    pub fn from_hex(hex: &str) -> Option<Hash> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| Hash(*h.as_bytes()))
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash)
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", self.short(12))
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Texts up to this long are compressed through a buffer kept by each thread: longer ones
/// (rare) through one of their own, which a thread would otherwise keep at their size.
const SCRATCH_MAX: usize = 1 << 20;

/// A thread's room for compressing: the output buffer and lz4's match tables (one for texts
/// under 64 KiB, one for longer ones, as lz4_flex picks them itself, so the stored form is the
/// same byte for byte).
struct Scratch {
    out: Vec<u8>,
    small: lz4_flex::block::CompressTable,
    large: Option<lz4_flex::block::CompressTable>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        out: Vec::new(),
        small: lz4_flex::block::CompressTable::small(),
        large: None,
    });
}

/// The stored form of a text: LZ4 block with its length in front (what
/// `lz4_flex::compress_prepend_size` makes), in the form the store takes
/// ([`Bytes`]). Made in a buffer the thread keeps and copied out at its own length: a first
/// build compresses every definition of the tree, and a buffer and a match table allocated
/// (and zeroed) for each, kept at the text's size, cost more than the copy.
pub fn compress(text: &[u8]) -> Bytes {
    let room = 4 + lz4_flex::block::get_maximum_output_size(text.len());
    if room > SCRATCH_MAX {
        return lz4_flex::compress_prepend_size(text).into();
    }
    SCRATCH.with_borrow_mut(|scratch| {
        if scratch.out.len() < room {
            scratch.out.resize(room, 0);
        }
        let table = if text.len() < usize::from(u16::MAX) {
            &mut scratch.small
        } else {
            scratch
                .large
                .get_or_insert_with(lz4_flex::block::CompressTable::large)
        };
        let (head, body) = scratch.out[..room].split_at_mut(4);
        match lz4_flex::block::compress_into_with_table(text, body, table) {
            Ok(n) => {
                head.copy_from_slice(&(text.len() as u32).to_le_bytes());
                Bytes::new(&scratch.out[..4 + n])
            }
            // Not with room for the largest output; if it were, the usual way.
            Err(_) => lz4_flex::compress_prepend_size(text).into(),
        }
    })
}

/// The text back from its stored form.
///
/// # Errors
/// [`Error::Corrupt`] when the stored bytes do not decompress.
pub fn decompress(stored: &[u8]) -> Result<Vec<u8>> {
    lz4_flex::decompress_size_prepended(stored)
        .map_err(|e| Error::corrupt_by("a text does not decompress", e))
}

/// The length of the text a stored form holds, without decompressing.
pub fn stored_text_len(stored: &[u8]) -> Option<u32> {
    stored
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored form is lz4_flex's own, byte for byte, whatever was compressed before on the
    /// same thread (a long text, then a short one, then one past the buffer's limit).
    #[test]
    fn compress_makes_lz4_flexs_stored_form() {
        let mut texts: Vec<Vec<u8>> = vec![
            b"x".to_vec(),
            b"abc = func [:x x + 1]\n".repeat(40),
            (0..200_000u32)
                .flat_map(|i| (i % 251).to_le_bytes())
                .collect(),
            b"short again = 1".to_vec(),
            (0..70_000u32).map(|i| (i * 7 % 13) as u8).collect(),
            b"pi = 3".repeat(300_000),
            Vec::new(),
        ];
        texts.push(texts[1].clone());
        for text in &texts {
            let stored = compress(text);
            assert_eq!(
                stored,
                lz4_flex::compress_prepend_size(text),
                "{} bytes",
                text.len()
            );
            assert_eq!(decompress(&stored).expect("a text"), *text);
        }
    }
}
