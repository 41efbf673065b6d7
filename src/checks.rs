//! The verification report's checks (`shared/seeds/`, left "for a human" there), made automatic.
//!
//! | check | what | passes when |
//! |---|---|---|
//! | `startup` | the startup lines of §1.5 appear, in order, within the timeout | only for a target the tool spawned; skipped otherwise |
//! | `health` | `GET /api/v1/projects/<uuid>/dashboard/health`, and by slug | 200 with integer `unresolved_count`, `events_24h`, `new_today` |
//! | `members` | `POST /api/v1/orgs/<org>/members` `{"user_id":…,"role":"admin"}` for a user not yet a member | 201 with an `id`, that row in `org_memberships` (sqlx), and `GET …/members` lists it |
//! | `websocket` | upgrade on `/ingest` and `/stream/projects/<uuid>` | 101 with a correct `Sec-WebSocket-Accept` |
//! | `ingest` | authenticated `POST /api/v1/events`: the seed report's `{"message":"test"}`, then a full event using every field of §4; an event answered 429 is sent again (up to 5 times: Mesher's limiter wrongly limits the first event, §6.1) | each is accepted (202, and stored) or kills the target; which one happened is reported with the exit code / signal, the 429s as evidence |
//!
//! `ingest` runs last because it may kill the target.

use crate::api::{Route, RouteId, WsPath};
use crate::db::Fixtures;
use crate::drive::http::{ExchangeError, Response, exchange};
use crate::watch::{ExitInfo, TargetProcess};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The checks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CheckName {
    /// (a) the startup lines appear in order (only for a target the tool spawned).
    Startup,
    /// (b) `GET …/dashboard/health` → 200 with unresolved_count, events_24h, new_today.
    Health,
    /// (c) `POST /api/v1/orgs/:org/members` → 201 with an id, and the row is in org_memberships.
    Members,
    /// (d) WebSocket upgrade on /ingest and /stream/projects/:id → 101 with a correct accept.
    Websocket,
    /// (e) an authenticated `POST /api/v1/events` is accepted or kills the target (reported).
    Ingest,
}

impl CheckName {
    pub const ALL: [CheckName; 5] =
        [CheckName::Startup, CheckName::Health, CheckName::Members, CheckName::Websocket, CheckName::Ingest];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Startup => "startup",
            CheckName::Health => "health",
            CheckName::Members => "members",
            CheckName::Websocket => "websocket",
            CheckName::Ingest => "ingest",
        }
    }
}

/// Mesher's startup lines on stdout (§1.5, standalone mode), in order. The two `[mesh-rt] …
/// listening on` lines go to stderr from other threads and may interleave; they are checked for
/// presence after their `starting on` line.
pub const MESHER_STARTUP_LINES: &[&str] = &[
    "[Mesher] Connecting to PostgreSQL...",
    "[Mesher] Running in standalone mode (no distribution)",
    "[Mesher] Partitions created (7 days ahead)",
    "[Mesher] OrgService started",
    "[Mesher] ProjectService started",
    "[Mesher] UserService started",
    "[Mesher] StreamManager started",
    "[Mesher] StreamManager drain ticker started (250ms interval)",
    "[Mesher] RateLimiter started (60s window, 1000 max)",
    "[Mesher] EventProcessor started",
    "[Mesher] StorageWriter started (default project)",
    "[Mesher] Running in standalone mode (skipping global registration)",
    "[Mesher] PipelineRegistry started and registered",
    "[Mesher] Health checker started (10s interval)",
    "[Mesher] Spike checker started (5 min interval)",
    "[Mesher] Alert evaluator started (30s interval)",
    "[Mesher] Retention cleaner started (24h interval)",
    "[Mesher] Load monitor started (5s interval, threshold: 100 events)",
    "[Mesher] Foundation ready",
    "[Mesher] WebSocket server starting on :",
    "[Mesher] HTTP server starting on :",
];

/// The stderr readiness lines.
pub const MESHER_LISTENING_LINES: &[&str] =
    &["[mesh-rt] WebSocket server listening on ", "[mesh-rt] HTTP server listening on "];

/// A full event exercising every field of §4 (a third-party frame without column information
/// and a user context with an e-mail, as real SDKs send).
pub const FULL_EVENT: &str = r#"{"message":"TypeError: x is undefined at 0x7ffd","level":"error","exception":{"type_name":"TypeError","value":"x is undefined","module_name":"app"},"stacktrace":[{"filename":"app.js","function_name":"main","lineno":10,"colno":5,"context_line":"x()","in_app":true},{"filename":"node_modules/lib/index.js","function_name":"dispatch","lineno":1,"colno":0,"context_line":"","in_app":false}],"breadcrumbs":[{"timestamp":"2026-02-17T00:00:00Z","category":"nav","message":"/home","level":"info","data":"{}"}],"tags":{"environment":"production","release":"1.0.0"},"extra":{"k":"v"},"user_context":{"id":"u1","email":"u1@example.test"},"sdk_name":"mesher-js","sdk_version":"0.1.0"}"#;

/// How often the `ingest` check sends an event again that was answered 429.
pub const INGEST_429_ATTEMPTS: usize = 5;

/// The seed report's event body.
pub const MINIMAL_EVENT: &str = r#"{"message":"test"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// The outcome of one check, with its evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: CheckName,
    pub status: Status,
    /// One line: what was seen.
    pub summary: String,
    /// Requests, statuses, bodies, log lines, SQL results.
    pub evidence: Vec<String>,
    pub millis: u64,
    /// Set when the target died during the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<ExitInfo>,
}

/// What the checks run against.
pub struct CheckContext<'a> {
    pub http: SocketAddr,
    /// None when the target announced no WebSocket listener.
    pub ws: Option<SocketAddr>,
    pub fixtures: &'a Fixtures,
    pub pool: &'a PgPool,
    /// The target process when the tool spawned it.
    pub process: Option<&'a TargetProcess>,
    pub startup_lines: &'a [String],
    pub startup_timeout: Duration,
    pub request_timeout: Duration,
}

/// Run `which` (empty = all) in their fixed order.
pub async fn run_checks(ctx: &CheckContext<'_>, which: &[CheckName]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for name in CheckName::ALL {
        if !which.is_empty() && !which.contains(&name) {
            continue;
        }
        let t = Instant::now();
        let mut r = match name {
            CheckName::Startup => check_startup(ctx).await,
            CheckName::Health => check_health(ctx).await,
            CheckName::Members => check_members(ctx).await,
            CheckName::Websocket => check_websocket(ctx).await,
            CheckName::Ingest => check_ingest(ctx).await,
        };
        r.millis = t.elapsed().as_millis() as u64;
        out.push(r);
    }
    out
}

fn result(name: CheckName, status: Status, summary: impl Into<String>, evidence: Vec<String>) -> CheckResult {
    CheckResult { name, status, summary: summary.into(), evidence, millis: 0, crash: None }
}

async fn check_startup(ctx: &CheckContext<'_>) -> CheckResult {
    let name = CheckName::Startup;
    let Some(proc) = ctx.process else {
        return result(
            name,
            Status::Skip,
            "target not spawned by mesher-stress: its startup lines are not visible",
            vec![],
        );
    };
    let mut evidence = Vec::new();
    let mut last_at = Duration::ZERO;
    let mut last_index = None;
    for want in ctx.startup_lines {
        let seen = proc.wait_for_line(|l| l.text.starts_with(want.as_str()), ctx.startup_timeout).await;
        match seen {
            Some(l) => {
                let all = proc.lines();
                let idx = all.iter().position(|x| x.text == l.text && x.at == l.at);
                if let (Some(prev), Some(i)) = (last_index, idx)
                    && i < prev
                {
                    evidence.push(format!("out of order: {:?} at {:?}", l.text, l.at));
                    return result(
                        name,
                        Status::Fail,
                        format!("line {want:?} appeared before the previous one"),
                        evidence,
                    );
                }
                last_index = idx;
                last_at = l.at;
                evidence.push(format!("{:>6} ms  {}", l.at.as_millis(), l.text));
            }
            None => {
                let why = match proc.exited() {
                    Some(e) => format!("target {} before printing it", e.describe()),
                    None => format!("not seen within {:?}", ctx.startup_timeout),
                };
                evidence.extend(proc.log_tail(20).into_iter().map(|l| format!("log: {}", l.text)));
                return result(name, Status::Fail, format!("missing startup line {want:?}: {why}"), evidence);
            }
        }
    }
    result(
        name,
        Status::Pass,
        format!("{} startup lines in order within {} ms", ctx.startup_lines.len(), last_at.as_millis()),
        evidence,
    )
}

async fn check_health(ctx: &CheckContext<'_>) -> CheckResult {
    let name = CheckName::Health;
    let route = Route::get(RouteId::DashboardHealth);
    let mut evidence = Vec::new();
    for project in [ctx.fixtures.project_id.as_str(), ctx.fixtures.project_slug.as_str()] {
        let path = route.path(&[project]);
        let resp = match exchange(ctx.http, "GET", &path, &[], Vec::new(), ctx.request_timeout).await {
            Ok(r) => r,
            Err(e) => return result(name, Status::Fail, format!("GET {path}: {e}"), evidence),
        };
        evidence.push(format!("GET {path} → {} {}", resp.status, resp.body_text(300)));
        if resp.status != 200 {
            return result(name, Status::Fail, format!("GET {path} answered {} (want 200)", resp.status), evidence);
        }
        let json: serde_json::Value = match serde_json::from_slice(&resp.body) {
            Ok(j) => j,
            Err(e) => return result(name, Status::Fail, format!("GET {path}: body is not JSON ({e})"), evidence),
        };
        for field in ["unresolved_count", "events_24h", "new_today"] {
            if !json.get(field).is_some_and(|v| v.is_u64()) {
                return result(name, Status::Fail, format!("GET {path}: no integer field {field:?}"), evidence);
            }
        }
    }
    result(name, Status::Pass, "200 with unresolved_count, events_24h, new_today (by UUID and by slug)", evidence)
}

async fn check_members(ctx: &CheckContext<'_>) -> CheckResult {
    let name = CheckName::Members;
    let f = ctx.fixtures;
    let mut evidence = Vec::new();
    // A fixture user who is not a member yet (works on repeated runs against the same database).
    let user: Option<String> = match sqlx::query_scalar(
        "SELECT u::text FROM unnest($1::text[]) WITH ORDINALITY AS t(u, ord)
         WHERE NOT EXISTS (SELECT 1 FROM org_memberships m WHERE m.user_id = u::uuid AND m.org_id = $2::uuid)
           AND EXISTS (SELECT 1 FROM users WHERE id = u::uuid)
         ORDER BY ord LIMIT 1",
    )
    .bind(&f.users)
    .bind(&f.org_id)
    .fetch_optional(ctx.pool)
    .await
    {
        Ok(u) => u,
        Err(e) => return result(name, Status::Fail, format!("database query failed: {e}"), evidence),
    };
    let Some(user) = user else {
        return result(
            name,
            Status::Fail,
            "every fixture user is already a member: re-seed with `db seed --reset`",
            evidence,
        );
    };
    let path = Route::get(RouteId::MembersAdd).path(&[&f.org_id]);
    let body = serde_json::json!({ "user_id": user, "role": "admin" }).to_string();
    let headers = [("Content-Type", "application/json")];
    let resp = match exchange(ctx.http, "POST", &path, &headers, body.clone().into_bytes(), ctx.request_timeout).await {
        Ok(r) => r,
        Err(e) => return result(name, Status::Fail, format!("POST {path}: {e}"), evidence),
    };
    evidence.push(format!("POST {path} {body} → {} {}", resp.status, resp.body_text(300)));
    if resp.status != 201 {
        return result(name, Status::Fail, format!("answered {} (want 201)", resp.status), evidence);
    }
    let Some(id) = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|j| j.get("id")?.as_str().map(String::from))
    else {
        return result(name, Status::Fail, "201 without a string \"id\"", evidence);
    };
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT user_id::text, org_id::text, role FROM org_memberships WHERE id::text = $1")
            .bind(&id)
            .fetch_optional(ctx.pool)
            .await
            .unwrap_or(None);
    match &row {
        Some((u, o, r)) if *u == user && *o == f.org_id && r == "admin" => {
            evidence.push(format!("org_memberships row {id}: user {u}, org {o}, role {r}"))
        }
        Some(r) => {
            evidence.push(format!("org_memberships row {id}: {r:?}"));
            return result(name, Status::Fail, "the row does not hold what was posted", evidence);
        }
        None => return result(name, Status::Fail, format!("no row {id} in org_memberships"), evidence),
    }
    let list_path = Route::get(RouteId::MembersList).path(&[&f.org_id]);
    match exchange(ctx.http, "GET", &list_path, &[], Vec::new(), ctx.request_timeout).await {
        Ok(r) if r.status == 200 && String::from_utf8_lossy(&r.body).contains(&id) => {
            evidence.push(format!("GET {list_path} → 200, lists {id}"))
        }
        Ok(r) => {
            evidence.push(format!("GET {list_path} → {} {}", r.status, r.body_text(300)));
            return result(name, Status::Fail, "the new membership is not listed", evidence);
        }
        Err(e) => return result(name, Status::Fail, format!("GET {list_path}: {e}"), evidence),
    }
    result(name, Status::Pass, format!("201 with id {id}; row in org_memberships; listed"), evidence)
}

async fn check_websocket(ctx: &CheckContext<'_>) -> CheckResult {
    let name = CheckName::Websocket;
    let mut evidence = Vec::new();
    let key = crate::wire::ws::SAMPLE_KEY;
    let want = crate::wire::ws::accept_key(key);
    let Some(ws) = ctx.ws else {
        return result(
            name,
            Status::Fail,
            "the target has no WebSocket listener (none announced, none configured)",
            evidence,
        );
    };
    for path in [WsPath::Ingest.path(""), WsPath::Stream.path(&ctx.fixtures.project_id)] {
        let headers = [
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", key),
        ];
        let resp = match exchange(ws, "GET", &path, &headers, Vec::new(), ctx.request_timeout).await {
            Ok(r) => r,
            Err(e) => return result(name, Status::Fail, format!("upgrade {path}: {e}"), evidence),
        };
        let accept = resp.header("sec-websocket-accept").unwrap_or_default();
        evidence.push(format!("GET {path} (Upgrade) → {} Sec-WebSocket-Accept: {accept}", resp.status));
        if resp.status != 101 {
            return result(name, Status::Fail, format!("{path}: answered {} (want 101)", resp.status), evidence);
        }
        if accept != want {
            return result(
                name,
                Status::Fail,
                format!("{path}: Sec-WebSocket-Accept {accept:?}, want {want:?}"),
                evidence,
            );
        }
    }
    result(name, Status::Pass, "101 with a correct Sec-WebSocket-Accept on /ingest and /stream/projects/<id>", evidence)
}

async fn check_ingest(ctx: &CheckContext<'_>) -> CheckResult {
    let name = CheckName::Ingest;
    let path = Route::get(RouteId::EventsIngest).path(&[]);
    let key = ctx.fixtures.api_key().to_string();
    let mut evidence = Vec::new();
    let mut accepted = 0;
    // Counted over both events: the retry budget is the check's, not each event's.
    let mut attempts_429 = 0;
    for (label, body) in [("minimal", MINIMAL_EVENT), ("full", FULL_EVENT)] {
        let before = project_event_count(ctx).await;
        let event = IngestEvent { path: &path, key: &key, label, body };
        match send_event(ctx, &event, &mut attempts_429, &mut evidence).await {
            Ok(r) if r.status == 202 => {
                evidence.push(format!("POST {path} ({label} event) → 202 {}", r.body_text(200)));
                if let Err(summary) = await_stored(ctx, label, before, &mut evidence).await {
                    return result(name, Status::Fail, summary, evidence);
                }
                accepted += 1;
            }
            other => return not_accepted(ctx, &event, other, evidence).await,
        }
    }
    result(name, Status::Pass, format!("{accepted} events accepted (202) and stored; the target survived"), evidence)
}

/// One event of the `ingest` check and where it goes.
struct IngestEvent<'a> {
    path: &'a str,
    key: &'a str,
    label: &'a str,
    body: &'a str,
}

/// The project's stored events (-1 when the database cannot say).
async fn project_event_count(ctx: &CheckContext<'_>) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE project_id = $1::uuid")
        .bind(&ctx.fixtures.project_id)
        .fetch_one(ctx.pool)
        .await
        .unwrap_or(-1)
}

/// POST the event, sending it again while it is answered 429 (within the check's budget).
async fn send_event(
    ctx: &CheckContext<'_>,
    event: &IngestEvent<'_>,
    attempts_429: &mut usize,
    evidence: &mut Vec<String>,
) -> Result<Response, ExchangeError> {
    let IngestEvent { path, key, label, body } = *event;
    let headers = [("x-sentry-auth", key), ("Content-Type", "application/json")];
    loop {
        let sent = exchange(ctx.http, "POST", path, &headers, body.as_bytes().to_vec(), ctx.request_timeout).await;
        // 429 is neither accepted nor fatal: Mesher's rate limiter wrongly limits the first
        // event (§6.1) and the process may die on the next one, so the event is sent again
        // a few times (the 429s are kept as evidence) unless the 429 was the last answer
        // of a dying target.
        let Ok(r) = &sent else { return sent };
        if r.status != 429 || *attempts_429 >= INGEST_429_ATTEMPTS {
            return sent;
        }
        *attempts_429 += 1;
        evidence.push(format!(
            "POST {path} ({label} event) → 429 {} (attempt {attempts_429}; sent again)",
            r.body_text(200)
        ));
        if let Some(p) = ctx.process
            && p.wait_exit(Duration::from_millis(300)).await.is_some()
        {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until the project has more than `before` events; the error is the check's summary.
async fn await_stored(
    ctx: &CheckContext<'_>,
    label: &str,
    before: i64,
    evidence: &mut Vec<String>,
) -> Result<(), String> {
    // Accepted means stored: allow Mesher's flush delay.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = project_event_count(ctx).await;
        if now > before {
            evidence.push(format!("events for the project: {before} → {now}"));
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{label} event answered 202 but not stored within 5 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The verdict on an event that was not accepted: it passes only if the target died of it.
async fn not_accepted(
    ctx: &CheckContext<'_>,
    event: &IngestEvent<'_>,
    sent: Result<Response, ExchangeError>,
    mut evidence: Vec<String>,
) -> CheckResult {
    let name = CheckName::Ingest;
    let IngestEvent { path, label, .. } = *event;
    let what = match &sent {
        Ok(r) => format!("{} {}", r.status, r.body_text(200)),
        Err(e) => e.to_string(),
    };
    evidence.push(format!("POST {path} ({label} event) → {what}"));
    if let Some(p) = ctx.process {
        if let Some(exit) = p.wait_exit(Duration::from_secs(3)).await {
            evidence.extend(p.log_tail(5).into_iter().map(|l| format!("log: {}", l.text)));
            let mut r = result(
                name,
                Status::Pass,
                format!("the {label} event killed the target: {}", exit.describe()),
                evidence,
            );
            r.crash = Some(exit);
            return r;
        }
    } else if matches!(&sent, Err(ExchangeError::NoResponse(_)))
        && matches!(
            exchange(ctx.http, "GET", "/", &[], Vec::new(), ctx.request_timeout).await,
            Err(ExchangeError::Connect(_))
        )
    {
        return result(
            name,
            Status::Pass,
            format!(
                "the {label} event got no answer and the target stopped accepting connections (died; exit status unknown: not spawned by mesher-stress)"
            ),
            evidence,
        );
    }
    result(name, Status::Fail, format!("the {label} event was neither accepted nor fatal: {what}"), evidence)
}
