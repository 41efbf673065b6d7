//! The phase's timeline: one [`Second`] per second, or per `span` seconds once a long phase
//! outgrew [`TIMELINE_MAX`] entries (neighbours merged in place).

use super::outcome::Outcome;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most entries the timeline of a phase holds (see the module docs).
pub const TIMELINE_MAX: usize = 4096;

/// One interval of the timeline: one second, or `span` seconds in long phases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the phase started (end of the interval).
    pub t: u64,
    /// Seconds the interval covers (1 unless the phase outgrew [`TIMELINE_MAX`] seconds); the
    /// counts are totals over the interval, so a rate is `requests / span`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub span: u64,
    pub requests: u64,
    pub errors: u64,
    /// Counts per outcome (keyed by the outcome, not its name: a timeline holds thousands of
    /// these maps, and a String per key was most of their memory).
    pub outcomes: BTreeMap<Outcome, u64>,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

fn one() -> u64 {
    1
}

fn is_one(v: &u64) -> bool {
    *v == 1
}

impl Second {
    /// Two neighbouring intervals as one (`self` earlier). Counts add up; the percentiles take
    /// the larger of the two (an upper bound: the exact figures are in the interval log).
    pub(super) fn merge(self, later: Second) -> Second {
        let mut outcomes = self.outcomes;
        for (k, n) in later.outcomes {
            *outcomes.entry(k).or_default() += n;
        }
        Second {
            t: later.t,
            span: self.span + later.span,
            requests: self.requests + later.requests,
            errors: self.errors + later.errors,
            outcomes,
            p50_us: self.p50_us.max(later.p50_us),
            p90_us: self.p90_us.max(later.p90_us),
            p99_us: self.p99_us.max(later.p99_us),
            max_us: self.max_us.max(later.max_us),
        }
    }

    /// A timeline entry from a histogram and outcome counts.
    pub(super) fn of(t: u64, span: u64, h: &Histogram<u64>, outcomes: &BTreeMap<Outcome, u64>) -> Second {
        Second {
            t,
            span,
            requests: outcomes.iter().filter(|(o, _)| o.is_request()).map(|(_, n)| n).sum(),
            errors: outcomes.iter().filter(|(o, _)| o.is_error()).map(|(_, n)| n).sum(),
            outcomes: outcomes.clone(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_entries_keep_their_json_form() {
        let text = r#"{"t":3,"requests":5,"errors":1,"outcomes":{"2xx":4,"connect-refused":1,"ack-ok":2},"p50_us":1,"p90_us":2,"p99_us":3,"max_us":4}"#;
        let s: Second = serde_json::from_str(text).unwrap();
        assert_eq!(s.span, 1);
        assert_eq!(s.outcomes.get(&Outcome::ConnectRefused), Some(&1));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(text).unwrap());
    }
}
