//! The command line (clap derive). Each subcommand's arguments live with the stage that runs it;
//! this file only assembles them and holds the global flags.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "mesher-stress",
    version,
    about = "Load, fuzz and soak stress tester for Mesher, with crash triage",
    long_about = "mesher-stress drives Mesher (or any Mesher-compatible server) over HTTP and WebSocket, \
watches the target process, and turns what it sees into reports and a pass/fail verdict.\n\n\
Start with:  mesher-stress run profiles/smoke.toml\n\
(starts a throwaway PostgreSQL and the built-in Mesher-compatible target, runs the checks, a short load over every route and the nothing-lost invariants; exits 0 on success)",
    after_help = crate::exit::HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every subcommand.
#[derive(Debug, Clone, Args, Default)]
pub struct Global {
    /// Run seed: every generated input derives from it (default: the profile's, else random and printed).
    #[arg(long, global = true, value_name = "N")]
    pub seed: Option<u64>,
    /// Run directory to write reports into (default: <profile output.dir>/<profile name>-<timestamp>).
    #[arg(long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print nothing but errors and the final verdict line.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Machine-readable JSON on stdout instead of human text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Allow targets that are not loopback addresses (load goes only to 127.0.0.0/8 and ::1 otherwise).
    #[arg(long, global = true)]
    pub allow_remote: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a profile: set up the database and target, run its phases, write reports, exit with the verdict.
    Run(crate::run::RunArgs),
    /// Serve the built-in Mesher-compatible target (HTTP :8080, WebSocket :8081) with optional planted faults.
    Target(crate::target::TargetArgs),
    /// Re-render report.html and junit.xml of a run directory from its report.json; `report compare
    /// A B` compares run B with baseline run A (regressions per route).
    Report(crate::report::ReportArgs),
    /// Throwaway PostgreSQL, Mesher's schema and fixtures.
    Db(crate::db::cli::DbArgs),
    /// Replay crash reproducers (corpus/crashes/...) against a target: still crashing / fixed / flaky.
    Replay(crate::triage::cli::ReplayArgs),
    /// Attribute, minimise and bucket a crashing request given by hand (raw HTTP or JSON).
    Minimize(crate::triage::cli::MinimizeArgs),
    /// Regenerate inputs exactly from (seed, stream, index): JSON or wire bytes.
    Gen(crate::generate::cli::GenArgs),
    /// Fire load at a URL (GETs to one path, optional WebSocket lanes): table, report.json, verdict.
    Load(Box<crate::drive::cli::LoadArgs>),
}
