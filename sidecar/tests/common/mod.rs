//! Shared helpers for the sidecar's end-to-end tests.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;

pub use ballast_testkit::{Collector, MockUpstream, Proc, RawUpstream, assert_eventually, rss_kib};

pub const BIN: &str = env!("CARGO_BIN_EXE_ballast-sidecar");

/// A config with listener and admin on port 0, one worker unless `extra` says otherwise.
/// `clusters` maps names to endpoint addresses; `routes` is raw TOML appended as is.
pub fn config(clusters: &[(&str, &[SocketAddr])], routes: &str) -> String {
    config_with("[runtime]\nworker_threads = 2\n", clusters, routes)
}

pub fn config_with(head: &str, clusters: &[(&str, &[SocketAddr])], routes: &str) -> String {
    let mut s =
        format!("{head}\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listeners]]\nlisten = \"127.0.0.1:0\"\n\n{routes}\n");
    for (name, eps) in clusters {
        let eps: Vec<String> = eps.iter().map(|a| format!("{{ address = \"{a}\" }}")).collect();
        s.push_str(&format!("\n[clusters.{name}]\nendpoints = [{}]\n", eps.join(", ")));
    }
    s
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The JSON echo of a request that reached a mock upstream.
pub async fn echo(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(resp.status(), 200, "expected an echo");
    resp.json::<serde_json::Value>().await.unwrap()
}

/// GET an admin API path and parse its JSON.
pub async fn admin_json<T: serde::de::DeserializeOwned>(sc: &Proc, path: &str) -> T {
    client()
        .get(sc.admin_url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The sidecar's `/metrics` text.
pub async fn metrics_text(sc: &Proc) -> String {
    client()
        .get(sc.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Send `n` GETs to `url` one after another, reading each body to the end.
pub async fn get_n(http: &reqwest::Client, url: &str, n: usize) {
    for _ in 0..n {
        http.get(url).send().await.unwrap().bytes().await.unwrap();
    }
}

pub fn upstream_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-upstream")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

pub fn error_class(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("ballast-error")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A port on which nothing listens: connects are refused. The port stays bound (without
/// listening) for the rest of the test process, so no other socket can take it meanwhile.
pub fn dead_addr() -> SocketAddr {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    std::mem::forget(socket);
    addr
}

/// A port free right now, for a program that binds it itself (released at once, so another
/// socket could take it first; use only where the program cannot take port 0).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A listener whose accept queue is full and never drained: connects to it hang (the kernel
/// drops the SYNs), which is how a connect timeout looks. Keep the value alive while in use.
pub struct Blackhole {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
    _queued: Vec<std::net::TcpStream>,
}

pub fn blackhole() -> Blackhole {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let queued = (0..3)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100)).ok())
        .collect();
    Blackhole {
        addr,
        _socket: socket,
        _queued: queued,
    }
}
