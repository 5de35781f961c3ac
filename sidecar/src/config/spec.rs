//! The TOML file as written: serde structs that reject unknown fields.
//!
//! Fields whose value a semantic check may complain about are `Spanned`, so the error can point
//! at the exact line and column. Defaults live in `validate`, not here, so `GET /config` shows
//! the effective values.

use std::collections::BTreeMap;

use ballast_model::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    pub worker_threads: Option<Spanned<usize>>,
    pub drain_timeout: Option<Spanned<HumanDuration>>,
    pub idle_poll: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    pub listen: Option<Spanned<String>>,
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySpec {
    pub metrics: Option<bool>,
    #[serde(default)]
    pub latency_buckets: Vec<Spanned<HumanDuration>>,
    pub access_log: Option<AccessLogSpec>,
    pub tracing: Option<TracingSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSpec {
    /// OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub otlp_endpoint: Spanned<String>,
    /// Share of requests sampled when no sampled parent comes with them.
    pub sample: Option<Spanned<f64>>,
    pub service_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSpec {
    /// `"stdout"` or a file path (appended to).
    pub path: Option<Spanned<String>>,
    /// Share of successful requests logged; failures are always logged.
    pub sample: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    pub listen: Spanned<String>,
    pub max_connections: Option<Spanned<usize>>,
    pub max_request_header_size: Option<Spanned<ByteSize>>,
    pub header_read_timeout: Option<Spanned<HumanDuration>>,
    pub idle_timeout: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub name: Option<Spanned<String>>,
    #[serde(rename = "match", default)]
    pub matcher: Option<Spanned<MatchSpec>>,
    pub cluster: Spanned<String>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub prefix_rewrite: Option<Spanned<String>>,
    pub host_rewrite: Option<Spanned<String>>,
    #[serde(default)]
    pub host_rewrite_to_endpoint: bool,
    #[serde(default)]
    pub request_headers_add: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub request_headers_remove: Vec<Spanned<String>>,
    #[serde(default)]
    pub response_headers_add: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub response_headers_remove: Vec<Spanned<String>>,
    pub max_request_body: Option<Spanned<ByteSize>>,
    #[serde(default)]
    pub header_faults: bool,
    pub retry: Option<Spanned<RetrySpec>>,
    pub rate_limit: Option<Spanned<RateLimitSpec>>,
    pub concurrency: Option<Spanned<ConcurrencySpec>>,
    pub auth: Option<super::auth::RouteAuthSpec>,
    pub cache: Option<Spanned<CacheSpec>>,
}

/// `rate_limit = { requests = 100, per = "1s", burst = 200, key = "client_ip", shadow = false }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    pub requests: Spanned<u32>,
    pub per: Option<Spanned<HumanDuration>>,
    pub burst: Option<Spanned<u32>>,
    pub key: Option<Spanned<String>>,
    #[serde(default)]
    pub shadow: bool,
}

/// `cache = { ttl = "30s", max_bytes = "64MiB", max_object = "1MiB", stale_if_error = "5m" }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    pub ttl: Option<Spanned<HumanDuration>>,
    pub max_bytes: Option<Spanned<ByteSize>>,
    pub max_object: Option<Spanned<ByteSize>>,
    pub stale_if_error: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub honor_client_no_cache: bool,
}

/// `retry = { retry_on = ["connect-failure", "gateway-error"], max_retries = 2, ... }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    pub retry_on: Spanned<Vec<String>>,
    pub max_retries: Option<Spanned<u32>>,
    pub per_try_timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub retriable_status_codes: Vec<Spanned<u16>>,
    pub backoff_base: Option<Spanned<HumanDuration>>,
    pub backoff_max: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub retry_non_idempotent: bool,
    pub buffer_limit: Option<Spanned<ByteSize>>,
    pub budget_ratio: Option<Spanned<f64>>,
    pub budget_min_per_second: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    pub host: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub path_prefix: Option<Spanned<String>>,
    pub path_regex: Option<Spanned<String>>,
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    #[serde(default)]
    pub headers: Vec<Spanned<HeaderMatchSpec>>,
}

/// `{ name = "x-canary", value = "1" }`, `{ name, regex = "..." }` or `{ name, present = false }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchSpec {
    pub name: String,
    pub value: Option<String>,
    pub regex: Option<String>,
    pub present: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub endpoints: Spanned<Vec<EndpointSpec>>,
    pub balance: Option<Balance>,
    pub protocol: Option<Protocol>,
    pub connect_timeout: Option<Spanned<HumanDuration>>,
    pub pool: Option<PoolSpec>,
    pub outlier: Option<Spanned<OutlierSpec>>,
    pub health: Option<Spanned<HealthSpec>>,
    pub limits: Option<LimitsSpec>,
}

/// Outlier detection (Envoy's names where it has them).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierSpec {
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    pub failure_ratio: Option<Spanned<f64>>,
    pub failure_window: Option<Spanned<HumanDuration>>,
    pub min_requests: Option<u32>,
    pub base_ejection: Option<Spanned<HumanDuration>>,
    pub max_ejection: Option<Spanned<HumanDuration>>,
    pub jitter: Option<Spanned<HumanDuration>>,
    pub max_ejection_percent: Option<Spanned<u32>>,
}

/// Active HTTP health checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    pub path: Spanned<String>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub healthy_threshold: Option<Spanned<u32>>,
    pub unhealthy_threshold: Option<Spanned<u32>>,
    #[serde(default)]
    pub expected_statuses: Vec<Spanned<u16>>,
    pub panic_threshold: Option<Spanned<u32>>,
}

/// Circuit breaking: limits per cluster, answered with 503 `overflow` at once.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub max_connections: Option<usize>,
    pub max_pending: Option<usize>,
    pub max_requests: Option<usize>,
    pub max_retries: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub max_idle_per_endpoint: Option<usize>,
    pub idle_timeout: Option<Spanned<HumanDuration>>,
}

/// How a cluster picks an endpoint for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Each endpoint in turn, ignoring weights.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin (nginx's algorithm): exact shares, evenly interleaved.
    WeightedRoundRobin,
    /// Power of two choices: of two random endpoints, the one with fewer requests in flight.
    P2cLeastRequest,
}

/// The HTTP version spoken to a cluster's endpoints (cleartext; h2 by prior knowledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http1,
    Http2,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultLimitsSpec {
    pub max_active: Option<Spanned<usize>>,
    pub default_ttl: Option<Spanned<HumanDuration>>,
    pub max_ttl: Option<Spanned<HumanDuration>>,
    pub max_header_delay: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpListenerSpec {
    pub name: Spanned<String>,
    pub listen: Spanned<String>,
    pub upstream: Spanned<String>,
    /// `false` refuses connections (Toxiproxy's "down") until a reload says otherwise.
    #[serde(default = "yes")]
    pub enabled: bool,
    pub connect_timeout: Option<Spanned<HumanDuration>>,
    /// Toxics in place from start (`listener` is implied).
    #[serde(default)]
    pub toxics: Vec<Spanned<ballast_model::FaultSpec>>,
}

fn yes() -> bool {
    true
}

/// `concurrency = { max = 100 }`, or `concurrency = { adaptive = true, min = 3, max = 1000 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    pub max: Option<Spanned<usize>>,
    #[serde(default)]
    pub adaptive: bool,
    pub min: Option<Spanned<usize>>,
    pub sample_window: Option<Spanned<HumanDuration>>,
    pub min_rtt_requests: Option<Spanned<usize>>,
    pub min_rtt_interval: Option<Spanned<HumanDuration>>,
}
