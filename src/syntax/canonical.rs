//! The canonical one-line form: the form Spry's reference parser prints.
//!
//! Nodes are separated by single spaces, composites have no inner padding (`[1 2]`, `{}`),
//! comments are dropped, keyword sugar is resolved (`at:put: 1 2`), integers print in decimal,
//! floats as Nim's `$` prints them, strings quoted with `\\` and `\"` escaped.

use std::fmt::Write as _;

use super::ast::{Ast, AstNode, ChildRange};

impl Ast {
    /// The canonical one-line form of the top-level nodes.
    ///
    /// # Examples
    /// ```
    /// use spry_image::syntax::{parse, Ast};
    /// let ast = Ast::from_tree(&parse("x = [ +11  5. ] # c\n\"a\\\\\"").tree);
    /// assert_eq!(ast.canonical(), r#"x = [11 5.0] "a\\""#);
    /// ```
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(self.root_children(), &mut out);
        out
    }

    pub(crate) fn root_children(&self) -> ChildRange {
        self.root_range()
    }

    /// Appends the canonical form of the nodes in `range` to `out`. Walks without recursion.
    pub(crate) fn write_canonical(&self, range: ChildRange, out: &mut String) {
        // Each frame: the sibling list, the next index, the closer to print when done.
        let mut stack: Vec<(&[AstNode], usize, Option<char>)> =
            vec![(self.nodes_in(range), 0, None)];
        while let Some((nodes, i, closer)) = stack.last_mut() {
            let Some(node) = nodes.get(*i) else {
                if let Some(c) = *closer {
                    out.push(c);
                }
                stack.pop();
                continue;
            };
            if *i > 0 {
                out.push(' ');
            }
            *i += 1;
            match node {
                AstNode::Composite(kind, children) => {
                    let (open, close) = kind.brackets();
                    out.push(open);
                    let children = self.nodes_in(*children);
                    stack.push((children, 0, Some(close)));
                }
                leaf => write_leaf(leaf, out),
            }
        }
    }
}

/// Appends the canonical spelling of a node that is not a composite.
pub(crate) fn write_leaf(node: &AstNode, out: &mut String) {
    match node {
        AstNode::Integer(v) => {
            let _ = write!(out, "{v}");
        }
        AstNode::Float(v) => {
            // `inf` and `nan` alone read back as words: only a sign makes them floats.
            if v.is_nan() || *v == f64::INFINITY {
                out.push('+');
            }
            format_float(*v, out);
        }
        AstNode::String(bytes) => write_string(bytes, out),
        AstNode::Word(w) => out.push_str(&w.text),
        AstNode::Composite(..) => {}
    }
}

/// A string literal: `\` and `"` escaped; bytes that are not UTF-8, and NUL (an error in
/// source), as `\xHH` so that the text stays valid UTF-8 and reads back to the same bytes.
pub(crate) fn write_string(bytes: &[u8], out: &mut String) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\0' => out.push_str("\\x00"),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    out.push('"');
}

/// A float as Nim's `$` prints it (shortest round-trip digits; fixed notation while the decimal
/// point lies within -6..=17 digits, with a trailing `.0` for whole numbers; otherwise `1e+20`).
pub fn format_float(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("nan");
        return;
    }
    if value.is_sign_negative() {
        out.push('-');
    }
    let value = value.abs();
    if value.is_infinite() {
        out.push_str("inf");
        return;
    }
    if value == 0.0 {
        out.push_str("0.0");
        return;
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, like Nim's Dragonbox.
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let n = digits.len() as i32;
    let point = exponent + 1;
    if (-6..=17).contains(&point) {
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..-point {
                out.push('0');
            }
            out.push_str(digits);
        } else if point < n {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        } else {
            out.push_str(digits);
            for _ in 0..point - n {
                out.push('0');
            }
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = point - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        format_float(v, &mut s);
        s
    }

    #[test]
    fn floats_print_as_nim_does() {
        assert_eq!(f(3.5), "3.5");
        assert_eq!(f(5.0), "5.0");
        assert_eq!(f(1000.0), "1000.0");
        assert_eq!(f(-0.0015), "-0.0015");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1e16), "10000000000000000.0");
        assert_eq!(f(1e17), "1e+17");
        assert_eq!(f(1e-7), "0.0000001");
        assert_eq!(f(1e-8), "1e-8");
        assert_eq!(f(1.5e-8), "1.5e-8");
        assert_eq!(f(0.000001), "0.000001");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(f64::NAN), "nan");
        assert_eq!(f(0.0), "0.0");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(123.456), "123.456");
        assert_eq!(f(1.7976931348623157e308), "1.7976931348623157e+308");
    }

    #[test]
    fn printed_floats_read_back() {
        for v in [3.5, 1e20, 1e-7, 0.1, 123456789.125, 2.5e-300, 1e17] {
            let s = f(v);
            assert_eq!(
                super::super::literal::parse_float(s.as_bytes()),
                Some(v),
                "{s}"
            );
        }
    }

    #[test]
    fn strings_escape_backslash_and_quote_only() {
        let mut s = String::new();
        write_string(b"a\\b\"c'\n\xff", &mut s);
        assert_eq!(s, "\"a\\\\b\\\"c'\n\\xFF\"");
    }
}
