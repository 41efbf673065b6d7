//! API key routes of a project: list (24), create (25), revoke (26).

use super::{Answer, Req, Resp, json_array, ok_affected};
use serde_json::json;

/// Route 24: a project's keys, newest first, revoked ones included.
pub(super) async fn list(r: &Req<'_>) -> Answer {
    let p = r.project().await;
    let rows: Vec<(String, String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id::text, project_id::text, key_value, label, created_at::text, revoked_at::text
         FROM api_keys WHERE project_id = $1::uuid ORDER BY created_at DESC, id",
    )
    .bind(&p)
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(
        rows,
        |k| json!({"id":k.0,"project_id":k.1,"key_value":k.2,"label":k.3,"created_at":k.4,"revoked_at":k.5}),
    ))
}

/// Route 25: a new random key with `label` (default `default`).
pub(super) async fn create(r: &Req<'_>) -> Answer {
    let p = r.project().await;
    let label = r.lenient_or("label", "default");
    let key: String = sqlx::query_scalar(
        "INSERT INTO api_keys (project_id, key_value, label)
         VALUES ($1::uuid, 'mshr_' || encode(gen_random_bytes(24), 'hex'), $2) RETURNING key_value",
    )
    .bind(&p)
    .bind(&label)
    .fetch_one(r.pool())
    .await?;
    r.app.faults.api_key_created();
    Ok(Resp::json(201, json!({ "key_value": key })))
}

/// Route 26: revoke a key (ingestion stops accepting it).
pub(super) async fn revoke(r: &Req<'_>) -> Answer {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1::uuid")
        .bind(r.arg(0))
        .execute(r.pool())
        .await?;
    Ok(ok_affected(done.rows_affected()))
}
