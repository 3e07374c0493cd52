//! Reading literals and word kinds from token text, as Spry's reference parser does.
//!
//! These are pure functions over bytes: the lexer uses them to classify plain tokens, the
//! semantic view uses them to decode values.

use super::kind::SyntaxKind;

/// Reads an integer: optional sign, a digit, then digits and `_`. `None` when the text is not an
/// integer or does not fit in 64 bits (such a number is then read as a float).
pub fn parse_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first()? {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if !digits.first()?.is_ascii_digit() {
        return None;
    }
    // Accumulate negatively so that i64::MIN fits.
    let mut value: i64 = 0;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                value = value.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
            }
            b'_' => {}
            _ => return None,
        }
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Whether `text` is a float as Nim's `parseFloat` reads it (after the integer reader declined):
/// optional sign, digits (with `_` after a digit) with a `.` and/or an exponent, at least one
/// digit; or a sign followed by `inf` or `nan` in any case.
pub fn is_float(text: &[u8]) -> bool {
    let Some(&first) = text.first() else {
        return false;
    };
    let rest = match first {
        b'+' | b'-' => &text[1..],
        b'0'..=b'9' => text,
        _ => return false,
    };
    if (first == b'+' || first == b'-')
        && (rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"nan"))
    {
        return true;
    }
    let scan_digits = |i: &mut usize, digits: &mut usize| {
        while *i < rest.len() && rest[*i].is_ascii_digit() {
            *digits += 1;
            *i += 1;
            while *i < rest.len() && rest[*i] == b'_' {
                *i += 1;
            }
        }
    };
    let mut i = 0;
    let mut digits = 0;
    scan_digits(&mut i, &mut digits);
    if i < rest.len() && rest[i] == b'.' {
        i += 1;
        scan_digits(&mut i, &mut digits);
    }
    if digits == 0 {
        return false;
    }
    if i + 1 < rest.len() && (rest[i] == b'e' || rest[i] == b'E') {
        i += 1;
        if rest[i] == b'+' || rest[i] == b'-' {
            i += 1;
        }
        if i >= rest.len() || !rest[i].is_ascii_digit() {
            return false;
        }
        let mut exponent_digits = 0;
        scan_digits(&mut i, &mut exponent_digits);
    }
    i == rest.len()
}

/// Reads a float; `is_float` decides the accepted forms.
pub fn parse_float(text: &[u8]) -> Option<f64> {
    if !is_float(text) {
        return None;
    }
    let (negative, rest) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest.eq_ignore_ascii_case(b"inf") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if rest.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    // The shape is checked: Rust's float parser takes the text without its `_`.
    let cleaned: String = text
        .iter()
        .filter(|&&b| b != b'_')
        .map(|&b| char::from(b))
        .collect();
    cleaned.parse::<f64>().ok()
}

/// The kind of a plain token (one that is not trivia, a bracket, a string or a special run).
#[inline(always)]
pub fn classify_plain(text: &[u8]) -> SyntaxKind {
    match text.first() {
        Some(b'0'..=b'9' | b'+' | b'-') => {
            if parse_integer(text).is_some() {
                SyntaxKind::Integer
            } else if is_float(text) {
                SyntaxKind::Float
            } else {
                classify_word(text)
            }
        }
        _ => classify_word(text),
    }
}

/// The kind of a word, from its first characters, in the order of the syntax page.
#[inline(always)]
pub fn classify_word(text: &[u8]) -> SyntaxKind {
    let len = text.len();
    // Most words start with a letter and hold no colon: an eval word.
    if let Some(&first) = text.first()
        && first.is_ascii_alphabetic()
        && !text.contains(&b':')
    {
        return SyntaxKind::EvalWord;
    }
    match text {
        [b':', b'$'] => SyntaxKind::Malformed,
        [b':', b'$', ..] => SyntaxKind::GetArgWord,
        [b':', b'='] => SyntaxKind::EvalWord,
        [b':', _, ..] => SyntaxKind::ArgWord,
        [b'$', b'@'] => SyntaxKind::Malformed,
        [b'$', b'@', ..] => SyntaxKind::GetSelfWord,
        [b'$', rest @ ..] if !rest.is_empty() => {
            if contains_module_separator(rest) {
                SyntaxKind::GetModuleWord
            } else {
                SyntaxKind::GetWord
            }
        }
        [b'\''] => SyntaxKind::Malformed,
        [b'\'', ..] => SyntaxKind::LitWord,
        _ if len > 1 && text[len - 1] == b':' => SyntaxKind::KeywordPart,
        [b'@'] => SyntaxKind::Malformed,
        [b'@', ..] => SyntaxKind::SelfWord,
        _ if contains_module_separator(text) => SyntaxKind::ModuleWord,
        _ => SyntaxKind::EvalWord,
    }
}

/// Whether `text` holds `::`.
#[inline]
pub fn contains_module_separator(text: &[u8]) -> bool {
    text.windows(2).any(|w| w == b"::")
}

/// Decodes the inside of a string literal (without its quotes) as Nim's `unescape` does:
/// `\\`, `\"`, `\'` and `\xHH` (up to two hex digits; none gives a NUL byte) are decoded; any
/// other backslash sequence stays as written, both characters.
pub fn decode_string(inner: &[u8]) -> Vec<u8> {
    // Most strings hold no backslash: one exact allocation and a copy, nothing per byte (and
    // no shrinking when the caller boxes it).
    if memchr::memchr(b'\\', inner).is_none() {
        return inner.to_vec();
    }
    let mut out = Vec::with_capacity(inner.len());
    decode_string_into(inner, &mut out);
    out
}

/// [`decode_string`], appending to `out` (the semantic view keeps every string in one buffer).
pub(crate) fn decode_string_into(inner: &[u8], out: &mut Vec<u8>) {
    let Some(first) = memchr::memchr(b'\\', inner) else {
        out.extend_from_slice(inner);
        return;
    };
    out.extend_from_slice(&inner[..first]);
    let mut i = first;
    while i < inner.len() {
        let b = inner[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&next) = inner.get(i + 1) else {
            out.push(b'\\');
            break;
        };
        match next {
            b'x' => {
                i += 2;
                let mut value: u8 = 0;
                let mut taken = 0;
                while taken < 2 {
                    match inner.get(i).and_then(|&h| char::from(h).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d as u8;
                            i += 1;
                            taken += 1;
                        }
                        None => break,
                    }
                }
                out.push(value);
                continue;
            }
            b'\\' | b'\'' | b'"' => out.push(next),
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_the_syntax_page() {
        assert_eq!(parse_integer(b"11"), Some(11));
        assert_eq!(parse_integer(b"+11"), Some(11));
        assert_eq!(parse_integer(b"-11"), Some(-11));
        assert_eq!(parse_integer(b"1_000_000"), Some(1_000_000));
        assert_eq!(parse_integer(b"1_"), Some(1));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_integer(b"9223372036854775808"), None);
        assert_eq!(parse_integer(b"-_1"), None);
        assert_eq!(parse_integer(b"0x10"), None);
        assert_eq!(parse_integer(b"-"), None);
        assert_eq!(parse_integer(b"12abc"), None);
    }

    #[test]
    fn floats_follow_the_syntax_page() {
        assert_eq!(parse_float(b"3.5"), Some(3.5));
        assert_eq!(parse_float(b"5."), Some(5.0));
        assert_eq!(parse_float(b"1e3"), Some(1000.0));
        assert_eq!(parse_float(b"-1.5e-3"), Some(-0.0015));
        assert_eq!(parse_float(b"99999999999999999999"), Some(1e20));
        assert_eq!(parse_float(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_float(b"-inf"), Some(f64::NEG_INFINITY));
        assert!(parse_float(b"+nan").is_some_and(f64::is_nan));
        for word in [
            &b".5"[..],
            b"12abc",
            b"0x10",
            b"1.2.3",
            b"12:30",
            b"-",
            b"+",
            b"-_1",
            b"inf",
            b"nan",
            b"1e",
            b"1e+",
        ] {
            assert_eq!(parse_float(word), None, "{}", String::from_utf8_lossy(word));
        }
    }

    #[test]
    fn word_kinds_follow_the_table() {
        use SyntaxKind::*;
        let cases: &[(&str, SyntaxKind)] = &[
            (":$x", GetArgWord),
            (":$", Malformed),
            (":x", ArgWord),
            (":", EvalWord),
            (":=", EvalWord),
            ("$@x", GetSelfWord),
            ("$@", Malformed),
            ("$Mod::x", GetModuleWord),
            ("$x", GetWord),
            ("$", EvalWord),
            ("$foo:", GetWord),
            ("'x", LitWord),
            ("''one", LitWord),
            ("':b", LitWord),
            ("'", Malformed),
            ("at:", KeywordPart),
            ("@x", SelfWord),
            ("@", Malformed),
            ("Mod::x", ModuleWord),
            ("=", EvalWord),
            ("..one", EvalWord),
            (".one", EvalWord),
            ("-", EvalWord),
            ("12abc", EvalWord),
            ("-_1", EvalWord),
        ];
        for (text, kind) in cases {
            assert_eq!(classify_plain(text.as_bytes()), *kind, "{text}");
        }
    }

    #[test]
    fn strings_decode_like_nim_unescape() {
        assert_eq!(decode_string(br#"a\\b"#), b"a\\b");
        assert_eq!(decode_string(br#"\"q\""#), b"\"q\"");
        assert_eq!(decode_string(br"\'"), b"'");
        assert_eq!(decode_string(br"\x41\x4a"), b"AJ");
        assert_eq!(decode_string(br"\n"), b"\\n");
        assert_eq!(decode_string(br"\xff"), [0xff]);
        assert_eq!(decode_string(br"\xZ"), b"\0Z");
        assert_eq!(decode_string(br"ab\x41c\\"), b"abAc\\");
        assert_eq!(decode_string(b"plain"), b"plain");
    }
}
