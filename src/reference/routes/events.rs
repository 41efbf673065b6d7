//! Event routes: ingestion (1, 2), search (4), tag filter (5), detail (13).

use super::{Answer, Req, Resp, api_key, code_points, json_array, raw_json};
use crate::reference::ingest;
use serde_json::json;

/// Routes 1 and 2 (§2.5): count, auth, (bulk: sampling), rate limit, size, process.
pub(super) async fn ingest_route(r: &Req<'_>, bulk: bool) -> Answer {
    let app = r.app;
    app.load_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(key) = api_key(r.head, r.headers) else {
        return Ok(Resp::error(401, "unauthorized"));
    };
    let Some(project) = ingest::project_of_key(&app.pool, &key).await else {
        return Ok(Resp::error(401, "unauthorized"));
    };
    if bulk && !ingest::keep_sample(&app.pool, &project).await {
        return Ok(Resp::json(202, json!({"status":"accepted"})));
    }
    if app.faults.first_rate_check_misread(&project) || app.limiter.limited(&project) {
        return Ok(Resp::error(429, "rate limited"));
    }
    let max = if bulk { 5_242_880 } else { 1_048_576 };
    if code_points(r.body) > max {
        return Ok(Resp::error(400, "payload too large"));
    }
    let events = match ingest::prepare(app, r.body, bulk) {
        Ok(e) => e,
        Err(msg) => return Ok(Resp::error(400, &msg)),
    };
    ingest::process(app, &project, events).await?;
    Ok(Resp::json(202, json!({"status":"accepted"})))
}

/// Route 4: full-text search of the last 24 hours' messages, best match first.
pub(super) async fn search(r: &Req<'_>) -> Answer {
    let Some(text) = r.param("q") else {
        return Ok(Resp::error(400, "missing search query"));
    };
    let p = r.project().await;
    let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT id::text, issue_id::text, level, message, received_at::text FROM events
         WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours'
           AND to_tsvector('english', left(message, 100000)) @@ plainto_tsquery('english', $2)
         ORDER BY ts_rank(to_tsvector('english', left(message, 100000)), plainto_tsquery('english', $2)) DESC,
                  received_at DESC LIMIT $3",
    )
    .bind(&p)
    .bind(text)
    .bind(r.page_limit())
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, |e| json!({"id":e.0,"issue_id":e.1,"level":e.2,"message":e.3,"received_at":e.4})))
}

/// Route 5: the last 24 hours' events whose tags hold `key` = `value`.
pub(super) async fn by_tag(r: &Req<'_>) -> Answer {
    let (Some(k), Some(v)) = (r.param("key"), r.param("value")) else {
        return Ok(Resp::error(400, "missing key or value parameter"));
    };
    let p = r.project().await;
    let filter = json!({ k: v }).to_string();
    let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT id::text, issue_id::text, level, message, tags::text, received_at::text FROM events
         WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours' AND tags @> $2::jsonb
         ORDER BY received_at DESC LIMIT $3",
    )
    .bind(&p)
    .bind(filter)
    .bind(r.page_limit())
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(
        rows,
        |e| json!({"id":e.0,"issue_id":e.1,"level":e.2,"message":e.3,"tags":raw_json(Some(e.4)),"received_at":e.5}),
    ))
}

/// Route 13: one event with its neighbours in its issue (`navigation`).
pub(super) async fn detail(r: &Req<'_>) -> Answer {
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
    let row: Option<Detail> = sqlx::query_as(
        "SELECT id::text, project_id::text, issue_id::text, level, message, fingerprint, exception::text,
                COALESCE(stacktrace, '[]'::jsonb)::text, COALESCE(breadcrumbs, '[]'::jsonb)::text, tags::text,
                extra::text, user_context::text, COALESCE(sdk_name, ''), COALESCE(sdk_version, ''), received_at::text
         FROM events WHERE id = $1::uuid ORDER BY received_at LIMIT 1",
    )
    .bind(r.arg(0))
    .fetch_optional(r.pool())
    .await?;
    let Some(e) = row else {
        return Ok(Resp::error(404, "event not found"));
    };
    let nav: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT n.id::text FROM events n WHERE n.issue_id = $1::uuid
                   AND (n.received_at, n.id) > ($2::timestamptz, $3::uuid) ORDER BY n.received_at, n.id LIMIT 1),
                (SELECT p.id::text FROM events p WHERE p.issue_id = $1::uuid
                   AND (p.received_at, p.id) < ($2::timestamptz, $3::uuid)
                   ORDER BY p.received_at DESC, p.id DESC LIMIT 1)",
    )
    .bind(&e.2)
    .bind(&e.14)
    .bind(&e.0)
    .fetch_one(r.pool())
    .await
    .unwrap_or((None, None));
    Ok(Resp::json(
        200,
        json!({
            "event": {"id":e.0,"project_id":e.1,"issue_id":e.2,"level":e.3,"message":e.4,"fingerprint":e.5,
                      "exception":raw_json(e.6),"stacktrace":raw_json(Some(e.7)),"breadcrumbs":raw_json(Some(e.8)),
                      "tags":raw_json(Some(e.9)),"extra":raw_json(Some(e.10)),"user_context":raw_json(e.11),
                      "sdk_name":e.12,"sdk_version":e.13,"received_at":e.14},
            "navigation": {"next_id":nav.0,"prev_id":nav.1}
        }),
    ))
}
