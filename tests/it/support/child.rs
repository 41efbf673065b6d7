//! `mesher-stress target` as a child process, its bound ports parsed from its startup lines.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The target as a child process.
pub struct ChildTarget {
    pub child: Child,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

impl ChildTarget {
    /// Start `mesher-stress target` on free ports against `url` (schema + fixtures prepared),
    /// with `extra` arguments (`--fault F`, `--keep-alive`).
    pub fn start(url: &str, extra: &[&str]) -> ChildTarget {
        let mut child = super::bin()
            .args(["target", "--http-port", "0", "--ws-port", "0", "--database-url", url, "--prepare-db"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn target");
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        let err = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                log2.lock().unwrap().push_str(&format!("{line}\n"));
                for (kind, p) in [("ws", "WebSocket server listening on "), ("http", "HTTP server listening on ")] {
                    if let Some(a) = line.split(p).nth(1) {
                        let _ = tx.send((kind, a.trim().parse::<SocketAddr>().unwrap()));
                    }
                }
            }
        });
        let (mut http, mut ws) = (None, None);
        while http.is_none() || ws.is_none() {
            let (k, a) = rx.recv_timeout(Duration::from_secs(90)).unwrap_or_else(|_| {
                let status = child.try_wait().ok().flatten();
                panic!("target not ready (exit {status:?}); its stderr:\n{}", log.lock().unwrap())
            });
            if k == "http" { http = Some(a) } else { ws = Some(a) }
        }
        ChildTarget { child, http: http.unwrap(), ws: ws.unwrap(), stderr: log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait (at most `t`) for the process to exit; its exit status.
    pub fn wait_exit(&mut self, t: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + t;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for ChildTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
