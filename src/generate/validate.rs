//! A validator of *valid* inputs against the spec (`docs/mesher-interface.md` §2.2–§2.5, §3, §4): the
//! request routes to its recorded route via `api::match_route`, path ids are well-formed and
//! exist in the fixtures, query parameters are known with valid values, `content-length` is
//! truthful, the ingestion routes carry a live key in a header Mesher reads, and the body matches
//! the route's schema. Used by the tests and by `mesher-stress gen --check`.

use super::valid::{ALERT_STATUSES, BUCKETS, ISSUE_STATUSES, LEVELS, ROLES, TOGGLES};
use crate::api::{Auth, BodyKind, ParamKind, QueryKind, Route, WsPath, match_route};
use crate::db::Fixtures;
use crate::model::{HttpRequest, WsScript};
use serde_json::Value;

type R = Result<(), String>;

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok() && s == s.to_lowercase()
}

fn is_int_text(s: &str, lo: i64, hi: i64) -> bool {
    s.parse::<i64>().is_ok_and(|v| v >= lo && v <= hi) && !s.starts_with('+')
}

/// Check a valid HTTP request.
pub fn check_request(req: &HttpRequest, f: &Fixtures) -> R {
    if req.raw.is_some() {
        return Err("valid requests never need raw bytes".into());
    }
    let id = req.route.ok_or("no route recorded")?;
    let route = Route::get(id);
    if req.target.bytes().any(|b| b <= b' ' || b >= 0x7f || b == b'#') {
        return Err(format!("target has bytes a request line cannot carry: {:?}", req.target));
    }
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let m = match_route(&req.method, path).ok_or_else(|| format!("{} {path} matches no route", req.method))?;
    if m.route.id != id {
        return Err(format!("routes to {} instead of {}", m.route.name, route.name));
    }
    for (kind, arg) in route.params.iter().zip(&m.args) {
        check_param(*kind, arg, f).map_err(|e| format!("{}: {e}", route.name))?;
    }
    check_query(route, query, f)?;
    let cl = req.header("content-length").map(|v| String::from_utf8_lossy(v).into_owned());
    match (&cl, req.body.len()) {
        (None, 0) => {}
        (Some(v), n) if v.parse::<usize>() == Ok(n) => {}
        (v, n) => return Err(format!("content-length {v:?} for {n} body bytes")),
    }
    if route.auth == Auth::ApiKey {
        let key = req.header("x-sentry-auth").or_else(|| req.header("authorization")).ok_or("no API key header")?;
        let key = String::from_utf8_lossy(key);
        if !f.api_keys.iter().any(|k| k.1 == key.trim()) {
            return Err(format!("{key:?} is not a live fixture key"));
        }
    }
    if route.body == BodyKind::None {
        return if req.body.is_empty() { Ok(()) } else { Err("body on a route without one".into()) };
    }
    let text = std::str::from_utf8(&req.body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let v: Value = serde_json::from_str(text).map_err(|e| format!("body is not JSON: {e}"))?;
    let cps = text.chars().count();
    let limit = match route.body {
        BodyKind::Event => 1_048_576,
        BodyKind::BulkEvent => 5_242_880,
        _ => usize::MAX,
    };
    if cps > limit {
        return Err(format!("body of {cps} code points exceeds {limit}"));
    }
    check_body(route.body, &v, f).map_err(|e| format!("{}: {e}", route.name))
}

fn check_param(kind: ParamKind, arg: &str, f: &Fixtures) -> R {
    let ok = match kind {
        ParamKind::ProjectRef => arg == f.project_id || arg == f.project_slug,
        ParamKind::OrgId => arg == f.org_id,
        ParamKind::IssueId => is_uuid(arg),
        ParamKind::EventId => f.events.iter().any(|e| e == arg),
        // Created ids (memberships, rules) are not in the fixtures: any UUID.
        ParamKind::MembershipId | ParamKind::AlertRuleId | ParamKind::ApiKeyId => is_uuid(arg),
        ParamKind::AlertId => f.active_alerts.iter().chain(&f.acknowledged_alerts).any(|a| a == arg),
    };
    if ok { Ok(()) } else { Err(format!("bad {kind:?} {arg:?}")) }
}

fn check_query(route: &Route, query: &str, f: &Fixtures) -> R {
    let mut seen: Vec<&str> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = piece.split_once('=').ok_or_else(|| format!("query piece without '=': {piece:?}"))?;
        let q = route.query.iter().find(|q| q.name == k).ok_or_else(|| format!("unknown query parameter {k:?}"))?;
        if seen.contains(&k) {
            return Err(format!("duplicate query parameter {k}"));
        }
        seen.push(k);
        let ok = match q.kind {
            QueryKind::IssueStatus => ISSUE_STATUSES.contains(&v),
            QueryKind::Level => LEVELS.contains(&v),
            QueryKind::UserId => f.users.iter().any(|u| u == v),
            QueryKind::Cursor => is_cursor(v),
            QueryKind::CursorId => is_uuid(v),
            QueryKind::Limit => is_int_text(v, 1, 100),
            QueryKind::RawLimit => is_int_text(v, 0, i32::MAX as i64),
            QueryKind::SearchText => !v.is_empty() && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'+'),
            QueryKind::TagKey | QueryKind::TagValue => {
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            }
            QueryKind::Bucket => BUCKETS.contains(&v),
            QueryKind::AlertStatus => ALERT_STATUSES.contains(&v),
        };
        if !ok {
            return Err(format!("bad value {v:?} for {k}"));
        }
    }
    for q in route.query.iter().filter(|q| q.required) {
        if !seen.contains(&q.name) {
            return Err(format!("missing required {}", q.name));
        }
    }
    if seen.contains(&"cursor") && !seen.contains(&"cursor_id") {
        return Err("cursor without cursor_id".into());
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff+00`.
fn is_cursor(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 29
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && &b[26..] == b"+00"
        && v[..4].parse::<u32>().is_ok()
        && v[5..7].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && v[8..10].parse::<u32>().is_ok_and(|d| (1..=28).contains(&d))
}

fn obj(v: &Value) -> Result<&serde_json::Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("expected an object, got {v}"))
}

fn only_keys(m: &serde_json::Map<String, Value>, allowed: &[&str]) -> R {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unexpected key {k:?}")),
        None => Ok(()),
    }
}

fn string(m: &serde_json::Map<String, Value>, k: &str, required: bool) -> R {
    match m.get(k) {
        None if !required => Ok(()),
        Some(Value::String(_)) => Ok(()),
        other => Err(format!("{k}: expected a string, got {other:?}")),
    }
}

/// Check a body against the schema of its kind.
pub fn check_body(kind: BodyKind, v: &Value, f: &Fixtures) -> R {
    match kind {
        BodyKind::None => Err("no body expected".into()),
        BodyKind::Event => check_event(v),
        BodyKind::BulkEvent => match v {
            Value::Array(a) if !a.is_empty() => a.iter().try_for_each(check_event),
            _ => check_event(v),
        },
        BodyKind::Assign => check_assign(v, f),
        BodyKind::AddMember => check_add_member(v, f),
        BodyKind::MemberRole => check_member_role(v),
        BodyKind::ApiKeyLabel => {
            let m = obj(v)?;
            only_keys(m, &["label"])?;
            string(m, "label", false)
        }
        BodyKind::AlertRule => check_alert_rule(v),
        BodyKind::Toggle => check_toggle(v),
        BodyKind::Settings => check_settings(v),
    }
}

/// `assign`: `user_id` is a fixture user, an empty string or null.
fn check_assign(v: &Value, f: &Fixtures) -> R {
    let m = obj(v)?;
    only_keys(m, &["user_id"])?;
    match m.get("user_id") {
        Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.is_empty() || f.users.contains(s) => Ok(()),
        other => Err(format!("user_id {other:?}")),
    }
}

/// `add member`: a fixture user and an optional role.
fn check_add_member(v: &Value, f: &Fixtures) -> R {
    let m = obj(v)?;
    only_keys(m, &["user_id", "role"])?;
    match m.get("user_id") {
        Some(Value::String(s)) if f.users.contains(s) => {}
        other => return Err(format!("user_id {other:?}")),
    }
    match m.get("role") {
        None => Ok(()),
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => Ok(()),
        other => Err(format!("role {other:?}")),
    }
}

/// `member role`: a known role.
fn check_member_role(v: &Value) -> R {
    let m = obj(v)?;
    only_keys(m, &["role"])?;
    match m.get("role") {
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => Ok(()),
        other => Err(format!("role {other:?}")),
    }
}

/// `alert rule`: a threshold or new-issue condition, an action object, an i32 cooldown.
fn check_alert_rule(v: &Value) -> R {
    let m = obj(v)?;
    only_keys(m, &["name", "condition", "action", "cooldown_minutes"])?;
    string(m, "name", false)?;
    if let Some(c) = m.get("condition") {
        let c = obj(c)?;
        match c.get("condition_type").and_then(Value::as_str) {
            Some("threshold") => {
                for k in ["threshold", "window_minutes"] {
                    if !c.get(k).is_some_and(Value::is_i64) {
                        return Err(format!("condition.{k} must be an integer"));
                    }
                }
            }
            Some("new_issue") => {}
            other => return Err(format!("condition_type {other:?}")),
        }
    }
    if let Some(a) = m.get("action") {
        obj(a)?;
    }
    match m.get("cooldown_minutes") {
        None => Ok(()),
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => Ok(()),
        Some(Value::String(s)) if is_int_text(s, i32::MIN as i64, i32::MAX as i64) => Ok(()),
        other => Err(format!("cooldown_minutes {other:?}")),
    }
}

/// `toggle`: `enabled` as a bool, 0 or 1, or a toggle word.
fn check_toggle(v: &Value) -> R {
    let m = obj(v)?;
    only_keys(m, &["enabled"])?;
    match m.get("enabled") {
        Some(Value::Bool(_)) => Ok(()),
        Some(Value::Number(n)) if matches!(n.as_i64(), Some(0 | 1)) => Ok(()),
        Some(Value::String(s)) if TOGGLES.iter().any(|t| t.eq_ignore_ascii_case(s)) => Ok(()),
        other => Err(format!("enabled {other:?}")),
    }
}

/// `settings`: an i32 retention and a sample rate that fits an f32.
fn check_settings(v: &Value) -> R {
    let m = obj(v)?;
    only_keys(m, &["retention_days", "sample_rate"])?;
    match m.get("retention_days") {
        None => {}
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {}
        Some(Value::String(s)) if is_int_text(s, i32::MIN as i64, i32::MAX as i64) => {}
        other => return Err(format!("retention_days {other:?}")),
    }
    let real = |x: f64| x.is_finite() && x.abs() < 3.4e38;
    match m.get("sample_rate") {
        None => Ok(()),
        Some(Value::Number(n)) if n.as_f64().is_some_and(real) => Ok(()),
        Some(Value::String(s)) if s.parse::<f64>().is_ok_and(real) => Ok(()),
        other => Err(format!("sample_rate {other:?}")),
    }
}

/// Check one event against §4.
pub fn check_event(v: &Value) -> R {
    let m = obj(v)?;
    only_keys(
        m,
        &[
            "message",
            "level",
            "fingerprint",
            "stacktrace",
            "exception",
            "breadcrumbs",
            "tags",
            "extra",
            "user_context",
            "sdk_name",
            "sdk_version",
        ],
    )?;
    string(m, "message", true)?;
    match m.get("level").and_then(Value::as_str) {
        Some(l) if LEVELS.contains(&l) => {}
        other => return Err(format!("level {other:?}")),
    }
    if let Some(fp) = m.get("fingerprint")
        && fp.as_str().is_none_or(str::is_empty)
    {
        return Err("fingerprint must be a non-empty string".into());
    }
    string(m, "sdk_name", false)?;
    string(m, "sdk_version", false)?;
    if let Some(e) = m.get("exception") {
        let e = obj(e)?;
        only_keys(e, &["type_name", "value", "module_name"])?;
        string(e, "type_name", true)?;
        string(e, "value", true)?;
        string(e, "module_name", false)?;
    }
    if let Some(st) = m.get("stacktrace") {
        for fr in st.as_array().ok_or("stacktrace must be an array")? {
            let fr = obj(fr)?;
            only_keys(fr, &["filename", "function_name", "lineno", "colno", "context_line", "in_app"])?;
            string(fr, "filename", true)?;
            string(fr, "function_name", true)?;
            string(fr, "context_line", false)?;
            for k in ["lineno", "colno"] {
                if fr.get(k).is_some_and(|v| !v.is_u64()) {
                    return Err(format!("frame {k} must be a non-negative integer"));
                }
            }
            if fr.get("in_app").is_some_and(|v| !v.is_boolean()) {
                return Err("frame in_app must be a bool".into());
            }
        }
    }
    if let Some(b) = m.get("breadcrumbs") {
        for c in b.as_array().ok_or("breadcrumbs must be an array")? {
            let c = obj(c)?;
            only_keys(c, &["timestamp", "category", "message", "level", "data"])?;
            for k in ["timestamp", "category", "message", "level"] {
                string(c, k, false)?;
            }
        }
    }
    if let Some(t) = m.get("tags")
        && !obj(t)?.values().all(Value::is_string)
    {
        return Err("tags must map strings to strings".into());
    }
    for k in ["extra", "user_context"] {
        if let Some(x) = m.get(k) {
            obj(x).map_err(|e| format!("{k}: {e}"))?;
        }
    }
    Ok(())
}

/// Check a valid WebSocket script: path classification, auth for ingest, frames well-formed
/// (masked, RSV 0, true lengths, text frames UTF-8 JSON of the right schema), ends with a close.
pub fn check_ws(s: &WsScript, f: &Fixtures) -> R {
    if WsPath::classify(&s.path) != s.kind {
        return Err(format!("path {:?} is not a {:?} path", s.path, s.kind));
    }
    match s.kind {
        WsPath::Ingest => {
            let key = s
                .headers
                .iter()
                .find(|(n, _)| n == "x-sentry-auth" || n == "authorization")
                .ok_or("ingest without auth header")?;
            if !f.api_keys.iter().any(|k| k.1.as_bytes() == key.1.as_slice()) {
                return Err("ingest key is not a live fixture key".into());
            }
        }
        WsPath::Stream => {
            if WsPath::stream_project_id(&s.path) != Some(f.project_id.as_str()) {
                return Err(format!("stream path {:?} does not name the project UUID", s.path));
            }
        }
    }
    let last = s.frames.last().ok_or("no frames")?;
    if last.opcode != 8 {
        return Err("does not end with a close frame".into());
    }
    for (i, fr) in s.frames.iter().enumerate() {
        if !fr.fin || fr.rsv != 0 || !fr.masked || fr.declared_len.is_some() {
            return Err(format!("frame {i} is not a plain final masked frame"));
        }
        match fr.opcode {
            1 | 2 => {
                let v: Value = serde_json::from_slice(&fr.payload).map_err(|e| format!("frame {i}: {e}"))?;
                match s.kind {
                    WsPath::Ingest => check_event(&v)?,
                    WsPath::Stream => {
                        if v.get("type").and_then(Value::as_str) != Some("subscribe") {
                            return Err(format!("frame {i}: not a subscribe message"));
                        }
                    }
                }
            }
            9 | 10 => {
                if fr.payload.len() > 125 {
                    return Err(format!("frame {i}: control payload > 125"));
                }
            }
            8 if i + 1 == s.frames.len() => {
                if fr.payload.len() != 2 || u16::from_be_bytes([fr.payload[0], fr.payload[1]]) != 1000 {
                    return Err("close is not a plain 1000".into());
                }
            }
            op => return Err(format!("frame {i}: opcode {op}")),
        }
    }
    Ok(())
}
