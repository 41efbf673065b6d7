//! Open-loop arrival schedule: the intended send time of the k-th request (k = 0, 1, ...), from
//! a constant rate or linear ramps. Computed in closed form per index (no accumulated drift);
//! the lanes claim indices from one counter, so together they follow the schedule exactly.

use std::time::Duration;

/// One linear segment: rate goes from `r0` to `r1` over `len` (None = forever, constant).
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64,
    len: Option<f64>,
    r0: f64,
    r1: f64,
    /// Requests scheduled before this segment.
    before: f64,
}

/// Piecewise-linear arrival rate.
#[derive(Debug, Clone)]
pub struct Schedule {
    segs: Vec<Segment>,
}

impl Schedule {
    /// Constant `rate` for `duration` (None = until the request count ends it).
    pub fn constant(rate: f64, duration: Option<Duration>) -> Schedule {
        Schedule {
            segs: vec![Segment { start: 0.0, len: duration.map(|d| d.as_secs_f64()), r0: rate, r1: rate, before: 0.0 }],
        }
    }

    /// Ramps: from `start_rate` to each stage's rate in turn. A `tail` keeps the last rate for
    /// that much longer (when `duration` exceeds the stages).
    pub fn stages(start_rate: f64, stages: &[(f64, Duration)], tail: Option<Duration>) -> Schedule {
        let mut segs = Vec::new();
        let (mut t, mut n, mut r) = (0.0, 0.0, start_rate);
        for &(rate, d) in stages {
            let len = d.as_secs_f64();
            segs.push(Segment { start: t, len: Some(len), r0: r, r1: rate, before: n });
            n += (r + rate) / 2.0 * len;
            t += len;
            r = rate;
        }
        if let Some(tail) = tail
            && !tail.is_zero()
        {
            segs.push(Segment { start: t, len: Some(tail.as_secs_f64()), r0: r, r1: r, before: n });
        }
        Schedule { segs }
    }

    /// Total number of requests the schedule holds (None = unbounded).
    pub fn total(&self) -> Option<u64> {
        let last = self.segs.last()?;
        let len = last.len?;
        Some((last.before + (last.r0 + last.r1) / 2.0 * len).floor() as u64)
    }

    /// Intended offset of request `k` from the start; None when past the end.
    pub fn at(&self, k: u64) -> Option<Duration> {
        let k = k as f64;
        for s in &self.segs {
            let want = k - s.before;
            let in_seg = match s.len {
                Some(len) => (s.r0 + s.r1) / 2.0 * len,
                None => f64::INFINITY,
            };
            if want >= in_seg {
                continue;
            }
            let tau = if (s.r1 - s.r0).abs() < 1e-12 {
                if s.r0 <= 0.0 {
                    continue;
                }
                want / s.r0
            } else {
                // n(τ) = r0 τ + (r1 - r0) τ² / (2 len)  → solve n(τ) = want
                let len = s.len.expect("ramps have a length");
                let a = (s.r1 - s.r0) / (2.0 * len);
                let b = s.r0;
                let disc = (b * b + 4.0 * a * want).max(0.0);
                (2.0 * want) / (b + disc.sqrt()).max(1e-12)
            };
            return Some(Duration::from_secs_f64(s.start + tau.max(0.0)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate() {
        let s = Schedule::constant(1000.0, Some(Duration::from_secs(2)));
        assert_eq!(s.total(), Some(2000));
        assert_eq!(s.at(0), Some(Duration::ZERO));
        assert_eq!(s.at(500), Some(Duration::from_millis(500)));
        assert!(s.at(1999).is_some());
        assert_eq!(s.at(2000), None);
        let u = Schedule::constant(10.0, None);
        assert_eq!(u.total(), None);
        assert_eq!(u.at(1_000_000), Some(Duration::from_secs(100_000)));
    }

    #[test]
    fn ramps_are_monotonic_and_sum_up() {
        let s = Schedule::stages(
            0.0,
            &[(100.0, Duration::from_secs(10)), (100.0, Duration::from_secs(5)), (0.0, Duration::from_secs(10))],
            None,
        );
        // 500 + 500 + 500
        assert_eq!(s.total(), Some(1500));
        let mut prev = Duration::ZERO;
        for k in 0..1500 {
            let t = s.at(k).unwrap();
            assert!(t >= prev, "k={k}");
            prev = t;
        }
        assert!(s.at(1500).is_none());
        // Half of the ramp-up's requests come in its last 29% (n ∝ τ²).
        let t250 = s.at(250).unwrap().as_secs_f64();
        assert!((t250 - 50f64.sqrt()).abs() < 1e-6, "{t250}");
        // The hold stage is exact.
        assert!((s.at(750).unwrap().as_secs_f64() - 12.5).abs() < 1e-9);
    }
}
