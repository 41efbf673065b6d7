//! `mesher-stress replay` and `mesher-stress minimize`.
//!
//! Target selection (shared): `--target-cmd "PROG ARGS"` (split on whitespace; addresses from
//! its `listening on` lines, or fixed with `--http`/`--ws`), `--profile FILE` (its `[target]`,
//! `[watchdog]` and database, exactly as `run` starts it), `--http URL` alone (a running server:
//! no restarts, death seen as "stopped answering"), `--fault NAME[=P]` (the built-in target on
//! a throwaway PostgreSQL). With none of them: the profile of the run the reproducers came from
//! (`minimize --run`: the run directory's `profile.toml`; `replay`: the profile the buckets
//! record), else the built-in target without faults.
//!
//! `replay` exit codes: 0 every bucket fixed (no death in any try); 1 some bucket still crashes
//! or is flaky (or could not be tested because a running target died); 5 tool error.

use super::Global;
use crate::model::{Generated, Layer, Payload, RequestSeed};
use crate::triage::Death;
use crate::triage::bucket::{self, ReproInputs};
use crate::triage::exec::{self, Addrs, Reply};
use crate::triage::oracle::{Oracle, OracleOptions};
use crate::triage::session::{TriageOptions, Triager};
use crate::triage::target::{CommandFactory, TargetFactory, TargetHandle, UrlTarget};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to get a target.
#[derive(Debug, Clone, Args)]
pub struct TargetOpts {
    /// Command that starts the target, split on whitespace, e.g. "./mesher/mesher". It must
    /// print "[mesh-rt] HTTP server listening on ADDR" unless --http fixes the address.
    #[arg(long, value_name = "CMD")]
    pub target_cmd: Option<String>,
    /// Environment for --target-cmd (repeatable).
    #[arg(long, value_name = "K=V")]
    pub target_env: Vec<String>,
    /// Working directory for --target-cmd.
    #[arg(long, value_name = "DIR")]
    pub target_cwd: Option<PathBuf>,
    /// Take the target from a profile's [target] table.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Built-in target with this planted fault (repeatable); the default target when nothing
    /// else is given.
    #[arg(long = "fault", value_name = "NAME[=PARAM]")]
    pub faults: Vec<String>,
    /// HTTP base URL: with --target-cmd, its fixed address; alone, an already running target.
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// WebSocket base URL (see --http).
    #[arg(long, value_name = "URL")]
    pub ws: Option<String>,
    /// How long to wait for a death after the last answer.
    #[arg(long, default_value = "300ms", value_parser = crate::util::duration::parse)]
    pub grace: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = crate::util::duration::parse)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes: 0 every bucket fixed · 1 some bucket still crashing or flaky (or untested because \
the running target died) · 5 tool error"
)]
pub struct ReplayArgs {
    /// Reproducer directories (corpus/crashes/<bucket>) or directories of them (corpus/crashes).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetOpts,
    /// Tries per bucket, each on a fresh target.
    #[arg(long, default_value_t = 3)]
    pub tries: usize,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Exit codes: 3 a crash was reproduced and filed (or counted in its bucket) · 1 nothing \
reproduced · 5 tool error")]
pub struct MinimizeArgs {
    /// A request file: raw HTTP bytes, or a model::Generated / model::Payload as JSON.
    #[arg(required_unless_present = "run", conflicts_with = "run")]
    pub file: Option<PathBuf>,
    /// Triage the deaths of a run instead: the exact inputs in flight around each death, as its
    /// load phases saved them (`RUN_DIR/deaths/death-N.json`, listed in its report.json). The
    /// target defaults to the run's own (its `profile.toml`).
    #[arg(long, value_name = "RUN_DIR")]
    pub run: Option<PathBuf>,
    /// With --run: only death N (as numbered in `deaths/death-N.json` and `target-N.log`).
    #[arg(long, value_name = "N", requires = "run")]
    pub outage: Option<usize>,
    #[command(flatten)]
    pub target: TargetOpts,
    /// Corpus directory the bucket is written to.
    #[arg(long, default_value = "corpus/crashes")]
    pub corpus: PathBuf,
    /// Re-run the minimised reproducer under gdb and put the top frames into the signature.
    #[arg(long)]
    pub gdb: bool,
    /// Budget: at most this many executions for the minimisation.
    #[arg(long, default_value_t = 2000)]
    pub max_executions: u64,
    /// Budget: at most this long for the minimisation.
    #[arg(long, default_value = "5m", value_parser = crate::util::duration::parse)]
    pub max_time: Duration,
    /// Reproduction-rate tries recorded in meta.json.
    #[arg(long, default_value_t = 3)]
    pub tries: usize,
}

/// A resolved target: a factory, plus what must live as long as it (a throwaway database).
pub struct Resolved {
    pub factory: Option<Box<dyn TargetFactory>>,
    /// Set when the target is an already running server.
    pub running: Option<Addrs>,
    /// The target's readiness probe (also the hang probe) when it has one of its own.
    pub probe: Option<Payload>,
    pub _db: Option<crate::db::Database>,
    pub _cluster: Option<crate::db::Cluster>,
}

impl Resolved {
    fn running(addrs: Addrs) -> Resolved {
        Resolved { factory: None, running: Some(addrs), probe: None, _db: None, _cluster: None }
    }
}

fn builtin(faults: &[String]) -> Result<Resolved> {
    // On the calling thread: the cluster dies with the thread that started it (PDEATHSIG), and
    // the caller (replay/minimize's blocking task) lives as long as the cluster is needed.
    let cluster = crate::db::Cluster::start()?;
    let exe = std::env::current_exe().context("cannot find the mesher-stress executable")?;
    let mut cmd = crate::watch::TargetCommand::builtin(exe, cluster.url(), faults, false, (0, 0));
    cmd.args.push("--prepare-db".into());
    let launch = crate::watch::launch::Launch::new(
        cmd,
        crate::watch::launch::Ports::Announced,
        crate::triage::oracle::default_probe(),
    );
    Ok(Resolved { factory: Some(Box::new(launch)), running: None, probe: None, _db: None, _cluster: Some(cluster) })
}

/// The target of a profile, started as `run` starts it (its database set up the same way).
/// Call from a blocking thread inside the runtime.
fn from_profile(path: &Path, g: &Global) -> Result<Resolved> {
    let prof = crate::profile::Profile::load(path)?;
    if let crate::profile::TargetSpec::Url { http, ws } = &prof.target {
        crate::safety::check_target(http, g.allow_remote)?;
        crate::safety::check_target(ws, g.allow_remote)?;
        return Ok(Resolved::running(Addrs {
            http: crate::safety::socket_addr(http)?,
            ws: Some(crate::safety::socket_addr(ws)?),
        }));
    }
    if let crate::profile::TargetSpec::Command { http, ws, .. } = &prof.target {
        for u in [http, ws].into_iter().flatten() {
            crate::safety::check_target(u, g.allow_remote)?;
        }
    }
    let db = tokio::runtime::Handle::current()
        .block_on(crate::db::setup(&prof.database, &prof.fixtures))
        .with_context(|| format!("the database of {}", path.display()))?;
    let launch = prof.launch(&db.url, &db.fixtures)?.expect("not a url target");
    let probe = Some(launch.readiness.probe.clone());
    Ok(Resolved { factory: Some(Box::new(launch)), running: None, probe, _db: Some(db), _cluster: None })
}

/// Resolve the target options (may start PostgreSQL); `fallback` is the profile used when no
/// target option is given.
pub fn resolve(t: &TargetOpts, g: &Global, fallback: Option<&Path>) -> Result<Resolved> {
    for u in [&t.http, &t.ws].into_iter().flatten() {
        crate::safety::check_target(u, g.allow_remote)?;
    }
    let http = t.http.as_deref().map(crate::safety::socket_addr).transpose()?;
    let ws = t.ws.as_deref().map(crate::safety::socket_addr).transpose()?;
    if let Some(cmd) = &t.target_cmd {
        let mut parts = cmd.split_whitespace().map(str::to_string);
        let prog = parts.next().context("--target-cmd is empty")?;
        let mut f = CommandFactory::new(prog, parts.collect());
        for kv in &t.target_env {
            let (k, v) = kv.split_once('=').with_context(|| format!("--target-env {kv:?}: expected K=V"))?;
            f.env.insert(k.into(), v.into());
        }
        f.cwd = t.target_cwd.clone();
        f.http = http;
        f.ws = ws;
        return Ok(Resolved {
            factory: Some(Box::new(f.launch())),
            running: None,
            probe: None,
            _db: None,
            _cluster: None,
        });
    }
    if let Some(p) = &t.profile {
        return from_profile(p, g);
    }
    if let Some(h) = http {
        return Ok(Resolved::running(Addrs { http: h, ws }));
    }
    if !t.faults.is_empty() {
        return builtin(&t.faults);
    }
    match fallback {
        Some(p) => from_profile(p, g),
        None => builtin(&[]),
    }
}

/// Reproducer directories under the given paths.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.join("payloads.json").exists() {
            out.push(p.clone());
            continue;
        }
        let rd = std::fs::read_dir(p).with_context(|| format!("cannot read {}", p.display()))?;
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|d| {
                d.join("payloads.json").exists() && !d.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        v.sort();
        out.extend(v);
    }
    Ok(out)
}

/// Per-bucket verdict of a replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayRow {
    pub dir: PathBuf,
    pub expected: String,
    /// `still-crashing`, `fixed`, `flaky`, `untested`.
    pub verdict: String,
    pub hits: usize,
    pub tries: usize,
}

/// Replay reproducer directories against fresh targets from `factory` (blocking).
pub fn replay_dirs(
    factory: &dyn TargetFactory,
    dirs: &[PathBuf],
    tries: usize,
    oopts: OracleOptions,
) -> Result<Vec<ReplayRow>> {
    let mut oracle = Oracle::new(factory, oopts.clone());
    let mut rows = Vec::new();
    for d in dirs {
        let inputs = bucket::read_inputs(d)?;
        let send = repeat(&inputs);
        // A hang is judged with the probe it was found with (one that needs what the hang holds).
        oracle.opts.probe = inputs.probe.clone().unwrap_or_else(|| oopts.probe.clone());
        let hits = oracle.rate(&send, inputs.concurrency, &inputs.death, tries)?;
        rows.push(ReplayRow {
            dir: d.clone(),
            expected: inputs.death.key(),
            verdict: verdict(hits, tries).into(),
            hits,
            tries,
        });
    }
    Ok(rows)
}

fn verdict(hits: usize, tries: usize) -> &'static str {
    if hits == 0 {
        "fixed"
    } else if hits == tries {
        "still-crashing"
    } else {
        "flaky"
    }
}

fn repeat(inputs: &ReproInputs) -> Vec<Payload> {
    let mut v = Vec::new();
    for _ in 0..inputs.repeat.max(1) {
        v.extend(inputs.payloads.iter().cloned());
    }
    v
}

/// Replay against an already running target: one try per bucket; a target that stops
/// answering after a bucket marks it still-crashing and the rest untested.
pub fn replay_running(addrs: Addrs, dirs: &[PathBuf], oopts: &OracleOptions) -> Result<Vec<ReplayRow>> {
    let mut rows = Vec::new();
    let mut dead = false;
    for d in dirs {
        let inputs = bucket::read_inputs(d)?;
        let mut row =
            ReplayRow { dir: d.clone(), expected: inputs.death.key(), verdict: "untested".into(), hits: 0, tries: 0 };
        if !dead {
            let u = UrlTarget { addrs };
            let send = repeat(&inputs);
            if matches!(inputs.death, Death::Hang) {
                let held: Vec<_> = send.iter().filter_map(|p| exec::open_and_hold(p, &addrs, oopts.timeout)).collect();
                std::thread::sleep(oopts.hold);
                let probe = exec::send(inputs.probe.as_ref().unwrap_or(&oopts.probe), &addrs, oopts.probe_timeout);
                drop(held);
                row.tries = 1;
                row.hits = matches!(probe, Reply::Timeout) as usize;
            } else {
                crate::triage::oracle::send_all(&send, &u.addrs(), inputs.concurrency, oopts.timeout);
                std::thread::sleep(oopts.grace);
                let probe = exec::send(&oopts.probe, &addrs, oopts.probe_timeout);
                row.tries = 1;
                row.hits = (!probe.answered()) as usize;
            }
            dead = row.hits > 0;
            row.verdict = verdict(row.hits, 1).into();
        }
        rows.push(row);
    }
    Ok(rows)
}

fn oracle_opts(t: &TargetOpts, r: &Resolved) -> OracleOptions {
    let mut o = OracleOptions::new(r.probe.clone().unwrap_or_else(crate::triage::oracle::default_probe));
    o.grace = t.grace;
    o.timeout = t.timeout;
    o
}

/// The profile the buckets were found with, when they all name the same one and it exists.
fn recorded_profile(dirs: &[PathBuf]) -> Option<PathBuf> {
    let mut found: Option<PathBuf> = None;
    for d in dirs {
        let p = bucket::read_meta(d).ok()?.profile?;
        match &found {
            Some(f) if *f != p => return None,
            _ => found = Some(p),
        }
    }
    found.filter(|p| p.exists())
}

/// `mesher-stress replay`.
pub async fn replay_main(args: ReplayArgs, g: &Global) -> Result<u8> {
    let g2 = g.clone();
    let rows = tokio::task::spawn_blocking(move || -> Result<Vec<ReplayRow>> {
        let g = g2;
        let dirs = expand(&args.paths)?;
        if dirs.is_empty() {
            bail!("no reproducer directories (with payloads.json) under {:?}", args.paths);
        }
        let r = resolve(&args.target, &g, recorded_profile(&dirs).as_deref())?;
        let oopts = oracle_opts(&args.target, &r);
        match (&r.factory, r.running) {
            (Some(f), _) => replay_dirs(f.as_ref(), &dirs, args.tries.max(1), oopts),
            (None, Some(a)) => replay_running(a, &dirs, &oopts),
            (None, None) => bail!("no target"),
        }
    })
    .await??;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if !g.quiet {
        for r in &rows {
            println!("{:<15} {:>2}/{:<2} {:<8} {}", r.verdict, r.hits, r.tries, r.expected, r.dir.display());
        }
    }
    let bad = rows.iter().any(|r| r.verdict != "fixed");
    if !g.json {
        println!(
            "replay: {} bucket(s), {}",
            rows.len(),
            if bad { "some still crash (exit 1)" } else { "all fixed (exit 0)" }
        );
    }
    Ok(if bad { crate::exit::FAILED } else { crate::exit::SUCCESS })
}

/// Read a request file given by hand.
pub fn read_request_file(path: &Path) -> Result<Generated> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(g) = serde_json::from_slice::<Generated>(&bytes) {
        return Ok(g);
    }
    let payload = match serde_json::from_slice::<Payload>(&bytes) {
        Ok(p) => p,
        Err(_) => Payload::Http(crate::wire::http::parse_request(&bytes)),
    };
    Ok(Generated { seed: RequestSeed { run: 0, stream: 0, index: 0 }, layer: Layer::Http, payload, trail: Vec::new() })
}

/// `mesher-stress minimize`.
pub async fn minimize_main(args: MinimizeArgs, g: &Global) -> Result<u8> {
    if let Some(run) = args.run.clone() {
        return minimize_run(args, run, g).await;
    }
    let g = g.clone();
    let gj = g.json;
    let quiet = g.quiet;
    let report = tokio::task::spawn_blocking(move || -> Result<crate::triage::session::TriageReport> {
        let input = read_request_file(args.file.as_deref().expect("clap: FILE or --run"))?;
        let r = resolve(&args.target, &g, None)?;
        let Some(f) = &r.factory else {
            bail!("minimize needs a target it can restart: give --target-cmd, --profile or --fault");
        };
        let store = bucket::Store::open(&args.corpus)?;
        let mut t = Triager::new(f.as_ref(), store, triage_opts(&args, &r, g.seed, args.target.profile.clone()));
        t.minimize_input(input)
    })
    .await??;
    if gj {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !quiet {
        println!("{}", describe_report(&report));
    }
    Ok(if report.bucket_id.is_some() { crate::exit::CRASHED } else { crate::exit::FAILED })
}

fn triage_opts(args: &MinimizeArgs, r: &Resolved, seed: Option<u64>, profile: Option<PathBuf>) -> TriageOptions {
    let mut opts = TriageOptions { oracle: oracle_opts(&args.target, r), ..TriageOptions::default() };
    opts.attribution.benign = opts.oracle.probe.clone();
    opts.gdb = args.gdb;
    opts.max_executions = args.max_executions;
    opts.max_time = args.max_time;
    opts.repro_tries = args.tries;
    opts.run_seed = seed;
    opts.profile = profile.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    opts
}

fn describe_report(r: &crate::triage::session::TriageReport) -> String {
    format!(
        "{} {}: {} bytes -> {} bytes, {} executions, {} restarts, {:.1}s -> {}",
        r.death,
        r.kind,
        r.size_before,
        r.size_after,
        r.executions,
        r.restarts,
        r.seconds,
        r.dir.as_ref().map(|d| d.display().to_string()).unwrap_or("(not reproduced)".into())
    )
}

/// The deaths a run saved (its report.json lists them with their input files), in order.
pub fn run_deaths(run: &Path, only: Option<usize>) -> Result<Vec<crate::triage::DeathRecord>> {
    let report: crate::report::RunReport = crate::report::compare::read_report(run)?.1;
    let mut out = Vec::new();
    for p in &report.phases {
        let crate::report::RunPhase::Load(l) = p else { continue };
        for o in &l.outages {
            let Some(rel) = &o.inputs else { continue };
            let path = run.join(rel);
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let rec: crate::triage::DeathRecord =
                serde_json::from_slice(&bytes).with_context(|| format!("{} is not a death record", path.display()))?;
            if only.is_none_or(|n| n == rec.n) {
                out.push(rec);
            }
        }
    }
    if out.is_empty() {
        match only {
            Some(n) => bail!("{}: no death {n} with saved inputs (see deaths/ and report.json)", run.display()),
            None => bail!("{}: no deaths with saved inputs in its report.json", run.display()),
        }
    }
    Ok(out)
}

/// `minimize --run RUN_DIR [--outage N]`.
async fn minimize_run(args: MinimizeArgs, run: PathBuf, g: &Global) -> Result<u8> {
    let g = g.clone();
    let (gj, quiet) = (g.json, g.quiet);
    let t = tokio::task::spawn_blocking(move || -> Result<crate::triage::records::PhaseTriage> {
        let records = run_deaths(&run, args.outage)?;
        let own = run.join("profile.toml");
        let fallback = own.exists().then_some(own.clone());
        let r = resolve(&args.target, &g, fallback.as_deref())?;
        let Some(f) = &r.factory else {
            bail!("minimize needs a target it can restart: give --target-cmd, --profile or --fault");
        };
        let profile = args.target.profile.clone().or(fallback);
        let opts = triage_opts(&args, &r, g.seed, profile);
        if !quiet && !gj {
            eprintln!("minimize: {} death(s) of {} against {}", records.len(), run.display(), f.describe());
        }
        let store = bucket::Store::open(&args.corpus)?;
        let budget = args.max_time * records.len().max(1) as u32;
        let suspects = crate::triage::records::saved_suspects(&records);
        crate::triage::records::triage_records(
            f.as_ref(),
            store,
            opts,
            &records,
            &suspects,
            budget,
            &crate::signals::was_interrupted,
        )
    })
    .await??;
    if gj {
        println!("{}", serde_json::to_string_pretty(&t)?);
    } else if !quiet {
        for r in &t.results {
            println!("{}", describe_report(r));
        }
        print!("{}", crate::triage::bucket::format_table(&t.buckets));
    }
    Ok(if t.results.iter().any(|r| r.bucket_id.is_some()) { crate::exit::CRASHED } else { crate::exit::FAILED })
}
