//! Connections to endpoints, pooled per worker thread and endpoint.
//!
//! Each worker has its own pools (its event loop drives the connections it opened), so a pool
//! lock is never contended. HTTP/1.1 connections ([`h1::Conn`], driven by the request's own
//! task) are kept as a stack of idle connections: the most recently used is reused first (warm,
//! least likely closed by the peer), and a connection returns to the stack when its response
//! body ends. HTTP/2 clusters share one multiplexed hyper connection per endpoint and worker,
//! driven by a task of its own.
//!
//! A request without a body that a reused connection's endpoint closed before answering (it
//! closed the idle connection meanwhile) is sent again on a new connection; nothing else is
//! retried here (retries are a route policy).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::Upstream;
use super::h1;
use crate::body::Body;
use crate::clock;
use crate::config::Protocol;
use crate::worker;

/// Why a request could not be sent or answered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {address}: {source}")]
    Connect { address: String, source: std::io::Error },
    #[error("connect to {address} timed out after {after:?}")]
    ConnectTimeout { address: String, after: Duration },
    #[error("handshake with {address}: {source}")]
    Handshake { address: String, source: hyper::Error },
    #[error("{address}: {source}")]
    Exchange { address: String, source: hyper::Error },
    #[error("{address}: {source}")]
    Http1 { address: String, source: h1::Error },
    /// A new connection was needed and the cluster is at `max_connections` or `max_pending`.
    #[error("cluster at its {limit}")]
    Overflow { limit: &'static str },
}

pub(super) struct Pools {
    /// `[worker][endpoint]`.
    workers: Vec<Vec<Mutex<EndpointPool>>>,
}

#[derive(Default)]
struct EndpointPool {
    idle: Vec<Idle>,
    h2: Option<http2::SendRequest<Body>>,
}

struct Idle {
    conn: Box<h1::Conn>,
    /// When it went idle, in coarse milliseconds ([`crate::clock`]).
    since_ms: u64,
}

impl Pools {
    pub(super) fn new(workers: usize, endpoints: usize) -> Self {
        let per_worker = || (0..endpoints).map(|_| Mutex::new(EndpointPool::default())).collect();
        Pools {
            workers: (0..workers.max(1)).map(|_| per_worker()).collect(),
        }
    }

    fn get(&self, worker: usize, endpoint: usize) -> &Mutex<EndpointPool> {
        &self.workers[worker % self.workers.len()][endpoint]
    }
}

/// Where an HTTP/1.1 connection goes back to once its response body has ended.
pub struct Checkin {
    upstream: Arc<Upstream>,
    worker: usize,
    endpoint: usize,
}

impl Checkin {
    pub(super) fn release(self, conn: Box<h1::Conn>) {
        let cfg = &self.upstream.config;
        let mut pool = self.upstream.pools.get(self.worker, self.endpoint).lock().unwrap();
        let now_ms = clock::monotonic_ms();
        prune(&mut pool.idle, cfg.idle_timeout, now_ms);
        if pool.idle.len() < cfg.max_idle_per_endpoint {
            pool.idle.push(Idle { conn, since_ms: now_ms });
        }
    }
}

/// Drop idle connections past their idle timeout (the oldest sit at the bottom of the stack).
fn prune(idle: &mut Vec<Idle>, idle_timeout: Duration, now_ms: u64) {
    let fresh = idle
        .iter()
        .position(|i| u128::from(now_ms.saturating_sub(i.since_ms)) < idle_timeout.as_millis());
    idle.drain(..fresh.unwrap_or(idle.len()));
}

/// An upstream's answer body: from an HTTP/1.1 connection of the sidecar's own, or from
/// hyper's HTTP/2 client.
pub enum Received {
    Http1(h1::ResponseBody),
    Http2(Incoming),
}

impl Upstream {
    /// Send `req` to endpoint `i`. An HTTP/1.1 connection goes back to its pool when the
    /// response body ends (dropped before, it closes).
    ///
    /// Not an `async fn`, for the reason given at `proxy::forward`; for the same reason the
    /// paths most requests do not take are boxed: HTTP/2's and a new connection's futures
    /// are kilobytes.
    pub fn send(
        self: Arc<Self>,
        i: usize,
        req: Request<Body>,
    ) -> impl Future<Output = Result<Response<Received>, SendError>> + Send + 'static {
        let worker = worker::index();
        let (head, mut body) = req.into_parts();
        async move {
            if self.config.protocol == Protocol::Http2 {
                let req = Request::from_parts(head, body);
                return Ok(Box::pin(self.send_h2(worker, i, req)).await?.map(Received::Http2));
            }
            let resendable = body.is_end_stream();
            loop {
                let (conn, reused) = match self.idle_h1(worker, i) {
                    Some(conn) => (conn, true),
                    None => (Box::pin(self.connect_h1(i)).await?, false),
                };
                match conn.send(&head, body).await {
                    Ok(mut resp) => {
                        crate::http1::recycle(head.headers);
                        resp.body_mut().return_to(Checkin {
                            upstream: self,
                            worker,
                            endpoint: i,
                        });
                        return Ok(resp.map(Received::Http1));
                    }
                    Err(e) if reused && resendable && e.is_closed() => body = Body::empty(),
                    Err(source) => {
                        return Err(SendError::Http1 {
                            address: self.endpoints[i].address.to_string(),
                            source,
                        });
                    }
                }
            }
        }
    }

    async fn send_h2(
        self: &Arc<Self>,
        worker: usize,
        i: usize,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        loop {
            let pooled = self
                .pools
                .get(worker, i)
                .lock()
                .unwrap()
                .h2
                .clone()
                .filter(|s| !s.is_closed());
            let (mut sender, reused) = match pooled {
                Some(s) => (s, true),
                None => {
                    let s = self.connect_h2(i).await?;
                    self.pools.get(worker, i).lock().unwrap().h2 = Some(s.clone());
                    (s, false)
                }
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    self.pools.get(worker, i).lock().unwrap().h2 = None;
                    req = self.retry_or_fail(i, e, reused)?;
                }
            }
        }
    }

    /// A request never written on a reused connection goes out again on a fresh one.
    fn retry_or_fail(
        &self,
        i: usize,
        mut e: TrySendError<Request<Body>>,
        reused: bool,
    ) -> Result<Request<Body>, SendError> {
        match e.take_message() {
            Some(req) if reused => Ok(req),
            _ => Err(SendError::Exchange {
                address: self.endpoints[i].address.to_string(),
                source: e.into_error(),
            }),
        }
    }

    /// The most recently used idle connection that is still open.
    fn idle_h1(&self, worker: usize, i: usize) -> Option<Box<h1::Conn>> {
        let mut pool = self.pools.get(worker, i).lock().unwrap();
        prune(&mut pool.idle, self.config.idle_timeout, clock::monotonic_ms());
        while let Some(Idle { mut conn, .. }) = pool.idle.pop() {
            if conn.is_idle_open() {
                return Some(conn);
            }
        }
        None
    }

    async fn tcp(&self, i: usize) -> Result<TcpStream, SendError> {
        let address = &self.endpoints[i].address;
        let after = self.config.connect_timeout;
        let stream = tokio::time::timeout(after, TcpStream::connect(&**address))
            .await
            .map_err(|_| SendError::ConnectTimeout {
                address: address.to_string(),
                after,
            })?
            .map_err(|source| SendError::Connect {
                address: address.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Room for one more connection under the cluster's `max_connections` and `max_pending`:
    /// the connection's guard, counted as pending until [`Opened::open`].
    fn admit_connection(self: &Arc<Self>) -> Result<Opened, SendError> {
        let limits = &self.config.limits;
        let take = |counter: &AtomicUsize, max: usize, limit: &'static str| {
            if counter.fetch_add(1, Ordering::Relaxed) >= max {
                counter.fetch_sub(1, Ordering::Relaxed);
                return Err(SendError::Overflow { limit });
            }
            Ok(())
        };
        take(&self.connections, limits.max_connections, "max_connections")?;
        if let Err(e) = take(&self.pending, limits.max_pending, "max_pending") {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            return Err(e);
        }
        Ok(Opened {
            upstream: self.clone(),
            pending: true,
        })
    }

    async fn connect_h1(self: &Arc<Self>, i: usize) -> Result<Box<h1::Conn>, SendError> {
        let mut opened = self.admit_connection()?;
        let stream = self.tcp(i).await?;
        opened.open();
        Ok(h1::Conn::new(stream, opened))
    }

    async fn connect_h2(self: &Arc<Self>, i: usize) -> Result<http2::SendRequest<Body>, SendError> {
        let mut opened = self.admit_connection()?;
        let io = TokioIo::new(self.tcp(i).await?);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(self.handshake_failed(i))?;
        opened.open();
        spawn_connection(conn, opened);
        Ok(sender)
    }

    fn handshake_failed(&self, i: usize) -> impl FnOnce(hyper::Error) -> SendError + '_ {
        move |source| SendError::Handshake {
            address: self.endpoints[i].address.to_string(),
            source,
        }
    }
}

/// A connection counted against its cluster's limits: pending while it is being opened, then
/// open until dropped (when the connection's task ends, or the attempt to open it failed).
pub(super) struct Opened {
    upstream: Arc<Upstream>,
    pending: bool,
}

impl Opened {
    fn open(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.upstream.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.open();
        self.upstream.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Drive a connection in a task of its own until it closes.
fn spawn_connection(conn: impl Future<Output = hyper::Result<()>> + Send + 'static, opened: Opened) {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
        drop(opened);
    });
}
