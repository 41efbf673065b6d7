//! Generation throughput (one core): valid and mutated inputs per second, small and large
//! events. `cargo bench --bench generate -- --warm-up-time 1 --measurement-time 3`.
//! Goal: >= 10x what the driver sends (~100k req/s), so generation never limits a run.
//!
//! Measured 2026-12-02 on the 2-core machine (bench pinned to core 1, a 60 req/s soak beside
//! it), mean time per input on one core:
//!
//! | case                     | per input | inputs/s |
//! |--------------------------|-----------|----------|
//! | valid/dashboard-health   | 0.30 us   | 3.3 M    |
//! | valid/all-routes         | 2.6 us    | 387 k    |
//! | valid/event-small        | 3.9 us    | 258 k    |
//! | valid/event-large (16-64 KiB) | 175 us | 5.7 k  |
//! | json/event-small         | 11.5 us   | 87 k     |
//! | json/all-routes          | 18.6 us   | 54 k     |
//! | http/all-routes          | 29.9 us   | 33 k     |
//! | ws/all                   | 17.4 us   | 57 k     |
//! | default mix (.7/.2/.1)   | 50 us     | 20 k     |
//!
//! (2026-11-23, before borrowed member names and the word-at-a-time escape check: 0.35 / 4.4 /
//! 10.0 / 348 / 18 / 37 / 78 / 27 / 50 us under heavier load.)
//!
//! Only body-less routes meet the 10x goal; event and mutated inputs cost time proportional to
//! their size (mutators deliberately build up to 1 MiB strings, 100k-element arrays, 10k headers).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mesher_stress::db::Fixtures;
use mesher_stress::db::fixtures::SeedOptions;
use mesher_stress::generate::{GenOptions, Generator, Mix};
use mesher_stress::model::{Layer, Source};
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
                black_box(g.generate(0, n))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
