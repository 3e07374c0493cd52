//! Time: `timeToRun` and `cpuTimeToRun` (milliseconds a block takes, wall and processor, as a
//! float) and `sleep` (milliseconds). The reference's `shell` runs other programs, which is
//! beyond files: it is left out, as the README says.

use std::time::{Duration, Instant};

use super::super::value::Value;
use super::super::{EvalError, EvalResult, Interp};
use super::int;

pub(super) const PRIMITIVES: super::Table = &[
    ("timeToRun", true, time_to_run),
    ("cpuTimeToRun", true, cpu_time_to_run),
    ("sleep", false, sleep),
];

/// Runs the block on the left; the milliseconds `clock` counted meanwhile.
fn timed(spry: &mut Interp<'_>, clock: fn() -> EvalResult<Duration>) -> EvalResult<Value> {
    let code = spry.infix_arg()?;
    let start = clock()?;
    spry.run(&code, Vec::new())?;
    let spent = clock()?.saturating_sub(start);
    Ok(Value::Float(spent.as_secs_f64() * 1000.0))
}

fn time_to_run(spry: &mut Interp<'_>) -> EvalResult<Value> {
    // Measured from one instant fixed at the first use: only differences count.
    fn since_start() -> EvalResult<Duration> {
        thread_local! { static START: Instant = Instant::now(); }
        Ok(START.with(Instant::elapsed))
    }
    timed(spry, since_start)
}

/// The evaluating thread's processor time, which Linux gives in `/proc/thread-self/schedstat`
/// (nanoseconds on a processor, first).
fn thread_cpu_time() -> EvalResult<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").map_err(|e| {
        EvalError::runtime(format!(
            "cpuTimeToRun cannot read the processor time (/proc/thread-self/schedstat): {e}"
        ))
    })?;
    let nanos = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            EvalError::runtime("cpuTimeToRun: /proc/thread-self/schedstat is unreadable")
        })?;
    Ok(Duration::from_nanos(nanos))
}

fn cpu_time_to_run(spry: &mut Interp<'_>) -> EvalResult<Value> {
    timed(spry, thread_cpu_time)
}

fn sleep(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let ms = int("sleep", &spry.arg()?)?;
    std::thread::sleep(Duration::from_millis(ms.max(0).unsigned_abs()));
    Ok(Value::Nil)
}
