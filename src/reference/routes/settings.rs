//! Project settings routes: get (34), update (35), storage (36).

use super::{Answer, Req, Resp, ok_affected, pg_error_text};
use serde_json::{Value, json};

/// Route 34: retention days and sample rate.
pub(super) async fn get(r: &Req<'_>) -> Answer {
    let p = r.project().await;
    let row: Option<(i32, f32)> =
        sqlx::query_as("SELECT retention_days, sample_rate FROM projects WHERE id = $1::uuid")
            .bind(&p)
            .fetch_optional(r.pool())
            .await?;
    let Some((days, rate)) = row else {
        return Ok(Resp::error(404, "project not found"));
    };
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
    Ok(Resp::json(200, json!({"retention_days":days,"sample_rate":rate})))
}

/// Route 35: set the members the body names (a body that is not an object counts as `{}`);
/// PostgreSQL's rejection of the body is a 400.
pub(super) async fn update(r: &Req<'_>) -> Answer {
    r.app.faults.settings_update(r.body);
    let p = r.project().await;
    let done = sqlx::query(
        "UPDATE projects SET retention_days = COALESCE((b ->> 'retention_days')::int, retention_days),
                sample_rate = COALESCE((b ->> 'sample_rate')::real, sample_rate)
         FROM (SELECT CASE WHEN jsonb_typeof(x) = 'object' THEN x ELSE '{}'::jsonb END AS b
               FROM (SELECT $2::text::jsonb AS x) s0) s
         WHERE id = $1::uuid",
    )
    .bind(&p)
    .bind(String::from_utf8_lossy(r.body).as_ref())
    .execute(r.pool())
    .await;
    Ok(match done {
        Ok(done) => ok_affected(done.rows_affected()),
        Err(e) => Resp::error(400, &pg_error_text(&e)),
    })
}

/// Route 36: a project's event count and an estimate of 1 KiB an event.
pub(super) async fn storage(r: &Req<'_>) -> Answer {
    let p = r.project().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE project_id = $1::uuid")
        .bind(&p)
        .fetch_one(r.pool())
        .await?;
    Ok(Resp::json(200, json!({"event_count":n,"estimated_bytes":n * 1024})))
}
