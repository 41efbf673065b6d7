//! The `fuzz` phase of a profile: fuzz traffic with the watchdog and triage on, bounded in
//! time, ending with the bucket table. [`FuzzPhaseSpec`] is its TOML table (`kind = "fuzz"`);
//! [`run`] runs it (blocking work on the blocking pool). Inputs come from any
//! [`crate::generate::Generator`] with the phase's `mix` (default: fuzz-heavy, ingestion
//! weighted up); the generators know the API, not the target's planted faults.
//!
//! The run lends its own target to the phase ([`crate::watch::launch::Launch`] with the ports
//! pinned): built-in and command targets alike, every incarnation on the same ports, never a
//! second copy beside the run's. The readiness probe of the launch is also the hang probe.

use super::bucket::Store;
use super::fuzz::{self, FuzzOptions, FuzzReport, ReplaySender};
use super::session::TriageOptions;
use crate::generate::campaign::{Campaign, Steer};
use crate::model::Source;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

macro_rules! dur_default {
    ($name:ident, $v:expr) => {
        fn $name() -> Duration {
            $v
        }
    };
}
dur_default!(d_duration, Duration::from_secs(120));
dur_default!(d_settle, Duration::from_millis(20));
dur_default!(d_hang, Duration::from_secs(2));
dur_default!(d_grace, Duration::from_millis(300));
dur_default!(d_timeout, Duration::from_secs(5));
dur_default!(d_max_time, Duration::from_secs(180));
dur_default!(d_budget, Duration::from_secs(600));

fn yes() -> bool {
    true
}
fn d_recorder() -> usize {
    32
}
fn d_corpus() -> PathBuf {
    PathBuf::from("corpus/crashes")
}
fn d_execs() -> u64 {
    2000
}
fn d_tries() -> usize {
    3
}
fn d_cumulative() -> u64 {
    5000
}
fn d_conc() -> usize {
    4
}

/// `[[phases]] kind = "fuzz"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuzzPhaseSpec {
    /// How long to fuzz (the phase also ends at the profile's max_duration).
    #[serde(with = "crate::util::duration::human", default = "d_duration")]
    pub duration: Duration,
    /// At most this many inputs.
    #[serde(default)]
    pub max_inputs: Option<u64>,
    /// Stop once this many distinct crash buckets were hit in this phase (hunting mode).
    #[serde(default)]
    pub stop_after_buckets: Option<usize>,
    /// After each answer, wait this long for a death (crashes that follow the response).
    #[serde(with = "crate::util::duration::human", default = "d_settle")]
    pub settle: Duration,
    /// Flight recorder size: the suspects handed to triage.
    #[serde(default = "d_recorder")]
    pub recorder: usize,
    /// Watchdog: a timed-out input triggers a probe; the target is hung when the probe takes
    /// longer than this.
    #[serde(with = "crate::util::duration::human", default = "d_hang")]
    pub hang_probe_timeout: Duration,
    /// Traffic mix (the generators' `Mix`): layer weights and per-route weights.
    #[serde(default = "d_mix")]
    pub mix: crate::generate::Mix,
    /// The field campaign (`generate::campaign`): walk every (route, field, operator) pair of
    /// the mix's routes once, then random pairs, mutation of a feedback corpus and the mix;
    /// crashes already filed are avoided. False: the mix alone.
    #[serde(default)]
    pub fields: bool,
    /// A feedback corpus saved by an earlier run (`RUN_DIR/fuzz-corpus-N`, N the phase) to start from.
    #[serde(default)]
    pub seed_corpus: Option<PathBuf>,
    #[serde(default)]
    pub triage: TriageSpec,
}

/// Fuzz-heavy by default: mostly mutated traffic, authenticated ingestion weighted up (the
/// ABI-crash-prone paths of §6.1).
fn d_mix() -> crate::generate::Mix {
    crate::generate::Mix {
        valid: 0.3,
        json: 0.5,
        http: 0.2,
        ws: 0.0,
        routes: [("events-ingest".to_string(), 24.0), ("events-bulk".to_string(), 6.0)].into_iter().collect(),
    }
}

/// `[phases.triage]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Crash corpus (buckets) directory.
    #[serde(default = "d_corpus")]
    pub corpus: PathBuf,
    /// Backtrace frames from a gdb re-run in the signature.
    #[serde(default)]
    pub gdb: bool,
    #[serde(with = "crate::util::duration::human", default = "d_grace")]
    pub grace: Duration,
    #[serde(with = "crate::util::duration::human", default = "d_timeout")]
    pub timeout: Duration,
    #[serde(default = "d_execs")]
    pub max_executions: u64,
    #[serde(with = "crate::util::duration::human", default = "d_max_time")]
    pub max_time: Duration,
    #[serde(default = "d_tries")]
    pub repro_tries: usize,
    #[serde(default = "d_cumulative")]
    pub cumulative_max: u64,
    #[serde(default = "d_conc")]
    pub concurrency: usize,
    /// A load phase's triage (after its traffic): at most this long for all its deaths; deaths
    /// not reached keep their suspects in the run directory (`minimize --run`).
    #[serde(with = "crate::util::duration::human", default = "d_budget")]
    pub budget: Duration,
}

impl Default for TriageSpec {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

impl FuzzPhaseSpec {
    /// Checks the profile validation runs.
    /// `attached`: the target is a URL the tool did not start (it cannot be restarted).
    pub fn validate(&self, attached: bool) -> Result<()> {
        if attached {
            bail!(
                "phases: kind = \"fuzz\" needs a target the tool starts (kind = \"builtin\" or \"command\"): it restarts the target after every death"
            );
        }
        if self.duration.is_zero() || self.recorder == 0 || self.triage.repro_tries == 0 {
            bail!("phases.fuzz: duration, recorder and triage.repro_tries must be > 0");
        }
        if self.seed_corpus.is_some() && !self.fields {
            bail!("phases.fuzz: seed_corpus needs fields = true (the corpus feeds the field campaign)");
        }
        if let Some(d) = &self.seed_corpus
            && !d.is_dir()
        {
            bail!("phases.fuzz: seed_corpus {} is not a directory (a run's fuzz-corpus)", d.display());
        }
        Ok(())
    }
}

impl TriageSpec {
    /// The triage settings; `probe` (the target's readiness probe) confirms hangs and is the
    /// benign request of the cumulative test.
    pub fn options(&self, run_seed: u64, probe: &crate::model::Payload) -> TriageOptions {
        let mut o = TriageOptions::default();
        o.oracle.probe = probe.clone();
        o.attribution.benign = probe.clone();
        o.oracle.grace = self.grace;
        o.oracle.timeout = self.timeout;
        // A fresh target answers the probe in milliseconds; every reproduced hang waits this
        // long, and a hang's minimisation reproduces it again and again.
        o.oracle.probe_timeout = (self.timeout / 2).clamp(Duration::from_millis(500), Duration::from_secs(2));
        o.attribution.cumulative_max = self.cumulative_max;
        o.attribution.concurrency = self.concurrency;
        o.repro_tries = self.repro_tries;
        o.gdb = self.gdb;
        o.max_executions = self.max_executions;
        o.max_time = self.max_time;
        o.run_seed = Some(run_seed);
        o
    }
}

enum PhaseSource {
    Mix(Arc<dyn Source>),
    Campaign(Box<Campaign>),
}

/// Where a fuzz phase's results go besides its report.
pub struct Outputs {
    /// The report so far, for checkpoints.
    pub progress: fuzz::FuzzProgress,
    /// A field campaign's feedback corpus is saved here.
    pub corpus: Option<PathBuf>,
}

/// Run a fuzz phase against fresh incarnations of `launch` (the run's target, lent: nothing
/// else runs on its ports meanwhile). Blocking work is moved to the blocking pool.
pub async fn run(
    spec: &FuzzPhaseSpec,
    launch: crate::watch::launch::Launch,
    fixtures: &crate::db::fixtures::Fixtures,
    run_seed: u64,
    profile: Option<PathBuf>,
    out: Outputs,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<FuzzReport> {
    let Outputs { progress, corpus: corpus_out } = out;
    spec.mix.validate()?;
    let generator = crate::generate::Generator::new(
        run_seed,
        fixtures.clone(),
        spec.mix.clone(),
        crate::generate::GenOptions::default(),
    );
    let source = if spec.fields {
        let mut c = Campaign::new(generator, &spec.mix);
        if let Some(d) = &spec.seed_corpus {
            c = c.with_corpus(d)?;
        }
        PhaseSource::Campaign(Box::new(c))
    } else {
        PhaseSource::Mix(Arc::new(generator))
    };
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&spec.triage.corpus)?;
        let fopts = FuzzOptions {
            duration: spec.duration,
            max_inputs: spec.max_inputs,
            stream: 0,
            recorder: spec.recorder,
            hang_probe_timeout: spec.hang_probe_timeout,
            triage: spec.triage.enabled,
            settle: spec.settle,
            stop_after_buckets: spec.stop_after_buckets,
            progress: Some(progress),
        };
        let mut sender = ReplaySender { timeout: spec.triage.timeout };
        let stop_fn = || stop.load(std::sync::atomic::Ordering::SeqCst) || crate::signals::was_interrupted();
        let mut topts = spec.triage.options(run_seed, &launch.readiness.probe);
        topts.profile = profile;
        let inputs = match &source {
            PhaseSource::Campaign(c) => fuzz::Inputs::Steered(c.as_ref() as &dyn Steer),
            PhaseSource::Mix(g) => fuzz::Inputs::Plain(g.clone()),
        };
        let r = fuzz::fuzz_phase(inputs, &mut sender, &launch, store, topts, &fopts, &stop_fn)?;
        if let (PhaseSource::Campaign(c), Some(dir)) = (&source, corpus_out) {
            let n = c.save_corpus(&dir)?;
            eprintln!("fuzz: {n} input(s) of the feedback corpus in {}", dir.display());
        }
        Ok(r)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults_parse() {
        let spec: FuzzPhaseSpec = toml::from_str("duration = \"30s\"\n[triage]\ngdb = true\n").unwrap();
        assert_eq!(spec.duration, Duration::from_secs(30));
        assert!(spec.triage.gdb && spec.triage.enabled);
        assert_eq!(spec.triage.corpus, PathBuf::from("corpus/crashes"));
        assert!(toml::from_str::<FuzzPhaseSpec>("nope = 1").is_err());
        spec.mix.validate().unwrap();
        let spec: FuzzPhaseSpec = toml::from_str("[mix]\nvalid = 1.0\njson = 0.0\nhttp = 0.0\n").unwrap();
        assert_eq!(spec.mix.valid, 1.0);
    }
}
