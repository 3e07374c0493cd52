//! From the syntax layer's semantic view ([`Ast`]) to values: the code the evaluator runs.
//! Keyword messages arrive joined (`at:put: 1 2`); every node keeps its byte offset so that an
//! error can name a line and column. Iterative: nesting depth costs heap, never Rust stack.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::error::{ErrorKind, EvalError, Location};
use super::value::{Origin, Seq, Value};
use crate::syntax::{Ast, AstList, AstNode, CompositeKind, parse};

/// Parses `text` (named `name` in messages) into the block of its top-level nodes.
///
/// # Errors
/// The first syntax error, with its location.
pub fn read_source(name: &str, text: &[u8], base: u32) -> Result<Rc<Seq>, EvalError> {
    let parsed = parse(text.to_vec());
    let origin = Rc::new(Origin {
        name: name.into(),
        text: text.into(),
        base,
    });
    if let Some(first) = parsed.errors.first() {
        let mut e = EvalError::new(ErrorKind::Syntax, first.message.clone());
        e.location = Some(Location::of(&origin, base + first.span.start as u32));
        return Err(e);
    }
    let ast = Ast::from_tree(&parsed.tree);
    Ok(to_seq(&ast, ast.root(), &origin))
}

struct Open<'a> {
    list: AstList<'a>,
    next: usize,
    kind: CompositeKind,
    items: Vec<Value>,
    offsets: Vec<u32>,
}

fn to_seq(_ast: &Ast, root: AstList<'_>, origin: &Rc<Origin>) -> Rc<Seq> {
    let base = origin.base;
    let mut stack = vec![Open {
        list: root,
        next: 0,
        kind: CompositeKind::Block,
        items: Vec::with_capacity(root.len()),
        offsets: Vec::with_capacity(root.len()),
    }];
    loop {
        let Some(top) = stack.last_mut() else {
            return Seq::new(Vec::new());
        };
        let Some(node) = top.list.get(top.next) else {
            let Some(done) = stack.pop() else {
                return Seq::new(Vec::new());
            };
            let seq = Rc::new(Seq {
                items: RefCell::new(done.items),
                pos: Cell::new(0),
                tags: RefCell::new(None),
                origin: Some(origin.clone()),
                offsets: done.offsets.into(),
                compiled: Cell::new(false),
            });
            match stack.last_mut() {
                Some(parent) => parent.items.push(match done.kind {
                    CompositeKind::Block => Value::Block(seq),
                    CompositeKind::Paren => Value::Paren(seq),
                    CompositeKind::Curly => Value::Curly(seq),
                }),
                None => return seq,
            }
            continue;
        };
        top.next += 1;
        top.offsets.push(base + node.span().start as u32);
        let value = match node.node() {
            AstNode::Integer(i) => Value::Int(i),
            AstNode::Float(f) => Value::Float(f),
            AstNode::String(s) => Value::str(s.into_vec()),
            AstNode::Word(w) => Value::word(w.kind(), w.name()),
            AstNode::Composite(kind, _) => {
                let list = node.children();
                stack.push(Open {
                    list,
                    next: 0,
                    kind,
                    items: Vec::with_capacity(list.len()),
                    offsets: Vec::with_capacity(list.len()),
                });
                continue;
            }
        };
        top.items.push(value);
    }
}
