//! How values print: `repr` as the reference's `$` (what `probe` and a result show), `form` as
//! its `print` (what `echo` shows: strings without quotes, blocks without brackets).
//!
//! Printing nests by hand-rolled recursion bounded in depth and in length: a value nested deeper
//! than [`MAX_PRINT_DEPTH`] prints `...` there, and a cyclic block (`b add: b`) stops at
//! [`MAX_PRINT_LEN`] bytes.

use std::fmt::Write as _;

use super::frame::FrameKind;
use super::value::Value;
use crate::syntax::{WordKind, format_float};

/// Deeper than this, a nested value prints as `...`.
pub const MAX_PRINT_DEPTH: usize = 512;
/// Longer than this, printing stops with `...`.
pub const MAX_PRINT_LEN: usize = 1 << 20;

/// The reference's `$`: the value as source.
pub fn repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(value, &mut out, 0);
    out
}

/// [`repr`] cut to 60 characters, for error messages.
pub fn short(value: &Value) -> String {
    let mut shown = repr(value);
    if shown.len() > 60 {
        let mut cut = 60;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    shown
}

/// The reference's `print`: strings raw, a block's nodes without brackets (nested blocks too).
pub fn form(value: &Value) -> String {
    let mut out = String::new();
    write_form(value, &mut out, 0);
    out
}

fn write_form(value: &Value, out: &mut String, depth: usize) {
    if depth > MAX_PRINT_DEPTH || out.len() > MAX_PRINT_LEN {
        out.push_str("...");
        return;
    }
    match value {
        Value::Str(s) => out.push_str(&String::from_utf8_lossy(&s.bytes.borrow())),
        Value::Boxed(b) => write_form(&b.value, out, depth + 1),
        Value::Block(s) => {
            for (i, v) in s.items.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                if out.len() > MAX_PRINT_LEN {
                    out.push_str("...");
                    return;
                }
                write_form(v, out, depth + 1);
            }
        }
        other => write_repr(other, out, depth),
    }
}

/// A string as Nim's `escape` writes it: quoted, `\\ \" \'` escaped, other bytes outside
/// printable ASCII as `\xHH`.
pub fn escape(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\'' => out.push_str("\\'"),
            b' '..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
    out.push('"');
}

fn write_float(f: f64, out: &mut String) {
    format_float(f, out);
}

fn write_nodes(items: &[Value], out: &mut String, depth: usize) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if out.len() > MAX_PRINT_LEN {
            out.push_str("...");
            return;
        }
        write_repr(v, out, depth + 1);
    }
}

fn write_repr(value: &Value, out: &mut String, depth: usize) {
    if depth > MAX_PRINT_DEPTH || out.len() > MAX_PRINT_LEN {
        out.push_str("...");
        return;
    }
    match value {
        Value::Nil => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => write_float(*f, out),
        Value::Str(s) => escape(&s.bytes.borrow(), out),
        Value::Word(w) => {
            let sigil = match w.kind {
                WordKind::Eval | WordKind::Module => "",
                WordKind::SelfWord => "@",
                WordKind::Get | WordKind::GetModule => "$",
                WordKind::GetSelf => "$@",
                WordKind::Literal => "'",
                WordKind::Arg => ":",
                WordKind::GetArg => ":$",
            };
            out.push_str(sigil);
            if let Some(m) = &w.module {
                out.push_str(m);
                out.push_str("::");
            }
            out.push_str(&w.name);
        }
        Value::Block(s) => {
            out.push('[');
            write_nodes(&s.items.borrow(), out, depth);
            out.push(']');
        }
        Value::Paren(s) => {
            out.push('(');
            write_nodes(&s.items.borrow(), out, depth);
            out.push(')');
        }
        Value::Curly(s) => {
            out.push('{');
            write_nodes(&s.items.borrow(), out, depth);
            out.push('}');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, v)) in m.bindings().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_repr(k, out, depth + 1);
                out.push_str(" = ");
                write_repr(v, out, depth + 1);
            }
            out.push('}');
        }
        Value::Func(c) | Value::Method(c) | Value::Poly(c) => {
            out.push_str(match value {
                Value::Func(_) => "func [",
                Value::Method(_) => "method [",
                _ => "polymethod [",
            });
            write_nodes(&c.body.items.borrow(), out, depth);
            out.push(']');
        }
        Value::Prim(p) => out.push_str(if p.method {
            "primitive-method"
        } else {
            "primitive-func"
        }),
        Value::Binding(b) => {
            write_repr(&b.0, out, depth + 1);
            out.push_str(" = ");
            write_repr(&b.1, out, depth + 1);
        }
        Value::Boxed(b) => write_repr(&b.value, out, depth + 1),
        Value::Activation(f) => {
            out.push_str("activation [");
            let (open, close) = if f.kind == FrameKind::Paren {
                ('(', ')')
            } else {
                ('[', ']')
            };
            out.push(open);
            write_nodes(&f.body.items.borrow(), out, depth);
            out.push(close);
            let _ = write!(out, " {}]", f.pos.get());
        }
    }
}
