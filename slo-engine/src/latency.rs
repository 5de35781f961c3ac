//! Latency percentiles over recent windows, kept coarser than the sidecar's HDR histograms so
//! a month of them fits beside an SLO's counts.
//!
//! Values go into log-linear bins 1/16 of a power of two wide (at most 6.25 % apart; exact
//! below 32 µs), which tells a p99 of 250 ms from one of 270 ms; a percentile reads as its
//! bin's highest value, as HDR's does. Time goes into two tiers: a minute for the last hour,
//! and buckets of a 24th of the span (30 hours for 30 days) before that. A bucket keeps
//! only its non-empty bins. A window's percentile merges the buckets it covers: O(buckets ×
//! bins), fine for probes and dashboards (budgets and burn rates stay on [`crate::Series`]);
//! windows longer than an hour start at a coarse bucket's boundary.

use std::collections::VecDeque;
use std::time::Duration;

use hdrhistogram::Histogram;

const SUB_BINS: u64 = 16;
/// Bins below this are one microsecond wide.
const LINEAR: u64 = 2 * SUB_BINS;

/// The bin of a value in µs.
fn bin(v: u64) -> u16 {
    if v < LINEAR {
        return v as u16;
    }
    let exp = 63 - v.leading_zeros() as u64; // ≥ 5
    let mantissa = v >> (exp - 4); // in [16, 32)
    (LINEAR + (exp - 5) * SUB_BINS + (mantissa - SUB_BINS)) as u16
}

/// The highest value (µs) of a bin.
fn bin_high(b: u16) -> u64 {
    let b = b as u64;
    if b < LINEAR {
        return b;
    }
    let exp = (b - LINEAR) / SUB_BINS + 5;
    let mantissa = (b - LINEAR) % SUB_BINS + SUB_BINS;
    ((mantissa + 1) << (exp - 4)) - 1
}

/// Counts per non-empty bin, sorted by bin (two arrays: 6 bytes a bin, not 8).
#[derive(Clone, Debug, Default)]
struct Bins {
    bins: Vec<u16>,
    counts: Vec<u32>,
}

impl Bins {
    fn add(&mut self, b: u16, n: u64) {
        let n = n.min(u32::MAX as u64) as u32;
        match self.bins.binary_search(&b) {
            Ok(i) => self.counts[i] = self.counts[i].saturating_add(n),
            Err(i) => {
                self.bins.insert(i, b);
                self.counts.insert(i, n);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.bins.iter().copied().zip(self.counts.iter().copied())
    }

    fn shrink_to_fit(&mut self) {
        self.bins.shrink_to_fit();
        self.counts.shrink_to_fit();
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.bins.capacity() * 2 + self.counts.capacity() * 4
    }
}

/// One tier: a bucket of bins per `bucket_ms`, newest last.
#[derive(Clone, Debug)]
struct Tier {
    bucket_ms: u64,
    capacity: usize,
    /// Index (time / bucket_ms) of the first bucket kept.
    first: u64,
    buckets: VecDeque<Bins>,
}

impl Tier {
    fn new(bucket_ms: u64, span_ms: u64) -> Self {
        Tier {
            bucket_ms,
            capacity: span_ms.div_ceil(bucket_ms) as usize + 1,
            first: 0,
            buckets: VecDeque::new(),
        }
    }

    /// The bucket for `at_ms` (the newest for a time before it: a late scrape is not lost).
    fn bucket(&mut self, at_ms: u64) -> &mut Bins {
        let index = at_ms / self.bucket_ms;
        if self.buckets.is_empty() {
            self.first = index;
            self.buckets.push_back(Bins::default());
        }
        let last = self.first + self.buckets.len() as u64 - 1;
        if index > last {
            // The bucket being closed takes no more values: drop its spare room.
            self.buckets.back_mut().expect("not empty").shrink_to_fit();
            let gap = (index - last).min(self.capacity as u64);
            for _ in 0..gap {
                self.buckets.push_back(Bins::default());
            }
            self.first = index + 1 - self.buckets.len() as u64;
            while self.buckets.len() > self.capacity {
                self.buckets.pop_front();
                self.first += 1;
            }
        }
        self.buckets.back_mut().expect("not empty")
    }

    /// Whether the tier reaches back to `from_ms`.
    fn covers(&self, from_ms: u64) -> bool {
        self.buckets.is_empty() || from_ms / self.bucket_ms >= self.first
    }

    /// The buckets from the one holding `from_ms` up to the one holding `to_ms`.
    fn between(&self, from_ms: u64, to_ms: u64) -> impl Iterator<Item = &Bins> {
        let (from, to) = (from_ms / self.bucket_ms, to_ms / self.bucket_ms);
        self.buckets
            .iter()
            .enumerate()
            .filter(move |(i, _)| (from..=to).contains(&(self.first + *i as u64)))
            .map(|(_, b)| b)
    }
}

/// Latency distributions over time, for percentiles over recent windows.
#[derive(Clone, Debug)]
pub struct LatencySeries {
    fine: Tier,
    coarse: Tier,
}

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;

impl LatencySeries {
    /// Percentiles over windows up to `span`.
    pub fn new(span: Duration) -> Self {
        let span_ms = (span.as_millis() as u64).max(MINUTE_MS);
        LatencySeries {
            fine: Tier::new(MINUTE_MS, span_ms.min(HOUR_MS)),
            coarse: Tier::new((span_ms / 24).max(MINUTE_MS), span_ms),
        }
    }

    /// Take in a histogram of latencies in µs (a stats window's) at `at_ms`.
    pub fn record(&mut self, at_ms: u64, h: &Histogram<u64>) {
        self.record_values(
            at_ms,
            h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())),
        );
    }

    /// Take in `(latency µs, count)` pairs in ascending order of latency at `at_ms`.
    pub fn record_values(&mut self, at_ms: u64, values: impl Iterator<Item = (u64, u64)>) {
        // Bins looked up once for both tiers; values come in order, so equal bins are
        // neighbours.
        let mut bins: Vec<(u16, u64)> = Vec::new();
        for (value, count) in values {
            let b = bin(value);
            match bins.last_mut() {
                Some((last, n)) if *last == b => *n += count,
                _ => bins.push((b, count)),
            }
        }
        for tier in [&mut self.fine, &mut self.coarse] {
            let bucket = tier.bucket(at_ms);
            for &(b, n) in &bins {
                bucket.add(b, n);
            }
        }
    }

    /// The `q` quantile (0 < q ≤ 1) of latencies in the `window` ending at `now_ms`; `None`
    /// without any.
    pub fn quantile(&self, now_ms: u64, window: Duration, q: f64) -> Option<Duration> {
        let from_ms = now_ms.saturating_sub(window.as_millis() as u64).saturating_add(1);
        let tier = if self.fine.covers(from_ms) {
            &self.fine
        } else {
            &self.coarse
        };
        let mut merged: Vec<(u16, u64)> = Vec::new();
        for bins in tier.between(from_ms, now_ms) {
            for (b, n) in bins.iter() {
                match merged.binary_search_by_key(&b, |&(bin, _)| bin) {
                    Ok(i) => merged[i].1 += n as u64,
                    Err(i) => merged.insert(i, (b, n as u64)),
                }
            }
        }
        let total: u64 = merged.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in merged {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(bin_high(b)));
            }
        }
        None
    }

    /// Bytes kept (bins and buckets), for memory accounting.
    pub fn bytes(&self) -> usize {
        [&self.fine, &self.coarse]
            .iter()
            .flat_map(|t| &t.buckets)
            .map(Bins::bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values_us: &[(u64, u64)]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for &(v, n) in values_us {
            h.record_n(v, n).unwrap();
        }
        h
    }

    #[test]
    fn bins_are_within_a_sixteenth() {
        for v in [1, 31, 32, 33, 1000, 250_000, 59_999_999] {
            let high = bin_high(bin(v));
            assert!(high >= v && (high - v) as f64 <= v as f64 / 16.0, "{v} -> {high}");
            assert_eq!(bin(high), bin(v));
        }
        assert!(bin(u64::MAX / 2) > bin(60_000_000));
    }

    #[test]
    fn percentiles_over_recent_and_old_windows() {
        let mut s = LatencySeries::new(Duration::from_secs(30 * 86_400));
        // A day of 100 requests a minute at 20 ms, then ten minutes where 5 of 100 take 900 ms.
        let day = 24 * 60;
        for m in 0..day {
            s.record(m * MINUTE_MS, &histogram(&[(20_000, 100)]));
        }
        for m in day..day + 10 {
            s.record(m * MINUTE_MS, &histogram(&[(20_000, 95), (900_000, 5)]));
        }
        let now = (day + 10) * MINUTE_MS - 1;
        let p = |window_min: u64, q: f64| s.quantile(now, Duration::from_secs(window_min * 60), q).unwrap();
        // The last ten minutes: p99 is a slow request, p90 a fast one (both to a 16th).
        let slow = p(10, 0.99).as_micros() as u64;
        assert!((900_000..900_000 + 900_000 / 16).contains(&slow), "{slow}");
        assert!((20_000..21_250).contains(&(p(10, 0.90).as_micros() as u64)));
        // Over the last hour 50 of 6,000 were slow: p99 is fast, p99.5 is not.
        assert!(p(60, 0.99) < Duration::from_millis(22));
        assert!(p(60, 0.995) > Duration::from_millis(800));
        // Over two days (the coarse tier) the day's 144,000 fast requests dominate.
        assert!(p(2 * day, 0.999) < Duration::from_millis(22));
        assert_eq!(s.quantile(100 * day * MINUTE_MS, Duration::from_secs(600), 0.5), None);
    }

    #[test]
    fn a_month_of_lognormal_latencies_fits_in_its_budget() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, LogNormal};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let dist = LogNormal::new((30_000f64).ln(), 0.6).unwrap();
        let mut sample: Vec<f64> = (0..200).map(|_| dist.sample(&mut rng)).collect();
        sample.sort_by(f64::total_cmp);
        let mut s = LatencySeries::new(Duration::from_secs(30 * 86_400));
        for m in 0..30 * 24 * 60 {
            // The same shape every minute, shifted a little so that buckets differ.
            let shift = 1.0 + (m % 13) as f64 / 50.0;
            s.record_values(m * MINUTE_MS, sample.iter().map(|v| ((v * shift) as u64, 1)));
        }
        // Under what the SLO's 64 KiB leave beside its counts (17 KiB).
        assert!(s.bytes() < 40 * 1024, "{} bytes", s.bytes());
    }
}
