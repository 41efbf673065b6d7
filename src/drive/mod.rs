//! `drive`: the load stage — HTTP and WebSocket traffic at high concurrency with honest latency.
//!
//! * [`LoadPhase`]: the profile's `kind = "load"` phase (bounds, concurrency, open/closed loop,
//!   timeouts, WebSocket lanes, thresholds, the generators' mix kept opaque).
//! * [`run_phase`]: runs one phase against a [`TargetAddr`] with inputs from a
//!   [`crate::model::Source`] and returns what it measured, a [`PhaseResult`] (the report stage
//!   builds its `PhaseReport` from it).
//! * Submodules: `sched` (open-loop arrival schedule), `lanes` (the sending tasks), `http`
//!   (hyper client connections), `net` (sockets, raw executor), `ws` (WebSocket executors,
//!   fan-out correlation), `metrics` (outcomes, histograms, timeline, interval log), `activity`
//!   (outage detection, per-window latency), `plan` (what the phase meant to do), `soak` (the
//!   `[phases.soak]` table), `result` (what the phase measured), `window` (a running phase so
//!   far, for checkpoints), `flight`
//!   (flight recorder for crash triage), `progress` (bars / plain lines), `cli` (`mesher-stress
//!   load`).
//!
//! Latency rule (wrk2): in open loop every request has an intended send time from the schedule
//! and the corrected latency runs from it, so a stalled server is charged for the requests it
//! delayed; the uncorrected latency (from the actual send) is kept beside it.

pub mod activity;
pub mod flight;
pub mod http;
mod lanes;
pub mod metrics;
pub mod net;
pub mod plan;
pub mod progress;
pub mod result;
pub mod sched;
pub mod soak;
pub mod suspects;
pub mod view;
pub mod wire;
pub mod ws;

use crate::model::Source;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use flight::{FlightEntry, FlightRecorder};
pub use metrics::Outcome;
pub use plan::Planned;
pub use result::{PhaseFacts, PhaseResult};
pub use soak::SoakSpec;
pub use view::PhaseView;

/// Which HTTP/1.1 client implementation sends well-formed requests (malformed ones always go
/// through the raw executor on a fresh connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// Request bytes straight to the socket, answers parsed with httparse (`drive::wire`).
    #[default]
    Wire,
    /// hyper's `client::conn::http1` (a connection task per connection).
    Hyper,
}

/// One load phase (TOML: `[[phases]] kind = "load"`). Every phase is bounded by `duration`,
/// `requests` or its `stages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadPhase {
    /// Name in reports.
    #[serde(default = "default_name")]
    pub name: String,
    /// Wall-clock bound of the sending (in-flight requests still finish, within their timeouts).
    #[serde(default, with = "crate::util::duration::human_opt")]
    pub duration: Option<Duration>,
    /// Maximum number of requests (HTTP requests, WebSocket ingest frames and churn cycles).
    #[serde(default)]
    pub requests: Option<u64>,
    /// HTTP lanes: closed-loop workers, or open-loop connections (one request in flight each).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Open loop: constant arrival rate, requests/s (the start rate when `stages` is given).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Open loop ramps: each stage goes linearly from the previous rate to its `rate` over its
    /// `duration` (repeat a rate to hold it).
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Closed loop: pause of each worker between two requests.
    #[serde(default, with = "crate::util::duration::human_opt")]
    pub think_time: Option<Duration>,
    /// false (default, like Mesher): a new connection per request, sent with `connection: close`.
    #[serde(default)]
    pub keep_alive: bool,
    /// HTTP executor: "wire" (default: lean, in the lane's task) or "hyper" (hyper's client
    /// connection API); see `drive::wire`.
    #[serde(default)]
    pub executor: Executor,
    #[serde(default = "default_connect_timeout", with = "crate::util::duration::human")]
    pub connect_timeout: Duration,
    /// Until the response head.
    #[serde(default = "default_timeout", with = "crate::util::duration::human")]
    pub request_timeout: Duration,
    /// Until the end of the response body.
    #[serde(default = "default_timeout", with = "crate::util::duration::human")]
    pub body_timeout: Duration,
    /// Rotate client source addresses over 127.1.0.0/16 (loopback targets only; connections
    /// closed with SO_LINGER 0 leave no TIME_WAIT and need none).
    #[serde(default = "yes")]
    pub spread_source_addrs: bool,
    /// SO_LINGER 0 on client sockets (no TIME_WAIT). Default: on without keep-alive.
    #[serde(default)]
    pub linger_zero: Option<bool>,
    #[serde(default)]
    pub websocket: WsLoad,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Driver threads (each a single-threaded event loop running its share of the lanes);
    /// 0 = one per available core (respects taskset).
    #[serde(default)]
    pub driver_threads: usize,
    /// Flight recorder entries per lane.
    #[serde(default = "default_flight")]
    pub flight_recorder: usize,
    /// The generators' traffic mix, passed through untouched (wired by the run command).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub mix: serde_json::Value,
    /// The generators' size knobs (`generate::GenOptions`), passed through untouched like `mix`.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub generate: serde_json::Value,
    /// Triage of the phase's deaths (`triage::phase::TriageSpec`), passed through untouched like
    /// `mix`; absent: deaths are recorded with their suspects, not triaged.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub triage: serde_json::Value,
    /// Shortest stretch without any answer, while at least two requests waited, reported as an
    /// outage (a stall: a pause, a hang; or a death).
    #[serde(default = "default_outage_min", with = "crate::util::duration::human")]
    pub outage_min: Duration,
    /// Soak verdicts (leaks, drift, outages) from the target's /proc samples; absent = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<SoakSpec>,
    /// Restart the target when it dies during the phase (`run` with a spawned target), so a
    /// soak survives deaths; each death is a crash and an outage. Off: a death ends the phase.
    #[serde(default)]
    pub restart: bool,
    /// Deaths survived at most (the next one ends the phase).
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// How long a restarted target may take to answer its readiness probe.
    #[serde(default = "default_restart_timeout", with = "crate::util::duration::human")]
    pub restart_timeout: Duration,
}

/// One open-loop ramp stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub rate: f64,
    #[serde(with = "crate::util::duration::human")]
    pub duration: Duration,
}

/// WebSocket lanes of a load phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsLoad {
    /// Long-lived ingest connections sending event frames and reading acks.
    #[serde(default)]
    pub ingest_connections: u32,
    /// Frames per second per ingest connection; 0 = next frame as soon as the previous ack came.
    #[serde(default)]
    pub frame_rate: f64,
    /// Handshake target of ingest connections.
    #[serde(default = "default_ingest_path")]
    pub ingest_path: String,
    /// Value of the `x-sentry-auth` header of ingest connections (Mesher checks presence only).
    #[serde(default = "default_ws_auth")]
    pub auth: String,
    /// Subscribers on `/stream/projects/<stream_project>` measuring fan-out delay.
    #[serde(default)]
    pub stream_subscribers: u32,
    #[serde(default = "default_project")]
    pub stream_project: String,
    /// An accepted event not seen by a subscriber within this long counts as missed.
    #[serde(default = "default_fanout_timeout", with = "crate::util::duration::human")]
    pub fanout_timeout: Duration,
    /// Churn lanes: connect, send one frame, read one answer, close — in a loop.
    #[serde(default)]
    pub churn: u32,
}

impl Default for WsLoad {
    fn default() -> Self {
        WsLoad {
            ingest_connections: 0,
            frame_rate: 0.0,
            ingest_path: default_ingest_path(),
            auth: default_ws_auth(),
            stream_subscribers: 0,
            stream_project: default_project(),
            fanout_timeout: default_fanout_timeout(),
            churn: 0,
        }
    }
}

impl WsLoad {
    pub fn any(&self) -> bool {
        self.ingest_connections > 0 || self.stream_subscribers > 0 || self.churn > 0
    }
}

/// Pass/fail limits of a phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Corrected p99 limit per route name (`"*"` = every route without its own entry).
    #[serde(default, with = "crate::util::duration::human_map")]
    pub p99_max: BTreeMap<String, Duration>,
    /// Largest allowed share of errors (5xx and transport failures) among requests, 0..=1.
    #[serde(default)]
    pub error_rate_max: Option<f64>,
    /// Smallest allowed achieved request rate (requests/s).
    #[serde(default)]
    pub min_rate: Option<f64>,
    /// Fan-out p99 limit (stream subscribers).
    #[serde(default, with = "crate::util::duration::human_opt")]
    pub fanout_p99_max: Option<Duration>,
}

fn default_name() -> String {
    "load".into()
}
fn default_concurrency() -> u32 {
    32
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_fanout_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_outage_min() -> Duration {
    Duration::from_millis(250)
}
fn default_max_restarts() -> u32 {
    3
}
fn default_restart_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_flight() -> usize {
    flight::DEFAULT_K
}
fn default_ingest_path() -> String {
    crate::api::WsPath::INGEST.to_string()
}
fn default_ws_auth() -> String {
    "mesher-stress".into()
}
fn default_project() -> String {
    "33333333-3333-3333-3333-333333333333".into()
}
fn yes() -> bool {
    true
}

impl LoadPhase {
    /// A phase with defaults (closed loop, 32 workers) bounded by `duration`.
    pub fn with_duration(duration: Duration) -> LoadPhase {
        toml::from_str::<LoadPhase>(&format!("duration = \"{}ms\"", duration.as_millis())).expect("defaults parse")
    }

    /// True for open loop (a rate or stages).
    pub fn is_open_loop(&self) -> bool {
        self.rate.is_some() || !self.stages.is_empty()
    }

    /// The sending bound in time: `duration`, else the sum of the stages.
    pub fn time_bound(&self) -> Option<Duration> {
        self.duration
            .or_else(|| if self.stages.is_empty() { None } else { Some(self.stages.iter().map(|s| s.duration).sum()) })
    }

    /// Check the phase; messages name the key.
    pub fn validate(&self) -> Result<()> {
        if self.time_bound().is_none() && self.requests.is_none() {
            bail!("load phase {:?}: needs a bound: `duration`, `requests` or `stages`", self.name);
        }
        if self.time_bound().is_none() && self.websocket.any() {
            bail!(
                "load phase {:?}: WebSocket lanes need `duration` (a request count does not bound subscribers)",
                self.name
            );
        }
        if let Some(d) = self.time_bound()
            && (d.is_zero() || d > Duration::from_secs(7 * 24 * 3600))
        {
            bail!("load phase {:?}: duration must be between 1ms and 7d", self.name);
        }
        if self.requests == Some(0) {
            bail!("load phase {:?}: requests must be at least 1", self.name);
        }
        if self.concurrency > 100_000 || (self.concurrency == 0 && !self.websocket.any()) {
            bail!("load phase {:?}: concurrency must be 1..=100000 (0 only with WebSocket lanes)", self.name);
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0 && r <= 10_000_000.0)
        {
            bail!("load phase {:?}: rate = {r}: must be a positive number of requests/s", self.name);
        }
        for (i, s) in self.stages.iter().enumerate() {
            if !(s.rate.is_finite() && s.rate >= 0.0 && s.rate <= 10_000_000.0) || s.duration.is_zero() {
                bail!("load phase {:?}: stages[{i}]: rate must be ≥ 0 and duration positive", self.name);
            }
        }
        if !self.stages.is_empty() && self.stages.iter().all(|s| s.rate == 0.0) && self.rate.unwrap_or(0.0) == 0.0 {
            bail!("load phase {:?}: stages: every rate is 0, nothing would be sent", self.name);
        }
        if self.think_time.is_some() && self.is_open_loop() {
            bail!(
                "load phase {:?}: think_time is for closed loop; with `rate`/`stages` the schedule decides",
                self.name
            );
        }
        for (what, d) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if d.is_zero() {
                bail!("load phase {:?}: {what} must be positive", self.name);
            }
        }
        let w = &self.websocket;
        if !(w.frame_rate.is_finite() && w.frame_rate >= 0.0) {
            bail!("load phase {:?}: websocket.frame_rate must be ≥ 0", self.name);
        }
        if w.ingest_connections > 100_000 || w.stream_subscribers > 10_000 || w.churn > 10_000 {
            bail!(
                "load phase {:?}: websocket lanes too many (ingest ≤ 100000, subscribers ≤ 10000, churn ≤ 10000)",
                self.name
            );
        }
        if let Some(e) = self.thresholds.error_rate_max
            && !(0.0..=1.0).contains(&e)
        {
            bail!("load phase {:?}: thresholds.error_rate_max must be within 0..=1", self.name);
        }
        if self.outage_min < Duration::from_millis(40) || self.outage_min > Duration::from_secs(3600) {
            bail!("load phase {:?}: outage_min must be between 40ms and 1h", self.name);
        }
        if self.restart && !(1..=1000).contains(&self.max_restarts) {
            bail!("load phase {:?}: max_restarts must be 1..=1000 with restart = true", self.name);
        }
        if self.restart_timeout.is_zero() {
            bail!("load phase {:?}: restart_timeout must be positive", self.name);
        }
        if let Some(s) = &self.soak {
            s.validate().map_err(|e| anyhow::anyhow!("load phase {:?}: soak: {e}", self.name))?;
        }
        for k in self.thresholds.p99_max.keys() {
            if k != "*"
                && crate::api::Route::by_name(k).is_none()
                && !["ws-ingest", "ws-stream", "ws-churn", "unrouted"].contains(&k.as_str())
            {
                bail!(
                    "load phase {:?}: thresholds.p99_max: unknown route {k:?} (route names as in the catalogue, ws-ingest, ws-churn, unrouted or \"*\")",
                    self.name
                );
            }
        }
        Ok(())
    }
}

/// Where to send: base URLs (`http://127.0.0.1:8080`, `ws://127.0.0.1:8081`).
#[derive(Debug, Clone)]
pub struct TargetAddr {
    pub http: String,
    pub ws: Option<String>,
}

/// A resolved base URL: socket address and `host` header value.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
}

/// Resolve `scheme://host:port[/...]`.
pub async fn resolve(url: &str) -> Result<Endpoint> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (host, port) =
        crate::safety::split_host_port(authority).with_context(|| format!("{url:?}: needs host:port"))?;
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .min_by_key(|a| !a.is_ipv4())
        .with_context(|| format!("{host} resolves to nothing"))?;
    Ok(Endpoint { addr, host: authority.to_string() })
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// indicatif bar when stderr is a terminal, else a plain line every 5 s.
    Auto,
    /// Nothing (`--quiet`).
    Off,
}

/// Everything a phase needs besides the phase itself.
#[derive(Clone)]
pub struct PhaseCtx {
    /// Run directory: the HdrHistogram interval log `<name>.hlog` goes there.
    pub out_dir: Option<PathBuf>,
    /// Shared with the watchdog: the suspects when the target dies.
    pub flight: FlightRecorder,
    /// Set to true to stop the phase early (Ctrl-C, target died); the report covers what was
    /// measured. In-flight requests end as `interrupted`.
    pub stop: tokio::sync::watch::Receiver<bool>,
    pub progress: ProgressMode,
    pub allow_remote: bool,
    /// Source for WebSocket lanes (default: the phase's source).
    pub ws_source: Option<Arc<dyn Source>>,
    /// Called with (request, status, response body) for answered requests of the routes that
    /// create or remove something and of the ingestion routes (body empty for those): the
    /// generators' id pool and the "nothing lost" ledger learn from it. Never on other routes,
    /// so the hot path of read-only load is untouched.
    pub observer: Option<Observer>,
    /// The target's life as the run's watchdog sees it: failures while it is down, or of
    /// requests in flight when it died, are counted but are not latency samples, and closed-loop
    /// lanes wait while it is down.
    pub target_state: Option<tokio::sync::watch::Receiver<TargetState>>,
    /// Opened while the phase runs: checkpoints read what was measured so far through it.
    pub view: Option<PhaseView>,
}

/// What the watchdog tells the lanes about the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetState {
    /// Dead and not (yet) ready again.
    pub down: bool,
    /// When its latest death was noticed.
    pub died_at: Option<std::time::Instant>,
}

/// See [`PhaseCtx::observer`].
pub type Observer = Arc<dyn Fn(&crate::model::HttpRequest, u16, &[u8]) + Send + Sync>;

/// Routes whose answers the [`Observer`] needs with their body.
pub fn observed_with_body(route: Option<crate::api::RouteId>) -> bool {
    use crate::api::RouteId::*;
    matches!(
        route,
        Some(
            MembersAdd | MemberRemove | ApiKeysCreate | ApiKeyRevoke | AlertRulesCreate | AlertRuleDelete | IssueDelete
        )
    )
}

impl PhaseCtx {
    /// A context that never stops early, without output directory or progress.
    pub fn quiet() -> PhaseCtx {
        // The sender is dropped: the lanes treat a closed channel as "never stops".
        let (_, rx) = tokio::sync::watch::channel(false);
        PhaseCtx {
            out_dir: None,
            flight: FlightRecorder::default(),
            stop: rx,
            progress: ProgressMode::Off,
            allow_remote: false,
            ws_source: None,
            observer: None,
            target_state: None,
            view: None,
        }
    }
}

/// Run one load phase: safety check, lanes, measurement.
pub async fn run_phase(
    phase: &LoadPhase,
    source: Arc<dyn Source>,
    target: &TargetAddr,
    ctx: &PhaseCtx,
) -> Result<PhaseResult> {
    phase.validate()?;
    crate::safety::check_target(&target.http, ctx.allow_remote)?;
    if let Some(ws) = &target.ws {
        crate::safety::check_target(ws, ctx.allow_remote)?;
    }
    if phase.websocket.any() && target.ws.is_none() {
        bail!("load phase {:?}: WebSocket lanes need a ws:// target", phase.name);
    }
    lanes::run(phase, source, target, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lead wires `Phase::Load(LoadPhase)` into the profile's internally tagged enum: the
    /// `kind` tag must not trip `deny_unknown_fields`.
    #[test]
    fn embeds_in_an_internally_tagged_phase_enum() {
        #[derive(Deserialize)]
        #[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
        enum Phase {
            Load(LoadPhase),
        }
        let Phase::Load(p) = toml::from_str::<Phase>(
            "kind = \"load\"\nduration = \"30s\"\nrate = 100.0\n[thresholds]\np99_max = { \"dashboard-health\" = \"50ms\" }\n[mix]\nvalid = 1.0",
        )
        .unwrap();
        p.validate().unwrap();
        assert_eq!(p.duration, Some(Duration::from_secs(30)));
        assert_eq!(p.mix["valid"], 1.0);
        assert!(toml::from_str::<Phase>("kind = \"load\"\nduration = \"1s\"\nbogus = 1").is_err());
    }
}
