//! Stress in ballast's own process: busy threads, or memory allocated and written to (so it
//! is resident, not just reserved). A [`StressHandle`] ends its stress when ended or dropped,
//! so no stress outlives the experiment that started it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::action::Stress;

pub struct StressHandle {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl StressHandle {
    /// Start `stress`; blocks while memory is allocated and written (call it off the runtime).
    pub fn start(stress: Stress) -> Result<StressHandle, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handle = StressHandle {
            stop: stop.clone(),
            threads: Vec::new(),
        };
        match stress {
            Stress::Cpu { threads } => {
                for i in 0..threads {
                    let stop = stop.clone();
                    let t = std::thread::Builder::new()
                        .name(format!("chaos-cpu-{i}"))
                        .spawn(move || spin(&stop))
                        .map_err(|e| format!("cannot start a CPU stress thread: {e}"))?;
                    handle.threads.push(t);
                }
            }
            Stress::Memory { bytes } => {
                let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
                let t = std::thread::Builder::new()
                    .name("chaos-memory".into())
                    .spawn(move || hold(bytes, &stop, ready_tx))
                    .map_err(|e| format!("cannot start the memory stress thread: {e}"))?;
                handle.threads.push(t);
                ready_rx
                    .recv()
                    .map_err(|_| "the memory stress thread died".to_owned())??;
            }
        }
        Ok(handle)
    }

    /// Stop and wait for the threads (memory is freed as its thread ends).
    pub fn end(mut self) {
        self.stop_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    fn stop_all(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.threads {
            t.thread().unpark();
        }
    }
}

impl Drop for StressHandle {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn spin(stop: &AtomicBool) {
    let mut x: u64 = 1;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
}

fn hold(bytes: u64, stop: &AtomicBool, ready: std::sync::mpsc::SyncSender<Result<(), String>>) {
    let mut memory: Vec<u8> = Vec::new();
    if let Err(e) = memory.try_reserve_exact(bytes as usize) {
        let _ = ready.send(Err(format!("cannot allocate {bytes} bytes: {e}")));
        return;
    }
    // Written, so every page is resident (one memset, fast in debug builds too).
    // SAFETY: the capacity was reserved above and every byte is written before the length
    // covers it.
    unsafe {
        std::ptr::write_bytes(memory.as_mut_ptr(), 0xa5, bytes as usize);
        memory.set_len(bytes as usize);
    }
    std::hint::black_box(&memory);
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(Duration::from_millis(200));
    }
    drop(memory);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's resident memory in KiB, from /proc.
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter(|t| {
                let comm = std::fs::read_to_string(t.as_ref().unwrap().path().join("comm")).unwrap_or_default();
                comm.starts_with(prefix)
            })
            .count()
    }

    /// The CPU time (utime + stime, in clock ticks) of this process's threads named `prefix…`.
    fn cpu_ticks_of(prefix: &str) -> u64 {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| {
                let dir = t.unwrap().path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                if !comm.starts_with(prefix) {
                    return None;
                }
                let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                let after = stat.rsplit(") ").next()?;
                let fields: Vec<&str> = after.split_whitespace().collect();
                Some(fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?)
            })
            .sum()
    }

    fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "{what} did not happen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn cpu_stress_spins_until_ended() {
        let h = StressHandle::start(Stress::Cpu { threads: 2 }).unwrap();
        // A thread names itself once it runs.
        eventually("two named stress threads", || threads_named("chaos-cpu") == 2);
        eventually("the stress threads using CPU", || cpu_ticks_of("chaos-cpu") >= 20);
        h.end();
        assert_eq!(threads_named("chaos-cpu"), 0, "ended and joined");

        let dropped = StressHandle::start(Stress::Cpu { threads: 1 }).unwrap();
        drop(dropped);
        eventually("a dropped stress ending", || threads_named("chaos-cpu") == 0);
    }

    #[test]
    fn memory_stress_holds_resident_memory_until_ended() {
        let before = rss_kib();
        let h = StressHandle::start(Stress::Memory { bytes: 64 << 20 }).unwrap();
        let during = rss_kib();
        assert!(during >= before + 60 * 1024, "{before} KiB, then {during} KiB");
        h.end();
        let after = rss_kib();
        assert!(after + 60 * 1024 <= during, "{during} KiB, then {after} KiB");
        let too_much = StressHandle::start(Stress::Memory { bytes: u64::MAX / 2 });
        assert!(too_much.err().unwrap().starts_with("cannot allocate"));
    }
}
