//! `mesher-stress run PROFILE`: the main job.
//!
//! 1. Read and validate the profile, make the run directory.
//! 2. The database: a throwaway cluster or a URL; schema and fixtures as the profile says.
//! 3. The target: spawn the built-in one or a command, or use a running URL (loopback rule).
//! 4. The phases, in order; the run directory is checkpointed every `checkpoint_every` and after
//!    each phase (`crate::checkpoint`).
//! 5. With `--baseline`: compare the load phases with the baseline run (`crate::report::compare`);
//!    a regression fails the verdict.
//! 6. Write `report.json` (atomically, also after Ctrl-C) and exit with the verdict (`crate::exit`).

use crate::checks::{self, Status};
use crate::cli::Global;
use crate::db::{self, Cluster, Fixtures};
use crate::exit;
use crate::profile::{Phase, Profile, TargetSpec};
use crate::report::{RunPhase, RunReport, Verdict};
use crate::watch::{LogLine, TargetCommand, TargetProcess, process::listening_addr};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// Where the target listens, and its process when we spawned it.
pub struct Target {
    pub http: SocketAddr,
    pub ws: SocketAddr,
    /// The current incarnation (None after a restart failed).
    pub process: Option<TargetProcess>,
    pub description: String,
    /// How to start a new incarnation on the same addresses (spawned targets).
    pub command: Option<TargetCommand>,
    /// The /proc samples of every incarnation, one series with time zero `origin`.
    pub telemetry: std::sync::Arc<std::sync::Mutex<Vec<crate::watch::sampler::ProcSample>>>,
    pub origin: Instant,
    sampler: Option<crate::watch::sampler::Sampler>,
}

impl Target {
    fn new(
        http: SocketAddr,
        ws: SocketAddr,
        process: Option<TargetProcess>,
        description: String,
        command: Option<TargetCommand>,
    ) -> Target {
        Target {
            http,
            ws,
            process,
            description,
            command,
            telemetry: Default::default(),
            origin: Instant::now(),
            sampler: None,
        }
    }

    /// Sample the current process's /proc once a second into `telemetry`.
    fn start_sampling(&mut self) {
        self.origin = Instant::now();
        self.sampler = self.process.as_ref().map(|p| {
            crate::watch::sampler::Sampler::spawn(p.pid(), Duration::from_secs(1), self.origin, self.telemetry.clone())
        });
    }

    /// The target was spawned, but a restart failed: nothing to test any more.
    fn lost(&self) -> bool {
        self.process.is_none() && self.command.is_some()
    }
}

/// The database of a run (kept alive for the run's duration).
pub struct Database {
    pub url: String,
    pub pool: sqlx::PgPool,
    pub fixtures: Fixtures,
    /// The throwaway cluster, stopped when dropped.
    pub cluster: Option<Cluster>,
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
    let baseline = match &args.baseline {
        Some(p) => match crate::report::compare::read_report(p) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("error: --baseline: {e:#}");
                return Ok(exit::USAGE);
            }
        },
        None => None,
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
    let mut report = RunReport {
        tool: "mesher-stress".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        profile: profile.name.clone(),
        profile_file: profile.source.clone(),
        seed,
        started: humantime::format_rfc3339_seconds(started_at).to_string(),
        elapsed_ms: 0,
        target: String::new(),
        database: String::new(),
        phases: Vec::new(),
        crashes: Vec::new(),
        telemetry: Vec::new(),
        baseline: None,
        interrupted: false,
        partial: false,
        checkpoint: None,
        verdict: Verdict { failed: false, crashed: false, exit_code: 0 },
    };

    // Ctrl-C and the profile's time bound raise one stop signal: set-up steps are abandoned,
    // a running load phase ends early and reports what it measured; the report is written
    // whatever happens.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timed_out2 = timed_out.clone();
    let stopper = tokio::spawn(async move {
        tokio::select! {
            _ = interrupted => {}
            _ = tokio::time::sleep_until(deadline) => timed_out2.store(true, std::sync::atomic::Ordering::SeqCst),
        }
        let _ = stop_tx.send(true);
    });
    let mut env: Option<(Database, Target)> = None;
    let outcome = run_profile(&profile, g, &say, &mut report, &mut env, stop_rx, &run_dir).await;
    stopper.abort();
    report.interrupted = crate::signals::was_interrupted();
    if report.interrupted {
        say("interrupted: stopping the target and the database, writing the report".into());
    } else if timed_out.load(std::sync::atomic::Ordering::SeqCst) {
        say(format!("max_duration {} reached: stopped", humantime::format_duration(profile.max_duration)));
    }

    // Tear down in order: the target, then the database.
    if let Some((database, target)) = env.take() {
        if let Some(p) = target.process {
            let log = p.lines();
            if let Some(e) = p.exited().filter(|e| e.is_crash() && !report.crashes.contains(e)) {
                report.crashes.push(e);
            }
            let _ = p.stop().await;
            write_log(&run_dir.join("target.log"), &log);
        }
        database.pool.close().await;
        drop(database.cluster);
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
    report.verdict.failed |= report.phases.iter().any(RunPhase::failed);
    report.verdict.crashed = !report.crashes.is_empty();
    let code = match &outcome {
        Err(_) => exit::TOOL_ERROR,
        Ok(()) if report.interrupted => exit::INTERRUPTED,
        Ok(()) => exit::verdict(report.verdict.failed, report.verdict.crashed),
    };
    report.verdict.exit_code = code;
    crate::report::write_all(&run_dir, &report)?;
    if let Err(e) = outcome {
        return Err(e.context(format!("run aborted; partial report in {}", run_dir.join("report.json").display())));
    }
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        if !g.quiet {
            print_soak_summary(&report);
        }
        let verdict = match code {
            exit::SUCCESS => "PASS".to_string(),
            exit::FAILED => "FAIL".to_string(),
            exit::CRASHED => "CRASHED (target died; all checks passed)".to_string(),
            exit::FAILED_AND_CRASHED => "FAIL and CRASHED".to_string(),
            exit::INTERRUPTED => "INTERRUPTED".to_string(),
            c => format!("exit {c}"),
        };
        println!("{verdict} · {} · report {}", profile.name, run_dir.join("report.json").display());
    }
    Ok(code)
}

/// The load phases' outages and soak findings, once more at the end of the run.
fn print_soak_summary(report: &RunReport) {
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
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
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
    if let TargetSpec::Command { http, ws, .. } | TargetSpec::Url { http, ws } = &profile.target {
        crate::safety::check_target(http, g.allow_remote)?;
        crate::safety::check_target(ws, g.allow_remote)?;
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
    let target = tokio::select! {
        t = start_target(profile, &database, g) => t?,
        _ = stopped(&mut stop) => return Ok(()),
    };
    let pid = target.process.as_ref().map(|p| format!(", pid {}", p.pid())).unwrap_or_default();
    say(format!("target: {} (HTTP {}, WebSocket {}{pid})", target.description, target.http, target.ws));
    report.target = target.description.clone();
    *env = Some((database, target));
    let (database, target) = env.as_mut().expect("just set");
    // The target's health from /proc, once a second, for the whole run (every incarnation).
    target.start_sampling();
    let mut ck = crate::checkpoint::Checkpointer::new(
        run_dir.to_path_buf(),
        profile.checkpoint_every,
        // The run's start (to the second: `report.started`), for the checkpoints' elapsed_ms.
        humantime::parse_rfc3339(&report.started)
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .and_then(|d| Instant::now().checked_sub(d))
            .unwrap_or_else(Instant::now),
        target.telemetry.clone(),
    );
    let r = run_phases(profile, g, say, report, database, target, &mut stop, run_dir, &mut ck).await;
    target.sampler = None;
    report.telemetry = target.telemetry.lock().expect("telemetry lock").clone();
    r
}

#[allow(clippy::too_many_arguments)]
async fn run_phases(
    profile: &Profile,
    g: &Global,
    say: &dyn Fn(String),
    report: &mut RunReport,
    database: &Database,
    target: &mut Target,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    run_dir: &Path,
    ck: &mut crate::checkpoint::Checkpointer,
) -> Result<()> {
    let ledger = std::sync::Arc::new(crate::invariants::Ledger::new());
    let since: String = sqlx::query_scalar("SELECT now()::text").fetch_one(&database.pool).await?;
    for (i, phase) in profile.phases.iter().enumerate() {
        let log = target.process.as_ref().map(|p| p.log_handle());
        if *stop.borrow() {
            break;
        }
        match phase {
            Phase::Checks { checks: which, startup_timeout } => {
                say(format!("phase {}: checks", i + 1));
                let startup_lines = startup_lines(&profile.target);
                let ctx = checks::CheckContext {
                    http: target.http,
                    ws: target.ws,
                    fixtures: &database.fixtures,
                    pool: &database.pool,
                    process: target.process.as_ref(),
                    startup_lines: &startup_lines,
                    startup_timeout: *startup_timeout,
                    request_timeout: Duration::from_secs(10),
                };
                let results = tokio::select! {
                    r = ck.during(report, i + 1, log.as_ref(), checks::run_checks(&ctx, which)) => r,
                    _ = stopped(stop) => break,
                };
                for r in &results {
                    if let Some(c) = &r.crash {
                        report.crashes.push(c.clone());
                    }
                    if !g.quiet && !g.json {
                        let tag = match r.status {
                            Status::Pass => "PASS",
                            Status::Fail => "FAIL",
                            Status::Skip => "SKIP",
                        };
                        println!("{tag} {:<10} {}", r.name.as_str(), r.summary);
                        for e in &r.evidence {
                            println!("       {e}");
                        }
                    }
                }
                report.phases.push(RunPhase::Checks { results });
            }
            Phase::Fuzz(spec) => {
                say(format!("phase {}: fuzz + triage ({})", i + 1, humantime::format_duration(spec.duration)));
                let faults = match &profile.target {
                    TargetSpec::Builtin { faults, .. } => faults.clone(),
                    _ => Vec::new(),
                };
                let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let (flag2, mut stop2) = (flag.clone(), stop.clone());
                let bridge = tokio::spawn(async move {
                    stopped(&mut stop2).await;
                    flag2.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                let fuzz =
                    crate::triage::phase::run(spec, &faults, &database.url, &database.fixtures, report.seed, flag);
                let r = ck.during(report, i + 1, log.as_ref(), fuzz).await;
                bridge.abort();
                let r = r?;
                say(format!(
                    "fuzz: {} inputs, {} deaths, {} buckets in {:.0}s",
                    r.inputs_sent,
                    r.deaths,
                    r.buckets.len(),
                    r.seconds
                ));
                if !g.quiet && !g.json {
                    print!("{}", crate::triage::session::format_table(&r.buckets));
                }
                // One entry per distinct way of dying (the buckets hold the counts).
                let mut kinds: Vec<String> = Vec::new();
                for o in &r.outages {
                    if !kinds.contains(&o.death.key()) {
                        kinds.push(o.death.key());
                        report.crashes.push(o.death.exit_info());
                    }
                }
                report.phases.push(RunPhase::Fuzz(Box::new(r)));
            }
            Phase::Load(load) => {
                say(format!("phase {}: load {:?}", i + 1, load.name));
                let window = ck.window.clone();
                let phase = run_load(load, run_dir, g, say, database, target, &ledger, report.seed, stop, window);
                // (The load phase owns the target meanwhile; checkpoints show the output of the
                // process that started the phase, the phase's restarts leave their own logs.)
                let r = ck.during(report, i + 1, log.as_ref(), phase).await?;
                if !g.quiet && !g.json {
                    let _ = r.print_table(&mut std::io::stdout());
                }
                // Every death the phase's watchdog saw is a crash (also exits and SIGKILLs: the
                // tool stops nothing during a load phase), restarted or not.
                for e in r.outages.iter().filter_map(|o| o.exit.as_ref()) {
                    if !report.crashes.contains(e) {
                        report.crashes.push(e.clone());
                    }
                }
                report.phases.push(RunPhase::Load(Box::new(r)));
                if target.lost() {
                    say("the target could not be restarted: remaining phases skipped".into());
                    report.verdict.failed = true;
                    break;
                }
            }
            Phase::Invariants { flush_wait } => {
                say(format!("phase {}: invariants (nothing lost)", i + 1));
                let t = crate::invariants::CheckTarget {
                    pool: &database.pool,
                    project_id: &database.fixtures.project_id,
                    org_id: &database.fixtures.org_id,
                    http: Some(target.http),
                    since: &since,
                    flush_wait: *flush_wait,
                };
                let results = ck.during(report, i + 1, log.as_ref(), crate::invariants::check(&ledger, &t)).await?;
                if !g.quiet && !g.json {
                    for r in &results {
                        println!("{} {:<20} {}", if r.passed { "PASS" } else { "FAIL" }, r.name, r.summary);
                        for m in &r.missing {
                            println!("       missing: {m}");
                        }
                    }
                }
                report.phases.push(RunPhase::Invariants { results });
            }
        }
        ck.write_or_warn(report, None, target.process.as_ref().map(|p| p.log_handle()).as_ref()).await;
        if let Some(p) = &target.process
            && let Some(e) = p.exited()
        {
            if e.is_crash() && !report.crashes.contains(&e) {
                report.crashes.push(e.clone());
            }
            if i + 1 < profile.phases.len() {
                say(format!("the target {}: remaining phases skipped", e.describe()));
                report.verdict.failed = true;
            }
            break;
        }
    }
    Ok(())
}

fn startup_lines(spec: &TargetSpec) -> Vec<String> {
    match spec {
        TargetSpec::Command { startup_lines: Some(lines), .. } => lines.clone(),
        _ => checks::MESHER_STARTUP_LINES.iter().map(|s| s.to_string()).collect(),
    }
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
        crate::fsutil::write_atomic(&copy, &text)?;
    }
    Ok(dir)
}

/// The run's database: a throwaway cluster unless the profile names a URL.
pub async fn setup_database(profile: &Profile) -> Result<Database> {
    let spec = &profile.database;
    let (url, cluster) = match &spec.url {
        Some(u) => (u.clone(), None),
        None => {
            let c = Cluster::start()?;
            (c.url().to_string(), Some(c))
        }
    };
    let pool = db::connect(&url, 8).await?;
    if spec.schema {
        db::schema::apply(&pool).await?;
    }
    if spec.reset {
        db::schema::reset(&pool).await?;
    }
    let fixtures = if spec.seed {
        db::fixtures::seed(&pool, &profile.fixtures).await?.0
    } else {
        Fixtures::plan(&profile.fixtures)
    };
    Ok(Database { url, pool, fixtures, cluster })
}

/// Start (or locate) the target and wait until it is ready.
pub async fn start_target(profile: &Profile, database: &Database, g: &Global) -> Result<Target> {
    match &profile.target {
        TargetSpec::Builtin { faults, keep_alive, http_port, ws_port } => {
            let exe = std::env::current_exe().context("cannot locate the mesher-stress executable")?;
            let cmd = TargetCommand::builtin(exe, &database.url, faults, *keep_alive, (*http_port, *ws_port));
            let process = TargetProcess::spawn(&cmd)?;
            let timeout = Duration::from_secs(60);
            let http = wait_listening(&process, "[mesh-rt] HTTP server listening on ", timeout).await?;
            let ws = wait_listening(&process, "[mesh-rt] WebSocket server listening on ", timeout).await?;
            let faults_text =
                if faults.is_empty() { String::new() } else { format!(" with faults {}", faults.join(", ")) };
            // A restarted target listens where the first one did.
            let again = TargetCommand::builtin(
                cmd.program.clone(),
                &database.url,
                faults,
                *keep_alive,
                (http.port(), ws.port()),
            );
            Ok(Target::new(http, ws, Some(process), format!("built-in target{faults_text}"), Some(again)))
        }
        TargetSpec::Command { command, env, cwd, http, ws, ready_timeout, .. } => {
            crate::safety::check_target(http, g.allow_remote)?;
            crate::safety::check_target(ws, g.allow_remote)?;
            let cmd = TargetCommand {
                program: PathBuf::from(&command[0]),
                args: command[1..].to_vec(),
                env: env.clone(),
                cwd: cwd.clone(),
            };
            let process = TargetProcess::spawn(&cmd)?;
            let http_addr = resolve(http).await?;
            let ws_addr = resolve(ws).await?;
            wait_port(http_addr, *ready_timeout, Some(&process)).await?;
            let description = cmd.display();
            Ok(Target::new(http_addr, ws_addr, Some(process), description, Some(cmd)))
        }
        TargetSpec::Url { http, ws } => {
            crate::safety::check_target(http, g.allow_remote)?;
            crate::safety::check_target(ws, g.allow_remote)?;
            let http_addr = resolve(http).await?;
            let ws_addr = resolve(ws).await?;
            wait_port(http_addr, Duration::from_secs(3), None)
                .await
                .with_context(|| format!("target {http} is unreachable: is the server running?"))?;
            Ok(Target::new(http_addr, ws_addr, None, format!("{http} / {ws}"), None))
        }
    }
}

async fn wait_listening(p: &TargetProcess, prefix: &str, timeout: Duration) -> Result<SocketAddr> {
    match p.wait_for_line(|l: &LogLine| l.text.starts_with(prefix), timeout).await {
        Some(l) => listening_addr(&l.text).with_context(|| format!("cannot read the address in {:?}", l.text)),
        None => {
            let tail: Vec<String> = p.log_tail(20).into_iter().map(|l| format!("  {}", l.text)).collect();
            let why = match p.exited() {
                Some(e) => format!("the target {}", e.describe()),
                None => format!("no {prefix:?} line within {timeout:?}"),
            };
            bail!("the target did not become ready: {why}\n{}", tail.join("\n"))
        }
    }
}

/// `http://host:port/...` → the first address `host:port` resolves to.
pub async fn resolve(url: &str) -> Result<SocketAddr> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))
}

async fn wait_port(addr: SocketAddr, timeout: Duration, p: Option<&TargetProcess>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(e) = p.and_then(|p| p.exited()) {
            bail!("the target {} before listening on {addr}", e.describe());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn write_log(path: &Path, lines: &[LogLine]) {
    let text: String = lines.iter().map(|l| format!("{:>8} {:?} {}\n", l.at.as_millis(), l.stream, l.text)).collect();
    let _ = crate::fsutil::write_atomic(path, text.as_bytes());
}

/// One load phase: the generators (the phase's mix) feed the driver; answers of stateful routes
/// feed the generators' id pool and the run's ledger; the phase stops early on Ctrl-C or the time
/// bound. A spawned target is watched by a [`Supervisor`](crate::watch::supervisor::Supervisor):
/// its death ends the phase, or with `restart = true` the target is restarted (readiness-gated,
/// same addresses) while the lanes go on, up to `max_restarts` times. Deaths become outages of
/// the phase; stalls come from the driver's detector; soak verdicts are added last.
#[allow(clippy::too_many_arguments)]
async fn run_load(
    load: &crate::drive::LoadPhase,
    run_dir: &Path,
    g: &Global,
    say: &dyn Fn(String),
    database: &Database,
    target: &mut Target,
    ledger: &std::sync::Arc<crate::invariants::Ledger>,
    seed: u64,
    stop: &tokio::sync::watch::Receiver<bool>,
    window: crate::drive::PhaseWindow,
) -> Result<crate::report::PhaseReport> {
    use crate::drive::{FlightEntry, FlightRecorder, PhaseCtx, ProgressMode, TargetAddr};
    use crate::report::load::{Outage, OutageCause};
    use crate::watch::supervisor::{SuperviseOptions, Supervisor, WatchEvent};
    let mix = crate::profile::load_mix(load)?;
    let gen_options = crate::profile::load_gen_options(load)?;
    // Who is a member now (the checks phase and earlier load phases add members).
    let mut fixtures = database.fixtures.clone();
    fixtures.refresh_members(&database.pool).await.context("reading the org's members")?;
    let generator = std::sync::Arc::new(crate::generate::Generator::new(seed, fixtures, mix, gen_options));
    let (ids, ledger) = (generator.ids().clone(), ledger.clone());
    let observer: crate::drive::Observer = std::sync::Arc::new(move |req, status, body| {
        ids.observe(req, status, body);
        ledger.observe(&req.method, &req.target, &req.body, status, body);
    });
    // The phase's own stop (the run's, or a death that is not survived), the end of the phase,
    // and "the target is down" for the lanes.
    let (phase_stop, phase_stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let (state_tx, state_rx) = tokio::sync::watch::channel(crate::drive::TargetState::default());
    let flight = FlightRecorder::new(load.flight_recorder, true);
    let ctx = PhaseCtx {
        out_dir: Some(run_dir.to_path_buf()),
        flight: flight.clone(),
        stop: phase_stop_rx,
        progress: if g.quiet || g.json { ProgressMode::Off } else { ProgressMode::Auto },
        allow_remote: g.allow_remote,
        ws_source: None,
        observer: Some(observer),
        target_state: target.process.is_some().then_some(state_rx),
        window: Some(window),
    };
    let addr = TargetAddr { http: format!("http://{}", target.http), ws: Some(format!("ws://{}", target.ws)) };
    // The watchdog takes the current incarnation for the phase and gives the latest one back.
    let mut sup = match (target.process.take(), &target.command) {
        (Some(p), Some(cmd)) => Some(Supervisor::adopt(
            cmd.clone(),
            SuperviseOptions {
                http: Some(target.http),
                ws: Some(target.ws),
                ready_timeout: load.restart_timeout,
                probe_every: Duration::ZERO,
                ..SuperviseOptions::default()
            },
            p,
            crate::triage::exec::Addrs { http: target.http, ws: Some(target.ws) },
            target.origin,
            target.telemetry.clone(),
        )),
        (p, _) => {
            target.process = p;
            None
        }
    };
    struct Death {
        at: SystemTime,
        exit: crate::watch::ExitInfo,
        ready: Option<SystemTime>,
        error: Option<String>,
        log: String,
        suspects: Vec<FlightEntry>,
    }
    let phase = async {
        let r = crate::drive::run_phase(load, generator, &addr, &ctx).await;
        let _ = done_tx.send(true);
        r
    };
    let bridge = async {
        let (mut run_stop, mut done) = (stop.clone(), done_rx.clone());
        tokio::select! {
            _ = stopped(&mut run_stop) => { let _ = phase_stop.send(true); }
            _ = done.wait_for(|d| *d) => {}
        }
    };
    let watchdog = async {
        let mut deaths: Vec<Death> = Vec::new();
        let Some(sup) = sup.as_mut() else { return deaths };
        let (mut run_stop, mut done) = (stop.clone(), done_rx.clone());
        loop {
            let ev = tokio::select! {
                ev = sup.next_event() => ev,
                _ = done.wait_for(|d| *d) => break,
                _ = stopped(&mut run_stop) => break,
            };
            let Ok(WatchEvent::Died { exit, .. }) = ev else { break };
            let at = SystemTime::now();
            let _ = state_tx.send(crate::drive::TargetState { down: true, died_at: Some(Instant::now()) });
            let suspects: Vec<FlightEntry> =
                flight.suspects(20).into_iter().filter(|e| e.answered_after_us.is_none()).collect();
            let log = format!("target-{}.log", deaths.len() + 1);
            if let Some(p) = sup.process() {
                write_log(&run_dir.join(&log), &p.lines());
            }
            let mut d = Death { at, exit, ready: None, error: None, log, suspects };
            let again = load.restart && deaths.len() < load.max_restarts as usize;
            if again && !*done.borrow() && !*stop.borrow() {
                say(format!(
                    "the target {}: restarting it ({} of at most {})",
                    d.exit.describe(),
                    deaths.len() + 1,
                    load.max_restarts
                ));
                let r = tokio::select! {
                    r = sup.restart() => Some(r),
                    _ = stopped(&mut run_stop) => None,
                };
                match r {
                    Some(Ok(_)) => {
                        d.ready = Some(SystemTime::now());
                        state_tx.send_modify(|s| s.down = false);
                        deaths.push(d);
                        continue;
                    }
                    Some(Err(e)) => d.error = Some(format!("restart failed: {e:#}")),
                    None => d.error = Some("interrupted while restarting".into()),
                }
            } else if load.restart && !again {
                d.error = Some(format!("max_restarts ({}) reached", load.max_restarts));
            }
            let _ = phase_stop.send(true);
            deaths.push(d);
            break;
        }
        deaths
    };
    let (r, deaths, ()) = tokio::join!(phase, watchdog, bridge);
    // Restarts that brought the target back (a failed attempt is not one).
    let restarts = deaths.iter().filter(|d| d.ready.is_some()).count() as u64;
    if let Some(s) = sup {
        let (process, sampler) = s.into_parts();
        target.process = process;
        if sampler.is_some() {
            target.sampler = sampler;
        }
    }
    let mut r = r?;
    r.restarts = restarts;
    let phase_s = |t: SystemTime| {
        let ms = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as f64).unwrap_or(0.0);
        ((ms - r.started_at_ms as f64) / 1000.0).max(0.0)
    };
    let outages: Vec<Outage> = deaths
        .into_iter()
        .map(|d| {
            let start_s = phase_s(d.at);
            let end_s = d.ready.map(phase_s).unwrap_or(r.elapsed_s).max(start_s);
            let mut detail = vec![format!("its output: {}", d.log)];
            detail.extend(d.error);
            Outage {
                cause: OutageCause::Death,
                start_s: (start_s * 100.0).round() / 100.0,
                end_s: (end_s * 100.0).round() / 100.0,
                peak_in_flight: 0,
                failed: 0,
                exit: Some(d.exit),
                restarted: d.ready.is_some(),
                detail: detail.join("; "),
                suspects: d.suspects,
            }
        })
        .collect();
    for o in outages {
        r.add_death(o);
    }
    if let Some(spec) = load.soak.as_ref().filter(|s| s.enabled) {
        let samples = target.telemetry.lock().expect("telemetry lock").clone();
        let soak = crate::report::soak::analyse_phase(&r, &samples, spec);
        if soak.flagged {
            r.passed = false;
        }
        r.soak = Some(soak);
    }
    Ok(r)
}
