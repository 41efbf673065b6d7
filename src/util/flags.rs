//! The flags every command accepts; the commands (`crate::cli`) and the run below them read them.

use clap::Args;
use std::path::PathBuf;

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
