//! Event ingestion as Mesher *intends* it (`docs/mesher-interface.md` §2.3, §2.5 #1/#2, §4): validation,
//! grouping (fingerprint), issue upsert, the batching storage writer, the per-project rate limiter
//! and the sampling decision. HTTP (`routes.rs`) and WebSocket (`ws.rs`) ingestion both call
//! [`process`].
//!
//! Where to change what: grouping rules → [`fingerprint`]; what counts as a valid event →
//! [`validate`]; batching/flush policy → [`Writer`] (`BATCH`, `FLUSH_EVERY`).

use super::App;
use super::cache::Generation;
use anyhow::Result;
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Valid `level` values (Mesher's never-called validation helper, §6.3 F10).
pub const LEVELS: [&str; 5] = ["fatal", "error", "warning", "info", "debug"];
/// At most this many events in one bulk array.
pub const BULK_MAX: usize = 100;

/// The fingerprint of an event, exactly per §4 "Grouping".
pub fn fingerprint(ev: &Map<String, Value>) -> String {
    let clean = |s: &str| s.replace("0x", "").to_lowercase();
    let message = ev.get("message").map(text_form).unwrap_or_default();
    if let Some(fp) = ev.get("fingerprint").map(text_form)
        && !fp.is_empty()
    {
        return fp;
    }
    if let Some(frames) = ev.get("stacktrace").and_then(Value::as_array)
        && !frames.is_empty()
    {
        let parts: Vec<String> = frames
            .iter()
            .filter_map(|f| {
                let file = f.get("filename").filter(|v| !v.is_null()).map(text_form)?;
                let func = f.get("function_name").filter(|v| !v.is_null()).map(text_form)?;
                Some(format!("{file}|{func}"))
            })
            .collect();
        if parts.is_empty() {
            return String::new();
        }
        return format!("{}:{}", parts.join(";"), clean(&message));
    }
    if let Some(exc) = ev.get("exception")
        && let Some(t) = exc.get("type_name").filter(|v| !v.is_null())
    {
        let value = exc.get("value").map(text_form).unwrap_or_default();
        return format!("{}:{}", text_form(t), clean(&value));
    }
    format!("msg:{}", clean(&message))
}

/// Fingerprints longer than this many bytes are stored as `sha1:<hex>` of the fingerprint:
/// PostgreSQL's btree indexes on `fingerprint` reject entries above ~2.7 kB.
pub const MAX_FINGERPRINT: usize = 1024;

/// [`fingerprint`] made storable (see [`MAX_FINGERPRINT`]).
pub fn storable_fingerprint(fp: String) -> String {
    if fp.len() <= MAX_FINGERPRINT { fp } else { format!("sha1:{}", sha1_smol::Sha1::from(&fp).digest()) }
}

/// PostgreSQL's `->>` text form: strings unquoted, null → empty, anything else its JSON text.
pub fn text_form(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One validated event, ready to be grouped and stored.
#[derive(Debug, Clone)]
pub struct Event {
    pub body: Value,
    pub level: String,
    pub message: String,
    pub fingerprint: String,
}

fn check_value(v: &Value, depth: usize) -> Result<(), String> {
    if depth > 128 {
        return Err("nested too deeply".into());
    }
    match v {
        Value::String(s) if s.contains('\0') => Err("NUL character in a string".into()),
        Value::Number(n) => {
            // jsonb's numeric cannot hold arbitrary exponents; keep numbers PostgreSQL accepts.
            let t = n.to_string();
            let exp = t.split(['e', 'E']).nth(1).and_then(|e| e.parse::<i64>().ok()).unwrap_or(0);
            if t.len() > 1000 || exp.abs() > 1000 { Err(format!("number out of range: {t:.40}")) } else { Ok(()) }
        }
        Value::Array(a) => a.iter().try_for_each(|x| check_value(x, depth + 1)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            if k.contains('\0') {
                return Err("NUL character in a key".to_string());
            }
            check_value(x, depth + 1)
        }),
        _ => Ok(()),
    }
}

/// Validate one event object (intended validation, §6.3 F10): `message` a string (required),
/// `level` one of [`LEVELS`] (absent/null → `error`), typed optional fields, no NUL characters,
/// numbers PostgreSQL's jsonb can store.
pub fn validate(v: Value) -> Result<Event, String> {
    let Value::Object(o) = &v else {
        return Err("event must be a JSON object".into());
    };
    let message = match o.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("message must be a string".into()),
        None => return Err("message is required".into()),
    };
    let level = match o.get("level") {
        None | Some(Value::Null) => "error".to_string(),
        Some(Value::String(s)) if LEVELS.contains(&s.as_str()) => s.clone(),
        Some(other) => return Err(format!("level must be one of {}, got {}", LEVELS.join("|"), other)),
    };
    let typed = |k: &str, ok: fn(&Value) -> bool, what: &str| -> Result<(), String> {
        match o.get(k) {
            Some(x) if !x.is_null() && !ok(x) => Err(format!("{k} must be {what}")),
            _ => Ok(()),
        }
    };
    typed("stacktrace", Value::is_array, "an array")?;
    typed("breadcrumbs", Value::is_array, "an array")?;
    typed("exception", Value::is_object, "an object")?;
    typed("tags", Value::is_object, "an object")?;
    typed("extra", Value::is_object, "an object")?;
    typed("user_context", Value::is_object, "an object")?;
    typed("sdk_name", Value::is_string, "a string")?;
    typed("sdk_version", Value::is_string, "a string")?;
    check_value(&v, 0)?;
    let fingerprint = storable_fingerprint(fingerprint(o));
    Ok(Event { level, message, fingerprint, body: v })
}

/// Parse an ingestion body into events: one object, or (bulk only) an array of 1..=100 objects.
pub fn parse_events(body: &[u8], bulk: bool) -> Result<Vec<Value>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    match v {
        Value::Array(items) if bulk => {
            if items.is_empty() || items.len() > BULK_MAX {
                return Err(format!("bulk body must hold 1..={BULK_MAX} events, got {}", items.len()));
            }
            Ok(items)
        }
        other => Ok(vec![other]),
    }
}

/// What became of one event: grouped into an issue, or discarded by its issue's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Accepted { issue_id: String },
    Discarded,
}

/// Group and persist validated events of `project` (a UUID text), then broadcast.
/// Returns per event the outcome; an `Err` is a database error (500).
pub async fn process(app: &App, project: &str, events: Vec<Event>) -> Result<Vec<Fate>, sqlx::Error> {
    app.generation.bump();
    let r = process_events(app, project, events).await;
    app.generation.bump();
    r
}

async fn process_events(app: &App, project: &str, events: Vec<Event>) -> Result<Vec<Fate>, sqlx::Error> {
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        let title = if ev.message.is_empty() { "Untitled".to_string() } else { ev.message.clone() };
        let row: Option<(String, bool)> = sqlx::query_as(
            "INSERT INTO issues (project_id, fingerprint, title, level, event_count) VALUES ($1::uuid, $2, $3, $4, 1)
             ON CONFLICT (project_id, fingerprint) DO UPDATE SET event_count = issues.event_count + 1,
               last_seen = now(),
               status = CASE WHEN issues.status = 'resolved' THEN 'unresolved' ELSE issues.status END
             WHERE issues.status <> 'discarded'
             RETURNING id::text, (xmax = 0) AS inserted",
        )
        .bind(project)
        .bind(&ev.fingerprint)
        .bind(&title)
        .bind(&ev.level)
        .fetch_optional(&app.pool)
        .await?;
        match row {
            None => {
                app.hub.broadcast_event(project, "discarded", &ev.body);
                out.push(Fate::Discarded);
            }
            Some((issue_id, inserted)) => {
                app.writer.store(project, &issue_id, &ev).await;
                app.hub.broadcast_event(project, &issue_id, &ev.body);
                if app.hub.has_room(project)
                    && let Ok(n) = sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM issues WHERE project_id = $1::uuid AND status = 'unresolved'",
                    )
                    .bind(project)
                    .fetch_one(&app.pool)
                    .await
                {
                    app.hub.broadcast(project, json!({"type":"issue_count","project_id":project,"count":n}));
                }
                if inserted {
                    super::alerts::on_new_issue(app, project, &issue_id, &title).await;
                }
                out.push(Fate::Accepted { issue_id });
            }
        }
    }
    Ok(out)
}

/// Look up the project of a live API key. `None` = unauthorized (also on database errors, like
/// Mesher, §2.3 step 4).
pub async fn project_of_key(pool: &PgPool, key: &str) -> Option<String> {
    sqlx::query_scalar("SELECT project_id::text FROM api_keys WHERE key_value = $1 AND revoked_at IS NULL LIMIT 1")
        .bind(key)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
}

/// Bulk sampling (§2.3): keep iff `random() < sample_rate`; kept when the query fails.
pub async fn keep_sample(pool: &PgPool, project: &str) -> bool {
    sqlx::query_scalar::<_, Option<bool>>("SELECT random() < sample_rate FROM projects WHERE id = $1::uuid")
        .bind(project)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
        .flatten()
        .unwrap_or(true)
}

/// Fixed-window rate limiter per project (intended: the window really resets, §6.3 F7).
pub struct RateLimiter {
    max: u32,
    window: Duration,
    state: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        RateLimiter { max, window, state: Mutex::new(HashMap::new()) }
    }

    /// Count one check; true when the project is over its budget for the current window.
    pub fn limited(&self, project: &str) -> bool {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let e = st.entry(project.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= self.window {
            *e = (now, 0);
        }
        if e.1 >= self.max {
            return true;
        }
        e.1 += 1;
        false
    }
}

/// One row for `events`.
#[derive(Debug)]
struct Row {
    project: String,
    issue: String,
    level: String,
    message: String,
    fingerprint: String,
    exception: Option<String>,
    stacktrace: Option<String>,
    breadcrumbs: Option<String>,
    tags: String,
    extra: String,
    user_context: Option<String>,
    sdk_name: Option<String>,
    sdk_version: Option<String>,
}

enum Msg {
    Row(Box<Row>),
    Flush(oneshot::Sender<()>),
}

/// The storage writer: a task inserting events in batches (up to [`Writer::BATCH`] rows, at the
/// latest [`Writer::FLUSH_EVERY`] after the first buffered row). Rows handed to [`Writer::store`]
/// are never dropped on purpose: failed batches are retried (partitions re-ensured) and finally
/// inserted row by row; only a row PostgreSQL rejects on its own is dropped, with a log line.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
}

impl Writer {
    pub const BATCH: usize = 50;
    pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

    /// Start the writer task. It ends (after a final flush) when every `Writer` clone is dropped.
    pub fn start(pool: PgPool, generation: Arc<Generation>) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(65536);
        let h = tokio::spawn(writer_task(pool, generation, rx));
        (Writer { tx }, h)
    }

    async fn store(&self, project: &str, issue: &str, ev: &Event) {
        let o = ev.body.as_object();
        let get = |k: &str| o.and_then(|o| o.get(k)).filter(|v| !v.is_null());
        let row = Row {
            project: project.to_string(),
            issue: issue.to_string(),
            level: ev.level.clone(),
            message: ev.message.clone(),
            fingerprint: ev.fingerprint.clone(),
            exception: get("exception").map(Value::to_string),
            stacktrace: get("stacktrace").map(Value::to_string),
            breadcrumbs: get("breadcrumbs").map(Value::to_string),
            tags: get("tags").map(Value::to_string).unwrap_or_else(|| "{}".into()),
            extra: get("extra").map(Value::to_string).unwrap_or_else(|| "{}".into()),
            user_context: get("user_context").map(Value::to_string),
            sdk_name: get("sdk_name").map(text_form),
            sdk_version: get("sdk_version").map(text_form),
        };
        // The writer lives as long as any Writer clone: send only fails after a bug.
        if self.tx.send(Msg::Row(Box::new(row))).await.is_err() {
            eprintln!("[StorageWriter] writer task gone; event lost");
        }
    }

    /// Wait until everything stored so far is in the database.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn writer_task(pool: PgPool, generation: Arc<Generation>, mut rx: mpsc::Receiver<Msg>) {
    let mut buf: Vec<Row> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let msg = if buf.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(Writer::FLUSH_EVERY, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    insert_batch(&pool, &generation, std::mem::take(&mut buf)).await;
                    continue;
                }
            }
        };
        match msg {
            None => break,
            Some(Msg::Row(r)) => {
                buf.push(*r);
                // Take whatever is already queued without waiting.
                while buf.len() < Writer::BATCH * 10 {
                    match rx.try_recv() {
                        Ok(Msg::Row(r)) => buf.push(*r),
                        Ok(Msg::Flush(w)) => waiters.push(w),
                        Err(_) => break,
                    }
                }
                if buf.len() >= Writer::BATCH || !waiters.is_empty() {
                    insert_batch(&pool, &generation, std::mem::take(&mut buf)).await;
                    waiters.drain(..).for_each(|w| {
                        let _ = w.send(());
                    });
                }
            }
            Some(Msg::Flush(w)) => {
                if !buf.is_empty() {
                    insert_batch(&pool, &generation, std::mem::take(&mut buf)).await;
                }
                let _ = w.send(());
            }
        }
    }
    if !buf.is_empty() {
        insert_batch(&pool, &generation, buf).await;
    }
    waiters.drain(..).for_each(|w| {
        let _ = w.send(());
    });
}

const INSERT_SQL: &str = "INSERT INTO events (project_id, issue_id, level, message, fingerprint, exception, stacktrace,
    breadcrumbs, tags, extra, user_context, sdk_name, sdk_version)
  SELECT p::uuid, i::uuid, l, m, f, e::jsonb, s::jsonb, b::jsonb, t::jsonb, x::jsonb, u::jsonb, sn, sv
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
       AS r(p, i, l, m, f, e, s, b, t, x, u, sn, sv)";

async fn try_insert(pool: &PgPool, rows: &[Row]) -> Result<(), sqlx::Error> {
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query(INSERT_SQL)
        .bind(col!(project))
        .bind(col!(issue))
        .bind(col!(level))
        .bind(col!(message))
        .bind(col!(fingerprint))
        .bind(col!(exception))
        .bind(col!(stacktrace))
        .bind(col!(breadcrumbs))
        .bind(col!(tags))
        .bind(col!(extra))
        .bind(col!(user_context))
        .bind(col!(sdk_name))
        .bind(col!(sdk_version))
        .execute(pool)
        .await
        .map(|_| ())
}

fn is_data_error(e: &sqlx::Error) -> bool {
    // SQLSTATE classes 22 (data exception) and 23 (integrity): retrying cannot help.
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
}

/// Insert a batch, bumping the write generation around it (the read cache's freshness rule).
async fn insert_batch(pool: &PgPool, generation: &Generation, rows: Vec<Row>) {
    generation.bump();
    insert_rows(pool, rows).await;
    generation.bump();
}

async fn insert_rows(pool: &PgPool, rows: Vec<Row>) {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        match try_insert(pool, &rows).await {
            Ok(()) => return,
            Err(e) if is_data_error(&e) => break,
            Err(e) => {
                attempt += 1;
                let msg = e.to_string();
                if msg.contains("no partition") {
                    let _ = super::ensure_partitions(pool).await;
                }
                eprintln!("[StorageWriter] batch of {} events failed (attempt {attempt}): {msg}; retrying", rows.len());
                if attempt >= 3 && msg.contains("no partition") {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    // Row by row: keep every row PostgreSQL accepts.
    for r in rows {
        if let Err(e) = try_insert(pool, std::slice::from_ref(&r)).await {
            eprintln!("[StorageWriter] Dropping event for project {} (issue {}): {e}", r.project, r.issue);
        }
    }
}

/// Resolve an ingestion body (already authenticated and rate-limited) into events: parse,
/// planted `service-reply-abi` check, validate. `Err` is the 400 message.
pub fn prepare(app: &App, body: &[u8], bulk: bool) -> Result<Vec<Event>, String> {
    let items = parse_events(body, bulk)?;
    if app.faults.service_reply_abi && items.iter().any(crate::reference::faults::is_service_reply_abi_trigger) {
        crate::reference::faults::service_reply_abi_crash();
    }
    items.into_iter().map(validate).collect::<Result<Vec<_>, _>>().map_err(|e| format!("invalid event: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(s: &str) -> String {
        fingerprint(serde_json::from_str::<Value>(s).unwrap().as_object().unwrap())
    }

    #[test]
    fn grouping_follows_the_spec() {
        assert_eq!(fp(r#"{"fingerprint":"Custom","message":"x"}"#), "Custom");
        assert_eq!(fp(r#"{"fingerprint":12,"message":"x"}"#), "12");
        assert_eq!(fp(r#"{"fingerprint":"","message":"Boom 0xAB"}"#), "msg:boom ab");
        assert_eq!(
            fp(r#"{"message":"TypeError at 0x7FFD","stacktrace":[{"filename":"a.js","function_name":"f","lineno":3},
                   {"filename":"b.js"},{"filename":"c.js","function_name":"g"}]}"#),
            "a.js|f;c.js|g:typeerror at 7ffd"
        );
        assert_eq!(fp(r#"{"message":"m","stacktrace":[{"filename":"a.js"}]}"#), "");
        assert_eq!(fp(r#"{"message":"m","stacktrace":[],"exception":{"type_name":"E","value":"V 0X1"}}"#), "E:v 0x1");
        assert_eq!(fp(r#"{"message":"Hello"}"#), "msg:hello");
        assert_eq!(fp(r#"{}"#), "msg:");
    }

    #[test]
    fn validation() {
        let ok = |s: &str| validate(serde_json::from_str(s).unwrap());
        assert!(ok(r#"{"message":"m"}"#).is_ok());
        assert_eq!(ok(r#"{"message":"m"}"#).unwrap().level, "error");
        assert!(ok(r#"{"message":"m","level":"warning"}"#).is_ok());
        assert!(ok(r#"{"message":"m","level":"loud"}"#).is_err());
        assert!(ok(r#"{"level":"info"}"#).is_err());
        assert!(ok(r#"{"message":"a\u0000b"}"#).is_err());
        assert!(ok(r#"{"message":"m","extra":{"n":1e999999}}"#).is_err());
        assert!(ok(r#"{"message":"m","tags":[1]}"#).is_err());
        assert!(ok(r#"[1]"#).is_err());
    }

    #[test]
    fn limiter_window_resets() {
        let l = RateLimiter::new(2, Duration::from_millis(50));
        assert!(!l.limited("p"));
        assert!(!l.limited("p"));
        assert!(l.limited("p"));
        assert!(!l.limited("q"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!l.limited("p"));
    }
}
