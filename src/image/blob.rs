//! Content-addressed texts: blake3 of the text names it; LZ4 (lz4_flex) stores it.

use crate::error::{Error, Result};

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

/// The stored form of a text: LZ4 block with its length in front.
pub fn compress(text: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(text)
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
