//! Issue 6's benchmark: 10,000 SLOs with 30-day windows at one-minute resolution, filled with
//! 30 days of traffic; one evaluation pass over all of them. Also a pass over 10,000 one-hour
//! SLOs (the cost should not depend on the window) and the memory each SLO keeps.
//!
//!   cargo bench --bench evaluate        (results: bench/RESULTS.md)

use std::hint::black_box;

use ballast_model::slo::SloSpec;
use ballast_slo_engine::Slo;
use criterion::{Criterion, criterion_group, criterion_main};

const MIN: u64 = 60_000;
const SLOS: usize = 10_000;

/// `SLOS` SLOs over `window`, each fed one record a minute for `minutes` minutes.
fn filled(window: &str, minutes: u64) -> Vec<Slo> {
    (0..SLOS)
        .map(|i| {
            let text =
                format!("name = \"s{i}\"\nobjective = 0.999\nwindow = \"{window}\"\nsli = {{ availability = {{}} }}");
            let mut slo = Slo::new(toml::from_str::<SloSpec>(&text).unwrap()).unwrap();
            for m in 0..minutes {
                slo.record(m * MIN, 999 + (m + i as u64) % 2, 1000);
            }
            slo
        })
        .collect()
}

/// The latency distributions a 30-day latency SLO keeps after a month of traffic: each
/// minute, a histogram of 200 log-normal latencies (median 30 ms).
fn latency_slo_memory() -> usize {
    use rand::SeedableRng;
    use rand_distr::{Distribution, LogNormal};
    let text = "name = \"l\"\nobjective = 0.99\nwindow = \"30d\"\nsli = { latency = { threshold = \"100ms\" } }";
    let mut slo = Slo::new(toml::from_str::<SloSpec>(text).unwrap()).unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let dist = LogNormal::new(30_000f64.ln(), 0.6).unwrap();
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for m in 0..30 * 24 * 60 {
        h.reset();
        for _ in 0..200 {
            h.record((dist.sample(&mut rng) as u64).clamp(1, 60_000_000)).unwrap();
        }
        slo.record_latency(m * MIN, &h);
    }
    slo.latency_bytes()
}

fn bench(c: &mut Criterion) {
    let mut month = filled("30d", 30 * 24 * 60);
    let buckets = month[0].buckets();
    eprintln!(
        "memory per 30-day SLO: {} buckets, {} bytes of counts ({:.1} KiB)",
        buckets,
        buckets * 16,
        buckets as f64 * 16.0 / 1024.0
    );
    let latency = latency_slo_memory();
    eprintln!(
        "latency percentiles of a 30-day latency SLO (200 log-normal requests a minute): {latency} bytes ({:.1} KiB); with its counts {:.1} KiB",
        latency as f64 / 1024.0,
        (latency + buckets * 16) as f64 / 1024.0
    );
    let now = 30 * 24 * 60 * MIN;
    c.bench_function("evaluate 10,000 SLOs, 30-day windows", |b| {
        b.iter(|| {
            for slo in &mut month {
                black_box(slo.evaluate(black_box(now)));
            }
        })
    });
    drop(month);
    let mut hour = filled("1h", 24 * 60);
    let now = 24 * 60 * MIN;
    c.bench_function("evaluate 10,000 SLOs, 1-hour windows", |b| {
        b.iter(|| {
            for slo in &mut hour {
                black_box(slo.evaluate(black_box(now)));
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
