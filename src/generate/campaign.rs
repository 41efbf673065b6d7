//! The field campaign: a fuzz phase's source that first walks every (route, field, operator)
//! pair once — shuffled, deterministic by seed — then spends the rest of its inputs on random
//! pairs, on further mutation of a feedback corpus and on the phase's mix. It steers by what
//! the target answers ([`Steer`]): an input whose answer is new for its route (status, shape of
//! the answer's body, a much slower answer) joins the corpus and is mutated further; a pair or
//! a route that keeps killing the target with a crash already filed is avoided (or sent at a
//! low rate), so one frequent crash does not mask deeper ones.
//!
//! Deterministic: the same seed and the same answers give the same inputs.

use super::field::{self, pair_of};
use super::rng::{self, below, pick};
use super::{Generator, Mix, Table, valid};
use crate::api::fields::{Field, Place};
use crate::api::{Route, WsPath};
use crate::model::{Generated, Layer, Payload, RequestSeed, Source};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

const SALT_FIELD: u64 = 0xf1e1d;
/// Inputs kept for further mutation.
const CORPUS_MAX: usize = 1024;
/// A pair that killed the target into a filed bucket is still sent this rarely (1 in N).
const AVOIDED_ONE_IN: u64 = 64;
/// Route throttling stops halving here (1 in 2^N): a route weighted up in the mix and killing on
/// every valid input must still leave the target lifetimes of thousands of inputs.
const THROTTLE_MAX: u32 = 10;
/// Deaths into buckets filed before, by pairs of one field, after which the whole field is
/// avoided: its value is not what kills (a crash on the route itself), so walking its other
/// operators would only kill the target again.
const FIELD_KNOWN_DEATHS: u32 = 2;

/// What the target did with one input, as the fuzz loop tells the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// `http`, `ws`, `closed`, `reset`, `refused`, `timeout`, `error`.
    pub kind: &'static str,
    pub status: Option<u16>,
    /// A hash of the answer's shape (body skeleton, error text without digits).
    pub shape: u64,
    pub micros: u64,
    /// The target died (or hung) right after it.
    pub died: bool,
}

/// A source that learns from the answers (the fuzz loop calls these around every send).
pub trait Steer: Source {
    /// False: skip this input (it matches the trigger of a crash already filed).
    fn wanted(&self, g: &Generated, index: u64) -> bool;
    fn observe(&self, g: &Generated, a: &Answer);
    /// The death after `culprit` was triaged into `bucket`; `known`: that bucket was filed
    /// before this death.
    fn crashed(&self, culprit: &Generated, bucket: Option<&str>, known: bool);
    fn coverage(&self) -> CoverageReport;
    /// Write the feedback corpus under `dir` (`<route>/<n>.json`, `model::Generated`).
    fn save_corpus(&self, dir: &Path) -> anyhow::Result<usize>;
}

/// Field coverage of a campaign, for the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoverageReport {
    pub pairs_total: u64,
    pub pairs_tried: u64,
    /// Seconds from the phase's start to the end of the systematic walk.
    pub walk_done_s: Option<f64>,
    pub routes: Vec<RouteCoverage>,
    /// Pairs that led to a death or a 5xx.
    pub findings: Vec<PairFinding>,
    pub corpus: u64,
    /// Inputs not sent: they matched a filed crash's trigger, or their route was throttled.
    pub masked: u64,
    /// (seconds since the start, pairs tried), every 10 s.
    pub progress: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouteCoverage {
    pub route: String,
    pub pairs: u64,
    pub tried: u64,
    pub deaths: u64,
    pub s5xx: u64,
    pub new_answers: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PairFinding {
    pub route: String,
    pub field: String,
    pub op: String,
    pub deaths: u64,
    pub s5xx: u64,
    pub first_s: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct PairStats {
    tried: u64,
    deaths: u64,
    s5xx: u64,
    new: u64,
    first_finding_s: Option<f64>,
}

#[derive(Default)]
struct State {
    pairs: BTreeMap<(u32, u16), PairStats>,
    seen: BTreeSet<(&'static str, &'static str, Option<u16>, u64)>,
    corpus: Vec<Generated>,
    avoid: BTreeSet<(String, String)>,
    /// Fields (`pair_key`) whose values kill into a filed bucket whatever they are: deaths
    /// counted per field, the field avoided from [`FIELD_KNOWN_DEATHS`] on.
    known_by_field: BTreeMap<String, u32>,
    throttle: BTreeMap<&'static str, u32>,
    /// Mean answer time per route (µs) and its sample count.
    latency: BTreeMap<&'static str, (f64, u64)>,
    masked: u64,
    walk_done_s: Option<f64>,
    progress: Vec<(f64, u64)>,
}

pub struct Campaign {
    generator: Generator,
    run: u64,
    fields: Vec<Field>,
    ops: Vec<Vec<&'static str>>,
    /// The systematic walk: (field, operator) indexes, shuffled.
    walk: Vec<(u32, u16)>,
    /// Fields by route (route name → field indexes).
    by_route: BTreeMap<&'static str, Vec<u32>>,
    /// `pair_key` → field index.
    by_key: BTreeMap<String, u32>,
    /// Routes with fields by their mix weights: random pairs follow the mix's route weights
    /// (uniform pairs would be three quarters event fields).
    route_table: Table<&'static str>,
    started: Instant,
    state: Mutex<State>,
}

impl Campaign {
    /// A campaign over the fields of the routes `mix` gives weight (WebSocket frames when the
    /// mix has a `ws` weight); the random part draws from `generator`.
    pub fn new(generator: Generator, mix: &Mix) -> Campaign {
        let run = generator.run_seed();
        let ws_ok = |w: WsPath| mix.ws > 0.0 && mix.route_weight(w.name()) > 0.0;
        let fields: Vec<Field> = crate::api::fields::all()
            .into_iter()
            .filter(|f| match f.route {
                "ws-ingest" => ws_ok(WsPath::Ingest),
                "ws-stream" => ws_ok(WsPath::Stream),
                r => mix.route_weight(r) > 0.0 && (mix.valid + mix.json + mix.http) > 0.0,
            })
            .collect();
        let ops: Vec<Vec<&'static str>> = fields.iter().map(field::ops_for).collect();
        let mut walk: Vec<(u32, u16)> = Vec::new();
        for (fi, o) in ops.iter().enumerate() {
            walk.extend((0..o.len()).map(|oi| (fi as u32, oi as u16)));
        }
        // Fisher-Yates with the run's seed.
        let mut r = rng::derive(run, u64::MAX, 0, SALT_FIELD);
        for i in (1..walk.len()).rev() {
            walk.swap(i, below(&mut r, i + 1));
        }
        let mut by_route: BTreeMap<&'static str, Vec<u32>> = BTreeMap::new();
        let mut by_key = BTreeMap::new();
        for (i, f) in fields.iter().enumerate() {
            by_route.entry(f.route).or_default().push(i as u32);
            by_key.insert(field::pair_key(f), i as u32);
        }
        let route_table = Table::new(by_route.keys().map(|r| (*r, mix.route_weight(r))));
        Campaign {
            generator,
            run,
            fields,
            ops,
            walk,
            by_route,
            by_key,
            route_table,
            started: Instant::now(),
            state: Mutex::default(),
        }
    }

    /// Seed the corpus with inputs saved by an earlier run ([`Steer::save_corpus`]).
    pub fn with_corpus(self, dir: &Path) -> anyhow::Result<Campaign> {
        let mut files: Vec<std::path::PathBuf> = Vec::new();
        for d in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?.flatten() {
            if let Ok(rd) = std::fs::read_dir(d.path()) {
                files.extend(rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")));
            }
        }
        files.sort();
        {
            let mut st = self.lock();
            for f in files.iter().take(CORPUS_MAX) {
                let g: Generated =
                    serde_json::from_slice(&std::fs::read(f)?).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                st.corpus.push(g);
            }
        }
        Ok(self)
    }

    /// Number of (field, operator) pairs of the walk.
    pub fn pairs(&self) -> usize {
        self.walk.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A valid input of `f`'s route with operator `op` applied to `f`.
    fn field_input(&self, fi: u32, oi: u16, stream: u64, index: u64) -> Option<Generated> {
        let f = &self.fields[fi as usize];
        let op = self.ops[fi as usize][oi as usize];
        let mut r = rng::derive(self.run, stream, index, SALT_FIELD);
        let ctx = self.generator.ctx();
        let (payload, layer) = match f.route {
            "ws-ingest" => (Payload::Ws(valid::ws_script(&mut r, ctx, WsPath::Ingest)), Layer::Ws),
            "ws-stream" => (Payload::Ws(valid::ws_script(&mut r, ctx, WsPath::Stream)), Layer::Ws),
            name => {
                let id = Route::by_name(name)?.id;
                let (req, _) = valid::request(&mut r, ctx, id);
                let layer = if f.place == Place::Body { Layer::Json } else { Layer::Http };
                (Payload::Http(req), layer)
            }
        };
        let (payload, step) = field::apply(&payload, f, op)?;
        Some(Generated { seed: RequestSeed { run: self.run, stream, index }, layer, payload, trail: vec![step] })
    }

    /// An input of the corpus with one more field operator on a field of its route.
    fn corpus_input(&self, stream: u64, index: u64) -> Option<Generated> {
        let mut m = rng::derive(self.run, stream, index, SALT_FIELD ^ 2);
        let base = {
            let st = self.lock();
            if st.corpus.is_empty() {
                return None;
            }
            st.corpus[below(&mut m, st.corpus.len())].clone()
        };
        let fis = self.by_route.get(base.route_name())?;
        let fi = fis[below(&mut m, fis.len())];
        let op = *pick(&mut m, &self.ops[fi as usize]);
        let (payload, step) = field::apply(&base.payload, &self.fields[fi as usize], op)?;
        let mut trail = base.trail.clone();
        trail.push(step);
        Some(Generated { seed: RequestSeed { run: self.run, stream, index }, layer: base.layer, payload, trail })
    }

    fn pair_index(&self, g: &Generated) -> Option<(u32, u16)> {
        let (at, op) = pair_of(&g.trail)?;
        let fi = *self.by_key.get(at)?;
        let oi = self.ops[fi as usize].iter().position(|o| *o == op)?;
        Some((fi, oi as u16))
    }
}

impl Source for Campaign {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        if let Some(&(fi, oi)) = self.walk.get(index as usize)
            && let Some(g) = self.field_input(fi, oi, stream, index)
        {
            return g;
        }
        let mut m = rng::derive(self.run, stream, index, SALT_FIELD ^ 1);
        let x = below(&mut m, 100);
        if x < 35 && !self.route_table.is_empty() {
            // A route by the mix's weights, then one of its pairs.
            let route = self.route_table.draw_u64(rng::splitmix(index ^ self.run ^ SALT_FIELD ^ 3));
            let fis = &self.by_route[route];
            let fi = fis[below(&mut m, fis.len())];
            let oi = below(&mut m, self.ops[fi as usize].len()) as u16;
            if let Some(g) = self.field_input(fi, oi, stream, index) {
                return g;
            }
        } else if x < 60
            && let Some(g) = self.corpus_input(stream, index)
        {
            return g;
        }
        self.generator.generate(stream, index)
    }
}

fn answer_is_new(st: &mut State, route: &'static str, a: &Answer) -> bool {
    let mut new = st.seen.insert((route, a.kind, a.status, a.shape));
    // A much slower answer than the route's usual one is news too.
    let (mean, n) = st.latency.entry(route).or_insert((0.0, 0));
    if *n >= 20 && a.micros > 50_000 && a.micros as f64 > 10.0 * *mean {
        new = true;
    }
    *n += 1;
    *mean += (a.micros as f64 - *mean) / (*n).min(1000) as f64;
    new
}

impl Steer for Campaign {
    fn wanted(&self, g: &Generated, index: u64) -> bool {
        let mut st = self.lock();
        let coin = rng::splitmix(index ^ self.run ^ SALT_FIELD);
        let avoided = pair_of(&g.trail).is_some_and(|(at, op)| {
            st.avoid.contains(&(at.to_string(), op.to_string()))
                || st.known_by_field.get(at).is_some_and(|n| *n >= FIELD_KNOWN_DEATHS)
        });
        // The rarer of the two rates wins: an avoided pair of a throttled route is as rare as
        // its route. The walk tries each pair once whatever its route's share.
        let pair_rate = if avoided { AVOIDED_ONE_IN } else { 1 };
        let route_rate = match st.throttle.get(g.route_name()) {
            Some(k) if index >= self.walk.len() as u64 => 1u64 << k,
            _ => 1,
        };
        let keep = coin.is_multiple_of(pair_rate.max(route_rate));
        if !keep {
            st.masked += 1;
        }
        keep
    }

    fn observe(&self, g: &Generated, a: &Answer) {
        let secs = self.started.elapsed().as_secs_f64();
        let pair = self.pair_index(g);
        let mut st = self.lock();
        let new = answer_is_new(&mut st, g.route_name(), a);
        if let Some(p) = pair {
            let s = st.pairs.entry(p).or_default();
            s.tried += 1;
            s.new += new as u64;
            // Deaths are counted where triage names the culprit ([`Steer::crashed`]).
            let s5xx = a.status.is_some_and(|c| c >= 500);
            s.s5xx += s5xx as u64;
            if s5xx && s.first_finding_s.is_none() {
                s.first_finding_s = Some(secs);
            }
        }
        // Inputs left unanswered stay out (AFL keeps hangs apart too): their mutants mostly
        // time out again, and each costs the whole timeout, so a corpus that keeps them slows
        // the campaign to an input a second.
        if new && !a.died && a.kind != "timeout" && st.corpus.len() < CORPUS_MAX {
            st.corpus.push(g.clone());
        }
        if st.walk_done_s.is_none() && g.seed.index + 1 >= self.walk.len() as u64 {
            st.walk_done_s = Some(secs);
        }
        if st.progress.last().is_none_or(|(t, _)| secs - t >= 10.0) {
            let tried = st.pairs.len() as u64;
            st.progress.push((secs, tried));
        }
    }

    fn crashed(&self, culprit: &Generated, _bucket: Option<&str>, known: bool) {
        let secs = self.started.elapsed().as_secs_f64();
        let pair = self.pair_index(culprit);
        let mut st = self.lock();
        if let Some(p) = pair {
            let s = st.pairs.entry(p).or_default();
            s.deaths += 1;
            s.first_finding_s.get_or_insert(secs);
        }
        if let Some((at, op)) = pair_of(&culprit.trail) {
            // The pair's boundary value is the trigger: skip it from now on.
            st.avoid.insert((at.to_string(), op.to_string()));
            if known {
                *st.known_by_field.entry(at.to_string()).or_insert(0) += 1;
            }
        }
        if known {
            // A route that keeps dying into a filed bucket: halve its share (outside the walk)
            // each time, whatever field the input changed.
            let k = st.throttle.entry(culprit.route_name()).or_insert(0);
            *k = (*k + 1).min(THROTTLE_MAX);
        }
    }

    fn coverage(&self) -> CoverageReport {
        let st = self.lock();
        let mut routes: BTreeMap<&str, RouteCoverage> = BTreeMap::new();
        for (fi, f) in self.fields.iter().enumerate() {
            let rc =
                routes.entry(f.route).or_insert_with(|| RouteCoverage { route: f.route.into(), ..Default::default() });
            rc.pairs += self.ops[fi].len() as u64;
        }
        let mut findings = Vec::new();
        for (&(fi, oi), s) in &st.pairs {
            let f = &self.fields[fi as usize];
            let rc = routes.get_mut(f.route).expect("every field's route");
            rc.tried += 1;
            rc.deaths += s.deaths;
            rc.s5xx += s.s5xx;
            rc.new_answers += s.new;
            if s.deaths > 0 || s.s5xx > 0 {
                findings.push(PairFinding {
                    route: f.route.into(),
                    field: f.label(),
                    op: self.ops[fi as usize][oi as usize].into(),
                    deaths: s.deaths,
                    s5xx: s.s5xx,
                    first_s: (s.first_finding_s.unwrap_or(0.0) * 10.0).round() / 10.0,
                });
            }
        }
        findings.sort_by(|a, b| b.deaths.cmp(&a.deaths).then(b.s5xx.cmp(&a.s5xx)));
        findings.truncate(200);
        let mut progress = st.progress.clone();
        progress.push((self.started.elapsed().as_secs_f64(), st.pairs.len() as u64));
        for p in &mut progress {
            p.0 = (p.0 * 10.0).round() / 10.0;
        }
        CoverageReport {
            pairs_total: self.walk.len() as u64,
            pairs_tried: st.pairs.len() as u64,
            walk_done_s: st.walk_done_s.map(|s| (s * 10.0).round() / 10.0),
            routes: routes.into_values().collect(),
            findings,
            corpus: st.corpus.len() as u64,
            masked: st.masked,
            progress,
        }
    }

    fn save_corpus(&self, dir: &Path) -> anyhow::Result<usize> {
        let st = self.lock();
        for (i, g) in st.corpus.iter().enumerate() {
            let d = dir.join(g.route_name());
            std::fs::create_dir_all(&d)?;
            crate::util::fs::write_atomic(&d.join(format!("{i:05}.json")), &serde_json::to_vec_pretty(g)?)?;
        }
        Ok(st.corpus.len())
    }
}

impl CoverageReport {
    /// Share of the walk's pairs tried, in percent.
    pub fn percent(&self) -> f64 {
        if self.pairs_total == 0 { 0.0 } else { 100.0 * self.pairs_tried as f64 / self.pairs_total as f64 }
    }

    /// One line: pairs tried, when the walk ended, corpus and masked inputs.
    pub fn summary(&self) -> String {
        format!(
            "field coverage: {} of {} (route, field, operator) pairs ({:.1} %){}; feedback corpus {}; {} input(s) masked (known crashes)",
            self.pairs_tried,
            self.pairs_total,
            self.percent(),
            self.walk_done_s
                .map(|s| format!(", walk done in {s:.0} s"))
                .unwrap_or_else(|| ", walk not finished".into()),
            self.corpus,
            self.masked
        )
    }

    /// The terminal table: the summary, per route, then the pairs that killed or got a 5xx.
    pub fn format(&self) -> String {
        let mut s = format!(
            "{}
",
            self.summary()
        );
        s.push_str(&format!(
            "{:<24} {:>6} {:>6} {:>7} {:>6} {:>5} {:>4}
",
            "route", "pairs", "tried", "deaths", "5xx", "new", "%"
        ));
        for r in &self.routes {
            let pct = if r.pairs == 0 { 0.0 } else { 100.0 * r.tried as f64 / r.pairs as f64 };
            s.push_str(&format!(
                "{:<24} {:>6} {:>6} {:>7} {:>6} {:>5} {:>4.0}
",
                r.route, r.pairs, r.tried, r.deaths, r.s5xx, r.new_answers, pct
            ));
        }
        if !self.findings.is_empty() {
            s.push_str(
                "pairs that killed the target or got a 5xx (first 20):
",
            );
            for f in self.findings.iter().take(20) {
                s.push_str(&format!(
                    "  {:<24} {:<36} {:<14} deaths {:>3}  5xx {:>3}  first at {:.0} s\n",
                    f.route, f.field, f.op, f.deaths, f.s5xx, f.first_s
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Fixtures;

    fn campaign(mix: Mix) -> Campaign {
        Campaign::new(Generator::new(7, Fixtures::default(), mix.clone(), super::super::GenOptions::default()), &mix)
    }

    #[test]
    fn the_walk_covers_every_pair_once_then_goes_random_deterministically() {
        let c = campaign(Mix { ws: 1.0, ..Mix::default() });
        let n = c.pairs();
        let mut seen = BTreeSet::new();
        for i in 0..n as u64 {
            let g = c.generate(0, i);
            let (at, op) = pair_of(&g.trail).expect("a field step");
            assert!(seen.insert((at.to_string(), op.to_string())), "{at} {op} twice");
        }
        assert_eq!(seen.len(), n);
        let c2 = campaign(Mix { ws: 1.0, ..Mix::default() });
        for i in [0, 17, n as u64 - 1, n as u64 + 5, n as u64 + 999] {
            assert_eq!(c.generate(0, i), c2.generate(0, i), "index {i}");
        }
    }

    #[test]
    fn the_walk_follows_the_mix_routes() {
        let mix = Mix {
            routes: [("*".to_string(), 0.0), ("settings-update".to_string(), 1.0)].into_iter().collect(),
            ..Mix::default()
        };
        let c = campaign(mix);
        for i in 0..c.pairs() as u64 {
            assert_eq!(c.generate(0, i).route_name(), "settings-update");
        }
    }

    #[test]
    fn new_answers_join_the_corpus_and_filed_triggers_are_avoided() {
        let c = campaign(Mix::default());
        let g = c.generate(0, 0);
        let a = Answer { kind: "http", status: Some(400), shape: 1, micros: 100, died: false };
        c.observe(&g, &a);
        c.observe(&g, &a);
        assert_eq!(c.coverage().corpus, 1, "the same answer twice is news once");
        assert!(c.wanted(&g, 1));
        c.crashed(&g, Some("b"), false);
        let kept = (0..1000).filter(|i| c.wanted(&g, *i)).count();
        assert!(kept < 50, "{kept} of 1000 sent after its crash was filed");
        let cov = c.coverage();
        assert_eq!(cov.pairs_tried, 1);
        assert!(cov.masked > 900);
    }

    #[test]
    fn unanswered_inputs_stay_out_of_the_corpus() {
        let c = campaign(Mix::default());
        let g = c.generate(0, 0);
        c.observe(&g, &Answer { kind: "timeout", status: None, shape: 0, micros: 1_000_000, died: false });
        assert_eq!(c.coverage().corpus, 0);
    }

    #[test]
    fn a_route_that_keeps_dying_is_throttled_past_the_walk_whatever_its_pairs() {
        let mix = Mix {
            routes: [("*".to_string(), 0.0), ("api-keys-create".to_string(), 1.0)].into_iter().collect(),
            ..Mix::default()
        };
        let c = campaign(mix);
        let walk = c.pairs() as u64;
        // A valid key creation (no field pair): the route itself kills.
        let culprit = (0..).map(|i| c.generator.generate(0, i)).find(|g| g.trail.is_empty()).unwrap();
        assert_eq!(culprit.route_name(), "api-keys-create");
        for _ in 0..THROTTLE_MAX {
            c.crashed(&culprit, Some("b"), true);
        }
        // The walk still tries every pair once.
        assert!((0..walk).all(|i| c.wanted(&c.generate(0, i), i)));
        // Past it, every input of the route is as rare as the route, pairs avoided for a death
        // of their own included.
        let pair = c.generate(0, 0);
        assert_eq!(pair.route_name(), "api-keys-create");
        c.crashed(&pair, Some("b"), true);
        c.crashed(&pair, Some("b"), true);
        let avoided_field = pair_of(&pair.trail).unwrap().0.to_string();
        let (mut n, mut kept, mut n_avoided, mut kept_avoided) = (0u64, 0u64, 0u64, 0u64);
        for i in walk..walk + 50_000 {
            let g = c.generate(0, i);
            if g.route_name() == "api-keys-create" {
                let wanted = c.wanted(&g, i) as u64;
                n += 1;
                kept += wanted;
                if pair_of(&g.trail).is_some_and(|(at, _)| at == avoided_field) {
                    n_avoided += 1;
                    kept_avoided += wanted;
                }
            }
        }
        assert!(n > 10_000 && kept <= (3 * n) >> THROTTLE_MAX, "{kept} of {n} sent");
        // Sent 1 in 64 they would number n_avoided / 64.
        assert!(
            n_avoided > 1000 && kept_avoided <= (3 * n_avoided) >> THROTTLE_MAX,
            "{kept_avoided} of {n_avoided} avoided pairs sent"
        );
    }
}
