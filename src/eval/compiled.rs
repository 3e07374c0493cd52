//! Functions compiled, on their first call, into a tree of integer operations that runs without
//! activations: the recursive arithmetic the interpreter spends most of its time on
//! (`factorial = func [:n > 0 then: [n * factorial (n - 1)] else: [1]]`).
//!
//! Only a subset compiles: argument words first, then integer literals, the arguments, parens,
//! the integer operators and comparisons, `then:else:` and `else:then:` with literal blocks,
//! and calls of functions bound in the root map that compile too. Nothing in the subset has an
//! effect but its result, so a compiled run that meets anything else (a value that is not an
//! integer or a boolean, an overflow, the depth or step limit near, an interrupt) bails out
//! having changed nothing, and the interpreter runs the same call from the start, with its own
//! errors and limits. A compiled run that ends gives what the interpreter would: the same
//! value, the same steps counted, the same receiver left for a cascade (`last_self`).
//!
//! A compiled function stays valid while nothing it looked up changed: the definition epoch
//! (see [`definitions_epoch`]) and the code epoch (bumped when code a compiled function was
//! made from is edited in place, `$f body at: 0 put: ...`) are where it was checked last.
//!
//! **Architecture Invariant**: a compiled run has no effect before it ends. A bail at any point
//! leaves the interpreter where it was; that is what makes bailing out always correct.

use std::cell::{Cell, OnceCell};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};

use super::value::{
    Closure, IntOp, Key, MapObj, Prim, Seq, Sym, Value, WordObj, definitions_epoch,
};
use crate::syntax::WordKind;

/// Most arguments a compiled function takes.
pub(super) const MAX_ARGS: usize = 6;

/// Deepest nesting of expressions within one compiled body, and longest chain of functions
/// compiled through one another: both keep compiling, checking and running off Rust's stack.
const MAX_HEIGHT: usize = 48;

/// The depth the interpreter may reach within one body beyond its call, bounded from above
/// (each level of nesting below charges at least what the interpreter spends there).
pub(super) const DEPTH_MARGIN: usize = 3 * MAX_HEIGHT + 8;

/// Bails a function may take before it is left to the interpreter for good.
const MAX_BAILS: u32 = 16;

/// Compilations a function that would not compile gets (after definitions changed).
const MAX_TRIES: u8 = 3;

thread_local! {
    static CODE_EPOCH: Cell<u64> = const { Cell::new(1) };
}

/// Marks every compiled function stale: code one was made from is being changed in place.
pub(crate) fn code_changed() {
    CODE_EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
}

/// The epochs a compiled function is checked against: definitions, and code.
fn stamp() -> (u64, u64) {
    (definitions_epoch(), CODE_EPOCH.with(Cell::get))
}

/// A value a compiled run works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CVal {
    Int(i64),
    Bool(bool),
}

impl From<CVal> for Value {
    fn from(v: CVal) -> Value {
        match v {
            CVal::Int(i) => Value::Int(i),
            CVal::Bool(b) => Value::Bool(b),
        }
    }
}

/// A compiled run gave up; the interpreter takes the call over.
#[derive(Debug)]
pub(super) struct Bail;

enum Expr {
    Int(i64),
    /// An argument of the running function.
    Slot(u8),
    /// `receiver op argument`.
    Op(IntOp, Box<Expr>, Box<Expr>),
    /// `condition then:else: [a] [b]` (`else:then:` with its blocks swapped).
    If(Box<Expr>, Box<Body>, Box<Body>),
    Call(Weak<CFunc>, Box<[Expr]>),
    Paren(Box<Body>),
}

/// A body, block or paren: its statements, the last one's value its own.
struct Body {
    stmts: Box<[Expr]>,
    /// The steps the interpreter counts running it: one per turn of its node loop, and one
    /// for the turn that finds the end.
    steps: u64,
}

/// What a compiled function looked up in the root map, to check it still finds the same.
enum Dep {
    Prim(Sym, Rc<Prim>),
    Func(Sym, Weak<Closure>, Weak<CFunc>),
    /// Bound to no method (or to nothing).
    NotMethod(Sym),
}

/// A compiled function.
pub(crate) struct CFunc {
    arity: usize,
    body: OnceCell<Body>,
    deps: OnceCell<Box<[Dep]>>,
    /// The longest chain of compiled functions this one calls through.
    height: Cell<usize>,
    valid_at: Cell<(u64, u64)>,
    bails: Cell<u32>,
}

/// What a closure's compiled form is.
#[derive(Default)]
pub(crate) enum Jit {
    #[default]
    Untried,
    Ready(Rc<CFunc>),
    Failed {
        tries: u8,
        epoch: (u64, u64),
    },
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Jit::Untried => "Untried",
            Jit::Ready(_) => "Ready",
            Jit::Failed { .. } => "Failed",
        })
    }
}

/// The compiled form of `closure`, valid now, compiling it if it was not tried yet (or
/// definitions changed since it failed); none when it does not compile.
pub(super) fn prepare(root: &MapObj, closure: &Rc<Closure>) -> Option<Rc<CFunc>> {
    let now = stamp();
    let retry = match &*closure.jit.borrow() {
        Jit::Ready(cf) if cf.valid_at.get() == now => return Some(cf.clone()),
        Jit::Ready(_) | Jit::Untried => 0,
        Jit::Failed { tries, epoch } => {
            if *tries >= MAX_TRIES || *epoch == now {
                return None;
            }
            *tries
        }
    };
    if let Jit::Ready(cf) = &*closure.jit.borrow()
        && valid(root, cf, now)
    {
        return Some(cf.clone());
    }
    let mut compiler = Compiler {
        root,
        made: Vec::new(),
        chain: 0,
        nesting: 0,
    };
    match compiler.func(closure) {
        Some(cf) => {
            for (c, made) in compiler.made {
                made.valid_at.set(now);
                *c.jit.borrow_mut() = Jit::Ready(made);
            }
            Some(cf)
        }
        None => {
            *closure.jit.borrow_mut() = Jit::Failed {
                tries: retry.saturating_add(1),
                epoch: now,
            };
            None
        }
    }
}

/// Counts a bail of `closure`'s compiled form `cf`; too many, and it is not tried again.
pub(super) fn bailed(closure: &Closure, cf: &CFunc) {
    cf.bails.set(cf.bails.get() + 1);
    if cf.bails.get() >= MAX_BAILS {
        *closure.jit.borrow_mut() = Jit::Failed {
            tries: MAX_TRIES,
            epoch: stamp(),
        };
    }
}

/// The number of arguments a compiled function takes.
pub(super) fn arity(cf: &CFunc) -> usize {
    cf.arity
}

/// Whether `cf` still finds what it was compiled against (and so do the functions it calls).
fn valid(root: &MapObj, cf: &Rc<CFunc>, now: (u64, u64)) -> bool {
    if cf.valid_at.get() == now {
        return true;
    }
    if cf.valid_at.get().1 != now.1 {
        return false;
    }
    // Marked first: a function that calls itself is checked once.
    cf.valid_at.set(now);
    let ok = cf.deps.get().is_some_and(|deps| {
        deps.iter().all(|dep| match dep {
            Dep::Prim(sym, p) => matches!(
                root_get(root, *sym), Some(Value::Prim(q)) if Rc::ptr_eq(p, &q)
            ),
            Dep::NotMethod(sym) => {
                !sym.bound_outside_root() && !root_get(root, *sym).is_some_and(|v| v.is_method())
            }
            Dep::Func(sym, closure, callee) => {
                let Some(Value::Func(c)) = root_get(root, *sym) else {
                    return false;
                };
                if !std::ptr::eq(closure.as_ptr(), Rc::as_ptr(&c)) {
                    return false;
                }
                let Some(callee) = callee.upgrade() else {
                    return false;
                };
                let same = matches!(&*c.jit.borrow(), Jit::Ready(r) if Rc::ptr_eq(r, &callee));
                same && valid(root, &callee, now)
            }
        })
    });
    if !ok {
        cf.valid_at.set((0, 0));
    }
    ok
}

/// A root binding of a name no other map binds (else none: the name is looked up by walking).
fn root_get(root: &MapObj, sym: Sym) -> Option<Value> {
    if sym.bound_outside_root() {
        return None;
    }
    root.get(&Key::Word(sym))
}

// ---- compiling ----

/// An expression and its height (levels of nesting, for the limits).
struct Made {
    expr: Expr,
    height: usize,
}

/// What a method word names, among those that compile.
enum Method {
    Op(IntOp),
    /// `then:else:`, or `else:then:` when swapped.
    Cond {
        swapped: bool,
    },
}

/// What a word finds where the compiled function runs.
enum Found {
    Slot(u8),
    Prim(Rc<Prim>),
    Func(Rc<Closure>),
    /// Nothing, or a value that is not a method.
    Other,
}

/// One function's compilation: its arguments and what it looked up.
struct Scope {
    slots: Vec<Sym>,
    deps: Vec<Dep>,
    callees: usize,
}

struct Compiler<'a> {
    root: &'a MapObj,
    /// Functions compiled in this run, stored in their closures once all of them compiled.
    made: Vec<(Rc<Closure>, Rc<CFunc>)>,
    /// Functions being compiled through one another.
    chain: usize,
    /// Bodies and calls being compiled inside one another in the function at hand: bounded,
    /// so that code nested a million deep is left to the interpreter, not compiled by
    /// recursing as deep.
    nesting: usize,
}

impl Compiler<'_> {
    fn func(&mut self, closure: &Rc<Closure>) -> Option<Rc<CFunc>> {
        if let Some((_, cf)) = self.made.iter().find(|(c, _)| Rc::ptr_eq(c, closure)) {
            return Some(cf.clone());
        }
        if let Jit::Ready(cf) = &*closure.jit.borrow()
            && valid(self.root, cf, stamp())
        {
            return Some(cf.clone());
        }
        if self.chain >= MAX_HEIGHT {
            return None;
        }
        let seq = closure.body.clone();
        let items = seq.items.borrow();
        let slots = arguments(&items)?;
        let cf = Rc::new(CFunc {
            arity: slots.len(),
            body: OnceCell::new(),
            deps: OnceCell::new(),
            height: Cell::new(0),
            valid_at: Cell::new((0, 0)),
            bails: Cell::new(0),
        });
        self.made.push((closure.clone(), cf.clone()));
        let mut scope = Scope {
            slots,
            deps: Vec::new(),
            callees: 0,
        };
        self.chain += 1;
        let outer = std::mem::replace(&mut self.nesting, 0);
        let body = self.body(&seq, &items, &mut scope, true);
        self.nesting = outer;
        self.chain -= 1;
        let (body, _) = body?;
        if scope.callees >= MAX_HEIGHT {
            return None;
        }
        cf.height.set(scope.callees);
        cf.body.set(body).ok()?;
        cf.deps.set(scope.deps.into_boxed_slice()).ok()?;
        Some(cf)
    }

    /// A sequence of nodes as the interpreter's node loop runs them: a node followed by a
    /// method word is that method's receiver; a method word standing alone takes the value
    /// before it; anything else is evaluated as it stands (a function pulling its arguments).
    fn body(
        &mut self,
        seq: &Seq,
        items: &[Value],
        scope: &mut Scope,
        top: bool,
    ) -> Option<(Body, usize)> {
        self.nested(|c| c.body_here(seq, items, scope, top))
    }

    /// Runs `f` one level of nesting deeper, if the limit allows.
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.nesting >= MAX_HEIGHT {
            return None;
        }
        self.nesting += 1;
        let made = f(self);
        self.nesting -= 1;
        made
    }

    /// [`body`](Self::body) at the current nesting.
    fn body_here(
        &mut self,
        seq: &Seq,
        items: &[Value],
        scope: &mut Scope,
        top: bool,
    ) -> Option<(Body, usize)> {
        seq.compiled.set(true);
        let mut stmts: Vec<Made> = Vec::new();
        let mut turns = 0u64;
        let mut i = 0;
        while i < items.len() {
            turns += 1;
            let at = i;
            let node = &items[i];
            i += 1;
            let made = if let Some(method) = self.method_at(items, i, scope)? {
                let receiver = self.operand(node, at, top, scope)?;
                i += 1;
                self.apply(method, receiver, items, &mut i, scope)?
            } else if let Some(method) = self.method_word(node, items.get(i), scope)? {
                let receiver = stmts.pop()?;
                self.apply(method, receiver, items, &mut i, scope)?
            } else {
                self.pulled(node, at, top, items, &mut i, scope)?
            };
            if made.height > MAX_HEIGHT {
                return None;
            }
            stmts.push(made);
        }
        let height = stmts.iter().map(|m| m.height).max()? + 1;
        let stmts = stmts.into_iter().map(|m| m.expr).collect();
        Some((
            Body {
                stmts,
                steps: turns + 1,
            },
            height,
        ))
    }

    /// Whether the node at `i` is a word naming a method (one that compiles): `Some(None)`
    /// for any node that is not one; none when what it names cannot be compiled.
    fn method_at(
        &mut self,
        items: &[Value],
        i: usize,
        scope: &mut Scope,
    ) -> Option<Option<Method>> {
        match items.get(i) {
            Some(node @ Value::Word(_)) => self.method_word(node, items.get(i + 1), scope),
            _ => Some(None),
        }
    }

    /// [`method_at`](Self::method_at) of one node, `next` being the node after it.
    fn method_word(
        &mut self,
        node: &Value,
        next: Option<&Value>,
        scope: &mut Scope,
    ) -> Option<Option<Method>> {
        let Value::Word(w) = node else {
            return Some(None);
        };
        match w.kind {
            WordKind::Eval => {}
            WordKind::Module => return None,
            _ => return Some(None),
        }
        // A word that `=` or `:=` follows is being bound: nothing here binds.
        if let Some(Value::Word(n)) = next
            && n.kind == WordKind::Eval
            && matches!(&*n.name, "=" | ":=")
        {
            return None;
        }
        match self.find(w, scope)? {
            Found::Prim(p) if p.method => {
                if let Some(op) = p.int_op {
                    return Some(Some(Method::Op(op)));
                }
                match p.name {
                    "then:else:" => Some(Some(Method::Cond { swapped: false })),
                    "else:then:" => Some(Some(Method::Cond { swapped: true })),
                    _ => None,
                }
            }
            _ => Some(None),
        }
    }

    /// What `w` finds, recorded among the function's dependencies.
    fn find(&mut self, w: &WordObj, scope: &mut Scope) -> Option<Found> {
        if let Some(k) = scope.slots.iter().position(|s| *s == w.sym) {
            return Some(Found::Slot(u8::try_from(k).ok()?));
        }
        // A name some other map binds is found by walking activations: not compiled.
        if w.bound_outside_root() {
            return None;
        }
        Some(match root_get(self.root, w.sym) {
            Some(Value::Prim(p)) => {
                scope.deps.push(Dep::Prim(w.sym, p.clone()));
                Found::Prim(p)
            }
            Some(Value::Func(c)) => Found::Func(c),
            Some(v) if v.is_method() => return None,
            _ => {
                scope.deps.push(Dep::NotMethod(w.sym));
                Found::Other
            }
        })
    }

    /// A receiver or a node evaluated where it stands: an integer, an argument, a paren.
    fn operand(&mut self, node: &Value, at: usize, top: bool, scope: &mut Scope) -> Option<Made> {
        match node {
            Value::Int(i) => Some(Made {
                expr: Expr::Int(*i),
                height: 1,
            }),
            // An argument word where it stands at the head of the function: its value.
            Value::Word(w) if w.kind == WordKind::Arg && top && at < scope.slots.len() => {
                Some(Made {
                    expr: Expr::Slot(u8::try_from(at).ok()?),
                    height: 1,
                })
            }
            Value::Word(w) if w.kind == WordKind::Eval => match self.find(w, scope)? {
                Found::Slot(k) => Some(Made {
                    expr: Expr::Slot(k),
                    height: 1,
                }),
                _ => None,
            },
            Value::Paren(seq) => {
                let items = seq.items.borrow();
                let (body, height) = self.body(seq, &items, scope, false)?;
                Some(Made {
                    expr: Expr::Paren(Box::new(body)),
                    height: height + 1,
                })
            }
            _ => None,
        }
    }

    /// A node evaluated as an argument is (and as a statement): an operand, or a call of a
    /// function that pulls its own arguments from the nodes after it.
    fn pulled(
        &mut self,
        node: &Value,
        at: usize,
        top: bool,
        items: &[Value],
        i: &mut usize,
        scope: &mut Scope,
    ) -> Option<Made> {
        let Value::Word(w) = node else {
            return self.operand(node, at, top, scope);
        };
        if w.kind != WordKind::Eval {
            return self.operand(node, at, top, scope);
        }
        let closure = match self.find(w, scope)? {
            Found::Func(c) => c,
            Found::Slot(_) => return self.operand(node, at, top, scope),
            _ => return None,
        };
        self.nested(|c| c.call(w, &closure, items, i, scope))
    }

    /// A call of `closure` (what `w` found), pulling its arguments from the nodes at `i`.
    fn call(
        &mut self,
        w: &WordObj,
        closure: &Rc<Closure>,
        items: &[Value],
        i: &mut usize,
        scope: &mut Scope,
    ) -> Option<Made> {
        let callee = self.func(closure)?;
        scope.callees = scope.callees.max(callee.height.get() + 1);
        scope.deps.push(Dep::Func(
            w.sym,
            Rc::downgrade(closure),
            Rc::downgrade(&callee),
        ));
        let mut args = Vec::with_capacity(callee.arity);
        let mut height = 1;
        for _ in 0..callee.arity {
            let arg = items.get(*i)?;
            let arg_at = *i;
            *i += 1;
            let made = self.pulled(arg, arg_at, false, items, i, scope)?;
            height = height.max(made.height + 1);
            args.push(made.expr);
        }
        Some(Made {
            expr: Expr::Call(Rc::downgrade(&callee), args.into_boxed_slice()),
            height,
        })
    }

    /// A method applied to `receiver`, pulling its arguments from the nodes at `i`.
    fn apply(
        &mut self,
        method: Method,
        receiver: Made,
        items: &[Value],
        i: &mut usize,
        scope: &mut Scope,
    ) -> Option<Made> {
        match method {
            Method::Op(op) => {
                let node = items.get(*i)?;
                let at = *i;
                *i += 1;
                let arg = self.pulled(node, at, false, items, i, scope)?;
                Some(Made {
                    height: receiver.height.max(arg.height) + 1,
                    expr: Expr::Op(op, Box::new(receiver.expr), Box::new(arg.expr)),
                })
            }
            Method::Cond { swapped } => {
                let (Some(Value::Block(a)), Some(Value::Block(b))) =
                    (items.get(*i), items.get(*i + 1))
                else {
                    return None;
                };
                *i += 2;
                let (first, h1) = self.body(a, &a.items.borrow(), scope, false)?;
                let (second, h2) = self.body(b, &b.items.borrow(), scope, false)?;
                let (yes, no) = if swapped {
                    (second, first)
                } else {
                    (first, second)
                };
                Some(Made {
                    height: receiver.height.max(h1).max(h2) + 1,
                    expr: Expr::If(Box::new(receiver.expr), Box::new(yes), Box::new(no)),
                })
            }
        }
    }
}

/// The leading argument words of a function's body (plain `:x`, each name once, a few).
fn arguments(items: &[Value]) -> Option<Vec<Sym>> {
    let mut slots = Vec::new();
    for node in items {
        let Value::Word(w) = node else { break };
        if w.kind != WordKind::Arg {
            break;
        }
        if slots.contains(&w.sym) || slots.len() >= MAX_ARGS {
            return None;
        }
        slots.push(w.sym);
    }
    // An argument word further on would pull at a later point: not compiled.
    let later = items[slots.len()..]
        .iter()
        .any(|n| matches!(n, Value::Word(w) if matches!(w.kind, WordKind::Arg | WordKind::GetArg)));
    (!later).then_some(slots)
}

// ---- running ----

/// A compiled run: the steps and the receiver it leaves, and the limits it stays within.
pub(super) struct Exec<'a> {
    /// The interpreter's step count, as the run leaves it.
    pub steps: u64,
    max_steps: u64,
    depth_limit: usize,
    /// The receiver of the last method run, if any ran.
    pub last_self: Option<CVal>,
    interrupt: Option<&'a AtomicBool>,
    /// The epochs now: a function not checked against them is not run.
    now: (u64, u64),
}

impl<'a> Exec<'a> {
    /// A run starting at `steps`, bailing before `max_steps` or a depth within the margin of
    /// `max_depth`, and at a raised `interrupt`.
    pub fn new(
        steps: u64,
        max_steps: Option<u64>,
        max_depth: usize,
        interrupt: Option<&'a AtomicBool>,
    ) -> Exec<'a> {
        Exec {
            steps,
            max_steps: max_steps.unwrap_or(u64::MAX),
            depth_limit: max_depth.saturating_sub(DEPTH_MARGIN),
            last_self: None,
            interrupt,
            now: stamp(),
        }
    }

    /// Calls `f` with `args` at interpreter depth `depth`.
    pub fn call(&mut self, f: &CFunc, args: &[CVal], depth: usize) -> Result<CVal, Bail> {
        // A callee checked against the epochs now, or found stale: a check that failed half
        // way leaves callees it passed marked (`valid`), and a compilation that failed leaves
        // the stale function in its closure.
        if f.valid_at.get() != self.now
            || depth > self.depth_limit
            || self
                .interrupt
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            return Err(Bail);
        }
        let body = f.body.get().ok_or(Bail)?;
        self.body(body, args, depth + 2)
    }

    fn body(&mut self, body: &Body, locals: &[CVal], depth: usize) -> Result<CVal, Bail> {
        self.steps = self.steps.checked_add(body.steps).ok_or(Bail)?;
        if self.steps > self.max_steps {
            return Err(Bail);
        }
        let mut last = CVal::Bool(false);
        for stmt in &body.stmts {
            last = self.expr(stmt, locals, depth)?;
        }
        Ok(last)
    }

    fn expr(&mut self, expr: &Expr, locals: &[CVal], depth: usize) -> Result<CVal, Bail> {
        match expr {
            Expr::Int(i) => Ok(CVal::Int(*i)),
            Expr::Slot(k) => locals.get(usize::from(*k)).copied().ok_or(Bail),
            Expr::Op(op, a, b) => {
                let x = self.expr(a, locals, depth + 2)?;
                self.last_self = Some(x);
                let y = self.expr(b, locals, depth + 2)?;
                match (x, y) {
                    (CVal::Int(x), CVal::Int(y)) => int_op(*op, x, y),
                    _ => Err(Bail),
                }
            }
            Expr::If(c, yes, no) => {
                let v = self.expr(c, locals, depth + 2)?;
                self.last_self = Some(v);
                match v {
                    CVal::Bool(true) => self.body(yes, locals, depth + 3),
                    CVal::Bool(false) => self.body(no, locals, depth + 3),
                    CVal::Int(_) => Err(Bail),
                }
            }
            Expr::Call(f, args) => {
                let f = f.upgrade().ok_or(Bail)?;
                let mut values = [CVal::Bool(false); MAX_ARGS];
                for (slot, arg) in values.iter_mut().zip(args.iter()) {
                    *slot = self.expr(arg, locals, depth + 3)?;
                }
                self.call(&f, values.get(..args.len()).ok_or(Bail)?, depth)
            }
            Expr::Paren(body) => self.body(body, locals, depth + 2),
        }
    }
}

#[inline]
fn int_op(op: IntOp, x: i64, y: i64) -> Result<CVal, Bail> {
    Ok(match op {
        IntOp::Add => CVal::Int(x.checked_add(y).ok_or(Bail)?),
        IntOp::Sub => CVal::Int(x.checked_sub(y).ok_or(Bail)?),
        IntOp::Mul => CVal::Int(x.checked_mul(y).ok_or(Bail)?),
        IntOp::Lt => CVal::Bool(x < y),
        IntOp::Gt => CVal::Bool(x > y),
        IntOp::Le => CVal::Bool(x <= y),
        IntOp::Ge => CVal::Bool(x >= y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Interp, Options};

    /// Code nested far deeper than anything compiles (a hundred thousand parens, a hundred
    /// thousand calls each pulling the next) is left to the interpreter, and finding that out
    /// does not recurse as deep: on a thread of 8 MiB it would overflow.
    #[test]
    fn code_nested_a_hundred_thousand_deep_is_not_compiled_nor_walked_as_deep() {
        let handle = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(|| {
                let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
                let deep = 100_000;
                let parens = format!("f = func [:n {}n{}] $f", "(".repeat(deep), ")".repeat(deep));
                let calls = format!("g = func [:x x] h = func [:n {}n] $h", "g ".repeat(deep));
                [parens, calls].map(|code| match spry.eval_text("t", code.as_bytes()) {
                    Ok(Value::Func(c)) => prepare(&spry.root, &c).is_none(),
                    _ => false,
                })
            })
            .expect("a thread");
        assert_eq!(handle.join().expect("no overflow"), [true, true]);
    }
}
