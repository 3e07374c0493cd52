//! The primitives, a file per kind, each a table of `(word, is a method, code)`, and the prelude
//! written in Spry.

mod block;
mod control;
mod core;
mod io;
mod math;
mod oo;
mod os;
mod string;

use std::rc::Rc;

use super::EvalResult;
use super::error::EvalError;
use super::interp::Interp;
use super::print::short;
use super::value::{IntOp, MapObj, PrimFn, Seq, Value};

pub(crate) use math::binary;

/// Library code in Spry, evaluated into every new system.
pub const PRELUDE: &str = include_str!("prelude.spry");

type Table = &'static [(&'static str, bool, PrimFn)];

/// Binds every primitive in the root map.
pub(crate) fn install(spry: &mut Interp<'_>) {
    let tables: [Table; 8] = [
        core::PRIMITIVES,
        control::PRIMITIVES,
        math::PRIMITIVES,
        string::PRIMITIVES,
        block::PRIMITIVES,
        io::PRIMITIVES,
        oo::PRIMITIVES,
        os::PRIMITIVES,
    ];
    for table in tables {
        // Only the math table's operators run inline (another table's `<`, if one had it,
        // is its own primitive).
        let math = std::ptr::eq(table, math::PRIMITIVES);
        for &(name, method, f) in table {
            let int_op = if math { IntOp::of(name) } else { None };
            spry.define_prim(name, method, f, int_op);
        }
    }
}

/// An error for a value of the wrong kind.
pub(crate) fn expected(word: &str, what: &str, got: &Value) -> EvalError {
    let shown = short(got);
    EvalError::runtime(format!(
        "{word} expects {what}, not {shown} ({})",
        got.type_name()
    ))
}

/// The value inside a tagged box, or the value.
pub(crate) fn inner(v: &Value) -> &Value {
    match v {
        Value::Boxed(b) => &b.value,
        other => other,
    }
}

pub(crate) fn int(word: &str, v: &Value) -> EvalResult<i64> {
    match inner(v) {
        Value::Int(i) => Ok(*i),
        other => Err(expected(word, "an integer", other)),
    }
}

pub(crate) fn boolean(word: &str, v: &Value) -> EvalResult<bool> {
    match inner(v) {
        Value::Bool(b) => Ok(*b),
        other => Err(expected(word, "a boolean", other)),
    }
}

pub(crate) fn bytes(word: &str, v: &Value) -> EvalResult<Vec<u8>> {
    match inner(v) {
        Value::Str(s) => Ok(s.bytes.borrow().clone()),
        other => Err(expected(word, "a string", other)),
    }
}

pub(crate) fn seq<'v>(word: &str, v: &'v Value) -> EvalResult<&'v Rc<Seq>> {
    v.seq().ok_or_else(|| expected(word, "a block", v))
}

pub(crate) fn map<'v>(word: &str, v: &'v Value) -> EvalResult<&'v Rc<MapObj>> {
    match v {
        Value::Map(m) => Ok(m),
        other => Err(expected(word, "a map", other)),
    }
}

/// An index into a sequence of `len`, or an error naming it.
pub(crate) fn index(word: &str, i: i64, len: usize) -> EvalResult<usize> {
    usize::try_from(i).ok().filter(|&i| i < len).ok_or_else(|| {
        EvalError::runtime(format!("{word}: index {i} is out of bounds (size {len})"))
    })
}
