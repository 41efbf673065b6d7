//! `profile`: the TOML run profile, its versioned schema and its validation.
//!
//! A profile says what to run against (target), on which database, with which fixtures, which
//! phases in which order, the thresholds that decide pass/fail and where outputs go. Unknown
//! keys are errors (`deny_unknown_fields`); every error names the file, the key and what is
//! allowed. The schema is documented key by key in `profiles/README.md`.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Deserializer, Serialize};
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
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration", default = "default_max_duration")]
    pub max_duration: Duration,
    /// How often the run directory is checkpointed while the run goes on (`crate::checkpoint`).
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration", default = "default_checkpoint_every")]
    pub checkpoint_every: Duration,
    pub target: TargetSpec,
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
    },
    /// A command to spawn (e.g. a real Mesher binary), with its environment.
    Command {
        command: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        cwd: Option<PathBuf>,
        /// Base URL of its HTTP listener, e.g. `http://127.0.0.1:8080`.
        http: String,
        /// Base URL of its WebSocket listener, e.g. `ws://127.0.0.1:8081`.
        ws: String,
        /// How long to wait for readiness (HTTP port open).
        #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration", default = "default_ready")]
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

/// The database. Without `url`, a throwaway PostgreSQL cluster is started for the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// An existing database (e.g. Mesher's `postgres://mesh:mesh@localhost:5432/mesher`).
    #[serde(default)]
    pub url: Option<String>,
    /// Create the schema (idempotent).
    #[serde(default = "yes")]
    pub schema: bool,
    /// Seed the fixtures (idempotent).
    #[serde(default = "yes")]
    pub seed: bool,
    /// Delete all rows of Mesher's tables first. Refused for a non-throwaway database unless
    /// this is set explicitly.
    #[serde(default)]
    pub reset: bool,
}

fn yes() -> bool {
    true
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        DatabaseSpec { url: None, schema: true, seed: true, reset: false }
    }
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
        #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration", default = "default_startup")]
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
        #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration", default = "default_flush_wait")]
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

/// Parse `"250ms"`, `"10s"`, `"5m"`, `"2h"`, `"1h 30m"` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"500ms\", \"30s\", \"5m\", \"2h\""))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
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
                    crate::target::faults::Fault::parse(f)
                        .map_err(|e| anyhow::anyhow!("target.faults[{i}] = {f:?}: {e}"))?;
                }
            }
            TargetSpec::Command { command, http, ws, .. } => {
                if command.is_empty() {
                    bail!("target.command: must name the program to run, e.g. [\"./mesher/mesher\"]");
                }
                check_url("target.http", http, "http")?;
                check_url("target.ws", ws, "ws")?;
            }
            TargetSpec::Url { http, ws } => {
                check_url("target.http", http, "http")?;
                check_url("target.ws", ws, "ws")?;
            }
        }
        for p in &self.phases {
            match p {
                Phase::Fuzz(f) => f.validate(&self.target)?,
                Phase::Load(l) => {
                    l.validate()?;
                    load_mix(l)?;
                    load_gen_options(l)?;
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
