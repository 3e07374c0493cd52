//! Reference cycles that run through several activations, found and broken.
//!
//! A function holds the activation it was made in, and an activation holds, in its locals, the
//! functions made there: a cycle, which reference counting alone never frees. The interpreter
//! breaks the simple case (one activation and the closures it made, nothing else holding them)
//! as each activation finishes; what is still held then is kept as a suspect. Closures made in
//! one activation and kept in another (a function that calls a function that makes one) tie
//! several activations together, which that one-activation check can never free. This module
//! looks at all the suspects at once, the way a trial-deletion cycle collector does: it walks
//! what the suspects hold (locals maps, the closures in them, the activations those closures and
//! activations were made in), counts for each object the references coming from inside that
//! graph, and takes every object with more holders than that as reached from outside. What such
//! an object reaches is alive; the activations left over are garbage, and emptying their locals
//! frees them. It never frees what it cannot account for: a holder it does not walk (a block, a
//! receiver, a module's map) counts as outside, so the object stays.

use std::rc::{Rc, Weak};

use rustc_hash::FxHashMap;

use super::frame::{Frame, FrameKind};
use super::value::{Closure, MapObj, Value};

/// Past this many objects a collection gives up for now (the suspects stay for the next).
const MAX_NODES: usize = 1 << 20;

/// One object of the graph, held once (the collection's own reference is counted out).
enum Node {
    Frame(Rc<Frame>),
    Map(Rc<MapObj>),
    Closure(Rc<Closure>),
}

impl Node {
    fn strong_count(&self) -> usize {
        match self {
            Node::Frame(f) => Rc::strong_count(f),
            Node::Map(m) => Rc::strong_count(m),
            Node::Closure(c) => Rc::strong_count(c),
        }
    }
}

fn address<T>(rc: &Rc<T>) -> usize {
    Rc::as_ptr(rc).cast::<u8>() as usize
}

#[derive(Default)]
struct Graph {
    index: FxHashMap<usize, usize>,
    nodes: Vec<Node>,
    edges: Vec<Vec<usize>>,
}

impl Graph {
    /// The index of the object, added (and queued for its own edges) if new.
    fn add(&mut self, key: usize, make: impl FnOnce() -> Node, queue: &mut Vec<usize>) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(make());
        self.edges.push(Vec::new());
        self.index.insert(key, i);
        queue.push(i);
        i
    }

    fn frame(&mut self, f: &Rc<Frame>, queue: &mut Vec<usize>) -> Option<usize> {
        // The top level and a curly's activation (a module being read) are held from outside
        // by the interpreter or by the map they make: not walked.
        if matches!(f.kind, FrameKind::Root | FrameKind::Curly) {
            return None;
        }
        Some(self.add(address(f), || Node::Frame(f.clone()), queue))
    }

    fn value(&mut self, v: &Value, queue: &mut Vec<usize>) -> Option<usize> {
        match v {
            Value::Func(c) | Value::Method(c) | Value::Poly(c) => {
                Some(self.add(address(c), || Node::Closure(c.clone()), queue))
            }
            Value::Activation(f) => self.frame(f, queue),
            // An object's map may hold closures too; a module's map is held by the system.
            Value::Map(m) if m.lazy.is_none() => {
                Some(self.add(address(m), || Node::Map(m.clone()), queue))
            }
            _ => None,
        }
    }

    /// The objects node `i` holds, added to the graph.
    fn expand(&mut self, i: usize, queue: &mut Vec<usize>) {
        let mut out = Vec::new();
        match &self.nodes[i] {
            Node::Frame(f) => {
                let f = f.clone();
                let locals = f.locals.borrow().clone();
                if let Some(m) = locals {
                    out.push(self.add(address(&m), || Node::Map(m.clone()), queue));
                }
                for held in [&f.outer, &f.parent].into_iter().flatten() {
                    out.extend(self.frame(held, queue));
                }
            }
            Node::Map(m) => {
                let m = m.clone();
                let mut values = Vec::new();
                m.for_each_value(|v| values.push(v.clone()));
                for v in &values {
                    out.extend(self.value(v, queue));
                }
            }
            Node::Closure(c) => {
                let c = c.clone();
                if let Some(o) = &c.outer {
                    out.extend(self.frame(o, queue));
                }
            }
        }
        self.edges[i] = out;
    }
}

/// Frees the activations among `suspects` (and those they hold) that only cycles among
/// themselves still reach; keeps the suspects that something outside holds.
pub(crate) fn collect(suspects: &mut Vec<Weak<Frame>>) {
    let mut graph = Graph::default();
    let mut queue = Vec::new();
    suspects.retain(|weak| match weak.upgrade() {
        Some(f) => {
            graph.frame(&f, &mut queue);
            true
        }
        None => false,
    });
    while let Some(i) = queue.pop() {
        if graph.nodes.len() > MAX_NODES {
            return;
        }
        graph.expand(i, &mut queue);
    }
    // References from inside the graph, one per edge (each edge is a field or an entry that
    // holds the object).
    let mut inside = vec![0usize; graph.nodes.len()];
    for edges in &graph.edges {
        for &j in edges {
            inside[j] += 1;
        }
    }
    // Held from outside: more holders than the graph's references and the collection's own.
    let mut alive: Vec<bool> = graph
        .nodes
        .iter()
        .zip(&inside)
        .map(|(node, &inside)| node.strong_count() > inside + 1)
        .collect();
    let mut stack: Vec<usize> = (0..alive.len()).filter(|&i| alive[i]).collect();
    while let Some(i) = stack.pop() {
        for &j in &graph.edges[i] {
            if !alive[j] {
                alive[j] = true;
                stack.push(j);
            }
        }
    }
    let garbage: Vec<Rc<Frame>> = graph
        .nodes
        .iter()
        .zip(&alive)
        .filter_map(|(node, &alive)| match node {
            Node::Frame(f) if !alive => Some(f.clone()),
            _ => None,
        })
        .collect();
    drop(graph);
    for frame in &garbage {
        let taken = frame.locals.borrow_mut().take();
        drop(taken);
    }
    drop(garbage);
    suspects.retain(|weak| weak.strong_count() > 0);
}
