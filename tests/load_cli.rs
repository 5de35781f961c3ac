//! `ballast load` end to end: the real binary against a testkit upstream. Thresholds set the
//! exit code (0 held, 1 failed or aborted), a bad profile exits 78, an unreachable target is
//! one clear error.

use std::path::Path;
use std::process::{Command, Output};

use ballast_testkit::MockUpstream;

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

/// A multi-thread runtime serving a mock upstream while the test thread runs the binary.
fn upstream() -> (tokio::runtime::Runtime, MockUpstream) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let up = rt.block_on(MockUpstream::start("up"));
    (rt, up)
}

fn load(dir: &Path, profile: &str, args: &[&str]) -> Output {
    let path = dir.join("profile.toml");
    std::fs::write(&path, profile).unwrap();
    Command::new(BIN)
        .arg("load")
        .arg(&path)
        .args(args)
        .env("BALLAST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn thresholds_that_hold_exit_0_and_a_failed_one_exits_1_with_the_table() {
    let (_rt, up) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let profile = |thresholds: &str| {
        format!(
            "base_url = \"http://{}\"\nrate = 50\nduration = \"2s\"\nthresholds = [{thresholds}]\n[[transactions]]\nname = \"home\"\npath = \"/\"\n",
            up.addr
        )
    };
    let out = load(
        dir.path(),
        &profile(r#""p99 < 10s", 'p95{transaction="home"} < 5s', "error_rate < 0.01", "rps > 10""#),
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("100 requests"), "{stdout}");
    assert!(stdout.contains("ok    p99 < 10s"), "{stdout}");
    assert!(stdout.contains("ok    rps > 10"), "{stdout}");

    let out = load(dir.path(), &profile(r#""p99 < 10s", "max < 1us""#), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok    p99 < 10s"), "{stdout}");
    assert!(stdout.contains("FAIL  max < 1us"), "{stdout}");
    assert!(
        text(&out.stderr).contains("ballast: 1 threshold failed"),
        "{}",
        text(&out.stderr)
    );

    // The same verdicts as JSON, with the run's files in --out.
    let run = dir.path().join("run");
    let out = load(
        dir.path(),
        &profile(r#""p99 < 10s", "max < 1us""#),
        &["--output", "json", "--out", run.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON alone");
    assert_eq!(json["requests"], 100);
    assert_eq!(json["thresholds"][0]["passed"], true);
    assert_eq!(json["thresholds"][1]["passed"], false);
    for f in ["results.json", "timeseries.csv", "requests.csv", "latency.hlog"] {
        assert!(run.join(f).is_file(), "{f} written");
    }
}

#[test]
fn a_threshold_with_abort_after_ends_a_failing_run_early() {
    let (_rt, up) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = load(
        dir.path(),
        &format!(
            "base_url = \"http://{}\"\nrate = 50\nduration = \"1h\"\nthresholds = [{{ expr = \"error_rate < 0.1\", abort_after = \"2s\" }}]\n[[transactions]]\npath = \"/status/500\"\n",
            up.addr
        ),
        &["--out", run.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("aborted early: error_rate < 0.1 failed"),
        "{}",
        text(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["ended_by"]["by"], "aborted");
    assert!(
        results["timeline"].as_array().unwrap().len() < 10,
        "ended within seconds of an hour"
    );
}

#[test]
fn a_bad_profile_exits_78_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = load(
        dir.path(),
        "base_url = \"http://127.0.0.1:1\"\nusers = 0\nduration = \"5s\"\n[[transactions]]\npath = \"x/{{uuidd}}\"\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    let stderr = text(&out.stderr);
    for line in [
        "profile.toml: 3 errors in the load profile",
        "profile.toml:2:9: users: users is 0",
        "profile.toml:5:8: transactions[0].path: unknown placeholder {{uuidd}}",
        "  fix: did you mean {{uuid}}?",
        "profile.toml:5:8: transactions[0].path: path \"x/{{uuidd}}\" does not start with '/'",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
}

#[test]
fn an_unreachable_target_is_one_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = load(
        dir.path(),
        &format!(
            "base_url = \"http://127.0.0.1:{port}\"\nusers = 50\nduration = \"30s\"\n[[transactions]]\npath = \"/\"\n"
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "ballast: cannot reach http://127.0.0.1:{port}/ (127.0.0.1:{port}: Connection refused (os error 111))\n  fix: start the service, or correct base_url in the profile\n"
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_example_profiles_run_against_the_demo_upstream() {
    let mut demo = Command::new(BIN)
        .args(["demo-upstream", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(demo.stdout.take().unwrap()), &mut line).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = ready["ready"]["listen"].as_str().unwrap().to_owned();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/load");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(examples.join("customers.csv"), dir.path().join("customers.csv")).unwrap();
    // The same profiles, shortened to a few seconds.
    let runs: [(&str, &[(&str, &str)]); 2] = [
        ("shop.toml", &[("duration = \"30s\"", "duration = \"4s\"")]),
        (
            "shop-rate.toml",
            &[("\"10s\"", "\"1s\""), ("\"20s\"", "\"2s\""), ("\"5s\"", "\"1s\"")],
        ),
    ];
    for (name, shorter) in runs {
        let mut profile = std::fs::read_to_string(examples.join(name))
            .unwrap()
            .replace("127.0.0.1:8081", &addr);
        for (from, to) in shorter {
            profile = profile.replace(from, to);
        }
        let out = load(dir.path(), &profile, &["--output", "json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(json["requests"].as_u64().unwrap() > 10, "{name}: {json}");
    }
    let _ = demo.kill();
    let _ = demo.wait();
}

/// Ctrl-C stops the load and prints what ran (exit 1, canceled); a second Ctrl-C exits at once
/// (130) instead of waiting for the requests in flight.
#[test]
fn ctrl_c_cancels_the_load_and_a_second_one_does_not_wait() {
    let (_rt, up) = upstream();
    let dir = tempfile::tempdir().unwrap();
    for (slow_ms, presses, code) in [(200, 1, 1), (60_000, 2, 130)] {
        let path = dir.path().join("profile.toml");
        let profile = format!(
            "base_url = \"http://{}\"\nrate = 20\nduration = \"1h\"\ntimeout = \"2m\"\n[[transactions]]\npath = \"/slow/{slow_ms}\"\n",
            up.addr
        );
        std::fs::write(&path, profile).unwrap();
        let child = Command::new(BIN)
            .arg("load")
            .arg(&path)
            .env("BALLAST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        ballast_testkit::assert_eventually!(@ std::time::Duration::from_secs(30), connections_to(up.addr.port()) >= 3, "requests in flight");
        ballast_testkit::ctrl_c(&child, presses);
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{stdout}\n{stderr}");
        if presses == 1 {
            assert!(stdout.contains("ended early: canceled"), "{stdout}");
        } else {
            assert!(stderr.contains("stopped without waiting"), "{stderr}");
        }
    }
}

/// Established TCP connections to a loopback port (IPv4).
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address remote_address ... st (01 = ESTABLISHED), ports in hex.
            f.len() > 3 && f[3] == "01" && f[2].ends_with(&format!(":{port:04X}"))
        })
        .count()
}
