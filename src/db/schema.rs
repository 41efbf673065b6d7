//! Mesher's schema (`docs/mesher-interface.md` §5.2), created idempotently, plus the daily `events_YYYYMMDD`
//! partitions Mesher itself would create at startup.

use anyhow::{Context, Result};
use sqlx::PgPool;

/// The DDL of §5.2 with `IF NOT EXISTS` everywhere, and the secondary indexes of §5.1.
pub const SCHEMA_SQL: &str = r#"
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE IF NOT EXISTS organizations (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL,
  slug text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text NOT NULL UNIQUE,
  password_hash text NOT NULL, display_name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS org_memberships (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  role text NOT NULL DEFAULT 'member', joined_at timestamptz NOT NULL DEFAULT now(), UNIQUE (user_id, org_id));
CREATE INDEX IF NOT EXISTS idx_org_memberships_user ON org_memberships(user_id);
CREATE INDEX IF NOT EXISTS idx_org_memberships_org ON org_memberships(org_id);
CREATE TABLE IF NOT EXISTS sessions (token text PRIMARY KEY, user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz NOT NULL DEFAULT now() + interval '7 days');
CREATE TABLE IF NOT EXISTS projects (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE, name text NOT NULL, platform text, slug text,
  retention_days integer NOT NULL DEFAULT 90, sample_rate real NOT NULL DEFAULT 1.0,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE UNIQUE INDEX IF NOT EXISTS idx_projects_slug ON projects(slug) WHERE slug IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_projects_org ON projects(org_id);
CREATE TABLE IF NOT EXISTS api_keys (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE, key_value text NOT NULL UNIQUE,
  label text NOT NULL DEFAULT 'default', created_at timestamptz NOT NULL DEFAULT now(), revoked_at timestamptz);
CREATE INDEX IF NOT EXISTS idx_api_keys_project ON api_keys(project_id);
CREATE INDEX IF NOT EXISTS idx_api_keys_value_live ON api_keys(key_value) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS issues (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), project_id uuid NOT NULL, fingerprint text NOT NULL,
  title text NOT NULL, level text NOT NULL, status text NOT NULL DEFAULT 'unresolved',
  event_count integer NOT NULL DEFAULT 0, first_seen timestamptz NOT NULL DEFAULT now(),
  last_seen timestamptz NOT NULL DEFAULT now(), assigned_to uuid REFERENCES users(id), UNIQUE (project_id, fingerprint));
CREATE INDEX IF NOT EXISTS idx_issues_project_status ON issues(project_id, status);
CREATE INDEX IF NOT EXISTS idx_issues_project_last_seen ON issues(project_id, last_seen DESC);
CREATE TABLE IF NOT EXISTS events (id uuid NOT NULL DEFAULT gen_random_uuid(), project_id uuid NOT NULL, issue_id uuid NOT NULL,
  level text NOT NULL, message text NOT NULL, fingerprint text NOT NULL, exception jsonb, stacktrace jsonb,
  breadcrumbs jsonb, tags jsonb NOT NULL DEFAULT '{}', extra jsonb NOT NULL DEFAULT '{}', user_context jsonb,
  sdk_name text, sdk_version text, received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, received_at))
  PARTITION BY RANGE (received_at);
CREATE INDEX IF NOT EXISTS idx_events_project_received ON events(project_id, received_at DESC);
CREATE INDEX IF NOT EXISTS idx_events_issue_received ON events(issue_id, received_at DESC);
CREATE INDEX IF NOT EXISTS idx_events_level_received ON events(level, received_at DESC);
CREATE INDEX IF NOT EXISTS idx_events_fingerprint ON events(fingerprint);
CREATE INDEX IF NOT EXISTS idx_events_tags ON events USING gin (tags jsonb_path_ops);
CREATE TABLE IF NOT EXISTS alert_rules (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE, name text NOT NULL,
  condition_json jsonb NOT NULL, action_json jsonb NOT NULL, enabled boolean NOT NULL DEFAULT true,
  cooldown_minutes integer NOT NULL DEFAULT 60, last_fired_at timestamptz, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS idx_alert_rules_project_enabled ON alert_rules(project_id) WHERE enabled;
CREATE TABLE IF NOT EXISTS alerts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  rule_id uuid NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
  project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE, status text NOT NULL DEFAULT 'active',
  message text NOT NULL, condition_snapshot jsonb NOT NULL, triggered_at timestamptz NOT NULL DEFAULT now(),
  acknowledged_at timestamptz, resolved_at timestamptz);
CREATE INDEX IF NOT EXISTS idx_alerts_project_status ON alerts(project_id, status);
CREATE INDEX IF NOT EXISTS idx_alerts_rule ON alerts(rule_id);
CREATE INDEX IF NOT EXISTS idx_alerts_triggered ON alerts(triggered_at DESC);
"#;

/// Daily partitions `events_YYYYMMDD` from yesterday to `days_ahead` days ahead (UTC dates, as
/// the sessions opened by [`super::connect`] run in UTC). Same names as Mesher's, so its own
/// `IF NOT EXISTS` startup step sees them.
pub fn partitions_sql(days_ahead: u32) -> String {
    format!(
        "DO $$ DECLARE d date; BEGIN
           FOR i IN -1..{days_ahead} LOOP
             d := (now() AT TIME ZONE 'UTC')::date + i;
             EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                            'events_' || to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE 'UTC',
                            (d + 1)::timestamp AT TIME ZONE 'UTC');
           END LOOP; END $$;"
    )
}

/// What [`apply`] did, for the user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SchemaReport {
    pub tables: Vec<String>,
    pub partitions: Vec<String>,
}

/// Create the schema and partitions (idempotent: safe on an existing Mesher database, never
/// drops anything). Concurrent callers are serialised with an advisory lock.
pub async fn apply(pool: &PgPool) -> Result<SchemaReport> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7358190411)").execute(&mut *tx).await?;
    sqlx::raw_sql(SCHEMA_SQL).execute(&mut *tx).await.context("creating Mesher's schema")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(partitions_sql(7)))
        .execute(&mut *tx)
        .await
        .context("creating event partitions")?;
    tx.commit().await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r','p') AND NOT c.relispartition ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    Ok(SchemaReport { tables, partitions })
}

/// Delete every row of Mesher's tables (for `--reset`). Never called implicitly.
pub async fn reset(pool: &PgPool) -> Result<()> {
    sqlx::raw_sql(
        "TRUNCATE alerts, alert_rules, events, issues, api_keys, projects, sessions, org_memberships, users, organizations CASCADE",
    )
    .execute(pool)
    .await
    .context("resetting Mesher's tables")?;
    Ok(())
}
