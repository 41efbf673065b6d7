//! How to start a target and when it is ready: one description ([`Launch`]) for every kind of
//! target the tool starts (the built-in one, a real Mesher binary, a test server) and every
//! user of one (the run's phases, triage's fresh incarnations, `replay`, `minimize`, gdb
//! re-runs).
//!
//! [`Launch::start`] spawns the command (through [`TargetProcess`], the one spawner), learns its
//! addresses (fixed ports, or the `… listening on ADDR` lines it prints), and holds it behind a
//! readiness gate: the port accepts connections and the readiness probe (by default a cheap GET
//! through the same machinery every request uses) is answered. A death during startup, or a
//! target that does not become ready in time, is retried with exponential backoff; only
//! `attempts` failures in a row — without any traffic of ours, which waits behind the gate — make
//! the target "cannot start", reported with its output.
//!
//! Blocking (std sockets, sleeps): async callers run it on the blocking pool.

use super::process::{ExitInfo, TargetCommand, TargetProcess, listening_addr};
use crate::model::Payload;
use crate::wire::blocking::{self as exec, Addrs, Reply};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where a target listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Fixed addresses (Mesher's 8080/8081 from `MESHER_HTTP_PORT` / `MESHER_WS_PORT`).
    Fixed { http: SocketAddr, ws: Option<SocketAddr> },
    /// Read from the `HTTP server listening on ADDR` / `WebSocket server listening on ADDR`
    /// lines the target prints (stdout or stderr).
    Announced,
}

/// When a started target counts as ready.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// How long one attempt may take to become ready.
    pub timeout: Duration,
    /// The probe; it is answered once the target serves requests.
    pub probe: Payload,
    pub probe_timeout: Duration,
    /// Statuses that count as ready; empty: any HTTP answer.
    pub status: Vec<u16>,
}

/// A cheap probe through the machinery every request uses: `GET` of the fixtures project's
/// dashboard health (any answer shows the server is alive and serving; `GET /` would not do,
/// since a server whose request pipeline is stuck still answers 404 for unknown paths). The
/// default readiness probe and hang probe.
pub fn default_probe() -> Payload {
    let path = crate::api::Route::get(crate::api::RouteId::DashboardHealth).path(&[crate::db::fixtures::PROJECT_ID]);
    Payload::Http(crate::model::HttpRequest::new(Some(crate::api::RouteId::DashboardHealth), "GET", path, Vec::new()))
}

impl Readiness {
    /// Is this reply "ready"?
    pub fn accepts(&self, r: &Reply) -> bool {
        match r {
            Reply::Http { status: Some(s), .. } => self.status.is_empty() || self.status.contains(s),
            _ => false,
        }
    }
}

/// How often a failed start is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupPolicy {
    /// Attempts in a row before the target is "cannot start" (≥ 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time up to `backoff_max`.
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl Default for StartupPolicy {
    fn default() -> Self {
        StartupPolicy { attempts: 5, backoff: Duration::from_millis(200), backoff_max: Duration::from_secs(5) }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Launch {
    pub command: TargetCommand,
    pub ports: Ports,
    pub readiness: Readiness,
    pub startup: StartupPolicy,
    /// Words put before the command (gdb's batch mode for backtraces).
    pub wrapper: Vec<String>,
    /// Environment variables that carry the HTTP and WebSocket ports, if the command reads its
    /// ports from the environment (the built-in target and Mesher do): announced ports are
    /// written there so that later incarnations listen where the first one did.
    pub port_env: Option<(String, String)>,
    /// Set once a start of this target found no WebSocket "listening" line: later starts (the
    /// restarts of a crashy target, hundreds a minute) do not wait for one again. Shared by the
    /// clones of a launch.
    pub ws_silent: Arc<AtomicBool>,
}

/// A started, ready target.
pub struct Incarnation {
    pub process: TargetProcess,
    pub addrs: Addrs,
    /// Attempts it took (1: the first start came up).
    pub attempts: u32,
    /// From the spawn of the attempt that came up to its readiness.
    pub ready_in: Duration,
}

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub struct Failed {
    pub what: String,
    pub exit: Option<ExitInfo>,
    /// The attempt's last lines of output.
    pub log: Vec<String>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.what)?;
        if !self.log.is_empty() {
            write!(
                f,
                "; its last output:\n{}",
                self.log.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
            )?;
        }
        Ok(())
    }
}

/// Every attempt to start a target failed (or the start was abandoned).
#[derive(Debug, Clone)]
pub struct CannotStart {
    pub target: String,
    /// One per attempt, in order.
    pub failures: Vec<Failed>,
    /// Abandoned on a stop signal rather than given up.
    pub stopped: bool,
}

impl CannotStart {
    /// How the last attempt ended, if it died.
    pub fn last_exit(&self) -> Option<&ExitInfo> {
        self.failures.last().and_then(|f| f.exit.as_ref())
    }
}

impl std::fmt::Display for CannotStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.stopped {
            return write!(f, "stopped while starting the target ({})", self.target);
        }
        let Some((last, earlier)) = self.failures.split_last() else {
            return write!(f, "the target cannot start ({})", self.target);
        };
        write!(
            f,
            "the target cannot start: {} attempt(s) in a row failed, without traffic ({}",
            self.failures.len(),
            self.target
        )?;
        if !earlier.is_empty() {
            let e: Vec<&str> = earlier.iter().map(|x| x.what.as_str()).collect();
            write!(f, "; before the last: {}", e.join("; "))?;
        }
        write!(f, "); last attempt: {last}")
    }
}

impl std::error::Error for CannotStart {}

const LOG_LINES: usize = 20;

impl Launch {
    /// A launch of `command` with the default readiness (`probe`, 30 s) and startup policy.
    pub fn new(command: TargetCommand, ports: Ports, probe: Payload) -> Launch {
        Launch {
            command,
            ports,
            readiness: Readiness {
                timeout: Duration::from_secs(30),
                probe,
                probe_timeout: Duration::from_secs(2),
                status: Vec::new(),
            },
            startup: StartupPolicy::default(),
            wrapper: Vec::new(),
            port_env: None,
            ws_silent: Arc::default(),
        }
    }

    /// The command line (wrapper included), for reports.
    pub fn describe(&self) -> String {
        let mut s = self.wrapper.iter().map(|w| super::shell_quote(w)).collect::<Vec<_>>().join(" ");
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&self.command.display());
        s
    }

    /// From now on, start on `addrs` (the first incarnation announced them): lanes and
    /// reproducers keep their addresses across restarts. Only a target told its ports
    /// (`port_env`) can be pinned; another one announces wherever it listens next time.
    pub fn pin(&mut self, addrs: Addrs) {
        let Some((h, w)) = &self.port_env else { return };
        self.command.env.insert(h.clone(), addrs.http.port().to_string());
        if let Some(ws) = addrs.ws {
            self.command.env.insert(w.clone(), ws.port().to_string());
        }
        self.ports = Ports::Fixed { http: addrs.http, ws: addrs.ws };
    }

    /// The same target run under `gdb -batch` (backtrace on a crash), if gdb is installed.
    pub fn under_gdb(&self) -> Option<Launch> {
        let gdb = ["/usr/bin/gdb", "/usr/local/bin/gdb"].into_iter().find(|p| std::path::Path::new(p).exists())?;
        let mut l = self.clone();
        l.wrapper = [gdb, "-q", "-nx", "-batch", "-ex", "set confirm off", "-ex", "run", "-ex", "bt 30", "--args"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        l.readiness.timeout = self.readiness.timeout.max(Duration::from_secs(60));
        l.startup.attempts = 1;
        Some(l)
    }

    fn spawn_command(&self) -> TargetCommand {
        if self.wrapper.is_empty() {
            return self.command.clone();
        }
        let mut words = self.wrapper.clone();
        words.push(self.command.program.display().to_string());
        words.extend(self.command.args.iter().cloned());
        TargetCommand {
            program: words.remove(0).into(),
            args: words,
            env: self.command.env.clone(),
            cwd: self.command.cwd.clone(),
        }
    }

    /// Start the target, retrying failed attempts with backoff (see the module docs); `stop`
    /// abandons the attempts (Ctrl-C, the run's time bound).
    pub fn start(&self, stop: &dyn Fn() -> bool) -> Result<Incarnation, CannotStart> {
        let attempts = self.startup.attempts.max(1);
        let mut wait = self.startup.backoff;
        let mut failures: Vec<Failed> = Vec::new();
        for n in 1..=attempts {
            if stop() {
                return Err(CannotStart { target: self.describe(), failures, stopped: true });
            }
            match self.start_once(stop) {
                Ok(mut i) => {
                    i.attempts = n;
                    return Ok(i);
                }
                Err(f) => failures.push(f),
            }
            if n < attempts {
                let until = Instant::now() + wait;
                while Instant::now() < until && !stop() {
                    std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
                }
                wait = (wait * 2).min(self.startup.backoff_max);
            }
        }
        Err(CannotStart { target: self.describe(), failures, stopped: false })
    }

    /// One attempt: spawn, addresses, readiness gate.
    pub fn start_once(&self, stop: &dyn Fn() -> bool) -> Result<Incarnation, Failed> {
        let fail = |what: String, p: Option<&TargetProcess>| Failed {
            what,
            exit: p.and_then(|p| p.exited()),
            log: p.map(|p| p.log_tail(LOG_LINES).into_iter().map(|l| l.text).collect()).unwrap_or_default(),
        };
        if let Ports::Fixed { http, .. } = &self.ports
            && !port_free(*http, Duration::from_secs(3))
        {
            return Err(fail(
                format!(
                    "something else already listens on {http} (another server, or a target left from an earlier run): stop it or choose other ports"
                ),
                None,
            ));
        }
        let p = TargetProcess::spawn(&self.spawn_command()).map_err(|e| fail(format!("{e:#}"), None))?;
        let t0 = Instant::now();
        let deadline = t0 + self.readiness.timeout;
        let died = |p: &TargetProcess| {
            p.exited().map(|e| fail(format!("the target {} during startup", e.describe()), Some(p)))
        };
        let (http, ws) = match &self.ports {
            Ports::Fixed { http, ws } => (*http, *ws),
            Ports::Announced => {
                let http = loop {
                    if let Some(a) = p.lines().iter().find_map(|l| listening_addr(&l.text, "HTTP")) {
                        break a;
                    }
                    if let Some(f) = died(&p) {
                        return Err(f);
                    }
                    if Instant::now() >= deadline || stop() {
                        p.kill_blocking();
                        return Err(fail(
                            format!(
                                "no \"HTTP server listening on ADDR\" line within {:?} (give fixed ports if the target prints none)",
                                self.readiness.timeout
                            ),
                            Some(&p),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                // Mesher prints its WebSocket line first, from another thread: allow a moment,
                // unless an earlier start showed this target prints none.
                let patience =
                    if self.ws_silent.load(Ordering::Relaxed) { Duration::ZERO } else { Duration::from_millis(300) };
                let until = Instant::now() + patience;
                let ws = loop {
                    let ws = p.lines().iter().find_map(|l| listening_addr(&l.text, "WebSocket"));
                    if ws.is_some() || Instant::now() >= until {
                        break ws;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                if ws.is_none() {
                    self.ws_silent.store(true, Ordering::Relaxed);
                }
                (http, ws)
            }
        };
        let addrs = Addrs { http, ws };
        loop {
            if let Some(f) = died(&p) {
                return Err(f);
            }
            if exec::port_open(http, Duration::from_millis(200)) {
                let reply = exec::send(&self.readiness.probe, &addrs, self.readiness.probe_timeout);
                if self.readiness.accepts(&reply) {
                    break;
                }
            }
            if let Some(f) = died(&p) {
                return Err(f);
            }
            if Instant::now() >= deadline || stop() {
                p.kill_blocking();
                return Err(fail(
                    format!(
                        "not ready within {:?}: the readiness probe ({}) was not answered{}",
                        self.readiness.timeout,
                        probe_text(&self.readiness.probe),
                        if self.readiness.status.is_empty() {
                            String::new()
                        } else {
                            format!(" with {:?}", self.readiness.status)
                        }
                    ),
                    Some(&p),
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(Incarnation { process: p, addrs, attempts: 1, ready_in: t0.elapsed() })
    }
}

/// `GET /path` of a probe, for messages.
pub fn probe_text(p: &Payload) -> String {
    match p {
        Payload::Http(r) => format!("{} {}", r.method, r.target),
        Payload::Ws(w) => format!("WebSocket {}", w.path),
    }
}

/// True when nothing accepts connections on `addr`, waiting up to `patience` for a listener
/// that is going away (the previous incarnation's, being reaped).
fn port_free(addr: SocketAddr, patience: Duration) -> bool {
    let until = Instant::now() + patience;
    loop {
        if !exec::port_open(addr, Duration::from_millis(200)) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HttpRequest;

    fn probe() -> Payload {
        Payload::Http(HttpRequest::new(None, "GET", "/".into(), Vec::new()))
    }

    #[test]
    fn a_target_that_always_dies_cannot_start_and_its_output_is_told() {
        let cmd = TargetCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo 'boot failed: no database' >&2; exit 3".into()],
            ..TargetCommand::default()
        };
        let mut l = Launch::new(cmd, Ports::Announced, probe());
        l.startup =
            StartupPolicy { attempts: 3, backoff: Duration::from_millis(10), backoff_max: Duration::from_millis(20) };
        let err = l.start(&|| false).err().expect("cannot start");
        assert_eq!(err.last_exit().and_then(|e| e.code), Some(3));
        let e = err.to_string();
        assert!(e.contains("3 attempt(s) in a row failed"), "{e}");
        assert!(e.contains("exited with code 3 during startup"), "{e}");
        assert!(e.contains("boot failed: no database"), "{e}");
    }

    #[test]
    fn a_busy_fixed_port_is_refused_before_spawning() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let cmd = TargetCommand { program: "/bin/true".into(), ..TargetCommand::default() };
        let mut launch = Launch::new(cmd, Ports::Fixed { http: addr, ws: None }, probe());
        launch.startup.attempts = 1;
        let e = launch.start(&|| false).err().unwrap().to_string();
        assert!(e.contains("something else already listens on"), "{e}");
    }

    #[test]
    fn pinning_writes_the_ports_where_the_target_reads_them() {
        let mut l = Launch::new(TargetCommand::default(), Ports::Announced, probe());
        l.port_env = Some(("MESHER_HTTP_PORT".into(), "MESHER_WS_PORT".into()));
        l.pin(Addrs { http: "127.0.0.1:4100".parse().unwrap(), ws: Some("127.0.0.1:4101".parse().unwrap()) });
        assert_eq!(l.command.env["MESHER_HTTP_PORT"], "4100");
        assert_eq!(l.command.env["MESHER_WS_PORT"], "4101");
        assert!(matches!(l.ports, Ports::Fixed { .. }));
    }
}
