//! Numbers: arithmetic and comparison across integers and floats (an integer meeting a float
//! becomes one), and the reference's math words. Integer overflow is an error, never a wrap.

use super::super::print::short as repr;
use super::super::value::{IntOp, Value};
use super::super::{EvalError, EvalResult, Interp};
use super::{expected, int};

pub(super) const PRIMITIVES: super::Table = &[
    ("+", true, plus),
    ("-", true, minus),
    ("*", true, times),
    ("/", true, divide),
    ("<", true, less),
    (">", true, greater),
    ("<=", true, less_eq),
    (">=", true, greater_eq),
    ("negated", true, negated),
    ("mod", true, modulo),
    ("sqrt", true, sqrt),
    ("sin", true, sin),
    ("cos", true, cos),
    ("arcCos", true, arc_cos),
    ("fac", true, fac),
    ("binom", true, binom),
    ("powerOfTwo?", true, power_of_two),
    ("nextPowerOfTwo", true, next_power_of_two),
    ("random", true, random),
];

enum Pair {
    Ints(i64, i64),
    Floats(f64, f64),
}

fn pair(op: &str, a: &Value, b: &Value) -> EvalResult<Pair> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Pair::Ints(*x, *y),
        (Value::Int(x), Value::Float(y)) => Pair::Floats(*x as f64, *y),
        (Value::Float(x), Value::Int(y)) => Pair::Floats(*x, *y as f64),
        (Value::Float(x), Value::Float(y)) => Pair::Floats(*x, *y),
        _ => {
            return Err(EvalError::runtime(format!(
                "cannot evaluate {} {op} {}",
                repr(a),
                repr(b)
            )));
        }
    })
}

fn operands(spry: &mut Interp<'_>) -> EvalResult<(Value, Value)> {
    let a = spry.infix_arg()?;
    let b = spry.arg()?;
    Ok((a, b))
}

fn overflow(op: &str, x: i64, y: i64) -> EvalError {
    EvalError::runtime(format!("integer overflow: {x} {op} {y}"))
}

fn arith(
    a: &Value,
    b: &Value,
    op: &str,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> EvalResult<Value> {
    match pair(op, a, b)? {
        Pair::Ints(x, y) => int_op(x, y)
            .map(Value::Int)
            .ok_or_else(|| overflow(op, x, y)),
        Pair::Floats(x, y) => Ok(Value::Float(float_op(x, y))),
    }
}

/// `a op b` for the operators the node loop runs itself ([`IntOp`]), once both operands are
/// evaluated: the one place their primitives' rules live (the node loop calls it when the
/// operands are not two integers, or they overflow).
///
/// # Errors
/// Operands that are not numbers (two strings compare), or an integer overflow.
pub(crate) fn binary(op: IntOp, a: &Value, b: &Value) -> EvalResult<Value> {
    match op {
        IntOp::Add => arith(a, b, "+", i64::checked_add, |x, y| x + y),
        IntOp::Sub => arith(a, b, "-", i64::checked_sub, |x, y| x - y),
        IntOp::Mul => arith(a, b, "*", i64::checked_mul, |x, y| x * y),
        IntOp::Lt => compare(a, b, "<", |o| o.is_lt()),
        IntOp::Gt => compare(a, b, ">", |o| o.is_gt()),
        IntOp::Le => compare(a, b, "<=", |o| o.is_le()),
        IntOp::Ge => compare(a, b, ">=", |o| o.is_ge()),
    }
}

fn with_operands(spry: &mut Interp<'_>, op: IntOp) -> EvalResult<Value> {
    let (a, b) = operands(spry)?;
    binary(op, &a, &b)
}

fn plus(spry: &mut Interp<'_>) -> EvalResult<Value> {
    with_operands(spry, IntOp::Add)
}

fn minus(spry: &mut Interp<'_>) -> EvalResult<Value> {
    with_operands(spry, IntOp::Sub)
}

fn times(spry: &mut Interp<'_>) -> EvalResult<Value> {
    with_operands(spry, IntOp::Mul)
}

/// Integer division gives a float rounded to three decimals, as the reference does.
fn divide(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (a, b) = operands(spry)?;
    Ok(Value::Float(match pair("/", &a, &b)? {
        Pair::Ints(x, y) => {
            let q = x as f64 / y as f64;
            if q.is_finite() && q.abs() < 9.0e15 {
                ((q * 1000.0 + 0.5) as i64) as f64 / 1000.0
            } else {
                q
            }
        }
        Pair::Floats(x, y) => x / y,
    }))
}

fn compare(
    a: &Value,
    b: &Value,
    op: &str,
    test: fn(std::cmp::Ordering) -> bool,
) -> EvalResult<Value> {
    let order = match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.bytes.borrow().cmp(&y.bytes.borrow())),
        _ => match pair(op, a, b)? {
            Pair::Ints(x, y) => Some(x.cmp(&y)),
            Pair::Floats(x, y) => x.partial_cmp(&y),
        },
    };
    Ok(Value::Bool(order.is_some_and(test)))
}

fn less(spry: &mut Interp<'_>) -> EvalResult<Value> {
    with_operands(spry, IntOp::Lt)
}

fn greater(spry: &mut Interp<'_>) -> EvalResult<Value> {
    with_operands(spry, IntOp::Gt)
}

fn less_eq(spry: &mut Interp<'_>) -> EvalResult<Value> {
    with_operands(spry, IntOp::Le)
}

fn greater_eq(spry: &mut Interp<'_>) -> EvalResult<Value> {
    with_operands(spry, IntOp::Ge)
}

fn negated(spry: &mut Interp<'_>) -> EvalResult<Value> {
    match spry.infix_arg()? {
        Value::Int(i) => i
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| EvalError::runtime(format!("integer overflow: {i} negated"))),
        Value::Float(f) => Ok(Value::Float(-f)),
        other => Err(expected("negated", "a number", &other)),
    }
}

/// The remainder takes the dividend's sign (Nim's `mod`).
fn modulo(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let (a, b) = operands(spry)?;
    match pair("mod", &a, &b)? {
        Pair::Ints(_, 0) => Err(EvalError::runtime("mod by zero")),
        Pair::Ints(x, y) => Ok(Value::Int(x.checked_rem(y).unwrap_or(0))),
        Pair::Floats(x, y) => Ok(Value::Float(x % y)),
    }
}

fn float_of(word: &str, v: &Value) -> EvalResult<f64> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        other => Err(expected(word, "a number", other)),
    }
}

/// `n random`: an integer from 0 to `n` (both included), or a float from 0 to `n`, as the
/// reference's; from a generator seeded by the clock once per thread (xorshift: not for secrets).
fn random(spry: &mut Interp<'_>) -> EvalResult<Value> {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
                | 1,
        );
    }
    let next = STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    match spry.infix_arg()? {
        Value::Int(max) if max >= 0 => {
            let span = max.unsigned_abs().saturating_add(1);
            Ok(Value::Int((next % span) as i64))
        }
        Value::Float(max) => Ok(Value::Float(
            (next >> 11) as f64 / (1u64 << 53) as f64 * max,
        )),
        other => Err(expected("random", "a number of 0 or more", &other)),
    }
}

fn sqrt(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Float(float_of("sqrt", &spry.infix_arg()?)?.sqrt()))
}

fn sin(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Float(float_of("sin", &spry.infix_arg()?)?.sin()))
}

fn cos(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Float(float_of("cos", &spry.infix_arg()?)?.cos()))
}

/// Beyond the reference (spry-src's `Vector angleTo:` uses it): the angle in radians whose
/// cosine is the receiver, NaN outside -1..1 as `sqrt` of a negative number is.
fn arc_cos(spry: &mut Interp<'_>) -> EvalResult<Value> {
    Ok(Value::Float(float_of("arcCos", &spry.infix_arg()?)?.acos()))
}

fn fac(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let n = int("fac", &spry.infix_arg()?)?;
    let mut result: i64 = 1;
    for i in 2..=n.max(1) {
        result = result
            .checked_mul(i)
            .ok_or_else(|| EvalError::runtime(format!("integer overflow: {n} fac")))?;
    }
    Ok(Value::Int(result))
}

fn binom(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let n = int("binom", &spry.infix_arg()?)?;
    let k = int("binom", &spry.arg()?)?;
    if k < 0 || k > n {
        return Ok(Value::Int(0));
    }
    let k = k.min(n - k);
    let mut result: i128 = 1;
    for i in 0..k {
        result = result * i128::from(n - i) / i128::from(i + 1);
        if result > i128::from(i64::MAX) {
            return Err(EvalError::runtime(format!(
                "integer overflow: {n} binom {k}"
            )));
        }
    }
    Ok(Value::Int(result as i64))
}

fn power_of_two(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let n = int("powerOfTwo?", &spry.infix_arg()?)?;
    Ok(Value::Bool(n > 0 && (n & (n - 1)) == 0))
}

fn next_power_of_two(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let n = int("nextPowerOfTwo", &spry.infix_arg()?)?;
    if n <= 1 {
        return Ok(Value::Int(1));
    }
    u64::try_from(n)
        .ok()
        .and_then(u64::checked_next_power_of_two)
        .and_then(|p| i64::try_from(p).ok())
        .map(Value::Int)
        .ok_or_else(|| EvalError::runtime(format!("integer overflow: {n} nextPowerOfTwo")))
}
