//! The command line (clap derive): the top layer. Each subcommand's arguments and entry point
//! live in a file of this module (`cli/drive.rs` for `load`, …) or, for `run` and `target`, with
//! the module that runs them; this file assembles them and dispatches.

use clap::{Parser, Subcommand};

pub use crate::util::flags::Global;

pub mod db;
pub mod drive;
pub mod generate;
pub mod report;
pub mod triage;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a profile: set up the database and target, run its phases, write reports, exit with the verdict.
    Run(crate::run::RunArgs),
    /// Serve the built-in Mesher-compatible target (HTTP :8080, WebSocket :8081) with optional planted faults.
    Target(crate::reference::TargetArgs),
    /// Re-render report.html and junit.xml of a run directory from its report.json; `report compare
    /// A B` compares run B with baseline run A (regressions per route).
    Report(report::ReportArgs),
    /// Throwaway PostgreSQL, Mesher's schema and fixtures.
    Db(db::DbArgs),
    /// Replay crash reproducers (corpus/crashes/...) against a target: still crashing / fixed / flaky.
    Replay(triage::ReplayArgs),
    /// Attribute, minimise and bucket a crashing request given by hand (raw HTTP or JSON).
    Minimize(triage::MinimizeArgs),
    /// Regenerate inputs exactly from (seed, stream, index): JSON or wire bytes.
    Gen(generate::GenArgs),
    /// Fire load at a URL (GETs to one path, optional WebSocket lanes): table, report.json, verdict.
    Load(Box<drive::LoadArgs>),
}

/// Run one subcommand to its exit code.
pub async fn dispatch(command: Command, g: &Global) -> anyhow::Result<u8> {
    match command {
        Command::Run(a) => crate::run::main(a, g).await,
        Command::Target(a) => crate::reference::main(a, g).await,
        Command::Report(a) => report::main(a, g).await,
        Command::Db(a) => db::main(a, g).await,
        Command::Replay(a) => triage::replay_main(a, g).await,
        Command::Minimize(a) => triage::minimize_main(a, g).await,
        Command::Gen(a) => generate::main(a, g).await,
        Command::Load(a) => drive::main(a, g).await,
    }
}
