//! Valid inputs: for every route a request a correct Mesher answers with the route's success
//! status (`docs/mesher-interface.md` §2.4–§2.5, §4), and valid WebSocket scripts (§3).
//!
//! Everything here is a plain function of a [`GenRng`] and the [`Ctx`] (fixtures, options, id
//! pool); the proptest strategies in [`super::strategy`] and the [`super::Generator`] fast path
//! call the same functions, so they yield the same values for the same seed.
//!
//! Fixture use (so valid requests never destroy what other valid requests need):
//! - `issue-delete` only targets the *sacrificial* issues (the last quarter of `fixtures.issues`,
//!   at least one when there are two or more); every other issue route and `event-detail` use the
//!   remaining issues and their events. With fewer than two issues, delete targets a random,
//!   well-formed, unknown UUID (200, affected 0).
//! - `api-key-revoke` only targets the last fixture key (when there are two or more); ingestion
//!   authenticates with the others. With one key it revokes a random unknown UUID.
//! - `member-remove` and `alert-rule-delete` only take ids the run created ([`IdPool`]); with
//!   none available the request becomes `members-add` / `alert-rules-create` instead.
//! - `members-add` takes a free user from the pool; with none left it becomes `member-role`.

use super::GenOptions;
use super::ids::IdPool;
use super::json::{Bytes, J, Sink, Tree};
use super::rng::{self, GenRng, below, chance, pick, range};
use crate::api::{BodyKind, ParamKind, QueryKind, Route, RouteId, WsPath};
use crate::db::Fixtures;
use crate::model::{HttpRequest, WsFrame, WsScript};
use std::sync::Arc;

pub const LEVELS: &[&str] = &["fatal", "error", "warning", "info", "debug"];
pub const ISSUE_STATUSES: &[&str] = &["unresolved", "resolved", "archived", "discarded"];
pub const ALERT_STATUSES: &[&str] = &["active", "acknowledged", "resolved"];
pub const ROLES: &[&str] = &["owner", "admin", "member"];
/// `date_trunc` units PostgreSQL accepts (§2.5 #7).
pub const BUCKETS: &[&str] = &[
    "microseconds",
    "milliseconds",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "quarter",
    "year",
    "decade",
    "century",
    "millennium",
    "hours",
    "Hour",
    "DAY",
    "h",
    "mon",
    "w",
];
pub const TOGGLES: &[&str] = &["true", "false", "t", "f", "yes", "no", "on", "off", "1", "0", "TRUE", "Off"];

const WORDS: &[&str] = &[
    "request", "timeout", "user", "session", "cache", "miss", "failed", "connect", "database", "query", "null",
    "pointer", "index", "out", "of", "range", "payment", "order", "checkout", "render", "widget", "token", "expired",
    "invalid", "state", "worker", "queue", "retry", "upload", "image", "parse", "config", "missing", "key", "socket",
    "closed", "handler", "panic", "overflow", "denied",
];
const ERR_TYPES: &[&str] = &[
    "TypeError",
    "ValueError",
    "KeyError",
    "RuntimeError",
    "IOError",
    "ReferenceError",
    "NullPointerException",
    "IndexOutOfBounds",
    "TimeoutError",
    "ConnectionResetError",
];
const MODULES: &[&str] = &["app", "app.models", "app.views", "lib.http", "core.db", "worker.jobs", "ui.render"];
const FILES: &[&str] = &[
    "app.py",
    "views.py",
    "models.py",
    "main.js",
    "index.ts",
    "server.go",
    "handler.rs",
    "Worker.java",
    "db.rb",
    "render.tsx",
];
const FUNCS: &[&str] = &[
    "main", "handle", "process", "render", "fetch", "save", "load", "run", "dispatch", "call", "__init__", "<lambda>",
];
const ENVS: &[&str] = &["production", "staging", "development", "test"];
const RELEASES: &[&str] = &["1.0.0", "1.0.1", "1.1.0", "2.0.0-rc1", "2024.06.1"];
const SDKS: &[&str] = &["mesher-js", "mesher-python", "mesher-go", "mesher-rust", "sentry.python"];
const CATEGORIES: &[&str] = &["navigation", "http", "ui.click", "console", "query", "auth"];
/// Occasional non-ASCII but valid text (the schema allows any string).
const UNICODE_WORDS: &[&str] =
    &["ünïcödé", "日本語", "emoji🎉", "Ωμέγα", "naïve café", "עברית", "quote\"d", "back\\slash"];

/// Everything valid generation needs besides the RNG: fixtures, their partition into safe and
/// sacrificial ids, options, and the run's id pool.
#[derive(Debug)]
pub struct Ctx {
    pub fixtures: Fixtures,
    pub opts: GenOptions,
    pub ids: Arc<IdPool>,
    pub safe_issues: Vec<String>,
    pub sacrificial_issues: Vec<String>,
    pub safe_events: Vec<String>,
    /// Raw key values used for ingestion.
    pub ingest_keys: Vec<String>,
    /// Key ids valid revokes may target.
    pub revocable_keys: Vec<String>,
}

impl Ctx {
    pub fn new(fixtures: Fixtures, opts: GenOptions, ids: Arc<IdPool>) -> Ctx {
        let n = fixtures.issues.len();
        let sac = if n >= 2 { (n / 4).max(1) } else { 0 };
        let safe_issues = fixtures.issues[..n - sac].to_vec();
        let sacrificial_issues = fixtures.issues[n - sac..].to_vec();
        let per = fixtures.events.len().checked_div(n).unwrap_or(0);
        let safe_events = if per == 0 { Vec::new() } else { fixtures.events[..safe_issues.len() * per].to_vec() };
        let k = fixtures.api_keys.len();
        let (ingest, revocable) =
            if k >= 2 { fixtures.api_keys.split_at(k - 1) } else { (&fixtures.api_keys[..], &[][..]) };
        Ctx {
            ingest_keys: ingest.iter().map(|k| k.1.clone()).collect(),
            revocable_keys: revocable.iter().map(|k| k.0.clone()).collect(),
            fixtures,
            opts,
            ids,
            safe_issues,
            sacrificial_issues,
            safe_events,
        }
    }

    fn project_ref(&self, r: &mut GenRng) -> String {
        if chance(r, 0.2) { self.fixtures.project_slug.clone() } else { self.fixtures.project_id.clone() }
    }

    fn id_or_random(r: &mut GenRng, xs: &[String]) -> String {
        if xs.is_empty() { rng::uuid(r) } else { pick(r, xs).clone() }
    }
}

// ---------------------------------------------------------------- text helpers

/// One of the generators' constant strings (the same draw as [`pick`]).
fn pick_str(r: &mut GenRng, xs: &'static [&'static str]) -> &'static str {
    xs[below(r, xs.len())]
}

fn words(r: &mut GenRng, lo: u64, hi: u64, out: &mut String) {
    let n = range(r, lo, hi);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        if chance(r, 0.02) {
            out.push_str(pick::<&str>(r, UNICODE_WORDS));
        } else {
            out.push_str(pick::<&str>(r, WORDS));
        }
    }
}

fn word_string(r: &mut GenRng, lo: u64, hi: u64) -> String {
    let mut s = String::with_capacity(hi as usize * 8);
    words(r, lo, hi, &mut s);
    s
}

/// `[a-z0-9_]{lo..=hi}`: identifiers safe in query strings.
pub fn ident(r: &mut GenRng, lo: u64, hi: u64) -> String {
    let mut s = String::new();
    ident_into(r, lo, hi, &mut s);
    s
}

/// [`ident`], appended to `out`.
fn ident_into(r: &mut GenRng, lo: u64, hi: u64, out: &mut String) {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    let n = range(r, lo, hi);
    out.extend((0..n).map(|_| A[below(r, A.len())] as char));
}

/// A timestamp in the text form Mesher returns, with the space replaced by `T` (§2.2).
pub fn cursor(r: &mut GenRng) -> String {
    timestamp(r, "+00")
}

/// `2026-MM-DDTHH:MM:SS.ffffff` and `zone`, drawn in that order (digits pushed directly: this
/// runs for every breadcrumb).
fn timestamp(r: &mut GenRng, zone: &str) -> String {
    let mut s = String::with_capacity(32);
    timestamp_into(r, zone, &mut s);
    s
}

fn timestamp_into(r: &mut GenRng, zone: &str, s: &mut String) {
    s.push_str("2026-");
    for (lo, hi, width, sep) in
        [(1, 12, 2, '-'), (1, 28, 2, 'T'), (0, 23, 2, ':'), (0, 59, 2, ':'), (0, 59, 2, '.'), (0, 999_999, 6, ' ')]
    {
        push_padded(s, range(r, lo, hi), width);
        if sep != ' ' {
            s.push(sep);
        }
    }
    s.push_str(zone);
}

/// `v` in decimal, zero-padded to `width` digits.
fn push_padded(s: &mut String, v: u64, width: usize) {
    let mut buf = crate::generate::json::itoa_buf();
    let digits = crate::generate::json::fmt_i64(v as i64, &mut buf);
    s.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    s.push_str(std::str::from_utf8(digits).expect("ASCII digits"));
}

// ---------------------------------------------------------------- events (§4)

fn frame<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.begin_obj();
    s.key("filename");
    s.str_const(pick_str(r, FILES));
    s.key("function_name");
    s.str_const(pick_str(r, FUNCS));
    s.key("lineno");
    s.int(range(r, 1, 5000) as i64);
    if chance(r, 0.7) {
        // Browser SDKs send column 0 when the column is unknown (minified or native frames).
        let col = if chance(r, 0.15) { 0 } else { range(r, 1, 200) as i64 };
        s.key("colno");
        s.int(col);
    }
    if chance(r, 0.5) {
        s.key("context_line");
        s.text_with(|t| words(r, 1, 8, t));
    }
    s.key("in_app");
    s.bool(chance(r, 0.6));
    s.end();
}

fn breadcrumb<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.begin_obj();
    s.key("timestamp");
    s.plain_with(|t| timestamp_into(r, "Z", t));
    s.key("category");
    s.str_const(pick_str(r, CATEGORIES));
    s.key("message");
    s.text_with(|t| words(r, 1, 6, t));
    s.key("level");
    s.str_const(pick_str(r, LEVELS));
    s.key("data");
    s.begin_obj();
    s.key(pick_str(r, WORDS));
    s.plain_with(|t| ident_into(r, 1, 12, t));
    s.end();
    s.end();
}

/// Size class of an event: most small, some medium, a long tail of large ones.
fn event_sizes(r: &mut GenRng, opts: &GenOptions) -> (u64, u64, u64) {
    let x: f64 = rand::Rng::random(r);
    if x < 1.0 - opts.medium_event_ratio - opts.large_event_ratio {
        (range(r, 0, 4), range(r, 0, 3), range(r, 1, 12))
    } else if x < 1.0 - opts.large_event_ratio {
        (range(r, 5, 60), range(r, 4, 40), range(r, 5, 60))
    } else {
        // Large: aim at a byte size between 16 KiB and max_event_bytes (~130 B per frame).
        let target = range(r, 16 * 1024, (opts.max_event_bytes as u64).max(16 * 1024));
        let frames = target / 2 / 130;
        let crumbs = target / 2 / 150;
        (frames, crumbs, range(r, 10, 400))
    }
}

/// `MAJOR.MINOR.PATCH`.
#[cfg(test)]
fn sdk_version(r: &mut GenRng) -> String {
    let mut s = String::new();
    sdk_version_into(r, &mut s);
    s
}

fn sdk_version_into(r: &mut GenRng, s: &mut String) {
    for (i, hi) in [3, 20, 9].into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_padded(s, range(r, 0, hi), 1);
    }
}

/// One event with the whole §4 schema.
pub fn event(r: &mut GenRng, opts: &GenOptions) -> J {
    Tree::build(|s| event_to(r, opts, s))
}

/// [`event`] into any sink.
///
/// Each optional member is drawn in schema order by its own step; the draws and their order
/// are the generator's contract (`tests/generate_digest.txt` pins them).
pub fn event_to<S: Sink>(r: &mut GenRng, opts: &GenOptions, s: &mut S) {
    let (frames, crumbs, msg_words) = event_sizes(r, opts);
    let etype = *pick(r, ERR_TYPES);
    s.begin_obj();
    s.key("message");
    s.text_with(|msg| event_message_into(r, etype, msg_words, msg));
    s.key("level");
    s.str_const(pick_str(r, LEVELS));
    if chance(r, 0.75) {
        event_exception(r, etype, s);
    }
    if frames > 0 || chance(r, 0.5) {
        s.key("stacktrace");
        s.begin_arr();
        for _ in 0..frames {
            frame(r, s);
        }
        s.end();
    }
    if crumbs > 0 {
        s.key("breadcrumbs");
        s.begin_arr();
        for _ in 0..crumbs {
            breadcrumb(r, s);
        }
        s.end();
    }
    if chance(r, 0.8) {
        event_tags(r, s);
    }
    if chance(r, 0.4) {
        event_extra(r, s);
    }
    if chance(r, 0.5) {
        event_user_context(r, s);
    }
    if chance(r, 0.8) {
        s.key("sdk_name");
        s.str_const(pick_str(r, SDKS));
        s.key("sdk_version");
        s.plain_with(|t| sdk_version_into(r, t));
    }
    if chance(r, 0.1) {
        s.key("fingerprint");
        s.plain_with(|t| {
            t.push_str("fp-");
            ident_into(r, 4, 24, t);
        });
    }
    s.end();
}

/// `Type: words`, sometimes followed by a hex address.
fn event_message_into(r: &mut GenRng, etype: &str, msg_words: u64, msg: &mut String) {
    msg.push_str(etype);
    msg.push_str(": ");
    words(r, 1, msg_words, msg);
    if chance(r, 0.3) {
        msg.push_str(" at 0x");
        rng::hex(r, 12, msg);
    }
}

/// The `exception` member; its type is the message's, as SDKs report it.
fn event_exception<S: Sink>(r: &mut GenRng, etype: &'static str, s: &mut S) {
    s.key("exception");
    s.begin_obj();
    s.key("type_name");
    s.str_const(etype);
    s.key("value");
    s.text_with(|t| words(r, 1, 10, t));
    if chance(r, 0.6) {
        s.key("module_name");
        s.str_const(pick_str(r, MODULES));
    }
    s.end();
}

/// The `tags` member: environment, usually a release, then a few free-form tags.
fn event_tags<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.key("tags");
    s.begin_obj();
    s.key("environment");
    s.str_const(pick_str(r, ENVS));
    if chance(r, 0.7) {
        s.key("release");
        s.str_const(pick_str(r, RELEASES));
    }
    for _ in 0..range(r, 0, 3) {
        s.plain_key_with(|t| ident_into(r, 2, 10, t));
        s.plain_with(|t| ident_into(r, 1, 16, t));
    }
    s.end();
}

/// The `extra` member: a few values of mixed JSON types.
fn event_extra<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.key("extra");
    s.begin_obj();
    for _ in 0..range(r, 1, 4) {
        // The value is drawn before its name.
        let kind = below(r, 4);
        let (n, b, t) = match kind {
            0 => (range(r, 0, 1 << 40) as i64, false, String::new()),
            1 => (0, chance(r, 0.5), String::new()),
            2 => (0, false, ident(r, 1, 8)),
            _ => (0, false, word_string(r, 1, 5)),
        };
        s.plain_key_with(|t| ident_into(r, 2, 12, t));
        match kind {
            0 => s.int(n),
            1 => s.bool(b),
            2 => {
                s.begin_arr();
                s.text(t);
                s.null();
                s.end();
            }
            _ => s.text(t),
        }
    }
    s.end();
}

/// The `user_context` member: an id, sometimes an email.
fn event_user_context<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.key("user_context");
    s.begin_obj();
    s.key("id");
    s.plain_with(|t| ident_into(r, 2, 12, t));
    if chance(r, 0.5) {
        s.key("email");
        s.plain_with(|t| {
            ident_into(r, 3, 10, t);
            t.push_str("@example.test");
        });
    }
    s.end();
}

/// The bulk route's body: one event (the route processes the whole body as one event), and
/// sometimes a JSON array of events (still answered 202 by design, §2.5 #2).
pub fn bulk_event(r: &mut GenRng, opts: &GenOptions) -> J {
    Tree::build(|s| bulk_event_to(r, opts, s))
}

fn bulk_event_to<S: Sink>(r: &mut GenRng, opts: &GenOptions, s: &mut S) {
    if chance(r, 0.25) {
        s.begin_arr();
        for _ in 0..range(r, 1, 10) {
            event_to(r, opts, s);
        }
        s.end();
    } else {
        event_to(r, opts, s);
    }
}

pub fn alert_rule(r: &mut GenRng) -> J {
    Tree::build(|s| alert_rule_to(r, s))
}

fn alert_rule_to<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.begin_obj();
    if chance(r, 0.9) {
        s.key("name");
        s.text_with(|t| words(r, 1, 5, t));
    }
    if chance(r, 0.9) {
        s.key("condition");
        s.begin_obj();
        s.key("condition_type");
        if chance(r, 0.6) {
            s.str_const("threshold");
            s.key("threshold");
            s.int(range(r, 1, 10_000) as i64);
            s.key("window_minutes");
            s.int(range(r, 1, 1440) as i64);
        } else {
            s.str_const("new_issue");
        }
        s.end();
    }
    if chance(r, 0.7) {
        s.key("action");
        s.begin_obj();
        s.key("type");
        s.str_const("websocket");
        s.end();
    }
    if chance(r, 0.7) {
        let m = range(r, 0, 1440) as i64;
        s.key("cooldown_minutes");
        if chance(r, 0.1) { s.text(m.to_string()) } else { s.int(m) }
    }
    s.end();
}

pub fn settings(r: &mut GenRng) -> J {
    Tree::build(|s| settings_to(r, s))
}

fn settings_to<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.begin_obj();
    if chance(r, 0.8) {
        let d = range(r, 1, 365) as i64;
        s.key("retention_days");
        if chance(r, 0.1) { s.text(d.to_string()) } else { s.int(d) }
    }
    if chance(r, 0.7) {
        let v = (range(r, 0, 1000) as f64) / 1000.0;
        s.key("sample_rate");
        if chance(r, 0.1) { s.text(v.to_string()) } else { s.float(v) }
    }
    s.end();
}

pub fn api_key_label(r: &mut GenRng) -> J {
    Tree::build(|s| api_key_label_to(r, s))
}

fn api_key_label_to<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.begin_obj();
    if below(r, 10) != 0 {
        s.key("label");
        s.text_with(|t| words(r, 1, 4, t));
    }
    s.end();
}

pub fn toggle(r: &mut GenRng) -> J {
    Tree::build(|s| toggle_to(r, s))
}

fn toggle_to<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.begin_obj();
    s.key("enabled");
    match below(r, 4) {
        0 => s.str_const(pick_str(r, TOGGLES)),
        1 => s.int(below(r, 2) as i64),
        _ => s.bool(chance(r, 0.5)),
    }
    s.end();
}

pub fn role(r: &mut GenRng) -> J {
    Tree::build(|s| role_to(r, s))
}

fn role_to<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.begin_obj();
    s.key("role");
    s.str_const(pick_str(r, ROLES));
    s.end();
}

pub fn add_member(r: &mut GenRng, user: &str) -> J {
    Tree::build(|s| add_member_to(r, user, s))
}

fn add_member_to<S: Sink>(r: &mut GenRng, user: &str, s: &mut S) {
    s.begin_obj();
    s.key("user_id");
    s.text(user.to_string());
    if chance(r, 0.85) {
        s.key("role");
        s.str_const(pick_str(r, ROLES));
    }
    s.end();
}

pub fn assign(r: &mut GenRng, f: &Fixtures) -> J {
    Tree::build(|s| assign_to(r, f, s))
}

fn assign_to<S: Sink>(r: &mut GenRng, f: &Fixtures, s: &mut S) {
    s.begin_obj();
    s.key("user_id");
    match below(r, 10) {
        0 => s.null(),
        1 => s.str_const(""),
        _ => s.text(Ctx::id_or_random(r, &f.users)),
    }
    s.end();
}

/// A stream subscription message (§3.3).
pub fn stream_filter(r: &mut GenRng) -> J {
    Tree::build(|s| stream_filter_to(r, s))
}

fn stream_filter_to<S: Sink>(r: &mut GenRng, s: &mut S) {
    s.begin_obj();
    s.key("type");
    s.str_const("subscribe");
    s.key("filters");
    s.begin_obj();
    if chance(r, 0.6) {
        s.key("level");
        s.str_const(pick_str(r, LEVELS));
    }
    if chance(r, 0.6) {
        s.key("environment");
        s.str_const(pick_str(r, ENVS));
    }
    s.end();
    s.end();
}

// ---------------------------------------------------------------- queries

/// A valid value of a query parameter.
pub fn query_value(r: &mut GenRng, ctx: &Ctx, kind: QueryKind) -> String {
    match kind {
        QueryKind::IssueStatus => (*pick(r, ISSUE_STATUSES)).into(),
        QueryKind::Level => (*pick(r, LEVELS)).into(),
        QueryKind::UserId => Ctx::id_or_random(r, &ctx.fixtures.users),
        QueryKind::Cursor => cursor(r),
        QueryKind::CursorId => rng::uuid(r),
        QueryKind::Limit => range(r, 1, 100).to_string(),
        QueryKind::RawLimit => (if chance(r, 0.8) { range(r, 0, 100) } else { range(r, 101, 100_000) }).to_string(),
        QueryKind::SearchText => {
            let n = range(r, 1, 3);
            (0..n).map(|_| *pick(r, WORDS)).collect::<Vec<_>>().join("+")
        }
        QueryKind::TagKey => {
            if chance(r, 0.7) {
                (*pick(r, &["environment", "release"])).into()
            } else {
                ident(r, 1, 16)
            }
        }
        QueryKind::TagValue => {
            if chance(r, 0.7) {
                (*pick(r, &["production", "staging", "1.0.0"])).into()
            } else {
                ident(r, 1, 16)
            }
        }
        QueryKind::Bucket => (*pick(r, BUCKETS)).into(),
        QueryKind::AlertStatus => (*pick(r, ALERT_STATUSES)).into(),
    }
}

/// `?a=b&...` for a route (required parameters always, optional ones half the time; `cursor`
/// always comes with `cursor_id`), or "".
pub fn query(r: &mut GenRng, ctx: &Ctx, route: &Route) -> String {
    let mut out = String::new();
    let mut with_cursor = false;
    for q in route.query {
        let include = match q.kind {
            QueryKind::CursorId => with_cursor,
            _ => q.required || chance(r, 0.5),
        };
        if !include {
            continue;
        }
        if q.kind == QueryKind::Cursor {
            with_cursor = true;
        }
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(q.name);
        out.push('=');
        out.push_str(&query_value(r, ctx, q.kind));
    }
    out
}

// ---------------------------------------------------------------- requests

/// Routes whose request depends on the run's id pool (what earlier answers created): they are
/// the only ones that do not regenerate exactly from their seed later in a run.
pub fn pool_dependent(id: RouteId) -> bool {
    matches!(
        id,
        RouteId::MemberRemove
            | RouteId::MembersAdd
            | RouteId::MemberRole
            | RouteId::AlertRuleDelete
            | RouteId::AlertRulesCreate
    )
}

/// The route actually generated when `id` is asked for, given the pool (see module docs), and
/// the ids taken for it.
fn settle(r: &mut GenRng, ctx: &Ctx, id: RouteId) -> (RouteId, Option<String>) {
    let draw = rng::next_u64(r);
    match id {
        RouteId::MemberRemove => match ctx.ids.take_membership(draw) {
            Some((m, _)) => (id, Some(m)),
            None => settle(r, ctx, RouteId::MembersAdd),
        },
        RouteId::MembersAdd => match ctx.ids.take_free_user(draw) {
            Some(u) => (id, Some(u)),
            None => (RouteId::MemberRole, None),
        },
        RouteId::AlertRuleDelete => match ctx.ids.take_rule(draw) {
            Some(rule) => (id, Some(rule)),
            None => (RouteId::AlertRulesCreate, None),
        },
        _ => (id, None),
    }
}

fn path_arg(r: &mut GenRng, ctx: &Ctx, route: &Route, kind: ParamKind, taken: &Option<String>) -> String {
    let f = &ctx.fixtures;
    match kind {
        ParamKind::ProjectRef => ctx.project_ref(r),
        ParamKind::OrgId => f.org_id.clone(),
        ParamKind::IssueId if route.id == RouteId::IssueDelete => Ctx::id_or_random(r, &ctx.sacrificial_issues),
        ParamKind::IssueId => Ctx::id_or_random(r, &ctx.safe_issues),
        ParamKind::EventId => Ctx::id_or_random(r, &ctx.safe_events),
        ParamKind::MembershipId => match taken {
            Some(m) => m.clone(),
            None => Ctx::id_or_random(r, &f.memberships),
        },
        ParamKind::ApiKeyId => Ctx::id_or_random(r, &ctx.revocable_keys),
        ParamKind::AlertRuleId => match taken {
            Some(rule) => rule.clone(),
            None => Ctx::id_or_random(r, &f.alert_rules),
        },
        ParamKind::AlertId if route.id == RouteId::AlertAcknowledge => Ctx::id_or_random(r, &f.active_alerts),
        ParamKind::AlertId => {
            if chance(r, 0.5) || f.acknowledged_alerts.is_empty() {
                Ctx::id_or_random(r, &f.active_alerts)
            } else {
                pick(r, &f.acknowledged_alerts).clone()
            }
        }
    }
}

/// The valid JSON body of a route (None for routes without a body).
pub fn body(r: &mut GenRng, ctx: &Ctx, route: &Route, taken: &Option<String>) -> Option<J> {
    (route.body != BodyKind::None).then(|| Tree::build(|s| body_to(r, ctx, route, taken, s)))
}

/// [`body`] into any sink (nothing for routes without a body).
fn body_to<S: Sink>(r: &mut GenRng, ctx: &Ctx, route: &Route, taken: &Option<String>, s: &mut S) {
    match route.body {
        BodyKind::None => {}
        BodyKind::Event => event_to(r, &ctx.opts, s),
        BodyKind::BulkEvent => bulk_event_to(r, &ctx.opts, s),
        BodyKind::Assign => assign_to(r, &ctx.fixtures, s),
        BodyKind::AddMember => {
            let user = match taken {
                Some(u) => u.clone(),
                None => Ctx::id_or_random(r, &ctx.fixtures.users),
            };
            add_member_to(r, &user, s)
        }
        BodyKind::MemberRole => role_to(r, s),
        BodyKind::ApiKeyLabel => api_key_label_to(r, s),
        BodyKind::AlertRule => alert_rule_to(r, s),
        BodyKind::Toggle => toggle_to(r, s),
        BodyKind::Settings => settings_to(r, s),
    }
}

/// A valid request for `id` (or for the route it settles to, see module docs), with its body
/// as a tree (for the JSON layer) — the request's body bytes are that tree serialised.
pub fn request(r: &mut GenRng, ctx: &Ctx, id: RouteId) -> (HttpRequest, Option<J>) {
    request_with(r, ctx, id, |r, route, taken| {
        let body = body(r, ctx, route, taken);
        (body.as_ref().map(J::to_bytes).unwrap_or_default(), body)
    })
}

/// The same request as [`request`] for the same RNG state, its body written straight to bytes
/// (no tree: the valid layer's fast path).
pub fn request_bytes(r: &mut GenRng, ctx: &Ctx, id: RouteId) -> HttpRequest {
    request_with(r, ctx, id, |r, route, taken| {
        let bytes =
            if route.body == BodyKind::None { Vec::new() } else { Bytes::build(|s| body_to(r, ctx, route, taken, s)) };
        (bytes, ())
    })
    .0
}

fn request_with<T>(
    r: &mut GenRng,
    ctx: &Ctx,
    id: RouteId,
    body: impl FnOnce(&mut GenRng, &Route, &Option<String>) -> (Vec<u8>, T),
) -> (HttpRequest, T) {
    let (id, taken) = settle(r, ctx, id);
    let route = Route::get(id);
    let args: Vec<String> = route.params.iter().map(|k| path_arg(r, ctx, route, *k, &taken)).collect();
    let argr: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut target = route.path(&argr);
    target.push_str(&query(r, ctx, route));
    let (bytes, tree) = body(r, route, &taken);
    let mut req = HttpRequest::new(Some(id), route.method.as_str(), target, bytes);
    if route.auth == crate::api::Auth::ApiKey {
        let key = if ctx.ingest_keys.is_empty() { String::new() } else { pick(r, &ctx.ingest_keys).clone() };
        let name = if chance(r, 0.8) { "x-sentry-auth" } else { "authorization" };
        req.headers.push((name.to_string(), key.into_bytes()));
    }
    (req, tree)
}

// ---------------------------------------------------------------- WebSocket (§3)

fn close_frame(code: u16, reason: &[u8]) -> WsFrame {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    WsFrame { fin: true, opcode: 8, rsv: 0, masked: true, payload: p, declared_len: None, delay_ms: 0 }
}

/// A valid WebSocket conversation: ingest (authenticated, event frames) or stream (subscription
/// messages), possibly a ping, then a normal close (1000).
pub fn ws_script(r: &mut GenRng, ctx: &Ctx, kind: WsPath) -> WsScript {
    let mut frames = Vec::new();
    let mut headers = Vec::new();
    let path = match kind {
        WsPath::Ingest => {
            let key = if ctx.ingest_keys.is_empty() { "mshr_".to_string() } else { pick(r, &ctx.ingest_keys).clone() };
            let name = if chance(r, 0.8) { "x-sentry-auth" } else { "authorization" };
            headers.push((name.to_string(), key.into_bytes()));
            let small = GenOptions { large_event_ratio: 0.0, ..ctx.opts.clone() };
            for _ in 0..range(r, 1, 4) {
                let mut f = WsFrame::text(Bytes::build(|s| event_to(r, &small, s)));
                if chance(r, 0.2) {
                    f.opcode = 2;
                }
                frames.push(f);
            }
            kind.path("")
        }
        WsPath::Stream => {
            for _ in 0..range(r, 1, 3) {
                frames.push(WsFrame::text(Bytes::build(|s| stream_filter_to(r, s))));
            }
            kind.path(&ctx.fixtures.project_id)
        }
    };
    if chance(r, 0.3) {
        let at = below(r, frames.len() + 1);
        let mut p = WsFrame::text(b"ping".to_vec());
        p.opcode = 9;
        frames.insert(at, p);
    }
    frames.push(close_frame(1000, b""));
    WsScript { kind, path, headers, frames }
}

pub fn close(code: u16, reason: &[u8]) -> WsFrame {
    close_frame(code, reason)
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn timestamps_and_versions_have_their_fixed_form() {
        let mut r = crate::generate::rng::from_u64(7);
        for _ in 0..2000 {
            let c = cursor(&mut r);
            assert_eq!(c.len(), 29, "{c}");
            let (date, zone) = c.split_at(c.len() - 3);
            assert_eq!(zone, "+00");
            let num = |a: usize, b: usize| date[a..b].parse::<u64>().unwrap();
            assert_eq!(&date[..5], "2026-");
            assert_eq!(
                [&date[7..8], &date[10..11], &date[13..14], &date[16..17], &date[19..20]],
                ["-", "T", ":", ":", "."]
            );
            assert!((1..=12).contains(&num(5, 7)) && (1..=28).contains(&num(8, 10)), "{c}");
            assert!(num(11, 13) <= 23 && num(14, 16) <= 59 && num(17, 19) <= 59 && num(20, 26) <= 999_999, "{c}");
            let v = sdk_version(&mut r);
            let parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap()).collect();
            assert!(parts.len() == 3 && parts[0] <= 3 && parts[1] <= 20 && parts[2] <= 9, "{v}");
        }
        let mut s = String::new();
        push_padded(&mut s, 7, 6);
        push_padded(&mut s, 123, 2);
        push_padded(&mut s, 0, 1);
        assert_eq!(s, "0000071230");
    }
}
