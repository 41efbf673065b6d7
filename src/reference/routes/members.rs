//! Organisation member routes: list (20), add (21), role (22), remove (23).

use super::{Answer, Req, Resp, deleted, json_array, ok_affected};
use serde_json::json;

/// Route 20: an organisation's members with their users, oldest first.
pub(super) async fn list(r: &Req<'_>) -> Answer {
    let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT m.id::text, m.user_id::text, u.email, u.display_name, m.role, m.joined_at::text
         FROM org_memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1::uuid
         ORDER BY m.joined_at, m.id",
    )
    .bind(r.arg(0))
    .fetch_all(r.pool())
    .await?;
    Ok(json_array(rows, |m| json!({"id":m.0,"user_id":m.1,"email":m.2,"display_name":m.3,"role":m.4,"joined_at":m.5})))
}

/// Route 21: add `user_id` (required) with `role` (default `member`).
pub(super) async fn add(r: &Req<'_>) -> Answer {
    let user = r.lenient("user_id");
    if user.is_empty() {
        return Ok(Resp::error(400, "user_id is required"));
    }
    let role = r.lenient_or("role", "member");
    let id: String = sqlx::query_scalar(
        "INSERT INTO org_memberships (user_id, org_id, role) VALUES ($1::uuid, $2::uuid, $3) RETURNING id::text",
    )
    .bind(&user)
    .bind(r.arg(0))
    .bind(&role)
    .fetch_one(r.pool())
    .await?;
    Ok(Resp::json(201, json!({ "id": id })))
}

/// Route 22: change a membership's role; a role other than owner, admin, member changes nothing.
pub(super) async fn set_role(r: &Req<'_>) -> Answer {
    let role = r.lenient("role");
    let done =
        sqlx::query("UPDATE org_memberships SET role = $2 WHERE id = $1::uuid AND $2 IN ('owner', 'admin', 'member')")
            .bind(r.arg(1))
            .bind(&role)
            .execute(r.pool())
            .await?;
    Ok(ok_affected(done.rows_affected()))
}

/// Route 23: remove a membership.
pub(super) async fn remove(r: &Req<'_>) -> Answer {
    let done = sqlx::query("DELETE FROM org_memberships WHERE id = $1::uuid").bind(r.arg(1)).execute(r.pool()).await?;
    Ok(deleted(done.rows_affected()))
}
