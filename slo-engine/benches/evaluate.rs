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

fn bench(c: &mut Criterion) {
    let mut month = filled("30d", 30 * 24 * 60);
    let buckets = month[0].buckets();
    eprintln!(
        "memory per 30-day SLO: {} buckets, {} bytes of counts ({:.1} KiB)",
        buckets,
        buckets * 16,
        buckets as f64 * 16.0 / 1024.0
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
