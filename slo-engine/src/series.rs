//! Good/total counts over time, with the sum over any recent window in O(1).
//!
//! Two tiers of buckets: fine ones (say a minute) for the recent past, coarse ones (say an
//! hour) for the whole SLO window. Each bucket keeps the running totals since the series
//! began, so a window's sum is the difference of two of them. Memory is bounded by the tiers'
//! spans, not by the traffic: a 30-day SLO at one minute for 6 hours and one hour beyond takes
//! about 1,100 buckets of 16 bytes.
//!
//! A window longer than the fine tier is summed on the coarse tier, so its start is rounded to
//! a coarse bucket (an error of at most one coarse bucket's counts). Counts for a time before
//! the newest bucket are added to the newest bucket (a late scrape is not lost).

use std::collections::VecDeque;

/// Totals of good and all events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub good: u64,
    pub total: u64,
}

impl Counts {
    pub fn bad(self) -> u64 {
        self.total - self.good
    }

    /// The share of good events; `None` without events.
    pub fn ratio(self) -> Option<f64> {
        (self.total > 0).then(|| self.good as f64 / self.total as f64)
    }

    fn minus(self, earlier: Counts) -> Counts {
        Counts {
            good: self.good - earlier.good,
            total: self.total - earlier.total,
        }
    }
}

/// One tier: running totals at the end of each bucket, oldest first.
#[derive(Clone, Debug)]
struct Tier {
    bucket_ms: u64,
    capacity: usize,
    /// Index (time / bucket_ms) of the first bucket kept.
    first: u64,
    /// Running totals at the end of each kept bucket.
    ends: VecDeque<Counts>,
    /// Running totals before the first kept bucket.
    before: Counts,
}

impl Tier {
    fn new(bucket_ms: u64, span_ms: u64) -> Self {
        Tier {
            bucket_ms,
            capacity: span_ms.div_ceil(bucket_ms) as usize + 1,
            first: 0,
            ends: VecDeque::new(),
            before: Counts::default(),
        }
    }

    fn last_index(&self) -> Option<u64> {
        (!self.ends.is_empty()).then(|| self.first + self.ends.len() as u64 - 1)
    }

    /// Add counts at time `at_ms`; `running` is the series' total after adding them.
    fn add(&mut self, at_ms: u64, running: Counts) {
        let index = at_ms / self.bucket_ms;
        match self.last_index() {
            None => {
                self.first = index;
                self.ends.push_back(running);
            }
            Some(last) if index <= last => *self.ends.back_mut().expect("not empty") = running,
            Some(last) => {
                // Buckets without events carry the running totals forward.
                let carried = *self.ends.back().expect("not empty");
                let gap = (index - last - 1).min(self.capacity as u64) as usize;
                for _ in 0..gap {
                    self.ends.push_back(carried);
                }
                self.ends.push_back(running);
                self.first = index + 1 - self.ends.len() as u64;
            }
        }
        while self.ends.len() > self.capacity {
            self.before = self.ends.pop_front().expect("over capacity");
            self.first += 1;
        }
    }

    /// Running totals at the end of the bucket holding `at_ms`, if this tier reaches back there
    /// (`Some(before)` for times just before the oldest bucket).
    fn running_at(&self, at_ms: u64) -> Option<Counts> {
        let index = at_ms / self.bucket_ms;
        let last = self.last_index()?;
        if index < self.first {
            return (index + 1 == self.first).then_some(self.before);
        }
        Some(self.ends[(index.min(last) - self.first) as usize])
    }

    fn span_ms(&self) -> u64 {
        (self.capacity as u64 - 1) * self.bucket_ms
    }
}

/// Good/total counts in two tiers.
#[derive(Clone, Debug)]
pub struct Series {
    fine: Tier,
    coarse: Tier,
    running: Counts,
    /// When the first counts came: windows reaching further back hold fewer events.
    started_ms: Option<u64>,
}

impl Series {
    /// Fine buckets of `fine_ms` over `fine_span_ms`, coarse ones of `coarse_ms` over `span_ms`.
    pub fn new(fine_ms: u64, fine_span_ms: u64, coarse_ms: u64, span_ms: u64) -> Self {
        Series {
            fine: Tier::new(fine_ms, fine_span_ms),
            coarse: Tier::new(coarse_ms, span_ms),
            running: Counts::default(),
            started_ms: None,
        }
    }

    pub fn add(&mut self, at_ms: u64, good: u64, total: u64) {
        self.running.good += good.min(total);
        self.running.total += total;
        self.started_ms.get_or_insert(at_ms);
        self.fine.add(at_ms, self.running);
        self.coarse.add(at_ms, self.running);
    }

    /// Counts in the `window_ms` ending at `now_ms` (O(1)).
    pub fn sum(&self, now_ms: u64, window_ms: u64) -> Counts {
        let Some(started) = self.started_ms else {
            return Counts::default();
        };
        let end = self.running_at(now_ms).unwrap_or(self.running);
        match now_ms.checked_sub(window_ms) {
            Some(from) if from >= started => {}
            // The window reaches back before the first counts: all of them.
            _ => return end,
        }
        let from = now_ms - window_ms;
        // The window is the buckets after the one holding `from`: subtract the running totals
        // at the end of that bucket.
        let tier = if window_ms <= self.fine.span_ms() {
            &self.fine
        } else {
            &self.coarse
        };
        end.minus(tier.running_at(from).unwrap_or_default())
    }

    fn running_at(&self, now_ms: u64) -> Option<Counts> {
        self.fine.running_at(now_ms)
    }

    /// All counts since the series began.
    pub fn total(&self) -> Counts {
        self.running
    }

    /// Buckets kept, for memory accounting.
    pub fn buckets(&self) -> usize {
        self.fine.ends.len() + self.coarse.ends.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;

    #[test]
    fn window_sums_are_exact_within_the_fine_tier() {
        let mut s = Series::new(MIN, 6 * HOUR, HOUR, 30 * 24 * HOUR);
        // One request a minute for 10 hours, every tenth one bad.
        for m in 0..600 {
            s.add(m * MIN, u64::from(m % 10 != 0), 1);
        }
        let now = 599 * MIN;
        assert_eq!(s.sum(now, 5 * MIN), Counts { good: 5, total: 5 });
        assert_eq!(s.sum(now, 10 * MIN), Counts { good: 9, total: 10 });
        assert_eq!(s.sum(now, HOUR), Counts { good: 54, total: 60 });
        assert_eq!(s.sum(now, 6 * HOUR), Counts { good: 324, total: 360 });
        // Longer than the fine tier: on the coarse tier, whole hours.
        let day = s.sum(now, 24 * HOUR);
        assert_eq!(day, Counts { good: 540, total: 600 }, "everything since the start");
        let eight = s.sum(now, 8 * HOUR);
        assert!((480..=540).contains(&eight.total), "{eight:?}");
        assert!(s.buckets() <= 362 + 11);
    }

    #[test]
    fn gaps_carry_totals_and_old_buckets_go() {
        let mut s = Series::new(MIN, 10 * MIN, HOUR, 2 * HOUR);
        s.add(0, 1, 2);
        s.add(30 * MIN, 3, 3);
        assert_eq!(s.sum(30 * MIN, 5 * MIN), Counts { good: 3, total: 3 });
        assert_eq!(s.sum(30 * MIN, 10 * MIN), Counts { good: 3, total: 3 });
        assert_eq!(s.total(), Counts { good: 4, total: 5 });
        // Far ahead: nothing in the recent window; buckets stay bounded.
        s.add(100 * HOUR, 0, 1);
        assert_eq!(s.sum(100 * HOUR, 5 * MIN), Counts { good: 0, total: 1 });
        assert!(s.buckets() <= 11 + 3);
        // A late count lands in the newest bucket.
        s.add(50 * HOUR, 1, 1);
        assert_eq!(s.sum(100 * HOUR, 5 * MIN), Counts { good: 1, total: 2 });
    }
}
