//! Deterministic fixtures: the rows Mesher's routes need to return successful, non-empty
//! answers (`docs/mesher-interface.md` §5.3), with fixed ids that generators and checks reuse.
//!
//! Seeding is idempotent (`ON CONFLICT DO NOTHING`): it works on an empty throwaway database and
//! on a real Mesher database, and never deletes anything (use [`super::schema::reset`] for that).
//! Ids follow the spec's examples: org `1111…`, users `2222…`, project `3333…` (slug `default`),
//! issues `4444…`, API keys `5555…`, events `6666…`, alert rules `7777…`, alerts `8888…`,
//! memberships `9999…`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

pub const ORG_ID: &str = "11111111-1111-1111-1111-111111111111";
pub const ORG_SLUG: &str = "stress-org";
/// The user of the seed report's member check; deliberately *not* a member after seeding.
pub const USER_ONE: &str = "22222222-2222-2222-2222-222222222222";
pub const PROJECT_ID: &str = "33333333-3333-3333-3333-333333333333";
pub const PROJECT_SLUG: &str = "default";
/// The seed report's issue id (§5.3).
pub const SEED_ISSUE: &str = "44444444-4444-4444-4444-444444444444";

/// How much to seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedOptions {
    /// Users besides `USER_ONE`; the first `members` of them become org members. The rest are
    /// free for `POST …/members` (each user can be added once).
    pub users: u32,
    /// Memberships seeded (user index 1 is the owner, the others `member`).
    pub members: u32,
    /// Live API keys.
    pub api_keys: u32,
    /// Issues, each with `events_per_issue` events received now.
    pub issues: u32,
    pub events_per_issue: u32,
    /// Alert rules, each with one `active` and one `acknowledged` alert.
    pub alert_rules: u32,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions { users: 256, members: 4, api_keys: 4, issues: 8, events_per_issue: 3, alert_rules: 4 }
    }
}

/// The ids of everything seeded: plain data handed to generators, checks and the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fixtures {
    pub org_id: String,
    pub org_slug: String,
    pub project_id: String,
    pub project_slug: String,
    /// All seeded users; `users[0]` is `USER_ONE`.
    pub users: Vec<String>,
    /// Users that are members of the org after seeding (`members[i]` is `memberships[i]`'s user).
    pub member_users: Vec<String>,
    pub memberships: Vec<String>,
    /// Live API keys: (id, raw key value).
    pub api_keys: Vec<(String, String)>,
    /// A revoked key: (id, raw key value). Ingestion with it must get 401.
    pub revoked_key: (String, String),
    pub issues: Vec<String>,
    pub events: Vec<String>,
    pub alert_rules: Vec<String>,
    /// Alerts in state `active`.
    pub active_alerts: Vec<String>,
    /// Alerts in state `acknowledged`.
    pub acknowledged_alerts: Vec<String>,
}

fn id(prefix: char, n: u32) -> String {
    let p: String = std::iter::repeat_n(prefix, 8).collect();
    let q: String = std::iter::repeat_n(prefix, 4).collect();
    format!("{p}-{q}-{q}-{q}-{n:012}")
}

/// A deterministic key in Mesher's format `mshr_` + 48 lowercase hex characters.
pub fn key_value(n: u32) -> String {
    let a = sha1_smol::Sha1::from(format!("mesher-stress api key {n}")).digest().to_string();
    let b = sha1_smol::Sha1::from(format!("mesher-stress api key {n} second half")).digest().to_string();
    format!("mshr_{}{}", a, &b[..8])
}

impl Fixtures {
    /// The fixture ids for `opts`, without touching a database.
    pub fn plan(opts: &SeedOptions) -> Fixtures {
        let mut users = vec![USER_ONE.to_string()];
        users.extend((1..=opts.users).map(|i| id('2', i)));
        let member_users: Vec<String> = (1..=opts.members.min(opts.users)).map(|i| id('2', i)).collect();
        let memberships = (1..=member_users.len() as u32).map(|i| id('9', i)).collect();
        let issues: Vec<String> = std::iter::once(SEED_ISSUE.to_string())
            .chain((1..opts.issues).map(|i| id('4', i)))
            .take(opts.issues as usize)
            .collect();
        let events = (1..=issues.len() as u32 * opts.events_per_issue).map(|i| id('6', i)).collect();
        let alert_rules: Vec<String> = (1..=opts.alert_rules).map(|i| id('7', i)).collect();
        Fixtures {
            org_id: ORG_ID.into(),
            org_slug: ORG_SLUG.into(),
            project_id: PROJECT_ID.into(),
            project_slug: PROJECT_SLUG.into(),
            users,
            member_users,
            memberships,
            api_keys: (1..=opts.api_keys).map(|i| (id('5', i), key_value(i))).collect(),
            revoked_key: (id('5', 999), key_value(999)),
            issues,
            events,
            active_alerts: (1..=opts.alert_rules).map(|i| id('8', i)).collect(),
            acknowledged_alerts: (1..=opts.alert_rules).map(|i| id('8', 100 + i)).collect(),
            alert_rules,
        }
    }

    /// Users that are not members of the org after seeding (free for `POST …/members`).
    pub fn free_users(&self) -> impl Iterator<Item = &str> {
        self.users.iter().filter(|u| !self.member_users.contains(u)).map(String::as_str)
    }

    /// Re-read which users are members of the org now (earlier phases, e.g. the `members` check
    /// or a previous load phase, and earlier runs on the same database add members), so that
    /// [`Fixtures::free_users`] only names users a `POST …/members` can really add.
    pub async fn refresh_members(&mut self, pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
        let now: Vec<String> = sqlx::query_scalar(
            "SELECT user_id::text FROM org_memberships WHERE org_id = $1::uuid ORDER BY joined_at, id",
        )
        .bind(&self.org_id)
        .fetch_all(pool)
        .await?;
        self.member_users = now;
        Ok(())
    }

    /// The first live API key's raw value.
    pub fn api_key(&self) -> &str {
        self.api_keys.first().map(|k| k.1.as_str()).unwrap_or("")
    }
}

/// What [`seed`] inserted (rows new in this call) per table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeedReport {
    pub inserted: Vec<(String, u64)>,
}

/// Insert the fixtures (idempotent) and return their ids.
///
/// One transaction under an advisory lock, so concurrent seeders of one database wait for each
/// other instead of racing on the same rows.
pub async fn seed(pool: &PgPool, opts: &SeedOptions) -> Result<(Fixtures, SeedReport)> {
    let f = Fixtures::plan(opts);
    let mut report = SeedReport::default();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7358190412)").execute(&mut *tx).await?;
    seed_tenancy(&mut tx, &f, &mut report).await?;
    seed_api_keys(&mut tx, &f, &mut report).await?;
    seed_issues_and_events(&mut tx, &f, opts, &mut report).await?;
    seed_alerts(&mut tx, &f, &mut report).await?;
    tx.commit().await?;
    Ok((f, report))
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Postgres>;

impl SeedReport {
    fn count(&mut self, table: &str, n: u64) {
        self.inserted.push((table.to_string(), n));
    }
}

/// The organization, its users, its project and its memberships.
async fn seed_tenancy(tx: &mut Tx<'_>, f: &Fixtures, report: &mut SeedReport) -> Result<()> {
    let n = sqlx::query(
        "INSERT INTO organizations (id, name, slug) VALUES ($1::uuid, 'Stress Org', $2) ON CONFLICT DO NOTHING",
    )
    .bind(&f.org_id)
    .bind(&f.org_slug)
    .execute(&mut **tx)
    .await
    .context("seeding organizations")?
    .rows_affected();
    report.count("organizations", n);

    let names: Vec<String> = f
        .users
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "User One".to_string() } else { format!("Stress User {i}") })
        .collect();
    let emails: Vec<String> = (0..f.users.len())
        .map(|i| if i == 0 { "u1@example.test".to_string() } else { format!("stress{i}@example.test") })
        .collect();
    let n = sqlx::query(
        "INSERT INTO users (id, email, password_hash, display_name)
         SELECT u::uuid, e, 'not-a-real-hash', d FROM unnest($1::text[], $2::text[], $3::text[]) AS t(u, e, d)
         ON CONFLICT DO NOTHING",
    )
    .bind(&f.users)
    .bind(&emails)
    .bind(&names)
    .execute(&mut **tx)
    .await
    .context("seeding users")?
    .rows_affected();
    report.count("users", n);

    let n = sqlx::query(
        "INSERT INTO projects (id, org_id, name, platform, slug) VALUES ($1::uuid, $2::uuid, 'Stress Project', 'python', $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(&f.project_id)
    .bind(&f.org_id)
    .bind(&f.project_slug)
    .execute(&mut **tx)
    .await
    .context("seeding projects")?
    .rows_affected();
    report.count("projects", n);

    seed_memberships(tx, f, report).await
}

async fn seed_memberships(tx: &mut Tx<'_>, f: &Fixtures, report: &mut SeedReport) -> Result<()> {
    let roles: Vec<String> =
        (0..f.memberships.len()).map(|i| if i == 0 { "owner".into() } else { "member".into() }).collect();
    let n = sqlx::query(
        "INSERT INTO org_memberships (id, user_id, org_id, role)
         SELECT m::uuid, u::uuid, $3::uuid, r FROM unnest($1::text[], $2::text[], $4::text[]) AS t(m, u, r)
         ON CONFLICT DO NOTHING",
    )
    .bind(&f.memberships)
    .bind(&f.member_users)
    .bind(&f.org_id)
    .bind(&roles)
    .execute(&mut **tx)
    .await
    .context("seeding org_memberships")?
    .rows_affected();
    report.count("org_memberships", n);

    Ok(())
}

/// The live API keys and the revoked one, in one statement.
async fn seed_api_keys(tx: &mut Tx<'_>, f: &Fixtures, report: &mut SeedReport) -> Result<()> {
    let mut key_ids: Vec<String> = f.api_keys.iter().map(|k| k.0.clone()).collect();
    let mut key_vals: Vec<String> = f.api_keys.iter().map(|k| k.1.clone()).collect();
    key_ids.push(f.revoked_key.0.clone());
    key_vals.push(f.revoked_key.1.clone());
    let n = sqlx::query(
        "INSERT INTO api_keys (id, project_id, key_value, label, revoked_at)
         SELECT k::uuid, $3::uuid, v, 'stress', CASE WHEN k = $4 THEN now() END FROM unnest($1::text[], $2::text[]) AS t(k, v)
         ON CONFLICT DO NOTHING",
    )
    .bind(&key_ids)
    .bind(&key_vals)
    .bind(&f.project_id)
    .bind(&f.revoked_key.0)
    .execute(&mut **tx)
    .await
    .context("seeding api_keys")?
    .rows_affected();
    report.count("api_keys", n);

    Ok(())
}

/// The issues and their events; events point at their issue and reuse its fingerprint.
async fn seed_issues_and_events(
    tx: &mut Tx<'_>,
    f: &Fixtures,
    opts: &SeedOptions,
    report: &mut SeedReport,
) -> Result<()> {
    let per = opts.events_per_issue.max(1) as usize;
    let titles: Vec<String> = (0..f.issues.len())
        .map(|i| if i == 0 { "Seed issue".to_string() } else { format!("Seed issue {i}") })
        .collect();
    let fps: Vec<String> =
        (0..f.issues.len()).map(|i| if i == 0 { "msg:seed".to_string() } else { format!("msg:seed {i}") }).collect();
    let n = sqlx::query(
        "INSERT INTO issues (id, project_id, fingerprint, title, level, event_count)
         SELECT i::uuid, $4::uuid, fp, t, 'error', $5 FROM unnest($1::text[], $2::text[], $3::text[]) AS x(i, fp, t)
         ON CONFLICT DO NOTHING",
    )
    .bind(&f.issues)
    .bind(&fps)
    .bind(&titles)
    .bind(&f.project_id)
    .bind(opts.events_per_issue as i32)
    .execute(&mut **tx)
    .await
    .context("seeding issues")?
    .rows_affected();
    report.count("issues", n);

    let ev_issue: Vec<String> = f.events.iter().enumerate().map(|(i, _)| f.issues[i / per].clone()).collect();
    let ev_fp: Vec<String> = f.events.iter().enumerate().map(|(i, _)| fps[i / per].clone()).collect();
    let ev_msg: Vec<String> = f.events.iter().enumerate().map(|(i, _)| format!("seed event {i}")).collect();
    let n = sqlx::query(
        "INSERT INTO events (id, project_id, issue_id, level, message, fingerprint, tags, stacktrace, exception, sdk_name, sdk_version)
         SELECT e::uuid, $5::uuid, i::uuid, 'error', m, fp, '{\"environment\":\"production\",\"release\":\"1.0.0\"}'::jsonb,
                '[{\"filename\":\"app.py\",\"function_name\":\"main\",\"lineno\":1}]'::jsonb,
                '{\"type_name\":\"SeedError\",\"value\":\"seeded\"}'::jsonb, 'mesher-stress', '0.1.0'
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(e, i, m, fp)
         WHERE NOT EXISTS (SELECT 1 FROM events WHERE events.id = e::uuid)",
    )
    .bind(&f.events)
    .bind(&ev_issue)
    .bind(&ev_msg)
    .bind(&ev_fp)
    .bind(&f.project_id)
    .execute(&mut **tx)
    .await
    .context("seeding events (is there a partition for today? run the schema step first)")?
    .rows_affected();
    report.count("events", n);

    Ok(())
}

/// The alert rules, each with one `active` and one `acknowledged` alert.
async fn seed_alerts(tx: &mut Tx<'_>, f: &Fixtures, report: &mut SeedReport) -> Result<()> {
    let n = sqlx::query(
        "INSERT INTO alert_rules (id, project_id, name, condition_json, action_json)
         SELECT r::uuid, $2::uuid, 'Seed rule ' || ord, '{\"condition_type\":\"threshold\",\"threshold\":10,\"window_minutes\":5}'::jsonb,
                '{\"type\":\"websocket\"}'::jsonb
         FROM unnest($1::text[]) WITH ORDINALITY AS x(r, ord) ON CONFLICT DO NOTHING",
    )
    .bind(&f.alert_rules)
    .bind(&f.project_id)
    .execute(&mut **tx)
    .await
    .context("seeding alert_rules")?
    .rows_affected();
    report.count("alert_rules", n);

    let n = sqlx::query(
        "INSERT INTO alerts (id, rule_id, project_id, status, message, condition_snapshot, acknowledged_at)
         SELECT a::uuid, r::uuid, $4::uuid, s, 'seeded', '{\"condition_type\":\"threshold\"}'::jsonb,
                CASE WHEN s = 'acknowledged' THEN now() END
         FROM unnest($1::text[], $2::text[], $3::text[]) AS x(a, r, s) ON CONFLICT DO NOTHING",
    )
    .bind(f.active_alerts.iter().chain(&f.acknowledged_alerts).cloned().collect::<Vec<_>>())
    .bind(f.alert_rules.iter().chain(&f.alert_rules).cloned().collect::<Vec<_>>())
    .bind(
        std::iter::repeat_n("active".to_string(), f.active_alerts.len())
            .chain(std::iter::repeat_n("acknowledged".to_string(), f.acknowledged_alerts.len()))
            .collect::<Vec<_>>(),
    )
    .bind(&f.project_id)
    .execute(&mut **tx)
    .await
    .context("seeding alerts")?
    .rows_affected();
    report.count("alerts", n);

    Ok(())
}
