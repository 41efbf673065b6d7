//! Flight recorder: for every lane (one sending task, which uses one connection at a time), the
//! last K requests or frames it sent — send time, answer time or none, outcome, and the
//! [`RequestSeed`] (+ layer, route) that regenerates them. Seeds and small metadata only; the
//! bytes are kept only for raw requests when asked (`keep_raw`).
//!
//! Cost: one uncontended mutex per lane, taken twice per request (begin/end); readers (the
//! watchdog, the report) take it rarely. When the target dies, [`FlightRecorder::suspects`]
//! lists the requests that were sent but never answered, then the most recent ones, across all
//! lanes.

use crate::drive::metrics::Outcome;
use crate::model::{Layer, RequestSeed};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// Default ring size per lane.
pub const DEFAULT_K: usize = 32;

/// One request or frame in flight or done.
#[derive(Debug, Clone, Serialize)]
pub struct FlightEntry {
    pub seed: RequestSeed,
    pub layer: Layer,
    pub route: &'static str,
    /// Lane (sending task) id and the sequence number of the connection within the lane.
    pub lane: u32,
    pub conn: u64,
    /// Index of the frame within a WebSocket script (0 for HTTP).
    pub frame: u32,
    /// Wall-clock send time.
    #[serde(with = "system_time_ms")]
    pub sent_at: SystemTime,
    #[serde(skip)]
    pub sent: Instant,
    /// Microseconds from send to answer; None = no answer (yet).
    pub answered_after_us: Option<u64>,
    /// Microseconds from send to the end, answered or failed; None = still in flight.
    #[serde(skip)]
    pub ended_after_us: Option<u64>,
    pub outcome: Option<Outcome>,
    /// Exact bytes for raw requests when the recorder keeps them.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub raw: Option<Vec<u8>>,
    /// The input itself, kept for the few routes whose regeneration depends on the run's state
    /// (the generators' id pool): everything else regenerates exactly from its seed.
    #[serde(skip)]
    pub input: Option<Box<crate::model::Generated>>,
}

mod system_time_ms {
    use serde::Serializer;
    use std::time::SystemTime;
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        s.serialize_u64(ms)
    }
}

mod opt_bytes {
    use serde::Serializer;
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => crate::model::bytes_text::serialize(b, s),
            None => s.serialize_none(),
        }
    }
}

struct Ring {
    entries: VecDeque<FlightEntry>,
    /// Monotonic id of the next entry (so `end` finds its entry even after wrap-around).
    next: u64,
}

/// A lane's ring. Cheap to clone (Arc).
#[derive(Clone)]
pub struct LaneRecorder {
    ring: Arc<Mutex<Ring>>,
    base: (SystemTime, Instant),
    k: usize,
    lane: u32,
    keep_raw: bool,
}

/// Ticket returned by [`LaneRecorder::begin`], given back to [`LaneRecorder::end`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl LaneRecorder {
    /// Note a request about to be sent.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        &self,
        seed: RequestSeed,
        layer: Layer,
        route: &'static str,
        conn: u64,
        frame: u32,
        sent: Instant,
        raw: Option<&[u8]>,
    ) -> Ticket {
        let e = FlightEntry {
            seed,
            layer,
            route,
            lane: self.lane,
            conn,
            frame,
            sent_at: self.base.0 + sent.saturating_duration_since(self.base.1),
            sent,
            answered_after_us: None,
            ended_after_us: None,
            outcome: None,
            raw: if self.keep_raw { raw.map(|r| r[..r.len().min(64 * 1024)].to_vec()) } else { None },
            input: None,
        };
        let mut r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let id = r.next;
        r.next += 1;
        if r.entries.len() == self.k {
            r.entries.pop_front();
        }
        r.entries.push_back(e);
        Ticket(id)
    }

    /// Keep the input of a request begun with `t` (see [`FlightEntry::input`]).
    pub fn keep_input(&self, t: Ticket, g: &crate::model::Generated) {
        let mut r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let first = r.next - r.entries.len() as u64;
        if let Some(e) = t.0.checked_sub(first).and_then(|i| r.entries.get_mut(i as usize)) {
            e.input = Some(Box::new(g.clone()));
        }
    }

    /// Note the answer (or failure) of a request, which ended at `ended`.
    pub fn end(&self, t: Ticket, outcome: Outcome, answered: Option<Instant>, ended: Instant) {
        let mut r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let first = r.next - r.entries.len() as u64;
        if t.0 < first {
            return;
        }
        let i = (t.0 - first) as usize;
        if let Some(e) = r.entries.get_mut(i) {
            e.outcome = Some(outcome);
            e.answered_after_us = answered.map(|a| a.saturating_duration_since(e.sent).as_micros() as u64);
            e.ended_after_us = Some(ended.saturating_duration_since(e.sent).as_micros() as u64);
        }
    }
}

/// All lanes' rings.
#[derive(Clone)]
pub struct FlightRecorder {
    lanes: Arc<Mutex<Vec<LaneRecorder>>>,
    base: (SystemTime, Instant),
    k: usize,
    keep_raw: bool,
}

impl Default for FlightRecorder {
    fn default() -> Self {
        FlightRecorder::new(DEFAULT_K, true)
    }
}

impl FlightRecorder {
    /// `k` entries per lane; `keep_raw` keeps the bytes of raw requests (≤ 64 KiB each).
    pub fn new(k: usize, keep_raw: bool) -> FlightRecorder {
        FlightRecorder {
            lanes: Arc::new(Mutex::new(Vec::new())),
            base: (SystemTime::now(), Instant::now()),
            k: k.max(1),
            keep_raw,
        }
    }

    /// Register a lane.
    pub fn lane(&self, lane: u32) -> LaneRecorder {
        let l = LaneRecorder {
            ring: Arc::new(Mutex::new(Ring { entries: VecDeque::with_capacity(self.k), next: 0 })),
            base: self.base,
            k: self.k,
            lane,
            keep_raw: self.keep_raw,
        };
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).push(l.clone());
        l
    }

    /// Everything recorded, oldest first per lane.
    pub fn snapshot(&self) -> Vec<FlightEntry> {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::new();
        for l in lanes {
            let r = l.ring.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(r.entries.iter().cloned());
        }
        out
    }

    /// How long the oldest request still in flight has waited for its answer (None: nothing
    /// waits). A request can wait that long for a slow answer, or because the target hangs;
    /// the watchdog's probe tells which. (Answers to other requests do not clear it: a target
    /// whose registry lock is stuck still answers 404 for paths that do not need it.)
    pub fn stuck_for(&self, now: Instant) -> Option<std::time::Duration> {
        self.oldest_open().map(|t| now.saturating_duration_since(t))
    }

    /// When the oldest request still in flight was sent.
    pub fn oldest_open(&self) -> Option<Instant> {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut oldest: Option<Instant> = None;
        for l in lanes {
            let r = l.ring.lock().unwrap_or_else(|p| p.into_inner());
            for e in r.entries.iter().filter(|e| e.outcome.is_none()) {
                oldest = Some(oldest.map_or(e.sent, |o| o.min(e.sent)));
            }
        }
        oldest
    }

    /// The suspects of a death or hang of the incarnation that became ready at `since`
    /// (entries sent before it belong to an earlier incarnation and are left out): requests
    /// still in flight (oldest first), then the others by how close their end (answer or
    /// failure) came to the moment of failure `failed_at` (the death, which fails what was in
    /// flight and follows an answer its culprit got just before; for a hang, the send of the
    /// oldest request that never got its answer: the culprit of a hang is typically answered just
    /// before). Returns the suspects and how many of the first ones are hot: in flight, or ended
    /// within `window` of the failure.
    pub fn suspects_around(
        &self,
        limit: usize,
        since: Instant,
        failed_at: Instant,
        window: std::time::Duration,
    ) -> (Vec<FlightEntry>, usize) {
        // Refused connects never reached the target (the lanes send some between the death and
        // the moment the watchdog holds them).
        let all: Vec<FlightEntry> = self
            .snapshot()
            .into_iter()
            .filter(|e| e.sent >= since && !e.outcome.is_some_and(|o| o.is_connect_error()))
            .collect();
        let distance = |e: &FlightEntry| {
            let at = e.sent + std::time::Duration::from_micros(e.ended_after_us.unwrap_or(0));
            if at >= failed_at { at - failed_at } else { failed_at - at }
        };
        let (mut open, mut ended): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e.outcome.is_none());
        open.sort_by_key(|e| e.sent);
        ended.sort_by_key(|e| distance(e));
        let hot_ended = ended.iter().take_while(|e| distance(e) <= window).count();
        let hot = (open.len() + hot_ended).min(limit);
        (open.into_iter().chain(ended).take(limit).collect(), hot)
    }

    pub fn suspects(&self, limit: usize) -> Vec<FlightEntry> {
        let all = self.snapshot();
        let (mut open, mut done): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e.answered_after_us.is_none());
        open.sort_by_key(|e| e.sent);
        done.sort_by_key(|e| std::cmp::Reverse(e.sent));
        open.into_iter().chain(done).take(limit).collect()
    }
}
