//! What the aggregator derives from *when* requests were in flight and answered, besides the
//! histograms: stretches where the target answered nothing although requests were waiting
//! ([`Activity`], the outage detector) and latency percentiles per fixed window ([`Windows`],
//! for soak drift).
//!
//! The detector works on buckets (a quarter of the shortest outage, 10–50 ms). For every
//! request sample it adds the request to each bucket its `[sent, done]` interval touches
//! (a difference array) and counts an answer in the bucket of `done`. A bucket is *dark* when
//! requests were in flight in it and none was answered; a run of dark buckets at least
//! `min` long in which at least two requests were waiting is a stall. Samples reach the
//! aggregator late (a lane flushes its buffer when it records its next request, so at most one
//! request duration late), so buckets are decided only once they are older than a horizon of
//! twice the longest possible request; memory is the horizon's buckets, not the run's length.

use crate::drive::metrics::Percentiles;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A stretch without answers, in seconds since the phase's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stretch {
    pub start_s: f64,
    pub end_s: f64,
    /// Most requests in flight in one bucket of the stretch.
    pub peak_in_flight: u64,
    /// Requests that ended in the stretch without an answer (refused, reset, timed out).
    pub failed: u64,
}

/// The outage detector (see the module documentation).
pub struct Activity {
    origin: Instant,
    bucket_ms: u64,
    min_buckets: u64,
    horizon_buckets: u64,
    /// Index of `answered[0]` / `delta[0]`.
    base: u64,
    answered: VecDeque<u32>,
    failed: VecDeque<u32>,
    delta: VecDeque<i64>,
    /// Requests in flight carried into bucket `base` (prefix sum of decided deltas).
    running: i64,
    /// The dark run being extended: (first bucket, peak in flight, failed requests).
    dark: Option<(u64, u64, u64)>,
    stalls: Vec<Stretch>,
}

impl Activity {
    /// `min`: the shortest stretch reported; `longest_request`: the most a request can take
    /// (connect + request + body timeouts).
    pub fn new(origin: Instant, min: Duration, longest_request: Duration) -> Activity {
        let bucket_ms = (min.as_millis() as u64 / 4).clamp(10, 50);
        let horizon = longest_request.as_millis() as u64 * 2 + 5000;
        Activity {
            origin,
            bucket_ms,
            min_buckets: (min.as_millis() as u64).div_ceil(bucket_ms).max(1),
            horizon_buckets: horizon.div_ceil(bucket_ms),
            base: 0,
            answered: VecDeque::new(),
            failed: VecDeque::new(),
            delta: VecDeque::new(),
            running: 0,
            dark: None,
            stalls: Vec::new(),
        }
    }

    fn bucket(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_millis() as u64 / self.bucket_ms
    }

    fn slot(&mut self, b: u64) -> usize {
        // Buckets already decided are folded into the oldest open one (only for samples later
        // than the horizon, which the horizon's size rules out).
        let i = b.saturating_sub(self.base) as usize;
        while self.delta.len() <= i + 1 {
            self.answered.push_back(0);
            self.failed.push_back(0);
            self.delta.push_back(0);
        }
        i
    }

    /// One request: sent at `sent`, ended at `done`, answered by the target or not.
    pub fn note(&mut self, sent: Instant, done: Instant, answered: bool) {
        let (bs, bd) = (self.bucket(sent), self.bucket(done.max(sent)));
        let s = self.slot(bs);
        let d = self.slot(bd);
        self.delta[s] += 1;
        self.delta[d + 1] -= 1;
        if answered {
            self.answered[d] += 1;
        } else {
            self.failed[d] += 1;
        }
    }

    /// Decide the buckets older than the horizon.
    pub fn advance(&mut self, now: Instant) {
        let upto = self.bucket(now).saturating_sub(self.horizon_buckets);
        while self.base < upto {
            self.decide_one();
        }
    }

    fn decide_one(&mut self) {
        let answered = self.answered.pop_front().unwrap_or(0);
        let failed = self.failed.pop_front().unwrap_or(0) as u64;
        self.running += self.delta.pop_front().unwrap_or(0);
        let in_flight = self.running.max(0) as u64;
        let b = self.base;
        self.base += 1;
        if answered == 0 && in_flight > 0 {
            let d = self.dark.get_or_insert((b, 0, 0));
            d.1 = d.1.max(in_flight);
            d.2 += failed;
        } else {
            self.close(b);
        }
    }

    fn close(&mut self, end_bucket: u64) {
        if let Some((first, peak, failed)) = self.dark.take()
            && end_bucket - first >= self.min_buckets
            && peak >= 2
        {
            let s = |b: u64| (b * self.bucket_ms) as f64 / 1000.0;
            self.stalls.push(Stretch { start_s: s(first), end_s: s(end_bucket), peak_in_flight: peak, failed });
        }
    }

    /// Decide everything and return the stalls, oldest first.
    pub fn finish(mut self) -> Vec<Stretch> {
        while !self.delta.is_empty() {
            self.decide_one();
        }
        let b = self.base;
        self.close(b);
        self.stalls
    }
}

/// Latency and counts of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowStat {
    /// Seconds since the phase's start.
    pub start_s: u64,
    pub end_s: u64,
    /// Requests ended in the window (every outcome) and those the target answered.
    pub requests: u64,
    pub answered: u64,
    pub errors: u64,
    /// Corrected latency of the window's latency samples, µs.
    pub latency: Percentiles,
}

/// Per-window percentiles, fed one closed second at a time.
pub struct Windows {
    secs: u64,
    hist: Histogram<u64>,
    start: u64,
    requests: u64,
    answered: u64,
    errors: u64,
    pub done: Vec<WindowStat>,
}

impl Windows {
    pub fn new(window: Duration) -> Windows {
        Windows {
            secs: window.as_secs().max(1),
            hist: Histogram::new(3).expect("3 significant figures is valid"),
            start: 0,
            requests: 0,
            answered: 0,
            errors: 0,
            done: Vec::new(),
        }
    }

    /// Second `t` (1-based, its end) closed with these figures and latency histogram.
    pub fn second(&mut self, t: u64, requests: u64, answered: u64, errors: u64, h: &Histogram<u64>) {
        let _ = self.hist.add(h);
        self.requests += requests;
        self.answered += answered;
        self.errors += errors;
        if t - self.start >= self.secs {
            self.close(t);
        }
    }

    fn close(&mut self, t: u64) {
        self.done.push(WindowStat {
            start_s: self.start,
            end_s: t,
            requests: self.requests,
            answered: self.answered,
            errors: self.errors,
            latency: Percentiles::of(&self.hist),
        });
        self.hist.reset();
        self.start = t;
        (self.requests, self.answered, self.errors) = (0, 0, 0);
    }

    /// The windows; the last, partial one is kept when it is at least half a window long.
    pub fn finish(mut self, t: u64) -> Vec<WindowStat> {
        if self.requests > 0 && (t - self.start) * 2 >= self.secs {
            self.close(t);
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(o: Instant, ms: u64) -> Instant {
        o + Duration::from_millis(ms)
    }

    #[test]
    fn finds_a_stall_and_not_a_lone_slow_request() {
        let o = Instant::now();
        let mut a = Activity::new(o, Duration::from_millis(200), Duration::from_secs(1));
        // 100 req/s answered in 2 ms, except from 1000 to 1500 ms: nothing answered, the
        // requests of that half second wait until 1500.
        for i in 0..300u64 {
            let sent = i * 10;
            let done = if (1000..1500).contains(&sent) { 1502 } else { sent + 2 };
            a.note(at(o, sent), at(o, done), true);
        }
        // A lone slow request later (one in flight, 400 ms): not a stall.
        a.note(at(o, 3100), at(o, 3500), true);
        let s = a.finish();
        assert_eq!(s.len(), 1, "{s:?}");
        assert!((s[0].start_s - 1.0).abs() < 0.06 && (s[0].end_s - 1.5).abs() < 0.06, "{s:?}");
        assert!(s[0].peak_in_flight >= 40, "{s:?}");
    }

    #[test]
    fn refused_requests_are_a_stall_and_answers_are_not() {
        let o = Instant::now();
        let mut a = Activity::new(o, Duration::from_millis(200), Duration::from_secs(1));
        for i in 0..100u64 {
            // A dead target from 300 to 700 ms: every request refused at once.
            let sent = i * 10;
            a.note(at(o, sent), at(o, sent), !(300..700).contains(&sent));
        }
        // Deciding as time passes gives the same result as deciding at the end.
        a.advance(at(o, 60_000));
        let s = a.finish();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].failed, 40);
        assert!((s[0].end_s - s[0].start_s - 0.4).abs() < 0.06, "{s:?}");
    }

    #[test]
    fn windows_close_every_n_seconds() {
        let mut w = Windows::new(Duration::from_secs(2));
        let mut h = Histogram::<u64>::new(3).unwrap();
        for t in 1..=5u64 {
            h.reset();
            h.record(t * 1000).unwrap();
            w.second(t, 1, 1, 0, &h);
        }
        let d = w.finish(5);
        assert_eq!(d.iter().map(|x| (x.start_s, x.end_s)).collect::<Vec<_>>(), [(0, 2), (2, 4), (4, 5)]);
        assert!((4000..=4004).contains(&d[1].latency.max), "{d:?}");
        assert_eq!(d[2].requests, 1);
        // A tail shorter than half a window is dropped.
        let mut w = Windows::new(Duration::from_secs(4));
        for t in 1..=5u64 {
            w.second(t, 1, 1, 0, &h);
        }
        assert_eq!(w.finish(5).len(), 1);
    }
}
