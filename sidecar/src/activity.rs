//! Per-connection activity, for the two timeouts hyper cannot express on its own:
//!
//! - header read timeout: once the first byte of a request head arrives, the whole head must
//!   follow within the limit (slowloris). hyper's own timer also runs while a keep-alive
//!   connection sits idle, which would make it an idle timeout too, so it is off.
//! - idle timeout: a connection with no request in flight and no bytes moving is closed.
//!
//! The IO wrapper stamps reads and writes; the service marks requests in flight; one
//! watcher future per connection sleeps until the next deadline.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

const NONE: u64 = u64::MAX;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub struct Activity {
    start: Instant,
    last_io: AtomicU64,
    head_started: AtomicU64,
    in_flight: AtomicUsize,
    checked_preface: AtomicBool,
    h2: AtomicBool,
}

/// Why the watcher ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    HeaderTimeout,
    Idle,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
            checked_preface: AtomicBool::new(false),
            h2: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn on_read(&self, bytes: &[u8]) {
        if !self.checked_preface.swap(true, Relaxed) {
            let n = bytes.len().min(H2_PREFACE.len());
            self.h2.store(n > 0 && bytes[..n] == H2_PREFACE[..n], Relaxed);
        }
        // While a request is in flight, its end stamps the connection (`RequestGuard`), so
        // only the bytes moving between requests need the clock (here and in `wrote`).
        if self.in_flight.load(Relaxed) > 0 {
            return;
        }
        let now = self.now_ms();
        self.last_io.store(now, Relaxed);
        if self.head_started.load(Relaxed) == NONE {
            self.head_started.store(now, Relaxed);
        }
    }

    /// Stamp a successful write; pass the result through.
    fn wrote(&self, res: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = res
            && n > 0
            && self.in_flight.load(Relaxed) == 0
        {
            self.last_io.store(self.now_ms(), Relaxed);
        }
        res
    }

    /// Part of a request head is already buffered (read while the previous request was in
    /// flight): the header-read timeout runs from now.
    pub fn head_begun(&self) {
        if self.head_started.load(Relaxed) == NONE {
            self.head_started.store(self.now_ms(), Relaxed);
        }
    }

    /// A request head was parsed and handed to the service.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_started.store(NONE, Relaxed);
        RequestGuard(self.clone())
    }

    /// Resolves when the connection has outlived one of its timeouts.
    pub async fn expired(&self, header_timeout: Duration, idle_timeout: Duration) -> Expiry {
        let (header_ms, idle_ms) = (header_timeout.as_millis() as u64, idle_timeout.as_millis() as u64);
        loop {
            let now = self.now_ms();
            let (deadline, expiry) = if self.in_flight.load(Relaxed) > 0 {
                (now + idle_ms, None)
            } else {
                match self.head_started.load(Relaxed) {
                    started if started != NONE && !self.h2.load(Relaxed) => {
                        (started + header_ms, Some(Expiry::HeaderTimeout))
                    }
                    _ => (self.last_io.load(Relaxed) + idle_ms, Some(Expiry::Idle)),
                }
            };
            if let Some(expiry) = expiry.filter(|_| now >= deadline) {
                return expiry;
            }
            tokio::time::sleep_until(self.start + Duration::from_millis(deadline.max(now + 1))).await;
        }
    }
}

/// Marks one request in flight until dropped.
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // Stamped first: a watcher that sees no request in flight must see this request's end.
        self.0.last_io.store(self.0.now_ms(), Relaxed);
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// An IO stream that reports its reads and writes to an [`Activity`], and can give back bytes
/// already read from it (so hyper can take over a connection the sidecar began reading).
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    unread: Bytes,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked {
            inner,
            activity,
            unread: Bytes::new(),
        }
    }

    /// Read `bytes` again before anything new (they were stamped when first read).
    pub fn unread(&mut self, bytes: Bytes) {
        self.unread = bytes;
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res
            && buf.filled().len() > before
        {
            this.activity.on_read(&buf.filled()[before..]);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.wrote(Pin::new(&mut this.inner).poll_write(cx, data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity
            .wrote(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<T: crate::worker::Socket> crate::worker::Socket for Tracked<T> {
    fn fd(&self) -> std::os::fd::RawFd {
        self.inner.fd()
    }

    fn sent_by_batch(&mut self, result: &io::Result<usize>) {
        if let Ok(&n) = result.as_ref() {
            let _ = self.activity.wrote(Poll::Ready(Ok(n)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_given_back_are_read_first() {
        use tokio::io::AsyncReadExt;
        let mut io = Tracked::new(&b"HTTP/1.1\r\n"[..], Activity::new());
        io.unread(Bytes::from_static(b"GET / "));
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_request_head_expires_after_the_header_timeout() {
        let a = Activity::new();
        a.on_read(b"GET / HT");
        let expiry = a.expired(Duration::from_secs(10), Duration::from_secs(60)).await;
        assert_eq!(expiry, Expiry::HeaderTimeout);
        assert!(a.start.elapsed() >= Duration::from_secs(10) && a.start.elapsed() < Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_expires_after_the_idle_timeout() {
        let a = Activity::new();
        a.on_read(b"GET / HTTP/1.1\r\n\r\n");
        drop(a.request_started());
        let expiry = a.expired(Duration::from_secs(10), Duration::from_secs(60)).await;
        assert_eq!(expiry, Expiry::Idle);
        assert!(a.start.elapsed() >= Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_keep_the_connection_and_h2_skips_header_timeout() {
        let a = Activity::new();
        a.on_read(H2_PREFACE);
        let guard = a.request_started();
        let watcher = a.expired(Duration::from_secs(1), Duration::from_secs(5));
        tokio::pin!(watcher);
        assert!(
            tokio::time::timeout(Duration::from_secs(30), &mut watcher)
                .await
                .is_err(),
            "in flight: never expires"
        );
        drop(guard);
        a.on_read(b"\0\0\0\x04"); // an h2 frame between requests is no slow header
        assert_eq!(watcher.await, Expiry::Idle);
    }
}
