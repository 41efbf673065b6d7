//! Generation throughput (one core): valid and mutated inputs per second, small and large
//! events. `cargo bench --bench generate -- --warm-up-time 1 --measurement-time 3`.
//! Goal: >= 10x what the driver sends (~100k req/s), so generation never limits a run.
//!
//! Like a run, the bench uses the binary's allocator settings (freed pages go back at once,
//! `src/main.rs`) and gives large bodies back as the driver's lanes do (`generate::recycle`).
//!
//! Measured 2026-12-03 (session 8) on the 2-core machine, pinned to core 1, nothing beside it;
//! mean time per input on one core. "before": session 7's figures (same bench; the HTTP layer
//! then formatted up to 10 000 header names with `format!` and regrew request heads):
//!
//! | case                          | per input | inputs/s | before  |
//! |-------------------------------|-----------|----------|---------|
//! | valid/dashboard-health        | 0.31 us   | 3.2 M    | 0.37 us |
//! | valid/all-routes              | 1.6 us    | 620 k    | 2.0 us  |
//! | valid/event-small             | 2.3 us    | 430 k    | 2.5 us  |
//! | valid/event-large (16-64 KiB) | 83 us     | 12 k     | 87 us   |
//! | json/event-small (4 KiB max)  | 9.4 us    | 106 k    | 11.5 us |
//! | json/all-routes (4 KiB max)   | 23 us     | 43 k     | 27 us   |
//! | json/all-routes-full (1 MiB)  | 41 us     | 24 k     | 47 us   |
//! | http/all-routes               | 35 us     | 28 k     | 66 us   |
//! | ws/all                        | 21 us     | 48 k     | 28 us   |
//! | default mix (.7/.2/.1)        | 14 us     | 69 k     | 18 us   |
//!
//! Side by side with session 7's binary in the same minutes: http/all-routes 38-51 -> 35 us.
//! Against the built-in reference target (connection per request, PostgreSQL behind it, default
//! mix, 32 lanes, target on core 0, tool on core 1): 173-318 req/s, bound by the target; the
//! tool used 17 % of its core (2.55 CPU-s for 4 765 inputs), of which generation at 14-18 us an
//! input is ~3 %.
//!
//! Repeats on this virtual machine vary by up to 30 %; with mimalloc's default purge delay
//! (`MIMALLOC_PURGE_DELAY=1000`) the mutated layers run about twice as fast (fewer page faults),
//! which is what earlier sessions' figures measured.
//!
//! Against the driver (session 7), measured on the same inputs: the tool against `examples/trivial_target`
//! (keep-alive, 32 lanes, target on core 0, tool on core 1, CPU of the tool from /proc):
//! valid layer 54.6k req/s at 12.6 us of tool CPU per request, of which generation is ~2 us
//! (5-6x cheaper than the rest of sending); JSON layer at default sizes 7.2k req/s at 120 us
//! per request (was 1.9-2.1k req/s at 460-500 us before session 7), generation
//! ~47 us of it: mutated bodies of up to a MiB cost what writing them costs, about what the
//! kernel's copy into the socket costs. Against Mesher (connection per request, 57 us per
//! request of driver CPU for a small GET) the valid layer is 28-38x cheaper.

use criterion::{Criterion, Throughput, criterion_group};
use mesher_stress::db::Fixtures;
use mesher_stress::db::fixtures::SeedOptions;
use mesher_stress::generate::campaign::{Answer, Campaign, Steer};
use mesher_stress::generate::{GenOptions, Generator, Mix};
use mesher_stress::model::{Layer, Payload, Source};
use std::hint::black_box;

// The binary's allocator (src/main.rs), so these figures are what a run gets.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn generator(mix: Mix, opts: GenOptions) -> Generator {
    Generator::new(42, Fixtures::plan(&SeedOptions::default()), mix, opts)
}

fn routes_only(names: &[&str]) -> std::collections::BTreeMap<String, f64> {
    mesher_stress::api::ROUTES
        .iter()
        .map(|r| (r.name.to_string(), if names.contains(&r.name) { 1.0 } else { 0.0 }))
        .collect()
}

fn bench(c: &mut Criterion) {
    let small = GenOptions { medium_event_ratio: 0.0, large_event_ratio: 0.0, ..GenOptions::default() };
    let large = GenOptions {
        medium_event_ratio: 0.0,
        large_event_ratio: 1.0,
        max_event_bytes: 64 * 1024,
        ..GenOptions::default()
    };
    let cases: Vec<(&str, Generator)> = vec![
        ("valid/all-routes", generator(Mix::only(Layer::Valid), GenOptions::default())),
        (
            "valid/dashboard-health",
            generator(
                Mix { routes: routes_only(&["dashboard-health"]), ..Mix::only(Layer::Valid) },
                GenOptions::default(),
            ),
        ),
        (
            "valid/event-small",
            generator(Mix { routes: routes_only(&["events-ingest"]), ..Mix::only(Layer::Valid) }, small.clone()),
        ),
        (
            "valid/event-large",
            generator(Mix { routes: routes_only(&["events-ingest"]), ..Mix::only(Layer::Valid) }, large.clone()),
        ),
        (
            "json/event-small",
            generator(
                Mix { routes: routes_only(&["events-ingest"]), ..Mix::only(Layer::Json) },
                GenOptions { max_string: 4096, max_array: 1000, max_depth: 500, ..small.clone() },
            ),
        ),
        (
            "json/all-routes",
            generator(
                Mix::only(Layer::Json),
                GenOptions { max_string: 4096, max_array: 1000, max_depth: 500, ..GenOptions::default() },
            ),
        ),
        // The JSON layer at its default sizes (strings to 1 MiB, arrays to 100 000 elements).
        ("json/all-routes-full", generator(Mix::only(Layer::Json), GenOptions::default())),
        ("http/all-routes", generator(Mix::only(Layer::Http), GenOptions::default())),
        ("ws/all", generator(Mix::only(Layer::Ws), GenOptions { max_string: 4096, ..small.clone() })),
        ("default-mix", generator(Mix::default(), GenOptions::default())),
    ];
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(1));
    for (name, g) in &cases {
        let mut n = 0u64;
        group.bench_function(*name, |b| {
            b.iter(|| {
                n += 1;
                let x = black_box(g.generate(0, n));
                // As the driver's lanes do once a request is answered.
                if let Payload::Http(r) = x.payload {
                    mesher_stress::generate::recycle(r.body);
                }
            })
        });
    }
    // The field campaign (a fuzz phase with fields = true): an input of the walk (a valid
    // request with one field's boundary value), and one of the random part with the steering
    // calls the fuzz loop makes around each send.
    let mix = Mix { ws: 0.1, ..Mix::default() };
    let campaign = Campaign::new(generator(mix.clone(), GenOptions::default()), &mix);
    let pairs = campaign.pairs() as u64;
    let mut n = 0u64;
    group.bench_function("fields/walk", |b| {
        b.iter(|| {
            n += 1;
            let x = black_box(campaign.generate(0, n % pairs));
            if let Payload::Http(r) = x.payload {
                mesher_stress::generate::recycle(r.body);
            }
        })
    });
    let mut n = pairs;
    group.bench_function("fields/random+steer", |b| {
        b.iter(|| {
            n += 1;
            let x = campaign.generate(0, n);
            if campaign.wanted(&x, n) {
                let a = Answer { kind: "http", status: Some(400), shape: n % 97, micros: 900, died: false };
                campaign.observe(&x, &a);
            }
            black_box(&x);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    // The binary's allocator settings too (src/main.rs): freed pages go back at once, so a
    // large body's pages are faulted in afresh each time, as in a run.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide option, no pointers.
        unsafe { libmimalloc_sys::mi_option_set(15, 0) };
    }
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
