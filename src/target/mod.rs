//! `target`: the built-in Mesher-compatible server (HTTP + WebSocket on PostgreSQL) with
//! switchable planted faults. See the module docs of the server for deliberate differences.

pub mod faults;

use crate::cli::Global;
use anyhow::Result;
use clap::Args;

#[derive(Debug, Clone, Args)]
#[command(after_help = "Planted faults (--fault NAME[=PARAM], repeatable): see the documentation of each below.")]
pub struct TargetArgs {
    /// HTTP port (Mesher: MESHER_HTTP_PORT, default 8080). 0 picks a free port.
    #[arg(long, env = "MESHER_HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// WebSocket port (Mesher: MESHER_WS_PORT, default 8081). 0 picks a free port.
    #[arg(long, env = "MESHER_WS_PORT", default_value_t = 8081)]
    pub ws_port: u16,
    /// Address to bind both listeners to. Loopback by default.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// PostgreSQL to use. Without it, a throwaway cluster is started with the schema and fixtures.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// With --database-url: also create the schema and seed the fixtures (idempotent).
    #[arg(long)]
    pub prepare_db: bool,
    /// Keep connections alive (Mesher closes every connection; use this for driver benchmarks only).
    #[arg(long)]
    pub keep_alive: bool,
    /// Switch on a planted fault; repeatable.
    #[arg(long = "fault", value_name = "NAME[=PARAM]", value_parser = faults::Fault::parse)]
    pub faults: Vec<faults::Fault>,
}

/// `mesher-stress target`.
pub async fn main(args: TargetArgs, _g: &Global) -> Result<u8> {
    anyhow::bail!("the built-in target is under construction ({} faults asked)", args.faults.len())
}
