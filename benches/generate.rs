//! Generation throughput (one core): valid and mutated inputs per second, small and large
//! events. `cargo bench --bench generate -- --warm-up-time 1 --measurement-time 3`.
//! Goal: >= 10x what the driver sends (~100k req/s), so generation never limits a run.
//!
//! Measured 2026-12-02 on the 2-core machine (bench pinned to core 1, a 60 req/s soak beside
//! it; valid/dashboard-health, whose code did not change, at its earlier 0.30 us), mean time
//! per input on one core, after the valid layer started writing bodies straight to bytes:
//!
//! | case                     | per input | inputs/s | before |
//! |--------------------------|-----------|----------|--------|
//! | valid/dashboard-health   | 0.30 us   | 3.3 M    | 0.30 us |
//! | valid/all-routes         | 1.5 us    | 670 k    | 2.6 us |
//! | valid/event-small        | 2.1 us    | 466 k    | 3.9 us |
//! | valid/event-large (16-64 KiB) | 76 us | 13 k    | 175 us |
//! | json/event-small         | 9.7 us    | 103 k    | 11.5 us |
//! | json/all-routes          | 17.7 us   | 56 k     | 18.6 us |
//! | http/all-routes          | 28 us     | 35 k     | 29.9 us |
//! | ws/all                   | 11 us     | 90 k     | 17.4 us |
//! | default mix (.7/.2/.1)   | 38 us     | 26 k     | 50 us  |
//!
//! Repeats on this virtual machine vary by up to 30 % (later the same day every case, the
//! unchanged one included, ran 20-30 % slower).
//!
//! Against the driver (README, "Benchmarks": 0.85 CPU-s per 100k requests with keep-alive,
//! 5.7 with a connection per request as Mesher does): the valid layer is 4-6x cheaper than a
//! keep-alive send and 27-38x cheaper than a send to Mesher; the mutated layers cost what they
//! build (strings up to 1 MiB, arrays up to 100 000 elements, 10 000 headers): in a closed-loop
//! default-mix run against the built-in target, generation was 24 % of the tool's CPU
//! (perf, DWARF call graphs), most of it the JSON mutators' huge values.

use criterion::{Criterion, Throughput, criterion_group};
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
                black_box(g.generate(0, n))
            })
        });
    }
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
