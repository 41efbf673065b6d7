//! `mesher-stress load` end to end as a child process: Ctrl-C produces a complete report and
//! exit code 130; thresholds set the exit code.

use crate::support::bin;
use crate::support::load::*;
use crate::support::servers::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_writes_the_report_of_what_was_measured() {
    let (addr, _) = http_server(Mode::KeepAlive).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args(["--quiet", "--out"])
        .arg(dir.path())
        .args([
            "load",
            "--http",
            &http(addr),
            "--route-get",
            "/ok",
            "-c",
            "4",
            "--rate",
            "400",
            "--duration",
            "60s",
            "--keep-alive",
        ])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t0 = Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20), "stopped promptly");
    assert_eq!(status.code(), Some(130));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["consistent"], true);
    let sent = v["requests_sent"].as_u64().unwrap();
    assert!(sent > 50 && sent < 60 * 400, "{sent}");
    let sum: u64 = v["outcomes"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(sum, sent);
    assert!(!v["timeline"].as_array().unwrap().is_empty());
    assert!(dir.path().join("load.hlog").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_set_the_exit_code() {
    let (addr, _) = http_server(Mode::Close).await;
    let run = |extra: &'static [&'static str]| {
        let url = http(addr);
        tokio::task::spawn_blocking(move || {
            bin()
                .args(["--quiet", "load", "--http", &url, "--route-get", "/ok", "--requests", "200", "-c", "4"])
                .args(extra)
                .output()
                .unwrap()
        })
    };
    let ok = run(&["--p99-max", "10s", "--max-error-rate", "0"]).await.unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("passed"));
    let bad = run(&["--p99-max", "1us"]).await.unwrap();
    assert_eq!(bad.status.code(), Some(1));
    // Refuses non-loopback targets before any traffic.
    let remote = tokio::task::spawn_blocking(|| {
        bin().args(["--quiet", "load", "--http", "http://10.1.2.3:80", "--requests", "1"]).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(remote.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&remote.stderr).contains("loopback"));
}
