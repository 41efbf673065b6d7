//! Generation throughput (one core): valid and mutated inputs per second, small and large
//! events. `cargo bench --bench generate -- --warm-up-time 1 --measurement-time 3`.
//! Goal: >= 10x what the driver sends (~100k req/s), so generation never limits a run.
//!
//! Like a run, the bench uses the binary's allocator settings (freed pages go back at once,
//! `src/main.rs`) and gives large bodies back as the driver's lanes do (`generate::recycle`).
//!
//! Figures and what they mean for a run: `docs/performance.md`, "Generation throughput".

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
