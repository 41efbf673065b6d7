//! The 36 HTTP route handlers (`mesher-api.md` §2.4/§2.5), dispatched on [`RouteId`] after
//! [`crate::api::match_route`]. Each handler is one (rarely two) SQL statement(s); bodies are
//! built with `serde_json` so they are always valid JSON (Mesher's are not, §6.3 F11).
//!
//! Where to change what: a route's SQL and response shape live in its `match` arm in [`handle`];
//! ingestion (routes 1, 2) is in [`ingest_route`] and `ingest.rs`.

use super::App;
use super::ingest;
use crate::api::{RouteId, RouteMatch};
use serde_json::{Value, json};
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

/// Mesher's query string parsing (§2.1): split on `&`, then at the first `=`; pieces without `=`
/// ignored; last duplicate wins; nothing decoded.
pub fn parse_query(q: &str) -> HashMap<&str, &str> {
    q.split('&').filter_map(|p| p.split_once('=')).collect()
}

/// Page size rule of §2.5 #3: 1..=100, anything else 25.
fn page_limit(q: &HashMap<&str, &str>) -> i64 {
    q.get("limit").and_then(|l| l.parse::<i64>().ok()).filter(|l| (1..=100).contains(l)).unwrap_or(25)
}

/// A non-empty query parameter.
fn param<'a>(q: &HashMap<&str, &'a str>, k: &str) -> Option<&'a str> {
    q.get(k).copied().filter(|v| !v.is_empty())
}

/// Lenient JSON getter (§2.5 #17): the text form of `key` of a JSON object body; empty when the
/// body is not JSON, not an object, lacks the key or holds null.
fn lenient(body: &[u8], key: &str) -> String {
    serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get(key).map(ingest::text_form)).unwrap_or_default()
}

/// Project reference resolution (§2.2): 36 code points = UUID as is; else slug lookup, "" if none.
async fn project_ref(app: &App, raw: &str) -> String {
    if raw.chars().count() == 36 {
        return raw.to_string();
    }
    sqlx::query_scalar("SELECT id::text FROM projects WHERE slug = $1")
        .bind(raw)
        .fetch_optional(&app.pool)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn ok_affected(n: u64) -> Resp {
    Resp::json(200, json!({"status":"ok","affected":n}))
}

fn raw_json(s: Option<String>) -> Value {
    s.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null)
}

type IssueRow = (String, String, String, String, i32, String, String, String);
type EventRow = (String, String, String, String);

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

/// Dispatch a routed request. `head` is the raw request head (for Mesher's header rules).
pub async fn handle(
    app: &App,
    m: &RouteMatch<'_>,
    query: &str,
    head: Option<&[u8]>,
    hdr_fallback: &http::HeaderMap,
    body: &[u8],
) -> Resp {
    let q = parse_query(query);
    let a = |i: usize| m.args[i];
    let pool = &app.pool;
    macro_rules! tryq {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return db_err(e),
            }
        };
    }
    macro_rules! project {
        () => {
            project_ref(app, a(0)).await
        };
    }
    match m.route.id {
        RouteId::EventsIngest => ingest_route(app, head, hdr_fallback, body, false).await,
        RouteId::EventsBulk => ingest_route(app, head, hdr_fallback, body, true).await,
        RouteId::IssuesList => {
            let p = project!();
            let limit = page_limit(&q);
            let cursor = param(&q, "cursor");
            let cursor_id = cursor.map(|_| q.get("cursor_id").copied().unwrap_or(""));
            let rows: Vec<IssueRow> = tryq!(
                sqlx::query_as(
                    "SELECT id::text, title, level, status, event_count, first_seen::text, last_seen::text,
                            COALESCE(assigned_to::text, '')
                     FROM issues WHERE project_id = $1::uuid
                       AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR level = $3)
                       AND ($4::text IS NULL OR assigned_to = $4::uuid)
                       AND ($5::text IS NULL OR (last_seen, id) < ($5::timestamptz, $6::uuid))
                     ORDER BY last_seen DESC, id DESC LIMIT $7"
                )
                .bind(&p)
                .bind(param(&q, "status"))
                .bind(param(&q, "level"))
                .bind(param(&q, "assigned_to"))
                .bind(cursor)
                .bind(cursor_id)
                .bind(limit)
                .fetch_all(pool)
                .await
            );
            let last = rows.last().map(|r| (r.6.clone(), r.0.clone()));
            let items = rows
                .into_iter()
                .map(|r| {
                    json!({"id":r.0,"title":r.1,"level":r.2,"status":r.3,"event_count":r.4,"first_seen":r.5,
                           "last_seen":r.6,"assigned_to":r.7})
                })
                .collect();
            page(items, limit, last)
        }
        RouteId::EventsSearch => {
            let Some(text) = param(&q, "q") else {
                return Resp::error(400, "missing search query");
            };
            let p = project!();
            let rows: Vec<(String, String, String, String, String)> = tryq!(
                sqlx::query_as(
                    "SELECT id::text, issue_id::text, level, message, received_at::text FROM events
                     WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours'
                       AND to_tsvector('english', left(message, 100000)) @@ plainto_tsquery('english', $2)
                     ORDER BY ts_rank(to_tsvector('english', left(message, 100000)), plainto_tsquery('english', $2)) DESC,
                              received_at DESC LIMIT $3"
                )
                .bind(&p)
                .bind(text)
                .bind(page_limit(&q))
                .fetch_all(pool)
                .await
            );
            Resp::json(
                200,
                Value::Array(
                    rows.into_iter()
                        .map(|r| json!({"id":r.0,"issue_id":r.1,"level":r.2,"message":r.3,"received_at":r.4}))
                        .collect(),
                ),
            )
        }
        RouteId::EventsTags => {
            let (Some(k), Some(v)) = (param(&q, "key"), param(&q, "value")) else {
                return Resp::error(400, "missing key or value parameter");
            };
            let p = project!();
            let filter = json!({ k: v }).to_string();
            let rows: Vec<(String, String, String, String, String, String)> = tryq!(
                sqlx::query_as(
                    "SELECT id::text, issue_id::text, level, message, tags::text, received_at::text FROM events
                     WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours' AND tags @> $2::jsonb
                     ORDER BY received_at DESC LIMIT $3"
                )
                .bind(&p)
                .bind(filter)
                .bind(page_limit(&q))
                .fetch_all(pool)
                .await
            );
            Resp::json(
                200,
                Value::Array(
                    rows.into_iter()
                        .map(|r| {
                            json!({"id":r.0,"issue_id":r.1,"level":r.2,"message":r.3,"tags":raw_json(Some(r.4)),
                                   "received_at":r.5})
                        })
                        .collect(),
                ),
            )
        }
        RouteId::IssueEvents => {
            let limit = page_limit(&q);
            let cursor = param(&q, "cursor");
            let cursor_id = cursor.map(|_| q.get("cursor_id").copied().unwrap_or(""));
            let rows: Vec<EventRow> = tryq!(
                sqlx::query_as(
                    "SELECT id::text, level, message, received_at::text FROM events WHERE issue_id = $1::uuid
                       AND ($2::text IS NULL OR (received_at, id) < ($2::timestamptz, $3::uuid))
                     ORDER BY received_at DESC, id DESC LIMIT $4"
                )
                .bind(a(0))
                .bind(cursor)
                .bind(cursor_id)
                .bind(limit)
                .fetch_all(pool)
                .await
            );
            let last = rows.last().map(|r| (r.3.clone(), r.0.clone()));
            let items =
                rows.into_iter().map(|r| json!({"id":r.0,"level":r.1,"message":r.2,"received_at":r.3})).collect();
            page(items, limit, last)
        }
        RouteId::DashboardVolume => {
            let p = project!();
            let bucket = param(&q, "bucket").unwrap_or("hour");
            let rows: Vec<(String, i64)> = tryq!(
                sqlx::query_as(
                    "SELECT date_trunc($2, received_at)::text, count(*) FROM events
                     WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours' GROUP BY 1 ORDER BY 1"
                )
                .bind(&p)
                .bind(bucket)
                .fetch_all(pool)
                .await
            );
            Resp::json(200, Value::Array(rows.into_iter().map(|r| json!({"bucket":r.0,"count":r.1})).collect()))
        }
        RouteId::DashboardLevels => {
            let p = project!();
            let rows: Vec<(String, i64)> = tryq!(
                sqlx::query_as(
                    "SELECT level, count(*) FROM events
                     WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours'
                     GROUP BY 1 ORDER BY 2 DESC, 1"
                )
                .bind(&p)
                .fetch_all(pool)
                .await
            );
            Resp::json(200, Value::Array(rows.into_iter().map(|r| json!({"level":r.0,"count":r.1})).collect()))
        }
        RouteId::DashboardTopIssues => {
            if let Some(l) = q.get("limit") {
                app.faults.top_issues_limit(l);
            }
            let p = project!();
            let limit = q.get("limit").copied().unwrap_or("10");
            let rows: Vec<(String, String, String, String, i32, String)> = tryq!(
                sqlx::query_as(
                    "SELECT id::text, title, level, status, event_count, last_seen::text FROM issues
                     WHERE project_id = $1::uuid AND status = 'unresolved'
                     ORDER BY event_count DESC, id LIMIT $2::text::int"
                )
                .bind(&p)
                .bind(limit)
                .fetch_all(pool)
                .await
            );
            Resp::json(
                200,
                Value::Array(
                    rows.into_iter()
                        .map(|r| {
                            json!({"id":r.0,"title":r.1,"level":r.2,"status":r.3,"event_count":r.4,"last_seen":r.5})
                        })
                        .collect(),
                ),
            )
        }
        RouteId::DashboardTags => {
            let Some(k) = param(&q, "key") else {
                return Resp::error(400, "missing key parameter");
            };
            let p = project!();
            let rows: Vec<(Option<String>, i64)> = tryq!(
                sqlx::query_as(
                    "SELECT NULLIF(tags ->> $2, ''), count(*) FROM events
                     WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours' AND tags ? $2
                     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20"
                )
                .bind(&p)
                .bind(k)
                .fetch_all(pool)
                .await
            );
            Resp::json(200, Value::Array(rows.into_iter().map(|r| json!({"value":r.0,"count":r.1})).collect()))
        }
        RouteId::IssueTimeline => {
            let limit = q.get("limit").copied().unwrap_or("50");
            let rows: Vec<EventRow> = tryq!(
                sqlx::query_as(
                    "SELECT id::text, level, message, received_at::text FROM events WHERE issue_id = $1::uuid
                     ORDER BY received_at DESC, id DESC LIMIT $2::text::int"
                )
                .bind(a(0))
                .bind(limit)
                .fetch_all(pool)
                .await
            );
            Resp::json(
                200,
                Value::Array(
                    rows.into_iter().map(|r| json!({"id":r.0,"level":r.1,"message":r.2,"received_at":r.3})).collect(),
                ),
            )
        }
        RouteId::DashboardHealth => {
            let p = project!();
            let (u, e, n): (i64, i64, i64) = tryq!(
                sqlx::query_as(
                    "SELECT (SELECT count(*) FROM issues WHERE project_id = $1::uuid AND status = 'unresolved'),
                            (SELECT count(*) FROM events WHERE project_id = $1::uuid
                               AND received_at > now() - interval '24 hours'),
                            (SELECT count(*) FROM issues WHERE project_id = $1::uuid
                               AND first_seen > now() - interval '24 hours')"
                )
                .bind(&p)
                .fetch_one(pool)
                .await
            );
            Resp::json(200, json!({"unresolved_count":u,"events_24h":e,"new_today":n}))
        }
        RouteId::EventDetail => event_detail(app, a(0)).await,
        RouteId::IssueResolve | RouteId::IssueArchive | RouteId::IssueUnresolve | RouteId::IssueDiscard => {
            let (status, only_if) = match m.route.id {
                RouteId::IssueResolve => ("resolved", true),
                RouteId::IssueArchive => ("archived", false),
                RouteId::IssueUnresolve => ("unresolved", false),
                _ => ("discarded", false),
            };
            let (project, n): (Option<String>, i64) = tryq!(
                sqlx::query_as(
                    "WITH t AS (SELECT id, project_id FROM issues WHERE id = $1::uuid),
                          u AS (UPDATE issues SET status = $2 WHERE id IN (SELECT id FROM t)
                                  AND (NOT $3 OR status <> $2) RETURNING 1)
                     SELECT (SELECT project_id::text FROM t), (SELECT count(*) FROM u)"
                )
                .bind(a(0))
                .bind(status)
                .bind(only_if)
                .fetch_one(pool)
                .await
            );
            if let Some(p) = project {
                app.hub.broadcast(&p, json!({"type":"issue","action":status,"issue_id":a(0)}));
            }
            ok_affected(n as u64)
        }
        RouteId::IssueAssign => {
            let raw = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("user_id").cloned());
            if let Some(v) = &raw
                && app.faults.assign_user_id(v).await
            {
                return Resp::error(400, "invalid user_id");
            }
            let user = lenient(body, "user_id");
            let r = tryq!(
                sqlx::query("UPDATE issues SET assigned_to = NULLIF($2, '')::uuid WHERE id = $1::uuid")
                    .bind(a(0))
                    .bind(&user)
                    .execute(pool)
                    .await
            );
            ok_affected(r.rows_affected())
        }
        RouteId::IssueDelete => {
            let n: i64 = tryq!(
                sqlx::query_scalar(
                    "WITH e AS (DELETE FROM events WHERE issue_id = $1::uuid),
                          i AS (DELETE FROM issues WHERE id = $1::uuid RETURNING 1)
                     SELECT count(*) FROM i"
                )
                .bind(a(0))
                .fetch_one(pool)
                .await
            );
            ok_affected(n as u64)
        }
        RouteId::MembersList => {
            let rows: Vec<(String, String, String, String, String, String)> = tryq!(
                sqlx::query_as(
                    "SELECT m.id::text, m.user_id::text, u.email, u.display_name, m.role, m.joined_at::text
                     FROM org_memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1::uuid
                     ORDER BY m.joined_at, m.id"
                )
                .bind(a(0))
                .fetch_all(pool)
                .await
            );
            Resp::json(
                200,
                Value::Array(
                    rows.into_iter()
                        .map(|r| {
                            json!({"id":r.0,"user_id":r.1,"email":r.2,"display_name":r.3,"role":r.4,"joined_at":r.5})
                        })
                        .collect(),
                ),
            )
        }
        RouteId::MembersAdd => {
            let user = lenient(body, "user_id");
            if user.is_empty() {
                return Resp::error(400, "user_id is required");
            }
            let role = Some(lenient(body, "role")).filter(|r| !r.is_empty()).unwrap_or_else(|| "member".into());
            let id: String = tryq!(
                sqlx::query_scalar(
                    "INSERT INTO org_memberships (user_id, org_id, role) VALUES ($1::uuid, $2::uuid, $3) RETURNING id::text"
                )
                .bind(&user)
                .bind(a(0))
                .bind(&role)
                .fetch_one(pool)
                .await
            );
            Resp::json(201, json!({ "id": id }))
        }
        RouteId::MemberRole => {
            let role = lenient(body, "role");
            let r = tryq!(
                sqlx::query(
                    "UPDATE org_memberships SET role = $2 WHERE id = $1::uuid AND $2 IN ('owner', 'admin', 'member')"
                )
                .bind(a(1))
                .bind(&role)
                .execute(pool)
                .await
            );
            ok_affected(r.rows_affected())
        }
        RouteId::MemberRemove => {
            let r =
                tryq!(sqlx::query("DELETE FROM org_memberships WHERE id = $1::uuid").bind(a(1)).execute(pool).await);
            if r.rows_affected() == 0 {
                return Resp::error(500, "delete: no row returned (id not found)");
            }
            ok_affected(r.rows_affected())
        }
        RouteId::ApiKeysList => {
            let p = project!();
            let rows: Vec<(String, String, String, String, String, Option<String>)> = tryq!(
                sqlx::query_as(
                    "SELECT id::text, project_id::text, key_value, label, created_at::text, revoked_at::text
                     FROM api_keys WHERE project_id = $1::uuid ORDER BY created_at DESC, id"
                )
                .bind(&p)
                .fetch_all(pool)
                .await
            );
            Resp::json(
                200,
                Value::Array(
                    rows.into_iter()
                        .map(|r| {
                            json!({"id":r.0,"project_id":r.1,"key_value":r.2,"label":r.3,"created_at":r.4,
                                   "revoked_at":r.5})
                        })
                        .collect(),
                ),
            )
        }
        RouteId::ApiKeysCreate => {
            let p = project!();
            let label = Some(lenient(body, "label")).filter(|l| !l.is_empty()).unwrap_or_else(|| "default".into());
            let key: String = tryq!(
                sqlx::query_scalar(
                    "INSERT INTO api_keys (project_id, key_value, label)
                     VALUES ($1::uuid, 'mshr_' || encode(gen_random_bytes(24), 'hex'), $2) RETURNING key_value"
                )
                .bind(&p)
                .bind(&label)
                .fetch_one(pool)
                .await
            );
            app.faults.api_key_created();
            Resp::json(201, json!({ "key_value": key }))
        }
        RouteId::ApiKeyRevoke => {
            let r = tryq!(
                sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1::uuid")
                    .bind(a(0))
                    .execute(pool)
                    .await
            );
            ok_affected(r.rows_affected())
        }
        RouteId::AlertRulesList => {
            type RuleRow = (String, String, String, String, String, bool, i32, Option<String>, String);
            let p = project!();
            let rows: Vec<RuleRow> = tryq!(
                sqlx::query_as(
                    "SELECT id::text, project_id::text, name, condition_json::text, action_json::text, enabled,
                            cooldown_minutes, last_fired_at::text, created_at::text
                     FROM alert_rules WHERE project_id = $1::uuid ORDER BY created_at DESC, id"
                )
                .bind(&p)
                .fetch_all(pool)
                .await
            );
            Resp::json(
                200,
                Value::Array(
                    rows.into_iter()
                        .map(|r| {
                            json!({"id":r.0,"project_id":r.1,"name":r.2,"condition":raw_json(Some(r.3)),
                                   "action":raw_json(Some(r.4)),"enabled":r.5,"cooldown_minutes":r.6,
                                   "last_fired_at":r.7,"created_at":r.8})
                        })
                        .collect(),
                ),
            )
        }
        RouteId::AlertRulesCreate => {
            app.faults.alert_rule_create(body);
            let p = project!();
            let r: Result<String, _> = sqlx::query_scalar(
                "INSERT INTO alert_rules (project_id, name, condition_json, action_json, cooldown_minutes)
                 SELECT $1::uuid, COALESCE(b ->> 'name', 'Unnamed Rule'), COALESCE(b -> 'condition', '{}'::jsonb),
                        COALESCE(b -> 'action', '{\"type\":\"websocket\"}'::jsonb),
                        COALESCE((b ->> 'cooldown_minutes')::int, 60)
                 FROM (SELECT CASE WHEN jsonb_typeof(x) = 'object' THEN x ELSE '{}'::jsonb END AS b
                       FROM (SELECT $2::text::jsonb AS x) s0) s
                 RETURNING id::text",
            )
            .bind(&p)
            .bind(String::from_utf8_lossy(body).as_ref())
            .fetch_one(pool)
            .await;
            match r {
                Ok(id) => Resp::json(201, json!({ "id": id })),
                Err(e) => Resp::error(400, &pg_error_text(&e)),
            }
        }
        RouteId::AlertRuleToggle => {
            let enabled = Some(lenient(body, "enabled")).filter(|e| !e.is_empty()).unwrap_or_else(|| "true".into());
            let r = tryq!(
                sqlx::query("UPDATE alert_rules SET enabled = $2::text::boolean WHERE id = $1::uuid")
                    .bind(a(0))
                    .bind(&enabled)
                    .execute(pool)
                    .await
            );
            ok_affected(r.rows_affected())
        }
        RouteId::AlertRuleDelete => {
            let r = tryq!(sqlx::query("DELETE FROM alert_rules WHERE id = $1::uuid").bind(a(0)).execute(pool).await);
            if r.rows_affected() == 0 {
                return Resp::error(500, "delete: no row returned (id not found)");
            }
            ok_affected(r.rows_affected())
        }
        RouteId::AlertsList => {
            type AlertRow =
                (String, String, String, String, String, String, String, Option<String>, Option<String>, String);
            let p = project!();
            let rows: Vec<AlertRow> = tryq!(
                sqlx::query_as(
                    "SELECT a.id::text, a.rule_id::text, a.project_id::text, a.status, a.message,
                            a.condition_snapshot::text, a.triggered_at::text, a.acknowledged_at::text,
                            a.resolved_at::text, r.name
                     FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
                     WHERE a.project_id = $1::uuid AND ($2::text IS NULL OR a.status = $2)
                     ORDER BY a.triggered_at DESC, a.id LIMIT 50"
                )
                .bind(&p)
                .bind(param(&q, "status"))
                .fetch_all(pool)
                .await
            );
            Resp::json(
                200,
                Value::Array(
                    rows.into_iter()
                        .map(|r| {
                            json!({"id":r.0,"rule_id":r.1,"project_id":r.2,"status":r.3,"message":r.4,
                                   "condition_snapshot":raw_json(Some(r.5)),"triggered_at":r.6,
                                   "acknowledged_at":r.7,"resolved_at":r.8,"rule_name":r.9})
                        })
                        .collect(),
                ),
            )
        }
        RouteId::AlertAcknowledge => {
            let r = tryq!(
                sqlx::query(
                    "UPDATE alerts SET status = 'acknowledged', acknowledged_at = now()
                     WHERE id = $1::uuid AND status = 'active'"
                )
                .bind(a(0))
                .execute(pool)
                .await
            );
            ok_affected(r.rows_affected())
        }
        RouteId::AlertResolve => {
            let r = tryq!(
                sqlx::query(
                    "UPDATE alerts SET status = 'resolved', resolved_at = now()
                     WHERE id = $1::uuid AND status IN ('active', 'acknowledged')"
                )
                .bind(a(0))
                .execute(pool)
                .await
            );
            ok_affected(r.rows_affected())
        }
        RouteId::SettingsGet => {
            let p = project!();
            let row: Option<(i32, f32)> = tryq!(
                sqlx::query_as("SELECT retention_days, sample_rate FROM projects WHERE id = $1::uuid")
                    .bind(&p)
                    .fetch_optional(pool)
                    .await
            );
            match row {
                None => Resp::error(404, "project not found"),
                Some((days, rate)) => {
                    // NaN and infinities have no JSON number: sent as strings (PostgreSQL's spelling).
                    let rate = serde_json::Number::from_f64(rate as f64).map(Value::Number).unwrap_or_else(|| {
                        json!(if rate.is_nan() {
                            "NaN"
                        } else if rate > 0.0 {
                            "Infinity"
                        } else {
                            "-Infinity"
                        })
                    });
                    Resp::json(200, json!({"retention_days":days,"sample_rate":rate}))
                }
            }
        }
        RouteId::SettingsUpdate => {
            app.faults.settings_update(body);
            let p = project!();
            let r = sqlx::query(
                "UPDATE projects SET retention_days = COALESCE((b ->> 'retention_days')::int, retention_days),
                        sample_rate = COALESCE((b ->> 'sample_rate')::real, sample_rate)
                 FROM (SELECT CASE WHEN jsonb_typeof(x) = 'object' THEN x ELSE '{}'::jsonb END AS b
                       FROM (SELECT $2::text::jsonb AS x) s0) s
                 WHERE id = $1::uuid",
            )
            .bind(&p)
            .bind(String::from_utf8_lossy(body).as_ref())
            .execute(pool)
            .await;
            match r {
                Ok(r) => ok_affected(r.rows_affected()),
                Err(e) => Resp::error(400, &pg_error_text(&e)),
            }
        }
        RouteId::Storage => {
            let p = project!();
            let n: i64 = tryq!(
                sqlx::query_scalar("SELECT count(*) FROM events WHERE project_id = $1::uuid")
                    .bind(&p)
                    .fetch_one(pool)
                    .await
            );
            Resp::json(200, json!({"event_count":n,"estimated_bytes":n * 1024}))
        }
    }
}

async fn event_detail(app: &App, id: &str) -> Resp {
    type Detail = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        String,
    );
    let row: Option<Detail> = match sqlx::query_as(
        "SELECT id::text, project_id::text, issue_id::text, level, message, fingerprint, exception::text,
                COALESCE(stacktrace, '[]'::jsonb)::text, COALESCE(breadcrumbs, '[]'::jsonb)::text, tags::text,
                extra::text, user_context::text, COALESCE(sdk_name, ''), COALESCE(sdk_version, ''), received_at::text
         FROM events WHERE id = $1::uuid ORDER BY received_at LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&app.pool)
    .await
    {
        Ok(r) => r,
        Err(e) => return db_err(e),
    };
    let Some(r) = row else {
        return Resp::error(404, "event not found");
    };
    let nav: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT n.id::text FROM events n WHERE n.issue_id = $1::uuid
                   AND (n.received_at, n.id) > ($2::timestamptz, $3::uuid) ORDER BY n.received_at, n.id LIMIT 1),
                (SELECT p.id::text FROM events p WHERE p.issue_id = $1::uuid
                   AND (p.received_at, p.id) < ($2::timestamptz, $3::uuid)
                   ORDER BY p.received_at DESC, p.id DESC LIMIT 1)",
    )
    .bind(&r.2)
    .bind(&r.14)
    .bind(&r.0)
    .fetch_one(&app.pool)
    .await
    .unwrap_or((None, None));
    Resp::json(
        200,
        json!({
            "event": {"id":r.0,"project_id":r.1,"issue_id":r.2,"level":r.3,"message":r.4,"fingerprint":r.5,
                      "exception":raw_json(r.6),"stacktrace":raw_json(Some(r.7)),"breadcrumbs":raw_json(Some(r.8)),
                      "tags":raw_json(Some(r.9)),"extra":raw_json(Some(r.10)),"user_context":raw_json(r.11),
                      "sdk_name":r.12,"sdk_version":r.13,"received_at":r.14},
            "navigation": {"next_id":nav.0,"prev_id":nav.1}
        }),
    )
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

/// Routes 1 and 2 (§2.5): count, auth, (bulk: sampling), rate limit, size, process.
async fn ingest_route(app: &App, head: Option<&[u8]>, fallback: &http::HeaderMap, body: &[u8], bulk: bool) -> Resp {
    app.load_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(key) = api_key(head, fallback) else {
        return Resp::error(401, "unauthorized");
    };
    let Some(project) = ingest::project_of_key(&app.pool, &key).await else {
        return Resp::error(401, "unauthorized");
    };
    if bulk && !ingest::keep_sample(&app.pool, &project).await {
        return Resp::json(202, json!({"status":"accepted"}));
    }
    if app.faults.first_rate_check_misread(&project) || app.limiter.limited(&project) {
        return Resp::error(429, "rate limited");
    }
    let max = if bulk { 5_242_880 } else { 1_048_576 };
    if code_points(body) > max {
        return Resp::error(400, "payload too large");
    }
    let events = match ingest::prepare(app, body, bulk) {
        Ok(e) => e,
        Err(msg) => return Resp::error(400, &msg),
    };
    match ingest::process(app, &project, events).await {
        Ok(_) => Resp::json(202, json!({"status":"accepted"})),
        Err(e) => db_err(e),
    }
}

/// Length in Unicode code points (bytes that do not continue a UTF-8 sequence).
pub fn code_points(b: &[u8]) -> usize {
    b.iter().filter(|&&c| (c & 0xC0) != 0x80).count()
}
