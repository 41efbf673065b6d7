//! HTTP lanes: closed loop (send, await, think, repeat) or open loop (a free lane claims the next
//! schedule index and sends it at its intended time); a WebSocket script from the source runs raw
//! on a fresh connection.

use super::{Held, SCHEDULE_STREAM, Shared, Stop, finish, is_ingest_route, route_of};
use crate::drive::flight::LaneRecorder;
use crate::drive::http::{HttpLane, Prepared};
use crate::drive::metrics::{Key, Outcome, Recorder};
use crate::drive::sched::Schedule;
use crate::drive::ws;
use crate::model::{Generated, HttpRequest, Payload, WsScript};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

pub(super) async fn http_lane(
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
        let claim = match &sh.schedule {
            Some(s) => claim_arrival(&sh, s),
            None => closed_loop_turn(&sh, lane, &mut j, &stop).await,
        };
        let Some(Claim { stream, index, intended, behind }) = claim else { break };
        // An arrival's request is made before its time comes: at each timer tick the lanes due
        // send back to back, the burst reaches the server together, and the only delay between
        // the intended and the actual send is the timer's.
        let g = sh.source.generate(stream, index);
        let ready = match &g.payload {
            Payload::Http(r) => Ready::Http(r, client.prepare(r)),
            Payload::Ws(script) => Ready::Ws(script),
        };
        if sh.schedule.is_some() {
            match arrival(&sh, intended, &mut rec, &stop).await {
                Due::Send => {}
                Due::Skip => {
                    drop(ready);
                    recycle(g);
                    continue;
                }
                Due::End => break,
            }
        }
        let sent = Instant::now();
        let at = When { intended, from: if behind { intended } else { sent }, sent };
        rec.sent += 1;
        match ready {
            Ready::Http(r, p) => send_http(&sh, &mut client, &mut rec, &fl, &stop, &g, r, p, at).await,
            Ready::Ws(script) => {
                if !send_script(&sh, &mut client, &mut rec, &fl, &stop, &g, script, at).await {
                    continue;
                }
            }
        }
        recycle(g);
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

/// A generated input, made ready to send: an HTTP request with its bytes, or a WebSocket script.
#[allow(clippy::large_enum_variant)] // one per request, on the lane's stack: no box on the hot path
enum Ready<'g> {
    Http(&'g HttpRequest, Prepared<'g>),
    Ws(&'g WsScript),
}

/// A large body's buffer serves the next large body (no fresh pages).
fn recycle(g: Generated) {
    if let Payload::Http(r) = g.payload {
        crate::generate::recycle(r.body);
    }
}

/// The request a lane sends next: request `index` of `stream`, intended for `intended`;
/// `behind`: the lane is behind schedule, so the latency is charged from the intended time.
struct Claim {
    stream: u64,
    index: u64,
    intended: Instant,
    behind: bool,
}

/// Open loop: claim the next schedule index (its time is waited for by [`arrival`]); None: the
/// schedule, the budget or the phase is over.
fn claim_arrival(sh: &Shared, s: &Schedule) -> Option<Claim> {
    let k = sh.next.fetch_add(1, Ordering::Relaxed);
    if sh.requests.is_some_and(|m| k >= m) {
        return None;
    }
    let at = sh.start + s.at(k)?;
    if sh.past_deadline(at) {
        return None;
    }
    // Behind schedule (every lane was busy): charge from the intended time. Otherwise the only
    // delay is our own timer's (≤ 1 ms): measure from the actual send.
    let behind = Instant::now() >= at;
    Some(Claim { stream: SCHEDULE_STREAM, index: k, intended: at, behind })
}

/// What an open-loop arrival comes to once its time has come.
enum Due {
    Send,
    /// It fell due while the target was down: skipped (counted).
    Skip,
    End,
}

/// Open loop: wait for an arrival's intended time `at`, then for the target if it is down.
async fn arrival(sh: &Shared, at: Instant, rec: &mut Recorder, stop: &Stop) -> Due {
    rec.idle_until(at);
    // `biased`: no random branch order per poll, and a stop wins over a due arrival.
    tokio::select! {
        biased;
        _ = stop.wait() => return Due::End,
        _ = tokio::time::sleep_until(at.into()) => {}
    }
    // Arrivals due while the target was down are not sent late in a burst at a server that just
    // came back: they are skipped (counted), the schedule goes on from now.
    match sh.hold_while_down(stop).await {
        Held::Stopped => Due::End,
        Held::Up(Some(_)) => {
            sh.skipped_down.fetch_add(1, Ordering::Relaxed);
            Due::Skip
        }
        Held::Up(None) => Due::Send,
    }
}

/// Closed loop: the lane's next request, once the target is up and the budget allows it.
async fn closed_loop_turn(sh: &Shared, lane: u32, j: &mut u64, stop: &Stop) -> Option<Claim> {
    if !sh.wait_until_up(stop).await || !sh.take_budget() {
        return None;
    }
    *j += 1;
    Some(Claim { stream: lane as u64, index: *j - 1, intended: Instant::now(), behind: true })
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
    prepared: Prepared<'_>,
    at: When,
) {
    let route = route_of(g);
    let t = fl.begin(g.seed, g.layer, route, client.conns.max(1), 0, at.sent, prepared.raw());
    if r.route.is_some_and(crate::generate::valid::pool_dependent) {
        fl.keep_input(t, g);
    }
    let marker = match &sh.fanout {
        Some(f) if is_ingest_route(r) => ws::event_marker(&r.body).inspect(|m| f.register(m.clone(), at.sent)),
        _ => None,
    };
    let keep = sh.observer.is_some() && crate::drive::observed_with_body(r.route);
    // `biased`: no random branch order per poll, and an answer that is in wins over a stop.
    let ans = tokio::select! {
        biased;
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
