//! Targets for triage: a [`TargetFactory`] starts a fresh target process and returns a
//! [`TargetHandle`] that knows its addresses and reports its death the moment it happens (a
//! waiter thread blocks in `wait()` on the child and signals a condvar; no polling).
//!
//! [`CommandFactory`] works for any command: the real Mesher binary, `mesher-stress target
//! --http-port 0 --ws-port 0 --fault ...`, or a test server. Addresses come either from fixed
//! ports or from the `[mesh-rt] HTTP server listening on ADDR` / `[mesh-rt] WebSocket server
//! listening on ADDR` lines (stdout or stderr). To plug in another way of running targets
//! (e.g. the watch stage's supervisor), implement the two traits.

use super::Death;
use super::exec::Addrs;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One running target.
pub trait TargetHandle: Send {
    fn addrs(&self) -> Addrs;
    /// The death if it already happened (never blocks).
    fn death(&self) -> Option<Death>;
    /// Wait up to `within` for the target to die; returns the death if it did.
    fn wait_death(&self, within: Duration) -> Option<Death>;
    /// Kill it (SIGKILL) and reap it. Idempotent.
    fn kill(&mut self);
    /// Last lines of its stdout/stderr (interleaved, oldest first).
    fn log_tail(&self) -> Vec<String>;
    /// Process id (None for targets we did not start).
    fn pid(&self) -> Option<u32>;
    /// When true, the oracle may restart it (false for an already running URL target).
    fn restartable(&self) -> bool {
        true
    }
}

/// Starts fresh targets. `Send + Sync` so a triage thread can own it.
pub trait TargetFactory: Send + Sync {
    fn start(&self) -> Result<Box<dyn TargetHandle>>;
    /// Human description for reports.
    fn describe(&self) -> String;
    /// A factory that runs the same target under `gdb -batch -ex run -ex bt`, if possible.
    fn under_gdb(&self) -> Option<Box<dyn TargetFactory>> {
        None
    }
}

/// Spawn a command; see the module docs.
#[derive(Debug, Clone)]
pub struct CommandFactory {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Fixed HTTP address; None = read it from the "HTTP server listening on" line.
    pub http: Option<SocketAddr>,
    /// Fixed WS address; None = read it from the "WebSocket server listening on" line if any.
    pub ws: Option<SocketAddr>,
    pub ready_timeout: Duration,
    /// Prefix the command with this (e.g. gdb); output is captured the same way.
    pub wrapper: Vec<String>,
    /// Lines of output kept.
    pub tail_lines: usize,
}

impl CommandFactory {
    pub fn new(program: impl Into<String>, args: Vec<String>) -> CommandFactory {
        CommandFactory {
            program: program.into(),
            args,
            env: BTreeMap::new(),
            cwd: None,
            http: None,
            ws: None,
            ready_timeout: Duration::from_secs(30),
            wrapper: Vec::new(),
            tail_lines: 200,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.to_string(), v.to_string());
        self
    }
}

/// Parse `... HTTP server listening on 0.0.0.0:8080` (0.0.0.0 becomes 127.0.0.1).
pub fn parse_listening(line: &str, what: &str) -> Option<SocketAddr> {
    let marker = format!("{what} server listening on ");
    let i = line.find(&marker)?;
    let rest = line[i + marker.len()..].trim();
    let tok = rest.split_whitespace().next()?;
    let mut a: SocketAddr = tok.parse().ok()?;
    if a.ip().is_unspecified() {
        a.set_ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    Some(a)
}

struct Shared {
    death: Mutex<Option<Death>>,
    cv: Condvar,
    tail: Mutex<VecDeque<String>>,
}

/// A child process started by [`CommandFactory`].
pub struct ChildTarget {
    pid: u32,
    addrs: Addrs,
    shared: Arc<Shared>,
}

impl TargetHandle for ChildTarget {
    fn addrs(&self) -> Addrs {
        self.addrs
    }
    fn death(&self) -> Option<Death> {
        *self.shared.death.lock().unwrap()
    }
    fn wait_death(&self, within: Duration) -> Option<Death> {
        let g = self.shared.death.lock().unwrap();
        let (g, _) = self.shared.cv.wait_timeout_while(g, within, |d| d.is_none()).unwrap();
        *g
    }
    fn kill(&mut self) {
        if self.death().is_none() {
            // The process group: wrappers (sh, gdb) take their children with them.
            unsafe {
                libc::kill(-(self.pid as i32), libc::SIGKILL);
                libc::kill(self.pid as i32, libc::SIGKILL);
            }
            self.wait_death(Duration::from_secs(10));
        }
    }
    fn log_tail(&self) -> Vec<String> {
        self.shared.tail.lock().unwrap().iter().cloned().collect()
    }
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }
}

impl Drop for ChildTarget {
    fn drop(&mut self) {
        self.kill();
    }
}

enum Seen {
    Http(SocketAddr),
    Ws(SocketAddr),
}

impl TargetFactory for CommandFactory {
    fn start(&self) -> Result<Box<dyn TargetHandle>> {
        let (prog, args): (String, Vec<String>) = if self.wrapper.is_empty() {
            (self.program.clone(), self.args.clone())
        } else {
            let mut all = self.wrapper.clone();
            all.push(self.program.clone());
            all.extend(self.args.iter().cloned());
            (all.remove(0), all)
        };
        let mut cmd = Command::new(&prog);
        cmd.args(&args).envs(&self.env).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // The target never outlives a `kill -9` of the tool (the signal fires when the spawning
        // thread exits: start targets from the thread that runs the triage).
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("cannot start target {prog:?}"))?;
        let pid = child.id();
        let shared =
            Arc::new(Shared { death: Mutex::new(None), cv: Condvar::new(), tail: Mutex::new(VecDeque::new()) });
        let (tx, rx) = mpsc::channel::<Seen>();
        for (i, stream) in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(stream) = stream else { continue };
            let sh = shared.clone();
            let tx = tx.clone();
            let keep = self.tail_lines;
            std::thread::Builder::new().name(format!("target-out-{i}")).spawn(move || {
                let mut r = BufReader::new(stream);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                            if let Some(a) = parse_listening(&line, "HTTP") {
                                let _ = tx.send(Seen::Http(a));
                            }
                            if let Some(a) = parse_listening(&line, "WebSocket") {
                                let _ = tx.send(Seen::Ws(a));
                            }
                            let mut t = sh.tail.lock().unwrap();
                            t.push_back(line);
                            while t.len() > keep {
                                t.pop_front();
                            }
                        }
                    }
                }
            })?;
        }
        drop(tx);
        let sh = shared.clone();
        std::thread::Builder::new().name("target-wait".into()).spawn(move || {
            let d = match child.wait() {
                Ok(st) => Death::from_status(st),
                Err(_) => Death::Exit { code: -1 },
            };
            *sh.death.lock().unwrap() = Some(d);
            sh.cv.notify_all();
        })?;
        let mut t = ChildTarget { pid, addrs: Addrs { http: "127.0.0.1:1".parse().unwrap(), ws: self.ws }, shared };
        let deadline = Instant::now() + self.ready_timeout;
        let mut http = self.http;
        let mut ws = self.ws;
        // Readiness: the listening line (or a fixed port accepting connections).
        while http.is_none()
            || (self.http.is_some() && !super::exec::port_open(http.unwrap(), Duration::from_millis(200)))
        {
            if let Some(d) = t.death() {
                bail!("target died during startup: {d}; last output:\n{}", t.log_tail().join("\n"));
            }
            if Instant::now() >= deadline {
                t.kill();
                bail!(
                    "target not ready within {:?} (no 'HTTP server listening on' line / port closed); last output:\n{}",
                    self.ready_timeout,
                    t.log_tail().join("\n")
                );
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Seen::Http(a)) if self.http.is_none() => http = Some(a),
                Ok(Seen::Ws(a)) if self.ws.is_none() => ws = Some(a),
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(50)),
                _ => {}
            }
        }
        // The WS line may come a moment later (another thread in Mesher).
        if ws.is_none() {
            let until = Instant::now() + Duration::from_millis(100);
            while let Ok(s) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                if let Seen::Ws(a) = s {
                    ws = Some(a);
                    break;
                }
            }
        }
        t.addrs = Addrs { http: http.unwrap(), ws };
        Ok(Box::new(t))
    }

    fn describe(&self) -> String {
        let mut s = self.wrapper.join(" ");
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&self.program);
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    fn under_gdb(&self) -> Option<Box<dyn TargetFactory>> {
        if !std::path::Path::new("/usr/bin/gdb").exists() && which("gdb").is_none() {
            return None;
        }
        let mut f = self.clone();
        f.wrapper = ["gdb", "-q", "-nx", "-batch", "-ex", "set confirm off", "-ex", "run", "-ex", "bt 30", "--args"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        f.ready_timeout = self.ready_timeout.max(Duration::from_secs(60));
        f.tail_lines = 2000;
        Some(Box::new(f))
    }
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(prog)).find(|p| p.exists())
}

/// An already running target at fixed addresses: cannot be restarted; its death is seen only
/// as refused connections.
pub struct UrlTarget {
    pub addrs: Addrs,
}

impl TargetHandle for UrlTarget {
    fn addrs(&self) -> Addrs {
        self.addrs
    }
    fn death(&self) -> Option<Death> {
        None
    }
    fn wait_death(&self, within: Duration) -> Option<Death> {
        std::thread::sleep(within);
        None
    }
    fn kill(&mut self) {}
    fn log_tail(&self) -> Vec<String> {
        Vec::new()
    }
    fn pid(&self) -> Option<u32> {
        None
    }
    fn restartable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(
            parse_listening("[mesh-rt] HTTP server listening on 0.0.0.0:8080", "HTTP"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_listening("[mesh-rt] WebSocket server listening on 127.0.0.1:4555", "WebSocket"),
            Some("127.0.0.1:4555".parse().unwrap())
        );
        assert_eq!(parse_listening("[Mesher] HTTP server starting on :8080", "HTTP"), None);
    }
}
