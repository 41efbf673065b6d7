//! The target's lifecycle for a whole run: start it behind the readiness gate ([`Launch`]),
//! notice its death at once (the process's exit watch) or its hang (requests in flight and no
//! answer for `hang.timeout`, confirmed by a probe that times out too), kill a hung target
//! (optionally with a first signal that leaves a core dump), restart it on the same addresses
//! with startup retries, lend it to phases that start their own incarnations (fuzz, triage),
//! stop it. /proc telemetry of every incarnation goes into one series.
//!
//! A target the tool did not start (`kind = "url"`) is attached: its death is seen as refused
//! connections, and it cannot be restarted.

use super::launch::{Incarnation, Launch};
use super::process::{ExitInfo, LogLine, TargetProcess};
use super::sampler::{ProcSample, Sampler};
use crate::model::Payload;
use crate::wire::blocking::{self as exec, Addrs, Reply};
use anyhow::{Result, bail};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Hang detection and what is done to a hung target.
#[derive(Debug, Clone)]
pub struct HangPolicy {
    /// Requests in flight and no answer for this long (or, without traffic to watch, probes
    /// failing for this long) make the target a hang suspect.
    pub timeout: Duration,
    /// The confirming probe may take this long; slower means hung.
    pub probe_timeout: Duration,
    /// Sent first to a hung target so it leaves a core dump or backtrace (e.g. SIGABRT); SIGKILL
    /// follows after `signal_grace`. None: SIGKILL at once.
    pub signal_first: Option<i32>,
    pub signal_grace: Duration,
}

impl Default for HangPolicy {
    fn default() -> Self {
        HangPolicy {
            timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            signal_first: None,
            signal_grace: Duration::from_secs(3),
        }
    }
}

/// Settings.
#[derive(Debug, Clone)]
pub struct SuperviseOptions {
    /// The probe used to confirm a hang (the launch's readiness probe by default) .
    pub probe: Option<Payload>,
    pub hang: HangPolicy,
    pub sample_every: Duration,
    /// Output lines kept with a death.
    pub tail_lines: usize,
}

impl Default for SuperviseOptions {
    fn default() -> Self {
        SuperviseOptions {
            probe: None,
            hang: HangPolicy::default(),
            sample_every: Duration::from_secs(1),
            tail_lines: 50,
        }
    }
}

/// What the traffic says about the target: requests waiting without an answer, and since when.
/// The driver's flight recorder implements it.
pub trait Activity: Send + Sync {
    /// How long requests have been in flight with no answer of any request meanwhile (None: no
    /// request waits, or answers keep coming).
    fn stuck_for(&self, now: Instant) -> Option<Duration>;
}

/// What the supervisor saw.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WatchEvent {
    Ready {
        at_s: f64,
        http: SocketAddr,
        ws: Option<SocketAddr>,
        pid: u32,
        attempts: u32,
    },
    Died {
        at_s: f64,
        exit: ExitInfo,
        tail: Vec<LogLine>,
    },
    /// Alive, requests waited `stuck_s` without an answer and the probe timed out.
    Hung {
        at_s: f64,
        stuck_s: f64,
    },
    /// A target the tool did not start stopped accepting connections.
    Gone {
        at_s: f64,
    },
}

/// A period without a usable target, from death/hang to readiness after restart.
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    pub cause: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// Everything supervision recorded (plain data).
#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    pub events: Vec<WatchEvent>,
    pub outages: Vec<Outage>,
    pub restarts: u64,
    pub samples: Vec<ProcSample>,
}

/// See the module docs.
pub struct Supervisor {
    /// None for an attached target.
    launch: Option<Launch>,
    pub opts: SuperviseOptions,
    origin: Instant,
    current: Option<TargetProcess>,
    addrs: Addrs,
    series: Arc<Mutex<Vec<ProcSample>>>,
    sampler: Option<Sampler>,
    events: Vec<WatchEvent>,
    outages: Vec<Outage>,
    restarts: u64,
    /// Incarnations started (1 after the first start).
    pub incarnations: u64,
    /// When the current incarnation passed its readiness gate.
    ready_since: Instant,
    /// Start of the current outage (cause, seconds since origin).
    down: Option<(String, f64)>,
}

impl Supervisor {
    /// Start the target behind its readiness gate (with startup retries); later incarnations
    /// listen where this one does.
    pub async fn start(launch: Launch, opts: SuperviseOptions) -> Result<Supervisor> {
        let mut s = Supervisor {
            launch: Some(launch),
            opts,
            origin: Instant::now(),
            current: None,
            addrs: Addrs { http: SocketAddr::from(([127, 0, 0, 1], 0)), ws: None },
            series: Arc::new(Mutex::new(Vec::new())),
            sampler: None,
            events: Vec::new(),
            outages: Vec::new(),
            restarts: 0,
            incarnations: 0,
            ready_since: Instant::now(),
            down: None,
        };
        s.spawn_ready(&|| false).await?;
        Ok(s)
    }

    /// Watch a server the tool did not start.
    pub fn attach(addrs: Addrs, opts: SuperviseOptions) -> Supervisor {
        Supervisor {
            launch: None,
            opts,
            origin: Instant::now(),
            current: None,
            addrs,
            series: Arc::new(Mutex::new(Vec::new())),
            sampler: None,
            events: Vec::new(),
            outages: Vec::new(),
            restarts: 0,
            incarnations: 0,
            ready_since: Instant::now(),
            down: None,
        }
    }

    fn now_s(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// Time zero of the telemetry series and of the events' `at_s`.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The /proc samples of every incarnation, one series.
    pub fn telemetry(&self) -> Arc<Mutex<Vec<ProcSample>>> {
        self.series.clone()
    }

    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    /// The current incarnation (None: attached, lent, or not restarted).
    pub fn process(&self) -> Option<&TargetProcess> {
        self.current.as_ref()
    }

    /// How new incarnations start (None for an attached target).
    pub fn launch(&self) -> Option<&Launch> {
        self.launch.as_ref()
    }

    /// Attempts the latest start took (1: it came up at once).
    pub fn last_attempts(&self) -> u32 {
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                WatchEvent::Ready { attempts, .. } => Some(*attempts),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// When the current incarnation became ready (for an attached target: when watching began).
    pub fn ready_since(&self) -> Instant {
        self.ready_since
    }

    /// Can it be (re)started?
    pub fn restartable(&self) -> bool {
        self.launch.is_some()
    }

    /// True when the tool started the target and no incarnation runs now.
    pub fn is_down(&self) -> bool {
        self.launch.is_some() && self.current.as_ref().is_none_or(|p| p.exited().is_some())
    }

    fn probe(&self) -> Payload {
        self.opts
            .probe
            .clone()
            .or_else(|| self.launch.as_ref().map(|l| l.readiness.probe.clone()))
            .unwrap_or_else(super::launch::default_probe)
    }

    async fn spawn_ready(&mut self, stop: &(dyn Fn() -> bool + Sync)) -> Result<()> {
        let Some(launch) = self.launch.clone() else { bail!("a target the tool did not start cannot be started") };
        // The stop check crosses into the blocking pool as a plain flag.
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(stop()));
        let flag = stopped.clone();
        let start = tokio::task::spawn_blocking(move || {
            launch.start(&|| flag.load(std::sync::atomic::Ordering::Relaxed) || crate::signals::was_interrupted())
        });
        tokio::pin!(start);
        let started: Incarnation = loop {
            tokio::select! {
                r = &mut start => break r??,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if stop() {
                        stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        };
        let Incarnation { process, addrs, attempts, .. } = started;
        if self.incarnations == 0
            && let Some(l) = self.launch.as_mut()
        {
            l.pin(addrs);
        }
        self.incarnations += 1;
        self.sampler = Some(Sampler::spawn(process.pid(), self.opts.sample_every, self.origin, self.series.clone()));
        self.events.push(WatchEvent::Ready {
            at_s: self.now_s(),
            http: addrs.http,
            ws: addrs.ws,
            pid: process.pid(),
            attempts,
        });
        self.current = Some(process);
        self.addrs = addrs;
        self.ready_since = Instant::now();
        if let Some((cause, start_s)) = self.down.take() {
            self.outages.push(Outage { cause, start_s, end_s: self.now_s() });
        }
        Ok(())
    }

    /// Wait for the next death or hang of the current target. `activity` tells when requests
    /// wait without answers (a load phase's traffic); without it, the target is probed every
    /// `hang.timeout / 2` and is hung when probes fail for `hang.timeout`. `watch_hangs`
    /// false: deaths only, no traffic of our own.
    pub async fn next_event(&mut self, activity: Option<&dyn Activity>, watch_hangs: bool) -> Result<WatchEvent> {
        let hang = self.opts.hang.clone();
        let probe = self.probe();
        let addrs = self.addrs;
        let exit = self.current.as_ref().map(|p| p.exit_watch());
        if exit.is_none() && self.launch.is_some() {
            bail!("no target running: call restart()");
        }
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing_since: Option<Instant> = None;
        let mut last_probe: Option<Instant> = None;
        let every = (hang.timeout / 4).max(Duration::from_millis(250));
        let mut exit_rx = exit.clone();
        let ev = loop {
            tokio::select! {
                r = async { exit_rx.as_mut().expect("checked").wait_for(|e| e.is_some()).await.map(|v| v.clone()) }, if exit_rx.is_some() => {
                    let Some(info) = r.ok().flatten() else { bail!("lost the target's exit status") };
                    let tail = self.current.as_ref().map(|p| p.log_tail(self.opts.tail_lines)).unwrap_or_default();
                    break WatchEvent::Died { at_s: self.now_s(), exit: info, tail };
                }
                _ = tick.tick(), if watch_hangs || self.launch.is_none() => {
                    let now = Instant::now();
                    // With traffic to watch, probe only when requests wait unanswered; without,
                    // probe now and then, and every tick once a probe failed.
                    let stuck = activity.and_then(|a| a.stuck_for(now)).filter(|d| *d >= hang.timeout);
                    // A server the tool did not start dies as refused connections, which leave
                    // no request waiting: it is probed now and then in any case.
                    let periodic = activity.is_none() || self.launch.is_none();
                    let due = stuck.is_some()
                        || (periodic && (failing_since.is_some() || last_probe.is_none_or(|t| now - t >= every)));
                    if !due {
                        continue;
                    }
                    last_probe = Some(now);
                    let p = probe.clone();
                    let t = hang.probe_timeout;
                    let reply = tokio::task::spawn_blocking(move || exec::send(&p, &addrs, t)).await.unwrap_or(Reply::Timeout);
                    if reply.answered() {
                        failing_since = None;
                        continue;
                    }
                    if self.current.as_ref().is_some_and(|p| p.exited().is_some()) {
                        continue; // the exit watch tells
                    }
                    if self.launch.is_none() && matches!(reply, Reply::Refused) {
                        break WatchEvent::Gone { at_s: self.now_s() };
                    }
                    if let Some(stuck) = stuck {
                        break WatchEvent::Hung { at_s: self.now_s(), stuck_s: stuck.as_secs_f64() };
                    }
                    let since = *failing_since.get_or_insert(now);
                    if now - since >= hang.timeout {
                        break WatchEvent::Hung { at_s: self.now_s(), stuck_s: (now - since).as_secs_f64() };
                    }
                }
            }
        };
        let cause = match &ev {
            WatchEvent::Died { exit, .. } => exit.describe(),
            WatchEvent::Hung { .. } => "hang".into(),
            WatchEvent::Gone { .. } => "stopped accepting connections".into(),
            WatchEvent::Ready { .. } => unreachable!("not returned by the loop"),
        };
        let at = match &ev {
            WatchEvent::Died { at_s, .. } | WatchEvent::Hung { at_s, .. } | WatchEvent::Gone { at_s } => *at_s,
            WatchEvent::Ready { at_s, .. } => *at_s,
        };
        self.down = Some((cause, at));
        self.events.push(ev.clone());
        Ok(ev)
    }

    /// Kill a hung target: the policy's first signal (a core dump, a backtrace), then SIGKILL
    /// after its grace. Returns how it ended.
    pub async fn kill_hung(&mut self) -> Option<ExitInfo> {
        let p = self.current.as_ref()?;
        if let Some(sig) = self.opts.hang.signal_first {
            p.signal(sig);
            if let Some(e) = p.wait_exit(self.opts.hang.signal_grace).await {
                return Some(e);
            }
        }
        p.kill().await
    }

    /// Stop what is left of the current target and start a new one behind the readiness gate
    /// (startup retries and backoff from the launch); the outage interval is recorded. `stop`
    /// abandons it.
    pub async fn restart(&mut self, stop: &(dyn Fn() -> bool + Sync)) -> Result<Outage> {
        if self.down.is_none() {
            self.down = Some(("restart".into(), self.now_s()));
        }
        self.sampler = None;
        if let Some(p) = self.current.take()
            && p.exited().is_none()
        {
            // Hung or lent: no grace.
            p.kill().await;
        }
        self.restarts += 1;
        self.spawn_ready(stop).await?;
        Ok(self.outages.last().cloned().expect("an outage was just recorded"))
    }

    /// Stop the current incarnation so that a phase can start its own on the same ports (the
    /// fuzz phase, triage); `restart` brings the run's target back afterwards.
    pub async fn lend(&mut self) -> Option<Launch> {
        let launch = self.launch.clone()?;
        self.sampler = None;
        if let Some(p) = self.current.take() {
            p.stop().await;
        }
        Some(launch)
    }

    /// How long each start attempt may take to become ready from now on; the previous value
    /// (for [`Supervisor::restore_ready_timeout`]).
    pub fn set_ready_timeout(&mut self, t: Duration) -> Option<Duration> {
        self.launch.as_mut().map(|l| std::mem::replace(&mut l.readiness.timeout, t))
    }

    pub fn restore_ready_timeout(&mut self, t: Option<Duration>) {
        if let (Some(l), Some(t)) = (self.launch.as_mut(), t) {
            l.readiness.timeout = t;
        }
    }

    /// Lines of the current incarnation's output.
    pub fn lines(&self) -> Vec<LogLine> {
        self.current.as_ref().map(|p| p.lines()).unwrap_or_default()
    }

    pub fn report(&self) -> WatchReport {
        WatchReport {
            events: self.events.clone(),
            outages: self.outages.clone(),
            restarts: self.restarts,
            samples: self.series.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Stop the target (SIGTERM, then SIGKILL after 5 s); how the last incarnation ended.
    pub async fn stop(&mut self) -> Option<ExitInfo> {
        self.stop_within(Duration::from_secs(5)).await
    }

    /// Stop the target: SIGTERM, SIGKILL after `grace` (a run being interrupted does not wait
    /// the usual 5 s for a target that is hung or frozen).
    pub async fn stop_within(&mut self, grace: Duration) -> Option<ExitInfo> {
        self.sampler = None;
        let p = self.current.take()?;
        p.signal(libc::SIGTERM);
        match p.wait_exit(grace).await {
            Some(e) => Some(e),
            None => p.kill().await,
        }
    }
}
