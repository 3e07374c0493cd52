//! The evaluator: activations run their nodes left to right; a word bound to a method takes the
//! node to its left as its receiver; functions and primitives pull their arguments from the
//! code that follows them. The rules are those of Spry's reference VM (`spryvm`).

use std::io::Write;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::compiled::{self, CVal};
use super::error::{ErrorKind, EvalError, Location, MAX_TRACE};
use super::frame::{Frame, FrameKind, skip_parens_caller, skip_parens_outer};
use super::loader::Source;
use super::print::repr;
use super::read::read_source;
use super::value::{Closure, IntOp, Key, MapObj, Prim, PrimFn, Seq, Value, WordObj};
use super::{EvalResult, cycles, primitives};
use crate::syntax::WordKind;

/// Limits and controls of an evaluation.
#[derive(Clone, Debug)]
pub struct Options {
    /// Nested activations (and primitive calls) allowed before `stack overflow at depth N`.
    /// Each level takes up to about 2 KiB of Rust stack (up to 20 KiB unoptimized): run deep
    /// evaluations with [`run_with_stack`](super::run_with_stack), which fits 25,000 levels
    /// with room to spare.
    pub max_depth: usize,
    /// Nodes evaluated before the evaluation stops (for tests that must end); none by default.
    pub max_steps: Option<u64>,
    /// Raised (by a Ctrl-C handler), it stops the evaluation at the next node.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Whether functions of integer arithmetic are compiled on their first call (on by
    /// default; the results, errors, steps and limits are the same either way).
    pub compile: bool,
}

/// The default depth limit. Evaluation must run on a thread with [`STACK_SIZE`] bytes of stack
/// (see [`super::run_with_stack`]) for this depth to be reached before Rust's own limit.
pub const DEFAULT_MAX_DEPTH: usize = 10_000;

/// The stack the evaluation thread gets: room for [`DEFAULT_MAX_DEPTH`] with a wide margin.
pub const STACK_SIZE: usize = 1 << 30;

impl Default for Options {
    fn default() -> Options {
        Options {
            max_depth: DEFAULT_MAX_DEPTH,
            max_steps: None,
            interrupt: None,
            compile: true,
        }
    }
}

/// A Spry system: the root map, the modules list, the running activation, the output.
///
/// # Examples
/// ```
/// use spry_image::eval::{Interp, Options, repr};
/// let mut out = Vec::new();
/// let mut spry = Interp::new(Options::default(), Box::new(&mut out));
/// let value = spry.eval_text("example", b"x = 3 echo (x * 4) x + 1").unwrap();
/// assert_eq!(repr(&value), "4");
/// drop(spry);
/// assert_eq!(out, b"12\n");
/// ```
pub struct Interp<'o> {
    pub(crate) root: Rc<MapObj>,
    pub(crate) modules: Rc<Seq>,
    pub(crate) current: Rc<Frame>,
    pub(crate) root_frame: Rc<Frame>,
    pub(crate) last_self: Value,
    depth: usize,
    steps: u64,
    options: Options,
    builtin_count: usize,
    out: Box<dyn Write + 'o>,
    source: Option<Box<dyn Source + 'o>>,
    /// Finished activations and locals maps, kept for the next call instead of freed.
    frame_pool: Vec<Rc<Frame>>,
    map_pool: Vec<Rc<MapObj>>,
    /// Emptied argument vectors of finished activations, for the next block a loop runs.
    args_pool: Vec<Vec<Value>>,
    /// The body a pooled activation holds.
    empty: Rc<Seq>,
    /// Finished activations that a closure they made still holds (a possible cycle), looked at
    /// again once there are `sweep_at` of them.
    suspects: Vec<Weak<Frame>>,
    sweep_at: usize,
    /// Modules read lazily from the image so far: while there are none, a name no map but
    /// the root binds is looked up in the root map directly.
    lazy_modules: usize,
}

/// How many finished activations (and locals maps) wait for reuse at most.
const POOL: usize = 256;

/// Suspected cycles are looked at once this many have gathered (or twice the survivors).
const SWEEP_AT: usize = 1024;

impl<'o> Interp<'o> {
    /// A frame running `seq` as if in a module's curly (whose map is `map`), under the root:
    /// functions made there close over the module.
    fn module_frame(&self, seq: Rc<Seq>, map: Rc<MapObj>) -> Rc<Frame> {
        Rc::new(Frame::new(
            FrameKind::Curly,
            seq,
            Some(self.root_frame.clone()),
            None,
            Value::Nil,
            Some(map),
        ))
    }

    /// A system with every primitive and the prelude, writing `echo` and `probe` to `out`.
    pub fn new(options: Options, out: Box<dyn Write + 'o>) -> Interp<'o> {
        let root = MapObj::root();
        let modules = Seq::new(Vec::new());
        let root_frame = Rc::new(Frame::new(
            FrameKind::Root,
            Seq::new(Vec::new()),
            None,
            None,
            Value::Nil,
            Some(root.clone()),
        ));
        let mut spry = Interp {
            root,
            modules,
            current: root_frame.clone(),
            root_frame,
            last_self: Value::Nil,
            depth: 0,
            steps: 0,
            options,
            builtin_count: 0,
            out,
            source: None,
            frame_pool: Vec::new(),
            map_pool: Vec::new(),
            args_pool: Vec::new(),
            empty: Seq::new(Vec::new()),
            suspects: Vec::new(),
            sweep_at: SWEEP_AT,
            lazy_modules: 0,
        };
        spry.define("true", Value::Bool(true));
        spry.define("false", Value::Bool(false));
        spry.define("nil", Value::Nil);
        spry.define("modules", Value::Block(spry.modules.clone()));
        primitives::install(&mut spry);
        // The prelude is ours and tested; should it fail, the primitives still stand.
        let _ = spry.eval_text("prelude", primitives::PRELUDE.as_bytes());
        spry.steps = 0;
        spry.builtin_count = spry.root.len();
        spry
    }

    /// Reads module definitions from `source` on first use (`Foo::bar`, and unqualified words
    /// of modules already loaded).
    pub fn set_source(&mut self, source: Box<dyn Source + 'o>) {
        self.source = Some(source);
    }

    /// Binds `name` in the root map.
    pub fn define(&mut self, name: &str, value: Value) {
        self.root
            .set(Key::word(name), Value::word(WordKind::Eval, name), value);
    }

    pub(crate) fn define_prim(
        &mut self,
        name: &'static str,
        method: bool,
        f: PrimFn,
        int_op: Option<IntOp>,
    ) {
        self.define(
            name,
            Value::Prim(Rc::new(Prim {
                name,
                method,
                f,
                int_op,
            })),
        );
    }

    /// Evaluates source text at the top level (named `name` in errors) and gives the last value.
    ///
    /// # Errors
    /// A syntax error, or any Spry error, with its position and call chain.
    pub fn eval_text(&mut self, name: &str, text: &[u8]) -> EvalResult<Value> {
        let seq = read_source(name, text, 0)?;
        self.eval_seq(seq)
    }

    /// Evaluates source text as if inside module `module`'s curly: its bindings go into the
    /// module (read from the image, or made if there is none), and it sees the module's words.
    ///
    /// # Errors
    /// A syntax error, or any Spry error.
    pub fn eval_in_module(&mut self, module: &str, name: &str, text: &[u8]) -> EvalResult<Value> {
        let seq = read_source(name, text, 0)?;
        let map = match self.lookup(&Key::word(module))? {
            Some(Value::Map(map)) => map,
            _ => match self.load_module(module)? {
                Some(map) => map,
                None => {
                    let map = MapObj::new();
                    self.define(module, Value::Map(map.clone()));
                    self.modules
                        .items
                        .borrow_mut()
                        .push(Value::Map(map.clone()));
                    map
                }
            },
        };
        let frame = self.module_frame(seq, map);
        self.depth = 0;
        self.current = frame.clone();
        let result = self.run_frame(frame);
        self.current = self.root_frame.clone();
        self.root_frame.returned.set(false);
        result
    }

    /// The nodes evaluated so far (what [`Options::max_steps`] limits).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The names bound at the top level since the system was made (not the primitives or the
    /// prelude), in the order they were bound.
    pub fn user_names(&self) -> Vec<String> {
        self.root
            .bindings()
            .into_iter()
            .skip(self.builtin_count)
            .map(|(k, _)| repr(&k))
            .collect()
    }

    /// Evaluates a sequence of nodes at the top level.
    ///
    /// # Errors
    /// Any Spry error.
    pub fn eval_seq(&mut self, seq: Rc<Seq>) -> EvalResult<Value> {
        let frame = Rc::new(Frame::new(
            FrameKind::Root,
            seq,
            None,
            None,
            Value::Nil,
            Some(self.root.clone()),
        ));
        self.depth = 0;
        self.current = frame.clone();
        let result = self.run_frame(frame);
        self.current = self.root_frame.clone();
        result
    }

    /// The output `echo` and `probe` write to.
    pub(crate) fn out(&mut self) -> &mut (dyn Write + 'o) {
        &mut *self.out
    }

    /// Flushes the output.
    ///
    /// # Errors
    /// The output cannot be written.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    #[inline]
    fn enter(&mut self) -> EvalResult<()> {
        if self.depth >= self.options.max_depth {
            return Err(EvalError::new(
                ErrorKind::StackOverflow,
                format!("stack overflow at depth {}", self.depth),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    #[inline]
    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    #[inline]
    fn tick(&mut self) -> EvalResult<()> {
        if let Some(flag) = &self.options.interrupt
            && flag.load(Ordering::Relaxed)
        {
            return Err(EvalError::new(ErrorKind::Interrupted, "interrupted"));
        }
        self.steps += 1;
        if let Some(max) = self.options.max_steps
            && self.steps > max
        {
            return Err(EvalError::new(
                ErrorKind::StepLimit,
                format!("step limit of {max} reached"),
            ));
        }
        Ok(())
    }

    /// Runs an activation to its end (or its `^`).
    pub(crate) fn run_frame(&mut self, frame: Rc<Frame>) -> EvalResult<Value> {
        self.enter()?;
        let saved = std::mem::replace(&mut self.current, frame.clone());
        let mut result = self.run_body(&frame);
        self.current = saved;
        self.leave();
        if frame.kind == FrameKind::Func {
            frame.detach_caller();
            if let Err(e) = &mut result {
                e.crossed_call = true;
            }
        }
        self.release(&frame);
        self.recycle(frame);
        result
    }

    /// A new activation, from the pool when one waits there.
    #[inline]
    pub(crate) fn new_frame(
        &mut self,
        kind: FrameKind,
        body: Rc<Seq>,
        parent: Option<Rc<Frame>>,
        outer: Option<Rc<Frame>>,
        receiver: Value,
        locals: Option<Rc<MapObj>>,
    ) -> Rc<Frame> {
        if let Some(mut frame) = self.frame_pool.pop()
            && let Some(f) = Rc::get_mut(&mut frame)
        {
            f.reuse(kind, body, parent, outer, receiver);
            *f.locals.get_mut() = locals;
            return frame;
        }
        Rc::new(Frame::new(kind, body, parent, outer, receiver, locals))
    }

    /// Puts a finished activation nobody else holds (and its locals) back in the pool.
    #[inline]
    fn recycle(&mut self, mut frame: Rc<Frame>) {
        if self.frame_pool.len() >= POOL {
            return;
        }
        let Some(f) = Rc::get_mut(&mut frame) else {
            return;
        };
        // The vector of the values it was handed (emptied), for the next turn of a loop.
        if let Some(mut args) = f.feed.get_mut().take()
            && args.capacity() > 0
            && self.args_pool.len() < POOL
        {
            args.clear();
            self.args_pool.push(args);
        }
        if let Some(mut map) = f.clear(self.empty.clone())
            && self.map_pool.len() < POOL
            && Rc::get_mut(&mut map).is_some_and(MapObj::reset)
        {
            self.map_pool.push(map);
        }
        self.frame_pool.push(frame);
    }

    /// Breaks the reference cycle a finished activation forms with the closures it made and
    /// kept (`f = func [...]` binds, in the activation's locals, a function that holds the
    /// activation): when nothing else can reach the activation or those closures, its locals
    /// are emptied so that all of it is freed. When something still can (the function was
    /// returned), the activation is looked at again later, with others, once enough gathered:
    /// without this a loop that makes closures would grow without end.
    fn release(&mut self, frame: &Rc<Frame>) {
        // Its last value went to the caller; kept here it would be one more holder of a
        // closure it made and returned (a top-level activation stays alive as long as the
        // functions made there do).
        let last = std::mem::take(&mut *frame.last.borrow_mut());
        drop(last);
        if matches!(frame.kind, FrameKind::Root | FrameKind::Curly) {
            return;
        }
        match cycle(frame) {
            Cycle::None => {}
            Cycle::Garbage => free_locals(frame),
            Cycle::Held => {
                self.suspects.push(Rc::downgrade(frame));
                if self.suspects.len() >= self.sweep_at {
                    self.sweep();
                }
            }
        }
    }

    /// Looks at the suspected cycles again, all together (a cycle may run through several
    /// activations): frees those nothing outside reaches any more.
    fn sweep(&mut self) {
        // The one-activation cycles first, cheaply; what is still held, all together.
        self.suspects.retain(|weak| {
            let Some(frame) = weak.upgrade() else {
                return false;
            };
            match cycle(&frame) {
                Cycle::Held => true,
                Cycle::None => false,
                Cycle::Garbage => {
                    free_locals(&frame);
                    false
                }
            }
        });
        if !self.suspects.is_empty() {
            cycles::collect(&mut self.suspects);
        }
        self.sweep_at = SWEEP_AT.max(self.suspects.len() * 2);
    }

    fn run_body(&mut self, frame: &Rc<Frame>) -> EvalResult<Value> {
        loop {
            if let Err(e) = self.tick() {
                let at = frame.pos.get();
                return Err(locate(e, frame, at, None));
            }
            let Some(node) = frame.next_node() else {
                break;
            };
            // A method takes the node before it, unevaluated, as its receiver.
            if let Some(peek) = frame.peek_word() {
                let method = self
                    .names_method(&peek)
                    .map_err(|e| locate(e, frame, frame.pos.get(), None))?;
                if let Some(m) = &method {
                    let int_op = match m {
                        Value::Prim(p) => p.int_op,
                        _ => None,
                    };
                    if let Some(op) = int_op
                        && let Some(value) = self.int_inline(frame, &node, op)
                    {
                        *frame.last.borrow_mut() = value;
                        continue;
                    }
                    *frame.last.borrow_mut() = node;
                    // The method word was just looked up: step over it (no copy of it is
                    // needed but for an error, which names it) and run what it named.
                    let at = frame.pos.get();
                    frame.pos.set(at + 1);
                    let result = match int_op {
                        Some(op) => self.int_prim(op),
                        None => self.eval(m),
                    };
                    match result {
                        Ok(value) => *frame.last.borrow_mut() = value,
                        Err(e) => return Err(locate(e, frame, at, Some(&Value::Word(peek)))),
                    }
                    if frame.returned.get() {
                        return Ok(self.returning(frame));
                    }
                    continue;
                }
            }
            let at = frame.pos.get().saturating_sub(1);
            match self.eval(&node) {
                Ok(value) => *frame.last.borrow_mut() = value,
                Err(e) => return Err(locate(e, frame, at, Some(&node))),
            }
            if frame.returned.get() {
                return Ok(self.returning(frame));
            }
        }
        // The activation is done: its last value is handed on, not copied (`release` would
        // drop it next).
        let last = std::mem::take(&mut *frame.last.borrow_mut());
        Ok(match last {
            Value::Binding(b) => b.1.clone(),
            other => other,
        })
    }

    /// Runs `left op right` inline, `right` being the node after the operator word (at the
    /// frame's position plus one), when both are integers read without running code: a
    /// literal, or a plain word bound to an integer (looked up as the primitive would, and a
    /// lookup runs nothing while no lazy module is loaded). Consumes the operator and `right`
    /// and gives the result; none, consuming nothing, in every other case (the primitive then
    /// runs as usual, with the same depth check, errors and `last_self`).
    #[inline]
    fn int_inline(&mut self, frame: &Frame, left: &Value, op: IntOp) -> Option<Value> {
        if !may_be_int(left) || self.lazy_modules != 0 || self.depth >= self.options.max_depth {
            return None;
        }
        let pos = frame.pos.get();
        let right = frame.body.get(pos + 1).filter(may_be_int)?;
        // A word its cache still answers for is bound to no integer (caches hold none): the
        // common misses (`n * fact (n - 1)`, `self >= lo`) end here, before any lookup.
        let root = Rc::as_ptr(&self.root) as usize;
        if cached_non_int(left, root) || cached_non_int(&right, root) {
            return None;
        }
        let y = self.int_at_hand(&right)?;
        let x = self.int_at_hand(left)?;
        let value = op.apply(x, y)?;
        frame.pos.set(pos + 2);
        self.last_self = Value::Int(x);
        Some(value)
    }

    /// What [`eval`](Self::eval) of an integer operator's primitive does (`op` being what the
    /// word still names), without the call through the primitive: the same depth count, the
    /// receiver and the argument evaluated the same way, two integers computed here and
    /// anything else (a float, a string, an overflow) handed to the primitive's own rules.
    #[inline]
    fn int_prim(&mut self, op: IntOp) -> EvalResult<Value> {
        self.enter()?;
        let result = self.int_operands(op);
        self.leave();
        result
    }

    #[inline]
    fn int_operands(&mut self, op: IntOp) -> EvalResult<Value> {
        let a = self.infix_arg()?;
        let b = self.arg()?;
        if let (Value::Int(x), Value::Int(y)) = (&a, &b)
            && let Some(value) = op.apply(*x, *y)
        {
            return Ok(value);
        }
        primitives::binary(op, &a, &b)
    }

    /// Runs a paren of three nodes `x op y` (`(n - 1)`) without an activation when running it
    /// would take [`int_inline`](Self::int_inline)'s path: `op` a plain word still naming an
    /// integer primitive, `x` and `y` integers at hand. Everything running it would do is done
    /// (two steps counted, the depth limit and an interrupt honoured by not taking this path,
    /// `last_self`); looking up from the paren's activation and from the current one is the
    /// same (a paren has no locals). None, having done nothing, in every other case.
    #[inline]
    fn paren_inline(&mut self, seq: &Seq) -> Option<Value> {
        if self.lazy_modules != 0
            || self.depth + 1 >= self.options.max_depth
            || self
                .options
                .max_steps
                .is_some_and(|max| self.steps + 2 > max)
            || self
                .options
                .interrupt
                .as_ref()
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            return None;
        }
        // Held while looking up: a lookup runs no Spry code while no lazy module is loaded.
        let items = seq.items.borrow();
        let [x, Value::Word(op), y] = items.as_slice() else {
            return None;
        };
        let root = Rc::as_ptr(&self.root) as usize;
        if !may_be_int(x)
            || !may_be_int(y)
            || op.kind != WordKind::Eval
            || cached_non_int(x, root)
            || cached_non_int(y, root)
        {
            return None;
        }
        // `op =` and `op :=` bind `op` (see `Frame::peek_word`).
        if matches!(y, Value::Word(w) if matches!(&*w.name, "=" | ":=")) {
            return None;
        }
        let int_op = match self.lookup_word(op) {
            Ok(Some(Value::Prim(p))) if p.method => p.int_op?,
            _ => return None,
        };
        let b = self.int_at_hand(y)?;
        let a = self.int_at_hand(x)?;
        drop(items);
        let value = int_op.apply(a, b)?;
        self.steps += 2;
        self.last_self = Value::Int(a);
        Some(value)
    }

    /// The integer a node is without running anything: an integer literal, a plain word
    /// bound to an integer, or one bound to the `self` primitive while the receiver is an
    /// integer (`self >= lo` in a method on numbers). That primitive would run two levels
    /// deeper than the activation (under the operator's primitive, in a paren's activation):
    /// near the depth limit it is left to run, and fail, as it would.
    #[inline]
    fn int_at_hand(&mut self, node: &Value) -> Option<i64> {
        match node {
            Value::Int(i) => Some(*i),
            Value::Word(w) if w.kind == WordKind::Eval => match self.lookup_word(w) {
                Ok(Some(Value::Int(i))) => Some(i),
                Ok(Some(Value::Prim(p)))
                    if p.name == "self" && self.depth + 2 < self.options.max_depth =>
                {
                    match &*self.current.receiver.borrow() {
                        Value::Int(i) => Some(*i),
                        _ => None,
                    }
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// A `^` stopped `frame`: its caller stops too unless it is a function; its last value.
    fn returning(&mut self, frame: &Frame) -> Value {
        if frame.kind != FrameKind::Func
            && let Some(parent) = &frame.parent
        {
            parent.returned.set(true);
        }
        frame.last.borrow().clone()
    }

    /// The method `node` names, if it is a word bound to one.
    fn names_method(&mut self, w: &WordObj) -> EvalResult<Option<Value>> {
        let found = match w.kind {
            WordKind::Eval => self.lookup_word(w)?,
            WordKind::Module => match &w.module {
                Some(m) => self.module_lookup(m, &w.name)?,
                None => None,
            },
            _ => None,
        };
        Ok(found.filter(Value::is_method))
    }

    /// Evaluates one node in the current activation.
    pub(crate) fn eval(&mut self, node: &Value) -> EvalResult<Value> {
        match node {
            Value::Word(w) => {
                let name = Key::Word(w.sym);
                match w.kind {
                    WordKind::Eval => match self.lookup_word(w)? {
                        Some(v) => self.eval_bound(v),
                        None => Ok(Value::Nil),
                    },
                    WordKind::Get => Ok(self.lookup_word(w)?.unwrap_or_default()),
                    WordKind::Module | WordKind::GetModule => {
                        let found = match &w.module {
                            Some(m) => self.module_lookup(m, &w.name)?,
                            None => self.lookup(&name)?,
                        };
                        match found {
                            Some(v) if w.kind == WordKind::Module => self.eval_bound(v),
                            other => Ok(other.unwrap_or_default()),
                        }
                    }
                    WordKind::SelfWord => match self.self_lookup(&name)? {
                        Some(v) => self.eval_bound(v),
                        None => Ok(Value::Nil),
                    },
                    WordKind::GetSelf => Ok(self.self_lookup(&name)?.unwrap_or_default()),
                    WordKind::Literal => Ok(node.clone()),
                    WordKind::Arg | WordKind::GetArg => {
                        let value = self.pull_arg(w.kind == WordKind::Arg)?;
                        self.bind_local(node, value.clone());
                        Ok(value)
                    }
                }
            }
            Value::Paren(seq) => {
                if let Some(value) = self.paren_inline(seq) {
                    return Ok(value);
                }
                let frame = self.child_frame(FrameKind::Paren, seq.clone(), None);
                self.run_frame(frame)
            }
            Value::Curly(seq) => {
                let locals = MapObj::new();
                let frame = self.child_frame(FrameKind::Curly, seq.clone(), Some(locals.clone()));
                self.run_frame(frame)?;
                Ok(Value::Map(locals))
            }
            Value::Func(c) => self.call(c, None, Vec::new()),
            // Counted before the receiver is evaluated: `m m` makes a method its own receiver.
            Value::Method(c) => {
                self.enter()?;
                let result = self
                    .infix_arg()
                    .and_then(|receiver| self.call(c, Some(receiver), Vec::new()));
                self.leave();
                result
            }
            Value::Poly(c) => {
                self.enter()?;
                let result = self.call_poly(c);
                self.leave();
                result
            }
            Value::Prim(p) => {
                self.enter()?;
                let result = (p.f)(self);
                self.leave();
                result
            }
            other => Ok(other.clone()),
        }
    }

    /// [`eval`](Self::eval) of a node the caller owns: a literal is its own value, handed back
    /// without a copy.
    #[inline]
    fn eval_owned(&mut self, node: Value) -> EvalResult<Value> {
        if is_literal(&node) {
            Ok(node)
        } else {
            self.eval(&node)
        }
    }

    /// Evaluates what a word was bound to; a primitive or a function is called here directly,
    /// as [`eval`](Self::eval) would (no second pass through its dispatch).
    #[inline]
    fn eval_bound(&mut self, value: Value) -> EvalResult<Value> {
        match &value {
            Value::Prim(p) => {
                self.enter()?;
                let result = (p.f)(self);
                self.leave();
                return result;
            }
            Value::Func(c) => {
                if let Some(value) = self.try_compiled(c) {
                    return Ok(value);
                }
                return self.call(c, None, Vec::new());
            }
            _ => {}
        }
        if let Value::Word(_) = value {
            // A word bound to a word evaluates that word: count it, a cycle must end.
            self.enter()?;
            let result = self.eval(&value);
            self.leave();
            result
        } else {
            self.eval_owned(value)
        }
    }

    /// Runs a call of `closure` compiled (see [`compiled`]), when it compiles and its
    /// arguments are integers at hand in the running activation: the arguments consumed and
    /// the result given, as the call would. None, having changed nothing, in every other case
    /// (the call then runs as usual).
    fn try_compiled(&mut self, closure: &Rc<Closure>) -> Option<Value> {
        if !self.options.compile || self.lazy_modules != 0 {
            return None;
        }
        let cf = compiled::prepare(&self.root, closure)?;
        let arity = compiled::arity(&cf);
        let pos = self.current.pos.get();
        let mut args = [CVal::Int(0); compiled::MAX_ARGS];
        for (k, slot) in args.iter_mut().enumerate().take(arity) {
            let node = self.current.body.get(pos + k)?;
            *slot = CVal::Int(self.int_at_hand(&node)?);
        }
        let mut run = compiled::Exec::new(
            self.steps,
            self.options.max_steps,
            self.options.max_depth,
            self.options.interrupt.as_deref(),
        );
        match run.call(&cf, args.get(..arity)?, self.depth) {
            Ok(value) => {
                self.current.pos.set(pos + arity);
                self.steps = run.steps;
                if let Some(receiver) = run.last_self {
                    self.last_self = receiver.into();
                }
                Some(value.into())
            }
            Err(compiled::Bail) => {
                compiled::bailed(closure, &cf);
                None
            }
        }
    }

    #[inline]
    fn child_frame(
        &mut self,
        kind: FrameKind,
        body: Rc<Seq>,
        locals: Option<Rc<crate::eval::value::MapObj>>,
    ) -> Rc<Frame> {
        let receiver = self.current.receiver.borrow().clone();
        self.new_frame(
            kind,
            body,
            Some(self.current.clone()),
            None,
            receiver,
            locals,
        )
    }

    /// Calls a function or method: a new activation whose names resolve where it was made.
    pub(crate) fn call(
        &mut self,
        closure: &Rc<Closure>,
        receiver: Option<Value>,
        args: Vec<Value>,
    ) -> EvalResult<Value> {
        let receiver = receiver.unwrap_or_else(|| self.current.receiver.borrow().clone());
        let frame = self.new_frame(
            FrameKind::Func,
            closure.body.clone(),
            Some(self.current.clone()),
            closure.outer.clone(),
            receiver,
            None,
        );
        if !args.is_empty() {
            *frame.feed.borrow_mut() = Some(reversed(args));
        }
        self.run_frame(frame)
    }

    fn call_poly(&mut self, poly: &Rc<Closure>) -> EvalResult<Value> {
        let receiver = self.infix_arg_tagged()?;
        let tags: Vec<Key> = match receiver.tags_slot().and_then(|t| t.borrow().clone()) {
            Some(Value::Block(s)) => s.items.borrow().iter().map(Value::key).collect(),
            _ => return Ok(Value::Nil),
        };
        let methods = poly.body.items.borrow().clone();
        for m in methods {
            let method_tags: Vec<Key> = match m.tags_slot().and_then(|t| t.borrow().clone()) {
                Some(Value::Block(s)) => s.items.borrow().iter().map(Value::key).collect(),
                _ => continue,
            };
            if tags.iter().any(|t| method_tags.contains(t)) {
                return match &m {
                    Value::Method(c) | Value::Func(c) => {
                        self.call(c, Some(receiver.clone()), Vec::new())
                    }
                    other => self.eval(other),
                };
            }
        }
        Ok(Value::Nil)
    }

    /// Runs a block, paren, curly or function where it is called (`do`), handing it `args`
    /// for its argument words.
    pub(crate) fn run(&mut self, code: &Value, args: Vec<Value>) -> EvalResult<Value> {
        let (kind, seq) = match code {
            Value::Block(s) => (FrameKind::Block, s.clone()),
            Value::Paren(s) => (FrameKind::Paren, s.clone()),
            Value::Curly(s) => (FrameKind::Curly, s.clone()),
            Value::Func(c) | Value::Method(c) | Value::Poly(c) => {
                return self.call(c, None, args);
            }
            other => {
                return Err(EvalError::runtime(format!(
                    "do works on blocks, parens, curlies and functions, not {} ({})",
                    repr(other),
                    other.type_name()
                )));
            }
        };
        let locals = (kind == FrameKind::Curly).then(MapObj::new);
        let frame = self.child_frame(kind, seq, locals);
        if !args.is_empty() {
            *frame.feed.borrow_mut() = Some(reversed(args));
        }
        self.run_frame(frame)
    }

    /// Whether the running activation was told to return (a `^` in a block it ran).
    pub(crate) fn returned(&self) -> bool {
        self.current.returned.get()
    }

    // ---- names ----

    /// Looks a plain word up, through its inline cache when the word can only be found in the
    /// root map (no other map ever bound its name, no lazy module is loaded): the cache is
    /// valid until the next definition anywhere in the root map (see
    /// [`WordCache`](super::value::WordCache)), so a redefinition takes effect at the next
    /// evaluation of the word.
    ///
    /// A word whose name some other map bound (a local, an argument) skips the cache, which
    /// never answers for it, and walks the activations at once.
    #[inline]
    fn lookup_word(&mut self, w: &WordObj) -> EvalResult<Option<Value>> {
        let key = Key::Word(w.sym);
        if w.bound_outside_root() {
            return self.lookup_walking(&key);
        }
        let root = Rc::as_ptr(&self.root) as usize;
        if let Some(found) = w.cache.get(root) {
            return Ok(found);
        }
        if self.lazy_modules == 0 {
            let found = self.root.get(&key);
            w.cache.set(root, &found);
            return Ok(found);
        }
        self.lookup_walking(&key)
    }

    /// Looks `key` up: the activations by `outer` (parens skipped), then the modules list.
    pub(crate) fn lookup(&mut self, key: &Key) -> EvalResult<Option<Value>> {
        // Every chain of activations ends at a root activation, whose locals are the root map,
        // and the modules list holds no name of the root map alone: a name only the root map
        // ever bound is found there or nowhere (unless a lazy module may still read it).
        if let Key::Word(sym) = key
            && self.lazy_modules == 0
            && !sym.bound_outside_root()
        {
            return Ok(self.root.get(key));
        }
        self.lookup_walking(key)
    }

    /// [`lookup`](Self::lookup) without its shortcut to the root map: the walk.
    #[inline]
    fn lookup_walking(&mut self, key: &Key) -> EvalResult<Option<Value>> {
        match self.lookup_loaded(key) {
            Found::Yes(v) => Ok(Some(v)),
            Found::No => Ok(None),
            Found::MaybeInImage => self.lookup_loading(key),
        }
    }

    /// The lookup without reading anything: walks by reference, clones nothing but the value.
    /// Says so when a lazy module lacked the name (the image may hold it).
    fn lookup_loaded(&self, key: &Key) -> Found {
        let mut lazy_missed = false;
        let mut at: Option<&Rc<Frame>> = Some(&self.current);
        while let Some(frame) = at {
            if frame.kind != FrameKind::Paren
                && let Some(map) = frame.locals.borrow().as_ref()
            {
                if let Some(v) = map.get(key) {
                    return Found::Yes(v);
                }
                // A module's own definition, not read yet, comes before anything further out
                // (a primitive of the same name in the root map): ask the image first.
                if let Some(lazy) = &map.lazy
                    && !matches!(key, Key::Word(sym) if lazy.asked.borrow().contains(sym))
                {
                    return Found::MaybeInImage;
                }
            }
            at = frame.outer_frame();
        }
        for module in self.modules.items.borrow().iter() {
            if let Value::Map(map) = module {
                if let Some(v) = map.get(key) {
                    return Found::Yes(v);
                }
                lazy_missed |= map.lazy.as_ref().is_some_and(
                    |l| !matches!(key, Key::Word(sym) if l.asked.borrow().contains(sym)),
                );
            }
        }
        if lazy_missed {
            Found::MaybeInImage
        } else {
            Found::No
        }
    }

    /// The lookup that may read definitions from the image on the way.
    fn lookup_loading(&mut self, key: &Key) -> EvalResult<Option<Value>> {
        let mut at = skip_parens_outer(&self.current);
        while let Some(frame) = at {
            let locals = frame.locals.borrow().clone();
            if let Some(map) = locals
                && let Some(v) = self.map_get(&map, key)?
            {
                return Ok(Some(v));
            }
            at = frame.outer_frame().and_then(skip_parens_outer);
        }
        let modules = self.modules.items.borrow().clone();
        for module in modules {
            if let Value::Map(map) = module
                && let Some(v) = self.map_get(&map, key)?
            {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// A map's value for `key`; a module from the image reads a missing name by key, once.
    pub(crate) fn map_get(&mut self, map: &Rc<MapObj>, key: &Key) -> EvalResult<Option<Value>> {
        if let Some(v) = map.get(key) {
            return Ok(Some(v));
        }
        let (Some(lazy), Key::Word(sym)) = (&map.lazy, key) else {
            return Ok(None);
        };
        if !lazy.asked.borrow_mut().insert(*sym) {
            return Ok(None);
        }
        let name = &sym.name();
        let module = lazy.name.clone();
        let text = match &self.source {
            Some(source) => source.definition(&module, name).map_err(image_error)?,
            None => None,
        };
        if let Some(text) = text {
            self.load_definition(map, &module, name, &text)?;
        }
        Ok(map.get(key))
    }

    fn load_definition(
        &mut self,
        map: &Rc<MapObj>,
        module: &str,
        name: &str,
        text: &[u8],
    ) -> EvalResult<()> {
        let seq = read_source(&format!("{module}::{name}"), text, 0)?;
        // A definition runs as if in its module's curly: its functions close over the module.
        let frame = self.module_frame(seq, map.clone());
        let saved = self.root_frame.returned.get();
        let result = self.run_frame(frame);
        self.root_frame.returned.set(saved);
        result.map(|_| ())
    }

    /// `Foo::bar`: `bar` in the map `Foo` names, the module read from the image if need be.
    pub(crate) fn module_lookup(&mut self, module: &str, name: &str) -> EvalResult<Option<Value>> {
        let map = match self.lookup(&Key::word(module))? {
            Some(Value::Map(map)) => map,
            Some(_) => return Ok(None),
            None => match self.load_module(module)? {
                Some(map) => map,
                None => {
                    if self.source.as_ref().is_some_and(|s| s.is_partial()) {
                        return Err(EvalError::runtime(format!(
                            "{module}::{name} is not in this image; build --only with the file that holds {module} adds it"
                        )));
                    }
                    return Ok(None);
                }
            },
        };
        self.map_get(&map, &Key::word(name))
    }

    /// Makes the image's module `name` a lazy map, bound in the root map and added to
    /// `modules` (so its words are found unqualified too).
    pub(crate) fn load_module(&mut self, name: &str) -> EvalResult<Option<Rc<MapObj>>> {
        let Some(source) = &self.source else {
            return Ok(None);
        };
        if !source.has_module(name).map_err(image_error)? {
            return Ok(None);
        }
        let map = MapObj::lazy_module(name);
        self.lazy_modules += 1;
        // Words cached as found in the root map may now be found in this module first.
        super::value::definitions_changed();
        *map.tags.borrow_mut() = Some(Value::block(vec![
            Value::word(WordKind::Literal, "module"),
            Value::word(WordKind::Literal, "object"),
        ]));
        self.define(name, Value::Map(map.clone()));
        self.modules
            .items
            .borrow_mut()
            .push(Value::Map(map.clone()));
        Ok(Some(map))
    }

    fn self_lookup(&mut self, key: &Key) -> EvalResult<Option<Value>> {
        let receiver = self.current.receiver.borrow().clone();
        match receiver {
            Value::Map(map) => self.map_get(&map, key),
            _ => Ok(None),
        }
    }

    /// Binds in the nearest activation with locals (`:x`).
    #[inline]
    fn bind_local(&mut self, word: &Value, value: Value) {
        // Walked by reference: no activation is copied on the way.
        let mut at = Some(&self.current);
        while let Some(f) = at.filter(|f| f.kind == FrameKind::Paren) {
            at = f.outer_frame();
        }
        let Some(frame) = at else {
            return;
        };
        // An argument word's key (the common case) without the general match.
        let key = match word {
            Value::Word(w) => Key::Word(w.sym),
            other => other.key(),
        };
        let mut locals = frame.locals.borrow_mut();
        let map = match &*locals {
            Some(map) => map.clone(),
            None => {
                // A fresh map: nothing to find first, the binding is added.
                let map = self.map_pool.pop().unwrap_or_default();
                *locals = Some(map.clone());
                drop(locals);
                map.add_new(key, word.clone(), value);
                return;
            }
        };
        drop(locals);
        map.set(key, word.clone(), value);
    }

    /// `=`: binds `word` in the nearest activation with locals, or in its module (`Foo::x`).
    pub(crate) fn bind(&mut self, word: &Value, value: Value) -> EvalResult<()> {
        if let Value::Word(w) = word
            && w.kind == WordKind::Module
            && let Some(m) = &w.module
        {
            let map = match self.lookup(&Key::word(m))? {
                Some(Value::Map(map)) => Some(map),
                Some(_) => None,
                None => self.load_module(m)?,
            };
            if let Some(map) = map {
                map.set(
                    Key::Word(w.sym),
                    Value::word(WordKind::Eval, &w.name),
                    value,
                );
            }
            return Ok(());
        }
        self.bind_local(word, value);
        Ok(())
    }

    /// `:=`: changes the nearest existing binding; nothing if there is none.
    pub(crate) fn assign(&mut self, word: &Value, value: Value) -> EvalResult<()> {
        let key = word.key();
        if let Value::Word(w) = word
            && w.kind == WordKind::Module
            && let Some(m) = &w.module
        {
            // Read first (the module and the definition, from the image if they are not yet):
            // a definition not read yet is assigned, not left to be read later over the value.
            self.module_lookup(m, &w.name)?;
            if let Some(Value::Map(map)) = self.lookup(&Key::word(m))? {
                map.assign(&Key::Word(w.sym), value);
            }
            return Ok(());
        }
        let mut at = skip_parens_outer(&self.current);
        while let Some(frame) = at {
            // A module's definition not read yet: read it, so that it is the one assigned
            // (only a module's map is held for that; other locals are only borrowed).
            let lazy = frame
                .locals
                .borrow()
                .as_ref()
                .filter(|map| map.lazy.is_some())
                .cloned();
            if let Some(map) = lazy {
                self.map_get(&map, &key)?;
            }
            if let Some(map) = frame.locals.borrow().as_ref()
                && map.assign(&key, value.clone())
            {
                return Ok(());
            }
            at = frame.outer_frame().and_then(skip_parens_outer);
        }
        Ok(())
    }

    // ---- arguments ----

    /// `evalArgInfix`: the node to the left, evaluated (the receiver of a method).
    #[inline]
    pub(crate) fn infix_arg(&mut self) -> EvalResult<Value> {
        Ok(self.infix_arg_tagged()?.unboxed())
    }

    /// [`infix_arg`](Self::infix_arg) keeping a tagged value's box (for the tag primitives).
    #[inline]
    pub(crate) fn infix_arg_tagged(&mut self) -> EvalResult<Value> {
        let last = self.current.last.borrow().clone();
        let value = self.eval_owned(last)?;
        self.last_self = value.clone();
        Ok(value)
    }

    /// `argInfix`: the node to the left as it stands.
    pub(crate) fn raw_infix(&mut self) -> Value {
        let last = self.current.last.borrow().clone();
        self.last_self = last.clone();
        last
    }

    /// `evalArg`: the next node, evaluated.
    #[inline]
    pub(crate) fn arg(&mut self) -> EvalResult<Value> {
        let node = self.raw_arg()?;
        if is_literal(&node) {
            return Ok(node.unboxed());
        }
        let at = self.current.pos.get().saturating_sub(1);
        match self.eval(&node) {
            Ok(value) => Ok(value.unboxed()),
            // Placed at the argument: a call made there is named by its own word.
            Err(e) => {
                let frame = self.current.clone();
                Err(locate(e, &frame, at, Some(&node)))
            }
        }
    }

    /// `arg`: the next node as it stands.
    #[inline]
    pub(crate) fn raw_arg(&mut self) -> EvalResult<Value> {
        self.current
            .next_node()
            .ok_or_else(|| EvalError::runtime("too few arguments: the code ends here"))
    }

    /// [`raw_arg`](Self::raw_arg) for an argument not used (the branch not taken): steps over
    /// it without a copy.
    #[inline]
    pub(crate) fn skip_arg(&mut self) -> EvalResult<()> {
        let frame = &self.current;
        let pos = frame.pos.get();
        if pos >= frame.body.len() {
            return Err(EvalError::runtime("too few arguments: the code ends here"));
        }
        frame.pos.set(pos + 1);
        Ok(())
    }

    /// What an argument word (`:x`, `:$x`) takes: a value handed to its block, or the next
    /// node of its caller's code, evaluated there for `:x`.
    fn pull_arg(&mut self, evaluate: bool) -> EvalResult<Value> {
        let Some(home) = skip_parens_caller(&self.current) else {
            return Err(EvalError::runtime("no caller to take an argument from"));
        };
        let caller = home.caller();
        let fed = home
            .feed
            .borrow_mut()
            .as_mut()
            .map(|f| f.pop().unwrap_or_default());
        let raw = match fed {
            Some(raw) => raw,
            None => {
                let Some(caller) = &caller else {
                    return Err(EvalError::runtime(
                        "an argument word at the top level has no caller to take from",
                    ));
                };
                caller.next_node().ok_or_else(|| {
                    EvalError::runtime("too few arguments: the caller's code ends here")
                })?
            }
        };
        if !evaluate {
            return Ok(raw);
        }
        match caller {
            Some(caller) => {
                let saved = std::mem::replace(&mut self.current, caller);
                let result = self.eval(&raw);
                self.current = saved;
                result
            }
            None => self.eval(&raw),
        }
    }

    /// A vector holding `values`, for [`run`](Self::run)'s arguments: from the pool when one
    /// waits there, so that a loop handing its block a value per turn allocates none.
    #[inline]
    fn args_of<const N: usize>(&mut self, values: [Value; N]) -> Vec<Value> {
        let mut args = self.args_pool.pop().unwrap_or_default();
        args.extend(values);
        args
    }

    /// Runs `code` with `values` handed to its argument words and says whether a `^` inside
    /// asked the running activation to return.
    pub(crate) fn run_body_of_loop<const N: usize>(
        &mut self,
        code: &Value,
        values: [Value; N],
    ) -> EvalResult<(Value, bool)> {
        let args = if N == 0 {
            Vec::new()
        } else {
            self.args_of(values)
        };
        let value = self.run(code, args)?;
        Ok((value, self.returned()))
    }
}

/// Whether a finished activation's locals hold closures made in it (a cycle), and whether
/// anything outside that cycle still reaches it.
enum Cycle {
    None,
    Garbage,
    Held,
}

fn cycle(frame: &Rc<Frame>) -> Cycle {
    let locals = frame.locals.borrow();
    let Some(map) = locals.as_ref() else {
        return Cycle::None;
    };
    // Closures made here, and the activation itself (`a = activation`), bound in its locals.
    let mut made_here = 0;
    let mut only_here = true;
    map.for_each_value(|v| match v {
        Value::Func(c) | Value::Method(c) | Value::Poly(c)
            if c.outer.as_ref().is_some_and(|o| Rc::ptr_eq(o, frame)) =>
        {
            made_here += 1;
            // Held by the map entry alone.
            only_here &= Rc::strong_count(c) == 1;
        }
        Value::Activation(a) if Rc::ptr_eq(a, frame) => made_here += 1,
        _ => {}
    });
    if made_here == 0 {
        return Cycle::None;
    }
    // The map: the activation's; anyone else (`activation locals`) keeps it.
    if only_here && Rc::strong_count(map) == 1 && Rc::strong_count(frame) == 1 + made_here {
        Cycle::Garbage
    } else {
        Cycle::Held
    }
}

/// Empties a finished activation's locals (taken out first, dropped after the borrow ends).
fn free_locals(frame: &Frame) {
    let taken = frame.locals.borrow_mut().take();
    drop(taken);
}

/// Values handed to a block, last first (as its argument words pop them), in the same vector.
fn reversed(mut args: Vec<Value>) -> Vec<Value> {
    args.reverse();
    args
}

/// Whether `node` evaluates to itself (what [`Interp::eval`] hands back as a copy).
fn is_literal(node: &Value) -> bool {
    !matches!(
        node,
        Value::Word(_)
            | Value::Paren(_)
            | Value::Curly(_)
            | Value::Func(_)
            | Value::Method(_)
            | Value::Poly(_)
            | Value::Prim(_)
    )
}

/// Whether `node` may be an integer at hand (see [`Interp::int_inline`]): an integer literal
/// or a plain word, told apart without looking anything up.
#[inline]
fn may_be_int(node: &Value) -> bool {
    match node {
        Value::Int(_) => true,
        Value::Word(w) => w.kind == WordKind::Eval,
        _ => false,
    }
}

/// Whether `node` is a word whose inline cache (valid for root map `root`) answers: then it is
/// bound to no integer, as caches hold none (`self`, whose primitive may give one, aside).
#[inline]
fn cached_non_int(node: &Value, root: usize) -> bool {
    matches!(node, Value::Word(w) if w.cache.holds(root) && &*w.name != "self")
}

/// What a lookup among loaded bindings found.
enum Found {
    Yes(Value),
    No,
    MaybeInImage,
}

fn image_error(e: crate::Error) -> EvalError {
    EvalError::new(ErrorKind::Image, format!("cannot read the image: {e}"))
}

/// Gives an error its place (the node `at` of `frame`) or, when it comes out of a call, adds
/// the call to its chain.
fn locate(mut e: EvalError, frame: &Frame, at: usize, node: Option<&Value>) -> EvalError {
    let needed = e.location.is_none() || (e.crossed_call && e.trace.len() < MAX_TRACE);
    if !needed {
        if e.crossed_call {
            e.crossed_call = false;
            e.omitted += 1;
        }
        return e;
    }
    let place = frame
        .body
        .origin
        .as_ref()
        .and_then(|o| frame.body.offsets.get(at).map(|&off| Location::of(o, off)));
    let Some(place) = place else {
        return e;
    };
    if e.location.is_none() {
        e.location = Some(place);
        e.crossed_call = false;
    } else if e.crossed_call {
        e.crossed_call = false;
        if e.trace.len() < MAX_TRACE {
            let mut word = node.map(repr).unwrap_or_default();
            if word.len() > 40 {
                word.truncate(40);
                word.push_str("...");
            }
            e.trace.push((word, place));
        } else {
            e.omitted += 1;
        }
    }
    e
}
