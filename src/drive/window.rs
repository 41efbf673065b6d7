//! [`PhaseWindow`]: the report so far of a load phase that is still running, for checkpoints.
//!
//! The caller puts a `PhaseWindow` into the [`crate::drive::PhaseCtx`]; while the phase runs,
//! [`PhaseWindow::snapshot`] has the phase's aggregator build a [`PhaseReport`] from its totals
//! in place (between two sample batches, after flushing the interval log to disk; no copy of
//! the histograms): closed timeline intervals, histograms, thresholds evaluated on what was
//! measured so far. Requests still in flight are not in it (`requests_sent` counts the
//! measured ones). The lanes never see any of this: the hot path is unchanged.

use crate::drive::LoadPhase;
use crate::drive::metrics::{SnapshotFn, Totals};
use crate::report::{BuildInput, PhaseReport, Planned};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// See the module docs. Cheap to clone; empty between phases.
#[derive(Clone, Default)]
pub struct PhaseWindow {
    probe: Arc<Mutex<Option<Probe>>>,
}

/// What a snapshot needs besides the totals.
pub(crate) struct Probe {
    pub ask: mpsc::UnboundedSender<SnapshotFn>,
    pub phase: LoadPhase,
    pub planned: Planned,
    pub started_at: SystemTime,
    pub start: Instant,
    pub interval_log: Option<PathBuf>,
}

impl PhaseWindow {
    pub fn new() -> PhaseWindow {
        PhaseWindow::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Probe>> {
        self.probe.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The phase started (called by the driver).
    pub(crate) fn open(&self, probe: Probe) {
        *self.lock() = Some(probe);
    }

    /// The phase ended (called by the driver).
    pub(crate) fn close(&self) {
        *self.lock() = None;
    }

    /// Is a phase running?
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// The running phase's report so far; `None` between phases or when the phase ended while
    /// asking. The report is built by the aggregator from its totals in place.
    pub async fn snapshot(&self) -> Option<PhaseReport> {
        let (reply, answer) = oneshot::channel();
        {
            let g = self.lock();
            let p = g.as_ref()?;
            let (phase, planned, started_at, start, interval_log) =
                (p.phase.clone(), p.planned.clone(), p.started_at, p.start, p.interval_log.clone());
            let look: SnapshotFn = Box::new(move |totals: &Totals| {
                // Every request with an outcome: measured ones plus those that failed while the
                // target was down (counted, not measured), as the report counts them.
                let measured: u64 = totals
                    .pairs
                    .iter()
                    .filter(|(k, _)| k.outcome.is_request())
                    .map(|(k, p)| p.corrected.len() + totals.down.get(k).copied().unwrap_or(0))
                    .sum();
                let elapsed = Instant::now().saturating_duration_since(start);
                let _ = reply.send(PhaseReport::build(BuildInput {
                    phase: &phase,
                    planned,
                    totals,
                    sent: measured,
                    lane_panics: 0,
                    started_at,
                    sending: elapsed,
                    send_span: None,
                    elapsed,
                    interrupted: false,
                    suspects: Vec::new(),
                    interval_log,
                    skipped_down: 0,
                    lanes_aborted: 0,
                }));
            });
            p.ask.send(look).ok()?;
        }
        answer.await.ok()
    }
}
