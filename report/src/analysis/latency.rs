//! Figures of the requests that completed in a span of time, from `requests.csv` with polars:
//! count, failures, latency percentiles (all routes and per route), failures by route and
//! error class, and a latency histogram.
//!
//! Percentiles are exact and use the nearest-rank definition: the p-th percentile of `n`
//! sorted latencies is the value at rank `ceil(p × n)` (1-based), so p99 of 100 requests is
//! the 99th smallest. One sort per route and span.

use std::collections::BTreeMap;

use polars::prelude::*;

/// Requests and latency of one route (or all) over a span.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub requests: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Figures {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failed as f64 / self.requests as f64
        }
    }
}

/// Failures of one class on one route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErrorCount {
    pub route: String,
    pub class: String,
    pub count: u64,
}

/// The requests that completed in `[from_ms, to_ms)` (ms since the run's start).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanStats {
    pub from_ms: i64,
    pub to_ms: i64,
    pub all: Figures,
    pub routes: BTreeMap<String, Figures>,
    /// Most failures first.
    pub errors: Vec<ErrorCount>,
    /// Requests per latency bin (see [`bin_of`]), all routes.
    pub histogram: Vec<u64>,
}

impl SpanStats {
    pub fn seconds(&self) -> f64 {
        (self.to_ms - self.from_ms).max(0) as f64 / 1000.0
    }

    /// Failures by class over every route, most first.
    pub fn classes(&self) -> Vec<(String, u64)> {
        let mut by: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &self.errors {
            *by.entry(&e.class).or_default() += e.count;
        }
        let mut v: Vec<(String, u64)> = by.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

/// Histogram bins: four per doubling of the latency in µs (bin `b` holds `[2^(b/4),
/// 2^((b+1)/4))` µs), so a few dozen bins span microseconds to minutes at a steady relative
/// width.
pub const BINS_PER_DOUBLING: f64 = 4.0;
pub const BINS: usize = 4 * 40;

pub fn bin_of(latency_us: i64) -> usize {
    ((latency_us.max(1) as f64).log2() * BINS_PER_DOUBLING)
        .floor()
        .clamp(0.0, (BINS - 1) as f64) as usize
}

/// The lower edge of bin `b`, in ms.
pub fn bin_floor_ms(b: usize) -> f64 {
    2f64.powf(b as f64 / BINS_PER_DOUBLING) / 1000.0
}

pub fn span_stats(requests: &DataFrame, from_ms: i64, to_ms: i64) -> PolarsResult<SpanStats> {
    let t = requests.column("t_ms")?.i64()?;
    let mask = &t.gt_eq(from_ms) & &t.lt(to_ms);
    let span = requests.select(["latency_us", "route", "error"])?.filter(&mask)?;
    let (all, sorted) = figures(&span)?;
    let mut histogram = vec![0u64; BINS];
    for &v in &sorted {
        histogram[bin_of(v)] += 1;
    }
    drop(sorted);
    let mut routes = BTreeMap::new();
    for part in span.partition_by_stable(["route"], true)? {
        let name = part
            .column("route")?
            .cat32()?
            .iter_str()
            .next()
            .flatten()
            .unwrap_or_default()
            .to_owned();
        routes.insert(name, figures(&part)?.0);
    }
    let failed = span.filter(&span.column("error")?.is_not_null())?;
    let counts = failed.group_by(["route", "error"])?.select(["latency_us"]).count()?;
    let mut errors: Vec<ErrorCount> = counts
        .column("route")?
        .cat32()?
        .iter_str()
        .zip(counts.column("error")?.cat32()?.iter_str())
        .zip(counts.column("latency_us_count")?.idx()?.iter())
        .map(|((route, class), n)| ErrorCount {
            route: route.unwrap_or_default().to_owned(),
            class: class.unwrap_or_default().to_owned(),
            count: n.unwrap_or(0) as u64,
        })
        .collect();
    errors.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.route, &a.class).cmp(&(&b.route, &b.class)))
    });
    Ok(SpanStats {
        from_ms,
        to_ms,
        all,
        routes,
        errors,
        histogram,
    })
}

/// A frame's figures, and its latencies sorted (µs).
fn figures(df: &DataFrame) -> PolarsResult<(Figures, Vec<i64>)> {
    let n = df.height();
    let failed = (n - df.column("error")?.null_count()) as u64;
    let sorted: Vec<i64> = df
        .column("latency_us")?
        .i64()?
        .sort(false)
        .into_no_null_iter()
        .collect();
    let rank = |q: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let r = ((q * n as f64).ceil() as usize).clamp(1, n);
        sorted[r - 1] as f64 / 1000.0
    };
    let f = Figures {
        requests: n as u64,
        failed,
        p50_ms: rank(0.50),
        p90_ms: rank(0.90),
        p99_ms: rank(0.99),
        max_ms: sorted.last().map_or(0.0, |&v| v as f64 / 1000.0),
    };
    Ok((f, sorted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_double_every_four() {
        assert_eq!(bin_of(1), 0);
        assert_eq!(bin_of(16), 16);
        assert_eq!(bin_of(1000), 39); // log2(1000) = 9.97
        assert!((bin_floor_ms(40) - 1.024).abs() < 1e-9);
    }
}
