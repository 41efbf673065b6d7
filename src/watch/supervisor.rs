//! Supervision of a spawned target: readiness gate (listening line or fixed port, then port
//! open + probe answered), death noticed at once (the process's exit watch), hang detection
//! (probes failing for `hang_after`), restarts with outage intervals, and the /proc sampler.
//!
//! Use: `Supervisor::start(cmd, opts)`, then loop on `next_event()`; on `Died`/`Hung` hand the
//! death to triage and call `restart()`. `report()` gives outages, events and the samples.
//! `run`'s load phases hand it the run's already running target instead (`adopt`) and take the
//! current incarnation back afterwards (`into_parts`).

use super::process::{ExitInfo, LogLine, TargetCommand, TargetProcess, listening_addr};
use super::sampler::{ProcSample, Sampler};
use crate::model::Payload;
use crate::triage::Death;
use crate::triage::exec::{self, Addrs};
use anyhow::{Result, bail};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings.
#[derive(Debug, Clone)]
pub struct SuperviseOptions {
    /// Fixed addresses; None = from the `[mesh-rt] ... listening on` lines.
    pub http: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub ready_timeout: Duration,
    /// Cheap probe (e.g. `GET /api/v1/projects/<uuid>/dashboard/health`); any HTTP answer counts.
    pub probe: Payload,
    /// Zero: no probes while waiting for an event (deaths only, no hang detection; the
    /// readiness gate still probes).
    pub probe_every: Duration,
    pub probe_timeout: Duration,
    /// The target is hung when probes have failed for this long while it is alive.
    pub hang_after: Duration,
    pub sample_every: Duration,
    /// Output lines kept with a death.
    pub tail_lines: usize,
}

impl Default for SuperviseOptions {
    fn default() -> Self {
        SuperviseOptions {
            http: None,
            ws: None,
            ready_timeout: Duration::from_secs(30),
            probe: crate::triage::oracle::default_probe(),
            probe_every: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
            hang_after: Duration::from_secs(5),
            sample_every: Duration::from_secs(1),
            tail_lines: 50,
        }
    }
}

/// What the supervisor saw.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WatchEvent {
    Ready { at_s: f64, http: SocketAddr, ws: Option<SocketAddr>, pid: u32 },
    Died { at_s: f64, exit: ExitInfo, tail: Vec<LogLine> },
    Hung { at_s: f64, failing_for_s: f64 },
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

/// Death classification for triage.
pub fn death_of(e: &ExitInfo) -> Death {
    match (e.signal, e.code) {
        (Some(s), _) => Death::Signal { signo: s, core_dumped: e.core_dumped },
        (None, Some(c)) => Death::from_exit_code(c),
        (None, None) => Death::Exit { code: -1 },
    }
}

pub struct Supervisor {
    pub cmd: TargetCommand,
    pub opts: SuperviseOptions,
    origin: Instant,
    proc_: Option<TargetProcess>,
    addrs: Option<Addrs>,
    series: Arc<Mutex<Vec<ProcSample>>>,
    sampler: Option<Sampler>,
    events: Vec<WatchEvent>,
    outages: Vec<Outage>,
    restarts: u64,
    /// Start of the current outage (cause, seconds since origin).
    down: Option<(String, f64)>,
}

impl Supervisor {
    /// Spawn the target and wait until it is ready.
    pub async fn start(cmd: TargetCommand, opts: SuperviseOptions) -> Result<Supervisor> {
        let mut s = Supervisor {
            cmd,
            opts,
            origin: Instant::now(),
            proc_: None,
            addrs: None,
            series: Arc::new(Mutex::new(Vec::new())),
            sampler: None,
            events: Vec::new(),
            outages: Vec::new(),
            restarts: 0,
            down: None,
        };
        s.spawn_ready().await?;
        Ok(s)
    }

    /// Supervise a target that is already running and ready (`process`, listening on `addrs`).
    /// Its samples go to `series` with `origin` as time zero — give the run's own, so that new
    /// incarnations continue the run's telemetry. `cmd` starts a new incarnation on the same
    /// addresses.
    pub fn adopt(
        cmd: TargetCommand,
        opts: SuperviseOptions,
        process: TargetProcess,
        addrs: Addrs,
        origin: Instant,
        series: Arc<Mutex<Vec<ProcSample>>>,
    ) -> Supervisor {
        Supervisor {
            cmd,
            opts,
            origin,
            proc_: Some(process),
            addrs: Some(addrs),
            series,
            sampler: None,
            events: Vec::new(),
            outages: Vec::new(),
            restarts: 0,
            down: None,
        }
    }

    /// The current incarnation (None when a restart failed) and the sampler of the last one
    /// this supervisor started (None when it started none).
    pub fn into_parts(mut self) -> (Option<TargetProcess>, Option<Sampler>) {
        (self.proc_.take(), self.sampler.take())
    }

    fn now_s(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    pub fn addrs(&self) -> Option<Addrs> {
        self.addrs
    }

    pub fn process(&self) -> Option<&TargetProcess> {
        self.proc_.as_ref()
    }

    async fn spawn_ready(&mut self) -> Result<()> {
        let p = TargetProcess::spawn(&self.cmd)?;
        let deadline = Instant::now() + self.opts.ready_timeout;
        let http = match self.opts.http {
            Some(a) => a,
            None => {
                let line =
                    p.wait_for_line(|l| l.text.contains("HTTP server listening on"), self.opts.ready_timeout).await;
                match line.and_then(|l| listening_addr(&l.text)) {
                    Some(a) => loopback(a),
                    None => {
                        let tail: Vec<String> = p.log_tail(20).into_iter().map(|l| l.text).collect();
                        bail!("target not ready (no HTTP listening line){}:\n{}", exit_text(&p), tail.join("\n"));
                    }
                }
            }
        };
        let ws = match self.opts.ws {
            Some(a) => Some(a),
            None => p
                .wait_for_line(|l| l.text.contains("WebSocket server listening on"), Duration::from_millis(200))
                .await
                .and_then(|l| listening_addr(&l.text))
                .map(loopback),
        };
        let addrs = Addrs { http, ws };
        // Readiness gate: port open and the probe answered.
        loop {
            if p.exited().is_some() {
                bail!("target died during startup{}", exit_text(&p));
            }
            if probe(&self.opts.probe, addrs, self.opts.probe_timeout).await {
                break;
            }
            if Instant::now() >= deadline {
                bail!("target not ready within {:?} (probe not answered)", self.opts.ready_timeout);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.sampler = Some(Sampler::spawn(p.pid(), self.opts.sample_every, self.origin, self.series.clone()));
        self.events.push(WatchEvent::Ready { at_s: self.now_s(), http, ws, pid: p.pid() });
        self.proc_ = Some(p);
        self.addrs = Some(addrs);
        if let Some((cause, start_s)) = self.down.take() {
            self.outages.push(Outage { cause, start_s, end_s: self.now_s() });
        }
        Ok(())
    }

    /// Wait for the next death or hang of the current target.
    pub async fn next_event(&mut self) -> Result<WatchEvent> {
        let Some(p) = &self.proc_ else { bail!("no target running: call restart()") };
        let addrs = self.addrs.expect("addrs with a process");
        let mut exit = p.exit_watch();
        if self.opts.probe_every.is_zero() {
            let info = exit.wait_for(|e| e.is_some()).await.ok().and_then(|v| v.clone());
            let Some(info) = info else { bail!("lost the target's exit status") };
            let ev =
                WatchEvent::Died { at_s: self.now_s(), exit: info.clone(), tail: p.log_tail(self.opts.tail_lines) };
            self.down = Some((info.describe(), self.now_s()));
            self.events.push(ev.clone());
            return Ok(ev);
        }
        let mut tick = tokio::time::interval(self.opts.probe_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing_since: Option<Instant> = None;
        let ev = loop {
            tokio::select! {
                r = exit.wait_for(|e| e.is_some()) => {
                    let info = r.ok().and_then(|v| v.clone());
                    let Some(info) = info else { bail!("lost the target's exit status") };
                    let tail = p.log_tail(self.opts.tail_lines);
                    break WatchEvent::Died { at_s: self.now_s(), exit: info, tail };
                }
                _ = tick.tick() => {
                    if probe(&self.opts.probe, addrs, self.opts.probe_timeout).await {
                        failing_since = None;
                    } else if p.exited().is_none() {
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.opts.hang_after {
                            break WatchEvent::Hung { at_s: self.now_s(), failing_for_s: since.elapsed().as_secs_f64() };
                        }
                    }
                }
            }
        };
        let cause = match &ev {
            WatchEvent::Died { exit, .. } => exit.describe(),
            WatchEvent::Hung { .. } => "hang".into(),
            WatchEvent::Ready { .. } => unreachable!(),
        };
        let at = match &ev {
            WatchEvent::Died { at_s, .. } | WatchEvent::Hung { at_s, .. } => *at_s,
            WatchEvent::Ready { at_s, .. } => *at_s,
        };
        self.down = Some((cause, at));
        self.events.push(ev.clone());
        Ok(ev)
    }

    /// Stop what is left of the current target and start a new one (readiness-gated); the
    /// outage interval is recorded.
    pub async fn restart(&mut self) -> Result<Outage> {
        if self.down.is_none() {
            self.down = Some(("restart".into(), self.now_s()));
        }
        self.sampler = None;
        if let Some(p) = self.proc_.take()
            && p.exited().is_none()
        {
            // A hung target: no grace.
            // SAFETY: signalling our own child.
            unsafe { libc::kill(p.pid() as libc::pid_t, libc::SIGKILL) };
            p.wait_exit(Duration::from_secs(10)).await;
        }
        self.restarts += 1;
        self.spawn_ready().await?;
        Ok(self.outages.last().cloned().expect("an outage was just recorded"))
    }

    pub fn report(&self) -> WatchReport {
        WatchReport {
            events: self.events.clone(),
            outages: self.outages.clone(),
            restarts: self.restarts,
            samples: self.series.lock().expect("series lock").clone(),
        }
    }

    /// Stop the target (SIGTERM, then SIGKILL after 5 s).
    pub async fn stop(mut self) -> WatchReport {
        self.sampler = None;
        if let Some(p) = self.proc_.take() {
            p.stop().await;
        }
        self.report()
    }
}

fn loopback(mut a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        a.set_ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    a
}

fn exit_text(p: &TargetProcess) -> String {
    p.exited().map(|e| format!(" ({})", e.describe())).unwrap_or_default()
}

/// Send the probe (blocking executor on the blocking pool); true when answered.
pub async fn probe(payload: &Payload, addrs: Addrs, timeout: Duration) -> bool {
    let p = payload.clone();
    tokio::task::spawn_blocking(move || exec::send(&p, &addrs, timeout).answered()).await.unwrap_or(false)
}
