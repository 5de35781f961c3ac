//! Faults the sidecar injects: as people write them ([`FaultSpec`], TOML or JSON), checked into
//! what runs ([`Fault`]), and as the admin API lists them ([`ActiveFault`]).
//!
//! One flat spec covers HTTP faults and TCP toxics, told apart by `listener`: a spec naming a
//! `[[tcp_listeners]]` entry is a toxic on that listener, anything else an HTTP fault. TCP
//! toxics keep Toxiproxy's names, parameters and units (`latency = 100` is 100 ms, `rate` is
//! KB/s, slicer's `delay` is µs) so toxics move over unchanged; any duration may also be written
//! as text (`"100ms"`) and any rate as a byte size per second (`"64KiB"`).
//!
//! ```toml
//! kind = "abort"            # HTTP: delay abort reset hang empty_reply bandwidth truncate
//! status = 503              # TCP:  latency bandwidth slow_close timeout reset_peer slicer limit_data down
//! percent = 10
//! route = "checkout"
//! position = "upstream"
//! ttl = "2m"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::units::{ByteSize, HumanDuration};

/// No delay, latency or timeout in a fault may be longer: a longer one is a typo.
pub const MAX_FAULT_DURATION: Duration = Duration::from_secs(3600);

/// A fault as written. Every field but `kind` is optional; which ones apply depends on the kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// Chosen by the sidecar when absent; unique among active faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How long the fault lives. Faults in a config file live until the config changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<HumanDuration>,

    // Where an HTTP fault applies.
    /// Share of matching requests affected, 0-100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Request headers that must all be present with these exact values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// With `position = "upstream"`: only these endpoints (`host:port`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,

    // Where a TCP toxic applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// Share of connections affected, 0-1 (default 1), as Toxiproxy's `toxicity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxicity: Option<f64>,

    // What the fault does.
    /// `delay`: the added time; `slow_close`: how long the close is held; `slicer`: between slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<TimeValue>,
    /// `delay`, `latency`: a uniform ± spread around the delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<TimeValue>,
    /// `delay` drawn from a log-normal distribution with this median and 99th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<TimeValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<TimeValue>,
    /// `abort`: the response status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_headers: BTreeMap<String, String>,
    /// `bandwidth`: KB/s as a number (Toxiproxy), or a byte size per second as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// `truncate`: response body bytes let through before the body is cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<TimeValue>,
    /// `timeout`, `reset_peer`: milliseconds before the connection is closed or reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_size: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_variation: Option<ByteSize>,
    /// `limit_data`: bytes passed before the connection is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<ByteSize>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    #[default]
    Delay,
    Abort,
    Reset,
    Hang,
    EmptyReply,
    Bandwidth,
    Truncate,
    Latency,
    SlowClose,
    Timeout,
    ResetPeer,
    Slicer,
    LimitData,
    Down,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        use FaultKind::*;
        match self {
            Delay => "delay",
            Abort => "abort",
            Reset => "reset",
            Hang => "hang",
            EmptyReply => "empty_reply",
            Bandwidth => "bandwidth",
            Truncate => "truncate",
            Latency => "latency",
            SlowClose => "slow_close",
            Timeout => "timeout",
            ResetPeer => "reset_peer",
            Slicer => "slicer",
            LimitData => "limit_data",
            Down => "down",
        }
    }

    fn is_http(self) -> bool {
        use FaultKind::*;
        matches!(self, Delay | Abort | Reset | Hang | EmptyReply | Bandwidth | Truncate)
    }

    fn is_tcp(self) -> bool {
        use FaultKind::*;
        matches!(
            self,
            Latency | Bandwidth | SlowClose | Timeout | ResetPeer | Slicer | LimitData | Down
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an HTTP fault sits in the sidecar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// Before the gateway's layers, like Envoy's fault filter: the client sees it as is.
    #[default]
    Inbound,
    /// Per endpoint, below retries and circuit breaking: the sidecar's resilience reacts to it.
    Upstream,
}

/// Which way a toxic acts on a TCP connection (Toxiproxy's `stream`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client (Toxiproxy's default).
    #[default]
    Downstream,
}

/// A duration as Toxiproxy writes it (an integer in the field's unit) or as text (`"250ms"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeValue {
    Number(i64),
    Text(HumanDuration),
}

impl TimeValue {
    /// The duration, reading a bare number in `unit`s.
    pub fn duration(self, unit: Duration) -> Result<Duration, String> {
        match self {
            TimeValue::Text(d) => Ok(d.get()),
            TimeValue::Number(n) if n < 0 => Err(format!("must not be negative, got {n}")),
            TimeValue::Number(n) => Ok(unit.saturating_mul(n.min(u32::MAX as i64) as u32)),
        }
    }
}

impl Serialize for TimeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TimeValue::Number(n) => s.serialize_i64(*n),
            TimeValue::Text(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TimeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = TimeValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("milliseconds as an integer, or a duration such as \"250ms\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimeValue, E> {
                Ok(TimeValue::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimeValue, E> {
                Ok(TimeValue::Number(v.min(i64::MAX as u64) as i64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeValue, E> {
                v.parse().map(TimeValue::Text).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A bandwidth: KB/s as a number (Toxiproxy's unit, 1 KB = 1000 bytes), or a byte size per
/// second as text (`"64KiB"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    KilobytesPerSecond(i64),
    PerSecond(ByteSize),
}

impl Rate {
    pub fn bytes_per_second(self) -> Result<u64, String> {
        match self {
            Rate::KilobytesPerSecond(n) if n <= 0 => Err(format!("must be above 0, got {n}")),
            Rate::KilobytesPerSecond(n) => Ok((n as u64).saturating_mul(1000)),
            Rate::PerSecond(b) if b.get() == 0 => Err("must be above 0".into()),
            Rate::PerSecond(b) => Ok(b.get()),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::KilobytesPerSecond(n) => s.serialize_i64(*n),
            Rate::PerSecond(b) => b.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("KB/s as an integer, or a byte size per second such as \"64KiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                Ok(Rate::KilobytesPerSecond(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                Ok(Rate::KilobytesPerSecond(v.min(i64::MAX as u64) as i64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                v.parse().map(Rate::PerSecond).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A fault checked and ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub ttl: Option<Duration>,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Http { target: HttpTarget, effect: HttpEffect },
    Tcp { target: TcpTarget, toxic: Toxic },
}

/// Which requests an HTTP fault may affect.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpTarget {
    pub position: Position,
    /// 0-100.
    pub percent: f64,
    pub route: Option<String>,
    /// Upper case; any method when empty.
    pub methods: Vec<String>,
    pub path_prefix: Option<String>,
    /// Lower-case names, exact values.
    pub headers: Vec<(String, String)>,
    pub tenant: Option<String>,
    pub endpoints: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HttpEffect {
    Delay(Delay),
    Abort {
        status: u16,
        body: Option<String>,
        headers: Vec<(String, String)>,
    },
    /// The connection is reset (an HTTP/2 stream is reset).
    Reset,
    /// No answer until the route's timeout, then the connection is closed.
    Hang,
    /// The connection is closed without a response.
    EmptyReply,
    /// The response body is paced to this many bytes per second.
    Bandwidth {
        bytes_per_second: u64,
    },
    /// The response body is cut after this many bytes.
    Truncate {
        after: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Delay {
    /// `base` ± a uniform `jitter`.
    Uniform { base: Duration, jitter: Duration },
    /// Log-normal with this median and 99th percentile.
    LogNormal { p50: Duration, p99: Duration },
}

/// Which connections a toxic may affect.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpTarget {
    pub listener: String,
    pub stream: Stream,
    /// 0-1.
    pub toxicity: f64,
}

/// Toxiproxy's toxics, plus `down` (its `enabled = false`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Toxic {
    Latency {
        latency: Duration,
        jitter: Duration,
    },
    Bandwidth {
        bytes_per_second: u64,
    },
    SlowClose {
        delay: Duration,
    },
    /// Data stops; the connection closes after `timeout` (never with zero, until the toxic goes).
    Timeout {
        timeout: Duration,
    },
    ResetPeer {
        timeout: Duration,
    },
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay: Duration,
    },
    LimitData {
        bytes: u64,
    },
    Down,
}

/// One thing wrong with a spec: the field, what is wrong, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.message, self.fix)
    }
}

/// The fields each kind takes, besides the targeting ones.
fn params(kind: FaultKind) -> &'static [&'static str] {
    use FaultKind::*;
    match kind {
        Delay => &["delay", "jitter", "p50", "p99"],
        Abort => &["status", "body", "response_headers"],
        Reset | Hang | EmptyReply | Down => &[],
        Bandwidth => &["rate"],
        Truncate => &["after"],
        Latency => &["latency", "jitter"],
        SlowClose => &["delay"],
        Timeout => &["timeout"],
        ResetPeer => &["timeout"],
        Slicer => &["average_size", "size_variation", "delay"],
        LimitData => &["bytes"],
    }
}

const HTTP_TARGET: [&str; 8] = [
    "percent",
    "route",
    "methods",
    "path_prefix",
    "headers",
    "tenant",
    "position",
    "endpoints",
];
const TCP_TARGET: [&str; 2] = ["stream", "toxicity"];

impl FaultSpec {
    /// The names of the fields that are set.
    fn set_fields(&self) -> Vec<&'static str> {
        let s = self;
        [
            ("percent", s.percent.is_some()),
            ("route", s.route.is_some()),
            ("methods", !s.methods.is_empty()),
            ("path_prefix", s.path_prefix.is_some()),
            ("headers", !s.headers.is_empty()),
            ("tenant", s.tenant.is_some()),
            ("position", s.position.is_some()),
            ("endpoints", !s.endpoints.is_empty()),
            ("stream", s.stream.is_some()),
            ("toxicity", s.toxicity.is_some()),
            ("delay", s.delay.is_some()),
            ("jitter", s.jitter.is_some()),
            ("p50", s.p50.is_some()),
            ("p99", s.p99.is_some()),
            ("status", s.status.is_some()),
            ("body", s.body.is_some()),
            ("response_headers", !s.response_headers.is_empty()),
            ("rate", s.rate.is_some()),
            ("after", s.after.is_some()),
            ("latency", s.latency.is_some()),
            ("timeout", s.timeout.is_some()),
            ("average_size", s.average_size.is_some()),
            ("size_variation", s.size_variation.is_some()),
            ("bytes", s.bytes.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// Check the spec on its own (names of routes and listeners are the sidecar's to check):
    /// every problem at once.
    pub fn validate(&self) -> Result<Fault, Vec<FieldError>> {
        let mut v = Checker::default();
        let kind = self.kind;
        let tcp = self.listener.is_some();
        if tcp && !kind.is_tcp() {
            v.err(
                "listener",
                format!("`{kind}` is an HTTP fault; TCP listeners take toxics"),
                "use a toxic (latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, down); HTTP faults take no `listener`",
            );
        }
        if !tcp && !kind.is_http() {
            v.err(
                "listener",
                format!("`{kind}` is a TCP toxic and needs the TCP listener it applies to"),
                "add `listener = \"<name of a [[tcp_listeners]] entry>\"`",
            );
        }
        let params = params(kind);
        let (own, other) = if tcp {
            (&TCP_TARGET[..], &HTTP_TARGET[..])
        } else {
            (&HTTP_TARGET[..], &TCP_TARGET[..])
        };
        for field in self.set_fields() {
            if params.contains(&field) || own.contains(&field) {
                continue;
            }
            let fix = if other.contains(&field) {
                format!(
                    "remove it: it applies to {}",
                    if tcp {
                        "HTTP faults"
                    } else {
                        "TCP toxics (with `listener`)"
                    }
                )
            } else if params.is_empty() {
                format!("remove it: `{kind}` takes no parameters")
            } else {
                format!("remove it; `{kind}` takes {}", params.join(", "))
            };
            v.err(field, format!("does not apply to kind `{kind}`"), fix);
        }
        if let Some(id) = &self.id
            && (id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            v.err(
                "id",
                format!("{id:?} is not a usable id"),
                "use up to 64 letters, digits and -_. (ids go into URLs and metric labels)",
            );
        }
        if kind == FaultKind::Down {
            for (field, set) in [("stream", self.stream.is_some()), ("toxicity", self.toxicity.is_some())] {
                if set {
                    v.err(
                        field,
                        "does not apply to kind `down`",
                        "remove it: down refuses every connection",
                    );
                }
            }
        }
        if let Some(ttl) = self.ttl
            && ttl.get().is_zero()
        {
            v.err(
                "ttl",
                "must be above zero",
                "give a duration such as \"2m\", or leave it out for the default",
            );
        }
        let action = if tcp {
            self.tcp(&mut v).map(|(target, toxic)| Action::Tcp { target, toxic })
        } else {
            self.http(&mut v)
                .map(|(target, effect)| Action::Http { target, effect })
        };
        match (v.errors.is_empty(), action) {
            (true, Some(action)) => Ok(Fault {
                ttl: self.ttl.map(HumanDuration::get),
                action,
            }),
            _ => Err(v.errors),
        }
    }

    fn http(&self, v: &mut Checker) -> Option<(HttpTarget, HttpEffect)> {
        let percent = self.percent.unwrap_or(100.0);
        if !(0.0..=100.0).contains(&percent) {
            v.err(
                "percent",
                format!("{percent} is outside 0-100"),
                "give a share of requests between 0 and 100, e.g. `percent = 10`",
            );
        }
        let position = self.position.unwrap_or_default();
        if !self.endpoints.is_empty() && position != Position::Upstream {
            v.err(
                "endpoints",
                "endpoints can only be chosen for upstream faults",
                "add `position = \"upstream\"` or remove `endpoints`",
            );
        }
        let methods = self.methods.iter().map(|m| m.to_ascii_uppercase()).collect::<Vec<_>>();
        for m in &methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
                v.err(
                    "methods",
                    format!("{m:?} is not an HTTP method"),
                    "write methods like \"GET\" or \"POST\"",
                );
            }
        }
        if let Some(p) = &self.path_prefix
            && !p.starts_with('/')
        {
            v.err(
                "path_prefix",
                format!("{p:?} does not start with `/`"),
                "write it like \"/api\"",
            );
        }
        let headers = header_pairs("headers", &self.headers, v);
        if let Some(t) = &self.tenant
            && (t.is_empty() || t.bytes().any(|b| b < 0x20 || b == 0x7f))
        {
            v.err(
                "tenant",
                format!("{t:?} cannot be a tenant"),
                "give the tenant's name, without control characters",
            );
        }
        let effect = match self.kind {
            FaultKind::Delay => self.delay(v).map(HttpEffect::Delay),
            FaultKind::Abort => match self.status {
                Some(status) if (200..=599).contains(&status) => Some(HttpEffect::Abort {
                    status,
                    body: self.body.clone(),
                    headers: header_pairs("response_headers", &self.response_headers, v),
                }),
                Some(status) => {
                    v.err(
                        "status",
                        format!("{status} is outside 200-599"),
                        "give an HTTP status such as 503",
                    );
                    None
                }
                None => v.missing("status", "add the status the client gets, e.g. `status = 503`"),
            },
            FaultKind::Reset => Some(HttpEffect::Reset),
            FaultKind::Hang => Some(HttpEffect::Hang),
            FaultKind::EmptyReply => Some(HttpEffect::EmptyReply),
            FaultKind::Bandwidth => v
                .rate(self.rate)
                .map(|bytes_per_second| HttpEffect::Bandwidth { bytes_per_second }),
            FaultKind::Truncate => match self.after {
                Some(after) => Some(HttpEffect::Truncate { after: after.get() }),
                None => v.missing("after", "add the body bytes let through, e.g. `after = \"1KiB\"`"),
            },
            _ => None,
        };
        let target = HttpTarget {
            position,
            percent,
            route: self.route.clone(),
            methods,
            path_prefix: self.path_prefix.clone(),
            headers,
            tenant: self.tenant.clone(),
            endpoints: self.endpoints.clone(),
        };
        Some((target, effect?))
    }

    fn delay(&self, v: &mut Checker) -> Option<Delay> {
        let ms = Duration::from_millis(1);
        match (self.delay, self.p50, self.p99) {
            (Some(delay), None, None) => {
                let base = v.duration("delay", delay, ms)?;
                let jitter = match self.jitter {
                    Some(j) => v.duration("jitter", j, ms)?,
                    None => Duration::ZERO,
                };
                if jitter > base {
                    v.err(
                        "jitter",
                        format!("{} is more than the delay", HumanDuration(jitter)),
                        "keep jitter at or below delay: the delay is drawn from delay ± jitter",
                    );
                }
                Some(Delay::Uniform { base, jitter })
            }
            (None, Some(p50), Some(p99)) => {
                let (p50, p99) = (v.duration("p50", p50, ms)?, v.duration("p99", p99, ms)?);
                if self.jitter.is_some() {
                    v.err(
                        "jitter",
                        "does not go with p50/p99",
                        "remove `jitter`: the distribution sets the spread",
                    );
                }
                if p50.is_zero() || p99 < p50 {
                    v.err(
                        "p99",
                        "p99 must be at least p50, and p50 above zero",
                        "e.g. `p50 = \"50ms\"`, `p99 = \"400ms\"`",
                    );
                    return None;
                }
                Some(Delay::LogNormal { p50, p99 })
            }
            (None, None, None) => v.missing(
                "delay",
                "add `delay = \"100ms\"` (optionally `jitter`), or `p50` and `p99`",
            ),
            _ => {
                v.err(
                    "delay",
                    "give either `delay` (with optional `jitter`) or both `p50` and `p99`",
                    "keep one of the two forms",
                );
                None
            }
        }
    }

    fn tcp(&self, v: &mut Checker) -> Option<(TcpTarget, Toxic)> {
        let toxicity = self.toxicity.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&toxicity) {
            v.err(
                "toxicity",
                format!("{toxicity} is outside 0-1"),
                "give the share of connections affected between 0 and 1, e.g. `toxicity = 0.5`",
            );
        }
        let ms = Duration::from_millis(1);
        let toxic = match self.kind {
            FaultKind::Latency => {
                let latency = match self.latency {
                    Some(l) => v.duration("latency", l, ms)?,
                    None => return v.missing("latency", "add the added latency in ms, e.g. `latency = 100`"),
                };
                let jitter = match self.jitter {
                    Some(j) => v.duration("jitter", j, ms)?,
                    None => Duration::ZERO,
                };
                Toxic::Latency { latency, jitter }
            }
            FaultKind::Bandwidth => Toxic::Bandwidth {
                bytes_per_second: v.rate(self.rate)?,
            },
            FaultKind::SlowClose => match self.delay {
                Some(d) => Toxic::SlowClose {
                    delay: v.duration("delay", d, ms)?,
                },
                None => return v.missing("delay", "add how long the close is held in ms, e.g. `delay = 1000`"),
            },
            FaultKind::Timeout => match self.timeout {
                Some(t) => Toxic::Timeout {
                    timeout: v.duration("timeout", t, ms)?,
                },
                None => {
                    return v.missing(
                        "timeout",
                        "add the ms before the connection closes (0: never), e.g. `timeout = 5000`",
                    );
                }
            },
            FaultKind::ResetPeer => Toxic::ResetPeer {
                timeout: match self.timeout {
                    Some(t) => v.duration("timeout", t, ms)?,
                    None => Duration::ZERO,
                },
            },
            FaultKind::Slicer => {
                let Some(average) = self.average_size.map(ByteSize::get).filter(|&a| a > 0) else {
                    return v.missing(
                        "average_size",
                        "add the average slice size in bytes, above 0, e.g. `average_size = 64`",
                    );
                };
                let variation = self.size_variation.map_or(0, ByteSize::get);
                if variation >= average {
                    v.err(
                        "size_variation",
                        format!("{variation} is not below average_size ({average})"),
                        "make size_variation smaller than average_size",
                    );
                }
                let delay = match self.delay {
                    Some(d) => v.duration("delay", d, Duration::from_micros(1))?,
                    None => Duration::ZERO,
                };
                Toxic::Slicer {
                    average_size: average,
                    size_variation: variation,
                    delay,
                }
            }
            FaultKind::LimitData => match self.bytes {
                Some(b) => Toxic::LimitData { bytes: b.get() },
                None => return v.missing("bytes", "add the bytes let through, e.g. `bytes = 1024`"),
            },
            FaultKind::Down => Toxic::Down,
            _ => return None,
        };
        let target = TcpTarget {
            listener: self.listener.clone().unwrap_or_default(),
            stream: self.stream.unwrap_or_default(),
            toxicity,
        };
        Some((target, toxic))
    }
}

/// Collects field errors while a spec is checked.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn err(&mut self, field: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    fn missing<T>(&mut self, field: &str, fix: &str) -> Option<T> {
        self.err(field, "is required for this kind", fix);
        None
    }

    /// A non-negative duration no longer than [`MAX_FAULT_DURATION`].
    fn duration(&mut self, field: &str, value: TimeValue, unit: Duration) -> Option<Duration> {
        match value.duration(unit) {
            Ok(d) if d <= MAX_FAULT_DURATION => Some(d),
            Ok(d) => {
                self.err(
                    field,
                    format!("{} is longer than the 1h a fault may last", HumanDuration(d)),
                    "give a shorter duration (a bare number is in milliseconds)",
                );
                None
            }
            Err(e) => {
                self.err(
                    field,
                    e,
                    "give a duration such as \"250ms\" or a number of milliseconds",
                );
                None
            }
        }
    }

    fn rate(&mut self, rate: Option<Rate>) -> Option<u64> {
        match rate.map(Rate::bytes_per_second) {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                self.err(
                    "rate",
                    e,
                    "give KB/s as a number, e.g. `rate = 64`, or text like \"64KiB\"",
                );
                None
            }
            None => self.missing(
                "rate",
                "add the bandwidth, e.g. `rate = 64` (KB/s) or `rate = \"64KiB\"`",
            ),
        }
    }
}

fn header_pairs(field: &str, headers: &BTreeMap<String, String>, v: &mut Checker) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || !name.bytes().all(token) {
                v.err(
                    field,
                    format!("{name:?} is not a valid header name"),
                    "use letters, digits and `-`",
                );
                return None;
            }
            if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                v.err(
                    field,
                    format!("the value of {name:?} has control characters"),
                    "remove them",
                );
                return None;
            }
            Some((name.to_ascii_lowercase(), value.clone()))
        })
        .collect()
}

/// Who put a fault in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The config file: in place from start (or reload) until the config changes.
    Config,
    /// The admin API (or the CLI through it): lives for its TTL.
    Api,
}

/// A fault in place, as `GET /faults` and `/stats` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    pub id: String,
    pub origin: Origin,
    pub created_at_ms: u64,
    /// None for faults from the config file.
    pub expires_at_ms: Option<u64>,
    pub spec: FaultSpec,
    /// Requests (connections, for toxics) the fault's match selected.
    pub matched: u64,
    /// Of those, the ones the fault was applied to (its percentage or toxicity drawn).
    pub injected: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> FaultSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn errors(toml_text: &str) -> Vec<String> {
        spec(toml_text)
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn http_faults_validate_with_defaults() {
        let f = spec("kind = \"abort\"\nstatus = 503\nroute = \"checkout\"\nttl = \"2m\"")
            .validate()
            .unwrap();
        assert_eq!(f.ttl, Some(Duration::from_secs(120)));
        let Action::Http { target, effect } = f.action else {
            panic!()
        };
        assert_eq!((target.percent, target.position), (100.0, Position::Inbound));
        assert_eq!(
            effect,
            HttpEffect::Abort {
                status: 503,
                body: None,
                headers: vec![]
            }
        );
        let f = spec("kind = \"delay\"\ndelay = 100\njitter = \"20ms\"")
            .validate()
            .unwrap();
        let Action::Http { effect, .. } = f.action else {
            panic!()
        };
        assert_eq!(
            effect,
            HttpEffect::Delay(Delay::Uniform {
                base: Duration::from_millis(100),
                jitter: Duration::from_millis(20)
            })
        );
    }

    #[test]
    fn toxics_keep_toxiproxy_units() {
        let f = spec("kind = \"slicer\"\nlistener = \"redis\"\naverage_size = 64\ndelay = 10")
            .validate()
            .unwrap();
        let Action::Tcp { target, toxic } = f.action else {
            panic!()
        };
        assert_eq!((target.stream, target.toxicity), (Stream::Downstream, 1.0));
        assert_eq!(
            toxic,
            Toxic::Slicer {
                average_size: 64,
                size_variation: 0,
                delay: Duration::from_micros(10)
            }
        );
        let f = spec("kind = \"bandwidth\"\nlistener = \"r\"\nrate = 100")
            .validate()
            .unwrap();
        assert!(matches!(
            f.action,
            Action::Tcp {
                toxic: Toxic::Bandwidth {
                    bytes_per_second: 100_000
                },
                ..
            }
        ));
        let f = spec("kind = \"bandwidth\"\nrate = \"1KiB\"").validate().unwrap();
        assert!(matches!(
            f.action,
            Action::Http {
                effect: HttpEffect::Bandwidth { bytes_per_second: 1024 },
                ..
            }
        ));
    }

    #[test]
    fn bad_specs_name_every_field() {
        assert_eq!(
            errors("kind = \"abort\"\nstatus = 700\npercent = 120\njitter = 5"),
            [
                "jitter: does not apply to kind `abort`",
                "percent: 120 is outside 0-100",
                "status: 700 is outside 200-599"
            ]
        );
        assert_eq!(
            errors("kind = \"delay\"\ndelay = -5"),
            ["delay: must not be negative, got -5"]
        );
        assert_eq!(
            errors("kind = \"delay\"\ndelay = \"2h\""),
            ["delay: 2h is longer than the 1h a fault may last"]
        );
        assert_eq!(
            errors("kind = \"latency\"\nlatency = 10"),
            ["listener: `latency` is a TCP toxic and needs the TCP listener it applies to"]
        );
        assert_eq!(
            errors("kind = \"reset\"\nlistener = \"x\"\npercent = 5"),
            [
                "listener: `reset` is an HTTP fault; TCP listeners take toxics",
                "percent: does not apply to kind `reset`"
            ]
        );
        assert_eq!(
            errors("kind = \"delay\"\ndelay = 5\nendpoints = [\"127.0.0.1:1\"]"),
            ["endpoints: endpoints can only be chosen for upstream faults"]
        );
        assert_eq!(errors("kind = \"abort\""), ["status: is required for this kind"]);
        assert_eq!(
            errors("kind = \"delay\"\np50 = \"100ms\"\np99 = \"10ms\""),
            ["p99: p99 must be at least p50, and p50 above zero"]
        );
        let unknown = toml::from_str::<FaultSpec>("kind = \"dealy\"").unwrap_err().to_string();
        assert!(unknown.contains("unknown variant `dealy`"), "{unknown}");
    }

    #[test]
    fn specs_round_trip_through_json() {
        let s = spec("kind = \"delay\"\np50 = \"20ms\"\np99 = 80\nposition = \"upstream\"\nendpoints = [\"a:1\"]");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<FaultSpec>(&json).unwrap(), s);
        assert!(!json.contains("null"), "{json}");
    }
}
