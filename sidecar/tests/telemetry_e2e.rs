//! End-to-end: what the sidecar counts, on `/stats` and `/metrics`.

mod common;

use ballast_model::ErrorClass;
use ballast_model::stats::StatsSnapshot;
use common::*;

async fn stats(sc: &Proc) -> StatsSnapshot {
    admin_json(sc, "/stats").await
}

const ROUTES: &str = r#"
[telemetry]
latency_buckets = ["150ms", "300ms"]

[[routes]]
name = "slow"
match = { path_prefix = "/slow" }
cluster = "u"

# A latency SLO's threshold becomes an exact bucket boundary in /metrics.
[[slo]]
name = "slow-latency"
objective = 0.99
window = "28d"
sli = { latency = { route = "slow", threshold = "250ms" } }
[[routes]]
name = "dead"
match = { path_prefix = "/dead" }
cluster = "dead"
[[routes]]
name = "api"
match = { path_prefix = "/api/" }
prefix_rewrite = "/"
cluster = "u"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_requests_errors_bytes_and_latency_per_route_cluster_endpoint() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr]), ("dead", &[dead_addr()])], ROUTES));
    let http = client();
    let before = stats(&sc).await;

    for _ in 0..20 {
        let resp = http
            .post(sc.url("/api/echo"))
            .body(vec![b'z'; 1000])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    for _ in 0..3 {
        assert_eq!(http.get(sc.url("/api/status/503")).send().await.unwrap().status(), 503);
        assert_eq!(http.get(sc.url("/dead")).send().await.unwrap().status(), 503);
    }
    for _ in 0..5 {
        assert_eq!(http.get(sc.url("/slow/200")).send().await.unwrap().status(), 200);
    }
    assert_eq!(http.get(sc.url("/nowhere")).send().await.unwrap().status(), 404);

    let after = stats(&sc).await;
    let w = after.window(&before);
    assert!(!w.reset);
    let api = &w.routes["api"].counters;
    assert_eq!(api.requests, 23);
    assert_eq!(
        (api.status_class(2), api.status_class(5)),
        (20, 3),
        "upstream 503s are counted, not classified"
    );
    assert!(api.by_error.is_empty());
    assert_eq!(api.bytes_in, 20_000, "request bodies counted as they stream");
    assert!(api.bytes_out > 20 * 100, "response bodies counted: {}", api.bytes_out);
    assert_eq!(api.in_flight, 0);

    let dead = &w.routes["dead"].counters;
    assert_eq!(dead.by_error[&ErrorClass::ConnectRefused], 3);
    assert_eq!(
        w.clusters["dead"].traffic.counters.by_error[&ErrorClass::ConnectRefused],
        3
    );
    assert_eq!(w.routes["(unmatched)"].counters.by_error[&ErrorClass::NoRoute], 1);

    let slow = &w.routes["slow"].latency.0;
    assert_eq!(slow.len(), 5);
    let (p50, max) = (slow.value_at_quantile(0.5), slow.max());
    assert!((200_000..400_000).contains(&p50), "p50 {p50} µs for a 200 ms upstream");
    assert!(max < 1_000_000, "max {max} µs");

    let cluster = &w.clusters["u"];
    assert_eq!(cluster.traffic.counters.requests, 28, "api + slow go to cluster u");
    assert_eq!(cluster.endpoints.len(), 1);
    assert_eq!(cluster.endpoints[0].address, up.addr.to_string());
    assert_eq!(cluster.endpoints[0].traffic.counters.requests, 28);
    assert_eq!(cluster.endpoints[0].traffic.counters.bytes_in, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_with_the_configured_buckets_and_survive_reloads() {
    let up = MockUpstream::start("u").await;
    let cfg = config(&[("u", &[up.addr]), ("dead", &[dead_addr()])], ROUTES);
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    for path in ["/slow/100", "/slow/200", "/slow/400", "/api/x"] {
        http.get(sc.url(path)).send().await.unwrap().bytes().await.unwrap();
    }
    // A reload keeps the meters of routes that stay.
    assert_eq!(http.post(sc.admin_url("/config")).send().await.unwrap().status(), 200);
    http.get(sc.url("/api/y")).send().await.unwrap().bytes().await.unwrap();

    let resp = http.get(sc.admin_url("/metrics")).send().await.unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    for line in [
        "ballast_route_requests_total{route=\"api\",status_class=\"2xx\"} 2",
        "ballast_route_request_duration_seconds_bucket{route=\"slow\",le=\"0.15\"} 1",
        "ballast_route_request_duration_seconds_bucket{route=\"slow\",le=\"0.25\"} 2",
        "ballast_route_request_duration_seconds_bucket{route=\"slow\",le=\"0.3\"} 2",
        "ballast_route_request_duration_seconds_bucket{route=\"slow\",le=\"+Inf\"} 3",
        "ballast_cluster_requests_total{cluster=\"u\",status_class=\"2xx\"} 5",
        &format!(
            "ballast_endpoint_requests_total{{cluster=\"u\",endpoint=\"{}\",status_class=\"2xx\"}} 5",
            up.addr
        ),
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("/api/x"), "no raw paths in labels");

    // promtool, where installed (CI installs it), must accept the exposition.
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(std::env::var_os("CI").is_none(), "promtool must be installed in CI");
    }
}

fn access_log_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_samples_successes_and_always_logs_failures() {
    let up = MockUpstream::start("u").await;
    let dir = std::env::temp_dir().join(format!("ballast-access-{}-{}", std::process::id(), line!()));
    let _ = std::fs::remove_dir_all(&dir); // a leftover of a crashed run with the same pid
    std::fs::create_dir_all(&dir).unwrap();
    let (sampled, all) = (dir.join("sampled.jsonl"), dir.join("all.jsonl"));
    let with_log = |path: &std::path::Path, sample: f64| {
        let log = format!(
            "[telemetry.access_log]\npath = \"{}\"\nsample = {sample}\n",
            path.display()
        );
        config(
            &[("u", &[up.addr]), ("dead", &[dead_addr()])],
            &ROUTES.replace("[telemetry]", &format!("{log}\n[telemetry]")),
        )
    };
    let (none_ok, every) = (
        Proc::sidecar(BIN, &with_log(&sampled, 0.0)),
        Proc::sidecar(BIN, &with_log(&all, 1.0)),
    );
    let http = client();
    for sc in [&none_ok, &every] {
        get_n(&http, &sc.url("/api/status/200"), 10).await;
        http.get(sc.url("/api/status/502"))
            .header("x-request-id", "req-502")
            .send()
            .await
            .unwrap();
        http.get(sc.url("/dead/x")).send().await.unwrap();
        http.get(sc.url("/nowhere")).send().await.unwrap();
    }
    assert_eventually!(access_log_lines(&sampled).len() == 3, "sample 0: only the 3 failures");
    assert_eventually!(access_log_lines(&all).len() == 13, "sample 1: every request");

    let failures = access_log_lines(&sampled);
    let upstream_502 = &failures[0];
    assert_eq!(upstream_502["route"], "api");
    assert_eq!(upstream_502["method"], "GET");
    assert_eq!(
        upstream_502["path"], "/api/status/502",
        "the path as the client sent it"
    );
    assert_eq!(upstream_502["status"], 502);
    assert_eq!(upstream_502["upstream"], up.addr.to_string());
    assert_eq!(upstream_502["attempts"], 1);
    assert_eq!(
        upstream_502["error"],
        serde_json::Value::Null,
        "an upstream 502 is not a sidecar error"
    );
    assert_eq!(upstream_502["request_id"], "req-502");
    assert!(upstream_502["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(upstream_502["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(failures[1]["error"], "connect-refused");
    assert_eq!(failures[1]["status"], 503);
    assert!(failures[1]["upstream"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(failures[2]["route"], "(unmatched)");
    assert_eq!(failures[2]["error"], "no-route");
    assert_eq!(failures[2]["attempts"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Prometheus, where installed (CI installs it), scrapes the sidecar and counts what it served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_exact_request_count() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr]), ("dead", &[dead_addr()])], ROUTES));
    let http = client();
    get_n(&http, &sc.url("/api/status/200"), 37).await;
    let Some(prom) = ballast_testkit::Prometheus::start(&[sc.admin()]) else {
        return;
    };
    prom.wait_for("sum(ballast_route_requests_total{route=\"api\"})", "37")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_stats_client_yields_windows_between_polls() {
    use ballast_model::client::StatsClient;
    let up = MockUpstream::start("u").await;
    let cfg = config(&[("u", &[up.addr]), ("dead", &[dead_addr()])], ROUTES)
        .replace("[admin]\n", "[admin]\ntoken = \"t0k\"\n");
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    get_n(&http, &sc.url("/api/status/200"), 4).await;
    let mut stats = StatsClient::new(&sc.admin_url(""), Some("t0k".into()));
    let first = stats.next_window().await.unwrap();
    assert!(first.reset, "the first window runs from the sidecar's start");
    assert_eq!(first.routes["api"].counters.requests, 4);
    get_n(&http, &sc.url("/api/status/200"), 6).await;
    let second = stats.next_window().await.unwrap();
    assert!(!second.reset);
    assert_eq!(second.routes["api"].counters.requests, 6);
    assert_eq!(second.routes["api"].latency.0.len(), 6);
    assert!(second.seconds() > 0.0);

    let denied = StatsClient::new(&sc.admin_url(""), None).snapshot().await.unwrap_err();
    assert!(denied.to_string().contains("HTTP 401"), "{denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off() {
    let up = MockUpstream::start("u").await;
    let routes = ROUTES.replace("[telemetry]\n", "[telemetry]\nmetrics = false\n");
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr]), ("dead", &[dead_addr()])], &routes));
    let http = client();
    get_n(&http, &sc.url("/api/status/200"), 5).await;
    let s = stats(&sc).await;
    assert_eq!(s.routes["api"].counters.requests, 0, "nothing is counted");
    assert_eq!(s.routes["api"].latency.0.len(), 0);
    assert_eq!(s.clusters["u"].traffic.counters.bytes_out, 0);
    assert_eq!(up.requests(), 5, "traffic still flows");
}
