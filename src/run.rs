//! `mesher-stress run PROFILE`: the main job.
//!
//! 1. Read and validate the profile, make the run directory.
//! 2. The database: a throwaway cluster or a URL; schema and fixtures as the profile says.
//! 3. The target: spawn the built-in one or a command, or use a running URL (loopback rule).
//! 4. The phases, in order; the run directory is checkpointed every `checkpoint_every` and after
//!    each phase (`crate::checkpoint`).
//! 5. Write `report.json` (atomically, also after Ctrl-C) and exit with the verdict (`crate::exit`).

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
}

/// Where the target listens, and its process when we spawned it.
pub struct Target {
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub process: Option<TargetProcess>,
    pub description: String,
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
    let (database, target) = env.as_ref().expect("just set");
    // The target's health from /proc, once a second, for the whole run.
    let series = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = target.process.as_ref().map(|p| {
        crate::watch::sampler::Sampler::spawn(p.pid(), Duration::from_secs(1), Instant::now(), series.clone())
    });
    let mut ck = crate::checkpoint::Checkpointer::new(
        run_dir.to_path_buf(),
        profile.checkpoint_every,
        // The run's start (to the second: `report.started`), for the checkpoints' elapsed_ms.
        humantime::parse_rfc3339(&report.started)
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .and_then(|d| Instant::now().checked_sub(d))
            .unwrap_or_else(Instant::now),
        series.clone(),
    );
    let r = run_phases(profile, g, say, report, database, target, &mut stop, run_dir, &mut ck).await;
    if let Some(s) = sampler {
        report.telemetry = s.snapshot();
    }
    r
}

#[allow(clippy::too_many_arguments)]
async fn run_phases(
    profile: &Profile,
    g: &Global,
    say: &dyn Fn(String),
    report: &mut RunReport,
    database: &Database,
    target: &Target,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    run_dir: &Path,
    ck: &mut crate::checkpoint::Checkpointer,
) -> Result<()> {
    let ledger = std::sync::Arc::new(crate::invariants::Ledger::new());
    let since: String = sqlx::query_scalar("SELECT now()::text").fetch_one(&database.pool).await?;
    for (i, phase) in profile.phases.iter().enumerate() {
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
                    r = ck.during(report, i + 1, target.process.as_ref(), checks::run_checks(&ctx, which)) => r,
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
                let r = ck.during(report, i + 1, target.process.as_ref(), fuzz).await;
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
                let phase = run_load(load, run_dir, g, database, target, &ledger, report.seed, stop, window);
                let r = ck.during(report, i + 1, target.process.as_ref(), phase).await?;
                if !g.quiet && !g.json {
                    let _ = r.print_table(&mut std::io::stdout());
                }
                report.phases.push(RunPhase::Load(Box::new(r)));
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
                let results =
                    ck.during(report, i + 1, target.process.as_ref(), crate::invariants::check(&ledger, &t)).await?;
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
        ck.write_or_warn(report, None, target.process.as_ref()).await;
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
            let faults = if faults.is_empty() { String::new() } else { format!(" with faults {}", faults.join(", ")) };
            Ok(Target { http, ws, process: Some(process), description: format!("built-in target{faults}") })
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
            Ok(Target { http: http_addr, ws: ws_addr, process: Some(process), description: cmd.display() })
        }
        TargetSpec::Url { http, ws } => {
            crate::safety::check_target(http, g.allow_remote)?;
            crate::safety::check_target(ws, g.allow_remote)?;
            let http_addr = resolve(http).await?;
            let ws_addr = resolve(ws).await?;
            wait_port(http_addr, Duration::from_secs(3), None)
                .await
                .with_context(|| format!("target {http} is unreachable: is the server running?"))?;
            Ok(Target { http: http_addr, ws: ws_addr, process: None, description: format!("{http} / {ws}") })
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
/// feed the generators' id pool and the run's ledger; the phase stops early on Ctrl-C, the time
/// bound or the target's death.
#[allow(clippy::too_many_arguments)]
async fn run_load(
    load: &crate::drive::LoadPhase,
    run_dir: &Path,
    g: &Global,
    database: &Database,
    target: &Target,
    ledger: &std::sync::Arc<crate::invariants::Ledger>,
    seed: u64,
    stop: &tokio::sync::watch::Receiver<bool>,
    window: crate::drive::PhaseWindow,
) -> Result<crate::report::PhaseReport> {
    use crate::drive::{FlightRecorder, PhaseCtx, ProgressMode, TargetAddr};
    let mix = crate::profile::load_mix(load)?;
    let generator = std::sync::Arc::new(crate::generate::Generator::new(
        seed,
        database.fixtures.clone(),
        mix,
        crate::generate::GenOptions::default(),
    ));
    let (ids, ledger) = (generator.ids().clone(), ledger.clone());
    let observer: crate::drive::Observer = std::sync::Arc::new(move |req, status, body| {
        ids.observe(req, status, body);
        ledger.observe(&req.method, &req.target, &req.body, status, body);
    });
    // The phase's own stop: the run's, or the target's death.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut run_stop = stop.clone();
    let mut died = target.process.as_ref().map(|p| p.exit_watch());
    let watcher = tokio::spawn(async move {
        let death = async {
            match died.as_mut() {
                Some(w) => {
                    let _ = w.wait_for(|e| e.is_some()).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = stopped(&mut run_stop) => {}
            _ = death => {}
        }
        let _ = tx.send(true);
    });
    let ctx = PhaseCtx {
        out_dir: Some(run_dir.to_path_buf()),
        flight: FlightRecorder::new(load.flight_recorder, true),
        stop: rx,
        progress: if g.quiet || g.json { ProgressMode::Off } else { ProgressMode::Auto },
        allow_remote: g.allow_remote,
        ws_source: None,
        observer: Some(observer),
        window: Some(window),
    };
    let addr = TargetAddr { http: format!("http://{}", target.http), ws: Some(format!("ws://{}", target.ws)) };
    let r = crate::drive::run_phase(load, generator, &addr, &ctx).await;
    watcher.abort();
    r
}
