//! The [`Aggregator`]: the task that owns every histogram. It absorbs the lanes' sample
//! batches, closes one timeline second per second (interval log, soak windows, outage
//! detector, per-route series) and answers checkpoints' looks between two batches.

use super::Totals;
use super::histograms::{Pair, key_hist, new_hist, rec};
use super::interval_log::IntervalLog;
use super::live::Live;
use super::outcome::Outcome;
use super::recorder::{Sample, Sink};
use super::series::{OpenSeries, RouteIntervals, RouteSeries, SERIES_CAP};
use super::timeline::{Second, TIMELINE_MAX};
use crate::model::Layer;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the aggregator collects the lanes' batches. It is never woken by a batch: a
/// receiver waiting on the channel is woken by every one of them (an eventfd write and two
/// context switches on the lanes' core, about a thousand a second at 10k requests/s), while
/// collecting on its own clock wakes it 40 times a second and delays what the display, the
/// timeline and the outage detector see by at most this much.
const COLLECT_EVERY: Duration = Duration::from_millis(25);

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
    activity: Option<crate::drive::activity::Activity>,
    windows: Option<crate::drive::activity::Windows>,
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

impl Aggregator {
    /// A new aggregator. `interval_log` is the path of the HdrHistogram interval log to write
    /// (one corrected histogram per second, all routes), if any.
    pub fn new(interval_log: Option<&std::path::Path>) -> std::io::Result<Aggregator> {
        let (tx, rx) = mpsc::unbounded_channel();
        let interval_log = interval_log.map(IntervalLog::create).transpose()?;
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
        self.windows = Some(crate::drive::activity::Windows::new(window));
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
        if let Some(log) = &self.interval_log {
            log.sync_data();
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

    /// Absorb every batch the lanes have handed over. False: every recorder and sink is gone
    /// and nothing is left (the phase's sending is over).
    fn collect(&mut self) -> bool {
        // Only what is queued now: lanes that queue batches faster than they are absorbed must not
        // keep this turn, and the runtime's other tasks, from ending.
        for _ in 0..self.rx.len().max(1) {
            match self.rx.try_recv() {
                Ok(b) => self.absorb(b),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
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
                let e = Second::of(self.seconds, span, &self.bin, &self.bin_outcomes);
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
        let sec = Second::of(self.seconds, 1, h, &self.interval_outcomes);

        if let Some(log) = &mut self.interval_log {
            log.second(self.seconds, h);
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
            self.activity = Some(crate::drive::activity::Activity::new(self.start, min, longest));
        }
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::from_std(self.start + Duration::from_secs(1)),
            Duration::from_secs(1),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut collect = tokio::time::interval(COLLECT_EVERY);
        collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = collect.tick() => if !self.collect() {
                    break;
                },
                _ = tick.tick() => {
                    if !self.collect() {
                        break;
                    }
                    self.close_second();
                }
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
            let e = Second::of(self.seconds, span.max(1), &self.bin, &self.bin_outcomes);
            self.totals.timeline.push(e);
        }
        if let Some(log) = &self.interval_log {
            log.sync_all();
        }
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::super::histograms::PRESIZED_US;
    use super::super::outcome::Key;
    use super::*;

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

    #[test]
    fn a_long_timeline_is_merged_and_stays_bounded() {
        let mut a = Aggregator::new(None).unwrap();
        let seconds = 3 * TIMELINE_MAX as u64 + 123;
        for s in 1..=seconds {
            // Second s: s % 7 + 1 requests, one of them slow every 1000 s.
            let n = s % 7 + 1;
            let mut batch: Vec<Sample> = (0..n).map(|_| sample("storage", Layer::Valid, Outcome::S2xx, 100)).collect();
            if s % 1000 == 0 {
                batch[0] = sample("storage", Layer::Valid, Outcome::S2xx, 50_000);
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
