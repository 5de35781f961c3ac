//! End to end: the real `ballast tui` in tmux (Debian's `tmux`, on a private socket) against
//! a real sidecar under load. The screen is read with `capture-pane`, keys are typed with
//! `send-keys`: a fault is injected from the dashboard and found in the sidecar's `/faults`,
//! its page alert shows, the fault is cleared, the window is resized, the sidecar is stopped (the dashboard says it
//! is unreachable), and `q` leaves the terminal as it was.
//!
//! `ballast run` in a terminal shows the same dashboard, fed by the run.
//!
//! Without tmux the test is skipped, unless `CI` is set: then it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ballast_model::ActiveFault;
use ballast_model::client::AdminClient;
use ballast_testkit::{MockUpstream, Proc, processes_mentioning};

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

/// The sidecar binary, built beside `ballast` by the workspace's build.
fn sidecar_bin() -> PathBuf {
    let bin = Path::new(BIN).with_file_name("ballast-sidecar");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace (cargo test --workspace)",
        bin.display()
    );
    bin
}

/// A tmux server of our own running one window; killed on drop.
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Run `command` in a `width`×`height` window. `None` when tmux is not installed (outside
    /// CI).
    fn start(command: &[&str], width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "tmux must be installed in CI");
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // The pane stays after the program exits (to read how it left the screen); no
        // status line, so the program has the whole window.
        let conf = dir.path().join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n").unwrap();
        static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let socket = format!("ballast-tui-test-{}-{n}", std::process::id());
        // A shell runs the program and keeps its exit status in a file: tmux may mark the
        // pane dead before it learns the status.
        let status = dir.path().join("status");
        let quoted: Vec<String> = command
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        let line = format!("{}; echo $? > '{}'", quoted.join(" "), status.display());
        let tmux = Tmux { socket, dir };
        let out = Command::new("tmux")
            .args(["-L", &tmux.socket, "-f"])
            .arg(&conf)
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(line)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux: {}", String::from_utf8_lossy(&out.stderr));
        Some(tmux)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        self.tmux(&args);
    }

    /// Poll the screen until `cond` holds; the screen then. Panics with the screen after 30 s.
    fn wait(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, needle: &str) -> String {
        self.wait(needle, |s| s.contains(needle))
    }

    /// The program's exit status, once it ended.
    fn exit_status(&self) -> Option<String> {
        let s = std::fs::read_to_string(self.dir.path().join("status")).ok()?;
        s.ends_with('\n').then(|| s.trim().to_owned())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// The sidecar's faults, as its admin API lists them.
fn faults(rt: &tokio::runtime::Runtime, admin: &str) -> Vec<ActiveFault> {
    rt.block_on(AdminClient::new(admin, None).faults()).unwrap()
}

fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} did not happen within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_dashboard_in_tmux_injects_a_fault_and_sees_it_page() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(MockUpstream::start("u"));
    let config = format!(
        "[runtime]\nworker_threads = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"api\"\ncluster = \"u\"\n[clusters.u]\nendpoints = [{{ address = \"{}\" }}]\n",
        up.addr
    );
    let mut sidecar = Some(Proc::sidecar(sidecar_bin().to_str().unwrap(), &config));
    let admin = format!("http://{}", sidecar.as_ref().unwrap().admin());
    let base = sidecar.as_ref().unwrap().url("");

    // Load: a steady trickle through the sidecar until the test ends (at most two minutes).
    let stop = Arc::new(AtomicBool::new(false));
    let load = rt.spawn({
        let stop = stop.clone();
        async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut every = tokio::time::interval(Duration::from_millis(10));
            let end = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                every.tick().await;
                let _ = http.get(format!("{base}/echo")).send().await;
            }
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let slos = dir.path().join("slos.toml");
    std::fs::write(
        &slos,
        "[[slo]]\nname = \"api-availability\"\nobjective = 0.99\nwindow = \"10m\"\nalerting = \"scaled\"\n\
         sli = { availability = { route = \"api\" } }\n",
    )
    .unwrap();
    let Some(tmux) = Tmux::start(
        &[BIN, "tui", "--admin", &admin, "--slos", slos.to_str().unwrap()],
        100,
        30,
    ) else {
        return;
    };

    // The route under load, its SLO computed from the sidecar's stats.
    tmux.wait("the api row with its SLO", |s| {
        s.lines().any(|l| l.starts_with("api ") && l.trim_end().ends_with("ok"))
    });
    assert!(tmux.screen().contains("LIVE"));
    // It adapts to a resize: wider, the header says more.
    tmux.tmux(&["resize-window", "-t", "t", "-x", "160", "-y", "40"]);
    tmux.wait_for("LIVE · 1 sidecar(s)");

    // Faults view, add the second preset (abort 503 on 50%) on api, confirm.
    tmux.keys(&["4"]);
    tmux.wait_for("No faults in place");
    tmux.keys(&["a"]);
    tmux.wait_for("Add a fault");
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for("Confirm");
    assert!(faults(&rt, &admin).is_empty(), "nothing before the confirmation");
    tmux.keys(&["y"]);
    eventually("the fault in the sidecar's /faults", || {
        faults(&rt, &admin).iter().any(|f| {
            f.spec.kind.as_str() == "abort"
                && f.spec.status == Some(503)
                && f.spec.percent == Some(50.0)
                && f.spec.route.as_deref() == Some("api")
        })
    });
    tmux.wait_for("abort 503 50%");

    // Half the requests fail: the SLO pages and the banner says so.
    tmux.keys(&["1"]);
    tmux.wait("the incident banner", |s| {
        s.contains("▲") && s.contains("api-availability")
    });

    // Clear it, confirmed.
    tmux.keys(&["4"]);
    tmux.wait_for("abort 503 50%");
    tmux.keys(&["d"]);
    tmux.wait_for("Clear fault");
    tmux.keys(&["y"]);
    eventually("the fault gone from /faults", || faults(&rt, &admin).is_empty());
    tmux.wait_for("No faults in place");

    // The sidecar goes away: shown as unreachable, no crash.
    stop.store(true, Ordering::Relaxed);
    drop(sidecar.take());
    tmux.wait_for("unreachable, last seen");
    assert_eq!(tmux.exit_status(), None, "still running");

    // q quits with 0 and leaves the alternate screen.
    tmux.keys(&["q"]);
    eventually("the dashboard to exit", || tmux.exit_status().is_some());
    let after = tmux.screen();
    assert_eq!(tmux.exit_status().as_deref(), Some("0"), "the screen after:\n{after}");
    assert!(
        !after.contains("1 Overview"),
        "the dashboard's screen is gone:\n{after}"
    );
    rt.block_on(load).unwrap();
}

/// `ballast run` in a terminal shows the dashboard, fed by the run's own scrapes, with nothing
/// the run or the load generator prints on it; quitting it interrupts the run: exit 130, the
/// run folder written, everything the run spawned stopped.
#[test]
fn ballast_run_shows_the_dashboard_and_quitting_it_interrupts_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let smoke = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml")).unwrap();
    let scenario = dir.path().join("long.toml");
    std::fs::write(&scenario, smoke.replace("duration = \"10s\"", "duration = \"5m\"")).unwrap();
    let runs = dir.path().join("runs");
    let command = [BIN, "run", scenario.to_str().unwrap(), "--runs", runs.to_str().unwrap()];
    let Some(tmux) = Tmux::start(&command, 100, 30) else {
        return;
    };
    tmux.wait("the api route, live", |s| {
        s.contains(" LIVE ") && s.lines().any(|l| l.starts_with("api "))
    });
    let folder = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    eventually("the load generator's line in run.log", || {
        std::fs::read_to_string(folder.join("run.log"))
            .unwrap_or_default()
            .contains("users launched")
    });
    let screen = tmux.screen();
    assert!(!screen.contains("users launched"), "{screen}");
    let spawned = folder.display().to_string();
    assert_eq!(
        processes_mentioning(&spawned).len(),
        2,
        "the demo upstream and the sidecar"
    );
    tmux.keys(&["q"]);
    eventually("the run's end", || tmux.exit_status().is_some());
    let screen = tmux.screen();
    assert_eq!(tmux.exit_status().as_deref(), Some("130"), "{screen}");
    assert!(screen.contains("interrupted before its end"), "{screen}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true, "{summary}");
    assert_eq!(summary["passed"], false, "{summary}");
    assert!(
        processes_mentioning(&spawned).is_empty(),
        "{:?}",
        processes_mentioning(&spawned)
    );
}
