//! The lanes' side of measurement: a [`Sample`] per request, buffered in the lane's own
//! [`Recorder`] and handed to the aggregator in batches (no histogram, no lock on the hot path).

use super::outcome::{Key, Outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One measured request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub key: Key,
    /// From the intended send time (open loop) or the actual send (closed loop), µs.
    pub corrected_us: u64,
    /// From the actual send, µs.
    pub uncorrected_us: u64,
    /// Actual send − intended send, µs (0 in closed loop).
    pub lag_us: u64,
    /// When it ended.
    pub done: Instant,
    /// Failed because the target died (while it was down, or in flight when it died): counted
    /// with its outcome, left out of the latency histograms.
    pub down: bool,
}

impl Sample {
    /// A fan-out observation (not a request) of `us` microseconds, made at `now`.
    pub fn observation(key: Key, us: u64, now: Instant) -> Sample {
        Sample { key, corrected_us: us, uncorrected_us: us, lag_us: 0, done: now, down: false }
    }
}

const BATCH: usize = 128;
const BATCH_AGE: Duration = Duration::from_millis(50);

/// A lane's sample buffer (one per sending task; not shared).
pub struct Recorder {
    tx: mpsc::UnboundedSender<Vec<Sample>>,
    /// Where `sent` goes when the recorder is dropped (also when its lane is aborted).
    sent_total: Arc<AtomicU64>,
    buf: Vec<Sample>,
    since: Instant,
    /// Requests this lane sent (for the consistency check).
    pub sent: u64,
    /// Latest actual send time recorded (for the achieved rate).
    pub last_sent: Option<Instant>,
    /// The target's state from the run's watchdog: failures are marked [`Sample::down`] when
    /// it was down, or when it died while they were in flight (decided [`DEATH_GRACE`] after
    /// the failure, since the connection breaks before the death is noticed).
    pub target: Option<tokio::sync::watch::Receiver<crate::drive::TargetState>>,
    held: Vec<Sample>,
}

/// How long after a failure a noticed death still explains it.
pub const DEATH_GRACE: Duration = Duration::from_millis(500);

impl Recorder {
    /// Record a request intended for `intended`, actually sent at `sent`, finished at `done`;
    /// the corrected latency runs from `from` (see `lanes.rs`: the intended time when the lane
    /// was held up by earlier answers, else the actual send).
    #[inline]
    pub fn record(&mut self, key: Key, intended: Instant, from: Instant, sent: Instant, done: Instant) {
        let sample = Sample {
            key,
            corrected_us: done.saturating_duration_since(from.min(sent)).as_micros() as u64,
            uncorrected_us: done.saturating_duration_since(sent).as_micros() as u64,
            lag_us: sent.saturating_duration_since(intended).as_micros() as u64,
            done,
            down: false,
        };
        self.last_sent = self.last_sent.max(Some(sent));
        self.settle(done, false);
        let failed = !key.outcome.is_answer() && key.outcome != Outcome::Interrupted;
        match &self.target {
            Some(t) if failed => {
                if t.borrow().down {
                    self.push(Sample { down: true, ..sample }, done);
                } else {
                    self.held.push(sample);
                }
            }
            _ => self.push(sample, done),
        }
    }

    /// Decide held failures: the target died between their send and [`DEATH_GRACE`] after them
    /// (all of them when `all`, e.g. the lane is done).
    fn settle(&mut self, now: Instant, all: bool) {
        if self.held.is_empty() {
            return;
        }
        let died_at = self.target.as_ref().and_then(|t| t.borrow().died_at);
        let held = std::mem::take(&mut self.held);
        for s in held {
            if !all && s.done + DEATH_GRACE > now {
                self.held.push(s);
                continue;
            }
            let sent = s.done.checked_sub(Duration::from_micros(s.uncorrected_us)).unwrap_or(s.done);
            let down = died_at.is_some_and(|d| d >= sent && d <= s.done + DEATH_GRACE);
            self.push(Sample { down, ..s }, now);
        }
    }

    /// Record a ready-made sample (fan-out observations).
    pub fn push(&mut self, s: Sample, now: Instant) {
        if self.buf.is_empty() {
            self.since = now;
        }
        self.buf.push(s);
        if self.buf.len() >= BATCH || now.saturating_duration_since(self.since) >= BATCH_AGE {
            self.flush();
        }
    }

    /// The lane is about to wait until `next` (its next intended send): hand the buffer over
    /// now if that is more than the batch age away. Without it a lane that sends rarely (open
    /// loop, rate / lanes below ~20/s) delivers every other sample one lane period late, all
    /// lanes in step, and the per-second timeline, which counts samples as they arrive, shows
    /// a beat (e.g. 10, 124, 6, 114 … at a steady 60/s) instead of the rate.
    pub fn idle_until(&mut self, next: Instant) {
        if !self.buf.is_empty() && next.saturating_duration_since(Instant::now()) > BATCH_AGE {
            self.flush();
        }
    }

    /// Hand the buffer to the aggregator.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            let b = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
            let _ = self.tx.send(b);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.settle(Instant::now(), true);
        self.flush();
        self.sent_total.fetch_add(self.sent, Ordering::Relaxed);
    }
}

/// Makes [`Recorder`]s (cheap to clone); the aggregator runs until every sink and recorder is
/// gone.
#[derive(Clone)]
pub struct Sink {
    pub(super) tx: mpsc::UnboundedSender<Vec<Sample>>,
    pub(super) sent_total: Arc<AtomicU64>,
}

impl Sink {
    /// A recorder for a new lane.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            tx: self.tx.clone(),
            sent_total: self.sent_total.clone(),
            buf: Vec::with_capacity(BATCH),
            since: Instant::now(),
            sent: 0,
            last_sent: None,
            target: None,
            held: Vec::new(),
        }
    }
}
