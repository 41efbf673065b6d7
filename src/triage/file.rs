//! The stages of triage after attribution: minimise the culprits ([`minimise`] →
//! [`Minimised`]), key them ([`signature`]: the bucket key, before any gdb frames), then count
//! the death against the bucket with that key or measure the reproducer (reproduction rates,
//! gdb frames) and file a new bucket ([`Triager::file`]).

use super::Death;
use super::bucket::{self, Meta, ReproInputs, ReproRate, Signature};
use super::kind::{CrashKind, Verdict};
use super::oracle::{Oracle, OracleOptions, OracleStats};
use super::session::{Attributed, TriageOptions, TriageReport, Triager};
use super::shrink;
use super::target::TargetFactory;
use crate::model::Payload;
use anyhow::Result;
use std::time::{Duration, Instant};

/// The culprits' payloads after minimisation.
#[derive(Debug, Clone)]
pub struct Minimised {
    pub payloads: Vec<Payload>,
    /// Total payload bytes before and after minimisation.
    pub size_before: usize,
    pub size_after: usize,
}

/// What filing a new bucket measured of its reproducer.
struct Evidence {
    repro: ReproRate,
    backtrace: Vec<String>,
    log_tail: Vec<String>,
    /// Oracle executions and restarts of the whole triage (attribution included).
    stats: OracleStats,
}

impl Triager<'_> {
    /// The stages after attribution: minimise the culprit(s), then count the death in the bucket
    /// of their signature, or measure the reproducer and file a new bucket.
    pub(super) fn file(&mut self, a: Attributed) -> Result<TriageReport> {
        let mut oracle = Oracle::new(self.factory, self.opts.oracle.clone());
        oracle.stats.executions = a.executions;
        oracle.stats.restarts = a.restarts;
        let min = minimise(&mut oracle, &a, &self.opts)?;
        let sig = signature(&a.observed, a.culprits.kind, &min.payloads);
        // A known bucket (same signature apart from gdb frames): count it, skip the rate
        // measurement and the gdb re-run.
        if let Some(m) = self.store.find_signature(&sig)? {
            let m = self.store.hit(&m.bucket_id, a.culprit_key.as_deref())?;
            return Ok(self.filed_report(&a, &min, &m, false, &oracle.stats));
        }
        let evidence = self.measure(oracle, &a, &min)?;
        let stats = evidence.stats.clone();
        let meta = self.new_meta(&a, &min, sig, evidence);
        let probe = matches!(a.observed, Death::Hang).then(|| self.opts.oracle.probe.clone());
        let c = &a.culprits;
        let inputs = ReproInputs {
            payloads: min.payloads.clone(),
            concurrency: c.concurrency,
            repeat: c.repeat,
            death: a.observed,
            probe,
        };
        let (m, new) = self.store.record(meta, &inputs)?;
        Ok(self.filed_report(&a, &min, &m, new, &stats))
    }

    /// Reproduction rates on fresh targets, the target's last words, then (with `gdb`) the
    /// backtrace of one more run under gdb, once the oracle's target is gone.
    fn measure(&self, mut oracle: Oracle, a: &Attributed, min: &Minimised) -> Result<Evidence> {
        let c = &a.culprits;
        let send_set = repeat_payloads(&min.payloads, c.repeat);
        let repro = repro_rate(&mut oracle, a, min, &send_set, self.opts.repro_tries)?;
        let stats = oracle.stats.clone();
        let log_tail: Vec<String> = oracle.last_log.iter().rev().take(30).rev().cloned().collect();
        drop(oracle);
        let backtrace = if self.opts.gdb && !matches!(a.observed, Death::Hang) {
            gdb_backtrace(self.factory, &send_set, c.concurrency, &self.opts.oracle).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Evidence { repro, backtrace, log_tail, stats })
    }

    /// `meta.json` of a new bucket.
    fn new_meta(&self, a: &Attributed, min: &Minimised, mut sig: Signature, ev: Evidence) -> Meta {
        let (observed, c) = (a.observed, &a.culprits);
        sig.frames = top_frames(&ev.backtrace, 3);
        let now = bucket::now_text();
        Meta {
            bucket_id: sig.bucket_id(),
            death: observed,
            signal: observed.signo().and_then(super::signal_name).map(str::to_string),
            signo: observed.signo(),
            shell_exit: observed.shell_code(),
            route: sig.routes.first().cloned().unwrap_or_default(),
            kind: c.kind,
            concurrency: c.concurrency,
            cumulative_count: (c.kind == CrashKind::Cumulative).then_some(c.repeat),
            run_seed: self.opts.run_seed,
            request_seeds: c.inputs.iter().map(|g| g.seed).collect(),
            trails: c.inputs.iter().map(|g| g.trail.clone()).collect(),
            executions: ev.stats.executions,
            restarts: ev.stats.restarts,
            seconds: a.started.elapsed().as_secs_f64(),
            size_before: min.size_before,
            size_after: min.size_after,
            repro: ev.repro,
            first_seen: now.clone(),
            last_seen: now,
            count: 1,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            target: self.factory.describe(),
            coarse_keys: a.culprit_key.iter().cloned().collect(),
            backtrace: ev.backtrace,
            log_tail: ev.log_tail,
            signature: sig,
            profile: self.opts.profile.clone(),
        }
    }

    /// The report of a minimised death filed into the bucket `m` (`new`: just created).
    fn filed_report(&self, a: &Attributed, min: &Minimised, m: &Meta, new: bool, stats: &OracleStats) -> TriageReport {
        TriageReport {
            bucket_id: Some(m.bucket_id.clone()),
            dir: Some(self.store.bucket_dir(&m.bucket_id)),
            new_bucket: new,
            executions: stats.executions,
            restarts: stats.restarts,
            seconds: a.started.elapsed().as_secs_f64(),
            size_before: min.size_before,
            size_after: min.size_after,
            culprit: a.culprits.single().cloned(),
            ..TriageReport::unfiled(a.observed, Verdict::Filed(a.culprits.kind))
        }
    }
}

/// Minimise each culprit with the others fixed, within the execution and time budget (a
/// cumulative crash keeps its repeated request as it is); then a lone request that kills as
/// `GET /` too is filed without its route.
pub fn minimise(oracle: &mut Oracle, a: &Attributed, opts: &TriageOptions) -> Result<Minimised> {
    let (observed, c) = (&a.observed, &a.culprits);
    let mut payloads = c.payloads();
    let size_before = payloads.iter().map(shrink::payload_size).sum();
    if c.kind != CrashKind::Cumulative {
        let budget_execs = oracle.stats.executions + opts.max_executions;
        let deadline = Instant::now() + opts.max_time;
        for i in 0..payloads.len() {
            let others = payloads.clone();
            let p = shrink::shrink_payload(&payloads[i], &mut |candidate: &Payload| {
                if oracle.stats.executions >= budget_execs || Instant::now() >= deadline {
                    return Ok(false);
                }
                let mut set = others.clone();
                set[i] = candidate.clone();
                if set.len() > 1 {
                    oracle.restart();
                }
                oracle.reproduces(&set, c.concurrency, observed)
            })?;
            payloads[i] = p;
        }
    }
    // A lone request that kills as `GET /` too does not depend on its route (a transport
    // crash such as an oversized Content-Length).
    if c.kind == CrashKind::Single
        && let Some(general) = shrink::without_route(&payloads[0])
    {
        oracle.restart();
        if oracle.reproduces(std::slice::from_ref(&general), 1, observed)? {
            payloads[0] = general;
        }
    }
    let size_after = payloads.iter().map(shrink::payload_size).sum();
    Ok(Minimised { payloads, size_before, size_after })
}

/// The bucket key of a minimised crash: its signature without gdb frames (those come only when
/// a new bucket is filed).
pub fn signature(observed: &Death, kind: CrashKind, payloads: &[Payload]) -> Signature {
    Signature {
        death: observed.key(),
        kind,
        routes: bucket::routes_of(payloads),
        shapes: if kind == CrashKind::Cumulative {
            Vec::new()
        } else {
            payloads.iter().map(bucket::payload_shape).collect()
        },
        frames: Vec::new(),
    }
}

/// Reproduction rates on fresh targets: serially, and concurrently. A set is sent as found; a
/// single or cumulative reproducer is sent `repeat` times (`send_set`), and concurrently beside
/// its payload once more.
fn repro_rate(
    oracle: &mut Oracle,
    a: &Attributed,
    min: &Minimised,
    send_set: &[Payload],
    tries: usize,
) -> Result<ReproRate> {
    let (observed, c) = (&a.observed, &a.culprits);
    let payloads = &min.payloads;
    let serial_hits = if c.kind == CrashKind::Set {
        oracle.rate(payloads, 1, observed, tries)?
    } else {
        oracle.rate(send_set, 1, observed, tries)?
    };
    let conc_set: Vec<Payload> =
        if c.kind == CrashKind::Set { payloads.clone() } else { [send_set, payloads.as_slice()].concat() };
    let concurrent_hits = oracle.rate(&conc_set, c.concurrency.max(2), observed, tries)?;
    Ok(ReproRate { tries, serial_hits, concurrent_hits })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_skip_libc() {
        let bt: Vec<String> = [
            "#0  __pthread_kill_implementation (no_tid=0, signo=11, threadid=<optimized out>) at ./nptl/pthread_kill.c:44",
            "#1  0x00007ffff7c8f15f in __pthread_kill_internal (signo=11) at ./nptl/pthread_kill.c:78",
            "#2  0x00007ffff7c40472 in __GI_raise (sig=11) at ../sysdeps/posix/raise.c:26",
            "#3  0x0000555555560abc in crashy::handle::h0123456789abcdef (s=...) at tests/it/support/crashy.rs:40",
            "#4  0x0000555555560def in crashy::serve (port=0) at tests/it/support/crashy.rs:80",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(top_frames(&bt, 3), vec!["crashy::handle".to_string(), "crashy::serve".to_string()]);
    }
}
