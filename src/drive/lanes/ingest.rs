//! WebSocket ingest lanes: one long-lived connection each, frames at `frame_rate` (intended times,
//! corrected latency) with acks matched to frames in order.

use super::{Held, Shared, Stop, WS_INGEST_STREAM, finish};
use crate::drive::flight::{LaneRecorder, Ticket};
use crate::drive::metrics::{Key, Outcome, Recorder};
use crate::drive::suspects::frame_from;
use crate::drive::ws;
use crate::model::{Layer, RequestSeed};
use fastwebsockets::{Frame, OpCode};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

struct InFlight {
    intended: Instant,
    from: Instant,
    sent: Instant,
    ticket: Ticket,
    layer: Layer,
    marker: Option<String>,
}

pub(super) async fn ws_ingest_lane(
    sh: Arc<Shared>,
    lane: u32,
    mut rec: Recorder,
    fl: LaneRecorder,
    stop: Stop,
) -> (u64, Option<Instant>) {
    let (opts, host, headers) = sh.ws_ingest();
    let w = &sh.phase.websocket;
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
