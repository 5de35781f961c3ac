//! The run's seconds. They count from the load's start (the moment its clock starts, as the
//! load generator tells it; without `[load]`, from when the runner starts watching), so the
//! client's rows, the sidecar's and the SLOs' of one second carry the same `second` and the
//! same `at_ms` (the second's start: origin + second × 1000), as docs/run-folder.md says.
//!
//! The runner steps once a second on ticks anchored at the origin: the tick due at
//! origin + k s closes second k − 1 (its scrape's window is that second), however late it
//! runs; a tick missed altogether leaves its second out. The last step, off the ticks (when
//! the load ends), closes the next second not closed yet, so no second is written twice.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

pub struct Clock {
    origin: Instant,
    origin_ms: u64,
    ticks: Interval,
    closed: Option<u64>,
}

impl Clock {
    /// Seconds from `origin` (an instant and the same moment in Unix milliseconds).
    pub fn starting(origin: Instant, origin_ms: u64) -> Clock {
        let mut ticks = tokio::time::interval_at(origin + Duration::from_secs(1), Duration::from_secs(1));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Clock {
            origin,
            origin_ms,
            ticks,
            closed: None,
        }
    }

    /// Wait for the next tick; the second it closes and that second's `at_ms`.
    pub async fn tick(&mut self) -> (u64, u64) {
        let due = self.ticks.tick().await;
        let k = (due - self.origin).as_secs_f64().round() as u64;
        self.closing(k.saturating_sub(1))
    }

    /// The last step: the next second not closed yet.
    pub fn last(&mut self) -> (u64, u64) {
        self.closing(self.closed.map_or(0, |c| c + 1))
    }

    fn closing(&mut self, second: u64) -> (u64, u64) {
        let second = self.closed.map_or(second, |c| second.max(c + 1));
        self.closed = Some(second);
        (second, self.origin_ms + second * 1000)
    }
}

/// Wait for `clock`'s next tick (the second it closes); never, while there is no clock yet.
pub async fn tick(clock: &mut Option<Clock>) -> (u64, u64) {
    match clock {
        Some(c) => c.tick().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_close_the_second_before_them_however_late() {
        let origin = Instant::now();
        let mut c = Clock::starting(origin, 1_000_000);
        assert_eq!(c.tick().await, (0, 1_000_000));
        assert_eq!(origin.elapsed(), Duration::from_secs(1));
        assert_eq!(c.tick().await, (1, 1_001_000));
        // A step that ran long: the tick due at 3 s comes late, and still closes second 2;
        // the one due at 4 s was missed and its second is left out.
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        assert_eq!(c.tick().await, (2, 1_002_000));
        assert_eq!(c.tick().await, (4, 1_004_000));
        assert_eq!(origin.elapsed(), Duration::from_secs(5));
        // The last step closes the next second.
        assert_eq!(c.last(), (5, 1_005_000));
    }
}
