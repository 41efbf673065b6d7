//! Attach to a process we did not start: `pidfd_open(2)` gives a descriptor that becomes
//! readable the moment the process ends (polled through tokio, no timer). A non-child's exit
//! status cannot be read; only the moment of death is known.

use anyhow::{Result, bail};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// A process watched through its pidfd.
pub struct Attached {
    pub pid: u32,
    pub since: Instant,
    fd: AsyncFd<OwnedFd>,
}

impl Attached {
    /// Attach to `pid` (must exist). Call inside a tokio runtime.
    pub fn new(pid: u32) -> Result<Attached> {
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            bail!("cannot attach to pid {pid}: {}", std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: `owned` is a valid descriptor that stays open as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(owned) }.map_err(|e| anyhow::anyhow!("cannot register pidfd: {e}"))?;
        Ok(Attached { pid, since: Instant::now(), fd })
    }

    /// True while the process exists (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        !stat.is_empty() && !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z')
    }

    /// Wait until the process ends; returns how long it was watched.
    pub async fn wait_death(&self) -> Duration {
        loop {
            match self.fd.readable().await {
                Ok(mut g) => {
                    g.retain_ready();
                    return self.since.elapsed();
                }
                Err(_) => {
                    if !self.alive() {
                        return self.since.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
