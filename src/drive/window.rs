//! [`PhaseWindow`]: the report so far of a load phase that is still running, for checkpoints.
//!
//! The caller puts a `PhaseWindow` into the [`crate::drive::PhaseCtx`]; while the phase runs,
//! [`PhaseWindow::snapshot`] asks the phase's aggregator for a copy of its totals (the aggregator
//! answers between two sample batches and flushes the interval log to disk first) and builds a
//! [`PhaseReport`] from it: closed timeline intervals, histograms, thresholds evaluated on what
//! was measured so far. Requests still in flight are not in it (`requests_sent` counts the
//! measured ones). The lanes never see any of this: the hot path is unchanged.

use crate::drive::LoadPhase;
use crate::drive::metrics::Totals;
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
    pub ask: mpsc::UnboundedSender<oneshot::Sender<Totals>>,
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
    /// asking.
    pub async fn snapshot(&self) -> Option<PhaseReport> {
        let (reply, answer) = oneshot::channel();
        let (phase, planned, started_at, start, interval_log) = {
            let g = self.lock();
            let p = g.as_ref()?;
            p.ask.send(reply).ok()?;
            (p.phase.clone(), p.planned.clone(), p.started_at, p.start, p.interval_log.clone())
        };
        let totals = answer.await.ok()?;
        let measured: u64 =
            totals.pairs.iter().filter(|(k, _)| k.outcome.is_request()).map(|(_, p)| p.corrected.len()).sum();
        let elapsed = Instant::now().saturating_duration_since(start);
        Some(PhaseReport::build(BuildInput {
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
        }))
    }
}
