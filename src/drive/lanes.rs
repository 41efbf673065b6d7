//! The sending tasks ("lanes") of a phase and the phase driver that starts, bounds and joins them.
//!
//! * HTTP lanes (`concurrency` of them): closed loop (send, await, think, repeat) or open loop
//!   (a free lane claims the next schedule index from a shared counter and sends it at its
//!   intended time, like k6's constant-arrival-rate: a lane held up by a slow answer delays
//!   nothing while other lanes are free). A lane that gets a WebSocket script from the source
//!   runs it raw on a fresh connection.
//! * WebSocket ingest lanes: one long-lived connection each, frames at `frame_rate` (intended
//!   times, corrected latency) with acks matched to frames in order.
//! * Stream subscribers: fan-out delay of ingested events; churn lanes: connect/send/close.
//!
//! Bounds: lanes stop scheduling at the deadline or when the request budget is spent; the
//! phase's `stop` signal ends in-flight requests as `interrupted`.

use crate::drive::flight::{LaneRecorder, Ticket};
use crate::drive::http::HttpLane;
use crate::drive::metrics::{Aggregator, Key, Outcome, Recorder, Sample};
use crate::drive::net::{ConnectOpts, Timeouts};
use crate::drive::sched::Schedule;
use crate::drive::suspects::frame_from;
use crate::drive::ws::{self, Fanout};
use crate::drive::{Endpoint, LoadPhase, PhaseCtx, PhaseFacts, PhaseResult, Planned, TargetAddr, resolve};
use crate::model::{Generated, HttpRequest, Layer, Payload, RequestSeed, Source, WsScript};
use anyhow::Result;
use fastwebsockets::{Frame, OpCode};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, watch};

/// Stream ids of the WebSocket lanes (HTTP lanes use their lane number).
pub(crate) const WS_INGEST_STREAM: u64 = 1 << 20;
pub(crate) const WS_CHURN_STREAM: u64 = 2 << 20;
/// Open loop: the schedule is one stream, its k-th request is index k whichever lane sends it.
pub const SCHEDULE_STREAM: u64 = 3 << 20;

/// How long lanes still busy at the phase's end are waited for before they are aborted; after a
/// stop (Ctrl-C, SIGTERM, a death that ends the phase), `STOP_GRACE`: requests in flight end as
/// interrupted at once where they wait, only a lane stuck elsewhere needs it.
pub const LANE_GRACE: Duration = Duration::from_secs(2);
pub const STOP_GRACE: Duration = Duration::from_secs(1);

struct Shared {
    source: Arc<dyn Source>,
    ws_source: Arc<dyn Source>,
    start: Instant,
    deadline: Option<Instant>,
    requests: Option<u64>,
    issued: AtomicU64,
    schedule: Option<Schedule>,
    /// Open loop: the next schedule index not yet claimed by a lane.
    next: AtomicU64,
    think: Option<Duration>,
    http: ConnectOpts,
    http_host: String,
    ws: Option<(ConnectOpts, String)>,
    timeouts: Timeouts,
    keep_alive: bool,
    fanout: Option<Arc<Fanout>>,
    observer: Option<crate::drive::Observer>,
    phase: LoadPhase,
    /// The target's state (see [`PhaseCtx::target_state`]).
    target: Option<watch::Receiver<crate::drive::TargetState>>,
    /// Open-loop arrivals and ingest frames not sent because they fell due while the target was
    /// down.
    skipped_down: AtomicU64,
}

impl Shared {
    /// Closed loop: may another request be started now?
    fn take_budget(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match self.requests {
            Some(max) => self.issued.fetch_add(1, Ordering::Relaxed) < max,
            None => true,
        }
    }

    fn past_deadline(&self, t: Instant) -> bool {
        self.deadline.is_some_and(|d| t >= d)
    }

    /// While the target is down (dead, hung, starting again behind its readiness gate), wait
    /// for it: no lane sends anything to a target that is not ready, so a restarted server is
    /// not hit before its gate passed. `Up(None)`: it was up; `Up(Some(t))`: it came back at t.
    async fn hold_while_down(&self, stop: &Stop) -> Held {
        let Some(d) = &self.target else { return Held::Up(None) };
        if !d.borrow().down {
            return Held::Up(None);
        }
        let mut d = d.clone();
        tokio::select! {
            r = d.wait_for(|v| !v.down) => match r {
                Ok(_) => Held::Up(Some(Instant::now())),
                // The watchdog is gone (the phase is ending): nothing to wait for.
                Err(_) => Held::Up(None),
            },
            _ = stop.wait() => Held::Stopped,
        }
    }

    /// [`Shared::hold_while_down`] for lanes that only need to know whether to go on.
    async fn wait_until_up(&self, stop: &Stop) -> bool {
        !matches!(self.hold_while_down(stop).await, Held::Stopped)
    }
}

/// See [`Shared::hold_while_down`].
enum Held {
    Up(Option<Instant>),
    Stopped,
}

fn route_of(g: &crate::model::Generated) -> &'static str {
    g.route_name()
}

fn is_ingest_route(r: &crate::model::HttpRequest) -> bool {
    matches!(r.route, Some(crate::api::RouteId::EventsIngest) | Some(crate::api::RouteId::EventsBulk))
}

/// A lane's stop signal: a flag plus the lane's own Notify (nothing shared on the hot path).
#[derive(Clone)]
struct Stop {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Stop {
    #[inline]
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Resolves once the phase is stopped.
    async fn wait(&self) {
        if self.is_set() {
            return;
        }
        self.notify.notified().await;
    }
}

async fn http_lane(
    sh: Arc<Shared>,
    lane: u32,
    mut rec: Recorder,
    fl: LaneRecorder,
    stop: Stop,
) -> (u64, Option<Instant>) {
    let mut client = HttpLane::new(sh.http.clone(), sh.timeouts, sh.keep_alive, sh.http_host.clone())
        .with_executor(sh.phase.executor);
    let mut j: u64 = 0;
    tokio::time::sleep_until(sh.start.into()).await;
    loop {
        if stop.is_set() {
            break;
        }
        let turn = match &sh.schedule {
            Some(s) => open_loop_turn(&sh, s, &mut rec, &stop).await,
            None => closed_loop_turn(&sh, lane, &mut j, &stop).await,
        };
        let (stream, index, intended, behind) = match turn {
            Turn::Send { stream, index, intended, behind } => (stream, index, intended, behind),
            Turn::Skip => continue,
            Turn::End => break,
        };
        let g = sh.source.generate(stream, index);
        let sent = Instant::now();
        let at = When { intended, from: if behind { intended } else { sent }, sent };
        rec.sent += 1;
        match &g.payload {
            Payload::Http(r) => {
                send_http(&sh, &mut client, &mut rec, &fl, &stop, &g, r, at).await;
                if let Payload::Http(r) = g.payload {
                    // A large body's buffer serves the next large body (no fresh pages).
                    crate::generate::recycle(r.body);
                }
            }
            Payload::Ws(script) => {
                if !send_script(&sh, &mut client, &mut rec, &fl, &stop, &g, script, at).await {
                    continue;
                }
            }
        }
        if let Some(think) = sh.think {
            rec.idle_until(Instant::now() + think);
            tokio::select! {
                _ = tokio::time::sleep(think) => {}
                _ = stop.wait() => break,
            }
        }
    }
    (rec.sent, rec.last_sent)
}

/// What an HTTP lane does next.
enum Turn {
    /// Send request `index` of `stream`, intended for `intended`; `behind`: the lane is behind
    /// schedule, so the latency is charged from the intended time.
    Send {
        stream: u64,
        index: u64,
        intended: Instant,
        behind: bool,
    },
    /// An arrival that fell due while the target was down: skipped (counted).
    Skip,
    End,
}

/// Open loop: claim the next schedule index and wait for its time.
async fn open_loop_turn(sh: &Shared, s: &Schedule, rec: &mut Recorder, stop: &Stop) -> Turn {
    let k = sh.next.fetch_add(1, Ordering::Relaxed);
    if sh.requests.is_some_and(|m| k >= m) {
        return Turn::End;
    }
    let Some(off) = s.at(k) else { return Turn::End };
    let at = sh.start + off;
    if sh.past_deadline(at) {
        return Turn::End;
    }
    // Behind schedule (every lane was busy): charge from the intended time. Otherwise the only
    // delay is our own timer's (≤ 1 ms): measure from the actual send.
    let behind = Instant::now() >= at;
    rec.idle_until(at);
    tokio::select! {
        _ = tokio::time::sleep_until(at.into()) => {}
        _ = stop.wait() => return Turn::End,
    }
    // Arrivals due while the target was down are not sent late in a burst at a server that just
    // came back: they are skipped (counted), the schedule goes on from now.
    match sh.hold_while_down(stop).await {
        Held::Stopped => Turn::End,
        Held::Up(Some(_)) => {
            sh.skipped_down.fetch_add(1, Ordering::Relaxed);
            Turn::Skip
        }
        Held::Up(None) => Turn::Send { stream: SCHEDULE_STREAM, index: k, intended: at, behind },
    }
}

/// Closed loop: the lane's next request, once the target is up and the budget allows it.
async fn closed_loop_turn(sh: &Shared, lane: u32, j: &mut u64, stop: &Stop) -> Turn {
    if !sh.wait_until_up(stop).await || !sh.take_budget() {
        return Turn::End;
    }
    *j += 1;
    Turn::Send { stream: lane as u64, index: *j - 1, intended: Instant::now(), behind: true }
}

/// The times of one request: intended, charged from (the intended time when behind schedule,
/// else the actual send) and actually sent.
#[derive(Clone, Copy)]
struct When {
    intended: Instant,
    from: Instant,
    sent: Instant,
}

/// One HTTP request: sent, its answer observed (stateful routes, fan-out markers), recorded.
#[allow(clippy::too_many_arguments)]
async fn send_http(
    sh: &Shared,
    client: &mut HttpLane,
    rec: &mut Recorder,
    fl: &LaneRecorder,
    stop: &Stop,
    g: &Generated,
    r: &HttpRequest,
    at: When,
) {
    let route = route_of(g);
    let prepared = client.prepare(r);
    let t = fl.begin(g.seed, g.layer, route, client.conns.max(1), 0, at.sent, prepared.raw());
    if r.route.is_some_and(crate::generate::valid::pool_dependent) {
        fl.keep_input(t, g);
    }
    let marker = match &sh.fanout {
        Some(f) if is_ingest_route(r) => ws::event_marker(&r.body).inspect(|m| f.register(m.clone(), at.sent)),
        _ => None,
    };
    let keep = sh.observer.is_some() && crate::drive::observed_with_body(r.route);
    let ans = tokio::select! {
        a = client.send_prepared(prepared, keep) => Some(a),
        _ = stop.wait() => None,
    };
    let done = Instant::now();
    if let (Some(obs), Some(a)) = (&sh.observer, &ans)
        && let Some(status) = a.status
        && (keep || is_ingest_route(r))
    {
        obs(r, status, a.body.as_deref().unwrap_or(&[]));
    }
    let outcome = ans.map(|a| a.outcome).unwrap_or(Outcome::Interrupted);
    if outcome == Outcome::S2xx
        && let (Some(f), Some(m)) = (&sh.fanout, &marker)
    {
        f.accept(m);
    }
    let key = Key { route, layer: g.layer, outcome };
    finish(rec, fl, t, key, at.intended, at.from, at.sent, done);
}

/// A WebSocket script from the source, run raw on a fresh connection. False: not sent (no
/// WebSocket endpoint; counted as a connect failure), and the lane goes on without thinking.
#[allow(clippy::too_many_arguments)]
async fn send_script(
    sh: &Shared,
    client: &mut HttpLane,
    rec: &mut Recorder,
    fl: &LaneRecorder,
    stop: &Stop,
    g: &Generated,
    script: &WsScript,
    at: When,
) -> bool {
    let route = route_of(g);
    let key = |outcome| Key { route, layer: g.layer, outcome };
    let Some((opts, host)) = &sh.ws else {
        let t = fl.begin(g.seed, g.layer, route, 0, 0, at.sent, None);
        finish(rec, fl, t, key(Outcome::ConnectOther), at.intended, at.from, at.sent, Instant::now());
        return false;
    };
    let t = fl.begin(g.seed, g.layer, route, client.conns + 1, 0, at.sent, None);
    client.conns += 1;
    let ans = tokio::select! {
        a = ws::run_raw_script(opts, sh.timeouts, host, script) => Some(a.0),
        _ = stop.wait() => None,
    };
    let outcome = ans.unwrap_or(Outcome::Interrupted);
    finish(rec, fl, t, key(outcome), at.intended, at.from, at.sent, Instant::now());
    true
}

#[inline]
#[allow(clippy::too_many_arguments)]
fn finish(
    rec: &mut Recorder,
    fl: &LaneRecorder,
    t: Ticket,
    key: Key,
    intended: Instant,
    from: Instant,
    sent: Instant,
    done: Instant,
) {
    let answered = key.outcome.is_answer();
    fl.end(t, key.outcome, answered.then_some(done));
    rec.record(key, intended, from, sent, done);
}

struct InFlight {
    intended: Instant,
    from: Instant,
    sent: Instant,
    ticket: Ticket,
    layer: Layer,
    marker: Option<String>,
}

async fn ws_ingest_lane(
    sh: Arc<Shared>,
    lane: u32,
    mut rec: Recorder,
    fl: LaneRecorder,
    stop: Stop,
) -> (u64, Option<Instant>) {
    let (opts, host) = sh.ws.clone().expect("checked: ws target");
    let w = &sh.phase.websocket;
    let headers = vec![("x-sentry-auth".to_string(), w.auth.clone().into_bytes())];
    let period = if w.frame_rate > 0.0 { Some(Duration::from_secs_f64(1.0 / w.frame_rate)) } else { None };
    // Spread the lanes' phases over one period.
    let lanes = w.ingest_connections.max(1) as f64;
    let offset = period.map(|p| p.mul_f64(lane as f64 / lanes)).unwrap_or_default();
    let mut ing = Ingest { stream: WS_INGEST_STREAM + lane as u64, period, offset, j: 0, conn_no: 0 };
    tokio::time::sleep_until(sh.start.into()).await;
    loop {
        if stop.is_set()
            || sh.past_deadline(Instant::now())
            || sh.requests.is_some_and(|m| sh.issued.load(Ordering::Relaxed) >= m)
        {
            break;
        }
        // No reconnect to a target that is not ready (a frame that kills a server would kill
        // the restarted one before its readiness gate passed); frames due meanwhile are skipped.
        match sh.hold_while_down(&stop).await {
            Held::Stopped => break,
            Held::Up(Some(back)) => ing.skip_until(&sh, back),
            Held::Up(None) => {}
        }
        ing.conn_no += 1;
        let t0 = Instant::now();
        let wsock = tokio::select! {
            r = ws::ws_connect(&opts, sh.timeouts, &host, &w.ingest_path, &headers) => r,
            _ = stop.wait() => break,
        };
        let wsock = match wsock {
            Ok(s) => s,
            Err(o) => {
                if !ing.connect_failed(&sh, &mut rec, &fl, &stop, o, t0).await {
                    break;
                }
                continue;
            }
        };
        let (rd, wr) = wsock.split(tokio::io::split);
        if ing.connection(&sh, &mut rec, &fl, &stop, rd, wr).await == Flow::End {
            break;
        }
    }
    (rec.sent, rec.last_sent)
}

/// An ingest lane's pacing and position, kept across its connections.
struct Ingest {
    stream: u64,
    /// Between two frames (`frame_rate`); `None`: the next frame as soon as the previous ack came.
    period: Option<Duration>,
    /// The lane's phase within one period.
    offset: Duration,
    /// The next frame's index in the lane's stream.
    j: u64,
    conn_no: u64,
}

/// What an ingest connection does after one event.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    /// Open a new connection.
    Reconnect,
    /// The lane is done.
    End,
}

/// One ingest connection's frames in flight and pacing.
struct Conn {
    pending: VecDeque<InFlight>,
    next_at: Instant,
    sending: bool,
    last_write_done: Instant,
}

impl Ingest {
    /// The target came back at `back`: frames that fell due meanwhile are skipped (counted).
    fn skip_until(&mut self, sh: &Shared, back: Instant) {
        if let Some(p) = self.period {
            let due = back.saturating_duration_since(sh.start + self.offset).as_secs_f64() / p.as_secs_f64();
            let resume = due.ceil() as u64;
            if resume > self.j {
                sh.skipped_down.fetch_add(resume - self.j, Ordering::Relaxed);
                self.j = resume;
            }
        }
    }

    /// When frame `j` is due (as soon as possible without a frame rate).
    fn due(&self, sh: &Shared, j: u64) -> Instant {
        match self.period {
            Some(p) => sh.start + self.offset + p.mul_f64(j as f64),
            None => Instant::now(),
        }
    }

    /// A failed connection counts as one failed request. False: the lane is done.
    async fn connect_failed(
        &mut self,
        sh: &Shared,
        rec: &mut Recorder,
        fl: &LaneRecorder,
        stop: &Stop,
        o: Outcome,
        t0: Instant,
    ) -> bool {
        if !sh.take_budget() {
            return false;
        }
        rec.sent += 1;
        let seed = RequestSeed { run: 0, stream: self.stream, index: self.j };
        let t = fl.begin(seed, Layer::Ws, "ws-ingest", self.conn_no, 0, t0, None);
        finish(rec, fl, t, ingest_key(Layer::Ws, o), t0, t0, t0, Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => true,
            _ = stop.wait() => false,
        }
    }

    /// Frames at their times on one connection, acks matched to frames in order, until the
    /// connection fails (`Reconnect`) or the lane is done (`End`).
    async fn connection<R, W>(
        &mut self,
        sh: &Shared,
        rec: &mut Recorder,
        fl: &LaneRecorder,
        stop: &Stop,
        mut rd: fastwebsockets::WebSocketRead<R>,
        mut wr: fastwebsockets::WebSocketWrite<W>,
    ) -> Flow
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        let mut c = Conn {
            pending: VecDeque::new(),
            next_at: match self.period {
                Some(_) => self.due(sh, self.j).max(sh.start),
                None => Instant::now(),
            },
            sending: true,
            last_write_done: Instant::now(),
        };
        loop {
            let can_send = c.sending && c.pending.len() < 4096 && (self.period.is_some() || c.pending.is_empty());
            let ack_deadline = c.pending.front().map(|p| p.sent + sh.timeouts.request);
            if can_send {
                rec.idle_until(c.next_at);
            }
            let mut noop = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
            let flow = tokio::select! {
                _ = tokio::time::sleep_until(c.next_at.into()), if can_send => {
                    self.send_frame(sh, &mut c, rec, fl, stop, &mut wr).await
                }
                f = rd.read_frame(&mut noop) => on_ingest_read(sh, self.period, &mut c, rec, fl, &mut wr, f).await,
                _ = tokio::time::sleep_until(ack_deadline.unwrap_or(c.next_at).into()), if ack_deadline.is_some() => {
                    drain(rec, fl, &mut c.pending, Outcome::Timeout);
                    if !c.sending { Flow::End } else { Flow::Reconnect }
                }
                _ = stop.wait() => {
                    drain(rec, fl, &mut c.pending, Outcome::Interrupted);
                    Flow::End
                }
            };
            if flow != Flow::Go {
                return flow;
            }
        }
    }

    /// The frame due now: generated, registered for fan-out, written (bounded).
    async fn send_frame<W: tokio::io::AsyncWrite + Unpin>(
        &mut self,
        sh: &Shared,
        c: &mut Conn,
        rec: &mut Recorder,
        fl: &LaneRecorder,
        stop: &Stop,
        wr: &mut fastwebsockets::WebSocketWrite<W>,
    ) -> Flow {
        if sh.past_deadline(c.next_at) || !sh.take_budget() {
            c.sending = false;
            return if c.pending.is_empty() { Flow::End } else { Flow::Go };
        }
        let g = sh.ws_source.generate(self.stream, self.j);
        self.j += 1;
        let (bytes, binary) = frame_from(&g);
        let sent = Instant::now();
        rec.sent += 1;
        let ticket = fl.begin(g.seed, g.layer, "ws-ingest", self.conn_no, 0, sent, None);
        let marker = sh.fanout.as_ref().and_then(|f| ws::event_marker(&bytes).inspect(|m| f.register(m.clone(), sent)));
        let frame = if binary { Frame::binary(bytes.into()) } else { Frame::text(bytes.into()) };
        // Charged from the intended time only when our previous write (back-pressure from the
        // server) made us late, not for timer slop.
        let from = if c.last_write_done >= c.next_at { c.next_at } else { sent };
        let inf = InFlight { intended: c.next_at, from, sent, ticket, layer: g.layer, marker };
        // Bounded, and abandoned on a stop: a server that does not read must not hold the lane
        // in a write.
        let w = tokio::select! {
            w = ws::write_frame_bounded(wr, frame, sh.timeouts) => w,
            _ = stop.wait() => Err(Outcome::Interrupted),
        };
        c.last_write_done = Instant::now();
        match w {
            Ok(()) => c.pending.push_back(inf),
            Err(o) => {
                let done = Instant::now();
                finish(rec, fl, inf.ticket, ingest_key(inf.layer, o), inf.intended, inf.from, inf.sent, done);
                let rest = if o == Outcome::Interrupted { o } else { Outcome::Reset };
                drain(rec, fl, &mut c.pending, rest);
                return if o == Outcome::Interrupted { Flow::End } else { Flow::Reconnect };
            }
        }
        c.next_at = self.due(sh, self.j);
        Flow::Go
    }
}

fn ingest_key(layer: Layer, outcome: Outcome) -> Key {
    Key { route: "ws-ingest", layer, outcome }
}

/// A frame (or error) read on an ingest connection: an ack ends the oldest frame in flight.
async fn on_ingest_read<W: tokio::io::AsyncWrite + Unpin>(
    sh: &Shared,
    period: Option<Duration>,
    c: &mut Conn,
    rec: &mut Recorder,
    fl: &LaneRecorder,
    wr: &mut fastwebsockets::WebSocketWrite<W>,
    f: Result<Frame<'_>, fastwebsockets::WebSocketError>,
) -> Flow {
    let done = Instant::now();
    let frame = match f {
        Ok(frame) => frame,
        Err(e) => {
            let o = match e {
                fastwebsockets::WebSocketError::IoError(io) => Outcome::from_io_error(&io),
                fastwebsockets::WebSocketError::UnexpectedEOF => Outcome::Closed,
                _ => Outcome::BadResponse,
            };
            drain(rec, fl, &mut c.pending, o);
            return if !c.sending { Flow::End } else { Flow::Reconnect };
        }
    };
    match frame.opcode {
        OpCode::Text | OpCode::Binary => {
            let outcome = ws::ack_outcome(&frame.payload);
            if let Some(p) = c.pending.pop_front() {
                if outcome == Outcome::AckOk
                    && let (Some(fo), Some(m)) = (&sh.fanout, &p.marker)
                {
                    fo.accept(m);
                }
                finish(rec, fl, p.ticket, ingest_key(p.layer, outcome), p.intended, p.from, p.sent, done);
            }
            if !c.sending && c.pending.is_empty() {
                return Flow::End;
            }
            if period.is_none() {
                c.next_at = done;
            }
        }
        OpCode::Ping => {
            let payload = frame.payload.to_vec();
            let _ = ws::write_frame_bounded(wr, Frame::pong(payload.into()), sh.timeouts).await;
        }
        OpCode::Close => {
            drain(rec, fl, &mut c.pending, Outcome::WsClose);
            return Flow::Reconnect;
        }
        _ => {}
    }
    Flow::Go
}

fn drain(rec: &mut Recorder, fl: &LaneRecorder, pending: &mut VecDeque<InFlight>, o: Outcome) {
    let done = Instant::now();
    for p in pending.drain(..) {
        finish(
            rec,
            fl,
            p.ticket,
            Key { route: "ws-ingest", layer: p.layer, outcome: o },
            p.intended,
            p.from,
            p.sent,
            done,
        );
    }
}

async fn ws_churn_lane(
    sh: Arc<Shared>,
    lane: u32,
    mut rec: Recorder,
    fl: LaneRecorder,
    stop: Stop,
) -> (u64, Option<Instant>) {
    let (opts, host) = sh.ws.clone().expect("checked: ws target");
    let w = &sh.phase.websocket;
    let stream = WS_CHURN_STREAM + lane as u64;
    let headers = vec![("x-sentry-auth".to_string(), w.auth.clone().into_bytes())];
    let mut j = 0u64;
    tokio::time::sleep_until(sh.start.into()).await;
    while !stop.is_set() && sh.wait_until_up(&stop).await && sh.take_budget() {
        let g = sh.ws_source.generate(stream, j);
        j += 1;
        let (bytes, binary) = frame_from(&g);
        let sent = Instant::now();
        rec.sent += 1;
        let t = fl.begin(g.seed, g.layer, "ws-churn", j, 0, sent, None);
        let cycle = async {
            let s = ws::ws_connect(&opts, sh.timeouts, &host, &w.ingest_path, &headers).await?;
            let (mut rd, mut wr) = s.split(tokio::io::split);
            let frame = if binary { Frame::binary(bytes.into()) } else { Frame::text(bytes.into()) };
            ws::write_frame_bounded(&mut wr, frame, sh.timeouts).await?;
            let mut noop = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
            let o = loop {
                match tokio::time::timeout(sh.timeouts.request, rd.read_frame(&mut noop)).await {
                    Err(_) => break Outcome::Timeout,
                    Ok(Err(_)) => break Outcome::Closed,
                    Ok(Ok(f)) => match f.opcode {
                        OpCode::Text | OpCode::Binary => break ws::ack_outcome(&f.payload),
                        OpCode::Close => break Outcome::WsClose,
                        _ => continue,
                    },
                }
            };
            let _ = tokio::time::timeout(ws::CLOSE_WAIT, wr.write_frame(Frame::close(1000, b""))).await;
            Ok::<Outcome, Outcome>(o)
        };
        let o = tokio::select! {
            r = cycle => r.unwrap_or_else(|e| e),
            _ = stop.wait() => Outcome::Interrupted,
        };
        finish(
            &mut rec,
            &fl,
            t,
            Key { route: "ws-churn", layer: g.layer, outcome: o },
            sent,
            sent,
            sent,
            Instant::now(),
        );
    }
    (rec.sent, rec.last_sent)
}

async fn ws_stream_lane(
    sh: Arc<Shared>,
    lane: u32,
    mut rec: Recorder,
    mut producers_done: watch::Receiver<bool>,
    stop: Stop,
) {
    let (opts, host) = sh.ws.clone().expect("checked: ws target");
    let w = &sh.phase.websocket;
    let path = crate::api::WsPath::Stream.path(&w.stream_project);
    let fanout = sh.fanout.clone().expect("subscribers imply fan-out");
    let grace = w.fanout_timeout.min(Duration::from_secs(2));
    let mut end: Option<Instant> = None;
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let fan_key = |outcome| Key { route: "ws-stream", layer: Layer::Valid, outcome };
    'outer: loop {
        if stop.is_set() || end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        if !sh.wait_until_up(&stop).await {
            break;
        }
        let s = tokio::select! {
            r = ws::ws_connect(&opts, sh.timeouts, &host, &path, &[]) => r,
            _ = stop.wait() => break,
        };
        let Ok(s) = s else {
            if *producers_done.borrow() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (mut rd, mut wr) = s.split(tokio::io::split);
        loop {
            let mut noop = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
            let end_at = end.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                f = rd.read_frame(&mut noop) => match f {
                    Ok(f) if matches!(f.opcode, OpCode::Text | OpCode::Binary) => {
                        let now = Instant::now();
                        if let Some(m) = ws::stream_marker(&f.payload)
                            && let Some(sent) = fanout.arrived(&m)
                        {
                            let us = now.saturating_duration_since(sent).as_micros() as u64;
                            rec.push(Sample::observation(fan_key(Outcome::Delivered), us, now), now);
                        }
                    }
                    Ok(f) if f.opcode == OpCode::Ping => {
                        let p = f.payload.to_vec();
                        let _ = ws::write_frame_bounded(&mut wr, Frame::pong(p.into()), sh.timeouts).await;
                    }
                    Ok(f) if f.opcode == OpCode::Close => continue 'outer,
                    Ok(_) => {}
                    Err(_) => continue 'outer,
                },
                _ = sweep.tick(), if lane == 0 => {
                    let now = Instant::now();
                    for _ in 0..fanout.sweep(now, false) {
                        rec.push(Sample::observation(fan_key(Outcome::Missed), 0, now), now);
                    }
                }
                ok = async { producers_done.wait_for(|v| *v).await.is_ok() }, if end.is_none() => {
                    if ok { end = Some(Instant::now() + grace); }
                }
                _ = tokio::time::sleep_until(end_at.into()), if end.is_some() => break 'outer,
                _ = stop.wait() => break 'outer,
            }
        }
    }
    if lane == 0 {
        let now = Instant::now();
        for _ in 0..fanout.sweep(now, true) {
            rec.push(Sample::observation(fan_key(Outcome::Missed), 0, now), now);
        }
    }
}

/// Closes the phase's window however `run` returns.
struct CloseOnDrop(crate::drive::PhaseWindow);

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
    let _window = ctx.window.as_ref().map(|w| {
        w.open(crate::drive::window::Probe {
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
