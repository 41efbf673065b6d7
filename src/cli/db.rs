//! `mesher-stress db …`: throwaway PostgreSQL, schema and fixtures from the command line.

use super::Global;
use crate::db::{Cluster, connect, fixtures, redact, schema};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Start a throwaway PostgreSQL (loopback, temporary directory) with Mesher's schema and
    /// fixtures, print its URL, and keep it running until Ctrl-C (then stop it and delete it).
    Up {
        /// Do not create the schema and fixtures.
        #[arg(long)]
        bare: bool,
    },
    /// Create Mesher's schema and today's event partitions (idempotent, never drops anything).
    Schema {
        #[arg(long, env = "DATABASE_URL", default_value = crate::db::MESHER_URL)]
        database_url: String,
    },
    /// Seed the deterministic fixtures (idempotent) and print their ids.
    Seed {
        #[arg(long, env = "DATABASE_URL", default_value = crate::db::MESHER_URL)]
        database_url: String,
        /// Delete all rows of Mesher's tables first.
        #[arg(long)]
        reset: bool,
        /// Create the schema first.
        #[arg(long)]
        schema: bool,
    },
}

pub async fn main(args: DbArgs, g: &Global) -> Result<u8> {
    match args.command {
        DbCommand::Up { bare } => {
            let cluster = Cluster::start()?;
            let url = cluster.url().to_string();
            let mut out = serde_json::json!({ "url": url, "pid": cluster.pid(), "dir": cluster.dir() });
            if !bare {
                let pool = connect(&url, 2).await?;
                let s = schema::apply(&pool).await?;
                let (f, r) = fixtures::seed(&pool, &Default::default()).await?;
                out["schema"] = serde_json::to_value(&s)?;
                out["fixtures"] = serde_json::to_value(&f)?;
                out["seeded"] = serde_json::to_value(&r)?;
                pool.close().await;
            }
            if g.json {
                println!("{out}");
            } else {
                println!("{url}");
                if !g.quiet {
                    eprintln!(
                        "throwaway PostgreSQL running (pid {}); Ctrl-C stops it and deletes its data",
                        cluster.pid().unwrap_or(0)
                    );
                }
            }
            crate::signals::interrupted().await;
            cluster.stop();
            Ok(crate::exit::SUCCESS)
        }
        DbCommand::Schema { database_url } => {
            let pool = connect(&database_url, 2).await?;
            let s = schema::apply(&pool).await?;
            if g.json {
                println!("{}", serde_json::to_string(&s)?);
            } else if !g.quiet {
                println!(
                    "schema ready on {}: {} tables, partitions {}",
                    redact(&database_url),
                    s.tables.len(),
                    s.partitions.join(", ")
                );
            }
            Ok(crate::exit::SUCCESS)
        }
        DbCommand::Seed { database_url, reset, schema: with_schema } => {
            let pool = connect(&database_url, 2).await?;
            if with_schema {
                schema::apply(&pool).await?;
            }
            if reset {
                schema::reset(&pool).await?;
            }
            let (f, r) = match fixtures::seed(&pool, &Default::default()).await {
                Ok(x) => x,
                Err(e) => {
                    bail!("{e:#}\n  (does the schema exist? `mesher-stress db schema --database-url …` creates it)")
                }
            };
            if g.json {
                println!("{}", serde_json::json!({ "fixtures": f, "seeded": r }));
            } else if !g.quiet {
                for (t, n) in &r.inserted {
                    println!("{t:>16}: {n} new rows");
                }
                println!(
                    "org {} · project {} (slug {}) · api key {}",
                    f.org_id,
                    f.project_id,
                    f.project_slug,
                    f.api_key()
                );
            }
            Ok(crate::exit::SUCCESS)
        }
    }
}
