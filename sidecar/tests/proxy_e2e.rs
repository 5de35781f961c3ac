//! End-to-end: the real `ballast-sidecar` binary between real clients and mock upstreams.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_path_method_and_header_in_order() {
    let (a, b, c) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
        MockUpstream::start("c").await,
    );
    let cfg = config(
        &[("a", &[a.addr]), ("b", &[b.addr]), ("c", &[c.addr])],
        r#"
[[routes]]
name = "admin-host"
match = { host = "admin.example.com" }
cluster = "c"
[[routes]]
name = "canary"
match = { path_prefix = "/api", headers = [{ name = "x-canary", value = "yes" }] }
cluster = "b"
[[routes]]
name = "writes"
match = { path_prefix = "/api", methods = ["POST", "PUT"] }
cluster = "b"
[[routes]]
name = "users"
match = { path_regex = "/users/[0-9]+" }
cluster = "c"
[[routes]]
name = "api"
match = { path_prefix = "/api" }
cluster = "a"
"#,
    );
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    let to = |r: &reqwest::Response| upstream_of(r);
    assert_eq!(to(&http.get(sc.url("/api/x")).send().await.unwrap()), "a");
    assert_eq!(to(&http.post(sc.url("/api/x")).send().await.unwrap()), "b");
    assert_eq!(
        to(&http
            .get(sc.url("/api/x"))
            .header("x-canary", "yes")
            .send()
            .await
            .unwrap()),
        "b"
    );
    assert_eq!(
        to(&http
            .get(sc.url("/api/x"))
            .header("host", "admin.example.com")
            .send()
            .await
            .unwrap()),
        "c"
    );
    assert_eq!(to(&http.get(sc.url("/users/7")).send().await.unwrap()), "c");
    let miss = http.get(sc.url("/users/7/photos")).send().await.unwrap();
    assert_eq!(miss.status(), 404);
    assert_eq!(error_class(&miss), "no-route");
    assert!(miss.headers().contains_key("x-request-id"));
}

async fn spread(url: &str, n: usize) -> HashMap<String, usize> {
    let http = client();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        *counts.entry(upstream_of(&resp)).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_exact_and_weighted_follows_weights() {
    let ups = [
        MockUpstream::start("u0").await,
        MockUpstream::start("u1").await,
        MockUpstream::start("u2").await,
    ];
    let addrs: Vec<_> = ups.iter().map(|u| u.addr).collect();
    let mut cfg = config(
        &[("rr", &addrs)],
        "[[routes]]\nname = \"rr\"\nmatch = { path_prefix = \"/rr\" }\ncluster = \"rr\"\n[[routes]]\nname = \"w\"\nmatch = { path_prefix = \"/w\" }\ncluster = \"w\"\n[[routes]]\nname = \"p2c\"\nmatch = { path_prefix = \"/p2c\" }\ncluster = \"p2c\"\n",
    );
    cfg.push_str(&format!(
        "\n[clusters.w]\nbalance = \"weighted-round-robin\"\nendpoints = [{{ address = \"{}\", weight = 1 }}, {{ address = \"{}\", weight = 3 }}]\n",
        addrs[0], addrs[1]
    ));
    cfg.push_str(&format!("\n[clusters.p2c]\nbalance = \"p2c-least-request\"\nendpoints = [{{ address = \"{}\" }}, {{ address = \"{}\" }}]\n", addrs[0], addrs[2]));
    let sc = Proc::sidecar(BIN, &cfg);

    let rr = spread(&sc.url("/rr"), 300).await;
    assert_eq!((rr["u0"], rr["u1"], rr["u2"]), (100, 100, 100), "{rr:?}");

    let w = spread(&sc.url("/w"), 400).await;
    let share = w["u1"] as f64 / 400.0;
    assert!((share - 0.75).abs() <= 0.05, "weight 3 of 4 should get ~75%: {w:?}");
    assert_eq!(w.get("u2"), None);

    let p = spread(&sc.url("/p2c"), 200).await;
    assert_eq!(p.values().sum::<usize>(), 200);
    assert!(
        p.contains_key("u0") && p.contains_key("u2"),
        "both endpoints are used when idle: {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_hygiene_forwarding_headers_and_rewrites() {
    let up = MockUpstream::start("u").await;
    let cfg = config(
        &[("u", &[up.addr])],
        r#"
[[routes]]
name = "v1"
match = { path_prefix = "/v1/" }
prefix_rewrite = "/internal/"
host_rewrite = "api.internal"
cluster = "u"
request_headers_add = { "x-team" = "checkout" }
request_headers_remove = ["x-debug"]
response_headers_add = { "x-served-by" = "ballast" }
response_headers_remove = ["x-upstream"]
[[routes]]
name = "no-host"
match = { path_prefix = "/no-host/" }
cluster = "u"
request_headers_remove = ["host"]
[[routes]]
name = "rest"
cluster = "u"
"#,
    );
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();

    let resp = http
        .get(sc.url("/anything?q=1"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-forwarded-for", "10.1.2.3")
        .header("host", "shop.example:8080")
        .send()
        .await
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID is generated and returned");
    let e = echo(resp).await;
    let h = &e["headers"];
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(h.get(gone).is_none(), "{gone} must not reach the upstream: {h}");
    }
    assert_eq!(h["te"][0], "trailers");
    assert_eq!(h["x-forwarded-for"][0], "10.1.2.3, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["host"][0], "shop.example:8080", "Host is preserved by default");
    assert!(
        h.get("x-forwarded-host").is_none(),
        "the preserved Host says it already: {h}"
    );
    assert_eq!(h["x-request-id"][0], generated.as_str());
    assert_eq!(e["path"], "/anything?q=1");

    let resp = http
        .get(sc.url("/v1/orders/9?full=1"))
        .header("x-request-id", "trace-me")
        .header("x-debug", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me");
    assert_eq!(resp.headers()["x-served-by"], "ballast");
    assert!(resp.headers().get("x-upstream").is_none());
    let e = echo(resp).await;
    assert_eq!(e["path"], "/internal/orders/9?full=1");
    assert_eq!(e["headers"]["host"][0], "api.internal");
    assert_eq!(
        e["headers"]["x-forwarded-host"][0],
        sc.listener(0).to_string(),
        "a rewritten Host goes on as X-Forwarded-Host"
    );
    assert_eq!(e["headers"]["x-team"][0], "checkout");
    assert!(e["headers"].get("x-debug").is_none());
    assert_eq!(e["headers"]["x-request-id"][0], "trace-me");

    // Forwarding headers the client names in `Connection` are its hop's: ours are set anew
    // (on a route that rewrites Host, so that there is an `X-Forwarded-Host` of ours).
    let resp = http
        .get(sc.url("/v1/hop"))
        .header("connection", "x-forwarded-proto, x-forwarded-host")
        .header("x-forwarded-proto", "gopher")
        .header("x-forwarded-host", "spoofed.example")
        .header("host", "shop.example")
        .send()
        .await
        .unwrap();
    let e = echo(resp).await;
    assert_eq!(e["headers"]["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(e["headers"]["x-forwarded-host"], serde_json::json!(["shop.example"]));

    // A route that removes Host still sends one (preserved: the client's).
    let resp = http
        .get(sc.url("/no-host/x"))
        .header("host", "shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(echo(resp).await["headers"]["host"], serde_json::json!(["shop.example"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_become_classified_responses() {
    let up = MockUpstream::start("u").await;
    let garbage = RawUpstream::start(b"this is not http\r\n\r\n").await;
    let closer = RawUpstream::start(b"").await;
    let hole = blackhole();
    let mut cfg = config(
        &[
            ("u", &[up.addr]),
            ("dead", &[dead_addr()]),
            ("garbage", &[garbage.addr]),
            ("closer", &[closer.addr]),
        ],
        r#"
[[routes]]
name = "hole"
match = { path_prefix = "/hole" }
cluster = "hole"
[[routes]]
name = "dead"
match = { path_prefix = "/dead" }
cluster = "dead"
[[routes]]
name = "garbage"
match = { path_prefix = "/garbage" }
cluster = "garbage"
[[routes]]
name = "closer"
match = { path_prefix = "/closer" }
cluster = "closer"
[[routes]]
name = "slow"
match = { path_prefix = "/slow" }
timeout = "200ms"
cluster = "u"
[[routes]]
name = "small"
match = { path_prefix = "/small" }
max_request_body = "1KiB"
cluster = "u"
[[routes]]
name = "u"
match = { path_prefix = "/" }
cluster = "u"
"#,
    );
    cfg.push_str(&format!(
        "\n[clusters.hole]\nconnect_timeout = \"200ms\"\nendpoints = [{{ address = \"{}\" }}]\n",
        hole.addr
    ));
    let sc = Proc::sidecar(BIN, &cfg);
    let http = client();
    let cases = [
        ("/hole", 503, "connect-timeout"),
        ("/dead", 503, "connect-refused"),
        ("/garbage", 502, "protocol"),
        ("/closer", 502, "reset"),
        ("/reset", 502, "reset"),
        ("/slow/2000", 504, "timeout"),
    ];
    for (path, status, class) in cases {
        let resp = http
            .get(sc.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: connection failed: {e}"));
        assert_eq!(
            (resp.status().as_u16(), error_class(&resp)),
            (status, class.to_owned()),
            "{path}"
        );
        assert!(!resp.text().await.unwrap().is_empty(), "{path}: a short body explains");
    }
    // The sidecar keeps serving after every failure, on the same connection.
    assert_eq!(http.get(sc.url("/status/204")).send().await.unwrap().status(), 204);
    assert_eq!(
        http.get(sc.url("/status/503")).send().await.unwrap().status(),
        503,
        "upstream statuses pass through"
    );

    let big = http.post(sc.url("/small")).body(vec![b'x'; 4096]).send().await.unwrap();
    assert_eq!(
        (big.status().as_u16(), error_class(&big)),
        (413, "body-too-large".to_owned())
    );
    let chunks = futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 512])));
    let big = http
        .post(sc.url("/small"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (big.status().as_u16(), error_class(&big)),
        (413, "body-too-large".to_owned()),
        "chunked bodies are capped too"
    );
    assert_eq!(
        big.headers()["connection"],
        "close",
        "the unread rest ends the connection, and the client is told"
    );
    let ok = http.post(sc.url("/small")).body(vec![b'x'; 1000]).send().await.unwrap();
    assert_eq!(echo(ok).await["body_len"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mebibytes_stream_both_ways_with_flat_memory() {
    const SIZE: usize = 100 << 20;
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], "[[routes]]\ncluster = \"u\"\n"));
    let http = client();

    let chunk = bytes::Bytes::from(vec![b'y'; 256 * 1024]);
    let upload =
        futures_util::stream::iter((0..SIZE / chunk.len()).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let resp = http
        .post(sc.url("/sink"))
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .unwrap();
    assert_eq!(echo(resp).await["body_len"], SIZE);

    let mut resp = http.get(sc.url(&format!("/bytes/{SIZE}"))).send().await.unwrap();
    let mut got = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got += chunk.len();
    }
    assert_eq!(got, SIZE);

    let peak = rss_kib(sc.pid(), "VmHWM");
    assert!(
        peak > 0 && peak < 48 * 1024,
        "sidecar peak RSS {peak} KiB while moving 2 x 100 MiB: bodies must stream, not buffer"
    );
}

/// Send raw bytes on a fresh connection; return everything read until the peer closes or
/// `until` appears.
fn raw(addr: std::net::SocketAddr, request: &[u8], until: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&out).contains(until) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_trailers_and_expect_continue() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], "[[routes]]\ncluster = \"u\"\n"));
    let addr = sc.listener(0);
    // Blocking sockets: keep them off the runtime that drives the mock upstream.
    tokio::task::spawn_blocking(move || raw_exchanges(addr)).await.unwrap();
}

fn raw_exchanges(addr: std::net::SocketAddr) {
    // Upgrade passthrough: after 101 the sidecar relays raw bytes both ways.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for msg in [&b"hello"[..], b"second message"] {
        s.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }

    // Trailers reach a client that accepts them.
    let resp = raw(
        addr,
        b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n",
        "x-checksum: 1234",
    );
    assert!(resp.contains("part one,") && resp.contains("part two"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("x-checksum: 1234"),
        "trailers are forwarded: {resp}"
    );

    // Expect: 100-continue is answered before the body is sent.
    let resp = raw(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        "100 Continue",
    );
    assert!(resp.starts_with("HTTP/1.1 100 Continue"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_downstream_and_h2_upstream() {
    let up = MockUpstream::start("u").await;
    let mut cfg = config(
        &[("u", &[up.addr])],
        "[[routes]]\nmatch = { path_prefix = \"/h2up\" }\ncluster = \"h2\"\n[[routes]]\ncluster = \"u\"\n",
    );
    cfg.push_str(&format!(
        "\n[clusters.h2]\nprotocol = \"http2\"\nendpoints = [{{ address = \"{}\" }}]\n",
        up.addr
    ));
    let sc = Proc::sidecar(BIN, &cfg);
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.get(sc.url("/x")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let e = echo(resp).await;
    assert_eq!(e["version"], "HTTP/1.1", "HTTP/1.1 upstream");
    assert!(
        e["headers"]["host"][0].as_str().unwrap().starts_with("127.0.0.1:"),
        ":authority becomes Host"
    );

    let e = echo(client().get(sc.url("/h2up")).send().await.unwrap()).await;
    assert_eq!(e["version"], "HTTP/2.0", "the cluster speaks h2 to its endpoints");
    assert_eq!(
        e["headers"]["x-forwarded-host"][0],
        sc.listener(0).to_string(),
        "`:authority` names the endpoint, so the client's Host goes on as X-Forwarded-Host"
    );
}

fn curl(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http1_and_h2_prior_knowledge() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], "[[routes]]\ncluster = \"u\"\n"));
    let url = sc.url("/hello");
    let (out, _) = tokio::task::spawn_blocking(move || curl(&["-i", "--http1.1", &url]))
        .await
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"path\":\"/hello\""), "{out}");
    let url = sc.url("/hello");
    let (out, _) = tokio::task::spawn_blocking(move || curl(&["-i", "--http2-prior-knowledge", &url]))
        .await
        .unwrap();
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    let url = sc.url("/upload");
    let (out, err) = tokio::task::spawn_blocking(move || {
        curl(&[
            "-v",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &"z".repeat(2048),
            &url,
        ])
    })
    .await
    .unwrap();
    assert!(err.contains("100 Continue"), "curl saw the interim response: {err}");
    assert!(out.contains("\"body_len\":2048"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrk_load_sees_no_errors() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], "[[routes]]\ncluster = \"u\"\n"));
    let url = sc.url("/status/200");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("wrk")
            .args(["-t1", "-c16", "-d2s", &url])
            .output()
            .expect("wrk is installed")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    assert!(!text.contains("Socket errors"), "{text}");
    let requests: u64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split(" requests in")
                .next()
                .filter(|_| l.contains("requests in"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0);
    assert!(requests > 100, "wrk completed {requests} requests: {text}");
    let reached = up.requests() as u64;
    assert!(
        reached >= requests && reached <= requests + 16,
        "{reached} upstream requests for {requests} completed (+ up to 16 cut off)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled_and_closed_ones_replaced() {
    let up = MockUpstream::start("u").await;
    let one_worker = "[runtime]\nworker_threads = 1\n";
    let sc = Proc::sidecar(
        BIN,
        &config_with(one_worker, &[("u", &[up.addr])], "[[routes]]\ncluster = \"u\"\n"),
    );
    let http = client();
    for _ in 0..50 {
        assert_eq!(http.get(sc.url("/status/200")).send().await.unwrap().status(), 200);
    }
    assert_eq!(up.connections(), 1, "sequential requests reuse one pooled connection");
    // An upstream that closes after each answer: every request still succeeds, on a new connection.
    for _ in 0..10 {
        assert_eq!(http.get(sc.url("/close")).send().await.unwrap().status(), 200);
    }
    // The first reuses the pooled connection; each later one needs a new connection.
    assert_eq!(up.connections(), 10);
    // Bodies read halfway are not reused: the next request still gets a working connection.
    let resp = http.get(sc.url("/bytes/10000000")).send().await.unwrap();
    drop(resp);
    assert_eq!(http.get(sc.url("/status/200")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_4xx_and_the_sidecar_keeps_serving() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(BIN, &config(&[("u", &[up.addr])], "[[routes]]\ncluster = \"u\"\n"));
    let addr = sc.listener(0);
    let answers = tokio::task::spawn_blocking(move || {
        [
            &b"NOT HTTP AT ALL\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
        ]
        .map(|req| raw(addr, req, "\r\n\r\n"))
    })
    .await
    .unwrap();
    for answer in &answers {
        let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "expected a 4xx, got {answer:?}");
    }
    assert_eq!(up.requests(), 0, "nothing malformed reached the upstream");
    assert_eq!(client().get(sc.url("/fine")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_pipelined_handed_over_and_http10_requests() {
    let up = MockUpstream::start("u").await;
    let sc = Proc::sidecar(
        BIN,
        &config(&[("u", &[up.addr])], "[[routes]]\nname = \"r\"\ncluster = \"u\"\n"),
    );
    let addr = sc.listener(0);
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut seen = String::new();
        // Read until `n` answers (JSON echoes) have arrived in all.
        fn read_until(s: &mut std::net::TcpStream, seen: &mut String, n: usize) {
            let mut buf = [0u8; 8192];
            while seen.matches("HTTP/1.1 200 OK").count() < n || !seen.ends_with('}') {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => seen.push_str(&String::from_utf8_lossy(&buf[..k])),
                }
            }
        }
        // Two requests in one write: two answers, in order.
        s.write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_until(&mut s, &mut seen, 2);
        let (first, second) = (seen.find("/first").unwrap(), seen.find("/second").unwrap());
        assert!(first < second, "{seen}");
        // A chunked upload (served by hyper from here on), then a plain request on the same connection.
        s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            .unwrap();
        read_until(&mut s, &mut seen, 3);
        assert!(seen.contains("\"body_len\":3"), "{seen}");
        s.write_all(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_until(&mut s, &mut seen, 4);
        assert!(seen.contains("/third"), "{seen}");
        // HTTP/1.0 without keep-alive: the answer, then the connection closes.
        let answer = raw(addr, b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n", "never");
        assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with('}'), "read to the close: {answer}");
        // A request with a short body read whole.
        let answer = raw(
            addr,
            b"POST /short HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "}",
        );
        assert!(answer.contains("\"body_len\":5"), "{answer}");
    })
    .await
    .unwrap();
    // A client that leaves mid-request cancels it: the request is no longer in flight.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /slow/30000 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let in_flight = || async {
        admin_json::<ballast_model::StatsSnapshot>(&sc, "/stats").await.routes["r"]
            .counters
            .in_flight
    };
    assert_eventually!(in_flight().await == 1, "the slow request is in flight");
    drop(s);
    assert_eventually!(in_flight().await == 0, "the request ended with its client");
}
