//! One load phase with its watchdog: the generators (the phase's mix) feed the driver; answers
//! of stateful routes feed the generators' id pool and the run's ledger; the phase stops early on
//! Ctrl-C or the time bound.
//!
//! The run's [`Supervisor`](crate::watch::supervisor::Supervisor) watches the target meanwhile:
//! - a death is noticed at once; a hang when requests wait without any answer for the
//!   watchdog's `hang_timeout` and the probe times out too (the hung target is then killed,
//!   with `hang_signal` first when set);
//! - every lane holds its traffic from that moment until the target is ready again;
//! - each death is saved with the exact inputs in flight around it (`deaths/death-N.json`) and
//!   the dead incarnation's output (`target-N.log`);
//! - with `restart = true` the target is started again behind its readiness gate (startup
//!   retries with backoff; only a target that cannot start ends the phase), up to
//!   `max_restarts` times; otherwise a death ends the phase.
//!
//! Deaths become outages of the phase (absorbing the stalls they caused); with a
//! `[phases.triage]` table they are triaged after the traffic ([`super::triage`]); soak verdicts
//! are added last.

use super::{Env, Target, stopped};
use crate::checkpoint::PhaseDeath;
use crate::drive::{FlightRecorder, PhaseCtx, ProgressMode, TargetAddr, TargetState};
use crate::report::load::Outage;
use crate::triage::DeathRecord;
use crate::watch::Death;
use crate::watch::supervisor::{Activity, WatchEvent};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The flight recorder tells the watchdog when requests wait unanswered.
struct Flights(FlightRecorder);

impl Activity for Flights {
    fn stuck_for(&self, now: Instant) -> Option<Duration> {
        self.0.stuck_for(now)
    }
}

/// Most death records (exact inputs) a phase writes, and most bytes of inputs in them; deaths
/// past either keep only their outage and log.
const MAX_DEATH_RECORDS: usize = 500;
const MAX_RECORD_BYTES: usize = 256 << 20;
/// Suspects kept per death, and at most this many bytes of one suspect (larger mutated bodies
/// are left out of the record: a crash that needs a multi-MiB input is rare, a record of such
/// inputs per death is not).
const SUSPECTS: usize = 48;
const MAX_SUSPECT_BYTES: usize = 1 << 20;
/// Answers this close to the failure make their request a hot suspect.
const HOT_WINDOW: Duration = Duration::from_secs(1);

/// The distinct routes of the first `hot` entries.
pub(super) fn hot_routes(entries: &[crate::drive::FlightEntry], hot: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in entries.iter().take(hot) {
        if !out.iter().any(|r| r == e.route) {
            out.push(e.route.to_string());
        }
    }
    out
}

/// The exact inputs of the suspects (those over `max_bytes` left out) and how many of the
/// first are hot.
pub(super) fn exact_inputs(
    suspects: &[crate::drive::FlightEntry],
    hot: usize,
    source: &dyn crate::model::Source,
    load: &crate::drive::LoadPhase,
    max_bytes: usize,
) -> (Vec<crate::model::Generated>, usize) {
    let mut out = Vec::new();
    let mut hot_out = 0;
    for (i, e) in suspects.iter().enumerate() {
        let Some(g) = crate::drive::suspects::input(e, source, load) else { continue };
        if crate::triage::shrink::payload_size(&g.payload) > max_bytes {
            continue;
        }
        if i < hot {
            hot_out += 1;
        }
        out.push(g);
    }
    (out, hot_out)
}

/// A death of the phase, for its triage: what it was, and the flight entries it happened among
/// (their inputs are regenerated, whole, when it is triaged).
pub(super) struct ToTriage {
    pub n: usize,
    pub death: Death,
    pub exit: Option<crate::watch::ExitInfo>,
    pub at: String,
    pub entries: Vec<crate::drive::FlightEntry>,
    pub hot: usize,
}

pub(super) async fn run_load(
    env: &Env<'_>,
    load: &crate::drive::LoadPhase,
    target: &mut Target,
    ledger: &Arc<crate::invariants::Ledger>,
    window: crate::drive::PhaseWindow,
    shared: crate::checkpoint::PhaseDeaths,
) -> Result<crate::report::PhaseReport> {
    let (g, say, database, run_dir) = (env.g, env.say, env.database, env.run_dir);
    let stop = &env.stop;
    let mix = crate::profile::load_mix(load)?;
    let gen_options = crate::profile::load_gen_options(load)?;
    let triage_spec = crate::profile::load_triage(load)?;
    // Who is a member now (the checks phase and earlier load phases add members).
    let mut fixtures = database.fixtures.clone();
    fixtures.refresh_members(&database.pool).await.context("reading the org's members")?;
    let generator = Arc::new(crate::generate::Generator::new(env.seed, fixtures, mix, gen_options));
    let (ids, ledger) = (generator.ids().clone(), ledger.clone());
    let observer: crate::drive::Observer = Arc::new(move |req, status, body| {
        ids.observe(req, status, body);
        ledger.observe(&req.method, &req.target, &req.body, status, body);
    });
    // The phase's own stop (the run's, or a death that is not survived), the end of the phase,
    // and "the target is down" for the lanes.
    let (phase_stop, phase_stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let (state_tx, state_rx) = tokio::sync::watch::channel(TargetState::default());
    let flight = FlightRecorder::new(load.flight_recorder, true);
    let started = target.sup.restartable();
    let ctx = PhaseCtx {
        out_dir: Some(run_dir.to_path_buf()),
        flight: flight.clone(),
        stop: phase_stop_rx,
        progress: if g.quiet || g.json { ProgressMode::Off } else { ProgressMode::Auto },
        allow_remote: g.allow_remote,
        ws_source: None,
        observer: Some(observer),
        target_state: started.then_some(state_rx),
        window: Some(window),
    };
    let a = target.addrs();
    let addr = TargetAddr { http: format!("http://{}", a.http), ws: a.ws.map(|w| format!("ws://{w}")) };
    // A restart during this phase may take `restart_timeout` to become ready (each attempt).
    let readiness_before = target.sup.set_ready_timeout(load.restart_timeout);
    let description = target.sup.launch().map(|l| l.describe()).unwrap_or_else(|| target.description.clone());
    let phase = async {
        let r =
            crate::drive::run_phase(load, generator.clone(), &addr, &ctx).await.map(crate::report::PhaseReport::from);
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
        // The deaths live in `shared` while the phase runs (every checkpoint has them).
        let deaths_so_far = || shared.lock().unwrap_or_else(|e| e.into_inner()).len();
        let (mut run_stop, mut done) = (stop.clone(), done_rx.clone());
        let activity = Flights(flight.clone());
        let mut last_said = Instant::now() - Duration::from_secs(60);
        let mut record_bytes = 0usize;
        loop {
            let ev = tokio::select! {
                ev = target.sup.next_event(Some(&activity), true) => ev,
                _ = done.wait_for(|d| *d) => break,
                _ = stopped(&mut run_stop) => break,
            };
            let at = SystemTime::now();
            // The moment things went wrong: the death, or for a hang the send of the oldest
            // request that never got its answer (read before the kill fails them all).
            let failed_at = match &ev {
                Ok(WatchEvent::Hung { .. }) => flight.oldest_open().unwrap_or_else(Instant::now),
                _ => Instant::now(),
            };
            let since = target.sup.ready_since();
            let (death, exit) = match ev {
                Ok(WatchEvent::Died { exit, .. }) => (exit.death(), Some(exit)),
                Ok(WatchEvent::Hung { stuck_s, .. }) => {
                    let _ = state_tx.send(TargetState { down: true, died_at: Some(Instant::now()) });
                    say(format!(
                        "the target hung: requests waited {stuck_s:.1} s without an answer and the probe timed out: killing it"
                    ));
                    (Death::Hang, target.sup.kill_hung().await)
                }
                Ok(WatchEvent::Gone { .. }) => {
                    say("the target stopped accepting connections (not started by mesher-stress: it cannot be restarted)".into());
                    let _ = phase_stop.send(true);
                    break;
                }
                Ok(WatchEvent::Ready { .. }) | Err(_) => break,
            };
            let _ = state_tx.send(TargetState { down: true, died_at: Some(Instant::now()) });
            let (suspects, hot) = flight.suspects_around(SUSPECTS, since, failed_at, HOT_WINDOW);
            let log = target.save_log(run_dir);
            let n = target.logs;
            let record = if deaths_so_far() < MAX_DEATH_RECORDS && record_bytes < MAX_RECORD_BYTES {
                let (inputs, hot) = exact_inputs(&suspects, hot, generator.as_ref(), load, MAX_SUSPECT_BYTES);
                let rec = DeathRecord {
                    phase: load.name.clone(),
                    n,
                    at: humantime::format_rfc3339_millis(at).to_string(),
                    death,
                    exit: exit.clone(),
                    target: description.clone(),
                    suspects: inputs,
                    hot,
                    hot_routes: hot_routes(&suspects, hot),
                };
                record_bytes +=
                    rec.suspects.iter().map(|g| crate::triage::shrink::payload_size(&g.payload)).sum::<usize>();
                save_record(run_dir, n, &rec).await
            } else {
                None
            };
            let d = PhaseDeath { at, death, exit, ready: None, error: None, log, n, suspects, hot, inputs: record };
            let said = describe(&d);
            let count = {
                let mut all = shared.lock().unwrap_or_else(|e| e.into_inner());
                all.push(d);
                all.len()
            };
            let note = |ready: Option<SystemTime>, error: Option<String>| {
                if let Some(d) = shared.lock().unwrap_or_else(|e| e.into_inner()).last_mut() {
                    d.ready = ready;
                    d.error = error;
                }
            };
            let again = load.restart && count <= load.max_restarts as usize;
            if again && started && !*done.borrow() && !*stop.borrow() {
                if count <= 5 || last_said.elapsed() >= Duration::from_secs(5) {
                    say(format!("the target {said}: restarting it ({count} of at most {})", load.max_restarts));
                    last_said = Instant::now();
                }
                let s2 = stop.clone();
                let stopping = move || *s2.borrow();
                match target.sup.restart(&stopping).await {
                    Ok(_) if target.sup.addrs() != a => {
                        note(
                            None,
                            Some(format!(
                                "the restarted target listens on {} instead of {}: give it fixed ports (target.http / target.ws, or MESHER_HTTP_PORT / MESHER_WS_PORT)",
                                target.sup.addrs().http,
                                a.http
                            )),
                        );
                    }
                    Ok(_) => {
                        note(Some(SystemTime::now()), None);
                        state_tx.send_modify(|s| s.down = false);
                        continue;
                    }
                    Err(e) => {
                        let text = format!("{e:#}");
                        if !*stop.borrow() {
                            say(text.clone());
                            target.lost = Some(text.clone());
                        }
                        note(None, Some(text));
                    }
                }
            } else if load.restart && !again {
                note(None, Some(format!("max_restarts ({}) reached", load.max_restarts)));
            }
            let _ = phase_stop.send(true);
            break;
        }
    };
    let (r, (), ()) = tokio::join!(phase, watchdog, bridge);
    let deaths: Vec<PhaseDeath> = std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner()));
    target.sup.restore_ready_timeout(readiness_before);
    let mut r = r?;
    // Restarts that brought the target back (a failed attempt is not one).
    r.restarts = deaths.iter().filter(|d| d.ready.is_some()).count() as u64;
    let mut to_triage: Vec<ToTriage> = Vec::new();
    let mut outages: Vec<Outage> = Vec::new();
    for d in deaths {
        outages.push(d.outage(r.started_at_ms, r.elapsed_s));
        to_triage.push(ToTriage {
            n: d.n,
            death: d.death,
            exit: d.exit,
            at: humantime::format_rfc3339_millis(d.at).to_string(),
            entries: d.suspects,
            hot: d.hot,
        });
    }
    // Triage after the traffic, on the lent target; its results go onto the outages.
    if let Some(spec) = triage_spec.as_ref().filter(|_| !to_triage.is_empty() && started) {
        let t = super::triage::triage_deaths(env, target, spec, to_triage, generator.clone(), load).await?;
        for (o, res) in outages.iter_mut().zip(&t.results) {
            o.bucket = res.bucket_id.clone();
        }
        r.triage = Some(t);
    }
    for o in outages {
        r.add_death(o);
    }
    if let Some(spec) = load.soak.as_ref().filter(|s| s.enabled) {
        let samples = target.sup.telemetry().lock().unwrap_or_else(|e| e.into_inner()).clone();
        let soak = crate::report::soak::analyse_phase(&r, &samples, spec);
        if soak.flagged {
            r.passed = false;
        }
        r.soak = Some(soak);
    }
    Ok(r)
}

fn describe(d: &PhaseDeath) -> String {
    match (&d.death, &d.exit) {
        (Death::Hang, Some(e)) => format!("hung (killed: it {})", e.describe()),
        (Death::Hang, None) => "hung".into(),
        (_, Some(e)) => e.describe(),
        (other, None) => other.to_string(),
    }
}

/// Write a death's record as `deaths/death-<n>.json` (atomically); its path relative to the
/// run directory. A failure (disk full) is reported and the run goes on without it.
async fn save_record(run_dir: &Path, n: usize, rec: &DeathRecord) -> Option<String> {
    let rel = format!("deaths/death-{n}.json");
    let (path, rec) = (run_dir.join(&rel), rec.clone());
    let written = tokio::task::spawn_blocking(move || -> Result<()> {
        std::fs::create_dir_all(path.parent().expect("a file in deaths/"))?;
        crate::util::fs::write_json_atomic(&path, &rec)
    })
    .await;
    match written {
        Ok(Ok(())) => Some(rel),
        Ok(Err(e)) => {
            eprintln!("warning: cannot save the inputs of death {n}: {e:#}");
            None
        }
        Err(e) => {
            eprintln!("warning: cannot save the inputs of death {n}: {e}");
            None
        }
    }
}
