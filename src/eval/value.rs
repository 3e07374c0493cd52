//! Values: what Spry code computes with, and what Spry code is made of. Spry is homoiconic, so a
//! block is both data and the code a function runs; one `Value` type serves both.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use rustc_hash::FxHashMap;

use super::EvalResult;
use super::compiled::Jit;
use super::frame::Frame;
use super::interp::Interp;
use crate::syntax::WordKind;

/// A Spry value. Immediate values are copied; everything else is shared (`Rc`), as in the
/// reference VM where every value is a reference.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// `nil`, also what an unbound word evaluates to.
    #[default]
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (bytes; mutable in place, as `replace:with:` does).
    Str(Rc<StrObj>),
    /// A word of any kind.
    Word(Rc<WordObj>),
    /// `[ ... ]`: data, or code run by `do`.
    Block(Rc<Seq>),
    /// `( ... )`: evaluated where it stands.
    Paren(Rc<Seq>),
    /// `{ ... }`: evaluated into a map.
    Curly(Rc<Seq>),
    /// A map of bindings.
    Map(Rc<MapObj>),
    /// `func [...]`: a closure over the activation that made it.
    Func(Rc<Closure>),
    /// `method [...]`: a closure whose `self` is the value to its left.
    Method(Rc<Closure>),
    /// `polymethod [...]`: methods chosen by the receiver's tags.
    Poly(Rc<Closure>),
    /// A primitive written in Rust.
    Prim(Rc<Prim>),
    /// A key and its value, as `do:` over a map hands them out.
    Binding(Rc<(Value, Value)>),
    /// An activation record (reflection: `activation`, `caller`, `locals`...).
    Activation(Rc<Frame>),
    /// A value that cannot hold tags itself (a number, a boolean, nil, a word) given tags by
    /// `tag:`; primitives see the value inside (`Value::unboxed`).
    Boxed(Rc<Boxed>),
}

/// A value with tags of its own.
#[derive(Debug)]
pub struct Boxed {
    /// The value.
    pub value: Value,
    /// Its tags (a block).
    pub tags: RefCell<Option<Value>>,
}

/// A mutable string with tags.
#[derive(Debug, Default)]
pub struct StrObj {
    /// The bytes.
    pub bytes: RefCell<Vec<u8>>,
    /// Its tags (a block), if any.
    pub tags: RefCell<Option<Value>>,
}

/// A word: its kind, name without sigils and, for module words, its module.
#[derive(Debug)]
pub struct WordObj {
    /// The kind, as the parser read it.
    pub kind: WordKind,
    /// The name (`x` for `$@x`, `bar` for `Foo::bar`).
    pub name: Rc<str>,
    /// The module of `Foo::bar` and `$Foo::bar`.
    pub module: Option<Rc<str>>,
    /// The name's symbol.
    pub sym: Sym,
    /// What the word last found in the root map (see [`WordCache`]).
    pub cache: WordCache,
    /// Set once its name is known bound outside the root map (it stays so: see
    /// [`Sym::bound_outside_root`]), so that the word need not ask the symbol table again.
    outside_root: Cell<bool>,
}

impl WordObj {
    /// A word of `kind` named `name` (of `module`, for module words), nothing cached.
    pub fn new(kind: WordKind, name: Rc<str>, module: Option<Rc<str>>, sym: Sym) -> WordObj {
        WordObj {
            kind,
            name,
            module,
            sym,
            cache: WordCache::default(),
            outside_root: Cell::new(false),
        }
    }

    /// Whether a map other than the root map ever bound this word's name
    /// ([`Sym::bound_outside_root`]), remembered on the word once true.
    #[inline]
    pub fn bound_outside_root(&self) -> bool {
        if self.outside_root.get() {
            return true;
        }
        let outside = self.sym.bound_outside_root();
        self.outside_root.set(outside);
        outside
    }
}

/// An inline cache on a word node: what looking the word up in the root map found, valid while
/// the definition epoch ([`definitions_epoch`]) is the one it was filled at and for the same
/// root map. It holds no strong reference that could close a cycle (a function's body holds
/// its words, a word would hold the function): primitives, booleans and nil are kept,
/// functions and methods weakly, anything else (numbers included) not at all.
#[derive(Debug, Default)]
pub struct WordCache {
    epoch: Cell<u64>,
    root: Cell<usize>,
    found: RefCell<Cached>,
}

/// A value remembered by a [`WordCache`].
#[derive(Debug, Default)]
enum Cached {
    /// Nothing remembered yet.
    #[default]
    Empty,
    /// The word is bound nowhere.
    Unbound,
    /// A primitive or an immediate value.
    Value(Value),
    /// A function (`Func`), method (`Method`) or polymethod (`Poly`), held weakly.
    Func(Weak<Closure>),
    Method(Weak<Closure>),
    Poly(Weak<Closure>),
}

impl WordCache {
    /// What the word found in root map `root` (an address), if that is still valid:
    /// `Some(None)` for a word bound nowhere.
    #[inline]
    pub fn get(&self, root: usize) -> Option<Option<Value>> {
        if self.epoch.get() != definitions_epoch() || self.root.get() != root {
            return None;
        }
        match &*self.found.borrow() {
            Cached::Empty => None,
            Cached::Unbound => Some(None),
            Cached::Value(v) => Some(Some(v.clone())),
            Cached::Func(w) => w.upgrade().map(|c| Some(Value::Func(c))),
            Cached::Method(w) => w.upgrade().map(|c| Some(Value::Method(c))),
            Cached::Poly(w) => w.upgrade().map(|c| Some(Value::Poly(c))),
        }
    }

    /// Whether a cache may hold `value` (or the function it is): a root binding of anything
    /// else can change without making caches stale.
    #[inline]
    pub fn may_hold(value: &Value) -> bool {
        matches!(
            value,
            Value::Prim(_)
                | Value::Bool(_)
                | Value::Nil
                | Value::Func(_)
                | Value::Method(_)
                | Value::Poly(_)
        )
    }

    /// Whether the cache answers for root map `root` now (what it holds is then no number).
    #[inline]
    pub fn holds(&self, root: usize) -> bool {
        self.epoch.get() == definitions_epoch()
            && self.root.get() == root
            && !matches!(*self.found.borrow(), Cached::Empty)
    }

    /// Remembers what the word found in root map `root` at the current epoch.
    pub fn set(&self, root: usize, found: &Option<Value>) {
        let cached = match found {
            None => Cached::Unbound,
            Some(v @ (Value::Prim(_) | Value::Bool(_) | Value::Nil)) => Cached::Value(v.clone()),
            Some(Value::Func(c)) => Cached::Func(Rc::downgrade(c)),
            Some(Value::Method(c)) => Cached::Method(Rc::downgrade(c)),
            Some(Value::Poly(c)) => Cached::Poly(Rc::downgrade(c)),
            // Not cacheable: left stale, so the next lookup takes the long way again.
            Some(_) => return,
        };
        let old = std::mem::replace(&mut *self.found.borrow_mut(), cached);
        drop(old);
        self.epoch.set(definitions_epoch());
        self.root.set(root);
    }
}

/// Where a sequence was read from: a name for messages and the text, to find lines and columns.
#[derive(Debug)]
pub struct Origin {
    /// The file name, `-e`, or `Module::name`.
    pub name: Rc<str>,
    /// The source text.
    pub text: Rc<[u8]>,
    /// Where the text starts in its file (a definition read from an image starts at 0).
    pub base: u32,
}

/// A block, paren, curly or function body: nodes, a stream position and tags.
#[derive(Debug, Default)]
pub struct Seq {
    /// The nodes (read them here; change them through [`Seq::edit`], which a function
    /// compiled from them must hear of).
    pub items: RefCell<Vec<Value>>,
    /// The position `next`, `read`, `write:` work at.
    pub pos: Cell<usize>,
    /// Tags (a block), if any.
    pub tags: RefCell<Option<Value>>,
    /// Where it was read from, when it came from source.
    pub origin: Option<Rc<Origin>>,
    /// The byte offset of each node read from source (as many as were read); shared by the
    /// copies `func` makes, which change their nodes, never their offsets.
    pub offsets: Rc<[u32]>,
    /// Set once a function was compiled from these nodes: changing them then makes compiled
    /// functions stale (see [`Seq::edit`]).
    pub(crate) compiled: Cell<bool>,
}

impl Seq {
    /// A sequence made by code.
    pub fn new(items: Vec<Value>) -> Rc<Seq> {
        Rc::new(Seq {
            items: RefCell::new(items),
            pos: Cell::new(0),
            tags: RefCell::new(None),
            origin: None,
            offsets: Rc::from([]),
            compiled: Cell::new(false),
        })
    }

    /// The same nodes (shared), the same origin, a stream at 0, no tags.
    pub fn copy(&self) -> Rc<Seq> {
        Rc::new(Seq {
            items: RefCell::new(self.items.borrow().clone()),
            pos: Cell::new(0),
            tags: RefCell::new(None),
            origin: self.origin.clone(),
            offsets: self.offsets.clone(),
            compiled: Cell::new(false),
        })
    }

    /// The nodes, to change: every change of nodes goes through here, so that functions
    /// compiled from them are compiled again.
    pub fn edit(&self) -> std::cell::RefMut<'_, Vec<Value>> {
        if self.compiled.get() {
            super::compiled::code_changed();
        }
        self.items.borrow_mut()
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.items.borrow().is_empty()
    }

    /// Node `i`, if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<Value> {
        self.items.borrow().get(i).cloned()
    }
}

impl Drop for Seq {
    /// Drops nested sequences iteratively: a chain of a million blocks must not overflow the
    /// Rust stack when it goes.
    fn drop(&mut self) {
        let mut work = std::mem::take(self.items.get_mut());
        while let Some(value) = work.pop() {
            let inner = match value {
                Value::Block(s) | Value::Paren(s) | Value::Curly(s) => Rc::try_unwrap(s).ok(),
                Value::Func(c) | Value::Method(c) | Value::Poly(c) => Rc::try_unwrap(c)
                    .ok()
                    .and_then(|c| Rc::try_unwrap(c.body).ok()),
                _ => None,
            };
            if let Some(mut seq) = inner {
                work.append(seq.items.get_mut());
            }
        }
    }
}

/// A function or method: its body and the activation it was made in (its lexical parent).
#[derive(Debug)]
pub struct Closure {
    /// The body (its own copy of the nodes: `$f write: 5` changes this function only).
    pub body: Rc<Seq>,
    /// The activation it was made in.
    pub outer: Option<Rc<Frame>>,
    /// Its compiled form, once a call tried to make one (see `compiled`).
    pub(crate) jit: RefCell<Jit>,
}

impl Closure {
    /// A closure of `body` made in `outer`.
    pub fn new(body: Rc<Seq>, outer: Option<Rc<Frame>>) -> Closure {
        Closure {
            body,
            outer,
            jit: RefCell::default(),
        }
    }
}

/// The Rust function behind a primitive.
pub type PrimFn = fn(&mut Interp) -> EvalResult<Value>;

/// A primitive: a name, whether it is a method (takes the value on its left), the code.
pub struct Prim {
    /// The word it was bound to.
    pub name: &'static str,
    /// Whether it pulls its receiver from the left.
    pub method: bool,
    /// The code.
    pub f: PrimFn,
    /// For the integer arithmetic and comparisons: the operation, which the node loop runs
    /// inline when both operands are integers at hand (see [`IntOp`]).
    pub int_op: Option<IntOp>,
}

/// An integer operation the node loop runs without calling its primitive, when the word still
/// names the primitive and both operands are integers read without running code (a literal,
/// or a word bound to an integer): the result is the primitive's, and any other case
/// (a float, an overflow, an operand that calls) goes through the primitive as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

impl IntOp {
    /// The operation of the math primitive `name`, if it is one.
    pub fn of(name: &str) -> Option<IntOp> {
        Some(match name {
            "+" => IntOp::Add,
            "-" => IntOp::Sub,
            "*" => IntOp::Mul,
            "<" => IntOp::Lt,
            ">" => IntOp::Gt,
            "<=" => IntOp::Le,
            ">=" => IntOp::Ge,
            _ => return None,
        })
    }

    /// `x op y`, or none when it overflows (the primitive then says so).
    #[inline]
    pub fn apply(self, x: i64, y: i64) -> Option<Value> {
        Some(match self {
            IntOp::Add => Value::Int(x.checked_add(y)?),
            IntOp::Sub => Value::Int(x.checked_sub(y)?),
            IntOp::Mul => Value::Int(x.checked_mul(y)?),
            IntOp::Lt => Value::Bool(x < y),
            IntOp::Gt => Value::Bool(x > y),
            IntOp::Le => Value::Bool(x <= y),
            IntOp::Ge => Value::Bool(x >= y),
        })
    }
}

impl std::fmt::Debug for Prim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prim({})", self.name)
    }
}

/// The current definition epoch (see [`WordCache`]).
#[inline]
pub fn definitions_epoch() -> u64 {
    EPOCH.with(Cell::get)
}

/// Makes every [`WordCache`] stale. Called on every binding, change or removal in a root map,
/// whenever a name is first bound outside the root map, and when a lazy module is loaded: the
/// evaluator looks a word up in the root map directly only while none of these happened since.
pub fn definitions_changed() {
    EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
}

/// An interned word name: equal names have equal symbols, so a lookup hashes and compares one
/// integer instead of a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sym(u32);

/// The interned names of one thread: name to symbol, and symbol to name.
type SymbolTable = (FxHashMap<Rc<str>, u32>, Vec<Rc<str>>);

thread_local! {
    /// The definition epoch: bumped by every change that may change what a word finds in a
    /// root map (see [`definitions_changed`]).
    static EPOCH: Cell<u64> = const { Cell::new(1) };
    static SYMBOLS: RefCell<SymbolTable> = RefCell::default();
    /// For each symbol, whether a map other than the root map ever bound it (see
    /// [`Sym::bound_outside_root`]).
    static OUTSIDE_ROOT: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

impl Sym {
    /// The symbol of `name` (names live as long as the thread: they are few).
    pub fn of(name: &str) -> Sym {
        SYMBOLS.with(|table| {
            let mut table = table.borrow_mut();
            if let Some(&id) = table.0.get(name) {
                return Sym(id);
            }
            let id = table.1.len() as u32;
            let rc: Rc<str> = name.into();
            table.0.insert(rc.clone(), id);
            table.1.push(rc);
            Sym(id)
        })
    }

    /// Whether some map other than the root map (an activation's locals, a module, any map
    /// value) has ever bound this name. While none has, a plain word of this name can only be
    /// found in the root map, and the evaluator looks there directly instead of walking the
    /// activations. Never reset: a stale `true` only costs the walk.
    #[inline]
    pub fn bound_outside_root(self) -> bool {
        OUTSIDE_ROOT.with(|seen| seen.borrow().get(self.0 as usize).copied().unwrap_or(false))
    }

    /// Records that a map other than the root map binds this name.
    fn mark_outside_root(self) {
        definitions_changed();
        OUTSIDE_ROOT.with(|seen| {
            let mut seen = seen.borrow_mut();
            let i = self.0 as usize;
            if seen.len() <= i {
                seen.resize(i + 1, false);
            }
            seen[i] = true;
        });
    }

    /// The name.
    pub fn name(self) -> Rc<str> {
        SYMBOLS.with(|table| {
            table
                .borrow()
                .1
                .get(self.0 as usize)
                .cloned()
                .unwrap_or_else(|| "".into())
        })
    }
}

/// A map key: words count by name whatever their kind (`x`, `'x`, `:x` are one key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A word's name.
    Word(Sym),
    /// An integer.
    Int(i64),
    /// A float, by its bits.
    Float(u64),
    /// A string's bytes.
    Str(Vec<u8>),
    /// A boolean.
    Bool(bool),
    /// nil.
    Nil,
    /// Anything else, by identity.
    Ref(usize),
}

impl Key {
    /// The key of a word name.
    pub fn word(name: &str) -> Key {
        Key::Word(Sym::of(name))
    }
}

/// Up to this many bindings a map is searched by a scan, without a hash index.
const SMALL_MAP: usize = 8;

/// A map: bindings in the order they were made, a hash index over them once it grows.
#[derive(Debug, Default)]
pub struct MapObj {
    entries: RefCell<Vec<(Key, Value, Value)>>,
    index: RefCell<FxHashMap<Key, usize>>,
    /// Tags (a block), if any.
    pub tags: RefCell<Option<Value>>,
    /// For a module read from an image: its name, and the names already asked for.
    pub lazy: Option<LazyModule>,
    /// Whether this is the root map (its bindings are not recorded by
    /// [`Sym::bound_outside_root`]).
    root: bool,
    /// The root map only: the entry of each word's symbol (`u32::MAX` for none), so that the
    /// lookups most code makes, of primitives and top-level definitions, index a vector.
    by_sym: RefCell<Vec<u32>>,
}

/// A module whose definitions are read from the image on first use.
#[derive(Debug)]
pub struct LazyModule {
    /// The module's name.
    pub name: Rc<str>,
    /// Names already read (or found missing), never asked for again.
    pub asked: RefCell<rustc_hash::FxHashSet<Sym>>,
}

impl MapObj {
    /// An empty map.
    pub fn new() -> Rc<MapObj> {
        Rc::new(MapObj::default())
    }

    /// The root map of a system: names bound only here are looked up here directly.
    pub fn root() -> Rc<MapObj> {
        Rc::new(MapObj {
            root: true,
            ..MapObj::default()
        })
    }

    /// An empty map for the image's module `name`: its definitions are read on first use.
    pub fn lazy_module(name: &str) -> Rc<MapObj> {
        Rc::new(MapObj {
            lazy: Some(LazyModule {
                name: name.into(),
                asked: RefCell::default(),
            }),
            ..MapObj::default()
        })
    }

    /// Where `key` is in `entries`: a scan while the map is small (most activations' locals),
    /// the hash index once it grows.
    #[inline]
    fn position(&self, key: &Key) -> Option<usize> {
        if self.root
            && let Key::Word(sym) = key
        {
            let by_sym = self.by_sym.borrow();
            return match by_sym.get(sym.0 as usize) {
                Some(&i) if i != u32::MAX => Some(i as usize),
                _ => None,
            };
        }
        let entries = self.entries.borrow();
        if entries.len() <= SMALL_MAP {
            // A word (most keys of locals) compares its symbol alone.
            if let Key::Word(sym) = key {
                return entries
                    .iter()
                    .position(|e| matches!(e.0, Key::Word(s) if s == *sym));
            }
            return entries.iter().position(|e| e.0 == *key);
        }
        drop(entries);
        self.index.borrow().get(key).copied()
    }

    /// The value bound to `key`.
    #[inline]
    pub fn get(&self, key: &Key) -> Option<Value> {
        // A small map other than the root (most locals) is scanned under one borrow.
        if !self.root {
            let entries = self.entries.borrow();
            if entries.len() <= SMALL_MAP {
                let found = match key {
                    Key::Word(sym) => entries
                        .iter()
                        .find(|e| matches!(e.0, Key::Word(s) if s == *sym)),
                    _ => entries.iter().find(|e| e.0 == *key),
                };
                return found.map(|e| e.2.clone());
            }
        }
        let i = self.position(key)?;
        self.entries.borrow().get(i).map(|e| e.2.clone())
    }

    /// Whether `key` is bound.
    pub fn contains(&self, key: &Key) -> bool {
        self.position(key).is_some()
    }

    /// Binds `key` (made from `key_value`) to `value`, replacing an existing binding in place.
    pub fn set(&self, key: Key, key_value: Value, value: Value) {
        if self.root {
            definitions_changed();
        }
        if let Some(i) = self.position(&key) {
            let mut entries = self.entries.borrow_mut();
            entries[i].1 = key_value;
            entries[i].2 = value;
            return;
        }
        if !self.root
            && let Key::Word(sym) = key
            && !sym.bound_outside_root()
        {
            sym.mark_outside_root();
        }
        let mut entries = self.entries.borrow_mut();
        if self.root
            && let Key::Word(sym) = key
        {
            let mut by_sym = self.by_sym.borrow_mut();
            let s = sym.0 as usize;
            if by_sym.len() <= s {
                by_sym.resize(s + 1, u32::MAX);
            }
            by_sym[s] = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        }
        entries.push((key, key_value, value));
        let len = entries.len();
        let mut index = self.index.borrow_mut();
        if len == SMALL_MAP + 1 {
            index.clear();
            index.extend(entries.iter().enumerate().map(|(i, e)| (e.0.clone(), i)));
        } else if len > SMALL_MAP + 1 {
            index.insert(entries[len - 1].0.clone(), len - 1);
        }
    }

    /// [`set`](Self::set) on a map known to be empty and not the root map (a pooled locals
    /// map): the binding is added without looking for one to replace.
    #[inline]
    pub fn add_new(&self, key: Key, key_value: Value, value: Value) {
        let mut entries = self.entries.borrow_mut();
        if self.root || self.lazy.is_some() || !entries.is_empty() {
            drop(entries);
            self.set(key, key_value, value);
            return;
        }
        // A word remembers once its name was bound outside the root map: no need to ask the
        // thread's table again.
        let known = matches!(&key_value, Value::Word(w) if w.bound_outside_root());
        if !known
            && let Key::Word(sym) = key
            && !sym.bound_outside_root()
        {
            sym.mark_outside_root();
        }
        entries.push((key, key_value, value));
    }

    /// Changes an existing binding; false when there is none.
    pub fn assign(&self, key: &Key, value: Value) -> bool {
        match self.position(key) {
            Some(i) => {
                let mut entries = self.entries.borrow_mut();
                // A number changed in place (a counter at the top level) leaves the word
                // caches valid: they never hold numbers.
                if self.root && (WordCache::may_hold(&entries[i].2) || WordCache::may_hold(&value))
                {
                    definitions_changed();
                }
                let old = std::mem::replace(&mut entries[i].2, value);
                drop(entries);
                drop(old);
                true
            }
            None => false,
        }
    }

    /// Removes a binding.
    pub fn remove(&self, key: &Key) {
        if self.root {
            definitions_changed();
        }
        let Some(i) = self.position(key) else {
            return;
        };
        let mut entries = self.entries.borrow_mut();
        entries.remove(i);
        let mut index = self.index.borrow_mut();
        index.clear();
        if entries.len() > SMALL_MAP {
            index.extend(entries.iter().enumerate().map(|(i, e)| (e.0.clone(), i)));
        }
        if self.root {
            let mut by_sym = self.by_sym.borrow_mut();
            by_sym.fill(u32::MAX);
            for (i, entry) in entries.iter().enumerate() {
                if let Key::Word(sym) = entry.0
                    && let Some(slot) = by_sym.get_mut(sym.0 as usize)
                {
                    *slot = u32::try_from(i).unwrap_or(u32::MAX);
                }
            }
        }
    }

    /// The number of bindings.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether there are no bindings.
    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    /// The bindings: key value and value, in order.
    pub fn bindings(&self) -> Vec<(Value, Value)> {
        self.entries
            .borrow()
            .iter()
            .map(|e| (e.1.clone(), e.2.clone()))
            .collect()
    }

    /// Calls `f` on each bound value, in order (the map must not change meanwhile).
    pub fn for_each_value(&self, mut f: impl FnMut(&Value)) {
        for entry in self.entries.borrow().iter() {
            f(&entry.2);
        }
    }

    /// Empties a small plain map for reuse (an activation's locals); false, leaving it as it
    /// is, for a module's map or one grown past a scan.
    pub fn reset(&mut self) -> bool {
        if self.lazy.is_some() || self.entries.get_mut().len() > SMALL_MAP {
            return false;
        }
        self.entries.get_mut().clear();
        self.index.get_mut().clear();
        *self.tags.get_mut() = None;
        true
    }

    /// A copy with the same bindings (values shared).
    pub fn copy(&self) -> Rc<MapObj> {
        if self.root {
            for entry in self.entries.borrow().iter() {
                if let Key::Word(sym) = entry.0 {
                    sym.mark_outside_root();
                }
            }
        }
        Rc::new(MapObj {
            entries: RefCell::new(self.entries.borrow().clone()),
            index: RefCell::new(self.index.borrow().clone()),
            tags: RefCell::new(None),
            lazy: None,
            root: false,
            by_sym: RefCell::default(),
        })
    }
}

impl Value {
    /// A string value.
    pub fn str(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Str(Rc::new(StrObj {
            bytes: RefCell::new(bytes.into()),
            tags: RefCell::new(None),
        }))
    }

    /// A word value.
    pub fn word(kind: WordKind, name: &str) -> Value {
        let (module, name) = match kind {
            WordKind::Module | WordKind::GetModule => match name.split_once("::") {
                Some((m, n)) => (Some(Rc::from(m)), n),
                None => (None, name),
            },
            _ => (None, name),
        };
        Value::Word(Rc::new(WordObj::new(
            kind,
            name.into(),
            module,
            Sym::of(name),
        )))
    }

    /// A block of `items`.
    pub fn block(items: Vec<Value>) -> Value {
        Value::Block(Seq::new(items))
    }

    /// The key this value is when used as a map key.
    pub fn key(&self) -> Key {
        match self {
            Value::Nil => Key::Nil,
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::Float(f) => Key::Float(f.to_bits()),
            Value::Str(s) => Key::Str(s.bytes.borrow().clone()),
            Value::Word(w) => Key::Word(w.sym),
            Value::Boxed(b) => b.value.key(),
            other => Key::Ref(other.identity()),
        }
    }

    /// An address for identity comparison (0 for immediates).
    pub fn identity(&self) -> usize {
        match self {
            Value::Str(r) => Rc::as_ptr(r) as usize,
            Value::Word(r) => Rc::as_ptr(r) as usize,
            Value::Block(r) | Value::Paren(r) | Value::Curly(r) => Rc::as_ptr(r) as usize,
            Value::Map(r) => Rc::as_ptr(r) as usize,
            Value::Func(r) | Value::Method(r) | Value::Poly(r) => Rc::as_ptr(r) as usize,
            Value::Prim(r) => Rc::as_ptr(r) as usize,
            Value::Binding(r) => Rc::as_ptr(r) as usize,
            Value::Activation(r) => Rc::as_ptr(r) as usize,
            Value::Boxed(r) => Rc::as_ptr(r) as usize,
            _ => 0,
        }
    }

    /// The sequence of a block, paren, curly or function.
    pub fn seq(&self) -> Option<&Rc<Seq>> {
        match self {
            Value::Block(s) | Value::Paren(s) | Value::Curly(s) => Some(s),
            Value::Func(c) | Value::Method(c) | Value::Poly(c) => Some(&c.body),
            _ => None,
        }
    }

    /// The tags slot of a value that can carry tags.
    pub fn tags_slot(&self) -> Option<&RefCell<Option<Value>>> {
        match self {
            Value::Str(s) => Some(&s.tags),
            Value::Block(s) | Value::Paren(s) | Value::Curly(s) => Some(&s.tags),
            Value::Func(c) | Value::Method(c) | Value::Poly(c) => Some(&c.body.tags),
            Value::Map(m) => Some(&m.tags),
            Value::Boxed(b) => Some(&b.tags),
            _ => None,
        }
    }

    /// The value itself, or the value inside a [`Value::Boxed`].
    #[inline]
    pub fn unboxed(self) -> Value {
        match self {
            Value::Boxed(b) => b.value.clone(),
            other => other,
        }
    }

    /// Whether this is a method (it takes the value on its left).
    #[inline]
    pub fn is_method(&self) -> bool {
        match self {
            Value::Method(_) | Value::Poly(_) => true,
            Value::Prim(p) => p.method,
            _ => false,
        }
    }

    /// The type name `type` answers (as the reference names them).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "novalue",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Word(w) => match w.kind {
                WordKind::Eval => "evalword",
                WordKind::Module => "evalmoduleword",
                WordKind::SelfWord => "evalselfword",
                WordKind::Get => "getword",
                WordKind::GetModule => "getmoduleword",
                WordKind::GetSelf => "getselfword",
                WordKind::Literal => "litword",
                WordKind::Arg => "evalargword",
                WordKind::GetArg => "getargword",
            },
            Value::Block(_) => "block",
            Value::Paren(_) => "paren",
            Value::Curly(_) => "curly",
            Value::Map(_) => "map",
            Value::Func(_) => "func",
            Value::Method(_) => "method",
            Value::Poly(_) => "polymethod",
            Value::Prim(p) if p.method => "primitive-method",
            Value::Prim(_) => "primitive-func",
            Value::Binding(_) => "binding",
            Value::Activation(_) => "activation",
            Value::Boxed(b) => b.value.type_name(),
        }
    }
}

/// Writes `bytes` as a Spry string literal (quoted, `\\` and `\"` escaped, bytes outside
/// printable ASCII as `\xHH`), which reads back to the same bytes.
pub fn escape_into(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b' '..=b'~' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_caches_go_stale_on_every_definition_that_may_change_them() {
        let root = MapObj::root();
        let id = Rc::as_ptr(&root) as usize;
        let Value::Word(w) = Value::word(WordKind::Eval, "cached-word-test") else {
            panic!("a word");
        };
        let key = Key::Word(w.sym);
        root.set(key.clone(), Value::Nil, Value::Bool(true));
        w.cache.set(id, &root.get(&key));
        assert!(matches!(w.cache.get(id), Some(Some(Value::Bool(true)))));
        // Another root map never sees it.
        assert!(w.cache.get(id + 1).is_none());
        // A binding anywhere in the root map, even of another name.
        root.set(Key::word("another-word-test"), Value::Nil, Value::Int(1));
        assert!(w.cache.get(id).is_none());
        w.cache.set(id, &root.get(&key));
        // A number changed in place leaves it; a change to or from what a cache may hold not.
        root.assign(&Key::word("another-word-test"), Value::Int(2));
        assert!(w.cache.get(id).is_some());
        root.assign(&key, Value::Bool(false));
        assert!(w.cache.get(id).is_none());
        w.cache.set(id, &root.get(&key));
        // The name bound in a locals map for the first time.
        MapObj::new().set(key.clone(), Value::Nil, Value::Int(3));
        assert!(w.cache.get(id).is_none());
        // Numbers and other values are never cached; functions only weakly.
        w.cache.set(id, &Some(Value::Int(4)));
        assert!(w.cache.get(id).is_none());
        let f = Rc::new(Closure::new(Seq::new(Vec::new()), None));
        w.cache.set(id, &Some(Value::Func(f.clone())));
        assert!(matches!(w.cache.get(id), Some(Some(Value::Func(_)))));
        drop(f);
        assert!(w.cache.get(id).is_none());
        // Removal.
        w.cache.set(id, &None);
        assert!(matches!(w.cache.get(id), Some(None)));
        root.remove(&key);
        assert!(w.cache.get(id).is_none());
    }

    #[test]
    fn names_bound_outside_the_root_map_are_recorded() {
        // Names of their own, so that other tests on this thread do not mark them first.
        let only_root = Sym::of("only-in-the-root-map-test");
        let local = Sym::of("bound-in-a-locals-map-test");
        let copied = Sym::of("copied-from-the-root-map-test");
        let root = MapObj::root();
        root.set(Key::Word(only_root), Value::Nil, Value::Int(1));
        root.set(Key::Word(local), Value::Nil, Value::Int(2));
        assert!(!only_root.bound_outside_root());
        assert!(!local.bound_outside_root());
        assert_eq!(
            root.get(&Key::Word(local)).map(|v| v.key()),
            Some(Key::Int(2))
        );

        let locals = MapObj::new();
        locals.set(Key::Word(local), Value::Nil, Value::Int(3));
        assert!(local.bound_outside_root());
        assert!(!only_root.bound_outside_root());

        root.set(Key::Word(copied), Value::Nil, Value::Int(4));
        let copy = root.copy();
        assert!(copied.bound_outside_root());
        assert!(only_root.bound_outside_root());
        assert_eq!(
            copy.get(&Key::Word(copied)).map(|v| v.key()),
            Some(Key::Int(4))
        );

        // Removing from the root map keeps every other word's entry found by its symbol.
        root.remove(&Key::Word(only_root));
        assert!(root.get(&Key::Word(only_root)).is_none());
        assert_eq!(
            root.get(&Key::Word(copied)).map(|v| v.key()),
            Some(Key::Int(4))
        );
    }
}
