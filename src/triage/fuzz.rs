//! The fuzz+triage phase ([`fuzz_phase`]): inputs from a source, sent serially to a target,
//! every death noticed at once (hangs by a probe), triaged with the flight recorder's
//! suspects, the target restarted, until the time is up.

use super::Death;
use super::bucket::{BucketRow, Store, bucket_table};
use super::exec::{Addrs, Reply};
use super::session::{TriageOptions, TriageReport, Triager};
use super::target::{TargetFactory, TargetHandle};
use crate::generate::campaign::{Answer, Steer};
use crate::model::{Generated, Source};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    let mut f = FuzzLoop::start(inputs, sender, Triager::new(factory, store, topts), fopts, t0)?;
    let mut index = 0u64;
    while Instant::now() < deadline && !stop() && fopts.max_inputs.is_none_or(|m| index < m) {
        if f.published.elapsed() >= PROGRESS_EVERY {
            f.publish();
        }
        let g = f.generate(index);
        index += 1;
        if f.steer.is_some_and(|s| !s.wanted(&g, index - 1)) {
            continue;
        }
        let Some(death) = f.send(g) else { continue };
        if f.on_death(death)? {
            break;
        }
    }
    f.finish()
}

/// The state of one [`fuzz_phase`].
struct FuzzLoop<'a> {
    inputs: Inputs<'a>,
    /// The source that learns from the answers, if it is one.
    steer: Option<&'a dyn Steer>,
    sender: &'a mut dyn Sender,
    triager: Triager<'a>,
    fopts: &'a FuzzOptions,
    target: Box<dyn TargetHandle>,
    report: FuzzReport,
    t0: Instant,
    /// When the report so far was last published.
    published: Instant,
    /// The flight recorder: the latest inputs, each with whether it was answered.
    recorder: VecDeque<(Generated, bool)>,
    /// Requests per route since the target's last start, and the last input of each route: a
    /// death after hundreds of one route's requests is tried as that route's cumulative crash.
    since_start: BTreeMap<&'static str, u64>,
    last_of_route: BTreeMap<&'static str, Generated>,
}

impl<'a> FuzzLoop<'a> {
    fn start(
        inputs: Inputs<'a>,
        sender: &'a mut dyn Sender,
        triager: Triager<'a>,
        fopts: &'a FuzzOptions,
        t0: Instant,
    ) -> Result<FuzzLoop<'a>> {
        let target = triager.factory.start()?;
        let steer = match &inputs {
            Inputs::Plain(_) => None,
            Inputs::Steered(s) => Some(*s),
        };
        Ok(FuzzLoop {
            inputs,
            steer,
            sender,
            triager,
            fopts,
            target,
            report: FuzzReport {
                inputs_sent: 0,
                deaths: 0,
                outages: Vec::new(),
                triage: Vec::new(),
                buckets: Vec::new(),
                seconds: 0.0,
                coverage: None,
            },
            t0,
            published: Instant::now(),
            recorder: VecDeque::new(),
            since_start: BTreeMap::new(),
            last_of_route: BTreeMap::new(),
        })
    }

    /// Hand the report so far to the checkpoints.
    fn publish(&mut self) {
        if let Some(p) = &self.fopts.progress {
            let mut r = self.report.clone();
            r.buckets = bucket_table(&self.triager.store).unwrap_or_default();
            r.seconds = self.t0.elapsed().as_secs_f64();
            r.coverage = self.steer.map(|s| s.coverage());
            *p.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
        self.published = Instant::now();
    }

    fn generate(&self, index: u64) -> Generated {
        match &self.inputs {
            Inputs::Plain(s) => s.generate(self.fopts.stream, index),
            Inputs::Steered(s) => s.generate(self.fopts.stream, index),
        }
    }

    /// Send one input, record it, and return the target's death if it died (or hung).
    fn send(&mut self, g: Generated) -> Option<Death> {
        let addrs = self.target.addrs();
        let sent_at = Instant::now();
        let reply = self.sender.send(&g, &addrs);
        let micros = sent_at.elapsed().as_micros() as u64;
        self.report.inputs_sent += 1;
        *self.since_start.entry(g.route_name()).or_default() += 1;
        let death = self.death_after(&reply, &addrs);
        if let Some(s) = self.steer {
            s.observe(&g, &answer(&reply, micros, death.is_some()));
        }
        // A cumulative candidate is an input its route accepted: a rejected or unanswered one
        // may never reach the code that counts.
        if self.steer.is_some() && matches!(reply, Reply::Http { status: Some(200..=299), .. }) {
            self.last_of_route.insert(g.route_name(), g.clone());
        }
        self.recorder.push_back((g, reply.answered()));
        while self.recorder.len() > self.fopts.recorder {
            self.recorder.pop_front();
        }
        death
    }

    /// The target's death after a send that got `reply`: the target handle's own death
    /// detection (at once, or within `settle`), given the oracle's grace when the send failed;
    /// an unanswered send is a hang when the probe times out too.
    fn death_after(&self, reply: &Reply, addrs: &Addrs) -> Option<Death> {
        let (fopts, oracle) = (self.fopts, &self.triager.opts.oracle);
        let mut death = if fopts.settle.is_zero() { self.target.death() } else { self.target.wait_death(fopts.settle) };
        if death.is_none() && matches!(reply, Reply::Timeout | Reply::Refused | Reply::Reset | Reply::Closed) {
            // Maybe dying right now; maybe hung.
            death = self.target.wait_death(oracle.grace);
            if death.is_none() && matches!(reply, Reply::Timeout) {
                let probe = super::exec::send(&oracle.probe, addrs, fopts.hang_probe_timeout);
                if matches!(probe, Reply::Timeout) {
                    death = Some(Death::Hang);
                }
            }
        }
        death
    }

    /// After a death: triage it (with `triage`), record the outage and start the target again,
    /// unless the hunt is over. True when the phase ends here.
    fn on_death(&mut self, d: Death) -> Result<bool> {
        let down_at = Instant::now();
        self.report.deaths += 1;
        self.target.kill();
        let counts = self.busiest_routes();
        if self.fopts.triage {
            self.triage(d, &counts);
        }
        self.recorder.clear();
        let since: Vec<(String, u64)> = counts.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        self.since_start.clear();
        self.last_of_route.clear();
        let started_s = (down_at - self.t0).as_secs_f64();
        if self.hunt_over() {
            self.report.outages.push(Outage { death: d, started_s, seconds: 0.0, since_start: since });
            return Ok(true);
        }
        self.target = self.triager.factory.start()?;
        let seconds = down_at.elapsed().as_secs_f64();
        self.report.outages.push(Outage { death: d, started_s, seconds, since_start: since });
        self.publish();
        Ok(false)
    }

    /// Requests per route since the target's start, the most requested first, at most 8.
    fn busiest_routes(&self) -> Vec<(&'static str, u64)> {
        let mut counts: Vec<(&'static str, u64)> = self.since_start.iter().map(|(r, n)| (*r, *n)).collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts.truncate(8);
        counts
    }

    /// Triage a death with the flight recorder's suspects; the busiest routes' last inputs are
    /// its cumulative candidates.
    fn triage(&mut self, d: Death, counts: &[(&'static str, u64)]) {
        // Unanswered first, then most recent first.
        let mut suspects: Vec<Generated> =
            self.recorder.iter().rev().filter(|(_, a)| !*a).map(|(g, _)| g.clone()).collect();
        suspects.extend(self.recorder.iter().rev().filter(|(_, a)| *a).map(|(g, _)| g.clone()));
        // The routes sent most since the start, repeated, are the cumulative candidates.
        self.triager.opts.attribution.repeat = counts
            .iter()
            .filter(|(_, n)| *n >= CUMULATIVE_MIN)
            .take(2)
            .filter_map(|(r, _)| self.last_of_route.get(r).cloned())
            .collect();
        match self.triager.on_crash(d, &suspects) {
            Ok(r) => {
                // Triage names the culprit (a death noticed one input late is not blamed on
                // the input after it).
                if let (Some(s), Some(c)) = (self.steer, &r.culprit) {
                    s.crashed(c, r.bucket_id.as_deref(), !r.new_bucket && r.bucket_id.is_some());
                }
                self.report.triage.push(r)
            }
            Err(e) => eprintln!("triage failed: {e:#}"),
        }
    }

    /// True once `stop_after_buckets` distinct buckets were hit in this phase.
    fn hunt_over(&self) -> bool {
        self.fopts.stop_after_buckets.is_some_and(|n| {
            let hit: BTreeSet<&String> = self.report.triage.iter().filter_map(|t| t.bucket_id.as_ref()).collect();
            hit.len() >= n
        })
    }

    fn finish(mut self) -> Result<FuzzReport> {
        self.target.kill();
        self.report.buckets = bucket_table(&self.triager.store)?;
        self.report.seconds = self.t0.elapsed().as_secs_f64();
        self.report.coverage = self.steer.map(|s| s.coverage());
        Ok(self.report)
    }
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
