//! Accepting and serving downstream connections on one worker.
//!
//! Each worker thread runs its own single-threaded event loop with its own listening socket per
//! listener (SO_REUSEPORT: the kernel spreads connections over workers), like nginx's workers.
//! A connection speaks HTTP/1.1 or h2c (prior knowledge), detected from its first bytes.
//!
//! - [`h1`]: the sidecar's own HTTP/1.1 server for the simple requests that are almost all
//!   traffic; it hands a connection to hyper (HTTP/1.1 in full, h2c) for anything else, with
//!   the bytes read so far given back to the stream first.

pub mod h1;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::activity::{Activity, Expiry, Tracked};
use crate::body::Body;
use crate::config::Listener;
use crate::proxy::headers::Client;
use crate::proxy::{Hangup, HungUp};
use crate::sidecar::Shared;
use ballast_model::error_class::ERROR_HEADER;
use http_body::Body as _;

/// Bind one listening socket for `addr`, shareable with other workers' sockets.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn builder(cfg: &Listener) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Our own header-read timer (see `activity`) replaces hyper's, which also fires on idle.
        .header_read_timeout(None)
        .max_buf_size(cfg.max_request_header_size)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(cfg.max_request_header_size as u32);
    b
}

/// Serve one listener until `shutdown` flips, then let open connections finish. Returns once
/// every connection accepted here has closed (the caller bounds this by the drain timeout).
pub async fn serve(
    listener: TcpListener,
    cfg: Listener,
    shared: Arc<Shared>,
    connections: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(builder(&cfg));
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        // Over max_connections, hold this connection unserved and stop accepting until a slot
        // frees (acquiring before accept would let an idle worker sit on the freed slot).
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        let open = open_tx.clone();
        let conn = Connection {
            builder: builder.clone(),
            shared: shared.clone(),
            cfg: cfg.clone(),
            shutdown: shutdown.clone(),
        };
        tokio::spawn(async move {
            conn.run(stream, peer).await;
            drop((permit, open));
        });
    }
    drop(listener);
    drop(open_tx);
    let _ = open_rx.recv().await;
}

struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    cfg: Listener,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let activity = Activity::new();
        let fd = stream.as_raw_fd();
        let mut io = Tracked::new(stream, activity.clone());
        let client = Arc::new(Client::new(peer));
        let cx = h1::Context {
            shared: &self.shared,
            client: &client,
            activity: &activity,
            cfg: &self.cfg,
            shutdown: &mut self.shutdown,
        };
        let read = match h1::serve(&mut io, cx).await {
            h1::Ended::Closed => return,
            h1::Ended::HandOver(read) => read,
        };
        io.unread(read);
        let io = TokioIo::new(io);
        let shared = self.shared.clone();
        let tracker = activity.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let guard = tracker.request_started();
            let gateway = shared.gateway();
            let client = client.clone();
            let http1 = req.version() < http::Version::HTTP_2;
            let with_body = !req.body().is_end_stream();
            async move {
                let mut resp = gateway.handle(req.map(Body::stream), &client).await;
                drop(guard);
                // The sidecar's own answer (413, 401, 429, ...) may leave the request body unread,
                // and then hyper closes the connection after it without saying so: say so, or a
                // client reusing the connection races the close (nginx does the same).
                if let Ok(resp) = &mut resp
                    && http1
                    && with_body
                    && resp.headers().contains_key(ERROR_HEADER)
                {
                    resp.headers_mut()
                        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                // An HTTP/1 connection that must end in a reset closes with SO_LINGER 0 (an
                // HTTP/2 stream is reset by hyper when the service fails, the connection lives on).
                if let Err(HungUp(Hangup::Reset)) = &resp
                    && http1
                {
                    // SAFETY: the socket is open: hyper owns it until this service call returns.
                    let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                    let _ = socket2::SockRef::from(&socket).set_linger(Some(std::time::Duration::ZERO));
                }
                resp
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(io, svc).into_owned();
        tokio::pin!(conn);
        let expired = activity.expired(self.cfg.header_read_timeout, self.cfg.idle_timeout);
        tokio::pin!(expired);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            expiry = &mut expired => {
                if expiry == Expiry::HeaderTimeout {
                    tracing::debug!(%peer, "request head not received within header_read_timeout; closing");
                    return; // dropping the connection closes it
                }
            }
            _ = self.shutdown.wait_for(|s| *s) => {}
        }
        // Idle or draining: finish what is in flight, then close (h2 sends GOAWAY).
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}
