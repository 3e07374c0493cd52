//! A Spry evaluator: runs Spry code read by [`crate::syntax`], with module definitions read
//! from an image by key, on first use, through the narrow [`Source`] trait.
//!
//! - [`value`]: values (Spry code is values too: blocks, words).
//! - `read`: the syntax layer's [`Ast`](crate::syntax::Ast) into values, with source offsets.
//! - `frame`: activations. `interp`: the evaluator ([`Interp`]) and its rules.
//! - `compiled`: functions of integer arithmetic compiled on their first call, run without
//!   activations, handed back to the interpreter for anything else.
//! - `primitives/`: the primitives by kind, and the prelude written in Spry.
//! - [`Source`]: where module definitions come from ([`Image`](crate::image::Image),
//!   [`MapSource`]).
//!
//! # Examples
//! ```
//! use spry_image::eval::{Interp, MapSource, Options, repr};
//! let mut source = MapSource::default();
//! source.insert("Geo", "square", "square = func [:x * x]");
//! let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
//! spry.set_source(Box::new(source));
//! let value = spry.eval_text("-e", b"Geo::square 7").unwrap();
//! assert_eq!(repr(&value), "49");
//! ```
//!
//! On a real image: build one from a tree, then run code that calls its modules. Only the
//! definitions the code touches are read from the image, by key.
//! ```
//! use spry_image::eval::{Interp, Options, repr};
//! use spry_image::{Image, NoProgress, build};
//! let dir = tempfile::tempdir()?;
//! std::fs::write(
//!     dir.path().join("geo.spry"),
//!     "{_meta = {name = 'Geo}\n  square = func [:x * x]\n  cube = func [:x * (square x)]\n}\n",
//! )?;
//! let mut image = Image::create(&dir.path().join(".spry-image"), dir.path())?;
//! build(&mut image, dir.path(), &Default::default(), &NoProgress)?;
//!
//! let mut out = Vec::new();
//! let mut spry = Interp::new(Options::default(), Box::new(&mut out));
//! spry.set_source(Box::new(&image));
//! let value = spry.eval_text("example", b"echo (Geo::cube 3) cube 2 + 1")?;
//! assert_eq!(repr(&value), "9");
//! // An error names the place and the call chain.
//! let error = spry.eval_text("example", b"Geo::square nil").unwrap_err();
//! assert!(error.to_string().contains("cannot evaluate nil * nil"), "{error}");
//! drop(spry);
//! assert_eq!(out, b"27\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod compiled;
mod cycles;
mod error;
mod frame;
mod interp;
mod loader;
mod primitives;
mod print;
mod read;
pub mod value;

pub use error::{ErrorDetails, ErrorKind, EvalError, Location, MAX_TRACE};
pub use frame::{Frame, FrameKind};
pub use interp::{DEFAULT_MAX_DEPTH, Interp, Options, STACK_SIZE};
pub use loader::{MapSource, Source};
pub use print::{form, repr};
pub use read::read_source;
pub use value::Value;

/// The result of evaluating Spry code.
pub type EvalResult<T> = Result<T, EvalError>;

/// Runs `f` on a thread with [`STACK_SIZE`] bytes of stack, so that Spry code nested up to the
/// depth limit ends in a Spry error (`stack overflow at depth N`), never in Rust's own.
///
/// # Errors
/// The thread cannot be started, or `f` panicked.
pub fn run_with_stack<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let handle = std::thread::Builder::new()
        .name("spry-eval".into())
        .stack_size(STACK_SIZE)
        .spawn(f)?;
    handle
        .join()
        .map_err(|_| std::io::Error::other("the evaluation thread panicked"))
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::value::{Key, MapObj, Seq, Sym, Value};
    use super::{Interp, Options, form, repr};

    fn run(code: &str) -> String {
        let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
        match spry.eval_text("test", code.as_bytes()) {
            Ok(v) => repr(&v),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn the_prelude_loads_cleanly() {
        let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
        let again = spry.eval_text("prelude", super::primitives::PRELUDE.as_bytes());
        assert!(again.is_ok(), "{again:?}");
        assert_eq!(run("[1 2 3] detect: [:x x > 1]"), "2");
    }

    #[test]
    fn symbols_are_equal_for_equal_names_only() {
        assert_eq!(Sym::of("alpha"), Sym::of("alpha"));
        assert_ne!(Sym::of("alpha"), Sym::of("beta"));
        assert_eq!(&*Sym::of("gamma").name(), "gamma");
    }

    #[test]
    fn maps_keep_order_and_find_keys_small_and_large() {
        let map = MapObj::new();
        for i in 0..40 {
            map.set(Key::Int(i), Value::Int(i), Value::Int(i * 10));
        }
        map.set(Key::Int(3), Value::Int(3), Value::Int(-1));
        assert_eq!(map.len(), 40);
        assert!(matches!(map.get(&Key::Int(3)), Some(Value::Int(-1))));
        assert!(matches!(map.get(&Key::Int(39)), Some(Value::Int(390))));
        map.remove(&Key::Int(0));
        assert!(map.get(&Key::Int(0)).is_none());
        assert!(matches!(map.get(&Key::Int(39)), Some(Value::Int(390))));
        // Shrunk back below the index threshold, it still finds every key.
        for i in 1..35 {
            map.remove(&Key::Int(i));
        }
        assert!(matches!(map.get(&Key::Int(36)), Some(Value::Int(360))));
        assert!(!map.assign(&Key::Int(2), Value::Nil));
        assert_eq!(map.bindings().len(), 5);
    }

    #[test]
    fn words_of_every_kind_are_one_key() {
        let m = run("m = {x = 1} m at: (reify ':x) put: 2 m at: (reify '$x) put: 3 m");
        assert_eq!(m, "{$x = 3}");
        // A literal word's name is everything after its quote: `':x` is the word `:x`.
        assert_eq!(run("m = {x = 1} m at: ':x put: 2 m size"), "2");
    }

    #[test]
    fn a_chain_of_a_million_blocks_drops_and_prints_without_recursing_deeply() {
        let mut v = Value::block(Vec::new());
        for _ in 0..1_000_000 {
            v = Value::block(vec![v]);
        }
        let shown = repr(&v);
        assert!(
            shown.contains("[...]"),
            "the printer stops at its depth cap"
        );
        assert!(
            shown.len() < 4 * super::print::MAX_PRINT_DEPTH,
            "{}",
            shown.len()
        );
        assert!(form(&v).len() <= shown.len());
        drop(v);
    }

    #[test]
    fn a_cyclic_block_prints_a_bounded_text() {
        let seq = Seq::new(Vec::new());
        let block = Value::Block(seq.clone());
        seq.items.borrow_mut().push(block.clone());
        seq.items.borrow_mut().push(block.clone());
        let shown = repr(&block);
        assert!(
            shown.len() < (super::print::MAX_PRINT_LEN * 2),
            "{}",
            shown.len()
        );
        // Break the cycle so the test does not leak.
        seq.items.borrow_mut().clear();
        assert_eq!(Rc::strong_count(&seq), 2);
    }

    #[test]
    fn equality_of_deeply_nested_blocks_is_iterative() {
        let code = format!(
            "{}1{} == {}1{}",
            "[".repeat(50_000),
            "]".repeat(50_000),
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert_eq!(run(&code), "true");
    }

    #[test]
    fn functions_close_over_their_activation_and_blocks_do_not() {
        assert_eq!(
            run("make = func [:a func [a + :b]] add2 = make 2 add2 5"),
            "7"
        );
        assert_eq!(run("x = 1 f = func [:blk x = 2 do blk] f [x]"), "2");
    }

    #[test]
    fn a_returned_closure_and_the_activation_it_holds_are_freed_once_dropped() {
        let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
        let code = "make = func [:a f = func [a + :b] $f] h = make 1 $h";
        let Ok(Value::Func(closure)) = spry.eval_text("test", code.as_bytes()) else {
            panic!("make returns a function");
        };
        let maker = Rc::downgrade(closure.outer.as_ref().expect("made in make's activation"));
        drop(closure);
        // The closure and make's activation hold each other; only `h` reaches them.
        assert!(maker.upgrade().is_some());
        let again = "h := nil 1 to: 3000 do: [:i g = make i g 2]";
        assert!(spry.eval_text("test", again.as_bytes()).is_ok());
        assert!(maker.upgrade().is_none(), "the cycle was not freed");
    }

    #[test]
    fn a_cycle_through_several_activations_is_freed_once_dropped() {
        // make's activation holds inner (made there) and h, a closure made in inner's
        // activation, which was made in make's: two activations and two closures in a cycle.
        let mut spry = Interp::new(Options::default(), Box::new(std::io::sink()));
        let code = "make = func [:a \
            inner = func [:x g = func [x + a + :y] $g] \
            h = (inner 1) \
            $inner] \
            k = make 1 $k";
        let Ok(Value::Func(inner)) = spry.eval_text("test", code.as_bytes()) else {
            panic!("make returns a function");
        };
        let maker = Rc::downgrade(inner.outer.as_ref().expect("made in make's activation"));
        drop(inner);
        assert!(maker.upgrade().is_some());
        // Many more such cycles, each dropped at the next turn: they are looked at in batches.
        let again = "k := nil n = 0 1 to: 5000 do: [:i k := make i n := (n + ((k 2) 3))] n";
        let n = spry.eval_text("test", again.as_bytes());
        assert!(matches!(n, Ok(Value::Int(_))), "{n:?}");
        assert!(maker.upgrade().is_none(), "the cycle was not freed");
    }

    #[test]
    fn returns_stop_the_enclosing_function_only() {
        assert_eq!(run("f = func [[true] whileTrue: [^ 5] 6] f + 1"), "6");
        assert_eq!(
            run("g = func [1 to: 10 do: [:i i == 3 then: [^ i]] 0] g"),
            "3"
        );
    }

    #[test]
    fn arithmetic_errors_are_spry_errors() {
        assert_eq!(run("1 + nil"), "error: test:1:3: cannot evaluate 1 + nil");
        assert!(run("9223372036854775807 * 2").contains("integer overflow"));
        assert!(run("[1] at: -1").contains("out of bounds"));
    }
}
