//! The load generator end to end, through its library API, against testkit upstreams and a
//! real nginx: rates counted where they arrive, weights, templates, coordinated omission,
//! iterations, cancel, an unreachable target, and result files that agree with each other.

mod common;

use std::collections::BTreeMap;
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use ballast_loadgen::{LoadError, Options, files, run, run_with};
use ballast_model::load::{EndedBy, Failure, Results};
use common::{Collector, MockUpstream, Nginx, assert_eventually, profile, write};

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_model_holds_500_requests_per_second_at_nginx() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        &format!(
            "base_url = \"{}\"\nrate = 500\nduration = \"20s\"\n[[transactions]]\npath = \"/\"\n",
            nginx.url()
        ),
    );
    let r = run(&p, None, pending()).await.unwrap();
    assert_eq!((r.requests, r.failed), (10_000, 0), "{:?}", r.all.by_error);
    assert!(within(r.rps, 500.0, 0.03), "client rate {}", r.rps);
    // Counted where they arrive: nginx logs each request's arrival (ms).
    assert_eventually!(
        nginx.arrivals().len() == 10_000,
        "nginx logged {}",
        nginx.arrivals().len()
    );
    let times: Vec<f64> = nginx.arrivals().iter().map(|a| a.0).collect();
    let (first, last) = (times[0], times[times.len() - 1]);
    let rate = (times.len() - 1) as f64 / (last - first);
    assert!(
        within(rate, 500.0, 0.03),
        "nginx saw {rate:.1} req/s over {:.2}s",
        last - first
    );
    // Held all along: every 5 s at nginx has its 2,500 requests, ±3%.
    for w in 0..4 {
        let from = first + 5.0 * w as f64;
        let n = times.iter().filter(|&&t| t >= from && t < from + 5.0).count();
        assert!(within(n as f64, 2500.0, 0.03), "window {w}: {n} requests at nginx");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_and_transaction_weights_hold() {
    let up = MockUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    // Closed model: goose gives 6 of 8 users to `browse` and 2 to `buy`.
    let closed = profile(
        dir.path(),
        &format!(
            r#"base_url = "http://{}"
users = 8
duration = "3s"
[[scenarios]]
name = "browse"
weight = 3
[[scenarios.transactions]]
name = "a"
path = "/a"
[[scenarios]]
name = "buy"
weight = 1
[[scenarios.transactions]]
name = "b"
path = "/b"
"#,
            up.addr
        ),
    );
    let r = run(&closed, None, pending()).await.unwrap();
    let (a, b) = (
        r.transactions["a"].tally.requests as f64,
        r.transactions["b"].tally.requests as f64,
    );
    assert!(b > 100.0 && within(a / b, 3.0, 0.15), "closed: a={a} b={b}");
    assert_eq!(up.requests() as u64, r.requests, "the upstream counted every request");

    // Open model: each request drawn by weight (1 : 3), counted at the upstream.
    let open = profile(
        dir.path(),
        &format!(
            r#"base_url = "http://{}"
rate = 400
duration = "3s"
[[transactions]]
name = "one"
path = "/cache/one"
[[transactions]]
name = "three"
path = "/cache/three"
weight = 3
"#,
            up.addr
        ),
    );
    let r = run(&open, None, pending()).await.unwrap();
    assert_eq!(r.requests, 1200);
    let three = up.requests_to("/cache/three") as f64;
    assert_eq!(up.requests_to("/cache/one") as f64 + three, 1200.0);
    // Binomial: the share's standard deviation is 1.25 %; allow 4 of them.
    assert!(within(three / 1200.0, 0.75, 0.05 / 0.75), "share {}", three / 1200.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_render_per_request_and_per_user() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "people.csv", "name,city\nann,oslo\nbob,rome\n");
    let p = profile(
        dir.path(),
        &format!(
            r#"base_url = "http://{}"
users = 2
iterations = 3
variables = {{ session = "s-{{{{user}}}}-{{{{random_int 7 7}}}}" }}

[data.people]
file = "people.csv"
order = "per-user"

[login]
method = "POST"
path = "/login/{{{{user}}}}"
body = '{{"who": "{{{{data.people.name}}}}"}}'
capture = {{ kind = "header:content-type" }}

[[transactions]]
name = "order"
method = "PUT"
path = "/orders/{{{{seq}}}}?city={{{{data.people.city}}}}&id={{{{uuid}}}}&n={{{{random_int 1 3}}}}"
headers = {{ "x-session" = "{{{{var.session}}}}", "x-kind" = "{{{{var.kind}}}}" }}
body = "{{{{data.people.name}}}}:{{{{seq}}}}"
"#,
            collector.addr
        ),
    );
    let r = run(&p, None, pending()).await.unwrap();
    assert_eq!((r.requests, r.failed), (8, 0), "2 logins, 2 users x 3 iterations");
    let got = collector.requests();
    let people = [("ann", "oslo"), ("bob", "rome")];
    let mut logins = 0;
    let mut seqs = Vec::new();
    for req in &got {
        if let Some(user) = req.path_and_query.strip_prefix("/login/") {
            logins += 1;
            let user: usize = user.parse().unwrap();
            assert_eq!(req.method, "POST");
            assert_eq!(req.body, format!("{{\"who\": \"{}\"}}", people[user % 2].0));
            continue;
        }
        assert_eq!(req.method, "PUT");
        let (path, query) = req.path_and_query.split_once('?').unwrap();
        let seq: u64 = path.strip_prefix("/orders/").unwrap().parse().unwrap();
        let q: BTreeMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
        let session = req.headers["x-session"].to_str().unwrap();
        let user: usize = session
            .strip_prefix("s-")
            .unwrap()
            .strip_suffix("-7")
            .unwrap()
            .parse()
            .unwrap();
        let (name, city) = people[user % 2];
        assert_eq!(q["city"], city, "the user's row (per-user order)");
        assert_eq!(req.body, format!("{name}:{seq}"), "one sequence number per request");
        assert_eq!(uuid::Uuid::parse_str(q["id"]).unwrap().get_version_num(), 4);
        assert!(("1"..="3").contains(&q["n"]), "{}", q["n"]);
        assert_eq!(
            req.headers["x-kind"], "application/x-protobuf",
            "captured from the login's answer"
        );
        seqs.push(seq);
    }
    assert_eq!((logins, seqs.len()), (2, 6));
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 6, "sequence numbers are unique: {seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_capture_feeds_the_next_requests() {
    let up = MockUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    // The echo upstream answers {"path": "/201", ...}; `/status/201` answers 201.
    let p = profile(
        dir.path(),
        &format!(
            r#"base_url = "http://{}"
users = 1
iterations = 3
[login]
path = "/201"
capture = {{ code = "json:/path" }}
[[transactions]]
name = "created"
path = "/status{{{{var.code}}}}"
status = 201
"#,
            up.addr
        ),
    );
    let r = run(&p, None, pending()).await.unwrap();
    assert_eq!(r.all.by_status.get("201"), Some(&3), "{:?}", r.all.by_status);
    assert_eq!(r.failed, 0);

    // With `http2 = true` the requests go as h2c (the echo says which version came).
    let h2 = profile(
        dir.path(),
        &format!(
            r#"base_url = "http://{}"
http2 = true
users = 1
iterations = 2
[login]
path = "/"
capture = {{ version = "json:/version" }}
[[transactions]]
path = "/cache/{{{{var.version}}}}"
"#,
            up.addr
        ),
    );
    let r = run(&h2, None, pending()).await.unwrap();
    assert_eq!(r.failed, 0);
    assert_eq!(up.requests_to("/cache/HTTP/2.0"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_counts_from_the_intended_send_time_when_the_upstream_stalls() {
    let up = Arc::new(MockUpstream::start("up").await);
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        &format!(
            "base_url = \"http://{}\"\nrate = 200\nduration = \"8s\"\nmax_users = 8\n[[transactions]]\npath = \"/\"\n",
            up.addr
        ),
    );
    // A one-second stall in the middle of the run.
    let (feed, mut seconds) = tokio::sync::mpsc::channel::<ballast_loadgen::Second>(64);
    let stall = up.clone();
    tokio::spawn(async move {
        while let Some(s) = seconds.recv().await {
            if s.second == 2 {
                stall.stall_for(Duration::from_secs(1));
            }
        }
    });
    let log = dir.path().join("requests.csv");
    let (started, started_rx) = tokio::sync::oneshot::channel();
    let options = Options {
        feed: Some(feed),
        requests_csv: Some(log.clone()),
        started: Some(started),
    };
    let r = run_with(&p, options, pending()).await.unwrap();
    // The clock the caller was told is the one the results count from.
    assert_eq!(started_rx.await.unwrap().1, r.started_at_ms);
    assert_eq!((r.requests, r.failed), (1600, 0));
    // About 200 requests were due during the stall: their wait is in their latency.
    assert!(
        r.latency_ms.p99 >= 800.0,
        "p99 {} ms: the stall is missing",
        r.latency_ms.p99
    );
    let slow = r.all.latency.0.count_between(500_000, 60_000_000);
    assert!(slow >= 50, "{slow} requests over 500 ms");
    // Measured from the actual send instead, the stall nearly vanishes: only the 8 requests
    // already out see it (what a closed loop or goose's own timing would report).
    let mut service: Vec<u64> = csv::Reader::from_path(&log)
        .unwrap()
        .records()
        .map(|row| {
            let row = row.unwrap();
            let n = |i: usize| row[i].parse::<u64>().unwrap();
            n(2) - (n(1) - n(0))
        })
        .collect();
    service.sort();
    let service_p99 = service[service.len() * 99 / 100] as f64 / 1000.0;
    assert!(
        service_p99 * 4.0 < r.latency_ms.p99,
        "service-time p99 {service_p99} ms vs corrected p99 {} ms",
        r.latency_ms.p99
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_iterations_and_stages_end_the_run() {
    let up = MockUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        &format!(
            r#"base_url = "http://{}"
users = 3
hatch_rate = 30
iterations = 4
[login]
path = "/login"
[[transactions]]
path = "/a"
[[transactions]]
path = "/b"
weight = 2
"#,
            up.addr
        ),
    );
    let r = run(&p, None, pending()).await.unwrap();
    assert_eq!(r.ended_by, EndedBy::Completed);
    assert_eq!(r.transactions["login"].tally.requests, 3);
    assert_eq!(r.transactions["GET /a"].tally.requests, 12, "3 users x 4 iterations");
    assert_eq!(
        r.transactions["GET /b"].tally.requests, 24,
        "weight 2: twice per iteration"
    );
    assert_eq!(up.requests(), 39);

    let staged = profile(
        dir.path(),
        &format!(
            r#"base_url = "http://{}"
stages = [{{ users = 2, ramp = "2s" }}, {{ users = 4, hold = "2s" }}]
[[transactions]]
path = "/"
think = "50ms"
"#,
            up.addr
        ),
    );
    let r = run(&staged, None, pending()).await.unwrap();
    assert_eq!(r.ended_by, EndedBy::Completed);
    let targets: Vec<f64> = r.timeline.iter().take(4).map(|s| s.target).collect();
    assert_eq!(targets, [0.5, 1.5, 4.0, 4.0]);
    assert!(r.requests > 20 && r.failed == 0, "{} requests", r.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_the_run_early() {
    let up = MockUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        &format!(
            "base_url = \"http://{}\"\nrate = 100\nduration = \"1h\"\n[[transactions]]\npath = \"/\"\n",
            up.addr
        ),
    );
    let (feed, mut seconds) = tokio::sync::mpsc::channel::<ballast_loadgen::Second>(8);
    let cancel = async move {
        // Cancel once the first second of load is in.
        seconds.recv().await;
    };
    let r = run(&p, Some(feed), cancel).await.unwrap();
    assert_eq!(r.ended_by, EndedBy::Canceled);
    assert!(r.requests >= 90 && r.requests < 1000, "{} requests", r.requests);
}

#[tokio::test]
async fn an_unreachable_target_is_one_error_before_any_load() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        &format!(
            "base_url = \"http://127.0.0.1:{port}\"\nrate = 100\nduration = \"10s\"\n[[transactions]]\npath = \"/\"\n"
        ),
    );
    match run(&p, None, pending()).await {
        Err(LoadError::Unreachable { url, reason }) => {
            assert_eq!(url, format!("http://127.0.0.1:{port}/"));
            assert!(reason.contains("refused"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_files_agree_with_each_other() {
    let up = MockUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        &format!(
            r#"base_url = "http://{}"
rate = 300
duration = "3s"
[[transactions]]
name = "ok"
path = "/"
weight = 3
[[transactions]]
name = "broken, on purpose"
path = "/status/500"
"#,
            up.addr
        ),
    );
    let out = dir.path().join("run");
    std::fs::create_dir(&out).unwrap();
    let options = Options {
        requests_csv: Some(out.join(files::REQUESTS_CSV)),
        ..Options::default()
    };
    let r = run_with(&p, options, pending()).await.unwrap();
    files::write_all(&r, &out).unwrap();
    assert_eq!(r.requests, 900);

    // results.json: the same results back.
    let json: Results = serde_json::from_slice(&std::fs::read(out.join(files::RESULTS_JSON)).unwrap()).unwrap();
    // (Floats may differ in their last digit after a trip through text: compare the counts.)
    assert_eq!((json.requests, json.failed, &json.all), (r.requests, r.failed, &r.all));
    assert_eq!(json.timeline.len(), r.timeline.len());
    for (a, b) in json.timeline.iter().zip(&r.timeline) {
        assert_eq!(
            (&a.all, &a.transactions),
            (&b.all, &b.transactions),
            "second {}",
            a.second
        );
    }
    for (name, t) in &r.transactions {
        assert_eq!(json.transactions[name].tally, t.tally, "{name}");
    }

    // requests.csv: one line per request, failures named.
    let mut by_tx: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut reader = csv::Reader::from_path(out.join(files::REQUESTS_CSV)).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "intended_us",
            "start_us",
            "latency_us",
            "status",
            "transaction",
            "error"
        ]
    );
    for row in reader.records() {
        let row = row.unwrap();
        let e = by_tx.entry(row[4].to_owned()).or_default();
        e.0 += 1;
        if !row[5].is_empty() {
            assert_eq!((&row[3], &row[5]), ("500", "unexpected-status"));
            e.1 += 1;
        }
        assert!(row[0] <= row[1], "sent at or after its intended time");
    }
    for (name, t) in &json.transactions {
        assert_eq!(by_tx[name], (t.tally.requests, t.tally.failed), "{name}");
    }
    assert_eq!(by_tx.values().map(|v| v.0).sum::<u64>(), json.requests);
    assert_eq!(json.failed, json.transactions["broken, on purpose"].tally.requests);

    // timeseries.csv: the seconds add up to the totals, per route too.
    let mut reader = csv::Reader::from_path(out.join(files::TIMESERIES_CSV)).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (route, requests, failed, unexpected) = (
        col("route"),
        col("requests"),
        col("failed"),
        col("errors_unexpected_status"),
    );
    let mut sums: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        let e = sums.entry(row[route].to_owned()).or_default();
        e.0 += row[requests].parse::<u64>().unwrap();
        e.1 += row[failed].parse::<u64>().unwrap();
        e.2 += row[unexpected].parse::<u64>().unwrap();
    }
    assert_eq!(sums["*"], (json.requests, json.failed, json.failed));
    for (name, t) in &json.transactions {
        assert_eq!(sums[name].0, t.tally.requests, "{name}");
    }
    assert_eq!(json.timeline.iter().map(|s| s.all.requests).sum::<u64>(), json.requests);
    assert_eq!(
        json.all.by_error.get(&Failure::UnexpectedStatus).copied().unwrap_or(0),
        json.failed
    );

    // latency.hlog: the untagged intervals hold every request; the tagged ones, each
    // transaction's.
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let log = std::fs::read(out.join(files::LATENCY_HLOG)).unwrap();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(i) = entry.unwrap() {
            let bytes = base64_decode(i.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
            let tag = i.tag().map_or("*".to_owned(), |t| t.as_str().to_owned());
            *counts.entry(tag).or_default() += h.len();
        }
    }
    assert_eq!(counts["*"], json.requests);
    assert_eq!(counts[&files::tag_for("broken, on purpose")], json.failed);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
