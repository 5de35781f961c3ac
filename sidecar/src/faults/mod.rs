//! Faults in place: the table every worker reads, how faults come and go, and how they act.
//!
//! - [`FaultTable`] (here): the faults in place, each [`Installed`] with its id, origin, TTL and
//!   counters. Adds, removals and expiries take a lock and publish a new immutable snapshot;
//!   the request path only loads the snapshot (one atomic load; nothing more when it is empty).
//! - [`http`]: matching a request and applying HTTP faults, inbound and per endpoint.
//! - [`shape`]: response bodies paced to a bandwidth or cut short.
//!
//! Safety rules: every fault from the admin API has a TTL (a default, and a cap from
//! `[fault_limits]`); the request path ignores a fault past its expiry even before the reaper
//! removes it, so a fault never outlives its TTL. Faults from the config file last as long as
//! that config. Every add, removal and expiry is an [`EventKind`] on `/events` and counted.

pub mod http;
pub mod shape;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use ballast_model::event::unix_ms;
use ballast_model::fault::{Action, ActiveFault, Fault, FieldError, Origin, Position};
use ballast_model::{EventKind, FaultSpec};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::config::{ConfigFault, FaultLimits};
use crate::events::Events;

/// How often a fault was selected and applied.
#[derive(Default)]
pub struct Counters {
    pub matched: AtomicU64,
    pub injected: AtomicU64,
}

/// One fault in place.
pub struct Installed {
    pub id: Arc<str>,
    pub origin: Origin,
    pub spec: FaultSpec,
    pub action: Action,
    pub created_at_ms: u64,
    /// When it stops applying (tokio's clock, so tests can pause time), and the same in Unix ms.
    pub expires: Option<(Instant, u64)>,
    pub counters: Counters,
    /// For HTTP faults: the match, ready for requests.
    pub matcher: Option<http::Matcher>,
    /// Set when removed, for requests that selected the fault before.
    removed: AtomicBool,
}

impl Installed {
    /// False once the TTL has run out or the fault was removed, whether or not every reader
    /// has seen the table without it yet.
    pub fn live(&self, now: Instant) -> bool {
        !self.removed.load(Ordering::Relaxed) && self.expires.is_none_or(|(at, _)| now < at)
    }

    /// [`Installed::live`], reading the clock (once, into `now`) only for a fault with a TTL.
    pub fn in_place(&self, now: &mut Option<Instant>) -> bool {
        match self.expires {
            None => !self.removed.load(Ordering::Relaxed),
            Some(_) => self.live(*now.get_or_insert_with(Instant::now)),
        }
    }

    pub fn view(&self) -> ActiveFault {
        ActiveFault {
            id: self.id.to_string(),
            origin: self.origin,
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires.map(|(_, ms)| ms),
            spec: self.spec.clone(),
            matched: self.counters.matched.load(Ordering::Relaxed),
            injected: self.counters.injected.load(Ordering::Relaxed),
        }
    }
}

/// The HTTP faults in place, split by position; what the request path reads.
#[derive(Default)]
pub struct HttpFaults {
    pub inbound: Vec<Arc<Installed>>,
    pub upstream: Vec<Arc<Installed>>,
}

impl HttpFaults {
    pub fn is_empty(&self) -> bool {
        self.inbound.is_empty() && self.upstream.is_empty()
    }
}

/// The toxics on one TCP listener, in the order they were added.
pub type Toxics = Arc<[Arc<Installed>]>;

/// Why a fault was refused: field errors, a clash, or a limit.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("invalid fault")]
    Invalid(Vec<FieldError>),
    #[error("a fault with id {0:?} is already in place")]
    DuplicateId(String),
}

/// Counts for `/metrics`.
#[derive(Default)]
pub struct TableCounters {
    pub added: AtomicU64,
    pub removed: AtomicU64,
    pub expired: AtomicU64,
    /// Faults not applied because `max_active` requests were already under one.
    pub overflow: AtomicU64,
    /// Faults applied from request headers, by kind.
    pub header_delays: AtomicU64,
    pub header_aborts: AtomicU64,
}

pub struct FaultTable {
    limits: FaultLimits,
    state: Mutex<State>,
    http: ArcSwap<HttpFaults>,
    /// Per TCP listener, the toxics in place (listeners watch for changes).
    tcp: HashMap<String, watch::Sender<Toxics>>,
    /// Requests with a fault applied right now (Envoy's `active_faults`).
    active: AtomicUsize,
    pub counters: TableCounters,
    /// Wakes the reaper when a fault with an earlier expiry arrives.
    changed: Notify,
}

#[derive(Default)]
struct State {
    faults: Vec<Arc<Installed>>,
    next_id: u64,
}

impl FaultTable {
    /// A table for these limits and TCP listeners (by name).
    pub fn new<'a>(limits: FaultLimits, tcp_listeners: impl IntoIterator<Item = &'a str>) -> Self {
        let tcp = tcp_listeners
            .into_iter()
            .map(|name| (name.to_owned(), watch::channel(Toxics::from([])).0))
            .collect();
        FaultTable {
            limits,
            state: Mutex::default(),
            http: ArcSwap::from_pointee(HttpFaults::default()),
            tcp,
            active: AtomicUsize::new(0),
            counters: TableCounters::default(),
            changed: Notify::new(),
        }
    }

    pub fn limits(&self) -> &FaultLimits {
        &self.limits
    }

    /// The HTTP faults in place (cheap: one atomic load).
    pub fn http(&self) -> arc_swap::Guard<Arc<HttpFaults>> {
        self.http.load()
    }

    /// Follow the toxics of one TCP listener; `None` for a name that is not a TCP listener.
    pub fn toxics(&self, listener: &str) -> Option<watch::Receiver<Toxics>> {
        self.tcp.get(listener).map(watch::Sender::subscribe)
    }

    /// Every fault in place, oldest first.
    pub fn list(&self) -> Vec<ActiveFault> {
        let now = Instant::now();
        let state = self.lock();
        state.faults.iter().filter(|f| f.live(now)).map(|f| f.view()).collect()
    }

    /// Put a checked fault in place. Names of routes, endpoints and listeners must have been
    /// checked against the config by the caller ([`crate::config::Config::fault_names`]).
    pub fn add(&self, spec: FaultSpec, fault: Fault, origin: Origin, events: &Events) -> Result<ActiveFault, Refused> {
        let mut state = self.lock();
        let installed = self.install(&mut state, spec, fault, origin)?;
        self.publish(&state);
        drop(state);
        self.announce_added(&installed, events);
        Ok(installed.view())
    }

    /// Make an [`Installed`] and put it in `state` (not yet published).
    fn install(
        &self,
        state: &mut State,
        spec: FaultSpec,
        fault: Fault,
        origin: Origin,
    ) -> Result<Arc<Installed>, Refused> {
        let taken = |state: &State, id: &str| state.faults.iter().any(|f| &*f.id == id);
        let id: Arc<str> = match &spec.id {
            Some(id) if taken(state, id) => return Err(Refused::DuplicateId(id.clone())),
            Some(id) => id.as_str().into(),
            None => loop {
                state.next_id += 1;
                let prefix = if origin == Origin::Config { "config-" } else { "f" };
                let id = format!("{prefix}{}", state.next_id);
                if !taken(state, &id) {
                    break id.into();
                }
            },
        };
        let now_ms = unix_ms();
        let ttl = match origin {
            Origin::Config => fault.ttl,
            Origin::Api => Some(fault.ttl.unwrap_or(self.limits.default_ttl)),
        };
        // A TTL too far out for the clock is no TTL (validation caps TTLs well below that).
        let expires = ttl.and_then(|ttl| {
            let at = Instant::now().checked_add(ttl)?;
            Some((at, now_ms.saturating_add(ttl.as_millis() as u64)))
        });
        let matcher = match &fault.action {
            Action::Http { target, .. } => http::Matcher::new(target),
            Action::Tcp { .. } => None,
        };
        let installed = Arc::new(Installed {
            matcher,
            id,
            origin,
            spec,
            action: fault.action,
            created_at_ms: now_ms,
            expires,
            counters: Counters::default(),
            removed: AtomicBool::new(false),
        });
        state.faults.push(installed.clone());
        Ok(installed)
    }

    fn announce_added(&self, installed: &Installed, events: &Events) {
        self.counters.added.fetch_add(1, Ordering::Relaxed);
        events.publish(EventKind::FaultAdded {
            id: installed.id.to_string(),
            spec: Box::new(installed.spec.clone()),
            expires_at_ms: installed.expires.map(|(_, ms)| ms),
        });
        self.changed.notify_one();
    }

    /// Remove one fault by id; false if there is none.
    pub fn remove(&self, id: &str, events: &Events) -> bool {
        !self.remove_where(|f| &*f.id == id, events).is_empty()
    }

    /// Remove every fault from the admin API (config faults stay with their config).
    pub fn clear(&self, events: &Events) -> Vec<String> {
        self.remove_where(|f| f.origin == Origin::Api, events)
    }

    /// Make the faults from the config file those of a new config (at start and on reload),
    /// in one step: faults whose spec did not change stay as they are (id, counters, the
    /// toxicity drawn for open connections), the others go and the new ones come. Refused,
    /// changing nothing, if a new fault's id is taken by a fault that stays.
    pub fn replace_config_faults(&self, faults: &[ConfigFault], events: &Events) -> Result<(), Refused> {
        let mut state = self.lock();
        let in_new_config = |f: &Installed| faults.iter().any(|c| c.spec == f.spec);
        let stays = |f: &Installed| f.origin == Origin::Api || in_new_config(f);
        let in_place = |spec: &FaultSpec, state: &State| {
            state
                .faults
                .iter()
                .any(|f| f.origin == Origin::Config && f.spec == *spec)
        };
        let fresh: Vec<&ConfigFault> = faults.iter().filter(|c| !in_place(&c.spec, &state)).collect();
        for ConfigFault { spec, .. } in &fresh {
            if let Some(id) = &spec.id
                && state.faults.iter().any(|f| stays(f) && &*f.id == id)
            {
                return Err(Refused::DuplicateId(id.clone()));
            }
        }
        let (stay, gone): (Vec<_>, Vec<_>) = state.faults.drain(..).partition(|f| stays(f));
        state.faults = stay;
        for f in &gone {
            f.removed.store(true, Ordering::Relaxed);
        }
        let mut added = Vec::new();
        for c in fresh {
            added.push(self.install(&mut state, c.spec.clone(), c.fault.clone(), Origin::Config)?);
        }
        if !gone.is_empty() || !added.is_empty() {
            self.publish(&state);
        }
        drop(state);
        for f in gone {
            self.counters.removed.fetch_add(1, Ordering::Relaxed);
            events.publish(EventKind::FaultRemoved { id: f.id.to_string() });
        }
        for f in added {
            self.announce_added(&f, events);
        }
        Ok(())
    }

    fn remove_where(&self, pred: impl Fn(&Installed) -> bool, events: &Events) -> Vec<String> {
        let mut state = self.lock();
        let (gone, kept): (Vec<_>, Vec<_>) = state.faults.drain(..).partition(|f| pred(f));
        state.faults = kept;
        for f in &gone {
            f.removed.store(true, Ordering::Relaxed);
        }
        if !gone.is_empty() {
            self.publish(&state);
        }
        drop(state);
        for f in &gone {
            self.counters.removed.fetch_add(1, Ordering::Relaxed);
            events.publish(EventKind::FaultRemoved { id: f.id.to_string() });
        }
        gone.iter().map(|f| f.id.to_string()).collect()
    }

    /// Remove faults whose TTL has run out; returns when the next one will.
    pub fn expire(&self, events: &Events) -> Option<Instant> {
        let now = Instant::now();
        let mut state = self.lock();
        let (gone, kept): (Vec<_>, Vec<_>) = state.faults.drain(..).partition(|f| !f.live(now));
        state.faults = kept;
        if !gone.is_empty() {
            self.publish(&state);
        }
        let next = state.faults.iter().filter_map(|f| f.expires.map(|(at, _)| at)).min();
        drop(state);
        for f in gone {
            self.counters.expired.fetch_add(1, Ordering::Relaxed);
            tracing::info!(id = %f.id, "fault expired");
            events.publish(EventKind::FaultExpired { id: f.id.to_string() });
        }
        next
    }

    /// Expire faults on time, for as long as the table lives (run it on a runtime).
    pub async fn reap(self: Arc<Self>, events: Arc<Events>) {
        loop {
            let changed = self.changed.notified();
            match self.expire(&events) {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Count a request under a fault, unless `max_active` are already; the guard ends it.
    pub fn activate(self: &Arc<Self>) -> Option<ActiveGuard> {
        let before = self.active.fetch_add(1, Ordering::Relaxed);
        if self.limits.max_active.is_some_and(|max| before >= max) {
            self.active.fetch_sub(1, Ordering::Relaxed);
            self.counters.overflow.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(ActiveGuard(self.clone()))
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publish the current faults to the request path and to the TCP listeners.
    fn publish(&self, state: &State) {
        let mut http = HttpFaults::default();
        let mut tcp: HashMap<&str, Vec<Arc<Installed>>> = HashMap::new();
        for f in &state.faults {
            match &f.action {
                Action::Http { target, .. } if target.position == Position::Inbound => http.inbound.push(f.clone()),
                Action::Http { .. } => http.upstream.push(f.clone()),
                Action::Tcp { target, .. } => tcp.entry(&target.listener).or_default().push(f.clone()),
            }
        }
        self.http.store(Arc::new(http));
        for (name, tx) in &self.tcp {
            let toxics: Toxics = tcp.remove(name.as_str()).unwrap_or_default().into();
            tx.send_if_modified(|current| {
                let same =
                    current.len() == toxics.len() && current.iter().zip(toxics.iter()).all(|(a, b)| Arc::ptr_eq(a, b));
                if !same {
                    *current = toxics;
                }
                !same
            });
        }
    }
}

impl FaultTable {
    /// The fault families of `/metrics`, in Prometheus's text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let faults = self.list();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let one = |v: u64| [(String::new(), v)];
        family(
            "ballast_faults_in_place",
            "gauge",
            "Faults and toxics in place.",
            &one(faults.len() as u64),
        );
        family(
            "ballast_faults_added_total",
            "counter",
            "Faults put in place.",
            &one(load(&c.added)),
        );
        family(
            "ballast_faults_removed_total",
            "counter",
            "Faults removed before their TTL (through the API, or gone from the config on reload).",
            &one(load(&c.removed)),
        );
        family(
            "ballast_faults_expired_total",
            "counter",
            "Faults whose TTL ran out.",
            &one(load(&c.expired)),
        );
        family(
            "ballast_faults_active_requests",
            "gauge",
            "Requests under a fault right now (capped by fault_limits.max_active).",
            &one(self.active() as u64),
        );
        family(
            "ballast_faults_overflow_total",
            "counter",
            "Faults not applied because fault_limits.max_active requests were under one.",
            &one(load(&c.overflow)),
        );
        family(
            "ballast_faults_header_injected_total",
            "counter",
            "Faults applied from x-ballast-fault-* request headers.",
            &[
                ("{kind=\"delay\"}".to_owned(), load(&c.header_delays)),
                ("{kind=\"abort\"}".to_owned(), load(&c.header_aborts)),
            ],
        );
        let per_fault = |pick: fn(&ActiveFault) -> u64| -> Vec<(String, u64)> {
            faults
                .iter()
                .map(|f| {
                    let labels = format!(
                        "{{fault=\"{}\",kind=\"{}\"}}",
                        crate::telemetry::prometheus::escape(&f.id),
                        f.spec.kind
                    );
                    (labels, pick(f))
                })
                .collect()
        };
        family(
            "ballast_fault_matched_total",
            "counter",
            "Requests (connections, for toxics) a fault in place selected.",
            &per_fault(|f| f.matched),
        );
        family(
            "ballast_fault_injected_total",
            "counter",
            "Requests (connections, for toxics) a fault in place was applied to.",
            &per_fault(|f| f.injected),
        );
    }
}

/// Holds one of the `max_active` slots while a faulted request is under its fault.
pub struct ActiveGuard(Arc<FaultTable>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TTL the admin API accepts: at most `max_ttl`.
pub fn check_ttl(limits: &FaultLimits, ttl: Option<Duration>) -> Result<(), FieldError> {
    match ttl {
        Some(ttl) if ttl > limits.max_ttl => Err(FieldError {
            field: "ttl".into(),
            message: format!(
                "{} is above the {} cap (fault_limits.max_ttl)",
                humantime::format_duration(ttl),
                humantime::format_duration(limits.max_ttl)
            ),
            fix: "give a shorter ttl, or raise fault_limits.max_ttl in the sidecar config".into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Arc<FaultTable> {
        Arc::new(FaultTable::new(FaultLimits::default(), ["redis"]))
    }

    fn spec(text: &str) -> (FaultSpec, Fault) {
        let spec: FaultSpec = toml::from_str(text).unwrap();
        let fault = spec.validate().unwrap();
        (spec, fault)
    }

    #[tokio::test(start_paused = true)]
    async fn api_faults_expire_after_their_ttl_with_an_event() {
        let (table, events) = (table(), Arc::new(Events::default()));
        let (s, f) = spec("kind = \"abort\"\nstatus = 503\nttl = \"30s\"");
        let added = table.add(s, f, Origin::Api, &events).unwrap();
        let (s, f) = spec("kind = \"delay\"\ndelay = 5");
        table.add(s, f, Origin::Api, &events).unwrap(); // the default TTL: 5 minutes
        tokio::spawn(table.clone().reap(events.clone()));
        let (_, mut live) = events.subscribe();

        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(table.http().inbound.len(), 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let expired = live.recv().await.unwrap();
        assert_eq!(expired.kind, EventKind::FaultExpired { id: added.id.clone() });
        assert_eq!(table.http().inbound.len(), 1);
        assert_eq!(table.list().len(), 1);

        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(matches!(
            live.recv().await.unwrap().kind,
            EventKind::FaultExpired { .. }
        ));
        assert!(table.http().is_empty());
        assert_eq!(table.counters.expired.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_fault_stops_applying_before_the_reaper_runs() {
        let (table, events) = (table(), Events::default());
        let (s, f) = spec("kind = \"abort\"\nstatus = 503\nttl = \"1s\"");
        table.add(s, f, Origin::Api, &events).unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        let http = table.http();
        assert_eq!(http.inbound.len(), 1, "not reaped yet");
        assert!(!http.inbound[0].live(Instant::now()));
        assert!(table.list().is_empty());
    }

    #[test]
    fn config_faults_have_no_ttl_and_are_replaced_on_reload() {
        let (table, events) = (table(), Events::default());
        let (s, f) = spec("kind = \"latency\"\nlistener = \"redis\"\nlatency = 100");
        table
            .replace_config_faults(&[ConfigFault { spec: s, fault: f }], &events)
            .unwrap();
        let toxics = table.toxics("redis").unwrap();
        assert_eq!(toxics.borrow().len(), 1);
        assert_eq!(toxics.borrow()[0].expires, None);
        assert_eq!(&*toxics.borrow()[0].id, "config-1");
        let (s, f) = spec("kind = \"abort\"\nstatus = 500");
        table.add(s, f, Origin::Api, &events).unwrap();
        table.replace_config_faults(&[], &events).unwrap();
        assert!(toxics.borrow().is_empty());
        assert_eq!(table.list().len(), 1, "the API fault stays");
        assert_eq!(table.clear(&events).len(), 1);
        assert!(table.list().is_empty());
    }

    #[test]
    fn ids_are_unique() {
        let (table, events) = (table(), Events::default());
        let (s, f) = spec("kind = \"reset\"\nid = \"mine\"");
        table.add(s.clone(), f.clone(), Origin::Api, &events).unwrap();
        assert!(matches!(
            table.add(s, f, Origin::Api, &events),
            Err(Refused::DuplicateId(_))
        ));
        assert!(table.remove("mine", &events));
        assert!(!table.remove("mine", &events));
    }

    #[test]
    fn max_active_caps_concurrently_faulted_requests() {
        let limits = FaultLimits {
            max_active: Some(1),
            ..FaultLimits::default()
        };
        let table = Arc::new(FaultTable::new(limits, []));
        let first = table.activate().unwrap();
        assert!(table.activate().is_none());
        assert_eq!(table.counters.overflow.load(Ordering::Relaxed), 1);
        drop(first);
        assert!(table.activate().is_some());
    }
}
