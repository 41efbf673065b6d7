//! Checkpoints: while a run goes on, its directory is brought up to date every
//! `checkpoint_every` (profile key, default one minute) and after every phase, so a run killed
//! after six hours still leaves six hours of data, and `mesher-stress report RUN_DIR` renders it.
//!
//! A checkpoint writes, each file atomically (`crate::util::fs`):
//! - `report.json`: the finished phases, the running load phase's report so far (through the
//!   phase's [`PhaseView`]: histograms, timeline, thresholds on what was measured), the
//!   target's telemetry so far, the crashes seen, `"partial": true` and a `checkpoint` object
//!   (time, running phase, interval);
//! - `report.html` and `junit.xml` rendered from it (a "run finished" test case fails, so CI
//!   never mistakes a killed run for a pass);
//! - `target.log` (the lines kept so far).
//!
//! The HdrHistogram interval log of the running phase is written every second by the
//! aggregator and flushed to disk (`fdatasync`) when the checkpoint asks for its totals.
//! A checkpoint that cannot be written (disk full) is reported on stderr and the run goes on.

use crate::drive::PhaseView;
use crate::report::{Checkpoint, RunPhase, RunReport};
use crate::watch::process::LogHandle;
use crate::watch::sampler::ProcSample;
use anyhow::Result;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A death (or hang) of the running load phase, as its watchdog saw it. The phase keeps its
/// deaths here while it runs, so every checkpoint has them all (with their suspects), and a run
/// killed mid-phase keeps what it found.
#[derive(Debug, Clone)]
pub struct PhaseDeath {
    pub at: SystemTime,
    pub death: crate::watch::Death,
    pub exit: Option<crate::watch::ExitInfo>,
    /// When a new incarnation was ready again (None: not restarted, or not yet).
    pub ready: Option<SystemTime>,
    /// Why it was not restarted.
    pub error: Option<String>,
    /// The dead incarnation's output (`target-<n>.log`), and the death's number.
    pub log: String,
    pub n: usize,
    pub suspects: Vec<crate::drive::FlightEntry>,
    /// How many of the first suspects are hot.
    pub hot: usize,
    /// The saved exact inputs (`deaths/death-<n>.json`).
    pub inputs: Option<String>,
}

impl PhaseDeath {
    /// The outage this death is in a phase that started at `started_at_ms` (Unix ms); one not
    /// restarted lasts until `end_s`.
    pub fn outage(&self, started_at_ms: u64, end_s: f64) -> crate::report::load::Outage {
        let phase_s = |t: SystemTime| {
            let ms = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as f64).unwrap_or(0.0);
            ((ms - started_at_ms as f64) / 1000.0).max(0.0)
        };
        let start_s = phase_s(self.at);
        let end_s = self.ready.map(phase_s).unwrap_or(end_s).max(start_s);
        let mut detail = vec![format!("its output: {}", self.log)];
        detail.extend(self.error.clone());
        crate::report::load::Outage {
            cause: crate::report::load::OutageCause::Death,
            start_s: (start_s * 100.0).round() / 100.0,
            end_s: (end_s * 100.0).round() / 100.0,
            peak_in_flight: 0,
            failed: 0,
            exit: self.exit.clone(),
            restarted: self.ready.is_some(),
            detail: detail.join("; "),
            suspects: self.suspects.clone(),
            death: Some(self.death),
            inputs: self.inputs.clone(),
            bucket: None,
        }
    }
}

/// The running load phase's deaths (see [`PhaseDeath`]).
pub type PhaseDeaths = Arc<Mutex<Vec<PhaseDeath>>>;

/// See the module docs.
pub struct Checkpointer {
    dir: PathBuf,
    every: Duration,
    tick: tokio::time::Interval,
    /// The run's start (for `elapsed_ms`).
    origin: Instant,
    telemetry: Arc<Mutex<Vec<ProcSample>>>,
    /// The running load phase's report so far (put into its `PhaseCtx`).
    pub view: PhaseView,
    /// The running load phase's deaths so far.
    pub deaths: PhaseDeaths,
    /// The running fuzz phase's report so far.
    pub fuzz: crate::triage::fuzz::FuzzProgress,
    /// Checkpoints written.
    pub written: u64,
}

impl Checkpointer {
    /// Checkpoints of the run directory `dir` every `every`, the first one `every` from now.
    pub fn new(dir: PathBuf, every: Duration, origin: Instant, telemetry: Arc<Mutex<Vec<ProcSample>>>) -> Checkpointer {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Checkpointer {
            dir,
            every,
            tick,
            origin,
            telemetry,
            view: PhaseView::new(),
            deaths: PhaseDeaths::default(),
            fuzz: Default::default(),
            written: 0,
        }
    }

    /// Write a checkpoint now (`running`: the 1-based phase still going, if any).
    ///
    /// The report is assembled, serialised and rendered on a thread of its own, and the running
    /// phase's part of it is built on another (see [`crate::util::thread::on_own_thread`]); the caller waits.
    pub async fn write(
        &mut self,
        report: &RunReport,
        running: Option<usize>,
        target: Option<&LogHandle>,
    ) -> Result<()> {
        let phase = self.view.read(crate::report::PhaseReport::build).await;
        let deaths =
            if phase.is_some() { self.deaths.lock().unwrap_or_else(|e| e.into_inner()).clone() } else { Vec::new() };
        let fuzz = self.fuzz.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut written = Ok(());
        crate::util::thread::on_own_thread(
            "mesher-checkpoint",
            |_: &()| {
                let mut r = report.clone();
                if let (Some(f), Some(n)) = (fuzz, running) {
                    r.add_fuzz(n, f);
                }
                let r = assemble(r, phase, &deaths, &self.telemetry, self.origin, self.every, running);
                written = crate::report::write_all(&self.dir, &r);
                if let (Ok(()), Some(p)) = (&written, target) {
                    crate::watch::process::write_log(&self.dir.join("target.log"), &p.lines());
                }
            },
            &(),
        );
        written?;
        self.written += 1;
        Ok(())
    }

    /// [`Checkpointer::write`], with a failure reported on stderr (the run goes on).
    pub async fn write_or_warn(&mut self, report: &RunReport, running: Option<usize>, target: Option<&LogHandle>) {
        if let Err(e) = self.write(report, running, target).await {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "warning: checkpoint of {} failed: {e:#}", self.dir.display());
        }
    }

    /// Drive `phase` (the 1-based phase `running`) to its end, writing a checkpoint whenever
    /// one is due meanwhile.
    pub async fn during<F: Future>(
        &mut self,
        report: &RunReport,
        running: usize,
        target: Option<&LogHandle>,
        phase: F,
    ) -> F::Output {
        tokio::pin!(phase);
        loop {
            tokio::select! {
                biased;
                out = &mut phase => return out,
                _ = self.tick.tick() => self.write_or_warn(report, Some(running), target).await,
            }
        }
    }
}

/// `report` (finished phases) with the running phase's report so far, the telemetry so far and
/// the checkpoint's marks.
fn assemble(
    mut r: RunReport,
    phase: Option<crate::report::PhaseReport>,
    deaths: &[PhaseDeath],
    telemetry: &Mutex<Vec<ProcSample>>,
    origin: Instant,
    every: Duration,
    running: Option<usize>,
) -> RunReport {
    if let Some(mut p) = phase {
        // The running phase's deaths and hangs so far, as its report will have them.
        for d in deaths {
            p.add_death(d.outage(p.started_at_ms, p.elapsed_s));
            match &d.exit {
                _ if d.death == crate::watch::Death::Hang => r.hangs.push(format!(
                    "load phase {:?}: hang at {} (killed)",
                    p.name,
                    humantime::format_rfc3339_seconds(d.at)
                )),
                Some(e) if !r.crashes.contains(e) => r.crashes.push(e.clone()),
                _ => {}
            }
        }
        p.restarts = deaths.iter().filter(|d| d.ready.is_some()).count() as u64;
        r.phases.push(RunPhase::Load(Box::new(p)));
    }
    r.buckets = crate::report::run_buckets(&r);
    r.telemetry = telemetry.lock().unwrap_or_else(|e| e.into_inner()).clone();
    r.elapsed_ms = origin.elapsed().as_millis() as u64;
    r.partial = true;
    r.checkpoint = Some(Checkpoint {
        at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        running_phase: running,
        every_ms: every.as_millis() as u64,
    });
    r.verdict.failed |= r.phases.iter().any(RunPhase::failed);
    r.verdict.crashed = r.found_crashes();
    r.verdict.exit_code = crate::exit::verdict(r.verdict.failed, r.verdict.crashed);
    r
}
