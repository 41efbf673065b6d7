//! Field-level operators: one typed boundary value put into ONE field of an otherwise valid
//! request (body member, query parameter, path parameter, API-key header) or WebSocket frame.
//! The operators of a field follow from its [`FieldType`] (`crate::api::fields`): strings get
//! empty / whitespace / long / NUL / control / invalid UTF-8 / combining marks, integers 0, ±1,
//! the i32 and i64 limits and just past them, floats −0.0 / 1e308 / denormals, numbers written
//! as strings, enums their near misses, every field `null`, each wrong JSON type, missing,
//! duplicated; arrays 0, 1, 3 and many elements; objects empty or with an unknown member.
//!
//! [`apply`] edits an existing payload, so the campaign applies operators to valid requests and
//! to inputs of its feedback corpus alike. Each application records one `field.<op>` step whose
//! `at` is `<route> <place>:<name>` ([`pair_key`]): the coverage table and the masking of known
//! crashes read it back.

use super::json::J;
use super::mutate::step;
use crate::api::fields::{Field, FieldType, Place, ROOT};
use crate::model::{HttpRequest, MutationStep, Payload, WsScript};

/// Stands for invalid UTF-8 inside a JSON string until the body is serialised (a `J` holds
/// text; the bytes are swapped in afterwards).
const BAD_UTF8_MARK: &str = "\u{E000}bad-utf8\u{E000}";
const BAD_UTF8: &[u8] = &[0xC3, 0x28, 0xFF, 0xFE];
const LONG: usize = 100_000;
const LONG_TEXT: usize = 8192;
const MANY: usize = 10_000;
const COMBINING: &str = "e\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}\u{307}\u{308}\u{309}\u{30a}";

const ANY: &[&str] = &["null", "missing", "duplicate-key"];
const STR: &[&str] = &["empty", "whitespace", "long", "nul", "control", "invalid-utf8", "combining"];
const INT: &[&str] = &[
    "zero",
    "minus-one",
    "one",
    "i32-max",
    "i32-max+1",
    "i32-min",
    "i32-min-1",
    "i64-max",
    "i64-min",
    "i64-max+1",
    "fraction",
    "as-string",
];
const FLOAT: &[&str] = &["zero", "minus-zero", "minus-one", "huge", "tiny", "overflow", "as-string"];
const BOOL: &[&str] = &["true", "false", "as-string", "one", "zero"];
const ENUM: &[&str] = &["upper", "capitalised", "empty", "unknown", "padded"];
const UUID: &[&str] = &["nil", "uppercase", "short", "long-uuid", "non-hex", "empty"];
const TIMESTAMP: &[&str] = &["empty", "garbage", "year-zero", "far-future", "no-zone"];
const OBJECT: &[&str] = &["empty-object", "unknown-member"];
const ARRAY: &[&str] = &["len-0", "len-1", "len-3", "len-many"];
/// Text places (query, path, header) have no JSON types: their own operators only.
const TEXT_ANY: &[&str] = &["missing", "duplicate"];

fn type_ops(ty: FieldType) -> &'static [&'static str] {
    match ty {
        FieldType::Str => STR,
        FieldType::Uuid => UUID,
        FieldType::Int => INT,
        FieldType::Float => FLOAT,
        FieldType::Bool => BOOL,
        FieldType::Enum(_) => ENUM,
        FieldType::Timestamp => TIMESTAMP,
        FieldType::Object => OBJECT,
        FieldType::Array => ARRAY,
    }
}

/// The JSON types a member is swapped to (all but its own).
fn wrong_types(ty: FieldType) -> Vec<&'static str> {
    let own = match ty {
        FieldType::Str | FieldType::Uuid | FieldType::Enum(_) | FieldType::Timestamp => "type:string",
        FieldType::Int | FieldType::Float => "type:number",
        FieldType::Bool => "type:bool",
        FieldType::Object => "type:object",
        FieldType::Array => "type:array",
    };
    ["type:string", "type:number", "type:bool", "type:array", "type:object"].into_iter().filter(|t| *t != own).collect()
}

/// Operators of a whole body or frame ([`ROOT`]).
const ROOT_OPS: &[&str] = &["unknown-member", "empty-object", "type:array", "type:string", "null"];

/// Every operator that applies to `f`, in a fixed order.
pub fn ops_for(f: &Field) -> Vec<&'static str> {
    if f.name == ROOT {
        return ROOT_OPS.to_vec();
    }
    let own: Vec<&'static str> = match (f.place, f.ty) {
        // A path segment or header is text: numbers and near misses, no JSON shapes.
        (Place::Path | Place::Header | Place::Query, FieldType::Object | FieldType::Array) => Vec::new(),
        (Place::Path | Place::Header | Place::Query, FieldType::Bool) => vec!["as-string", "one", "zero"],
        (_, ty) => type_ops(ty).to_vec(),
    };
    let mut out = own;
    match f.place {
        Place::Body | Place::Frame => {
            out.extend(wrong_types(f.ty));
            out.extend(ANY);
        }
        Place::Query | Place::Header => out.extend(TEXT_ANY),
        // A path segment cannot be missing or doubled without becoming another route.
        Place::Path => {}
    }
    out
}

/// `<route> <place>:<name>`: the `at` of a field step; with the operator it names a pair.
pub fn pair_key(f: &Field) -> String {
    format!("{} {}", f.route, f.label())
}

/// The field pair (`at`, operator) a generated input's trail records, if it has one.
pub fn pair_of(trail: &[MutationStep]) -> Option<(&str, &str)> {
    trail.iter().rev().find_map(|s| s.op.strip_prefix("field.").map(|op| (s.at.as_str(), op)))
}

/// A JSON value for a member of type `ty` under operator `op`; None for `missing`,
/// `duplicate-key` and the array / object operators that edit what is there.
fn json_value(ty: FieldType, op: &str) -> Option<J> {
    let raw = |s: &str| Some(J::Raw(s.to_string()));
    let text = |s: &str| Some(J::str(s.to_string()));
    match op {
        "null" => Some(J::Null),
        "type:string" => text("x"),
        "type:number" => Some(J::Int(1)),
        "type:bool" => Some(J::Bool(true)),
        "type:array" => Some(J::Arr(vec![])),
        "type:object" => Some(J::obj()),
        "empty" => text(""),
        "whitespace" => text(" \t\n "),
        "long" => Some(J::RepStr('A', LONG)),
        "nul" => text("a\u{0}b"),
        "control" => text("\u{1}\u{1b}[0m\u{7f}\u{8}"),
        "invalid-utf8" => text(BAD_UTF8_MARK),
        "combining" => text(COMBINING),
        "zero" if ty == FieldType::Float => raw("0.0"),
        "zero" if ty == FieldType::Bool => Some(J::Int(0)),
        "zero" => Some(J::Int(0)),
        "minus-one" if ty == FieldType::Float => raw("-1.0"),
        "minus-one" => Some(J::Int(-1)),
        "one" => Some(J::Int(1)),
        "i32-max" => Some(J::Int(i32::MAX as i64)),
        "i32-max+1" => Some(J::Int(i32::MAX as i64 + 1)),
        "i32-min" => Some(J::Int(i32::MIN as i64)),
        "i32-min-1" => Some(J::Int(i32::MIN as i64 - 1)),
        "i64-max" => Some(J::Int(i64::MAX)),
        "i64-min" => Some(J::Int(i64::MIN)),
        "i64-max+1" => raw("9223372036854775808"),
        "fraction" => raw("1.5"),
        "as-string" => match ty {
            FieldType::Bool => text("true"),
            FieldType::Float => text("0.5"),
            _ => text("1"),
        },
        "minus-zero" => raw("-0.0"),
        "huge" => raw("1e308"),
        "tiny" => raw("5e-324"),
        "overflow" => raw("1e309"),
        "true" => Some(J::Bool(true)),
        "false" => Some(J::Bool(false)),
        "upper" | "capitalised" | "unknown" | "padded" => enum_value(ty, op).map(J::str),
        "nil" => text("00000000-0000-0000-0000-000000000000"),
        "uppercase" => text("0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D"),
        "short" => text("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4"),
        "long-uuid" => text("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d0"),
        "non-hex" => text("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"),
        "garbage" => text("not a time"),
        "year-zero" => text("0000-01-01T00:00:00Z"),
        "far-future" => text("9999-12-31T23:59:59.999999Z"),
        "no-zone" => text("2026-01-01T00:00:00"),
        "empty-object" => Some(J::obj()),
        _ => None,
    }
}

/// The near misses of an enum: its first word upper-cased, capitalised, padded; an unknown word.
fn enum_value(ty: FieldType, op: &str) -> Option<String> {
    let first = match ty {
        FieldType::Enum(words) => words.first().copied().unwrap_or("x"),
        _ => "value",
    };
    Some(match op {
        "upper" => first.to_ascii_uppercase(),
        "capitalised" => {
            let mut c = first.chars();
            c.next().map(|h| h.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        }
        "padded" => format!(" {first} "),
        "unknown" => "zzz_unknown".to_string(),
        _ => return None,
    })
}

/// The text of a query / path / header value under `op`, already percent-encoded where it
/// goes into the request target.
fn text_value(ty: FieldType, op: &str, in_target: bool) -> Option<String> {
    let enc = |s: &str| if in_target { s.to_string() } else { s.replace('%', "") };
    Some(match op {
        "empty" => String::new(),
        "whitespace" => {
            if in_target {
                "%20%09%20".into()
            } else {
                " \t ".into()
            }
        }
        "long" => "A".repeat(LONG_TEXT),
        "nul" => enc("a%00b"),
        "control" => {
            if in_target {
                "%01%1B%7F".into()
            } else {
                "\u{1}\u{7f}".into()
            }
        }
        "invalid-utf8" => {
            if in_target {
                "%C3%28%FF%FE".into()
            } else {
                return None; // header bytes: see `apply_header`
            }
        }
        "combining" => {
            if in_target {
                "e%CC%81%CC%82%CC%83".into()
            } else {
                COMBINING.into()
            }
        }
        "as-string" if ty == FieldType::Bool => "true".into(),
        _ => match json_value(ty, op)? {
            J::Str(s) => s.to_string(),
            J::Int(n) => n.to_string(),
            J::Raw(s) => s,
            J::Bool(b) => b.to_string(),
            J::Null => "null".into(),
            _ => return None,
        },
    })
}

/// One segment of a body path: a member name or the first-element index.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seg<'a> {
    Key(&'a str),
    First,
}

fn parse_path(p: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in p.split('.') {
        match part.strip_suffix("[0]") {
            Some(k) => {
                out.push(Seg::Key(k));
                out.push(Seg::First);
            }
            None => out.push(Seg::Key(part)),
        }
    }
    out
}

/// The container at `path` (created when absent: objects, or an array with one object).
fn slot<'j>(j: &'j mut J, path: &[Seg]) -> &'j mut J {
    let mut cur = j;
    for (i, s) in path.iter().enumerate() {
        let next_is_index = matches!(path.get(i + 1), Some(Seg::First));
        match s {
            Seg::Key(k) => {
                if !matches!(cur, J::Obj(_)) {
                    *cur = J::obj();
                }
                let J::Obj(m) = cur else { unreachable!() };
                let pos = match m.iter().position(|(n, _)| n == k) {
                    Some(p) => p,
                    None => {
                        m.push((k.to_string().into(), if next_is_index { J::Arr(vec![]) } else { J::obj() }));
                        m.len() - 1
                    }
                };
                cur = &mut m[pos].1;
            }
            Seg::First => {
                if !matches!(cur, J::Arr(_)) {
                    *cur = J::Arr(vec![]);
                }
                let J::Arr(a) = cur else { unreachable!() };
                if a.is_empty() {
                    a.push(J::obj());
                }
                cur = &mut a[0];
            }
        }
    }
    cur
}

/// Apply `op` to member `path` of `j`. None when the operator does not apply.
fn edit_json(j: &mut J, path: &str, ty: FieldType, op: &str) -> Option<String> {
    if path == ROOT {
        return match op {
            "unknown-member" => {
                if !matches!(j, J::Obj(_)) {
                    *j = J::obj();
                }
                let J::Obj(m) = j else { unreachable!() };
                m.push(("zz_unknown".into(), J::Int(1)));
                Some("extra member zz_unknown".into())
            }
            _ => {
                let v = json_value(ty, op)?;
                let d = format!("the whole value: {}", describe(&v));
                *j = v;
                Some(d)
            }
        };
    }
    let segs = parse_path(path);
    let (last, parent) = segs.split_last()?;
    let Seg::Key(key) = last else { return None };
    let obj = slot(j, parent);
    if !matches!(obj, J::Obj(_)) {
        *obj = J::obj();
    }
    let J::Obj(members) = obj else { unreachable!() };
    let pos = members.iter().position(|(n, _)| n == key);
    match op {
        "missing" => {
            members.retain(|(n, _)| n != key);
            Some("removed".into())
        }
        "duplicate-key" => {
            let at = pos.map(|p| p + 1).unwrap_or(members.len());
            members.insert(at, (key.to_string().into(), J::str("")));
            Some("a second member of the same name, \"\"".into())
        }
        "len-0" | "len-1" | "len-3" | "len-many" => {
            let n = match op {
                "len-0" => 0,
                "len-1" => 1,
                "len-3" => 3,
                _ => MANY,
            };
            let elem = pos.and_then(|p| match &members[p].1 {
                J::Arr(a) => a.first().cloned(),
                _ => None,
            });
            let elem = elem.unwrap_or_else(J::obj);
            let v = if n == MANY {
                J::RepArr(String::from_utf8_lossy(&elem.to_bytes()).into_owned(), n)
            } else {
                J::Arr(vec![elem; n])
            };
            set(members, pos, key, v);
            Some(format!("array of {n}"))
        }
        "unknown-member" => {
            let v = match pos {
                Some(p) if matches!(members[p].1, J::Obj(_)) => members[p].1.clone(),
                _ => J::obj(),
            };
            set(members, pos, key, v.with("zz_unknown", J::Int(1)));
            Some("extra member zz_unknown".into())
        }
        _ => {
            let v = json_value(ty, op)?;
            let d = describe(&v);
            set(members, pos, key, v);
            Some(d)
        }
    }
}

fn set(members: &mut Vec<(super::json::Text, J)>, pos: Option<usize>, key: &str, v: J) {
    match pos {
        Some(p) => members[p].1 = v,
        None => members.push((key.to_string().into(), v)),
    }
}

fn describe(v: &J) -> String {
    match v {
        J::RepStr(c, n) => format!("{n} × {c:?}"),
        J::Str(s) if s == BAD_UTF8_MARK => "invalid UTF-8".into(),
        _ => {
            let b = v.to_bytes();
            String::from_utf8_lossy(&b[..b.len().min(48)]).into_owned()
        }
    }
}

/// Serialise, swapping invalid UTF-8 in for its mark.
fn body_bytes(j: &J) -> Vec<u8> {
    let b = j.to_bytes();
    let mark = BAD_UTF8_MARK.as_bytes();
    match b.windows(mark.len()).position(|w| w == mark) {
        Some(i) => {
            let mut out = Vec::with_capacity(b.len());
            out.extend_from_slice(&b[..i]);
            out.extend_from_slice(BAD_UTF8);
            out.extend_from_slice(&b[i + mark.len()..]);
            out
        }
        None => b,
    }
}

fn set_body(r: &mut HttpRequest, body: Vec<u8>) {
    r.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
    if !r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
        r.headers.push(("content-type".into(), b"application/json".to_vec()));
    }
    r.headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    r.body = body;
}

/// Apply `op` to field `f` of `p`. None when the payload is not of the field's route kind,
/// its body is not JSON, or the operator does not apply.
pub fn apply(p: &Payload, f: &Field, op: &str) -> Option<(Payload, MutationStep)> {
    let (out, detail) = match (p, f.place) {
        (Payload::Http(r), Place::Body) => {
            let mut j = J::from_value(&serde_json::from_slice::<serde_json::Value>(&r.body).ok()?);
            // The bulk route's array form: the first event stands for all.
            let target = match &mut j {
                J::Arr(a) if !a.is_empty() => &mut a[0],
                other => other,
            };
            let d = edit_json(target, f.name, f.ty, op)?;
            let mut r = r.clone();
            r.raw = None;
            set_body(&mut r, body_bytes(&j));
            (Payload::Http(r), d)
        }
        (Payload::Http(r), Place::Query) => {
            let mut r = r.clone();
            let d = edit_query(&mut r, f, op)?;
            (Payload::Http(r), d)
        }
        (Payload::Http(r), Place::Path) => {
            let mut r = r.clone();
            let d = edit_path(&mut r, f, op)?;
            (Payload::Http(r), d)
        }
        (Payload::Http(r), Place::Header) => {
            let mut r = r.clone();
            let d = edit_header(&mut r.headers, f, op)?;
            (Payload::Http(r), d)
        }
        (Payload::Ws(w), Place::Frame) => {
            let (w, d) = edit_frame(w, f, op)?;
            (Payload::Ws(w), d)
        }
        _ => return None,
    };
    Some((out, step(&format!("field.{op}"), pair_key(f), detail)))
}

fn edit_query(r: &mut HttpRequest, f: &Field, op: &str) -> Option<String> {
    let (path, query) = match r.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (r.target.clone(), String::new()),
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect();
    let pos = pairs.iter().position(|(k, _)| k == f.name);
    let d = match op {
        "missing" => {
            pairs.retain(|(k, _)| k != f.name);
            "removed".to_string()
        }
        "duplicate" => {
            let v = pos.map(|p| pairs[p].1.clone()).unwrap_or_default();
            pairs.push((f.name.to_string(), v.clone()));
            pairs.push((f.name.to_string(), String::new()));
            "given twice, the second empty".to_string()
        }
        _ => {
            let v = text_value(f.ty, op, true)?;
            let d = if v.len() > 48 { format!("{} bytes", v.len()) } else { format!("{v:?}") };
            match pos {
                Some(p) => pairs[p].1 = v,
                None => pairs.push((f.name.to_string(), v)),
            }
            d
        }
    };
    let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    r.target = if q.is_empty() { path } else { format!("{path}?{}", q.join("&")) };
    r.raw = None;
    Some(d)
}

fn edit_path(r: &mut HttpRequest, f: &Field, op: &str) -> Option<String> {
    let route = crate::api::Route::by_name(f.route)?;
    let at = route.template.split('/').position(|s| s.strip_prefix(':') == Some(f.name))?;
    let (path, query) = match r.target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (r.target.clone(), None),
    };
    let mut segs: Vec<String> = path.split('/').map(str::to_string).collect();
    let v = text_value(f.ty, op, true)?;
    *segs.get_mut(at)? = v.clone();
    r.target = segs.join("/") + &query.map(|q| format!("?{q}")).unwrap_or_default();
    r.raw = None;
    Some(if v.len() > 48 { format!("{} bytes", v.len()) } else { format!("{v:?}") })
}

/// The API key header: `x-sentry-auth`, or `authorization` when the request carries that one.
fn edit_header(headers: &mut Vec<(String, Vec<u8>)>, f: &Field, op: &str) -> Option<String> {
    let pos = headers
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(f.name))
        .or_else(|| headers.iter().position(|(n, _)| n.eq_ignore_ascii_case("authorization")));
    let name = pos.map(|p| headers[p].0.clone()).unwrap_or_else(|| f.name.to_string());
    let value: Vec<u8> = match op {
        "missing" => {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            return Some("removed".into());
        }
        "duplicate" => {
            let v = pos.map(|p| headers[p].1.clone()).unwrap_or_default();
            headers.push((name, v));
            return Some("given twice".into());
        }
        "invalid-utf8" => BAD_UTF8.to_vec(),
        _ => text_value(f.ty, op, false)?.into_bytes(),
    };
    let d = if value.len() > 48 {
        format!("{} bytes", value.len())
    } else {
        format!("{:?}", String::from_utf8_lossy(&value))
    };
    match pos {
        Some(p) => headers[p].1 = value,
        None => headers.push((name, value)),
    }
    Some(d)
}

/// The first data frame's JSON, edited and sent as a text frame; the script keeps that frame
/// and its close.
fn edit_frame(w: &WsScript, f: &Field, op: &str) -> Option<(WsScript, String)> {
    let i = w.frames.iter().position(|fr| {
        matches!(fr.opcode, 1 | 2) && serde_json::from_slice::<serde_json::Value>(&fr.payload).is_ok()
    })?;
    let mut j = J::from_value(&serde_json::from_slice::<serde_json::Value>(&w.frames[i].payload).ok()?);
    let d = edit_json(&mut j, f.name, f.ty, op)?;
    let mut out = w.clone();
    let mut frame = w.frames[i].clone();
    frame.payload = body_bytes(&j);
    frame.declared_len = None;
    frame.opcode = 1;
    frame.fin = true;
    out.frames = vec![frame];
    if let Some(close) = w.frames.iter().rev().find(|fr| fr.opcode == 8) {
        out.frames.push(close.clone());
    }
    Some((out, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fields;

    #[test]
    fn every_field_has_operators_and_the_pairs_are_named_once() {
        let all = fields::all();
        let mut keys = std::collections::BTreeSet::new();
        for f in &all {
            let ops = ops_for(f);
            assert!(!ops.is_empty(), "{f:?}");
            for op in ops {
                assert!(keys.insert((pair_key(f), op)), "{} {op}", pair_key(f));
            }
        }
        assert!(keys.len() > 1000, "{} pairs", keys.len());
    }

    #[test]
    fn a_body_member_gets_exactly_its_value_and_the_rest_stays() {
        let r = HttpRequest::new(None, "POST", "/x".into(), br#"{"retention_days":30,"sample_rate":0.5}"#.to_vec());
        let f = Field {
            route: "settings-update",
            place: Place::Body,
            name: "retention_days",
            ty: FieldType::Int,
            required: false,
        };
        let (p, s) = apply(&Payload::Http(r), &f, "minus-one").unwrap();
        let Payload::Http(h) = p else { panic!() };
        assert_eq!(h.body, br#"{"retention_days":-1,"sample_rate":0.5}"#);
        assert!(h.headers.iter().any(|(n, v)| n == "content-length" && v == b"39"));
        assert_eq!((s.op.as_str(), s.at.as_str()), ("field.minus-one", "settings-update body:retention_days"));
        assert_eq!(pair_of(&[s]), Some(("settings-update body:retention_days", "minus-one")));
    }

    #[test]
    fn nested_members_are_created_and_arrays_resized() {
        let mut j = J::from_value(&serde_json::json!({"message": "m"}));
        edit_json(&mut j, "stacktrace[0].lineno", FieldType::Int, "i32-max+1").unwrap();
        assert_eq!(j.to_value(), serde_json::json!({"message": "m", "stacktrace": [{"lineno": 2147483648i64}]}));
        edit_json(&mut j, "stacktrace", FieldType::Array, "len-3").unwrap();
        assert_eq!(j.to_value()["stacktrace"].as_array().unwrap().len(), 3);
        edit_json(&mut j, "message", FieldType::Str, "invalid-utf8").unwrap();
        let b = body_bytes(&j);
        assert!(std::str::from_utf8(&b).is_err() && b.windows(2).any(|w| w == [0xC3, 0x28]));
        edit_json(&mut j, "message", FieldType::Str, "missing").unwrap();
        assert!(j.get("message").is_none());
    }

    #[test]
    fn the_whole_body_gets_an_unknown_member_or_another_type() {
        let mut j = J::from_value(&serde_json::json!({"label": "k"}));
        edit_json(&mut j, ROOT, FieldType::Object, "unknown-member").unwrap();
        assert_eq!(j.to_value(), serde_json::json!({"label": "k", "zz_unknown": 1}));
        edit_json(&mut j, ROOT, FieldType::Object, "type:array").unwrap();
        assert_eq!(j.to_value(), serde_json::json!([]));
    }

    #[test]
    fn query_path_and_header_operators_edit_the_text() {
        let mut r = HttpRequest::new(None, "GET", "/api/v1/projects/p/dashboard/top-issues?limit=5".into(), vec![]);
        let f = Field {
            route: "dashboard-top-issues",
            place: Place::Query,
            name: "limit",
            ty: FieldType::Int,
            required: false,
        };
        edit_query(&mut r, &f, "minus-one").unwrap();
        assert_eq!(r.target, "/api/v1/projects/p/dashboard/top-issues?limit=-1");
        let p = Field {
            route: "dashboard-top-issues",
            place: Place::Path,
            name: "project_id",
            ty: FieldType::Str,
            required: true,
        };
        edit_path(&mut r, &p, "nul").unwrap();
        assert_eq!(r.target, "/api/v1/projects/a%00b/dashboard/top-issues?limit=-1");
        let mut h = vec![("x-sentry-auth".to_string(), b"mshr_k".to_vec())];
        let hf = Field {
            route: "events-ingest",
            place: Place::Header,
            name: "x-sentry-auth",
            ty: FieldType::Str,
            required: true,
        };
        edit_header(&mut h, &hf, "empty").unwrap();
        assert_eq!(h, vec![("x-sentry-auth".to_string(), Vec::new())]);
    }
}
