//! Supervision of a real crashing child (`support::crashy`): readiness, instant death notice with
//! classification, restart with outage intervals, hang detection by probe, the /proc sampler,
//! and attaching to a process we did not start (pidfd).

use crate::support::crashy::*;
use mesher_stress::model::{HttpRequest, Payload};
use mesher_stress::triage::exec;
use mesher_stress::watch::attach::Attached;
use mesher_stress::watch::launch::Launch;
use mesher_stress::watch::supervisor::{HangPolicy, SuperviseOptions, Supervisor, WatchEvent};
use std::time::Duration;

fn launch() -> Launch {
    crashy_factory(&[]).launch()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn death_restart_hang_and_samples() {
    let opts = SuperviseOptions {
        hang: HangPolicy {
            timeout: Duration::from_millis(600),
            probe_timeout: Duration::from_millis(300),
            ..HangPolicy::default()
        },
        sample_every: Duration::from_millis(100),
        ..SuperviseOptions::default()
    };
    let mut s = Supervisor::start(launch(), opts).await.unwrap();
    let addrs = s.addrs();
    tokio::time::sleep(Duration::from_millis(450)).await;

    // A crash: noticed and classified.
    let body = serde_json::to_vec(&noisy_trigger_body()).unwrap();
    let p = Payload::Http(HttpRequest::new(None, "POST", "/api/v1/events".into(), body));
    tokio::task::spawn_blocking(move || exec::send(&p, &addrs, Duration::from_secs(3))).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), s.next_event(None, false)).await.unwrap().unwrap();
    let WatchEvent::Died { exit, tail, .. } = ev else { panic!("{ev:?}") };
    assert_eq!(exit.signal_name.as_deref(), Some("SIGSEGV"));
    assert_eq!(exit.shell_code, 139);
    assert_eq!(exit.death().key(), "SIGSEGV");
    assert!(tail.iter().any(|l| l.text.contains("listening on")), "{tail:?}");

    // Restart behind the readiness gate: an outage interval.
    let o = s.restart(&|| false).await.unwrap();
    assert!(o.end_s >= o.start_s && o.cause.contains("SIGSEGV"), "{o:?}");
    let addrs = s.addrs();
    assert!(
        tokio::task::spawn_blocking(move || exec::send(
            &mesher_stress::triage::oracle::default_probe(),
            &addrs,
            Duration::from_secs(2)
        )
        .answered())
        .await
        .unwrap()
    );

    // A hang: a stalling connection held open; probes fail for hang_after.
    let mut stall = HttpRequest::new(None, "GET", "/x".into(), vec![]);
    stall.headers.push(("x-stall".into(), b"1".to_vec()));
    let held = exec::open_and_hold(&Payload::Http(stall), &addrs, Duration::from_secs(2)).unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(20), s.next_event(None, true)).await.unwrap().unwrap();
    assert!(matches!(ev, WatchEvent::Hung { .. }), "{ev:?}");
    drop(held);
    let killed = s.kill_hung().await.expect("killed");
    assert_eq!(killed.signal, Some(libc::SIGKILL));
    s.restart(&|| false).await.unwrap();

    let r = s.report();
    s.stop().await;
    assert_eq!(r.restarts, 2);
    assert_eq!(r.outages.len(), 2);
    assert_eq!(r.outages[1].cause, "hang");
    assert!(r.samples.len() >= 2, "{:?}", r.samples);
    assert!(r.samples.iter().all(|x| x.rss_bytes > 0 && x.threads >= 1 && x.fds >= 3));
    assert!(r.samples.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
    assert!(r.events.iter().filter(|e| matches!(e, WatchEvent::Ready { .. })).count() == 3);
    serde_json::to_string(&r).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_notices_death_of_a_foreign_process() {
    let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let a = Attached::new(child.id()).unwrap();
    assert!(a.alive());
    let pid = child.id() as i32;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    tokio::time::timeout(Duration::from_secs(10), a.wait_death()).await.expect("death noticed");
    assert!(!a.alive());
    let _ = child.wait();
    assert!(Attached::new(999_999_999).is_err());
}
