//! Alert rule routes: list (27), create (28), toggle (29), delete (30).

use super::{Answer, Req, Resp, deleted, json_array, ok_affected, pg_error_text, raw_json};
use serde_json::json;

/// Route 27: a project's rules, newest first.
pub(super) async fn list(r: &Req<'_>) -> Answer {
    type RuleRow = (String, String, String, String, String, bool, i32, Option<String>, String);
    let p = r.project().await;
    let rows: Vec<RuleRow> = sqlx::query_as(
        "SELECT id::text, project_id::text, name, condition_json::text, action_json::text, enabled,
                cooldown_minutes, last_fired_at::text, created_at::text
         FROM alert_rules WHERE project_id = $1::uuid ORDER BY created_at DESC, id",
    )
    .bind(&p)
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, |a| {
        json!({"id":a.0,"project_id":a.1,"name":a.2,"condition":raw_json(Some(a.3)),
               "action":raw_json(Some(a.4)),"enabled":a.5,"cooldown_minutes":a.6,
               "last_fired_at":a.7,"created_at":a.8})
    }))
}

/// Route 28: a rule from the body's members, each defaulted when absent (a body that is not an
/// object counts as `{}`); PostgreSQL's rejection of the body is a 400.
pub(super) async fn create(r: &Req<'_>) -> Answer {
    r.app.faults.alert_rule_create(r.body);
    let p = r.project().await;
    let id: Result<String, _> = sqlx::query_scalar(
        "INSERT INTO alert_rules (project_id, name, condition_json, action_json, cooldown_minutes)
         SELECT $1::uuid, COALESCE(b ->> 'name', 'Unnamed Rule'), COALESCE(b -> 'condition', '{}'::jsonb),
                COALESCE(b -> 'action', '{\"type\":\"websocket\"}'::jsonb),
                COALESCE((b ->> 'cooldown_minutes')::int, 60)
         FROM (SELECT CASE WHEN jsonb_typeof(x) = 'object' THEN x ELSE '{}'::jsonb END AS b
               FROM (SELECT $2::text::jsonb AS x) s0) s
         RETURNING id::text",
    )
    .bind(&p)
    .bind(String::from_utf8_lossy(r.body).as_ref())
    .fetch_one(r.pool())
    .await;
    Ok(match id {
        Ok(id) => Resp::json(201, json!({ "id": id })),
        Err(e) => Resp::error(400, &pg_error_text(&e)),
    })
}

/// Route 29: set `enabled` (lenient, default `true`, cast by PostgreSQL).
pub(super) async fn toggle(r: &Req<'_>) -> Answer {
    let enabled = r.lenient_or("enabled", "true");
    let done = sqlx::query("UPDATE alert_rules SET enabled = $2::text::boolean WHERE id = $1::uuid")
        .bind(r.arg(0))
        .bind(&enabled)
        .execute(r.pool())
        .await?;
    Ok(ok_affected(done.rows_affected()))
}

/// Route 30: delete a rule.
pub(super) async fn delete(r: &Req<'_>) -> Answer {
    let done = sqlx::query("DELETE FROM alert_rules WHERE id = $1::uuid").bind(r.arg(0)).execute(r.pool()).await?;
    Ok(deleted(done.rows_affected()))
}
