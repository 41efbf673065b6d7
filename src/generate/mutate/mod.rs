//! Mutation operators. Each operator has a stable name (`json.swap-type`, `http.content-length-lie`,
//! `ws.fragment`, ...), takes the request's mutation RNG and records one `model::MutationStep`
//! (name, where, what). Operators compose: a mutated input applies 1..=`max_mutations` of them
//! in sequence and carries the whole trail.
//!
//! - [`json`]: tree operators on [`super::json::J`] then byte operators on the serialised body.
//! - [`http`]: operators on the request's fields, then wire-level operators on its bytes
//!   (requests a client library would refuse end up in `HttpRequest::raw`).
//! - [`ws`]: operators on `WsScript`/`WsFrame` fields.
//!
//! Operators never look at the target's planted faults; they know the API (§2, §3, §7) only.

pub mod http;
pub mod json;
pub mod ws;

use crate::model::MutationStep;

pub(crate) fn step(op: &str, at: impl Into<String>, detail: impl Into<String>) -> MutationStep {
    MutationStep { op: op.to_string(), at: at.into(), detail: detail.into() }
}

/// Names of every operator, by family (for docs, the CLI and `arbitrary`).
pub fn operator_names() -> Vec<&'static str> {
    json::TREE_OPS
        .iter()
        .map(|o| o.name)
        .chain(json::BYTE_OPS.iter().map(|o| o.name))
        .chain(http::FIELD_OPS.iter().map(|o| o.name))
        .chain(http::WIRE_OPS.iter().map(|o| o.name))
        .chain(ws::OPS.iter().map(|o| o.name))
        .collect()
}
