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
    /// A string of `n` copies of one character (the huge-string mutator's value): held as the
    /// character and the count, written straight into the output, never a string of its own.
    RepStr(char, usize),
    /// `[e,e,…,e]` with `n` ≥ 1 copies of the JSON text `e` (the huge-array mutator's value;
    /// verbatim text like [`J::Raw`], held as the element and the count).
    RepArr(String, usize),
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
            J::Str(_) | J::RepStr(..) => "string",
            J::Raw(_) | J::RepArr(..) => "raw",
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
            J::RepStr(c, n) => {
                let mut b = [0u8; 4];
                let ch: &str = c.encode_utf8(&mut b);
                out.push(b'"');
                if needs_escape(ch.as_bytes()) {
                    // The escaped character as the unit (no generator draws one; kept exact).
                    let mut esc = Vec::with_capacity(8);
                    write_str(ch, &mut esc);
                    repeat_into(out, &esc[1..esc.len() - 1], *n);
                } else {
                    repeat_into(out, ch.as_bytes(), *n);
                }
                out.push(b'"');
            }
            J::RepArr(e, n) => {
                out.push(b'[');
                if *n > 1 {
                    let mut unit = Vec::with_capacity(e.len() + 1);
                    unit.extend_from_slice(e.as_bytes());
                    unit.push(b',');
                    repeat_into(out, &unit, n - 1);
                }
                out.extend_from_slice(e.as_bytes());
                out.push(b']');
            }
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

    /// The serialised value, in one allocation of its expected size (plus room for the few
    /// bytes the byte mutators insert): a body of a MiB is not copied through a chain of
    /// doubling reallocations.
    /// Large bodies come from this thread's [`recycle`]d buffers when one is big enough.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = buffer(self.size_hint() + 64);
        self.write(&mut out);
        out
    }

    /// The length [`J::write`] writes, up to escapes (strings count without them) and floats
    /// (24 bytes each, at least 3 written): for reserving, never for framing.
    pub fn size_hint(&self) -> usize {
        match self {
            J::Null => 4,
            J::Bool(b) => 4 + usize::from(!*b),
            J::Int(i) => i.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1) + usize::from(*i < 0),
            J::Float(_) => 24,
            J::Str(s) => s.len() + 2,
            J::Raw(r) => r.len(),
            J::RepStr(c, n) => c.len_utf8() * n + 2,
            J::RepArr(e, n) => (e.len() + 1) * n + 1,
            J::Arr(a) => 2 + a.len().saturating_sub(1) + a.iter().map(J::size_hint).sum::<usize>(),
            J::Obj(m) => {
                2 + m.len().saturating_sub(1) + m.iter().map(|(k, v)| k.len() + 3 + v.size_hint()).sum::<usize>()
            }
        }
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
            J::RepStr(c, n) => Value::String(c.to_string().repeat(*n)),
            J::RepArr(..) => serde_json::from_slice(&self.to_bytes()).unwrap_or(Value::Null),
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

/// Where a generator puts the JSON value it draws: a tree ([`Tree`], for the mutators and the
/// proptest API) or bytes ([`Bytes`], for valid requests: no tree is built and constant text is
/// copied without an escape check). The same generator code drives both, so for the same seed
/// they hold the same value (`Tree`'s value serialises to `Bytes`' bytes).
///
/// Calls nest like the JSON they describe; inside an object every value follows its key.
pub trait Sink {
    fn begin_obj(&mut self);
    fn begin_arr(&mut self);
    /// Ends the innermost open object or array.
    fn end(&mut self);
    /// A member name that is a constant of the generators: it must need no escaping (no
    /// control character, `"` or `\\`; checked in debug builds).
    fn key(&mut self, k: &'static str);
    /// A string value that is a constant of the generators (the same promise as [`Sink::key`]).
    fn str_const(&mut self, s: &'static str);
    /// Any string value.
    fn text(&mut self, s: String);
    /// A string value `f` writes piecewise (no allocation when writing bytes).
    fn text_with(&mut self, f: impl FnOnce(&mut String));
    /// Like [`Sink::text_with`] for text that needs no escaping (identifiers, timestamps,
    /// versions; checked in debug builds).
    fn plain_with(&mut self, f: impl FnOnce(&mut String));
    /// A member name `f` writes, needing no escaping (checked in debug builds).
    fn plain_key_with(&mut self, f: impl FnOnce(&mut String));
    fn int(&mut self, v: i64);
    fn float(&mut self, v: f64);
    fn bool(&mut self, v: bool);
    fn null(&mut self);
}

/// A [`Sink`] that builds a [`J`].
#[derive(Default)]
pub struct Tree {
    /// Open containers, each with the key its parent will file it under.
    open: Vec<(J, Option<Text>)>,
    key: Option<Text>,
    root: Option<J>,
}

impl Tree {
    /// The value the generator `f` draws into a tree.
    pub fn build(f: impl FnOnce(&mut Tree)) -> J {
        let mut t = Tree::default();
        f(&mut t);
        debug_assert!(t.open.is_empty(), "unclosed container");
        t.root.unwrap_or(J::Null)
    }

    fn put(&mut self, v: J) {
        match self.open.last_mut() {
            Some((J::Obj(m), _)) => m.push((self.key.take().expect("a key before each member value"), v)),
            Some((J::Arr(a), _)) => a.push(v),
            Some(_) => unreachable!("only containers are open"),
            None => self.root = Some(v),
        }
    }
}

impl Sink for Tree {
    fn begin_obj(&mut self) {
        self.open.push((J::obj(), self.key.take()));
    }
    fn begin_arr(&mut self) {
        self.open.push((J::Arr(Vec::new()), self.key.take()));
    }
    fn end(&mut self) {
        let (v, key) = self.open.pop().expect("end() of an open container");
        self.key = key;
        self.put(v);
    }
    fn key(&mut self, k: &'static str) {
        self.key = Some(Text::Borrowed(k));
    }
    fn str_const(&mut self, s: &'static str) {
        self.put(J::Str(Text::Borrowed(s)));
    }
    fn text(&mut self, s: String) {
        self.put(J::Str(Text::Owned(s)));
    }
    fn text_with(&mut self, f: impl FnOnce(&mut String)) {
        let mut s = String::new();
        f(&mut s);
        self.text(s);
    }
    fn plain_with(&mut self, f: impl FnOnce(&mut String)) {
        self.text_with(f);
    }
    fn plain_key_with(&mut self, f: impl FnOnce(&mut String)) {
        let mut s = String::new();
        f(&mut s);
        self.key = Some(Text::Owned(s));
    }
    fn int(&mut self, v: i64) {
        self.put(J::Int(v));
    }
    fn float(&mut self, v: f64) {
        self.put(J::Float(v));
    }
    fn bool(&mut self, v: bool) {
        self.put(J::Bool(v));
    }
    fn null(&mut self) {
        self.put(J::Null);
    }
}

/// A [`Sink`] that writes JSON text, byte for byte what [`J::write`] writes for the same value.
pub struct Bytes {
    pub out: Vec<u8>,
    /// Whether the next item opens its container (or follows a key): no comma before it.
    first: bool,
    /// Closing bytes of the open containers (bit set: object), innermost at bit 0.
    kinds: u64,
    depth: u32,
    /// Reused buffer of [`Sink::text_with`].
    scratch: String,
}

impl Bytes {
    /// The value the generator `f` draws, as JSON text.
    pub fn build(f: impl FnOnce(&mut Bytes)) -> Vec<u8> {
        let mut b = Bytes { out: Vec::with_capacity(512), first: true, kinds: 0, depth: 0, scratch: String::new() };
        f(&mut b);
        debug_assert_eq!(b.depth, 0, "unclosed container");
        b.out
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    fn open(&mut self, obj: bool, byte: u8) {
        self.sep();
        assert!(self.depth < 64, "generators nest at most 64 levels");
        self.kinds = (self.kinds << 1) | u64::from(obj);
        self.depth += 1;
        self.out.push(byte);
        self.first = true;
    }

    fn plain(&mut self, s: &str) {
        debug_assert!(!needs_escape(s.as_bytes()), "constant {s:?} needs escaping");
        self.out.push(b'"');
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'"');
    }
}

impl Sink for Bytes {
    fn begin_obj(&mut self) {
        self.open(true, b'{');
    }
    fn begin_arr(&mut self) {
        self.open(false, b'[');
    }
    fn end(&mut self) {
        self.depth -= 1;
        self.out.push(if self.kinds & 1 == 1 { b'}' } else { b']' });
        self.kinds >>= 1;
        self.first = false;
    }
    fn key(&mut self, k: &'static str) {
        self.sep();
        self.plain(k);
        self.out.push(b':');
        self.first = true;
    }
    fn str_const(&mut self, s: &'static str) {
        self.sep();
        self.plain(s);
    }
    fn text(&mut self, s: String) {
        self.sep();
        write_str(&s, &mut self.out);
    }
    fn text_with(&mut self, f: impl FnOnce(&mut String)) {
        self.sep();
        let mut t = std::mem::take(&mut self.scratch);
        t.clear();
        f(&mut t);
        write_str(&t, &mut self.out);
        self.scratch = t;
    }
    fn plain_with(&mut self, f: impl FnOnce(&mut String)) {
        self.sep();
        let mut t = std::mem::take(&mut self.scratch);
        t.clear();
        f(&mut t);
        self.plain(&t);
        self.scratch = t;
    }
    fn plain_key_with(&mut self, f: impl FnOnce(&mut String)) {
        self.plain_with(f);
        self.out.push(b':');
        self.first = true;
    }
    fn int(&mut self, v: i64) {
        self.sep();
        let mut b = itoa_buf();
        self.out.extend_from_slice(fmt_i64(v, &mut b));
    }
    fn float(&mut self, v: f64) {
        self.sep();
        J::Float(v).write(&mut self.out);
    }
    fn bool(&mut self, v: bool) {
        self.sep();
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
    }
    fn null(&mut self) {
        self.sep();
        self.out.extend_from_slice(b"null");
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

/// Bodies of at least this many bytes are built in recycled buffers.
const POOL_MIN: usize = 64 * 1024;
/// Most bytes of buffers a thread keeps for reuse.
const POOL_MAX_BYTES: usize = 16 << 20;
/// A spare buffer not taken again within this long is freed.
const POOL_KEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Spare body buffers (empty, capacities at least [`POOL_MIN`]) with the time each came back.
type Pool = Vec<(Vec<u8>, std::time::Instant)>;

thread_local! {
    static POOL: std::cell::RefCell<Pool> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer for `cap` bytes: for a large body, the smallest spare buffer of this thread
/// that holds it, else a new one.
fn buffer(cap: usize) -> Vec<u8> {
    if cap >= POOL_MIN
        && let Some(b) = POOL.with(|p| pool_take(&mut p.borrow_mut(), cap, std::time::Instant::now()))
    {
        return b;
    }
    Vec::with_capacity(cap)
}

/// Give a large body's buffer back for the next large body this thread builds (the driver's
/// lanes do, once a request is answered). Freed pages go back to the system at once
/// (`src/main.rs`), so a MiB body in a fresh buffer costs 256 page faults, more than writing
/// it. A thread keeps at most 16 MiB of spare buffers, each for at most a second: what a run
/// keeps is what it is using, never a growth (a soak whose large bodies are rare keeps none).
/// Small buffers are simply freed.
pub fn recycle(buf: Vec<u8>) {
    if (POOL_MIN..=POOL_MAX_BYTES).contains(&buf.capacity()) {
        POOL.with(|p| pool_put(&mut p.borrow_mut(), buf, std::time::Instant::now()));
    }
}

fn pool_expire(p: &mut Pool, now: std::time::Instant) {
    p.retain(|(_, at)| now.saturating_duration_since(*at) < POOL_KEEP);
}

fn pool_take(p: &mut Pool, cap: usize, now: std::time::Instant) -> Option<Vec<u8>> {
    pool_expire(p, now);
    let best = p.iter().enumerate().filter(|(_, (b, _))| b.capacity() >= cap).min_by_key(|(_, (b, _))| b.capacity());
    best.map(|(i, _)| i).map(|i| p.swap_remove(i).0)
}

fn pool_put(p: &mut Pool, mut buf: Vec<u8>, now: std::time::Instant) {
    pool_expire(p, now);
    buf.clear();
    p.push((buf, now));
    // Over the budget: drop the smallest ones.
    while p.iter().map(|(b, _)| b.capacity()).sum::<usize>() > POOL_MAX_BYTES {
        match p.iter().enumerate().min_by_key(|(_, (b, _))| b.capacity()).map(|(i, _)| i) {
            Some(i) => drop(p.swap_remove(i)),
            None => break,
        }
    }
}

/// Append `n` copies of `unit` to `out`: one copy, then doubling copies of what is already
/// there (a MiB in about twenty `memcpy`s, not a million pushes).
fn repeat_into(out: &mut Vec<u8>, unit: &[u8], n: usize) {
    let total = unit.len() * n;
    if total == 0 {
        return;
    }
    out.reserve(total);
    let start = out.len();
    out.extend_from_slice(unit);
    while out.len() - start < total {
        let have = out.len() - start;
        let take = have.min(total - have);
        out.extend_from_within(start..start + take);
    }
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

    #[test]
    fn repeated_values_write_what_their_text_would() {
        for (c, n) in [('a', 1), ('a', 1000), ('é', 333), ('😀', 7), ('"', 5), ('\n', 3), ('\u{1}', 2)] {
            let as_text = J::Str(c.to_string().repeat(n).into()).to_bytes();
            assert_eq!(J::RepStr(c, n).to_bytes(), as_text, "{c:?} x {n}");
            assert_eq!(J::RepStr(c, n).to_value(), Value::String(c.to_string().repeat(n)));
        }
        for (e, n) in [("0", 1), ("0", 2), ("{}", 1000), ("\"x\"", 17)] {
            let text = format!("[{}]", vec![e; n].join(","));
            let j = J::RepArr(e.to_string(), n);
            assert_eq!(j.to_bytes(), text.as_bytes());
            assert_eq!(j.size_hint(), text.len());
            assert_eq!(j.to_value(), serde_json::from_str::<Value>(&text).unwrap());
        }
        assert_eq!(J::RepStr('€', 10).size_hint(), 32);
    }

    #[test]
    fn recycled_buffers_serve_large_bodies_only_and_stay_bounded() {
        let big = J::RepStr('a', 200_000);
        let first = big.to_bytes();
        let ptr = first.as_ptr();
        recycle(first);
        let again = big.to_bytes();
        assert_eq!(again.as_ptr(), ptr, "the recycled buffer is reused");
        assert_eq!(again, J::Str("a".repeat(200_000).into()).to_bytes());
        // Small bodies neither take nor leave buffers.
        let small = J::str("x").to_bytes();
        assert!(small.capacity() < POOL_MIN);
        recycle(small);
        assert_eq!(POOL.with(|p| p.borrow().len()), 0);
        // A flood of large buffers: the pool keeps at most its budget, the largest first.
        let t0 = std::time::Instant::now();
        let mut p = Pool::new();
        for i in 0..100 {
            pool_put(&mut p, Vec::with_capacity((1 << 20) + i * 4096), t0);
        }
        let kept: usize = p.iter().map(|(b, _)| b.capacity()).sum();
        assert!((POOL_MAX_BYTES / 2..=POOL_MAX_BYTES).contains(&kept), "{kept}");
        assert!(pool_take(&mut p, 2 << 20, t0).is_none(), "none holds 2 MiB");
        let b = pool_take(&mut p, 1 << 20, t0).expect("a buffer of a MiB");
        assert!(b.capacity() >= 1 << 20 && b.is_empty());
        // Buffers not taken within POOL_KEEP are freed.
        assert!(!p.is_empty());
        assert!(pool_take(&mut p, POOL_MIN, t0 + POOL_KEEP).is_none());
        assert!(p.is_empty());
    }

    #[test]
    fn size_hints_are_exact_but_for_escapes_and_floats() {
        let j = J::obj()
            .with("a", J::str("plain"))
            .with("n", J::Arr(vec![J::Int(0), J::Int(-1), J::Int(9), J::Int(10), J::Int(i64::MIN), J::Int(i64::MAX)]))
            .with(
                "",
                J::Arr(vec![J::Null, J::Bool(true), J::Bool(false), J::Raw("1e400".into()), J::obj(), J::Arr(vec![])]),
            )
            .with("r", J::RepStr('x', 5));
        assert_eq!(j.size_hint(), j.to_bytes().len());
    }
}
