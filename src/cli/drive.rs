//! `mesher-stress load`: a load phase from the command line, without profile, database or
//! target supervision — GETs to one path (and optionally WebSocket lanes), or with `--phase` a
//! phase file and its generators' mix; the table on stdout, `report.json` + `load.hlog` in
//! `--out`. Ctrl-C ends it with the report of what was measured (exit 130). Used by
//! `benches/anchors.sh` against wrk and oha.

use super::Global;
use crate::api::{self, RouteId, WsPath};
use crate::drive::{LoadPhase, PhaseCtx, ProgressMode, Stage, TargetAddr, run_phase};
use crate::model::{Generated, HttpRequest, Layer, Payload, RequestSeed, Source};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Base URL of the HTTP listener, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub http: String,
    /// Base URL of the WebSocket listener (needed for the --ws-* lanes), e.g. ws://127.0.0.1:8081.
    #[arg(long, value_name = "URL")]
    pub ws: Option<String>,
    /// Path (and query) to GET [default: the fixture project's dashboard/health].
    #[arg(long, value_name = "PATH")]
    pub route_get: Option<String>,
    /// Lanes: closed-loop workers, or open-loop connections.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub concurrency: u32,
    /// Open loop at this many requests/s (latency corrected from the intended send times).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open-loop ramp stages RATE:DURATION, repeatable (e.g. --stage 1000:5s --stage 0:5s).
    #[arg(long = "stage", value_name = "RATE:DURATION")]
    pub stages: Vec<String>,
    /// How long to send [default: 10s unless --requests is given].
    #[arg(long, value_parser = crate::util::duration::parse)]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Keep connections alive (default: a connection per request, as Mesher needs).
    #[arg(long)]
    pub keep_alive: bool,
    /// HTTP client: wire (lean, the default) or hyper (hyper's client connection API).
    #[arg(long, value_enum, default_value_t = crate::drive::Executor::Wire)]
    pub executor: crate::drive::Executor,
    #[arg(long, value_parser = crate::util::duration::parse, default_value = "3s")]
    pub connect_timeout: Duration,
    #[arg(long, value_parser = crate::util::duration::parse, default_value = "10s")]
    pub request_timeout: Duration,
    /// WebSocket ingest connections (event frames with acks).
    #[arg(long, default_value_t = 0)]
    pub ws_ingest: u32,
    /// Frames/s per ingest connection (0: next frame after each ack).
    #[arg(long, default_value_t = 0.0)]
    pub ws_frame_rate: f64,
    /// Stream subscribers measuring fan-out delay.
    #[arg(long, default_value_t = 0)]
    pub ws_subscribers: u32,
    /// WebSocket churn lanes (connect, send, close).
    #[arg(long, default_value_t = 0)]
    pub ws_churn: u32,
    /// Threshold: corrected p99 limit for every route.
    #[arg(long, value_parser = crate::util::duration::parse)]
    pub p99_max: Option<Duration>,
    /// Threshold: largest error share (0..1).
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Threshold: smallest achieved rate (req/s).
    #[arg(long)]
    pub min_rate: Option<f64>,
    /// A TOML file with one load phase (the profile's `[[phases]]` keys without `kind`); the
    /// traffic flags above are then ignored. With a `mix` table it sends the generators'
    /// traffic (valid and mutated, every route; sizes from its `generate` table) instead of GETs.
    #[arg(long, value_name = "FILE")]
    pub phase: Option<PathBuf>,
}

/// GETs to one path.
pub struct GetSource {
    pub run: u64,
    pub path: String,
    pub route: Option<RouteId>,
}

impl GetSource {
    pub fn new(run: u64, path: &str) -> GetSource {
        let p = path.split('?').next().unwrap_or(path);
        GetSource { run, path: path.to_string(), route: api::match_route("GET", p).map(|m| m.route.id) }
    }
}

impl Source for GetSource {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        Generated {
            seed: RequestSeed { run: self.run, stream, index },
            layer: Layer::Valid,
            payload: Payload::Http(HttpRequest::new(self.route, "GET", self.path.clone(), Vec::new())),
            trail: Vec::new(),
        }
    }
}

/// Events with a unique `message` (the fan-out marker), as ingest requests.
pub struct EventSource {
    pub run: u64,
}

impl Source for EventSource {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        let body = format!(
            "{{\"message\":\"mesher-stress {:x}-{stream}-{index}\",\"level\":\"error\",\"tags\":{{\"source\":\"load\"}}}}",
            self.run
        );
        let mut r = HttpRequest::new(
            Some(RouteId::EventsIngest),
            "POST",
            api::Route::get(RouteId::EventsIngest).path(&[]),
            body.into_bytes(),
        );
        r.headers.push(("x-sentry-auth".into(), b"mesher-stress".to_vec()));
        Generated {
            seed: RequestSeed { run: self.run, stream, index },
            layer: Layer::Valid,
            payload: Payload::Http(r),
            trail: Vec::new(),
        }
    }
}

fn phase_from_args(a: &LoadArgs) -> Result<LoadPhase> {
    if let Some(p) = &a.phase {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        return toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", p.display(), e.to_string().trim_end()));
    }
    let mut ph = LoadPhase::with_duration(Duration::from_secs(10));
    ph.duration = match (a.duration, a.requests, a.stages.is_empty()) {
        (Some(d), _, _) => Some(d),
        (None, Some(_), _) | (None, None, false) => None,
        (None, None, true) => Some(Duration::from_secs(10)),
    };
    ph.requests = a.requests;
    ph.concurrency = a.concurrency;
    ph.rate = a.rate;
    for s in &a.stages {
        let (r, d) = s.split_once(':').with_context(|| format!("--stage {s:?}: write RATE:DURATION, e.g. 1000:5s"))?;
        ph.stages.push(Stage {
            rate: r.parse().with_context(|| format!("--stage {s:?}: bad rate"))?,
            duration: crate::util::duration::parse(d).map_err(anyhow::Error::msg)?,
        });
    }
    ph.keep_alive = a.keep_alive;
    ph.executor = a.executor;
    ph.connect_timeout = a.connect_timeout;
    ph.request_timeout = a.request_timeout;
    ph.body_timeout = a.request_timeout;
    ph.websocket.ingest_connections = a.ws_ingest;
    ph.websocket.frame_rate = a.ws_frame_rate;
    ph.websocket.stream_subscribers = a.ws_subscribers;
    ph.websocket.churn = a.ws_churn;
    if let Some(p) = a.p99_max {
        ph.thresholds.p99_max.insert("*".into(), p);
    }
    ph.thresholds.error_rate_max = a.max_error_rate;
    ph.thresholds.min_rate = a.min_rate;
    Ok(ph)
}

/// `mesher-stress load`.
pub async fn main(a: Box<LoadArgs>, g: &Global) -> Result<u8> {
    let phase = phase_from_args(&a)?;
    phase.validate()?;
    let run = g.seed.unwrap_or_else(rand::random);
    let path = a
        .route_get
        .clone()
        .unwrap_or_else(|| api::Route::get(RouteId::DashboardHealth).path(&["33333333-3333-3333-3333-333333333333"]));
    // A phase file with a `mix` table sends the generators' traffic (valid and mutated, every
    // route, on the fixtures' planned ids); otherwise GETs of one path.
    let generated: Option<Arc<dyn Source>> = if phase.mix.is_null() {
        None
    } else {
        let mix: crate::generate::Mix = serde_json::from_value(phase.mix.clone()).context("phase: mix")?;
        let opts: crate::generate::GenOptions = if phase.generate.is_null() {
            Default::default()
        } else {
            serde_json::from_value(phase.generate.clone()).context("phase: generate")?
        };
        opts.validate()?;
        let fixtures = crate::db::Fixtures::plan(&Default::default());
        Some(Arc::new(crate::generate::Generator::try_new(run, fixtures, mix, opts)?))
    };
    let source: Arc<dyn Source> = generated.clone().unwrap_or_else(|| Arc::new(GetSource::new(run, &path)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let s2 = stop_tx.clone();
    tokio::spawn(async move {
        crate::signals::interrupted().await;
        let _ = s2.send(true);
    });
    let ctx = PhaseCtx {
        out_dir: g.out.clone(),
        flight: crate::drive::FlightRecorder::new(phase.flight_recorder, true),
        stop: stop_rx,
        progress: if g.quiet || g.json { ProgressMode::Off } else { ProgressMode::Auto },
        allow_remote: g.allow_remote,
        ws_source: Some(generated.unwrap_or_else(|| Arc::new(EventSource { run }))),
        observer: None,
        target_state: None,
        view: None,
    };
    let _ = WsPath::INGEST;
    let target = TargetAddr { http: a.http.clone(), ws: a.ws.clone() };
    let report = crate::report::PhaseReport::from(run_phase(&phase, source, &target, &ctx).await?);
    let interrupted = crate::signals::was_interrupted();
    if let Some(dir) = &g.out {
        crate::report::write_json_atomic(&dir.join("report.json"), &report)?;
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !g.quiet {
        report.print_table(&mut std::io::stdout().lock())?;
    } else {
        println!("verdict: {}", report.verdict_word());
    }
    Ok(if interrupted { crate::exit::INTERRUPTED } else { report.exit_code(false) })
}
