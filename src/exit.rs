//! Exit codes, documented in `mesher-stress --help` and the README. Distinct so that CI can act.

/// Everything passed.
pub const SUCCESS: u8 = 0;
/// A check, threshold or invariant failed, or a baseline regression (the target stayed up).
pub const FAILED: u8 = 1;
/// Command-line usage error (clap's own code).
pub const USAGE: u8 = 2;
/// The target crashed or hung (and nothing else failed).
pub const CRASHED: u8 = 3;
/// Both: something failed and the target crashed or hung.
pub const FAILED_AND_CRASHED: u8 = 4;
/// The tool could not do its job: bad profile, unreachable target, database or disk error.
pub const TOOL_ERROR: u8 = 5;
/// Interrupted by Ctrl-C / SIGTERM (after writing the report of what was measured).
pub const INTERRUPTED: u8 = 130;

/// The exit code for a verdict.
pub fn verdict(failed: bool, crashed: bool) -> u8 {
    match (failed, crashed) {
        (false, false) => SUCCESS,
        (true, false) => FAILED,
        (false, true) => CRASHED,
        (true, true) => FAILED_AND_CRASHED,
    }
}

/// Text for `--help`.
pub const HELP: &str = "Exit codes: 0 all passed · 1 a check/threshold/invariant failed or a baseline regression · 2 usage error · \
3 the target crashed or hung · 4 both 1 and 3 · 5 tool or configuration error · 130 interrupted";
