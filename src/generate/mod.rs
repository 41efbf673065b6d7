//! `generate`: every input the stress tester sends — valid and mutated HTTP requests for all 36
//! routes and WebSocket scripts — as a pure function of (run seed, stream, index).
//!
//! Layout (where to change what):
//! - [`valid`]: valid bodies, queries, path ids and WebSocket scripts per route (the §2/§3/§4
//!   knowledge lives here; routes come only from `crate::api`).
//! - [`mutate`]: named mutation operators (JSON, HTTP, WebSocket), each recording a
//!   `model::MutationStep`; add an operator by adding a function and a table entry there.
//! - [`json`]: the JSON tree generators build and mutators edit; [`rng`]: seed derivation.
//! - [`ids`]: the run's [`IdPool`] (created memberships, keys, rules; free users).
//! - [`strategy`]: proptest `Strategy`s over the same functions, with shrinking value trees;
//!   [`shrink`]: structural JSON simplification for the minimiser.
//! - [`arb`]: `arbitrary` support ([`arb::ArbitraryRequest`]) for byte-driven fuzzers.
//! - [`validate`]: a spec validator for valid requests (used by tests and `gen --check`).
//! - [`cli`]: `mesher-stress gen`.
//!
//! Fast path: [`Generator::generate`] derives a `ChaCha8Rng` from (seed, stream, index) and
//! calls the generation functions directly (no proptest machinery per request). The strategies
//! draw a 64-bit seed from proptest's runner and call the same functions, so both produce the
//! same values for the same seed. Determinism: no hash-map iteration, no clock, no thread RNG;
//! the only state is the [`IdPool`] for `members-add`, `member-remove` and `alert-rule-delete`.
//!
//! Cost (`benches/generate.rs`, figures in docs/performance.md): ~0.35 us for a body-less
//! request, ~10 us for a small event, mutated inputs proportional to what the operators build.
//! Where throughput matters, generate on several threads (`Generator` is `Sync`) or ahead of
//! sending.

pub mod arb;
pub mod campaign;
pub mod field;
pub mod ids;
pub mod json;
pub mod mutate;
pub mod rng;
pub mod shrink;
pub mod strategy;
pub mod valid;
pub mod validate;

pub use ids::IdPool;
pub use json::recycle;

use crate::api::{ROUTES, Route, RouteId, WsPath};
use crate::db::Fixtures;
use crate::model::{Generated, Layer, Payload, RequestSeed, Source};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Size knobs of generation and mutation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenOptions {
    /// Largest string the `json.huge-string` operator (and oversized WS payloads) make.
    pub max_string: usize,
    /// Upper bound of valid large events, in bytes (approximate).
    pub max_event_bytes: usize,
    /// Share of medium events (tens of frames) and of large ones (16 KiB .. max_event_bytes).
    pub medium_event_ratio: f64,
    pub large_event_ratio: f64,
    /// Deepest nesting `json.deep-nesting` produces.
    pub max_depth: usize,
    /// Longest array `json.huge-array` produces.
    pub max_array: usize,
    /// Mutation operators applied per mutated input: 1..=max_mutations.
    pub max_mutations: u32,
}

impl GenOptions {
    /// Reject sizes that cannot generate (a load phase's `generate` table).
    pub fn validate(&self) -> Result<()> {
        for (n, v) in [
            ("max_string", self.max_string),
            ("max_event_bytes", self.max_event_bytes),
            ("max_depth", self.max_depth),
            ("max_array", self.max_array),
        ] {
            if v == 0 || v > 1 << 30 {
                bail!("generate.{n} = {v}: must be between 1 and 1073741824");
            }
        }
        for (n, v) in [("medium_event_ratio", self.medium_event_ratio), ("large_event_ratio", self.large_event_ratio)] {
            if !(0.0..=1.0).contains(&v) {
                bail!("generate.{n} = {v}: must be between 0 and 1");
            }
        }
        if self.medium_event_ratio + self.large_event_ratio > 1.0 {
            bail!("generate: medium_event_ratio + large_event_ratio must be at most 1");
        }
        if !(1..=64).contains(&self.max_mutations) {
            bail!("generate.max_mutations = {}: must be between 1 and 64", self.max_mutations);
        }
        Ok(())
    }
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            max_string: 1 << 20,
            max_event_bytes: 256 * 1024,
            medium_event_ratio: 0.12,
            large_event_ratio: 0.03,
            max_depth: 5000,
            max_array: 100_000,
            max_mutations: 3,
        }
    }
}

/// Traffic mix: weights per layer and per route (`Route.name`, plus `ws-ingest`/`ws-stream`).
/// Routes not listed weigh the `"*"` entry's weight, or 1.0 without one (`"*" = 0` plus a few
/// listed routes focuses a phase on those). Embedded in profiles as
/// `mix = { valid = 0.7, json = 0.2, http = 0.1, ws = 0.0, routes = { "dashboard-health" = 5.0 } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default = "w_valid")]
    pub valid: f64,
    #[serde(default = "w_json")]
    pub json: f64,
    #[serde(default = "w_http")]
    pub http: f64,
    #[serde(default)]
    pub ws: f64,
    #[serde(default)]
    pub routes: BTreeMap<String, f64>,
}

fn w_valid() -> f64 {
    0.7
}
fn w_json() -> f64 {
    0.2
}
fn w_http() -> f64 {
    0.1
}

impl Default for Mix {
    fn default() -> Self {
        Mix { valid: w_valid(), json: w_json(), http: w_http(), ws: 0.0, routes: BTreeMap::new() }
    }
}

impl Mix {
    /// Only one layer.
    pub fn only(layer: Layer) -> Mix {
        let mut m = Mix { valid: 0.0, json: 0.0, http: 0.0, ws: 0.0, routes: BTreeMap::new() };
        match layer {
            Layer::Valid => m.valid = 1.0,
            Layer::Json => m.json = 1.0,
            Layer::Http => m.http = 1.0,
            Layer::Ws => m.ws = 1.0,
        }
        m
    }

    /// Weight of a route or WS path name (its entry, else the `"*"` entry, else 1).
    pub fn route_weight(&self, name: &str) -> f64 {
        self.routes.get(name).or_else(|| self.routes.get("*")).copied().unwrap_or(1.0)
    }

    /// Unknown route names, negative or non-finite weights, or nothing to generate are errors.
    pub fn validate(&self) -> Result<()> {
        for (n, w) in [("valid", self.valid), ("json", self.json), ("http", self.http), ("ws", self.ws)] {
            if !w.is_finite() || w < 0.0 {
                bail!("mix.{n} must be a finite number >= 0, got {w}");
            }
        }
        for (name, w) in &self.routes {
            if Route::by_name(name).is_none() && !["ws-ingest", "ws-stream", "*"].contains(&name.as_str()) {
                let names: Vec<&str> = ROUTES.iter().map(|r| r.name).collect();
                bail!(
                    "mix.routes: unknown route {name:?}; known: {}, ws-ingest, ws-stream, or \"*\" (every route not listed)",
                    names.join(", ")
                );
            }
            if !w.is_finite() || *w < 0.0 {
                bail!("mix.routes.{name} must be a finite number >= 0, got {w}");
            }
        }
        if self.valid + self.json + self.http + self.ws <= 0.0 {
            bail!("mix: all layer weights are 0");
        }
        // What the generator needs to draw from each layer with weight.
        let weighted = |r: &&Route| self.route_weight(r.name) > 0.0;
        if (self.valid > 0.0 || self.http > 0.0) && !ROUTES.iter().any(|r| weighted(&r)) {
            bail!("mix: every HTTP route has weight 0");
        }
        if self.json > 0.0 && !ROUTES.iter().filter(|r| r.body != crate::api::BodyKind::None).any(|r| weighted(&r)) {
            bail!("mix: the json layer needs a route with a body with weight > 0");
        }
        if self.ws > 0.0 && [WsPath::Ingest, WsPath::Stream].iter().all(|w| self.route_weight(w.name()) <= 0.0) {
            bail!("mix: the ws layer needs ws-ingest or ws-stream with weight > 0");
        }
        Ok(())
    }
}

/// Cumulative weights for one choice.
#[derive(Debug, Clone)]
pub(super) struct Table<T> {
    cum: Vec<f64>,
    items: Vec<T>,
}

impl<T: Copy> Table<T> {
    pub(super) fn new(items: impl IntoIterator<Item = (T, f64)>) -> Table<T> {
        let mut t = Table { cum: Vec::new(), items: Vec::new() };
        let mut acc = 0.0;
        for (it, w) in items {
            if w > 0.0 {
                acc += w;
                t.cum.push(acc);
                t.items.push(it);
            }
        }
        t
    }
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Draw with a 64-bit value (uniform in [0, total) from its top 53 bits).
    pub(super) fn draw_u64(&self, x: u64) -> T {
        let total = *self.cum.last().expect("non-empty weights");
        let u = (x >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.items[self.cum.iter().position(|&c| u < c).unwrap_or(self.cum.len() - 1)]
    }
}

/// The top-level generator: implements [`Source`].
#[derive(Debug)]
pub struct Generator {
    run: u64,
    ctx: valid::Ctx,
    layers: Table<Layer>,
    all_routes: Table<RouteId>,
    body_routes: Table<RouteId>,
    ws_paths: Table<WsPath>,
    /// Corpus seed bodies per route (mutation bases), in file-name order.
    corpus: BTreeMap<RouteId, Vec<json::J>>,
}

impl Generator {
    /// A generator for run seed `run`. Panics on an invalid mix (validate profiles first with
    /// [`Mix::validate`]); use [`Generator::try_new`] to get the error.
    pub fn new(run: u64, fixtures: Fixtures, mix: Mix, opts: GenOptions) -> Generator {
        Self::try_new(run, fixtures, mix, opts).expect("invalid generator mix")
    }

    pub fn try_new(run: u64, fixtures: Fixtures, mix: Mix, opts: GenOptions) -> Result<Generator> {
        mix.validate()?;
        let ids = Arc::new(IdPool::new(&fixtures));
        let layers = Table::new([
            (Layer::Valid, mix.valid),
            (Layer::Json, mix.json),
            (Layer::Http, mix.http),
            (Layer::Ws, mix.ws),
        ]);
        let all_routes = Table::new(ROUTES.iter().map(|r| (r.id, mix.route_weight(r.name))));
        let body_routes = Table::new(
            ROUTES.iter().filter(|r| r.body != crate::api::BodyKind::None).map(|r| (r.id, mix.route_weight(r.name))),
        );
        let ws_paths =
            Table::new([WsPath::Ingest, WsPath::Stream].into_iter().map(|w| (w, mix.route_weight(w.name()))));
        if (mix.valid > 0.0 || mix.http > 0.0) && all_routes.is_empty() {
            bail!("mix: every HTTP route has weight 0");
        }
        if mix.json > 0.0 && body_routes.is_empty() {
            bail!("mix: the json layer needs a route with a body with weight > 0");
        }
        if mix.ws > 0.0 && ws_paths.is_empty() {
            bail!("mix: the ws layer needs ws-ingest or ws-stream with weight > 0");
        }
        Ok(Generator {
            run,
            ctx: valid::Ctx::new(fixtures, opts, ids),
            layers,
            all_routes,
            body_routes,
            ws_paths,
            corpus: BTreeMap::new(),
        })
    }

    /// Load `corpus/seeds/<route>/*.json` (model::Generated) bodies as extra mutation bases for
    /// the JSON layer (files in name order; unreadable files are errors).
    pub fn with_corpus(mut self, seeds_dir: &Path) -> Result<Generator> {
        for r in ROUTES.iter().filter(|r| r.body != crate::api::BodyKind::None) {
            let dir = seeds_dir.join(r.name);
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            let mut files: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
                let g: Generated =
                    serde_json::from_slice(&std::fs::read(f)?).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                if let Payload::Http(h) = g.payload
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&h.body)
                {
                    self.corpus.entry(r.id).or_default().push(json::J::from_value(&v));
                }
            }
        }
        Ok(self)
    }

    pub fn run_seed(&self) -> u64 {
        self.run
    }

    /// The run's id pool: the driver feeds it with [`IdPool::observe`].
    pub fn ids(&self) -> &Arc<IdPool> {
        &self.ctx.ids
    }

    pub fn ctx(&self) -> &valid::Ctx {
        &self.ctx
    }

    /// The n-th input of stream s with a forced layer and/or route name (route names include
    /// `ws-ingest`/`ws-stream`). Forcing what the mix would have chosen anyway changes nothing.
    pub fn generate_with(&self, stream: u64, index: u64, layer: Option<Layer>, route: Option<&str>) -> Generated {
        // Selection: two splitmix draws (cheaper than a ChaCha stream); content: ChaCha8.
        let sel = rng::select_u64(self.run, stream, index);
        let mut r = rng::derive(self.run, stream, index, rng::SALT_CONTENT);
        let natural = self.layers.draw_u64(sel);
        let route_draw = rng::splitmix(sel ^ rng::SALT_SELECT);
        let layer = layer.unwrap_or(match route {
            Some("ws-ingest" | "ws-stream") => Layer::Ws,
            _ => natural,
        });
        let seed = RequestSeed { run: self.run, stream, index };
        let pick_route = |table: &Table<RouteId>| -> RouteId {
            match route.and_then(Route::by_name) {
                Some(r) => r.id,
                None => table.draw_u64(route_draw),
            }
        };
        match layer {
            Layer::Valid => {
                let id = pick_route(&self.all_routes);
                let req = valid::request_bytes(&mut r, &self.ctx, id);
                Generated { seed, layer, payload: Payload::Http(req), trail: Vec::new() }
            }
            Layer::Json => {
                let id = pick_route(&self.body_routes);
                let id = if Route::get(id).body == crate::api::BodyKind::None { RouteId::EventsIngest } else { id };
                let (req, body) = valid::request(&mut r, &self.ctx, id);
                let mut m = rng::derive(self.run, stream, index, rng::SALT_MUTATE);
                let base = match (self.corpus.get(&id), body) {
                    (Some(c), _) if !c.is_empty() && rng::chance(&mut m, 0.3) => rng::pick(&mut m, c).clone(),
                    (_, Some(b)) => b,
                    (_, None) => json::J::obj(),
                };
                let (req, trail) = mutate::json::mutate_request(&mut m, &self.ctx.opts, req, base);
                Generated { seed, layer, payload: Payload::Http(req), trail }
            }
            Layer::Http => {
                let id = pick_route(&self.all_routes);
                let req = valid::request_bytes(&mut r, &self.ctx, id);
                let mut m = rng::derive(self.run, stream, index, rng::SALT_MUTATE);
                let (req, trail) = mutate::http::mutate(&mut m, &self.ctx, req);
                Generated { seed, layer, payload: Payload::Http(req), trail }
            }
            Layer::Ws => {
                let kind = match route {
                    Some("ws-ingest") => WsPath::Ingest,
                    Some("ws-stream") => WsPath::Stream,
                    _ => self.ws_paths.draw_u64(route_draw),
                };
                let script = valid::ws_script(&mut r, &self.ctx, kind);
                let mut m = rng::derive(self.run, stream, index, rng::SALT_MUTATE);
                let (script, trail) = mutate::ws::mutate(&mut m, &self.ctx, script);
                Generated { seed, layer, payload: Payload::Ws(script), trail }
            }
        }
    }

    /// Regenerate an input the run produced (through [`Source::generate`]) from its record:
    /// identical bytes and trail, given the same fixtures, options, mix and (for the stateful
    /// routes) pool contents. Inputs made with a forced layer/route regenerate with
    /// [`Generator::generate_with`] and the same arguments.
    pub fn regenerate(&self, g: &Generated) -> Generated {
        self.generate_with(g.seed.stream, g.seed.index, Some(g.layer), None)
    }
}

impl Source for Generator {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        self.generate_with(stream, index, None, None)
    }
}
