//! [`PhaseView`]: what a load phase that is still running measured so far, for checkpoints.
//!
//! The caller puts a `PhaseView` into the [`crate::drive::PhaseCtx`]; while the phase runs,
//! [`PhaseView::read`] runs the caller's function on the aggregator's totals in place
//! (between two sample batches, after flushing the interval log to disk; no copy of the
//! histograms), with the phase and its [`PhaseFacts`] so far: the report stage builds the report
//! so far from them (closed timeline intervals, histograms, thresholds evaluated on what was
//! measured). Requests still in flight are not in it (`sent` counts the measured ones). The
//! lanes never see any of this: the hot path is unchanged.

use crate::drive::LoadPhase;
use crate::drive::metrics::{SnapshotFn, Totals};
use crate::drive::plan::Planned;
use crate::drive::result::PhaseFacts;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// See the module docs. Cheap to clone; empty between phases.
#[derive(Clone, Default)]
pub struct PhaseView {
    probe: Arc<Mutex<Option<Probe>>>,
}

/// What a look needs besides the totals.
pub(crate) struct Probe {
    pub ask: mpsc::UnboundedSender<SnapshotFn>,
    pub phase: LoadPhase,
    pub planned: Planned,
    pub started_at: SystemTime,
    pub start: Instant,
    pub interval_log: Option<PathBuf>,
}

impl PhaseView {
    pub fn new() -> PhaseView {
        PhaseView::default()
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

    /// `look` applied to the running phase so far; `None` between phases or when the phase ended
    /// while asking. It runs in the aggregator, on its totals in place.
    pub async fn read<R: Send + 'static>(
        &self,
        look: impl FnOnce(&LoadPhase, PhaseFacts, &Totals) -> R + Send + 'static,
    ) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        {
            let g = self.lock();
            let p = g.as_ref()?;
            let (phase, planned, started_at, start, interval_log) =
                (p.phase.clone(), p.planned.clone(), p.started_at, p.start, p.interval_log.clone());
            let look: SnapshotFn = Box::new(move |totals: &Totals| {
                let elapsed = Instant::now().saturating_duration_since(start);
                let facts = PhaseFacts {
                    planned,
                    sent: totals.requests_with_outcome(),
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
                };
                let _ = reply.send(look(&phase, facts, totals));
            });
            p.ask.send(look).ok()?;
        }
        answer.await.ok()
    }
}
