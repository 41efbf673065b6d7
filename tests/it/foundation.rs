//! Foundation: the throwaway cluster, schema and fixtures, profile errors, CLI manners.
//! Real PostgreSQL, real processes.

use crate::support::{alive, bin};
use mesher_stress::db::{self, Cluster, fixtures, schema};
use mesher_stress::profile::Profile;
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throwaway_cluster_starts_serves_and_stops_cleanly() {
    let cluster = Cluster::start().expect("cluster starts (as root it runs as the postgres user)");
    let pid = cluster.pid().unwrap();
    let dir = cluster.dir().unwrap().to_path_buf();
    assert!(cluster.url().starts_with("postgres://mesh:mesh@127.0.0.1:"), "{}", cluster.url());
    assert!(alive(pid));
    let pool = db::connect(cluster.url(), 2).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(one, 1);
    let tz: String = sqlx::query_scalar("SHOW TimeZone").fetch_one(&pool).await.unwrap();
    assert_eq!(tz, "UTC");
    // Listening on loopback only.
    let addr: String = sqlx::query_scalar("SHOW listen_addresses").fetch_one(&pool).await.unwrap();
    assert_eq!(addr, "127.0.0.1");
    // When running as root, the server does not run as root.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
    if unsafe { libc::geteuid() } == 0 {
        assert!(!uid_line.split_whitespace().nth(1).unwrap().eq("0"), "postgres runs as root: {uid_line}");
    }
    pool.close().await;
    cluster.stop();
    assert!(!alive(pid), "postmaster {pid} still running after stop");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_fixtures_are_idempotent() {
    let cluster = Cluster::start().unwrap();
    let pool = db::connect(cluster.url(), 2).await.unwrap();
    let s1 = schema::apply(&pool).await.unwrap();
    let s2 = schema::apply(&pool).await.unwrap();
    assert_eq!(s1.tables, s2.tables);
    for t in [
        "organizations",
        "users",
        "org_memberships",
        "projects",
        "api_keys",
        "issues",
        "events",
        "alert_rules",
        "alerts",
    ] {
        assert!(s1.tables.iter().any(|x| x == t), "missing table {t}: {:?}", s1.tables);
    }
    let today: String = sqlx::query_scalar("SELECT 'events_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(s1.partitions.contains(&today), "no partition {today}: {:?}", s1.partitions);
    let ext: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(ext, 1);

    let opts = fixtures::SeedOptions::default();
    let (f1, r1) = fixtures::seed(&pool, &opts).await.unwrap();
    let (f2, r2) = fixtures::seed(&pool, &opts).await.unwrap();
    assert_eq!(f1, f2);
    assert!(r1.inserted.iter().all(|(_, n)| *n > 0), "first seed inserts rows: {:?}", r1.inserted);
    assert!(r2.inserted.iter().all(|(_, n)| *n == 0), "second seed inserts nothing: {:?}", r2.inserted);
    let counts = |t: &'static str| {
        let pool = pool.clone();
        async move {
            let q = format!("SELECT count(*) FROM {t}");
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(q)).fetch_one(&pool).await.unwrap()
        }
    };
    assert_eq!(counts("users").await as usize, f1.users.len());
    assert_eq!(counts("events").await as usize, f1.events.len());
    assert_eq!(counts("org_memberships").await as usize, f1.memberships.len());
    // Keys are in Mesher's format, the revoked one is revoked, the seed report's user is free.
    for (_, k) in &f1.api_keys {
        assert!(
            k.len() == 53
                && k.starts_with("mshr_")
                && k[5..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
    let revoked: bool = sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $1::uuid")
        .bind(&f1.revoked_key.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(revoked);
    assert!(f1.free_users().any(|u| u == fixtures::USER_ONE));
    // Events are recent (dashboards count the last 24 h).
    let recent: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE received_at > now() - interval '1 hour'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recent as usize, f1.events.len());

    // Rows added by someone else survive a re-seed; reset clears everything.
    sqlx::query("INSERT INTO users (email, password_hash, display_name) VALUES ('other@x', 'h', 'Other')")
        .execute(&pool)
        .await
        .unwrap();
    fixtures::seed(&pool, &opts).await.unwrap();
    assert_eq!(counts("users").await as usize, f1.users.len() + 1);
    schema::reset(&pool).await.unwrap();
    assert_eq!(counts("users").await, 0);
    pool.close().await;
}

fn profile_err(text: &str) -> String {
    format!("{:#}", Profile::parse(text, Path::new("profiles/bad.toml")).unwrap_err())
}

const MINIMAL: &str = "version = 1\nname = \"t\"\n[target]\nkind = \"builtin\"\n[[phases]]\nkind = \"checks\"\n";

#[test]
fn profile_errors_name_the_file_the_key_and_what_is_allowed() {
    Profile::parse(MINIMAL, Path::new("ok.toml")).expect("minimal profile parses");

    let e = profile_err(&MINIMAL.replace("name = \"t\"\n", "name = \"t\"\ncolour = 1\n"));
    assert!(e.contains("profiles/bad.toml") && e.contains("colour") && e.contains("expected one of"), "{e}");
    let e = profile_err(&format!("{MINIMAL}colour = 2\n"));
    assert!(e.contains("colour") && e.contains("startup_timeout"), "{e}");

    let e = profile_err(&MINIMAL.replace("kind = \"checks\"", "kind = \"checks\"\nchecks = [\"helth\"]"));
    assert!(e.contains("helth") && e.contains("health"), "{e}");

    let e = profile_err(&MINIMAL.replace("kind = \"builtin\"", "kind = \"builtin\"\nfaults = [\"segv\"]"));
    assert!(e.contains("target.faults[0]") && e.contains("service-reply-abi"), "{e}");

    let e = profile_err(&MINIMAL.replace("kind = \"builtin\"", "kind = \"nope\""));
    assert!(e.contains("nope") && e.contains("builtin") && e.contains("command"), "{e}");

    let e = profile_err(&MINIMAL.replace("version = 1", "version = 2"));
    assert!(e.contains("version") && e.contains("1"), "{e}");

    let e = profile_err(&MINIMAL.replace("name = \"t\"\n", "name = \"t\"\nmax_duration = \"soon\"\n"));
    assert!(e.contains("max_duration") && e.contains("30s"), "{e}");

    let e = profile_err(&format!("{MINIMAL}[fixtures]\nusers = 2\nmembers = 5\n"));
    assert!(e.contains("fixtures.members") && e.contains("at most"), "{e}");

    let e = profile_err(&MINIMAL.replace("[[phases]]\nkind = \"checks\"\n", ""));
    assert!(e.contains("phases"), "{e}");

    let e = profile_err(
        "version = 1\nname = \"t\"\n[target]\nkind = \"url\"\nhttp = \"127.0.0.1:8080\"\nws = \"ws://127.0.0.1:8081\"\n[[phases]]\nkind = \"checks\"\n",
    );
    assert!(e.contains("target.http") && e.contains("http://"), "{e}");

    // A load phase's generator sizes: unknown knobs and impossible sizes are named.
    let load =
        |generate: &str| format!("{MINIMAL}[[phases]]\nkind = \"load\"\nrequests = 10\ngenerate = {{ {generate} }}\n");
    let p = Profile::parse(&load("max_string = 4096, max_array = 100"), Path::new("ok.toml")).unwrap();
    let Some(mesher_stress::profile::Phase::Load(l)) = p.phases.last() else { panic!("a load phase") };
    let o = mesher_stress::profile::load_gen_options(l).unwrap();
    assert_eq!(
        (o.max_string, o.max_array, o.max_depth),
        (4096, 100, mesher_stress::generate::GenOptions::default().max_depth)
    );
    let e = profile_err(&load("max_strng = 4096"));
    assert!(e.contains("generate") && e.contains("max_strng") && e.contains("max_string"), "{e}");
    let e = profile_err(&load("large_event_ratio = 0.7, medium_event_ratio = 0.5"));
    assert!(e.contains("at most 1"), "{e}");
    let e = profile_err(&format!("{}[phases.soak]\ndrift_exclude = [\"events-serch\"]\n", load("")));
    assert!(e.contains("drift_exclude") && e.contains("events-serch"), "{e}");

    let e = format!("{:#}", Profile::load(Path::new("profiles/does-not-exist.toml")).unwrap_err());
    assert!(e.contains("profiles/does-not-exist.toml") && e.contains("No such file"), "{e}");
}

#[test]
fn shipped_profiles_parse() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Profile::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
        }
    }
}

/// How long a profile's phases may take at most (load and fuzz phases by their bounds, checks and
/// invariants by their own timeouts plus a minute of set-up).
fn phases_bound(p: &Profile) -> std::time::Duration {
    use mesher_stress::profile::Phase;
    let mut total = std::time::Duration::from_secs(60);
    for ph in &p.phases {
        total += match ph {
            Phase::Checks { startup_timeout, .. } => *startup_timeout + std::time::Duration::from_secs(30),
            Phase::Load(l) => l.time_bound().expect("time-bound load phases") + l.request_timeout + l.body_timeout,
            Phase::Fuzz(f) => f.duration + f.triage.max_time,
            Phase::Invariants { flush_wait } => *flush_wait + std::time::Duration::from_secs(30),
        };
    }
    total
}

#[test]
fn ci_profiles_are_bounded_deterministic_and_complete() {
    use mesher_stress::profile::Phase;
    use std::time::Duration;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");

    // release-perf: open-loop phases with stable names over the main routes, every phase with
    // per-route p99, error-rate and rate limits; fixed seed; bounded.
    let p = Profile::load(&dir.join("release-perf.toml")).unwrap();
    assert!(p.seed.is_some(), "a baseline needs the same requests every run");
    assert!(p.max_duration <= Duration::from_secs(15 * 60));
    assert!(phases_bound(&p) <= p.max_duration, "{:?} of phases > max_duration", phases_bound(&p));
    assert!(matches!(p.phases[0], Phase::Checks { .. }));
    let loads: Vec<&mesher_stress::drive::LoadPhase> =
        p.phases.iter().filter_map(|ph| if let Phase::Load(l) = ph { Some(&**l) } else { None }).collect();
    let names: Vec<&str> = loads.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["dashboard-health", "issues-list", "events-ingest", "settings", "ws-ingest"]);
    let mut routes = std::collections::BTreeSet::new();
    for l in &loads {
        let t = &l.thresholds;
        assert!(!t.p99_max.is_empty() && t.error_rate_max.is_some() && t.min_rate.is_some(), "{}", l.name);
        assert!(!t.p99_max.contains_key("*"), "{}: a limit per route", l.name);
        if l.websocket.any() {
            assert!(l.websocket.ingest_connections > 0 && l.concurrency == 0, "{}", l.name);
        } else {
            assert!(l.is_open_loop() && !l.stages.is_empty(), "{}: open-loop stages", l.name);
            // Only the routes with a limit get traffic.
            let mix = mesher_stress::profile::load_mix(l).unwrap();
            for r in mesher_stress::api::ROUTES.iter() {
                assert_eq!(mix.route_weight(r.name) > 0.0, t.p99_max.contains_key(r.name), "{}: {}", l.name, r.name);
            }
        }
        routes.extend(t.p99_max.keys().cloned());
    }
    for r in ["dashboard-health", "issues-list", "events-ingest", "settings-get", "settings-update", "ws-ingest"] {
        assert!(routes.contains(r), "release-perf covers {r}");
    }

    // nightly-soak: hours of mixed valid and mutated traffic, the invariants after it, a
    // watchdog, a checkpoint every minute, bounded.
    let p = Profile::load(&dir.join("nightly-soak.toml")).unwrap();
    assert!(p.seed.is_some());
    assert_eq!(p.checkpoint_every, Duration::from_secs(60));
    assert!(phases_bound(&p) <= p.max_duration, "{:?} of phases > max_duration", phases_bound(&p));
    let soak = p
        .phases
        .iter()
        .position(|ph| matches!(ph, Phase::Load(l) if l.time_bound() >= Some(Duration::from_secs(3600))))
        .expect("an hours-long load phase");
    let Phase::Load(l) = &p.phases[soak] else { unreachable!() };
    let mix = mesher_stress::profile::load_mix(l).unwrap();
    assert!(mix.valid > 0.0 && mix.json + mix.http > 0.0, "valid and mutated traffic: {mix:?}");
    assert!(l.thresholds.error_rate_max.is_some());
    // Soak verdicts on, and the soak survives deaths of the target.
    assert!(l.soak.as_ref().is_some_and(|s| s.enabled), "leak and drift detection");
    assert!(l.restart && l.max_restarts > 0, "the watchdog restarts the target");
    assert!(matches!(p.phases[soak + 1], Phase::Invariants { .. }), "nothing lost, right after the soak");
    assert!(p.phases.iter().any(|ph| matches!(ph, Phase::Fuzz(f) if f.triage.enabled)), "the watchdog phase");
}

#[test]
fn cli_reports_bad_input_with_distinct_exit_codes() {
    let out = bin().args(["run", "profiles/does-not-exist.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read profile"));

    let out = bin().args(["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");

    let out = bin().args(["--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "target", "db", "Exit codes"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }

    // A remote URL target is refused without --allow-remote, before any traffic.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("remote.toml");
    std::fs::write(
        &p,
        "version = 1\nname = \"remote\"\n[target]\nkind = \"url\"\nhttp = \"http://192.0.2.1:8080\"\nws = \"ws://192.0.2.1:8081\"\n[database]\nurl = \"postgres://x:y@127.0.0.1:1/z\"\n[[phases]]\nkind = \"checks\"\n",
    )
    .unwrap();
    let out = bin().args(["--out"]).arg(dir.path().join("run")).arg("run").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote") && err.contains("192.0.2.1"), "{err}");
}
