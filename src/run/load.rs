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
use crate::checkpoint::{PhaseDeath, PhaseDeaths};
use crate::drive::{FlightRecorder, LoadPhase, PhaseCtx, ProgressMode, TargetAddr, TargetState};
use crate::generate::{GenOptions, Generator};
use crate::report::PhaseReport;
use crate::report::load::Outage;
use crate::triage::DeathRecord;
use crate::watch::supervisor::{Activity, WatchEvent};
use crate::watch::{Death, ExitInfo};
use crate::wire::blocking::Addrs;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

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
    load: &LoadPhase,
    target: &mut Target,
    ledger: &Arc<crate::invariants::Ledger>,
    view: crate::drive::PhaseView,
    shared: PhaseDeaths,
) -> Result<PhaseReport> {
    let g = env.g;
    let mix = crate::profile::load_mix(load)?;
    let gen_options = crate::profile::load_gen_options(load)?;
    let triage_spec = crate::profile::load_triage(load)?;
    let (generator, observer) = traffic(env, mix, gen_options, ledger).await?;
    // The phase's own stop (the run's, or a death that is not survived), the end of the phase,
    // and "the target is down" for the lanes.
    let (phase_stop, phase_stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(false);
    let (state_tx, state_rx) = watch::channel(TargetState::default());
    let flight = FlightRecorder::new(load.flight_recorder, true);
    let started = target.sup.restartable();
    let ctx = PhaseCtx {
        out_dir: Some(env.run_dir.to_path_buf()),
        flight: flight.clone(),
        stop: phase_stop_rx,
        progress: if g.quiet || g.json { ProgressMode::Off } else { ProgressMode::Auto },
        allow_remote: g.allow_remote,
        ws_source: None,
        observer: Some(observer),
        target_state: started.then_some(state_rx),
        view: Some(view),
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
        let (mut run_stop, mut done) = (env.stop.clone(), done_rx.clone());
        tokio::select! {
            _ = stopped(&mut run_stop) => { let _ = phase_stop.send(true); }
            _ = done.wait_for(|d| *d) => {}
        }
    };
    let watchdog = Watchdog {
        env,
        load,
        target: &mut *target,
        flight: &flight,
        generator: &generator,
        shared: &shared,
        state: &state_tx,
        phase_stop: &phase_stop,
        description,
        addrs: a,
        started,
        last_said: Instant::now() - Duration::from_secs(60),
        record_bytes: 0,
    }
    .watch(done_rx.clone());
    let (r, (), ()) = tokio::join!(phase, watchdog, bridge);
    let deaths: Vec<PhaseDeath> = std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner()));
    target.sup.restore_ready_timeout(readiness_before);
    let mut r = r?;
    // Restarts that brought the target back (a failed attempt is not one).
    r.restarts = deaths.iter().filter(|d| d.ready.is_some()).count() as u64;
    let triage_spec = triage_spec.filter(|_| started);
    add_deaths(env, load, target, &mut r, deaths, triage_spec.as_ref(), generator).await?;
    add_soak(load, target, &mut r);
    Ok(r)
}

/// The phase's generator over the org's current members, and the observer that feeds answers of
/// stateful routes to its id pool and to the run's ledger.
async fn traffic(
    env: &Env<'_>,
    mix: crate::generate::Mix,
    gen_options: GenOptions,
    ledger: &Arc<crate::invariants::Ledger>,
) -> Result<(Arc<Generator>, crate::drive::Observer)> {
    // Who is a member now (the checks phase and earlier load phases add members).
    let mut fixtures = env.database.fixtures.clone();
    fixtures.refresh_members(&env.database.pool).await.context("reading the org's members")?;
    let generator = Arc::new(Generator::new(env.seed, fixtures, mix, gen_options));
    let (ids, ledger) = (generator.ids().clone(), ledger.clone());
    let observer: crate::drive::Observer = Arc::new(move |req, status, body| {
        ids.observe(req, status, body);
        ledger.observe(&req.method, &req.target, &req.body, status, body);
    });
    Ok((generator, observer))
}

/// The watchdog of a running load phase: it answers each death or hang of the target by holding
/// the lanes, saving the death with its inputs, and restarting the target when the phase may.
struct Watchdog<'a, 'e> {
    env: &'a Env<'e>,
    load: &'a LoadPhase,
    target: &'a mut Target,
    flight: &'a FlightRecorder,
    generator: &'a Generator,
    /// The deaths so far: checkpoints read them while the phase runs.
    shared: &'a PhaseDeaths,
    state: &'a watch::Sender<TargetState>,
    phase_stop: &'a watch::Sender<bool>,
    description: String,
    /// Where the target listened when the phase started: a restart must listen there again.
    addrs: Addrs,
    /// The tool started the target (so it can restart it).
    started: bool,
    last_said: Instant,
    /// Bytes of inputs in the death records written so far.
    record_bytes: usize,
}

impl Watchdog<'_, '_> {
    /// Watch until the phase is done, the run stops, or a death ends the phase.
    async fn watch(mut self, mut done: watch::Receiver<bool>) {
        let mut run_stop = self.env.stop.clone();
        let activity = Flights(self.flight.clone());
        loop {
            let ev = tokio::select! {
                ev = self.target.sup.next_event(Some(&activity), true) => ev,
                _ = done.wait_for(|d| *d) => break,
                _ = stopped(&mut run_stop) => break,
            };
            let at = SystemTime::now();
            // The moment things went wrong: the death, or for a hang the send of the oldest
            // request that never got its answer (read before the kill fails them all).
            let failed_at = match &ev {
                Ok(WatchEvent::Hung { .. }) => self.flight.oldest_open().unwrap_or_else(Instant::now),
                _ => Instant::now(),
            };
            let since = self.target.sup.ready_since();
            let Some((death, exit)) = self.death_of(ev).await else { break };
            let _ = self.state.send(TargetState { down: true, died_at: Some(Instant::now()) });
            let d = self.save_death(at, death, exit, since, failed_at).await;
            let said = describe(&d);
            let count = {
                let mut all = self.shared.lock().unwrap_or_else(|e| e.into_inner());
                all.push(d);
                all.len()
            };
            if !self.restart(count, &said, &done).await {
                let _ = self.phase_stop.send(true);
                break;
            }
        }
    }

    /// What an event of the supervisor means: a death (a hung target is killed first), or
    /// `None` when watching ends (the target went away, the supervisor stopped).
    async fn death_of(&mut self, ev: Result<WatchEvent>) -> Option<(Death, Option<ExitInfo>)> {
        match ev {
            Ok(WatchEvent::Died { exit, .. }) => Some((exit.death(), Some(exit))),
            Ok(WatchEvent::Hung { stuck_s, .. }) => {
                let _ = self.state.send(TargetState { down: true, died_at: Some(Instant::now()) });
                (self.env.say)(format!(
                    "the target hung: requests waited {stuck_s:.1} s without an answer and the probe timed out: killing it"
                ));
                Some((Death::Hang, self.target.sup.kill_hung().await))
            }
            Ok(WatchEvent::Gone { .. }) => {
                (self.env.say)(
                    "the target stopped accepting connections (not started by mesher-stress: it cannot be restarted)"
                        .into(),
                );
                let _ = self.phase_stop.send(true);
                None
            }
            Ok(WatchEvent::Ready { .. }) | Err(_) => None,
        }
    }

    /// The death with its suspects, the dead incarnation's log and, within the records' bounds,
    /// its exact inputs saved as `deaths/death-N.json`.
    async fn save_death(
        &mut self,
        at: SystemTime,
        death: Death,
        exit: Option<ExitInfo>,
        since: Instant,
        failed_at: Instant,
    ) -> PhaseDeath {
        let run_dir = self.env.run_dir;
        let (suspects, hot) = self.flight.suspects_around(SUSPECTS, since, failed_at, HOT_WINDOW);
        let log = self.target.save_log(run_dir);
        let n = self.target.logs;
        let deaths_so_far = self.shared.lock().unwrap_or_else(|e| e.into_inner()).len();
        let record = if deaths_so_far < MAX_DEATH_RECORDS && self.record_bytes < MAX_RECORD_BYTES {
            let (inputs, hot) = exact_inputs(&suspects, hot, self.generator, self.load, MAX_SUSPECT_BYTES);
            let rec = DeathRecord {
                phase: self.load.name.clone(),
                n,
                at: humantime::format_rfc3339_millis(at).to_string(),
                death,
                exit: exit.clone(),
                target: self.description.clone(),
                suspects: inputs,
                hot,
                hot_routes: hot_routes(&suspects, hot),
            };
            self.record_bytes +=
                rec.suspects.iter().map(|g| crate::triage::shrink::payload_size(&g.payload)).sum::<usize>();
            save_record(run_dir, n, &rec).await
        } else {
            None
        };
        PhaseDeath { at, death, exit, ready: None, error: None, log, n, suspects, hot, inputs: record }
    }

    /// Start the target again after the `count`th death when the phase may; true when it is
    /// back and the phase goes on. Why it is not is noted on the death.
    async fn restart(&mut self, count: usize, said: &str, done: &watch::Receiver<bool>) -> bool {
        let (load, stop) = (self.load, &self.env.stop);
        let again = load.restart && count <= load.max_restarts as usize;
        let may = again && self.started && !*done.borrow() && !*stop.borrow();
        if !may {
            if load.restart && !again {
                self.note(None, Some(format!("max_restarts ({}) reached", load.max_restarts)));
            }
            return false;
        }
        if count <= 5 || self.last_said.elapsed() >= Duration::from_secs(5) {
            (self.env.say)(format!("the target {said}: restarting it ({count} of at most {})", load.max_restarts));
            self.last_said = Instant::now();
        }
        let s2 = stop.clone();
        let stopping = move || *s2.borrow();
        match self.target.sup.restart(&stopping).await {
            Ok(_) if self.target.sup.addrs() != self.addrs => {
                self.note(
                    None,
                    Some(format!(
                        "the restarted target listens on {} instead of {}: give it fixed ports (target.http / target.ws, or MESHER_HTTP_PORT / MESHER_WS_PORT)",
                        self.target.sup.addrs().http,
                        self.addrs.http
                    )),
                );
                false
            }
            Ok(_) => {
                self.note(Some(SystemTime::now()), None);
                self.state.send_modify(|s| s.down = false);
                true
            }
            Err(e) => {
                let text = format!("{e:#}");
                if !*stop.borrow() {
                    (self.env.say)(text.clone());
                    self.target.lost = Some(text.clone());
                }
                self.note(None, Some(text));
                false
            }
        }
    }

    /// How the restart after the latest death went: when the target was ready again, or why not.
    fn note(&self, ready: Option<SystemTime>, error: Option<String>) {
        if let Some(d) = self.shared.lock().unwrap_or_else(|e| e.into_inner()).last_mut() {
            d.ready = ready;
            d.error = error;
        }
    }
}

/// The phase's deaths become its outages; with a triage spec they are triaged first, after the
/// traffic, on the lent target, and each outage names the bucket its death landed in.
async fn add_deaths(
    env: &Env<'_>,
    load: &LoadPhase,
    target: &mut Target,
    r: &mut PhaseReport,
    deaths: Vec<PhaseDeath>,
    triage_spec: Option<&crate::triage::phase::TriageSpec>,
    generator: Arc<Generator>,
) -> Result<()> {
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
    if let Some(spec) = triage_spec.filter(|_| !to_triage.is_empty()) {
        let t = super::triage::triage_deaths(env, target, spec, to_triage, generator, load).await?;
        for (o, res) in outages.iter_mut().zip(&t.results) {
            o.bucket = res.bucket_id.clone();
        }
        r.triage = Some(t);
    }
    for o in outages {
        r.add_death(o);
    }
    Ok(())
}

/// The soak verdicts, last: over the target's samples of the whole run; a flagged finding fails
/// the phase.
fn add_soak(load: &LoadPhase, target: &Target, r: &mut PhaseReport) {
    let Some(spec) = load.soak.as_ref().filter(|s| s.enabled) else { return };
    let samples = target.sup.telemetry().lock().unwrap_or_else(|e| e.into_inner()).clone();
    let soak = crate::report::soak::analyse_phase(r, &samples, spec);
    if soak.flagged {
        r.passed = false;
    }
    r.soak = Some(soak);
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
