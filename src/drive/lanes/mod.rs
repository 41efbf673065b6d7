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
//!
//! Files: `http` (HTTP lanes), `ingest` (WebSocket ingest lanes), `churn` (churn lanes), `stream`
//! (stream subscribers), `phase` (the phase driver: lanes dealt over driver threads, bounded,
//! joined); this file holds what every lane shares.

mod churn;
mod http;
mod ingest;
mod phase;
mod stream;

pub(crate) use phase::run;

use crate::drive::LoadPhase;
use crate::drive::flight::{LaneRecorder, Ticket};
use crate::drive::metrics::{Key, Recorder};
use crate::drive::net::{ConnectOpts, Timeouts};
use crate::drive::sched::Schedule;
use crate::drive::ws::Fanout;
use crate::model::Source;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
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
    /// The WebSocket port's connect options and Host, and the ingest lanes' auth header (churn
    /// and ingest lanes open `/ingest` connections with it).
    fn ws_ingest(&self) -> (ConnectOpts, String, Vec<(String, Vec<u8>)>) {
        let (opts, host) = self.ws.clone().expect("checked: ws target");
        (opts, host, vec![("x-sentry-auth".to_string(), self.phase.websocket.auth.clone().into_bytes())])
    }

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
    fl.end(t, key.outcome, answered.then_some(done), done);
    rec.record(key, intended, from, sent, done);
}
