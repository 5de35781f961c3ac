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

    /// A coarse reading lies between precise readings taken around it, give or take the
    /// kernel's tick (at most 10 ms); a slow machine only widens the window.
    #[test]
    fn coarse_clocks_read_the_precise_ones_as_of_the_last_tick() {
        const TICK_MS: u64 = 10;
        let before = read(libc::CLOCK_MONOTONIC) / 1_000_000;
        let coarse = monotonic_ms();
        let after = read(libc::CLOCK_MONOTONIC) / 1_000_000;
        assert!(
            coarse + TICK_MS >= before && coarse <= after,
            "{before} <= {coarse} <= {after}"
        );
        let before = read(libc::CLOCK_REALTIME) / 1_000_000_000;
        let coarse = unix_secs();
        let after = read(libc::CLOCK_REALTIME) / 1_000_000_000;
        assert!(
            coarse + 1 >= before && coarse <= after,
            "{before} <= {coarse} <= {after}"
        );
    }
}
