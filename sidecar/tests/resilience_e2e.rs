//! End-to-end: outlier detection, circuit breaking and health checks through the real binary.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use ballast_model::{Event, EventKind};
use common::*;
use serde_json::Value;

/// An endpoint that refuses connections until `up()` makes it answer 200 to everything.
struct Switch {
    addr: SocketAddr,
    socket: Option<socket2::Socket>,
}

impl Switch {
    fn down() -> Switch {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        Switch {
            addr,
            socket: Some(socket),
        }
    }

    fn up(&mut self) {
        let socket = self.socket.take().expect("up once");
        socket.listen(128).unwrap();
        socket.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(socket.into()).unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                            "ok",
                        ))))
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
    }
}

fn cluster_config(endpoints: &[SocketAddr], cluster_extra: &str, route_extra: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|a| format!("{{ address = \"{a}\" }}")).collect();
    format!(
        "[runtime]\nworker_threads = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"r\"\ncluster = \"u\"\n{route_extra}\n[clusters.u]\nendpoints = [{}]\n{cluster_extra}\n",
        eps.join(", ")
    )
}

async fn endpoint(sc: &Proc, addr: SocketAddr) -> Value {
    let ups: Value = admin_json(sc, "/upstreams").await;
    ups["u"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == addr.to_string())
        .unwrap()
        .clone()
}

/// The events so far (the admin API replays recent ones on connect).
async fn events(sc: &Proc) -> Vec<EventKind> {
    let mut resp = client().get(sc.admin_url("/events")).send().await.unwrap();
    let mut text = String::new();
    // The replay comes in the first chunks; stop at the first pause.
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_millis(200), resp.chunk())
        .await
        .map(|c| c.unwrap())
    {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|l| serde_json::from_str::<Event>(l).unwrap().kind)
        .collect()
}

async fn status(http: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = http.get(url).send().await.unwrap();
    let out = (resp.status().as_u16(), error_class(&resp));
    resp.bytes().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_probed_and_restored() {
    let live = MockUpstream::start("live").await;
    let mut flaky = Switch::down();
    let cfg = cluster_config(
        &[flaky.addr, live.addr],
        "outlier = { consecutive_gateway_errors = 3, base_ejection = \"1s\", max_ejection_percent = 50 }",
        "",
    );
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    // Round robin: every other request meets the refusing endpoint until it is ejected.
    let mut refused = 0;
    for _ in 0..20 {
        let (code, _) = status(&http, &sc.url("/echo")).await;
        refused += usize::from(code == 503);
    }
    assert_eq!(refused, 3, "ejected after 3 consecutive gateway errors");
    let state = endpoint(&sc, flaky.addr).await;
    assert!(state["ejected_until_ms"].as_u64().is_some(), "{state}");
    assert_eq!(state["times_ejected"], 1);

    // After the ejection, one probe decides: it fails, and the next ejection lasts 2 s.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut refused = 0;
    for _ in 0..10 {
        refused += usize::from(status(&http, &sc.url("/echo")).await.0 == 503);
    }
    assert_eq!(refused, 1, "only the probe meets the still-failing endpoint");
    assert_eq!(endpoint(&sc, flaky.addr).await["times_ejected"], 2);

    // It recovers; after its penalty the probe succeeds and it is back in rotation.
    flaky.up();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..10 {
        assert_eq!(status(&http, &sc.url("/echo")).await.0, 200);
    }
    let state = endpoint(&sc, flaky.addr).await;
    assert!(state["ejected_until_ms"].is_null(), "{state}");
    assert_eq!(
        (state["times_ejected"].as_u64(), state["ejections"].as_u64()),
        (Some(0), Some(2))
    );

    let kinds = events(&sc).await;
    let reasons: Vec<&str> = kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::EndpointEjected { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["consecutive-gateway-errors", "probe-failed"]);
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::EndpointRestored { endpoint, .. } if *endpoint == flaky.addr.to_string()))
    );
    let stats: ballast_model::StatsSnapshot = admin_json(&sc, "/stats").await;
    let ep = stats.clusters["u"]
        .endpoints
        .iter()
        .find(|e| e.address == flaky.addr.to_string())
        .unwrap();
    assert_eq!(ep.state.as_ref().unwrap().ejections, 2, "/stats shows endpoint states");
}

/// Send `n` requests that must all be rejected with `class`; the sidecar's own 99th
/// percentile of their handling time (from its route histogram, so the client's scheduling on
/// a busy machine does not count).
async fn fast_rejections(sc: &Proc, n: usize, class: &str) -> Duration {
    let http = client();
    let before: ballast_model::StatsSnapshot = admin_json(sc, "/stats").await;
    for _ in 0..n {
        let (code, error) = status(&http, &sc.url("/echo")).await;
        assert_eq!((code, error.as_str()), (503, class));
    }
    let after: ballast_model::StatsSnapshot = admin_json(sc, "/stats").await;
    let window = after.window(&before);
    let latency = &window.routes["r"].latency.0;
    assert_eq!(latency.len(), n as u64);
    Duration::from_micros(latency.value_at_quantile(0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_ejected_answers_circuit_open_at_once() {
    let (a, b) = (dead_addr(), dead_addr());
    let cfg = cluster_config(
        &[a, b],
        "outlier = { consecutive_gateway_errors = 1, base_ejection = \"1m\", max_ejection_percent = 100 }",
        "",
    );
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    for _ in 0..2 {
        assert_eq!(status(&http, &sc.url("/")).await, (503, "connect-refused".to_owned()));
    }
    let p99 = fast_rejections(&sc, 200, "circuit-open").await;
    assert!(p99 < Duration::from_millis(5), "p99 {p99:?}");
}

/// With two slow requests holding the only two places (of the cluster or the route), the
/// next ones are rejected with `class`, fast; once they end, requests go through again.
async fn fast_while_two_are_held(cluster_extra: &str, route_extra: &str, class: &str) -> Proc {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &cluster_config(&[up.addr], cluster_extra, route_extra));
    let http = client();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (http, url) = (http.clone(), sc.url("/slow/2000"));
            tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    assert_eventually!(up.requests() == 2, "both slow requests reached the upstream");
    let p99 = fast_rejections(&sc, 200, class).await;
    assert!(p99 < Duration::from_millis(5), "p99 {p99:?}");
    for h in held {
        assert_eq!(h.await.unwrap().unwrap(), 200);
    }
    assert_eq!(status(&http, &sc.url("/echo")).await.0, 200, "places free again");
    sc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_requests_a_hanging_upstream_gets_overflow_at_once() {
    let sc = fast_while_two_are_held("limits = { max_requests = 2 }", "timeout = \"30s\"", "overflow").await;
    let metrics = metrics_text(&sc).await;
    assert!(
        metrics.contains("ballast_cluster_errors_total{cluster=\"u\",error=\"overflow\"} 200"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_connections_a_new_connection_overflows_at_once() {
    // Both connections are busy with the slow requests; the next request would need a third.
    let sc = fast_while_two_are_held("limits = { max_connections = 2 }", "timeout = \"30s\"", "overflow").await;
    let ups: Value = admin_json(&sc, "/upstreams").await;
    assert!(ups["u"]["connections"].as_u64().unwrap() <= 2, "{ups}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_pending_a_new_connect_overflows_at_once() {
    let hole = blackhole();
    let cfg = cluster_config(
        &[hole.addr],
        "connect_timeout = \"3s\"\nlimits = { max_pending = 1 }",
        "timeout = \"10s\"",
    );
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    // One request whose connect hangs holds the only pending place.
    let held = {
        let (http, url) = (http.clone(), sc.url("/echo"));
        tokio::spawn(async move { status(&http, &url).await })
    };
    assert_eventually!(
        admin_json::<ballast_model::StatsSnapshot>(&sc, "/stats").await.routes["r"]
            .counters
            .in_flight
            == 1,
        "the first request is connecting"
    );
    let p99 = fast_rejections(&sc, 50, "overflow").await;
    assert!(p99 < Duration::from_millis(5), "p99 {p99:?}");
    assert_eq!(held.await.unwrap(), (503, "connect-timeout".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_an_endpoint_out_and_bring_it_back() {
    let live = MockUpstream::start("live").await;
    let mut flaky = Switch::down();
    let cfg = cluster_config(
        &[flaky.addr, live.addr],
        "health = { path = \"/status/200\", interval = \"100ms\", timeout = \"50ms\", unhealthy_threshold = 2, healthy_threshold = 2 }",
        "",
    );
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    assert_eventually!(
        endpoint(&sc, flaky.addr).await["healthy"] == false,
        "unhealthy after two failed checks"
    );
    for _ in 0..10 {
        assert_eq!(
            status(&http, &sc.url("/echo")).await.0,
            200,
            "only the healthy endpoint takes traffic"
        );
    }
    flaky.up();
    assert_eventually!(
        endpoint(&sc, flaky.addr).await["healthy"] == true,
        "healthy after two passed checks"
    );
    let kinds = events(&sc).await;
    let changes: Vec<bool> = kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::HealthChanged { healthy, .. } => Some(*healthy),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [false, true]);
    // Back in rotation: round robin reaches it again. Counted by who answered, not by the
    // live upstream's request count, which health checks add to meanwhile.
    let mut from_flaky = 0;
    for _ in 0..10 {
        let resp = http.get(sc.url("/echo")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        from_flaky += usize::from(resp.text().await.unwrap() == "ok");
    }
    assert_eq!(from_flaky, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_exact_over_a_window_and_shadow_mode_never_rejects() {
    let up = MockUpstream::start("u").await;
    let cfg = cluster_config(&[up.addr], "", "rate_limit = { requests = 10, per = \"1s\" }");
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    let t0 = std::time::Instant::now();
    let mut allowed = 0u32;
    let mut limited = None;
    for _ in 0..40 {
        let resp = http.get(sc.url("/echo")).send().await.unwrap();
        match resp.status().as_u16() {
            200 => allowed += 1,
            429 => limited = Some(resp.headers().clone()),
            other => panic!("unexpected {other}"),
        }
        resp.bytes().await.unwrap();
    }
    // A burst of 10, then one more every 100 ms.
    let refills = (t0.elapsed().as_millis() / 100) as u32;
    assert!(
        (10 + refills.saturating_sub(1)..=10 + refills + 1).contains(&allowed),
        "{allowed} allowed in {:?}",
        t0.elapsed()
    );
    let h = limited.expect("some were limited");
    assert_eq!(h["ballast-error"], "rate-limited");
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(h["ratelimit-policy"], "\"r\";q=10;w=1");
    assert!(h["ratelimit"].to_str().unwrap().starts_with("\"r\";r=0;t="));
    let c = &admin_json::<ballast_model::StatsSnapshot>(&sc, "/stats").await.routes["r"].counters;
    assert_eq!(c.rate_limited, u64::from(40 - allowed));
    assert_eq!(
        up.requests() as u32,
        allowed,
        "limited requests never reach the upstream"
    );

    let shadow = cluster_config(
        &[up.addr],
        "",
        "rate_limit = { requests = 10, per = \"1s\", shadow = true }",
    );
    let sc = Proc::sidecar(BIN, &shadow);
    for _ in 0..40 {
        assert_eq!(status(&http, &sc.url("/echo")).await.0, 200);
    }
    let c = &admin_json::<ballast_model::StatsSnapshot>(&sc, "/stats").await.routes["r"].counters;
    assert!(c.rate_limited_shadow >= 20 && c.rate_limited == 0, "{c:?}");
    let metrics = metrics_text(&sc).await;
    let line = format!(
        "ballast_route_rate_limited_total{{route=\"r\",mode=\"shadow\"}} {}",
        c.rate_limited_shadow
    );
    assert!(metrics.contains(&line), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_route_concurrency_limit_requests_are_shed_at_once() {
    let sc = fast_while_two_are_held("", "timeout = \"30s\"\nconcurrency = { max = 2 }", "shed").await;
    let stats: ballast_model::StatsSnapshot = admin_json(&sc, "/stats").await;
    assert_eq!(
        stats.routes["r"].counters.by_error[&ballast_model::ErrorClass::Shed],
        200
    );
}

/// An upstream with `capacity` workers and a 20 ms service time: past `capacity` requests in
/// flight, requests queue and latency grows. Returns its address and the most requests it
/// ever held at once.
async fn queueing_upstream(capacity: usize) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let workers = Arc::new(tokio::sync::Semaphore::new(capacity));
    let (held, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let peak_out = peak.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (workers, held, peak) = (workers.clone(), held.clone(), peak.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let (workers, held, peak) = (workers.clone(), held.clone(), peak.clone());
                    async move {
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        let _worker = workers.acquire().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        held.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                            "ok",
                        ))))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    (addr, peak_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adaptive_limit_sheds_overload_and_keeps_the_upstream_near_its_capacity() {
    let (addr, peak) = queueing_upstream(8).await;
    let cfg = cluster_config(
        &[addr],
        "",
        "timeout = \"10s\"\nconcurrency = { adaptive = true, min = 2, max = 200, sample_window = \"100ms\", min_rtt_requests = 20 }",
    );
    let sc = Proc::sidecar(BIN, &cfg);
    // 64 clients in a closed loop for 3 seconds: eight times what the upstream serves at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (http, url) = (client(), sc.url("/"));
            tokio::spawn(async move {
                let (mut ok, mut shed) = (0u32, 0u32);
                while std::time::Instant::now() < deadline {
                    let resp = http.get(&url).send().await.unwrap();
                    match (resp.status().as_u16(), error_class(&resp).as_str()) {
                        (200, _) => ok += 1,
                        (503, "shed") => {
                            shed += 1;
                            // A shed client backs off a little, as a real one would.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                    resp.bytes().await.unwrap();
                }
                (ok, shed)
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let (o, s) = t.await.unwrap();
        (ok, shed) = (ok + o, shed + s);
    }
    assert!(ok > 200, "requests were served: {ok}");
    assert!(shed > 0, "overload was shed, not queued: {ok} served, {shed} shed");
    // Without a limit all 64 would sit in the upstream's queue; the gradient keeps the queue
    // short (a limit near capacity plus its √limit headroom).
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("{ok} served, {shed} shed, at most {peak} in the upstream at once");
    assert!(peak < 48, "the upstream held {peak} requests at once");
}
