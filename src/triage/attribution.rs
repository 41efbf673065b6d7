//! Attribution: which input(s) killed the target?
//!
//! Order: (0) a sweep: the suspects sent one after the other to one fresh target; the input
//! after which it dies (or hangs) is confirmed alone on a fresh target — one restart instead
//! of one per suspect, which matters when a load phase had dozens of requests in flight;
//! (1) each suspect alone (suspects come unanswered-first, then most recent first, as
//! the flight recorder hands them over), (2) the whole suspect set replayed concurrently, then
//! ddmin over the set (answers like "these 3 requests at concurrency 2"), (3) cumulative: a
//! benign request repeated until the target dies; the count is confirmed on a fresh target.
//! Hangs use the same steps with the oracle's hold-and-probe test.

use super::Death;
use super::kind::CrashKind;
use super::oracle::Oracle;
use super::shrink::ddmin;
use crate::model::{Generated, Payload};
use anyhow::Result;
use serde::Serialize;

/// Attribution settings.
#[derive(Debug, Clone)]
pub struct AttributionOptions {
    /// At most this many suspects are tried alone.
    pub max_alone: usize,
    /// At most this many suspects go into the set search.
    pub max_set: usize,
    /// Concurrency of set replays.
    pub concurrency: usize,
    /// Benign request for the cumulative test, and how many to send at most.
    pub benign: Payload,
    pub cumulative_max: u64,
    /// Start with the sweep (concurrent traffic: the culprit may be any of many suspects);
    /// off when the first suspect is very likely the culprit (the serial fuzz loop).
    pub sweep: bool,
    /// Inputs of the routes sent most since the target's last start: each, repeated, is tried
    /// as a cumulative crash of its route before the benign request is.
    pub repeat: Vec<Generated>,
}

impl AttributionOptions {
    pub fn new(benign: Payload) -> AttributionOptions {
        AttributionOptions {
            max_alone: 16,
            max_set: 64,
            concurrency: 4,
            benign,
            cumulative_max: 5000,
            sweep: false,
            repeat: Vec::new(),
        }
    }
}

/// What killed it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Attribution {
    /// One input alone.
    Single { input: Generated },
    /// A set of inputs sent together at `concurrency`.
    Set { inputs: Vec<Generated>, concurrency: usize },
    /// Any `count` requests kill it (the benign request repeated).
    Cumulative { count: u64, input: Generated },
    /// Nothing reproduced it.
    NotReproduced,
}

/// The input(s) that kill the target and how to send them: attribution's answer in the form
/// minimisation and filing take it.
#[derive(Debug, Clone)]
pub struct Culprits {
    pub kind: CrashKind,
    pub inputs: Vec<Generated>,
    /// 1 = serially in order.
    pub concurrency: usize,
    /// How many times the inputs are sent (a cumulative crash's count), else 1.
    pub repeat: u64,
}

impl Culprits {
    /// The one input that kills the target alone (a fuzzer learns from it).
    pub fn single(&self) -> Option<&Generated> {
        self.inputs.first().filter(|_| self.kind == CrashKind::Single)
    }

    pub fn payloads(&self) -> Vec<Payload> {
        self.inputs.iter().map(|g| g.payload.clone()).collect()
    }
}

impl Attribution {
    /// The culprits, when something reproduced the death.
    pub fn culprits(self) -> Option<Culprits> {
        let (kind, inputs, concurrency, repeat) = match self {
            Attribution::Single { input } => (CrashKind::Single, vec![input], 1, 1),
            Attribution::Set { inputs, concurrency } => (CrashKind::Set, inputs, concurrency, 1),
            Attribution::Cumulative { count, input } => (CrashKind::Cumulative, vec![input], 1, count),
            Attribution::NotReproduced => return None,
        };
        Some(Culprits { kind, inputs, concurrency, repeat })
    }
}

/// Attribute `observed` among `suspects` (already ordered).
pub fn attribute(
    oracle: &mut Oracle,
    observed: &Death,
    suspects: &[Generated],
    opts: &AttributionOptions,
) -> Result<Attribution> {
    // 0. The sweep.
    if opts.sweep
        && suspects.len() > 1
        && let Some(i) = oracle
            .sweep(&suspects.iter().take(opts.max_set).map(|g| g.payload.clone()).collect::<Vec<_>>(), observed)?
    {
        // The death may be noticed one input late: the one before is the next candidate.
        for j in [i, i.wrapping_sub(1)] {
            let Some(s) = suspects.get(j) else { continue };
            oracle.restart();
            if oracle.reproduces(std::slice::from_ref(&s.payload), 1, observed)? {
                return Ok(Attribution::Single { input: s.clone() });
            }
        }
    }
    // 1. Alone, each on a target that had seen nothing else (the oracle confirms aged deaths).
    for s in suspects.iter().take(opts.max_alone) {
        oracle.restart();
        if oracle.reproduces(std::slice::from_ref(&s.payload), 1, observed)? {
            return Ok(Attribution::Single { input: s.clone() });
        }
    }
    // 2. The set, concurrently; then ddmin over it.
    let set: Vec<Generated> = suspects.iter().take(opts.max_set).cloned().collect();
    if set.len() > 1 {
        let conc = opts.concurrency.max(2);
        let payloads = |gs: &[Generated]| gs.iter().map(|g| g.payload.clone()).collect::<Vec<_>>();
        let mut whole = false;
        for _ in 0..2 {
            oracle.restart();
            if oracle.reproduces(&payloads(&set), conc, observed)? {
                whole = true;
                break;
            }
        }
        if whole {
            let min = ddmin(&set, &mut |c: &[Generated]| {
                if c.len() == set.len() {
                    return Ok(true);
                }
                if c.is_empty() {
                    return Ok(false);
                }
                oracle.restart();
                oracle.reproduces(&payloads(c), conc.min(c.len()), observed)
            })?;
            if min.len() == 1 {
                return Ok(Attribution::Single { input: min[0].clone() });
            }
            let concurrency = conc.min(min.len());
            return Ok(Attribution::Set { inputs: min, concurrency });
        }
    }
    // 3. Cumulative: does an input of the most requested route, repeated, kill it the same
    // way? Then the benign request.
    if !matches!(observed, Death::Hang) {
        for g in &opts.repeat {
            if let Some(count) = cumulative_count(oracle, &g.payload, opts.cumulative_max, observed)? {
                return Ok(Attribution::Cumulative { count, input: g.clone() });
            }
        }
    }
    if !matches!(observed, Death::Hang)
        && let Some(count) = cumulative_count(oracle, &opts.benign, opts.cumulative_max, observed)?
    {
        let input = Generated {
            seed: crate::model::RequestSeed { run: 0, stream: 0, index: 0 },
            layer: crate::model::Layer::Valid,
            payload: opts.benign.clone(),
            trail: Vec::new(),
        };
        return Ok(Attribution::Cumulative { count, input });
    }
    Ok(Attribution::NotReproduced)
}

/// The number of benign requests after which a fresh target dies like `observed`: measured by
/// counting, then confirmed by binary search on fresh targets (dies after `count`, survives
/// `count - 1`) so that a flaky count is narrowed down rather than trusted.
pub fn cumulative_count(oracle: &mut Oracle, benign: &Payload, max: u64, observed: &Death) -> Result<Option<u64>> {
    let Some(first) = oracle.count_until_death(benign, max, observed)? else {
        return Ok(None);
    };
    // Binary search the smallest n in [1, first] with "n sends kill a fresh target".
    let kills =
        |oracle: &mut Oracle, n: u64| -> Result<bool> { Ok(oracle.count_until_death(benign, n, observed)?.is_some()) };
    let (mut lo, mut hi) = (0u64, first); // lo survives (0 trivially), hi kills
    if !kills(oracle, hi)? {
        return Ok(Some(first)); // flaky: report what we saw
    }
    // Cheap check of the common exact case first.
    if hi > 1 && !kills(oracle, hi - 1)? {
        return Ok(Some(hi));
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if kills(oracle, mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi))
}
