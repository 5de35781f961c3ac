//! The sidecar's configuration: one TOML file, loaded in two phases.
//!
//! 1. [`load`] parses the document, then deserializes each section and each list item on its
//!    own into the `spec` structs, so one typo does not hide the next.
//! 2. `validate` turns specs into the typed [`Config`] below, applying defaults and semantic
//!    checks (unknown clusters, duplicate addresses, empty endpoint lists, zero timeouts).
//!
//! Every problem from both phases is collected into [`ConfigErrors`] with its position.

pub mod auth;
mod error;
mod load;
pub mod spec;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use serde::Serialize;

pub use auth::{ApiKey, ApiKeys, Auth, AuthSpec, Jwt, JwtKey, Require, RouteAuth, parse_sha256};
pub use error::{ConfigError, ConfigErrors};
pub use load::{parse, serde_error};
pub use spec::{Balance, Protocol};

/// Read and validate a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors::unreadable(&name, &e))?;
    parse(&text, &name)
}

/// A validated config: every default applied, every reference resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub runtime: Runtime,
    pub admin: Admin,
    pub telemetry: Telemetry,
    pub listeners: Vec<Listener>,
    pub routes: Vec<Route>,
    pub clusters: BTreeMap<String, Cluster>,
    /// Plain TCP proxies (e.g. in front of Redis or PostgreSQL) that take toxics.
    pub tcp_listeners: Vec<TcpListener>,
    pub fault_limits: FaultLimits,
    /// Faults in place from start, without a TTL: `[[faults]]`, each listener's `toxics`, and
    /// a `down` toxic for each listener with `enabled = false`.
    pub faults: Vec<ConfigFault>,
    /// `[[slo]]`: their latency thresholds become exact `/metrics` bucket boundaries.
    pub slos: Vec<ballast_model::slo::SloSpec>,
    /// `[auth]`: API keys and JWT verification, used by routes with `auth`.
    pub auth: Auth,
}

impl Config {
    /// `/metrics` histogram boundaries beside the defaults: `telemetry.latency_buckets` and
    /// every latency SLO's threshold, so latency SLIs are exact in Prometheus.
    pub fn extra_latency_buckets(&self) -> impl Iterator<Item = Duration> + '_ {
        let slos = self
            .slos
            .iter()
            .filter_map(ballast_model::slo::SloSpec::latency_threshold);
        self.telemetry.latency_buckets.iter().copied().chain(slos)
    }

    /// Check a fault's route, endpoints and TCP listener against this config.
    pub fn fault_names(&self, fault: &ballast_model::FaultSpec) -> Vec<ballast_model::fault::FieldError> {
        validate::fault_names(fault, &self.routes, &self.clusters, &self.tcp_listeners)
    }
}

/// A fault from the config file: as written (shown by `GET /config`), and as checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigFault {
    #[serde(flatten)]
    pub spec: ballast_model::FaultSpec,
    #[serde(skip)]
    pub fault: ballast_model::fault::Fault,
}

/// Limits on faults (safety: a forgotten fault must not stay, an untrusted one must not pile up).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultLimits {
    /// Requests under a fault at one time; above it faults are skipped and counted as overflow.
    pub max_active: Option<usize>,
    /// TTL of a fault added through the admin API without one.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// The longest TTL the admin API accepts.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// The longest delay a request header may ask for (routes with `header_faults = true`).
    #[serde(with = "humantime_serde")]
    pub max_header_delay: Duration,
}

impl Default for FaultLimits {
    fn default() -> Self {
        FaultLimits {
            max_active: None,
            default_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(3600),
            max_header_delay: Duration::from_secs(10),
        }
    }
}

/// A TCP listener: every connection is relayed to `upstream`, through the toxics in place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpListener {
    pub name: String,
    pub listen: SocketAddr,
    /// `host:port`.
    pub upstream: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runtime {
    /// Worker threads, each with its own event loop and listening socket (SO_REUSEPORT).
    pub worker_threads: usize,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// How long a worker that waits for a CPU may keep polling for more work before it sleeps
    /// (`worker::idle_poll`).
    #[serde(with = "humantime_serde")]
    pub idle_poll: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Admin {
    pub listen: SocketAddr,
    /// Bearer token required by every admin call when set. Never printed.
    #[serde(skip)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Telemetry {
    /// Count requests (`/stats`, `/metrics`); on by default.
    pub metrics: bool,
    /// Extra histogram boundaries for `/metrics`, beside the defaults (e.g. SLO thresholds,
    /// so `le` buckets match them exactly).
    #[serde(serialize_with = "ser::durations")]
    pub latency_buckets: Vec<Duration>,
    /// One JSON line per request; off when absent.
    pub access_log: Option<AccessLog>,
    /// OpenTelemetry traces; off when absent (trace headers then pass through untouched).
    pub tracing: Option<Tracing>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tracing {
    pub otlp_endpoint: String,
    /// Parent-based: a request with a sampled parent is sampled; others with this ratio.
    pub sample: f64,
    pub service_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessLog {
    /// `stdout` or a file path.
    pub path: String,
    /// Share of successful requests logged (0 to 1); failures are always logged.
    pub sample: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    pub listen: SocketAddr,
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted; larger ones get 431.
    pub max_request_header_size: usize,
    /// A client must send a complete request head within this time (slowloris protection).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub cluster: String,
    /// Covers the whole upstream exchange until the response head arrives.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub prefix_rewrite: Option<String>,
    pub host: HostPolicy,
    #[serde(serialize_with = "ser::header_pairs")]
    pub request_headers_add: Vec<(HeaderName, HeaderValue)>,
    #[serde(serialize_with = "ser::header_names")]
    pub request_headers_remove: Vec<HeaderName>,
    #[serde(serialize_with = "ser::header_pairs")]
    pub response_headers_add: Vec<(HeaderName, HeaderValue)>,
    #[serde(serialize_with = "ser::header_names")]
    pub response_headers_remove: Vec<HeaderName>,
    pub max_request_body: Option<u64>,
    /// Let clients ask for faults with `x-ballast-fault-*` headers (never for untrusted clients).
    pub header_faults: bool,
    /// Retries; none when absent.
    pub retry: Option<RetryPolicy>,
    /// A rate limit; none when absent.
    pub rate_limit: Option<RateLimitPolicy>,
    /// A limit of requests in flight (static or adaptive); none when absent.
    pub concurrency: Option<ConcurrencyPolicy>,
    /// Who may call the route; anyone when absent.
    pub auth: Option<RouteAuth>,
    /// The response cache; none when absent.
    pub cache: Option<CachePolicy>,
}

/// How many requests a route lets in flight.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyPolicy {
    Static { max: usize },
    Adaptive(AdaptiveLimit),
}

impl From<AdaptiveLimit> for ConcurrencyPolicy {
    fn from(a: AdaptiveLimit) -> Self {
        ConcurrencyPolicy::Adaptive(a)
    }
}

/// Envoy's adaptive concurrency (gradient controller); see `policy::concurrency`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdaptiveLimit {
    pub min: usize,
    pub max: usize,
    #[serde(with = "humantime_serde")]
    pub sample_window: Duration,
    pub min_rtt_requests: usize,
    #[serde(with = "humantime_serde")]
    pub min_rtt_interval: Duration,
}

/// A route's rate limit (GCRA): `requests` per `per`, bursts up to `burst`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitPolicy {
    pub requests: u32,
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    pub burst: u32,
    pub key: RateLimitKey,
    /// Count what would be limited, reject nothing.
    pub shadow: bool,
}

/// What a rate limit is kept per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitKey {
    /// One bucket for the route.
    Route,
    ClientIp,
    /// The tenant the route's auth verified (API key or JWT).
    Tenant,
    /// The value of a request header (requests without it share one bucket).
    Header(HeaderName),
}

impl Serialize for RateLimitKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RateLimitKey::Route => s.serialize_str("route"),
            RateLimitKey::ClientIp => s.serialize_str("client_ip"),
            RateLimitKey::Tenant => s.serialize_str("tenant"),
            RateLimitKey::Header(h) => s.collect_str(&format_args!("header:{h}")),
        }
    }
}

/// A route's response cache (see `policy::cache` for what is stored and for how long).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CachePolicy {
    /// Freshness of an answer without `s-maxage` or `max-age`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Bound of the whole cache: bodies, headers and keys.
    pub max_bytes: u64,
    /// Larger answers pass through unstored.
    pub max_object: u64,
    /// How long past freshness an entry may be served instead of a failure (0: never).
    #[serde(with = "humantime_serde")]
    pub stale_if_error: Duration,
    /// Let a client's `Cache-Control: no-cache` / `no-store` bypass the cache.
    pub honor_client_no_cache: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            ttl: Duration::from_secs(30),
            max_bytes: 64 << 20,
            max_object: 1 << 20,
            stale_if_error: Duration::ZERO,
            honor_client_no_cache: false,
        }
    }
}

/// A route's retries (Envoy's names and semantics, linkerd's budget).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    pub retriable_status_codes: Vec<u16>,
    pub max_retries: u32,
    #[serde(serialize_with = "ser::opt_duration")]
    pub per_try_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    pub retry_non_idempotent: bool,
    /// Request bodies up to this size are read ahead for replay; larger ones are not retried.
    pub buffer_limit: u64,
    /// Retries allowed per request, on top of `budget_min_per_second` (over 10 s).
    pub budget_ratio: f64,
    pub budget_min_per_second: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retry_on: RetryOn::default(),
            retriable_status_codes: Vec::new(),
            max_retries: 1,
            per_try_timeout: None,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            retry_non_idempotent: false,
            buffer_limit: 64 * 1024,
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }
}

/// The conditions of `retry_on`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn {
    pub connect_failure: bool,
    pub refused_stream: bool,
    pub reset: bool,
    /// `5xx`: any 5xx answer, and every failure the sidecar answers with a 5xx.
    pub server_error: bool,
    /// `gateway-error`: 502, 503, 504, and the connect, reset, protocol and timeout failures.
    pub gateway_error: bool,
    pub retriable_status_codes: bool,
}

impl RetryOn {
    pub const NAMES: [&str; 6] = [
        "connect-failure",
        "refused-stream",
        "reset",
        "5xx",
        "gateway-error",
        "retriable-status-codes",
    ];

    /// From names; the first unknown one is the error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut on = RetryOn::default();
        for name in names {
            let flag = match name.as_ref() {
                "connect-failure" => &mut on.connect_failure,
                "refused-stream" => &mut on.refused_stream,
                "reset" => &mut on.reset,
                "5xx" => &mut on.server_error,
                "gateway-error" => &mut on.gateway_error,
                "retriable-status-codes" => &mut on.retriable_status_codes,
                other => return Err(other.to_owned()),
            };
            *flag = true;
        }
        Ok(on)
    }

    fn names(&self) -> Vec<&'static str> {
        let flags = [
            self.connect_failure,
            self.refused_stream,
            self.reset,
            self.server_error,
            self.gateway_error,
            self.retriable_status_codes,
        ];
        Self::NAMES
            .into_iter()
            .zip(flags)
            .filter_map(|(n, on)| on.then_some(n))
            .collect()
    }
}

impl Serialize for RetryOn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// What the upstream sees as `Host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostPolicy {
    /// The client's Host, unchanged (Envoy's default).
    Preserve,
    /// The chosen endpoint's address.
    Endpoint,
    /// A fixed value.
    Rewrite(String),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteMatch {
    pub host: Option<HostMatch>,
    pub path: PathMatch,
    #[serde(serialize_with = "ser::methods")]
    pub methods: Vec<Method>,
    pub headers: Vec<HeaderMatch>,
}

/// `api.example.com` exactly, or `*.example.com` for any subdomain. Case-insensitive, port ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostMatch {
    Exact(String),
    Suffix(String),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
#[derive(Default)]
pub enum PathMatch {
    #[default]
    Any,
    Exact(String),
    Prefix(String),
    Regex(#[serde(serialize_with = "ser::regex")] Regex),
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderMatch {
    #[serde(serialize_with = "ser::header_name")]
    pub name: HeaderName,
    pub rule: HeaderRule,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderRule {
    Present,
    Absent,
    Exact(String),
    Regex(#[serde(serialize_with = "ser::regex")] Regex),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    pub endpoints: Vec<Endpoint>,
    pub balance: Balance,
    pub protocol: Protocol,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Outlier detection; none when absent.
    pub outlier: Option<Outlier>,
    /// Active health checks; none when absent (every endpoint counts as healthy).
    pub health: Option<HealthCheck>,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlier {
    /// Eject after this many 5xx answers in a row (any failure the sidecar answers with a 5xx).
    pub consecutive_5xx: Option<u32>,
    /// Eject after this many gateway errors in a row (502/503/504, connect failures, resets).
    pub consecutive_gateway_errors: Option<u32>,
    /// Eject when failures over `failure_window` reach this share, with `min_requests` in it.
    pub failure_ratio: Option<f64>,
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
    pub min_requests: u32,
    /// An ejection lasts base × times ejected (since it last recovered), up to `max_ejection`,
    /// plus a random jitter up to `jitter`.
    #[serde(with = "humantime_serde")]
    pub base_ejection: Duration,
    #[serde(with = "humantime_serde")]
    pub max_ejection: Duration,
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    /// At most this share of the cluster ejected at once (at least one endpoint always may be).
    pub max_ejection_percent: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub path: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Statuses that pass; any 2xx when empty.
    pub expected_statuses: Vec<u16>,
    /// Below this percentage of healthy endpoints, every endpoint takes traffic (Envoy's panic mode).
    pub panic_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    pub max_connections: usize,
    pub max_pending: usize,
    pub max_requests: usize,
    /// Concurrent retries; unbounded by default (each route's retry budget governs).
    pub max_retries: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `ip:port` or `host:port`.
    pub address: String,
    pub weight: u32,
}

/// Serializers for the effective config shown by `GET /config`.
mod ser {
    use super::*;
    use serde::Serializer;
    use serde::ser::SerializeMap;

    pub fn regex<S: Serializer>(r: &Regex, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.as_str())
    }
    pub fn header_name<S: Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(h.as_str())
    }
    pub fn header_names<S: Serializer>(hs: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hs.iter().map(HeaderName::as_str))
    }
    pub fn header_pairs<S: Serializer>(hs: &[(HeaderName, HeaderValue)], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(hs.len()))?;
        for (k, v) in hs {
            map.serialize_entry(k.as_str(), v.to_str().unwrap_or("<binary>"))?;
        }
        map.end()
    }
    pub fn durations<S: Serializer>(ds: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ds.iter().map(|d| ballast_model::HumanDuration(*d).to_string()))
    }
    pub fn opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&ballast_model::HumanDuration(*d)),
            None => s.serialize_none(),
        }
    }
    pub fn methods<S: Serializer>(ms: &[Method], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ms.iter().map(Method::as_str))
    }
}

/// Durations in the effective config print as humantime text, like the input.
mod humantime_serde {
    use std::time::Duration;

    use ballast_model::HumanDuration;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&HumanDuration(*d))
    }
}
