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
//!
//! Memory stays flat in long runs: counts are exact, but each kind of id (and the event
//! fingerprints, which are nearly unique per event) is kept for checking only up to
//! [`SAMPLE_MAX`]; beyond that a deterministic hash sample is kept (an id is in it when the
//! low `level` bits of its hash are zero; the level rises by one each time the sample is full,
//! halving it). Every event of a sampled fingerprint is counted, so the per-fingerprint
//! comparison stays exact for the sample, and a failing invariant still names the missing ids
//! of the sample. Summaries say when a sample was checked.

use crate::api::{Route, RouteId, match_route};
use crate::drive::http::exchange;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The stored fingerprint of each event in an ingestion body (one object, or a bulk array), by
/// Mesher's grouping rule (§4) as the built-in target implements it.
///
/// The same answer as `parse_events` + `fingerprint` on `serde_json::Value`s for every body the
/// target can parse (a test checks it; only accepted bodies are observed), without building the parts of an event grouping never reads: a mutated event with a
/// 100 000-element array in `extra` costs tens of MB as a `Value` and nothing here.
pub fn fingerprints(body: &[u8], bulk: bool) -> Vec<String> {
    use crate::reference::ingest::{BULK_MAX, fingerprint, storable_fingerprint};
    let Ok(top) = serde_json::from_slice::<Slim>(body) else { return Vec::new() };
    let of = |e: Slim| match e {
        Slim::Object(m) => Some(storable_fingerprint(fingerprint(&m))),
        _ => None,
    };
    match top {
        Slim::Array(items) if bulk && (1..=BULK_MAX).contains(&items.len()) => {
            items.into_iter().filter_map(of).collect()
        }
        Slim::Array(_) => Vec::new(),
        single => of(single).into_iter().collect(),
    }
}

/// A JSON value reduced to what grouping reads: objects keep only the members `fingerprint`
/// looks at (the last of duplicate keys wins, as in `serde_json::Map`); arrays are kept one
/// level down (a bulk body's events), everything else is validated and dropped.
enum Slim {
    Object(serde_json::Map<String, serde_json::Value>),
    Array(Vec<Slim>),
    Other,
}

impl<'de> Deserialize<'de> for Slim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Slim, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct V {
            top: bool,
        }
        impl<'de> Visitor<'de> for V {
            type Value = Slim;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Slim, A::Error> {
                let mut m = serde_json::Map::new();
                let mut number = false;
                while let Some(k) = a.next_key::<String>()? {
                    // serde_json's arbitrary-precision feature (enabled by a dependency) hands
                    // numbers to visitors as a one-member map under this key.
                    if k == "$serde_json::private::Number" {
                        number = true;
                        a.next_value::<IgnoredAny>()?;
                    } else if matches!(k.as_str(), "message" | "fingerprint" | "stacktrace" | "exception") {
                        let v: serde_json::Value = a.next_value()?;
                        m.insert(k, v);
                    } else {
                        a.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(if number { Slim::Other } else { Slim::Object(m) })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Slim, A::Error> {
                let mut items = Vec::new();
                if self.top {
                    while let Some(x) = a.next_element_seed(Seed)? {
                        items.push(x);
                    }
                } else {
                    while a.next_element::<IgnoredAny>()?.is_some() {}
                }
                Ok(Slim::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Slim, E> {
                Ok(Slim::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Slim, E> {
                Ok(Slim::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Slim, E> {
                Ok(Slim::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Slim, E> {
                Ok(Slim::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Slim, E> {
                Ok(Slim::Other)
            }
            fn visit_unit<E>(self) -> Result<Slim, E> {
                Ok(Slim::Other)
            }
        }
        /// An element of the top-level array: objects slimmed, arrays skipped.
        struct Seed;
        impl<'de> serde::de::DeserializeSeed<'de> for Seed {
            type Value = Slim;
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Slim, D::Error> {
                d.deserialize_any(V { top: false })
            }
        }
        d.deserialize_any(V { top: true })
    }
}

/// Most ids (or fingerprints) of one kind kept for checking (see the module docs).
pub const SAMPLE_MAX: usize = 4_096;

/// 64-bit FNV-1a with a final mix: stable across runs and builds (no random hasher keys).
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Ids of one kind with a value each (a count for fingerprints): all of them up to `max`, then
/// a hash sample (see the module docs). `observed` counts every insertion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sampled<V> {
    kept: BTreeMap<String, V>,
    observed: u64,
    level: u32,
    max: usize,
}

impl<V: Default> Sampled<V> {
    pub fn new(max: usize) -> Sampled<V> {
        Sampled { kept: BTreeMap::new(), observed: 0, level: 0, max: max.max(1) }
    }

    /// Is `id` in the sample at the current level?
    pub fn keeps(&self, id: &str) -> bool {
        self.level == 0 || stable_hash(id) & ((1u64 << self.level.min(63)) - 1) == 0
    }

    /// Note `id` (and update its value when it is kept).
    pub fn insert_with(&mut self, id: String, f: impl FnOnce(&mut V)) {
        self.observed += 1;
        if !self.keeps(&id) {
            return;
        }
        f(self.kept.entry(id).or_default());
        while self.kept.len() > self.max && self.level < 63 {
            self.level += 1;
            let level = self.level;
            self.kept.retain(|k, _| level == 0 || stable_hash(k) & ((1u64 << level) - 1) == 0);
        }
    }

    pub fn insert(&mut self, id: String) {
        self.insert_with(id, |_| {});
    }

    /// Forget `id` (whether or not it was kept).
    pub fn remove(&mut self, id: &str) -> Option<V> {
        self.kept.remove(id)
    }

    /// The kept ids, in order.
    pub fn ids(&self) -> Vec<String> {
        self.kept.keys().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.kept.iter()
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Insertions seen (exact).
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// True when only a sample is kept.
    pub fn sampled(&self) -> bool {
        self.level > 0
    }

    /// `" (a 1/2^L hash sample of N checked)"`, or nothing when everything is kept.
    fn note(&self) -> String {
        if self.sampled() {
            format!(" (a 1/{} hash sample of {} checked)", 1u64 << self.level.min(63), self.kept.len())
        } else {
            String::new()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    /// Accepted events per fingerprint (single-event route and WebSocket ingest).
    events: Sampled<u64>,
    /// Events accepted (single-event route and WebSocket ingest), exact.
    events_total: u64,
    /// Events accepted through the bulk route (subject to sampling).
    bulk_events: u64,
    /// Created and not removed (a removal takes the id out).
    members_created: Sampled<()>,
    members_removed: Sampled<()>,
    keys_created: Sampled<()>,
    keys_revoked: Sampled<()>,
    /// Created and not deleted (a deletion takes the id out).
    rules_created: Sampled<()>,
    rules_deleted: Sampled<()>,
    issues_deleted: Sampled<()>,
}

impl Seen {
    fn new(max: usize) -> Seen {
        Seen {
            events: Sampled::new(max),
            events_total: 0,
            bulk_events: 0,
            members_created: Sampled::new(max),
            members_removed: Sampled::new(max),
            keys_created: Sampled::new(max),
            keys_revoked: Sampled::new(max),
            rules_created: Sampled::new(max),
            rules_deleted: Sampled::new(max),
            issues_deleted: Sampled::new(max),
        }
    }
}

/// What the run saw the target accept. Thread-safe.
#[derive(Debug)]
pub struct Ledger {
    seen: Mutex<Seen>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::with_sample_max(SAMPLE_MAX)
    }
}

/// A path argument as PostgreSQL's `uuid` input reads it: braces, upper case and hyphens in other
/// places (`{A0EEBC99-…}`, `a0eebc999c0b…`) name the same row as the canonical lower-case
/// hyphenated form, which is what the checks compare with. Anything else is kept as it is.
pub fn canonical_id(s: &str) -> String {
    let inner = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(s);
    let hex: String = inner.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) && !inner.starts_with('-') && !inner.ends_with('-')
    {
        let h = hex.to_ascii_lowercase();
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    } else {
        s.to_string()
    }
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

    /// A ledger that keeps at most `max` ids of each kind for checking (tests use small ones).
    pub fn with_sample_max(max: usize) -> Ledger {
        Ledger { seen: Mutex::new(Seen::new(max)) }
    }

    /// Record one answered HTTP request: `method`, raw `target` (path and query), the request
    /// body, and the response status and body.
    pub fn observe(&self, method: &str, target: &str, request_body: &[u8], status: u16, response_body: &[u8]) {
        if !(200..300).contains(&status) {
            return;
        }
        let path = target.split('?').next().unwrap_or(target);
        let Some(m) = match_route(method, path) else { return };
        let arg = |i: usize| m.args.get(i).map(|s| canonical_id(s)).unwrap_or_default();
        let mut s = self.seen.lock().expect("ledger lock");
        match m.route.id {
            RouteId::EventsIngest if status == 202 => {
                for fp in fingerprints(request_body, false) {
                    s.events_total += 1;
                    s.events.insert_with(fp, |n| *n += 1);
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
                s.members_created.remove(&arg(1));
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
                s.rules_created.remove(&arg(0));
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
            s.events_total += 1;
            s.events.insert_with(fp, |n| *n += 1);
        }
    }

    /// Number of accepted events recorded.
    pub fn accepted_events(&self) -> u64 {
        self.seen.lock().expect("ledger lock").events_total
    }

    /// Event fingerprints kept for checking (all of them, or the hash sample).
    pub fn checked_fingerprints(&self) -> usize {
        self.seen.lock().expect("ledger lock").events.len()
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
            // Ids are JSON strings: the quoted tokens of the body (Mesher's lists are not always
            // valid JSON), looked up in a set, so long runs' lists are checked in linear time.
            let body = String::from_utf8_lossy(&r.body);
            let tokens: std::collections::HashSet<&str> = body.split('"').collect();
            ids.iter()
                .filter(|id| !tokens.contains(id.as_str()))
                .map(|id| format!("{id} (not listed by GET {path})"))
                .collect()
        }
        Ok(r) => vec![format!("GET {path} answered {}", r.status)],
        Err(e) => vec![format!("GET {path}: {e}")],
    }
}

/// Check every invariant against what `ledger` saw.
pub async fn check(ledger: &Ledger, t: &CheckTarget<'_>) -> sqlx::Result<Vec<InvariantResult>> {
    // A copy (bounded: see SAMPLE_MAX): the ledger goes on recording, and a later check (e.g. at
    // the end of a soak) sees everything.
    let seen = ledger.seen.lock().expect("ledger lock").clone();
    let mut out = vec![events_stored(&seen, t).await?];
    out.extend(members(&seen, t).await?);
    out.extend(api_keys(&seen, t).await?);
    out.extend(alert_rules(&seen, t).await?);
    out.push(issue_counts(t).await?);
    Ok(out)
}

/// Every accepted event is stored: wait for the flush, then compare per fingerprint (the kept
/// ones); events of issues discarded meanwhile are not owed.
async fn events_stored(seen: &Seen, t: &CheckTarget<'_>) -> sqlx::Result<InvariantResult> {
    let expected = seen.events_total;
    let checked = seen.events.ids();
    let deadline = Instant::now() + t.flush_wait;
    let (stored, short) = loop {
        let rows: Vec<(String, i64, bool)> = sqlx::query_as(
            "SELECT e.fingerprint, count(*), bool_or(i.status = 'discarded')
             FROM events e LEFT JOIN issues i ON i.id = e.issue_id
             WHERE e.project_id = $1::uuid AND e.received_at >= $2::timestamptz AND e.fingerprint = ANY($3)
             GROUP BY e.fingerprint",
        )
        .bind(t.project_id)
        .bind(t.since)
        .bind(&checked)
        .fetch_all(t.pool)
        .await?;
        let discarded: BTreeSet<String> = sqlx::query_scalar(
            "SELECT fingerprint FROM issues WHERE project_id = $1::uuid AND status = 'discarded' AND fingerprint = ANY($2)",
        )
        .bind(t.project_id)
        .bind(&checked)
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
    Ok(verdict(
        "events-stored",
        format!(
            "{expected} events answered 202 (plus {} bulk events, subject to sampling), {stored} stored since the run started{}",
            seen.bulk_events,
            if seen.events.sampled() {
                format!(
                    " for the {} fingerprints checked (a 1/{} hash sample)",
                    seen.events.len(),
                    1u64 << seen.events.level.min(63)
                )
            } else {
                String::new()
            }
        ),
        short,
    ))
}

/// Memberships created are there (database and list route); memberships removed are gone.
async fn members(seen: &Seen, t: &CheckTarget<'_>) -> sqlx::Result<[InvariantResult; 2]> {
    let members = seen.members_created.ids();
    let mut missing = absent(t.pool, "SELECT id::text FROM org_memberships WHERE id::text = ANY($1)", &members).await?;
    missing.extend(listed(t.http, RouteId::MembersList, t.org_id, &members).await);
    let exist = verdict(
        "members-exist",
        format!("{} memberships created and not removed{}", members.len(), seen.members_created.note()),
        missing,
    );

    let removed = seen.members_removed.ids();
    let still = absent(t.pool, "SELECT id::text FROM org_memberships WHERE id::text = ANY($1)", &removed).await?;
    let still: Vec<String> = removed.iter().filter(|i| !still.contains(i)).cloned().collect();
    let gone = verdict(
        "members-removed",
        format!("{} memberships removed{}", seen.members_removed.observed(), seen.members_removed.note()),
        still,
    );
    Ok([exist, gone])
}

/// API keys created are there (database and list route); keys revoked are marked revoked.
async fn api_keys(seen: &Seen, t: &CheckTarget<'_>) -> sqlx::Result<[InvariantResult; 2]> {
    let keys = seen.keys_created.ids();
    let mut missing = absent(t.pool, "SELECT key_value FROM api_keys WHERE key_value = ANY($1)", &keys).await?;
    missing.extend(listed(t.http, RouteId::ApiKeysList, t.project_id, &keys).await);
    let exist = verdict(
        "api-keys-exist",
        format!("{} API keys created{}", seen.keys_created.observed(), seen.keys_created.note()),
        missing,
    );

    let revoked = seen.keys_revoked.ids();
    let not_revoked =
        absent(t.pool, "SELECT id::text FROM api_keys WHERE id::text = ANY($1) AND revoked_at IS NOT NULL", &revoked)
            .await?;
    let gone = verdict(
        "api-keys-revoked",
        format!("{} API keys revoked{}", seen.keys_revoked.observed(), seen.keys_revoked.note()),
        not_revoked,
    );
    Ok([exist, gone])
}

/// Alert rules created are there (database and list route); rules deleted are gone.
async fn alert_rules(seen: &Seen, t: &CheckTarget<'_>) -> sqlx::Result<[InvariantResult; 2]> {
    let rules = seen.rules_created.ids();
    let mut missing = absent(t.pool, "SELECT id::text FROM alert_rules WHERE id::text = ANY($1)", &rules).await?;
    missing.extend(listed(t.http, RouteId::AlertRulesList, t.project_id, &rules).await);
    let exist = verdict(
        "alert-rules-exist",
        format!("{} alert rules created and not deleted{}", rules.len(), seen.rules_created.note()),
        missing,
    );

    let deleted = seen.rules_deleted.ids();
    let present = absent(t.pool, "SELECT id::text FROM alert_rules WHERE id::text = ANY($1)", &deleted).await?;
    let still: Vec<String> = deleted.iter().filter(|i| !present.contains(i)).cloned().collect();
    let gone = verdict(
        "alert-rules-deleted",
        format!("{} alert rules deleted{}", seen.rules_deleted.observed(), seen.rules_deleted.note()),
        still,
    );
    Ok([exist, gone])
}

/// Every issue's `event_count` matches the events stored under it.
async fn issue_counts(t: &CheckTarget<'_>) -> sqlx::Result<InvariantResult> {
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
    Ok(verdict(
        "issue-counts",
        format!("{total} issues; event_count compared with stored events"),
        bad.into_iter().map(|(id, c, n)| format!("issue {id}: event_count {c}, {n} events stored")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: the target's own path over whole `serde_json::Value`s.
    fn fingerprints_by_value(body: &[u8], bulk: bool) -> Vec<String> {
        use crate::reference::ingest::{fingerprint, parse_events, storable_fingerprint};
        parse_events(body, bulk)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_object().map(|o| storable_fingerprint(fingerprint(o))))
            .collect()
    }

    #[test]
    fn slim_fingerprints_equal_the_targets_over_edge_cases_and_generated_events() {
        let huge = format!(r#"{{"message":"m","extra":{{"a":[{}]}}}}"#, vec![r#"{"x":[1,{"y":2}]}"#; 5000].join(","));
        let mut bodies: Vec<Vec<u8>> = [
            r#"{"message":"Hello 0xA"}"#,
            r#"{"message":"a","message":"b"}"#,
            r#"{"fingerprint":["x",1],"message":"a"}"#,
            r#"{"fingerprint":"","exception":{"type_name":"E","value":"0xFF"}}"#,
            r#"{"stacktrace":[{"filename":"a.js","function_name":"f"},{"filename":null}],"message":"M"}"#,
            r#"{"stacktrace":[],"exception":{"type_name":null}}"#,
            r#"[{"message":"a"},{"fingerprint":"f"},3,"s",[{"message":"inner"}],null]"#,
            r#"[]"#,
            r#"{"message":"a"} trailing"#,
            r#"not json"#,
            r#"42"#,
            r#"{"message":{"nested":[1,2]},"tags":{"k":"v"}}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        bodies.push(huge.into_bytes());
        bodies.push(format!("[{}]", vec![r#"{"message":"x"}"#; 101].join(",")).into_bytes());
        // Generated events, valid and mutated, single and bulk.
        use crate::generate::{GenOptions, Generator, Mix};
        use crate::model::Source;
        let mut mix = Mix::only(crate::model::Layer::Valid);
        (mix.valid, mix.json) = (0.5, 0.5);
        mix.routes =
            [("*".to_string(), 0.0), ("events-ingest".to_string(), 1.0), ("events-bulk".to_string(), 1.0)].into();
        let fixtures = crate::db::fixtures::Fixtures::plan(&crate::db::fixtures::SeedOptions::default());
        let src = Generator::new(7, fixtures, mix, GenOptions::default());
        for n in 0..800 {
            if let crate::model::Payload::Http(r) = src.generate(0, n).payload
                && matches!(r.route, Some(RouteId::EventsIngest) | Some(RouteId::EventsBulk))
            {
                bodies.push(r.body);
            }
        }
        assert!(bodies.len() > 100, "generated events: {}", bodies.len());
        let mut compared = 0;
        for b in &bodies {
            for bulk in [false, true] {
                // Only bodies the target can parse are ever accepted (observed); skipped members
                // are not checked for lone surrogates or invalid UTF-8, so a body the target
                // rejects may still get fingerprints here.
                if crate::reference::ingest::parse_events(b, bulk).is_err() {
                    continue;
                }
                compared += 1;
                assert_eq!(
                    fingerprints(b, bulk),
                    fingerprints_by_value(b, bulk),
                    "{}",
                    String::from_utf8_lossy(&b[..b.len().min(200)])
                );
            }
        }
        assert!(compared > 100, "compared {compared}");
    }

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
        assert_eq!(s.events.iter().collect::<Vec<_>>(), vec![(&"msg:a".to_string(), &1)]);
        // Removed: no longer expected to exist, expected to be gone.
        assert!(s.members_created.is_empty() && s.members_removed.ids() == ["m1"]);
        assert!(s.keys_revoked.is_empty());
    }

    #[test]
    fn ids_in_other_uuid_spellings_are_recorded_canonically() {
        let c = "55555555-5555-5555-5555-000000000004";
        assert_eq!(canonical_id("{55555555-5555-5555-5555-000000000004}"), c);
        assert_eq!(canonical_id("555555555555555555550000000000 04".replace(' ', "").as_str()), c);
        assert_eq!(canonical_id("5555-5555-5555-5555-5555-0000-0000-0004"), c);
        assert_eq!(canonical_id("{55555555-5555-5555-5555-00000000000A}"), "55555555-5555-5555-5555-00000000000a");
        for raw in ["not-a-uuid", "-55555555555555555555000000000004", "{}", ""] {
            assert_eq!(canonical_id(raw), raw);
        }
        // A mutated path removing a membership with a braced id takes the canonical id out.
        let l = Ledger::new();
        l.observe("POST", "/api/v1/orgs/o/members", b"{}", 201, format!("{{\"id\":\"{c}\"}}").as_bytes());
        l.observe("POST", &format!("/api/v1/orgs/o/members/{{{c}}}/remove"), b"", 200, br#"{"affected":1}"#);
        let s = l.seen.lock().unwrap();
        assert!(s.members_created.is_empty() && s.members_removed.ids() == [c]);
    }

    #[test]
    fn a_full_sample_halves_deterministically_and_counts_stay_exact() {
        let mut s: Sampled<u64> = Sampled::new(100);
        for i in 0..10_000 {
            // Each id twice: counts of kept ids are exact.
            for _ in 0..2 {
                s.insert_with(format!("fp-{i}"), |n| *n += 1);
            }
        }
        assert_eq!(s.observed(), 20_000);
        assert!(s.sampled() && s.len() <= 100 && s.len() >= 10, "{} kept at level {}", s.len(), s.level);
        assert!(s.iter().all(|(_, n)| *n == 2));
        // The sample is a pure function of the ids: the same ids in another order, same sample.
        let mut t: Sampled<u64> = Sampled::new(100);
        for i in (0..10_000).rev() {
            t.insert_with(format!("fp-{i}"), |n| *n += 2);
        }
        assert_eq!(s.ids(), t.ids());
        // Kept ids are exactly those the level keeps.
        let kept: BTreeSet<String> = s.ids().into_iter().collect();
        for i in 0..10_000 {
            let id = format!("fp-{i}");
            assert_eq!(kept.contains(&id), s.keeps(&id), "{id}");
        }
        assert!(s.remove(&s.ids()[0]).is_some());
    }

    #[test]
    fn ledger_memory_is_bounded_by_the_sample() {
        let l = Ledger::with_sample_max(64);
        for i in 0..5000 {
            l.observe("POST", "/api/v1/events", format!("{{\"message\":\"m {i}\"}}").as_bytes(), 202, b"{}");
            l.observe(
                "POST",
                "/api/v1/projects/p/api-keys",
                b"{}",
                201,
                format!("{{\"key_value\":\"k{i}\"}}").as_bytes(),
            );
        }
        assert_eq!(l.accepted_events(), 5000);
        let s = l.seen.lock().unwrap();
        assert!(s.events.len() <= 64 && s.keys_created.len() <= 64);
        assert_eq!(s.keys_created.observed(), 5000);
    }
}
