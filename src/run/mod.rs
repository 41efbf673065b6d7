//! `mesher-stress run PROFILE`: the main job.
//!
//! 1. Read and validate the profile, make the run directory.
//! 2. The database: a throwaway cluster or a URL; schema and fixtures as the profile says.
//! 3. The target ([`target`]): started behind its readiness gate (built-in or command), or a
//!    running URL (loopback rule); watched for the whole run, restarted between phases when it
//!    died or hung.
//! 4. The phases, in order ([`phases`]); the run directory is checkpointed every
//!    `checkpoint_every` and after each phase (`crate::checkpoint`). Load phases ([`load`]) survive deaths and hangs and
//!    triage them ([`triage`]); the fuzz phase borrows the target.
//! 5. With `--baseline`: compare the load phases with the baseline run (`crate::report::compare`);
//!    a regression fails the verdict.
//! 6. Write `report.json` (atomically, also after Ctrl-C) and exit with the verdict (`crate::exit`);
//!    when crashes were found, the bucket table comes first.

mod load;
mod phases;
pub mod target;
mod triage;

pub use target::{Database, Target, setup_database};

use crate::db;
use crate::exit;
use crate::profile::Profile;
use crate::report::{RunPhase, RunReport};
use crate::util::flags::Global;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The profile (TOML), e.g. profiles/smoke.toml. Its schema: profiles/README.md.
    pub profile: PathBuf,
    /// Compare the load phases with a previous run (its report.json, or its run directory):
    /// per route throughput, p50 and p99 over the per-interval figures; a regression fails the
    /// run (exit 1). Settings: the profile's [baseline] table.
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
}

/// How long past `max_duration` a run may take to stop gracefully (stop the phase, tear down
/// the target and the database, write the report) before the process ends anyway.
pub const HARD_GRACE: Duration = Duration::from_secs(30);

/// What every phase of a run reads.
pub(crate) struct Env<'a> {
    pub profile: &'a Profile,
    pub g: &'a Global,
    pub say: &'a dyn Fn(String),
    pub run_dir: &'a Path,
    pub database: &'a Database,
    pub seed: u64,
    /// The run's stop signal (Ctrl-C, `max_duration`).
    pub stop: tokio::sync::watch::Receiver<bool>,
}

pub async fn main(args: RunArgs, g: &Global) -> Result<u8> {
    // Catch Ctrl-C from the very start (also while PostgreSQL is starting).
    let interrupted = crate::signals::interrupted();
    let mut profile = Profile::load(&args.profile)?;
    if g.seed.is_some() {
        profile.seed = g.seed;
    }
    let seed = profile.seed.unwrap_or_else(rand::random);
    // The baseline is read before anything starts: a bad path is a usage error.
    let baseline = match args.baseline.as_deref().map(crate::report::compare::read_report).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: --baseline: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let run_dir = run_dir(&profile, g)?;
    // Progress goes to stderr; a closed stderr (a reader that went away) must not stop the run.
    let say = |s: String| {
        if !g.quiet && !g.json {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{s}");
        }
    };
    say(format!(
        "mesher-stress {} · profile {} · seed {seed} · run directory {}",
        env!("CARGO_PKG_VERSION"),
        profile.name,
        run_dir.display()
    ));

    let started = Instant::now();
    let started_at = SystemTime::now();
    let deadline = tokio::time::Instant::now() + profile.max_duration;
    // max_duration bounds the whole process: the run stops by itself at it (the graceful way,
    // below); should anything not let go, the process ends HARD_GRACE later all the same.
    let bounded = crate::signals::hard_bound(
        started + profile.max_duration,
        HARD_GRACE,
        exit::TOOL_ERROR,
        format!(
            "the run did not stop within {} of max_duration ({}): exiting; the last checkpoint is in {}",
            humantime::format_duration(HARD_GRACE),
            humantime::format_duration(profile.max_duration),
            run_dir.join("report.json").display()
        ),
    );
    let mut report = RunReport::new(&profile.name, &profile.source, seed, started_at);
    let stop = StopSignal::raise_on(interrupted, deadline);
    let mut env: Option<(Database, Target)> = None;
    let outcome = run_profile(&profile, g, &say, &mut report, &mut env, stop.rx.clone(), &run_dir).await;
    stop.task.abort();
    report.interrupted = crate::signals::was_interrupted();
    if report.interrupted {
        say("interrupted: stopping the target and the database, writing the report".into());
    } else if stop.timed_out.load(Ordering::SeqCst) {
        say(format!("max_duration {} reached: stopped", humantime::format_duration(profile.max_duration)));
    }
    if let Some((database, target)) = env.take() {
        tear_down(database, target, &mut report, &run_dir).await;
    }
    if let (Some((path, base)), Ok(())) = (&baseline, &outcome) {
        let c = crate::report::compare::compare(base, path, &report, &profile.baseline);
        if !g.quiet && !g.json {
            let _ = c.print_table(&mut std::io::stdout());
        }
        report.verdict.failed |= c.regressed();
        report.baseline = Some(c);
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    let code = conclude(&mut report, &outcome);
    let written = crate::report::write_all(&run_dir, &report);
    bounded.store(true, Ordering::SeqCst);
    written?;
    if let Err(e) = outcome {
        return Err(e.context(format!("run aborted; partial report in {}", run_dir.join("report.json").display())));
    }
    print_end(&report, code, g, &run_dir)?;
    Ok(code)
}

/// The run's one stop signal: Ctrl-C and the profile's time bound raise it; set-up steps are
/// abandoned, a running load phase ends early and reports what it measured; the report is
/// written whatever happens.
struct StopSignal {
    rx: tokio::sync::watch::Receiver<bool>,
    /// Raised by the time bound (not by Ctrl-C).
    timed_out: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StopSignal {
    fn raise_on(interrupted: impl Future<Output = ()> + Send + 'static, deadline: tokio::time::Instant) -> StopSignal {
        let (stop_tx, rx) = tokio::sync::watch::channel(false);
        let timed_out = Arc::new(AtomicBool::new(false));
        let timed_out2 = timed_out.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = interrupted => {}
                _ = tokio::time::sleep_until(deadline) => timed_out2.store(true, Ordering::SeqCst),
            }
            let _ = stop_tx.send(true);
        });
        StopSignal { rx, timed_out, task }
    }
}

/// Tear down in order: the target (its last death recorded, its log saved), then the database.
async fn tear_down(database: Database, mut target: Target, report: &mut RunReport, run_dir: &Path) {
    let log = target.sup.lines();
    if let Some(e) = target.sup.process().and_then(|p| p.exited()).filter(|e| e.is_crash())
        && !report.crashes.contains(&e)
    {
        report.crashes.push(e);
    }
    // Interrupted: the user wants out; a hung target gets SIGKILL after a second.
    let grace = if crate::signals::was_interrupted() { Duration::from_secs(1) } else { Duration::from_secs(5) };
    target.sup.stop_within(grace).await;
    if !log.is_empty() {
        crate::watch::process::write_log(&run_dir.join("target.log"), &log);
    }
    database.pool.close().await;
    drop(database.cluster);
}

/// The run's buckets and verdict; its exit code.
fn conclude(report: &mut RunReport, outcome: &Result<()>) -> u8 {
    report.buckets = crate::report::run_buckets(report);
    report.verdict.failed |= report.phases.iter().any(RunPhase::failed);
    report.verdict.crashed = report.found_crashes();
    let code = match outcome {
        Err(_) => exit::TOOL_ERROR,
        Ok(()) if report.interrupted => exit::INTERRUPTED,
        Ok(()) => exit::verdict(report.verdict.failed, report.verdict.crashed),
    };
    report.verdict.exit_code = code;
    code
}

/// On stdout: the report itself (`--json`), or the summary and the verdict line.
fn print_end(report: &RunReport, code: u8, g: &Global, run_dir: &Path) -> Result<()> {
    if g.json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    if !g.quiet {
        print_summary(report);
    }
    let verdict = match code {
        exit::SUCCESS => "PASS".to_string(),
        exit::FAILED => "FAIL".to_string(),
        exit::CRASHED => "CRASHED (the target died or hung; all checks passed)".to_string(),
        exit::FAILED_AND_CRASHED => "FAIL and CRASHED".to_string(),
        exit::INTERRUPTED => "INTERRUPTED".to_string(),
        c => format!("exit {c}"),
    };
    println!("{verdict} · {} · report {}", report.profile, run_dir.join("report.json").display());
    Ok(())
}

/// At the end of the run: the crash buckets first (in a hunt, what the user came for), then the
/// load phases' outages and soak findings.
fn print_summary(report: &RunReport) {
    if !report.buckets.is_empty() {
        print!("{}", crate::report::format_buckets(&report.buckets));
    }
    for h in &report.hangs {
        println!("HANG     {h}");
    }
    for p in &report.phases {
        let RunPhase::Load(l) = p else { continue };
        if !l.outages.is_empty() {
            let stalls = l.outages.iter().filter(|o| o.cause == crate::report::load::OutageCause::Stall).count();
            println!(
                "OUTAGES  {:<14} {} stall(s), {} death(s), {} restart(s), {:.2} s without answers",
                l.name,
                stalls,
                l.outages.len() - stalls,
                l.restarts,
                l.outages.iter().map(|o| o.seconds()).sum::<f64>()
            );
        }
        for f in l.soak.iter().flat_map(|s| &s.findings) {
            println!("{:<8} {:<14} {:<14} {}", if f.flagged { "FLAGGED" } else { "ok" }, l.name, f.kind, f.summary);
        }
    }
}

/// Resolves when the run's stop signal is raised (never, if its sender is gone without it).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run_profile(
    profile: &Profile,
    g: &Global,
    say: &dyn Fn(String),
    report: &mut RunReport,
    env: &mut Option<(Database, Target)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    run_dir: &Path,
) -> Result<()> {
    // The loopback rule first, before anything is started.
    if let crate::profile::TargetSpec::Url { http, ws } = &profile.target {
        crate::safety::check_target(http, g.allow_remote)?;
        crate::safety::check_target(ws, g.allow_remote)?;
    }
    if let crate::profile::TargetSpec::Command { http, ws, .. } = &profile.target {
        for u in [http, ws].into_iter().flatten() {
            crate::safety::check_target(u, g.allow_remote)?;
        }
    }
    let database = tokio::select! {
        d = setup_database(profile) => d?,
        _ = stopped(&mut stop) => return Ok(()),
    };
    match database.cluster.as_ref().and_then(|c| c.pid()) {
        Some(pid) => say(format!("database: {} (throwaway cluster, postgres pid {pid})", db::redact(&database.url))),
        None => say(format!("database: {}", db::redact(&database.url))),
    }
    report.database = db::redact(&database.url);
    let started = tokio::select! {
        t = target::start_target(profile, &database, g) => t,
        _ = stopped(&mut stop) => return Ok(()),
    };
    let target = match started {
        Ok(t) => t,
        Err(e) => {
            // A target that cannot start at all: when it died by a signal every time, that is
            // what the run found (a crash); otherwise a configuration error.
            target::note_cannot_start(report, &e);
            if report.crashes.is_empty() {
                return Err(e);
            }
            say(format!("{e:#}"));
            report.verdict.failed = true;
            report.target = profile.target_description();
            return Ok(());
        }
    };
    let a = target.addrs();
    let mut pid = target.sup.process().map(|p| format!(", pid {}", p.pid())).unwrap_or_default();
    if target.sup.last_attempts() > 1 {
        pid.push_str(&format!(", ready after {} attempts", target.sup.last_attempts()));
    }
    say(format!(
        "target: {} (HTTP {}, WebSocket {}{pid})",
        target.description,
        a.http,
        a.ws.map(|w| w.to_string()).unwrap_or_else(|| "none".into())
    ));
    report.target = target.description.clone();
    *env = Some((database, target));
    let (database, target) = env.as_mut().expect("just set");
    let mut ck = crate::checkpoint::Checkpointer::new(
        run_dir.to_path_buf(),
        profile.checkpoint_every,
        // The run's start (to the second: `report.started`), for the checkpoints' elapsed_ms.
        humantime::parse_rfc3339(&report.started)
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .and_then(|d| Instant::now().checked_sub(d))
            .unwrap_or_else(Instant::now),
        target.sup.telemetry(),
    );
    let e = Env { profile, g, say, run_dir, database, seed: report.seed, stop: stop.clone() };
    let r = phases::run_phases(&e, report, target, &mut ck).await;
    report.telemetry = target.sup.telemetry().lock().unwrap_or_else(|e| e.into_inner()).clone();
    r
}

/// `--out`, or `<output.dir>/<name>-<UTC timestamp>`; created, must be writable.
fn run_dir(profile: &Profile, g: &Global) -> Result<PathBuf> {
    let dir = match &g.out {
        Some(d) => d.clone(),
        None => {
            let ts = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace([':', '-'], "");
            profile.output.dir.join(format!("{}-{}", profile.name, ts.trim_end_matches('Z')))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create run directory {}", dir.display()))?;
    let copy = dir.join("profile.toml");
    if let Ok(text) = std::fs::read(&profile.source) {
        crate::util::fs::write_atomic(&copy, &text)?;
    }
    Ok(dir)
}
