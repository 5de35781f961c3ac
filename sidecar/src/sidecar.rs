//! The running sidecar: shared state, hot reload, worker threads, signals and drain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Semaphore, watch};

use ballast_model::EventKind;

use crate::admin;
use crate::config::{Config, ConfigErrors, load_file};
use crate::events::Events;
use crate::faults::FaultTable;
use crate::gateway::{Context, Gateway};
use crate::server;
use crate::telemetry::tracing::Tracing;
use crate::telemetry::{AccessLogger, Registry, Telemetry};

/// State every worker and the admin API share.
pub struct Shared {
    path: PathBuf,
    /// The timeline served on `/events`.
    pub events: Arc<Events>,
    /// Faults and toxics in place; outlives config reloads.
    pub faults: Arc<FaultTable>,
    /// A runtime of its own for background work that outlives reloads (health checks).
    background: tokio::runtime::Handle,
    /// Every meter; outlives config reloads.
    pub telemetry: Telemetry,
    gateway: ArcSwap<Gateway>,
    ready: AtomicBool,
    reload_lock: Mutex<()>,
}

/// Why a reload left the running config in place.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(ConfigErrors),
    #[error("{file}: {what} changed; that takes a restart (the running config is unchanged)")]
    NeedsRestart { file: String, what: &'static str },
    /// The new config's faults clash with faults in place (an id taken through the API).
    #[error("{0}")]
    Faults(String),
}

impl Shared {
    /// Fails only if the access log cannot be opened.
    pub fn new(path: &Path, config: Config) -> std::io::Result<Arc<Self>> {
        let access_log = match &config.telemetry.access_log {
            Some(cfg) => Some(Arc::new(AccessLogger::open(cfg).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot open the access log {:?}: {e}", cfg.path))
            })?)),
            None => None,
        };
        let meters = Registry::new(config.runtime.worker_threads, config.telemetry.metrics);
        let tracing = match &config.telemetry.tracing {
            Some(cfg) => Some(Arc::new(Tracing::start(cfg).map_err(std::io::Error::other)?)),
            None => None,
        };
        let telemetry = Telemetry {
            meters,
            access_log,
            tracing,
        };
        let tcp_names = config.tcp_listeners.iter().map(|l| l.name.as_str());
        let faults = Arc::new(FaultTable::new(config.fault_limits.clone(), tcp_names));
        let events = Arc::new(Events::default());
        faults
            .replace_config_faults(&config.faults, &events)
            .map_err(std::io::Error::other)?;
        let background = background_runtime()?;
        let ctx = Context {
            telemetry: &telemetry,
            faults: &faults,
            events: &events,
            background: &background,
        };
        let gateway = Gateway::build(Arc::new(config), None, &ctx);
        Ok(Arc::new(Shared {
            path: path.to_owned(),
            events,
            faults,
            telemetry,
            background,
            gateway: ArcSwap::from_pointee(gateway),
            ready: AtomicBool::new(false),
            reload_lock: Mutex::new(()),
        }))
    }

    fn context(&self) -> Context<'_> {
        Context {
            telemetry: &self.telemetry,
            faults: &self.faults,
            events: &self.events,
            background: &self.background,
        }
    }

    /// The current gateway; a request keeps the one it started with.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.load_full()
    }

    pub fn config(&self) -> Arc<Config> {
        self.gateway.load().config.clone()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Re-read the config file and swap it in whole, or keep the running one and say why.
    /// Routes and clusters reload; listeners, admin and runtime settings need a restart.
    pub fn reload(&self) -> Result<Arc<Config>, ReloadError> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let new = load_file(&self.path).map_err(ReloadError::Invalid)?;
        let current = self.gateway.load_full();
        let old = &current.config;
        let file = self.path.display().to_string();
        let what = if new.listeners != old.listeners {
            Some("[[listeners]]")
        } else if new.admin != old.admin {
            Some("[admin]")
        } else if new.runtime != old.runtime {
            Some("[runtime]")
        } else if new.telemetry.access_log != old.telemetry.access_log {
            Some("[telemetry.access_log]")
        } else if new.telemetry.metrics != old.telemetry.metrics {
            Some("telemetry.metrics")
        } else if new.telemetry.tracing != old.telemetry.tracing {
            Some("[telemetry.tracing]")
        } else if new.tcp_listeners != old.tcp_listeners {
            Some("[[tcp_listeners]] (other than their toxics)")
        } else if new.fault_limits != old.fault_limits {
            Some("[fault_limits]")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(ReloadError::NeedsRestart { file, what });
        }
        if new.faults != old.faults {
            self.faults
                .replace_config_faults(&new.faults, &self.events)
                .map_err(|e| ReloadError::Faults(format!("{file}: {e}; the running config is unchanged")))?;
        }
        let gateway = Gateway::build(Arc::new(new), Some(&current), &self.context());
        let config = gateway.config.clone();
        self.gateway.store(Arc::new(gateway));
        Ok(config)
    }

    /// Reload and log the outcome (SIGHUP and the admin API both come here).
    pub fn reload_logged(&self, trigger: &str) -> Result<Arc<Config>, ReloadError> {
        let result = self.reload();
        let kind = match &result {
            Ok(c) => {
                let (routes, clusters) = (c.routes.len(), c.clusters.len());
                tracing::info!(trigger, routes, clusters, "config reloaded");
                EventKind::ConfigReloaded {
                    trigger: trigger.to_owned(),
                    routes,
                    clusters,
                }
            }
            Err(e) => {
                tracing::error!(trigger, "config rejected, the running config keeps serving:\n{e}");
                EventKind::ConfigRejected {
                    trigger: trigger.to_owned(),
                    reason: e.to_string(),
                }
            }
        };
        self.events.publish(kind);
        result
    }
}

/// A thread with a runtime for background work (health checks), for the life of the process.
fn background_runtime() -> std::io::Result<tokio::runtime::Handle> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("ballast-background".into())
        .spawn(move || {
            let rt = current_thread_runtime();
            let _ = tx.send(rt.handle().clone());
            rt.block_on(std::future::pending::<()>());
        })?;
    rx.recv().map_err(std::io::Error::other)
}

/// Addresses actually bound (port 0 in the config becomes a real port).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bound {
    pub admin: SocketAddr,
    pub listeners: Vec<SocketAddr>,
    pub tcp_listeners: Vec<SocketAddr>,
}

/// A started sidecar: sockets bound, workers and admin API serving.
pub struct Running {
    pub bound: Bound,
    pub shared: Arc<Shared>,
    drain: Duration,
    shutdown: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Bind every socket and start serving: one thread per worker plus one for the admin API.
/// Binding happens first, so a port conflict is a start-up error, not a half-started sidecar.
pub fn start(path: &Path, config: Config) -> anyhow::Result<Running> {
    let workers = config.runtime.worker_threads;
    let drain = config.runtime.drain_timeout;
    let listeners = config.listeners.clone();
    let tcp_listeners = config.tcp_listeners.clone();
    let admin_addr = config.admin.listen;
    let shared = Shared::new(path, config)?;

    let mut sockets: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for l in &listeners {
        let first = server::bind(l.listen).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", l.listen))?;
        // Port 0 resolves here; the other workers join the same port.
        let addr = first.local_addr()?;
        bound.push(addr);
        sockets[0].push(first);
        for s in sockets.iter_mut().skip(1) {
            s.push(server::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?);
        }
    }
    let mut tcp_sockets = Vec::new();
    for l in &tcp_listeners {
        let cannot =
            |e: std::io::Error| anyhow::anyhow!("cannot listen on {} (TCP listener {}): {e}", l.listen, l.name);
        let mut socket = server::bind(l.listen).map_err(cannot)?;
        // A `down` toxic stops and resumes listening on the socket; that keeps its port only
        // when the port was bound explicitly, so port 0 is resolved and bound again here.
        if l.listen.port() == 0 {
            socket = server::bind(socket.local_addr()?).map_err(cannot)?;
        }
        tcp_sockets.push(socket);
    }
    let admin_listener = std::net::TcpListener::bind(admin_addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on admin address {admin_addr}: {e}"))?;
    admin_listener.set_nonblocking(true)?;
    let bound = Bound {
        admin: admin_listener.local_addr()?,
        listeners: bound,
        tcp_listeners: tcp_sockets.iter().map(|s| s.local_addr()).collect::<Result<_, _>>()?,
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // max_connections counts per listener across all workers.
    let limits: Vec<Arc<Semaphore>> = listeners
        .iter()
        .map(|l| Arc::new(Semaphore::new(l.max_connections)))
        .collect();
    let mut threads = Vec::new();
    for (index, socks) in sockets.into_iter().enumerate() {
        let serving: Vec<Serving> = socks
            .into_iter()
            .zip(&listeners)
            .zip(&limits)
            .map(|((socket, cfg), limit)| Serving {
                socket,
                cfg: cfg.clone(),
                limit: limit.clone(),
            })
            .collect();
        let (shared, shutdown) = (shared.clone(), shutdown_rx.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("ballast-worker-{index}"))
                .spawn(move || {
                    crate::worker::enter(index);
                    current_thread_runtime().block_on(worker(serving, shared, shutdown, drain));
                })?,
        );
    }
    if !tcp_sockets.is_empty() {
        let (tcp_shared, stop) = (shared.clone(), shutdown_rx.clone());
        let (started_tx, started) = std::sync::mpsc::channel();
        threads.push(std::thread::Builder::new().name("ballast-tcp".into()).spawn(move || {
            let relays = tcp_relays(tcp_sockets, tcp_listeners, tcp_shared, stop, started_tx);
            current_thread_runtime().block_on(relays)
        })?);
        // A listener that starts `down` must refuse connections before the sidecar says ready.
        started.recv()?;
    }
    let (admin_shared, mut admin_stop) = (shared.clone(), shutdown_rx);
    threads.push(
        std::thread::Builder::new()
            .name("ballast-admin".into())
            .spawn(move || {
                current_thread_runtime().block_on(async move {
                    // Faults expire on time, whatever the workers are doing.
                    tokio::spawn(admin_shared.faults.clone().reap(admin_shared.events.clone()));
                    let listener = tokio::net::TcpListener::from_std(admin_listener).expect("admin socket registers");
                    tokio::select! {
                        _ = admin::serve(listener, admin_shared) => {}
                        _ = admin_stop.wait_for(|s| *s) => {}
                    }
                });
            })?,
    );
    shared.ready.store(true, Ordering::Release);
    tracing::info!(admin = %bound.admin, listeners = ?bound.listeners, workers, "ballast-sidecar ready");
    Ok(Running {
        bound,
        shared,
        drain,
        shutdown: shutdown_tx,
        threads,
    })
}

impl Running {
    /// Stop accepting, let requests in flight finish (up to the drain timeout), and return
    /// once every thread has ended.
    pub fn stop(self) {
        self.shared.ready.store(false, Ordering::Release);
        tracing::info!(drain = ?self.drain, "stopping: no new connections, draining requests in flight");
        let _ = self.shutdown.send(true);
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(tracing) = &self.shared.telemetry.tracing {
            tracing.shutdown();
        }
        if let Some(log) = &self.shared.telemetry.access_log {
            log.flush();
        }
        tracing::info!("stopped");
    }
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Run the sidecar until SIGTERM/SIGINT (reloading on SIGHUP), then drain.
/// Prints one JSON line on stdout once ready: `{"ready":{"admin":..,"listeners":[..]}}`.
pub fn run(path: &Path, config: Config) -> anyhow::Result<()> {
    let rt = current_thread_runtime();
    // Handlers go in before "ready", so an early SIGTERM still drains instead of killing.
    let signals = {
        let _in_runtime = rt.enter();
        Signals::install()?
    };
    let running = start(path, config)?;
    println!("{}", serde_json::json!({ "ready": running.bound }));
    rt.block_on(signals.wait_for_stop(&running.shared));
    running.stop();
    Ok(())
}

/// One listener as one worker serves it.
struct Serving {
    socket: std::net::TcpListener,
    cfg: crate::config::Listener,
    limit: Arc<Semaphore>,
}

/// A worker's event loop: serve its sockets; after shutdown, allow `drain` for open requests.
async fn worker(serving: Vec<Serving>, shared: Arc<Shared>, shutdown: watch::Receiver<bool>, drain: Duration) {
    let serves = serving.into_iter().map(|s| {
        let listener = tokio::net::TcpListener::from_std(s.socket).expect("socket registers with this runtime");
        server::serve(listener, s.cfg, shared.clone(), s.limit, shutdown.clone())
    });
    let all = futures_util::future::join_all(serves);
    tokio::spawn(crate::worker::pace_timers(shared.clone()));
    tokio::spawn(crate::worker::poll_before_sleeping(shared.config().runtime.idle_poll));
    let mut stop = shutdown.clone();
    let deadline = async move {
        let _ = stop.wait_for(|s| *s).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        _ = all => {}
        _ = deadline => tracing::warn!(?drain, "drain timeout reached; closing the connections still open"),
    }
}

/// The TCP listeners, all on one thread of their own: fault-injection relays, not the hot path.
async fn tcp_relays(
    sockets: Vec<std::net::TcpListener>,
    listeners: Vec<crate::config::TcpListener>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    started: std::sync::mpsc::Sender<()>,
) {
    let serves = sockets.into_iter().zip(listeners).map(|(socket, cfg)| {
        let listener = tokio::net::TcpListener::from_std(socket).expect("socket registers with this runtime");
        let toxics = shared
            .faults
            .toxics(&cfg.name)
            .expect("the fault table knows every TCP listener");
        crate::tcp::serve(listener, cfg, toxics, shutdown.clone())
    });
    let mut all = std::pin::pin!(futures_util::future::join_all(serves));
    // `serve` applies the toxics in place (a `down` among them) on its first poll.
    std::future::poll_fn(|cx| {
        let _ = all.as_mut().poll(cx);
        std::task::Poll::Ready(())
    })
    .await;
    let _ = started.send(());
    all.await;
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Handle SIGHUP (reload) until SIGTERM or SIGINT.
    async fn wait_for_stop(mut self, shared: &Shared) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => { let _ = shared.reload_logged("SIGHUP"); }
            }
        }
    }
}
