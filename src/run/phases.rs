//! The run's phases in order, each against the run's target: `checks`, `fuzz` (on a lent
//! target), `load` ([`super::load`]) and `invariants`; between two phases the target is settled
//! (dead or hung: recorded, started again) and the run directory checkpointed.

use super::{Env, Target, load, stopped, target};
use crate::checkpoint::Checkpointer;
use crate::checks::{self, CheckResult, Status};
use crate::drive::LoadPhase;
use crate::invariants::{InvariantResult, Ledger};
use crate::profile::Phase;
use crate::report::{RunPhase, RunReport};
use crate::triage::phase::FuzzPhaseSpec;
use crate::watch::process::LogHandle;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One phase: which (1-based) and the log of the target process it starts with.
struct Step<'a> {
    n: usize,
    log: Option<&'a LogHandle>,
}

/// What the target accepted since the phases began: the ledger load phases fill and the
/// database time of its start, which the invariants check.
struct Accepted {
    ledger: Arc<Ledger>,
    since: String,
}

/// Run the profile's phases until they are done, the run is stopped, or the target is lost.
pub(super) async fn run_phases(
    env: &Env<'_>,
    report: &mut RunReport,
    target: &mut Target,
    ck: &mut Checkpointer,
) -> Result<()> {
    let (profile, say) = (env.profile, env.say);
    let stop = env.stop.clone();
    let accepted = Accepted {
        ledger: Arc::new(Ledger::new()),
        since: sqlx::query_scalar("SELECT now()::text").fetch_one(&env.database.pool).await?,
    };
    for (i, phase) in profile.phases.iter().enumerate() {
        if *stop.borrow() {
            break;
        }
        if let Some(why) = &target.lost {
            say(format!("phase {} skipped: {why}", i + 1));
            report.verdict.failed = true;
            break;
        }
        let log = target.sup.process().map(|p| p.log_handle());
        let step = Step { n: i + 1, log: log.as_ref() };
        match phase {
            Phase::Checks { checks: which, startup_timeout } => {
                say(format!("phase {}: checks", step.n));
                let Some(results) = checks_phase(env, report, target, ck, &step, which, *startup_timeout).await else {
                    break;
                };
                record_checks(env, report, &results);
                report.phases.push(RunPhase::Checks { results });
            }
            Phase::Fuzz(spec) => {
                say(format!("phase {}: fuzz + triage ({})", step.n, humantime::format_duration(spec.duration)));
                let r = fuzz_phase(env, report, target, ck, &step, spec).await?;
                report.add_fuzz(step.n, r);
            }
            Phase::Load(spec) => {
                say(format!("phase {}: load {:?}", step.n, spec.name));
                let r = load_phase(env, report, target, ck, &step, spec, &accepted.ledger).await?;
                record_load(report, &r);
                report.phases.push(RunPhase::Load(Box::new(r)));
            }
            Phase::Invariants { flush_wait } => {
                say(format!("phase {}: invariants (nothing lost)", step.n));
                let results = invariants_phase(env, report, target, ck, &step, &accepted, *flush_wait).await?;
                report.phases.push(RunPhase::Invariants { results });
            }
        }
        let next = (i + 1 < profile.phases.len() && !*stop.borrow()).then_some(i + 2);
        target::settle(env, report, target, next).await;
        ck.write_or_warn(report, None, target.sup.process().map(|p| p.log_handle()).as_ref()).await;
        if target.lost.is_some() && next.is_some() {
            say("the target could not be started again: remaining phases skipped".into());
            report.verdict.failed = true;
            break;
        }
    }
    Ok(())
}

/// The verification checks; `None` when the run was stopped meanwhile.
async fn checks_phase(
    env: &Env<'_>,
    report: &RunReport,
    target: &Target,
    ck: &mut Checkpointer,
    step: &Step<'_>,
    which: &[checks::CheckName],
    startup_timeout: Duration,
) -> Option<Vec<CheckResult>> {
    let startup_lines = target::startup_lines(&env.profile.target);
    let a = target.addrs();
    let ctx = checks::CheckContext {
        http: a.http,
        ws: a.ws,
        fixtures: &env.database.fixtures,
        pool: &env.database.pool,
        process: target.sup.process(),
        startup_lines: &startup_lines,
        startup_timeout,
        request_timeout: Duration::from_secs(10),
    };
    let mut stop = env.stop.clone();
    tokio::select! {
        r = ck.during(report, step.n, step.log, checks::run_checks(&ctx, which)) => Some(r),
        _ = stopped(&mut stop) => None,
    }
}

/// The checks' crashes join the run's; each result is printed with its evidence.
fn record_checks(env: &Env<'_>, report: &mut RunReport, results: &[CheckResult]) {
    for r in results {
        if let Some(c) = &r.crash
            && !report.crashes.contains(c)
        {
            report.crashes.push(c.clone());
        }
        if !env.g.quiet && !env.g.json {
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
}

/// The fuzz phase on the lent target: it starts its own incarnations on the run's ports.
async fn fuzz_phase(
    env: &Env<'_>,
    report: &RunReport,
    target: &mut Target,
    ck: &mut Checkpointer,
    step: &Step<'_>,
    spec: &FuzzPhaseSpec,
) -> Result<crate::triage::fuzz::FuzzReport> {
    let Some(launch) = target.sup.lend().await else {
        anyhow::bail!("the fuzz phase needs a target the tool starts (validated)");
    };
    // The fuzz loop runs on blocking threads: the run's stop signal reaches it as a flag.
    let flag = Arc::new(AtomicBool::new(false));
    let (flag2, mut stop2) = (flag.clone(), env.stop.clone());
    let bridge = tokio::spawn(async move {
        stopped(&mut stop2).await;
        flag2.store(true, Ordering::SeqCst);
    });
    let fuzz = crate::triage::phase::run(
        spec,
        launch,
        &env.database.fixtures,
        report.seed,
        env.profile.canonical_source(),
        crate::triage::phase::Outputs {
            progress: ck.fuzz.clone(),
            corpus: Some(env.run_dir.join(format!("fuzz-corpus-{}", step.n))),
        },
        flag,
    );
    let r = ck.during(report, step.n, None, fuzz).await;
    *ck.fuzz.lock().unwrap_or_else(|e| e.into_inner()) = None;
    bridge.abort();
    let r = r?;
    (env.say)(format!(
        "fuzz: {} inputs, {} deaths, {} buckets in {:.0}s",
        r.inputs_sent,
        r.deaths,
        r.buckets.len(),
        r.seconds
    ));
    if !env.g.quiet && !env.g.json {
        print!("{}", crate::triage::bucket::format_table(&r.buckets));
        if let Some(c) = &r.coverage {
            print!("{}", c.format());
        }
    }
    Ok(r)
}

/// A load phase with its watchdog; its table printed.
async fn load_phase(
    env: &Env<'_>,
    report: &RunReport,
    target: &mut Target,
    ck: &mut Checkpointer,
    step: &Step<'_>,
    spec: &LoadPhase,
    ledger: &Arc<Ledger>,
) -> Result<crate::report::PhaseReport> {
    let (view, deaths) = (ck.view.clone(), ck.deaths.clone());
    let phase = load::run_load(env, spec, target, ledger, view, deaths);
    // (The load phase owns the target meanwhile; checkpoints show the output of the process
    // that started the phase, the phase's restarts leave their own logs.)
    let r = ck.during(report, step.n, step.log, phase).await?;
    if !env.g.quiet && !env.g.json {
        let _ = r.print_table(&mut std::io::stdout());
    }
    Ok(r)
}

/// Every death the load phase's watchdog saw is a crash of the run (also exits and SIGKILLs:
/// the tool stops nothing during a load phase), restarted or not; hangs apart.
fn record_load(report: &mut RunReport, r: &crate::report::PhaseReport) {
    for o in &r.outages {
        if o.death == Some(crate::watch::Death::Hang) {
            report.hangs.push(format!("load phase {:?}: {}", r.name, o.describe()));
        } else if let Some(e) = &o.exit
            && !report.crashes.contains(e)
        {
            report.crashes.push(e.clone());
        }
    }
}

/// "Nothing lost": what the target accepted, against the database and the target's GET routes.
async fn invariants_phase(
    env: &Env<'_>,
    report: &RunReport,
    target: &Target,
    ck: &mut Checkpointer,
    step: &Step<'_>,
    accepted: &Accepted,
    flush_wait: Duration,
) -> Result<Vec<InvariantResult>> {
    let t = crate::invariants::CheckTarget {
        pool: &env.database.pool,
        project_id: &env.database.fixtures.project_id,
        org_id: &env.database.fixtures.org_id,
        http: Some(target.addrs().http),
        since: &accepted.since,
        flush_wait,
    };
    let results = ck.during(report, step.n, step.log, crate::invariants::check(&accepted.ledger, &t)).await?;
    if !env.g.quiet && !env.g.json {
        for r in &results {
            println!("{} {:<20} {}", if r.passed { "PASS" } else { "FAIL" }, r.name, r.summary);
            for m in &r.missing {
                println!("       missing: {m}");
            }
        }
    }
    Ok(results)
}
