//! `watch`: target process supervision.
//!
//! - [`process`]: spawn a target (built-in or a command), capture its output, notice and
//!   classify its death.
//! - [`supervisor`]: readiness gate, death/hang detection, restarts with outage intervals.
//! - [`sampler`]: /proc time series (RSS, fds, threads, CPU) once per interval.
//! - [`attach`]: watch a process we did not start (pidfd_open).

pub mod attach;
pub mod process;
pub mod sampler;
pub mod supervisor;

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
