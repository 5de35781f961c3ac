//! Real processes under test: a binary started with a config file in a temp dir.
//!
//! The sidecar prints one JSON line on stdout when its sockets are bound,
//! `{"ready":{"admin":"127.0.0.1:PORT","listeners":["127.0.0.1:PORT"]}}`, so configs can use
//! port 0 and tests learn the real ports from it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    child: Child,
    dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// The `ready` object of the ready line.
    pub ready: serde_json::Value,
}

impl Proc {
    /// Start `bin --config <file with config>` and wait until it reports ready.
    pub fn sidecar(bin: &str, config: &str) -> Proc {
        Self::start(bin, config, &[])
    }

    /// Like [`Proc::sidecar`] with extra environment variables.
    pub fn start(bin: &str, config: &str, env: &[(&str, &str)]) -> Proc {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("sidecar.toml");
        std::fs::write(&config_path, config).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(ready) = v.get("ready")
                {
                    let _ = tx.send(ready.clone());
                }
            }
        });
        let mut proc = Proc {
            child,
            dir,
            config_path,
            ready: serde_json::Value::Null,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(ready) => proc.ready = ready,
            Err(_) => panic!("{bin} did not report ready; stderr:\n{}", proc.stderr()),
        }
        proc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin(&self) -> SocketAddr {
        self.ready["admin"].as_str().unwrap().parse().unwrap()
    }

    pub fn listener(&self, i: usize) -> SocketAddr {
        self.ready["listeners"][i].as_str().unwrap().parse().unwrap()
    }

    pub fn tcp_listener(&self, i: usize) -> SocketAddr {
        self.ready["tcp_listeners"][i].as_str().unwrap().parse().unwrap()
    }

    /// `http://<first listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener(0))
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin())
    }

    /// Replace the config file (for reload tests).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).unwrap();
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for exit up to `limit`.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident memory (`VmRSS`) or peak (`VmHWM`) in KiB, from /proc.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field).and_then(|r| {
                r.trim_start_matches(':')
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Ctrl-C as a user presses it, `times` times 20 ms apart, at a child not yet waited for (so
/// its pid is still its own). Each press waits for the one before to be delivered: a signal
/// sent while the same one is still pending merges with it, and on a loaded machine a process
/// can go 20 ms without running.
pub fn ctrl_c(child: &std::process::Child, times: usize) {
    let pid = child.id();
    for _ in 0..times {
        let deadline = Instant::now() + Duration::from_secs(10);
        while sigint_pending(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a SIGINT waits to be delivered to `pid` (its pending masks in /proc, hexadecimal,
/// bit N-1 for signal N).
fn sigint_pending(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter_map(|l| l.strip_prefix("ShdPnd:").or_else(|| l.strip_prefix("SigPnd:")))
        .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .any(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
}

/// The live processes (not zombies) with `needle` in their command line, from /proc: to
/// check that whatever a run spawned with its folder's files is gone.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = state
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}
