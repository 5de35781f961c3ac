//! End-to-end: the sidecar's life: admin API, hot reload, drain on SIGTERM, connection limits.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn route_to(cluster: &str) -> String {
    format!("[[routes]]\nname = \"main\"\ncluster = \"{cluster}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_health_readiness_and_effective_config() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], &route_to("u")));
    let http = client();
    assert_eq!(http.get(sc.admin_url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(sc.admin_url("/readyz")).send().await.unwrap().status(), 200);
    let cfg: serde_json::Value = admin_json(&sc, "/config").await;
    assert_eq!(cfg["routes"][0]["name"], "main");
    assert_eq!(cfg["routes"][0]["timeout"], "15s", "defaults are shown");
    assert_eq!(cfg["clusters"]["u"]["endpoints"][0]["address"], up.addr.to_string());
    assert_eq!(http.get(sc.admin_url("/nope")).send().await.unwrap().status(), 404);
    assert_eq!(http.delete(sc.admin_url("/config")).send().await.unwrap().status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_is_enforced() {
    let up = MockUpstream::start("u").await;
    let cfg = config(&[("u", &[up.addr])], &route_to("u")).replace("[admin]\n", "[admin]\ntoken = \"s3cret\"\n");
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    let denied = http.get(sc.admin_url("/config")).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(
        http.get(sc.admin_url("/healthz"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let ok = http
        .get(sc.admin_url("/config"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(!ok.text().await.unwrap().contains("s3cret"), "the token is never shown");
    assert_eq!(
        http.post(sc.admin_url("/config")).send().await.unwrap().status(),
        401,
        "no reload without the token"
    );
}

#[test]
fn non_loopback_admin_without_token_refuses_to_start() {
    let dir = tempfile_dir();
    let path = dir.join("open-admin.toml");
    std::fs::write(&path, "[admin]\nlisten = \"0.0.0.0:9901\"\n[[listeners]]\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\nendpoints = [{ address = \"127.0.0.1:1\" }]\n").unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "open-admin.toml:2:10: admin.listen: admin API on non-loopback address \"0.0.0.0:9901\" without a token"
        ),
        "{err}"
    );
    assert!(err.contains("fix: set admin.token"), "{err}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ballast-test-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Keep requests flowing from a background thread; count failures (anything but 200).
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(url: String, clients: usize) -> Self {
        let (stop, ok, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let http = client();
                        while !stop.load(Ordering::Relaxed) {
                            match http.get(&url).send().await {
                                Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                                _ => failed.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    });
                })
            })
            .collect();
        Traffic {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_applies_good_configs_and_rejects_bad_ones_without_failing_requests() {
    let (a, b) = (MockUpstream::start("a").await, MockUpstream::start("b").await);
    let clusters: [(&str, &[SocketAddr]); 2] = [("a", &[a.addr]), ("b", &[b.addr])];
    let sc = Proc::sidecar(BIN, &config(&clusters, &route_to("a")));
    let http = client();
    assert_eq!(upstream_of(&http.get(sc.url("/")).send().await.unwrap()), "a");

    // A good config through the admin API: new requests go to b.
    sc.write_config(&config(&clusters, &route_to("b")));
    let resp = http.post(sc.admin_url("/config")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(upstream_of(&http.get(sc.url("/")).send().await.unwrap()), "b");

    // A good config through SIGHUP: back to a.
    sc.write_config(&config(&clusters, &route_to("a")));
    sc.signal(libc::SIGHUP);
    assert_eventually!(
        upstream_of(&http.get(sc.url("/")).send().await.unwrap()) == "a",
        "SIGHUP reload routes to a again"
    );

    // Bad configs under load: rejected with the reason, the old config keeps serving, no failed request.
    let traffic = Traffic::start(sc.url("/"), 4);
    assert_eventually!(traffic.ok() > 50, "traffic is flowing");
    let bad = config(&clusters, &route_to("a")).replace("cluster = \"a\"", "cluster = \"nope\"\ntimeout = \"0s\"");
    sc.write_config(&bad);
    let resp = http.post(sc.admin_url("/config")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("routes[0].cluster: unknown cluster \"nope\""), "{text}");
    assert!(text.contains("routes[0].timeout: timeout is zero"), "{text}");
    sc.write_config("this is [not toml");
    sc.signal(libc::SIGHUP);
    assert_eventually!(sc.stderr().contains("config rejected"), "the rejection is logged");
    let before = traffic.ok();
    assert_eventually!(
        traffic.ok() > before + 50,
        "traffic keeps flowing after the rejected reload"
    );
    let (ok, failed) = traffic.finish();
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during bad reloads",
        ok + failed
    );
    assert_eq!(upstream_of(&http.get(sc.url("/")).send().await.unwrap()), "a");
    let cfg: serde_json::Value = admin_json(&sc, "/config").await;
    assert_eq!(cfg["routes"][0]["cluster"], "a", "the running config is unchanged");

    // Changing listeners needs a restart: refused, not half-applied.
    sc.write_config(
        &config(&clusters, &route_to("b")).replace("127.0.0.1:0\"\n\n[[routes]]", "127.0.0.1:1\"\n\n[[routes]]"),
    );
    let resp = http.post(sc.admin_url("/config")).send().await.unwrap();
    assert_eq!(resp.status(), 409, "{}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_in_flight_then_exits_zero() {
    let up = MockUpstream::start("u").await;
    let mut sc = Proc::sidecar(
        BIN,
        &config_with(
            "[runtime]\nworker_threads = 2\ndrain_timeout = \"10s\"\n",
            &[("u", &[up.addr])],
            &route_to("u"),
        ),
    );
    let url = sc.url("/slow/1500");
    let in_flight: Vec<_> = (0..6).map(|_| tokio::spawn(client().get(url.clone()).send())).collect();
    assert_eventually!(up.requests() == 6, "all slow requests reached the upstream");
    sc.signal(libc::SIGTERM);
    // New connections are refused once the listeners close, while the old ones finish.
    let addr = sc.listener(0);
    assert_eventually!(TcpStream::connect(addr).is_err(), "listener closed after SIGTERM");
    for r in in_flight {
        let resp = r.await.unwrap().expect("request in flight completes");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "slow\n");
    }
    let status = tokio::task::spawn_blocking(move || sc.wait_timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit 0 after draining");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_shutdown() {
    let up = MockUpstream::start("u").await;
    let mut sc = Proc::sidecar(
        BIN,
        &config_with(
            "[runtime]\nworker_threads = 1\ndrain_timeout = \"300ms\"\n",
            &[("u", &[up.addr])],
            &route_to("u"),
        ),
    );
    let stuck = tokio::spawn(client().get(sc.url("/slow/30000")).send());
    assert_eventually!(up.requests() == 1, "request reached the upstream");
    let t0 = Instant::now();
    sc.signal(libc::SIGTERM);
    let status = tokio::task::spawn_blocking(move || sc.wait_timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the drain timeout cut the 30 s request short"
    );
    assert!(
        stuck.await.unwrap().is_err(),
        "the stuck request's connection was closed"
    );
}

fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_limits_slow_heads_and_idle_connections() {
    let up = MockUpstream::start("u").await;
    let head = "[runtime]\nworker_threads = 1\n";
    let cfg = config_with(head, &[("u", &[up.addr])], &route_to("u")).replace(
        "listen = \"127.0.0.1:0\"\n\n[[routes]]",
        "listen = \"127.0.0.1:0\"\nmax_request_header_size = \"8KiB\"\nheader_read_timeout = \"300ms\"\nidle_timeout = \"600ms\"\n\n[[routes]]",
    );
    let sc = Proc::sidecar(BIN, &cfg);
    let addr = sc.listener(0);
    tokio::task::spawn_blocking(move || {
        // An oversized head gets 431.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n", "a".repeat(16 * 1024));
        let _ = s.write_all(big.as_bytes());
        let resp = read_all(&mut s);
        assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");

        // Slowloris: a head that never completes is cut off after header_read_timeout.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        let t0 = Instant::now();
        let _ = read_all(&mut s);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(4),
            "closed after {waited:?}"
        );

        // Keep-alive: served, then closed after idle_timeout (not after the header timeout).
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let t0 = Instant::now();
        let resp = read_all(&mut s);
        let waited = t0.elapsed();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(
            waited >= Duration::from_millis(550) && waited < Duration::from_secs(4),
            "idle connection closed after {waited:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_extra_clients_in_the_queue() {
    let up = MockUpstream::start("u").await;
    let cfg = config(&[("u", &[up.addr])], &route_to("u")).replace(
        "listen = \"127.0.0.1:0\"\n\n[[routes]]",
        "listen = \"127.0.0.1:0\"\nmax_connections = 2\n\n[[routes]]",
    );
    let sc = Proc::sidecar(BIN, &cfg);
    let addr = sc.listener(0);
    tokio::task::spawn_blocking(move || {
        let request = b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n";
        let exchange = |s: &mut TcpStream| -> std::io::Result<String> {
            s.write_all(request)?;
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        let mut first = TcpStream::connect(addr).unwrap();
        let mut second = TcpStream::connect(addr).unwrap();
        for s in [&mut first, &mut second] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert!(exchange(s).unwrap().starts_with("HTTP/1.1 200"));
        }
        let mut third = TcpStream::connect(addr).unwrap(); // the kernel queues it
        third.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        assert!(
            exchange(&mut third).is_err(),
            "a third connection is not served while two are open"
        );
        drop(first);
        third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        let n = third.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "served once a slot frees up"
        );
    })
    .await
    .unwrap();
}

/// The next `data:` message of a Server-Sent Events response, as JSON.
async fn next_event(resp: &mut reqwest::Response, buf: &mut String) -> serde_json::Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let message: String = buf.drain(..end + 2).collect();
            if let Some(data) = message.trim_end().strip_prefix("data: ") {
                return serde_json::from_str(data).unwrap();
            }
            continue; // a heartbeat comment
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_reloads_live_and_replays_them_to_new_subscribers() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], &route_to("u")));
    let http = client();
    let mut live = http.get(sc.admin_url("/events")).send().await.unwrap();
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();

    assert_eq!(http.post(sc.admin_url("/config")).send().await.unwrap().status(), 200);
    let reloaded = next_event(&mut live, &mut buf).await;
    assert_eq!(reloaded["kind"], "config_reloaded");
    assert_eq!(reloaded["trigger"], "admin API");
    assert_eq!(reloaded["source"], "sidecar");
    assert_eq!(reloaded["routes"], 1);

    sc.write_config("[[listener]]\nlisten = \"127.0.0.1:0\"\n");
    sc.signal(libc::SIGHUP);
    let rejected = next_event(&mut live, &mut buf).await;
    assert_eq!(rejected["kind"], "config_rejected");
    assert_eq!(rejected["trigger"], "SIGHUP");
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .contains("unknown section \"listener\""),
        "{rejected}"
    );
    assert!(rejected["at_ms"].as_u64().unwrap() >= reloaded["at_ms"].as_u64().unwrap());

    let mut late = http.get(sc.admin_url("/events")).send().await.unwrap();
    let mut late_buf = String::new();
    assert_eq!(
        next_event(&mut late, &mut late_buf).await,
        reloaded,
        "replayed in order"
    );
    assert_eq!(next_event(&mut late, &mut late_buf).await, rejected);
}
