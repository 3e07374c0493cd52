//! Output: `echo` (the human form and a newline), `probe` (the source form, passing the value
//! on). They write to the sink the caller of the evaluator gave.

use super::super::print::{form, repr};
use super::super::value::Value;
use super::super::{EvalError, EvalResult, Interp};

pub(super) const PRIMITIVES: super::Table = &[("echo", false, echo), ("probe", false, probe)];

fn emit(spry: &mut Interp<'_>, text: &str) -> EvalResult<()> {
    let out = spry.out();
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| EvalError::runtime(format!("cannot write the output: {e}")))
}

fn echo(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.arg()?;
    emit(spry, &form(&v))?;
    Ok(Value::Nil)
}

fn probe(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.arg()?;
    emit(spry, &repr(&v))?;
    Ok(v)
}
