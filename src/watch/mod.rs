//! `watch`: target process supervision.
//!
//! - [`process`]: the one spawner: start a target process, capture its output, notice and
//!   classify its death ([`death::Death`]).
//! - [`launch`]: how a target starts and when it is ready (fixed or announced ports, readiness
//!   probe, startup retries with backoff), for every user of a target.
//! - [`supervisor`]: the run's target over its lifetime: death and hang detection, kill of a
//!   hung target, restarts, lending to the fuzz phase and triage, outage intervals.
//! - [`sampler`]: /proc time series (RSS, fds, threads, CPU) once per interval.
//! - [`attach`]: watch a process we did not start (pidfd_open).

pub mod attach;
pub mod death;
pub mod launch;
pub mod process;
pub mod sampler;
pub mod supervisor;

pub use death::Death;
pub use process::{ExitInfo, LogLine, TargetCommand, TargetProcess};

/// Quote a word for a POSIX shell (for printed command lines and `repro.sh`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Serialise a Duration as integer milliseconds.
pub mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
