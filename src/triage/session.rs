//! One crash from observation to bucket ([`Triager::on_crash`]), and the fuzz+triage phase
//! ([`fuzz_phase`]) that the profile's `fuzz` phase runs.
//!
//! Plugging in the driver: hand `on_crash` the death the watchdog saw and the flight
//! recorder's suspects (unanswered first, then most recent first). Plugging in another target:
//! implement [`TargetFactory`]. The fuzz phase takes any [`Source`] and a [`Sender`] (the
//! built-in [`ReplaySender`] is a real serial sender over this module's executor).

use super::Death;
use super::attribution::{self, Attribution, AttributionOptions};
use super::bucket::{self, Meta, ReproInputs, ReproRate, Signature, Store};
use super::exec::{Addrs, Reply};
use super::oracle::{Oracle, OracleOptions};
use super::shrink;
use super::target::{TargetFactory, TargetHandle};
use crate::generate::campaign::{Answer, Steer};
use crate::model::{Generated, Payload, Source};
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
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
    pub kind: String,
    pub executions: u64,
    pub restarts: u64,
    pub seconds: f64,
    pub size_before: usize,
    pub size_after: usize,
    /// The input that killed it (a single culprit), for a fuzzer to learn from; not reported.
    #[serde(skip)]
    pub culprit: Option<Generated>,
}

/// Death + route + skeleton of the unminimised payload: equal keys are counted against the
/// bucket they were attributed to before, without re-triage.
pub fn coarse_key(death: &Death, g: &Generated) -> String {
    format!("{}|{}|{}", death.key(), shrink::route_key(&g.payload), bucket::payload_shape(&g.payload))
}

/// Where triage of one death stands after attribution.
enum Step {
    /// Counted against a known bucket, or not reproduced.
    Done(TriageReport),
    /// Attributed to its culprit(s), to be minimised and filed.
    Attributed(Culprit),
}

/// A death attributed to its culprit(s), not yet minimised.
pub struct Culprit {
    observed: Death,
    att: Attribution,
    /// The culprits' route(s), e.g. `issue-assign`.
    route: String,
    culprit_key: Option<String>,
    started: Instant,
    /// Seconds the attribution took.
    attributed_in: f64,
    executions: u64,
    restarts: u64,
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
        self.triage(observed, suspects, true)
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
            Step::Attributed(c) => self.file(c),
        }
    }

    fn on_death_step(&mut self, observed: Death, suspects: &[Generated], hot: usize) -> Result<Step> {
        let started = Instant::now();
        for g in suspects.iter().take(hot) {
            if let Some(m) = self.store.find_coarse(&coarse_key(&observed, g))? {
                let m = self.store.hit(&m.bucket_id, None)?;
                let mut r = self.counted(observed, &m, &m.kind, true, started, None);
                r.kind = format!("{} (by shape)", m.kind);
                return Ok(Step::Done(r));
            }
        }
        self.attribute(observed, suspects, false)
    }

    fn counted(
        &self,
        observed: Death,
        m: &Meta,
        kind: &str,
        fast: bool,
        started: Instant,
        oracle: Option<&Oracle>,
    ) -> TriageReport {
        TriageReport {
            death: observed,
            bucket_id: Some(m.bucket_id.clone()),
            dir: Some(self.store.bucket_dir(&m.bucket_id)),
            new_bucket: false,
            fast_path: fast,
            kind: kind.into(),
            executions: oracle.map(|o| o.stats.executions).unwrap_or(0),
            restarts: oracle.map(|o| o.stats.restarts).unwrap_or(0),
            seconds: started.elapsed().as_secs_f64(),
            size_before: 0,
            size_after: 0,
            culprit: None,
        }
    }

    fn triage(&mut self, observed: Death, suspects: &[Generated], first_is_culprit: bool) -> Result<TriageReport> {
        match self.attribute(observed, suspects, first_is_culprit)? {
            Step::Done(r) => Ok(r),
            Step::Attributed(c) => self.file(c),
        }
    }

    /// The first half of triage: known-shape fast paths, then attribution; a culprit whose
    /// coarse key a bucket holds is counted there.
    fn attribute(&mut self, observed: Death, suspects: &[Generated], first_is_culprit: bool) -> Result<Step> {
        let started = Instant::now();
        if let Some(first) = suspects.first().filter(|_| first_is_culprit) {
            let key = coarse_key(&observed, first);
            if let Some(m) = self.store.find_coarse(&key)? {
                let m = self.store.hit(&m.bucket_id, None)?;
                let mut r = self.counted(observed, &m, &m.kind, true, started, None);
                r.culprit = Some(first.clone());
                return Ok(Step::Done(r));
            }
        }
        let mut oracle = Oracle::new(self.factory, self.opts.oracle.clone());
        let aopts = AttributionOptions { sweep: !first_is_culprit, ..self.opts.attribution.clone() };
        let att = attribution::attribute(&mut oracle, &observed, suspects, &aopts)?;
        let (originals, kind) = match &att {
            Attribution::Single { input } => (vec![input.clone()], "single"),
            Attribution::Set { inputs, .. } => (inputs.clone(), "set"),
            Attribution::Cumulative { input, .. } => (vec![input.clone()], "cumulative"),
            Attribution::NotReproduced => {
                return Ok(Step::Done(TriageReport {
                    death: observed,
                    bucket_id: None,
                    dir: None,
                    new_bucket: false,
                    fast_path: false,
                    kind: "not-reproduced".into(),
                    executions: oracle.stats.executions,
                    restarts: oracle.stats.restarts,
                    seconds: started.elapsed().as_secs_f64(),
                    size_before: suspects.iter().map(|g| shrink::payload_size(&g.payload)).sum(),
                    size_after: 0,
                    culprit: None,
                }));
            }
        };
        // The culprit's coarse key: a culprit like one a bucket already holds is that bucket.
        let culprit_key = (kind != "cumulative").then(|| coarse_key(&observed, &originals[0]));
        if let Some(k) = &culprit_key
            && let Some(m) = self.store.find_coarse(k)?
        {
            let m = self.store.hit(&m.bucket_id, None)?;
            let mut r = self.counted(observed, &m, kind, true, started, Some(&oracle));
            r.culprit = (kind == "single").then(|| originals[0].clone());
            return Ok(Step::Done(r));
        }
        let route = bucket::routes_of(&originals.iter().map(|g| g.payload.clone()).collect::<Vec<_>>()).join(",");
        Ok(Step::Attributed(Culprit {
            observed,
            att,
            route,
            culprit_key,
            started,
            attributed_in: started.elapsed().as_secs_f64(),
            executions: oracle.stats.executions,
            restarts: oracle.stats.restarts,
        }))
    }

    /// The second half of triage: minimise the culprit(s), file the bucket (or count a known
    /// one by its signature).
    fn file(&mut self, c: Culprit) -> Result<TriageReport> {
        let Culprit { observed, att, culprit_key, started, executions: att_execs, restarts: att_restarts, .. } = c;
        let (originals, concurrency, repeat, kind) = match att {
            Attribution::Single { input } => (vec![input], 1, 1, "single"),
            Attribution::Set { inputs, concurrency } => (inputs, concurrency, 1, "set"),
            Attribution::Cumulative { count, input } => (vec![input], 1, count, "cumulative"),
            Attribution::NotReproduced => unreachable!("not filed"),
        };
        let mut oracle = Oracle::new(self.factory, self.opts.oracle.clone());
        oracle.stats.executions = att_execs;
        oracle.stats.restarts = att_restarts;
        let culprit = (kind == "single").then(|| originals[0].clone());
        let mut payloads: Vec<Payload> = originals.iter().map(|g| g.payload.clone()).collect();
        let size_before: usize = payloads.iter().map(shrink::payload_size).sum();
        // Minimise each payload with the others fixed (cumulative: the benign request is kept).
        if kind != "cumulative" {
            let budget_execs = oracle.stats.executions + self.opts.max_executions;
            let deadline = Instant::now() + self.opts.max_time;
            for i in 0..payloads.len() {
                let others = payloads.clone();
                let p = shrink::shrink_payload(&payloads[i], &mut |c: &Payload| {
                    if oracle.stats.executions >= budget_execs || Instant::now() >= deadline {
                        return Ok(false);
                    }
                    let mut set = others.clone();
                    set[i] = c.clone();
                    if set.len() > 1 {
                        oracle.restart();
                    }
                    oracle.reproduces(&set, concurrency, &observed)
                })?;
                payloads[i] = p;
            }
        }
        // A lone request that kills as `GET /` too does not depend on its route (a transport
        // crash such as an oversized Content-Length): filed without it.
        if kind == "single"
            && let Some(general) = shrink::without_route(&payloads[0])
        {
            oracle.restart();
            if oracle.reproduces(std::slice::from_ref(&general), 1, &observed)? {
                payloads[0] = general;
            }
        }
        let size_after: usize = payloads.iter().map(shrink::payload_size).sum();
        let send_set: Vec<Payload> = repeat_payloads(&payloads, repeat);
        let mut sig = Signature {
            death: observed.key(),
            kind: kind.into(),
            routes: bucket::routes_of(&payloads),
            shapes: if kind == "cumulative" {
                Vec::new()
            } else {
                payloads.iter().map(bucket::payload_shape).collect()
            },
            frames: Vec::new(),
        };
        // A known bucket (same signature apart from gdb frames): count it, skip the rate
        // measurement and the gdb re-run.
        if let Some(m) = self.store.list()?.into_iter().find(|m| {
            let s = &m.signature;
            s.death == sig.death && s.kind == sig.kind && s.routes == sig.routes && s.shapes == sig.shapes
        }) {
            let m = self.store.hit(&m.bucket_id, culprit_key.as_deref())?;
            return Ok(TriageReport {
                death: observed,
                bucket_id: Some(m.bucket_id.clone()),
                dir: Some(self.store.bucket_dir(&m.bucket_id)),
                new_bucket: false,
                fast_path: false,
                kind: kind.into(),
                executions: oracle.stats.executions,
                restarts: oracle.stats.restarts,
                seconds: started.elapsed().as_secs_f64(),
                size_before,
                size_after,
                culprit,
            });
        }
        // Reproduction rate on fresh targets.
        let tries = self.opts.repro_tries;
        let serial_hits = if kind == "set" {
            oracle.rate(&payloads, 1, &observed, tries)?
        } else {
            oracle.rate(&send_set, 1, &observed, tries)?
        };
        let conc_set: Vec<Payload> =
            if kind == "set" { payloads.clone() } else { [send_set.clone(), payloads.clone()].concat() };
        let concurrent_hits = oracle.rate(&conc_set, concurrency.max(2), &observed, tries)?;
        let executions = oracle.stats.executions;
        let restarts = oracle.stats.restarts;
        let log_tail: Vec<String> = oracle.last_log.iter().rev().take(30).rev().cloned().collect();
        drop(oracle);
        // Backtrace under gdb.
        let backtrace = if self.opts.gdb && !matches!(observed, Death::Hang) {
            gdb_backtrace(self.factory, &send_set, concurrency, &self.opts.oracle).unwrap_or_default()
        } else {
            Vec::new()
        };
        sig.frames = top_frames(&backtrace, 3);
        let now = bucket::now_text();
        let meta = Meta {
            bucket_id: sig.bucket_id(),
            death: observed,
            signal: observed.signo().and_then(super::signal_name).map(str::to_string),
            signo: observed.signo(),
            shell_exit: observed.shell_code(),
            route: sig.routes.first().cloned().unwrap_or_default(),
            kind: kind.into(),
            concurrency,
            cumulative_count: (kind == "cumulative").then_some(repeat),
            run_seed: self.opts.run_seed,
            request_seeds: originals.iter().map(|g| g.seed).collect(),
            trails: originals.iter().map(|g| g.trail.clone()).collect(),
            executions,
            restarts,
            seconds: started.elapsed().as_secs_f64(),
            size_before,
            size_after,
            repro: ReproRate { tries, serial_hits, concurrent_hits },
            first_seen: now.clone(),
            last_seen: now,
            count: 1,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            target: self.factory.describe(),
            coarse_keys: culprit_key.into_iter().collect(),
            backtrace,
            log_tail,
            signature: sig,
            profile: self.opts.profile.clone(),
        };
        let probe = matches!(observed, Death::Hang).then(|| self.opts.oracle.probe.clone());
        let inputs = ReproInputs { payloads, concurrency, repeat, death: observed, probe };
        let (m, new) = self.store.record(meta, &inputs)?;
        Ok(TriageReport {
            death: observed,
            bucket_id: Some(m.bucket_id.clone()),
            dir: Some(self.store.bucket_dir(&m.bucket_id)),
            new_bucket: new,
            fast_path: false,
            kind: kind.into(),
            executions,
            restarts,
            seconds: started.elapsed().as_secs_f64(),
            size_before,
            size_after,
            culprit,
        })
    }
}

fn repeat_payloads(ps: &[Payload], n: u64) -> Vec<Payload> {
    let mut out = Vec::with_capacity(ps.len() * n as usize);
    for _ in 0..n.max(1) {
        out.extend(ps.iter().cloned());
    }
    out
}

/// Run the reproducer once under gdb (`TargetFactory::under_gdb`) and return the `#N` lines of
/// the backtrace it prints.
pub fn gdb_backtrace(
    factory: &dyn TargetFactory,
    payloads: &[Payload],
    concurrency: usize,
    opts: &OracleOptions,
) -> Option<Vec<String>> {
    let g = factory.under_gdb()?;
    let mut t = g.start().ok()?;
    let addrs = t.addrs();
    super::oracle::send_all(payloads, &addrs, concurrency, opts.timeout);
    // gdb prints the backtrace and exits (killing the inferior) in batch mode.
    t.wait_death(Duration::from_secs(60));
    let lines: Vec<String> = t.log_tail().into_iter().filter(|l| l.starts_with('#')).collect();
    t.kill();
    Some(lines)
}

/// Function names of the top `n` frames of gdb `bt` lines, skipping libc / signal machinery.
pub fn top_frames(bt: &[String], n: usize) -> Vec<String> {
    const SKIP: [&str; 15] = [
        "std::",
        "core::",
        "alloc::",
        "raise",
        "abort",
        "gsignal",
        "pthread_kill",
        "__pthread_kill",
        "__GI_",
        "__restore_rt",
        "<signal handler called>",
        "??",
        "libc::",
        "std::sys::",
        "__libc_",
    ];
    let mut out = Vec::new();
    for l in bt {
        // "#0  0x00007f.. in func (args) at file:line" or "#1  func (args) at ..."
        let rest = l.trim_start_matches('#').trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        let rest = match rest.find(" in ") {
            Some(i) if rest.starts_with("0x") => &rest[i + 4..],
            _ => rest,
        };
        let name = rest.split(" (").next().unwrap_or("").trim().to_string();
        if name.is_empty() || SKIP.iter().any(|s| name.starts_with(s) || name.contains(&format!("::{s}"))) {
            continue;
        }
        // Drop a Rust hash suffix (`::h0123abcd...`).
        let name = match name.rfind("::h") {
            Some(i) if name[i + 3..].len() == 16 && name[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => {
                name[..i].to_string()
            }
            _ => name,
        };
        out.push(name);
        if out.len() == n {
            break;
        }
    }
    out
}

/// Sends generated inputs during the fuzz phase (the driver implements it; [`ReplaySender`]
/// is the built-in serial one).
pub trait Sender: Send {
    fn send(&mut self, g: &Generated, addrs: &Addrs) -> Reply;
}

/// Serial sender over [`super::exec::send`].
pub struct ReplaySender {
    pub timeout: Duration,
}

impl Sender for ReplaySender {
    fn send(&mut self, g: &Generated, addrs: &Addrs) -> Reply {
        super::exec::send(&g.payload, addrs, self.timeout)
    }
}

/// Fuzz phase settings.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    pub duration: Duration,
    /// At most this many inputs (None = until `duration`).
    pub max_inputs: Option<u64>,
    pub stream: u64,
    /// Flight recorder size (suspects handed to triage).
    pub recorder: usize,
    /// A send that times out triggers a hang probe; the target counts as hung when the probe
    /// also times out.
    pub hang_probe_timeout: Duration,
    /// Triage crashes (false: only count deaths and restart).
    pub triage: bool,
    /// After each answered input, wait this long for a death (Mesher's §6.1 crash comes just
    /// after the response). 0 = only check; a death is then noticed at the next input.
    pub settle: Duration,
    /// Stop once this many distinct buckets were hit in this phase ("hunt until found").
    pub stop_after_buckets: Option<usize>,
    /// Where the phase's report so far is published for checkpoints.
    pub progress: Option<FuzzProgress>,
}

/// A fuzz phase's report so far (deaths, outages, triage, buckets, coverage), updated after
/// every death and every [`PROGRESS_EVERY`]: a run killed mid-phase keeps what it found.
pub type FuzzProgress = Arc<std::sync::Mutex<Option<FuzzReport>>>;

/// How often a fuzz phase publishes its report so far besides after each death.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions {
            duration: Duration::from_secs(60),
            max_inputs: None,
            stop_after_buckets: None,
            stream: 0,
            recorder: 32,
            hang_probe_timeout: Duration::from_secs(2),
            triage: true,
            settle: Duration::ZERO,
            progress: None,
        }
    }
}

/// A period during which the target was down (from the death to readiness after restart).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Outage {
    pub death: Death,
    pub started_s: f64,
    pub seconds: f64,
    /// Requests per route since the target's last start (the most requested first, at most
    /// 8): a crash that needs hundreds of requests of one route shows here even when other
    /// crashes are frequent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub since_start: Vec<(String, u64)>,
}

/// Result of a fuzz+triage phase.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FuzzReport {
    pub inputs_sent: u64,
    pub deaths: u64,
    pub outages: Vec<Outage>,
    pub triage: Vec<TriageReport>,
    /// The bucket table at the end (all buckets in the store).
    pub buckets: Vec<BucketRow>,
    pub seconds: f64,
    /// Field coverage of a field campaign (`fields = true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::generate::campaign::CoverageReport>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BucketRow {
    pub bucket_id: String,
    pub death: String,
    pub route: String,
    pub kind: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub size_after: usize,
}

pub fn bucket_table(store: &Store) -> Result<Vec<BucketRow>> {
    Ok(store
        .list()?
        .into_iter()
        .map(|m| BucketRow {
            bucket_id: m.bucket_id,
            death: m.death.key(),
            route: m.route,
            kind: m.kind,
            count: m.count,
            first_seen: m.first_seen,
            last_seen: m.last_seen,
            size_after: m.size_after,
        })
        .collect())
}

/// Triage of the deaths a load phase saw (after its traffic, on fresh incarnations).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PhaseTriage {
    pub deaths: u64,
    /// Deaths triaged (attributed, then minimised or counted against a known bucket).
    pub triaged: u64,
    /// Deaths not reached within the budget (their inputs stay in the run directory).
    pub untriaged: u64,
    pub seconds: f64,
    /// One per death, in the order of the deaths (`kind` "untriaged" for those not reached,
    /// "failed" when triage itself failed).
    pub results: Vec<TriageReport>,
    /// The buckets the deaths landed in (the whole store's rows for those ids).
    pub buckets: Vec<BucketRow>,
}

/// Triage deaths (`suspects(i)`: the exact suspects of `records[i]` and how many of the first
/// are hot; [`saved_suspects`] for records read back from a run directory) until `budget` is
/// spent or `stop` says so. Blocking.
pub fn triage_records(
    factory: &dyn TargetFactory,
    store: Store,
    opts: TriageOptions,
    records: &[crate::triage::DeathRecord],
    suspects: &dyn Fn(usize) -> (Vec<Generated>, usize),
    budget: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<PhaseTriage> {
    let t0 = Instant::now();
    let mut out = PhaseTriage { deaths: records.len() as u64, ..PhaseTriage::default() };
    let mut triager = Triager::new(factory, store, opts);
    let mut results: Vec<Option<TriageReport>> = vec![None; records.len()];
    // Round robin over the ways of dying (SIGSEGV, SIGABRT, hang, ...): a crash that fires
    // every second must not use up the budget before a rarer one is seen. Within one way of
    // dying, a death that no known culprit explains (none of its hot suspects is on a route
    // already seen to die that way) comes first: it is the likeliest new crash.
    let mut queues: Vec<(String, std::collections::VecDeque<usize>)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let k = r.death.key();
        match queues.iter_mut().find(|(x, _)| *x == k) {
            Some((_, q)) => q.push_back(i),
            None => queues.push((k, std::collections::VecDeque::from([i]))),
        }
    }
    let mut known: std::collections::BTreeSet<(String, String)> = std::collections::BTreeSet::new();
    // Pass 1: attribute every death; minimise a culprit at once only when its way of dying on
    // its route has no bucket from this triage yet. The others wait for pass 2, so the budget
    // goes first to what is new.
    // (way of dying, route) of the culprits filed so far → the bucket they went to.
    let mut filed: std::collections::BTreeMap<(String, String), Option<String>> = std::collections::BTreeMap::new();
    let mut deferred: Vec<(usize, Culprit)> = Vec::new();
    let out_of_time = |t0: Instant| stop() || t0.elapsed() >= budget;
    // The coarse keys of each death's hot suspects, computed once: whenever a bucket learns a
    // new shape, every death still waiting with a suspect of that shape is counted there at
    // once (no replay), so a crash that fired a hundred times costs one triage, not a hundred.
    let mut hot_keys: Vec<Option<Vec<String>>> = vec![None; records.len()];
    let mut known_keys = 0usize;
    let mut turn = 0usize;
    while queues.iter().any(|(_, q)| !q.is_empty()) && !out_of_time(t0) {
        let keys: std::collections::HashMap<String, String> = triager
            .store
            .list()?
            .into_iter()
            .flat_map(|m| m.coarse_keys.into_iter().map(move |k| (k, m.bucket_id.clone())))
            .collect();
        if keys.len() > known_keys {
            known_keys = keys.len();
            for (_, q) in queues.iter_mut() {
                let mut rest = std::collections::VecDeque::new();
                for i in q.drain(..) {
                    let death = records[i].death;
                    let mine = hot_keys[i].get_or_insert_with(|| {
                        let (inputs, hot) = suspects(i);
                        inputs.iter().take(hot).map(|g| coarse_key(&death, g)).collect()
                    });
                    match mine.iter().find_map(|k| keys.get(k)) {
                        Some(b) => {
                            let m = triager.store.hit(b, None)?;
                            let mut r = triager.counted(death, &m, &m.kind, true, Instant::now(), None);
                            r.kind = format!("{} (by shape)", m.kind);
                            out.triaged += 1;
                            results[i] = Some(r);
                        }
                        None => rest.push_back(i),
                    }
                }
                *q = rest;
            }
            continue;
        }
        let n = queues.len();
        let (kind, q) = &mut queues[turn % n];
        turn += 1;
        let explained = |i: &usize| records[*i].hot_routes.iter().any(|r| known.contains(&(kind.clone(), r.clone())));
        let Some(pos) = q.iter().position(|i| !explained(i)).or((!q.is_empty()).then_some(0)) else { continue };
        let i = q.remove(pos).expect("a position in the queue");
        let rec = &records[i];
        let (inputs, hot) = suspects(i);
        if inputs.is_empty() {
            continue;
        }
        let step = triager.on_death_step(rec.death, &inputs, hot);
        let r = match step {
            Ok(Step::Done(r)) => {
                if let Some(route) = r
                    .bucket_id
                    .as_ref()
                    .and_then(|b| bucket::read_meta(&triager.store.bucket_dir(b)).ok())
                    .map(|m| m.route)
                {
                    known.insert((rec.death.key(), route));
                }
                r
            }
            Ok(Step::Attributed(c)) => {
                let pair = (c.observed.key(), c.route.clone());
                known.insert(pair.clone());
                if filed.contains_key(&pair) {
                    deferred.push((i, c));
                    continue;
                }
                match triager.file(c) {
                    Ok(r) => {
                        filed.insert(pair, r.bucket_id.clone());
                        r
                    }
                    Err(e) => {
                        eprintln!("triage of death {} failed: {e:#}", rec.n);
                        placeholder(rec.death, "failed")
                    }
                }
            }
            Err(e) => {
                eprintln!("triage of death {} failed: {e:#}", rec.n);
                placeholder(rec.death, "failed")
            }
        };
        out.triaged += 1;
        results[i] = Some(r);
    }
    // Pass 2: the deferred culprits, while the budget lasts; past it, each is counted in the
    // latest bucket of its way of dying on its route ("by route": attributed, not minimised).
    for (i, c) in deferred {
        let rec = &records[i];
        let pair = (c.observed.key(), c.route.clone());
        let r = if out_of_time(t0) {
            match filed.get(&pair).cloned().flatten() {
                Some(b) => {
                    let m = triager.store.hit(&b, None)?;
                    let mut r = triager.counted(c.observed, &m, &m.kind, true, c.started, None);
                    r.kind = format!("{} (by route)", m.kind);
                    (r.seconds, r.executions, r.restarts) = (c.attributed_in, c.executions, c.restarts);
                    r
                }
                None => {
                    out.untriaged += 1;
                    results[i] = Some(placeholder(rec.death, "untriaged"));
                    continue;
                }
            }
        } else {
            match triager.file(c) {
                Ok(r) => {
                    if r.bucket_id.is_some() {
                        filed.insert(pair, r.bucket_id.clone());
                    }
                    r
                }
                Err(e) => {
                    eprintln!("triage of death {} failed: {e:#}", rec.n);
                    placeholder(rec.death, "failed")
                }
            }
        };
        out.triaged += 1;
        results[i] = Some(r);
    }
    for (i, r) in results.iter_mut().enumerate() {
        if r.is_none() {
            out.untriaged += 1;
            *r = Some(placeholder(records[i].death, "untriaged"));
        }
    }
    out.results = results.into_iter().map(|r| r.expect("every death visited")).collect();
    let hit: std::collections::BTreeSet<&String> = out.results.iter().filter_map(|r| r.bucket_id.as_ref()).collect();
    out.buckets = bucket_table(&triager.store)?.into_iter().filter(|b| hit.contains(&b.bucket_id)).collect();
    out.seconds = t0.elapsed().as_secs_f64();
    Ok(out)
}

/// The report of a death triage did not file: `untriaged` (not reached) or `failed`.
fn placeholder(death: Death, kind: &str) -> TriageReport {
    TriageReport {
        death,
        bucket_id: None,
        dir: None,
        new_bucket: false,
        fast_path: false,
        kind: kind.into(),
        executions: 0,
        restarts: 0,
        seconds: 0.0,
        size_before: 0,
        size_after: 0,
        culprit: None,
    }
}

/// The suspects saved in each record (for [`triage_records`]).
pub fn saved_suspects(records: &[crate::triage::DeathRecord]) -> impl Fn(usize) -> (Vec<Generated>, usize) + '_ {
    move |i| (records[i].suspects.clone(), records[i].hot)
}

/// Human text of the bucket table.
pub fn format_table(rows: &[BucketRow]) -> String {
    let mut s =
        format!("{:<48} {:<9} {:<24} {:<10} {:>6}  {}\n", "bucket", "death", "route", "kind", "count", "last seen");
    for r in rows {
        s.push_str(&format!(
            "{:<48} {:<9} {:<24} {:<10} {:>6}  {}\n",
            r.bucket_id, r.death, r.route, r.kind, r.count, r.last_seen
        ));
    }
    s
}

/// The fuzz+triage phase: generate inputs from `source`, send them with `sender` to a target
/// from `factory`, notice deaths at once (and hangs with a probe), hand each death with the
/// flight recorder's suspects to triage, restart, continue until the time is up.
/// Blocking: call it from a plain thread or `spawn_blocking`.
pub fn fuzz_phase(
    inputs: Inputs<'_>,
    sender: &mut dyn Sender,
    factory: &dyn TargetFactory,
    store: Store,
    topts: TriageOptions,
    fopts: &FuzzOptions,
    stop: &dyn Fn() -> bool,
) -> Result<FuzzReport> {
    let t0 = Instant::now();
    let deadline = t0 + fopts.duration;
    let mut triager = Triager::new(factory, store, topts.clone());
    let mut recorder: VecDeque<(Generated, bool)> = VecDeque::new();
    let mut target: Box<dyn TargetHandle> = factory.start()?;
    let mut report = FuzzReport {
        inputs_sent: 0,
        deaths: 0,
        outages: Vec::new(),
        triage: Vec::new(),
        buckets: Vec::new(),
        seconds: 0.0,
        coverage: None,
    };
    // Requests per route since the target's last start, and the last input of each route:
    // a death after hundreds of one route's requests is tried as that route's cumulative crash.
    let steer = match &inputs {
        Inputs::Plain(_) => None,
        Inputs::Steered(s) => Some(*s),
    };
    let mut since_start: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut last_of_route: BTreeMap<&'static str, Generated> = BTreeMap::new();
    let mut index = 0u64;
    let publish = |report: &FuzzReport, triager: &Triager| {
        if let Some(p) = &fopts.progress {
            let mut r = report.clone();
            r.buckets = bucket_table(&triager.store).unwrap_or_default();
            r.seconds = t0.elapsed().as_secs_f64();
            r.coverage = steer.map(|s| s.coverage());
            *p.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    };
    let mut published = Instant::now();
    while Instant::now() < deadline && !stop() && fopts.max_inputs.is_none_or(|m| index < m) {
        if published.elapsed() >= PROGRESS_EVERY {
            publish(&report, &triager);
            published = Instant::now();
        }
        let g = match &inputs {
            Inputs::Plain(s) => s.generate(fopts.stream, index),
            Inputs::Steered(s) => s.generate(fopts.stream, index),
        };
        index += 1;
        if steer.is_some_and(|s| !s.wanted(&g, index - 1)) {
            continue;
        }
        let addrs = target.addrs();
        let sent_at = Instant::now();
        let reply = sender.send(&g, &addrs);
        let micros = sent_at.elapsed().as_micros() as u64;
        report.inputs_sent += 1;
        *since_start.entry(g.route_name()).or_default() += 1;
        let mut death = if fopts.settle.is_zero() { target.death() } else { target.wait_death(fopts.settle) };
        if death.is_none() && matches!(reply, Reply::Timeout | Reply::Refused | Reply::Reset | Reply::Closed) {
            // Maybe dying right now; maybe hung.
            death = target.wait_death(topts.oracle.grace);
            if death.is_none() && matches!(reply, Reply::Timeout) {
                let probe = super::exec::send(&topts.oracle.probe, &addrs, fopts.hang_probe_timeout);
                if matches!(probe, Reply::Timeout) {
                    death = Some(Death::Hang);
                }
            }
        }
        if let Some(s) = steer {
            s.observe(&g, &answer(&reply, micros, death.is_some()));
        }
        // A cumulative candidate is an input its route accepted: a rejected or unanswered one
        // may never reach the code that counts.
        if steer.is_some() && matches!(reply, Reply::Http { status: Some(200..=299), .. }) {
            last_of_route.insert(g.route_name(), g.clone());
        }
        recorder.push_back((g, reply.answered()));
        while recorder.len() > fopts.recorder {
            recorder.pop_front();
        }
        let Some(d) = death else { continue };
        let down_at = Instant::now();
        report.deaths += 1;
        target.kill();
        let mut counts: Vec<(&'static str, u64)> = since_start.iter().map(|(r, n)| (*r, *n)).collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts.truncate(8);
        if fopts.triage {
            // Unanswered first, then most recent first.
            let mut suspects: Vec<Generated> =
                recorder.iter().rev().filter(|(_, a)| !*a).map(|(g, _)| g.clone()).collect();
            suspects.extend(recorder.iter().rev().filter(|(_, a)| *a).map(|(g, _)| g.clone()));
            // The routes sent most since the start, repeated, are the cumulative candidates.
            triager.opts.attribution.repeat = counts
                .iter()
                .filter(|(_, n)| *n >= CUMULATIVE_MIN)
                .take(2)
                .filter_map(|(r, _)| last_of_route.get(r).cloned())
                .collect();
            match triager.on_crash(d, &suspects) {
                Ok(r) => {
                    // Triage names the culprit (a death noticed one input late is not blamed on
                    // the input after it).
                    if let (Some(s), Some(c)) = (steer, &r.culprit) {
                        s.crashed(c, r.bucket_id.as_deref(), !r.new_bucket && r.bucket_id.is_some());
                    }
                    report.triage.push(r)
                }
                Err(e) => eprintln!("triage failed: {e:#}"),
            }
        }
        recorder.clear();
        let since: Vec<(String, u64)> = counts.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        since_start.clear();
        last_of_route.clear();
        if let Some(n) = fopts.stop_after_buckets {
            let hit: std::collections::BTreeSet<&String> =
                report.triage.iter().filter_map(|t| t.bucket_id.as_ref()).collect();
            if hit.len() >= n {
                report.outages.push(Outage {
                    death: d,
                    started_s: (down_at - t0).as_secs_f64(),
                    seconds: 0.0,
                    since_start: since,
                });
                break;
            }
        }
        target = factory.start()?;
        report.outages.push(Outage {
            death: d,
            started_s: (down_at - t0).as_secs_f64(),
            seconds: down_at.elapsed().as_secs_f64(),
            since_start: since,
        });
        publish(&report, &triager);
        published = Instant::now();
    }
    target.kill();
    report.buckets = bucket_table(&triager.store)?;
    report.seconds = t0.elapsed().as_secs_f64();
    report.coverage = steer.map(|s| s.coverage());
    Ok(report)
}

/// Where a fuzz phase's inputs come from.
pub enum Inputs<'a> {
    /// A plain source (the mix).
    Plain(Arc<dyn Source>),
    /// A source that learns from the answers (the field campaign).
    Steered(&'a dyn Steer),
}

/// A route sent at least this often since the target's start is a cumulative candidate.
const CUMULATIVE_MIN: u64 = 50;

/// What the steering source learns of one send.
fn answer(reply: &Reply, micros: u64, died: bool) -> Answer {
    let (kind, status, shape) = match reply {
        Reply::Http { status, shape, .. } => ("http", *status, *shape),
        Reply::Ws { status, frame_bytes } => ("ws", *status, (*frame_bytes > 0) as u64),
        Reply::Closed => ("closed", None, 0),
        Reply::Reset => ("reset", None, 0),
        Reply::Refused => ("refused", None, 0),
        Reply::Timeout => ("timeout", None, 0),
        Reply::Error { .. } => ("error", None, 0),
    };
    Answer { kind, status, shape, micros, died }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_skip_libc() {
        let bt: Vec<String> = [
            "#0  __pthread_kill_implementation (no_tid=0, signo=11, threadid=<optimized out>) at ./nptl/pthread_kill.c:44",
            "#1  0x00007ffff7c8f15f in __pthread_kill_internal (signo=11) at ./nptl/pthread_kill.c:78",
            "#2  0x00007ffff7c40472 in __GI_raise (sig=11) at ../sysdeps/posix/raise.c:26",
            "#3  0x0000555555560abc in crashy::handle::h0123456789abcdef (s=...) at tests/common/mod.rs:40",
            "#4  0x0000555555560def in crashy::serve (port=0) at tests/common/mod.rs:80",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(top_frames(&bt, 3), vec!["crashy::handle".to_string(), "crashy::serve".to_string()]);
    }
}
