//! `triage`: turn "the target died" into one small, verified reproducer per distinct crash.
//!
//! Pipeline (each step is its own file; change behaviour there):
//! - [`exec`] (`crate::wire::blocking`): the blocking replay executor (raw HTTP bytes over a
//!   fresh socket; WebSocket handshake + hand-encoded frames). Blocking std sockets: triage is
//!   serial by nature.
//! - [`target`]: [`target::TargetFactory`] / [`target::TargetHandle`] — how a fresh target is
//!   started, how its death is noticed (waiter thread on the child, instant) and classified.
//!   [`target::CommandFactory`] spawns any command (Mesher, the built-in target, a test server)
//!   and reads the `[mesh-rt] ... listening on ADDR` lines for its addresses.
//! - [`oracle`]: "does sending X (serially / at concurrency c) reproduce death D?" — reuses the
//!   running target until it dies, confirms a death on a fresh target when the target had aged
//!   (so cumulative crashes cannot masquerade as culprits), detects hangs with a probe.
//! - [`attribution`]: suspects (flight recorder) → culprit input, culprit set, cumulative count or
//!   hang.
//! - [`shrink`]: ddmin, hierarchical JSON delta debugging, HTTP/WS shrinking.
//! - [`kind`]: [`kind::CrashKind`] (single, set, cumulative) and [`kind::Verdict`] (how triage of
//!   one death ended), spelled as the bucket files and reports spell them.
//! - [`bucket`]: signatures, JSON skeletons, the on-disk corpus (`corpus/crashes/`), reproducer
//!   files written atomically, the bucket table.
//! - [`session`]: one observed crash in stages ([`session::Triager::on_crash`]): fast paths and
//!   attribution ([`session::Attributed`]), then [`file`]: minimisation ([`file::Minimised`]),
//!   the bucket key ([`file::signature`]), counting or filing with rates and gdb frames.
//! - [`records`]: triage of a load phase's saved deaths within a budget
//!   ([`records::triage_records`]).
//! - [`fuzz`]: the fuzz+triage loop ([`fuzz::fuzz_phase`]); [`phase`]: the profile's `fuzz` phase.

pub mod attribution;
pub mod bucket;
pub mod file;
pub mod fuzz;
pub mod kind;
/// The blocking single-request executor (it lives in `wire`; triage replays through it).
pub use crate::wire::blocking as exec;
pub mod oracle;
pub mod phase;
pub mod records;
pub mod session;
pub mod shrink;
pub mod target;

pub use crate::watch::death::{Death, signal_name};

/// A death seen in a load phase with the exact inputs in flight around it (the flight
/// recorder's suspects: unanswered first, then the latest answered), as saved in the run
/// directory (`deaths/death-N.json`). Triage of the phase and `minimize --run` read it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeathRecord {
    /// The load phase's name.
    pub phase: String,
    /// 1-based number of the death in the run.
    pub n: usize,
    /// Wall-clock time of the death (RFC 3339, milliseconds).
    pub at: String,
    pub death: Death,
    /// How the process ended (for a hang: how the kill ended it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<crate::watch::ExitInfo>,
    /// The target's description (its command line).
    #[serde(default)]
    pub target: String,
    pub suspects: Vec<crate::model::Generated>,
    /// How many of the first suspects are hot: in flight or failing when it died, or answered
    /// within a second of it (for a hang: of the send of the first request that never got its
    /// answer).
    #[serde(default)]
    pub hot: usize,
    /// The routes of the hot suspects (what was in flight, or answered, when it happened).
    #[serde(default)]
    pub hot_routes: Vec<String>,
}
