//! The oracle: "does sending these inputs reproduce that death?".
//!
//! Re-executions are made cheap by reusing the running target until it dies (a restart costs
//! 100-300 ms). Because a long-lived target may die of accumulated load rather than of the
//! candidate (cumulative crashes), a death on an *aged* target (one that had already received
//! other inputs) is confirmed by replaying the candidate alone on a fresh target. A death is a
//! reproduction only if it is the same kind (signal / exit code / hang) as expected. Hangs are
//! tested by holding the candidate connections open and timing a probe request.

use super::Death;
use super::exec::{self, Addrs, Reply};
use super::target::{TargetFactory, TargetHandle};
use crate::model::Payload;
use anyhow::Result;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Timed-out sends in a row after which cumulative counting gives up.
const UNANSWERED_MAX: u32 = 3;

/// Oracle settings.
#[derive(Debug, Clone)]
pub struct OracleOptions {
    /// Per-send timeout.
    pub timeout: Duration,
    /// How long to wait for a death after the last answer (crashes may follow the response).
    pub grace: Duration,
    /// Probe for hang detection, and how long it may take.
    pub probe: Payload,
    pub probe_timeout: Duration,
    /// How long culprits are held open before probing (hang candidates).
    pub hold: Duration,
}

impl OracleOptions {
    pub fn new(probe: Payload) -> OracleOptions {
        OracleOptions {
            timeout: Duration::from_secs(5),
            grace: Duration::from_millis(200),
            probe,
            probe_timeout: Duration::from_secs(2),
            hold: Duration::from_millis(100),
        }
    }
}

/// The default hang probe: the watchdog owns it (its readiness and hang probe), triage probes
/// with it too.
pub use crate::watch::launch::default_probe;

/// Counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OracleStats {
    /// Test executions (one candidate sent, outcome judged).
    pub executions: u64,
    /// Target (re)starts.
    pub restarts: u64,
    /// Payloads sent in total.
    pub sends: u64,
}

/// What an execution did.
#[derive(Debug, Clone)]
pub struct Execution {
    pub death: Option<Death>,
    pub replies: Vec<Reply>,
}

/// The oracle (owns the current target).
pub struct Oracle<'f> {
    factory: &'f dyn TargetFactory,
    pub opts: OracleOptions,
    target: Option<Box<dyn TargetHandle>>,
    /// Payloads sent to the current target.
    sent_to_current: u64,
    pub stats: OracleStats,
    /// Log tail of the last target that died.
    pub last_log: Vec<String>,
}

impl<'f> Oracle<'f> {
    pub fn new(factory: &'f dyn TargetFactory, opts: OracleOptions) -> Oracle<'f> {
        Oracle { factory, opts, target: None, sent_to_current: 0, stats: OracleStats::default(), last_log: Vec::new() }
    }

    pub fn factory(&self) -> &'f dyn TargetFactory {
        self.factory
    }

    /// A live target (starting one if there is none or it died).
    pub fn live(&mut self) -> Result<&mut Box<dyn TargetHandle>> {
        let dead = match &self.target {
            None => true,
            Some(t) => t.death().is_some(),
        };
        if dead {
            if let Some(mut t) = self.target.take() {
                self.last_log = t.log_tail();
                t.kill();
            }
            self.target = Some(self.factory.start()?);
            self.stats.restarts += 1;
            self.sent_to_current = 0;
        }
        Ok(self.target.as_mut().unwrap())
    }

    /// Kill the current target so that the next execution gets a fresh one.
    pub fn restart(&mut self) {
        if let Some(mut t) = self.target.take() {
            t.kill();
        }
    }

    pub fn addrs(&mut self) -> Result<Addrs> {
        Ok(self.live()?.addrs())
    }

    /// Send `inputs` at `concurrency` (1 = serially, in order) to the current target and report
    /// whether and how it died. No confirmation, no restart afterwards.
    pub fn execute_raw(&mut self, inputs: &[Payload], concurrency: usize, expect_hang: bool) -> Result<Execution> {
        let opts = self.opts.clone();
        let addrs = self.live()?.addrs();
        self.sent_to_current += inputs.len() as u64;
        self.stats.sends += inputs.len() as u64;
        if expect_hang {
            let held: Vec<_> = inputs.iter().filter_map(|p| exec::open_and_hold(p, &addrs, opts.timeout)).collect();
            std::thread::sleep(opts.hold);
            let probe = exec::send(&opts.probe, &addrs, opts.probe_timeout);
            drop(held);
            self.stats.sends += 1;
            let death = self.target.as_ref().and_then(|t| t.death());
            let hung = matches!(probe, Reply::Timeout);
            if hung {
                // A hung target is useless for the next execution.
                self.restart();
            }
            return Ok(Execution { death: if hung { Some(Death::Hang) } else { death }, replies: vec![probe] });
        }
        let replies = send_all(inputs, &addrs, concurrency, opts.timeout);
        let t = self.target.as_ref().unwrap();
        let death = t.wait_death(opts.grace);
        if death.is_some() {
            self.last_log = t.log_tail();
        }
        Ok(Execution { death, replies })
    }

    /// One test execution: does `inputs` reproduce a death of the kind of `expect`? A death on
    /// a target that had already received other inputs is confirmed on a fresh target.
    pub fn reproduces(&mut self, inputs: &[Payload], concurrency: usize, expect: &Death) -> Result<bool> {
        self.stats.executions += 1;
        let hang = matches!(expect, Death::Hang);
        let aged = self.target.as_ref().is_some_and(|t| t.death().is_none()) && self.sent_to_current > 0;
        let out = self.execute_raw(inputs, concurrency, hang)?;
        match out.death {
            // Died on an aged target (maybe of accumulated load, or of another kind): judge the
            // candidate alone on a fresh target.
            Some(_) if aged && !hang => {
                let again = self.execute_raw(inputs, concurrency, hang)?;
                Ok(again.death.is_some_and(|d| d.same_kind(expect)))
            }
            Some(d) => Ok(d.same_kind(expect)),
            None => Ok(false),
        }
    }

    /// Send `inputs` one after the other to one fresh target, each waited for a moment; the
    /// index of the input after which it died the way `expect` says (for a hang: whose answer
    /// timed out and after which the probe timed out too). None: it survived them all, or died
    /// another way.
    pub fn sweep(&mut self, inputs: &[Payload], expect: &Death) -> Result<Option<usize>> {
        self.restart();
        let opts = self.opts.clone();
        let addrs = self.live()?.addrs();
        let settle = (opts.grace / 10).max(Duration::from_millis(20));
        for (i, p) in inputs.iter().enumerate() {
            let reply = exec::send(p, &addrs, opts.timeout);
            self.stats.sends += 1;
            self.sent_to_current += 1;
            let t = self.target.as_ref().expect("live");
            if let Some(d) = t.wait_death(settle) {
                self.last_log = t.log_tail();
                return Ok(d.same_kind(expect).then_some(i));
            }
            if matches!(expect, Death::Hang) && matches!(reply, Reply::Timeout) {
                let probe = exec::send(&opts.probe, &addrs, opts.probe_timeout);
                self.stats.sends += 1;
                if matches!(probe, Reply::Timeout) {
                    self.restart();
                    return Ok(Some(i));
                }
            }
        }
        Ok(None)
    }

    /// Reproduction rate over `tries` fresh targets (each try restarts).
    pub fn rate(&mut self, inputs: &[Payload], concurrency: usize, expect: &Death, tries: usize) -> Result<usize> {
        let mut hits = 0;
        for _ in 0..tries {
            self.restart();
            let out = self.execute_raw(inputs, concurrency, matches!(expect, Death::Hang))?;
            if out.death.is_some_and(|d| d.same_kind(expect)) {
                hits += 1;
            }
        }
        Ok(hits)
    }

    /// Send `payload` up to `max` times serially to a fresh target; the number of sends after
    /// which it died with the expected kind (None if it survived, or if [`UNANSWERED_MAX`]
    /// sends in a row timed out).
    pub fn count_until_death(&mut self, payload: &Payload, max: u64, expect: &Death) -> Result<Option<u64>> {
        self.restart();
        let opts = self.opts.clone();
        let addrs = self.live()?.addrs();
        let t = self.target.as_ref().unwrap();
        let mut result = None;
        let mut sent = 0;
        let mut unanswered = 0;
        for i in 1..=max {
            let reply = exec::send(payload, &addrs, opts.timeout);
            sent += 1;
            if let Some(d) = t.death() {
                result = Some(d.same_kind(expect).then_some(i));
                break;
            }
            // A target that leaves the input unanswered is not counting it (and each send
            // would cost the whole timeout: a thousand of them, a quarter of an hour).
            unanswered = if matches!(reply, Reply::Timeout) { unanswered + 1 } else { 0 };
            if unanswered >= UNANSWERED_MAX {
                break;
            }
            if i % 64 == 0 && !exec::port_open(addrs.http, Duration::from_millis(500)) {
                break;
            }
        }
        let result = match result {
            Some(r) => r,
            // Dead within the grace after the last send: it took all `sent` of them (fewer than
            // `max` when counting gave up early).
            None => t.wait_death(opts.grace).and_then(|d| d.same_kind(expect).then_some(sent)),
        };
        self.stats.sends += sent;
        self.sent_to_current += sent;
        Ok(result)
    }

    pub fn current(&self) -> Option<&dyn TargetHandle> {
        self.target.as_deref()
    }
}

impl Drop for Oracle<'_> {
    fn drop(&mut self) {
        self.restart();
    }
}

/// Send all inputs with at most `concurrency` in flight (1 = in order); replies in input order.
pub fn send_all(inputs: &[Payload], addrs: &Addrs, concurrency: usize, timeout: Duration) -> Vec<Reply> {
    if concurrency <= 1 || inputs.len() <= 1 {
        return inputs.iter().map(|p| exec::send(p, addrs, timeout)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(vec![Reply::Timeout; inputs.len()]);
    std::thread::scope(|s| {
        for _ in 0..concurrency.min(inputs.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= inputs.len() {
                        break;
                    }
                    let r = exec::send(&inputs[i], addrs, timeout);
                    out.lock().unwrap()[i] = r;
                }
            });
        }
    });
    out.into_inner().unwrap()
}

/// Time a closure (for stats).
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}
