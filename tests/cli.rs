//! End-to-end tests of the `ballast` binary.

use std::process::Command;

use ballast_testkit::assert_eventually;

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn configs(kind: &str, name: &str) -> String {
    format!("{}/sidecar/tests/configs/{kind}/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_accepts_valid_configs() {
    let out = Command::new(BIN)
        .args([
            "validate",
            &configs("valid", "full.toml"),
            &configs("valid", "minimal.toml"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("full.toml: ok (sidecar config: 5 routes, 2 clusters)"),
        "{stdout}"
    );
}

#[test]
fn validate_tells_scenarios_load_profiles_experiments_and_slo_files_apart() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(BIN)
        .args([
            "validate",
            &format!("{root}/scenarios/smoke.toml"),
            &format!("{root}/examples/load/shop.toml"),
            &format!("{root}/slo-engine/tests/golden/slos.toml"),
            &format!("{root}/examples/experiments/checkout-abort.toml"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "smoke.toml: ok (scenario \"smoke: steady load through the sidecar\": 2 SLOs)",
        "shop.toml: ok (load profile: ",
        "slos.toml: ok (3 SLOs)",
        "checkout-abort.toml: ok (experiment \"checkout survives a flaky, slow upstream\": 2 steps)",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn validate_prints_every_error_and_exits_78() {
    let out = Command::new(BIN)
        .args(["validate", &configs("invalid", "many-errors.toml")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = std::fs::read_to_string(configs("invalid", "many-errors.expected")).unwrap();
    for line in expected.lines().filter(|l| !l.is_empty()) {
        let line = line.replace("invalid/many-errors.toml", &configs("invalid", "many-errors.toml"));
        assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
    }
}

#[test]
fn the_demo_runs_and_reports_each_failure_class() {
    let out = Command::new(BIN).args(["demo", "--requests", "100"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "1. steady state: 100 requests",
        "connect-refused x5",
        "no-route x5",
        "2. after the bad deploy",
        "upstream 503",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn demo_upstream_behaviour_changes_at_run_time() {
    let mut child = Command::new(BIN)
        .args(["demo-upstream", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let base = format!("http://{}", ready["ready"]["listen"].as_str().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let get = |p: &str| http.get(format!("{base}{p}")).send();
        let ok = get("/api/catalog/1").await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.bytes().await.unwrap().len(), 2048);

        let bad = r#"{"p50": "1ms", "p99": "2ms", "error_rate": 1.0, "error_status": 502}"#;
        let put = http
            .put(format!("{base}/_demo/behaviours/api/catalog"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
        assert_eq!(
            get("/api/catalog/1").await.unwrap().status(),
            502,
            "a bad deploy takes effect at once"
        );
        // Not checkout: its default behaviour fails one request in a thousand.
        assert_eq!(
            get("/api/search").await.unwrap().status(),
            200,
            "other paths keep their behaviour"
        );

        let invalid = http
            .put(format!("{base}/_demo/behaviours/x"))
            .body(r#"{"error_rate": 7}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), 400);
        let listing: serde_json::Value = get("/_demo/behaviours").await.unwrap().json().await.unwrap();
        assert_eq!(listing["/api/catalog"]["error_status"], 502);

        assert_eq!(
            http.post(format!("{base}/_demo/reset")).send().await.unwrap().status(),
            200
        );
        assert_eq!(get("/api/catalog/1").await.unwrap().status(), 200);
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eventually!(child.try_wait().unwrap().is_some(), "demo upstream exits on SIGTERM");
}

/// Run `ballast fault ...` against an admin API; exit code and output.
fn fault_cli(admin: std::net::SocketAddr, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("fault")
        .args(args)
        .args(["--admin", &format!("http://{admin}")])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_add_list_and_clear_drive_a_running_sidecar() {
    let up = ballast_testkit::MockUpstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.toml");
    let text = format!(
        r#"
[runtime]
worker_threads = 1
[admin]
listen = "127.0.0.1:0"
[[listeners]]
listen = "127.0.0.1:0"
[[routes]]
name = "api"
cluster = "u"
[clusters.u]
endpoints = [{{ address = "{}" }}]
[[tcp_listeners]]
name = "raw"
listen = "127.0.0.1:0"
upstream = "{}"
"#,
        up.addr, up.addr
    );
    std::fs::write(&path, &text).unwrap();
    let config = ballast_sidecar::config::parse(&text, "sidecar.toml").unwrap();
    let running = ballast_sidecar::sidecar::start(&path, config).unwrap();
    let bound = running.bound.clone();
    let get = |addr: std::net::SocketAddr| async move {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        http.get(format!("http://{addr}/echo"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    };

    let (code, out) = fault_cli(
        bound.admin,
        &["add", "abort", "--status", "503", "--route", "api", "--ttl", "2m"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("f1  abort  ") && out.contains("expires in 120s"),
        "{out}"
    );
    assert_eq!(get(bound.listeners[0]).await.unwrap(), 503);
    assert_eq!(
        get(bound.tcp_listeners[0]).await.unwrap(),
        200,
        "HTTP passes the TCP relay"
    );

    let (code, out) = fault_cli(bound.admin, &["add", "down", "--listener", "raw"]);
    assert_eq!(code, 0, "{out}");
    let refused = std::net::TcpStream::connect(bound.tcp_listeners[0]).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    let (code, out) = fault_cli(bound.admin, &["list"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains("route=api") && out.contains("matched=1 injected=1"),
        "{out}"
    );

    let (code, out) = fault_cli(bound.admin, &["add", "delay", "--delay", "-5", "--percent", "101"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("delay: must not be negative, got -5"), "{out}");
    assert!(out.contains("percent: 101 is outside 0-100"), "{out}");

    let (code, out) = fault_cli(bound.admin, &["clear", "f1"]);
    assert_eq!((code, out.trim()), (0, "removed 1 fault(s): f1"));
    assert_eq!(get(bound.listeners[0]).await.unwrap(), 200);
    let (code, out) = fault_cli(bound.admin, &["clear"]);
    assert_eq!((code, out.trim()), (0, "removed 1 fault(s): f2"));
    assert_eq!(get(bound.tcp_listeners[0]).await.unwrap(), 200, "the relay is back");
    let (_, out) = fault_cli(bound.admin, &["list"]);
    assert_eq!(out.trim(), "no faults in place");
    running.stop();
}

#[test]
fn slo_rules_are_written_for_valid_slos_and_bad_ones_exit_78_with_every_problem() {
    let golden = format!("{}/slo-engine/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(BIN)
        .args(["slo", "rules", &format!("{golden}/slos.toml")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = std::fs::read_to_string(format!("{golden}/rules.yml")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("slos.toml");
    std::fs::write(
        &bad,
        "[[slo]]\nname = \"a\"\nobjective = 0.99\nwindow = \"1h\"\nsli = { availability = {} }\n\n\
         [[slo]]\nname = \"a\"\nobjective = 99.9\nwindow = \"1h\"\nsli = { latency = { threshold = \"0s\" } }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["slo", "rules", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        ":7:1: slo[1].objective: 99.9 is outside (0, 1)",
        ":7:1: slo[1].sli.latency.threshold: the threshold is zero",
        ":7:1: slo[1].name: duplicate SLO name \"a\"",
        "fix: write a ratio such as 0.999 (not a percentage)",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
}

/// A sidecar in this process with one route, `api`, to `up`; its base URL.
fn api_sidecar(dir: &std::path::Path, up: std::net::SocketAddr) -> (ballast_sidecar::sidecar::Running, String) {
    let path = dir.join("sidecar.toml");
    let text = format!(
        "[runtime]\nworker_threads = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"api\"\ncluster = \"u\"\n[clusters.u]\nendpoints = [{{ address = \"{up}\" }}]\n"
    );
    std::fs::write(&path, &text).unwrap();
    let running =
        ballast_sidecar::sidecar::start(&path, ballast_sidecar::config::parse(&text, "sidecar.toml").unwrap()).unwrap();
    let base = format!("http://{}", running.bound.listeners[0]);
    (running, base)
}

/// 95 good requests and 5 failed (503) through the sidecar, the failures spread among them.
async fn ninety_five_good_five_bad(base: &str) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for i in 0..100 {
        let path = if i % 20 == 7 { "/status/503" } else { "/echo" };
        http.get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
}

/// `ballast slo status` over one SLO `api` with this objective, window and source arguments.
fn slo_status(dir: &std::path::Path, slo: &str, source: &[&str]) -> std::process::Output {
    let slos = dir.join("slos.toml");
    std::fs::write(&slos, format!("[[slo]]\nname = \"api\"\n{slo}\n")).unwrap();
    Command::new(BIN)
        .args(["slo", "status", slos.to_str().unwrap(), "--output", "json"])
        .args(source)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_status_reads_live_sidecars_and_exits_1_over_budget() {
    let up = ballast_testkit::MockUpstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let (running, base) = api_sidecar(dir.path(), up.addr);
    ninety_five_good_five_bad(&base).await;
    let admin = format!("http://{}", running.bound.admin);
    let run = |objective: &str| {
        slo_status(
            dir.path(),
            &format!("objective = {objective}\nwindow = \"1h\"\nsli = {{ availability = {{ route = \"api\" }} }}"),
            &["--admin", &admin, "--sample", "200ms"],
        )
    };
    // 5 bad of 100 against a 10% budget: half of it left.
    let out = run("0.9");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["source"], "sidecar");
    assert_eq!((v[0]["good"].as_u64(), v[0]["total"].as_u64()), (Some(95), Some(100)));
    assert!((v[0]["budget_remaining"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{v}");
    // Against a 1% budget they are five times over: exit 1.
    let out = run("0.99");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    running.stop();
}

/// A real Prometheus scrapes the sidecar; `slo status --prometheus` reads the SLI, the budget
/// and the burn rates with the queries the generated rules record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_status_reads_prometheus_with_the_rules_queries() {
    let up = ballast_testkit::MockUpstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let (running, base) = api_sidecar(dir.path(), up.addr);
    let Some(prom) = ballast_testkit::Prometheus::start(&[running.bound.admin]) else {
        return;
    };
    // A sample of the route's counters at zero first, so rate() sees every failure.
    prom.wait_for("ballast_route_requests_total{route=\"api\",status_class=\"5xx\"}", "0")
        .await;
    ninety_five_good_five_bad(&base).await;
    prom.wait_for("sum(ballast_route_requests_total{route=\"api\"})", "100")
        .await;

    let spec = |objective: &str, alerting: &str| {
        format!(
            "objective = {objective}\nwindow = \"1h\"\nsli = {{ availability = {{ route = \"api\" }} }}\nalerting = {alerting}"
        )
    };
    let paging_at_14x = "[{ long = \"1h\", short = \"5m\", factor = 14.4, severity = \"page\" }]";
    let out = slo_status(dir.path(), &spec("0.9", paging_at_14x), &["--prometheus", &prom.url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v[0];
    assert_eq!(s["source"], "prometheus", "{v}");
    // Both counters are scraped at the same instants, so their rates' ratio is exact.
    assert!((s["sli"].as_f64().unwrap() - 0.95).abs() < 1e-9, "{v}");
    assert!((s["budget_remaining"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{v}");
    // Events are estimated from the rate over the hour (Prometheus extrapolates a little).
    let total = s["total"].as_u64().unwrap();
    assert!((100..=200).contains(&total), "{v}");
    // 5% errors against a 10% budget burn at 0.5× over 1 h and over 5 m: no page at 14.4×.
    let rates = s["burn_rates"].as_array().unwrap();
    assert_eq!(rates.len(), 1, "{v}");
    assert!((rates[0]["long"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{v}");
    assert!((rates[0]["short"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{v}");
    assert!(s.get("alerts_firing").is_none(), "{v}");

    // Against a 0.1% budget the same traffic burns 50×: the Workbook's rows (for a 1 h
    // window: 0.02× to 0.1×) page and ticket, and the budget is overspent.
    let out = slo_status(dir.path(), &spec("0.999", "\"workbook\""), &["--prometheus", &prom.url]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["alerts_firing"], serde_json::json!(["page", "ticket"]), "{v}");
    assert_eq!(v[0]["burn_rates"].as_array().unwrap().len(), 4, "{v}");
    assert!(
        (v[0]["burn_rates"][0]["short"].as_f64().unwrap() - 50.0).abs() < 1e-6,
        "{v}"
    );
    running.stop();
}

/// Spans in the collector's file format: a trace SLO counts the selected ones and names the
/// bad traces; a broken line is reported with its file and line.
#[test]
fn slo_status_evaluates_trace_slis_from_collector_files() {
    let dir = tempfile::tempdir().unwrap();
    let span = |n: u64, ms: u64, error: bool, service: &str| {
        let start = 1_700_000_000_000_000_000u64 + n * 1_000_000_000;
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{n:032x}","spanId":"{n:016x}","name":"GET /checkout","startTimeUnixNano":"{start}","endTimeUnixNano":"{}","status":{{"code":{}}}}}]}}]}}]}}"#,
            start + ms * 1_000_000,
            if error { 2 } else { 0 }
        )
    };
    // 20 spans of shop a second apart: #3 failed, #11 took 900 ms; 5 of another service.
    let mut lines: Vec<String> = (0..20)
        .map(|n| span(n, if n == 11 { 900 } else { 50 }, n == 3, "shop"))
        .collect();
    lines.extend((20..25).map(|n| span(n, 2000, true, "other")));
    let spans = dir.path().join("spans.jsonl");
    std::fs::write(&spans, lines.join("\n")).unwrap();
    let trace_slo = "objective = 0.8\nwindow = \"1h\"\nsli = { trace = { service = \"shop\", threshold = \"500ms\" } }";
    let out = slo_status(dir.path(), trace_slo, &["--traces", spans.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v[0];
    assert_eq!(
        (s["source"].as_str(), s["good"].as_u64(), s["total"].as_u64()),
        (Some("traces"), Some(18), Some(20))
    );
    // 2 bad of 20 where 20% (4) were allowed: half the budget left.
    assert!((s["budget_remaining"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{v}");
    assert_eq!(
        s["bad_trace_ids"],
        serde_json::json!([format!("{:032x}", 3), format!("{:032x}", 11)])
    );

    std::fs::write(&spans, format!("{}\n{{\"resourceSpans\": 7}}\n", lines[0])).unwrap();
    let out = slo_status(dir.path(), trace_slo, &["--traces", spans.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2: not an OTLP JSON trace export", spans.display())),
        "{stderr}"
    );

    // No source at all is a usage error.
    let out = slo_status(dir.path(), trace_slo, &[]);
    assert_eq!(out.status.code(), Some(2));
}
