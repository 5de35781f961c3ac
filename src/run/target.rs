//! The system under test: the scenario's own processes (`[[target.process]]`), the demo
//! upstream (one or several replicas) and a sidecar, spawned as child processes so an
//! experiment can stop, kill or restart them like real ones; or a running sidecar attached to
//! by URL.
//!
//! The demo upstream and the sidecar print a JSON ready line with their bound addresses; other
//! processes are ready once their `ready` address accepts connections. A restart runs the same
//! command again: the demo upstream's replicas listen on ports chosen once for the run, so
//! they come back where the sidecar looks for them; a sidecar whose config binds port 0 would
//! come back elsewhere, which the restart reports as an error (bind `{{port:NAME}}` instead).
//! Everything is stopped (SIGTERM, then SIGKILL after a grace period) when the run ends,
//! however it ends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::placeholders::Placeholders;
use super::scenario::{DemoUpstreamSpec, Scenario, Target};

/// How long a process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// When a started process counts as ready.
#[derive(Clone, Copy)]
enum Ready {
    /// It prints `{"ready": {...}}` on stdout (the demo upstream, the sidecar).
    Line,
    /// This address accepts connections.
    Port(SocketAddr),
    /// At once.
    Started,
}

/// A process the run started, and how to start it again.
pub struct Process {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    log: PathBuf,
    ready: Ready,
    /// What it said when it first came up (its ready line; `null` for other processes).
    pub said: serde_json::Value,
    child: tokio::sync::Mutex<Option<Child>>,
    /// Its pid while it runs (0: none), readable without the lock.
    pid: AtomicU32,
}

impl Process {
    async fn start(
        name: impl Into<String>,
        program: PathBuf,
        args: Vec<String>,
        cwd: &Path,
        log: PathBuf,
        ready: Ready,
    ) -> anyhow::Result<Arc<Process>> {
        let mut p = Process {
            name: name.into(),
            program,
            args,
            cwd: cwd.to_path_buf(),
            log,
            ready,
            said: serde_json::Value::Null,
            child: tokio::sync::Mutex::new(None),
            pid: AtomicU32::new(0),
        };
        let (child, said) = p.launch().await?;
        p.said = said;
        p.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        *p.child.get_mut() = Some(child);
        Ok(Arc::new(p))
    }

    /// Spawn it, in a process group of its own (so stopping it stops what it started too, and
    /// a Ctrl-C at the terminal reaches the runner only), and wait until it is ready. Its
    /// stderr goes to the log, appended across restarts; so does its stdout, but for a process
    /// that announces itself with a ready line (the rest of its stdout is dropped).
    async fn launch(&self) -> anyhow::Result<(Child, serde_json::Value)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot write {}", self.log.display()))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .process_group(0)
            .stdin(Stdio::null())
            .stderr(log.try_clone()?)
            .kill_on_drop(true);
        match self.ready {
            Ready::Line => cmd.stdout(Stdio::piped()),
            _ => cmd.stdout(log),
        };
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the {} ({})", self.name, self.program.display()))?;
        let said = match self.ready {
            Ready::Line => {
                let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
                let ready = tokio::time::timeout(READY_TIMEOUT, async {
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                            && let Some(ready) = v.get("ready")
                        {
                            return Some(ready.clone());
                        }
                    }
                    None
                })
                .await
                .ok()
                .flatten();
                // Keep draining its stdout so it never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                ready
            }
            Ready::Port(addr) => {
                let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
                loop {
                    if tokio::net::TcpStream::connect(addr).await.is_ok() {
                        break Some(serde_json::Value::Null);
                    }
                    if child.try_wait().ok().flatten().is_some() || tokio::time::Instant::now() > deadline {
                        break None;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ready::Started => Some(serde_json::Value::Null),
        };
        let Some(said) = said else {
            let _ = child.start_kill();
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("the {} did not start; its log ends:\n{}", self.name, tail.join("\n"));
        };
        Ok((child, said))
    }

    /// SIGTERM to its process group (the sidecar drains), SIGKILL after `grace`.
    async fn stop(&self, grace: Duration) {
        let mut child = self.child.lock().await;
        let Some(c) = child.as_mut() else { return };
        let group = c.id();
        signal_group(group, libc::SIGTERM);
        if tokio::time::timeout(grace, c.wait()).await.is_err() {
            tracing::warn!("the {} did not stop within {grace:?}: killed", self.name);
            let _ = c.kill().await;
        }
        // Whatever it started and left behind.
        signal_group(group, libc::SIGKILL);
        *child = None;
        self.pid.store(0, Ordering::Relaxed);
    }
}

/// Send `signal` to the process group a spawned process leads.
fn signal_group(leader: Option<u32>, signal: i32) {
    if let Some(pid) = leader {
        // SAFETY: kill(2) on the group our own child leads (it was spawned with its own group).
        unsafe { libc::kill(-(pid as i32), signal) };
    }
}

impl ballast_chaos::live::Managed for Process {
    fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|p| *p != 0)
    }

    fn restart(&self) -> BoxFuture<'_, Result<u32, String>> {
        Box::pin(async move {
            let mut child = self.child.lock().await;
            if let Some(mut old) = child.take() {
                signal_group(old.id(), libc::SIGKILL);
                let _ = old.kill().await;
            }
            self.pid.store(0, Ordering::Relaxed);
            let (new, said) = self.launch().await.map_err(|e| format!("{e:#}"))?;
            let pid = new.id().unwrap_or(0);
            self.pid.store(pid, Ordering::Relaxed);
            *child = Some(new);
            if said != self.said {
                return Err(format!(
                    "the {} came back at other addresses ({said}, not {}): its config binds port 0; bind \"127.0.0.1:{{{{port:NAME}}}}\" to restart it in place",
                    self.name, self.said
                ));
            }
            Ok(pid)
        })
    }
}

/// The target once up.
pub struct Running {
    /// The sidecar's admin API base URL and token.
    pub admin: String,
    pub token: Option<String>,
    /// Where clients reach the sidecar.
    pub url: String,
    /// Every placeholder's value for this run.
    pub placeholders: Placeholders,
    /// In start order.
    pub processes: Vec<Arc<Process>>,
}

/// This binary, which runs the demo upstream and (without `ballast-sidecar` beside it) the
/// sidecar.
fn me() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the ballast binary")
}

/// The command that runs a sidecar: the `ballast-sidecar` binary beside this one (as cargo
/// builds and packages them), else this binary's own `sidecar` subcommand (same code).
fn sidecar_command() -> anyhow::Result<(PathBuf, Vec<String>)> {
    let me = me()?;
    let beside = me.parent().map(|d| d.join("ballast-sidecar")).filter(|p| p.exists());
    Ok(match beside {
        Some(bin) => (bin, Vec::new()),
        None => (me, vec!["sidecar".to_owned()]),
    })
}

/// Bring the target up; spawned processes log into `dir`. On an error, whatever was started
/// is stopped again.
pub async fn start(scenario: &Scenario, dir: &Path) -> anyhow::Result<Running> {
    let (sidecar_text, replicas) = match &scenario.target {
        Target::Spawn {
            sidecar, demo_upstream, ..
        } => (
            sidecar.as_str(),
            demo_upstream
                .as_ref()
                .map_or(0, |d| if d.listen.is_some() { 0 } else { d.replicas }),
        ),
        Target::Attach(_) => ("", 0),
    };
    let mut placeholders = Placeholders::with_free_ports(&[&scenario.text, sidecar_text], replicas)
        .context("cannot find free loopback ports")?;
    if let Target::Spawn {
        demo_upstream: Some(DemoUpstreamSpec {
            listen: Some(listen), ..
        }),
        ..
    } = &scenario.target
    {
        placeholders.set_demo_upstreams(&[listen.to_string()]);
    }
    let mut running = Running {
        admin: String::new(),
        token: None,
        url: String::new(),
        placeholders: Placeholders::default(),
        processes: Vec::new(),
    };
    let started = bring_up(scenario, dir, &mut placeholders, &mut running).await;
    running.placeholders = placeholders;
    if let Err(e) = started {
        running.stop(Duration::from_secs(5)).await;
        return Err(e);
    }
    Ok(running)
}

async fn bring_up(
    scenario: &Scenario,
    dir: &Path,
    placeholders: &mut Placeholders,
    running: &mut Running,
) -> anyhow::Result<()> {
    for p in &scenario.processes {
        let command: Vec<String> = p.command.iter().map(|a| placeholders.fill(a)).collect();
        let program = super::scenario::find_program(&command[0], scenario.dir())
            .with_context(|| format!("cannot find {:?}", command[0]))?;
        let ready = match &p.ready {
            Some(r) => Ready::Port(
                placeholders
                    .fill(r)
                    .parse()
                    .with_context(|| format!("process {}: ready {r:?}", p.name))?,
            ),
            None => Ready::Started,
        };
        let log = dir.join(format!("{}.log", p.name));
        let process = Process::start(&p.name, program, command[1..].to_vec(), scenario.dir(), log, ready).await?;
        running.processes.push(process);
    }
    match &scenario.target {
        Target::Attach(a) => {
            running.admin = a.admin.trim_end_matches('/').to_owned();
            running.token = a.token.clone();
            running.url = a.url.clone().unwrap_or_default();
        }
        Target::Spawn {
            demo_upstream,
            sidecar,
            sidecar_dir,
        } => {
            if let Some(demo) = demo_upstream {
                for i in 0..demo.replicas as usize {
                    let listen = placeholders
                        .get(&format!("demo_upstream.{i}"))
                        .context("a demo upstream replica without an address")?
                        .to_owned();
                    let process = spawn_demo_upstream(demo, i, &listen, placeholders, dir).await?;
                    running.processes.push(process);
                }
            }
            // Written beside the run's files; key files stay relative to the original.
            let config_path = dir.join("sidecar.toml");
            std::fs::write(&config_path, placeholders.fill(sidecar)).context("cannot write the sidecar's config")?;
            let (program, mut args) = sidecar_command()?;
            args.extend(["--config".to_owned(), config_path.display().to_string()]);
            let sc = Process::start(
                "sidecar",
                program,
                args,
                sidecar_dir,
                dir.join("sidecar.log"),
                Ready::Line,
            )
            .await?;
            let admin = sc.said["admin"].as_str().unwrap_or_default().to_owned();
            let listener = sc.said["listeners"][0].as_str().unwrap_or_default().to_owned();
            running.processes.push(sc);
            running.admin = format!("http://{admin}");
            running.url = format!("http://{listener}");
        }
    }
    placeholders.set("sidecar", running.url.trim_end_matches('/'));
    Ok(())
}

async fn spawn_demo_upstream(
    spec: &DemoUpstreamSpec,
    replica: usize,
    listen: &str,
    placeholders: &Placeholders,
    dir: &Path,
) -> anyhow::Result<Arc<Process>> {
    // Its address was chosen with the scenario's ports, so a restarted replica comes back
    // where the sidecar looks for it.
    let mut args = vec!["demo-upstream".to_owned(), "--listen".to_owned(), listen.to_owned()];
    if let Some(paths) = &spec.paths {
        let file = dir.join("demo-upstream.toml");
        std::fs::write(&file, placeholders.fill(&toml::to_string(paths)?))
            .context("cannot write the demo upstream's behaviours")?;
        args.extend(["--behaviours".to_owned(), file.display().to_string()]);
    }
    let (name, log) = if spec.replicas > 1 {
        (
            format!("demo_upstream.{replica}"),
            format!("demo-upstream.{replica}.log"),
        )
    } else {
        ("demo_upstream".to_owned(), "demo-upstream.log".to_owned())
    };
    Process::start(name, me()?, args, dir, dir.join(log), Ready::Line).await
}

impl Running {
    /// The spawned processes by the names experiments use: `sidecar`, `demo_upstream` (with
    /// replicas `demo_upstream.N`, replica 0 also as `demo_upstream`), and each
    /// `[[target.process]]` by its name.
    pub fn managed(&self) -> Vec<(String, Arc<dyn ballast_chaos::live::Managed>)> {
        let mut named = Vec::new();
        for p in &self.processes {
            let process: Arc<dyn ballast_chaos::live::Managed> = p.clone();
            if p.name == "demo_upstream.0" {
                named.push(("demo_upstream".to_owned(), process.clone()));
            }
            named.push((p.name.clone(), process));
        }
        named
    }

    /// Stop every spawned process, the last started first.
    pub async fn stop(&mut self, grace: Duration) {
        for p in self.processes.iter().rev() {
            p.stop(grace).await;
        }
    }
}
