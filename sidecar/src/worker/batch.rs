//! The first writes of one turn of a worker's event loop, sent together in one system call.
//!
//! `worker::bunched` puts each message's first write off until the turn's other connections
//! have run; they then went out one `send` each, and a peer woken by the first of them could
//! preempt the worker there (on a shared CPU) before the rest were sent, to find one message
//! where there would soon be many. Queued here instead, the turn's writes go to the kernel in
//! one `io_uring_enter`, which sends them all before it returns to the worker, and so before
//! any peer it woke can run on the worker's CPU.
//!
//! io_uring is used as a batch of plain non-blocking sends, nothing more: each send carries
//! `MSG_DONTWAIT`, so the kernel completes it inline (a full socket buffer answers `EAGAIN`
//! instead of arming a poll), every completion is reaped before the call returns, and no buffer
//! or descriptor is held by the kernel afterwards. Where io_uring is unavailable (an old
//! kernel, a seccomp profile that denies it) `queue` says so and writes go the usual way.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;

/// Writes longer than this go the usual way (a head with a short body is far smaller), so a
/// turn's copies stay small.
pub const MAX: usize = 4 * 1024;

/// Buffers kept for the next turn's writes: as many as a busy turn queues, each no larger than
/// an ordinary head with a short body (at most 128 KiB a worker).
const SPARE: usize = 64;
const SPARE_CAPACITY: usize = 2 * 1024;

/// Batch this thread's writes from now on, if io_uring is available. Only for a thread that
/// runs one current-thread event loop: a write is queued in one task poll and taken in a later
/// one, on the same thread.
pub fn enable() {
    BATCH.with_borrow_mut(|b| b.ring = ring::Ring::new());
}

/// Queue `data` for the socket `fd`, to be sent with the turn's other queued writes; the
/// ticket to collect its result with, or `None` when this thread does not batch.
pub fn queue(fd: RawFd, data: &[u8]) -> Option<u64> {
    BATCH.with_borrow_mut(|b| b.queue(fd, data))
}

/// The result of a queued write (sending the turn's batch first if it has not gone): the
/// bytes sent, `WouldBlock` when the socket's buffer was full (nothing was sent), or the error.
pub fn take(ticket: u64) -> io::Result<usize> {
    BATCH.with_borrow_mut(|b| b.take(ticket))
}

/// How many batches this thread has sent (each one system call).
#[cfg(test)]
pub fn batches_sent() -> u64 {
    BATCH.with_borrow(|b| b.batches)
}

/// Forget a queued write whose writer is gone: not sent if the batch has not gone yet.
pub fn cancel(ticket: u64) {
    // A thread being torn down has no batch left to cancel from.
    let _ = BATCH.try_with(|b| b.borrow_mut().cancel(ticket));
}

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::new(Batch::default());
}

struct Queued {
    ticket: u64,
    fd: RawFd,
    data: Vec<u8>,
}

#[derive(Default)]
struct Batch {
    /// The ring of a thread that batches (`enable`); `None` elsewhere, where io_uring is
    /// unavailable, or after it failed.
    ring: Option<ring::Ring>,
    queued: Vec<Queued>,
    /// Results of sent writes not yet taken: (ticket, bytes sent or `-errno`).
    done: Vec<(u64, i32)>,
    /// Buffers of sent writes, for the next ones.
    spare: Vec<Vec<u8>>,
    next: u64,
    /// Batches sent, for tests.
    batches: u64,
}

impl Batch {
    fn queue(&mut self, fd: RawFd, data: &[u8]) -> Option<u64> {
        self.ring.as_ref()?;
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.extend_from_slice(data);
        self.next += 1;
        self.queued.push(Queued {
            ticket: self.next,
            fd,
            data: buf,
        });
        Some(self.next)
    }

    fn take(&mut self, ticket: u64) -> io::Result<usize> {
        if self.queued.iter().any(|q| q.ticket == ticket) {
            self.send();
        }
        let at = self.done.iter().position(|(t, _)| *t == ticket);
        let (_, res) = self
            .done
            .swap_remove(at.expect("a queued write has a result once sent"));
        if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            Ok(res as usize)
        }
    }

    fn cancel(&mut self, ticket: u64) {
        if let Some(at) = self.queued.iter().position(|q| q.ticket == ticket) {
            let gone = self.queued.swap_remove(at);
            self.recycle(gone.data);
        }
        self.done.retain(|(t, _)| *t != ticket);
    }

    /// Send everything queued, and note each result.
    fn send(&mut self) {
        let queued = std::mem::take(&mut self.queued);
        let Some(ring) = self.ring.as_mut() else {
            unreachable!("writes are queued only with a ring")
        };
        let failed = queued.chunks(ring::ENTRIES).enumerate().find_map(|(i, chunk)| {
            self.batches += 1;
            ring.send_all(chunk, &mut self.done).err().map(|e| (i, e))
        });
        if let Some((i, e)) = failed {
            // The writes of that chunk without a result did not go (entries not taken die with
            // the ring, dropped here): they and the later chunks fail, their connections close
            // rather than lose their place, and this thread writes the usual way from now on.
            tracing::warn!(error = %e, "io_uring failed: a turn's writes go one system call each");
            self.ring = None;
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            let unsent: Vec<(u64, i32)> = queued[i * ring::ENTRIES..]
                .iter()
                .filter(|q| !self.done.iter().any(|(t, _)| *t == q.ticket))
                .map(|q| (q.ticket, -errno))
                .collect();
            self.done.extend(unsent);
        }
        for q in queued {
            self.recycle(q.data);
        }
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < SPARE && buf.capacity() <= SPARE_CAPACITY {
            buf.clear();
            self.spare.push(buf);
        }
    }
}

#[cfg(target_os = "linux")]
mod ring {
    use io_uring::{IoUring, opcode, types};

    use super::Queued;

    /// Sends per system call; a longer batch goes in several.
    pub const ENTRIES: usize = 128;

    pub struct Ring(IoUring);

    impl Ring {
        pub fn new() -> Option<Ring> {
            // SUBMIT_ALL: a send that fails at once does not hold back the ones after it.
            match IoUring::builder().setup_submit_all().build(ENTRIES as u32) {
                Ok(ring) => Some(Ring(ring)),
                Err(e) => {
                    tracing::info!(error = %e, "io_uring unavailable: a turn's writes go one system call each");
                    None
                }
            }
        }

        /// Send `chunk` (at most `ENTRIES` writes) in one call; a result for each in `done`.
        /// An error comes before the kernel took the chunk (io_uring_enter reports a failure only
        /// when it submitted nothing; a wait it cut short is waited again).
        pub fn send_all(&mut self, chunk: &[Queued], done: &mut Vec<(u64, i32)>) -> std::io::Result<()> {
            let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
            {
                let mut sq = self.0.submission();
                for q in chunk {
                    let len = u32::try_from(q.data.len()).expect("batched writes are small");
                    let send = opcode::Send::new(types::Fd(q.fd), q.data.as_ptr(), len)
                        .flags(flags)
                        .build()
                        .user_data(q.ticket);
                    // SAFETY: `q.data` and `q.fd` outlive the send: it completes within the
                    // calls below (MSG_DONTWAIT), which reap every completion before returning.
                    unsafe { sq.push(&send) }.expect("a chunk fits the submission queue");
                }
            }
            let mut reaped = 0;
            while reaped < chunk.len() {
                match self.0.submit_and_wait(chunk.len() - reaped) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                let before = done.len();
                done.extend(self.0.completion().map(|c| (c.user_data(), c.result())));
                reaped += done.len() - before;
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod ring {
    use super::Queued;

    pub const ENTRIES: usize = 128;

    pub struct Ring;

    impl Ring {
        pub fn new() -> Option<Ring> {
            None
        }

        pub fn send_all(&mut self, _: &[Queued], _: &mut Vec<(u64, i32)>) -> std::io::Result<()> {
            unreachable!("no ring is made here")
        }
    }
}
