//! The run's seconds. They count from the load's start (the moment its clock starts, as the
//! load generator tells it; without `[load]`, from when the runner starts watching), so the
//! client's rows, the sidecar's and the SLOs' of one second carry the same `second` and the
//! same `at_ms` (the second's start: origin + second × 1000), as docs/run-folder.md says.
//!
//! The runner steps once a second on ticks anchored at the origin: the step near
//! origin + k s closes second k − 1 (its scrape's window is that second). A step off the
//! ticks (the last one, when the load ends) closes the next second not closed yet, so no
//! second is written twice.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

pub struct Clock {
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
            origin_ms,
            ticks,
            closed: None,
        }
    }

    /// The next tick.
    pub async fn tick(&mut self) {
        self.ticks.tick().await;
    }

    /// The second a step at `now_ms` closes, and that second's `at_ms`.
    pub fn close(&mut self, now_ms: u64) -> (u64, u64) {
        let ticks = (now_ms.saturating_sub(self.origin_ms) + 500) / 1000;
        let mut second = ticks.saturating_sub(1);
        if let Some(last) = self.closed {
            second = second.max(last + 1);
        }
        self.closed = Some(second);
        (second, self.origin_ms + second * 1000)
    }
}

/// Wait for `clock`'s next tick; never, while there is no clock yet.
pub async fn tick(clock: &mut Option<Clock>) {
    match clock {
        Some(c) => c.tick().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn steps_close_the_second_before_their_tick_each_once() {
        let origin = Instant::now();
        let mut c = Clock::starting(origin, 1_000_000);
        // Ticks come at origin + 1 s, 2 s, ...
        c.tick().await;
        assert_eq!(origin.elapsed(), Duration::from_secs(1));
        // A step a little late still closes second 0, stamped at its start.
        assert_eq!(c.close(1_001_030), (0, 1_000_000));
        assert_eq!(c.close(1_002_004), (1, 1_001_000));
        // A last step right after the tick closes the next second, not the same again.
        assert_eq!(c.close(1_002_090), (2, 1_002_000));
        // One after a missed tick closes the second it ends.
        assert_eq!(c.close(1_005_010), (4, 1_004_000));
    }
}
