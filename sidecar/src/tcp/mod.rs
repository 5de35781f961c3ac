//! TCP listeners that relay connections to an upstream through toxics, with Toxiproxy's
//! semantics (see `model::fault::Toxic`).
//!
//! # Layout
//! - here: [`serve`]: accepting, taking the listener down and up for `down`, and one task per
//!   connection that runs both directions and ends the connection (close or reset).
//! - [`toxics`]: one direction: the toxic chain (rolls, per-connection state, the schedule of
//!   each chunk) and the pump that reads, schedules and writes.
//!
//! # Semantics
//! Toxics are followed live: every connection watches the listener's toxics, so one added or
//! removed while connections are open acts on them (as in Toxiproxy). A toxic applies to one
//! direction (`stream`), to a share of connections (`toxicity`, rolled once per connection and
//! toxic), only while live (its TTL not run out, even before the reaper removes it), and
//! chains after the toxics added before it. With no toxic in place a direction is a plain
//! relay with one 32 KiB buffer. Half-closes pass through; a connection ends when both
//! directions have, or at once when a toxic, an error or shutdown ends it.
//!
//! Differences from Toxiproxy: chained latencies add up (Toxiproxy measures each from the
//! read, so they overlap); `down` closes open connections as `enabled = false` does, and
//! additionally refuses new ones while keeping the port bound. As in Toxiproxy, a connection
//! whose data a `timeout` dropped is closed when that toxic goes.
//!
//! # `down`
//! While a live `down` toxic is in place the listening socket is shut down for reading
//! (`shutdown(SHUT_RD)`, Linux): the kernel stops listening and resets pending and new
//! connection attempts (clients see ECONNREFUSED), while the socket keeps its port. Removing
//! it calls `listen` again. (The sidecar binds TCP listeners to explicit ports, port 0 resolved
//! first, so the fallback below only serves callers that hand in a port-0 socket.) The socket is taken out of tokio's reactor while down and
//! registered afresh after: the shutdown leaves a sticky "read closed" readiness in tokio that
//! would make `accept` spin. One exception: a socket bound to port 0 loses its port on
//! shutdown (the kernel releases automatically chosen ports), so when `listen` comes back on
//! another port the listener is bound again to the address it had; the
//! port is unbound while that first `down` lasts.
//!
//! # Shutdown
//! When `shutdown` flips the listener stops accepting and every open connection is closed
//! (dropped, without waiting for its data): a TCP relay has no request boundary to drain at.

mod toxics;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use ballast_model::fault::{Action, Stream, Toxic};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::faults::{Installed, Toxics};
use toxics::{Outcome, pump};

/// Backlog when listening again after `down`.
const BACKLOG: i32 = 1024;

/// How long to wait before trying again to listen after `down` when that failed.
const RELISTEN_RETRY: Duration = Duration::from_secs(1);

/// Serve one TCP listener until `shutdown` flips to true: relay each accepted connection to
/// `cfg.upstream` through the toxics in place (read from `toxics` as they change). The toxics
/// in place at the start (a `down` among them) take effect within the first poll, so the
/// caller can tell when a listener that starts down refuses connections.
pub async fn serve(
    listener: TcpListener,
    cfg: crate::config::TcpListener,
    mut toxics: watch::Receiver<Toxics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(listener = %cfg.name, error = %e, "TCP listener has no address; not serving");
            return;
        }
    };
    let cfg = Arc::new(cfg);
    let mut gate = Gate::Open(listener);
    let mut retry_at: Option<Instant> = None;
    let mut watching = true;
    // What each connection follows (the loop below borrows the originals while it waits).
    let (conn_toxics, conn_shutdown) = (toxics.clone(), shutdown.clone());
    loop {
        let (down, next_expiry) = down_state(&toxics.borrow_and_update(), Instant::now());
        gate = match (gate, down) {
            (Gate::Open(l), true) => {
                tracing::info!(listener = %cfg.name, "down: refusing connections");
                pause(l)
            }
            (Gate::Paused(held), false) if retry_at.is_none_or(|at| at <= Instant::now()) => match resume(held, addr) {
                Ok(l) => {
                    retry_at = None;
                    tracing::info!(listener = %cfg.name, "up: accepting connections again");
                    Gate::Open(l)
                }
                Err(e) => {
                    tracing::error!(listener = %cfg.name, %addr, error = %e, "cannot listen again; retrying");
                    retry_at = Some(Instant::now() + RELISTEN_RETRY);
                    Gate::Paused(None)
                }
            },
            (gate, _) => gate,
        };
        let accept = async {
            match &gate {
                Gate::Open(l) => l.accept().await,
                // While down nothing is accepted; polling would only return errors.
                Gate::Paused(_) => std::future::pending().await,
            }
        };
        let never = Instant::now() + Duration::from_secs(86_400);
        let wake = [next_expiry, retry_at.filter(|_| !down)].into_iter().flatten().min();
        tokio::select! {
            accepted = accept => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, peer, cfg.clone(), conn_toxics.clone(), conn_shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = %cfg.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            changed = toxics.changed(), if watching => {
                // The table lives as long as the sidecar; if it is gone, keep the last toxics.
                watching = changed.is_ok();
            }
            _ = sleep_until(wake.unwrap_or(never)), if wake.is_some() => {}
            _ = stopping(&mut shutdown) => break,
        }
    }
}

/// Until shutdown flips to true (or its sender is gone). Returns nothing, so no `watch::Ref`
/// (not `Send`) is kept in the caller's future.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// The listening socket, accepting or down.
enum Gate {
    Open(TcpListener),
    /// Down: out of the reactor and not listening; `None` if the socket was lost.
    Paused(Option<std::net::TcpListener>),
}

/// Whether a live `down` toxic is in place, and when a toxic that decides it expires.
fn down_state(toxics: &[Arc<Installed>], now: Instant) -> (bool, Option<Instant>) {
    let mut down = false;
    let mut next = None::<Instant>;
    for t in toxics.iter().filter(|t| t.live(now)) {
        if matches!(t.action, Action::Tcp { toxic: Toxic::Down, .. }) {
            down = true;
            if let Some((at, _)) = t.expires {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
    }
    (down, next)
}

/// Stop listening but keep the socket (and, unless it was bound to port 0, its port).
fn pause(listener: TcpListener) -> Gate {
    let std = match listener.into_std() {
        Ok(std) => std,
        Err(e) => {
            tracing::warn!(error = %e, "cannot take the listener out of the reactor; closing it");
            return Gate::Paused(None);
        }
    };
    // SAFETY: shutdown on a file descriptor we own; no memory is involved.
    if unsafe { libc::shutdown(std.as_raw_fd(), libc::SHUT_RD) } != 0 {
        // Not Linux, or an odd socket: closing it refuses connections too, and the address is
        // bound again when the listener comes back.
        tracing::warn!(error = %io::Error::last_os_error(), "shutdown of the listener failed; closing it");
        return Gate::Paused(None);
    }
    Gate::Paused(Some(std))
}

/// Listen again on the paused socket, or on a new one bound to `addr`.
fn resume(held: Option<std::net::TcpListener>, addr: SocketAddr) -> io::Result<TcpListener> {
    if let Some(std) = held {
        // SAFETY: listen on a file descriptor we own.
        let listening = unsafe { libc::listen(std.as_raw_fd(), BACKLOG) } == 0;
        if listening && std.local_addr()? == addr {
            std.set_nonblocking(true)?;
            return TcpListener::from_std(std);
        }
        // Bound to port 0: the kernel released the port on shutdown and listen chose another.
    }
    TcpListener::from_std(crate::server::bind(addr)?)
}

/// One connection: connect upstream, run both directions, and end it as they say.
async fn connection(
    mut client: TcpStream,
    peer: SocketAddr,
    cfg: Arc<crate::config::TcpListener>,
    toxics: watch::Receiver<Toxics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut upstream = match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(cfg.upstream.as_str())).await
    {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(e)) => {
            tracing::debug!(listener = %cfg.name, %peer, upstream = %cfg.upstream, error = %e, "upstream connect failed; closing");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %cfg.name, %peer, upstream = %cfg.upstream, "upstream connect timed out; closing");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let outcome = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let up = pump(
            &mut client_read,
            &mut upstream_write,
            Stream::Upstream,
            toxics.clone(),
            toxics::roll,
        );
        let down = pump(
            &mut upstream_read,
            &mut client_write,
            Stream::Downstream,
            toxics,
            toxics::roll,
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let ended = tokio::select! {
                o = &mut up, if !up_done => {
                    up_done = true;
                    o
                }
                o = &mut down, if !down_done => {
                    down_done = true;
                    o
                }
                _ = stopping(&mut shutdown) => Outcome::Close,
            };
            // A direction done with a half-close leaves the other one going.
            match ended {
                Outcome::Done if !(up_done && down_done) => {}
                other => break other,
            }
        }
    };
    if outcome == Outcome::Reset {
        // SO_LINGER 0: closing sends RST instead of FIN, so the peers see ECONNRESET.
        for stream in [&client, &upstream] {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
    }
    tracing::trace!(listener = %cfg.name, %peer, ?outcome, "TCP connection ended");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultLimits;
    use crate::events::Events;
    use crate::faults::FaultTable;
    use ballast_model::FaultSpec;
    use ballast_model::fault::Origin;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Connect until `done` says the result is the awaited one (polling, bounded at 10 s).
    async fn connect_until(addr: SocketAddr, done: impl Fn(&io::Result<TcpStream>) -> bool) -> io::Result<TcpStream> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = TcpStream::connect(addr).await;
            if done(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "connect to {addr} kept giving {r:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An upstream that echoes what it gets.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn down_refuses_connections_and_up_listens_again_on_the_same_socket() {
        // A listener bound to an explicit port, as from a config (a port-0 one loses its port
        // on shutdown; the Redis tests cover that path). `holder` keeps the port bound without
        // SO_REUSEADDR, so binding a new socket there would fail: only `listen` on the same
        // socket can bring the listener back.
        let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        holder.set_reuse_port(true).unwrap();
        holder.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        let addr = holder.local_addr().unwrap().as_socket().unwrap();
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_reuse_port(true).unwrap();
        socket.set_nonblocking(true).unwrap();
        socket.bind(&addr.into()).unwrap();
        socket.listen(16).unwrap();
        let listener = TcpListener::from_std(socket.into()).unwrap();

        let table = FaultTable::new(FaultLimits::default(), ["t"]);
        let events = Events::default();
        let cfg = crate::config::TcpListener {
            name: "t".into(),
            listen: addr,
            upstream: echo().await.to_string(),
            connect_timeout: Duration::from_secs(1),
        };
        let (stop, stopped) = watch::channel(false);
        let served = tokio::spawn(serve(listener, cfg, table.toxics("t").unwrap(), stopped));

        let mut before = TcpStream::connect(addr).await.unwrap();
        before.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        before.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");

        let spec: FaultSpec = toml::from_str("kind = \"down\"\nlistener = \"t\"").unwrap();
        let fault = spec.validate().unwrap();
        let id = table.add(spec, fault, Origin::Api, &events).unwrap().id;
        connect_until(
            addr,
            |r| matches!(r, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused),
        )
        .await
        .unwrap_err();
        assert_eq!(before.read(&mut buf).await.unwrap(), 0, "open connections are closed");

        assert!(table.remove(&id, &events));
        let mut after = connect_until(addr, |r| r.is_ok()).await.unwrap();
        after.write_all(b"ok").await.unwrap();
        after.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ok");

        stop.send(true).unwrap();
        served.await.unwrap();
        assert_eq!(
            after.read(&mut buf).await.unwrap(),
            0,
            "shutdown closes open connections"
        );
        drop(holder);
    }
}
