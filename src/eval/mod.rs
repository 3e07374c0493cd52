//! A Spry evaluator: runs Spry code read by [`crate::syntax`], with module definitions read
//! from an image by key, on first use, through the narrow [`Source`] trait.
//!
//! - [`value`]: values (Spry code is values too: blocks, words).
//! - `read`: the syntax layer's [`Ast`](crate::syntax::Ast) into values, with source offsets.
//! - `frame`: activations. `interp`: the evaluator ([`Interp`]) and its rules.
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

mod error;
mod frame;
mod interp;
mod loader;
mod primitives;
mod print;
mod read;
pub mod value;

pub use error::{ErrorKind, EvalError, Location, MAX_TRACE};
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
