//! HTTP mutation operators (`docs/mesher-interface.md` §2.1, §2.3, §7 "transport"): field operators on an
//! `HttpRequest` (auth forms, Content-Length lies, chunked bodies, `Expect`, missing / duplicate /
//! huge / many headers, path parameters, path shapes, query boundaries, methods) and wire
//! operators on its bytes (request line, line endings, header syntax, pipelining).
//!
//! A request whose fields no client library would send as given (lying or duplicate lengths,
//! chunked framing, exact head sizes, no Host) or that went through a wire operator carries its
//! exact bytes in `HttpRequest::raw`, with `host: localhost` ([`RAW_HOST`]; Mesher ignores Host).

use super::step;
use crate::api::{ParamKind, QueryKind, Route, match_route};
use crate::generate::rng::{GenRng, below, chance, pick, range};
use crate::generate::valid::{self, Ctx};
use crate::model::{HttpRequest, MutationStep};

pub const RAW_HOST: &str = "localhost";

/// The request being mutated plus what its wire form needs.
pub struct St {
    pub req: HttpRequest,
    /// The fields must be sent byte-exactly (raw path).
    pub raw_needed: bool,
    /// Do not add a Host header when building the raw bytes.
    pub no_host: bool,
}

pub struct FieldOp {
    pub name: &'static str,
    pub apply: fn(&mut GenRng, &Ctx, &mut St) -> Option<(String, String)>,
}

/// (where, what) of an applied operator.
pub type Applied = Option<(String, String)>;

pub struct WireOp {
    pub name: &'static str,
    pub apply: fn(&mut GenRng, &Ctx, &mut Vec<u8>) -> Applied,
}

pub const FIELD_OPS: &[FieldOp] = &[
    FieldOp { name: "http.auth-form", apply: auth_form },
    FieldOp { name: "http.content-length-lie", apply: content_length_lie },
    FieldOp { name: "http.chunked", apply: chunked },
    FieldOp { name: "http.expect-continue", apply: expect_continue },
    FieldOp { name: "http.drop-header", apply: drop_header },
    FieldOp { name: "http.duplicate-header", apply: duplicate_header },
    FieldOp { name: "http.header-case", apply: header_case },
    FieldOp { name: "http.huge-header", apply: huge_header },
    FieldOp { name: "http.many-headers", apply: many_headers },
    FieldOp { name: "http.path-param", apply: path_param },
    FieldOp { name: "http.path-shape", apply: path_shape },
    FieldOp { name: "http.query", apply: query },
    FieldOp { name: "http.method", apply: method },
];

pub const WIRE_OPS: &[WireOp] = &[
    WireOp { name: "http.request-line", apply: request_line },
    WireOp { name: "http.line-endings", apply: line_endings },
    WireOp { name: "http.header-syntax", apply: header_syntax },
    WireOp { name: "http.pipelined", apply: pipelined },
];

/// The request's bytes as they go on the wire (Host added unless `no_host` or present).
pub fn wire(st: &St) -> Vec<u8> {
    let mut out = head(st, st.req.body.len());
    out.extend_from_slice(&st.req.body);
    out
}

/// The head [`wire`] writes (request line, headers, blank line), with room for `room` more bytes.
fn head(st: &St, room: usize) -> Vec<u8> {
    debug_assert!(st.req.raw.is_none(), "mutated requests get their raw bytes only in `finish`");
    st.req.head_with((!st.no_host).then_some(RAW_HOST), b"", room)
}

/// Apply a named field operator.
pub fn apply_field(name: &str, r: &mut GenRng, ctx: &Ctx, st: &mut St) -> Option<MutationStep> {
    let op = FIELD_OPS.iter().find(|o| o.name == name)?;
    (op.apply)(r, ctx, st).map(|(a, d)| step(op.name, a, d))
}

/// Apply a named wire operator.
pub fn apply_wire(name: &str, r: &mut GenRng, ctx: &Ctx, b: &mut Vec<u8>) -> Option<MutationStep> {
    let op = WIRE_OPS.iter().find(|o| o.name == name)?;
    (op.apply)(r, ctx, b).map(|(a, d)| step(op.name, a, d))
}

/// Finish a mutated request: raw bytes when needed, route recomputed like Mesher's router.
pub fn finish(st: St, wire_bytes: Option<Vec<u8>>) -> HttpRequest {
    let raw = match wire_bytes {
        Some(b) => Some(b),
        None if st.raw_needed || st.no_host => Some(wire(&st)),
        None => None,
    };
    let mut req = st.req;
    req.raw = raw;
    req.route = route_of(&req.method, &req.target);
    req
}

/// The route Mesher would dispatch `method target` to.
pub fn route_of(method: &str, target: &str) -> Option<crate::api::RouteId> {
    let path = target.split('?').next().unwrap_or("");
    match_route(method, path).map(|m| m.route.id)
}

/// Mutate a valid request with 1..=max_mutations operators (field operators, then possibly a
/// wire operator last).
pub fn mutate(r: &mut GenRng, ctx: &Ctx, req: HttpRequest) -> (HttpRequest, Vec<MutationStep>) {
    let n = range(r, 1, ctx.opts.max_mutations.max(1) as u64);
    let mut st = St { req, raw_needed: false, no_host: false };
    let mut trail = Vec::new();
    let mut wire_bytes: Option<Vec<u8>> = None;
    for i in 0..n {
        if i + 1 == n && chance(r, 0.15) {
            let mut b = wire(&st);
            let op = pick(r, WIRE_OPS);
            if let Some((a, d)) = (op.apply)(r, ctx, &mut b) {
                trail.push(step(op.name, a, d));
                wire_bytes = Some(b);
            }
        } else {
            for _ in 0..4 {
                let op = pick(r, FIELD_OPS);
                if let Some((a, d)) = (op.apply)(r, ctx, &mut st) {
                    trail.push(step(op.name, a, d));
                    break;
                }
            }
        }
    }
    (finish(st, wire_bytes), trail)
}

fn set_header(req: &mut HttpRequest, name: &str, value: Vec<u8>) {
    req.headers.retain(|(n, _)| n != name);
    req.headers.push((name.to_string(), value));
}

fn remove_auth(req: &mut HttpRequest) {
    req.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("x-sentry-auth") && !n.eq_ignore_ascii_case("authorization"));
}

// ---------------------------------------------------------------- field operators

fn auth_form(r: &mut GenRng, ctx: &Ctx, st: &mut St) -> Option<(String, String)> {
    let key = if ctx.ingest_keys.is_empty() { "mshr_".to_string() } else { pick(r, &ctx.ingest_keys).clone() };
    let revoked = ctx.fixtures.revoked_key.1.clone();
    let req = &mut st.req;
    remove_auth(req);
    let (label, hs): (&str, Vec<(&str, String)>) = match below(r, 14) {
        0 => ("bare key", vec![("x-sentry-auth", key)]),
        1 => ("bare key in authorization", vec![("authorization", key)]),
        2 => ("Sentry sentry_key=", vec![("x-sentry-auth", format!("Sentry sentry_key={key}"))]),
        3 => ("Bearer", vec![("authorization", format!("Bearer {key}"))]),
        4 => ("capitalised X-Sentry-Auth", vec![("X-Sentry-Auth", key)]),
        5 => ("capitalised Authorization", vec![("Authorization", key)]),
        6 => {
            ("both headers, wrong x-sentry-auth", vec![("x-sentry-auth", "mshr_wrong".into()), ("authorization", key)])
        }
        7 => {
            ("both headers, right x-sentry-auth", vec![("x-sentry-auth", key), ("authorization", "mshr_wrong".into())])
        }
        8 => ("empty value", vec![("x-sentry-auth", String::new())]),
        9 => ("revoked key", vec![("x-sentry-auth", revoked)]),
        10 => ("surrounding whitespace", vec![("x-sentry-auth", format!("  {key}\t"))]),
        11 => ("no auth header", vec![]),
        12 => ("uppercase key", vec![("x-sentry-auth", key.to_uppercase())]),
        _ => {
            let mut k = key.clone();
            k.pop();
            ("key missing its last character", vec![("x-sentry-auth", k)])
        }
    };
    for (n, v) in hs {
        req.headers.push((n.to_string(), v.into_bytes()));
    }
    Some(("x-sentry-auth".into(), label.into()))
}

fn content_length_lie(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    let len = st.req.body.len() as u64;
    let mut second: Option<String> = None;
    let v: String = match below(r, 9) {
        0 if len > 0 => (len - range(r, 1, len)).to_string(),
        0 | 1 => (len + range(r, 1, 4096)).to_string(),
        2 => (1u64 << range(r, 40, 62)).to_string(),
        3 => (*pick(
            r,
            &[
                "281474976710656",
                "1099511627776",
                "9223372036854775807",
                "9223372036854775808",
                "18446744073709551615",
                "18446744073709551616",
            ],
        ))
        .to_string(),
        4 => format!("-{}", range(r, 1, 1 << 20)),
        5 => (*pick(r, &["abc", "1e3", "0x10", "+5", " 12", "12 ", "1,2", "", "١٢"])).to_string(),
        6 if len > 0 => "0".to_string(),
        6 | 7 => {
            // Two different lengths, the true one first or last.
            second = Some((len + 1).to_string());
            len.to_string()
        }
        _ => "99999999999999999999999999".to_string(),
    };
    st.req.headers.retain(|(n, _)| n != "content-length");
    let detail = match &second {
        Some(b) if chance(r, 0.5) => {
            st.req.headers.push(("content-length".into(), b.clone().into_bytes()));
            st.req.headers.push(("content-length".into(), v.clone().into_bytes()));
            format!("{b:?} then {v:?} for a {len}-byte body")
        }
        Some(b) => {
            st.req.headers.push(("content-length".into(), v.clone().into_bytes()));
            st.req.headers.push(("content-length".into(), b.clone().into_bytes()));
            format!("{v:?} then {b:?} for a {len}-byte body")
        }
        None => {
            st.req.headers.push(("content-length".into(), v.clone().into_bytes()));
            format!("{v:?} for a {len}-byte body")
        }
    };
    st.raw_needed = true;
    Some(("content-length".into(), detail))
}

fn chunked(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    let body = std::mem::take(&mut st.req.body);
    let mut out = Vec::with_capacity(body.len() + 64);
    let variant = below(r, 5);
    let mut rest: &[u8] = &body;
    while !rest.is_empty() {
        let n = (range(r, 1, 64) as usize).min(rest.len());
        match variant {
            1 => out.extend_from_slice(format!("{:x};ext=1\r\n", n).as_bytes()),
            2 => out.extend_from_slice(format!("{:x}\r\n", n + 3).as_bytes()),
            _ => out.extend_from_slice(format!("{:x}\r\n", n).as_bytes()),
        }
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    if variant == 3 {
        out.extend_from_slice(b"zz\r\n");
    } else if variant != 4 {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    let keep_cl = chance(r, 0.3);
    if keep_cl {
        set_header(&mut st.req, "content-length", body.len().to_string().into_bytes());
    } else {
        st.req.headers.retain(|(n, _)| n != "content-length");
    }
    st.req.headers.push(("transfer-encoding".into(), b"chunked".to_vec()));
    st.req.body = out;
    st.raw_needed = true;
    let label =
        ["proper chunks", "chunk extensions", "chunk sizes too large", "bad final chunk size", "no final chunk"]
            [variant];
    Some(("transfer-encoding".into(), format!("{label}{}", if keep_cl { ", content-length kept" } else { "" })))
}

fn expect_continue(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    let name = if chance(r, 0.5) { "expect" } else { "Expect" };
    st.req.headers.push((name.into(), b"100-continue".to_vec()));
    Some((name.into(), "100-continue".into()))
}

fn drop_header(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    if st.req.headers.is_empty() || chance(r, 0.25) {
        st.no_host = true;
        return Some(("host".into(), "no Host header".into()));
    }
    let i = below(r, st.req.headers.len());
    let (n, _) = st.req.headers.remove(i);
    if n == "content-length" {
        st.raw_needed = true;
    }
    Some((n.clone(), format!("dropped {n}")))
}

fn duplicate_header(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    if st.req.headers.is_empty() {
        return None;
    }
    let i = below(r, st.req.headers.len());
    let (n, v) = st.req.headers[i].clone();
    let other = match below(r, 3) {
        0 => v.clone(),
        1 => Vec::new(),
        _ => b"duplicate".to_vec(),
    };
    let (first, second) = if chance(r, 0.5) { (other.clone(), v) } else { (v, other.clone()) };
    st.req.headers[i].1 = first;
    st.req.headers.push((n.clone(), second));
    st.raw_needed = true;
    Some((n, format!("twice, other value {:?}", String::from_utf8_lossy(&other))))
}

fn header_case(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    if st.req.headers.is_empty() {
        return None;
    }
    let i = below(r, st.req.headers.len());
    let old = st.req.headers[i].0.clone();
    let new = if chance(r, 0.5) {
        old.to_uppercase()
    } else {
        old.split('-')
            .map(|p| {
                let mut c = p.chars();
                c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-")
    };
    st.req.headers[i].0 = new.clone();
    st.raw_needed = true;
    Some((old, format!("name -> {new}")))
}

fn huge_header(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    // Head = everything up to and including the blank line (built without the body).
    let head_len = |st: &St| head(st, 0).len();
    let target = match below(r, 6) {
        0 => 8190,
        1 => 8191,
        2 => 8192,
        3 => 8193,
        4 => 8194 + range(r, 0, 64) as usize,
        _ => *pick(r, &[16384usize, 65536, 1 << 20]),
    };
    // "x-pad: " + value + "\r\n"
    let now = head_len(st);
    let overhead = "x-pad: \r\n".len();
    if now + overhead >= target {
        return None;
    }
    let value = vec![b'a'; target - now - overhead];
    st.req.headers.push(("x-pad".into(), value));
    st.raw_needed = true;
    Some(("x-pad".into(), format!("request head of {target} bytes")))
}

fn many_headers(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    let total = *pick(r, &[99usize, 100, 101, 102, 200, 1000, 10_000]);
    let have = st.req.headers.len() + usize::from(!st.no_host && st.req.header("host").is_none());
    if have >= total {
        return None;
    }
    st.req.headers.reserve(total - have);
    // Names by hand rather than `format!`: up to 10 000 of them per input.
    let mut digits = [0u8; 20];
    for i in 0..total - have {
        let d = crate::generate::json::fmt_i64(i as i64, &mut digits);
        let mut name = String::with_capacity(3 + d.len());
        name.push_str("x-h");
        name.push_str(std::str::from_utf8(d).expect("ASCII digits"));
        st.req.headers.push((name, b"1".to_vec()));
    }
    st.raw_needed = true;
    Some(("x-h*".into(), format!("{total} header lines")))
}

/// A mutated path parameter value for a parameter of `kind` whose valid value is `valid`.
fn bad_param(r: &mut GenRng, _kind: ParamKind, valid: &str) -> (String, &'static str) {
    let upper = valid.to_uppercase();
    let v: (String, &str) = match below(r, 14) {
        0 => ("abc".into(), "non-UUID"),
        1 => (upper, "uppercase"),
        2 => (valid.replace('-', ""), "UUID without hyphens"),
        3 => (format!("{{{valid}}}"), "UUID in braces"),
        4 => ("x".repeat(36), "36 characters, not a UUID"),
        5 => ("default".into(), "slug"),
        6 => ("no-such-slug".into(), "unknown slug"),
        7 => (valid.replace('-', "%2D"), "percent-encoded"),
        8 => ("..".into(), "dot-dot"),
        9 => ("a".repeat(range(r, 1000, 10_000) as usize), "very long"),
        10 => ("ünï😀".into(), "unicode"),
        11 => ("00000000-0000-0000-0000-000000000000".into(), "nil UUID"),
        12 => (format!("{valid}'"), "SQL quote"),
        _ => ("bulk".into(), "the word bulk"),
    };
    // Some variants are no-ops on some values (uppercase of an all-digit UUID).
    if v.0 == valid { ("abc".into(), "non-UUID") } else { v }
}

fn path_param(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    let route = Route::get(st.req.route?);
    if route.params.is_empty() {
        return None;
    }
    let (path, query) = match st.req.target.split_once('?') {
        Some((p, q)) => (p.to_string(), format!("?{q}")),
        None => (st.req.target.clone(), String::new()),
    };
    let m = match_route(&st.req.method, &path)?;
    let mut args: Vec<String> = m.args.iter().map(|s| s.to_string()).collect();
    let i = below(r, args.len());
    let (v, label) = bad_param(r, route.params[i], &args[i]);
    args[i] = v;
    let argr: Vec<&str> = args.iter().map(String::as_str).collect();
    st.req.target = route.path(&argr) + &query;
    let name = route.param_names().nth(i).unwrap_or("param");
    Some((format!(":{name}"), label.into()))
}

fn path_shape(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    let (path, query) = match st.req.target.split_once('?') {
        Some((p, q)) => (p.to_string(), format!("?{q}")),
        None => (st.req.target.clone(), String::new()),
    };
    let (new, label): (String, &str) = match below(r, 12) {
        0 => (format!("{path}/"), "trailing slash"),
        1 => (path.replace('/', "//"), "doubled slashes"),
        2 => (path.replacen("/api", "/%61pi", 1), "percent-encoded letter"),
        3 => (path.replace('/', "%2F"), "percent-encoded slashes"),
        4 => (format!("{path}/{}", "a".repeat(range(r, 8192, 70_000) as usize)), "overlong path"),
        5 => (format!("{path}#frag"), "fragment"),
        6 => (path.trim_start_matches('/').to_string(), "no leading slash"),
        7 => (format!("http://{RAW_HOST}{path}"), "absolute-form"),
        8 => ("*".into(), "asterisk-form"),
        9 => (path.replacen("/api/v1", "/api/v1/./x/..", 1), "dot segments"),
        10 => (path.to_uppercase(), "uppercase"),
        _ => (format!("{path}?"), "empty query"),
    };
    st.req.target = new + &query;
    if st.req.target.contains(['#']) || st.req.target.len() > 8000 {
        st.raw_needed = true;
    }
    Some(("path".into(), label.into()))
}

/// A boundary or malformed value for a query parameter of `kind`.
fn bad_query_value(r: &mut GenRng, kind: QueryKind) -> (String, &'static str) {
    match kind {
        QueryKind::Limit | QueryKind::RawLimit => {
            let v = *pick(
                r,
                &[
                    "0",
                    "1",
                    "100",
                    "101",
                    "-1",
                    "2147483647",
                    "2147483648",
                    "9223372036854775808",
                    "abc",
                    "1.5",
                    "",
                    "1e3",
                    " 5",
                ],
            );
            (v.into(), "limit boundary")
        }
        QueryKind::Cursor => {
            let v = *pick(
                r,
                &[
                    "2026-02-17 06:29:45.123456+00",
                    "2026-02-17%2006:29:45+00",
                    "not-a-time",
                    "2026-13-45T99:99:99",
                    "",
                    "0",
                    "2026-02-17T06:29:45Z",
                    "infinity",
                ],
            );
            (v.into(), "cursor format")
        }
        QueryKind::CursorId | QueryKind::UserId => {
            ((*pick(r, &["abc", "", "00000000-0000-0000-0000-000000000000", "%27"])).into(), "id format")
        }
        QueryKind::Bucket => (
            (*pick(r, &["epoch", "dow", " hour", "HOURS", "fortnight", "", "hour;drop", "millennium"])).into(),
            "bucket unit",
        ),
        QueryKind::SearchText => {
            let v = match below(r, 5) {
                0 => String::new(),
                1 => "the+and+of".into(),
                2 => "&|!():*".into(),
                3 => "%20x%22".into(),
                _ => "q".repeat(range(r, 1000, 8000) as usize),
            };
            (v, "search text")
        }
        QueryKind::TagKey | QueryKind::TagValue => {
            ((*pick(r, &["\"", "\\", "a\"b", "ünï", "%22", "", "{}", "'"])).into(), "tag text")
        }
        QueryKind::IssueStatus | QueryKind::Level | QueryKind::AlertStatus => {
            ((*pick(r, &["", "RESOLVED", "x", "'", "%00"])).into(), "filter value")
        }
    }
}

fn query(r: &mut GenRng, ctx: &Ctx, st: &mut St) -> Option<(String, String)> {
    let route = Route::get(st.req.route?);
    let path = st.req.target.split('?').next().unwrap_or("").to_string();
    if route.query.is_empty() || chance(r, 0.15) {
        // Query shapes that do not depend on the parameters.
        let (q, label) = *pick(
            r,
            &[
                ("?a", "piece without ="),
                ("?a=b=c", "a=b=c"),
                ("?&&", "empty pieces"),
                ("?limit=1&limit=2", "duplicate key"),
            ],
        );
        st.req.target = format!("{path}{q}");
        return Some(("query".into(), label.into()));
    }
    let qp = pick(r, route.query);
    let (v, label) = bad_query_value(r, qp.kind);
    let mut pieces: Vec<String> = route
        .query
        .iter()
        .filter(|q| q.required && q.name != qp.name)
        .map(|q| format!("{}={}", q.name, valid::query_value(r, ctx, q.kind)))
        .collect();
    pieces.push(format!("{}={}", qp.name, v));
    st.req.target = format!("{path}?{}", pieces.join("&"));
    if st.req.target.contains(' ') || st.req.target.len() > 8000 {
        st.raw_needed = true;
    }
    let shown: String = v.chars().take(32).collect();
    Some((format!("?{}", qp.name), format!("{label} {shown:?}")))
}

fn method(r: &mut GenRng, _: &Ctx, st: &mut St) -> Option<(String, String)> {
    let old = st.req.method.clone();
    let new: String = match below(r, 8) {
        0 => {
            if old == "GET" {
                "POST".into()
            } else {
                "GET".into()
            }
        }
        1 => old.to_lowercase(),
        2 => (*pick(r, &["HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"])).into(),
        3 => "".into(),
        4 => "M".repeat(range(r, 100, 10_000) as usize),
        5 => "G ET".into(),
        6 => "GËT".into(),
        _ => "POST\t".into(),
    };
    if !new.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_lowercase()) || new.is_empty() || new.len() > 64 {
        st.raw_needed = true;
    }
    st.req.method = new.clone();
    let shown: String = new.chars().take(16).collect();
    Some(("method".into(), format!("{old} -> {shown:?}")))
}

// ---------------------------------------------------------------- wire operators

fn head_end(b: &[u8]) -> usize {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(b.len())
}

fn request_line(r: &mut GenRng, _: &Ctx, b: &mut Vec<u8>) -> Option<(String, String)> {
    let eol = b.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&b[..eol]).into_owned();
    let mut parts = line.splitn(3, ' ');
    let (m, t) = (parts.next()?.to_string(), parts.next().unwrap_or("/").to_string());
    let (new, label) = match below(r, 8) {
        0 => (format!("{m} {t}"), "no version"),
        1 => (format!("{m} {t} HTTP/1.0"), "HTTP/1.0"),
        2 => (format!("{m} {t} HTTP/2.0"), "HTTP/2.0"),
        3 => (format!("{m} {t} http/1.1"), "lowercase version"),
        4 => (format!("{m}  {t}  HTTP/1.1"), "double spaces"),
        5 => (format!("{m}\t{t}\tHTTP/1.1"), "tabs"),
        6 => (m.clone(), "method only"),
        _ => (format!("{m} {t} HTTP/1.1 extra"), "extra token"),
    };
    b.splice(..eol, new.into_bytes());
    Some(("request-line".into(), label.into()))
}

fn line_endings(r: &mut GenRng, _: &Ctx, b: &mut Vec<u8>) -> Option<(String, String)> {
    let end = head_end(b);
    let head = String::from_utf8_lossy(&b[..end]).into_owned();
    let (new, label) = match below(r, 3) {
        0 => (head.replace("\r\n", "\n"), "LF only"),
        1 => (head.replace("\r\n", "\r"), "CR only"),
        _ => (head.replacen("\r\n", "\n", 1), "mixed"),
    };
    b.splice(..end, new.into_bytes());
    Some(("head".into(), label.into()))
}

fn header_syntax(r: &mut GenRng, _: &Ctx, b: &mut Vec<u8>) -> Option<(String, String)> {
    let eol = b.windows(2).position(|w| w == b"\r\n")? + 2;
    let (line, label): (&[u8], &str) = match below(r, 7) {
        0 => (b"no colon here\r\n", "line without colon"),
        1 => (b"x-a : b\r\n", "space before colon"),
        2 => (b"x-a: b\r\n folded\r\n", "obs-fold continuation"),
        3 => (b"x-a: a\0b\r\n", "NUL in value"),
        4 => (b"x-a: \xff\xfe\r\n", "non-UTF-8 value"),
        5 => (b": empty-name\r\n", "empty name"),
        _ => (b"x a: b\r\n", "space in name"),
    };
    b.splice(eol..eol, line.iter().copied());
    Some(("headers".into(), label.into()))
}

fn pipelined(r: &mut GenRng, ctx: &Ctx, b: &mut Vec<u8>) -> Option<(String, String)> {
    let route = Route::get(crate::api::RouteId::DashboardHealth);
    let p = route.path(&[&ctx.fixtures.project_id]);
    let n = range(r, 1, 8);
    for _ in 0..n {
        b.extend_from_slice(format!("GET {p} HTTP/1.1\r\nhost: {RAW_HOST}\r\n\r\n").as_bytes());
    }
    Some(("connection".into(), format!("{n} pipelined requests after the first")))
}
