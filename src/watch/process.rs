//! Spawning and supervising a target process: log capture, startup lines, exit classification.
//!
//! The child runs in its own process group (a terminal's Ctrl-C reaches us, and we stop it in
//! order) and gets `PR_SET_PDEATHSIG(SIGKILL)`, so it never outlives a `kill -9` of the tool.
//! Its stdout and stderr are read line by line into a bounded buffer and a broadcast channel;
//! its death is noticed at once through tokio's child reaper (no polling).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{broadcast, watch};

/// How to start a target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

impl TargetCommand {
    /// The built-in target: `<exe> target --http-port 0 --ws-port 0 --database-url URL
    /// [--keep-alive] [--fault F]...` (free ports, discovered from its startup lines).
    pub fn builtin(exe: PathBuf, database_url: &str, faults: &[String], keep_alive: bool, ports: (u16, u16)) -> Self {
        let mut args = vec![
            "target".to_string(),
            "--http-port".into(),
            ports.0.to_string(),
            "--ws-port".into(),
            ports.1.to_string(),
            "--database-url".into(),
            database_url.to_string(),
        ];
        if keep_alive {
            args.push("--keep-alive".into());
        }
        for f in faults {
            args.push("--fault".into());
            args.push(f.clone());
        }
        TargetCommand { program: exe, args, env: BTreeMap::new(), cwd: None }
    }

    /// The command line as one shell-quoted string (for reports and reproducers).
    pub fn display(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .map(|a| crate::watch::shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ")
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

    /// Died by a signal other than the ones we use to stop it (SIGTERM, SIGINT, SIGKILL).
    pub fn is_crash(&self) -> bool {
        match self.signal {
            Some(s) => !matches!(s, libc::SIGTERM | libc::SIGINT | libc::SIGKILL),
            None => false,
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

/// `SIGSEGV` for 11, etc.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("SIG{sig}"),
    };
    name.to_string()
}

struct LogBuffer {
    /// The first lines, kept whole (startup checks read them).
    head: Vec<LogLine>,
    /// The most recent lines.
    tail: VecDeque<LogLine>,
}

const HEAD_LINES: usize = 200;
const TAIL_LINES: usize = 500;

/// A running (or dead) target process.
pub struct TargetProcess {
    pid: u32,
    started: Instant,
    pub started_at: SystemTime,
    log: Arc<Mutex<LogBuffer>>,
    lines: broadcast::Sender<LogLine>,
    exit: watch::Receiver<Option<ExitInfo>>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
}

/// See [`TargetProcess::log_handle`].
#[derive(Clone)]
pub struct LogHandle(Arc<Mutex<LogBuffer>>);

impl LogHandle {
    /// The first and the latest lines of output.
    pub fn lines(&self) -> Vec<LogLine> {
        let log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = log.head.clone();
        v.extend(log.tail.iter().cloned());
        v
    }
}

impl TargetProcess {
    /// Spawn `cmd` with captured output. Call from a tokio worker thread (not `spawn_blocking`):
    /// the child is told to die when the thread that spawned it exits.
    pub fn spawn(cmd: &TargetCommand) -> Result<TargetProcess> {
        let mut c = tokio::process::Command::new(&cmd.program);
        c.args(&cmd.args)
            .envs(&cmd.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(dir) = &cmd.cwd {
            c.current_dir(dir);
        }
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = c.spawn().with_context(|| format!("cannot start target `{}`", cmd.display()))?;
        let pid = child.id().unwrap_or(0);
        let started = Instant::now();
        let log = Arc::new(Mutex::new(LogBuffer { head: Vec::new(), tail: VecDeque::new() }));
        let (lines, _) = broadcast::channel(1024);
        let out_done = pump(child.stdout.take().expect("piped"), Stream::Stdout, started, log.clone(), lines.clone());
        let err_done = pump(child.stderr.take().expect("piped"), Stream::Stderr, started, log.clone(), lines.clone());
        let (exit_tx, exit) = watch::channel(None);
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = kill_rx => {
                    // Graceful: SIGTERM, then SIGKILL after 5 s.
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                        Ok(s) => s,
                        Err(_) => {
                            let _ = child.start_kill();
                            child.wait().await
                        }
                    }
                }
            };
            // Let the pumps drain the last lines (the crash message) before announcing death.
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                let _ = out_done.await;
                let _ = err_done.await;
            })
            .await;
            let info = match status {
                Ok(s) => ExitInfo::from_status(s, started.elapsed()),
                Err(_) => ExitInfo {
                    code: None,
                    signal: None,
                    signal_name: None,
                    shell_code: -1,
                    core_dumped: false,
                    after: started.elapsed(),
                },
            };
            let _ = exit_tx.send(Some(info));
        });
        Ok(TargetProcess { pid, started, started_at: SystemTime::now(), log, lines, exit, kill: Some(kill_tx) })
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
        self.exit.borrow().clone()
    }

    /// Wait for the process to end (at most `timeout`).
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitInfo> {
        let mut rx = self.exit.clone();
        let r = tokio::time::timeout(timeout, rx.wait_for(|e| e.is_some())).await;
        match r {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        }
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
        LogHandle(self.log.clone())
    }

    /// The last `n` lines.
    pub fn log_tail(&self, n: usize) -> Vec<LogLine> {
        let all = self.lines();
        all[all.len().saturating_sub(n)..].to_vec()
    }

    /// Wait until a line satisfying `pred` appears (already seen lines count), the process dies,
    /// or `timeout` passes.
    pub async fn wait_for_line(&self, pred: impl Fn(&LogLine) -> bool, timeout: Duration) -> Option<LogLine> {
        let mut rx = self.lines.subscribe();
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
                    // Give the pumps' last lines a chance.
                    return self.lines().into_iter().find(|l| pred(l));
                }
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// Subscribe to new lines.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.lines.subscribe()
    }

    /// Stop the process (SIGTERM, SIGKILL after 5 s) and return how it ended.
    pub async fn stop(mut self) -> Option<ExitInfo> {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        self.wait_exit(Duration::from_secs(10)).await
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            // SAFETY: signalling our own child; kill_on_drop then reaps it.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

fn pump<R: AsyncRead + Unpin + Send + 'static>(
    r: R,
    stream: Stream,
    started: Instant,
    log: Arc<Mutex<LogBuffer>>,
    tx: broadcast::Sender<LogLine>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                    let line = LogLine { at: started.elapsed(), stream, text };
                    {
                        let mut l = log.lock().expect("log lock");
                        if l.head.len() < HEAD_LINES {
                            l.head.push(line.clone());
                        } else {
                            if l.tail.len() == TAIL_LINES {
                                l.tail.pop_front();
                            }
                            l.tail.push_back(line.clone());
                        }
                    }
                    let _ = tx.send(line);
                }
            }
        }
    })
}

/// The address in a `… listening on <addr>` line (`0.0.0.0:8080`, `127.0.0.1:41234`).
pub fn listening_addr(line: &str) -> Option<std::net::SocketAddr> {
    let rest = line.split(" listening on ").nth(1)?;
    rest.trim().parse().ok()
}
