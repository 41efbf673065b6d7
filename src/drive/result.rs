//! What a load phase measured, handed up to `report`: the aggregator's [`Totals`] and what the
//! driver knows besides them ([`PhaseFacts`]). `report::PhaseReport` is built from these; the
//! drive stage itself renders nothing.

use crate::drive::LoadPhase;
use crate::drive::flight::FlightEntry;
use crate::drive::metrics::Totals;
use crate::drive::plan::Planned;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A finished load phase: its configuration, the driver's facts and the aggregator's totals.
pub struct PhaseResult {
    pub phase: LoadPhase,
    pub facts: PhaseFacts,
    pub totals: Totals,
}

/// What the driver knows of a phase besides the aggregator's totals (at its end, or so far for a
/// running phase's window).
#[derive(Debug, Clone)]
pub struct PhaseFacts {
    pub planned: Planned,
    /// Requests sent (HTTP requests, WS frames/scripts/churn cycles, failed connects).
    pub sent: u64,
    /// Lane tasks that panicked.
    pub lane_panics: u64,
    pub started_at: SystemTime,
    /// From the start until the lanes ended.
    pub sending: Duration,
    /// From the start to the last send (absent: `sending` stands for it).
    pub send_span: Option<Duration>,
    /// From the start until the aggregator had every sample.
    pub elapsed: Duration,
    /// The phase was stopped early.
    pub interrupted: bool,
    /// Requests sent and never answered (from the flight recorder), oldest first.
    pub suspects: Vec<FlightEntry>,
    pub interval_log: Option<PathBuf>,
    /// Arrivals skipped because they fell due while the target was down.
    pub skipped_down: u64,
    /// Lanes aborted at the end (their requests in flight are `sent` but not measured: they
    /// count as interrupted).
    pub lanes_aborted: u64,
}
