//! A small JSON tree for generation and mutation, faster and more permissive than
//! `serde_json::Value`: objects are ordered member lists (so duplicate keys are representable),
//! and [`J::Raw`] carries verbatim JSON text (lone-surrogate escapes, 309-digit numbers, deep
//! nesting built without recursion). [`J::write`] is the single serialiser used by generators
//! and mutators; `to_value`/`from_value` convert for the proptest and shrinking APIs.

use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write as _;

/// Text of a string value or member name: borrowed when it is a constant of the generators
/// (field names, word lists), owned otherwise; no allocation for the common case.
pub type Text = Cow<'static, str>;

/// A JSON value as generators build it.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    /// Written in Rust's shortest round-trip form; non-finite values are written as `null`.
    Float(f64),
    Str(Text),
    /// Verbatim JSON text (may be invalid JSON on purpose, e.g. after a mutation).
    Raw(String),
    Arr(Vec<J>),
    /// Members in order; duplicate keys allowed.
    Obj(Vec<(Text, J)>),
}

/// One step of a path into a [`J`]: the member *position* in an object (duplicate keys make
/// names ambiguous) or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    Member(usize),
    Index(usize),
}

impl J {
    pub fn obj() -> J {
        J::Obj(Vec::with_capacity(8))
    }

    pub fn str(s: impl Into<Text>) -> J {
        J::Str(s.into())
    }

    /// Append a member (builder style, for objects only).
    pub fn with(mut self, k: impl Into<Text>, v: J) -> J {
        if let J::Obj(m) = &mut self {
            m.push((k.into(), v));
        }
        self
    }

    pub fn get(&self, k: &str) -> Option<&J> {
        match self {
            J::Obj(m) => m.iter().find(|(n, _)| n == k).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "bool",
            J::Int(_) | J::Float(_) => "number",
            J::Str(_) => "string",
            J::Raw(_) => "raw",
            J::Arr(_) => "array",
            J::Obj(_) => "object",
        }
    }

    /// Serialise into `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            J::Null => out.extend_from_slice(b"null"),
            J::Bool(true) => out.extend_from_slice(b"true"),
            J::Bool(false) => out.extend_from_slice(b"false"),
            J::Int(i) => {
                let mut b = itoa_buf();
                out.extend_from_slice(fmt_i64(*i, &mut b));
            }
            J::Float(f) => {
                if f.is_finite() {
                    let mut s = String::new();
                    let _ = write!(s, "{f:?}");
                    out.extend_from_slice(s.as_bytes());
                } else {
                    out.extend_from_slice(b"null");
                }
            }
            J::Str(s) => write_str(s, out),
            J::Raw(r) => out.extend_from_slice(r.as_bytes()),
            J::Arr(a) => {
                out.push(b'[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out);
                }
                out.push(b']');
            }
            J::Obj(m) => {
                out.push(b'{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(k, out);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write(&mut out);
        out
    }

    /// Convert to `serde_json::Value` (duplicate keys: last wins, like serde; raw text parsed,
    /// unparsable raw text becomes a string holding it).
    pub fn to_value(&self) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Int(i) => Value::from(*i),
            J::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            J::Str(s) => Value::String(s.to_string()),
            J::Raw(r) => serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.clone())),
            J::Arr(a) => Value::Array(a.iter().map(J::to_value).collect()),
            J::Obj(m) => {
                let mut o = serde_json::Map::new();
                for (k, v) in m {
                    o.insert(k.to_string(), v.to_value());
                }
                Value::Object(o)
            }
        }
    }

    /// Convert from `serde_json::Value` (numbers keep their exact text).
    pub fn from_value(v: &Value) -> J {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) if i.to_string() == n.to_string() => J::Int(i),
                _ => J::Raw(n.to_string()),
            },
            Value::String(s) => J::Str(s.clone().into()),
            Value::Array(a) => J::Arr(a.iter().map(J::from_value).collect()),
            Value::Object(m) => J::Obj(m.iter().map(|(k, v)| (k.clone().into(), J::from_value(v))).collect()),
        }
    }

    pub fn at(&self, path: &[Seg]) -> Option<&J> {
        let mut cur = self;
        for s in path {
            cur = match (cur, s) {
                (J::Obj(m), Seg::Member(i)) => &m.get(*i)?.1,
                (J::Arr(a), Seg::Index(i)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    pub fn at_mut(&mut self, path: &[Seg]) -> Option<&mut J> {
        let mut cur = self;
        for s in path {
            cur = match (cur, s) {
                (J::Obj(m), Seg::Member(i)) => &mut m.get_mut(*i)?.1,
                (J::Arr(a), Seg::Index(i)) => a.get_mut(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// `$.stacktrace[0].lineno` form of `path`.
    pub fn path_text(&self, path: &[Seg]) -> String {
        let mut out = String::from("$");
        let mut cur = Some(self);
        for s in path {
            match (cur, s) {
                (Some(J::Obj(m)), Seg::Member(i)) => {
                    let k = m.get(*i).map(|(k, _)| k.as_ref()).unwrap_or("?");
                    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        let _ = write!(out, ".{k}");
                    } else {
                        let _ = write!(out, "[{}]", serde_json::to_string(k).unwrap_or_default());
                    }
                    cur = m.get(*i).map(|(_, v)| v);
                }
                (Some(J::Arr(a)), Seg::Index(i)) => {
                    let _ = write!(out, "[{i}]");
                    cur = a.get(*i);
                }
                _ => {
                    out.push_str("[?]");
                    cur = None;
                }
            }
        }
        out
    }
}

/// Write a JSON string literal with the minimal escaping RFC 8259 requires.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Fast path: most generated strings need no escaping.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether `bytes` holds a control character, `"` or `\\`: eight bytes at a time (the
/// classic "has a byte less than n / equal to c" word tricks; exact as a yes/no answer).
fn needs_escape(bytes: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI != 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let control = x.wrapping_sub(LO * 0x20) & !x & HI != 0;
        if control || has_zero(x ^ (LO * u64::from(b'"'))) || has_zero(x ^ (LO * u64::from(b'\\'))) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

pub(crate) fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `v` in decimal, written at the end of `buf`.
pub(crate) fn fmt_i64(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        // i64::MIN has 19 digits, so there is always room for the sign.
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json_with_escapes() {
        let j = J::obj()
            .with("a", J::str("x\"y\\z\n\u{1}é"))
            .with("n", J::Int(i64::MIN))
            .with("f", J::Float(0.5))
            .with("l", J::Arr(vec![J::Null, J::Bool(true), J::Float(f64::NAN)]));
        let b = j.to_bytes();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["a"], "x\"y\\z\n\u{1}é");
        assert_eq!(v["n"].to_string(), i64::MIN.to_string());
        assert_eq!(J::from_value(&v).to_bytes(), b);
        assert_eq!(j.path_text(&[Seg::Member(3), Seg::Index(1)]), "$.l[1]");
    }
}
