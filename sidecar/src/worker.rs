//! Which worker thread is running (each worker has its own event loop and connection pools),
//! the worker's timer pacing, and its bunched writes.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;

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

/// `inner`, with its first write put off until the worker has run the other tasks ready now.
///
/// A worker's turn of its event loop wakes every connection with bytes to read; each one's
/// task reads, handles and writes in one go, so its write to the upstream (or the client) left
/// while the next connections were still being read. The peers then woke for each write
/// alone: behind the sidecar, wrk and the upstream blocked twice as often per request as behind
/// haproxy, whose loop receives everything first and sends after (bench/RESULTS.md §3). The
/// first write here wakes its own task and yields: the task goes to the back of the worker's
/// run queue, behind the connections of the same turn, and writes when they have read and
/// handled theirs (normally no driver poll in between, unlike `tokio::task::yield_now`, which
/// waits for one), so a turn's writes leave together. A worker with nothing else ready writes
/// on its next poll. Only the first write waits: a long body's later writes go as they come.
/// Measured (RESULTS §3): it brought the peers' context switches to haproxy's level on one
/// machine; on requests/s it was neutral (-8.6 % to +3.8 % in eight comparisons) while the
/// benchmark ran the sidecar in wrk's session, and +4 % in the one fair comparison since.
pub fn bunched<W>(inner: W) -> Bunched<W> {
    Bunched { inner, yielded: false }
}

/// See [`bunched`].
pub struct Bunched<W> {
    inner: W,
    yielded: bool,
}

impl<W> Bunched<W> {
    /// Whether this is the first write, put off once: the task is already woken again.
    fn put_off(&mut self, cx: &Context<'_>) -> bool {
        if self.yielded {
            return false;
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        true
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Bunched<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.put_off(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.put_off(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::AsyncWriteExt;

    use super::*;

    type Log = Arc<Mutex<Vec<String>>>;

    /// A writer that notes each write in a shared log.
    struct Noted(Log, usize);

    impl AsyncWrite for Noted {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().push(format!("write {}", self.1));
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Three connections ready in one turn of a worker's scheduler (current-thread, tasks
    /// spawned as the server spawns them): each handles its request, then writes.
    async fn turn(bunch: bool) -> Vec<String> {
        let log: Log = Arc::default();
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    log.lock().unwrap().push(format!("handle {i}"));
                    let mut w = Noted(log.clone(), i);
                    if bunch {
                        bunched(&mut w).write_all(b"answer").await.unwrap();
                    } else {
                        w.write_all(b"answer").await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_turns_writes_leave_after_all_its_handling() {
        assert_eq!(
            turn(false).await,
            ["handle 0", "write 0", "handle 1", "write 1", "handle 2", "write 2"]
        );
        assert_eq!(
            turn(true).await,
            ["handle 0", "handle 1", "handle 2", "write 0", "write 1", "write 2"]
        );
    }
}
