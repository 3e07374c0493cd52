//! Core primitives: binding, equality, arithmetic, conversions, words, composites and maps,
//! reflection on activations, tags.

use std::rc::Rc;

use super::super::frame::{Frame, FrameKind, skip_parens_caller, skip_parens_outer};
use super::super::print::{form, repr, short};
use super::super::read::read_source;
use super::super::value::{Boxed, Closure, Seq, Value};
use super::super::{EvalError, EvalResult, Interp};
use super::{expected, index, int, map, seq};
use crate::syntax::WordKind;

pub(super) const PRIMITIVES: super::Table = &[
    ("=", true, bind),
    (":=", true, assign),
    ("set:", true, set),
    ("set?", true, is_set),
    ("nil?", true, is_nil),
    ("==", true, equal),
    ("!=", true, not_equal),
    ("===", true, identical),
    ("!==", true, not_identical),
    (",", true, concat),
    ("print", true, print),
    ("asFloat", true, as_float),
    ("asInt", true, as_int),
    ("serialize", false, serialize),
    ("parse", false, parse),
    ("size", true, size),
    ("empty?", true, is_empty),
    ("at:", true, at),
    ("at:put:", true, at_put),
    ("get:", true, get),
    ("set:to:", true, set_to),
    ("contains:", true, contains),
    ("add:", true, add),
    ("removeLast", true, remove_last),
    ("removeFirst", true, remove_first),
    ("removeAt:", true, remove_at),
    ("copyFrom:to:", true, copy_from_to),
    ("key", true, key),
    ("value", true, value),
    ("func", false, func),
    ("method", false, method),
    ("$", false, quote_node),
    ("eva", false, eva),
    ("eval", false, eval),
    ("reify", false, reify),
    ("litify", false, litify),
    ("quote", false, quote),
    ("litword", false, litword),
    ("word", false, word),
    ("clone", false, clone),
    ("root", false, root),
    ("activation", false, activation),
    ("blockActivation", false, block_activation),
    ("locals", true, locals),
    ("outer", true, outer),
    ("caller", true, caller),
    ("parent", true, parent),
    ("node", false, node),
    ("self", false, receiver),
    (";", false, cascade),
    ("tag:", true, tag),
    ("tag?", true, has_tag),
    ("tags", true, tags),
    ("tags:", true, set_tags),
    ("type", true, type_of),
];

fn bind(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let value = spry.arg()?;
    let word = spry.raw_infix();
    spry.bind(&word, value.clone())?;
    Ok(value)
}

fn assign(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let value = spry.arg()?;
    let word = spry.raw_infix();
    spry.assign(&word, value.clone())?;
    Ok(value)
}

fn set(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let value = spry.arg()?;
    let word = spry.infix_arg()?;
    spry.bind(&word, value.clone())?;
    Ok(value)
}

fn is_set(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let word = spry.raw_infix();
    Ok(Value::Bool(spry.lookup(&word.key())?.is_some()))
}

fn is_nil(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Bool(matches!(spry.infix_arg()?, Value::Nil)))
}

/// The most nodes `==` compares before it gives up.
const MAX_COMPARED: usize = 10_000_000;

/// `==` as the reference has it: numbers across int and float, strings, booleans, blocks by
/// their nodes, words by name, nil with anything; other pairs are an error.
pub(crate) fn equals(a: &Value, b: &Value) -> EvalResult<bool> {
    let mut work = vec![(a.clone(), b.clone())];
    let mut compared = 0usize;
    while let Some((a, b)) = work.pop() {
        let (a, b) = (a.unboxed(), b.unboxed());
        // Two cyclic blocks (`b add: b`) would be compared forever.
        compared += 1;
        if compared > MAX_COMPARED {
            return Err(EvalError::runtime(
                "== compares more than 10,000,000 nodes: the blocks are cyclic or too large",
            ));
        }
        let same = match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => {
                (*x as f64) == *y
            }
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Str(x), Value::Str(y)) => *x.bytes.borrow() == *y.bytes.borrow(),
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Nil, Value::Nil) => true,
            (_, Value::Nil) | (Value::Nil, _) => false,
            (Value::Word(x), other) => matches!(other, Value::Word(y) if x.name == y.name),
            (Value::Block(x), other) => match other {
                Value::Block(y) if Rc::ptr_eq(x, y) => true,
                Value::Block(y) => {
                    let (x, y) = (x.items.borrow(), y.items.borrow());
                    if x.len() != y.len() {
                        false
                    } else {
                        work.extend(x.iter().cloned().zip(y.iter().cloned()));
                        true
                    }
                }
                _ => false,
            },
            _ if a.identity() != 0 && a.identity() == b.identity() => true,
            (Value::Map(_), _) | (Value::Paren(_), _) | (Value::Curly(_), _) => false,
            _ => {
                return Err(EvalError::runtime(format!(
                    "cannot compare {} == {}",
                    short(&a),
                    short(&b)
                )));
            }
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

fn equal(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let a = spry.infix_arg()?;
    let b = spry.arg()?;
    Ok(Value::Bool(equals(&a, &b)?))
}

fn not_equal(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let a = spry.infix_arg()?;
    let b = spry.arg()?;
    Ok(Value::Bool(!equals(&a, &b)?))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        // Literal words are one object per name in the reference.
        (Value::Word(x), Value::Word(y))
            if x.kind == WordKind::Literal && y.kind == WordKind::Literal =>
        {
            x.name == y.name
        }
        _ => a.identity() != 0 && a.identity() == b.identity(),
    }
}

fn identical(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let a = spry.infix_arg()?;
    let b = spry.arg()?;
    Ok(Value::Bool(same(&a, &b)))
}

fn not_identical(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let a = spry.infix_arg()?;
    let b = spry.arg()?;
    Ok(Value::Bool(!same(&a, &b)))
}

fn concat(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let a = spry.infix_arg()?;
    let b = spry.arg()?;
    match (&a, &b) {
        (Value::Str(x), Value::Str(y)) => {
            let mut bytes = x.bytes.borrow().clone();
            bytes.extend_from_slice(&y.bytes.borrow());
            Ok(Value::str(bytes))
        }
        (Value::Block(x) | Value::Paren(x) | Value::Curly(x), _) => {
            let mut items = x.items.borrow().clone();
            items.extend(seq(",", &b)?.items.borrow().iter().cloned());
            let s = Seq::new(items);
            Ok(match a {
                Value::Block(_) => Value::Block(s),
                Value::Paren(_) => Value::Paren(s),
                _ => Value::Curly(s),
            })
        }
        _ => Err(EvalError::runtime(format!(
            "cannot evaluate {} , {}",
            short(&a),
            short(&b)
        ))),
    }
}

fn print(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::str(form(&spry.infix_arg()?)))
}

fn as_float(spry: &mut Interp<'_>) -> EvalResult<Value> {
    match spry.infix_arg()? {
        Value::Int(i) => Ok(Value::Float(i as f64)),
        Value::Float(f) => Ok(Value::Float(f)),
        other => Err(expected("asFloat", "a number", &other)),
    }
}

fn as_int(spry: &mut Interp<'_>) -> EvalResult<Value> {
    match spry.infix_arg()? {
        Value::Int(i) => Ok(Value::Int(i)),
        Value::Float(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(Value::Int(f.round() as i64)),
        other => Err(expected("asInt", "a number that fits an integer", &other)),
    }
}

fn serialize(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::str(repr(&spry.arg()?)))
}

fn parse(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let text = super::bytes("parse", &spry.arg()?)?;
    let seq = read_source("parse", &text, 0)?;
    let last = seq.items.borrow().last().cloned();
    last.ok_or_else(|| EvalError::runtime("parse: the string holds no node"))
}

fn size(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.infix_arg()?;
    let n = match &v {
        Value::Str(s) => s.bytes.borrow().len(),
        Value::Map(m) => m.len(),
        other => seq("size", other)?.len(),
    };
    Ok(Value::Int(n as i64))
}

fn is_empty(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.infix_arg()?;
    let empty = match &v {
        Value::Str(s) => s.bytes.borrow().is_empty(),
        Value::Map(m) => m.is_empty(),
        other => seq("empty?", other)?.is_empty(),
    };
    Ok(Value::Bool(empty))
}

fn at(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let k = spry.arg()?;
    match &c {
        Value::Map(m) => Ok(spry.map_get(m, &k.key())?.unwrap_or_default()),
        // A string's byte at an index, as a one-byte string (indices count bytes, as `size`
        // does): not the reference VM's, but spry-src's string code reads strings this way.
        Value::Str(s) => {
            let bytes = s.bytes.borrow();
            let i = index("at:", int("at:", &k)?, bytes.len())?;
            Ok(Value::str(vec![bytes[i]]))
        }
        other => {
            let s = seq("at:", other)?;
            let i = index("at:", int("at:", &k)?, s.len())?;
            Ok(s.get(i).unwrap_or_default())
        }
    }
}

fn at_put(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let k = spry.arg()?;
    let v = spry.arg()?;
    match &c {
        Value::Map(m) => m.set(k.key(), k, v),
        other => {
            let s = seq("at:put:", other)?;
            let i = index("at:put:", int("at:put:", &k)?, s.len())?;
            s.edit()[i] = v;
        }
    }
    Ok(c)
}

fn get(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let k = spry.raw_arg()?;
    let m = map("get:", &c)?.clone();
    Ok(spry.map_get(&m, &k.key())?.unwrap_or_default())
}

fn set_to(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let k = spry.raw_arg()?;
    let v = spry.arg()?;
    map("set:to:", &c)?.set(k.key(), k, v);
    Ok(c)
}

fn contains(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let k = spry.arg()?;
    match &c {
        Value::Map(m) => Ok(Value::Bool(m.contains(&k.key()))),
        other => {
            let items = seq("contains:", other)?.items.borrow().clone();
            for item in &items {
                if equals(item, &k).unwrap_or(false) {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
    }
}

fn add(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let v = spry.arg()?;
    seq("add:", &c)?.edit().push(v);
    Ok(c)
}

fn remove_last(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    if seq("removeLast", &c)?.edit().pop().is_none() {
        return Err(EvalError::runtime("removeLast: the block is empty"));
    }
    Ok(c)
}

fn remove_first(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let s = seq("removeFirst", &c)?;
    if s.is_empty() {
        return Err(EvalError::runtime("removeFirst: the block is empty"));
    }
    s.edit().remove(0);
    Ok(c)
}

fn remove_at(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let k = spry.arg()?;
    match &c {
        Value::Map(m) => m.remove(&k.key()),
        other => {
            let s = seq("removeAt:", other)?;
            let i = index("removeAt:", int("removeAt:", &k)?, s.len())?;
            s.edit().remove(i);
        }
    }
    Ok(c)
}

fn copy_from_to(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = spry.infix_arg()?;
    let from = int("copyFrom:to:", &spry.arg()?)?;
    let to = int("copyFrom:to:", &spry.arg()?)?;
    let range = |len: usize| -> EvalResult<std::ops::Range<usize>> {
        // An end before the start is the empty range, wherever they are, as in the reference
        // (`s copyFrom: 0 to: (s size - 1)` on an empty `s`).
        if to < from {
            return Ok(0..0);
        }
        let start = usize::try_from(from).ok().filter(|&s| s <= len);
        let end = usize::try_from(to).ok().filter(|&e| e < len);
        match (start, end) {
            (Some(s), Some(e)) if s <= e + 1 => Ok(s..e + 1),
            _ => Err(EvalError::runtime(format!(
                "copyFrom:to: {from} to {to} is out of bounds (size {len})"
            ))),
        }
    };
    let result = match &c {
        Value::Str(s) => {
            let bytes = s.bytes.borrow();
            Value::str(bytes[range(bytes.len())?].to_vec())
        }
        Value::Block(s) | Value::Paren(s) | Value::Curly(s) => {
            let items = s.items.borrow();
            let part = Seq::new(items[range(items.len())?].to_vec());
            match &c {
                Value::Block(_) => Value::Block(part),
                Value::Paren(_) => Value::Paren(part),
                _ => Value::Curly(part),
            }
        }
        other => return Err(expected("copyFrom:to:", "a string or a block", other)),
    };
    if let (Some(from), Some(to)) = (c.tags_slot(), result.tags_slot()) {
        *to.borrow_mut() = from.borrow().clone();
    }
    Ok(result)
}

fn key(spry: &mut Interp<'_>) -> EvalResult<Value> {
    match spry.infix_arg()? {
        Value::Binding(b) => Ok(b.0.clone()),
        other => Err(expected("key", "a binding", &other)),
    }
}

fn value(spry: &mut Interp<'_>) -> EvalResult<Value> {
    match spry.infix_arg()? {
        Value::Binding(b) => Ok(b.1.clone()),
        other => Err(expected("value", "a binding", &other)),
    }
}

fn closure(spry: &mut Interp<'_>, word: &str) -> EvalResult<Rc<Closure>> {
    let body = spry.arg()?;
    let body = match &body {
        Value::Block(s) => s.copy(),
        other => return Err(expected(word, "a block", other)),
    };
    Ok(Rc::new(Closure::new(body, Some(spry.current.clone()))))
}

fn func(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Func(closure(spry, "func")?))
}

fn method(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Method(closure(spry, "method")?))
}

fn quote_node(spry: &mut Interp<'_>) -> EvalResult<Value> {
    spry.raw_arg()
}

fn eva(spry: &mut Interp<'_>) -> EvalResult<Value> {
    spry.arg()
}

fn eval(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.arg()?;
    spry.eval(&v)
}

fn reify(spry: &mut Interp<'_>) -> EvalResult<Value> {
    match spry.arg()? {
        Value::Word(w) => {
            let text = match &w.module {
                Some(m) => format!("{m}::{}", w.name),
                None => w.name.to_string(),
            };
            Ok(Value::Word(Rc::new(word_from_text(&text))))
        }
        other => Err(expected("reify", "a literal word", &other)),
    }
}

/// A word from its spelling, its kind read from its sigils as the parser would.
fn word_from_text(text: &str) -> super::super::value::WordObj {
    let w = crate::syntax::Word::new(text);
    match Value::word(w.kind(), w.name()) {
        Value::Word(rc) => Rc::try_unwrap(rc).unwrap_or_else(|rc| {
            super::super::value::WordObj::new(rc.kind, rc.name.clone(), rc.module.clone(), rc.sym)
        }),
        _ => super::super::value::WordObj::new(
            WordKind::Eval,
            text.into(),
            None,
            super::super::value::Sym::of(text),
        ),
    }
}

fn litify(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.arg()?;
    Ok(Value::word(WordKind::Literal, &repr(&v)))
}

fn quote(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.raw_arg()?;
    Ok(Value::word(WordKind::Literal, &repr(&v)))
}

fn litword(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let text = super::bytes("litword", &spry.arg()?)?;
    Ok(Value::word(
        WordKind::Literal,
        &String::from_utf8_lossy(&text),
    ))
}

fn word(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let text = super::bytes("word", &spry.arg()?)?;
    let text = String::from_utf8_lossy(&text);
    if text.is_empty() {
        return Err(EvalError::runtime("word: the string is empty"));
    }
    Ok(Value::Word(Rc::new(word_from_text(&text))))
}

fn clone(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(match spry.arg()? {
        Value::Str(s) => Value::str(s.bytes.borrow().clone()),
        Value::Block(s) => Value::Block(s.copy()),
        Value::Paren(s) => Value::Paren(s.copy()),
        Value::Curly(s) => Value::Curly(s.copy()),
        Value::Map(m) => Value::Map(m.copy()),
        other => other,
    })
}

fn root(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Map(spry.root.clone()))
}

fn activation(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Activation(spry.current.clone()))
}

fn block_activation(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(skip_parens_outer(&spry.current).map_or(Value::Nil, Value::Activation))
}

fn frame(word: &str, v: &Value) -> EvalResult<Rc<Frame>> {
    match v {
        Value::Activation(f) => Ok(f.clone()),
        other => Err(expected(word, "an activation", other)),
    }
}

fn locals(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let f = frame("locals", &spry.infix_arg()?)?;
    if f.kind == FrameKind::Paren {
        return Ok(Value::Nil);
    }
    Ok(Value::Map(f.locals_or_new()))
}

fn outer(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let f = frame("outer", &spry.infix_arg()?)?;
    let home = skip_parens_outer(&f);
    let up = home
        .as_ref()
        .and_then(|h| h.outer_frame().and_then(skip_parens_outer));
    Ok(up.map_or(Value::Nil, Value::Activation))
}

fn caller(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let f = frame("caller", &spry.infix_arg()?)?;
    let up = skip_parens_caller(&f)
        .and_then(|h| h.caller())
        .and_then(|p| skip_parens_caller(&p));
    Ok(up.map_or(Value::Nil, Value::Activation))
}

fn parent(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let f = frame("parent", &spry.infix_arg()?)?;
    Ok(f.caller().map_or(Value::Nil, Value::Activation))
}

fn node(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let source = super::super::frame::arg_source(&spry.current);
    Ok(source.map_or(Value::Nil, |f| f.last.borrow().clone()))
}

fn receiver(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(spry.current.receiver.borrow().clone())
}

fn cascade(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(spry.last_self.clone())
}

fn tag_key(v: &Value) -> Value {
    match v {
        Value::Word(w) if w.kind == WordKind::Literal => v.clone(),
        other => Value::word(WordKind::Literal, &repr(other)),
    }
}

/// The tags slot of `target`; a value that has none is boxed with tags of its own, and the
/// word it came from (`x tag: 'num`) is rebound to the box, as the reference VM tags the
/// very node a word refers to.
fn tag_target(spry: &mut Interp<'_>, word: &str) -> EvalResult<Value> {
    let raw = spry.current.last.borrow().clone();
    let target = spry.infix_arg_tagged()?;
    if target.tags_slot().is_some() {
        return Ok(target);
    }
    if matches!(
        target,
        Value::Activation(_) | Value::Prim(_) | Value::Binding(_)
    ) {
        return Err(expected(word, "a value that can carry tags", &target));
    }
    let boxed = Value::Boxed(Rc::new(Boxed {
        value: target,
        tags: std::cell::RefCell::new(None),
    }));
    if let Value::Word(w) = &raw
        && matches!(w.kind, WordKind::Eval | WordKind::Get)
    {
        spry.assign(&raw, boxed.clone())?;
    }
    Ok(boxed)
}

fn tag(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let target = tag_target(spry, "tag:")?;
    // The tag's name first: it may be printed from the very block the tags live in.
    let t = tag_key(&spry.arg()?);
    if let Some(slot) = target.tags_slot() {
        let block = slot
            .borrow_mut()
            .get_or_insert_with(|| Value::block(Vec::new()))
            .clone();
        if let Some(s) = block.seq() {
            s.edit().push(t);
        }
    }
    Ok(target)
}

fn has_tag(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let target = spry.infix_arg_tagged()?;
    let t = tag_key(&spry.arg()?);
    let Some(Some(block)) = target.tags_slot().map(|s| s.borrow().clone()) else {
        return Ok(Value::Bool(false));
    };
    let found = block
        .seq()
        .is_some_and(|s| s.items.borrow().iter().any(|x| x.key() == t.key()));
    Ok(Value::Bool(found))
}

fn tags(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let target = spry.infix_arg_tagged()?;
    Ok(target
        .tags_slot()
        .and_then(|s| s.borrow().clone())
        .unwrap_or_else(|| Value::block(Vec::new())))
}

fn set_tags(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let target = tag_target(spry, "tags:")?;
    let t = spry.arg()?;
    if !matches!(t, Value::Block(_)) {
        return Err(expected("tags:", "a block", &t));
    }
    if let Some(slot) = target.tags_slot() {
        *slot.borrow_mut() = Some(t);
    }
    Ok(target)
}

fn type_of(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.infix_arg()?;
    Ok(Value::word(WordKind::Literal, v.type_name()))
}
