//! Alert routes: list (31), acknowledge (32), resolve (33). The alerts themselves are raised by
//! `target::alerts`.

use super::{Answer, Req, json_array, ok_affected, raw_json};
use serde_json::json;

/// Route 31: a project's latest 50 alerts with their rule's name, optionally of one `status`.
pub(super) async fn list(r: &Req<'_>) -> Answer {
    type AlertRow = (String, String, String, String, String, String, String, Option<String>, Option<String>, String);
    let p = r.project().await;
    let rows: Vec<AlertRow> = sqlx::query_as(
        "SELECT a.id::text, a.rule_id::text, a.project_id::text, a.status, a.message,
                a.condition_snapshot::text, a.triggered_at::text, a.acknowledged_at::text,
                a.resolved_at::text, r.name
         FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
         WHERE a.project_id = $1::uuid AND ($2::text IS NULL OR a.status = $2)
         ORDER BY a.triggered_at DESC, a.id LIMIT 50",
    )
    .bind(&p)
    .bind(r.param("status"))
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, |a| {
        json!({"id":a.0,"rule_id":a.1,"project_id":a.2,"status":a.3,"message":a.4,
               "condition_snapshot":raw_json(Some(a.5)),"triggered_at":a.6,
               "acknowledged_at":a.7,"resolved_at":a.8,"rule_name":a.9})
    }))
}

/// Route 32: acknowledge an active alert.
pub(super) async fn acknowledge(r: &Req<'_>) -> Answer {
    let done = sqlx::query(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = now()
         WHERE id = $1::uuid AND status = 'active'",
    )
    .bind(r.arg(0))
    .execute(r.pool())
    .await?;
    Ok(ok_affected(done.rows_affected()))
}

/// Route 33: resolve an active or acknowledged alert.
pub(super) async fn resolve(r: &Req<'_>) -> Answer {
    let done = sqlx::query(
        "UPDATE alerts SET status = 'resolved', resolved_at = now()
         WHERE id = $1::uuid AND status IN ('active', 'acknowledged')",
    )
    .bind(r.arg(0))
    .execute(r.pool())
    .await?;
    Ok(ok_affected(done.rows_affected()))
}
