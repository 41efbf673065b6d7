//! Minimisation: generic ddmin, hierarchical delta debugging over JSON trees, and the HTTP /
//! WebSocket shrinking passes. Every pass is driven by a `test` closure answering "does this
//! candidate still reproduce the same death?" (the oracle); candidates that change the route
//! are rejected before they cost an execution.
//!
//! Order of passes for an HTTP request: JSON body (HDD level by level, then scalars) or byte
//! ddmin for non-JSON bodies → headers (ddmin) → query string (drop, then ddmin over params).
//! Raw requests: head lines (ddmin, request line kept) → body bytes. WebSocket scripts: frames
//! (ddmin) → handshake headers → each frame's payload (JSON HDD or bytes) → delays to 0.

use crate::model::{HttpRequest, Payload, WsScript};
use anyhow::Result;
use serde_json::Value;
use std::collections::HashSet;

/// Test closure type: Ok(true) when the candidate reproduces.
pub type Test<'a, T> = dyn FnMut(&T) -> Result<bool> + 'a;

/// Zeller's ddmin over `items`: a 1-minimal subsequence (order kept) for which `test` holds.
/// `test(items)` is assumed to hold. Tries the empty sequence first.
pub fn ddmin<T: Clone>(items: &[T], test: &mut dyn FnMut(&[T]) -> Result<bool>) -> Result<Vec<T>> {
    let mut failed: HashSet<Vec<usize>> = HashSet::new();
    let mut run = |idx: &[usize], failed: &mut HashSet<Vec<usize>>| -> Result<bool> {
        if failed.contains(idx) {
            return Ok(false);
        }
        let cand: Vec<T> = idx.iter().map(|&i| items[i].clone()).collect();
        let ok = test(&cand)?;
        if !ok {
            failed.insert(idx.to_vec());
        }
        Ok(ok)
    };
    if items.is_empty() {
        return Ok(Vec::new());
    }
    if run(&[], &mut failed)? {
        return Ok(Vec::new());
    }
    let mut c: Vec<usize> = (0..items.len()).collect();
    let mut n = 2usize;
    while c.len() >= 2 {
        let n_eff = n.min(c.len());
        let chunks: Vec<Vec<usize>> = (0..n_eff)
            .map(|i| {
                let (a, b) = (i * c.len() / n_eff, (i + 1) * c.len() / n_eff);
                c[a..b].to_vec()
            })
            .collect();
        let mut reduced = false;
        for ch in &chunks {
            if run(ch, &mut failed)? {
                c = ch.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && n_eff > 2 {
            for i in 0..chunks.len() {
                let comp: Vec<usize> =
                    chunks.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, ch)| ch.clone()).collect();
                if run(&comp, &mut failed)? {
                    c = comp;
                    n = (n_eff - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n_eff >= c.len() {
                break;
            }
            n = (n_eff * 2).min(c.len());
        }
    }
    if c.len() == 1 && run(&[], &mut failed)? {
        return Ok(Vec::new());
    }
    Ok(c.iter().map(|&i| items[i].clone()).collect())
}

/// A step in a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Paths of all nodes whose parent is at `depth` (depth 0 = the root's children).
pub fn paths_at(v: &Value, depth: usize) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, path: &mut Vec<Seg>, depth: usize, out: &mut Vec<Vec<Seg>>) {
        let children: Vec<(Seg, &Value)> = match v {
            Value::Object(m) => m.iter().map(|(k, c)| (Seg::Key(k.clone()), c)).collect(),
            Value::Array(a) => a.iter().enumerate().map(|(i, c)| (Seg::Index(i), c)).collect(),
            _ => return,
        };
        for (s, c) in children {
            path.push(s);
            if path.len() == depth + 1 {
                out.push(path.clone());
            } else {
                walk(c, path, depth, out);
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), depth, &mut out);
    out
}

/// `v` with only the `keep` nodes left among the nodes at level `depth + 1`.
pub fn retain_level(v: &Value, depth: usize, keep: &HashSet<Vec<Seg>>) -> Value {
    fn walk(v: &Value, path: &mut Vec<Seg>, depth: usize, keep: &HashSet<Vec<Seg>>) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, c) in m {
                    path.push(Seg::Key(k.clone()));
                    if path.len() < depth + 1 {
                        out.insert(k.clone(), walk(c, path, depth, keep));
                    } else if keep.contains(path) {
                        out.insert(k.clone(), c.clone());
                    }
                    path.pop();
                }
                Value::Object(out)
            }
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, c) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    if path.len() < depth + 1 {
                        out.push(walk(c, path, depth, keep));
                    } else if keep.contains(path) {
                        out.push(c.clone());
                    }
                    path.pop();
                }
                Value::Array(out)
            }
            other => other.clone(),
        }
    }
    walk(v, &mut Vec::new(), depth, keep)
}

fn get_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for s in path {
        cur = match (s, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn container_paths(v: &Value) -> Vec<Vec<Seg>> {
    // Breadth-first: outer containers first.
    let mut out = Vec::new();
    let mut depth = 0;
    if v.is_object() || v.is_array() {
        out.push(Vec::new());
    }
    loop {
        let level: Vec<Vec<Seg>> = paths_at(v, depth)
            .into_iter()
            .filter(|p| {
                let mut c = v;
                for s in p {
                    c = match (s, c) {
                        (Seg::Key(k), Value::Object(m)) => &m[k],
                        (Seg::Index(i), Value::Array(a)) => &a[*i],
                        _ => return false,
                    };
                }
                c.is_object() || c.is_array()
            })
            .collect();
        if paths_at(v, depth).is_empty() {
            break;
        }
        out.extend(level);
        depth += 1;
    }
    out
}

/// Hoisting: replace a container by one of its children of the same kind (an object by a
/// member that is an object, an array by an element that is an array), removing a level of
/// nesting that removal alone cannot (`{"a":{"ctx":{..}}}` → `{"ctx":{..}}`).
pub fn hoist(value: &Value, test: &mut dyn FnMut(&Value) -> Result<bool>) -> Result<Value> {
    let mut v = value.clone();
    let mut tried: HashSet<String> = HashSet::new();
    'outer: for _ in 0..200 {
        for p in container_paths(&v) {
            let node = get_mut(&mut v.clone(), &p).map(|x| x.clone()).unwrap();
            let children: Vec<Value> = match &node {
                Value::Object(m) => m.values().filter(|c| c.is_object()).cloned().collect(),
                Value::Array(a) => a.iter().filter(|c| c.is_array()).cloned().collect(),
                _ => Vec::new(),
            };
            for c in children {
                let mut trial = v.clone();
                *get_mut(&mut trial, &p).unwrap() = c;
                let key = trial.to_string();
                if !tried.insert(key) {
                    continue;
                }
                if test(&trial)? {
                    v = trial;
                    continue 'outer;
                }
            }
        }
        break;
    }
    Ok(v)
}

/// Rank of a JSON type in the canonical order null < bool < number < string < array < object.
fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Simpler values, simplest first: the simplest value of each type before this one's in the
/// canonical order (`null`, `false`, `0`, `""`, `[]`), so the bucket shape does not depend on
/// the type the fuzzer happened to pick (`{"user_id":7}` and `{"user_id":[..]}` of one bug
/// both become `{"user_id":false}` when any non-string kills), then simpler values of the same
/// type.
fn scalar_candidates(v: &Value) -> Vec<Value> {
    let canonical =
        [Value::Null, Value::Bool(false), Value::from(0), Value::String(String::new()), Value::Array(Vec::new())];
    let mut out: Vec<Value> = canonical.into_iter().filter(|c| type_rank(c) < type_rank(v)).collect();
    out.extend(typed_candidates(v));
    out
}

/// Every node but the root, outer ones first (containers are simplified as a whole before
/// their members).
fn node_paths(v: &Value) -> Vec<Vec<Seg>> {
    let mut out = Vec::new();
    let mut depth = 0;
    loop {
        let level = paths_at(v, depth);
        if level.is_empty() {
            break;
        }
        out.extend(level);
        depth += 1;
    }
    out
}

fn typed_candidates(v: &Value) -> Vec<Value> {
    match v {
        Value::String(s) if !s.is_empty() => {
            let chars: Vec<char> = s.chars().collect();
            let mut out = vec![Value::String(String::new())];
            let mut len = chars.len() / 2;
            while len > 0 {
                out.push(Value::String(chars[..len].iter().collect()));
                out.push(Value::String(chars[chars.len() - len..].iter().collect()));
                len /= 2;
            }
            if chars.len() > 1 && chars.iter().any(|c| *c != 'a') {
                out.push(Value::String("a".repeat(chars.len().min(8))));
            }
            out
        }
        Value::Number(n) if n.to_string() != "0" => {
            vec![Value::from(0), Value::from(1)]
        }
        Value::Bool(true) => vec![Value::Bool(false)],
        _ => Vec::new(),
    }
}

/// Hierarchical delta debugging over a JSON tree: at each level, ddmin over that level's
/// object members and array elements (removal), then scalar simplification (strings emptied or
/// halved, numbers to 0/1, true to false). Repeats while a round shrank something (at most 3).
pub fn hdd(value: &Value, test: &mut dyn FnMut(&Value) -> Result<bool>) -> Result<Value> {
    let mut v = value.clone();
    for _round in 0..3 {
        let before = v.clone();
        let mut depth = 0;
        loop {
            let nodes = paths_at(&v, depth);
            if nodes.is_empty() {
                break;
            }
            let base = v.clone();
            let keep = ddmin(&nodes, &mut |kept: &[Vec<Seg>]| {
                if kept.len() == nodes.len() {
                    return Ok(true);
                }
                let set: HashSet<Vec<Seg>> = kept.iter().cloned().collect();
                test(&retain_level(&base, depth, &set))
            })?;
            let set: HashSet<Vec<Seg>> = keep.into_iter().collect();
            v = retain_level(&base, depth, &set);
            depth += 1;
        }
        v = hoist(&v, test)?;
        for p in node_paths(&v) {
            let Some(cur) = get_mut(&mut v, &p).map(|x| x.clone()) else { continue };
            for cand in scalar_candidates(&cur) {
                let mut trial = v.clone();
                *get_mut(&mut trial, &p).unwrap() = cand;
                if test(&trial)? {
                    v = trial;
                    break;
                }
            }
        }
        if v == before {
            break;
        }
    }
    Ok(v)
}

/// Byte-level ddmin (for non-JSON bodies and payloads). Long inputs are first cut by halving
/// (prefix/suffix) so ddmin starts from something small.
pub fn bytes_min(b: &[u8], test: &mut dyn FnMut(&[u8]) -> Result<bool>) -> Result<Vec<u8>> {
    let mut cur = b.to_vec();
    while cur.len() > 64 {
        let half = cur.len() / 2;
        if test(&cur[..half])? {
            cur.truncate(half);
        } else if test(&cur[cur.len() - half..])? {
            cur = cur[cur.len() - half..].to_vec();
        } else {
            break;
        }
    }
    if cur.len() > 4096 {
        return Ok(cur);
    }
    ddmin(&cur.clone(), &mut |c: &[u8]| if c.len() == cur.len() { Ok(true) } else { test(c) })
}

/// The route a payload reaches (as Mesher routes it), for "same route" checks and signatures.
pub fn route_key(p: &Payload) -> String {
    match p {
        Payload::Http(r) => {
            let wire = r.to_wire("h");
            let line = wire.split(|&b| b == b'\n').next().unwrap_or(&[]);
            let line = String::from_utf8_lossy(line);
            let mut parts = line.trim_end().split(' ');
            let (Some(m), Some(t)) = (parts.next(), parts.next()) else { return "unrouted".into() };
            // An absolute-form target (`http://host/path`) is routed by its path, as servers
            // must accept it (RFC 9112 3.2.2).
            let t = ["http://", "https://"]
                .iter()
                .find_map(|s| t.strip_prefix(s))
                .map(|rest| rest.find('/').map_or("/", |i| &rest[i..]))
                .unwrap_or(t);
            // A fragment is no part of the path either (servers' URI parsers drop it).
            let path = t.split(['?', '#']).next().unwrap_or("");
            crate::api::match_route(m, path).map(|rm| rm.route.name.to_string()).unwrap_or_else(|| "unrouted".into())
        }
        Payload::Ws(w) => crate::api::WsPath::classify(&w.path).name().to_string(),
    }
}

/// The request sent as `GET /` (its headers and body kept): a crash that still happens there
/// does not depend on the route, the method or the path, and one bucket holds it whatever
/// request line it was found with (a route's, or a mutated one that matches none). None for
/// WebSocket scripts and requests that are `GET /` already.
pub fn without_route(p: &Payload) -> Option<Payload> {
    let Payload::Http(r) = p else { return None };
    let line = match &r.raw {
        Some(raw) => raw.split(|&b| b == b'\n').next().unwrap_or(&[]).trim_ascii_end().to_vec(),
        None => format!("{} {} HTTP/1.1", r.method, r.target).into_bytes(),
    };
    if line == b"GET / HTTP/1.1" {
        return None;
    }
    let mut c = r.clone();
    match &r.raw {
        Some(raw) => {
            let end = raw.iter().position(|&b| b == b'\n').map(|i| i + 1).unwrap_or(raw.len());
            let eol: &[u8] = if raw[..end].ends_with(b"\r\n") { b"\r\n" } else { b"\n" };
            let mut out = b"GET / HTTP/1.1".to_vec();
            out.extend_from_slice(eol);
            out.extend_from_slice(&raw[end..]);
            c.raw = Some(out);
        }
        None => {
            c.method = "GET".into();
            c.target = "/".into();
        }
    }
    c.route = None;
    Some(Payload::Http(c))
}

/// Size measure for reports: bytes on the wire (HTTP) or handshake path + headers + frames (WS).
pub fn payload_size(p: &Payload) -> usize {
    match p {
        Payload::Http(r) => r.to_wire("127.0.0.1:8080").len(),
        Payload::Ws(w) => {
            w.path.len()
                + w.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>()
                + w.frames.iter().map(|f| f.payload.len() + 6).sum::<usize>()
        }
    }
}

/// The request without a body and without the headers that announce one.
fn without_body(r: &HttpRequest) -> HttpRequest {
    let mut c = r.clone();
    c.body.clear();
    c.headers.retain(|(n, _)| {
        !(n.eq_ignore_ascii_case("content-length")
            || n.eq_ignore_ascii_case("content-type")
            || n.eq_ignore_ascii_case("transfer-encoding"))
    });
    c
}

fn with_body(r: &HttpRequest, body: Vec<u8>) -> HttpRequest {
    let mut out = r.clone();
    let old = r.body.len().to_string().into_bytes();
    for (n, v) in out.headers.iter_mut() {
        if n.eq_ignore_ascii_case("content-length") && *v == old {
            *v = body.len().to_string().into_bytes();
        }
    }
    out.body = body;
    out
}

/// Shrink one payload while `test` holds (the route is kept).
pub fn shrink_payload(p: &Payload, test: &mut dyn FnMut(&Payload) -> Result<bool>) -> Result<Payload> {
    let route = route_key(p);
    let mut guarded = |c: &Payload| -> Result<bool> { if route_key(c) != route { Ok(false) } else { test(c) } };
    match p {
        Payload::Http(r) if r.raw.is_some() => shrink_raw(r, &mut guarded).map(Payload::Http),
        Payload::Http(r) => shrink_http(r, &mut guarded).map(Payload::Http),
        Payload::Ws(w) => shrink_ws(w, &mut guarded).map(Payload::Ws),
    }
}

fn shrink_http(r: &HttpRequest, test: &mut dyn FnMut(&Payload) -> Result<bool>) -> Result<HttpRequest> {
    let mut cur = r.clone();
    // Body: none at all first (with its length headers), then a smaller one.
    if !cur.body.is_empty() {
        let c = without_body(&cur);
        if test(&Payload::Http(c.clone()))? {
            cur = c;
        }
    }
    if !cur.body.is_empty() {
        if let Ok(json) = serde_json::from_slice::<Value>(&cur.body) {
            let base = cur.clone();
            let v =
                hdd(&json, &mut |v: &Value| test(&Payload::Http(with_body(&base, serde_json::to_vec(v).unwrap()))))?;
            // Simpler is not always shorter (`0` becomes `false` when any non-string kills).
            let cand = with_body(&base, serde_json::to_vec(&v).unwrap());
            if v != json && test(&Payload::Http(cand.clone()))? {
                cur = cand;
            }
        } else {
            let base = cur.clone();
            let b = bytes_min(&base.body, &mut |b: &[u8]| test(&Payload::Http(with_body(&base, b.to_vec()))))?;
            cur = with_body(&base, b);
        }
    }
    // Headers.
    if !cur.headers.is_empty() {
        let base = cur.clone();
        let hs = ddmin(&base.headers, &mut |h: &[(String, Vec<u8>)]| {
            if h.len() == base.headers.len() {
                return Ok(true);
            }
            let mut c = base.clone();
            c.headers = h.to_vec();
            test(&Payload::Http(c))
        })?;
        cur.headers = hs;
    }
    // A body no header announces is never read: it is not part of the reproducer.
    if !cur.body.is_empty()
        && !cur
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"))
    {
        let c = without_body(&cur);
        if test(&Payload::Http(c.clone()))? {
            cur = c;
        }
    }
    // Query string.
    if let Some((path, query)) = cur.target.clone().split_once('?') {
        let mut c = cur.clone();
        c.target = path.to_string();
        if test(&Payload::Http(c.clone()))? {
            cur = c;
        } else {
            let params: Vec<&str> = query.split('&').collect();
            let base = cur.clone();
            let keep = ddmin(&params, &mut |ps: &[&str]| {
                if ps.len() == params.len() {
                    return Ok(true);
                }
                let mut c = base.clone();
                c.target = format!("{path}?{}", ps.join("&"));
                test(&Payload::Http(c))
            })?;
            cur.target = format!("{path}?{}", keep.join("&"));
        }
    }
    Ok(cur)
}

fn shrink_raw(r: &HttpRequest, test: &mut dyn FnMut(&Payload) -> Result<bool>) -> Result<HttpRequest> {
    let raw = r.raw.clone().unwrap_or_default();
    let mk = |head: &[Vec<u8>], body: &[u8]| -> Payload {
        let mut out = Vec::new();
        for l in head {
            out.extend_from_slice(l);
        }
        out.extend_from_slice(body);
        let mut c = r.clone();
        c.raw = Some(out);
        Payload::Http(c)
    };
    let (head_bytes, body) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (raw[..i + 2].to_vec(), raw[i + 2..].to_vec()),
        None => (raw.clone(), Vec::new()),
    };
    // Lines of the head, each with its line ending; the request line is kept.
    let mut lines: Vec<Vec<u8>> = head_bytes.split_inclusive(|&b| b == b'\n').map(|l| l.to_vec()).collect();
    if lines.len() > 1 {
        let first = lines.remove(0);
        let kept = ddmin(&lines, &mut |ls: &[Vec<u8>]| {
            if ls.len() == lines.len() {
                return Ok(true);
            }
            let mut h = vec![first.clone()];
            h.extend_from_slice(ls);
            test(&mk(&h, &body))
        })?;
        lines = std::iter::once(first).chain(kept).collect();
    }
    let mut body = body;
    if body.len() > 2 {
        // body starts with the "\r\n" that ends the head; keep it.
        let (sep, rest) = body.split_at(2);
        let sep = sep.to_vec();
        let b = bytes_min(rest, &mut |b: &[u8]| {
            let mut full = sep.clone();
            full.extend_from_slice(b);
            test(&mk(&lines, &full))
        })?;
        body = sep;
        body.extend_from_slice(&b);
    }
    // Standard line endings when the crash does not need bare LFs (a clearer reproducer, and
    // the same bucket whichever endings the fuzzer happened to pick).
    let crlf = |l: &Vec<u8>| -> Vec<u8> {
        let t = l.strip_suffix(b"\n").map(|x| x.strip_suffix(b"\r").unwrap_or(x)).unwrap_or(l);
        if l.ends_with(b"\n") { [t, b"\r\n"].concat() } else { l.clone() }
    };
    let std_lines: Vec<Vec<u8>> = lines.iter().map(crlf).collect();
    let std_body = match body.strip_prefix(b"\r\n").or_else(|| body.strip_prefix(b"\n")) {
        Some(rest) => [&b"\r\n"[..], rest].concat(),
        None => body.clone(),
    };
    if (std_lines != lines || std_body != body) && test(&mk(&std_lines, &std_body))? {
        (lines, body) = (std_lines, std_body);
    }
    match mk(&lines, &body) {
        Payload::Http(h) => Ok(h),
        Payload::Ws(_) => unreachable!(),
    }
}

fn shrink_ws(w: &WsScript, test: &mut dyn FnMut(&Payload) -> Result<bool>) -> Result<WsScript> {
    let mut cur = w.clone();
    let base = cur.clone();
    cur.frames = ddmin(&base.frames, &mut |fs| {
        if fs.len() == base.frames.len() {
            return Ok(true);
        }
        let mut c = base.clone();
        c.frames = fs.to_vec();
        test(&Payload::Ws(c))
    })?;
    let base = cur.clone();
    cur.headers = ddmin(&base.headers, &mut |hs| {
        if hs.len() == base.headers.len() {
            return Ok(true);
        }
        let mut c = base.clone();
        c.headers = hs.to_vec();
        test(&Payload::Ws(c))
    })?;
    for i in 0..cur.frames.len() {
        let base = cur.clone();
        let set = |p: Vec<u8>| {
            let mut c = base.clone();
            c.frames[i].payload = p;
            Payload::Ws(c)
        };
        let payload = base.frames[i].payload.clone();
        // No payload at all first: a frame that kills whatever it carries is filed as empty.
        let newp = if !payload.is_empty() && test(&set(Vec::new()))? {
            Vec::new()
        } else if let Ok(json) = serde_json::from_slice::<Value>(&payload) {
            let v = hdd(&json, &mut |v: &Value| test(&set(serde_json::to_vec(v).unwrap())))?;
            let p = serde_json::to_vec(&v).unwrap();
            if v != json && test(&set(p.clone()))? { p } else { payload }
        } else {
            bytes_min(&payload, &mut |b: &[u8]| test(&set(b.to_vec())))?
        };
        cur.frames[i].payload = newp;
        if cur.frames[i].delay_ms > 0 {
            let mut c = cur.clone();
            c.frames[i].delay_ms = 0;
            if test(&Payload::Ws(c.clone()))? {
                cur = c;
            }
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_absolute_form_target_or_a_fragment_is_routed_by_its_path() {
        let p = "/api/v1/projects/33333333-3333-3333-3333-333333333333/api-keys";
        for t in [p.to_string(), format!("http://localhost{p}"), format!("https://h:1{p}?x=1"), format!("{p}#frag")] {
            let r = HttpRequest::new(None, "POST", t.clone(), vec![]);
            assert_eq!(route_key(&Payload::Http(r)), "api-keys-create", "{t}");
        }
        let r = HttpRequest::new(None, "GET", "http://localhost".into(), vec![]);
        assert_eq!(route_key(&Payload::Http(r)), "unrouted");
    }

    #[test]
    fn ddmin_finds_the_pair() {
        let items: Vec<u32> = (0..40).collect();
        let mut calls = 0;
        let r = ddmin(&items, &mut |c: &[u32]| {
            calls += 1;
            Ok(c.contains(&7) && c.contains(&31))
        })
        .unwrap();
        assert_eq!(r, vec![7, 31]);
        assert!(calls < 120, "{calls}");
    }

    #[test]
    fn hdd_keeps_only_the_nested_trigger() {
        let v = json!({"a": [1, 2, {"x": "long string here"}], "ctx": {"noise": [1,2,3], "inner": {"boom": "zzzzzz", "q": 1}}, "z": true});
        let r = hdd(&v, &mut |v: &Value| Ok(v.pointer("/ctx/inner/boom").is_some())).unwrap();
        assert_eq!(r, json!({"ctx": {"inner": {"boom": null}}}));
    }

    #[test]
    fn bytes_min_finds_substring_trigger() {
        let mut b = vec![b'.'; 3000];
        b[1700..1703].copy_from_slice(b"XYZ");
        let r = bytes_min(&b, &mut |c: &[u8]| Ok(c.windows(3).any(|w| w == b"XYZ"))).unwrap();
        assert_eq!(r, b"XYZ");
    }
}
