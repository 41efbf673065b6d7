//! `mesher-stress gen`: regenerate inputs exactly from (seed, stream, index), as JSON lines
//! (`model::Generated`) or as the bytes that go on the wire.
//!
//! Uses the default fixtures plan (`Fixtures::plan(&SeedOptions::default())`) unless
//! `--fixtures` gives other seed options, the default mix unless `--mix` gives one, and a fresh
//! id pool (so the stateful routes regenerate as at the start of a run).

use super::Global;
use crate::db::Fixtures;
use crate::db::fixtures::SeedOptions;
use crate::exit;
use crate::generate::{GenOptions, Generator, Mix, validate};
use crate::model::{Layer, Payload};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;

#[derive(Debug, Clone, Args)]
#[command(after_help = "Example: mesher-stress gen --seed 42 --stream 0 --index 17 --layer json --route events-ingest")]
pub struct GenArgs {
    /// Stream number.
    #[arg(long, default_value_t = 0)]
    pub stream: u64,
    /// Index of the first input in the stream.
    #[arg(long, default_value_t = 0)]
    pub index: u64,
    /// Force the layer: valid, json, http or ws.
    #[arg(long, value_parser = parse_layer)]
    pub layer: Option<Layer>,
    /// Force the route (a route name from the catalogue, ws-ingest or ws-stream).
    #[arg(long)]
    pub route: Option<String>,
    /// How many consecutive indexes to print.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Print the wire bytes (HTTP request, or WebSocket handshake and frames) instead of JSON.
    #[arg(long)]
    pub wire: bool,
    /// Traffic mix as JSON, e.g. '{"valid":0.5,"json":0.5,"routes":{"events-ingest":3}}'.
    #[arg(long)]
    pub mix: Option<String>,
    /// Fixture seed options as JSON (default: the profile default).
    #[arg(long)]
    pub fixtures: Option<String>,
    /// Generation options as JSON (GenOptions).
    #[arg(long)]
    pub options: Option<String>,
    /// Check inputs of the valid layer against the spec validator; exit non-zero on a failure.
    #[arg(long)]
    pub check: bool,
}

fn parse_layer(s: &str) -> Result<Layer, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("unknown layer {s:?} (valid, json, http, ws)"))
}

pub async fn main(a: GenArgs, g: &Global) -> Result<u8> {
    let Some(seed) = g.seed else { bail!("gen needs --seed N") };
    let mix: Mix = match &a.mix {
        Some(t) => serde_json::from_str(t).context("--mix")?,
        None => Mix::default(),
    };
    let seed_opts: SeedOptions = match &a.fixtures {
        Some(t) => serde_json::from_str(t).context("--fixtures")?,
        None => SeedOptions::default(),
    };
    let opts: GenOptions = match &a.options {
        Some(t) => serde_json::from_str(t).context("--options")?,
        None => GenOptions::default(),
    };
    if let Some(r) = &a.route
        && crate::api::Route::by_name(r).is_none()
        && r != "ws-ingest"
        && r != "ws-stream"
    {
        bail!("unknown route {r:?}");
    }
    let fixtures = Fixtures::plan(&seed_opts);
    let generator = Generator::try_new(seed, fixtures.clone(), mix, opts)?;
    let mut out = std::io::stdout().lock();
    let mut failures = 0;
    for i in 0..a.count {
        let item = generator.generate_with(a.stream, a.index + i, a.layer, a.route.as_deref());
        if a.check && item.layer == Layer::Valid {
            let r = match &item.payload {
                Payload::Http(h) => validate::check_request(h, &fixtures),
                Payload::Ws(w) => validate::check_ws(w, &fixtures),
            };
            if let Err(e) = r {
                eprintln!("invalid: stream {} index {}: {e}", a.stream, a.index + i);
                failures += 1;
            }
        }
        if a.wire {
            out.write_all(&crate::wire::input_bytes(&item))?;
        } else {
            serde_json::to_writer(&mut out, &item)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(if failures > 0 { exit::TOOL_ERROR } else { exit::SUCCESS })
}
