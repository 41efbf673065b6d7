//! Issue routes: list (3), events (6), timeline (11), status changes (14, 15, 16, 18), assign
//! (17), delete (19).

use super::{Answer, Req, Resp, json_array, ok_affected, page};
use serde_json::{Value, json};

type IssueRow = (String, String, String, String, i32, String, String, String);
type EventRow = (String, String, String, String);

/// Route 3: a keyset page of a project's issues, newest activity first, with optional filters.
pub(super) async fn list(r: &Req<'_>) -> Answer {
    let p = r.project().await;
    let limit = r.page_limit();
    let (cursor, cursor_id) = r.cursor();
    let rows: Vec<IssueRow> = sqlx::query_as(
        "SELECT id::text, title, level, status, event_count, first_seen::text, last_seen::text,
                COALESCE(assigned_to::text, '')
         FROM issues WHERE project_id = $1::uuid
           AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR level = $3)
           AND ($4::text IS NULL OR assigned_to = $4::uuid)
           AND ($5::text IS NULL OR (last_seen, id) < ($5::timestamptz, $6::uuid))
         ORDER BY last_seen DESC, id DESC LIMIT $7",
    )
    .bind(&p)
    .bind(r.param("status"))
    .bind(r.param("level"))
    .bind(r.param("assigned_to"))
    .bind(cursor)
    .bind(cursor_id)
    .bind(limit)
    .fetch_all(r.pool())
    .await?;
    let last = rows.last().map(|i| (i.6.clone(), i.0.clone()));
    let items = rows
        .into_iter()
        .map(|i| {
            json!({"id":i.0,"title":i.1,"level":i.2,"status":i.3,"event_count":i.4,"first_seen":i.5,
                   "last_seen":i.6,"assigned_to":i.7})
        })
        .collect();
    Ok(page(items, limit, last))
}

/// Route 6: a keyset page of an issue's events, newest first.
pub(super) async fn events(r: &Req<'_>) -> Answer {
    let limit = r.page_limit();
    let (cursor, cursor_id) = r.cursor();
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id::text, level, message, received_at::text FROM events WHERE issue_id = $1::uuid
           AND ($2::text IS NULL OR (received_at, id) < ($2::timestamptz, $3::uuid))
         ORDER BY received_at DESC, id DESC LIMIT $4",
    )
    .bind(r.arg(0))
    .bind(cursor)
    .bind(cursor_id)
    .bind(limit)
    .fetch_all(r.pool())
    .await?;
    let last = rows.last().map(|e| (e.3.clone(), e.0.clone()));
    let items = rows.into_iter().map(event_json).collect();
    Ok(page(items, limit, last))
}

/// Route 11: an issue's latest events; `limit` is handed to PostgreSQL as sent (default 50).
pub(super) async fn timeline(r: &Req<'_>) -> Answer {
    let limit = r.raw_param("limit").unwrap_or("50");
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id::text, level, message, received_at::text FROM events WHERE issue_id = $1::uuid
         ORDER BY received_at DESC, id DESC LIMIT $2::text::int",
    )
    .bind(r.arg(0))
    .bind(limit)
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, event_json))
}

fn event_json(e: EventRow) -> Value {
    json!({"id":e.0,"level":e.1,"message":e.2,"received_at":e.3})
}

/// Routes 14, 15, 16 and 18: set an issue's `status` (with `only_if_changed`, only when it differs)
/// and broadcast the change to the issue's project.
pub(super) async fn set_status(r: &Req<'_>, status: &str, only_if_changed: bool) -> Answer {
    let (project, n): (Option<String>, i64) = sqlx::query_as(
        "WITH t AS (SELECT id, project_id FROM issues WHERE id = $1::uuid),
              u AS (UPDATE issues SET status = $2 WHERE id IN (SELECT id FROM t)
                      AND (NOT $3 OR status <> $2) RETURNING 1)
         SELECT (SELECT project_id::text FROM t), (SELECT count(*) FROM u)",
    )
    .bind(r.arg(0))
    .bind(status)
    .bind(only_if_changed)
    .fetch_one(r.pool())
    .await?;
    if let Some(p) = project {
        r.app.hub.broadcast(&p, json!({"type":"issue","action":status,"issue_id":r.arg(0)}));
    }
    Ok(ok_affected(n as u64))
}

/// Route 17: assign an issue to `user_id` (lenient; empty unassigns).
pub(super) async fn assign(r: &Req<'_>) -> Answer {
    let raw = serde_json::from_slice::<Value>(r.body).ok().and_then(|v| v.get("user_id").cloned());
    if let Some(v) = &raw
        && r.app.faults.assign_user_id(v).await
    {
        return Ok(Resp::error(400, "invalid user_id"));
    }
    let user = r.lenient("user_id");
    let done = sqlx::query("UPDATE issues SET assigned_to = NULLIF($2, '')::uuid WHERE id = $1::uuid")
        .bind(r.arg(0))
        .bind(&user)
        .execute(r.pool())
        .await?;
    Ok(ok_affected(done.rows_affected()))
}

/// Route 19: delete an issue with its events.
pub(super) async fn delete(r: &Req<'_>) -> Answer {
    let n: i64 = sqlx::query_scalar(
        "WITH e AS (DELETE FROM events WHERE issue_id = $1::uuid),
              i AS (DELETE FROM issues WHERE id = $1::uuid RETURNING 1)
         SELECT count(*) FROM i",
    )
    .bind(r.arg(0))
    .fetch_one(r.pool())
    .await?;
    Ok(ok_affected(n as u64))
}
