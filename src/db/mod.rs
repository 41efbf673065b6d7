//! `db`: PostgreSQL for Mesher, through sqlx.
//!
//! - [`cluster`]: a throwaway PostgreSQL cluster started from the machine's own server binaries
//!   (loopback only, temporary directory, dropped privileges when run as root, stopped on drop).
//! - [`schema`]: Mesher's schema (`docs/mesher-interface.md` §5.2), idempotent, with daily event partitions.
//! - [`fixtures`]: deterministic fixtures (org, users, project, API keys, issues, events,
//!   memberships, alert rules, alerts) whose ids the generators reuse.

pub mod cluster;
pub mod fixtures;
pub mod schema;

pub use cluster::Cluster;
pub use fixtures::Fixtures;

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// Mesher's hard-coded database URL (§1.4).
pub const MESHER_URL: &str = "postgres://mesh:mesh@localhost:5432/mesher";

/// Connect a pool to `url`. Every session runs in UTC so timestamps print the same everywhere.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    let opts = PgConnectOptions::from_str(url)
        .with_context(|| format!("invalid database URL {url:?}"))?
        .options([("TimeZone", "UTC")])
        .disable_statement_logging();
    PgPoolOptions::new()
        .max_connections(max_connections)
        // No ping round trip before every checkout: it would double the database work of the
        // built-in target's cheapest routes. A broken connection still surfaces as an error.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))
}

/// A run's database (kept alive as long as it is needed).
pub struct Database {
    pub url: String,
    pub pool: PgPool,
    pub fixtures: Fixtures,
    /// The throwaway cluster, stopped when dropped.
    pub cluster: Option<Cluster>,
}

/// The database a profile asks for: a throwaway cluster unless it names a URL; schema and
/// fixtures as it says.
pub async fn setup(spec: &DatabaseSpec, fixtures: &fixtures::SeedOptions) -> Result<Database> {
    let (url, cluster) = match &spec.url {
        Some(u) => (u.clone(), None),
        None => {
            let c = Cluster::start()?;
            (c.url().to_string(), Some(c))
        }
    };
    let pool = connect(&url, 8).await?;
    if spec.schema {
        schema::apply(&pool).await?;
    }
    if spec.reset {
        schema::reset(&pool).await?;
    }
    let fixtures = if spec.seed { fixtures::seed(&pool, fixtures).await?.0 } else { Fixtures::plan(fixtures) };
    Ok(Database { url, pool, fixtures, cluster })
}

/// The URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://mesh:mesh@localhost:5432/mesher"),
            "postgres://mesh:***@localhost:5432/mesher"
        );
        assert_eq!(super::redact("postgres://localhost/x"), "postgres://localhost/x");
    }
}

/// The database. Without `url`, a throwaway PostgreSQL cluster is started for the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// An existing database (e.g. Mesher's `postgres://mesh:mesh@localhost:5432/mesher`).
    #[serde(default)]
    pub url: Option<String>,
    /// Create the schema (idempotent).
    #[serde(default = "yes")]
    pub schema: bool,
    /// Seed the fixtures (idempotent).
    #[serde(default = "yes")]
    pub seed: bool,
    /// Delete all rows of Mesher's tables first. Refused for a non-throwaway database unless
    /// this is set explicitly.
    #[serde(default)]
    pub reset: bool,
}

fn yes() -> bool {
    true
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        DatabaseSpec { url: None, schema: true, seed: true, reset: false }
    }
}
