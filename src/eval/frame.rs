//! Activations: one per running block, paren, curly, function or method, linked to their caller
//! (`parent`) and, for functions, to the activation they were made in (`outer`). As in the
//! reference VM they live on the heap (a closure keeps its maker's activation alive) and Spry
//! code can reach them (`activation`, `caller`, `locals`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::value::{MapObj, Seq, Value, WordObj};
use crate::syntax::WordKind;

/// What kind of code an activation runs; it decides where names are looked up and bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The top level: its locals are the root map.
    Root,
    /// A block run by `do`, `then:` and the like: locals of its own, looks up through its caller.
    Block,
    /// A paren: no locals; binds and looks up in the activation around it.
    Paren,
    /// A curly: its locals become the map it evaluates to.
    Curly,
    /// A function or method: looks up through the activation it was made in.
    Func,
}

/// An activation record.
#[derive(Debug)]
pub struct Frame {
    /// What it runs.
    pub kind: FrameKind,
    /// The code.
    pub body: Rc<Seq>,
    /// The next node to evaluate.
    pub pos: Cell<usize>,
    /// The last value (or, before a method, the unevaluated node to its left).
    pub last: RefCell<Value>,
    /// The receiver of the running method (inherited by blocks and functions it runs).
    pub receiver: RefCell<Value>,
    /// Named arguments and locals, made on first binding.
    pub locals: RefCell<Option<Rc<MapObj>>>,
    /// Set by `^`: stop, and make the caller stop too unless this is a function.
    pub returned: Cell<bool>,
    /// The caller, for every activation but a function's (see [`Frame::caller`]).
    pub parent: Option<Rc<Frame>>,
    /// A function's caller: let go when the function returns, so that a closure it made and
    /// returned does not keep its caller's activation (and the closures bound there) alive.
    func_caller: RefCell<Option<Rc<Frame>>>,
    /// For a function: the activation it was made in.
    pub outer: Option<Rc<Frame>>,
    /// The block `throw` runs (`catcher:`).
    pub catcher: RefCell<Option<Value>>,
    /// Values a primitive hands a block as its arguments (`do:`, `to:do:`), last first.
    pub feed: RefCell<Option<Vec<Value>>>,
}

/// Where an activation keeps its caller: a function in `func_caller` (let go of when it
/// returns), any other kind as its fixed `parent`.
fn split_caller(
    kind: FrameKind,
    caller: Option<Rc<Frame>>,
) -> (Option<Rc<Frame>>, Option<Rc<Frame>>) {
    if kind == FrameKind::Func {
        (None, caller)
    } else {
        (caller, None)
    }
}

impl Frame {
    /// A new activation of `body`.
    pub fn new(
        kind: FrameKind,
        body: Rc<Seq>,
        parent: Option<Rc<Frame>>,
        outer: Option<Rc<Frame>>,
        receiver: Value,
        locals: Option<Rc<MapObj>>,
    ) -> Frame {
        let (parent, func_caller) = split_caller(kind, parent);
        Frame {
            kind,
            body,
            pos: Cell::new(0),
            last: RefCell::new(Value::Nil),
            receiver: RefCell::new(receiver),
            locals: RefCell::new(locals),
            returned: Cell::new(false),
            parent,
            func_caller: RefCell::new(func_caller),
            outer,
            catcher: RefCell::new(None),
            feed: RefCell::new(None),
        }
    }

    /// The caller (none once a function has returned).
    #[inline]
    pub fn caller(&self) -> Option<Rc<Frame>> {
        match &self.parent {
            Some(p) => Some(p.clone()),
            None => self.func_caller.borrow().clone(),
        }
    }

    /// Lets go of a finished function's caller.
    pub fn detach_caller(&self) {
        let taken = self.func_caller.borrow_mut().take();
        drop(taken);
    }

    /// Makes a pooled activation new again: `kind` running `body`, the rest as [`Frame::new`].
    #[inline]
    pub fn reuse(
        &mut self,
        kind: FrameKind,
        body: Rc<Seq>,
        parent: Option<Rc<Frame>>,
        outer: Option<Rc<Frame>>,
        receiver: Value,
    ) {
        let (parent, func_caller) = split_caller(kind, parent);
        self.kind = kind;
        self.body = body;
        self.pos.set(0);
        self.receiver = RefCell::new(receiver);
        self.parent = parent;
        self.func_caller = RefCell::new(func_caller);
        self.outer = outer;
    }

    /// Lets go of everything a finished activation holds, so it can wait in a pool; gives its
    /// locals back.
    #[inline]
    pub fn clear(&mut self, empty: Rc<Seq>) -> Option<Rc<MapObj>> {
        self.body = empty;
        *self.last.get_mut() = Value::Nil;
        *self.receiver.get_mut() = Value::Nil;
        self.returned.set(false);
        self.parent = None;
        *self.func_caller.get_mut() = None;
        self.outer = None;
        *self.catcher.get_mut() = None;
        *self.feed.get_mut() = None;
        self.locals.get_mut().take()
    }

    /// The next node, advancing.
    #[inline]
    pub fn next_node(&self) -> Option<Value> {
        let pos = self.pos.get();
        let node = self.body.get(pos)?;
        self.pos.set(pos + 1);
        Some(node)
    }

    /// The next node when it is a word that may name a method (a plain or a module word).
    /// A word that `=` or `:=` follows is being bound, not called: so a local may be named
    /// like a method (`values = newBlock`, `sum := 0`), which the reference would call.
    #[inline]
    pub fn peek_word(&self) -> Option<Rc<WordObj>> {
        let items = self.body.items.borrow();
        let pos = self.pos.get();
        match items.get(pos) {
            Some(Value::Word(w)) if matches!(w.kind, WordKind::Eval | WordKind::Module) => {
                match items.get(pos + 1) {
                    Some(Value::Word(next))
                        if next.kind == WordKind::Eval && matches!(&*next.name, "=" | ":=") =>
                    {
                        None
                    }
                    _ => Some(w.clone()),
                }
            }
            _ => None,
        }
    }

    /// The next node, not advancing.
    pub fn peek_node(&self) -> Option<Value> {
        self.body.get(self.pos.get())
    }

    /// Where lookups continue: a function's maker, anything else's caller.
    #[inline]
    pub fn outer_frame(&self) -> Option<&Rc<Frame>> {
        if self.kind == FrameKind::Func {
            self.outer.as_ref()
        } else {
            self.parent.as_ref()
        }
    }

    /// This activation's locals, made if it has none yet (a paren has none of its own).
    pub fn locals_or_new(&self) -> Rc<MapObj> {
        self.locals
            .borrow_mut()
            .get_or_insert_with(MapObj::new)
            .clone()
    }
}

/// The first activation at or above `frame` (by `outer`) that is not a paren.
pub fn skip_parens_outer(frame: &Rc<Frame>) -> Option<Rc<Frame>> {
    let mut at = Some(frame.clone());
    while let Some(f) = at.as_ref().filter(|f| f.kind == FrameKind::Paren) {
        at = f.outer_frame().cloned();
    }
    at
}

/// The first activation at or above `frame` (by caller) that is not a paren.
pub fn skip_parens_caller(frame: &Rc<Frame>) -> Option<Rc<Frame>> {
    let mut at = Some(frame.clone());
    while let Some(f) = at.as_ref().filter(|f| f.kind == FrameKind::Paren) {
        at = f.caller();
    }
    at
}

/// The caller of the nearest non-paren activation (a paren or not): where arguments come from.
pub fn arg_source(frame: &Rc<Frame>) -> Option<Rc<Frame>> {
    skip_parens_caller(frame)?.caller()
}
