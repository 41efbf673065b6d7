//! Alert rules as Mesher intends them (its evaluation and insert SQL are broken, §6.3 F2/F3):
//! `new_issue` rules fire when ingestion creates an issue; `threshold` rules are evaluated every
//! 30 s (more than `threshold` events of the project in the last `window_minutes`). Both respect
//! `enabled` and `cooldown_minutes`, insert an `alerts` row and broadcast an `alert` message.

use super::App;
use serde_json::json;

type Fired = (String, String, String, String, String);

fn announce(app: &App, rows: &[Fired]) {
    for (alert_id, project, rule_name, condition, message) in rows {
        app.hub.broadcast(
            project,
            json!({"type":"alert","alert_id":alert_id,"rule_name":rule_name,"condition":condition,"message":message}),
        );
    }
}

/// Fire the project's enabled `new_issue` rules (outside their cooldown) for a new issue.
pub async fn on_new_issue(app: &App, project: &str, issue_id: &str, title: &str) {
    let r: Result<Vec<Fired>, _> = sqlx::query_as(
        "WITH due AS (
           SELECT id, project_id, name, condition_json FROM alert_rules
           WHERE project_id = $1::uuid AND enabled AND condition_json ->> 'condition_type' = 'new_issue'
             AND (last_fired_at IS NULL OR last_fired_at < now() - make_interval(mins => cooldown_minutes))
           FOR UPDATE SKIP LOCKED),
         upd AS (UPDATE alert_rules SET last_fired_at = now() WHERE id IN (SELECT id FROM due))
         INSERT INTO alerts (rule_id, project_id, message, condition_snapshot)
         SELECT id, project_id, 'New issue: ' || $3 || ' (' || $2 || ')', condition_json FROM due
         RETURNING id::text, project_id::text, (SELECT name FROM alert_rules WHERE id = rule_id), 'new_issue', message",
    )
    .bind(project)
    .bind(issue_id)
    .bind(title)
    .fetch_all(&app.pool)
    .await;
    match r {
        Ok(rows) => announce(app, &rows),
        Err(e) => eprintln!("[Mesher] Alert evaluator error: {e}"),
    }
}

/// One evaluation round of `threshold` rules; returns how many fired.
pub async fn evaluate_thresholds(app: &App) -> Result<usize, sqlx::Error> {
    app.generation.bump();
    let r = fire_thresholds(app).await;
    app.generation.bump();
    r
}

async fn fire_thresholds(app: &App) -> Result<usize, sqlx::Error> {
    let rows: Vec<Fired> = sqlx::query_as(
        "WITH rules AS (
           SELECT id, project_id, name, condition_json,
                  CASE WHEN condition_json ->> 'threshold' ~ '^-?[0-9]{1,9}$'
                       THEN (condition_json ->> 'threshold')::int ELSE 0 END AS threshold,
                  CASE WHEN condition_json ->> 'window_minutes' ~ '^[0-9]{1,6}$'
                       THEN (condition_json ->> 'window_minutes')::int ELSE 5 END AS window_minutes
           FROM alert_rules
           WHERE enabled AND condition_json ->> 'condition_type' = 'threshold'
             AND (last_fired_at IS NULL OR last_fired_at < now() - make_interval(mins => cooldown_minutes))),
         due AS (
           SELECT r.*, (SELECT count(*) FROM events e WHERE e.project_id = r.project_id
                          AND e.received_at > now() - make_interval(mins => r.window_minutes)) AS n
           FROM rules r),
         fired AS (SELECT * FROM due WHERE n > threshold),
         upd AS (UPDATE alert_rules SET last_fired_at = now() WHERE id IN (SELECT id FROM fired))
         INSERT INTO alerts (rule_id, project_id, message, condition_snapshot)
         SELECT id, project_id, n || ' events in ' || window_minutes || ' minutes (threshold ' || threshold || ')',
                condition_json FROM fired
         RETURNING id::text, project_id::text, (SELECT name FROM alert_rules WHERE id = rule_id), 'threshold', message",
    )
    .fetch_all(&app.pool)
    .await?;
    announce(app, &rows);
    Ok(rows.len())
}
