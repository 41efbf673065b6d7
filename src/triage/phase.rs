//! The `fuzz` phase of a profile: fuzz traffic with the watchdog and triage on, bounded in
//! time, ending with the bucket table. [`FuzzPhaseSpec`] is its TOML table (`kind = "fuzz"`);
//! [`run`] runs it (blocking work on the blocking pool). Inputs come from any
//! [`crate::model::Source`]; until the generators are wired here, [`EventFuzz`] (below) is the
//! source: seeded mutations of authenticated event bodies plus HTTP-level length lies.
//!
//! Limitation: only `kind = "builtin"` targets for now (each incarnation is spawned on free ports
//! on the run's database, next to the run's own target); the profile validation says so.

use super::bucket::Store;
use super::session::{self, FuzzOptions, FuzzReport, ReplaySender, TriageOptions};
use super::target::CommandFactory;
use crate::model::{Generated, HttpRequest, Layer, MutationStep, Payload, RequestSeed, Source};
use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn de_dur<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::profile::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn ser_dur<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

macro_rules! dur_default {
    ($name:ident, $v:expr) => {
        fn $name() -> Duration {
            $v
        }
    };
}
dur_default!(d_duration, Duration::from_secs(120));
dur_default!(d_settle, Duration::from_millis(20));
dur_default!(d_hang, Duration::from_secs(2));
dur_default!(d_grace, Duration::from_millis(300));
dur_default!(d_timeout, Duration::from_secs(5));
dur_default!(d_max_time, Duration::from_secs(180));

fn yes() -> bool {
    true
}
fn d_recorder() -> usize {
    32
}
fn d_corpus() -> PathBuf {
    PathBuf::from("corpus/crashes")
}
fn d_execs() -> u64 {
    2000
}
fn d_tries() -> usize {
    3
}
fn d_cumulative() -> u64 {
    5000
}
fn d_conc() -> usize {
    4
}

/// `[[phases]] kind = "fuzz"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuzzPhaseSpec {
    /// How long to fuzz (the phase also ends at the profile's max_duration).
    #[serde(deserialize_with = "de_dur", serialize_with = "ser_dur", default = "d_duration")]
    pub duration: Duration,
    /// At most this many inputs.
    #[serde(default)]
    pub max_inputs: Option<u64>,
    /// After each answer, wait this long for a death (crashes that follow the response).
    #[serde(deserialize_with = "de_dur", serialize_with = "ser_dur", default = "d_settle")]
    pub settle: Duration,
    /// Flight recorder size: the suspects handed to triage.
    #[serde(default = "d_recorder")]
    pub recorder: usize,
    /// Watchdog: a timed-out input triggers a probe; the target is hung when the probe takes
    /// longer than this.
    #[serde(deserialize_with = "de_dur", serialize_with = "ser_dur", default = "d_hang")]
    pub hang_probe_timeout: Duration,
    #[serde(default)]
    pub triage: TriageSpec,
}

/// `[phases.triage]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Crash corpus (buckets) directory.
    #[serde(default = "d_corpus")]
    pub corpus: PathBuf,
    /// Backtrace frames from a gdb re-run in the signature.
    #[serde(default)]
    pub gdb: bool,
    #[serde(deserialize_with = "de_dur", serialize_with = "ser_dur", default = "d_grace")]
    pub grace: Duration,
    #[serde(deserialize_with = "de_dur", serialize_with = "ser_dur", default = "d_timeout")]
    pub timeout: Duration,
    #[serde(default = "d_execs")]
    pub max_executions: u64,
    #[serde(deserialize_with = "de_dur", serialize_with = "ser_dur", default = "d_max_time")]
    pub max_time: Duration,
    #[serde(default = "d_tries")]
    pub repro_tries: usize,
    #[serde(default = "d_cumulative")]
    pub cumulative_max: u64,
    #[serde(default = "d_conc")]
    pub concurrency: usize,
}

impl Default for TriageSpec {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

impl FuzzPhaseSpec {
    /// Checks the profile validation runs.
    pub fn validate(&self, target: &crate::profile::TargetSpec) -> Result<()> {
        if !matches!(target, crate::profile::TargetSpec::Builtin { .. }) {
            bail!("phases: kind = \"fuzz\" needs target kind = \"builtin\" in this version");
        }
        if self.duration.is_zero() || self.recorder == 0 || self.triage.repro_tries == 0 {
            bail!("phases.fuzz: duration, recorder and triage.repro_tries must be > 0");
        }
        Ok(())
    }

    pub fn triage_options(&self, run_seed: u64) -> TriageOptions {
        let mut o = TriageOptions::default();
        o.oracle.grace = self.triage.grace;
        o.oracle.timeout = self.triage.timeout;
        o.attribution.cumulative_max = self.triage.cumulative_max;
        o.attribution.concurrency = self.triage.concurrency;
        o.repro_tries = self.triage.repro_tries;
        o.gdb = self.triage.gdb;
        o.max_executions = self.triage.max_executions;
        o.max_time = self.triage.max_time;
        o.run_seed = Some(run_seed);
        o
    }
}

/// Run a fuzz phase against fresh built-in targets on `database_url` (blocking work is moved
/// to the blocking pool; targets are spawned there and die with it).
pub async fn run(
    spec: &FuzzPhaseSpec,
    faults: &[String],
    database_url: &str,
    fixtures: &crate::db::fixtures::Fixtures,
    run_seed: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<FuzzReport> {
    let exe = std::env::current_exe()?;
    let mut args: Vec<String> = ["target", "--http-port", "0", "--ws-port", "0", "--database-url", database_url]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for f in faults {
        args.push("--fault".into());
        args.push(f.clone());
    }
    let factory = CommandFactory::new(exe.to_string_lossy().to_string(), args);
    let source: Arc<dyn Source> = Arc::new(EventFuzz::new(run_seed, fixtures.api_key(), &fixtures.project_id));
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&spec.triage.corpus)?;
        let fopts = FuzzOptions {
            duration: spec.duration,
            max_inputs: spec.max_inputs,
            stream: 0,
            recorder: spec.recorder,
            hang_probe_timeout: spec.hang_probe_timeout,
            triage: spec.triage.enabled,
            settle: spec.settle,
        };
        let mut sender = ReplaySender { timeout: spec.triage.timeout };
        let stop_fn = || stop.load(std::sync::atomic::Ordering::SeqCst) || crate::signals::was_interrupted();
        session::fuzz_phase(source, &mut sender, &factory, store, spec.triage_options(run_seed), &fopts, &stop_fn)
    })
    .await?
}

/// A small built-in fuzz source: authenticated `POST /api/v1/events` with seeded random event
/// bodies (fields of §4 in random subsets, values of random types, stack frames with edge
/// values such as `colno: 0`, nested user contexts), and now and then an HTTP-level lie (a
/// huge `Content-Length` on the health route). Pure in (run seed, stream, index).
pub struct EventFuzz {
    pub run: u64,
    pub api_key: String,
    pub project: String,
}

impl EventFuzz {
    pub fn new(run: u64, api_key: &str, project: &str) -> EventFuzz {
        EventFuzz { run, api_key: api_key.into(), project: project.into() }
    }
}

fn scalar(r: &mut impl Rng) -> Value {
    match r.random_range(0..8) {
        0 => Value::Null,
        1 => json!(r.random::<bool>()),
        2 => json!(0),
        3 => json!(r.random_range(-5i64..100_000)),
        4 => json!(1e308),
        5 => json!(""),
        6 => json!("x".repeat(r.random_range(1..40))),
        _ => json!("ü\"\\\t<>|||"),
    }
}

impl Source for EventFuzz {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        let seed = RequestSeed { run: self.run, stream, index };
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(
            self.run.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ stream.rotate_left(32)
                ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93),
        );
        let mut trail = Vec::new();
        if r.random_range(0..200) == 0 {
            let route = crate::api::Route::get(crate::api::RouteId::DashboardHealth);
            let mut req = HttpRequest::new(Some(route.id), "GET", route.path(&[&self.project]), Vec::new());
            let len = 1u64 << r.random_range(40..62);
            req.headers.push(("content-length".into(), len.to_string().into_bytes()));
            trail.push(MutationStep {
                op: "http.content-length-lie".into(),
                at: "content-length".into(),
                detail: len.to_string(),
            });
            return Generated { seed, layer: Layer::Http, payload: Payload::Http(req), trail };
        }
        let mut ev = serde_json::Map::new();
        let mut put = |k: &str, v: Value, r: &mut rand_chacha::ChaCha8Rng, trail: &mut Vec<MutationStep>| {
            if r.random_range(0..10) < 7 {
                let v = if r.random_range(0..8) == 0 {
                    let s = scalar(r);
                    trail.push(MutationStep {
                        op: "json.swap-type".into(),
                        at: format!("$.{k}"),
                        detail: s.to_string(),
                    });
                    s
                } else {
                    v
                };
                ev.insert(k.into(), v);
            }
        };
        put("message", json!(format!("fuzz event {index}")), &mut r, &mut trail);
        put("level", json!(["error", "warning", "info", "fatal", "debug"][r.random_range(0..5)]), &mut r, &mut trail);
        let frames: Vec<Value> = (0..r.random_range(0..4))
            .map(|i| {
                let mut f = serde_json::Map::new();
                f.insert("filename".into(), json!(format!("f{i}.js")));
                f.insert("function".into(), json!(format!("fn{i}")));
                f.insert("lineno".into(), json!(r.random_range(0..500)));
                if r.random::<bool>() {
                    f.insert("colno".into(), if r.random_range(0..3) == 0 { json!(0) } else { scalar(&mut r) });
                }
                if r.random::<bool>() {
                    f.insert("in_app".into(), json!(r.random::<bool>()));
                }
                Value::Object(f)
            })
            .collect();
        put("stacktrace", Value::Array(frames), &mut r, &mut trail);
        let mut user = serde_json::Map::new();
        for k in ["id", "email", "ip_address", "username"] {
            if r.random::<bool>() {
                user.insert(k.into(), scalar(&mut r));
            }
        }
        put("user_context", Value::Object(user), &mut r, &mut trail);
        put("tags", json!({"env": "fuzz", "n": index}), &mut r, &mut trail);
        put("extra", json!({"nested": {"deep": [scalar(&mut r), scalar(&mut r)]}}), &mut r, &mut trail);
        put("fingerprint", json!(["a|||b", "c"]), &mut r, &mut trail);
        let body = serde_json::to_vec(&Value::Object(ev)).expect("json");
        let route = crate::api::Route::get(crate::api::RouteId::EventsIngest);
        let mut req = HttpRequest::new(Some(route.id), "POST", route.path(&[]), body);
        req.headers.push(("x-sentry-auth".into(), self.api_key.clone().into_bytes()));
        Generated { seed, layer: Layer::Json, payload: Payload::Http(req), trail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_fuzz_is_deterministic_and_spec_defaults_parse() {
        let s = EventFuzz::new(5, "mshr_k", "p");
        assert_eq!(s.generate(0, 17), s.generate(0, 17));
        assert_ne!(s.generate(0, 17), s.generate(0, 18));
        let spec: FuzzPhaseSpec = toml::from_str("duration = \"30s\"\n[triage]\ngdb = true\n").unwrap();
        assert_eq!(spec.duration, Duration::from_secs(30));
        assert!(spec.triage.gdb && spec.triage.enabled);
        assert_eq!(spec.triage.corpus, PathBuf::from("corpus/crashes"));
        assert!(toml::from_str::<FuzzPhaseSpec>("nope = 1").is_err());
    }
}
