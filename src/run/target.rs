//! The system under test: the demo upstream and a sidecar spawned as child processes (so an
//! experiment can stop or kill them like real ones), or a running sidecar attached to by URL.
//! Spawned processes print a JSON ready line with their bound addresses; they are stopped
//! (SIGTERM, then SIGKILL after a grace period) when the run ends, however it ends.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::scenario::{DemoUpstreamSpec, Target};

/// A child process and what it said when ready.
pub struct Spawned {
    pub name: &'static str,
    pub child: Child,
    pub ready: serde_json::Value,
}

/// The target once up.
pub struct Running {
    /// The sidecar's admin API base URL and token.
    pub admin: String,
    pub token: Option<String>,
    /// Where clients reach the sidecar.
    pub url: String,
    /// The spawned demo upstream's address (`host:port`).
    pub demo_upstream: Option<String>,
    pub children: Vec<Spawned>,
}

/// The command that runs a sidecar: the `ballast-sidecar` binary beside this one (as cargo
/// builds and packages them), else this binary's own `sidecar` subcommand (same code).
fn sidecar_command() -> anyhow::Result<Command> {
    let me = std::env::current_exe().context("cannot find the ballast binary")?;
    let beside = me.parent().map(|d| d.join("ballast-sidecar")).filter(|p| p.exists());
    Ok(match beside {
        Some(bin) => Command::new(bin),
        None => {
            let mut cmd = Command::new(me);
            cmd.arg("sidecar");
            cmd
        }
    })
}

async fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> anyhow::Result<Spawned> {
    let stderr = std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    cmd.stdout(Stdio::piped())
        .stderr(stderr)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("cannot start the {name}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
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
    let Some(ready) = ready else {
        let _ = child.start_kill();
        let said = std::fs::read_to_string(log).unwrap_or_default();
        bail!("the {name} did not start; it said:\n{said}");
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Spawned { name, child, ready })
}

/// Bring the target up; spawned processes log into `dir`.
pub async fn start(target: &Target, dir: &Path) -> anyhow::Result<Running> {
    match target {
        Target::Attach(a) => Ok(Running {
            admin: a.admin.trim_end_matches('/').to_owned(),
            token: a.token.clone(),
            url: a.url.clone().unwrap_or_default(),
            demo_upstream: None,
            children: Vec::new(),
        }),
        Target::Spawn {
            demo_upstream,
            sidecar,
            sidecar_dir,
        } => {
            let mut children = Vec::new();
            let mut config = sidecar.clone();
            let mut demo_address = None;
            if let Some(demo) = demo_upstream {
                let up = spawn_demo_upstream(demo, dir).await?;
                let addr = up.ready["listen"].as_str().unwrap_or_default().to_owned();
                config = config.replace("{{demo_upstream}}", &addr);
                demo_address = Some(addr);
                children.push(up);
            }
            // Written beside the run's files; key files stay relative to the original.
            let config_path = dir.join("sidecar.toml");
            std::fs::write(&config_path, &config).context("cannot write the sidecar's config")?;
            let mut cmd = sidecar_command()?;
            cmd.arg("--config").arg(&config_path).current_dir(sidecar_dir);
            let sc = spawn("sidecar", cmd, &dir.join("sidecar.log")).await?;
            let admin = sc.ready["admin"].as_str().unwrap_or_default().to_owned();
            let listener = sc.ready["listeners"][0].as_str().unwrap_or_default().to_owned();
            children.push(sc);
            Ok(Running {
                admin: format!("http://{admin}"),
                token: None,
                url: format!("http://{listener}"),
                demo_upstream: demo_address,
                children,
            })
        }
    }
}

async fn spawn_demo_upstream(spec: &DemoUpstreamSpec, dir: &Path) -> anyhow::Result<Spawned> {
    let me = std::env::current_exe().context("cannot find the ballast binary")?;
    let listen = spec.listen.map_or("127.0.0.1:0".to_owned(), |a| a.to_string());
    let mut cmd = Command::new(me);
    cmd.args(["demo-upstream", "--listen", &listen]);
    if let Some(paths) = &spec.paths {
        let file = dir.join("demo-upstream.toml");
        std::fs::write(&file, toml::to_string(paths)?).context("cannot write the demo upstream's behaviours")?;
        cmd.arg("--behaviours").arg(file);
    }
    spawn("demo upstream", cmd, &dir.join("demo-upstream.log")).await
}

/// A spawned process as an experiment's actions see it: signals by pid. A restart is refused
/// with the reason (its ports were chosen at its first start, so another instance would not
/// be where clients and the sidecar look for it).
struct Pid {
    name: &'static str,
    pid: Option<u32>,
}

impl ballast_chaos::live::Managed for Pid {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn restart(&self) -> futures_util::future::BoxFuture<'_, Result<u32, String>> {
        Box::pin(async move {
            Err(format!(
                "the {} cannot be restarted within a run: stop and continue it, or kill it",
                self.name
            ))
        })
    }
}

impl Running {
    /// The spawned processes by the names experiments use: `sidecar`, `demo_upstream`.
    pub fn managed(&self) -> Vec<(String, std::sync::Arc<dyn ballast_chaos::live::Managed>)> {
        self.children
            .iter()
            .map(|s| {
                let process: std::sync::Arc<dyn ballast_chaos::live::Managed> = std::sync::Arc::new(Pid {
                    name: s.name,
                    pid: s.child.id(),
                });
                (s.name.replace(' ', "_"), process)
            })
            .collect()
    }

    /// Stop every spawned process: SIGTERM (the sidecar drains), SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        for s in self.children.iter_mut().rev() {
            if let Some(pid) = s.child.id() {
                // SAFETY: signalling our own child by pid.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            if tokio::time::timeout(grace, s.child.wait()).await.is_err() {
                tracing::warn!("the {} did not stop within {grace:?}: killed", s.name);
                let _ = s.child.kill().await;
            }
        }
    }
}
