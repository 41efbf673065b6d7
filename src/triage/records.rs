//! Triage of the deaths a load phase saw ([`triage_records`]), after its traffic, on fresh
//! incarnations, within a time budget.
//!
//! Round robin over the ways of dying (SIGSEGV, SIGABRT, hang, ...): a crash that fires every
//! second must not use up the budget before a rarer one is seen. Within one way of dying, a
//! death that no known culprit explains (none of its hot suspects is on a route already seen to
//! die that way) comes first: it is the likeliest new crash. Whenever a bucket learns a new
//! shape, every death still waiting with a hot suspect of that shape is counted there at once
//! (no replay), so a crash that fired a hundred times costs one triage, not a hundred.

use super::DeathRecord;
use super::bucket::{self, BucketRow, bucket_table};
use super::kind::Verdict;
use super::session::{Attributed, Step, TriageOptions, TriageReport, Triager};
use super::target::TargetFactory;
use crate::model::Generated;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Triage of the deaths a load phase saw (after its traffic, on fresh incarnations).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    store: bucket::Store,
    opts: TriageOptions,
    records: &[DeathRecord],
    suspects: &dyn Fn(usize) -> (Vec<Generated>, usize),
    budget: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<PhaseTriage> {
    let t0 = Instant::now();
    let out_of_time = || stop() || t0.elapsed() >= budget;
    let mut t = RecordsTriage::new(Triager::new(factory, store, opts), records, suspects);
    // Pass 1: attribute every death; minimise a culprit at once only when its way of dying on
    // its route has no bucket from this triage yet. The others wait for pass 2, so the budget
    // goes first to what is new.
    while t.waiting() && !out_of_time() {
        if t.count_by_shape()? {
            continue;
        }
        if let Some(i) = t.next_death() {
            t.first_pass(i);
        }
    }
    t.second_pass(&out_of_time)?;
    t.finish(t0)
}

/// The suspects saved in each record (for [`triage_records`]).
pub fn saved_suspects(records: &[DeathRecord]) -> impl Fn(usize) -> (Vec<Generated>, usize) + '_ {
    move |i| (records[i].suspects.clone(), records[i].hot)
}

/// A way of dying (`Death::key`) and a route.
type WayOnRoute = (String, String);

/// The state of one [`triage_records`].
struct RecordsTriage<'r, 'f> {
    triager: Triager<'f>,
    records: &'r [DeathRecord],
    suspects: &'r dyn Fn(usize) -> (Vec<Generated>, usize),
    /// One per record, filled as deaths are triaged.
    results: Vec<Option<TriageReport>>,
    triaged: u64,
    untriaged: u64,
    /// The deaths waiting, one queue per way of dying, taken in turn.
    queues: Vec<(String, VecDeque<usize>)>,
    turn: usize,
    /// Every (way of dying, route) of a culprit attributed or counted so far.
    known: BTreeSet<WayOnRoute>,
    /// (way of dying, route) of the culprits filed so far → the bucket they went to.
    filed: BTreeMap<WayOnRoute, Option<String>>,
    /// Culprits whose (way of dying, route) was filed already, for pass 2.
    deferred: Vec<(usize, Attributed)>,
    /// The coarse keys of each death's hot suspects, computed once.
    hot_keys: Vec<Option<Vec<String>>>,
    /// How many coarse keys the store held when the waiting deaths were last counted by shape.
    known_keys: usize,
}

impl<'r, 'f> RecordsTriage<'r, 'f> {
    fn new(
        triager: Triager<'f>,
        records: &'r [DeathRecord],
        suspects: &'r dyn Fn(usize) -> (Vec<Generated>, usize),
    ) -> Self {
        let mut queues: Vec<(String, VecDeque<usize>)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let k = r.death.key();
            match queues.iter_mut().find(|(x, _)| *x == k) {
                Some((_, q)) => q.push_back(i),
                None => queues.push((k, VecDeque::from([i]))),
            }
        }
        RecordsTriage {
            triager,
            records,
            suspects,
            results: vec![None; records.len()],
            triaged: 0,
            untriaged: 0,
            queues,
            turn: 0,
            known: BTreeSet::new(),
            filed: BTreeMap::new(),
            deferred: Vec::new(),
            hot_keys: vec![None; records.len()],
            known_keys: 0,
        }
    }

    fn waiting(&self) -> bool {
        self.queues.iter().any(|(_, q)| !q.is_empty())
    }

    fn done(&mut self, i: usize, r: TriageReport) {
        self.triaged += 1;
        self.results[i] = Some(r);
    }

    /// When the store holds coarse keys it did not hold last time, count every waiting death
    /// with a hot suspect of one of them in that bucket. True when it looked.
    fn count_by_shape(&mut self) -> Result<bool> {
        let keys: HashMap<String, String> = self
            .triager
            .store
            .list()?
            .into_iter()
            .flat_map(|m| m.coarse_keys.into_iter().map(move |k| (k, m.bucket_id.clone())))
            .collect();
        if keys.len() <= self.known_keys {
            return Ok(false);
        }
        self.known_keys = keys.len();
        let (records, suspects) = (self.records, self.suspects);
        for q in 0..self.queues.len() {
            for i in std::mem::take(&mut self.queues[q].1) {
                let death = records[i].death;
                let mine = self.hot_keys[i].get_or_insert_with(|| {
                    let (inputs, hot) = suspects(i);
                    inputs.iter().take(hot).map(|g| super::session::coarse_key(&death, g)).collect()
                });
                match mine.iter().find_map(|k| keys.get(k)) {
                    Some(b) => {
                        let m = self.triager.store.hit(b, None)?;
                        let r = self.triager.counted(death, &m, Verdict::ByShape(m.kind), Instant::now(), None);
                        self.done(i, r);
                    }
                    None => self.queues[q].1.push_back(i),
                }
            }
        }
        Ok(true)
    }

    /// The next death to triage: the next way of dying in turn, and in its queue the first death
    /// no known culprit explains, else the first.
    fn next_death(&mut self) -> Option<usize> {
        let n = self.queues.len();
        let (way, q) = &mut self.queues[self.turn % n];
        self.turn += 1;
        let (known, records) = (&self.known, self.records);
        let explained = |i: &usize| records[*i].hot_routes.iter().any(|r| known.contains(&(way.clone(), r.clone())));
        let pos = q.iter().position(|i| !explained(i)).or((!q.is_empty()).then_some(0))?;
        q.remove(pos)
    }

    /// Pass 1 for one death: attribute it; file its culprit unless its way of dying on its
    /// route was filed already (then it waits for pass 2).
    fn first_pass(&mut self, i: usize) {
        let records = self.records;
        let rec = &records[i];
        let (inputs, hot) = (self.suspects)(i);
        if inputs.is_empty() {
            return;
        }
        let r = match self.triager.on_death_step(rec.death, &inputs, hot) {
            Ok(Step::Done(r)) => {
                if let Some(route) = r
                    .bucket_id
                    .as_ref()
                    .and_then(|b| bucket::read_meta(&self.triager.store.bucket_dir(b)).ok())
                    .map(|m| m.route)
                {
                    self.known.insert((rec.death.key(), route));
                }
                r
            }
            Ok(Step::Attributed(a)) => {
                let pair = (a.observed.key(), a.route.clone());
                self.known.insert(pair.clone());
                if self.filed.contains_key(&pair) {
                    self.deferred.push((i, a));
                    return;
                }
                match self.triager.file(a) {
                    Ok(r) => {
                        self.filed.insert(pair, r.bucket_id.clone());
                        r
                    }
                    Err(e) => failed(rec, e),
                }
            }
            Err(e) => failed(rec, e),
        };
        self.done(i, r);
    }

    /// Pass 2: the deferred culprits, while the budget lasts; past it, each is counted in the
    /// latest bucket of its way of dying on its route ("by route": attributed, not minimised).
    fn second_pass(&mut self, out_of_time: &dyn Fn() -> bool) -> Result<()> {
        let records = self.records;
        for (i, a) in std::mem::take(&mut self.deferred) {
            let rec = &records[i];
            let pair = (a.observed.key(), a.route.clone());
            let r = if out_of_time() {
                match self.filed.get(&pair).cloned().flatten() {
                    Some(b) => {
                        let m = self.triager.store.hit(&b, None)?;
                        let mut r = self.triager.counted(a.observed, &m, Verdict::ByRoute(m.kind), a.started, None);
                        (r.seconds, r.executions, r.restarts) = (a.attributed_in, a.executions, a.restarts);
                        r
                    }
                    None => {
                        self.untriaged += 1;
                        self.results[i] = Some(TriageReport::unfiled(rec.death, Verdict::Untriaged));
                        continue;
                    }
                }
            } else {
                match self.triager.file(a) {
                    Ok(r) => {
                        if r.bucket_id.is_some() {
                            self.filed.insert(pair, r.bucket_id.clone());
                        }
                        r
                    }
                    Err(e) => failed(rec, e),
                }
            };
            self.done(i, r);
        }
        Ok(())
    }

    /// The deaths not reached are untriaged; the buckets are those the deaths landed in.
    fn finish(self, t0: Instant) -> Result<PhaseTriage> {
        let mut untriaged = self.untriaged;
        let results: Vec<TriageReport> = self
            .results
            .into_iter()
            .zip(self.records)
            .map(|(r, rec)| {
                r.unwrap_or_else(|| {
                    untriaged += 1;
                    TriageReport::unfiled(rec.death, Verdict::Untriaged)
                })
            })
            .collect();
        let hit: BTreeSet<&String> = results.iter().filter_map(|r| r.bucket_id.as_ref()).collect();
        let buckets = bucket_table(&self.triager.store)?.into_iter().filter(|b| hit.contains(&b.bucket_id)).collect();
        Ok(PhaseTriage {
            deaths: self.records.len() as u64,
            triaged: self.triaged,
            untriaged,
            seconds: t0.elapsed().as_secs_f64(),
            results,
            buckets,
        })
    }
}

/// The report of a death whose triage failed (said on stderr).
fn failed(rec: &DeathRecord, e: anyhow::Error) -> TriageReport {
    eprintln!("triage of death {} failed: {e:#}", rec.n);
    TriageReport::unfiled(rec.death, Verdict::Failed)
}
