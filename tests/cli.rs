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
    assert!(stdout.contains("full.toml: ok (5 routes, 2 clusters)"), "{stdout}");
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
        assert_eq!(
            get("/api/checkout").await.unwrap().status(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_status_reads_live_sidecars_and_exits_1_over_budget() {
    let up = ballast_testkit::MockUpstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.toml");
    let text = format!(
        "[runtime]\nworker_threads = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"api\"\ncluster = \"u\"\n[clusters.u]\nendpoints = [{{ address = \"{}\" }}]\n",
        up.addr
    );
    std::fs::write(&path, &text).unwrap();
    let running =
        ballast_sidecar::sidecar::start(&path, ballast_sidecar::config::parse(&text, "sidecar.toml").unwrap()).unwrap();
    let base = format!("http://{}", running.bound.listeners[0]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in ["/echo"; 95].into_iter().chain(["/status/503"; 5]) {
        http.get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let slos = dir.path().join("slos.toml");
    let admin = format!("http://{}", running.bound.admin);
    let run = |objective: &str| {
        std::fs::write(
            &slos,
            format!("[[slo]]\nname = \"api\"\nobjective = {objective}\nwindow = \"1h\"\nsli = {{ availability = {{ route = \"api\" }} }}\n"),
        )
        .unwrap();
        Command::new(BIN)
            .args([
                "slo",
                "status",
                slos.to_str().unwrap(),
                "--admin",
                &admin,
                "--sample",
                "200ms",
                "--output",
                "json",
            ])
            .output()
            .unwrap()
    };
    // 5 bad of 100 against a 10% budget: half of it left.
    let out = run("0.9");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v[0]["good"].as_u64(), v[0]["total"].as_u64()), (Some(95), Some(100)));
    assert!((v[0]["budget_remaining"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{v}");
    // Against a 1% budget they are five times over: exit 1.
    let out = run("0.99");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    running.stop();
}
