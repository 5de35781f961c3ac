//! `ballast demo`: the built-in default job. It starts the demo upstream and a sidecar in
//! front of it (both in this process, on free loopback ports), sends traffic through the
//! sidecar, simulates a bad deploy, and prints what happened, route by route.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use ballast_model::error_class::ERROR_HEADER;
use futures_util::StreamExt;
use tokio::net::TcpListener;

use crate::demo_upstream;

/// One request's outcome.
struct Outcome {
    route: &'static str,
    status: u16,
    class: Option<String>,
    latency: Duration,
}

const SIDECAR_CONFIG: &str = r#"# Written by `ballast demo`.
[runtime]
worker_threads = 2

[admin]
listen = "127.0.0.1:0"

[[listeners]]
listen = "127.0.0.1:0"

[[routes]]
name = "catalog"
match = { path_prefix = "/api/catalog", methods = ["GET"] }
cluster = "shop"

[[routes]]
name = "checkout"
match = { path = "/api/checkout", methods = ["POST"] }
cluster = "shop"
timeout = "300ms"

[[routes]]
name = "legacy"
match = { path_prefix = "/legacy" }
cluster = "retired"

[clusters.shop]
endpoints = [{ address = "UPSTREAM" }]
balance = "p2c-least-request"

[clusters.retired]
endpoints = [{ address = "DEAD" }]
connect_timeout = "250ms"
"#;

pub async fn run(requests: usize) -> anyhow::Result<()> {
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    let (stop_upstream, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(demo_upstream::serve(
        upstream,
        demo_upstream::default_behaviours(),
        async {
            let _ = stopped.await;
        },
    ));
    // A port nobody listens on, for the retired cluster.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;

    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("sidecar.toml");
    let text = SIDECAR_CONFIG
        .replace("UPSTREAM", &upstream_addr.to_string())
        .replace("DEAD", &dead.to_string());
    std::fs::write(&config_path, &text)?;
    let config = ballast_sidecar::config::parse(&text, &config_path.display().to_string())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sidecar = tokio::task::spawn_blocking(move || ballast_sidecar::sidecar::start(&config_path, config))
        .await?
        .context("starting the sidecar")?;
    let base = format!("http://{}", sidecar.bound.listeners[0]);

    println!("ballast demo");
    println!("  demo upstream  http://{upstream_addr}  (catalog ~5ms, checkout ~20ms, 0.1% errors)");
    println!("  sidecar        {base}  admin http://{}", sidecar.bound.admin);
    println!("  routes         catalog GET /api/catalog*, checkout POST /api/checkout (300ms timeout),");
    println!("                 legacy /legacy* -> a retired cluster nobody listens on\n");

    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(16)
        .build()?;
    let steady = traffic(&http, &base, requests, false).await;
    print_phase("1. steady state", &steady);

    // A bad deploy: checkout gets slow and starts failing.
    let bad = r#"{"p50": "120ms", "p99": "900ms", "error_rate": 0.2, "error_status": 503}"#;
    http.put(format!("http://{upstream_addr}/_demo/behaviours/api/checkout"))
        .body(bad)
        .send()
        .await?
        .error_for_status()
        .context("changing the demo upstream's behaviour")?;
    println!("\n   >> bad deploy: checkout now p50 120ms, p99 900ms, 20% 503s\n");
    let degraded = traffic(&http, &base, requests / 2, true).await;
    print_phase("2. after the bad deploy (checkout only)", &degraded);

    println!("\nWhat the sidecar did: upstream statuses passed through; requests slower than the");
    println!("route timeout became 504 `ballast-error: timeout`; the retired cluster answered 503");
    println!("`connect-refused`; paths no route matches got 404 `no-route` -- never a dropped connection.");
    println!("\nTry it yourself:");
    println!("  ballast demo-upstream --listen 127.0.0.1:8081");
    println!("  ballast-sidecar --config sidecar/tests/configs/valid/minimal.toml");
    println!("  curl -i http://127.0.0.1:8080/anything");

    tokio::task::spawn_blocking(move || sidecar.stop()).await?;
    let _ = stop_upstream.send(());
    Ok(())
}

/// Send `n` requests, 16 at a time: a mix of routes, or checkout only.
async fn traffic(http: &reqwest::Client, base: &str, n: usize, checkout_only: bool) -> Vec<Outcome> {
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (route, method, path) = match (checkout_only, i % 20) {
                (true, _) | (false, 0..=5) => ("checkout", reqwest::Method::POST, "/api/checkout"),
                (false, 18) => ("legacy", reqwest::Method::GET, "/legacy/orders"),
                (false, 19) => ("(none)", reqwest::Method::GET, "/api/unknown"),
                _ => ("catalog", reqwest::Method::GET, "/api/catalog/items"),
            };
            let req = http
                .request(method, format!("{base}{path}"))
                .body(if route == "checkout" { "{\"cart\": 1}" } else { "" });
            async move {
                let t0 = Instant::now();
                match req.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let class = resp
                            .headers()
                            .get(ERROR_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let _ = resp.bytes().await;
                        Outcome {
                            route,
                            status,
                            class,
                            latency: t0.elapsed(),
                        }
                    }
                    Err(_) => Outcome {
                        route,
                        status: 0,
                        class: Some("client-error".into()),
                        latency: t0.elapsed(),
                    },
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

fn print_phase(title: &str, outcomes: &[Outcome]) {
    println!("{title}: {} requests", outcomes.len());
    println!(
        "   {:<10} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9}  failures by class",
        "route", "reqs", "2xx", "4xx", "5xx", "p50", "p99"
    );
    let mut by_route: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        by_route.entry(o.route).or_default().push(o);
    }
    for (route, os) in by_route {
        let count = |lo: u16, hi: u16| os.iter().filter(|o| (lo..hi).contains(&o.status)).count();
        let mut lat: Vec<Duration> = os.iter().map(|o| o.latency).collect();
        lat.sort();
        let pct = |q: f64| lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1];
        let mut classes: BTreeMap<String, usize> = BTreeMap::new();
        for o in os.iter().filter(|o| o.status >= 400 || o.status == 0) {
            let name = o.class.clone().unwrap_or_else(|| format!("upstream {}", o.status));
            *classes.entry(name).or_default() += 1;
        }
        let classes: Vec<String> = classes.iter().map(|(c, n)| format!("{c} x{n}")).collect();
        println!(
            "   {:<10} {:>6} {:>6} {:>6} {:>6} {:>7.1}ms {:>7.1}ms  {}",
            route,
            os.len(),
            count(200, 300),
            count(400, 500),
            count(500, 600),
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            if classes.is_empty() {
                "-".to_owned()
            } else {
                classes.join(", ")
            }
        );
    }
}
