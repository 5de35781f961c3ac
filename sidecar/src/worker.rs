//! Which worker thread is running (each worker has its own event loop and connection pools),
//! and the worker's timer pacing.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use crate::sidecar::Shared;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The current worker's index (0 outside workers, e.g. on the admin thread).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

pub(crate) fn set_index(i: usize) {
    INDEX.with(|c| c.set(i));
}

/// Keep a timer due sooner than any request's deadline, for as long as the worker runs.
///
/// tokio's time driver wakes itself with an eventfd write whenever a timer is registered that
/// is due before the wake-up it planned when it last parked. A worker that parked with no
/// request in flight planned none (or only far-off idle timeouts), so the first request after
/// every quiet moment paid that system call for its route timeout: one write per three
/// requests at 32 connections (strace). With this timer always due within half the shortest
/// request timeout, a request's timer is never the earliest, and registering it costs no
/// system call; the price is one wake-up per period (at most a second).
pub async fn pace_timers(shared: Arc<Shared>) {
    loop {
        let shortest = shared
            .config()
            .routes
            .iter()
            .flat_map(|r| [Some(r.timeout), r.retry.as_ref().and_then(|p| p.per_try_timeout)])
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(2));
        tokio::time::sleep((shortest / 2).clamp(Duration::from_millis(10), Duration::from_secs(1))).await;
    }
}
