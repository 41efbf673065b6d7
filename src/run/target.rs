//! The run's database and target: set up, start, keep alive between phases, tear down.
//!
//! The target is a [`Supervisor`] over the profile's [`Launch`] (built-in and command targets)
//! or an attached server (`kind = "url"`). Between phases a dead or hung target is recorded and
//! started again behind the readiness gate, so one crash does not end an unattended run; only a
//! target that cannot start (every attempt of the startup policy failed, without traffic) skips
//! the remaining phases.

use super::Env;
use crate::checks;
use crate::db;
use crate::profile::{Profile, TargetSpec};
use crate::report::RunReport;
use crate::watch::launch::CannotStart;
use crate::watch::supervisor::{SuperviseOptions, Supervisor};
use crate::wire::blocking::{self, Addrs};
use anyhow::{Result, bail};
use std::path::Path;
use std::time::{Duration, Instant};

pub use crate::db::Database;

/// The run's target over its life.
pub struct Target {
    pub sup: Supervisor,
    pub description: String,
    /// Output files of dead incarnations written so far (`target-<n>.log`).
    pub logs: usize,
    /// The target could not be started again: the remaining phases are skipped.
    pub lost: Option<String>,
}

impl Target {
    pub fn addrs(&self) -> Addrs {
        self.sup.addrs()
    }

    /// Write the current incarnation's output as the next `target-<n>.log`; its name.
    pub fn save_log(&mut self, run_dir: &Path) -> String {
        self.logs += 1;
        let name = format!("target-{}.log", self.logs);
        crate::watch::process::write_log(&run_dir.join(&name), &self.sup.lines());
        name
    }
}

/// The run's database: a throwaway cluster unless the profile names a URL.
pub async fn setup_database(profile: &Profile) -> Result<Database> {
    db::setup(&profile.database, &profile.fixtures).await
}

/// Start the target behind its readiness gate (or attach to a running one).
pub async fn start_target(profile: &Profile, database: &Database, g: &crate::util::flags::Global) -> Result<Target> {
    let opts = SuperviseOptions { hang: profile.watchdog.hang_policy(), ..SuperviseOptions::default() };
    match profile.launch(&database.url, &database.fixtures)? {
        Some(launch) => {
            if let TargetSpec::Command { http: Some(http), ws, .. } = &profile.target {
                crate::safety::check_target(http, g.allow_remote)?;
                if let Some(ws) = ws {
                    crate::safety::check_target(ws, g.allow_remote)?;
                }
            }
            let description = match &profile.target {
                TargetSpec::Builtin { faults, .. } if faults.is_empty() => "built-in target".to_string(),
                TargetSpec::Builtin { faults, .. } => format!("built-in target with faults {}", faults.join(", ")),
                _ => launch.command.display(),
            };
            let sup = Supervisor::start(launch, opts).await?;
            Ok(Target { sup, description, logs: 0, lost: None })
        }
        None => {
            let TargetSpec::Url { http, ws } = &profile.target else { unreachable!("only url targets have no launch") };
            crate::safety::check_target(http, g.allow_remote)?;
            crate::safety::check_target(ws, g.allow_remote)?;
            let addrs = Addrs { http: crate::safety::socket_addr(http)?, ws: Some(crate::safety::socket_addr(ws)?) };
            wait_port(addrs.http, Duration::from_secs(3))
                .await
                .map_err(|e| anyhow::anyhow!("target {http} is unreachable: is the server running? ({e})"))?;
            Ok(Target {
                sup: Supervisor::attach(addrs, opts),
                description: format!("{http} / {ws}"),
                logs: 0,
                lost: None,
            })
        }
    }
}

/// After a phase, before the next one: a dead target is recorded and started again; a live one
/// that does not answer the probe is hung, killed (with the watchdog's first signal) and
/// started again. A target that cannot start marks the run's target as lost.
pub(crate) async fn settle(env: &Env<'_>, report: &mut RunReport, target: &mut Target, next: Option<usize>) {
    if !target.sup.restartable() || target.lost.is_some() {
        return;
    }
    let mut why: Option<String> = None;
    match target.sup.process().map(|p| p.exited()) {
        Some(Some(e)) => {
            if !report.crashes.contains(&e) && e.is_crash() {
                report.crashes.push(e.clone());
            }
            let log = target.save_log(env.run_dir);
            why = Some(format!("the target {} (its output: {log})", e.describe()));
        }
        Some(None) if next.is_some() => {
            // Alive: does it answer?
            let probe = env.profile.watchdog.probe(&env.database.fixtures);
            let (addrs, t) = (target.addrs(), env.profile.watchdog.hang_probe_timeout);
            let answered = tokio::task::spawn_blocking(move || blocking::send(&probe, &addrs, t).answered())
                .await
                .unwrap_or(false);
            if !answered && target.sup.process().is_some_and(|p| p.exited().is_none()) {
                let exit = target.sup.kill_hung().await;
                let log = target.save_log(env.run_dir);
                report.hangs.push(format!(
                    "after phase {}: the readiness probe was not answered within {:?}; killed{} (its output: {log})",
                    next.unwrap_or(1) - 1,
                    t,
                    exit.map(|e| format!(", it {}", e.describe())).unwrap_or_default()
                ));
                why = Some("the target hung".into());
            }
        }
        // Lent to a phase (fuzz, triage) and not back yet, or never restarted.
        None => why = Some("the target is not running".into()),
        Some(None) => {}
    }
    let (Some(why), Some(next)) = (why, next) else { return };
    (env.say)(format!("{why}: starting it again for phase {next}"));
    let stop = env.stop.clone();
    let stopped = move || *stop.borrow();
    if let Err(e) = target.sup.restart(&stopped).await {
        note_cannot_start(report, &e);
        (env.say)(format!("{e:#}"));
        target.lost = Some(format!("{e:#}"));
    }
}

/// A target that could not start: its last death is a crash of the run.
pub fn note_cannot_start(report: &mut RunReport, e: &anyhow::Error) {
    if let Some(c) = e.downcast_ref::<CannotStart>()
        && let Some(exit) = c.last_exit()
        && exit.is_crash()
        && !report.crashes.contains(exit)
    {
        report.crashes.push(exit.clone());
    }
}

/// The startup lines the `startup` check expects.
pub fn startup_lines(spec: &TargetSpec) -> Vec<String> {
    match spec {
        TargetSpec::Command { startup_lines: Some(lines), .. } => lines.clone(),
        _ => checks::MESHER_STARTUP_LINES.iter().map(|s| s.to_string()).collect(),
    }
}

async fn wait_port(addr: std::net::SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
