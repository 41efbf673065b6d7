//! Measurement: outcomes, per-lane sample buffers and the aggregator that owns every histogram.
//!
//! Lanes (the tasks that send) never touch a histogram or a lock: they push compact [`Sample`]s
//! into a local buffer and hand the buffer to the aggregator over a channel every 128 samples or
//! 50 ms. The aggregator task records into HdrHistograms (µs, 3 significant figures; those
//! kept per key are allocated at their working range up front, [`KeyHist`], so memory is set
//! by the number of keys when they first appear, not by the run length): one pair
//! (corrected from the intended send time, uncorrected from the actual send) per
//! route × layer × outcome, one per-second interval histogram for the timeline and the
//! HdrHistogram interval log, one interval histogram per route × layer for the per-route series
//! ([`RouteIntervals`], what baseline comparisons test), and one histogram of scheduler lag
//! (actual − intended send).
//!
//! Per-route series stay bounded however long the run: intervals are 1 s wide until a phase
//! has [`SERIES_CAP`] of them; then adjacent pairs of closed intervals merge and the width
//! doubles (2 s, 4 s, …), so a series never holds more than `SERIES_CAP` entries. Intervals
//! closed after the doubling are measured exactly at the new width (the interval histogram
//! stays open for the whole width); only the merge of two already-closed intervals is
//! approximate: counts add, the max is exact, and each percentile becomes the larger of the two
//! (an upper bound: the true percentile of the union lies between the two).
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
    /// Request or body timeout: no (complete) answer in time.
    Timeout,
    /// The target stopped taking the request's bytes: a write made no progress in time (a
    /// server that accepted the connection but does not read).
    WriteTimeout,
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
            Outcome::WriteTimeout => "write-timeout",
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
                | Outcome::WriteTimeout
                | Outcome::Closed
                | Outcome::BadResponse
                | Outcome::WsClose
                | Outcome::Missed
        )
    }

    /// The target answered (any HTTP status, a WebSocket ack or close frame); the outage
    /// detector looks for stretches without any.
    pub fn is_answer(self) -> bool {
        matches!(
            self,
            Outcome::S1xx
                | Outcome::S2xx
                | Outcome::S3xx
                | Outcome::S4xx
                | Outcome::S5xx
                | Outcome::AckOk
                | Outcome::AckError
                | Outcome::WsClose
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

    /// Classify an error while writing a request ([`crate::drive::net::write_bounded`] turns a
    /// stall into `TimedOut`).
    pub fn from_write_error(e: &std::io::Error) -> Outcome {
        if e.kind() == std::io::ErrorKind::TimedOut { Outcome::WriteTimeout } else { Outcome::from_io_error(e) }
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

/// Live figures for the progress display, updated by the aggregator as samples arrive (not
/// per closed second: batches arrive late, and a display of the last closed second showed 0/s
/// while thousands of answers came in).
#[derive(Debug)]
pub struct Live {
    pub start: Instant,
    /// Requests measured (answered or failed).
    pub done: AtomicU64,
    /// Of which answered (any HTTP status, an ack or close frame).
    pub answered: AtomicU64,
    pub errors: AtomicU64,
    /// Errors by outcome, and the corrected latencies of answers, since the display last looked.
    pub interval: std::sync::Mutex<(BTreeMap<Outcome, u64>, KeyHist)>,
    /// When the latest answer came (milliseconds since `start`; 0: none yet).
    pub last_answer_ms: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            start: Instant::now(),
            done: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interval: std::sync::Mutex::new((BTreeMap::new(), key_hist())),
            last_answer_ms: AtomicU64::new(0),
        }
    }
}

impl Live {
    /// The errors by kind and the p99 of answers since the last call (and start afresh).
    pub fn take_interval(&self) -> (BTreeMap<Outcome, u64>, Option<u64>) {
        let mut g = self.interval.lock().unwrap_or_else(|e| e.into_inner());
        let errors = std::mem::take(&mut g.0);
        let p99 = (!g.1.is_empty()).then(|| g.1.value_at_quantile(0.99));
        g.1.reset();
        (errors, p99)
    }
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
    /// Counts per outcome (keyed by the outcome, not its name: a timeline holds thousands of
    /// these maps, and a String per key was most of their memory).
    pub outcomes: BTreeMap<Outcome, u64>,
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

/// The histograms kept per key and per route series: 32-bit counts (a bucket saturates at
/// 4.29 billion samples of the same value, far beyond any run), half the memory of `u64`.
pub type KeyHist = Histogram<u32>;

/// Latencies (µs) a [`KeyHist`] holds from the start: 2^24 µs ≈ 16.8 s, past every default
/// request + body timeout.
pub const PRESIZED_US: u64 = 1 << 24;

/// A histogram of one key or route series, allocated at its full working range at once
/// (≈ 60 KiB): an auto-resizing histogram grows each time a key first sees a slower answer
/// (16 KiB → ~130 KiB over hours), which made the tool's memory creep through a soak. Past
/// [`PRESIZED_US`] it still grows, by 4 KiB per doubling of the largest value.
pub fn key_hist() -> KeyHist {
    let mut h = Histogram::new_with_bounds(1, PRESIZED_US, 3).expect("valid bounds");
    h.auto(true);
    h
}

/// Record into an auto-resizing histogram (`saturating_record` would clamp to the current
/// size instead of growing).
#[inline]
fn rec<T: hdrhistogram::Counter>(h: &mut Histogram<T>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// Latency summary, µs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Histograms of one key.
pub struct Pair {
    pub corrected: KeyHist,
    /// None while no sample of the key had an uncorrected latency different from its corrected
    /// one (closed loop, open loop on schedule): then one histogram instead of two. The key's
    /// first late sample starts it as a copy of the corrected one. (Per key: in an open-loop
    /// soak with spare lanes most keys never see a late sample, and a phase-wide switch doubled
    /// every key's memory at the first one.)
    uncorrected: Option<KeyHist>,
    /// Index of the key's route × layer in the aggregator's per-route series.
    series: usize,
}

impl Pair {
    /// Latency from the actual send.
    pub fn uncorrected(&self) -> &KeyHist {
        self.uncorrected.as_ref().unwrap_or(&self.corrected)
    }

    /// Start the uncorrected histogram (as a copy: until now both were the same).
    fn split(&mut self) {
        if self.uncorrected.is_none() {
            self.uncorrected = Some(self.corrected.clone());
        }
    }

    fn record(&mut self, corrected_us: u64, uncorrected_us: u64) {
        rec(&mut self.corrected, corrected_us);
        if let Some(u) = &mut self.uncorrected {
            rec(u, uncorrected_us);
        }
    }
}

/// Everything the aggregator measured, handed to the report at the end (and lent to checkpoints
/// while the phase runs).
pub struct Totals {
    pub pairs: BTreeMap<Key, Pair>,
    pub lag: Histogram<u64>,
    pub timeline: Vec<Second>,
    /// Per route × layer, per interval.
    pub route_intervals: RouteIntervals,
    pub samples: u64,
    /// Requests per key that failed while the target was down (not in the histograms).
    pub down: BTreeMap<Key, u64>,
    /// Stretches without answers while requests waited (see `activity`).
    pub stalls: Vec<super::activity::Stretch>,
    /// Per-window latency (when asked for with [`Aggregator::windows`]).
    pub windows: Vec<super::activity::WindowStat>,
}

impl Totals {
    /// Requests of a key: its latency samples plus those that failed while the target was down
    /// (counted, not measured).
    pub fn count(&self, k: &Key, p: &Pair) -> u64 {
        p.corrected.len() + self.down.get(k).copied().unwrap_or(0)
    }

    /// Every request with an outcome: measured ones plus those that failed while the target was
    /// down.
    pub fn requests_with_outcome(&self) -> u64 {
        self.pairs.iter().filter(|(k, _)| k.outcome.is_request()).map(|(k, p)| self.count(k, p)).sum()
    }
}

/// Most intervals a per-route series holds; past it, adjacent intervals merge (module docs).
pub const SERIES_CAP: usize = 900;

/// Per-interval figures of every route × layer of a phase (`report.json`: `route_intervals`).
/// Columnar: every series has one entry per element of `t_ms`, zeros where the route had no
/// request in that interval (also before its first request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteIntervals {
    /// End of each interval, ms since measurement started (≈ the phase start); the first
    /// interval starts at 0. Widths are the differences (1 s, or 2^k s after merges; the last
    /// interval of a phase is usually partial).
    pub t_ms: Vec<u64>,
    pub series: Vec<RouteSeries>,
}

/// One route × layer: requests (every outcome but `interrupted`) and their corrected latency
/// (µs) per interval; the vectors are parallel to [`RouteIntervals::t_ms`]. 32-bit columns
/// (half the memory of a long run's series): counts saturate at 4.29 billion per interval,
/// latencies at 71 minutes, both far past any run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSeries {
    pub route: String,
    pub layer: Layer,
    pub count: Vec<u32>,
    pub errors: Vec<u32>,
    pub p50_us: Vec<u32>,
    pub p90_us: Vec<u32>,
    pub p99_us: Vec<u32>,
    pub max_us: Vec<u32>,
}

fn sat32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl RouteSeries {
    /// A series padded with `len` empty intervals, with room for `cap` (the series cap: the
    /// columns are never reallocated, halving works in place).
    fn new(route: &str, layer: Layer, len: usize, cap: usize) -> RouteSeries {
        let col = || {
            let mut v = Vec::with_capacity(cap.max(len));
            v.resize(len, 0);
            v
        };
        RouteSeries {
            route: route.to_string(),
            layer,
            count: col(),
            errors: col(),
            p50_us: col(),
            p90_us: col(),
            p99_us: col(),
            max_us: col(),
        }
    }

    fn push(&mut self, count: u64, errors: u64, h: &KeyHist) {
        let q = |x: f64| if h.is_empty() { 0 } else { sat32(h.value_at_quantile(x)) };
        self.count.push(sat32(count));
        self.errors.push(sat32(errors));
        self.p50_us.push(q(0.5));
        self.p90_us.push(q(0.9));
        self.p99_us.push(q(0.99));
        self.max_us.push(if h.is_empty() { 0 } else { sat32(h.max()) });
    }

    /// Merge adjacent pairs of intervals (see the module docs for what is exact).
    fn halve(&mut self) {
        fn pairs(v: &mut Vec<u32>, f: fn(u32, u32) -> u32) {
            let n = v.len().div_ceil(2);
            for i in 0..n {
                v[i] = match v.get(2 * i + 1) {
                    Some(&b) => f(v[2 * i], b),
                    None => v[2 * i],
                };
            }
            v.truncate(n);
        }
        let sum = |a: u32, b: u32| a.saturating_add(b);
        pairs(&mut self.count, sum);
        pairs(&mut self.errors, sum);
        for v in [&mut self.p50_us, &mut self.p90_us, &mut self.p99_us, &mut self.max_us] {
            pairs(v, u32::max);
        }
    }
}

impl RouteIntervals {
    /// Merge adjacent pairs of intervals in every series (the end of a pair is its second's end).
    pub fn halve(&mut self) {
        // In place (the capacity stays: no reallocation through a long run).
        let n = self.t_ms.len().div_ceil(2);
        for i in 0..n {
            self.t_ms[i] = self.t_ms[(2 * i + 1).min(self.t_ms.len() - 1)];
        }
        self.t_ms.truncate(n);
        for s in &mut self.series {
            s.halve();
        }
    }

    /// Start and end (ms) of interval `i`.
    pub fn span_ms(&self, i: usize) -> (u64, u64) {
        (if i == 0 { 0 } else { self.t_ms[i - 1] }, self.t_ms[i])
    }
}

/// The open interval of one route × layer.
struct OpenSeries {
    hist: KeyHist,
    count: u64,
    errors: u64,
}

/// The aggregator: owns the histograms; lanes talk to it through [`Recorder`]s.
/// Makes [`Recorder`]s (cheap to clone).
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::UnboundedSender<Vec<Sample>>,
    sent_total: Arc<AtomicU64>,
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

pub struct Aggregator {
    tx: Option<mpsc::UnboundedSender<Vec<Sample>>>,
    rx: mpsc::UnboundedReceiver<Vec<Sample>>,
    sent_total: Arc<AtomicU64>,
    pub live: Arc<Live>,
    totals: Totals,
    interval: Histogram<u64>,
    interval_outcomes: BTreeMap<Outcome, u64>,
    interval_log: Option<IntervalLog>,
    start: Instant,
    seconds: u64,
    /// Per route × layer: the open interval (parallel to `totals.route_intervals.series`).
    open: Vec<OpenSeries>,
    series_index: BTreeMap<(&'static str, Layer), usize>,
    /// Seconds per per-route interval (doubles each time the series reach `series_cap`).
    series_width: u64,
    series_cap: usize,
    /// Outage detection: (shortest outage, longest request), set up when the run starts.
    detect: Option<(Duration, Duration)>,
    activity: Option<super::activity::Activity>,
    windows: Option<super::activity::Windows>,
    /// Routes the windows leave out, and the second's histogram of the others.
    drift: Option<(Vec<String>, Histogram<u64>)>,
    interval_answered: u64,
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
            sent_total: Arc::new(AtomicU64::new(0)),
            live: Arc::new(Live::default()),
            totals: Totals {
                pairs: BTreeMap::new(),
                lag: new_hist(),
                timeline: Vec::with_capacity(TIMELINE_MAX),
                route_intervals: RouteIntervals::default(),
                samples: 0,
                down: BTreeMap::new(),
                stalls: Vec::new(),
                windows: Vec::new(),
            },
            interval: new_hist(),
            interval_outcomes: BTreeMap::new(),
            interval_log,
            start: Instant::now(),
            seconds: 0,
            open: Vec::new(),
            series_index: BTreeMap::new(),
            series_width: 1,
            series_cap: SERIES_CAP,
            detect: None,
            activity: None,
            windows: None,
            drift: None,
            interval_answered: 0,
            span: 1,
            bin: new_hist(),
            bin_outcomes: BTreeMap::new(),
            snapshots: None,
        })
    }

    /// A smaller cap on per-route intervals (tests of the merging; even, at least 2).
    pub fn with_series_cap(mut self, cap: usize) -> Aggregator {
        self.series_cap = (cap.max(2) / 2) * 2;
        self
    }

    /// Detect stretches of at least `min` without answers while requests waited;
    /// `longest_request` bounds how late a sample can arrive.
    pub fn detect_outages(&mut self, min: Duration, longest_request: Duration) {
        self.detect = Some((min, longest_request));
    }

    /// Keep latency percentiles per `window` (soak drift).
    pub fn windows(&mut self, window: Duration, exclude: &[String]) {
        self.windows = Some(super::activity::Windows::new(window));
        if !exclude.is_empty() {
            self.drift = Some((exclude.to_vec(), new_hist()));
        }
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
        crate::util::thread::on_own_thread("mesher-snapshot", look, &self.totals);
    }

    /// A handle that makes recorders for lanes. The aggregator runs until every sink and every
    /// recorder is dropped.
    pub fn sink(&self) -> Sink {
        Sink { tx: self.tx.clone().expect("sink() before run()"), sent_total: self.sent_total.clone() }
    }

    /// Requests the phase's lanes sent, summed as their recorders go (an aborted lane's too).
    pub fn sent_total(&self) -> Arc<AtomicU64> {
        self.sent_total.clone()
    }

    fn absorb(&mut self, batch: Vec<Sample>) {
        // The display's interval figures: one lock per batch.
        let live = self.live.clone();
        let mut shown = live.interval.lock().unwrap_or_else(|e| e.into_inner());
        for s in batch {
            let cap = self.series_cap;
            let (ri, open, index) = (&mut self.totals.route_intervals, &mut self.open, &mut self.series_index);
            let pair = self.totals.pairs.entry(s.key).or_insert_with(|| {
                // A new key: find or make its route × layer series (padded with empty intervals).
                let series = *index.entry((s.key.route, s.key.layer)).or_insert_with(|| {
                    ri.series.push(RouteSeries::new(s.key.route, s.key.layer, ri.t_ms.len(), cap));
                    open.push(OpenSeries { hist: key_hist(), count: 0, errors: 0 });
                    open.len() - 1
                });
                Pair { corrected: key_hist(), uncorrected: None, series }
            });
            if !s.down && s.uncorrected_us != s.corrected_us {
                pair.split();
            }
            let series = pair.series;
            if s.down {
                *self.totals.down.entry(s.key).or_default() += 1;
            } else {
                pair.record(s.corrected_us, s.uncorrected_us);
            }
            self.totals.samples += 1;
            if s.key.outcome.is_request() && s.key.outcome != Outcome::Interrupted {
                let o = &mut self.open[series];
                if !s.down {
                    rec(&mut o.hist, s.corrected_us);
                }
                o.count += 1;
                o.errors += u64::from(s.key.outcome.is_error());
            }
            if s.key.outcome.is_request() {
                if let Some(a) = &mut self.activity {
                    let sent = s.done.checked_sub(Duration::from_micros(s.uncorrected_us)).unwrap_or(s.done);
                    a.note(sent, s.done, s.key.outcome.is_answer());
                }
                if s.key.outcome.is_answer() {
                    self.interval_answered += 1;
                }
                if !s.down {
                    rec(&mut self.totals.lag, s.lag_us);
                    rec(&mut self.interval, s.corrected_us);
                    if let Some((out, h)) = &mut self.drift
                        && !out.iter().any(|r| r == s.key.route)
                    {
                        rec(h, s.corrected_us);
                    }
                }
                self.live.done.fetch_add(1, Ordering::Relaxed);
                if s.key.outcome.is_answer() {
                    self.live.answered.fetch_add(1, Ordering::Relaxed);
                    let ms = s.done.saturating_duration_since(self.live.start).as_millis() as u64;
                    self.live.last_answer_ms.fetch_max(ms.max(1), Ordering::Relaxed);
                }
                let error = s.key.outcome.is_error();
                if error {
                    self.live.errors.fetch_add(1, Ordering::Relaxed);
                }
                if error {
                    *shown.0.entry(s.key.outcome).or_default() += 1;
                } else if s.key.outcome.is_answer() && !s.down {
                    rec(&mut shown.1, s.corrected_us);
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
            outcomes: outcomes.clone(),
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
            // Into a buffer of the same capacity (the timeline is never reallocated).
            let old = std::mem::replace(&mut self.totals.timeline, Vec::with_capacity(TIMELINE_MAX));
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
        if let Some(w) = &mut self.windows {
            let h = self.drift.as_ref().map_or(&self.interval, |(_, h)| h);
            w.second(self.seconds, sec.requests, self.interval_answered, sec.errors, h);
        }
        if let Some((_, h)) = &mut self.drift {
            h.reset();
        }
        if let Some(a) = &mut self.activity {
            a.advance(Instant::now());
        }
        self.push_timeline(sec);
        self.interval.reset();
        self.interval_outcomes.clear();
        self.interval_answered = 0;
        if self.seconds.is_multiple_of(self.series_width) {
            self.close_route_interval();
        }
    }

    /// Close the per-route interval (every series gets an entry), merging pairs at the cap.
    fn close_route_interval(&mut self) {
        let ri = &mut self.totals.route_intervals;
        let now_ms = self.start.elapsed().as_millis() as u64;
        if ri.t_ms.capacity() < self.series_cap {
            ri.t_ms.reserve_exact(self.series_cap - ri.t_ms.len());
        }
        ri.t_ms.push(now_ms.max(ri.t_ms.last().map_or(0, |t| t + 1)));
        for (s, o) in ri.series.iter_mut().zip(&mut self.open) {
            s.push(o.count, o.errors, &o.hist);
            o.hist.reset();
            o.count = 0;
            o.errors = 0;
        }
        if ri.t_ms.len() >= self.series_cap {
            ri.halve();
            self.series_width *= 2;
        }
    }

    /// Run until every sink and recorder is gone, closing one timeline second per second.
    /// Returns the totals.
    pub async fn run(mut self) -> Totals {
        self.tx = None;
        self.start = Instant::now();
        if let Some((min, longest)) = self.detect {
            self.activity = Some(super::activity::Activity::new(self.start, min, longest));
        }
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
        if self.open.iter().any(|o| o.count > 0) {
            self.close_route_interval();
        }
        if let Some(a) = self.activity.take() {
            self.totals.stalls = a.finish();
        }
        if let Some(w) = self.windows.take() {
            self.totals.windows = w.finish(self.seconds);
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

    #[test]
    fn timeline_entries_keep_their_json_form() {
        let text = r#"{"t":3,"requests":5,"errors":1,"outcomes":{"2xx":4,"connect-refused":1,"ack-ok":2},"p50_us":1,"p90_us":2,"p99_us":3,"max_us":4}"#;
        let s: Second = serde_json::from_str(text).unwrap();
        assert_eq!(s.span, 1);
        assert_eq!(s.outcomes.get(&Outcome::ConnectRefused), Some(&1));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(text).unwrap());
    }

    fn sample(route: &'static str, layer: Layer, outcome: Outcome, us: u64) -> Sample {
        Sample {
            key: Key { route, layer, outcome },
            corrected_us: us,
            uncorrected_us: us,
            lag_us: 0,
            done: Instant::now(),
            down: false,
        }
    }

    #[test]
    fn soak_windows_leave_out_the_excluded_routes_and_nothing_else_does() {
        let mut a = Aggregator::new(None).unwrap();
        a.windows(Duration::from_secs(2), &["events-search".to_string()]);
        for _ in 0..4 {
            let mut b: Vec<Sample> =
                (0..50).map(|_| sample("issues-list", Layer::Valid, Outcome::S2xx, 1000)).collect();
            b.extend((0..50).map(|_| sample("events-search", Layer::Valid, Outcome::S2xx, 900_000)));
            a.absorb(b);
            a.close_second();
        }
        let w = &a.windows.as_ref().unwrap().done;
        assert_eq!(w.len(), 2);
        // The window's latency is the other routes' only; its counts and everything else keep
        // every request.
        assert!(w.iter().all(|w| w.latency.count == 100 && w.latency.max < 2000 && w.requests == 200), "{w:?}");
        assert!(a.totals.timeline.iter().all(|s| s.requests == 100 && s.max_us >= 900_000));
        assert_eq!(a.totals.pairs.len(), 2);
    }

    /// One second of `n` answers of `route` at `us` µs (plus one 10× slower), then the tick.
    fn second(a: &mut Aggregator, route: &'static str, n: u64, us: u64) {
        let mut b: Vec<Sample> = (0..n).map(|_| sample(route, Layer::Valid, Outcome::S2xx, us)).collect();
        b.push(sample(route, Layer::Valid, Outcome::S5xx, us * 10));
        a.absorb(b);
        a.close_second();
    }

    #[test]
    fn uncorrected_histograms_exist_only_once_a_sample_of_the_key_was_behind_schedule() {
        let mut a = Aggregator::new(None).unwrap();
        let on_time: Vec<Sample> =
            (1..=100).map(|i| sample("issues-list", Layer::Valid, Outcome::S2xx, i * 10)).collect();
        a.absorb(on_time);
        a.absorb(vec![sample("settings-get", Layer::Valid, Outcome::S2xx, 70)]);
        let key = Key { route: "issues-list", layer: Layer::Valid, outcome: Outcome::S2xx };
        let other = Key { route: "settings-get", ..key };
        let p = &a.totals.pairs[&key];
        assert!(p.uncorrected.is_none(), "closed loop: one histogram");
        assert_eq!(p.uncorrected().len(), 100);
        // One sample 5 ms behind schedule: the uncorrected histogram starts as a copy.
        let mut late = sample("issues-list", Layer::Valid, Outcome::S2xx, 5000);
        late.uncorrected_us = 200;
        a.absorb(vec![late]);
        let p = &a.totals.pairs[&key];
        assert_eq!((p.corrected.len(), p.uncorrected().len()), (101, 101));
        assert_eq!(p.corrected.max(), 5003, "5000 µs at 3 significant figures");
        assert_eq!(p.uncorrected().max(), 1000);
        assert_eq!(p.uncorrected().count_at(200), 2, "the on-time 200 µs and the late one's");
        // Other keys keep one histogram until a sample of theirs is late, and so do new keys.
        let o = &a.totals.pairs[&other];
        assert!(o.uncorrected.is_none());
        assert_eq!((o.corrected.len(), o.uncorrected().len()), (1, 1));
        a.absorb(vec![sample("storage", Layer::Valid, Outcome::S2xx, 90)]);
        let storage = Key { route: "storage", ..key };
        assert!(a.totals.pairs[&storage].uncorrected.is_none());
        let mut late = sample("storage", Layer::Valid, Outcome::S2xx, 900);
        late.uncorrected_us = 90;
        a.absorb(vec![late]);
        let p = &a.totals.pairs[&storage];
        assert_eq!((p.corrected.max(), p.uncorrected().max()), (900, 90));
        assert_eq!(p.uncorrected().count_at(90), 2);
    }

    #[test]
    fn key_histograms_do_not_grow_within_their_working_range() {
        // A key's memory is fixed when it first appears: slower answers later in a soak (up
        // to 16.8 s) need no resize, so the tool's memory does not creep up with the run.
        let mut a = Aggregator::new(None).unwrap();
        let key = Key { route: "issues-list", layer: Layer::Valid, outcome: Outcome::S2xx };
        a.absorb(vec![sample("issues-list", Layer::Valid, Outcome::S2xx, 300)]);
        let (slots, series_slots) =
            (a.totals.pairs[&key].corrected.distinct_values(), a.open[0].hist.distinct_values());
        for us in [1, 900, 45_000, 2_000_000, 10_000_000, PRESIZED_US] {
            let mut late = sample("issues-list", Layer::Valid, Outcome::S2xx, us);
            late.uncorrected_us = us / 2;
            a.absorb(vec![late]);
        }
        let p = &a.totals.pairs[&key];
        assert_eq!(p.corrected.distinct_values(), slots);
        assert_eq!(p.uncorrected().distinct_values(), slots);
        assert_eq!(a.open[0].hist.distinct_values(), series_slots);
        assert_eq!(p.corrected.max(), p.corrected.highest_equivalent(PRESIZED_US));
        // Beyond the range it still records exactly (a few more slots, not a clamp).
        a.absorb(vec![sample("issues-list", Layer::Valid, Outcome::S2xx, 4 * PRESIZED_US)]);
        let p = &a.totals.pairs[&key];
        assert!(p.corrected.distinct_values() > slots);
        assert_eq!(p.corrected.max(), p.corrected.highest_equivalent(4 * PRESIZED_US));
    }

    #[test]
    fn per_route_intervals_hold_counts_and_percentiles_and_pad_late_routes() {
        let mut a = Aggregator::new(None).unwrap();
        second(&mut a, "issues-list", 99, 1000);
        second(&mut a, "issues-list", 49, 2000);
        second(&mut a, "dashboard-health", 9, 500);
        // Interrupted requests are not part of the series.
        a.absorb(vec![sample("issues-list", Layer::Valid, Outcome::Interrupted, 7)]);
        a.close_second();
        let ri = &a.totals.route_intervals;
        assert_eq!(ri.t_ms.len(), 4);
        assert!(ri.t_ms.windows(2).all(|w| w[0] < w[1]), "{:?}", ri.t_ms);
        let il = ri.series.iter().find(|s| s.route == "issues-list").unwrap();
        assert_eq!(il.count, [100, 50, 0, 0]);
        assert_eq!(il.errors, [1, 1, 0, 0]);
        assert_eq!(il.p50_us[0], 1000);
        assert_eq!(il.max_us[..2], [10007, 20015], "3 significant figures");
        assert_eq!(il.p90_us[1], 2000);
        let dh = ri.series.iter().find(|s| s.route == "dashboard-health").unwrap();
        assert_eq!(dh.count, [0, 0, 10, 0], "padded before its first request");
        assert_eq!(dh.p50_us, [0, 0, 500, 0]);
    }

    #[test]
    fn series_stay_bounded_by_merging_adjacent_intervals() {
        let mut a = Aggregator::new(None).unwrap().with_series_cap(4);
        for i in 0..4 {
            second(&mut a, "issues-list", 9, 100 * (i + 1));
        }
        // At the cap: pairs merged, the width doubled.
        let s = &a.totals.route_intervals.series[0];
        assert_eq!(s.count, [20, 20]);
        assert_eq!(s.p50_us, [200, 400], "the larger of the two (an upper bound)");
        assert_eq!(s.max_us, [2000, 4001]);
        assert_eq!(a.series_width, 2);
        // Now an interval spans two seconds and is measured exactly over both.
        second(&mut a, "issues-list", 9, 100);
        assert_eq!(a.totals.route_intervals.t_ms.len(), 2, "open until its second second ends");
        second(&mut a, "issues-list", 29, 1000);
        let s = &a.totals.route_intervals.series[0];
        assert_eq!(s.count, [20, 20, 40]);
        assert_eq!(s.p50_us[2], 1000, "exact percentile of the two seconds together");
        // Hours of seconds never hold more than the cap.
        for _ in 0..500 {
            second(&mut a, "issues-list", 1, 100);
        }
        let ri = &a.totals.route_intervals;
        assert!(ri.t_ms.len() < 4 && ri.series[0].count.len() == ri.t_ms.len(), "{ri:?}");
        assert_eq!(ri.series[0].count.iter().map(|&c| u64::from(c)).sum::<u64>(), 80 + 500 * 2 - a.open[0].count);
    }

    fn sample_us(us: u64) -> Sample {
        Sample {
            key: Key { route: "storage", layer: Layer::Valid, outcome: Outcome::S2xx },
            corrected_us: us,
            uncorrected_us: us,
            lag_us: 0,
            done: Instant::now(),
            down: false,
        }
    }

    #[test]
    fn a_long_timeline_is_merged_and_stays_bounded() {
        let mut a = Aggregator::new(None).unwrap();
        let seconds = 3 * TIMELINE_MAX as u64 + 123;
        for s in 1..=seconds {
            // Second s: s % 7 + 1 requests, one of them slow every 1000 s.
            let n = s % 7 + 1;
            let mut batch: Vec<Sample> = (0..n).map(|_| sample_us(100)).collect();
            if s % 1000 == 0 {
                batch[0] = sample_us(50_000);
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
