//! `profile`: the TOML run profile, its versioned schema and its validation.
//!
//! A profile says what to run against (target), on which database, with which fixtures, which
//! phases in which order, the thresholds that decide pass/fail and where outputs go. Unknown
//! keys are errors (`deny_unknown_fields`); every error names the file, the key and what is
//! allowed. The schema is documented key by key in `profiles/README.md`.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use crate::db::DatabaseSpec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::fixtures::SeedOptions;

/// The only schema version this build reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A parsed and validated profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Schema version; must be 1.
    pub version: u32,
    /// Short name used in run directory names and reports.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Run seed (overridden by `--seed`). Every generated input derives from it.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Hard bound on the whole run; the run stops by itself after this long.
    #[serde(with = "crate::util::duration::human", default = "default_max_duration")]
    pub max_duration: Duration,
    /// How often the run directory is checkpointed while the run goes on (`crate::checkpoint`).
    #[serde(with = "crate::util::duration::human", default = "default_checkpoint_every")]
    pub checkpoint_every: Duration,
    pub target: TargetSpec,
    /// How the target's life is watched: readiness, startup retries, hangs.
    #[serde(default)]
    pub watchdog: WatchdogSpec,
    #[serde(default)]
    pub database: DatabaseSpec,
    #[serde(default)]
    pub fixtures: SeedOptions,
    /// Phases, run in order.
    #[serde(default)]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub output: OutputSpec,
    /// How `run --baseline` decides regressions (`crate::report::compare`).
    #[serde(default)]
    pub baseline: crate::report::compare::BaselineSettings,
    /// Where the profile was read from (not part of the file).
    #[serde(skip)]
    pub source: PathBuf,
}

fn default_max_duration() -> Duration {
    Duration::from_secs(600)
}

fn default_checkpoint_every() -> Duration {
    Duration::from_secs(60)
}

/// What to test.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TargetSpec {
    /// The built-in Mesher-compatible target (`mesher-stress target`), spawned as a child
    /// process on the run's database.
    Builtin {
        /// Planted faults (`mesher-stress target --help` lists them), e.g. `"leak=51200"`.
        #[serde(default)]
        faults: Vec<String>,
        #[serde(default)]
        keep_alive: bool,
        /// 0 (default) picks free ports, so runs never collide.
        #[serde(default)]
        http_port: u16,
        #[serde(default)]
        ws_port: u16,
        /// How long one start may take to become ready.
        #[serde(with = "crate::util::duration::human", default = "default_ready_builtin")]
        ready_timeout: Duration,
    },
    /// A command to spawn (e.g. a real Mesher binary), with its environment.
    Command {
        command: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        cwd: Option<PathBuf>,
        /// Base URL of its HTTP listener, e.g. `http://127.0.0.1:8080`; absent: read from its
        /// `HTTP server listening on ADDR` line.
        #[serde(default)]
        http: Option<String>,
        /// Base URL of its WebSocket listener, e.g. `ws://127.0.0.1:8081`; absent: read from its
        /// `WebSocket server listening on ADDR` line.
        #[serde(default)]
        ws: Option<String>,
        /// How long one start may take to become ready (port open, readiness probe answered).
        #[serde(with = "crate::util::duration::human", default = "default_ready")]
        ready_timeout: Duration,
        /// The startup lines the `startup` check expects, in order (default: Mesher's, §1.5).
        #[serde(default)]
        startup_lines: Option<Vec<String>>,
    },
    /// An already running server (no supervision: deaths are seen only as refused connections).
    Url { http: String, ws: String },
}

fn default_ready() -> Duration {
    Duration::from_secs(30)
}

fn default_ready_builtin() -> Duration {
    Duration::from_secs(60)
}

/// `[watchdog]`: how the run's target is watched over its life, whatever its kind (the
/// lifecycle itself is `crate::watch::supervisor`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogSpec {
    /// The request that decides "ready" after a start, and confirms a hang: `"METHOD /path"`,
    /// with `{project}` and `{org}` standing for the fixtures' ids.
    #[serde(default = "default_ready_probe")]
    pub ready_probe: String,
    /// Statuses of the probe's answer that count as ready; empty: any HTTP answer.
    #[serde(default)]
    pub ready_status: Vec<u16>,
    /// Failed starts (a death during startup, not ready in time) tried again before the target
    /// is "cannot start".
    #[serde(default = "default_startup_retries")]
    pub startup_retries: u32,
    /// Wait before the first retry; doubles with each further one, up to 5 s.
    #[serde(with = "crate::util::duration::human", default = "default_startup_backoff")]
    pub startup_backoff: Duration,
    /// Requests in flight and no answer for this long → the probe; if it times out too, the
    /// target is hung: killed, recorded as a `hang` death and restarted.
    #[serde(with = "crate::util::duration::human", default = "default_hang_timeout")]
    pub hang_timeout: Duration,
    /// How long the confirming probe may take.
    #[serde(with = "crate::util::duration::human", default = "default_hang_probe_timeout")]
    pub hang_probe_timeout: Duration,
    /// Signal sent to a hung target before SIGKILL (e.g. `"SIGABRT"` for a core dump); absent:
    /// SIGKILL at once.
    #[serde(default)]
    pub hang_signal: Option<String>,
}

fn default_ready_probe() -> String {
    "GET /api/v1/projects/{project}/dashboard/health".into()
}
fn default_startup_retries() -> u32 {
    4
}
fn default_startup_backoff() -> Duration {
    Duration::from_millis(200)
}
fn default_hang_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_hang_probe_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for WatchdogSpec {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

impl WatchdogSpec {
    fn validate(&self) -> Result<()> {
        probe_parts(&self.ready_probe)?;
        if self.startup_retries > 100 {
            bail!("watchdog.startup_retries = {}: at most 100", self.startup_retries);
        }
        if self.hang_timeout < Duration::from_millis(100) || self.hang_probe_timeout < Duration::from_millis(50) {
            bail!("watchdog: hang_timeout must be at least 100ms and hang_probe_timeout at least 50ms");
        }
        if let Some(s) = &self.hang_signal {
            signal_number(s)?;
        }
        if let Some(s) = self.ready_status.iter().find(|s| !(100..=599).contains(*s)) {
            bail!("watchdog.ready_status: {s} is not an HTTP status");
        }
        Ok(())
    }

    /// The readiness probe with the fixtures' ids filled in.
    pub fn probe(&self, fixtures: &crate::db::Fixtures) -> crate::model::Payload {
        let (method, path) = probe_parts(&self.ready_probe).expect("validated");
        let path = path.replace("{project}", &fixtures.project_id).replace("{org}", &fixtures.org_id);
        let route = crate::api::match_route(method, path.split('?').next().unwrap_or("")).map(|m| m.route.id);
        crate::model::Payload::Http(crate::model::HttpRequest::new(route, method, path, Vec::new()))
    }

    /// The signal sent before SIGKILL to a hung target.
    pub fn hang_signo(&self) -> Option<i32> {
        self.hang_signal.as_deref().map(|s| signal_number(s).expect("validated"))
    }

    /// How the supervisor watches the run's target.
    pub fn hang_policy(&self) -> crate::watch::supervisor::HangPolicy {
        crate::watch::supervisor::HangPolicy {
            timeout: self.hang_timeout,
            probe_timeout: self.hang_probe_timeout,
            signal_first: self.hang_signo(),
            signal_grace: Duration::from_secs(3),
        }
    }

    pub fn startup_policy(&self) -> crate::watch::launch::StartupPolicy {
        crate::watch::launch::StartupPolicy {
            attempts: self.startup_retries + 1,
            backoff: self.startup_backoff,
            backoff_max: Duration::from_secs(5).max(self.startup_backoff),
        }
    }
}

/// `"GET /path"` → ("GET", "/path").
fn probe_parts(s: &str) -> Result<(&str, &str)> {
    match s.split_once(' ') {
        Some((m, p)) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) && p.starts_with('/') => {
            Ok((m, p.trim()))
        }
        _ => bail!(
            "watchdog.ready_probe = {s:?}: write \"METHOD /path\", e.g. \"GET /api/v1/projects/{{project}}/dashboard/health\""
        ),
    }
}

/// `SIGABRT`, `ABRT` or `6` → 6.
pub fn signal_number(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>()
        && (1..=64).contains(&n)
    {
        return Ok(n);
    }
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    (1..=31).find(|n| crate::watch::death::signal_name(*n).is_some_and(|x| &x[3..] == name)).ok_or_else(|| {
        anyhow::anyhow!("watchdog.hang_signal = {s:?}: not a signal name (e.g. \"SIGABRT\", \"SIGQUIT\")")
    })
}

/// One phase of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Phase {
    /// The verification report's checks (`crate::checks`).
    Checks {
        /// Which checks; empty = all, in their fixed order.
        #[serde(default)]
        checks: Vec<crate::checks::CheckName>,
        /// How long to wait for the startup lines of a spawned target.
        #[serde(with = "crate::util::duration::human", default = "default_startup")]
        startup_timeout: Duration,
    },
    /// Fuzz traffic with the watchdog and crash triage on (`crate::triage::phase`).
    Fuzz(Box<crate::triage::phase::FuzzPhaseSpec>),
    /// Load: generated traffic at a concurrency or an arrival rate (`crate::drive::LoadPhase`);
    /// its `mix` is the generators' `Mix`.
    Load(Box<crate::drive::LoadPhase>),
    /// "Nothing lost": check what the run saw accepted against the database (`crate::invariants`).
    Invariants {
        /// How long to wait for accepted events to be flushed.
        #[serde(with = "crate::util::duration::human", default = "default_flush_wait")]
        flush_wait: Duration,
    },
}

fn default_flush_wait() -> Duration {
    Duration::from_secs(5)
}

/// The generators' mix of a load phase (its opaque `mix` table; defaults when absent).
pub fn load_mix(p: &crate::drive::LoadPhase) -> Result<crate::generate::Mix> {
    let mix: crate::generate::Mix = opaque_table(p, "mix", &p.mix)?;
    mix.validate().map_err(|e| anyhow::anyhow!("phase {:?}: {e:#}", p.name))?;
    Ok(mix)
}

/// The generators' size knobs of a load phase (its opaque `generate` table; defaults when
/// absent).
pub fn load_gen_options(p: &crate::drive::LoadPhase) -> Result<crate::generate::GenOptions> {
    let o: crate::generate::GenOptions = opaque_table(p, "generate", &p.generate)?;
    o.validate().map_err(|e| anyhow::anyhow!("phase {:?}: {e:#}", p.name))?;
    Ok(o)
}

/// The triage settings of a load phase (its opaque `triage` table; None when absent).
pub fn load_triage(p: &crate::drive::LoadPhase) -> Result<Option<crate::triage::phase::TriageSpec>> {
    if p.triage.is_null() {
        return Ok(None);
    }
    let t: crate::triage::phase::TriageSpec = opaque_table(p, "triage", &p.triage)?;
    Ok(Some(t).filter(|t| t.enabled))
}

/// A table the load phase passes through untouched (`drive` does not know the generators'
/// types): its default when absent, errors naming the phase and the key.
fn opaque_table<T: serde::de::DeserializeOwned + Default>(
    p: &crate::drive::LoadPhase,
    key: &str,
    v: &serde_json::Value,
) -> Result<T> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v.clone()).map_err(|e| anyhow::anyhow!("phase {:?}: {key}: {e}", p.name))
}

fn default_startup() -> Duration {
    Duration::from_secs(20)
}

/// Outputs of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Parent directory of run directories (`--out` overrides with an exact run directory).
    #[serde(default = "default_runs")]
    pub dir: PathBuf,
}

fn default_runs() -> PathBuf {
    PathBuf::from("runs")
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec { dir: default_runs() }
    }
}

impl Profile {
    /// Read, parse and validate a profile file.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read profile {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parse and validate profile text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Profile> {
        let mut p: Profile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        p.source = path.to_path_buf();
        p.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(p)
    }

    /// How the run starts its target (None for `kind = "url"`: a server someone else runs).
    /// The built-in target is this very executable on `database_url`.
    pub fn launch(
        &self,
        database_url: &str,
        fixtures: &crate::db::Fixtures,
    ) -> Result<Option<crate::watch::launch::Launch>> {
        use crate::watch::launch::{Launch, Ports};
        let ports_env = Some(("MESHER_HTTP_PORT".to_string(), "MESHER_WS_PORT".to_string()));
        let (command, ports, ready_timeout) = match &self.target {
            TargetSpec::Url { .. } => return Ok(None),
            TargetSpec::Builtin { faults, keep_alive, http_port, ws_port, ready_timeout } => {
                let exe = std::env::current_exe().context("cannot locate the mesher-stress executable")?;
                let cmd = crate::watch::TargetCommand::builtin(
                    exe,
                    database_url,
                    faults,
                    *keep_alive,
                    (*http_port, *ws_port),
                );
                let ports = if *http_port != 0 && *ws_port != 0 {
                    let at = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
                    Ports::Fixed { http: at(*http_port), ws: Some(at(*ws_port)) }
                } else {
                    Ports::Announced
                };
                (cmd, ports, *ready_timeout)
            }
            TargetSpec::Command { command, env, cwd, http, ws, ready_timeout, .. } => {
                // `{database_url}` stands for the run's database (a throwaway cluster's URL is
                // known only once it runs), in the arguments and the environment.
                let fill = |s: &String| s.replace("{database_url}", database_url);
                let cmd = crate::watch::TargetCommand {
                    program: PathBuf::from(&command[0]),
                    args: command[1..].iter().map(fill).collect(),
                    env: env.iter().map(|(k, v)| (k.clone(), fill(v))).collect(),
                    cwd: cwd.clone(),
                };
                let ports = match http {
                    Some(h) => Ports::Fixed {
                        http: crate::safety::socket_addr(h)?,
                        ws: ws.as_deref().map(crate::safety::socket_addr).transpose()?,
                    },
                    None => Ports::Announced,
                };
                (cmd, ports, *ready_timeout)
            }
        };
        let mut l = Launch::new(command, ports, self.watchdog.probe(fixtures));
        l.readiness.timeout = ready_timeout;
        l.readiness.probe_timeout = self.watchdog.hang_probe_timeout;
        l.readiness.status = self.watchdog.ready_status.clone();
        l.startup = self.watchdog.startup_policy();
        l.port_env = ports_env;
        Ok(Some(l))
    }

    /// The profile file's absolute path (buckets record it: `replay` starts that target again).
    pub fn canonical_source(&self) -> Option<PathBuf> {
        std::fs::canonicalize(&self.source).ok()
    }

    /// The target in a few words (reports of runs whose target never started).
    pub fn target_description(&self) -> String {
        match &self.target {
            TargetSpec::Builtin { faults, .. } if faults.is_empty() => "built-in target".into(),
            TargetSpec::Builtin { faults, .. } => format!("built-in target with faults {}", faults.join(", ")),
            TargetSpec::Command { command, .. } => command.join(" "),
            TargetSpec::Url { http, ws } => format!("{http} / {ws}"),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.version != SCHEMA_VERSION {
            bail!("version = {}: this build reads schema version {SCHEMA_VERSION} only", self.version);
        }
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("name = {:?}: must be non-empty and use only letters, digits, '-' and '_'", self.name);
        }
        if self.max_duration.is_zero() || self.max_duration > Duration::from_secs(7 * 24 * 3600) {
            bail!("max_duration: must be between 1s and 7d");
        }
        if self.checkpoint_every < Duration::from_secs(1) || self.checkpoint_every > Duration::from_secs(24 * 3600) {
            bail!(
                "checkpoint_every = {:?}: must be between 1s and 24h (e.g. \"1m\")",
                humantime::format_duration(self.checkpoint_every).to_string()
            );
        }
        match &self.target {
            TargetSpec::Builtin { faults, .. } => {
                for (i, f) in faults.iter().enumerate() {
                    crate::reference::faults::Fault::parse(f)
                        .map_err(|e| anyhow::anyhow!("target.faults[{i}] = {f:?}: {e}"))?;
                }
            }
            TargetSpec::Command { command, http, ws, .. } => {
                if command.is_empty() {
                    bail!("target.command: must name the program to run, e.g. [\"./mesher/mesher\"]");
                }
                if let Some(http) = http {
                    check_url("target.http", http, "http")?;
                }
                if let Some(ws) = ws {
                    check_url("target.ws", ws, "ws")?;
                }
                if http.is_none() && ws.is_some() {
                    bail!(
                        "target.ws is given without target.http: give both, or neither (then both are read from the target's `listening on` lines)"
                    );
                }
            }
            TargetSpec::Url { http, ws } => {
                check_url("target.http", http, "http")?;
                check_url("target.ws", ws, "ws")?;
            }
        }
        self.watchdog.validate()?;
        for p in &self.phases {
            match p {
                Phase::Fuzz(f) => f.validate(matches!(self.target, TargetSpec::Url { .. }))?,
                Phase::Load(l) => {
                    l.validate()?;
                    load_mix(l)?;
                    load_gen_options(l)?;
                    if load_triage(l)?.is_some() && matches!(self.target, TargetSpec::Url { .. }) {
                        bail!(
                            "load phase {:?}: a [phases.triage] table needs a target the tool starts (kind = \"builtin\" or \"command\"): triage replays on fresh incarnations",
                            l.name
                        );
                    }
                    if l.restart && matches!(self.target, TargetSpec::Url { .. }) {
                        bail!(
                            "load phase {:?}: restart = true needs a target the tool starts (kind = \"builtin\" or \"command\"), not kind = \"url\"",
                            l.name
                        );
                    }
                }
                _ => {}
            }
        }
        if self.phases.is_empty() {
            bail!("phases: a profile needs at least one [[phases]] table");
        }
        self.baseline.validate()?;
        let f = &self.fixtures;
        if f.users > 100_000
            || f.api_keys > 10_000
            || f.issues > 100_000
            || f.alert_rules > 10_000
            || f.events_per_issue > 1000
        {
            bail!(
                "fixtures: too large (at most users 100000, api_keys 10000, issues 100000, alert_rules 10000, events_per_issue 1000)"
            );
        }
        if f.members > f.users {
            bail!("fixtures.members = {}: must be at most fixtures.users ({})", f.members, f.users);
        }
        Ok(())
    }
}

fn check_url(key: &str, url: &str, scheme: &str) -> Result<()> {
    let want = format!("{scheme}://");
    if !url.starts_with(&want) {
        bail!(
            "{key} = {url:?}: must start with {want} (e.g. {want}127.0.0.1:{})",
            if scheme == "ws" { 8081 } else { 8080 }
        );
    }
    let rest = &url[want.len()..];
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || crate::safety::split_host_port(authority).is_none() {
        bail!(
            "{key} = {url:?}: needs a host and a port, e.g. {want}127.0.0.1:{}",
            if scheme == "ws" { 8081 } else { 8080 }
        );
    }
    Ok(())
}
