//! One crash from observation to bucket ([`Triager::on_crash`], [`Triager::on_death`]) in
//! stages with plain data between them: attribution ([`Triager`] here: known-shape fast paths,
//! then [`attribution::attribute`] → [`Attributed`]), then minimisation, the bucket key and
//! filing (`file.rs`: [`Minimised`](super::file::Minimised) →
//! [`Signature`](super::bucket::Signature) → a bucket in the [`Store`]).
//!
//! Plugging in the driver: hand `on_crash` the death the watchdog saw and the flight
//! recorder's suspects (unanswered first, then most recent first). Plugging in another target:
//! implement [`TargetFactory`]. The fuzz phase (`fuzz.rs`) and the triage of a load phase's
//! deaths (`records.rs`) drive a [`Triager`]; their types are re-exported here, where the rest
//! of the tool names them.

use super::Death;
use super::attribution::{self, AttributionOptions, Culprits};
use super::bucket::{self, Meta, Store};
use super::kind::{CrashKind, Verdict};
use super::oracle::{Oracle, OracleOptions};
use super::shrink;
use super::target::TargetFactory;
use crate::model::Generated;
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Triage settings.
#[derive(Debug, Clone)]
pub struct TriageOptions {
    pub oracle: OracleOptions,
    pub attribution: AttributionOptions,
    /// Reproduction-rate tries (serial and concurrent each) for meta.json.
    pub repro_tries: usize,
    /// Re-run the minimised reproducer under gdb for backtrace frames.
    pub gdb: bool,
    /// Budget of the minimisation (executions and wall time); what is reached is kept.
    pub max_executions: u64,
    pub max_time: Duration,
    pub run_seed: Option<u64>,
    /// The profile of the run (recorded in new buckets for `replay`).
    pub profile: Option<PathBuf>,
}

impl Default for TriageOptions {
    fn default() -> Self {
        let probe = super::oracle::default_probe();
        TriageOptions {
            oracle: OracleOptions::new(probe.clone()),
            attribution: AttributionOptions::new(probe),
            repro_tries: 3,
            gdb: false,
            max_executions: 2000,
            max_time: Duration::from_secs(300),
            run_seed: None,
            profile: None,
        }
    }
}

/// What triage of one crash produced.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TriageReport {
    pub death: Death,
    /// None when the crash could not be reproduced.
    pub bucket_id: Option<String>,
    pub dir: Option<PathBuf>,
    pub new_bucket: bool,
    /// True when counted against a known bucket without replaying (coarse key matched).
    pub fast_path: bool,
    pub kind: Verdict,
    pub executions: u64,
    pub restarts: u64,
    pub seconds: f64,
    pub size_before: usize,
    pub size_after: usize,
    /// The input that killed it (a single culprit), for a fuzzer to learn from; not reported.
    #[serde(skip)]
    pub culprit: Option<Generated>,
}

impl TriageReport {
    /// The report of a death no bucket holds (yet); the rest is filled in by whoever knows it.
    pub fn unfiled(death: Death, kind: Verdict) -> TriageReport {
        TriageReport {
            death,
            bucket_id: None,
            dir: None,
            new_bucket: false,
            fast_path: false,
            kind,
            executions: 0,
            restarts: 0,
            seconds: 0.0,
            size_before: 0,
            size_after: 0,
            culprit: None,
        }
    }
}

/// Death + route + skeleton of the unminimised payload: equal keys are counted against the
/// bucket they were attributed to before, without re-triage.
pub fn coarse_key(death: &Death, g: &Generated) -> String {
    format!("{}|{}|{}", death.key(), shrink::route_key(&g.payload), bucket::payload_shape(&g.payload))
}

/// Where triage of one death stands after attribution.
pub(super) enum Step {
    /// Counted against a known bucket, or not reproduced.
    Done(TriageReport),
    /// Attributed to its culprit(s), to be minimised and filed.
    Attributed(Attributed),
}

/// A death attributed to its culprit(s), not yet minimised: what the filing stages take.
pub struct Attributed {
    pub observed: Death,
    pub culprits: Culprits,
    /// The culprits' route(s), e.g. `issue-assign`.
    pub route: String,
    /// The first culprit's coarse key (none for a cumulative crash), recorded in its bucket.
    pub culprit_key: Option<String>,
    pub started: Instant,
    /// Seconds the attribution took.
    pub attributed_in: f64,
    /// Oracle executions and target restarts of the attribution.
    pub executions: u64,
    pub restarts: u64,
}

pub struct Triager<'f> {
    pub factory: &'f dyn TargetFactory,
    pub store: Store,
    pub opts: TriageOptions,
}

impl<'f> Triager<'f> {
    pub fn new(factory: &'f dyn TargetFactory, store: Store, opts: TriageOptions) -> Triager<'f> {
        Triager { factory, store, opts }
    }

    /// Replay `input` alone on a fresh target to learn how it kills, then triage it.
    pub fn minimize_input(&mut self, input: Generated) -> Result<TriageReport> {
        let mut oracle = Oracle::new(self.factory, self.opts.oracle.clone());
        let out = oracle.execute_raw(std::slice::from_ref(&input.payload), 1, false)?;
        let death = match out.death {
            Some(d) => d,
            None => {
                let hang = oracle.execute_raw(std::slice::from_ref(&input.payload), 1, true)?;
                match hang.death {
                    Some(d) => d,
                    None => anyhow::bail!(
                        "the input does not kill or hang the target ({}); replies: {:?}",
                        self.factory.describe(),
                        out.replies
                    ),
                }
            }
        };
        drop(oracle);
        self.on_crash(death, std::slice::from_ref(&input))
    }

    /// Triage one death of the serial fuzz loop, whose suspects start with the input that was
    /// last sent (so the first suspect is very likely the culprit, and a known coarse key of it
    /// counts the death without any replay).
    pub fn on_crash(&mut self, observed: Death, suspects: &[Generated]) -> Result<TriageReport> {
        match self.attribute(observed, suspects, true)? {
            Step::Done(r) => Ok(r),
            Step::Attributed(a) => self.file(a),
        }
    }

    /// Triage one death of concurrent traffic (a load phase): many requests were in flight, so
    /// the culprit is attributed first; a culprit whose coarse key a bucket already holds is
    /// counted there without minimising it again. Before any replay, a death whose `hot` first
    /// suspects (in flight or answered right at the failure) include an input of a shape some
    /// bucket holds, dying the same way, is counted there by that shape: one crash that fires
    /// every few seconds is then triaged once, not hundreds of times.
    pub fn on_death(&mut self, observed: Death, suspects: &[Generated], hot: usize) -> Result<TriageReport> {
        match self.on_death_step(observed, suspects, hot)? {
            Step::Done(r) => Ok(r),
            Step::Attributed(a) => self.file(a),
        }
    }

    pub(super) fn on_death_step(&mut self, observed: Death, suspects: &[Generated], hot: usize) -> Result<Step> {
        let started = Instant::now();
        for g in suspects.iter().take(hot) {
            if let Some(m) = self.store.find_coarse(&coarse_key(&observed, g))? {
                let m = self.store.hit(&m.bucket_id, None)?;
                return Ok(Step::Done(self.counted(observed, &m, Verdict::ByShape(m.kind), started, None)));
            }
        }
        self.attribute(observed, suspects, false)
    }

    /// The report of a death counted against the known bucket `m` without minimising.
    pub(super) fn counted(
        &self,
        observed: Death,
        m: &Meta,
        kind: Verdict,
        started: Instant,
        oracle: Option<&Oracle>,
    ) -> TriageReport {
        TriageReport {
            bucket_id: Some(m.bucket_id.clone()),
            dir: Some(self.store.bucket_dir(&m.bucket_id)),
            fast_path: true,
            executions: oracle.map(|o| o.stats.executions).unwrap_or(0),
            restarts: oracle.map(|o| o.stats.restarts).unwrap_or(0),
            seconds: started.elapsed().as_secs_f64(),
            ..TriageReport::unfiled(observed, kind)
        }
    }

    /// The first stage of triage: known-shape fast paths, then attribution; a culprit whose
    /// coarse key a bucket holds is counted there.
    fn attribute(&mut self, observed: Death, suspects: &[Generated], first_is_culprit: bool) -> Result<Step> {
        let started = Instant::now();
        if let Some(first) = suspects.first().filter(|_| first_is_culprit)
            && let Some(m) = self.store.find_coarse(&coarse_key(&observed, first))?
        {
            let m = self.store.hit(&m.bucket_id, None)?;
            let mut r = self.counted(observed, &m, Verdict::Filed(m.kind), started, None);
            r.culprit = Some(first.clone());
            return Ok(Step::Done(r));
        }
        let mut oracle = Oracle::new(self.factory, self.opts.oracle.clone());
        let aopts = AttributionOptions { sweep: !first_is_culprit, ..self.opts.attribution.clone() };
        let att = attribution::attribute(&mut oracle, &observed, suspects, &aopts)?;
        let Some(culprits) = att.culprits() else {
            return Ok(Step::Done(TriageReport {
                executions: oracle.stats.executions,
                restarts: oracle.stats.restarts,
                seconds: started.elapsed().as_secs_f64(),
                size_before: suspects.iter().map(|g| shrink::payload_size(&g.payload)).sum(),
                ..TriageReport::unfiled(observed, Verdict::NotReproduced)
            }));
        };
        // The culprit's coarse key: a culprit like one a bucket already holds is that bucket.
        let culprit_key = (culprits.kind != CrashKind::Cumulative).then(|| coarse_key(&observed, &culprits.inputs[0]));
        if let Some(k) = &culprit_key
            && let Some(m) = self.store.find_coarse(k)?
        {
            let m = self.store.hit(&m.bucket_id, None)?;
            let mut r = self.counted(observed, &m, Verdict::Filed(culprits.kind), started, Some(&oracle));
            r.culprit = culprits.single().cloned();
            return Ok(Step::Done(r));
        }
        let route = bucket::routes_of(&culprits.payloads()).join(",");
        Ok(Step::Attributed(Attributed {
            observed,
            culprits,
            route,
            culprit_key,
            started,
            attributed_in: started.elapsed().as_secs_f64(),
            executions: oracle.stats.executions,
            restarts: oracle.stats.restarts,
        }))
    }
}
