//! Measurement: outcomes, per-lane sample buffers and the aggregator that owns every histogram.
//!
//! Lanes (the tasks that send) never touch a histogram or a lock: they push compact [`Sample`]s
//! into a local buffer and hand the buffer to the aggregator over a channel every 128 samples or
//! 50 ms. The aggregator task records into HdrHistograms (µs, 3 significant figures,
//! auto-resizing, so memory is bounded by the number of keys, not by the run length): one pair
//! (corrected from the intended send time, uncorrected from the actual send) per
//! route × layer × outcome, one per-second interval histogram for the timeline and the
//! HdrHistogram interval log, and one histogram of scheduler lag (actual − intended send).
//!
//! Long runs stay flat in memory: the timeline holds at most [`TIMELINE_MAX`] entries; when it
//! is full, neighbouring entries are merged and later entries cover twice as many seconds
//! ([`Second::span`]), so a 6-hour phase keeps ~2700 entries of 8 s while the interval log on
//! disk keeps every second. A running phase's totals can be read without stopping it or
//! copying them ([`Aggregator::snapshots`], for checkpoints).
//!
//! Change outcome kinds in [`Outcome`]; change what a timeline second holds in [`Second`].

use crate::model::Layer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// What happened to one request (or WebSocket frame / script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    #[serde(rename = "1xx")]
    S1xx,
    #[serde(rename = "2xx")]
    S2xx,
    #[serde(rename = "3xx")]
    S3xx,
    #[serde(rename = "4xx")]
    S4xx,
    #[serde(rename = "5xx")]
    S5xx,
    ConnectRefused,
    ConnectReset,
    ConnectTimeout,
    ConnectAddrNotAvailable,
    ConnectOther,
    /// Connection reset while the request was in flight.
    Reset,
    /// Request or body timeout.
    Timeout,
    /// The connection closed without (a complete) answer.
    Closed,
    /// An answer that is not HTTP / not a WebSocket handshake.
    BadResponse,
    /// WebSocket: a data frame came back (an ack); `{"error":..}` acks count here too when they
    /// are not recognisably errors — see [`Outcome::AckError`].
    AckOk,
    /// WebSocket: an ack whose text starts with `{"error"`.
    AckError,
    /// WebSocket: the server sent a Close frame instead of an ack.
    WsClose,
    /// Stream fan-out: the event arrived on a subscriber (not a request).
    Delivered,
    /// Stream fan-out: an accepted event never arrived within the fan-out timeout (not a request).
    Missed,
    /// The run was stopped (Ctrl-C or hard stop) while this request was in flight.
    Interrupted,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::S1xx => "1xx",
            Outcome::S2xx => "2xx",
            Outcome::S3xx => "3xx",
            Outcome::S4xx => "4xx",
            Outcome::S5xx => "5xx",
            Outcome::ConnectRefused => "connect-refused",
            Outcome::ConnectReset => "connect-reset",
            Outcome::ConnectTimeout => "connect-timeout",
            Outcome::ConnectAddrNotAvailable => "connect-addr-not-available",
            Outcome::ConnectOther => "connect-other",
            Outcome::Reset => "reset",
            Outcome::Timeout => "timeout",
            Outcome::Closed => "closed",
            Outcome::BadResponse => "bad-response",
            Outcome::AckOk => "ack-ok",
            Outcome::AckError => "ack-error",
            Outcome::WsClose => "ws-close",
            Outcome::Delivered => "delivered",
            Outcome::Missed => "missed",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// From an HTTP status code.
    pub fn from_status(code: u16) -> Outcome {
        match code {
            200..=299 => Outcome::S2xx,
            300..=399 => Outcome::S3xx,
            400..=499 => Outcome::S4xx,
            500..=599 => Outcome::S5xx,
            _ => Outcome::S1xx,
        }
    }

    /// True for samples that stand for a sent request/frame/script (everything but fan-out
    /// observations). The report checks: sum of request outcomes = requests sent.
    pub fn is_request(self) -> bool {
        !matches!(self, Outcome::Delivered | Outcome::Missed)
    }

    /// Errors for the error-rate threshold: 5xx and every transport failure. 4xx and WebSocket
    /// error acks are answers (fuzz traffic expects them); interrupted requests are not errors.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Outcome::S5xx
                | Outcome::ConnectRefused
                | Outcome::ConnectReset
                | Outcome::ConnectTimeout
                | Outcome::ConnectAddrNotAvailable
                | Outcome::ConnectOther
                | Outcome::Reset
                | Outcome::Timeout
                | Outcome::Closed
                | Outcome::BadResponse
                | Outcome::WsClose
                | Outcome::Missed
        )
    }

    /// Connect failures (the request never reached the target).
    pub fn is_connect_error(self) -> bool {
        matches!(
            self,
            Outcome::ConnectRefused
                | Outcome::ConnectReset
                | Outcome::ConnectTimeout
                | Outcome::ConnectAddrNotAvailable
                | Outcome::ConnectOther
        )
    }

    /// Classify a connect error.
    pub fn from_connect_error(e: &std::io::Error) -> Outcome {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => Outcome::ConnectRefused,
            K::ConnectionReset | K::ConnectionAborted => Outcome::ConnectReset,
            K::TimedOut => Outcome::ConnectTimeout,
            K::AddrNotAvailable | K::AddrInUse => Outcome::ConnectAddrNotAvailable,
            _ => match e.raw_os_error() {
                Some(libc::EADDRNOTAVAIL) | Some(libc::EADDRINUSE) => Outcome::ConnectAddrNotAvailable,
                Some(libc::ETIMEDOUT) => Outcome::ConnectTimeout,
                _ => Outcome::ConnectOther,
            },
        }
    }

    /// Classify an I/O error while a request was in flight.
    pub fn from_io_error(e: &std::io::Error) -> Outcome {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Outcome::Reset,
            K::TimedOut => Outcome::Timeout,
            K::UnexpectedEof => Outcome::Closed,
            K::InvalidData => Outcome::BadResponse,
            _ => Outcome::Closed,
        }
    }
}

/// What a histogram pair is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Route name (`api::Route::name`), `ws-ingest`, `ws-stream`, `ws-churn` or `unrouted`.
    pub route: &'static str,
    pub layer: Layer,
    pub outcome: Outcome,
}

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
}

const BATCH: usize = 128;
const BATCH_AGE: Duration = Duration::from_millis(50);

/// A lane's sample buffer (one per sending task; not shared).
pub struct Recorder {
    tx: mpsc::UnboundedSender<Vec<Sample>>,
    buf: Vec<Sample>,
    since: Instant,
    /// Requests this lane sent (for the consistency check).
    pub sent: u64,
    /// Latest actual send time recorded (for the achieved rate).
    pub last_sent: Option<Instant>,
}

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
        };
        self.last_sent = self.last_sent.max(Some(sent));
        self.push(sample, done);
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
        self.flush();
    }
}

/// Live figures for the progress display, updated by the aggregator (relaxed atomics).
#[derive(Debug, Default)]
pub struct Live {
    pub done: AtomicU64,
    pub errors: AtomicU64,
    /// p99 (corrected) of the last complete second, µs.
    pub p99_us: AtomicU64,
    /// Requests completed in the last complete second.
    pub last_rate: AtomicU64,
}

/// Most entries the timeline of a phase holds (see the module docs).
pub const TIMELINE_MAX: usize = 4096;

/// One interval of the timeline: one second, or `span` seconds in long phases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the phase started (end of the interval).
    pub t: u64,
    /// Seconds the interval covers (1 unless the phase outgrew [`TIMELINE_MAX`] seconds); the
    /// counts are totals over the interval, so a rate is `requests / span`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub span: u64,
    pub requests: u64,
    pub errors: u64,
    /// Counts per outcome name.
    pub outcomes: BTreeMap<String, u64>,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

fn one() -> u64 {
    1
}

fn is_one(v: &u64) -> bool {
    *v == 1
}

impl Second {
    /// Two neighbouring intervals as one (`self` earlier). Counts add up; the percentiles take
    /// the larger of the two (an upper bound: the exact figures are in the interval log).
    fn merge(self, later: Second) -> Second {
        let mut outcomes = self.outcomes;
        for (k, n) in later.outcomes {
            *outcomes.entry(k).or_default() += n;
        }
        Second {
            t: later.t,
            span: self.span + later.span,
            requests: self.requests + later.requests,
            errors: self.errors + later.errors,
            outcomes,
            p50_us: self.p50_us.max(later.p50_us),
            p90_us: self.p90_us.max(later.p90_us),
            p99_us: self.p99_us.max(later.p99_us),
            max_us: self.max_us.max(later.max_us),
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is valid")
}

/// Record into an auto-resizing histogram (`saturating_record` would clamp to the current
/// size instead of growing).
#[inline]
fn rec(h: &mut Histogram<u64>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// Histograms of one key.
pub struct Pair {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
}

/// Everything the aggregator measured, handed to the report at the end (and lent to checkpoints
/// while the phase runs).
pub struct Totals {
    pub pairs: BTreeMap<Key, Pair>,
    pub lag: Histogram<u64>,
    pub timeline: Vec<Second>,
    pub samples: u64,
}

/// The aggregator: owns the histograms; lanes talk to it through [`Recorder`]s.
/// Makes [`Recorder`]s (cheap to clone).
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::UnboundedSender<Vec<Sample>>,
}

impl Sink {
    /// A recorder for a new lane.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            tx: self.tx.clone(),
            buf: Vec::with_capacity(BATCH),
            since: Instant::now(),
            sent: 0,
            last_sent: None,
        }
    }
}

pub struct Aggregator {
    tx: Option<mpsc::UnboundedSender<Vec<Sample>>>,
    rx: mpsc::UnboundedReceiver<Vec<Sample>>,
    pub live: Arc<Live>,
    totals: Totals,
    interval: Histogram<u64>,
    interval_outcomes: BTreeMap<Outcome, u64>,
    interval_log: Option<IntervalLog>,
    start: Instant,
    seconds: u64,
    /// Seconds per timeline entry (doubles each time the timeline fills up).
    span: u64,
    /// The timeline entry being filled when `span` > 1: its histogram and outcome counts.
    bin: Histogram<u64>,
    bin_outcomes: BTreeMap<Outcome, u64>,
    /// Checkpoints' requests (see [`Aggregator::snapshots`]).
    snapshots: Option<mpsc::UnboundedReceiver<SnapshotFn>>,
}

/// A look at the totals so far, run by the aggregator between two sample batches.
pub type SnapshotFn = Box<dyn FnOnce(&Totals) + Send>;

struct IntervalLog {
    file: std::fs::File,
    serializer: hdrhistogram::serialization::V2DeflateSerializer,
}

impl Aggregator {
    /// A new aggregator. `interval_log` is the path of the HdrHistogram interval log to write
    /// (one corrected histogram per second, all routes), if any.
    pub fn new(interval_log: Option<&std::path::Path>) -> std::io::Result<Aggregator> {
        let (tx, rx) = mpsc::unbounded_channel();
        let interval_log = match interval_log {
            Some(p) => {
                let mut file = std::fs::File::create(p)?;
                let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
                let now = SystemTime::now();
                {
                    let mut w = hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder::new()
                        .add_comment("mesher-stress latency (corrected, microseconds), one histogram per second")
                        .with_start_time(now)
                        .with_base_time(now)
                        .begin_log_with(&mut file, &mut serializer)?;
                    w.write_comment(
                        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"",
                    )?;
                }
                Some(IntervalLog { file, serializer })
            }
            None => None,
        };
        Ok(Aggregator {
            tx: Some(tx),
            rx,
            live: Arc::new(Live::default()),
            totals: Totals { pairs: BTreeMap::new(), lag: new_hist(), timeline: Vec::new(), samples: 0 },
            interval: new_hist(),
            interval_outcomes: BTreeMap::new(),
            interval_log,
            start: Instant::now(),
            seconds: 0,
            span: 1,
            bin: new_hist(),
            bin_outcomes: BTreeMap::new(),
            snapshots: None,
        })
    }

    /// A channel to look at the running aggregator's totals so far (closed timeline intervals;
    /// the interval log is flushed to disk first): each function sent is called with them
    /// between two sample batches (no copy of the histograms; the lanes never wait: their
    /// batches queue meanwhile).
    pub fn snapshots(&mut self) -> mpsc::UnboundedSender<SnapshotFn> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.snapshots = Some(rx);
        tx
    }

    fn answer_snapshot(&mut self, look: SnapshotFn) {
        if let Some(log) = &mut self.interval_log {
            let _ = log.file.sync_data();
        }
        look(&self.totals);
    }

    /// A handle that makes recorders for lanes. The aggregator runs until every sink and every
    /// recorder is dropped.
    pub fn sink(&self) -> Sink {
        Sink { tx: self.tx.clone().expect("sink() before run()") }
    }

    fn absorb(&mut self, batch: Vec<Sample>) {
        for s in batch {
            let pair = self
                .totals
                .pairs
                .entry(s.key)
                .or_insert_with(|| Pair { corrected: new_hist(), uncorrected: new_hist() });
            rec(&mut pair.corrected, s.corrected_us);
            rec(&mut pair.uncorrected, s.uncorrected_us);
            self.totals.samples += 1;
            if s.key.outcome.is_request() {
                rec(&mut self.totals.lag, s.lag_us);
                rec(&mut self.interval, s.corrected_us);
                self.live.done.fetch_add(1, Ordering::Relaxed);
                if s.key.outcome.is_error() {
                    self.live.errors.fetch_add(1, Ordering::Relaxed);
                }
            } else if s.key.outcome == Outcome::Missed {
                self.live.errors.fetch_add(1, Ordering::Relaxed);
            }
            *self.interval_outcomes.entry(s.key.outcome).or_default() += 1;
        }
    }

    /// A timeline entry from a histogram and outcome counts.
    fn entry(t: u64, span: u64, h: &Histogram<u64>, outcomes: &BTreeMap<Outcome, u64>) -> Second {
        Second {
            t,
            span,
            requests: outcomes.iter().filter(|(o, _)| o.is_request()).map(|(_, n)| n).sum(),
            errors: outcomes.iter().filter(|(o, _)| o.is_error()).map(|(_, n)| n).sum(),
            outcomes: outcomes.iter().map(|(o, n)| (o.name().to_string(), *n)).collect(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }

    /// Append to the timeline: one second, or (long phases) into the current `span`-second
    /// entry; a full timeline is halved by merging neighbours and `span` doubles.
    fn push_timeline(&mut self, sec: Second) {
        if self.span == 1 {
            self.totals.timeline.push(sec);
        } else {
            let _ = self.bin.add(&self.interval);
            for (o, n) in &self.interval_outcomes {
                *self.bin_outcomes.entry(*o).or_default() += n;
            }
            if self.seconds.is_multiple_of(self.span) {
                let span = self.seconds - self.totals.timeline.last().map_or(0, |s| s.t);
                let e = Self::entry(self.seconds, span, &self.bin, &self.bin_outcomes);
                self.totals.timeline.push(e);
                self.bin.reset();
                self.bin_outcomes.clear();
            }
        }
        if self.totals.timeline.len() >= TIMELINE_MAX {
            let old = std::mem::take(&mut self.totals.timeline);
            let mut it = old.into_iter();
            while let Some(a) = it.next() {
                let merged = match it.next() {
                    Some(b) => a.merge(b),
                    None => a,
                };
                self.totals.timeline.push(merged);
            }
            self.span *= 2;
        }
    }

    fn close_second(&mut self) {
        self.seconds += 1;
        let h = &self.interval;
        let sec = Self::entry(self.seconds, 1, h, &self.interval_outcomes);
        let requests = sec.requests;
        self.live.p99_us.store(sec.p99_us, Ordering::Relaxed);
        self.live.last_rate.store(requests, Ordering::Relaxed);
        if let Some(log) = &mut self.interval_log {
            let mut buf = Vec::new();
            let start = Duration::from_secs(self.seconds - 1);
            let ok = hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder::new()
                .begin_log_with(&mut buf, &mut log.serializer)
                .ok()
                .and_then(|mut w| w.write_histogram(h, start, Duration::from_secs(1), None).ok());
            if ok.is_some() {
                let _ = log.file.write_all(&buf);
            }
        }
        self.push_timeline(sec);
        self.interval.reset();
        self.interval_outcomes.clear();
    }

    /// Run until every sink and recorder is gone, closing one timeline second per second.
    /// Returns the totals.
    pub async fn run(mut self) -> Totals {
        self.tx = None;
        self.start = Instant::now();
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::from_std(self.start + Duration::from_secs(1)),
            Duration::from_secs(1),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                b = self.rx.recv() => match b {
                    Some(b) => self.absorb(b),
                    None => break,
                },
                _ = tick.tick() => self.close_second(),
                r = async { self.snapshots.as_mut().expect("guarded").recv().await }, if self.snapshots.is_some() => match r {
                    Some(reply) => self.answer_snapshot(reply),
                    None => self.snapshots = None,
                },
            }
        }
        if !self.interval_outcomes.is_empty() {
            self.close_second();
        }
        // The last, partly filled entry of a long phase.
        if !self.bin_outcomes.is_empty() {
            let span = self.seconds - self.totals.timeline.last().map_or(0, |s| s.t);
            let e = Self::entry(self.seconds, span.max(1), &self.bin, &self.bin_outcomes);
            self.totals.timeline.push(e);
        }
        if let Some(log) = &mut self.interval_log {
            let _ = log.file.sync_all();
        }
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(us: u64) -> Sample {
        Sample {
            key: Key { route: "storage", layer: Layer::Valid, outcome: Outcome::S2xx },
            corrected_us: us,
            uncorrected_us: us,
            lag_us: 0,
        }
    }

    #[test]
    fn a_long_timeline_is_merged_and_stays_bounded() {
        let mut a = Aggregator::new(None).unwrap();
        let seconds = 3 * TIMELINE_MAX as u64 + 123;
        for s in 1..=seconds {
            // Second s: s % 7 + 1 requests, one of them slow every 1000 s.
            let n = s % 7 + 1;
            let mut batch: Vec<Sample> = (0..n).map(|_| sample(100)).collect();
            if s % 1000 == 0 {
                batch[0] = sample(50_000);
            }
            a.absorb(batch);
            a.close_second();
        }
        let tl = &a.totals.timeline;
        assert!(tl.len() < TIMELINE_MAX, "{} entries", tl.len());
        // The last 3 seconds are still in the unfinished 4-second entry (`run` adds it at the end).
        let total: u64 = (1..=seconds - seconds % 4).map(|s| s % 7 + 1).sum();
        assert_eq!(tl.iter().map(|s| s.requests).sum::<u64>(), total, "every request counted once");
        assert_eq!(tl.iter().map(|s| s.span).sum::<u64>(), seconds - seconds % 4, "spans tile the phase");
        assert!(tl.windows(2).all(|w| w[1].t == w[0].t + w[1].span));
        // The slow requests are still visible after merging.
        assert_eq!(tl.iter().filter(|s| s.max_us >= 50_000).count(), (seconds / 1000) as usize);
        assert_eq!(a.span, 4);
    }
}
