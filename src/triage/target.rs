//! Targets for triage: a [`TargetFactory`] starts a fresh target and returns a [`TargetHandle`]
//! that knows its addresses and reports its death the moment it happens.
//!
//! The one implementation that starts processes is the watch stage's [`Launch`] (the same
//! spawner, readiness gate, startup retries and death detector as the run's own target), so
//! triage against a real Mesher on its fixed ports restarts it exactly as a load phase does.
//! [`CommandFactory`] is a builder for a `Launch` of any command (a real Mesher, `mesher-stress
//! target --fault ...`, a test server); [`UrlTarget`] is a server someone else runs.

use super::Death;
use super::exec::Addrs;
use crate::watch::TargetCommand;
use crate::watch::launch::{Incarnation, Launch, Ports};
use anyhow::Result;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

/// Lines of output a handle gives back.
const TAIL: usize = 2000;

impl TargetHandle for Incarnation {
    fn addrs(&self) -> Addrs {
        self.addrs
    }
    fn death(&self) -> Option<Death> {
        self.process.exited().map(|e| e.death())
    }
    fn wait_death(&self, within: Duration) -> Option<Death> {
        self.process.wait_exit_blocking(within).map(|e| e.death())
    }
    fn kill(&mut self) {
        self.process.kill_blocking();
    }
    fn log_tail(&self) -> Vec<String> {
        self.process.log_tail(TAIL).into_iter().map(|l| l.text).collect()
    }
    fn pid(&self) -> Option<u32> {
        Some(self.process.pid())
    }
}

impl TargetFactory for Launch {
    fn start(&self) -> Result<Box<dyn TargetHandle>> {
        let stop = crate::signals::was_interrupted;
        Ok(Box::new(Launch::start(self, &stop)?))
    }
    fn describe(&self) -> String {
        Launch::describe(self)
    }
    fn under_gdb(&self) -> Option<Box<dyn TargetFactory>> {
        Launch::under_gdb(self).map(|l| Box::new(l) as Box<dyn TargetFactory>)
    }
}

/// A [`Launch`] of any command, built field by field (tests, `--target-cmd`).
#[derive(Debug, Clone)]
pub struct CommandFactory {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Fixed HTTP address; None = read it from the "HTTP server listening on" line.
    pub http: Option<SocketAddr>,
    /// Fixed WS address (with a fixed HTTP address).
    pub ws: Option<SocketAddr>,
    pub ready_timeout: Duration,
    /// Shared with every launch it makes (see [`Launch::ws_silent`]).
    ws_silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
            ws_silent: Default::default(),
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.to_string(), v.to_string());
        self
    }

    /// The launch it describes (readiness: any answer to `GET /`).
    pub fn launch(&self) -> Launch {
        let cmd = TargetCommand {
            program: self.program.clone().into(),
            args: self.args.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
        };
        let ports = match self.http {
            Some(http) => Ports::Fixed { http, ws: self.ws },
            None => Ports::Announced,
        };
        let mut l = Launch::new(cmd, ports, super::oracle::default_probe());
        l.readiness.timeout = self.ready_timeout;
        l.ws_silent = self.ws_silent.clone();
        l
    }
}

impl TargetFactory for CommandFactory {
    fn start(&self) -> Result<Box<dyn TargetHandle>> {
        TargetFactory::start(&self.launch())
    }
    fn describe(&self) -> String {
        self.launch().describe()
    }
    fn under_gdb(&self) -> Option<Box<dyn TargetFactory>> {
        TargetFactory::under_gdb(&self.launch())
    }
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
