//! End-to-end: retries through the real binary, against upstreams that fail.

mod common;

use ballast_model::stats::StatsSnapshot;
use common::*;

/// One route over a cluster of `endpoints`, with `retry` as its retry policy.
fn retrying(endpoints: &[std::net::SocketAddr], retry: &str) -> String {
    config(
        &[("u", endpoints)],
        &format!("[[routes]]\nname = \"r\"\ncluster = \"u\"\nretry = {retry}\n"),
    )
}

async fn route_counters(sc: &Proc) -> ballast_model::stats::Counters {
    let stats: StatsSnapshot = admin_json(sc, "/stats").await;
    stats.routes["r"].counters.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_succeeds_on_the_other_endpoint() {
    let up = MockUpstream::start("live").await;
    let sc = Proc::sidecar(
        BIN,
        &retrying(&[dead_addr(), up.addr], "{ retry_on = [\"connect-failure\"] }"),
    );
    let http = client();
    for _ in 0..20 {
        let resp = http.get(sc.url("/echo")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.headers().get("ballast-error"));
        assert_eq!(upstream_of(&resp), "live");
        resp.bytes().await.unwrap();
    }
    let c = route_counters(&sc).await;
    // Round robin sends every other first try to the dead endpoint; each is retried once, on
    // the next endpoint (the rotation of first tries is not disturbed by retries).
    assert_eq!(c.retries, 10);
    assert_eq!(c.status_class(2), 20);
    let metrics = metrics_text(&sc).await;
    assert!(
        metrics.contains(&format!("ballast_route_retries_total{{route=\"r\"}} {}", c.retries)),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_retried_only_when_the_route_opts_in_and_big_bodies_never() {
    let up = MockUpstream::start("live").await;
    let dead = dead_addr();
    // A connection per request: an answer sent before a large body was read closes the
    // connection, and a reused one would then fail before reaching the sidecar.
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let statuses = |sc: &Proc, body: Vec<u8>, method: reqwest::Method| {
        let (http, url) = (http.clone(), sc.url("/echo"));
        async move {
            let mut out = Vec::new();
            for _ in 0..10 {
                // 0: the connection closed before the answer (a large body still being sent
                // when the sidecar answered and closed).
                let status = match http.request(method.clone(), &url).body(body.clone()).send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                out.push(status);
            }
            out
        }
    };
    let sc = Proc::sidecar(BIN, &retrying(&[dead, up.addr], "{ retry_on = [\"connect-failure\"] }"));
    let post = statuses(&sc, b"order".to_vec(), reqwest::Method::POST).await;
    assert!(post.contains(&503), "POST is not retried: {post:?}");
    let put = statuses(&sc, b"order".to_vec(), reqwest::Method::PUT).await;
    assert!(put.iter().all(|&s| s == 200), "PUT is idempotent: {put:?}");
    // Round robin sends every other first try to the dead endpoint: with retries the live one
    // would take all ten, without them five.
    let before = up.requests();
    let big = statuses(&sc, vec![b'x'; 100 * 1024], reqwest::Method::PUT).await;
    assert_eq!(
        up.requests() - before,
        5,
        "a body over the 64 KiB buffer is not retried: {big:?}"
    );
    assert_eq!(big.iter().filter(|&&s| s == 200).count(), 5, "{big:?}");

    let opted = Proc::sidecar(
        BIN,
        &retrying(
            &[dead, up.addr],
            "{ retry_on = [\"connect-failure\"], retry_non_idempotent = true }",
        ),
    );
    let post = statuses(&opted, b"order".to_vec(), reqwest::Method::POST).await;
    assert!(post.iter().all(|&s| s == 200), "opted in: {post:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_total_failure_the_budget_keeps_the_retry_storm_bounded() {
    let (a, b) = (MockUpstream::start("a").await, MockUpstream::start("b").await);
    let sc = Proc::sidecar(
        BIN,
        &retrying(
            &[a.addr, b.addr],
            "{ retry_on = [\"5xx\"], max_retries = 3, backoff_base = \"1ms\", backoff_max = \"2ms\" }",
        ),
    );
    let http = client();
    // Long enough that the budget's reserve (10 retries a second over its 10 s window: 100)
    // is small beside 20% of the requests.
    let n = 3000;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (http.clone(), sc.url("/status/503"));
            tokio::spawn(async move {
                for _ in 0..n / 4 {
                    let resp = http.get(&url).send().await.unwrap();
                    assert_eq!(resp.status(), 503);
                    resp.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let upstream = (a.requests() + b.requests()) as f64;
    let c = route_counters(&sc).await;
    // Without a budget, 3 retries each would make it 4×; the budget allows 20% of requests
    // plus 10 retries a second.
    assert!(
        upstream <= 1.25 * n as f64,
        "{upstream} upstream requests for {n} client requests"
    );
    assert!(c.retries > 0 && c.retry_budget_exhausted > 0, "{c:?}");
    assert_eq!(upstream as u64, n as u64 + c.retries);
}

/// An h2c upstream that refuses every other stream with `REFUSED_STREAM` (the first of each
/// pair) and answers the others; returns its address and the number of streams it saw.
async fn refusing_h2_upstream() -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = streams.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    if seen.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                    } else if let Ok(mut body) = respond.send_response(http::Response::new(()), false) {
                        let _ = body.send_data(bytes::Bytes::from_static(b"answered"), true);
                    }
                }
            });
        }
    });
    (addr, streams)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_is_retried_when_the_route_says_so() {
    use std::sync::atomic::Ordering;
    let (addr, streams) = refusing_h2_upstream().await;
    let h2c = |retry: &str| format!("{}protocol = \"http2\"\n", retrying(&[addr], retry));
    let sc = Proc::sidecar(BIN, &h2c("{ retry_on = [\"refused-stream\"] }"));
    let http = client();
    for _ in 0..10 {
        let resp = http.get(sc.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.headers().get("ballast-error"));
        assert_eq!(resp.bytes().await.unwrap(), "answered");
    }
    // Each request: one refused stream, then its retry answered.
    assert_eq!(streams.load(Ordering::SeqCst), 20);
    assert_eq!(route_counters(&sc).await.retries, 10);
    drop(sc);

    // Not among the route's retry conditions: the refusal is the answer.
    streams.store(0, Ordering::SeqCst);
    let sc = Proc::sidecar(BIN, &h2c("{ retry_on = [\"connect-failure\"] }"));
    let resp = http.get(sc.url("/")).send().await.unwrap();
    let class = resp
        .headers()
        .get("ballast-error")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!((resp.status().as_u16(), class.as_deref()), (502, Some("reset")));
    assert_eq!(streams.load(Ordering::SeqCst), 1);
    assert_eq!(route_counters(&sc).await.retries, 0);
}
