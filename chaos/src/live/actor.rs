//! [`LiveAct`]: the real thing. Faults go through the shared [`AdminClient`] to every sidecar
//! given; processes are signalled directly (or restarted by whoever registered them); demo
//! upstreams are changed through their `/_demo/behaviours` control API; stress runs on threads
//! of this process and ends when the actor is dropped, if not before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_model::FaultSpec;
use ballast_model::client::AdminClient;
use futures_util::future::BoxFuture;

use super::process::{Managed, read_pid_file, send};
use super::stress::StressHandle;
use crate::act::{Act, ActError};
use crate::action::{FaultRef, Signal, Stress, StressId};
use crate::spec::ProcessRef;

/// Control calls to a demo upstream give up after this long.
const DEMO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct LiveAct {
    admins: Vec<AdminClient>,
    http: reqwest::Client,
    processes: Mutex<HashMap<String, Arc<dyn Managed>>>,
    stresses: Mutex<HashMap<u64, StressHandle>>,
    next_stress: AtomicU64,
}

impl LiveAct {
    /// Faults go to every sidecar of `admins`.
    pub fn new(admins: Vec<AdminClient>) -> Self {
        LiveAct {
            admins,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(DEMO_TIMEOUT)
                .build()
                .expect("HTTP client"),
            processes: Mutex::new(HashMap::new()),
            stresses: Mutex::new(HashMap::new()),
            next_stress: AtomicU64::new(1),
        }
    }

    /// Let experiments name `process` (kill, stop, continue, restart it).
    pub fn register(&self, name: impl Into<String>, process: Arc<dyn Managed>) {
        self.processes.lock().unwrap().insert(name.into(), process);
    }

    fn managed(&self, name: &str) -> Result<Arc<dyn Managed>, ActError> {
        self.processes.lock().unwrap().get(name).cloned().ok_or_else(|| {
            ActError::Process(format!(
                "no process named {name:?} (names are those of processes the scenario spawned)"
            ))
        })
    }

    fn pid(&self, process: &ProcessRef) -> Result<u32, ActError> {
        match process {
            ProcessRef::Name(name) => self
                .managed(name)?
                .pid()
                .ok_or_else(|| ActError::Process(format!("process {name:?} is not running"))),
            ProcessRef::PidFile(path) => read_pid_file(path).map_err(ActError::Process),
        }
    }

    fn admin(&self, base: &str) -> Result<&AdminClient, ActError> {
        self.admins
            .iter()
            .find(|a| a.base() == base)
            .ok_or_else(|| ActError::Sidecar(format!("{base} is not one of the sidecars given")))
    }

    /// `path`'s behaviours on the demo upstream: every path's, as it lists them.
    async fn behaviours(&self, upstream: &str) -> Result<serde_json::Map<String, serde_json::Value>, ActError> {
        let url = format!("{upstream}/_demo/behaviours");
        let resp = self.http.get(&url).send().await.map_err(|e| demo_error(&url, e))?;
        let resp = ok_or_body(&url, resp).await?;
        resp.json().await.map_err(|e| demo_error(&url, e))
    }

    async fn put_behaviour(&self, upstream: &str, path: &str, behaviour: &serde_json::Value) -> Result<(), ActError> {
        let url = format!("{upstream}/_demo/behaviours{path}");
        let resp = self
            .http
            .put(&url)
            .json(behaviour)
            .send()
            .await
            .map_err(|e| demo_error(&url, e))?;
        ok_or_body(&url, resp).await.map(drop)
    }
}

fn demo_error(url: &str, e: reqwest::Error) -> ActError {
    ActError::DemoUpstream(format!("{url}: {e}"))
}

async fn ok_or_body(url: &str, resp: reqwest::Response) -> Result<reqwest::Response, ActError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    Err(ActError::DemoUpstream(format!("{url}: {status}: {}", body.trim())))
}

impl Act for LiveAct {
    fn add_fault<'a>(&'a self, spec: &'a FaultSpec) -> BoxFuture<'a, Result<Vec<FaultRef>, ActError>> {
        Box::pin(async move {
            let mut added = Vec::new();
            for admin in &self.admins {
                match admin.add_fault(spec).await {
                    Ok(active) => added.push(FaultRef {
                        admin: admin.base().to_owned(),
                        id: active.id,
                    }),
                    Err(e) => {
                        // All sidecars or none: take back what went in.
                        for f in &added {
                            let _ = self.remove_fault(f).await;
                        }
                        return Err(ActError::Sidecar(format!("{}: {e}", admin.base())));
                    }
                }
            }
            if added.is_empty() {
                return Err(ActError::Sidecar("no sidecar admin API given for the fault".into()));
            }
            Ok(added)
        })
    }

    fn remove_fault<'a>(&'a self, fault: &'a FaultRef) -> BoxFuture<'a, Result<(), ActError>> {
        Box::pin(async move {
            let admin = self.admin(&fault.admin)?;
            match admin.remove_fault(&fault.id).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // Its TTL may have run out first: gone is what was wanted.
                    match admin.faults().await {
                        Ok(list) if !list.iter().any(|f| f.id == fault.id) => Ok(()),
                        _ => Err(ActError::Sidecar(format!("{}: {e}", fault.admin))),
                    }
                }
            }
        })
    }

    fn clear_faults(&self) -> BoxFuture<'_, Result<Vec<String>, ActError>> {
        Box::pin(async move {
            let mut removed = Vec::new();
            let mut first_error = None;
            for admin in &self.admins {
                match admin.clear_faults().await {
                    Ok(ids) => removed.extend(ids.into_iter().map(|id| format!("{id}@{}", admin.base()))),
                    Err(e) => {
                        first_error.get_or_insert(ActError::Sidecar(format!("{}: {e}", admin.base())));
                    }
                }
            }
            first_error.map_or(Ok(removed), Err)
        })
    }

    fn signal<'a>(&'a self, process: &'a ProcessRef, signal: Signal) -> BoxFuture<'a, Result<u32, ActError>> {
        Box::pin(async move {
            let pid = self.pid(process)?;
            send(pid, signal).map_err(ActError::Process)?;
            Ok(pid)
        })
    }

    fn restart<'a>(&'a self, process: &'a ProcessRef) -> BoxFuture<'a, Result<u32, ActError>> {
        Box::pin(async move {
            match process {
                ProcessRef::Name(name) => {
                    let managed = self.managed(name)?;
                    managed
                        .restart()
                        .await
                        .map_err(|e| ActError::Process(format!("restart {name:?}: {e}")))
                }
                ProcessRef::PidFile(path) => Err(ActError::Process(format!(
                    "the process of pid file {path} cannot be restarted: ballast did not start it"
                ))),
            }
        })
    }

    fn start_stress(&self, stress: Stress) -> BoxFuture<'_, Result<StressId, ActError>> {
        Box::pin(async move {
            let handle = tokio::task::spawn_blocking(move || StressHandle::start(stress))
                .await
                .map_err(|e| ActError::Stress(e.to_string()))?
                .map_err(ActError::Stress)?;
            let id = self.next_stress.fetch_add(1, Ordering::Relaxed);
            self.stresses.lock().unwrap().insert(id, handle);
            Ok(StressId(id))
        })
    }

    fn end_stress(&self, id: StressId) -> BoxFuture<'_, Result<(), ActError>> {
        Box::pin(async move {
            let handle = self.stresses.lock().unwrap().remove(&id.0);
            match handle {
                Some(h) => tokio::task::spawn_blocking(move || h.end())
                    .await
                    .map_err(|e| ActError::Stress(e.to_string())),
                None => Err(ActError::Stress(format!("no stress #{}", id.0))),
            }
        })
    }

    fn set_behaviour<'a>(
        &'a self,
        upstream: &'a str,
        path: &'a str,
        behaviour: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, ActError>> {
        Box::pin(async move {
            let current = self.behaviours(upstream).await?;
            let own = current.get(path).cloned();
            // Fields not given keep the values the path has now (its own, or its longest
            // prefix's), so `{ error_rate = 0.2 }` leaves the latency as it was.
            let effective = current
                .iter()
                .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, b)| b.clone());
            let mut merged = match effective {
                Some(serde_json::Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            if let serde_json::Value::Object(given) = behaviour {
                merged.extend(given.clone());
            }
            self.put_behaviour(upstream, path, &serde_json::Value::Object(merged))
                .await?;
            Ok(own)
        })
    }

    fn restore_behaviour<'a>(
        &'a self,
        upstream: &'a str,
        path: &'a str,
        previous: Option<&'a serde_json::Value>,
    ) -> BoxFuture<'a, Result<(), ActError>> {
        Box::pin(async move {
            match previous {
                Some(b) => self.put_behaviour(upstream, path, b).await,
                None => {
                    let url = format!("{upstream}/_demo/behaviours{path}");
                    let resp = self.http.delete(&url).send().await.map_err(|e| demo_error(&url, e))?;
                    // Not there (a reset came first) is as good as removed.
                    if resp.status() == reqwest::StatusCode::NOT_FOUND {
                        return Ok(());
                    }
                    ok_or_body(&url, resp).await.map(drop)
                }
            }
        })
    }

    fn reset_behaviours<'a>(&'a self, upstream: &'a str) -> BoxFuture<'a, Result<(), ActError>> {
        Box::pin(async move {
            let url = format!("{upstream}/_demo/reset");
            let resp = self.http.post(&url).send().await.map_err(|e| demo_error(&url, e))?;
            ok_or_body(&url, resp).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// The state letter of a process (`S` sleeping, `T` stopped), or None once it is gone.
    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(") ").next()?.chars().next()
    }

    fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "{what} did not happen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    struct Child(Mutex<std::process::Child>, AtomicU64);

    impl Managed for Child {
        fn pid(&self) -> Option<u32> {
            Some(self.0.lock().unwrap().id())
        }
        fn restart(&self) -> BoxFuture<'_, Result<u32, String>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { Ok(self.0.lock().unwrap().id()) })
        }
    }

    #[tokio::test]
    async fn processes_are_stopped_continued_and_killed_by_pid_file_or_name() {
        let mut sleeper = Command::new("sleep").arg("60").stdin(Stdio::null()).spawn().unwrap();
        let pid = sleeper.id();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("sleep.pid");
        std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
        let by_file = ProcessRef::PidFile(pid_file.to_str().unwrap().into());
        let act = LiveAct::new(Vec::new());

        assert_eq!(act.signal(&by_file, Signal::Stop).await.unwrap(), pid);
        eventually("the process stopping", || state(pid) == Some('T'));
        act.signal(&by_file, Signal::Cont).await.unwrap();
        eventually("the process continuing", || state(pid) == Some('S'));
        let err = act.restart(&by_file).await.unwrap_err().to_string();
        assert!(err.contains("cannot be restarted"), "{err}");

        let other = Command::new("sleep").arg("60").stdin(Stdio::null()).spawn().unwrap();
        let other_pid = other.id();
        let managed = Arc::new(Child(Mutex::new(other), AtomicU64::new(0)));
        act.register("db", managed.clone());
        let by_name = ProcessRef::Name("db".into());
        assert_eq!(act.restart(&by_name).await.unwrap(), other_pid);
        assert_eq!(managed.1.load(Ordering::Relaxed), 1, "restarted by its owner");
        assert_eq!(act.signal(&by_name, Signal::Kill).await.unwrap(), other_pid);
        let status = managed.0.lock().unwrap().wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let err = act
            .signal(&ProcessRef::Name("nope".into()), Signal::Kill)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no process named \"nope\""), "{err}");

        act.signal(&by_file, Signal::Term).await.unwrap();
        let status = sleeper.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        let err = act.signal(&by_file, Signal::Kill).await.unwrap_err().to_string();
        assert!(err.contains("No such process"), "a dead process: {err}");
    }

    #[tokio::test]
    async fn stress_is_ended_on_request_or_when_the_actor_goes() {
        let act = LiveAct::new(Vec::new());
        let id = act.start_stress(Stress::Cpu { threads: 1 }).await.unwrap();
        act.end_stress(id).await.unwrap();
        assert!(act.end_stress(id).await.is_err(), "ended once");
        let _left = act.start_stress(Stress::Cpu { threads: 1 }).await.unwrap();
        let threads = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter(|t| {
                    std::fs::read_to_string(t.as_ref().unwrap().path().join("comm"))
                        .unwrap_or_default()
                        .starts_with("chaos-cpu")
                })
                .count()
        };
        eventually("the stress thread running", || threads() == 1);
        drop(act);
        eventually("the stress ending with the actor", || threads() == 0);
    }
}
