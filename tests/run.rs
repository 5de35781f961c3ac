//! End-to-end tests of `ballast run`: the real binary spawns the demo upstream and the
//! sidecar, drives load, evaluates SLOs and writes the run folder.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name)
}

/// Run a scenario file into `runs`; the exit code, stdout and the run folder (if one). `runs`
/// is given relative to the runner's directory, as the README's `runs/` is.
fn run(file: &Path, runs: &Path) -> (i32, String, Option<PathBuf>) {
    let out = Command::new(BIN)
        .current_dir(runs.parent().unwrap())
        .args([
            "run",
            file.to_str().unwrap(),
            "--runs",
            runs.file_name().unwrap().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let folder = std::fs::read_dir(runs)
        .ok()
        .and_then(|mut d| d.next())
        .map(|e| e.unwrap().path());
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, folder)
}

/// Every file of a run folder with load is there, and the scenario is copied as it was.
fn assert_complete(dir: &Path, name: &str) {
    for f in [
        "scenario.toml",
        "events.jsonl",
        "timeseries.csv",
        "stats.jsonl",
        "slo.csv",
        "slo.json",
        "summary.json",
        "requests.csv",
        "results.json",
        "latency.hlog",
        "report.md",
        "report.html",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {dir:?}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("scenario.toml")).unwrap(),
        std::fs::read_to_string(scenario(name)).unwrap()
    );
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn events(dir: &Path) -> Vec<ballast_model::Event> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Run one of `scenarios/`, which must hold (exit 0) with a complete run folder, its
/// experiment held and every `[[expect]]` seen; the folder.
fn run_holding(name: &str, runs: &Path) -> PathBuf {
    let (code, text, folder) = run(&scenario(name), runs);
    assert_eq!(code, 0, "{text}");
    let dir = folder.expect("a run folder");
    assert_complete(&dir, name);
    let summary = json(&dir.join("summary.json"));
    assert_eq!(summary["passed"], true, "{summary}");
    for x in summary["expectations"].as_array().unwrap() {
        assert_eq!(x["passed"], true, "{x}");
    }
    if dir.join("journal.json").exists() {
        assert_eq!(json(&dir.join("journal.json"))["verdict"], "held");
    }
    dir
}

fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .map(str::to_owned)
                .zip(rec.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

#[test]
fn the_smoke_scenario_leaves_a_complete_run_folder_whose_files_agree() {
    let runs = tempfile::tempdir().unwrap();
    let (code, text, folder) = run(&scenario("smoke.toml"), runs.path());
    assert_eq!(code, 0, "{text}");
    let dir = folder.expect("a run folder");
    assert!(
        dir.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("smoke-steady-load-through-the-sidecar-2"),
        "{dir:?}"
    );
    assert_complete(&dir, "smoke.toml");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    let requests = results["requests"].as_u64().unwrap();
    assert_eq!(requests, 500, "50 req/s for 10 s");

    // Every request went through the sidecar: both views count the same requests.
    let rows = csv_rows(&dir.join("timeseries.csv"));
    let sum = |source: &str| -> u64 {
        rows.iter()
            .filter(|r| r["source"] == source && r["route"] == "*")
            .map(|r| r["requests"].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum("client"), requests);
    assert_eq!(sum("sidecar"), requests);
    // Both views count seconds on the load's clock: every row starts at its second's start.
    let start = results["started_at_ms"].as_u64().unwrap();
    for r in &rows {
        let (second, at_ms) = (r["second"].parse::<u64>().unwrap(), r["at_ms"].parse::<u64>().unwrap());
        assert_eq!(at_ms, start + second * 1000, "{r:?}");
    }
    let logged = csv_rows(&dir.join("requests.csv")).len() as u64;
    assert_eq!(logged, requests);

    // A stats line per scrape, each a whole snapshot.
    let stats = std::fs::read_to_string(dir.join("stats.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = stats.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 10, "{} scrapes", lines.len());
    let last: ballast_model::StatsSnapshot = serde_json::from_value(lines.last().unwrap()["snapshot"].clone()).unwrap();
    assert_eq!(last.routes["api"].counters.requests, requests);

    // The SLOs: a row per second each, the end in slo.json and the verdict in summary.json.
    let slo_rows = csv_rows(&dir.join("slo.csv"));
    for name in ["api-availability", "client-latency"] {
        assert!(slo_rows.iter().filter(|r| r["slo"] == name).count() >= 10, "{name}");
    }
    let slo: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("slo.json")).unwrap()).unwrap();
    assert_eq!(slo[0]["name"], "api-availability");
    assert_eq!(slo[0]["status"]["total"].as_u64(), Some(requests));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], true);
    assert_eq!(summary["thresholds"][0]["passed"], true);
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(
        events.lines().next().unwrap().contains("\"phase\":\"started\""),
        "{events}"
    );
    assert!(
        events.lines().last().unwrap().contains("\"phase\":\"ended\""),
        "{events}"
    );
}

#[test]
fn an_overspent_slo_fails_the_run_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // Every request to /api/flaky fails; a 99.9% objective cannot hold.
    let text = std::fs::read_to_string(scenario("smoke.toml"))
        .unwrap()
        .replace("error_rate = 0.02", "error_rate = 1.0")
        .replace("objective = 0.98\n", "objective = 0.999\n")
        .replace("duration = \"10s\"", "duration = \"3s\"");
    let file = dir.path().join("failing.toml");
    std::fs::write(&file, text).unwrap();
    let runs = dir.path().join("runs");
    let (code, text, folder) = run(&file, &runs);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("slo api-availability") && text.contains("FAILED"),
        "{text}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.unwrap().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], false);
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(summary["slos"][0]["passed"], false);
}

#[test]
fn an_invalid_scenario_exits_78_with_every_problem_located() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "title = \"bad\"\n[target]\nattach = { admin = \"http://127.0.0.1:9\" }\n\n[[slo]]\nname = \"x\"\nobjective = 99.9\nwindow = \"1h\"\nsli = { availability = {} }\n",
    )
    .unwrap();
    let (code, text, folder) = run(&file, &dir.path().join("runs"));
    assert_eq!(code, 78, "{text}");
    let name = file.display().to_string();
    assert!(
        text.contains(&format!("{name}: a scenario without [load] needs a duration")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{name}:5:1: slo[0].objective: 99.9 is outside (0, 1)")),
        "{text}"
    );
    assert!(folder.is_none(), "no run folder for a scenario that never ran");
}

/// The README's demo: the page alert of checkout fires after the error burst starts and
/// resolves after it ends; catalog's steady state holds throughout; the run passes.
#[test]
fn the_demo_pages_during_the_error_burst_and_resolves_after_it() {
    let runs = tempfile::tempdir().unwrap();
    let (code, text, folder) = run(&scenario("demo.toml"), runs.path());
    assert_eq!(code, 0, "{text}");
    let dir = folder.unwrap();
    let events: Vec<ballast_model::Event> = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    use ballast_model::EventKind;
    let at = |pred: &dyn Fn(&EventKind) -> bool| events.iter().find(|e| pred(&e.kind)).map(|e| e.at_ms);
    let burst_added = at(&|k| matches!(k, EventKind::FaultAdded { spec, .. } if spec.status == Some(503)))
        .expect("the error burst was injected");
    let burst_id = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::FaultAdded { id, spec, .. } if spec.status == Some(503) => Some(id.clone()),
            _ => None,
        })
        .unwrap();
    let burst_ended =
        at(&|k| matches!(k, EventKind::FaultExpired { id } | EventKind::FaultRemoved { id } if *id == burst_id))
            .expect("the error burst ended");
    let page = |firing: bool| {
        at(&|k| match k {
            EventKind::AlertFiring { slo, severity, .. } if firing => {
                slo == "checkout-availability" && *severity == ballast_model::slo::Severity::Page
            }
            EventKind::AlertResolved { slo, severity } if !firing => {
                slo == "checkout-availability" && *severity == ballast_model::slo::Severity::Page
            }
            _ => false,
        })
    };
    let (fired, resolved) = (page(true).expect("a page"), page(false).expect("the page resolved"));
    assert!(
        burst_added < fired && fired < burst_ended,
        "{burst_added} < {fired} < {burst_ended}"
    );
    assert!(
        resolved > burst_ended,
        "resolved at {resolved}, the burst ended at {burst_ended}"
    );
    // Catalog never paged.
    assert!(
        !events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::AlertFiring { slo, .. } if slo == "catalog-availability"))
    );
    let journal: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("journal.json")).unwrap()).unwrap();
    assert_eq!(journal["verdict"], "held", "{journal}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["hypotheses"].as_array().unwrap().len(), 3, "{summary}");
    assert!(
        summary["hypotheses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["passed"] == true)
    );
}

/// Every scenario users can copy runs in a test of this file.
#[test]
fn every_scenario_is_run_by_a_test() {
    let tests = include_str!("run.rs");
    for entry in std::fs::read_dir(scenario("")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".toml") {
            let called = [format!("run_holding(\"{name}\""), format!("scenario(\"{name}\")")];
            assert!(
                called.iter().any(|c| tests.contains(c.as_str())),
                "scenarios/{name} is run by no test"
            );
        }
    }
}

/// The upstream fails everything for 20 s: retries stay within the budget, 1.25 tries per
/// request at most over the whole run (counted at the cluster: every try the upstream saw)
/// and over every 10 s the experiment checked.
#[test]
fn the_retry_storm_stays_within_its_budget() {
    let runs = tempfile::tempdir().unwrap();
    let dir = run_holding("retry-storm.toml", runs.path());
    let stats = std::fs::read_to_string(dir.join("stats.jsonl")).unwrap();
    let last = stats.lines().last().unwrap();
    let last: ballast_model::StatsSnapshot =
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(last).unwrap()["snapshot"].clone()).unwrap();
    let route = &last.routes["orders"].counters;
    let tries = last.clusters["orders"].traffic.counters.requests;
    let amplification = tries as f64 / route.requests as f64;
    assert!(route.requests >= 8_000, "{route:?}");
    assert!(
        (1.0..=1.25).contains(&amplification) && route.retries > 0,
        "{tries} tries for {} requests",
        route.requests
    );
    assert!(
        route.retry_budget_exhausted > 1_000,
        "the budget refused retries: {route:?}"
    );
    // 20 s of outage at 200 req/s, give or take the edges.
    let failed = route.by_status_class["5xx"];
    assert!((3_800..=4_200).contains(&failed), "{failed} failed");
    let journal = json(&dir.join("journal.json"));
    let during = journal["hypothesis"]["during"].as_array().unwrap();
    assert!(during.len() >= 15, "checked every second of the outage");
    let worst = during
        .iter()
        .flat_map(|c| c["probes"].as_array().unwrap())
        .map(|p| p["value"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(worst > 1.0 && worst < 1.25, "worst 10 s: {worst}");
}

/// One of three replicas killed and restarted: ejected at once, restored after its restart,
/// and the clients saw no failure.
#[test]
fn an_endpoint_crash_is_ejected_failed_over_and_restored() {
    let runs = tempfile::tempdir().unwrap();
    let dir = run_holding("endpoint-crash.toml", runs.path());
    let summary = json(&dir.join("summary.json"));
    assert_eq!(summary["expectations"].as_array().unwrap().len(), 2, "{summary}");
    let results = json(&dir.join("results.json"));
    assert_eq!(results["requests"], 5_000);
    assert_eq!(results["failed"], 0, "{results}");
    use ballast_model::EventKind;
    let events = events(&dir);
    let step = |label: &str| {
        events.iter().find_map(|e| match &e.kind {
            EventKind::ExperimentStepStarted { step, .. } if step == label => Some(e.at_ms),
            _ => None,
        })
    };
    let (killed, restarted) = (step("method[0]").unwrap(), step("method[0].end").unwrap());
    let ejected = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::EndpointEjected { endpoint, .. } => Some((endpoint.clone(), e.at_ms)),
            _ => None,
        })
        .expect("an ejection");
    let restored = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::EndpointRestored { endpoint, .. } if *endpoint == ejected.0 => Some(e.at_ms),
            _ => None,
        })
        .expect("the ejected endpoint came back");
    assert!(
        killed <= ejected.1 && ejected.1 < restarted,
        "{killed} {ejected:?} {restarted}"
    );
    assert!(restored > restarted, "restored at {restored}, restarted at {restarted}");
    // The replica really was restarted, at its old address (or the restart would have failed).
    let restart_ok = events.iter().any(|e| {
        matches!(&e.kind, EventKind::ExperimentStepFinished { step, ok: true, action, .. }
            if step == "method[0].end" && action.contains("restart process \"demo_upstream.1\""))
    });
    assert!(restart_ok, "{events:?}");
    // The one ejected is the one killed: the cluster's second endpoint, demo_upstream.1.
    let sidecar: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("sidecar.toml")).unwrap()).unwrap();
    let killed_address = sidecar["clusters"]["catalog"]["endpoints"][1]["address"]
        .as_str()
        .unwrap();
    assert_eq!(ejected.0, killed_address);
}

/// A slow, erroring release pages on latency within seconds and resolves after the rollback.
#[test]
fn a_bad_deploy_pages_and_resolves() {
    let runs = tempfile::tempdir().unwrap();
    let dir = run_holding("bad-deploy.toml", runs.path());
    let summary = json(&dir.join("summary.json"));
    let expectations = summary["expectations"].as_array().unwrap();
    assert_eq!(expectations.len(), 2, "{summary}");
    let fired = expectations[0]["seen_after_ms"].as_u64().unwrap();
    let resolved = expectations[1]["seen_after_ms"].as_u64().unwrap();
    assert!(
        fired < resolved && resolved > 5_000,
        "page after {fired} ms, resolved after {resolved} ms"
    );
    let slos = summary["slos"].as_array().unwrap();
    assert!(slos.iter().all(|s| s["passed"] == true), "{summary}");
    // The release's errors reached the clients while it was out.
    let results = json(&dir.join("results.json"));
    assert!(results["failed"].as_u64().unwrap() > 0, "{results}");
}

/// A latency toxic on the Redis connection shows in the clients' cart latency, and only there.
#[test]
fn redis_latency_reaches_the_clients_of_the_cart_only() {
    let runs = tempfile::tempdir().unwrap();
    let dir = run_holding("redis-latency.toml", runs.path());
    use ballast_model::EventKind;
    let events = events(&dir);
    let added = events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::FaultAdded { spec, .. } if spec.listener.as_deref() == Some("redis")))
        .expect("the toxic")
        .at_ms;
    let rows = csv_rows(&dir.join("timeseries.csv"));
    let p50 = |route: &str, from: u64, to: u64| -> Vec<f64> {
        rows.iter()
            .filter(|r| r["source"] == "client" && r["route"] == route)
            .filter(|r| (from..to).contains(&r["at_ms"].parse::<u64>().unwrap()))
            .map(|r| r["p50_ms"].parse::<f64>().unwrap())
            .collect()
    };
    // The toxic lasts 5 s: the seconds fully inside it, and the 10 s before.
    let during = p50("cart", added + 1_500, added + 4_500);
    let before = p50("cart", added - 10_000, added);
    assert!(
        !during.is_empty() && during.iter().all(|&ms| ms >= 80.0),
        "during {during:?}"
    );
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    assert!(median(before.clone()) < 40.0, "before {before:?}");
    let catalog = p50("catalog", added + 1_500, added + 4_500);
    assert!(median(catalog.clone()) < 40.0, "catalog {catalog:?}");
    let results = json(&dir.join("results.json"));
    assert_eq!(results["failed"], 0, "{results}");
    assert!(dir.join("redis.log").is_file());
}

/// Ctrl-C (SIGINT) without a dashboard: the load stops, the files are written, everything the
/// run spawned is stopped, and the run exits 130 with `interrupted` in its summary.
#[test]
fn an_interrupted_run_stops_everything_it_spawned_and_exits_130() {
    let interrupted = interrupt_a_long_smoke_run("", 1);
    let summary = json(&interrupted.folder.join("summary.json"));
    assert_eq!(summary["interrupted"], true, "{summary}");
    let results = json(&interrupted.folder.join("results.json"));
    let requests = results["requests"].as_u64().unwrap();
    assert!((100..5_000).contains(&requests), "stopped early: {requests} requests");
}

/// A second Ctrl-C while the run is stopping (goose's own handler exits the process on it)
/// changes nothing: the experiment still rolls back its fault and everything spawned stops.
#[test]
fn a_second_ctrl_c_still_rolls_back_and_stops_everything() {
    let experiment = "[experiment]\ntitle = \"slow api\"\n[[experiment.method]]\nat = \"0s\"\nduration = \"5m\"\nfault = { kind = \"delay\", delay = \"1ms\", percent = 100, route = \"api\" }\n\n";
    let interrupted = interrupt_a_long_smoke_run(experiment, 2);
    assert!(
        interrupted.stderr.contains("stopping already"),
        "{}",
        interrupted.stderr
    );
    let journal = json(&interrupted.folder.join("journal.json"));
    assert_eq!(journal["verdict"], "interrupted", "{journal}");
    let rollbacks = journal["rollbacks"].as_array().unwrap();
    assert_eq!(rollbacks.len(), 1, "the fault's removal: {journal}");
    assert_eq!(journal["rollbacks_failed"], 0, "{journal}");
}

/// What an interrupted run left.
struct Interrupted {
    folder: std::path::PathBuf,
    stderr: String,
    /// Holds the run folder.
    _dir: tempfile::TempDir,
}

/// Run scenarios/smoke.toml for 5 minutes with `extra` before its `[record]`, send it
/// `signals` SIGINTs 20 ms apart after three scrapes, and check what every interrupted run
/// must do: exit 130, say so, and leave none of the processes it spawned running.
fn interrupt_a_long_smoke_run(extra: &str, signals: usize) -> Interrupted {
    let dir = tempfile::tempdir().unwrap();
    let smoke = std::fs::read_to_string(scenario("smoke.toml")).unwrap();
    let file = dir.path().join("long.toml");
    let long = smoke
        .replace("duration = \"10s\"", "duration = \"5m\"")
        .replace("[record]", &format!("{extra}[record]"));
    std::fs::write(&file, long).unwrap();
    let runs = dir.path().join("runs");
    let child = Command::new(BIN)
        .args(["run", file.to_str().unwrap(), "--runs", runs.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let folder = || std::fs::read_dir(&runs).ok()?.next().map(|e| e.unwrap().path());
    let scrapes = || {
        folder()
            .and_then(|f| std::fs::read_to_string(f.join("stats.jsonl")).ok())
            .map_or(0, |s| s.lines().count())
    };
    ballast_testkit::assert_eventually!(@ std::time::Duration::from_secs(30), scrapes() >= 3, "three scrapes");
    let spawned = folder().unwrap().display().to_string();
    assert_eq!(ballast_testkit::processes_mentioning(&spawned).len(), 2);
    ballast_testkit::ctrl_c(&child, signals);
    let output = child.wait_with_output().unwrap();
    let (out, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_eq!(output.status.code(), Some(130), "{out}\n{stderr}");
    assert!(out.contains("interrupted before its end"), "{out}");
    assert!(ballast_testkit::processes_mentioning(&spawned).is_empty());
    Interrupted {
        folder: folder().unwrap(),
        stderr,
        _dir: dir,
    }
}

/// An experiment stops the sidecar (SIGSTOP) for 4 s: the run does not wait on it. The
/// scrapes it misses are recorded as failed, the step's end continues it, and the run ends.
#[test]
fn a_stopped_sidecar_does_not_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let smoke = std::fs::read_to_string(scenario("smoke.toml")).unwrap();
    let stopped = smoke.replace("duration = \"10s\"", "duration = \"12s\"").replace(
        "[record]",
        "[experiment]\ntitle = \"pause the sidecar\"\n[[experiment.method]]\nat = \"3s\"\nduration = \"4s\"\nstop = \"sidecar\"\n\n[record]",
    );
    let file = dir.path().join("stopped.toml");
    std::fs::write(&file, stopped).unwrap();
    let (code, text, folder) = run(&file, &dir.path().join("runs"));
    assert!(code == 0 || code == 1, "the run ended by itself: {code}\n{text}");
    let dir = folder.unwrap();
    let stats = std::fs::read_to_string(dir.join("stats.jsonl")).unwrap();
    assert!(stats.contains("no answer within 2s"), "{stats}");
    let summary = json(&dir.join("summary.json"));
    assert_eq!(summary["interrupted"], false, "{summary}");
    let journal = json(&dir.join("journal.json"));
    assert_eq!(journal["rollbacks_failed"], 0, "{journal}");
}
