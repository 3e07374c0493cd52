//! Blocks as collections and streams: access, the stream position, iteration (`do:`, `map:`,
//! `select:`, `keyValueDo:`), `reduce`, and the reference's benchmark helper `selectLarger8`.

use std::rc::Rc;

use super::super::value::{Seq, Value};
use super::super::{EvalError, EvalResult, Interp};
use super::{boolean, expected, int, seq};

pub(super) const PRIMITIVES: super::Table = &[
    ("first", true, first),
    ("last", true, last),
    ("reset", true, reset),
    ("pos", true, pos),
    ("pos:", true, set_pos),
    ("read", true, read),
    ("write:", true, write),
    ("next", true, next),
    ("prev", true, prev),
    ("end?", true, at_end),
    ("newBlock", false, new_block),
    ("newBlock:", false, new_block_sized),
    ("fill:", true, fill),
    ("reverse", true, reverse),
    ("do:", true, each),
    ("keyValueDo:", true, key_value_do),
    ("map:", true, map),
    ("select:", true, select),
    ("selectLarger8", true, select_larger8),
    ("sum", true, sum),
    ("reduce", false, reduce),
];

fn receiver(spry: &mut Interp<'_>, word: &str) -> EvalResult<(Value, Rc<Seq>)> {
    let v = spry.infix_arg()?;
    let s = seq(word, &v)?.clone();
    Ok((v, s))
}

fn empty(word: &str) -> EvalError {
    EvalError::runtime(format!("{word}: the block is empty"))
}

fn first(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "first")?;
    s.get(0).ok_or_else(|| empty("first"))
}

fn last(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "last")?;
    let last = s.items.borrow().last().cloned();
    last.ok_or_else(|| empty("last"))
}

fn reset(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (v, s) = receiver(spry, "reset")?;
    s.pos.set(0);
    Ok(v)
}

fn pos(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "pos")?;
    Ok(Value::Int(s.pos.get() as i64))
}

fn set_pos(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (v, s) = receiver(spry, "pos:")?;
    let p = int("pos:", &spry.arg()?)?;
    let p = usize::try_from(p)
        .ok()
        .filter(|&p| p <= s.len())
        .ok_or_else(|| EvalError::runtime(format!("pos: {p} is out of bounds")))?;
    s.pos.set(p);
    Ok(v)
}

fn read(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "read")?;
    s.get(s.pos.get())
        .ok_or_else(|| EvalError::runtime("read: at the end of the block"))
}

fn write(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (v, s) = receiver(spry, "write:")?;
    let x = spry.arg()?;
    let p = s.pos.get();
    let mut items = s.edit();
    match items.get_mut(p) {
        Some(slot) => *slot = x,
        None => return Err(EvalError::runtime("write: at the end of the block")),
    }
    drop(items);
    Ok(v)
}

fn next(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "next")?;
    let p = s.pos.get();
    match s.get(p) {
        Some(x) => {
            s.pos.set(p + 1);
            Ok(x)
        }
        None => Ok(Value::Nil),
    }
}

fn prev(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "prev")?;
    let p = s.pos.get();
    if p == 0 {
        return Ok(Value::Nil);
    }
    s.pos.set(p - 1);
    Ok(s.get(p - 1).unwrap_or_default())
}

fn at_end(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "end?")?;
    Ok(Value::Bool(s.pos.get() >= s.len()))
}

fn new_block(_: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::block(Vec::new()))
}

fn new_block_sized(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let n = int("newBlock:", &spry.arg()?)?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= 1 << 24)
        .ok_or_else(|| EvalError::runtime(format!("newBlock: {n} is not a size")))?;
    Ok(Value::block(vec![Value::Nil; n]))
}

fn fill(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (v, s) = receiver(spry, "fill:")?;
    let x = spry.arg()?;
    s.edit().iter_mut().for_each(|slot| *slot = x.clone());
    Ok(v)
}

fn reverse(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (v, s) = receiver(spry, "reverse")?;
    s.edit().reverse();
    Ok(v)
}

/// The elements handed to a block: a sequence's nodes, or a map's bindings.
fn elements(word: &str, c: &Value) -> EvalResult<Vec<Value>> {
    match c {
        Value::Map(m) => Ok(m
            .bindings()
            .into_iter()
            .map(|b| Value::Binding(Rc::new(b)))
            .collect()),
        other => Ok(seq(word, other)?.items.borrow().clone()),
    }
}

fn each(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let code = spry.arg()?;
    for x in elements("do:", &c)? {
        let (value, returned) = spry.run_body_of_loop(&code, [x])?;
        if returned {
            return Ok(value);
        }
    }
    Ok(c)
}

fn key_value_do(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let code = spry.arg()?;
    let Value::Map(m) = &c else {
        return Err(expected("keyValueDo:", "a map", &c));
    };
    for (k, v) in m.bindings() {
        let (value, returned) = spry.run_body_of_loop(&code, [k, v])?;
        if returned {
            return Ok(value);
        }
    }
    Ok(c)
}

fn map(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let code = spry.arg()?;
    let mut out = Vec::new();
    for x in elements("map:", &c)? {
        let (value, returned) = spry.run_body_of_loop(&code, [x])?;
        if returned {
            return Ok(value);
        }
        out.push(value);
    }
    Ok(Value::block(out))
}

fn select(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let code = spry.arg()?;
    let mut out = Vec::new();
    for x in elements("select:", &c)? {
        let (value, returned) = spry.run_body_of_loop(&code, [x.clone()])?;
        if returned {
            return Ok(value);
        }
        if boolean("select:", &value)? {
            out.push(x);
        }
    }
    Ok(Value::block(out))
}

/// The reference VM's benchmark primitive: the integers of the block larger than 8 (an element
/// that is not an integer is an error, where the reference crashes).
fn select_larger8(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "selectLarger8")?;
    let mut out = Vec::new();
    for x in s.items.borrow().iter() {
        if int("selectLarger8", x)? > 8 {
            out.push(x.clone());
        }
    }
    Ok(Value::block(out))
}

fn sum(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (_, s) = receiver(spry, "sum")?;
    let mut ints: i64 = 0;
    let mut floats = 0.0;
    let mut any_float = false;
    for x in s.items.borrow().iter() {
        match super::inner(x) {
            Value::Int(i) => {
                ints = ints
                    .checked_add(*i)
                    .ok_or_else(|| EvalError::runtime("integer overflow in sum"))?;
            }
            Value::Float(f) => {
                any_float = true;
                floats += f;
            }
            other => return Err(expected("sum", "a block of numbers", other)),
        }
    }
    Ok(if any_float {
        Value::Float(floats + ints as f64)
    } else {
        Value::Int(ints)
    })
}

/// Evaluates each node of a block that does something and collects the results (a node that
/// is only a value is kept as the receiver of a method that may follow).
fn reduce(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let code = spry.arg()?;
    let items = seq("reduce", &code)?.copy();
    let mut out = Vec::new();
    let frame = Rc::new(super::super::frame::Frame::new(
        super::super::frame::FrameKind::Block,
        items,
        Some(spry.current.clone()),
        None,
        spry.current.receiver.borrow().clone(),
        None,
    ));
    let saved = std::mem::replace(&mut spry.current, frame.clone());
    let result = (|| -> EvalResult<()> {
        while let Some(node) = frame.next_node() {
            if acts(spry, &node)? {
                let v = spry.eval(&node)?;
                *frame.last.borrow_mut() = v.clone();
                out.push(v);
            } else {
                *frame.last.borrow_mut() = node;
            }
        }
        Ok(())
    })();
    spry.current = saved;
    result?;
    Ok(Value::block(out))
}

/// Whether evaluating `node` does something (the reference's `canEval`).
fn acts(spry: &mut Interp<'_>, node: &Value) -> EvalResult<bool> {
    Ok(match node {
        Value::Word(w) => match w.kind {
            crate::syntax::WordKind::Eval => matches!(
                spry.lookup(&node.key())?,
                Some(Value::Func(_) | Value::Prim(_))
            ),
            crate::syntax::WordKind::Arg | crate::syntax::WordKind::GetArg => true,
            _ => false,
        },
        Value::Paren(_) | Value::Curly(_) => true,
        _ => false,
    })
}
