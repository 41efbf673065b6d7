//! The one way a target process is spawned and watched: log capture, startup lines, death
//! noticed at once and classified.
//!
//! Every target (the run's, the fuzz phase's, triage's fresh incarnations, gdb re-runs) is
//! forked by one long-lived spawner thread. The child runs in its own process group (a
//! terminal's Ctrl-C reaches only us, and we stop it in order) and gets
//! `PR_SET_PDEATHSIG(SIGKILL)`, which fires when the *thread* that forked it exits: the spawner
//! never exits, so a target outlives neither a `kill -9` of the tool nor nothing else.
//!
//! Per process, plain threads do the waiting: one blocks in `wait()` (death is noticed the
//! moment it happens, no polling), two read stdout and stderr line by line into a bounded
//! buffer and a broadcast channel. The death is published both to async code (a `watch`
//! channel) and to blocking code (a condvar), so the run's async watchdog and triage's
//! blocking oracle share this one detector.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, watch};

/// How to start a target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

impl TargetCommand {
    /// The built-in target on `database_url`: `<exe> target --database-url URL [--keep-alive]
    /// [--fault F]...`, its ports in `MESHER_HTTP_PORT` / `MESHER_WS_PORT` exactly as a real
    /// Mesher reads them (0: free ports, announced in its startup lines).
    pub fn builtin(exe: PathBuf, database_url: &str, faults: &[String], keep_alive: bool, ports: (u16, u16)) -> Self {
        let mut args = vec!["target".to_string(), "--database-url".into(), database_url.to_string()];
        if keep_alive {
            args.push("--keep-alive".into());
        }
        for f in faults {
            args.push("--fault".into());
            args.push(f.clone());
        }
        let env =
            [("MESHER_HTTP_PORT".to_string(), ports.0.to_string()), ("MESHER_WS_PORT".into(), ports.1.to_string())]
                .into_iter()
                .collect();
        TargetCommand { program: exe, args, env, cwd: None }
    }

    /// The command line as one shell-quoted string, environment first (for reports and
    /// reproducers).
    pub fn display(&self) -> String {
        let env = self.env.iter().map(|(k, v)| format!("{k}={}", crate::watch::shell_quote(v)));
        let words = std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .map(|a| crate::watch::shell_quote(&a));
        env.chain(words).collect::<Vec<_>>().join(" ")
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of target output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    /// Time since the process was spawned.
    #[serde(with = "crate::watch::millis")]
    pub at: Duration,
    pub stream: Stream,
    pub text: String,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code when it exited normally.
    pub code: Option<i32>,
    /// Signal number when killed by a signal.
    pub signal: Option<i32>,
    /// `SIGSEGV`, `SIGABRT`, ... (None for a normal exit).
    pub signal_name: Option<String>,
    /// What a shell would print as `$?`: the code, or 128 + signal.
    pub shell_code: i32,
    pub core_dumped: bool,
    /// Time since spawn.
    #[serde(with = "crate::watch::millis")]
    pub after: Duration,
}

impl ExitInfo {
    pub fn from_status(status: std::process::ExitStatus, after: Duration) -> ExitInfo {
        let signal = status.signal();
        ExitInfo {
            code: status.code(),
            signal,
            signal_name: signal.map(signal_name),
            shell_code: status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0)),
            core_dumped: status.core_dumped(),
            after,
        }
    }

    fn unknown(after: Duration) -> ExitInfo {
        ExitInfo { code: None, signal: None, signal_name: None, shell_code: -1, core_dumped: false, after }
    }

    /// Died by a signal other than the ones we use to stop it (SIGTERM, SIGINT, SIGKILL).
    pub fn is_crash(&self) -> bool {
        match self.signal {
            Some(s) => !matches!(s, libc::SIGTERM | libc::SIGINT | libc::SIGKILL),
            None => false,
        }
    }

    /// The death this exit is, for triage and buckets.
    pub fn death(&self) -> crate::watch::death::Death {
        use crate::watch::death::Death;
        match (self.signal, self.code) {
            (Some(s), _) => Death::Signal { signo: s, core_dumped: self.core_dumped },
            (None, Some(c)) => Death::from_exit_code(c),
            (None, None) => Death::Exit { code: -1 },
        }
    }

    /// `was killed by signal 11 (SIGSEGV), shell exit 139` / `exited with code 1`.
    pub fn describe(&self) -> String {
        match (&self.signal, &self.signal_name) {
            (Some(n), Some(name)) => format!(
                "was killed by signal {n} ({name}), shell exit {}{}",
                self.shell_code,
                if self.core_dumped { ", core dumped" } else { "" }
            ),
            _ => format!("exited with code {}", self.code.unwrap_or(-1)),
        }
    }
}

/// `SIGSEGV` for 11, `SIG40` for a number without a name.
pub fn signal_name(sig: i32) -> String {
    crate::watch::death::signal_name(sig).map(str::to_string).unwrap_or_else(|| format!("SIG{sig}"))
}

/// A target's output as a log file (milliseconds since its start, stream, text).
pub fn write_log(path: &std::path::Path, lines: &[LogLine]) {
    let text: String = lines.iter().map(|l| format!("{:>8} {:?} {}\n", l.at.as_millis(), l.stream, l.text)).collect();
    let _ = crate::util::fs::write_atomic(path, text.as_bytes());
}

struct LogBuffer {
    /// The first lines, kept whole (startup checks read them).
    head: Vec<LogLine>,
    /// The most recent lines.
    tail: VecDeque<LogLine>,
}

const HEAD_LINES: usize = 200;
const TAIL_LINES: usize = 500;

/// What the watching threads share with the handle.
struct Shared {
    log: Mutex<LogBuffer>,
    lines: broadcast::Sender<LogLine>,
    exit: Mutex<Option<ExitInfo>>,
    exited: Condvar,
    exit_tx: watch::Sender<Option<ExitInfo>>,
}

/// A running (or dead) target process.
pub struct TargetProcess {
    pid: u32,
    /// A pidfd: signals go to this process and no other, even once its pid is reused.
    pidfd: Option<OwnedFd>,
    started: Instant,
    pub started_at: SystemTime,
    shared: Arc<Shared>,
    exit: watch::Receiver<Option<ExitInfo>>,
}

/// See [`TargetProcess::log_handle`].
#[derive(Clone)]
pub struct LogHandle(Arc<Shared>);

impl LogHandle {
    /// The first and the latest lines of output.
    pub fn lines(&self) -> Vec<LogLine> {
        let log = self.0.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = log.head.clone();
        v.extend(log.tail.iter().cloned());
        v
    }
}

/// A request to the spawner thread.
type SpawnJob = (std::process::Command, mpsc::Sender<std::io::Result<std::process::Child>>);

/// The spawner thread (started on first use; it lives as long as the process).
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("mesher-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // Every sender is gone (never, in practice): park so the children live on.
                loop {
                    std::thread::park();
                }
            })
            .expect("cannot start the spawner thread");
        Mutex::new(tx)
    })
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the descriptor returned is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a fresh descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl TargetProcess {
    /// Spawn `cmd` (its output captured). Callable from any thread, async or not: the fork
    /// happens on the spawner thread (see the module docs).
    pub fn spawn(cmd: &TargetCommand) -> Result<TargetProcess> {
        let mut c = std::process::Command::new(&cmd.program);
        c.args(&cmd.args).envs(&cmd.env).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.process_group(0);
        if let Some(dir) = &cmd.cwd {
            c.current_dir(dir);
        }
        // SAFETY: prctl and getppid are async-signal-safe.
        unsafe {
            let parent = libc::getpid();
            c.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The tool died between the fork and the prctl: follow it.
                if libc::getppid() != parent {
                    libc::_exit(137);
                }
                Ok(())
            });
        }
        let (reply, answer) = mpsc::channel();
        spawner().lock().unwrap_or_else(|e| e.into_inner()).send((c, reply)).context("the spawner thread is gone")?;
        let mut child = answer
            .recv()
            .context("the spawner thread is gone")?
            .with_context(|| format!("cannot start target `{}`", cmd.display()))?;
        let pid = child.id();
        let pidfd = pidfd_open(pid);
        let started = Instant::now();
        let (lines, _) = broadcast::channel(1024);
        let (exit_tx, exit) = watch::channel(None);
        let shared = Arc::new(Shared {
            log: Mutex::new(LogBuffer { head: Vec::new(), tail: VecDeque::new() }),
            lines,
            exit: Mutex::new(None),
            exited: Condvar::new(),
            exit_tx,
        });
        let (pumped_tx, pumped) = mpsc::channel::<()>();
        for (name, stream, pipe) in [
            (
                "target-stdout",
                Stream::Stdout,
                child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            ),
            (
                "target-stderr",
                Stream::Stderr,
                child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            ),
        ] {
            let Some(pipe) = pipe else { continue };
            let (sh, done) = (shared.clone(), pumped_tx.clone());
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    pump(pipe, stream, started, &sh);
                    drop(done);
                })
                .context("cannot start a log reader thread")?;
        }
        drop(pumped_tx);
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("target-wait".into())
            .spawn(move || {
                let status = child.wait();
                let after = started.elapsed();
                // Let the readers take the last lines (the crash message) before announcing
                // the death; a grandchild holding the pipes open cannot delay it for long.
                let deadline = Instant::now() + Duration::from_millis(500);
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    pumped.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                let info = match status {
                    Ok(s) => ExitInfo::from_status(s, after),
                    Err(_) => ExitInfo::unknown(after),
                };
                *sh.exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
                sh.exited.notify_all();
                let _ = sh.exit_tx.send(Some(info));
            })
            .context("cannot start the target's waiter thread")?;
        Ok(TargetProcess { pid, pidfd, started, started_at: SystemTime::now(), shared, exit })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Time since spawn.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// How it ended, if it has.
    pub fn exited(&self) -> Option<ExitInfo> {
        self.shared.exit.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Wait for the process to end (at most `timeout`).
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitInfo> {
        let mut rx = self.exit.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|e| e.is_some())).await {
            Ok(Ok(v)) => v.clone(),
            _ => self.exited(),
        }
    }

    /// [`TargetProcess::wait_exit`] for blocking code (triage).
    pub fn wait_exit_blocking(&self, timeout: Duration) -> Option<ExitInfo> {
        let g = self.shared.exit.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) =
            self.shared.exited.wait_timeout_while(g, timeout, |e| e.is_none()).unwrap_or_else(|e| e.into_inner());
        g.clone()
    }

    /// A receiver that changes when the process dies (for `select!` loops).
    pub fn exit_watch(&self) -> watch::Receiver<Option<ExitInfo>> {
        self.exit.clone()
    }

    /// All lines seen so far that are still buffered (the first 200 and the last 500).
    pub fn lines(&self) -> Vec<LogLine> {
        self.log_handle().lines()
    }

    /// A handle on this process's output (head and tail), readable while something else owns
    /// the process (checkpoints during a load phase, whose watchdog holds it).
    pub fn log_handle(&self) -> LogHandle {
        LogHandle(self.shared.clone())
    }

    /// The last `n` lines.
    pub fn log_tail(&self, n: usize) -> Vec<LogLine> {
        let all = self.lines();
        all[all.len().saturating_sub(n)..].to_vec()
    }

    /// Wait until a line satisfying `pred` appears (already seen lines count), the process dies,
    /// or `timeout` passes.
    pub async fn wait_for_line(&self, pred: impl Fn(&LogLine) -> bool, timeout: Duration) -> Option<LogLine> {
        let mut rx = self.shared.lines.subscribe();
        if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
            return Some(l);
        }
        let mut exit = self.exit.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(l) if pred(&l) => return Some(l),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                            return Some(l);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = exit.wait_for(|e| e.is_some()) => {
                    // The readers took the last lines before the death was announced.
                    return self.lines().into_iter().find(|l| pred(l));
                }
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// Subscribe to new lines.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.shared.lines.subscribe()
    }

    /// Send `sig` to the process (not to a process that already ended, nor to one that reused
    /// its pid).
    pub fn signal(&self, sig: i32) {
        if self.exited().is_some() {
            return;
        }
        match &self.pidfd {
            // SAFETY: plain syscall on a descriptor we own.
            Some(fd) => unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0);
            },
            // SAFETY: signalling our own child, which is not reaped before `exited()` is set.
            None => unsafe {
                libc::kill(self.pid as libc::pid_t, sig);
            },
        }
    }

    /// SIGKILL the process and its process group (wrappers such as a shell or gdb take their
    /// children along).
    fn kill_group(&self) {
        if self.exited().is_none() {
            // SAFETY: the group is our child's own (process_group(0)); its id is the child's pid.
            unsafe { libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL) };
            self.signal(libc::SIGKILL);
        }
    }

    /// SIGKILL and wait (blocking) for the death to be noticed.
    pub fn kill_blocking(&self) -> Option<ExitInfo> {
        self.kill_group();
        self.wait_exit_blocking(Duration::from_secs(10))
    }

    /// SIGKILL and wait for the death to be noticed.
    pub async fn kill(&self) -> Option<ExitInfo> {
        self.kill_group();
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// Stop the process (SIGTERM, SIGKILL after 5 s) and return how it ended.
    pub async fn stop(self) -> Option<ExitInfo> {
        self.signal(libc::SIGTERM);
        if let Some(e) = self.wait_exit(Duration::from_secs(5)).await {
            return Some(e);
        }
        self.kill().await
    }

    /// [`TargetProcess::stop`] for blocking code.
    pub fn stop_blocking(self) -> Option<ExitInfo> {
        self.signal(libc::SIGTERM);
        if let Some(e) = self.wait_exit_blocking(Duration::from_secs(5)) {
            return Some(e);
        }
        self.kill_blocking()
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        // A handle dropped without stop() (an error path, a panic): no orphan.
        self.kill_group();
    }
}

fn pump(r: Box<dyn std::io::Read + Send>, stream: Stream, started: Instant, sh: &Shared) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                let line = LogLine { at: started.elapsed(), stream, text };
                {
                    let mut l = sh.log.lock().unwrap_or_else(|e| e.into_inner());
                    if l.head.len() < HEAD_LINES {
                        l.head.push(line.clone());
                    } else {
                        if l.tail.len() == TAIL_LINES {
                            l.tail.pop_front();
                        }
                        l.tail.push_back(line.clone());
                    }
                }
                let _ = sh.lines.send(line);
            }
        }
    }
}

/// The address in a `… <what> server listening on <addr>` line (`what`: `HTTP`, `WebSocket`),
/// the unspecified address (`0.0.0.0`, `[::]`) read as loopback. Mesher's runtime and the
/// built-in target print these lines, on either stream.
pub fn listening_addr(line: &str, what: &str) -> Option<std::net::SocketAddr> {
    let marker = format!("{what} server listening on ");
    let rest = &line[line.find(&marker)? + marker.len()..];
    let mut a: std::net::SocketAddr = rest.split_whitespace().next()?.parse().ok()?;
    if a.ip().is_unspecified() {
        a.set_ip(match a.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        let a = |l: &str, w: &str| listening_addr(l, w).map(|a| a.to_string());
        assert_eq!(a("[mesh-rt] HTTP server listening on 0.0.0.0:8080", "HTTP").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(
            a("[mesh-rt] WebSocket server listening on 127.0.0.1:4555", "WebSocket").as_deref(),
            Some("127.0.0.1:4555")
        );
        assert_eq!(a("[mesh-rt] HTTP server listening on [::]:9", "HTTP").as_deref(), Some("[::1]:9"));
        assert_eq!(a("[Mesher] HTTP server starting on :8080", "HTTP"), None);
        assert_eq!(a("[mesh-rt] WebSocket server listening on 0.0.0.0:8081", "HTTP"), None);
    }

    #[test]
    fn spawned_from_any_thread_and_seen_to_die() {
        let cmd = TargetCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo ready; echo oops >&2; kill -SEGV $$".into()],
            ..TargetCommand::default()
        };
        let p = std::thread::spawn(move || TargetProcess::spawn(&cmd).unwrap()).join().unwrap();
        let e = p.wait_exit_blocking(Duration::from_secs(10)).expect("death noticed");
        assert_eq!(e.signal_name.as_deref(), Some("SIGSEGV"));
        assert_eq!(e.death().key(), "SIGSEGV");
        let text: Vec<String> = p.lines().into_iter().map(|l| l.text).collect();
        assert!(text.contains(&"ready".to_string()) && text.contains(&"oops".to_string()), "{text:?}");
    }

    #[test]
    fn stop_blocking_ends_a_live_process() {
        let cmd = TargetCommand { program: "sleep".into(), args: vec!["30".into()], ..TargetCommand::default() };
        let p = TargetProcess::spawn(&cmd).unwrap();
        assert!(p.exited().is_none());
        let e = p.stop_blocking().expect("stopped");
        assert_eq!(e.signal, Some(libc::SIGTERM));
    }
}
