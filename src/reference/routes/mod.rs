//! The 36 HTTP route handlers (`docs/mesher-interface.md` §2.4/§2.5), dispatched on [`RouteId`] after
//! [`crate::api::match_route`]. Each handler is one (rarely two) SQL statement(s); bodies are
//! built with `serde_json` so they are always valid JSON (Mesher's are not, §6.3 F11).
//!
//! Where to change what: a route's SQL and response shape live in its handler, one file per
//! resource ([`events`], [`issues`], [`dashboard`], [`members`], [`api_keys`], [`alert_rules`],
//! [`alerts`], [`settings`]); [`dispatch`] maps every [`RouteId`] to its handler; the rules the
//! routes share (query string, page size, lenient JSON getter, project reference, API key,
//! answer shapes) are in this file. Ingestion (routes 1, 2) is [`events::ingest_route`] and
//! `ingest.rs`.

mod alert_rules;
mod alerts;
mod api_keys;
mod dashboard;
mod events;
mod issues;
mod members;
mod settings;

use super::App;
use super::ingest;
use crate::api::{RouteId, RouteMatch};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::HashMap;

/// A response: status and body (JSON, except the router's plain `Not Found`).
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(status: u16, v: Value) -> Resp {
        Resp { status, body: serde_json::to_vec(&v).unwrap_or_default() }
    }
    pub fn error(status: u16, msg: &str) -> Resp {
        Resp::json(status, json!({ "error": msg }))
    }
    pub fn not_found() -> Resp {
        Resp { status: 404, body: b"Not Found".to_vec() }
    }
}

/// Mesher's rendering of a database error: `SQLSTATE\tconstraint\ttable\tcolumn\tmessage` for
/// PostgreSQL errors (then escaped by the JSON encoder), the plain text otherwise.
pub fn pg_error_text(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => {
            let pg = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
            match pg {
                Some(p) => format!(
                    "{}\t{}\t{}\t{}\t{}",
                    p.code(),
                    p.constraint().unwrap_or(""),
                    p.table().unwrap_or(""),
                    p.column().unwrap_or(""),
                    p.message()
                ),
                None => d.message().to_string(),
            }
        }
        sqlx::Error::PoolTimedOut => "pool checkout timeout".to_string(),
        other => other.to_string(),
    }
}

fn db_err(e: sqlx::Error) -> Resp {
    Resp::error(500, &pg_error_text(&e))
}

/// A handler's answer; a database error it does not handle itself becomes a 500 ([`db_err`]).
type Answer = Result<Resp, sqlx::Error>;

/// Dispatch a routed request. `head` is the raw request head (for Mesher's header rules).
pub async fn handle(
    app: &App,
    m: &RouteMatch<'_>,
    query: &str,
    head: Option<&[u8]>,
    hdr_fallback: &http::HeaderMap,
    body: &[u8],
) -> Resp {
    let req = Req { app, args: &m.args, query: parse_query(query), head, headers: hdr_fallback, body };
    dispatch(&req, m.route.id).await.unwrap_or_else(db_err)
}

/// Every route to its handler.
async fn dispatch(r: &Req<'_>, id: RouteId) -> Answer {
    match id {
        RouteId::EventsIngest => events::ingest_route(r, false).await,
        RouteId::EventsBulk => events::ingest_route(r, true).await,
        RouteId::IssuesList => issues::list(r).await,
        RouteId::EventsSearch => events::search(r).await,
        RouteId::EventsTags => events::by_tag(r).await,
        RouteId::IssueEvents => issues::events(r).await,
        RouteId::DashboardVolume => dashboard::volume(r).await,
        RouteId::DashboardLevels => dashboard::levels(r).await,
        RouteId::DashboardTopIssues => dashboard::top_issues(r).await,
        RouteId::DashboardTags => dashboard::tag_values(r).await,
        RouteId::IssueTimeline => issues::timeline(r).await,
        RouteId::DashboardHealth => dashboard::health(r).await,
        RouteId::EventDetail => events::detail(r).await,
        RouteId::IssueResolve => issues::set_status(r, "resolved", true).await,
        RouteId::IssueArchive => issues::set_status(r, "archived", false).await,
        RouteId::IssueUnresolve => issues::set_status(r, "unresolved", false).await,
        RouteId::IssueDiscard => issues::set_status(r, "discarded", false).await,
        RouteId::IssueAssign => issues::assign(r).await,
        RouteId::IssueDelete => issues::delete(r).await,
        RouteId::MembersList => members::list(r).await,
        RouteId::MembersAdd => members::add(r).await,
        RouteId::MemberRole => members::set_role(r).await,
        RouteId::MemberRemove => members::remove(r).await,
        RouteId::ApiKeysList => api_keys::list(r).await,
        RouteId::ApiKeysCreate => api_keys::create(r).await,
        RouteId::ApiKeyRevoke => api_keys::revoke(r).await,
        RouteId::AlertRulesList => alert_rules::list(r).await,
        RouteId::AlertRulesCreate => alert_rules::create(r).await,
        RouteId::AlertRuleToggle => alert_rules::toggle(r).await,
        RouteId::AlertRuleDelete => alert_rules::delete(r).await,
        RouteId::AlertsList => alerts::list(r).await,
        RouteId::AlertAcknowledge => alerts::acknowledge(r).await,
        RouteId::AlertResolve => alerts::resolve(r).await,
        RouteId::SettingsGet => settings::get(r).await,
        RouteId::SettingsUpdate => settings::update(r).await,
        RouteId::Storage => settings::storage(r).await,
    }
}

/// One routed request as its handler sees it.
struct Req<'a> {
    app: &'a App,
    /// The raw path parameters, in template order.
    args: &'a [&'a str],
    query: HashMap<&'a str, &'a str>,
    /// The raw request head, when the transport kept it (§2.3's header rules read it).
    head: Option<&'a [u8]>,
    /// hyper's header map, for when there is no raw head.
    headers: &'a http::HeaderMap,
    body: &'a [u8],
}

impl<'a> Req<'a> {
    fn pool(&self) -> &'a PgPool {
        &self.app.pool
    }

    /// The `i`-th path parameter, raw.
    fn arg(&self, i: usize) -> &'a str {
        self.args[i]
    }

    /// A query parameter as sent, also when empty.
    fn raw_param(&self, k: &str) -> Option<&'a str> {
        self.query.get(k).copied()
    }

    /// A non-empty query parameter.
    fn param(&self, k: &str) -> Option<&'a str> {
        self.raw_param(k).filter(|v| !v.is_empty())
    }

    /// Page size rule of §2.5 #3: 1..=100, anything else 25.
    fn page_limit(&self) -> i64 {
        self.raw_param("limit").and_then(|l| l.parse::<i64>().ok()).filter(|l| (1..=100).contains(l)).unwrap_or(25)
    }

    /// The keyset cursor of a page request: `cursor` when non-empty, then `cursor_id` as sent
    /// (empty when absent).
    fn cursor(&self) -> (Option<&'a str>, Option<&'a str>) {
        let cursor = self.param("cursor");
        (cursor, cursor.map(|_| self.raw_param("cursor_id").unwrap_or("")))
    }

    /// Lenient JSON getter (§2.5 #17): the text form of `key` of a JSON object body; empty when the
    /// body is not JSON, not an object, lacks the key or holds null.
    fn lenient(&self, key: &str) -> String {
        serde_json::from_slice::<Value>(self.body)
            .ok()
            .and_then(|v| v.get(key).map(ingest::text_form))
            .unwrap_or_default()
    }

    /// [`Req::lenient`], with `default` in place of an empty text.
    fn lenient_or(&self, key: &str, default: &str) -> String {
        Some(self.lenient(key)).filter(|v| !v.is_empty()).unwrap_or_else(|| default.into())
    }

    /// The project of the path's first parameter (§2.2): 36 code points = UUID as is; else slug
    /// lookup, "" if none.
    async fn project(&self) -> String {
        let raw = self.arg(0);
        if raw.chars().count() == 36 {
            return raw.to_string();
        }
        sqlx::query_scalar("SELECT id::text FROM projects WHERE slug = $1")
            .bind(raw)
            .fetch_optional(self.pool())
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// Mesher's query string parsing (§2.1): split on `&`, then at the first `=`; pieces without `=`
/// ignored; last duplicate wins; nothing decoded.
pub fn parse_query(q: &str) -> HashMap<&str, &str> {
    q.split('&').filter_map(|p| p.split_once('=')).collect()
}

fn ok_affected(n: u64) -> Resp {
    Resp::json(200, json!({"status":"ok","affected":n}))
}

/// The answer of a delete route: a 500 `delete: no row returned` when no row had the id.
fn deleted(n: u64) -> Resp {
    if n == 0 {
        return Resp::error(500, "delete: no row returned (id not found)");
    }
    ok_affected(n)
}

fn raw_json(s: Option<String>) -> Value {
    s.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null)
}

/// A 200 answer with a JSON array, one element per row.
fn json_array<R>(rows: Vec<R>, element: impl FnMut(R) -> Value) -> Resp {
    Resp::json(200, Value::Array(rows.into_iter().map(element).collect()))
}

/// Keyset page answer: `{"data":[..],"has_more":..,"next_cursor","next_cursor_id"}`.
fn page(items: Vec<Value>, limit: i64, cursor: Option<(String, String)>) -> Resp {
    let full = items.len() as i64 == limit;
    let mut v = json!({"data": items});
    if full && let Some((c, id)) = cursor {
        v["next_cursor"] = json!(c);
        v["next_cursor_id"] = json!(id);
    }
    v["has_more"] = json!(full);
    Resp::json(200, v)
}

/// The API key of a request (§2.3): the trimmed raw value of the exactly-lowercase header
/// `x-sentry-auth`, else `authorization` (last occurrence wins).
pub fn api_key(head: Option<&[u8]>, fallback: &http::HeaderMap) -> Option<String> {
    match head {
        Some(h) => super::io::raw_header(h, "x-sentry-auth").or_else(|| super::io::raw_header(h, "authorization")),
        None => fallback
            .get("x-sentry-auth")
            .or_else(|| fallback.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string()),
    }
}

/// Length in Unicode code points (bytes that do not continue a UTF-8 sequence).
pub fn code_points(b: &[u8]) -> usize {
    b.iter().filter(|&&c| (c & 0xC0) != 0x80).count()
}
