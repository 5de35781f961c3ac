//! Polling a little before sleeping: when the CPUs are contended, a worker that has just had
//! work keeps looking for more for a short window before it sleeps in `epoll_wait`, and gives
//! its CPU to any other thread that wants it meanwhile (`sched_yield`).
//!
//! A worker that sleeps leaves its CPU idle, and whoever wakes it pays for that: the wake-up
//! and, when the CPU was idle, an interrupt to another CPU (in a VM, an exit to the hypervisor
//! on the sender's side). Where threads outnumber CPUs, there is worse: the kernel does not pull
//! waiting threads to a CPU whose idle spells are as short as a worker's (`newidle` balancing is
//! skipped below `sched_migration_cost`, 0.5 ms), so that CPU stands idle while the other has
//! threads waiting. With two workers sharing two CPUs with the client and the upstream
//! (bench/RESULTS.md §3) each worker waited for a CPU 52 % of the time, the workers slept 65-71
//! times per 1,000 requests, and a CPU stood idle 5-17 % of the time, mostly with threads
//! waiting on the other; behind haproxy, whose threads are preempted rather than sleep, 1-4 %.
//! Polling for up to 100 µs with the CPU yielded: +7 to +11 % requests/s there against the
//! same build with polling off (three runs of 8-10 rounds); with one worker, no change.
//! Polling without yielding lost (-3 % at 30 µs, -7 % at 100 µs): the poller took its share of
//! the CPU from the very threads it was waiting for.
//!
//! Only under contention: polling is for a worker that waited for a CPU at least a third of
//! the time since its scheduler statistics were last read, at least 10 ms before
//! (`/proc/thread-self/schedstat`). A sidecar with CPU to spare, even a busy one, sleeps as
//! before and spends no CPU on polling (a pod's CPU quota would pay for it; the time a quota
//! throttles is not counted as waiting); where the file is missing, it never polls. Time spent
//! yielded to others counts as waiting, so polling goes on while others want the CPU; but a
//! round of polling that took the whole window (another thread held the CPU) ends it: asleep,
//! the worker is woken sooner (a waking thread may preempt the one running; a yielded one
//! waits for its turn).
//!
//! The window adapts, as the kernel's guest halt-polling (`cpuidle-haltpoll`) sizes its own. It
//! starts at zero. When work comes after the worker stopped polling, the gap since the last
//! work it saw decides: within `max`, a longer window would have caught it, and the window
//! doubles (from 10 µs, up to `max`); beyond `max`, the polling was waste, and the window
//! halves (to zero below 10 µs). A worker whose work comes further apart does not poll at all
//! (`[runtime] idle_poll`, 100 µs by default, "0s" off).

use std::cell::Cell;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// The window's first step up from zero, and the size below which it drops to zero.
const START: Duration = Duration::from_micros(10);

/// A connection of this worker has work in hand (it is writing): restart the poller's window,
/// or wake the poller if it sleeps.
pub fn work() {
    WORK.with(|w| {
        w.came.set(true);
        if let Some(poller) = w.poller.take() {
            poller.wake();
        }
    });
}

thread_local! {
    static WORK: Signal = const {
        Signal {
            came: Cell::new(false),
            poller: Cell::new(None),
        }
    };
}

struct Signal {
    came: Cell<bool>,
    poller: Cell<Option<Waker>>,
}

fn came() -> bool {
    WORK.with(|w| w.came.replace(false))
}

/// This worker's poller: run beside its connections on its current-thread runtime, for as
/// long as the worker runs.
pub async fn poll_before_sleeping(max: Duration) {
    if max.is_zero() {
        return;
    }
    let Some(mut contention) = Contention::of_this_thread() else {
        tracing::debug!("no /proc/thread-self/schedstat: a worker sleeps without polling first");
        return;
    };
    poll_while(max, |now| contention.high(now)).await
}

/// Poll after work (within the window) whenever `contended` says so. Each `yield_now` lets the
/// runtime look at its sockets (an `epoll_wait` without timeout) and run the connections that
/// woke, before the poller's turn comes again.
async fn poll_while(max: Duration, mut contended: impl FnMut(Instant) -> bool) {
    let mut window = Window::new(max);
    let mut last_work = Instant::now();
    loop {
        std::future::poll_fn(|cx| {
            if came() {
                return Poll::Ready(());
            }
            WORK.with(|w| w.poller.set(Some(cx.waker().clone())));
            Poll::Pending
        })
        .await;
        let now = Instant::now();
        window.after_gap(now - last_work);
        last_work = now;
        // Without contention (or with an empty window) the first round ends it, before any yield.
        let mut last_round = now;
        loop {
            let now = Instant::now();
            if came() {
                last_work = now;
            } else if now - last_work >= window.size || now - last_round >= window.size || !contended(now) {
                // The window is over, or a round without work took all of it: the worker was
                // kept off its CPU by another thread, and asleep it would be woken sooner
                // (a waking thread may preempt; a yielded one waits its turn).
                break;
            }
            last_round = now;
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
    }
}

/// How long to poll, grown and shrunk by the gaps between a worker's work.
#[derive(Debug)]
struct Window {
    size: Duration,
    max: Duration,
}

impl Window {
    fn new(max: Duration) -> Self {
        Window {
            size: Duration::ZERO,
            max,
        }
    }

    /// Work came `gap` after the last work, while the worker was not polling.
    fn after_gap(&mut self, gap: Duration) {
        self.size = if gap <= self.max {
            (self.size * 2).clamp(START, self.max)
        } else if self.size / 2 < START {
            Duration::ZERO
        } else {
            self.size / 2
        };
    }
}

/// How much of the time this thread waited for a CPU while it was runnable, read from the
/// scheduler's statistics at most once a period.
struct Contention {
    schedstat: std::fs::File,
    /// When it was last read, and the thread's total wait then.
    at: Instant,
    waited: Duration,
    high: bool,
}

impl Contention {
    /// Judged over this long; a worker waits for the CPU in bursts of a few milliseconds.
    const PERIOD: Duration = Duration::from_millis(10);

    fn of_this_thread() -> Option<Contention> {
        let schedstat = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
        let waited = waited(&schedstat)?;
        Some(Contention {
            schedstat,
            at: Instant::now(),
            waited,
            high: false,
        })
    }

    /// Whether the thread waited for a CPU at least a third of the time between the last two
    /// readings (taken at least a period apart).
    fn high(&mut self, now: Instant) -> bool {
        let elapsed = now - self.at;
        if elapsed >= Self::PERIOD
            && let Some(waited) = waited(&self.schedstat)
        {
            self.high = (waited.saturating_sub(self.waited)) * 3 >= elapsed;
            (self.at, self.waited) = (now, waited);
        }
        self.high
    }
}

/// The thread's total time waiting on a run queue: the second field of its `schedstat`
/// (`run_ns wait_ns timeslices`).
fn waited(schedstat: &std::fs::File) -> Option<Duration> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 96];
    let n = schedstat.read_at(&mut buf, 0).ok()?;
    let ns = std::str::from_utf8(&buf[..n])
        .ok()?
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Duration::from_nanos(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_grows_while_work_comes_within_max_and_shrinks_to_zero_when_it_does_not() {
        let mut w = Window::new(Duration::from_micros(100));
        assert_eq!(w.size, Duration::ZERO, "a worker starts without polling");
        let mut sizes = |gap: Duration| -> Vec<u128> {
            (0..5)
                .map(|_| {
                    w.after_gap(gap);
                    w.size.as_micros()
                })
                .collect()
        };
        assert_eq!(
            sizes(Duration::from_micros(60)),
            [10, 20, 40, 80, 100],
            "doubling from 10 µs, up to max"
        );
        assert_eq!(
            sizes(Duration::from_micros(100)),
            [100; 5],
            "a gap of max would have been caught"
        );
        assert_eq!(
            sizes(Duration::from_millis(5)),
            [50, 25, 12, 0, 0],
            "halving, then off below 10 µs"
        );
    }

    /// Whether this thread's poller is asleep, waiting for work (rather than polling).
    fn asleep() -> bool {
        WORK.with(|w| {
            let poller = w.poller.take();
            let asleep = poller.is_some();
            w.poller.set(poller);
            asleep
        })
    }

    /// Let the tasks spawned on this current-thread runtime run a few turns.
    async fn turns() {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_worker_keeps_polling_after_its_work_then_sleeps() {
        let max = Duration::from_millis(200);
        tokio::spawn(poll_while(max, |_| true));
        turns().await;
        assert!(asleep(), "without work the poller sleeps");
        // Work every 20 ms, within max: each time the poller has slept when the work comes,
        // and its window doubles from 10 µs until it spans the gap (20.48 ms).
        for _ in 0..14 {
            work();
            turns().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        work();
        turns().await;
        assert!(!asleep(), "right after work, a busy worker is still polling");
        std::thread::sleep(max + Duration::from_millis(10));
        turns().await;
        assert!(asleep(), "past its window the poller sleeps");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_worker_whose_work_is_further_apart_than_max_does_not_poll() {
        tokio::spawn(poll_while(Duration::from_micros(100), |_| true));
        turns().await;
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(2));
            work();
            turns().await;
            assert!(asleep(), "asleep again at once after each piece of work");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_worker_with_cpu_to_spare_does_not_poll() {
        tokio::spawn(poll_while(Duration::from_millis(50), |_| false));
        for _ in 0..12 {
            work();
            turns().await;
            assert!(asleep(), "no contention: asleep again at once");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_max_of_zero_turns_polling_off() {
        let off = tokio::time::timeout(Duration::from_secs(5), poll_before_sleeping(Duration::ZERO));
        assert!(off.await.is_ok(), "the poller ends at once");
    }

    /// Pin the calling thread to `cpu`.
    #[cfg(target_os = "linux")]
    fn pin_to(cpu: usize) {
        // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it; the call only
        // reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set), 0);
        }
    }

    /// The first CPU this thread may run on.
    #[cfg(target_os = "linux")]
    fn first_allowed_cpu() -> usize {
        // SAFETY: sched_getaffinity fills the set it is given; CPU_ISSET reads inside it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set), 0);
            (0..libc::CPU_SETSIZE as usize)
                .find(|&c| libc::CPU_ISSET(c, &set))
                .expect("some CPU")
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_sharing_its_cpu_with_busy_threads_sees_contention() {
        // Three threads that never sleep, on one CPU: each waits two thirds of the time.
        let cpu = first_allowed_cpu();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    pin_to(cpu);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        pin_to(cpu);
        let mut contention = Contention::of_this_thread().expect("Linux has schedstat");
        let start = Instant::now();
        while start.elapsed() < Contention::PERIOD * 10 {
            std::hint::spin_loop();
        }
        let high = contention.high(Instant::now());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinners.into_iter().for_each(|s| s.join().unwrap());
        assert!(high, "waited at least a third of the time");
    }

    #[test]
    fn the_wait_is_the_second_field_of_schedstat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schedstat");
        std::fs::write(&path, "123456 7890123 42\n").unwrap();
        let waited = waited(&std::fs::File::open(path).unwrap());
        assert_eq!(waited, Some(Duration::from_nanos(7_890_123)));
    }
}
