//! The built-in target in-process on a throwaway PostgreSQL: all 36 routes, both WebSocket paths,
//! ingestion semantics and transport rules, checked against status codes, bodies and rows.

use crate::support::client::*;
use crate::support::db::*;
use mesher_stress::api::{Route, RouteId};
use mesher_stress::reference::{Running, TargetConfig, start};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

fn p(id: RouteId, args: &[&str]) -> String {
    Route::get(id).path(args)
}

async fn boot(url: &str, tweak: impl FnOnce(&mut TargetConfig)) -> Running {
    let mut cfg = TargetConfig::new(url);
    tweak(&mut cfg);
    start(cfg).await.expect("target starts")
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_36_routes_and_both_websocket_paths() {
    let (url, db, f) = seeded_db().await;
    let t = boot(&url, |_| {}).await;
    let a = t.http_addr;
    let mut seen = BTreeSet::new();
    let mut hit = |id: RouteId| {
        seen.insert(id);
    };
    let key = f.api_key().to_string();
    let issue = &f.issues[0];

    // Stream subscriber for the project (joins room by raw id).
    let mut stream = ws_connect(t.ws_addr, &mesher_stress::api::WsPath::Stream.path(PROJECT), &[]).await;
    ws_send(&mut stream, r#"{"type":"subscribe","filters":{"level":"warning"}}"#).await;
    assert_eq!(ws_next(&mut stream).await.unwrap(), json!({"type":"filters_updated"}));

    // 1 ingest (+ event broadcast filtered by level: this warning event passes, the error does not)
    let r = ingest(a, &key, r#"{"message":"Disk 0xFF full","level":"error","tags":{"environment":"prod"}}"#).await;
    assert_eq!((r.status, r.json()), (202, json!({"status":"accepted"})));
    hit(RouteId::EventsIngest);
    let r = ingest(a, &key, r#"{"message":"Slow query","level":"warning"}"#).await;
    assert_eq!(r.status, 202);
    let m = ws_next(&mut stream).await.unwrap();
    assert_eq!(m["type"], "issue_count", "the error event was filtered out: {m}");
    assert_eq!(m["project_id"], PROJECT);
    let m = ws_next(&mut stream).await.unwrap();
    assert_eq!(m["type"], "event", "{m}");
    assert_eq!(m["data"]["message"], "Slow query");
    assert_eq!(ws_next(&mut stream).await.unwrap()["type"], "issue_count");
    // 2 bulk
    let r = request(
        a,
        "POST",
        &p(RouteId::EventsBulk, &[]),
        &[("authorization", &key)],
        r#"[{"message":"b1"},{"message":"b2"}]"#,
    )
    .await;
    assert_eq!(r.status, 202);
    hit(RouteId::EventsBulk);
    t.flush().await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE message IN ('Disk 0xFF full','Slow query','b1','b2')").await,
        4
    );
    let fp: String = sqlx::query_scalar("SELECT fingerprint FROM issues WHERE title = 'Disk 0xFF full'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(fp, "msg:disk ff full");

    // 3 issues list with pagination
    let r = get(a, &format!("{}?limit=3", p(RouteId::IssuesList, &["default"]))).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(v["has_more"], true);
    let cursor = v["next_cursor"].as_str().unwrap().replace(' ', "T");
    let next = get(
        a,
        &format!(
            "{}?limit=3&cursor={cursor}&cursor_id={}",
            p(RouteId::IssuesList, &[PROJECT]),
            v["next_cursor_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(next.status, 200, "{}", next.text());
    let ids: BTreeSet<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(next.json()["data"].as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 6, "no repeats across pages");
    assert_eq!(get(a, &p(RouteId::IssuesList, &["no-such-slug"])).await.status, 500);
    assert_eq!(get(a, &p(RouteId::IssuesList, &["33333333-3333-3333-3333-33333333333X"])).await.status, 500);
    hit(RouteId::IssuesList);
    // 4 search
    let r = get(a, &format!("{}?q=disk", p(RouteId::EventsSearch, &[PROJECT]))).await;
    assert_eq!(r.json()[0]["message"], "Disk 0xFF full");
    assert_eq!(get(a, &p(RouteId::EventsSearch, &[PROJECT])).await.json(), json!({"error":"missing search query"}));
    hit(RouteId::EventsSearch);
    // 5 tag filter (quotes do not break it)
    let r = get(a, &format!("{}?key=environment&value=prod", p(RouteId::EventsTags, &[PROJECT]))).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(get(a, &format!("{}?key=a%22&value=b", p(RouteId::EventsTags, &[PROJECT]))).await.status, 200);
    assert_eq!(get(a, &format!("{}?key=a", p(RouteId::EventsTags, &[PROJECT]))).await.status, 400);
    hit(RouteId::EventsTags);
    // 6 issue events
    let r = get(a, &format!("{}?limit=2", p(RouteId::IssueEvents, &[issue]))).await;
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    hit(RouteId::IssueEvents);
    // 7-12 dashboards
    let r = get(a, &format!("{}?bucket=minute", p(RouteId::DashboardVolume, &[PROJECT]))).await;
    assert!(r.json().as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).sum::<i64>() >= 28);
    assert_eq!(get(a, &format!("{}?bucket=epoch", p(RouteId::DashboardVolume, &[PROJECT]))).await.status, 500);
    hit(RouteId::DashboardVolume);
    let r = get(a, &p(RouteId::DashboardLevels, &[PROJECT])).await;
    assert!(r.json().as_array().unwrap().iter().any(|l| l["level"] == "warning"));
    hit(RouteId::DashboardLevels);
    assert_eq!(
        get(a, &format!("{}?limit=2", p(RouteId::DashboardTopIssues, &[PROJECT])))
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(get(a, &format!("{}?limit=-1", p(RouteId::DashboardTopIssues, &[PROJECT]))).await.status, 500);
    hit(RouteId::DashboardTopIssues);
    let r = get(a, &format!("{}?key=environment", p(RouteId::DashboardTags, &[PROJECT]))).await;
    assert!(r.json().as_array().unwrap().iter().any(|t| t["value"] == "production"));
    assert_eq!(get(a, &p(RouteId::DashboardTags, &[PROJECT])).await.status, 400);
    hit(RouteId::DashboardTags);
    assert_eq!(get(a, &p(RouteId::IssueTimeline, &[issue])).await.json().as_array().unwrap().len(), 3);
    hit(RouteId::IssueTimeline);
    let h = get(a, &p(RouteId::DashboardHealth, &[PROJECT])).await;
    assert_eq!(h.status, 200);
    assert!(h.head.contains("Connection: close"), "{}", h.head);
    assert!(h.json()["events_24h"].as_i64().unwrap() >= 28);
    assert_eq!(
        get(a, &p(RouteId::DashboardHealth, &["00000000-0000-0000-0000-000000000000"])).await.json()["unresolved_count"],
        0
    );
    hit(RouteId::DashboardHealth);
    // 13 event detail + navigation
    let r = get(a, &p(RouteId::EventDetail, &[&f.events[1]])).await;
    let v = r.json();
    assert_eq!(v["event"]["issue_id"], issue.as_str());
    assert!(v["navigation"].get("next_id").is_some());
    assert_eq!(get(a, &p(RouteId::EventDetail, &["00000000-0000-0000-0000-000000000000"])).await.status, 404);
    assert_eq!(get(a, "/api/v1/events/bulk").await.status, 500);
    hit(RouteId::EventDetail);
    // 14-16, 18 state changes with broadcasts
    for (id, action) in [
        (RouteId::IssueResolve, "resolved"),
        (RouteId::IssueArchive, "archived"),
        (RouteId::IssueUnresolve, "unresolved"),
        (RouteId::IssueDiscard, "discarded"),
    ] {
        let r = post(a, &p(id, &[issue]), "").await;
        assert_eq!(r.json(), json!({"status":"ok","affected":1}), "{action}");
        assert_eq!(ws_next_type(&mut stream, "issue").await, json!({"type":"issue","action":action,"issue_id":issue}));
        let st: String = sqlx::query_scalar("SELECT status FROM issues WHERE id = $1::uuid")
            .bind(issue)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(st, action);
        hit(id);
    }
    assert_eq!(
        post(a, &p(RouteId::IssueResolve, &["00000000-0000-0000-0000-000000000000"]), "").await.json()["affected"],
        0
    );
    // discarded issue suppresses its events, still 202
    let before =
        count(&db, "SELECT event_count::bigint FROM issues WHERE id = '44444444-4444-4444-4444-444444444444'").await;
    assert_eq!(ingest(a, &key, r#"{"message":"seed","fingerprint":"msg:seed"}"#).await.status, 202);
    assert_eq!(
        count(&db, "SELECT event_count::bigint FROM issues WHERE id = '44444444-4444-4444-4444-444444444444'").await,
        before
    );
    // 17 assign
    let r = post(a, &p(RouteId::IssueAssign, &[&f.issues[1]]), &json!({"user_id": f.users[0]}).to_string()).await;
    assert_eq!(r.json(), json!({"status":"ok","affected":1}));
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM issues WHERE assigned_to IS NOT NULL AND id = '{}'", f.issues[1]))
            .await,
        1
    );
    assert_eq!(
        post(a, &p(RouteId::IssueAssign, &[&f.issues[1]]), r#"{"user_id":"00000000-0000-0000-0000-000000000000"}"#)
            .await
            .status,
        500
    );
    hit(RouteId::IssueAssign);
    // 19 delete
    assert_eq!(post(a, &p(RouteId::IssueDelete, &[&f.issues[2]]), "").await.json()["affected"], 1);
    assert_eq!(count(&db, &format!("SELECT count(*) FROM events WHERE issue_id = '{}'", f.issues[2])).await, 0);
    hit(RouteId::IssueDelete);
    // 20-23 members
    let free = f.free_users().next().unwrap().to_string();
    let r =
        post(a, &p(RouteId::MembersAdd, &[&f.org_id]), &json!({"user_id": free, "role": "admin"}).to_string()).await;
    assert_eq!(r.status, 201);
    let mid = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM org_memberships WHERE id = '{mid}' AND role = 'admin'")).await,
        1
    );
    assert_eq!(post(a, &p(RouteId::MembersAdd, &[&f.org_id]), &json!({"user_id": free}).to_string()).await.status, 500);
    assert_eq!(
        post(a, &p(RouteId::MembersAdd, &[&f.org_id]), "{}").await.json(),
        json!({"error":"user_id is required"})
    );
    hit(RouteId::MembersAdd);
    let list = get(a, &p(RouteId::MembersList, &[&f.org_id])).await.json();
    assert!(list.as_array().unwrap().iter().any(|m| m["id"] == mid.as_str()));
    hit(RouteId::MembersList);
    assert_eq!(post(a, &p(RouteId::MemberRole, &[&f.org_id, &mid]), r#"{"role":"owner"}"#).await.json()["affected"], 1);
    assert_eq!(post(a, &p(RouteId::MemberRole, &[&f.org_id, &mid]), r#"{"role":"god"}"#).await.json()["affected"], 0);
    hit(RouteId::MemberRole);
    assert_eq!(post(a, &p(RouteId::MemberRemove, &[&f.org_id, &mid]), "").await.json()["affected"], 1);
    assert_eq!(post(a, &p(RouteId::MemberRemove, &[&f.org_id, &mid]), "").await.status, 500);
    hit(RouteId::MemberRemove);
    // 24-26 api keys
    let r = post(a, &p(RouteId::ApiKeysCreate, &[PROJECT]), r#"{"label":"quote \" label"}"#).await;
    assert_eq!(r.status, 201);
    let newkey = r.json()["key_value"].as_str().unwrap().to_string();
    assert!(newkey.starts_with("mshr_") && newkey.len() == 53);
    hit(RouteId::ApiKeysCreate);
    let keys = get(a, &p(RouteId::ApiKeysList, &[PROJECT])).await.json();
    let kid = keys.as_array().unwrap().iter().find(|k| k["key_value"] == newkey.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    hit(RouteId::ApiKeysList);
    assert_eq!(ingest(a, &newkey, r#"{"message":"new key"}"#).await.status, 202);
    assert_eq!(post(a, &p(RouteId::ApiKeyRevoke, &[&kid]), "").await.json()["affected"], 1);
    assert_eq!(ingest(a, &newkey, r#"{"message":"new key"}"#).await.status, 401);
    hit(RouteId::ApiKeyRevoke);
    // 27-30 alert rules
    let r = post(
        a,
        &p(RouteId::AlertRulesCreate, &[PROJECT]),
        r#"{"name":"R","condition":{"condition_type":"new_issue"},"cooldown_minutes":0}"#,
    )
    .await;
    assert_eq!(r.status, 201);
    let rid = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(post(a, &p(RouteId::AlertRulesCreate, &[PROJECT]), "[]").await.status, 201);
    assert_eq!(post(a, &p(RouteId::AlertRulesCreate, &[PROJECT]), "{").await.status, 400);
    hit(RouteId::AlertRulesCreate);
    let rules = get(a, &p(RouteId::AlertRulesList, &[PROJECT])).await.json();
    assert!(rules.as_array().unwrap().iter().any(|r| r["id"] == rid.as_str() && r["enabled"] == true));
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "Unnamed Rule" && r["action"] == json!({"type":"websocket"}))
    );
    hit(RouteId::AlertRulesList);
    // new-issue rule fires on a new issue (intended alerting)
    assert_eq!(ingest(a, &key, r#"{"message":"brand new problem","level":"warning"}"#).await.status, 202);
    let m = ws_next_type(&mut stream, "alert").await;
    assert_eq!(m["condition"], "new_issue");
    assert_eq!(count(&db, &format!("SELECT count(*) FROM alerts WHERE rule_id = '{rid}'")).await, 1);
    assert_eq!(post(a, &p(RouteId::AlertRuleToggle, &[&rid]), r#"{"enabled":false}"#).await.json()["affected"], 1);
    assert_eq!(count(&db, &format!("SELECT count(*) FROM alert_rules WHERE id = '{rid}' AND NOT enabled")).await, 1);
    assert_eq!(post(a, &p(RouteId::AlertRuleToggle, &[&rid]), r#"{"enabled":"banana"}"#).await.status, 500);
    hit(RouteId::AlertRuleToggle);
    // 31-33 alerts
    let alerts = get(a, &format!("{}?status=active", p(RouteId::AlertsList, &[PROJECT]))).await.json();
    assert!(alerts.as_array().unwrap().iter().any(|x| x["id"] == f.active_alerts[0].as_str()));
    hit(RouteId::AlertsList);
    assert_eq!(post(a, &p(RouteId::AlertAcknowledge, &[&f.active_alerts[0]]), "").await.json()["affected"], 1);
    assert_eq!(post(a, &p(RouteId::AlertAcknowledge, &[&f.active_alerts[0]]), "").await.json()["affected"], 0);
    hit(RouteId::AlertAcknowledge);
    assert_eq!(post(a, &p(RouteId::AlertResolve, &[&f.active_alerts[0]]), "").await.json()["affected"], 1);
    hit(RouteId::AlertResolve);
    assert_eq!(post(a, &p(RouteId::AlertRuleDelete, &[&rid]), "").await.json()["affected"], 1);
    assert_eq!(post(a, &p(RouteId::AlertRuleDelete, &[&rid]), "").await.status, 500);
    hit(RouteId::AlertRuleDelete);
    // 34-36 settings, storage
    assert_eq!(
        post(a, &p(RouteId::SettingsUpdate, &[PROJECT]), r#"{"retention_days":14,"sample_rate":"0.5"}"#).await.json()["affected"],
        1
    );
    assert_eq!(post(a, &p(RouteId::SettingsUpdate, &[PROJECT]), r#"{"retention_days":"x"}"#).await.status, 400);
    hit(RouteId::SettingsUpdate);
    assert_eq!(
        get(a, &p(RouteId::SettingsGet, &["default"])).await.json(),
        json!({"retention_days":14,"sample_rate":0.5})
    );
    assert_eq!(get(a, &p(RouteId::SettingsGet, &["00000000-0000-0000-0000-000000000000"])).await.status, 404);
    post(a, &p(RouteId::SettingsUpdate, &[PROJECT]), r#"{"sample_rate":"NaN"}"#).await;
    assert_eq!(get(a, &p(RouteId::SettingsGet, &[PROJECT])).await.json()["sample_rate"], "NaN");
    hit(RouteId::SettingsGet);
    t.flush().await;
    let n = count(&db, &format!("SELECT count(*) FROM events WHERE project_id = '{PROJECT}'")).await;
    assert_eq!(
        get(a, &p(RouteId::Storage, &[PROJECT])).await.json(),
        json!({"event_count":n,"estimated_bytes":n*1024})
    );
    hit(RouteId::Storage);
    assert_eq!(seen.len(), 36, "every route exercised");

    // WebSocket ingest: no auth header → 1008; with key → ack and a row.
    let mut bad = ws_connect(t.ws_addr, "/ingest", &[]).await;
    assert_eq!(ws_next(&mut bad).await, Err(1008));
    let mut ing = ws_connect(t.ws_addr, "/ingest", &[("x-sentry-auth", &key)]).await;
    ws_send(&mut ing, r#"{"message":"via websocket","level":"info"}"#).await;
    assert_eq!(ws_next(&mut ing).await.unwrap(), json!({"status":"accepted"}));
    ws_send(&mut ing, "not json").await;
    assert!(ws_next(&mut ing).await.unwrap()["error"].is_string());
    ing.write_frame(fastwebsockets::Frame::text(fastwebsockets::Payload::Owned(vec![0xff, 0xfe]))).await.unwrap();
    assert_eq!(ws_next(&mut ing).await, Err(1007));
    let mut wrong = ws_connect(t.ws_addr, "/ingest", &[("authorization", "mshr_nope")]).await;
    ws_send(&mut wrong, r#"{"message":"x"}"#).await;
    assert_eq!(ws_next(&mut wrong).await.unwrap(), json!({"error":"unauthorized"}));
    // Invalid handshake → 400.
    let r = raw(t.ws_addr, b"GET /ingest HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Bad Request: "));
    t.flush().await;
    assert_eq!(count(&db, "SELECT count(*) FROM events WHERE message = 'via websocket'").await, 1);
    t.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_auth_rate_limit_grouping_and_limits() {
    let (url, db, f) = seeded_db().await;
    let t = boot(&url, |c| {
        c.rate_limit_max = 5;
        c.rate_limit_window = Duration::from_millis(1500);
    })
    .await;
    let a = t.http_addr;
    let key = f.api_key().to_string();
    let ev = r#"{"message":"Grouped 0x1","level":"error"}"#;
    // Header rules: exact lowercase names only, raw key only.
    for (h, v) in [
        ("X-Sentry-Auth", key.clone()),
        ("Authorization", key.clone()),
        ("authorization", format!("Bearer {key}")),
        ("x-sentry-auth", format!("Sentry sentry_key={key}")),
        ("x-sentry-auth", f.revoked_key.1.clone()),
    ] {
        assert_eq!(request(a, "POST", "/api/v1/events", &[(h, &v)], ev).await.status, 401, "{h}: {v}");
    }
    // x-sentry-auth present (even wrong) wins over a valid authorization.
    assert_eq!(
        request(a, "POST", "/api/v1/events", &[("x-sentry-auth", "bad"), ("authorization", &key)], ev).await.status,
        401
    );
    // Budget 5: the 6th is 429, then the window resets.
    for i in 0..5 {
        assert_eq!(ingest(a, &key, ev).await.status, 202, "event {i}");
    }
    let r = ingest(a, &key, ev).await;
    assert_eq!((r.status, r.json()), (429, json!({"error":"rate limited"})));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(ingest(a, &key, r#"{"message":"x","level":"bogus"}"#).await.status, 400);
    // Payload limit in code points: 1 048 576 four-byte characters pass the size check.
    let big = format!(r#"{{"message":"{}"}}"#, "é".repeat(1_048_576 - 14));
    let r = ingest(a, &key, &big).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let too_big = format!(r#"{{"message":"{}"}}"#, "a".repeat(1_048_576));
    assert_eq!(ingest(a, &key, &too_big).await.json(), json!({"error":"payload too large"}));
    // Grouping and regression.
    t.flush().await;
    let (cnt, st): (i32, String) =
        sqlx::query_as("SELECT event_count, status FROM issues WHERE fingerprint = 'msg:grouped 1'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((cnt, st.as_str()), (5, "unresolved"));
    assert_eq!(count(&db, "SELECT count(*) FROM events WHERE fingerprint = 'msg:grouped 1'").await, 5);
    sqlx::query("UPDATE issues SET status = 'resolved' WHERE fingerprint = 'msg:grouped 1'")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(ingest(a, &key, ev).await.status, 202);
    let st: String = sqlx::query_scalar("SELECT status FROM issues WHERE fingerprint = 'msg:grouped 1'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(st, "unresolved", "regression");
    // Bulk with sample_rate 0 is dropped with 202 and stores nothing.
    sqlx::query("UPDATE projects SET sample_rate = 0").execute(&db).await.unwrap();
    let r =
        request(a, "POST", "/api/v1/events/bulk", &[("x-sentry-auth", &key)], r#"{"message":"sampled away"}"#).await;
    assert_eq!(r.status, 202);
    t.flush().await;
    assert_eq!(count(&db, "SELECT count(*) FROM events WHERE message = 'sampled away'").await, 0);
    t.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_rules() {
    let (url, _db, _f) = seeded_db().await;
    let t = boot(&url, |_| {}).await;
    let a = t.http_addr;
    let r = get(a, "/nope").await;
    assert_eq!((r.status, r.text().as_str()), (404, "Not Found"));
    assert_eq!(post(a, "/api/v1/events/", "").await.status, 404);
    assert_eq!(request(a, "DELETE", "/api/v1/events", &[], "").await.status, 404);
    assert_eq!(get(a, "//api//v1/projects/default/dashboard/health/").await.status, 200);
    // Over-long heads and too many headers: an error status, never a crash.
    let long = format!("GET /x HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    let r = raw(a, long.as_bytes()).await;
    assert!(r.map(|r| r.status >= 400).unwrap_or(true));
    let headers = |n: usize| {
        let mut many = String::from("GET /x HTTP/1.1\r\n");
        for i in 0..n {
            many.push_str(&format!("H{i}: v\r\n"));
        }
        many + "\r\n"
    };
    // 100 headers are read (and the unknown route answered); 101 are refused.
    assert_eq!(raw(a, headers(100).as_bytes()).await.unwrap().status, 404);
    assert!(raw(a, headers(101).as_bytes()).await.map(|r| r.status >= 400 && r.status != 404).unwrap_or(true));
    assert_eq!(raw(a, b"\x00\x01garbage\r\n\r\n").await.map(|r| r.status).unwrap_or(400), 400);
    // A huge declared body without the fault: 400, not read.
    let r = raw(a, b"POST /api/v1/events HTTP/1.1\r\nContent-Length: 1099511627776\r\n\r\n").await.unwrap();
    assert_eq!(r.status, 400);
    // Still serving.
    assert_eq!(get(a, "/api/v1/projects/default/dashboard/health").await.status, 200);
    let _: Value = get(a, "/api/v1/projects/default/settings").await.json();
    t.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_ping_close_and_limits() {
    use fastwebsockets::{Frame, OpCode, Payload};
    let (url, _db, f) = seeded_db().await;
    let t = boot(&url, |_| {}).await;
    let key = f.api_key().to_string();
    // Ping is answered with the same payload; a client close is echoed.
    let mut ws = ws_connect(t.ws_addr, "/stream/projects/default", &[]).await;
    ws.set_auto_pong(false);
    ws.write_frame(Frame::new(true, OpCode::Ping, None, Payload::Owned(b"abc".to_vec()))).await.unwrap();
    let pong = ws.read_frame().await.unwrap();
    assert_eq!((pong.opcode, &pong.payload[..]), (OpCode::Pong, &b"abc"[..]));
    // Any frame on a stream connection is a filter update.
    ws_send(&mut ws, "[1,2,3]").await;
    assert_eq!(ws_next(&mut ws).await.unwrap(), json!({"type":"filters_updated"}));
    ws.write_frame(Frame::close(1000, b"bye")).await.unwrap();
    assert_eq!(ws_next(&mut ws).await, Err(1000));
    // A message above 16 MiB: close 1009.
    // (Only the frame header is sent: the server decides on the declared length.)
    let ing = ws_connect(t.ws_addr, "/ingest", &[("x-sentry-auth", &key)]).await;
    let mut io = ing.into_inner();
    let mut hdr = vec![0x82u8, 0x80 | 127];
    hdr.extend_from_slice(&((16u64 << 20) + 1).to_be_bytes());
    hdr.extend_from_slice(&[1, 2, 3, 4]);
    tokio::io::AsyncWriteExt::write_all(&mut io, &hdr).await.unwrap();
    let mut ing = fastwebsockets::WebSocket::after_handshake(io, fastwebsockets::Role::Client);
    assert_eq!(ws_next(&mut ing).await, Err(1009));
    // A continuation frame without a start: close 1002.
    let mut ing = ws_connect(t.ws_addr, "/ingest", &[("x-sentry-auth", &key)]).await;
    ing.write_frame(Frame::new(true, OpCode::Continuation, None, Payload::Owned(b"x".to_vec()))).await.unwrap();
    assert_eq!(ws_next(&mut ing).await, Err(1002));
    // Fragmented event message is reassembled and accepted.
    let mut ing = ws_connect(t.ws_addr, "/ingest", &[("x-sentry-auth", &key)]).await;
    ing.write_frame(Frame::new(false, OpCode::Text, None, Payload::Owned(br#"{"message":"#.to_vec()))).await.unwrap();
    ing.write_frame(Frame::new(true, OpCode::Continuation, None, Payload::Owned(br#""frag"}"#.to_vec())))
        .await
        .unwrap();
    assert_eq!(ws_next(&mut ing).await.unwrap(), json!({"status":"accepted"}));
    t.shutdown(Duration::from_secs(5)).await;
}

/// Benchmark mode (`--keep-alive`) reuses GET answers, but never one older than a write the
/// target made; writes behind its back (direct SQL) show up after the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_mode_read_cache_never_hides_the_targets_writes() {
    let (url, db, f) = seeded_db().await;
    let ttl = Duration::from_secs(2);
    let t = boot(&url, |c| {
        c.keep_alive = true;
        c.read_cache_ttl = ttl;
    })
    .await;
    let a = t.http_addr;
    let close = [("Connection", "close")];
    let health = p(RouteId::DashboardHealth, &[PROJECT]);
    let get = |path: String| async move { request(a, "GET", &path, &close, "").await.json() };
    let n = |v: &Value, k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}"));
    let h0 = get(health.clone()).await;

    // A new issue through the target: the next GET sees it at once, the event after the flush.
    let key = f.api_key().to_string();
    let ev = r#"{"message":"read cache probe","level":"error"}"#;
    let r = request(a, "POST", "/api/v1/events", &[("x-sentry-auth", &key), ("Connection", "close")], ev).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let h1 = get(health.clone()).await;
    assert_eq!(n(&h1, "unresolved_count"), n(&h0, "unresolved_count") + 1, "{h0} → {h1}");
    t.flush().await;
    let h2 = get(health.clone()).await;
    assert_eq!(n(&h2, "events_24h"), n(&h0, "events_24h") + 1, "{h1} → {h2}");

    // A mutation route invalidates too.
    let id: String = sqlx::query_scalar("SELECT id::text FROM issues WHERE title = 'read cache probe'")
        .fetch_one(&db)
        .await
        .unwrap();
    let r = request(a, "POST", &p(RouteId::IssueResolve, &[&id]), &close, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h3 = get(health.clone()).await;
    assert_eq!(n(&h3, "unresolved_count"), n(&h0, "unresolved_count"), "{h2} → {h3}");

    // Behind the target's back: the cached answer is served until the TTL, then the fresh one.
    let before = get(health.clone()).await;
    let gone =
        count(&db, "WITH d AS (DELETE FROM issues WHERE status = 'unresolved' RETURNING 1) SELECT count(*) FROM d")
            .await;
    assert!(gone > 0);
    assert_eq!(get(health.clone()).await, before, "served from the cache within the TTL");
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(n(&get(health.clone()).await, "unresolved_count"), 0, "fresh after the TTL");
    t.shutdown(Duration::from_secs(2)).await;
}
