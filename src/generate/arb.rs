//! `arbitrary` support: [`ArbitraryRequest`] is a small decision record a byte corpus or a
//! coverage-guided fuzzer (cargo-fuzz, libFuzzer) can produce; [`ArbitraryRequest::build`] turns
//! it into a `model::Generated` with the same generators and named operators the run uses, the
//! fuzzer choosing the layer, route, content seed and the exact operator sequence.
//!
//! Built inputs carry `RequestSeed { run: content_seed, stream: ARB_STREAM, index: 0 }`; they are
//! reproduced from the record itself (it is serde-serialisable), not from a run seed.

use super::json::J;
use super::mutate::{http, json, ws};
use super::rng;
use super::valid::{self, Ctx};
use crate::api::{BodyKind, ROUTES, WsPath};
use crate::model::{Generated, Layer, Payload, RequestSeed};
use arbitrary::Arbitrary;
use serde::{Deserialize, Serialize};

/// Stream number marking inputs built from an [`ArbitraryRequest`].
pub const ARB_STREAM: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary, Serialize, Deserialize)]
pub enum ArbLayer {
    Valid,
    Json,
    Http,
    Ws,
}

/// One operator choice: `op` indexes the layer's operator table (modulo its length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary, Serialize, Deserialize)]
pub struct ArbOp {
    pub op: u8,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary, Serialize, Deserialize)]
pub struct ArbitraryRequest {
    pub layer: ArbLayer,
    /// Route index (modulo the routes of the layer; for `Ws`: even = ingest, odd = stream).
    pub route: u8,
    pub content_seed: u64,
    pub ops: Vec<ArbOp>,
}

impl ArbitraryRequest {
    pub fn build(&self, ctx: &Ctx) -> Generated {
        let mut r = rng::from_u64(self.content_seed);
        let seed = RequestSeed { run: self.content_seed, stream: ARB_STREAM, index: 0 };
        let mut trail = Vec::new();
        let ops = &self.ops[..self.ops.len().min(16)];
        let (layer, payload) = match self.layer {
            ArbLayer::Valid => {
                let id = ROUTES[self.route as usize % ROUTES.len()].id;
                (Layer::Valid, Payload::Http(valid::request_bytes(&mut r, ctx, id)))
            }
            ArbLayer::Json => {
                let body_routes: Vec<_> = ROUTES.iter().filter(|r| r.body != BodyKind::None).collect();
                let id = body_routes[self.route as usize % body_routes.len()].id;
                let (mut req, body) = valid::request(&mut r, ctx, id);
                let mut j = body.unwrap_or_else(J::obj);
                let mut bytes: Option<Vec<u8>> = None;
                let ntree = json::TREE_OPS.len();
                for o in ops {
                    let k = o.op as usize % (ntree + json::BYTE_OPS.len());
                    let mut m = rng::from_u64(o.seed);
                    if k < ntree && bytes.is_none() {
                        trail.extend(json::apply_tree(json::TREE_OPS[k].name, &mut m, &ctx.opts, &mut j));
                    } else if k >= ntree {
                        let b = bytes.get_or_insert_with(|| j.to_bytes());
                        trail.extend(json::apply_bytes(json::BYTE_OPS[k - ntree].name, &mut m, &ctx.opts, b));
                    }
                }
                json::set_body(&mut req, bytes.unwrap_or_else(|| j.to_bytes()));
                (Layer::Json, Payload::Http(req))
            }
            ArbLayer::Http => {
                let id = ROUTES[self.route as usize % ROUTES.len()].id;
                let req = valid::request_bytes(&mut r, ctx, id);
                let mut st = http::St { req, raw_needed: false, no_host: false };
                let mut wire: Option<Vec<u8>> = None;
                let nf = http::FIELD_OPS.len();
                for o in ops {
                    let k = o.op as usize % (nf + http::WIRE_OPS.len());
                    let mut m = rng::from_u64(o.seed);
                    if k < nf && wire.is_none() {
                        trail.extend(http::apply_field(http::FIELD_OPS[k].name, &mut m, ctx, &mut st));
                    } else if k >= nf {
                        let b = wire.get_or_insert_with(|| http::wire(&st));
                        trail.extend(http::apply_wire(http::WIRE_OPS[k - nf].name, &mut m, ctx, b));
                    }
                }
                (Layer::Http, Payload::Http(http::finish(st, wire)))
            }
            ArbLayer::Ws => {
                let kind = if self.route.is_multiple_of(2) { WsPath::Ingest } else { WsPath::Stream };
                let mut s = valid::ws_script(&mut r, ctx, kind);
                for o in ops {
                    let k = o.op as usize % ws::OPS.len();
                    let mut m = rng::from_u64(o.seed);
                    trail.extend(ws::apply(ws::OPS[k].name, &mut m, ctx, &mut s));
                }
                (Layer::Ws, Payload::Ws(s))
            }
        };
        Generated { seed, layer, payload, trail }
    }

    /// Decode from fuzzer bytes (never fails: missing bytes read as zeros).
    pub fn from_bytes(data: &[u8]) -> ArbitraryRequest {
        let mut u = arbitrary::Unstructured::new(data);
        ArbitraryRequest::arbitrary(&mut u).unwrap_or(ArbitraryRequest {
            layer: ArbLayer::Valid,
            route: 0,
            content_seed: 0,
            ops: Vec::new(),
        })
    }
}
