//! Polymorphic methods: `polymethod [m1 m2 ...]` runs the first method whose tags the receiver
//! shares; `[tag ...] -> [body]` makes a tagged method.

use std::rc::Rc;

use super::super::value::{Closure, Value};
use super::super::{EvalResult, Interp};
use super::expected;

pub(super) const PRIMITIVES: super::Table =
    &[("polymethod", false, polymethod), ("->", true, arrow)];

fn polymethod(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let methods = spry.arg()?;
    let Value::Block(s) = &methods else {
        return Err(expected("polymethod", "a block of methods", &methods));
    };
    Ok(Value::Poly(Rc::new(Closure::new(
        s.copy(),
        Some(spry.current.clone()),
    ))))
}

fn arrow(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let tags = spry.infix_arg()?;
    let body = spry.arg()?;
    let (Value::Block(t), Value::Block(b)) = (&tags, &body) else {
        return Err(expected("->", "a block of tags and a block", &tags));
    };
    let body = b.copy();
    *body.tags.borrow_mut() = Some(Value::Block(t.clone()));
    Ok(Value::Method(Rc::new(Closure::new(
        body,
        Some(spry.current.clone()),
    ))))
}
