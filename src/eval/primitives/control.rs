//! Control flow: `do`, `^`, conditionals, loops, `catcher:`/`throw`, `quit`, boolean logic.
//! A loop stops as soon as a `^` inside its body asked the running activation to return.

use super::super::error::ErrorKind;
use super::super::frame::skip_parens_caller;
use super::super::value::Value;
use super::super::{EvalError, EvalResult, Interp};
use super::{boolean, expected, int};

pub(super) const PRIMITIVES: super::Table = &[
    ("do", false, do_),
    ("^", false, ret),
    ("then:", true, then),
    ("else:", true, else_),
    ("then:else:", true, then_else),
    ("else:then:", true, else_then),
    ("repeat:", true, repeat),
    ("to:do:", true, to_do),
    ("to:by:do:", true, to_by_do),
    ("whileTrue:", true, while_true),
    ("whileFalse:", true, while_false),
    ("catcher:", true, catcher),
    ("throw", false, throw),
    ("quit", false, quit),
    ("not", true, not),
    ("and", true, and),
    ("or", true, or),
];

fn do_(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let code = spry.arg()?;
    spry.run(&code, Vec::new())
}

fn ret(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let value = spry.arg()?;
    spry.current.returned.set(true);
    Ok(value)
}

fn cond(spry: &mut Interp<'_>, word: &str) -> EvalResult<bool> {
    let v = spry.infix_arg()?;
    boolean(word, &v)
}

fn then(spry: &mut Interp<'_>) -> EvalResult<Value> {
    if cond(spry, "then:")? {
        let code = spry.arg()?;
        spry.run(&code, Vec::new())
    } else {
        spry.skip_arg()?;
        Ok(Value::Nil)
    }
}

fn else_(spry: &mut Interp<'_>) -> EvalResult<Value> {
    if cond(spry, "else:")? {
        spry.skip_arg()?;
        Ok(Value::Nil)
    } else {
        let code = spry.arg()?;
        spry.run(&code, Vec::new())
    }
}

fn either(spry: &mut Interp<'_>, first: bool) -> EvalResult<Value> {
    if first {
        let code = spry.arg()?;
        let result = spry.run(&code, Vec::new())?;
        spry.skip_arg()?;
        Ok(result)
    } else {
        spry.skip_arg()?;
        let code = spry.arg()?;
        spry.run(&code, Vec::new())
    }
}

fn then_else(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = cond(spry, "then:else:")?;
    either(spry, c)
}

fn else_then(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let c = cond(spry, "else:then:")?;
    either(spry, !c)
}

fn repeat(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let times = int("repeat:", &spry.infix_arg()?)?;
    let code = spry.arg()?;
    let mut result = Value::Nil;
    for _ in 0..times.max(0) {
        let (value, returned) = spry.run_body_of_loop(&code, [])?;
        result = value;
        if returned {
            break;
        }
    }
    Ok(result)
}

fn count(spry: &mut Interp<'_>, from: i64, to: i64, by: i64, code: &Value) -> EvalResult<Value> {
    if by == 0 {
        return Err(EvalError::runtime("to:by:do: with a step of 0 never ends"));
    }
    let mut i = from;
    while (by > 0 && i <= to) || (by < 0 && i >= to) {
        let (value, returned) = spry.run_body_of_loop(code, [Value::Int(i)])?;
        if returned {
            return Ok(value);
        }
        match i.checked_add(by) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(Value::Int(from))
}

fn to_do(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let from = int("to:do:", &spry.infix_arg()?)?;
    let to = int("to:do:", &spry.arg()?)?;
    let code = spry.arg()?;
    count(spry, from, to, 1, &code)
}

fn to_by_do(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let from = int("to:by:do:", &spry.infix_arg()?)?;
    let to = int("to:by:do:", &spry.arg()?)?;
    let by = int("to:by:do:", &spry.arg()?)?;
    let code = spry.arg()?;
    count(spry, from, to, by, &code)
}

fn while_(spry: &mut Interp<'_>, word: &str, until: bool) -> EvalResult<Value> {
    let test = spry.infix_arg()?;
    let body = spry.arg()?;
    loop {
        let (value, returned) = spry.run_body_of_loop(&test, [])?;
        if returned {
            return Ok(value);
        }
        if boolean(word, &value)? == until {
            return Ok(value);
        }
        let (value, returned) = spry.run_body_of_loop(&body, [])?;
        if returned {
            return Ok(value);
        }
    }
}

fn while_true(spry: &mut Interp<'_>) -> EvalResult<Value> {
    while_(spry, "whileTrue:", false)
}

fn while_false(spry: &mut Interp<'_>) -> EvalResult<Value> {
    while_(spry, "whileFalse:", true)
}

fn catcher(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let target = spry.infix_arg()?;
    let handler = spry.arg()?;
    match &target {
        Value::Activation(f) => {
            if handler.seq().is_some() {
                *f.catcher.borrow_mut() = Some(handler);
            }
            Ok(target)
        }
        other => Err(expected("catcher:", "an activation", other)),
    }
}

/// Runs the nearest catcher up the caller chain; its value is `throw`'s value (the reference's
/// throw resumes: it does not unwind).
fn throw(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let mut at = skip_parens_caller(&spry.current);
    while let Some(frame) = at {
        let handler = frame.catcher.borrow().clone();
        if let Some(handler) = handler {
            return spry.run(&handler, Vec::new());
        }
        at = frame.caller().as_ref().and_then(skip_parens_caller);
    }
    let thrown = spry.arg().unwrap_or_default();
    Err(EvalError::runtime(format!(
        "throw with no catcher: {}",
        super::super::print::short(&thrown)
    )))
}

fn quit(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let code = int("quit", &spry.arg()?)?;
    let code = i32::try_from(code).unwrap_or(1);
    Err(EvalError::new(
        ErrorKind::Quit(code),
        format!("quit {code}"),
    ))
}

fn not(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Bool(!cond(spry, "not")?))
}

fn and(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let a = cond(spry, "and")?;
    let b = spry.raw_arg()?;
    if !a {
        return Ok(Value::Bool(false));
    }
    let b = spry.eval(&b)?;
    Ok(Value::Bool(boolean("and", &b)?))
}

fn or(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let a = cond(spry, "or")?;
    let b = spry.raw_arg()?;
    if a {
        return Ok(Value::Bool(true));
    }
    let b = spry.eval(&b)?;
    Ok(Value::Bool(boolean("or", &b)?))
}
