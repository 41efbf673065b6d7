//! Planted faults of the built-in target. Each reproduces one crash class of `mesher-api.md` §6
//! with a real process death or hang, never a simulated status code. Triggers and symptoms are
//! listed in [`Fault::HELP`] (shown by `mesher-stress target --help`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A fault and its parameters. Written on the command line and in profiles as `name` or
/// `name=param` (e.g. `leak=51200`, `pause=5s/300ms`, `cumulative-crash=500`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// §6.1: an authenticated event of a particular shape → SIGSEGV (exit 139).
    ServiceReplyAbi,
    /// §6.1: the first rate-limit check of each project answers "limited" (429).
    RateLimitBool,
    /// §6.4 R1: an absurdly large `Content-Length` → SIGABRT (exit 134).
    OversizedContentLength,
    /// §6.4 R2: idle or trickling connections block the server (hang).
    SlowReaderStall,
    /// Every handled request leaks `bytes` bytes.
    Leak { bytes: usize },
    /// A stop-the-world pause of `length` every `every`.
    Pause { every: Duration, length: Duration },
    /// SIGSEGV after `after` database-touching requests, whatever they contain.
    CumulativeCrash { after: u64 },
}

impl Fault {
    pub const NAMES: [&'static str; 7] = [
        "service-reply-abi",
        "rate-limit-bool",
        "oversized-content-length",
        "slow-reader-stall",
        "leak",
        "pause",
        "cumulative-crash",
    ];

    /// Parse `name` or `name=param`.
    pub fn parse(s: &str) -> Result<Fault, String> {
        let (name, param) = match s.split_once('=') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        let no_param = |f: Fault| match param {
            None => Ok(f),
            Some(_) => Err(format!("fault {name} takes no parameter")),
        };
        match name {
            "service-reply-abi" => no_param(Fault::ServiceReplyAbi),
            "rate-limit-bool" => no_param(Fault::RateLimitBool),
            "oversized-content-length" => no_param(Fault::OversizedContentLength),
            "slow-reader-stall" => no_param(Fault::SlowReaderStall),
            "leak" => {
                let bytes = match param {
                    None => 50 * 1024,
                    Some(p) => {
                        p.parse().map_err(|_| format!("leak={p}: the parameter is a byte count, e.g. leak=51200"))?
                    }
                };
                Ok(Fault::Leak { bytes })
            }
            "pause" => {
                let (every, length) = match param {
                    None => (Duration::from_secs(5), Duration::from_millis(500)),
                    Some(p) => {
                        let (e, l) = p
                            .split_once('/')
                            .ok_or_else(|| format!("pause={p}: write pause=EVERY/LENGTH, e.g. pause=5s/500ms"))?;
                        (crate::profile::parse_duration(e)?, crate::profile::parse_duration(l)?)
                    }
                };
                if every.is_zero() || length.is_zero() {
                    return Err("pause: EVERY and LENGTH must be positive".into());
                }
                Ok(Fault::Pause { every, length })
            }
            "cumulative-crash" => {
                let after =
                    match param {
                        None => 1000,
                        Some(p) => p.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            format!("cumulative-crash={p}: the parameter is a positive request count")
                        })?,
                    };
                Ok(Fault::CumulativeCrash { after })
            }
            _ => Err(format!("unknown fault {name:?}; known faults: {}", Fault::NAMES.join(", "))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Fault::ServiceReplyAbi => "service-reply-abi",
            Fault::RateLimitBool => "rate-limit-bool",
            Fault::OversizedContentLength => "oversized-content-length",
            Fault::SlowReaderStall => "slow-reader-stall",
            Fault::Leak { .. } => "leak",
            Fault::Pause { .. } => "pause",
            Fault::CumulativeCrash { .. } => "cumulative-crash",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault() {
        for n in Fault::NAMES {
            assert_eq!(Fault::parse(n).unwrap().name(), n);
        }
        assert_eq!(Fault::parse("leak=10").unwrap(), Fault::Leak { bytes: 10 });
        assert_eq!(
            Fault::parse("pause=2s/100ms").unwrap(),
            Fault::Pause { every: Duration::from_secs(2), length: Duration::from_millis(100) }
        );
        assert!(Fault::parse("nope").unwrap_err().contains("known faults"));
        assert!(Fault::parse("leak=x").is_err());
        assert!(Fault::parse("service-reply-abi=1").is_err());
    }
}
