//! "Nothing lost": what the run saw the target accept, checked against its database (sqlx) and
//! its own GET routes after (or during) a run.
//!
//! The driver feeds a [`Ledger`] with every answered request ([`Ledger::observe`]); cheap
//! (a mutex taken only for the few routes that create or remove something). [`check`] then
//! reports each invariant as passed / failed with the missing ids:
//!
//! | invariant | holds when |
//! |---|---|
//! | `events-stored` | per fingerprint, events stored since the run started ≥ events answered 202 by `POST /api/v1/events` and WebSocket ingest (after the flush delay; events of issues discarded by the end are excluded, and bulk events are only counted: Mesher answers 202 and drops those by design — discard, sampling) |
//! | `members-exist` | every membership created with 201 and not removed exists, and `GET …/members` lists it |
//! | `members-removed` | every membership removed with `affected: 1` is gone |
//! | `api-keys-exist` | every key created with 201 exists, and `GET …/api-keys` lists it |
//! | `api-keys-revoked` | every key revoked with `affected: 1` has `revoked_at` set |
//! | `alert-rules-exist` | every rule created with 201 and not deleted exists, and `GET …/alert-rules` lists it |
//! | `alert-rules-deleted` | every rule deleted with 200 is gone |
//! | `issue-counts` | every issue's `event_count` equals its stored events |

use crate::api::{Route, RouteId, match_route};
use crate::checks::exchange;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The stored fingerprint of each event in an ingestion body (one object, or a bulk array), by
/// Mesher's grouping rule (§4) as the built-in target implements it.
pub fn fingerprints(body: &[u8], bulk: bool) -> Vec<String> {
    use crate::target::ingest::{fingerprint, parse_events, storable_fingerprint};
    parse_events(body, bulk)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_object().map(|o| storable_fingerprint(fingerprint(o))))
        .collect()
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Seen {
    /// Accepted events per fingerprint (single-event route and WebSocket ingest).
    events: BTreeMap<String, u64>,
    /// Events accepted through the bulk route (subject to sampling).
    bulk_events: u64,
    members_created: BTreeSet<String>,
    members_removed: BTreeSet<String>,
    keys_created: BTreeSet<String>,
    keys_revoked: BTreeSet<String>,
    rules_created: BTreeSet<String>,
    rules_deleted: BTreeSet<String>,
    issues_deleted: BTreeSet<String>,
}

/// What the run saw the target accept. Thread-safe.
#[derive(Debug, Default)]
pub struct Ledger {
    seen: Mutex<Seen>,
}

fn json_str(body: &[u8], key: &str) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?.get(key)?.as_str().map(String::from)
}

fn affected_one(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v.get("affected")?.as_u64()) == Some(1)
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Record one answered HTTP request: `method`, raw `target` (path and query), the request
    /// body, and the response status and body.
    pub fn observe(&self, method: &str, target: &str, request_body: &[u8], status: u16, response_body: &[u8]) {
        if !(200..300).contains(&status) {
            return;
        }
        let path = target.split('?').next().unwrap_or(target);
        let Some(m) = match_route(method, path) else { return };
        let arg = |i: usize| m.args.get(i).map(|s| s.to_string()).unwrap_or_default();
        let mut s = self.seen.lock().expect("ledger lock");
        match m.route.id {
            RouteId::EventsIngest if status == 202 => {
                for fp in fingerprints(request_body, false) {
                    *s.events.entry(fp).or_default() += 1;
                }
            }
            // Bulk events are sampled by the project's sample_rate (§2.3): a 202 does not promise
            // storage, so they are counted but not held to the invariant.
            RouteId::EventsBulk if status == 202 => s.bulk_events += fingerprints(request_body, true).len() as u64,
            RouteId::MembersAdd if status == 201 => {
                if let Some(id) = json_str(response_body, "id") {
                    s.members_created.insert(id);
                }
            }
            RouteId::MemberRemove if affected_one(response_body) => {
                s.members_removed.insert(arg(1));
            }
            RouteId::ApiKeysCreate if status == 201 => {
                if let Some(k) = json_str(response_body, "key_value") {
                    s.keys_created.insert(k);
                }
            }
            RouteId::ApiKeyRevoke if affected_one(response_body) => {
                s.keys_revoked.insert(arg(0));
            }
            RouteId::AlertRulesCreate if status == 201 => {
                if let Some(id) = json_str(response_body, "id") {
                    s.rules_created.insert(id);
                }
            }
            RouteId::AlertRuleDelete => {
                s.rules_deleted.insert(arg(0));
            }
            RouteId::IssueDelete if affected_one(response_body) => {
                s.issues_deleted.insert(arg(0));
            }
            _ => {}
        }
    }

    /// Record an event accepted over the WebSocket ingest path.
    pub fn observe_ws_event(&self, frame: &[u8]) {
        let mut s = self.seen.lock().expect("ledger lock");
        for fp in fingerprints(frame, false) {
            *s.events.entry(fp).or_default() += 1;
        }
    }

    /// Number of accepted events recorded.
    pub fn accepted_events(&self) -> u64 {
        self.seen.lock().expect("ledger lock").events.values().sum()
    }
}

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvariantResult {
    pub name: String,
    pub passed: bool,
    /// What was compared (counts).
    pub summary: String,
    /// Ids (or fingerprints) that break it; at most 50 listed.
    pub missing: Vec<String>,
}

/// Where to check: the database, the project, and (optionally) the target's HTTP address for the
/// "visible through its GET route" half.
pub struct CheckTarget<'a> {
    pub pool: &'a PgPool,
    pub project_id: &'a str,
    pub org_id: &'a str,
    pub http: Option<SocketAddr>,
    /// Events stored at or after this database time count (the run's start, `now()` text).
    pub since: &'a str,
    /// How long to wait for accepted events to be flushed.
    pub flush_wait: Duration,
}

fn verdict(name: &str, summary: String, mut missing: Vec<String>) -> InvariantResult {
    let passed = missing.is_empty();
    missing.truncate(50);
    InvariantResult { name: name.into(), passed, summary, missing }
}

async fn absent(pool: &PgPool, sql: &'static str, ids: &[String]) -> sqlx::Result<Vec<String>> {
    let present: Vec<String> = sqlx::query_scalar(sql).bind(ids).fetch_all(pool).await?;
    Ok(ids.iter().filter(|i| !present.contains(i)).cloned().collect())
}

async fn listed(http: Option<SocketAddr>, route: RouteId, arg: &str, ids: &[String]) -> Vec<String> {
    let Some(addr) = http else { return Vec::new() };
    if ids.is_empty() {
        return Vec::new();
    }
    let path = Route::get(route).path(&[arg]);
    match exchange(addr, "GET", &path, &[], Vec::new(), Duration::from_secs(10)).await {
        Ok(r) if r.status == 200 => {
            let body = String::from_utf8_lossy(&r.body);
            ids.iter()
                .filter(|id| !body.contains(id.as_str()))
                .map(|id| format!("{id} (not listed by GET {path})"))
                .collect()
        }
        Ok(r) => vec![format!("GET {path} answered {}", r.status)],
        Err(e) => vec![format!("GET {path}: {e}")],
    }
}

/// Check every invariant against what `ledger` saw.
pub async fn check(ledger: &Ledger, t: &CheckTarget<'_>) -> sqlx::Result<Vec<InvariantResult>> {
    let seen = std::mem::take(&mut *ledger.seen.lock().expect("ledger lock"));
    let mut out = Vec::new();

    // Events: wait for the flush, then compare per fingerprint.
    let expected: u64 = seen.events.values().sum();
    let deadline = Instant::now() + t.flush_wait;
    let (stored, short) = loop {
        let rows: Vec<(String, i64, bool)> = sqlx::query_as(
            "SELECT e.fingerprint, count(*), bool_or(i.status = 'discarded')
             FROM events e LEFT JOIN issues i ON i.id = e.issue_id
             WHERE e.project_id = $1::uuid AND e.received_at >= $2::timestamptz GROUP BY e.fingerprint",
        )
        .bind(t.project_id)
        .bind(t.since)
        .fetch_all(t.pool)
        .await?;
        let discarded: BTreeSet<String> =
            sqlx::query_scalar("SELECT fingerprint FROM issues WHERE project_id = $1::uuid AND status = 'discarded'")
                .bind(t.project_id)
                .fetch_all(t.pool)
                .await?
                .into_iter()
                .collect();
        let stored: BTreeMap<String, i64> = rows.iter().map(|r| (r.0.clone(), r.1)).collect();
        let short: Vec<String> = seen
            .events
            .iter()
            .filter(|(fp, _)| !discarded.contains(*fp))
            .filter_map(|(fp, n)| {
                let s = stored.get(fp).copied().unwrap_or(0);
                (s < *n as i64).then(|| format!("fingerprint {fp:?}: {n} accepted, {s} stored"))
            })
            .collect();
        if short.is_empty() || Instant::now() > deadline {
            break (stored.values().sum::<i64>(), short);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    out.push(verdict(
        "events-stored",
        format!(
            "{expected} events answered 202 (plus {} bulk events, subject to sampling), {stored} stored since the run started",
            seen.bulk_events
        ),
        short,
    ));

    let live = |c: &BTreeSet<String>, r: &BTreeSet<String>| c.difference(r).cloned().collect::<Vec<_>>();
    let members = live(&seen.members_created, &seen.members_removed);
    let mut missing = absent(t.pool, "SELECT id::text FROM org_memberships WHERE id::text = ANY($1)", &members).await?;
    missing.extend(listed(t.http, RouteId::MembersList, t.org_id, &members).await);
    out.push(verdict("members-exist", format!("{} memberships created and not removed", members.len()), missing));

    let removed: Vec<String> = seen.members_removed.iter().cloned().collect();
    let still = absent(t.pool, "SELECT id::text FROM org_memberships WHERE id::text = ANY($1)", &removed).await?;
    let still: Vec<String> = removed.iter().filter(|i| !still.contains(i)).cloned().collect();
    out.push(verdict("members-removed", format!("{} memberships removed", removed.len()), still));

    let keys: Vec<String> = seen.keys_created.iter().cloned().collect();
    let mut missing = absent(t.pool, "SELECT key_value FROM api_keys WHERE key_value = ANY($1)", &keys).await?;
    missing.extend(listed(t.http, RouteId::ApiKeysList, t.project_id, &keys).await);
    out.push(verdict("api-keys-exist", format!("{} API keys created", keys.len()), missing));

    let revoked: Vec<String> = seen.keys_revoked.iter().cloned().collect();
    let not_revoked =
        absent(t.pool, "SELECT id::text FROM api_keys WHERE id::text = ANY($1) AND revoked_at IS NOT NULL", &revoked)
            .await?;
    out.push(verdict("api-keys-revoked", format!("{} API keys revoked", revoked.len()), not_revoked));

    let rules = live(&seen.rules_created, &seen.rules_deleted);
    let mut missing = absent(t.pool, "SELECT id::text FROM alert_rules WHERE id::text = ANY($1)", &rules).await?;
    missing.extend(listed(t.http, RouteId::AlertRulesList, t.project_id, &rules).await);
    out.push(verdict("alert-rules-exist", format!("{} alert rules created and not deleted", rules.len()), missing));

    let deleted: Vec<String> = seen.rules_deleted.iter().cloned().collect();
    let present = absent(t.pool, "SELECT id::text FROM alert_rules WHERE id::text = ANY($1)", &deleted).await?;
    let still: Vec<String> = deleted.iter().filter(|i| !present.contains(i)).cloned().collect();
    out.push(verdict("alert-rules-deleted", format!("{} alert rules deleted", deleted.len()), still));

    let bad: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT i.id::text, i.event_count, (SELECT count(*) FROM events e WHERE e.issue_id = i.id)
         FROM issues i WHERE i.project_id = $1::uuid
           AND i.event_count <> (SELECT count(*) FROM events e WHERE e.issue_id = i.id)",
    )
    .bind(t.project_id)
    .fetch_all(t.pool)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM issues WHERE project_id = $1::uuid")
        .bind(t.project_id)
        .fetch_one(t.pool)
        .await?;
    out.push(verdict(
        "issue-counts",
        format!("{total} issues; event_count compared with stored events"),
        bad.into_iter().map(|(id, c, n)| format!("issue {id}: event_count {c}, {n} events stored")).collect(),
    ));

    // Put back what we took, so a later check (e.g. at the end of a soak) sees everything.
    *ledger.seen.lock().expect("ledger lock") = seen;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_of_single_and_bulk_bodies() {
        assert_eq!(fingerprints(br#"{"message":"Hello 0xA"}"#, false), vec!["msg:hello a"]);
        assert_eq!(fingerprints(br#"[{"message":"a"},{"fingerprint":"f"}]"#, true), vec!["msg:a", "f"]);
        assert!(fingerprints(b"not json", false).is_empty());
    }

    #[test]
    fn ledger_records_only_successful_creations_and_removals() {
        let l = Ledger::new();
        l.observe("POST", "/api/v1/events", br#"{"message":"a"}"#, 202, b"{}");
        l.observe("POST", "/api/v1/events", br#"{"message":"a"}"#, 401, b"{}");
        l.observe("POST", "/api/v1/orgs/o/members", b"{}", 201, br#"{"id":"m1"}"#);
        l.observe("POST", "/api/v1/orgs/o/members/m1/remove", b"", 200, br#"{"status":"ok","affected":1}"#);
        l.observe("POST", "/api/v1/api-keys/k1/revoke", b"", 200, br#"{"status":"ok","affected":0}"#);
        let s = l.seen.lock().unwrap();
        assert_eq!(s.events.get("msg:a"), Some(&1));
        assert!(s.members_created.contains("m1") && s.members_removed.contains("m1"));
        assert!(s.keys_revoked.is_empty());
    }
}
