//! Mutators produce what they claim: invalid UTF-8 is invalid, nesting reaches the asked depth,
//! Content-Length lies, huge headers hit the asked head size, WebSocket fragments and lengths
//! are what the trail says, and every operator applies to some valid input.

use mesher_stress::api::{RouteId, WsPath};
use mesher_stress::db::Fixtures;
use mesher_stress::db::fixtures::SeedOptions;
use mesher_stress::generate::json::J;
use mesher_stress::generate::mutate::{self, http, json, ws};
use mesher_stress::generate::valid::{self, Ctx};
use mesher_stress::generate::{GenOptions, Generator, IdPool, Mix, rng, shrink};
use mesher_stress::model::{HttpRequest, Layer, Payload, Source};
use std::collections::BTreeSet;
use std::sync::Arc;

fn ctx_with(opts: GenOptions) -> Ctx {
    let f = Fixtures::plan(&SeedOptions::default());
    Ctx::new(f.clone(), opts, Arc::new(IdPool::new(&f)))
}

fn ctx() -> Ctx {
    ctx_with(GenOptions { max_string: 64 * 1024, max_array: 5000, ..GenOptions::default() })
}

fn event(seed: u64) -> J {
    let o = GenOptions { large_event_ratio: 0.0, ..GenOptions::default() };
    valid::event(&mut rng::from_u64(seed), &o)
}

fn request(c: &Ctx, seed: u64, id: RouteId) -> HttpRequest {
    valid::request(&mut rng::from_u64(seed), c, id).0
}

/// Deepest bracket nesting outside strings.
fn max_depth(b: &[u8]) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &c in b {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                d += 1;
                max = max.max(d);
            }
            b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn number_in(detail: &str, after: &str) -> usize {
    let rest = &detail[detail.find(after).unwrap_or_else(|| panic!("{detail:?} lacks {after:?}")) + after.len()..];
    rest.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn invalid_and_overlong_utf8_really_are_invalid() {
    let o = GenOptions::default();
    for seed in 0..300 {
        for op in ["json.invalid-utf8", "json.overlong-utf8"] {
            let mut b = event(seed).to_bytes();
            let st = json::apply_bytes(op, &mut rng::from_u64(seed), &o, &mut b).unwrap();
            assert!(std::str::from_utf8(&b).is_err(), "{op} {st:?}");
            assert_eq!(st.op, op);
        }
    }
}

#[test]
fn nesting_reaches_the_asked_depth() {
    let o = GenOptions { max_depth: 3000, ..GenOptions::default() };
    let mut saw_max = false;
    for seed in 0..200 {
        let mut j = event(seed);
        let st = json::apply_tree("json.deep-nesting", &mut rng::from_u64(seed), &o, &mut j).unwrap();
        let depth = number_in(&st.detail, "nesting depth");
        assert!(depth <= 3000);
        saw_max |= depth == 3000;
        let got = max_depth(&j.to_bytes());
        assert!(got >= depth && got <= depth + 6, "{st:?}: {got}");
    }
    assert!(saw_max);
}

#[test]
fn size_operators_make_what_they_say() {
    let o = GenOptions { max_string: 100_000, max_array: 20_000, ..GenOptions::default() };
    for seed in 0..100 {
        let mut j = event(seed);
        let st = json::apply_tree("json.huge-string", &mut rng::from_u64(seed), &o, &mut j).unwrap();
        let bytes = number_in(&st.detail, "(");
        assert!((100_000 / 16 / 4..=100_000).contains(&bytes), "{st:?}");
        let v: serde_json::Value = serde_json::from_slice(&j.to_bytes()).unwrap();
        let longest = longest_string(&v);
        assert_eq!(longest, bytes, "{st:?}");

        let mut j = event(seed);
        let st = json::apply_tree("json.huge-array", &mut rng::from_u64(seed), &o, &mut j).unwrap();
        let n = number_in(&st.detail, "array of");
        assert!((200..=20_000).contains(&n));
        let v: serde_json::Value = serde_json::from_slice(&j.to_bytes()).unwrap();
        assert_eq!(longest_array(&v), n);

        let mut j = event(seed);
        let st = json::apply_tree("json.boundary-number", &mut rng::from_u64(seed), &o, &mut j).unwrap();
        let text = String::from_utf8(j.to_bytes()).unwrap();
        let shown = st.detail.split("number ").nth(1).unwrap().trim_end_matches(|c| c != '…').trim_end_matches('…');
        let shown = shown.split('…').next().unwrap();
        assert!(text.contains(shown.trim()), "{st:?}");
    }
}

fn longest_string(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        serde_json::Value::Array(a) => a.iter().map(longest_string).max().unwrap_or(0),
        serde_json::Value::Object(m) => m.iter().map(|(k, v)| k.len().max(longest_string(v))).max().unwrap_or(0),
        _ => 0,
    }
}

fn longest_array(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => a.len().max(a.iter().map(longest_array).max().unwrap_or(0)),
        serde_json::Value::Object(m) => m.values().map(longest_array).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn structural_json_operators_change_the_tree() {
    let o = GenOptions::default();
    for seed in 0..200 {
        let base = event(seed);
        for op in ["json.drop-member", "json.duplicate-key", "json.rename-member", "json.swap-type", "json.unicode"] {
            let mut j = base.clone();
            let st = json::apply_tree(op, &mut rng::from_u64(seed), &o, &mut j).unwrap();
            assert_ne!(j.to_bytes(), base.to_bytes(), "{st:?}");
            assert!(st.at.starts_with('$'), "{st:?}");
        }
        let mut j = base.clone();
        json::apply_tree("json.duplicate-key", &mut rng::from_u64(seed), &o, &mut j).unwrap();
        assert!(has_duplicate_key(&j), "duplicate key present");
        let mut b = base.to_bytes();
        let st = json::apply_bytes("json.truncate", &mut rng::from_u64(seed), &o, &mut b).unwrap();
        assert!(b.len() < base.to_bytes().len() && serde_json::from_slice::<serde_json::Value>(&b).is_err(), "{st:?}");
        let mut b = base.to_bytes();
        json::apply_bytes("json.trailing-garbage", &mut rng::from_u64(seed), &o, &mut b).unwrap();
        assert!(b.starts_with(&base.to_bytes()) && b.len() > base.to_bytes().len());
    }
    // Lone surrogates are written as escapes.
    let mut seen = BTreeSet::new();
    for seed in 0..400 {
        let mut j = event(seed);
        let st = json::apply_tree("json.unicode", &mut rng::from_u64(seed), &o, &mut j).unwrap();
        if st.detail.contains("lone high surrogate") {
            assert!(String::from_utf8(j.to_bytes()).unwrap().contains("\\ud800"));
        }
        seen.insert(st.detail);
    }
    assert!(seen.len() >= 15, "unicode cases reached: {}", seen.len());
}

fn has_duplicate_key(j: &J) -> bool {
    match j {
        J::Obj(m) => {
            let mut keys = BTreeSet::new();
            m.iter().any(|(k, _)| !keys.insert(k.clone())) || m.iter().any(|(_, v)| has_duplicate_key(v))
        }
        J::Arr(a) => a.iter().any(has_duplicate_key),
        _ => false,
    }
}

fn head(raw: &[u8]) -> &[u8] {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    &raw[..end]
}

fn header_lines(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(head(raw)).split("\r\n").skip(1).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn mutate_http(c: &Ctx, op: &str, seed: u64, id: RouteId) -> (HttpRequest, mesher_stress::model::MutationStep) {
    let req = request(c, seed, id);
    let mut st = http::St { req, raw_needed: false, no_host: false };
    let step = http::apply_field(op, &mut rng::from_u64(seed), c, &mut st).unwrap_or_else(|| panic!("{op} applies"));
    (http::finish(st, None), step)
}

#[test]
fn content_length_lies_really_lie() {
    let c = ctx();
    for seed in 0..300 {
        let (req, st) = mutate_http(&c, "http.content-length-lie", seed, RouteId::EventsIngest);
        let raw = req.raw.as_ref().expect("lies go raw");
        let lines = header_lines(raw);
        let cls: Vec<&String> = lines.iter().filter(|l| l.starts_with("content-length:")).collect();
        let truthful = format!("content-length: {}", req.body.len());
        assert!(cls.len() == 2 || cls.iter().all(|l| **l != truthful), "{st:?} {cls:?}");
        assert!(raw.ends_with(&req.body));
    }
}

#[test]
fn http_operators_do_what_they_record() {
    let c = ctx();
    let mut auth_labels = BTreeSet::new();
    for seed in 0..300 {
        let (req, st) = mutate_http(&c, "http.auth-form", seed, RouteId::EventsIngest);
        auth_labels.insert(st.detail.clone());
        match st.detail.as_str() {
            "capitalised X-Sentry-Auth" => {
                assert!(req.header("x-sentry-auth").is_none() && req.header("X-Sentry-Auth").is_some())
            }
            "Bearer" => assert!(req.header("authorization").unwrap().starts_with(b"Bearer mshr_")),
            "revoked key" => assert_eq!(req.header("x-sentry-auth").unwrap(), c.fixtures.revoked_key.1.as_bytes()),
            "no auth header" => assert!(req.header("x-sentry-auth").is_none() && req.header("authorization").is_none()),
            _ => {}
        }

        let (req, st) = mutate_http(&c, "http.huge-header", seed, RouteId::DashboardHealth);
        let want = number_in(&st.detail, "request head of");
        assert_eq!(head(req.raw.as_ref().unwrap()).len(), want, "{st:?}");

        let (req, st) = mutate_http(&c, "http.many-headers", seed, RouteId::DashboardHealth);
        let want = number_in(&st.detail, "");
        assert_eq!(header_lines(req.raw.as_ref().unwrap()).len(), want, "{st:?}");

        let (req, _) = mutate_http(&c, "http.chunked", seed, RouteId::SettingsUpdate);
        let raw = req.raw.unwrap();
        assert!(header_lines(&raw).iter().any(|l| l == "transfer-encoding: chunked"));

        let (req, st) = mutate_http(&c, "http.method", seed, RouteId::Storage);
        assert_ne!(req.method, "GET", "{st:?}");

        let (req, st) = mutate_http(&c, "http.path-param", seed, RouteId::IssueResolve);
        let orig = request(&c, seed, RouteId::IssueResolve);
        assert_ne!(req.target, orig.target, "{st:?}");

        let (req, st) = mutate_http(&c, "http.query", seed, RouteId::IssuesList);
        assert!(req.target.contains('?'), "{st:?}");
    }
    assert_eq!(auth_labels.len(), 14, "{auth_labels:?}");
    // A request without Host.
    for seed in 0..50 {
        let req = request(&c, seed, RouteId::DashboardHealth);
        let mut st = http::St { req, raw_needed: false, no_host: true };
        st.raw_needed = false;
        let r = http::finish(st, None);
        assert!(!header_lines(r.raw.as_ref().unwrap()).iter().any(|l| l.to_lowercase().starts_with("host")));
    }
}

#[test]
fn wire_operators_break_the_request_bytes() {
    let c = ctx();
    for seed in 0..200 {
        let req = request(&c, seed, RouteId::SettingsUpdate);
        let st = http::St { req, raw_needed: false, no_host: false };
        let clean = http::wire(&st);
        for op in ["http.request-line", "http.line-endings", "http.header-syntax", "http.pipelined"] {
            let mut b = clean.clone();
            let step = http::apply_wire(op, &mut rng::from_u64(seed), &c, &mut b).unwrap();
            assert_ne!(b, clean, "{step:?}");
        }
    }
}

#[test]
fn websocket_operators_do_what_they_record() {
    let c = ctx();
    let mut invalid = 0;
    for seed in 0..300 {
        let base = valid::ws_script(&mut rng::from_u64(seed), &c, WsPath::Ingest);

        let mut s = base.clone();
        match ws::apply("ws.invalid-utf8", &mut rng::from_u64(seed), &c, &mut s) {
            Some(st) => {
                assert!(s.frames.iter().any(|f| f.opcode == 1 && std::str::from_utf8(&f.payload).is_err()), "{st:?}");
                invalid += 1;
            }
            None => assert!(base.frames.iter().all(|f| f.opcode != 1), "applies whenever there is a text frame"),
        }

        let mut s = base.clone();
        let st = ws::apply("ws.fragment", &mut rng::from_u64(seed), &c, &mut s).unwrap();
        let pieces = number_in(&st.detail, "");
        let cont = s.frames.iter().filter(|f| f.opcode == 0).count();
        assert_eq!(cont, pieces - 1, "{st:?}");
        let unfinished = s.frames.iter().filter(|f| !f.fin).count();
        assert_eq!(unfinished, pieces - 1);

        let mut s = base.clone();
        let st = ws::apply("ws.declared-len", &mut rng::from_u64(seed), &c, &mut s).unwrap();
        let f = s.frames.iter().find(|f| f.declared_len.is_some()).unwrap();
        assert_ne!(f.declared_len.unwrap(), f.payload.len() as u64, "{st:?}");

        let mut s = base.clone();
        let st = ws::apply("ws.ping-flood", &mut rng::from_u64(seed), &c, &mut s).unwrap();
        let n = number_in(&st.detail, "");
        let pings =
            s.frames.iter().filter(|f| f.opcode == 9).count() - base.frames.iter().filter(|f| f.opcode == 9).count();
        assert_eq!(pings, n);

        let mut s = base.clone();
        ws::apply("ws.rsv", &mut rng::from_u64(seed), &c, &mut s).unwrap();
        assert!(s.frames.iter().any(|f| f.rsv != 0));

        let mut s = base.clone();
        ws::apply("ws.unmasked", &mut rng::from_u64(seed), &c, &mut s).unwrap();
        assert!(s.frames.iter().any(|f| !f.masked));

        let mut s = base.clone();
        let st = ws::apply("ws.control-abuse", &mut rng::from_u64(seed), &c, &mut s).unwrap();
        if st.detail.starts_with("ping with") {
            assert!(s.frames.iter().any(|f| f.opcode == 9 && f.payload.len() > 125));
        }

        let mut s = base.clone();
        let st = ws::apply("ws.path", &mut rng::from_u64(seed), &c, &mut s).unwrap();
        assert_eq!(s.kind, WsPath::classify(&s.path), "{st:?}");
    }
    assert!(invalid > 200, "{invalid}");
}

#[test]
fn every_operator_applies_somewhere_and_layers_compose() {
    let c = ctx();
    let g = Generator::new(
        3,
        c.fixtures.clone(),
        Mix { valid: 0.0, json: 1.0, http: 1.0, ws: 1.0, routes: Default::default() },
        GenOptions { max_string: 64 * 1024, max_array: 5000, ..GenOptions::default() },
    );
    let mut used = BTreeSet::new();
    let mut multi = 0;
    for n in 0..3000 {
        let item = g.generate(0, n);
        if item.trail.len() > 1 {
            multi += 1;
        }
        for s in &item.trail {
            used.insert(s.op.clone());
        }
        if let Payload::Http(h) = &item.payload
            && item.layer == Layer::Json
        {
            let cl = h.header("content-length").unwrap();
            assert_eq!(cl, h.body.len().to_string().as_bytes(), "json layer keeps content-length truthful");
        }
    }
    let all: BTreeSet<String> = mutate::operator_names().into_iter().map(str::to_string).collect();
    let missing: Vec<_> = all.difference(&used).collect();
    assert!(missing.is_empty(), "operators never used: {missing:?}");
    assert!(multi > 500, "operators compose ({multi})");
}

#[test]
fn shrink_candidates_simplify_mutated_bodies() {
    for seed in 0..50 {
        let v = event(seed).to_value();
        let cands = shrink::json_candidates(&v);
        assert!(!cands.is_empty());
        assert!(cands.iter().all(|c| shrink::size(c) < shrink::size(&v)));
        assert_eq!(cands[0], serde_json::json!({}));
    }
    assert!(shrink::json_candidates(&serde_json::json!(null)).is_empty());
    assert_eq!(shrink::json_candidates(&serde_json::json!([1, 2])).first(), Some(&serde_json::json!([])));
}
