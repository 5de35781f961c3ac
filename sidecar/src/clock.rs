//! Coarse clocks, for timestamps taken on every request that need only milliseconds or
//! seconds: how long a pooled upstream connection has been idle, the `date` header.
//!
//! The kernel keeps the coarse clocks as of its last tick (1-10 ms ago, by its HZ); reading
//! one is a load from the vDSO page, where the precise clocks also read and scale the CPU's
//! time stamp counter (about 35 ns a read in a VM: the sidecar read them 11 times a request,
//! 2 % of its CPU). Latencies, deadlines and connection activity stay on tokio's precise
//! clock: a watcher sleeping on one clock and comparing stamps of the other would wake
//! before the stamps say it is time, and tests pause tokio's clock.

/// Milliseconds on the monotonic clock, as of the last tick.
pub fn monotonic_ms() -> u64 {
    read(MONOTONIC) / 1_000_000
}

/// Seconds since the Unix epoch, as of the last tick.
pub fn unix_secs() -> u64 {
    read(REALTIME) / 1_000_000_000
}

#[cfg(target_os = "linux")]
const MONOTONIC: libc::clockid_t = libc::CLOCK_MONOTONIC_COARSE;
#[cfg(target_os = "linux")]
const REALTIME: libc::clockid_t = libc::CLOCK_REALTIME_COARSE;
#[cfg(not(target_os = "linux"))]
const MONOTONIC: libc::clockid_t = libc::CLOCK_MONOTONIC;
#[cfg(not(target_os = "linux"))]
const REALTIME: libc::clockid_t = libc::CLOCK_REALTIME;

/// Nanoseconds on `clock` (0 for a time before its epoch).
fn read(clock: libc::clockid_t) -> u64 {
    // SAFETY: an all-zero timespec is valid (plain integers, whatever padding a libc adds).
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid timespec to write; both clocks exist on every supported system.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime failed");
    let (secs, nanos) = (
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u64::try_from(ts.tv_nsec).unwrap_or(0),
    );
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    #[test]
    fn coarse_clocks_follow_the_precise_ones_within_a_tick() {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(unix_secs().abs_diff(unix) <= 1);
        let (t0, ms0) = (Instant::now(), monotonic_ms());
        std::thread::sleep(Duration::from_millis(50));
        let (waited, moved) = (t0.elapsed().as_millis() as u64, monotonic_ms() - ms0);
        assert!(moved.abs_diff(waited) <= 20, "coarse {moved} ms, precise {waited} ms");
    }
}
