//! End-to-end tests of `ballast chaos`: the real binary against a real sidecar (its own
//! process), a demo upstream and a process named by pid file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ballast_testkit::{MockUpstream, Proc, assert_eventually};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

/// The sidecar binary, built beside `ballast` by a workspace build.
fn sidecar_bin() -> String {
    let path = Path::new(BIN).with_file_name("ballast-sidecar");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (`cargo nextest run --workspace` does)",
        path.display()
    );
    path.display().to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn get_json(rt: &tokio::runtime::Runtime, url: &str) -> Value {
    rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        http.get(url).send().await.unwrap().json().await.unwrap()
    })
}

/// `ballast chaos` with `args`, its output going to files in `dir`.
fn chaos(dir: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("chaos")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap()
}

/// Wait for the child's exit code; its output, for messages.
fn exit_code(child: &mut Child, dir: &Path) -> (i32, String) {
    assert_eventually!(@ Duration::from_secs(90), child.try_wait().unwrap().is_some(), "ballast chaos did not end");
    let code = child.wait().unwrap().code().unwrap();
    let out =
        std::fs::read_to_string(dir.join("stdout")).unwrap() + &std::fs::read_to_string(dir.join("stderr")).unwrap();
    (code, out)
}

fn journal(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A sidecar (its own process) with route `api` to a mock upstream, under light load until
/// the returned flag is set: a request every 10 ms.
fn loaded_sidecar(rt: &tokio::runtime::Runtime) -> (MockUpstream, Proc, Arc<AtomicBool>) {
    let up = rt.block_on(MockUpstream::start("u"));
    let sc = Proc::sidecar(
        &sidecar_bin(),
        &format!(
            "[runtime]\nworker_threads = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nlisten = \"127.0.0.1:0\"\n\
             [[routes]]\nname = \"api\"\ncluster = \"u\"\n[clusters.u]\nendpoints = [{{ address = \"{}\" }}]\n",
            up.addr
        ),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (url, done) = (sc.url("/echo"), stop.clone());
    rt.spawn(async move {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        while !done.load(Ordering::Relaxed) {
            if let Ok(resp) = http.get(&url).send().await {
                let _ = resp.bytes().await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (up, sc, stop)
}

/// The faults in place on the sidecar, once there is exactly one.
fn the_fault(rt: &tokio::runtime::Runtime, faults_url: &str) -> Value {
    let mut seen;
    assert_eventually!(@ Duration::from_secs(30), {
        seen = get_json(rt, faults_url);
        seen.as_array().is_some_and(|f| f.len() == 1)
    }, "the experiment's fault in {faults_url}");
    seen[0].clone()
}

#[test]
fn an_experiment_injects_its_fault_sees_the_hypothesis_fail_and_removes_it() {
    let rt = runtime();
    let (_up, sc, stop) = loaded_sidecar(&rt);
    let dir = tempfile::tempdir().unwrap();
    let experiment = dir.path().join("experiment.toml");
    std::fs::write(
        &experiment,
        r#"
title = "api answers through an abort fault"
interval = "250ms"
recovery = "20s"
steady_state = [{ route = "api", availability_above = 0.9, over = "1s" }]

[[method]]
at = "2s"
duration = "3s"
fault = { kind = "abort", status = 503, route = "api" }
"#,
    )
    .unwrap();
    let journal_path = dir.path().join("journal.json");
    let admin = format!("http://{}", sc.admin());
    let mut child = chaos(
        dir.path(),
        &[
            experiment.to_str().unwrap(),
            "--admin",
            &admin,
            "--journal",
            journal_path.to_str().unwrap(),
        ],
    );

    // The fault shows on the sidecar while the experiment runs, with a TTL no longer than
    // the step's duration.
    let faults_url = format!("{admin}/faults");
    let fault = &the_fault(&rt, &faults_url);
    assert_eq!(fault["spec"]["kind"], "abort");
    assert_eq!(fault["spec"]["route"], "api");
    let ttl_ms = fault["expires_at_ms"].as_u64().unwrap() - fault["created_at_ms"].as_u64().unwrap();
    assert!(ttl_ms <= 3000, "TTL {ttl_ms} ms");

    let (code, out) = exit_code(&mut child, dir.path());
    stop.store(true, Ordering::Relaxed);
    assert_eq!(code, 1, "the hypothesis did not hold: exit 1\n{out}");
    assert_eq!(get_json(&rt, &faults_url), serde_json::json!([]), "the fault is gone");

    let j = journal(&journal_path);
    assert_eq!(j["verdict"], "deviated", "{out}");
    assert_eq!(j["hypothesis"]["held_before"], true, "{j:#}");
    assert_eq!(j["hypothesis"]["held_during"], false, "{j:#}");
    let failed: Vec<&Value> = j["hypothesis"]["during"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["held"] == false)
        .collect();
    assert!(!failed.is_empty());
    let reading = &failed[0]["probes"][0];
    assert_eq!(reading["probe"], "availability of route api over 1s > 0.9");
    // Failing "> 0.9" means at most 0.9 (exactly 0.9 when the window catches the fault's start).
    assert!(reading["value"].as_f64().unwrap() <= 0.9, "{reading}");
    let step = &j["steps"][0];
    assert_eq!(step["step"], "method[0]");
    assert_eq!(step["ok"], true);
    assert_eq!(
        step["detail"]["faults"][0]["id"], fault["id"],
        "the journal names the fault"
    );
    assert_eq!(step["ended"]["ok"], true, "removed when its duration ended: {step:#}");
    assert!(
        j["reason"].as_str().unwrap().contains("did not hold during the method"),
        "{j:#}"
    );
    assert!(out.contains("verdict: deviated"), "{out}");
}

#[test]
fn sigterm_ends_an_experiment_early_and_rolls_it_back() {
    let rt = runtime();
    let (_up, sc, stop) = loaded_sidecar(&rt);
    let dir = tempfile::tempdir().unwrap();
    let experiment = dir.path().join("experiment.toml");
    std::fs::write(
        &experiment,
        "[[method]]\nduration = \"10m\"\nfault = { kind = \"delay\", delay = \"1ms\", route = \"api\" }\n",
    )
    .unwrap();
    let journal_path = dir.path().join("journal.json");
    let admin = format!("http://{}", sc.admin());
    let mut child = chaos(
        dir.path(),
        &[
            experiment.to_str().unwrap(),
            "--admin",
            &admin,
            "--journal",
            journal_path.to_str().unwrap(),
        ],
    );
    let faults_url = format!("{admin}/faults");
    the_fault(&rt, &faults_url);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (code, out) = exit_code(&mut child, dir.path());
    stop.store(true, Ordering::Relaxed);
    assert_eq!(code, 1, "{out}");
    assert_eq!(get_json(&rt, &faults_url), serde_json::json!([]), "rolled back: {out}");
    let j = journal(&journal_path);
    assert_eq!(j["verdict"], "interrupted");
    assert_eq!(j["rollbacks"][0]["step"], "undo method[0]");
    assert_eq!(j["rollbacks"][0]["ok"], true);
}

/// The state letter of a process (`S` sleeping, `T` stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.chars().next()
}

#[test]
fn an_experiment_changes_a_demo_upstream_and_freezes_a_process_then_puts_both_back() {
    let rt = runtime();
    let mut demo = Command::new(BIN)
        .args(["demo-upstream", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(demo.stdout.take().unwrap()), &mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let base = format!("http://{}", ready["ready"]["listen"].as_str().unwrap());
    let mut sleeper = Command::new("sleep").arg("120").spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleeper.pid");
    std::fs::write(&pid_file, sleeper.id().to_string()).unwrap();

    let experiment = dir.path().join("experiment.toml");
    std::fs::write(
        &experiment,
        format!(
            r#"
title = "a bad deploy and a frozen database"
[[method]]
duration = "2s"
demo_upstream = {{ url = "{base}", path = "/api/checkout", behaviour = {{ error_rate = 1.0 }} }}
[[method]]
at = "0s"
duration = "2s"
stop = {{ pid_file = "{}" }}
[[method]]
at = "0s"
duration = "2s"
cpu_stress = {{ threads = 1 }}
"#,
            pid_file.display()
        ),
    )
    .unwrap();
    let journal_path = dir.path().join("journal.json");
    let mut child = chaos(
        dir.path(),
        &[
            experiment.to_str().unwrap(),
            "--journal",
            journal_path.to_str().unwrap(),
        ],
    );
    let behaviours = format!("{base}/_demo/behaviours");
    assert_eventually!(@ Duration::from_secs(30),
        get_json(&rt, &behaviours)["/api/checkout"]["error_rate"] == 1.0,
        "the bad deploy in place");
    // Fields not given keep their values.
    assert_eq!(get_json(&rt, &behaviours)["/api/checkout"]["p50"], "20ms");
    assert_eventually!(@ Duration::from_secs(30), process_state(sleeper.id()) == Some('T'), "the process stopped");

    let (code, out) = exit_code(&mut child, dir.path());
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        get_json(&rt, &behaviours)["/api/checkout"]["error_rate"],
        0.001,
        "restored"
    );
    assert_eq!(process_state(sleeper.id()), Some('S'), "continued");
    let j = journal(&journal_path);
    assert_eq!(j["verdict"], "held");
    for step in j["steps"].as_array().unwrap() {
        assert_eq!(
            (&step["ok"], &step["ended"]["ok"]),
            (&Value::Bool(true), &Value::Bool(true)),
            "{step:#}"
        );
    }
    assert!(
        j["rollbacks"].as_array().unwrap().is_empty(),
        "every undo ran when its step ended"
    );

    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(demo.id() as i32, libc::SIGTERM) };
    let _ = demo.wait();
}

fn experiments(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/experiments")
        .join(kind)
}

#[test]
fn invalid_experiments_exit_78_with_every_problem_and_its_position() {
    let mut files = 0;
    for entry in std::fs::read_dir(experiments("invalid")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        files += 1;
        let out = Command::new(BIN).arg("chaos").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{}", path.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = path.file_name().unwrap().to_str().unwrap();
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        for line in expected.lines().filter(|l| !l.is_empty()) {
            let line = line.replace(&format!("invalid/{name}"), path.to_str().unwrap());
            assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
        }
    }
    assert!(files >= 2);
}

#[test]
fn the_example_experiment_plans_and_its_sidecar_config_is_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/experiments");
    let out = Command::new(BIN)
        .args(["chaos", "--dry-run"])
        .arg(examples.join("checkout-abort.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "experiment: checkout survives a flaky, slow upstream",
        "+15s",
        "method[0]: fault abort percent=20.0 position=upstream route=checkout status=503 for 30s",
        "burn rate of SLO checkout-availability over 5s > 20 for 5s",
        "after: the steady state must be back within 20s (by +1m 5s)",
    ] {
        assert!(plan.contains(needle), "missing {needle:?} in:\n{plan}");
    }
    let out = Command::new(BIN)
        .arg("validate")
        .arg(examples.join("shop-sidecar.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The README's example is a valid experiment too.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("## Chaos experiments").nth(1).unwrap();
    let example = section.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
    let loaded = ballast_chaos::load::parse("README.md", example).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.experiment.method.len(), 2);

    // Faults need a sidecar: a usage error without --admin.
    let out = Command::new(BIN)
        .arg("chaos")
        .arg(examples.join("checkout-abort.toml"))
        .env_remove("BALLAST_ADMIN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
