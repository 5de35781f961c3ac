//! End-to-end: the response cache through the real binary, against a mock upstream that counts
//! requests per path and fails on command.

mod common;

use ballast_model::stats::{Counters, StatsSnapshot};
use common::*;

/// One route `r` over the upstream, with `cache` as its cache policy.
fn cached(up: &MockUpstream, cache: &str) -> String {
    config(
        &[("u", &[up.addr])],
        &format!("[[routes]]\nname = \"r\"\ncluster = \"u\"\ncache = {cache}\n"),
    )
}

async fn route_counters(sc: &Proc) -> Counters {
    let stats: StatsSnapshot = admin_json(sc, "/stats").await;
    stats.routes["r"].counters.clone()
}

/// GET a path: status, `x-cache`, `age` (empty when absent) and body.
async fn get(http: &reqwest::Client, url: &str) -> (u16, String, String, String) {
    let resp = http.get(url).send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (x_cache, age) = (header("x-cache"), header("age"));
    let status = resp.status().as_u16();
    (status, x_cache, age, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_after_a_miss_and_no_store_respected_with_counters_in_metrics() {
    let up = MockUpstream::start("origin").await;
    let sc = Proc::sidecar(BIN, &cached(&up, "{ ttl = \"60s\" }"));
    let http = client();

    let first = get(&http, &sc.url("/cache/a?x=1")).await;
    assert_eq!(first, (200, "miss".into(), "0".into(), "/cache/a #0".into()));
    let second = get(&http, &sc.url("/cache/a?x=1")).await;
    assert_eq!(
        (second.0, second.1.as_str(), second.3.as_str()),
        (200, "hit", "/cache/a #0")
    );
    assert!(second.2.parse::<u64>().is_ok(), "a hit has an Age: {second:?}");
    assert_eq!(up.requests_to("/cache/a"), 1, "the hit never reached the upstream");

    // no-store: every request goes upstream and gets a fresh answer.
    let url = sc.url("/cache/ns?cc=no-store");
    assert_eq!(get(&http, &url).await.3, "/cache/ns #0");
    let again = get(&http, &url).await;
    assert_eq!((again.1.as_str(), again.3.as_str()), ("miss", "/cache/ns #1"));
    assert_eq!(up.requests_to("/cache/ns"), 2);
    // So do other methods.
    let post = http.post(sc.url("/cache/a?x=1")).send().await.unwrap();
    assert_eq!(post.headers()["x-cache"], "miss");
    assert_eq!(post.text().await.unwrap(), "/cache/a #1");

    let c = route_counters(&sc).await;
    assert_eq!(
        (c.cache_hits, c.cache_misses, c.cache_stale, c.cache_uncacheable),
        (1, 4, 0, 3)
    );
    let metrics = metrics_text(&sc).await;
    for line in [
        "ballast_route_cache_total{route=\"r\",result=\"hit\"} 1",
        "ballast_route_cache_total{route=\"r\",result=\"miss\"} 4",
        "ballast_route_cache_total{route=\"r\",result=\"stale\"} 0",
        "ballast_route_cache_uncacheable_total{route=\"r\"} 3",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entry_is_served_while_the_upstream_fails() {
    let up = MockUpstream::start("origin").await;
    let sc = Proc::sidecar(BIN, &cached(&up, "{ ttl = \"1s\", stale_if_error = \"5m\" }"));
    let http = client();
    assert_eq!(get(&http, &sc.url("/cache/s")).await.1, "miss");
    up.fail_cache_paths(Some(503));
    // Fresh for a second (hits), then stale: the upstream is asked, fails, and the stale entry
    // answers.
    let mut last: (u16, String, String, String);
    assert_eventually!(
        {
            last = get(&http, &sc.url("/cache/s")).await;
            last.1 == "stale"
        },
        "never served stale: {last:?}"
    );
    let (status, _, age, body) = last;
    assert_eq!((status, body.as_str()), (200, "/cache/s #0"));
    assert!(age.parse::<u64>().unwrap() >= 1);
    assert!(up.requests_to("/cache/s") >= 2, "the failing upstream was asked");
    // Nothing stored for a path: its failure passes through.
    let uncached = get(&http, &sc.url("/cache/never")).await;
    assert_eq!((uncached.0, uncached.1.as_str()), (503, "miss"));
    assert!(route_counters(&sc).await.cache_stale >= 1);

    // Recovered: the next request past freshness stores a new answer.
    up.fail_cache_paths(None);
    let fresh = get(&http, &sc.url("/cache/s")).await;
    assert_eq!((fresh.0, fresh.1.as_str()), (200, "miss"));
    assert_ne!(fresh.3, "/cache/s #0");
    assert_eq!(get(&http, &sc.url("/cache/s")).await.1, "hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_misses_make_one_upstream_request() {
    let up = MockUpstream::start("origin").await;
    let sc = Proc::sidecar(BIN, &cached(&up, "{}"));
    let http = client();
    let url = sc.url("/cache/hot?delay_ms=300");
    let all = futures_util::future::join_all((0..100).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move { get(&http, &url).await })
    }))
    .await;
    let all: Vec<_> = all.into_iter().map(Result::unwrap).collect();
    assert_eq!(up.requests_to("/cache/hot"), 1);
    assert!(all.iter().all(|a| a.0 == 200 && a.3 == "/cache/hot #0"), "{all:?}");
    assert_eq!(all.iter().filter(|a| a.1 == "miss").count(), 1);
    assert_eq!(all.iter().filter(|a| a.1 == "hit").count(), 99);
    let c = route_counters(&sc).await;
    assert_eq!((c.cache_hits, c.cache_misses), (99, 1));
}
