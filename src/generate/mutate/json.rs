//! JSON mutation operators: tree operators on [`J`] (drop / duplicate / rename members, swap
//! types, boundary numbers, huge strings, unicode edge cases, deep nesting, huge arrays, other
//! roots) and byte operators on the serialised text (trailing garbage, truncation, invalid and
//! overlong UTF-8). Byte operators run after all tree operators of an input.

use super::step;
use crate::generate::GenOptions;
use crate::generate::json::{J, Seg};
use crate::generate::rng::{GenRng, below, chance, pick, range};
use crate::model::{HttpRequest, MutationStep};

/// A tree operator: returns (where, what) or None when it found nothing to apply to.
pub struct TreeOp {
    pub name: &'static str,
    pub apply: fn(&mut GenRng, &GenOptions, &mut J) -> Option<(String, String)>,
}

/// A byte operator on the serialised body.
pub struct ByteOp {
    pub name: &'static str,
    pub apply: fn(&mut GenRng, &GenOptions, &mut Vec<u8>) -> super::http::Applied,
}

pub const TREE_OPS: &[TreeOp] = &[
    TreeOp { name: "json.drop-member", apply: drop_member },
    TreeOp { name: "json.duplicate-key", apply: duplicate_key },
    TreeOp { name: "json.rename-member", apply: rename_member },
    TreeOp { name: "json.swap-type", apply: swap_type },
    TreeOp { name: "json.boundary-number", apply: boundary_number },
    TreeOp { name: "json.huge-string", apply: huge_string },
    TreeOp { name: "json.unicode", apply: unicode },
    TreeOp { name: "json.deep-nesting", apply: deep_nesting },
    TreeOp { name: "json.huge-array", apply: huge_array },
    TreeOp { name: "json.replace-root", apply: replace_root },
];

pub const BYTE_OPS: &[ByteOp] = &[
    ByteOp { name: "json.trailing-garbage", apply: trailing_garbage },
    ByteOp { name: "json.truncate", apply: truncate },
    ByteOp { name: "json.invalid-utf8", apply: invalid_utf8 },
    ByteOp { name: "json.overlong-utf8", apply: overlong_utf8 },
];

/// Apply the named tree operator.
pub fn apply_tree(name: &str, r: &mut GenRng, o: &GenOptions, j: &mut J) -> Option<MutationStep> {
    let op = TREE_OPS.iter().find(|op| op.name == name)?;
    (op.apply)(r, o, j).map(|(at, d)| step(op.name, at, d))
}

/// Apply the named byte operator.
pub fn apply_bytes(name: &str, r: &mut GenRng, o: &GenOptions, b: &mut Vec<u8>) -> Option<MutationStep> {
    let op = BYTE_OPS.iter().find(|op| op.name == name)?;
    (op.apply)(r, o, b).map(|(at, d)| step(op.name, at, d))
}

/// Mutate a JSON value with 1..=max_mutations operators; the serialised result and the trail.
pub fn mutate_value(r: &mut GenRng, o: &GenOptions, mut j: J) -> (Vec<u8>, Vec<MutationStep>) {
    let n = range(r, 1, o.max_mutations.max(1) as u64);
    let mut trail = Vec::new();
    let mut bytes: Option<Vec<u8>> = None;
    for _ in 0..n {
        if bytes.is_none() && !chance(r, 0.25) {
            // A few tries: an operator may find nothing to apply to (e.g. no object).
            for _ in 0..4 {
                let op = pick(r, TREE_OPS);
                if let Some((at, d)) = (op.apply)(r, o, &mut j) {
                    trail.push(step(op.name, at, d));
                    break;
                }
            }
        } else {
            let b = bytes.get_or_insert_with(|| j.to_bytes());
            let op = pick(r, BYTE_OPS);
            if let Some((at, d)) = (op.apply)(r, o, b) {
                trail.push(step(op.name, at, d));
            }
        }
    }
    (bytes.unwrap_or_else(|| j.to_bytes()), trail)
}

/// Replace the body of a valid request by a mutation of `base`, fixing `content-length`.
pub fn mutate_request(
    r: &mut GenRng,
    o: &GenOptions,
    mut req: HttpRequest,
    base: J,
) -> (HttpRequest, Vec<MutationStep>) {
    let (body, trail) = mutate_value(r, o, base);
    set_body(&mut req, body);
    (req, trail)
}

/// Set a body and a truthful `content-length` (and a content-type if missing).
pub fn set_body(req: &mut HttpRequest, body: Vec<u8>) {
    req.headers.retain(|(n, _)| n != "content-length");
    if !req.headers.iter().any(|(n, _)| n == "content-type") {
        req.headers.push(("content-type".into(), b"application/json".to_vec()));
    }
    req.headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    req.body = body;
}

// ---------------------------------------------------------------- node selection

/// A uniformly random node satisfying `want` (reservoir sampling over a DFS), half of the time
/// restricted to the root and its direct children so top-level fields are hit often.
pub fn random_node(r: &mut GenRng, j: &J, want: fn(&J) -> bool) -> Option<Vec<Seg>> {
    let shallow = chance(r, 0.5);
    let mut chosen: Option<Vec<Seg>> = None;
    let mut seen = 0usize;
    let mut stack: Vec<(Vec<Seg>, &J)> = vec![(Vec::new(), j)];
    while let Some((path, node)) = stack.pop() {
        if want(node) {
            seen += 1;
            if below(r, seen) == 0 {
                chosen = Some(path.clone());
            }
        }
        if shallow && !path.is_empty() {
            continue;
        }
        match node {
            J::Obj(m) => {
                for (i, (_, v)) in m.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(Seg::Member(i));
                    stack.push((p, v));
                }
            }
            J::Arr(a) => {
                for (i, v) in a.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(Seg::Index(i));
                    stack.push((p, v));
                }
            }
            _ => {}
        }
    }
    chosen
}

fn any(_: &J) -> bool {
    true
}
fn non_root_any(_: &J) -> bool {
    true
}
fn obj_nonempty(j: &J) -> bool {
    matches!(j, J::Obj(m) if !m.is_empty())
}
fn scalar(j: &J) -> bool {
    matches!(j, J::Int(_) | J::Float(_) | J::Str(_) | J::Bool(_) | J::Null | J::Raw(_) | J::RepStr(..) | J::RepArr(..))
}

/// Pick a node (excluding the root when possible) for a value replacement.
fn target(r: &mut GenRng, j: &J, want: fn(&J) -> bool) -> Option<Vec<Seg>> {
    let p = random_node(r, j, want)?;
    if p.is_empty() && matches!(j, J::Obj(m) if !m.is_empty()) && chance(r, 0.8) {
        // Prefer a member over the root itself.
        return random_node(r, j, non_root_any).filter(|p| !p.is_empty()).or(Some(p));
    }
    Some(p)
}

fn replace(
    r: &mut GenRng,
    j: &mut J,
    want: fn(&J) -> bool,
    f: impl FnOnce(&mut GenRng, &J) -> (J, String),
) -> Option<(String, String)> {
    let p = target(r, j, want)?;
    let at = j.path_text(&p);
    let node = j.at_mut(&p)?;
    let (new, detail) = f(r, node);
    let from = node.type_name();
    *node = new;
    Some((at, format!("{from} -> {detail}")))
}

// ---------------------------------------------------------------- tree operators

fn drop_member(r: &mut GenRng, _: &GenOptions, j: &mut J) -> Option<(String, String)> {
    let p = random_node(r, j, obj_nonempty)?;
    let at = j.path_text(&p);
    let J::Obj(m) = j.at_mut(&p)? else { return None };
    let i = below(r, m.len());
    let (k, _) = m.remove(i);
    Some((at, format!("dropped {k:?}")))
}

fn duplicate_key(r: &mut GenRng, _: &GenOptions, j: &mut J) -> Option<(String, String)> {
    let p = random_node(r, j, obj_nonempty)?;
    let at = j.path_text(&p);
    let J::Obj(m) = j.at_mut(&p)? else { return None };
    let i = below(r, m.len());
    let (k, v) = m[i].clone();
    if chance(r, 0.5) {
        m.push((k.clone(), v));
        Some((at, format!("{k:?} repeated with the same value")))
    } else {
        let other = swapped(r, &v);
        let t = other.type_name();
        m.push((k.clone(), other));
        Some((at, format!("{k:?} repeated with a {t}")))
    }
}

fn rename_member(r: &mut GenRng, _: &GenOptions, j: &mut J) -> Option<(String, String)> {
    let p = random_node(r, j, obj_nonempty)?;
    let at = j.path_text(&p);
    let J::Obj(m) = j.at_mut(&p)? else { return None };
    let i = below(r, m.len());
    let old = m[i].0.clone();
    let new = match below(r, 10) {
        0 => old.to_uppercase(),
        1 => {
            let mut c = old.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        }
        2 => format!("{old}_"),
        3 => format!(" {old}"),
        4 => String::new(),
        5 => format!("{old}\u{0}"),
        6 => old.replace('_', ""),
        7 => "x".repeat(range(r, 256, 4096) as usize),
        8 => match &*old {
            "type_name" => "type".into(),
            "function_name" => "function".into(),
            "message" => "msg".into(),
            "stacktrace" => "frames".into(),
            "user_context" => "user".into(),
            _ => format!("{old}s"),
        },
        _ => format!("{old}\u{301}"),
    };
    let new = if new == old { format!("{old}_x") } else { new };
    m[i].0 = new.clone().into();
    let shown: String = new.chars().take(40).collect();
    Some((at, format!("{old:?} -> {shown:?}")))
}

/// A value of another type than `v`.
fn swapped(r: &mut GenRng, v: &J) -> J {
    loop {
        let c = match below(r, 9) {
            0 => J::Null,
            1 => J::Bool(chance(r, 0.5)),
            2 => J::Int(range(r, 0, 1000) as i64),
            3 => J::Str(match v {
                J::Int(i) => i.to_string().into(),
                _ => "str".into(),
            }),
            4 => J::Arr(Vec::new()),
            5 => J::obj(),
            6 => J::Arr(vec![v.clone()]),
            7 => J::obj().with("value", v.clone()),
            _ => J::Float(0.5),
        };
        if c.type_name() != v.type_name() {
            return c;
        }
    }
}

fn swap_type(r: &mut GenRng, _: &GenOptions, j: &mut J) -> Option<(String, String)> {
    replace(r, j, any, |r, v| {
        let n = swapped(r, v);
        let t = n.type_name().to_string();
        (n, t)
    })
}

/// Boundary number texts (some deliberately not valid JSON numbers: `+1`, `NaN`, `.5`).
pub const BOUNDARY_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "1e309",
    "-0.0",
    "4.9e-324",
    "1E400",
    "0.1",
    "1.5",
    "1e-7",
    "00012",
    "+1",
    "NaN",
    "Infinity",
    "-Infinity",
    ".5",
    "1.",
    "0x10",
];

fn boundary_number(r: &mut GenRng, _: &GenOptions, j: &mut J) -> Option<(String, String)> {
    replace(r, j, scalar, |r, _| {
        let text = if chance(r, 0.15) {
            let n = *pick(r, &[100usize, 1000, 10_000, 100_000]);
            let mut s = String::with_capacity(n + 1);
            if chance(r, 0.5) {
                s.push('-');
            }
            s.push('9');
            for _ in 1..n {
                s.push((b'0' + below(r, 10) as u8) as char);
            }
            s
        } else {
            (*pick(r, BOUNDARY_NUMBERS)).to_string()
        };
        let shown: String = text.chars().take(24).collect();
        let d = format!(
            "number {shown}{}",
            if text.len() > 24 { format!("… ({} digits)", text.len()) } else { String::new() }
        );
        (J::Raw(text), d)
    })
}

fn huge_string(r: &mut GenRng, o: &GenOptions, j: &mut J) -> Option<(String, String)> {
    let max = o.max_string.max(1);
    replace(r, j, any, |r, _| {
        let len = match below(r, 4) {
            0 => max,
            1 => max.saturating_sub(1).max(1),
            2 => max / 2 + 1,
            _ => range(r, (max / 16).max(1) as u64, max as u64) as usize,
        };
        let ch = *pick(r, &['a', 'é', '€', '😀']);
        // `len` bytes at most: ASCII fills exactly, wider characters fill len / width code points.
        let n = (len / ch.len_utf8()).max(1);
        let d = format!("string of {n} x {ch:?} ({} bytes)", n * ch.len_utf8());
        // Held as (character, count): written once, straight into the body.
        (J::RepStr(ch, n), d)
    })
}

/// Unicode edge cases: (label, raw JSON string literal).
pub const UNICODE_CASES: &[(&str, &str)] = &[
    ("escaped NUL", "\"a\\u0000b\""),
    ("literal NUL", "\"a\u{0}b\""),
    ("lone high surrogate", "\"\\ud800\""),
    ("lone low surrogate", "\"x\\udfff\""),
    ("high surrogate then letter", "\"\\ud800\\u0041\""),
    ("reversed surrogate pair", "\"\\udc00\\ud800\""),
    ("RTL override", "\"\u{202e}gnp.exe\u{202c}\""),
    ("combining marks", "\"e\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\""),
    ("emoji ZWJ sequence", "\"\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}\""),
    ("flag", "\"\u{1F1FA}\u{1F1F8}\""),
    ("BOM", "\"\u{feff}message\""),
    ("noncharacter U+FFFF", "\"\u{ffff}\""),
    ("max code point", "\"\u{10ffff}\""),
    ("zero-width space", "\"a\u{200b}b\""),
    ("line separator", "\"a\u{2028}b\u{2029}c\""),
    ("escaped control chars", "\"\\u0001\\u001f\\b\\f\""),
    ("literal tab and newline", "\"a\tb\nc\""),
    ("quotes and backslashes", "\"\\\"\\\\\\\"'\""),
    ("escaped slash", "\"\\/api\\/v1\""),
    ("mixed scripts", "\"Ωμέγα日本語עברית\""),
];

fn unicode(r: &mut GenRng, _: &GenOptions, j: &mut J) -> Option<(String, String)> {
    replace(r, j, any, |r, _| {
        let (label, raw) = *pick(r, UNICODE_CASES);
        (J::Raw(raw.to_string()), format!("string with {label}"))
    })
}

/// `depth` levels of arrays, objects or both, around `0`, as text (no recursion).
pub fn nested_text(depth: usize, style: usize) -> String {
    let mut s = String::with_capacity(depth * 6 + 1);
    for i in 0..depth {
        match (style, i % 2) {
            (0, _) | (2, 0) => s.push('['),
            _ => s.push_str("{\"a\":"),
        }
    }
    s.push('0');
    for i in (0..depth).rev() {
        match (style, i % 2) {
            (0, _) | (2, 0) => s.push(']'),
            _ => s.push('}'),
        }
    }
    s
}

fn deep_nesting(r: &mut GenRng, o: &GenOptions, j: &mut J) -> Option<(String, String)> {
    let max = o.max_depth.max(2);
    replace(r, j, any, |r, _| {
        let depth = match below(r, 4) {
            0 => max,
            1 => 1000.min(max),
            2 => 129.min(max),
            _ => range(r, 2, max as u64) as usize,
        };
        let style = below(r, 3);
        let name = ["arrays", "objects", "arrays and objects"][style];
        (J::Raw(nested_text(depth, style)), format!("nesting depth {depth} ({name})"))
    })
}

fn huge_array(r: &mut GenRng, o: &GenOptions, j: &mut J) -> Option<(String, String)> {
    let max = o.max_array.max(1);
    replace(r, j, any, |r, old| {
        let n = if chance(r, 0.5) { max } else { range(r, (max / 100).max(1) as u64, max as u64) as usize };
        let elem = match below(r, 4) {
            0 => "0".to_string(),
            1 => "{}".to_string(),
            2 => "\"x\"".to_string(),
            _ => {
                // The old value itself when its text is short. Its size hint overestimates by
                // at most 8x (a float: 24 for at least 3 bytes), so a hint above 512 means more
                // than 64 bytes: a huge old value (a repeated string) is never written out here.
                match (old.size_hint() <= 512).then(|| old.to_bytes()) {
                    Some(t) if t.len() <= 64 => String::from_utf8_lossy(&t).into_owned(),
                    _ => "null".into(),
                }
            }
        };
        let shown: String = elem.chars().take(16).collect();
        let d = format!("array of {n} x {shown}");
        // Held as (element, count): `[e,e,...,e]` is written once, straight into the body.
        (J::RepArr(elem, n), d)
    })
}

const ROOTS: &[&str] = &["[]", "null", "42", "\"x\"", "{}", "true", "", " ", "[{}]", "{\"\":null}"];

fn replace_root(r: &mut GenRng, _: &GenOptions, j: &mut J) -> Option<(String, String)> {
    let new = *pick(r, ROOTS);
    let from = j.type_name();
    *j = J::Raw(new.to_string());
    Some(("$".into(), format!("{from} -> {new:?}")))
}

// ---------------------------------------------------------------- byte operators

fn trailing_garbage(r: &mut GenRng, _: &GenOptions, b: &mut Vec<u8>) -> Option<(String, String)> {
    let g: Vec<u8> = match below(r, 8) {
        0 => b"}".to_vec(),
        1 => b"]".to_vec(),
        2 => b",".to_vec(),
        3 => b"garbage".to_vec(),
        4 => vec![0],
        5 => b"\r\n\r\n".to_vec(),
        6 => b"{}".to_vec(),
        _ => (0..range(r, 1, 16)).map(|_| below(r, 256) as u8).collect(),
    };
    let at = format!("byte {}", b.len());
    b.extend_from_slice(&g);
    Some((at, format!("appended {} bytes {:?}", g.len(), String::from_utf8_lossy(&g))))
}

fn truncate(r: &mut GenRng, _: &GenOptions, b: &mut Vec<u8>) -> Option<(String, String)> {
    if b.is_empty() {
        return None;
    }
    let n = below(r, b.len());
    let old = b.len();
    b.truncate(n);
    Some((format!("byte {n}"), format!("truncated {old} -> {n} bytes")))
}

/// Invalid UTF-8 sequences: (label, bytes). Each is invalid after an ASCII byte and before an
/// ASCII byte or a UTF-8 lead byte.
pub const INVALID_UTF8: &[(&str, &[u8])] = &[
    ("0xff", &[0xff]),
    ("0xfe", &[0xfe]),
    ("lone continuation", &[0x80]),
    ("truncated 2-byte", &[0xc3]),
    ("truncated 3-byte", &[0xe2, 0x82]),
    ("UTF-8 encoded surrogate", &[0xed, 0xa0, 0x80]),
    ("beyond U+10FFFF", &[0xf4, 0x90, 0x80, 0x80]),
    ("5-byte form", &[0xf8, 0x88, 0x80, 0x80, 0x80]),
    ("overlong NUL", &[0xc0, 0x80]),
];

/// Positions just after a `"` (inside strings when the text is JSON), else 0.
fn string_position(r: &mut GenRng, b: &[u8]) -> usize {
    let quotes = memchr::memchr_iter(b'"', b).count();
    if quotes == 0 {
        return 0;
    }
    let k = below(r, quotes);
    memchr::memchr_iter(b'"', b).nth(k).map(|i| i + 1).unwrap_or(0)
}

/// Printable ASCII (0x20..0x80), the bytes the overlong operator re-encodes.
fn printable(c: u8) -> bool {
    c.wrapping_sub(0x20) < 0x60
}

/// How many bytes of `b` are printable ASCII: branch-free byte counters over 128-byte chunks
/// (the compiler vectorises them), added up per chunk.
fn count_printable(b: &[u8]) -> usize {
    let mut chunks = b.chunks_exact(128);
    let mut n = 0usize;
    for c in &mut chunks {
        n += usize::from(c.iter().fold(0u8, |acc, &x| acc + u8::from(printable(x))));
    }
    n + chunks.remainder().iter().filter(|&&x| printable(x)).count()
}

/// The position of the `k`-th (from 0) printable ASCII byte of `b`: whole 4 KiB blocks are
/// counted and skipped, the block holding it is walked.
fn nth_printable(b: &[u8], mut k: usize) -> Option<usize> {
    for (i, block) in b.chunks(4096).enumerate() {
        let n = count_printable(block);
        if k < n {
            let (at, _) = block.iter().enumerate().filter(|(_, c)| printable(**c)).nth(k)?;
            return Some(i * 4096 + at);
        }
        k -= n;
    }
    None
}

fn invalid_utf8(r: &mut GenRng, _: &GenOptions, b: &mut Vec<u8>) -> Option<(String, String)> {
    let (label, seq) = *pick(r, INVALID_UTF8);
    let pos = string_position(r, b);
    b.splice(pos..pos, seq.iter().copied());
    Some((format!("byte {pos}"), format!("inserted {label}")))
}

fn overlong_utf8(r: &mut GenRng, _: &GenOptions, b: &mut Vec<u8>) -> Option<(String, String)> {
    let ascii = count_printable(b);
    if ascii == 0 {
        return None;
    }
    let k = below(r, ascii);
    let pos = nth_printable(b, k)?;
    let c = b[pos];
    let (seq, form): (Vec<u8>, &str) = if chance(r, 0.5) {
        (vec![0xc0 | (c >> 6), 0x80 | (c & 0x3f)], "2-byte")
    } else {
        (vec![0xe0, 0x80 | (c >> 6), 0x80 | (c & 0x3f)], "3-byte")
    };
    b.splice(pos..=pos, seq);
    Some((format!("byte {pos}"), format!("{:?} as overlong {form} form", c as char)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_positions_match_a_plain_scan() {
        // Blocks of 4 KiB with control bytes, UTF-8 and ASCII mixed, across block edges.
        let b: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let naive: Vec<usize> =
            b.iter().enumerate().filter(|(_, c)| c.is_ascii() && **c >= 0x20).map(|(i, _)| i).collect();
        assert_eq!(count_printable(&b), naive.len());
        for k in [0, 1, 100, 4095, 4096, naive.len() / 2, naive.len() - 1] {
            assert_eq!(nth_printable(&b, k), Some(naive[k]), "k = {k}");
        }
        assert_eq!(nth_printable(&b, naive.len()), None);
    }
}
