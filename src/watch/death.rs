//! How a target stopped working, classified: a signal, an exit code, or a hang. The one death
//! type of the pipeline: the watchdog produces it, triage files reproducers under it.

use serde::{Deserialize, Serialize};

/// How a target stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Death {
    /// Killed by a signal (also used for the shell form `128+N`, see [`Death::from_exit_code`]).
    Signal { signo: i32, core_dumped: bool },
    /// Exited with a code (not a `128+N` signal form).
    Exit { code: i32 },
    /// Alive but not answering a probe in time.
    Hang,
}

impl Death {
    /// Classify a plain exit code: `128+N` for a known signal N (what a shell reports) is
    /// treated as that signal.
    pub fn from_exit_code(code: i32) -> Death {
        if code > 128 && code <= 128 + 31 && signal_name(code - 128).is_some() {
            Death::Signal { signo: code - 128, core_dumped: false }
        } else {
            Death::Exit { code }
        }
    }

    /// From a std exit status.
    pub fn from_status(st: std::process::ExitStatus) -> Death {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = st.signal() {
            Death::Signal { signo: sig, core_dumped: st.core_dumped() }
        } else {
            Death::from_exit_code(st.code().unwrap_or(-1))
        }
    }

    /// Whether two deaths are "the same way of dying" (core dump flag ignored).
    pub fn same_kind(&self, other: &Death) -> bool {
        self.key() == other.key()
    }

    /// Short stable text: `SIGSEGV`, `exit-3`, `hang`.
    pub fn key(&self) -> String {
        match self {
            Death::Signal { signo, .. } => signal_name(*signo).map(str::to_string).unwrap_or(format!("SIG{signo}")),
            Death::Exit { code } => format!("exit-{code}"),
            Death::Hang => "hang".to_string(),
        }
    }

    /// Shell exit status form (`139` for SIGSEGV), None for hangs.
    pub fn shell_code(&self) -> Option<i32> {
        match self {
            Death::Signal { signo, .. } => Some(128 + signo),
            Death::Exit { code } => Some(*code),
            Death::Hang => None,
        }
    }

    /// As the watch stage's [`crate::watch::ExitInfo`] (time since spawn unknown: zero).
    pub fn exit_info(&self) -> crate::watch::ExitInfo {
        let (code, signal) = match self {
            Death::Signal { signo, .. } => (None, Some(*signo)),
            Death::Exit { code } => (Some(*code), None),
            Death::Hang => (None, None),
        };
        crate::watch::ExitInfo {
            code,
            signal,
            signal_name: signal.map(crate::watch::process::signal_name),
            shell_code: self.shell_code().unwrap_or(-1),
            core_dumped: matches!(self, Death::Signal { core_dumped: true, .. }),
            after: std::time::Duration::ZERO,
        }
    }

    pub fn signo(&self) -> Option<i32> {
        match self {
            Death::Signal { signo, .. } => Some(*signo),
            _ => None,
        }
    }
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Death::Signal { signo, core_dumped } => write!(
                f,
                "{} (signal {signo}, shell exit {}{})",
                self.key(),
                128 + signo,
                if *core_dumped { ", core dumped" } else { "" }
            ),
            Death::Exit { code } => write!(f, "exit code {code}"),
            Death::Hang => write!(f, "hang (probe timed out)"),
        }
    }
}

/// Linux signal names.
pub fn signal_name(signo: i32) -> Option<&'static str> {
    Some(match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn death_classification() {
        assert_eq!(Death::from_exit_code(139), Death::Signal { signo: 11, core_dumped: false });
        assert_eq!(Death::from_exit_code(134).key(), "SIGABRT");
        assert_eq!(Death::from_exit_code(3), Death::Exit { code: 3 });
        assert!(Death::Signal { signo: 11, core_dumped: true }.same_kind(&Death::from_exit_code(139)));
        assert_eq!(Death::Hang.shell_code(), None);
    }
}
