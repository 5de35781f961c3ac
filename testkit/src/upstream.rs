//! Mock upstreams that run in the test's tokio runtime and stop when dropped.
//!
//! [`MockUpstream`] answers by path:
//! - `/status/<code>`: that status;
//! - `/slow/<ms>`: 200 after a delay;
//! - `/bytes/<n>`: n bytes streamed in 64 KiB chunks;
//! - `/trailers`: a chunked body followed by trailers `x-checksum: 1234`;
//! - `/ws`: accepts `Upgrade: echo` with 101, then echoes bytes;
//! - `/close`: 200 with `Connection: close`;
//! - `/reset`: closes the connection without answering;
//! - `/cache/...`: 200 with the body `<path> #<n>` (n: earlier requests to that path), for
//!   response caches; the query sets `cc=` (Cache-Control), `vary=`, `delay_ms=` (`%20` and
//!   `%2C` decoded); [`MockUpstream::fail_cache_paths`] makes them answer a status instead;
//! - anything else: 200 with a JSON echo of the request (method, path, headers, body length,
//!   counted while streaming, never buffered).
//!
//! Every response carries `x-upstream: <name>` so tests can count where requests went.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, std::io::Error>;

pub struct MockUpstream {
    pub addr: SocketAddr,
    pub name: String,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    cache_paths: Arc<CachePaths>,
    stall: Arc<Stall>,
    task: JoinHandle<()>,
}

/// Until when every request waits before it is answered (a stalled service, a GC pause).
#[derive(Default)]
struct Stall(std::sync::Mutex<Option<tokio::time::Instant>>);

impl Stall {
    async fn wait(&self) {
        let until = *self.0.lock().unwrap();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// Requests per `/cache/...` path, and the status those paths answer with while failing.
#[derive(Default)]
struct CachePaths {
    seen: std::sync::Mutex<BTreeMap<String, usize>>,
    failing: std::sync::atomic::AtomicU16,
}

impl MockUpstream {
    /// Start on `127.0.0.1:0`; HTTP/1.1 and h2c both.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock upstream");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let cache_paths = Arc::new(CachePaths::default());
        let stall = Arc::new(Stall::default());
        let (name2, count, conns) = (name.to_owned(), requests.clone(), connections.clone());
        let (paths, stalls) = (cache_paths.clone(), stall.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conns.fetch_add(1, Ordering::Relaxed);
                let (name, count, paths, stalls) = (name2.clone(), count.clone(), paths.clone(), stalls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        count.fetch_add(1, Ordering::Relaxed);
                        let (name, paths, stalls) = (name.clone(), paths.clone(), stalls.clone());
                        async move {
                            stalls.wait().await;
                            respond(name, req, paths).await
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockUpstream {
            addr,
            name: name.to_owned(),
            requests,
            connections,
            cache_paths,
            stall,
            task,
        }
    }

    /// Hold every request (those in flight and those arriving) until `d` from now, then
    /// answer as usual.
    pub fn stall_for(&self, d: Duration) {
        *self.stall.0.lock().unwrap() = Some(tokio::time::Instant::now() + d);
    }

    /// Requests received so far for one `/cache/...` path.
    pub fn requests_to(&self, path: &str) -> usize {
        let seen = self.cache_paths.seen.lock().unwrap();
        seen.get(path).copied().unwrap_or(0)
    }

    /// Make `/cache/...` paths answer `status` (with no caching headers), or normally again
    /// with `None`.
    pub fn fail_cache_paths(&self, status: Option<u16>) {
        self.cache_paths.failing.store(status.unwrap_or(0), Ordering::Relaxed);
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Reset;
impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset requested")
    }
}
impl std::error::Error for Reset {}

async fn respond(name: String, mut req: Request<Incoming>, paths: Arc<CachePaths>) -> Result<Response<Body>, Reset> {
    let path = req.uri().path().to_owned();
    let mut resp = if path.starts_with("/cache/") {
        cacheable(&path, req.uri().query().unwrap_or_default(), &paths).await
    } else if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(full("status\n"));
        *r.status_mut() = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        r
    } else if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(100))).await;
        Response::new(full("slow\n"))
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        Response::new(stream_bytes(n.parse().unwrap_or(0)))
    } else if path == "/trailers" {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("1234"));
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"part one,"))),
            Ok(Frame::data(Bytes::from_static(b"part two"))),
            Ok(Frame::trailers(trailers)),
        ];
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames))));
        r.headers_mut()
            .insert("trailer", HeaderValue::from_static("x-checksum"));
        r
    } else if path == "/ws" {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on_upgrade.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 4096];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut().insert("upgrade", HeaderValue::from_static("echo"));
        r.headers_mut()
            .insert("connection", HeaderValue::from_static("upgrade"));
        r
    } else if path == "/close" {
        let mut r = Response::new(full("closing\n"));
        r.headers_mut().insert("connection", HeaderValue::from_static("close"));
        r
    } else if path == "/reset" {
        return Err(Reset);
    } else {
        echo(req).await
    };
    resp.headers_mut()
        .insert("x-upstream", HeaderValue::from_str(&name).unwrap());
    Ok(resp)
}

async fn cacheable(path: &str, query: &str, paths: &CachePaths) -> Response<Body> {
    let n = {
        let mut seen = paths.seen.lock().unwrap();
        let n = seen.entry(path.to_owned()).or_default();
        *n += 1;
        *n - 1
    };
    let failing = paths.failing.load(Ordering::Relaxed);
    if failing != 0 {
        let mut r = Response::new(full("failing\n"));
        *r.status_mut() = StatusCode::from_u16(failing).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return r;
    }
    let mut r = Response::new(full(format!("{path} #{n}")));
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = v.replace("%20", " ").replace("%2C", ",").replace("%3D", "=");
        match k {
            "cc" => {
                r.headers_mut()
                    .append("cache-control", HeaderValue::from_str(&v).unwrap());
            }
            "vary" => {
                r.headers_mut().append("vary", HeaderValue::from_str(&v).unwrap());
            }
            "delay_ms" => tokio::time::sleep(Duration::from_millis(v.parse().unwrap_or(0))).await,
            _ => {}
        }
    }
    r
}

async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let mut len = 0usize;
    let mut trailers = BTreeMap::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(d) = frame.data_ref() {
            len += d.len();
        } else if let Some(t) = frame.trailers_ref() {
            for (k, v) in t {
                trailers.insert(k.to_string(), v.to_str().unwrap_or_default().to_owned());
            }
        }
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.to_string())
            .or_default()
            .push(v.to_str().unwrap_or_default().to_owned());
    }
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": len,
        "trailers": trailers,
    });
    let mut r = Response::new(full(json.to_string()));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

fn stream_bytes(total: usize) -> Body {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let stream = futures_util::stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            (left > 0).then(|| {
                let n = left.min(CHUNK);
                (Ok::<_, std::io::Error>(Frame::data(chunk.slice(..n))), left - n)
            })
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// A TCP peer that reads a request head and answers with fixed bytes, then closes: for
/// malformed responses and abrupt closes that no HTTP library would produce.
pub struct RawUpstream {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RawUpstream {
    pub async fn start(answer: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind raw upstream");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = s.write_all(answer).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        RawUpstream { addr, task }
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP server that answers every request 200 with an empty body and keeps what it
/// received (an OTLP/HTTP collector stand-in: an empty protobuf is a valid answer; and a
/// recorder of what a client sent).
pub struct Collector {
    pub addr: SocketAddr,
    received: Arc<std::sync::Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

/// One request a [`Collector`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The path with its query, as sent.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Collector {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind collector");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let store = store.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let store = store.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            store.lock().unwrap().push(Received {
                                method: parts.method.to_string(),
                                path_and_query: parts.uri.path_and_query().map_or("/".into(), |p| p.to_string()),
                                headers: parts.headers,
                                body,
                            });
                            let mut r = Response::new(full(Bytes::new()));
                            r.headers_mut()
                                .insert("content-type", HeaderValue::from_static("application/x-protobuf"));
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Collector { addr, received, task }
    }

    /// `(path, body)` of every request so far.
    pub fn received(&self) -> Vec<(String, Bytes)> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .map(|r| {
                let path = r.path_and_query.split('?').next().unwrap_or_default().to_owned();
                (path, r.body.clone())
            })
            .collect()
    }

    /// Every request so far, whole.
    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
