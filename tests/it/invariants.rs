//! "Nothing lost" invariants against a real PostgreSQL: pass when the rows are there, fail naming
//! the missing ids when rows are deleted behind the tool's back.

use mesher_stress::invariants::{CheckTarget, Ledger, check, fingerprints};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_pass_then_name_what_was_deleted() {
    let (_url, pool, f) = crate::support::db::seeded_db().await;
    let since: String = sqlx::query_scalar("SELECT now()::text").fetch_one(&pool).await.unwrap();

    // What a target would have done for three accepted events and one new membership.
    let ledger = Ledger::new();
    let body = br#"{"message":"disk full","level":"error"}"#;
    let fp = fingerprints(body, false).remove(0);
    let issue: String = sqlx::query_scalar(
        "INSERT INTO issues (project_id, fingerprint, title, level, event_count) VALUES ($1::uuid, $2, 'disk full', 'error', 3) RETURNING id::text",
    )
    .bind(&f.project_id)
    .bind(&fp)
    .fetch_one(&pool)
    .await
    .unwrap();
    for _ in 0..3 {
        ledger.observe("POST", "/api/v1/events", body, 202, br#"{"status":"accepted"}"#);
        sqlx::query("INSERT INTO events (project_id, issue_id, level, message, fingerprint) VALUES ($1::uuid, $2::uuid, 'error', 'disk full', $3)")
            .bind(&f.project_id)
            .bind(&issue)
            .bind(&fp)
            .execute(&pool)
            .await
            .unwrap();
    }
    let user = f.free_users().next().unwrap().to_string();
    let member: String = sqlx::query_scalar(
        "INSERT INTO org_memberships (user_id, org_id) VALUES ($1::uuid, $2::uuid) RETURNING id::text",
    )
    .bind(&user)
    .bind(&f.org_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    ledger.observe(
        "POST",
        &format!("/api/v1/orgs/{}/members", f.org_id),
        b"{}",
        201,
        format!("{{\"id\":\"{member}\"}}").as_bytes(),
    );
    assert_eq!(ledger.accepted_events(), 3);

    let t = CheckTarget {
        pool: &pool,
        project_id: &f.project_id,
        org_id: &f.org_id,
        http: None,
        since: &since,
        flush_wait: Duration::from_millis(300),
    };
    let r = check(&ledger, &t).await.unwrap();
    assert!(r.iter().all(|i| i.passed), "{r:#?}");

    // Behind the tool's back: one event and the membership disappear.
    sqlx::query("DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE fingerprint = $1 LIMIT 1)")
        .bind(&fp)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM org_memberships WHERE id = $1::uuid").bind(&member).execute(&pool).await.unwrap();
    let r = check(&ledger, &t).await.unwrap();
    let get = |n: &str| r.iter().find(|i| i.name == n).unwrap();
    assert!(!get("events-stored").passed);
    assert!(get("events-stored").missing[0].contains("3 accepted, 2 stored"), "{:?}", get("events-stored"));
    assert!(!get("members-exist").passed);
    assert_eq!(get("members-exist").missing, vec![member.clone()]);
    assert!(!get("issue-counts").passed && get("issue-counts").missing[0].contains(&issue));
    assert!(get("api-keys-exist").passed);
    pool.close().await;
}

/// Long runs keep a bounded hash sample of the ids they check; a failure still names ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_ledger_still_names_missing_ids() {
    let (_url, pool, f) = crate::support::db::seeded_db().await;
    let since: String = sqlx::query_scalar("SELECT now()::text").fetch_one(&pool).await.unwrap();
    let ledger = Ledger::with_sample_max(8);
    let mut created = Vec::new();
    for user in f.free_users().take(60) {
        let id: String = sqlx::query_scalar(
            "INSERT INTO org_memberships (user_id, org_id) VALUES ($1::uuid, $2::uuid) RETURNING id::text",
        )
        .bind(user)
        .bind(&f.org_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let path = format!("/api/v1/orgs/{}/members", f.org_id);
        ledger.observe("POST", &path, b"{}", 201, format!("{{\"id\":\"{id}\"}}").as_bytes());
        created.push(id);
    }
    let t = CheckTarget {
        pool: &pool,
        project_id: &f.project_id,
        org_id: &f.org_id,
        http: None,
        since: &since,
        flush_wait: Duration::from_millis(100),
    };
    let r = check(&ledger, &t).await.unwrap();
    let members = r.iter().find(|i| i.name == "members-exist").unwrap();
    assert!(members.passed, "{members:?}");
    assert!(members.summary.contains("hash sample"), "{}", members.summary);

    // Every membership disappears behind the tool's back: the sampled ones are named.
    sqlx::query("DELETE FROM org_memberships WHERE id::text = ANY($1)").bind(&created).execute(&pool).await.unwrap();
    let r = check(&ledger, &t).await.unwrap();
    let members = r.iter().find(|i| i.name == "members-exist").unwrap();
    assert!(!members.passed);
    assert!(!members.missing.is_empty() && members.missing.len() <= 8, "{:?}", members.missing);
    assert!(members.missing.iter().all(|m| created.contains(m)), "{:?}", members.missing);
    pool.close().await;
}
