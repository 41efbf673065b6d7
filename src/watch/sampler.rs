//! /proc sampler: RSS, open fds, threads and CPU (utime + stime) of a process, once per
//! interval, into a plain serialisable time series. Linux only (reads `/proc/<pid>/stat` and
//! counts `/proc/<pid>/fd`).
//!
//! Long runs stay flat in memory: a series holds at most [`SERIES_MAX`] samples; when it is
//! full every other sample is dropped and the sampler keeps one sample in two from then on
//! (a 6-hour run ends with samples every 4 s).

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// Milliseconds since the series' origin.
    pub t_ms: u64,
    /// Wall-clock time of the sample, Unix milliseconds (the time base shared with load
    /// phases' `started_at_ms`; 0 in reports written before it existed).
    #[serde(default)]
    pub unix_ms: u64,
    pub pid: u32,
    pub rss_bytes: u64,
    pub fds: u64,
    pub threads: u64,
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
}

/// Read one sample now (None when the process is gone or unreadable).
pub fn read(pid: u32, t_ms: u64) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime = field 14, stime = 15, num_threads = 20, rss = 24.
    if f.first() == Some(&"Z") {
        return None;
    }
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    let (utime, stime, threads, rss_pages) = (num(11)?, num(12)?, num(17)?, num(21)?);
    // SAFETY: sysconf has no preconditions.
    let (page, tck) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    let unix_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Some(ProcSample {
        t_ms,
        unix_ms,
        pid,
        rss_bytes: rss_pages * page.max(1) as u64,
        fds,
        threads,
        cpu_seconds: (utime + stime) as f64 / tck.max(1) as f64,
    })
}

/// Most samples a series holds (see the module docs).
pub const SERIES_MAX: usize = 8192;

/// Append `x`; a series that reaches `max` drops every other sample (returns true then).
pub fn push_bounded(series: &mut Vec<ProcSample>, x: ProcSample, max: usize) -> bool {
    series.push(x);
    if series.len() < max.max(2) {
        return false;
    }
    let mut i = 0;
    series.retain(|_| {
        i += 1;
        i % 2 == 1
    });
    true
}

/// A running sampler task; the series is shared (read it any time, e.g. for the report).
pub struct Sampler {
    pub series: Arc<Mutex<Vec<ProcSample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Sample `pid` every `every` (first sample at once) until it is gone or the sampler is
    /// dropped. `origin` is the time zero of `t_ms`. Several samplers (one per target
    /// incarnation) can share one series.
    pub fn spawn(pid: u32, every: Duration, origin: Instant, series: Arc<Mutex<Vec<ProcSample>>>) -> Sampler {
        let s = series.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Keep one tick in `stride` (doubles each time the series is thinned out).
            let (mut stride, mut n) = (1u64, 0u64);
            loop {
                tick.tick().await;
                n += 1;
                if (n - 1) % stride != 0 {
                    continue;
                }
                let t = origin.elapsed().as_millis() as u64;
                match read(pid, t) {
                    Some(x) => {
                        if push_bounded(&mut s.lock().expect("series lock"), x, SERIES_MAX) {
                            stride *= 2;
                        }
                    }
                    None => break,
                }
            }
        });
        Sampler { series, task }
    }

    /// A copy of the series so far.
    pub fn snapshot(&self) -> Vec<ProcSample> {
        self.series.lock().expect("series lock").clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_full_series_is_thinned_out() {
        let mut s = Vec::new();
        let mut thinned = 0;
        for t in 0..100u64 {
            let x = super::ProcSample {
                t_ms: t * 1000,
                unix_ms: 0,
                pid: 1,
                rss_bytes: t,
                fds: 0,
                threads: 1,
                cpu_seconds: 0.0,
            };
            if super::push_bounded(&mut s, x, 16) {
                thinned += 1;
            }
        }
        assert!(s.len() < 16 && thinned > 0, "{} samples", s.len());
        assert_eq!(s[0].t_ms, 0);
        assert!(s.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
    }

    #[test]
    fn reads_own_process() {
        let s = super::read(std::process::id(), 0).unwrap();
        assert!(s.rss_bytes > 0 && s.threads >= 1 && s.fds >= 3, "{s:?}");
    }
}
