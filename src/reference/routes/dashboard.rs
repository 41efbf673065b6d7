//! Dashboard routes of a project: volume (7), levels (8), top issues (9), tag values (10),
//! health (12).

use super::{Answer, Req, Resp, json_array};
use serde_json::json;

/// Route 7: the last 24 hours' event counts per `bucket` (default `hour`, handed to `date_trunc`).
pub(super) async fn volume(r: &Req<'_>) -> Answer {
    let p = r.project().await;
    let bucket = r.param("bucket").unwrap_or("hour");
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT date_trunc($2, received_at)::text, count(*) FROM events
         WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours' GROUP BY 1 ORDER BY 1",
    )
    .bind(&p)
    .bind(bucket)
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, |b| json!({"bucket":b.0,"count":b.1})))
}

/// Route 8: the last 24 hours' event counts per level, most first.
pub(super) async fn levels(r: &Req<'_>) -> Answer {
    let p = r.project().await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT level, count(*) FROM events
         WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours'
         GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .bind(&p)
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, |l| json!({"level":l.0,"count":l.1})))
}

/// Route 9: the unresolved issues with the most events; `limit` is handed to PostgreSQL as sent
/// (default 10).
pub(super) async fn top_issues(r: &Req<'_>) -> Answer {
    if let Some(l) = r.raw_param("limit") {
        r.app.faults.top_issues_limit(l);
    }
    let p = r.project().await;
    let limit = r.raw_param("limit").unwrap_or("10");
    let rows: Vec<(String, String, String, String, i32, String)> = sqlx::query_as(
        "SELECT id::text, title, level, status, event_count, last_seen::text FROM issues
         WHERE project_id = $1::uuid AND status = 'unresolved'
         ORDER BY event_count DESC, id LIMIT $2::text::int",
    )
    .bind(&p)
    .bind(limit)
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, |i| json!({"id":i.0,"title":i.1,"level":i.2,"status":i.3,"event_count":i.4,"last_seen":i.5})))
}

/// Route 10: the 20 most frequent values of tag `key` in the last 24 hours.
pub(super) async fn tag_values(r: &Req<'_>) -> Answer {
    let Some(k) = r.param("key") else {
        return Ok(Resp::error(400, "missing key parameter"));
    };
    let p = r.project().await;
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT NULLIF(tags ->> $2, ''), count(*) FROM events
         WHERE project_id = $1::uuid AND received_at > now() - interval '24 hours' AND tags ? $2
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
    )
    .bind(&p)
    .bind(k)
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, |v| json!({"value":v.0,"count":v.1})))
}

/// Route 12: unresolved issues, events of the last 24 hours, issues first seen in them.
pub(super) async fn health(r: &Req<'_>) -> Answer {
    let p = r.project().await;
    let (u, e, n): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM issues WHERE project_id = $1::uuid AND status = 'unresolved'),
                (SELECT count(*) FROM events WHERE project_id = $1::uuid
                   AND received_at > now() - interval '24 hours'),
                (SELECT count(*) FROM issues WHERE project_id = $1::uuid
                   AND first_seen > now() - interval '24 hours')",
    )
    .bind(&p)
    .fetch_one(r.pool())
    .await?;
    Ok(Resp::json(200, json!({"unresolved_count":u,"events_24h":e,"new_today":n})))
}
