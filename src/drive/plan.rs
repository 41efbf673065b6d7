//! [`Planned`]: what a load phase meant to do, from its configuration and its schedule; the
//! progress display reads it while the phase runs and the report keeps it.

use crate::drive::LoadPhase;
use crate::drive::sched::Schedule;
use serde::{Deserialize, Serialize};

/// What the phase meant to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Planned {
    /// `open` or `closed`.
    pub mode: String,
    pub concurrency: u32,
    pub keep_alive: bool,
    /// The HTTP executor (`wire` or `hyper`); reports of versions before it was a choice
    /// (hyper only) read as `wire`.
    #[serde(default)]
    pub executor: crate::drive::Executor,
    /// Open loop: the schedule's average rate (requests/s).
    pub asked_rate: Option<f64>,
    /// Open loop: requests in the schedule; closed loop: the `requests` bound.
    pub planned_requests: Option<u64>,
    pub duration_s: Option<f64>,
    pub ws_ingest_connections: u32,
    pub ws_stream_subscribers: u32,
    pub ws_churn: u32,
}

impl Planned {
    pub fn of(p: &LoadPhase, s: Option<&Schedule>) -> Planned {
        let dur = p.time_bound();
        let mut planned = p.requests;
        let mut asked = None;
        if let Some(s) = s {
            if let Some(t) = s.total() {
                planned = Some(planned.map_or(t, |r| r.min(t)));
            }
            asked = match (planned, dur) {
                (Some(n), Some(d)) if s.total().is_some() => Some(n as f64 / d.as_secs_f64()),
                _ => p.rate,
            };
        }
        Planned {
            mode: if s.is_some() { "open" } else { "closed" }.into(),
            concurrency: p.concurrency,
            keep_alive: p.keep_alive,
            executor: p.executor,
            asked_rate: asked,
            planned_requests: planned,
            duration_s: dur.map(|d| d.as_secs_f64()),
            ws_ingest_connections: p.websocket.ingest_connections,
            ws_stream_subscribers: p.websocket.stream_subscribers,
            ws_churn: p.websocket.churn,
        }
    }
}
