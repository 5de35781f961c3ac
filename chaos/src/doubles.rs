//! Test doubles, for this crate's tests and the scenario runner's: [`Scripted`] observes
//! traffic given as a function of time, [`Recorder`] acts by writing down each call with its
//! time (and fails the calls it is told to). Both read tokio's clock, so tests run with
//! paused time.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ballast_model::stats::{Latency, Traffic as RouteTraffic};
use ballast_model::units::HumanDuration;
use ballast_model::{FaultSpec, StatsWindow};
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use crate::act::{Act, ActError};
use crate::action::{FaultRef, Signal, Stress, StressId};
use crate::observe::{HttpAnswer, Observe, ObserveError};
use crate::probe::HttpProbe;
use crate::spec::ProcessRef;

/// One second of traffic on route `api`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    pub requests: u64,
    /// Of the requests, those answered 5xx.
    pub errors: u64,
    /// Every request's latency.
    pub latency_ms: u64,
    /// Retries the route made for them.
    pub retries: u64,
}

type TrafficFn = dyn Fn(Duration) -> Traffic + Send + Sync;
type HttpFn = dyn Fn(Duration) -> Result<HttpAnswer, ObserveError> + Send + Sync;

/// Observes route `api` through a script: `traffic(t)` is the traffic of the second starting
/// at `t` (time since the double was made; seconds before that read as `t = 0`, as if the
/// system had been running). Windows are one second long, the last one ending now.
pub struct Scripted {
    start: Instant,
    traffic: Box<TrafficFn>,
    http: Option<Box<HttpFn>>,
    reads: Mutex<Vec<Duration>>,
}

impl Scripted {
    pub fn new(traffic: impl Fn(Duration) -> Traffic + Send + Sync + 'static) -> Self {
        Scripted {
            start: Instant::now(),
            traffic: Box::new(traffic),
            http: None,
            reads: Mutex::new(Vec::new()),
        }
    }

    /// HTTP probes answered by `answer(t)`.
    pub fn with_http(
        mut self,
        answer: impl Fn(Duration) -> Result<HttpAnswer, ObserveError> + Send + Sync + 'static,
    ) -> Self {
        self.http = Some(Box::new(answer));
        self
    }

    /// When stats were read (since the double was made).
    pub fn reads(&self) -> Vec<Duration> {
        self.reads.lock().unwrap().clone()
    }

    fn window(&self, from: Duration) -> StatsWindow {
        let t = (self.traffic)(from);
        let mut route = RouteTraffic::default();
        route.counters.requests = t.requests;
        route.counters.retries = t.retries;
        route
            .counters
            .by_status_class
            .insert("2xx".into(), t.requests.saturating_sub(t.errors));
        route
            .counters
            .by_status_class
            .insert("5xx".into(), t.errors.min(t.requests));
        let mut latency = Latency::default();
        if t.requests > 0 {
            latency
                .0
                .record_n(t.latency_ms * 1000, t.requests)
                .expect("latency within bounds");
        }
        route.latency = latency;
        StatsWindow {
            from_ms: from.as_millis() as u64,
            to_ms: from.as_millis() as u64 + 1000,
            reset: false,
            routes: BTreeMap::from([("api".to_owned(), route)]),
            clusters: BTreeMap::new(),
        }
    }
}

impl Observe for Scripted {
    fn stats(&self, over: Duration) -> BoxFuture<'_, Result<Vec<StatsWindow>, ObserveError>> {
        Box::pin(async move {
            let now = self.start.elapsed();
            self.reads.lock().unwrap().push(now);
            let seconds = over.as_secs().max(1);
            Ok((1..=seconds)
                .map(|i| self.window(now.saturating_sub(Duration::from_secs(i))))
                .collect())
        })
    }

    fn http<'a>(&'a self, _probe: &'a HttpProbe) -> BoxFuture<'a, Result<HttpAnswer, ObserveError>> {
        Box::pin(async move {
            match &self.http {
                Some(answer) => answer(self.start.elapsed()),
                None => Err(ObserveError::Http("no HTTP script".into())),
            }
        })
    }
}

/// Acts by writing each call down (`"2s add fault abort ttl=3s"`); calls whose words contain
/// one of the [`Recorder::fail_on`] texts fail instead, and those matching a
/// [`Recorder::hang_on`] text never answer.
pub struct Recorder {
    start: Instant,
    calls: Mutex<Vec<String>>,
    fail: Mutex<Vec<String>>,
    hang: Mutex<Vec<String>>,
    next: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            start: Instant::now(),
            calls: Mutex::new(Vec::new()),
            fail: Mutex::new(Vec::new()),
            hang: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
        }
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every call whose words contain `text` fail.
    pub fn fail_on(self, text: &str) -> Self {
        self.fail.lock().unwrap().push(text.to_owned());
        self
    }

    /// Make every call whose words contain `text` hang forever.
    pub fn hang_on(self, text: &str) -> Self {
        self.hang.lock().unwrap().push(text.to_owned());
        self
    }

    /// Every call so far, `"<time since made> <call>"`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Write the call down and answer it with `value` (or fail, or hang, as scripted).
    fn answer<'a, T: Send + 'a>(&self, what: String, value: impl FnOnce() -> T) -> BoxFuture<'a, Result<T, ActError>> {
        let at = HumanDuration(self.start.elapsed());
        self.calls.lock().unwrap().push(format!("{at} {what}"));
        if self.hang.lock().unwrap().iter().any(|h| what.contains(h.as_str())) {
            return Box::pin(std::future::pending());
        }
        let result = if self.fail.lock().unwrap().iter().any(|f| what.contains(f.as_str())) {
            Err(ActError::Sidecar(format!("{what}: refused (as scripted)")))
        } else {
            Ok(value())
        };
        Box::pin(std::future::ready(result))
    }

    fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

impl Act for Recorder {
    fn add_fault<'a>(&'a self, spec: &'a FaultSpec) -> BoxFuture<'a, Result<Vec<FaultRef>, ActError>> {
        let ttl = spec.ttl.map_or("none".to_owned(), |t| t.to_string());
        self.answer(format!("add fault {} ttl={ttl}", spec.kind), || {
            vec![FaultRef {
                admin: "sidecar".into(),
                id: format!("f{}", self.id()),
            }]
        })
    }

    fn remove_fault<'a>(&'a self, fault: &'a FaultRef) -> BoxFuture<'a, Result<(), ActError>> {
        self.answer(format!("remove fault {}", fault.id), || ())
    }

    fn clear_faults(&self) -> BoxFuture<'_, Result<Vec<String>, ActError>> {
        self.answer("clear faults".into(), Vec::new)
    }

    fn signal<'a>(&'a self, process: &'a ProcessRef, signal: Signal) -> BoxFuture<'a, Result<u32, ActError>> {
        self.answer(format!("signal {} {process}", signal.name()), || 4242)
    }

    fn restart<'a>(&'a self, process: &'a ProcessRef) -> BoxFuture<'a, Result<u32, ActError>> {
        self.answer(format!("restart {process}"), || 4243)
    }

    fn start_stress(&self, stress: Stress) -> BoxFuture<'_, Result<StressId, ActError>> {
        let id = self.id();
        let what = match stress {
            Stress::Cpu { threads } => format!("start stress #{id}: cpu {threads} threads"),
            Stress::Memory { bytes } => format!("start stress #{id}: memory {bytes} bytes"),
        };
        self.answer(what, || StressId(id))
    }

    fn end_stress(&self, id: StressId) -> BoxFuture<'_, Result<(), ActError>> {
        self.answer(format!("end stress #{}", id.0), || ())
    }

    fn set_behaviour<'a>(
        &'a self,
        upstream: &'a str,
        path: &'a str,
        behaviour: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, ActError>> {
        let previous = serde_json::json!({ "error_rate": 0.0 });
        self.answer(format!("set behaviour {upstream} {path} {behaviour}"), || {
            Some(previous)
        })
    }

    fn restore_behaviour<'a>(
        &'a self,
        upstream: &'a str,
        path: &'a str,
        previous: Option<&'a serde_json::Value>,
    ) -> BoxFuture<'a, Result<(), ActError>> {
        let previous = previous.map_or("none".to_owned(), |p| p.to_string());
        self.answer(format!("restore behaviour {upstream} {path} {previous}"), || ())
    }

    fn reset_behaviours<'a>(&'a self, upstream: &'a str) -> BoxFuture<'a, Result<(), ActError>> {
        self.answer(format!("reset behaviours {upstream}"), || ())
    }
}
