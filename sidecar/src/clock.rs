//! Coarse clocks, for the timestamps taken on every request that need only milliseconds or
//! seconds: connection activity (idle and header-read timeouts), how long a pooled upstream
//! connection has been idle, the `date` header.
//!
//! The kernel keeps the coarse clocks as of its last tick (1-4 ms ago); reading one is a load
//! from the vDSO page, where the precise clocks also read and scale the CPU's time stamp
//! counter (about 35 ns a read in a VM: the sidecar read them 11 times a request, 2 % of its
//! CPU). Latencies and deadlines stay on the precise clocks (tokio's, which tests can pause).

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

/// Nanoseconds on `clock`.
fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write; both clocks exist on every supported system.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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
