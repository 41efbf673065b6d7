//! `reference`: the reference server, a Mesher-compatible server (HTTP + WebSocket on PostgreSQL) with
//! switchable planted faults, run as `mesher-stress target`. It is the faithful stand-in for Mesher (`docs/mesher-interface.md`):
//! same ports and startup lines (§1.5), the 36 routes of §2.4 routed by
//! [`crate::api::match_route`], the same auth, rate limiting, status codes and response shapes
//! (§2.5), the WebSocket paths of §3, and Mesher's schema (§5). Where Mesher is broken it behaves
//! as Mesher *intends* (table below).
//!
//! Modules — where to change what:
//! - [`http`]: listeners, per-request transport rules, fault hooks, WebSocket handshake.
//! - [`io`]: the connection IO wrapper (raw request heads for case-sensitive headers, 30 s per-read timeout).
//! - [`routes`]: the 36 handlers (SQL + JSON shape each), one file per resource; `routes/mod.rs`
//!   maps each route to its handler and holds the rules the routes share.
//! - [`ingest`]: validation, grouping (fingerprint), issue upsert, batching writer, rate limiter.
//! - [`ws`]: WebSocket connections and the broadcast [`ws::Hub`].
//! - [`alerts`]: alert rules (new-issue and threshold) as intended.
//! - [`cache`]: benchmark mode's read cache of GET answers (invalidated by every write).
//! - [`faults`]: planted faults (trigger and symptom of each in [`faults::HELP`]).
//!
//! Library API: [`TargetConfig`], [`start`] → [`Running`] (bound addresses, `flush`, `shutdown`),
//! [`serve`] (start, wait for a shutdown future, stop gracefully), [`main`] for the CLI.
//!
//! # Deliberate differences from Mesher (2026-02-17 snapshot)
//!
//! | Area | Mesher | This target |
//! |---|---|---|
//! | Ingestion SQL (F1) | every event fails with 400 `42883` | events are validated, fingerprinted per §4, grouped and stored |
//! | Event validation (F10) | none | JSON object; `message` string required; `level` ∈ fatal/error/warning/info/debug (absent → `error`); `stacktrace`/`breadcrumbs` arrays, `exception`/`tags`/`extra`/`user_context` objects, `sdk_*` strings when present; no NUL; numbers jsonb can store → else 400 `{"error":"invalid event: …"}` |
//! | Invalid JSON event body | 400 PGERR | 400 `{"error":"invalid JSON: …"}` |
//! | Bulk route (#2) | whole body = one event | one event object, or an array of 1..=100 events (all validated before any is stored) |
//! | Storage writer (F4/F5/F6) | never writes; no flush ticker; `\|\|\|` corrupts | batched writer (50 rows or 100 ms); a 202 means the row will be in `events`, also across SIGINT/SIGTERM (stop accepting, finish requests, flush, exit 0) |
//! | Rate limiter (F7) | window never resets | 1000 checks per project per 60 s window, really reset (`--rate-limit-max`, `--rate-limit-window`) |
//! | Response bodies (F11) | unescaped, PG errors with raw TABs | always valid JSON (same texts, properly escaped); `sample_rate` NaN/±Infinity as JSON strings |
//! | Assign (#17) | `{"status":"ok"}` without `affected` | `{"status":"ok","affected":n}` |
//! | Alerts (F2/F3) | never fire | `new_issue` rules fire on issue creation, `threshold` rules every 30 s; cooldown honoured; `alert` broadcast |
//! | WS ingest (F8) | project literal `ws-project`, key never checked | the API key's project; an invalid/revoked key gets `{"error":"unauthorized"}` per message |
//! | WS stream filters (F9) | stored, never applied | `filters.level` / `filters.environment` (tags.environment) filter `event` messages |
//! | WS broadcasts (R3) | synchronous blocking writes | per-subscriber queue of 1024; a full queue drops the message for that subscriber |
//! | Transport parse errors | no response bytes | hyper answers 400 (431 for > 8192 header bytes or > 100 headers) and closes; the process survives |
//! | Non-numeric/negative Content-Length | treated as 0 | 400 from hyper |
//! | Huge Content-Length (R1) | allocation abort | 400 `payload too large` above 20 MiB without reading (the abort is the `oversized-content-length` fault) |
//! | Short body | waits 30 s, no response | waits (30 s per read), then 400 `incomplete body` |
//! | Slow readers (R2) | block worker threads | async; only the `slow-reader-stall` fault stalls |
//! | `Expect: 100-continue` | never answered | answered by hyper |
//! | Response headers | `Content-Type`, `Content-Length`, `Connection: close` | the same (`--keep-alive` drops `Connection: close`) |
//! | WS frame > 16 MiB | dropped without close | close 1009 |
//! | WS heartbeat | ping every 30 s, 1001 on missing pong | none (pings from clients are answered) |
//! | Very long fingerprints | index error (500) | fingerprints > 1024 bytes are stored as `sha1:<hex>` of the §4 fingerprint |
//! | Search (#4) | `to_tsvector(message)` (fails on messages > 1 MB) | only the first 100 000 characters of a message are searched |
//! | Spike checker, retention cleaner | run every 5 min / 24 h | startup lines only; not run |
//! | Partitions (F18) | created at startup only | at startup and every hour (7 days ahead) |
//! | Reads in benchmark mode (`--keep-alive`) | every request queries PostgreSQL | a GET answer is reused while the target has written nothing since and it is younger than `--read-cache-ttl` (250 ms); off without `--keep-alive` |
//! | Keep-alive chunked requests | — | header case rules fall back to hyper's lowercase map after a chunked request on a kept-alive connection |

pub mod alerts;
pub mod cache;
pub mod faults;
pub mod http;
pub mod ingest;
pub mod io;
pub mod routes;
pub mod ws;

use crate::util::flags::Global;
use anyhow::{Context, Result};
use clap::Args;
use sqlx::PgPool;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, Clone, Args)]
#[command(after_help = faults::HELP)]
pub struct TargetArgs {
    /// HTTP port (Mesher: MESHER_HTTP_PORT, default 8080). 0 picks a free port.
    #[arg(long, env = "MESHER_HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// WebSocket port (Mesher: MESHER_WS_PORT, default 8081). 0 picks a free port.
    #[arg(long, env = "MESHER_WS_PORT", default_value_t = 8081)]
    pub ws_port: u16,
    /// Address to bind both listeners to. Loopback by default.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// PostgreSQL to use. Without it, a throwaway cluster is started with the schema and fixtures.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// With --database-url: also create the schema and seed the fixtures (idempotent).
    #[arg(long)]
    pub prepare_db: bool,
    /// Benchmark mode: keep connections alive (Mesher closes every connection) and serve
    /// repeated reads of GET routes from a cache that every write invalidates (see
    /// --read-cache-ttl). For driver benchmarks only.
    #[arg(long)]
    pub keep_alive: bool,
    /// How long a cached GET answer may be reused when no write happened since (writes made
    /// behind the target's back show up after at most this long). Default: 250ms with
    /// --keep-alive, 0 (off: every request reads PostgreSQL, like Mesher) without.
    #[arg(long, value_parser = crate::util::duration::parse, value_name = "DURATION")]
    pub read_cache_ttl: Option<Duration>,
    /// Switch on a planted fault; repeatable.
    #[arg(long = "fault", value_name = "NAME[=PARAM]", value_parser = faults::Fault::parse)]
    pub faults: Vec<faults::Fault>,
    /// Rate-limit budget per project and window (Mesher: 1000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub rate_limit_max: u32,
    /// Rate-limit window (Mesher: 60s).
    #[arg(long, default_value = "60s", value_parser = crate::util::duration::parse, value_name = "DURATION")]
    pub rate_limit_window: Duration,
    /// PostgreSQL connections in the pool.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub pool_size: u32,
    /// Worker threads of the target's async runtime. Default: the CPUs this process may run on
    /// (so `taskset -c 0 mesher-stress target` gets one). With 1, a single-threaded runtime:
    /// no cross-thread scheduling, the cheapest per request on a core of its own.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

/// Read cache TTL in benchmark mode (`--keep-alive`): Mesher's own event flush delay.
pub const DEFAULT_READ_CACHE_TTL: Duration = Duration::from_millis(250);

/// Everything [`start`] needs.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub bind: IpAddr,
    /// 0 = a free port.
    pub http_port: u16,
    pub ws_port: u16,
    pub database_url: String,
    /// Create the schema and seed the default fixtures first.
    pub prepare_db: bool,
    pub keep_alive: bool,
    /// Read cache TTL of GET answers (zero: off). See [`cache`].
    pub read_cache_ttl: Duration,
    pub faults: Vec<faults::Fault>,
    pub rate_limit_max: u32,
    pub rate_limit_window: Duration,
    pub pool_size: u32,
}

impl TargetConfig {
    /// Loopback, free ports, Mesher's limits, no faults.
    pub fn new(database_url: impl Into<String>) -> TargetConfig {
        TargetConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: 0,
            ws_port: 0,
            database_url: database_url.into(),
            prepare_db: false,
            keep_alive: false,
            read_cache_ttl: Duration::ZERO,
            faults: Vec::new(),
            rate_limit_max: 1000,
            rate_limit_window: Duration::from_secs(60),
            pool_size: 16,
        }
    }
}

/// Shared state of a running target.
pub struct App {
    pub pool: PgPool,
    pub faults: faults::FaultSet,
    pub keep_alive: bool,
    pub limiter: ingest::RateLimiter,
    pub writer: ingest::Writer,
    pub hub: ws::Hub,
    /// Ingestion requests since the last load-monitor line.
    pub load_counter: AtomicU64,
    /// Held for writing during a planted pause; requests take it for reading.
    pub pause: Option<tokio::sync::RwLock<()>>,
    /// Bumped before and after every write (the read cache's freshness rule).
    pub generation: Arc<cache::Generation>,
    pub cache: cache::ReadCache,
}

/// A started target.
pub struct Running {
    pub http_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    tracker: Arc<http::Tracker>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer_task: tokio::task::JoinHandle<()>,
}

/// Create today's and the next 7 days' `events_YYYYMMDD` partitions (idempotent).
pub async fn ensure_partitions(pool: &PgPool) -> Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(crate::db::schema::partitions_sql(7))).execute(pool).await?;
    Ok(())
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Connect, prepare, bind and serve; prints Mesher's startup lines (§1.5) with the real bound
/// addresses on lines 21 and 23.
pub async fn start(cfg: TargetConfig) -> Result<Running> {
    let pool = open_database(&cfg).await?;
    announce_services(&cfg);
    let (app, writer_task) = build_app(&cfg, pool);
    let mut tasks = spawn_background(&app);
    say("[Mesher] Foundation ready");

    let (stop, stop_rx) = watch::channel(false);
    let tracker = Arc::new(http::Tracker::default());
    let ws_l = listen("WebSocket", cfg.bind, cfg.ws_port).await?;
    let ws_addr = ws_l.local_addr()?;
    eprintln!("[mesh-rt] WebSocket server listening on {ws_addr}");
    tasks.push(tokio::spawn(http::serve_ws(app.clone(), ws_l, stop_rx.clone(), tracker.clone())));
    let http_l = listen("HTTP", cfg.bind, cfg.http_port).await?;
    let http_addr = http_l.local_addr()?;
    tasks.push(tokio::spawn(http::serve_http(app.clone(), http_l, stop_rx, tracker.clone())));
    eprintln!("[mesh-rt] HTTP server listening on {http_addr}");
    Ok(Running { http_addr, ws_addr, app, stop, tracker, tasks, writer_task })
}

/// The database steps of Mesher's startup: connect, (prepare), today's partitions.
async fn open_database(cfg: &TargetConfig) -> Result<PgPool> {
    say("[Mesher] Connecting to PostgreSQL...");
    let pool = match crate::db::connect(&cfg.database_url, cfg.pool_size).await {
        Ok(p) => p,
        Err(e) => {
            say("[Mesher] Failed to connect to PostgreSQL");
            return Err(e);
        }
    };
    if cfg.prepare_db {
        crate::db::schema::apply(&pool).await?;
        crate::db::fixtures::seed(&pool, &crate::db::fixtures::SeedOptions::default()).await?;
    }
    say("[Mesher] Running in standalone mode (no distribution)");
    match ensure_partitions(&pool).await {
        Ok(()) => say("[Mesher] Partitions created (7 days ahead)"),
        Err(e) => {
            say("[Mesher] Partition error");
            eprintln!("[mesher-stress target] partition error: {e:#}");
        }
    }
    Ok(pool)
}

/// The startup lines of Mesher's services that have no counterpart here of their own.
fn announce_services(cfg: &TargetConfig) {
    for l in ["OrgService started", "ProjectService started", "UserService started", "StreamManager started"] {
        say(&format!("[Mesher] {l}"));
    }
    say("[Mesher] StreamManager drain ticker started (250ms interval)");
    say(&format!(
        "[Mesher] RateLimiter started ({}s window, {} max)",
        cfg.rate_limit_window.as_secs(),
        cfg.rate_limit_max
    ));
    say("[Mesher] EventProcessor started");
}

/// The shared state, with the batching writer started (its task ends when the last [`App`] goes).
fn build_app(cfg: &TargetConfig, pool: PgPool) -> (Arc<App>, tokio::task::JoinHandle<()>) {
    let generation = Arc::new(cache::Generation::default());
    let (writer, writer_task) = ingest::Writer::start(pool.clone(), generation.clone());
    say("[Mesher] StorageWriter started (default project)");
    say("[Mesher] Running in standalone mode (skipping global registration)");
    let fs = faults::FaultSet::new(&cfg.faults);
    let app = Arc::new(App {
        pool,
        pause: fs.pause.map(|_| tokio::sync::RwLock::new(())),
        faults: fs,
        keep_alive: cfg.keep_alive,
        limiter: ingest::RateLimiter::new(cfg.rate_limit_max, cfg.rate_limit_window),
        writer,
        hub: ws::Hub::default(),
        load_counter: AtomicU64::new(0),
        generation,
        cache: cache::ReadCache::new(cfg.read_cache_ttl),
    });
    say("[Mesher] PipelineRegistry started and registered");
    (app, writer_task)
}

/// Mesher's periodic actors (health line, alert evaluator, partition maintenance, load
/// monitor) with their startup lines, and the planted pause when it is on.
fn spawn_background(app: &Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(periodic(Duration::from_secs(10), |_| async {
        say("[Mesher] Health check: all services responsive");
    })));
    say("[Mesher] Health checker started (10s interval)");
    say("[Mesher] Spike checker started (5 min interval)");
    tasks.push(tokio::spawn(periodic(Duration::from_secs(30), {
        let app = app.clone();
        move |_| evaluate_alerts(app.clone())
    })));
    say("[Mesher] Alert evaluator started (30s interval)");
    tasks.push(tokio::spawn(periodic(Duration::from_secs(3600), {
        let pool = app.pool.clone();
        move |_| maintain_partitions(pool.clone())
    })));
    say("[Mesher] Retention cleaner started (24h interval)");
    tasks.push(tokio::spawn(periodic(Duration::from_secs(5), {
        let app = app.clone();
        move |_| {
            let n = app.load_counter.swap(0, std::sync::atomic::Ordering::Relaxed);
            async move { say(&format!("[Mesher] Load monitor: {n} events/5s, 0 peers")) }
        }
    })));
    say("[Mesher] Load monitor started (5s interval, threshold: 100 events)");
    if let Some((every, length)) = app.faults.pause {
        tasks.push(tokio::spawn(planted_pause(app.clone(), every, length)));
    }
    tasks
}

/// One round of the threshold alert evaluator, told on stdout like Mesher's.
async fn evaluate_alerts(app: Arc<App>) {
    match alerts::evaluate_thresholds(&app).await {
        Ok(n) => say(&format!("[Mesher] Alert evaluator: checked rules, {n} fired")),
        Err(e) => say(&format!("[Mesher] Alert evaluator error: {e}")),
    }
}

/// Keep the next 7 days' partitions ahead of the clock (Mesher creates them at startup only).
async fn maintain_partitions(pool: PgPool) {
    if let Err(e) = ensure_partitions(&pool).await {
        eprintln!("[mesher-stress target] partition maintenance failed: {e:#}");
    }
}

/// The `pause` fault: every `every`, hold the pause lock for writing for `length`, so that
/// requests (which take it for reading) wait.
async fn planted_pause(app: Arc<App>, every: Duration, length: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Some(lock) = &app.pause {
            let _w = lock.write().await;
            tokio::time::sleep(length).await;
        }
    }
}

/// Say a server is starting (Mesher's line) and bind its listener; a failure to bind is told
/// on stderr as Mesher's runtime tells it.
async fn listen(server: &str, ip: IpAddr, port: u16) -> Result<TcpListener> {
    say(&format!("[Mesher] {server} server starting on :{port}"));
    let listener = TcpListener::bind((ip, port)).await.map_err(|e| {
        eprintln!("[mesh-rt] Failed to start {server} server on {ip}:{port}: {e}");
        e
    })?;
    Ok(listener)
}

/// Run `f` every `every` (first run after one period).
async fn periodic<F, Fut>(every: Duration, mut f: F)
where
    F: FnMut(()) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        t.tick().await;
        f(()).await;
    }
}

impl Running {
    /// Wait until every event accepted so far is in the `events` table.
    pub async fn flush(&self) {
        self.app.writer.flush().await;
    }

    /// Graceful stop: stop accepting, let open connections finish (at most `grace`), flush
    /// the writer, stop background tasks.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.tracker.wait_idle()).await.is_err() {
            eprintln!("[mesher-stress target] connections still open after {grace:?}; flushing anyway");
        }
        self.app.writer.flush().await;
        for t in &self.tasks {
            t.abort();
        }
        drop(self.app);
        // The writer task ends when the last App reference (and its Writer) is gone.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer_task).await;
    }
}

/// Start, wait for `shutdown`, stop gracefully.
pub async fn serve(cfg: TargetConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let running = start(cfg).await?;
    shutdown.await;
    say("[Mesher] Shutting down: draining connections and flushing events");
    running.shutdown(Duration::from_secs(10)).await;
    say("[Mesher] Stopped");
    Ok(())
}

/// `mesher-stress target`.
pub async fn main(args: TargetArgs, _g: &Global) -> Result<u8> {
    let mut cluster = None;
    let (url, prepare) = match &args.database_url {
        Some(u) => (u.clone(), args.prepare_db),
        None => {
            let c = crate::db::Cluster::start().context("starting a throwaway PostgreSQL")?;
            let url = c.url().to_string();
            say(&format!("[mesher-stress] throwaway PostgreSQL at {url}"));
            cluster = Some(c);
            (url, true)
        }
    };
    let cfg = TargetConfig {
        bind: args.bind,
        http_port: args.http_port,
        ws_port: args.ws_port,
        database_url: url,
        prepare_db: prepare,
        keep_alive: args.keep_alive,
        read_cache_ttl: args.read_cache_ttl.unwrap_or(if args.keep_alive {
            DEFAULT_READ_CACHE_TTL
        } else {
            Duration::ZERO
        }),
        faults: args.faults.clone(),
        rate_limit_max: args.rate_limit_max,
        rate_limit_window: args.rate_limit_window,
        pool_size: args.pool_size,
    };
    serve(cfg, crate::signals::interrupted()).await?;
    drop(cluster);
    Ok(crate::exit::SUCCESS)
}
