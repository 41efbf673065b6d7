//! The phase driver: the phase's shared state and aggregator set up, the lanes dealt over the
//! driver threads, bounded by the phase's end or stop, joined, and the result handed back.

use super::churn::ws_churn_lane;
use super::http::http_lane;
use super::ingest::ws_ingest_lane;
use super::stream::ws_stream_lane;
use super::{LANE_GRACE, STOP_GRACE, Shared, Stop};
use crate::drive::metrics::{Aggregator, Recorder};
use crate::drive::net::{ConnectOpts, Timeouts};
use crate::drive::sched::Schedule;
use crate::drive::ws::Fanout;
use crate::drive::{Endpoint, LoadPhase, PhaseCtx, PhaseFacts, PhaseResult, Planned, TargetAddr, resolve};
use crate::model::Source;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, watch};

/// Closes the phase's view however `run` returns.
struct CloseOnDrop(crate::drive::PhaseView);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Run the phase (validated by the caller).
pub(crate) async fn run(
    phase: &LoadPhase,
    source: Arc<dyn Source>,
    target: &TargetAddr,
    ctx: &PhaseCtx,
) -> Result<PhaseResult> {
    let http: Endpoint = resolve(&target.http).await?;
    let ws_ep = match &target.ws {
        Some(u) => Some(resolve(u).await?),
        None => None,
    };
    let hlog = ctx.out_dir.as_ref().map(|d| d.join(format!("{}.hlog", phase.name)));
    let mut agg = aggregator(phase, ctx, hlog.as_deref())?;
    let sink = agg.sink();
    let live = agg.live.clone();
    let started_wall = SystemTime::now();
    let start = Instant::now() + Duration::from_millis(20);
    let sh = Arc::new(Shared::new(phase, source, ctx, &http, ws_ep.as_ref(), start));
    let planned = Planned::of(phase, sh.schedule.as_ref());
    // Checkpoints may read what was measured so far until this phase returns.
    let _view = ctx.view.as_ref().map(|w| {
        w.open(crate::drive::view::Probe {
            ask: agg.snapshots(),
            phase: phase.clone(),
            planned: planned.clone(),
            started_at: started_wall,
            start,
            interval_log: hlog.clone(),
        });
        CloseOnDrop(w.clone())
    });
    let progress = crate::drive::progress::start(ctx.progress, live.clone(), planned.clone(), start);
    let sent_total = agg.sent_total();
    let agg_task = tokio::spawn(agg.run());
    let mut stops = StopFanout::default();
    let recorder = || {
        let mut r = sink.recorder();
        r.target = ctx.target_state.clone();
        r
    };
    let lanes = producing_lanes(&sh, phase, &ctx.flight, &recorder, &mut stops);
    let (done_tx, done_rx) = watch::channel(false);
    let mut subscribers = tokio::task::JoinSet::new();
    for i in 0..phase.websocket.stream_subscribers {
        subscribers.spawn(ws_stream_lane(sh.clone(), i, recorder(), done_rx.clone(), stops.stop()));
    }
    drop(sink);
    let stop_watch = stops.watch(ctx.stop.clone());
    let (killer, abort_rx) = abort_timer(ctx.stop.clone(), sh.deadline);
    let drivers = start_drivers(lanes, phase.driver_threads, &abort_rx)?;
    let joined = join_drivers(drivers).await;
    stop_watch.abort();
    let sending_ended = Instant::now();
    let _ = done_tx.send(true);
    join_subscribers(subscribers, abort_rx).await;
    killer.abort();
    let skipped_down = sh.skipped_down.load(Ordering::Relaxed);
    drop(sh);
    let totals = agg_task.await?;
    let sent = sent_total.load(Ordering::Relaxed);
    let elapsed = Instant::now().saturating_duration_since(start);
    progress.finish();
    let facts = PhaseFacts {
        planned,
        sent,
        lane_panics: joined.panics,
        started_at: started_wall,
        sending: sending_ended.saturating_duration_since(start),
        send_span: joined.last_sent.map(|l| l.saturating_duration_since(start)),
        elapsed,
        interrupted: *ctx.stop.borrow(),
        suspects: ctx.flight.suspects(20).into_iter().filter(|e| e.answered_after_us.is_none()).collect(),
        interval_log: hlog,
        skipped_down,
        lanes_aborted: joined.aborted,
    };
    Ok(PhaseResult { phase: phase.clone(), facts, totals })
}

/// The phase's aggregator: interval log in the run directory, outage detection, soak windows.
fn aggregator(phase: &LoadPhase, ctx: &PhaseCtx, hlog: Option<&std::path::Path>) -> Result<Aggregator> {
    if let Some(d) = &ctx.out_dir {
        std::fs::create_dir_all(d)?;
    }
    let mut agg = Aggregator::new(hlog)?;
    agg.detect_outages(phase.outage_min, phase.connect_timeout + phase.request_timeout + phase.body_timeout);
    if let Some(s) = phase.soak.as_ref().filter(|s| s.enabled) {
        agg.windows(s.window, &s.drift_exclude);
    }
    Ok(agg)
}

/// The open-loop arrival schedule (`rate`, `stages`); `None` in closed loop.
fn schedule_of(phase: &LoadPhase) -> Option<Schedule> {
    if !phase.is_open_loop() {
        return None;
    }
    let time_bound = phase.time_bound();
    Some(if phase.stages.is_empty() {
        Schedule::constant(phase.rate.unwrap_or(0.0), time_bound)
    } else {
        let stages: Vec<(f64, Duration)> = phase.stages.iter().map(|s| (s.rate, s.duration)).collect();
        let sum: Duration = phase.stages.iter().map(|s| s.duration).sum();
        let tail = phase.duration.and_then(|d| d.checked_sub(sum));
        Schedule::stages(phase.rate.unwrap_or(0.0), &stages, tail)
    })
}

impl Shared {
    fn new(
        phase: &LoadPhase,
        source: Arc<dyn Source>,
        ctx: &PhaseCtx,
        http: &Endpoint,
        ws: Option<&Endpoint>,
        start: Instant,
    ) -> Shared {
        let linger = phase.linger_zero.unwrap_or(!phase.keep_alive);
        let opts = |addr| ConnectOpts {
            addr,
            connect_timeout: phase.connect_timeout,
            spread_source: phase.spread_source_addrs,
            linger_zero: linger,
        };
        let fanout = (phase.websocket.stream_subscribers > 0)
            .then(|| Fanout::new(phase.websocket.stream_subscribers, phase.websocket.fanout_timeout));
        Shared {
            ws_source: ctx.ws_source.clone().unwrap_or_else(|| source.clone()),
            source,
            start,
            deadline: phase.time_bound().map(|d| start + d),
            requests: phase.requests,
            issued: AtomicU64::new(0),
            schedule: schedule_of(phase),
            next: AtomicU64::new(0),
            think: phase.think_time,
            http: opts(http.addr),
            http_host: http.host.clone(),
            ws: ws.map(|e| (opts(e.addr), e.host.clone())),
            timeouts: Timeouts {
                connect: phase.connect_timeout,
                request: phase.request_timeout,
                body: phase.body_timeout,
            },
            keep_alive: phase.keep_alive,
            fanout,
            observer: ctx.observer.clone(),
            phase: phase.clone(),
            target: ctx.target_state.clone(),
            skipped_down: AtomicU64::new(0),
        }
    }
}

/// The phase's stop, fanned out to every lane: one flag, one Notify per lane.
#[derive(Default)]
struct StopFanout {
    flag: Arc<AtomicBool>,
    notifies: Vec<Arc<Notify>>,
}

impl StopFanout {
    /// The stop of a new lane.
    fn stop(&mut self) -> Stop {
        let n = Arc::new(Notify::new());
        self.notifies.push(n.clone());
        Stop { flag: self.flag.clone(), notify: n }
    }

    /// Set the flag and wake every lane once `stop` turns true.
    fn watch(&self, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let flag = self.flag.clone();
        let notifies = self.notifies.clone();
        tokio::spawn(async move {
            if stop.wait_for(|v| *v).await.is_ok() {
                flag.store(true, Ordering::SeqCst);
                for n in &notifies {
                    n.notify_one();
                }
            }
        })
    }
}

type LaneFut = std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Option<Instant>)> + Send>>;

/// The lanes that send (HTTP, WebSocket ingest, churn), each with its flight recorder lane.
fn producing_lanes(
    sh: &Arc<Shared>,
    phase: &LoadPhase,
    flight: &crate::drive::FlightRecorder,
    recorder: &impl Fn() -> Recorder,
    stops: &mut StopFanout,
) -> Vec<LaneFut> {
    let mut lanes: Vec<LaneFut> = Vec::new();
    let mut lane_no = 0u32;
    for i in 0..phase.concurrency {
        lanes.push(Box::pin(http_lane(sh.clone(), i, recorder(), flight.lane(lane_no), stops.stop())));
        lane_no += 1;
    }
    for i in 0..phase.websocket.ingest_connections {
        lanes.push(Box::pin(ws_ingest_lane(sh.clone(), i, recorder(), flight.lane(lane_no), stops.stop())));
        lane_no += 1;
    }
    for i in 0..phase.websocket.churn {
        lanes.push(Box::pin(ws_churn_lane(sh.clone(), i, recorder(), flight.lane(lane_no), stops.stop())));
        lane_no += 1;
    }
    lanes
}

/// Lanes are not awaited past a short grace: at the phase's end (or its stop) a lane still
/// busy — a write into a server that does not read, an answer that never comes — is aborted,
/// and what it had in flight counts as interrupted. Nothing a target does holds the phase. The
/// receiver turns true when the lanes are to be aborted.
fn abort_timer(
    mut stop: watch::Receiver<bool>,
    end: Option<Instant>,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<bool>) {
    let (abort_tx, abort_rx) = watch::channel(false);
    let killer = tokio::spawn(async move {
        let at_end = async {
            match end {
                Some(d) => tokio::time::sleep_until((d + LANE_GRACE).into()).await,
                None => std::future::pending().await,
            }
        };
        let on_stop = async {
            if stop.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(STOP_GRACE).await;
        };
        tokio::select! {
            _ = at_end => {}
            _ = on_stop => {}
        }
        let _ = abort_tx.send(true);
    });
    (killer, abort_rx)
}

/// What a driver thread reports when its lanes are done: the latest send, lanes that panicked,
/// lanes aborted.
type DriverEnd = (Option<Instant>, u64, u64);

/// Deal the lanes round-robin over the driver threads and start them. Each driver thread runs
/// its lanes on a current-thread runtime (no work stealing, no cross-thread wakeups on the hot
/// path), like wrk's one event loop per thread.
fn start_drivers(
    lanes: Vec<LaneFut>,
    driver_threads: usize,
    abort: &watch::Receiver<bool>,
) -> Result<Vec<tokio::sync::oneshot::Receiver<DriverEnd>>> {
    let threads = match driver_threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
    .clamp(1, lanes.len().max(1));
    let mut buckets: Vec<Vec<LaneFut>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, l) in lanes.into_iter().enumerate() {
        buckets[i % threads].push(l);
    }
    let mut results = Vec::new();
    for (t, bucket) in buckets.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let abort = abort.clone();
        std::thread::Builder::new().name(format!("drive-{t}")).spawn(move || {
            let out = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(drive_bucket(bucket, abort)),
                Err(_) => (None, bucket.len() as u64, 0),
            };
            let _ = tx.send(out);
        })?;
        results.push(rx);
    }
    Ok(results)
}

/// One driver thread's lanes, until they end or are aborted.
async fn drive_bucket(bucket: Vec<LaneFut>, mut abort: watch::Receiver<bool>) -> DriverEnd {
    let mut set = tokio::task::JoinSet::new();
    for l in bucket {
        set.spawn(l);
    }
    let (mut last, mut panics, mut aborted) = (None::<Instant>, 0u64, 0u64);
    let mut aborting = false;
    loop {
        tokio::select! {
            r = set.join_next() => match r {
                None => break,
                Some(Ok((_, l))) => last = last.max(l),
                Some(Err(e)) if e.is_cancelled() => aborted += 1,
                Some(Err(_)) => panics += 1,
            },
            r = abort.wait_for(|v| *v), if !aborting => {
                aborting = true;
                if r.is_ok() {
                    set.abort_all();
                }
            }
        }
    }
    (last, panics, aborted)
}

/// Every driver thread's end, summed.
struct Joined {
    last_sent: Option<Instant>,
    panics: u64,
    aborted: u64,
}

async fn join_drivers(drivers: Vec<tokio::sync::oneshot::Receiver<DriverEnd>>) -> Joined {
    let mut j = Joined { last_sent: None, panics: 0, aborted: 0 };
    for rx in drivers {
        match rx.await {
            Ok((last, p, a)) => {
                j.last_sent = j.last_sent.max(last);
                j.panics += p;
                j.aborted += a;
            }
            Err(_) => j.panics += 1,
        }
    }
    j
}

/// Subscribers end a moment after the producers; they too are aborted past the grace.
async fn join_subscribers(mut subscribers: tokio::task::JoinSet<()>, mut abort: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = subscribers.join_next() => if r.is_none() { break },
            r = abort.wait_for(|v| *v) => {
                if r.is_ok() {
                    subscribers.abort_all();
                }
                while subscribers.join_next().await.is_some() {}
                break;
            }
        }
    }
}
