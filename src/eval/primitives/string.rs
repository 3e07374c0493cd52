//! Strings: splitting, replacing in place, searching (byte offsets, as the reference), and
//! counting code points.

use super::super::value::Value;
use super::super::{EvalError, EvalResult, Interp};
use super::{bytes, expected, int};

pub(super) const PRIMITIVES: super::Table = &[
    ("split:", true, split),
    ("replace:with:", true, replace_with),
    ("findString:startingAt:", true, find_from),
    ("runeLen", true, rune_len),
];

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    if needle.is_empty() {
        return Some(from);
    }
    memchr::memmem::find(&hay[from..], needle).map(|i| i + from)
}

fn split(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let s = bytes("split:", &spry.infix_arg()?)?;
    let sep = bytes("split:", &spry.arg()?)?;
    if sep.is_empty() {
        return Err(EvalError::runtime("split: the separator is empty"));
    }
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(i) = find(&s, &sep, start) {
        parts.push(Value::str(s[start..i].to_vec()));
        start = i + sep.len();
    }
    parts.push(Value::str(s[start..].to_vec()));
    Ok(Value::block(parts))
}

fn replace_with(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let target = spry.infix_arg()?;
    let Value::Str(s) = &target else {
        return Err(expected("replace:with:", "a string", &target));
    };
    let sub = bytes("replace:with:", &spry.arg()?)?;
    let by = bytes("replace:with:", &spry.arg()?)?;
    if sub.is_empty() {
        return Ok(target);
    }
    let old = s.bytes.borrow().clone();
    let mut out = Vec::with_capacity(old.len());
    let mut start = 0;
    while let Some(i) = find(&old, &sub, start) {
        out.extend_from_slice(&old[start..i]);
        out.extend_from_slice(&by);
        start = i + sub.len();
    }
    out.extend_from_slice(&old[start..]);
    *s.bytes.borrow_mut() = out;
    Ok(target)
}

fn find_from(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let s = bytes("findString:startingAt:", &spry.infix_arg()?)?;
    let sub = bytes("findString:startingAt:", &spry.arg()?)?;
    let start = int("findString:startingAt:", &spry.arg()?)?;
    let found = usize::try_from(start)
        .ok()
        .and_then(|start| find(&s, &sub, start));
    Ok(Value::Int(found.map_or(-1, |i| i as i64)))
}

/// Beyond the reference (spry-src's `Greetings::length:` uses it): the number of code points
/// of a UTF-8 string, where `size` counts bytes. A byte that is not valid UTF-8 counts as one.
fn rune_len(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let s = bytes("runeLen", &spry.infix_arg()?)?;
    let mut count = 0i64;
    for chunk in s.utf8_chunks() {
        count += chunk.valid().chars().count() as i64 + chunk.invalid().len() as i64;
    }
    Ok(Value::Int(count))
}
