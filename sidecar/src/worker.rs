//! Which worker thread is running (each worker has its own event loop and connection pools),
//! the worker's timer pacing, its bunched writes: put off to the end of the event loop's
//! turn, then sent together (`batch`), and its polling before it sleeps (`idle_poll`).

mod batch;
mod idle_poll;

pub use idle_poll::poll_before_sleeping;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
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

/// Make this thread worker `i`, about to run its current-thread event loop.
pub(crate) fn enter(i: usize) {
    set_index(i);
    batch::enable();
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

/// `inner`, with its first write put off until the worker has run the other tasks ready now,
/// and then sent with theirs in one system call.
///
/// A worker's turn of its event loop wakes every connection with bytes to read; each one's
/// task reads, handles and writes in one go, so its write to the upstream (or the client) left
/// while the next connections were still being read. The peers then woke for each write
/// alone: behind the sidecar, wrk and the upstream blocked twice as often per request as behind
/// haproxy, whose loop receives everything first and sends after (bench/RESULTS.md §3). The
/// first write here is queued in the worker's batch (`batch`) and wakes its own task, which
/// goes to the back of the worker's run queue, behind the connections of the same turn; the
/// first of them to run again sends the whole batch in one `io_uring_enter`, so a peer woken by
/// one write finds the turn's others too, and cannot preempt the worker between them. (Where
/// io_uring is unavailable the first write is only put off, and the turn's writes go one
/// `send` each.) Only the first write waits: a long body's later writes go as they come.
/// Measured (RESULTS §3): putting writes off brought the peers' context switches per request to
/// haproxy's level and requests/s +4 %; sending them in one call cut the worker's involuntary
/// context switches per 1,000 requests from 30-78 to 4-8 (haproxy: 22-115), the peers' sleeps
/// by a third to a half, and requests/s by 3-4 % with one worker (ahead of both peers there).
pub fn bunched<W: Socket>(inner: W) -> Bunched<W> {
    Bunched {
        inner,
        first: First::Waiting,
    }
}

/// A stream `bunched` can write to: its socket, and what to note of a write sent for it.
pub trait Socket: AsyncWrite + Unpin {
    fn fd(&self) -> RawFd;

    /// A write went to the socket in a batch, past this stream's own `poll_write`.
    fn sent_by_batch(&mut self, _result: &io::Result<usize>) {}
}

impl Socket for tokio::net::TcpStream {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl Socket for tokio::net::tcp::WriteHalf<'_> {
    fn fd(&self) -> RawFd {
        self.as_ref().as_raw_fd()
    }
}

impl<S: Socket + ?Sized> Socket for &mut S {
    fn fd(&self) -> RawFd {
        (**self).fd()
    }

    fn sent_by_batch(&mut self, result: &io::Result<usize>) {
        (**self).sent_by_batch(result)
    }
}

/// See [`bunched`].
pub struct Bunched<W: Socket> {
    inner: W,
    first: First,
}

/// Where a bunched stream's first write stands.
enum First {
    /// Not asked for yet.
    Waiting,
    /// Queued in the turn's batch (`batch`) with this ticket and length, to be taken when the
    /// task runs again: `write_all` then asks again with the same bytes, as it must.
    Queued(u64, usize),
    /// Put off once and woken again, or written: writes go straight to the stream.
    Past,
}

impl<W: Socket> Bunched<W> {
    /// For the first write: queue it in the turn's batch (or, where there is none, only put it
    /// off) and wake the task again. `None` when `buf` is not the first write.
    fn first_write(&mut self, cx: &Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        match self.first {
            First::Past => None,
            First::Waiting => {
                idle_poll::work();
                self.first = match (buf.len() <= batch::MAX)
                    .then(|| batch::queue(self.inner.fd(), buf))
                    .flatten()
                {
                    Some(ticket) => First::Queued(ticket, buf.len()),
                    None => First::Past,
                };
                cx.waker().wake_by_ref();
                Some(Poll::Pending)
            }
            First::Queued(ticket, len) => {
                debug_assert_eq!(buf.len(), len, "a bunched write asked again with other bytes");
                self.first = First::Past;
                match batch::take(ticket) {
                    // The socket's buffer was full: nothing went, the stream waits for room.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    sent => {
                        self.inner.sent_by_batch(&sent);
                        Some(Poll::Ready(sent))
                    }
                }
            }
        }
    }
}

impl<W: Socket> Drop for Bunched<W> {
    fn drop(&mut self) {
        if let First::Queued(ticket, _) = self.first {
            batch::cancel(ticket);
        }
    }
}

impl<W: Socket> AsyncWrite for Bunched<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(first) = self.first_write(cx, buf) {
            return first;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

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

    impl Socket for Noted {
        fn fd(&self) -> RawFd {
            -1 // never written to: this test's thread does not batch
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

    /// Connected loopback sockets: (the side written, the side read).
    async fn pairs(n: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut pairs = (vec![], vec![]);
        for _ in 0..n {
            pairs.0.push(TcpStream::connect(addr).await.unwrap());
            pairs.1.push(listener.accept().await.unwrap().0);
        }
        pairs
    }

    fn io_uring_here() -> bool {
        io_uring::IoUring::new(2).is_ok()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_turns_first_writes_leave_in_one_batch() {
        batch::enable();
        let (writers, mut readers) = pairs(3).await;
        let before = batch::batches_sent();
        let tasks: Vec<_> = writers
            .into_iter()
            .enumerate()
            .map(|(i, mut w)| {
                tokio::spawn(async move {
                    bunched(&mut w)
                        .write_all(format!("answer {i}").as_bytes())
                        .await
                        .unwrap();
                    w
                })
            })
            .collect();
        let mut open = vec![];
        for t in tasks {
            open.push(t.await.unwrap());
        }
        // Without io_uring (a seccomp profile may deny it) they went one `send` each.
        let batches = if io_uring_here() { 1 } else { 0 };
        assert_eq!(batch::batches_sent() - before, batches);
        for (i, r) in readers.iter_mut().enumerate() {
            let mut got = [0; 8];
            r.read_exact(&mut got).await.unwrap();
            assert_eq!(got, format!("answer {i}").as_bytes());
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_dropped_while_queued_is_not_sent() {
        batch::enable();
        let (mut w, mut r) = pairs(1).await;
        let (mut w, mut r) = (w.remove(0), r.remove(0));
        {
            let mut first = bunched(&mut w);
            let mut write = std::pin::pin!(first.write_all(b"dropped "));
            assert!(
                futures_util::FutureExt::now_or_never(&mut write).is_none(),
                "queued, not sent"
            );
        }
        bunched(&mut w).write_all(b"kept").await.unwrap();
        drop(w);
        let mut got = vec![];
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"kept");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_socket_takes_the_rest_when_there_is_room() {
        batch::enable();
        let (mut w, mut r) = pairs(1).await;
        let (mut w, mut r) = (w.remove(0), r.remove(0));
        let mut filled = 0;
        loop {
            match w.try_write(&[7; 64 * 1024]) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let writer = tokio::spawn(async move { bunched(&mut w).write_all(b"after").await });
        let mut got = vec![0; filled + 5];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[filled..], b"after");
        writer.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batched_write_to_a_reset_connection_fails() {
        batch::enable();
        let (mut w, r) = pairs(1).await;
        let mut w = w.remove(0);
        // Closed with SO_LINGER 0: a reset, not a FIN.
        socket2::SockRef::from(&r[0])
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(r);
        let mut err = None;
        // The reset may land after a first write that the kernel still accepted.
        for _ in 0..2 {
            if let Err(e) = bunched(&mut w).write_all(b"to no one").await {
                err = Some(e);
                break;
            }
        }
        let kind = err.expect("a write to a reset connection fails").kind();
        assert!(
            matches!(kind, io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
            "{kind:?}"
        );
    }
}
