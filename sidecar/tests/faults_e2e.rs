//! End-to-end: HTTP faults through the real binary and its admin API.

mod common;

use std::time::{Duration, Instant};

use ballast_model::stats::StatsSnapshot;
use ballast_model::{ActiveFault, EventKind};
use common::*;
use serde_json::{Value, json};

const ROUTES: &str = r#"
[[routes]]
name = "api"
match = { path_prefix = "/api/" }
prefix_rewrite = "/"
cluster = "u"
timeout = "400ms"

[[routes]]
name = "web"
match = { path_prefix = "/" }
cluster = "u"
header_faults = true
"#;

/// A mock upstream and a sidecar in front of it with `ROUTES`.
async fn start() -> (MockUpstream, Proc) {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], ROUTES));
    (up, sc)
}

async fn add(sc: &Proc, spec: Value) -> ActiveFault {
    let resp = client().post(sc.admin_url("/faults")).json(&spec).send().await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn refused(sc: &Proc, spec: Value) -> Vec<(String, String, String)> {
    let resp = client().post(sc.admin_url("/faults")).json(&spec).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let doc: Value = resp.json().await.unwrap();
    doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            (s("field"), s("message"), s("fix"))
        })
        .collect()
}

async fn clear(sc: &Proc) {
    let resp = client().delete(sc.admin_url("/faults")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

async fn stats(sc: &Proc) -> StatsSnapshot {
    admin_json(sc, "/stats").await
}

async fn status_of(http: &reqwest::Client, url: &str) -> u16 {
    let resp = http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    resp.bytes().await.unwrap();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_percent_abort_lands_within_the_binomial_interval() {
    let (up, sc) = start().await;
    let fault = add(
        &sc,
        json!({"kind": "abort", "status": 503, "percent": 10, "route": "api"}),
    )
    .await;
    let http = client();
    let url = sc.url("/api/echo");
    let n = 10_000;
    // Four clients in parallel, each with its own keep-alive connection.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut aborted = 0u64;
                for _ in 0..n / 4 {
                    let resp = http.get(&url).send().await.unwrap();
                    if resp.status() == 503 {
                        assert_eq!(resp.headers()["ballast-fault"], "f1");
                        aborted += 1;
                    }
                    resp.bytes().await.unwrap();
                }
                aborted
            })
        })
        .collect();
    let mut aborted = 0;
    for t in tasks {
        aborted += t.await.unwrap();
    }
    // Binomial(10000, 0.1): mean 1000, sd 30; the two-sided 99.9% interval is ±3.29 sd.
    assert!((902..=1098).contains(&aborted), "{aborted} aborts of {n}");
    let listed: Vec<ActiveFault> = admin_json(&sc, "/faults").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, fault.id);
    assert_eq!(listed[0].matched, n as u64);
    assert_eq!(listed[0].injected, aborted);
    assert_eq!(
        up.requests() as u64,
        n as u64 - aborted,
        "aborted requests never reach the upstream"
    );
    let metrics = metrics_text(&sc).await;
    let line = format!("ballast_fault_injected_total{{fault=\"f1\",kind=\"abort\"}} {aborted}");
    assert!(metrics.contains(&line), "{line} not in /metrics");
}

/// Median and 99th percentile of the latencies of `n` GETs, in milliseconds.
async fn latencies(http: &reqwest::Client, url: &str, n: usize) -> (f64, f64) {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        assert_eq!(status_of(http, url).await, 200);
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    (ms[n / 2], ms[n * 99 / 100])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_adds_its_latency_inbound_and_upstream() {
    let (_up, sc) = start().await;
    let http = client();
    let url = sc.url("/api/echo");
    let (base50, base99) = latencies(&http, &url, 120).await;
    for position in ["inbound", "upstream"] {
        let f = add(
            &sc,
            json!({"kind": "delay", "delay": "50ms", "route": "api", "position": position}),
        )
        .await;
        let (p50, p99) = latencies(&http, &url, 120).await;
        let (added50, added99) = (p50 - base50, p99 - base99);
        assert!((49.0..=60.0).contains(&added50), "{position}: median +{added50:.1} ms");
        assert!((45.0..=100.0).contains(&added99), "{position}: p99 +{added99:.1} ms");
        let resp = client()
            .delete(sc.admin_url(&format!("/faults/{}", f.id)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = client().delete(sc.admin_url("/faults/f1")).send().await.unwrap();
    assert_eq!(resp.status(), 404, "already removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_aborts_count_at_the_endpoint_inbound_aborts_do_not() {
    let (a, b) = (MockUpstream::start("a").await, MockUpstream::start("b").await);
    let sc = Proc::sidecar(BIN, &config(&[("u", &[a.addr, b.addr])], ROUTES));
    let http = client();
    let endpoint = |s: &StatsSnapshot, addr: &str| {
        let c = &s.clusters["u"]
            .endpoints
            .iter()
            .find(|e| e.address == addr)
            .unwrap()
            .traffic
            .counters;
        (c.requests, c.status_class(5))
    };
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());

    add(
        &sc,
        json!({"kind": "abort", "status": 503, "route": "api", "position": "upstream", "endpoints": [a_addr]}),
    )
    .await;
    let before = stats(&sc).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(status_of(&http, &sc.url("/api/echo")).await);
    }
    let after = stats(&sc).await;
    // Round robin: every other request goes to `a`, whose answers are all injected 503s.
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 5, "{statuses:?}");
    assert_eq!(a.requests(), 0, "the fault answers for endpoint a");
    assert_eq!(b.requests(), 5);
    let (ra, fa) = (endpoint(&after, &a_addr), endpoint(&before, &a_addr));
    assert_eq!(
        (ra.0 - fa.0, ra.1 - fa.1),
        (5, 5),
        "endpoint a counts 5 requests, 5 of them 5xx"
    );
    let (rb, fb) = (endpoint(&after, &b_addr), endpoint(&before, &b_addr));
    assert_eq!((rb.0 - fb.0, rb.1 - fb.1), (5, 0));
    clear(&sc).await;

    add(&sc, json!({"kind": "abort", "status": 503, "route": "api"})).await;
    let before = stats(&sc).await;
    for _ in 0..10 {
        assert_eq!(status_of(&http, &sc.url("/api/echo")).await, 503);
    }
    let after = stats(&sc).await;
    let w = after.window(&before);
    assert_eq!(
        w.routes["api"].counters.status_class(5),
        10,
        "the route sees what the client sees"
    );
    assert_eq!(
        w.clusters["u"].traffic.counters.requests, 0,
        "an inbound abort never reaches the cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_with_a_short_ttl_expires_by_itself_with_an_event() {
    let (_up, sc) = start().await;
    let http = client();
    let f = add(
        &sc,
        json!({"kind": "abort", "status": 500, "ttl": "1s", "route": "api"}),
    )
    .await;
    assert_eq!(f.expires_at_ms.unwrap() - f.created_at_ms, 1000);
    assert_eq!(status_of(&http, &sc.url("/api/echo")).await, 500);
    assert_eventually!(
        status_of(&http, &sc.url("/api/echo")).await == 200,
        "the fault should expire"
    );
    let faults: Vec<ActiveFault> = admin_json(&sc, "/faults").await;
    assert!(faults.is_empty());
    // The timeline has the fault's addition and expiry.
    let mut events = http.get(sc.admin_url("/events")).send().await.unwrap();
    let mut text = String::new();
    while !text.contains("fault_expired") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let kinds: Vec<EventKind> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|l| serde_json::from_str::<ballast_model::Event>(l).unwrap().kind)
        .collect();
    assert!(matches!(&kinds[0], EventKind::FaultAdded { id, .. } if *id == f.id));
    assert_eq!(kinds[1], EventKind::FaultExpired { id: f.id.clone() });
    let metrics = metrics_text(&sc).await;
    assert!(metrics.contains("ballast_faults_expired_total 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_empty_reply_and_hang_end_the_request_without_a_response() {
    let (up, sc) = start().await;
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--max-time", "5", &sc.url(path)])
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let f = add(&sc, json!({"kind": "reset", "route": "api"})).await;
    let (code, err) = curl("/api/echo");
    assert_eq!(code, 56, "curl: failure receiving (reset): {err}");
    assert!(err.contains("reset"), "{err}");
    client()
        .delete(sc.admin_url(&format!("/faults/{}", f.id)))
        .send()
        .await
        .unwrap();

    let f = add(&sc, json!({"kind": "empty_reply", "route": "api"})).await;
    let (code, err) = curl("/api/echo");
    assert_eq!(code, 52, "curl: empty reply: {err}");
    client()
        .delete(sc.admin_url(&format!("/faults/{}", f.id)))
        .send()
        .await
        .unwrap();

    add(&sc, json!({"kind": "hang", "route": "api"})).await;
    let t0 = Instant::now();
    let (code, err) = curl("/api/echo");
    let held = t0.elapsed();
    assert_eq!(code, 52, "held, then closed unanswered: {err}");
    assert!(
        held >= Duration::from_millis(400),
        "held for the route timeout, got {held:?}"
    );
    let w = stats(&sc).await;
    let api = &w.routes["api"].counters;
    assert_eq!(api.by_error.get(&ballast_model::ErrorClass::Reset), Some(&2));
    assert_eq!(api.by_error.get(&ballast_model::ErrorClass::Timeout), Some(&1));
    assert_eq!(up.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_and_truncate_shape_the_response_body() {
    let (_up, sc) = start().await;
    let http = client();
    let f = add(&sc, json!({"kind": "truncate", "after": "1KiB", "route": "api"})).await;
    let mut resp = http.get(sc.url("/api/bytes/100000")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = 0;
    let cut = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => got += chunk.len(),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(cut, "the body is cut short, not ended");
    assert_eq!(got, 1024, "exactly `after` bytes arrive");
    client()
        .delete(sc.admin_url(&format!("/faults/{}", f.id)))
        .send()
        .await
        .unwrap();

    add(
        &sc,
        json!({"kind": "bandwidth", "rate": 100, "route": "api", "position": "upstream"}),
    )
    .await;
    let t0 = Instant::now();
    let body = http
        .get(sc.url("/api/bytes/150000"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let rate = body.len() as f64 / t0.elapsed().as_secs_f64();
    assert_eq!(body.len(), 150_000);
    assert!(
        (90_000.0..=110_000.0).contains(&rate),
        "{rate:.0} B/s at a 100 KB/s cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_faults_work_only_on_routes_that_allow_them() {
    let (_up, sc) = start().await;
    let http = client();
    let resp = http
        .get(sc.url("/echo"))
        .header("x-ballast-fault-abort", "418")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(resp.headers()["ballast-fault"], "header");
    let t0 = Instant::now();
    let resp = http
        .get(sc.url("/echo"))
        .header("x-ballast-fault-delay-ms", "150")
        .send()
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let seen = echo(resp).await;
    assert!(
        seen["headers"].get("x-ballast-fault-delay-ms").is_none(),
        "control headers stay here: {seen}"
    );
    let resp = http
        .get(sc.url("/echo"))
        .header("x-ballast-fault-abort", "teapot")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // The api route does not allow them: the header goes through untouched.
    let resp = http
        .get(sc.url("/api/echo"))
        .header("x-ballast-fault-abort", "418")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_faults_are_refused_with_the_field_and_the_fix() {
    let (_up, sc) = start().await;
    let cases = [
        (
            json!({"kind": "abort", "status": 503, "percent": 150}),
            "percent",
            "150 is outside 0-100",
        ),
        (
            json!({"kind": "delay", "delay": -5}),
            "delay",
            "must not be negative, got -5",
        ),
        (
            json!({"kind": "delay", "delay": "3h"}),
            "delay",
            "3h is longer than the 1h a fault may last",
        ),
        (
            json!({"kind": "abort", "status": 503, "ttl": "2h"}),
            "ttl",
            "2h is above the 1h cap (fault_limits.max_ttl)",
        ),
        (
            json!({"kind": "abort", "status": 503, "route": "apu"}),
            "route",
            "unknown route \"apu\"",
        ),
        (
            json!({"kind": "latency", "latency": 5, "listener": "redis"}),
            "listener",
            "unknown TCP listener \"redis\"",
        ),
        (json!({"kind": "dealy"}), "kind", "unknown variant `dealy`"),
        (
            json!({"kind": "abort", "status": 503, "precent": 5}),
            "precent",
            "unknown field `precent`",
        ),
    ];
    for (spec, field, message) in cases {
        let errors = refused(&sc, spec.clone()).await;
        assert!(
            errors
                .iter()
                .any(|(f, m, fix)| f == field && m.starts_with(message) && !fix.is_empty()),
            "{spec}: expected {field}: {message}, got {errors:?}"
        );
    }
    let errors = refused(&sc, json!({"kind": "abort", "status": 503, "route": "apu"})).await;
    assert_eq!(errors[0].2, "did you mean \"api\"?");
    let errors = refused(&sc, json!({"kind": "abort", "status": 503, "precent": 5})).await;
    assert!(errors[0].2.contains("did you mean `percent`?"), "{errors:?}");
    let faults: Vec<ActiveFault> = admin_json(&sc, "/faults").await;
    assert!(faults.is_empty(), "nothing refused is in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_from_the_config_apply_from_start_and_follow_reloads() {
    let up = MockUpstream::start("u").await;
    let with_fault = format!("{ROUTES}\n[[faults]]\nkind = \"abort\"\nstatus = 502\nroute = \"api\"\n");
    let mut sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], &with_fault));
    let http = client();
    assert_eq!(status_of(&http, &sc.url("/api/echo")).await, 502);
    let faults: Vec<ActiveFault> = admin_json(&sc, "/faults").await;
    assert_eq!(faults[0].expires_at_ms, None, "config faults have no TTL");
    // DELETE /faults clears API faults only.
    clear(&sc).await;
    assert_eq!(status_of(&http, &sc.url("/api/echo")).await, 502);
    // A reload that leaves a config fault as it was keeps it as it is (id, counters).
    let api = add(&sc, json!({"kind": "delay", "delay": 1, "route": "web"})).await;
    let resp = http.post(sc.admin_url("/config")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let kept: Vec<ActiveFault> = admin_json(&sc, "/faults").await;
    assert_eq!(kept.len(), 2);
    assert_eq!((kept[0].id.as_str(), kept[0].matched), (faults[0].id.as_str(), 2));
    // A reload without it removes it; the fault added through the API stays.
    sc.write_config(&config(&[("u", &[up.addr])], ROUTES));
    let resp = http.post(sc.admin_url("/config")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(status_of(&http, &sc.url("/api/echo")).await, 200);
    let left: Vec<ActiveFault> = admin_json(&sc, "/faults").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, api.id);
    sc.signal(libc::SIGTERM);
    assert!(sc.wait_timeout(Duration::from_secs(10)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_listener_with_enabled_false_refuses_until_its_down_fault_is_removed() {
    let up = MockUpstream::start("u").await;
    let tcp = format!(
        "{ROUTES}\n[[tcp_listeners]]\nname = \"raw\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\nenabled = false\n",
        up.addr
    );
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], &tcp));
    let relay = sc.tcp_listener(0);
    let refused = std::net::TcpStream::connect(relay).map(|_| ()).map_err(|e| e.kind());
    assert_eq!(
        refused,
        Err(std::io::ErrorKind::ConnectionRefused),
        "{}\n{}",
        sc.ready,
        sc.stderr()
    );
    let faults: Vec<ActiveFault> = admin_json(&sc, "/faults").await;
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].spec.kind, ballast_model::fault::FaultKind::Down);
    let resp = client()
        .delete(sc.admin_url(&format!("/faults/{}", faults[0].id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // HTTP passes the relay once it is up again.
    let via_relay = format!("http://{relay}/echo");
    assert_eventually!(
        client().get(&via_relay).send().await.is_ok_and(|r| r.status() == 200),
        "the relay should accept again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_caps_requests_under_faults_and_counts_the_overflow() {
    let up = MockUpstream::start("u").await;
    let limited = format!("{ROUTES}\n[fault_limits]\nmax_active = 1\n");
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], &limited));
    add(&sc, json!({"kind": "delay", "delay": "400ms", "route": "api"})).await;
    let http = client();
    let timed = |http: reqwest::Client, url: String| async move {
        let t0 = Instant::now();
        assert_eq!(status_of(&http, &url).await, 200);
        t0.elapsed()
    };
    let url = sc.url("/api/echo");
    let first = tokio::spawn(timed(http.clone(), url.clone()));
    // The second starts while the first is held by the delay: over the cap, it goes through.
    assert_eventually!(
        metrics_text(&sc).await.contains("ballast_faults_active_requests 1"),
        "the first request is under the fault"
    );
    let second = timed(http.clone(), url).await;
    assert!(second < Duration::from_millis(400), "not delayed: {second:?}");
    assert!(first.await.unwrap() >= Duration::from_millis(400));
    let metrics = metrics_text(&sc).await;
    assert!(metrics.contains("ballast_faults_overflow_total 1"), "{metrics}");
    let faults: Vec<ActiveFault> = admin_json(&sc, "/faults").await;
    assert_eq!((faults[0].matched, faults[0].injected), (2, 1));
}
