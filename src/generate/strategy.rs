//! proptest `Strategy`s for every valid generator, usable in `#[test]`s and outside them:
//!
//! ```no_run
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
//! let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
//! let mut tree = mesher_stress::generate::strategy::event(Default::default()).new_tree(&mut runner).unwrap();
//! let event = tree.current();
//! while tree.simplify() { /* test tree.current(); call complicate() when it passes */ }
//! ```
//!
//! Each strategy draws one `u64` from the runner and runs the same generation function the
//! [`super::Generator`] fast path uses on `rng::from_u64(seed)`, so the values are identical for
//! the same seed (see [`value_for_seed`]). Value trees shrink structurally with
//! [`super::shrink::json_candidates`] (simplify = take the next candidate, complicate = go back
//! and try the one after).

use super::json::J;
use super::rng::{self, GenRng};
use super::shrink::json_candidates;
use super::valid::{self, Ctx};
use super::{GenOptions, IdPool};
use crate::api::{Route, RouteId};
use crate::db::Fixtures;
use crate::model::HttpRequest;
use proptest::prelude::any;
use proptest::strategy::{NewTree, Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

type GenFn = Arc<dyn Fn(&mut GenRng) -> J + Send + Sync>;

/// A strategy producing JSON values from a generation function.
#[derive(Clone)]
pub struct JsonStrategy {
    name: &'static str,
    f: GenFn,
}

impl fmt::Debug for JsonStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonStrategy({})", self.name)
    }
}

impl JsonStrategy {
    pub fn new(name: &'static str, f: impl Fn(&mut GenRng) -> J + Send + Sync + 'static) -> JsonStrategy {
        JsonStrategy { name, f: Arc::new(f) }
    }

    /// The value this strategy yields when the runner hands it `seed`.
    pub fn value_for_seed(&self, seed: u64) -> Value {
        value_for_seed(&*self.f, seed)
    }
}

/// Run a generation function on the RNG a strategy derives from `seed`.
pub fn value_for_seed(f: &dyn Fn(&mut GenRng) -> J, seed: u64) -> Value {
    f(&mut rng::from_u64(seed)).to_value()
}

impl Strategy for JsonStrategy {
    type Tree = JsonTree;
    type Value = Value;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        let seed = any::<u64>().new_tree(runner)?.current();
        Ok(JsonTree::new(self.value_for_seed(seed)))
    }
}

/// A shrinking tree over JSON values (see module docs).
#[derive(Debug, Clone)]
pub struct JsonTree {
    current: Value,
    candidates: Vec<Value>,
    pos: usize,
    prev: Vec<(Value, Vec<Value>, usize)>,
}

impl JsonTree {
    pub fn new(v: Value) -> JsonTree {
        JsonTree { candidates: json_candidates(&v), current: v, pos: 0, prev: Vec::new() }
    }
}

impl ValueTree for JsonTree {
    type Value = Value;

    fn current(&self) -> Value {
        self.current.clone()
    }

    fn simplify(&mut self) -> bool {
        if self.pos >= self.candidates.len() {
            return false;
        }
        let next = self.candidates[self.pos].clone();
        let cands = json_candidates(&next);
        let old = std::mem::replace(&mut self.current, next);
        let old_c = std::mem::replace(&mut self.candidates, cands);
        self.prev.push((old, old_c, self.pos));
        self.pos = 0;
        true
    }

    fn complicate(&mut self) -> bool {
        match self.prev.pop() {
            Some((v, c, p)) => {
                self.current = v;
                self.candidates = c;
                self.pos = p + 1;
                true
            }
            None => false,
        }
    }
}

pub fn event(opts: GenOptions) -> JsonStrategy {
    JsonStrategy::new("event", move |r| valid::event(r, &opts))
}

pub fn bulk_event(opts: GenOptions) -> JsonStrategy {
    JsonStrategy::new("bulk_event", move |r| valid::bulk_event(r, &opts))
}

/// `POST …/members` bodies for the fixtures' free users (pure: no pool; one user may repeat).
pub fn add_member(f: &Fixtures) -> JsonStrategy {
    let users: Vec<String> = f.free_users().map(str::to_string).collect();
    JsonStrategy::new("add_member", move |r| {
        let u = if users.is_empty() { rng::uuid(r) } else { rng::pick(r, &users).clone() };
        valid::add_member(r, &u)
    })
}

pub fn member_role() -> JsonStrategy {
    JsonStrategy::new("member_role", valid::role)
}

pub fn api_key_label() -> JsonStrategy {
    JsonStrategy::new("api_key_label", valid::api_key_label)
}

pub fn settings() -> JsonStrategy {
    JsonStrategy::new("settings", valid::settings)
}

pub fn alert_rule() -> JsonStrategy {
    JsonStrategy::new("alert_rule", valid::alert_rule)
}

pub fn toggle() -> JsonStrategy {
    JsonStrategy::new("toggle", valid::toggle)
}

pub fn assign(f: &Fixtures) -> JsonStrategy {
    let f = f.clone();
    JsonStrategy::new("assign", move |r| valid::assign(r, &f))
}

/// A WebSocket ingest frame payload (one event).
pub fn ws_ingest_frame(opts: GenOptions) -> JsonStrategy {
    JsonStrategy::new("ws_ingest_frame", move |r| valid::event(r, &opts))
}

/// A WebSocket stream subscription message.
pub fn stream_filter() -> JsonStrategy {
    JsonStrategy::new("stream_filter", valid::stream_filter)
}

/// Query parameters of a route as a JSON object `{name: value}` (search, dashboards, lists).
pub fn query(route: RouteId, f: &Fixtures) -> JsonStrategy {
    let ctx = Arc::new(Ctx::new(f.clone(), GenOptions::default(), Arc::new(IdPool::new(f))));
    JsonStrategy::new("query", move |r| {
        let q = valid::query(r, &ctx, Route::get(route));
        let mut o = J::obj();
        for piece in q.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            o = o.with(k.to_string(), J::str(v.to_string()));
        }
        o
    })
}

/// A whole valid request for `route` (pure: the strategy has its own empty id pool, so stateful
/// routes settle as documented in [`valid`]). Shrinks the body.
#[derive(Clone)]
pub struct RequestStrategy {
    route: RouteId,
    ctx: Arc<Ctx>,
}

impl fmt::Debug for RequestStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestStrategy({})", Route::get(self.route).name)
    }
}

pub fn request(route: RouteId, f: &Fixtures, opts: GenOptions) -> RequestStrategy {
    RequestStrategy { route, ctx: Arc::new(Ctx::new(f.clone(), opts, Arc::new(IdPool::new(f)))) }
}

impl RequestStrategy {
    pub fn request_for_seed(&self, seed: u64) -> HttpRequest {
        valid::request_bytes(&mut rng::from_u64(seed), &self.ctx, self.route)
    }
}

impl Strategy for RequestStrategy {
    type Tree = RequestTree;
    type Value = HttpRequest;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        let seed = any::<u64>().new_tree(runner)?.current();
        let req = self.request_for_seed(seed);
        let body = serde_json::from_slice::<Value>(&req.body).ok().map(JsonTree::new);
        Ok(RequestTree { req, body })
    }
}

/// Shrinks a request's JSON body (content-length kept truthful).
#[derive(Debug, Clone)]
pub struct RequestTree {
    req: HttpRequest,
    body: Option<JsonTree>,
}

impl ValueTree for RequestTree {
    type Value = HttpRequest;

    fn current(&self) -> HttpRequest {
        let mut req = self.req.clone();
        if let Some(b) = &self.body {
            super::mutate::json::set_body(&mut req, serde_json::to_vec(&b.current()).unwrap_or_default());
        }
        req
    }

    fn simplify(&mut self) -> bool {
        self.body.as_mut().is_some_and(|b| b.simplify())
    }

    fn complicate(&mut self) -> bool {
        self.body.as_mut().is_some_and(|b| b.complicate())
    }
}
