//! Phase two: specs to the typed config. Defaults are applied here and every semantic problem is
//! recorded with the span of the value at fault.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use ballast_model::HumanDuration;
use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use toml::Spanned;

use super::error::{ConfigError, did_you_mean};
use super::load::FileSpec;
use super::spec::{
    CacheSpec, ClusterSpec, ConcurrencySpec, HeaderMatchSpec, HealthSpec, ListenerSpec, MatchSpec, OutlierSpec,
    RateLimitSpec, RetrySpec, RouteSpec,
};
use super::*;

pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";
const DEFAULT_DRAIN: Duration = Duration::from_secs(30);
const DEFAULT_IDLE_POLL: Duration = Duration::from_micros(100);
/// Polling longer than this would spend a CPU on waiting at any load that keeps the window open.
const MAX_IDLE_POLL: Duration = Duration::from_millis(10);
const IDLE_POLL_HINT: &str =
    "a worker polls at most this long after its last work; use \"100us\", or \"0s\" to turn polling off";
const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_POOL_IDLE: Duration = Duration::from_secs(90);
const DEFAULT_MAX_IDLE: usize = 256;
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
const DEFAULT_HEADER_SIZE: usize = 64 * 1024;
/// hyper cannot parse a request head with a smaller buffer.
const MIN_HEADER_SIZE: usize = 8 * 1024;
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Envoy's circuit-breaker defaults for connections, pending and concurrent requests.
const DEFAULT_CLUSTER_LIMIT: usize = 1024;

/// Collects errors while turning specs into typed values.
struct Checker<'a> {
    errors: &'a mut Vec<ConfigError>,
}

impl Checker<'_> {
    fn err(&mut self, path: impl Into<String>, span: Range<usize>, msg: impl Into<String>, hint: impl Into<String>) {
        self.errors.push(ConfigError::new(path, Some(span), msg).hint(hint));
    }

    /// A duration that must be greater than zero.
    fn positive(&mut self, path: &str, value: Option<&Spanned<HumanDuration>>, default: Duration) -> Duration {
        match value {
            Some(v) if v.get_ref().get().is_zero() => {
                let field = path.rsplit('.').next().unwrap_or(path);
                self.err(
                    path,
                    v.span(),
                    format!("{field} is zero"),
                    "use a positive duration such as \"1s\"",
                );
                default
            }
            Some(v) => v.get_ref().get(),
            None => default,
        }
    }

    fn header_name(&mut self, path: &str, span: Range<usize>, name: &str) -> Option<HeaderName> {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| {
                self.err(
                    path,
                    span,
                    format!("invalid header name {name:?}"),
                    "header names are tokens such as \"x-team\"",
                )
            })
            .ok()
    }

    fn header_pairs(&mut self, path: &str, map: &BTreeMap<String, Spanned<String>>) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        for (name, value) in map {
            let name = self.header_name(&format!("{path}.{name}"), value.span(), name);
            let val = HeaderValue::from_str(value.get_ref());
            if val.is_err() {
                self.err(
                    path,
                    value.span(),
                    format!("invalid header value {:?}", value.get_ref()),
                    "header values are visible ASCII without line breaks",
                );
            }
            if let (Some(n), Ok(v)) = (name, val) {
                out.push((n, v));
            }
        }
        out
    }

    fn header_names(&mut self, path: &str, names: &[Spanned<String>]) -> Vec<HeaderName> {
        names
            .iter()
            .filter_map(|n| self.header_name(path, n.span(), n.get_ref()))
            .collect()
    }
}

/// Turn the file's specs into a config; `None` when anything was wrong (see `errors`).
pub fn validate(spec: FileSpec, errors: &mut Vec<ConfigError>) -> Option<Config> {
    let before = errors.len();
    let mut c = Checker { errors };

    let runtime = runtime(&mut c, &spec);
    let admin = admin(&mut c, &spec);
    let telemetry = telemetry(&mut c, &spec);
    let listeners = listeners(&mut c, &spec, &admin);

    let mut clusters = BTreeMap::new();
    for (name, cluster) in &spec.clusters {
        if let Some(cl) = cluster.as_ref().and_then(|cl| cluster_spec(&mut c, name.get_ref(), cl)) {
            clusters.insert(name.get_ref().clone(), cl);
        }
    }
    // Routes may name any declared cluster, even one with its own errors (reported already).
    let declared: Vec<&str> = spec.clusters.iter().map(|(k, _)| k.get_ref().as_str()).collect();
    // Before the routes: their `auth` is checked against it.
    let auth = super::auth::validate(spec.auth.as_ref(), &spec.base_dir, c.errors);

    let mut routes = Vec::new();
    let mut names = HashSet::new();
    for (i, route) in spec.routes.iter().enumerate() {
        let Some(route) = route else { continue };
        let route_auth =
            (route.auth.as_ref()).map(|a| super::auth::route(c.errors, &format!("routes[{i}].auth"), a, &auth));
        if let Some(mut r) = route_spec(&mut c, i, route, &declared) {
            r.auth = route_auth;
            if !names.insert(r.name.clone()) {
                let span = route.name.as_ref().map_or(route.cluster.span(), |n| n.span());
                c.err(
                    format!("routes[{i}].name"),
                    span,
                    format!("duplicate route name {:?}", r.name),
                    "give each route a unique name",
                );
            }
            routes.push(r);
        }
    }
    if spec.routes.is_empty() {
        c.errors.push(
            ConfigError::new("routes", None, "no routes: every request would get 404")
                .hint("add a [[routes]] table with a match and a cluster"),
        );
    }

    let fault_limits = fault_limits(&mut c, &spec);
    let tcp_listeners = tcp_listeners(&mut c, &spec, &listeners, &admin);
    let faults = faults(&mut c, &spec, &routes, &clusters, &tcp_listeners, &fault_limits);
    let slos = slos(&mut c, &spec, &routes);

    (c.errors.len() == before).then(|| Config {
        runtime,
        admin,
        telemetry,
        listeners,
        routes,
        clusters,
        tcp_listeners,
        fault_limits,
        faults,
        slos,
        auth,
    })
}

/// `[[slo]]`: each checked on its own, its route against this file's, names unique. The sidecar
/// uses their latency thresholds as exact `/metrics` bucket boundaries.
fn slos(c: &mut Checker, spec: &FileSpec, routes: &[Route]) -> Vec<ballast_model::slo::SloSpec> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, item) in spec.slos.iter().enumerate() {
        let Some(item) = item else { continue };
        let slo = &item.spec;
        let mut problems = slo.validate().err().unwrap_or_default();
        if let Some(route) = slo.route()
            && !routes.iter().any(|r| r.name == route)
        {
            let known: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
            let fix = match did_you_mean(route, known.iter().copied()) {
                Some(s) => format!("did you mean {s:?}?"),
                None => format!("known routes: {}", known.join(", ")),
            };
            problems.push(ballast_model::fault::FieldError {
                field: "sli".into(),
                message: format!("unknown route {route:?}"),
                fix,
            });
        }
        if !names.insert(slo.name.as_str()) {
            problems.push(ballast_model::fault::FieldError {
                field: "name".into(),
                message: format!("duplicate SLO name {:?}", slo.name),
                fix: "give each SLO a unique name".into(),
            });
        }
        if problems.is_empty() {
            out.push(slo.clone());
        }
        for e in problems {
            c.err(
                format!("slo[{i}].{}", e.field),
                item.span_of(&e.field),
                e.message,
                e.fix,
            );
        }
    }
    out
}

fn fault_limits(c: &mut Checker, spec: &FileSpec) -> FaultLimits {
    let s = &spec.fault_limits;
    let d = FaultLimits::default();
    let max_active = match &s.max_active {
        Some(m) if *m.get_ref() == 0 => {
            c.err(
                "fault_limits.max_active",
                m.span(),
                "max_active is 0: no fault could ever apply",
                "use at least 1, or remove it for no limit",
            );
            None
        }
        m => m.as_ref().map(|m| *m.get_ref()),
    };
    let limits = FaultLimits {
        max_active,
        default_ttl: c.positive("fault_limits.default_ttl", s.default_ttl.as_ref(), d.default_ttl),
        max_ttl: c.positive("fault_limits.max_ttl", s.max_ttl.as_ref(), d.max_ttl),
        max_header_delay: c.positive(
            "fault_limits.max_header_delay",
            s.max_header_delay.as_ref(),
            d.max_header_delay,
        ),
    };
    if let Some(t) = &s.default_ttl
        && limits.default_ttl > limits.max_ttl
    {
        c.err(
            "fault_limits.default_ttl",
            t.span(),
            "default_ttl is above max_ttl",
            "make default_ttl at most max_ttl",
        );
    }
    limits
}

fn tcp_listeners(c: &mut Checker, spec: &FileSpec, http: &[Listener], admin: &Admin) -> Vec<TcpListener> {
    let mut names = HashSet::new();
    let mut taken: HashSet<SocketAddr> = http.iter().map(|l| l.listen).chain([admin.listen]).collect();
    let mut out = Vec::new();
    for (i, l) in spec.tcp_listeners.iter().enumerate() {
        let Some(l) = l else { continue };
        let p = |f: &str| format!("tcp_listeners[{i}].{f}");
        let name = l.name.get_ref();
        if name.is_empty() || !names.insert(name.clone()) {
            c.err(
                p("name"),
                l.name.span(),
                format!("duplicate or empty TCP listener name {name:?}"),
                "give each TCP listener a unique name, e.g. \"redis\"",
            );
        }
        let listen = socket_addr(c, &p("listen"), &l.listen);
        if let Some(addr) = listen
            && addr.port() != 0
            && !taken.insert(addr)
        {
            c.err(
                p("listen"),
                l.listen.span(),
                format!(
                    "address {:?} is already used by another listener or the admin API",
                    l.listen.get_ref()
                ),
                "give the TCP listener a port of its own",
            );
        }
        let upstream = l.upstream.get_ref();
        if upstream
            .parse::<http::uri::Authority>()
            .map_or(true, |a| a.port_u16().is_none())
        {
            c.err(
                p("upstream"),
                l.upstream.span(),
                format!("invalid upstream address {upstream:?}"),
                "write host:port, such as \"127.0.0.1:6379\"",
            );
        }
        let connect_timeout = c.positive(
            &p("connect_timeout"),
            l.connect_timeout.as_ref(),
            DEFAULT_CONNECT_TIMEOUT,
        );
        if let Some(listen) = listen {
            out.push(TcpListener {
                name: name.clone(),
                listen,
                upstream: upstream.clone(),
                connect_timeout,
            });
        }
    }
    out
}

/// Faults in place from start: `[[faults]]`, each TCP listener's `toxics`, and `down` for a TCP
/// listener with `enabled = false`. Each is checked on its own and against the names in this file.
fn faults(
    c: &mut Checker,
    spec: &FileSpec,
    routes: &[Route],
    clusters: &BTreeMap<String, Cluster>,
    tcp: &[TcpListener],
    limits: &FaultLimits,
) -> Vec<ConfigFault> {
    let mut out: Vec<ConfigFault> = Vec::new();
    let mut check =
        |c: &mut Checker, path: &str, spec: ballast_model::FaultSpec, span: &dyn Fn(&str) -> Range<usize>| {
            let (fault, mut problems) = match spec.validate() {
                Ok(f) => {
                    let ttl = crate::faults::check_ttl(limits, f.ttl).err().into_iter().collect();
                    (Some(f), ttl)
                }
                Err(errors) => (None, errors),
            };
            problems.extend(fault_names(&spec, routes, clusters, tcp));
            if let Some(id) = &spec.id
                && out.iter().any(|f| f.spec.id.as_ref() == Some(id))
            {
                problems.push(ballast_model::fault::FieldError {
                    field: "id".into(),
                    message: format!("duplicate fault id {id:?}"),
                    fix: "give each fault its own id, or leave ids out".into(),
                });
            }
            for e in problems.iter().cloned() {
                c.err(format!("{path}.{}", e.field), span(&e.field), e.message, e.fix);
            }
            if let (Some(fault), true) = (fault, problems.is_empty()) {
                out.push(ConfigFault { spec, fault });
            }
        };
    for (i, item) in spec.faults.iter().enumerate() {
        let Some(item) = item else { continue };
        check(c, &format!("faults[{i}]"), item.spec.clone(), &|f| item.span_of(f));
    }
    for (i, l) in spec.tcp_listeners.iter().enumerate() {
        let Some(l) = l else { continue };
        for (j, toxic) in l.toxics.iter().enumerate() {
            let path = format!("tcp_listeners[{i}].toxics[{j}]");
            if let Some(other) = &toxic.get_ref().listener
                && other != l.name.get_ref()
            {
                c.err(
                    format!("{path}.listener"),
                    toxic.span(),
                    format!("a toxic of {:?} names listener {other:?}", l.name.get_ref()),
                    "remove `listener`: a listener's toxics apply to it",
                );
                continue;
            }
            let mut fault = toxic.get_ref().clone();
            fault.listener = Some(l.name.get_ref().clone());
            check(c, &path, fault, &|_| toxic.span());
        }
        if !l.enabled {
            let down = ballast_model::FaultSpec {
                kind: ballast_model::fault::FaultKind::Down,
                listener: Some(l.name.get_ref().clone()),
                ..Default::default()
            };
            check(c, &format!("tcp_listeners[{i}]"), down, &|_| l.name.span());
        }
    }
    out
}

/// A fault's names checked against a config: its route, endpoints and TCP listener must exist.
pub fn fault_names(
    fault: &ballast_model::FaultSpec,
    routes: &[Route],
    clusters: &BTreeMap<String, Cluster>,
    tcp: &[TcpListener],
) -> Vec<ballast_model::fault::FieldError> {
    use ballast_model::fault::FieldError;
    let mut errors = Vec::new();
    let unknown = |field: &str, what: &str, name: &str, known: Vec<&str>| {
        let fix = match did_you_mean(name, known.iter().copied()) {
            Some(s) => format!("did you mean {s:?}?"),
            None if known.is_empty() => format!("this config has no {what}s"),
            None => format!("known {what}s: {}", known.join(", ")),
        };
        FieldError {
            field: field.into(),
            message: format!("unknown {what} {name:?}"),
            fix,
        }
    };
    let route = fault
        .route
        .as_ref()
        .map(|name| (name, routes.iter().find(|r| &r.name == name)));
    if let Some((name, None)) = route {
        errors.push(unknown(
            "route",
            "route",
            name,
            routes.iter().map(|r| r.name.as_str()).collect(),
        ));
    }
    // Endpoints of the route's cluster, or of any cluster when no route is named.
    let scope: Vec<&Cluster> = match route {
        Some((_, Some(r))) => clusters.get(&r.cluster).into_iter().collect(),
        _ => clusters.values().collect(),
    };
    let endpoints: Vec<&str> = scope
        .into_iter()
        .flat_map(|c| c.endpoints.iter().map(|e| e.address.as_str()))
        .collect();
    for e in &fault.endpoints {
        if !endpoints.contains(&e.as_str()) {
            errors.push(unknown("endpoints", "endpoint", e, endpoints.clone()));
        }
    }
    if let Some(name) = &fault.listener
        && !tcp.iter().any(|l| &l.name == name)
    {
        errors.push(unknown(
            "listener",
            "TCP listener",
            name,
            tcp.iter().map(|l| l.name.as_str()).collect(),
        ));
    }
    errors
}

fn telemetry(c: &mut Checker, spec: &FileSpec) -> Telemetry {
    let latency_buckets = spec
        .telemetry
        .latency_buckets
        .iter()
        .map(|b| c.positive("telemetry.latency_buckets", Some(b), Duration::from_millis(1)))
        .collect();
    let access_log = spec.telemetry.access_log.as_ref().map(|log| {
        let path = log.path.as_ref().map_or("stdout", |p| p.get_ref().as_str());
        if let Some(p) = log.path.as_ref().filter(|p| p.get_ref().trim().is_empty()) {
            c.err(
                "telemetry.access_log.path",
                p.span(),
                "path is empty",
                "write \"stdout\" or a file path",
            );
        }
        let sample = ratio(c, "telemetry.access_log.sample", log.sample.as_ref(), 1.0);
        AccessLog {
            path: path.to_owned(),
            sample,
        }
    });
    let tracing = spec.telemetry.tracing.as_ref().map(|t| {
        let endpoint = t.otlp_endpoint.get_ref();
        let http = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !http || endpoint.parse::<http::Uri>().is_err() {
            c.err(
                "telemetry.tracing.otlp_endpoint",
                t.otlp_endpoint.span(),
                format!("invalid OTLP endpoint {endpoint:?}"),
                "write the collector's OTLP/HTTP traces URL, such as \"http://127.0.0.1:4318/v1/traces\"",
            );
        }
        Tracing {
            otlp_endpoint: endpoint.clone(),
            sample: ratio(c, "telemetry.tracing.sample", t.sample.as_ref(), 0.01),
            service_name: t.service_name.clone().unwrap_or_else(|| "ballast-sidecar".into()),
        }
    });
    Telemetry {
        metrics: spec.telemetry.metrics.unwrap_or(true),
        latency_buckets,
        access_log,
        tracing,
    }
}

/// A share between 0 and 1.
fn ratio(c: &mut Checker, path: &str, value: Option<&Spanned<f64>>, default: f64) -> f64 {
    match value {
        Some(s) if !(0.0..=1.0).contains(s.get_ref()) => {
            c.err(
                path,
                s.span(),
                format!("{} is outside 0..=1", s.get_ref()),
                "write a share such as 0.01 for 1%",
            );
            default
        }
        Some(s) => *s.get_ref(),
        None => default,
    }
}

fn runtime(c: &mut Checker, spec: &FileSpec) -> Runtime {
    let workers = match &spec.runtime.worker_threads {
        Some(w) if *w.get_ref() == 0 => {
            c.err(
                "runtime.worker_threads",
                w.span(),
                "worker_threads is 0",
                "use at least 1, or remove it for one per CPU core",
            );
            1
        }
        Some(w) => *w.get_ref(),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let drain = c.positive(
        "runtime.drain_timeout",
        spec.runtime.drain_timeout.as_ref(),
        DEFAULT_DRAIN,
    );
    let idle_poll = match &spec.runtime.idle_poll {
        Some(p) if p.get_ref().get() > MAX_IDLE_POLL => {
            let max = HumanDuration::from(MAX_IDLE_POLL);
            c.err(
                "runtime.idle_poll",
                p.span(),
                format!("idle_poll {} is longer than {max}", p.get_ref()),
                IDLE_POLL_HINT,
            );
            DEFAULT_IDLE_POLL
        }
        Some(p) => p.get_ref().get(),
        None => DEFAULT_IDLE_POLL,
    };
    Runtime {
        worker_threads: workers,
        drain_timeout: drain,
        idle_poll,
    }
}

fn admin(c: &mut Checker, spec: &FileSpec) -> Admin {
    let default: SocketAddr = DEFAULT_ADMIN.parse().expect("valid default");
    let token = spec.admin.token.clone().filter(|t| !t.is_empty());
    let Some(listen) = &spec.admin.listen else {
        return Admin { listen: default, token };
    };
    let Some(addr) = socket_addr(c, "admin.listen", listen) else {
        return Admin { listen: default, token };
    };
    if !addr.ip().is_loopback() && token.is_none() {
        c.err(
            "admin.listen",
            listen.span(),
            format!(
                "admin API on non-loopback address {:?} without a token",
                listen.get_ref()
            ),
            "set admin.token (callers then send `Authorization: Bearer <token>`), or listen on 127.0.0.1",
        );
    }
    Admin { listen: addr, token }
}

fn socket_addr(c: &mut Checker, path: &str, value: &Spanned<String>) -> Option<SocketAddr> {
    value
        .get_ref()
        .parse()
        .map_err(|_| {
            c.err(
                path,
                value.span(),
                format!("invalid address {:?}", value.get_ref()),
                "write an IP and a port, such as \"127.0.0.1:8080\" or \"[::1]:8080\"",
            )
        })
        .ok()
}

fn listeners(c: &mut Checker, spec: &FileSpec, admin: &Admin) -> Vec<Listener> {
    let Some(items) = &spec.listeners else {
        c.errors.push(
            ConfigError::new("listeners", None, "no listeners: the sidecar would accept no traffic")
                .hint("add a [[listeners]] table with listen = \"0.0.0.0:8080\""),
        );
        return Vec::new();
    };
    if items.get_ref().is_empty() {
        c.err(
            "listeners",
            items.span(),
            "no listeners: the sidecar would accept no traffic",
            "add a [[listeners]] table with listen = \"0.0.0.0:8080\"",
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in items.get_ref().iter().enumerate() {
        let Some(l) = l else { continue };
        if let Some(listener) = listener(c, i, l) {
            // Port 0 asks the kernel for a free port: never a conflict.
            if listener.listen.port() == 0 {
            } else if !seen.insert(listener.listen) {
                c.err(
                    format!("listeners[{i}].listen"),
                    l.listen.span(),
                    format!("duplicate listener address {:?}", l.listen.get_ref()),
                    "each listener needs its own address; remove one",
                );
            } else if listener.listen == admin.listen {
                c.err(
                    format!("listeners[{i}].listen"),
                    l.listen.span(),
                    format!("listener address {:?} is also the admin address", l.listen.get_ref()),
                    "move the admin API ([admin] listen) or the listener to another port",
                );
            }
            out.push(listener);
        }
    }
    out
}

fn listener(c: &mut Checker, i: usize, l: &ListenerSpec) -> Option<Listener> {
    let p = |f: &str| format!("listeners[{i}].{f}");
    let listen = socket_addr(c, &p("listen"), &l.listen);
    let max_connections = match &l.max_connections {
        Some(m) if *m.get_ref() == 0 => {
            c.err(
                p("max_connections"),
                m.span(),
                "max_connections is 0",
                "use at least 1, or remove it for the default (10000)",
            );
            1
        }
        Some(m) => *m.get_ref(),
        None => DEFAULT_MAX_CONNECTIONS,
    };
    let header = match &l.max_request_header_size {
        Some(s) if (s.get_ref().get() as usize) < MIN_HEADER_SIZE => {
            c.err(
                p("max_request_header_size"),
                s.span(),
                format!("max_request_header_size {} is below 8KiB", s.get_ref()),
                "use at least \"8KiB\"",
            );
            MIN_HEADER_SIZE
        }
        Some(s) => s.get_ref().get() as usize,
        None => DEFAULT_HEADER_SIZE,
    };
    Some(Listener {
        listen: listen?,
        max_connections,
        max_request_header_size: header,
        header_read_timeout: c.positive(
            &p("header_read_timeout"),
            l.header_read_timeout.as_ref(),
            DEFAULT_HEADER_READ_TIMEOUT,
        ),
        idle_timeout: c.positive(&p("idle_timeout"), l.idle_timeout.as_ref(), DEFAULT_IDLE_TIMEOUT),
    })
}

fn cluster_spec(c: &mut Checker, name: &str, spec: &ClusterSpec) -> Option<Cluster> {
    let p = |f: &str| format!("clusters.{name}.{f}");
    let mut ok = true;
    if spec.endpoints.get_ref().is_empty() {
        c.err(
            p("endpoints"),
            spec.endpoints.span(),
            "endpoint list is empty",
            "add at least one endpoint: endpoints = [{ address = \"127.0.0.1:8081\" }]",
        );
        ok = false;
    }
    let mut endpoints = Vec::new();
    let mut seen = HashSet::new();
    for (i, e) in spec.endpoints.get_ref().iter().enumerate() {
        let addr = e.address.get_ref();
        if !valid_host_port(addr) {
            c.err(
                p(&format!("endpoints[{i}].address")),
                e.address.span(),
                format!("invalid endpoint address {addr:?}"),
                "write host:port, such as \"127.0.0.1:8081\" or \"payments.internal:80\"",
            );
            ok = false;
        } else if !seen.insert(addr.clone()) {
            c.err(
                p(&format!("endpoints[{i}].address")),
                e.address.span(),
                format!("duplicate endpoint {addr:?}"),
                "list each endpoint once; use weight to send it more traffic",
            );
            ok = false;
        }
        let weight = match &e.weight {
            Some(w) if *w.get_ref() == 0 => {
                c.err(
                    p(&format!("endpoints[{i}].weight")),
                    w.span(),
                    "weight is 0",
                    "use a weight of at least 1, or remove the endpoint",
                );
                ok = false;
                1
            }
            Some(w) => *w.get_ref(),
            None => 1,
        };
        endpoints.push(Endpoint {
            address: addr.clone(),
            weight,
        });
    }
    let pool = spec.pool.as_ref();
    let cluster = Cluster {
        endpoints,
        balance: spec.balance.unwrap_or_default(),
        protocol: spec.protocol.unwrap_or_default(),
        connect_timeout: c.positive(
            &p("connect_timeout"),
            spec.connect_timeout.as_ref(),
            DEFAULT_CONNECT_TIMEOUT,
        ),
        max_idle_per_endpoint: pool.and_then(|p| p.max_idle_per_endpoint).unwrap_or(DEFAULT_MAX_IDLE),
        idle_timeout: c.positive(
            &p("pool.idle_timeout"),
            pool.and_then(|p| p.idle_timeout.as_ref()),
            DEFAULT_POOL_IDLE,
        ),
        outlier: spec.outlier.as_ref().map(|o| outlier(c, &p("outlier"), o)),
        health: spec.health.as_ref().map(|h| health_check(c, &p("health"), h)),
        limits: {
            let l = spec.limits.as_ref();
            let or = |v: Option<usize>| v.unwrap_or(DEFAULT_CLUSTER_LIMIT).max(1);
            Limits {
                max_connections: or(l.and_then(|l| l.max_connections)),
                max_pending: or(l.and_then(|l| l.max_pending)),
                max_requests: or(l.and_then(|l| l.max_requests)),
                max_retries: l.and_then(|l| l.max_retries),
            }
        },
    };
    ok.then_some(cluster)
}

/// `host:port` with a non-empty host and a valid port; IPv6 hosts in brackets.
fn valid_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' || ch == '_')
        }
        None => false,
    }
}

fn route_spec(c: &mut Checker, i: usize, spec: &RouteSpec, clusters: &[&str]) -> Option<Route> {
    let p = |f: &str| format!("routes[{i}].{f}");
    let before = c.errors.len();
    let name = spec
        .name
        .as_ref()
        .map_or_else(|| format!("route-{i}"), |n| n.get_ref().clone());
    if let Some(n) = &spec.name
        && (n.get_ref().is_empty()
            || !n
                .get_ref()
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)))
    {
        c.err(
            p("name"),
            n.span(),
            format!("route name {:?} is not a plain identifier", n.get_ref()),
            "use letters, digits, '-', '_' or '.' (names become metric labels)",
        );
    }

    let cluster = spec.cluster.get_ref();
    if !clusters.contains(&cluster.as_str()) {
        let hint = match did_you_mean(cluster, clusters.iter().copied()) {
            Some(s) => format!("did you mean {s:?}? or declare [clusters.{cluster}]"),
            None => {
                let known: Vec<String> = clusters.iter().map(|n| format!("{n:?}")).collect();
                if known.is_empty() {
                    format!("declare it: [clusters.{cluster}] with endpoints = [...]")
                } else {
                    format!("declare [clusters.{cluster}] or use one of {}", known.join(", "))
                }
            }
        };
        c.err(
            p("cluster"),
            spec.cluster.span(),
            format!("unknown cluster {cluster:?}"),
            hint,
        );
    }

    let matcher = spec
        .matcher
        .as_ref()
        .map(|m| route_match(c, &p("match"), m.span(), m.get_ref()))
        .unwrap_or_default();
    let timeout = c.positive(&p("timeout"), spec.timeout.as_ref(), DEFAULT_ROUTE_TIMEOUT);

    if let Some(rw) = &spec.prefix_rewrite {
        if !matches!(matcher.path, PathMatch::Prefix(_)) {
            c.err(
                p("prefix_rewrite"),
                rw.span(),
                "prefix_rewrite needs a path_prefix match",
                "add match = { path_prefix = \"/...\" } or remove prefix_rewrite",
            );
        } else if !rw.get_ref().starts_with('/') {
            c.err(
                p("prefix_rewrite"),
                rw.span(),
                format!("prefix_rewrite {:?} does not start with '/'", rw.get_ref()),
                "start it with '/', such as \"/v2/\"",
            );
        }
    }
    let host = match (&spec.host_rewrite, spec.host_rewrite_to_endpoint) {
        (Some(h), true) => {
            c.err(
                p("host_rewrite"),
                h.span(),
                "host_rewrite and host_rewrite_to_endpoint both set",
                "keep one of them",
            );
            HostPolicy::Preserve
        }
        (Some(h), false) => {
            if HeaderValue::from_str(h.get_ref()).is_err() || h.get_ref().is_empty() {
                c.err(
                    p("host_rewrite"),
                    h.span(),
                    format!("invalid host {:?}", h.get_ref()),
                    "write a host name, such as \"api.internal\"",
                );
            }
            HostPolicy::Rewrite(h.get_ref().clone())
        }
        (None, true) => HostPolicy::Endpoint,
        (None, false) => HostPolicy::Preserve,
    };
    let max_request_body = spec.max_request_body.as_ref().map(|b| b.get_ref().get());

    let route = Route {
        name,
        matcher,
        cluster: cluster.clone(),
        timeout,
        prefix_rewrite: spec.prefix_rewrite.as_ref().map(|s| s.get_ref().clone()),
        host,
        request_headers_add: c.header_pairs(&p("request_headers_add"), &spec.request_headers_add),
        request_headers_remove: c.header_names(&p("request_headers_remove"), &spec.request_headers_remove),
        response_headers_add: c.header_pairs(&p("response_headers_add"), &spec.response_headers_add),
        response_headers_remove: c.header_names(&p("response_headers_remove"), &spec.response_headers_remove),
        max_request_body,
        header_faults: spec.header_faults,
        retry: spec.retry.as_ref().map(|r| retry_policy(c, &p("retry"), r, timeout)),
        rate_limit: spec.rate_limit.as_ref().map(|r| rate_limit(c, &p("rate_limit"), r)),
        concurrency: spec.concurrency.as_ref().map(|r| concurrency(c, &p("concurrency"), r)),
        auth: None, // set by the caller, which knows [auth]
        cache: spec.cache.as_ref().map(|r| cache_policy(c, &p("cache"), r)),
    };
    (c.errors.len() == before).then_some(route)
}

fn route_match(c: &mut Checker, path: &str, span: Range<usize>, m: &MatchSpec) -> RouteMatch {
    let p = |f: &str| format!("{path}.{f}");
    let host = m.host.as_ref().map(|h| {
        let v = h.get_ref().to_ascii_lowercase();
        if v.is_empty() || v.contains('/') {
            c.err(
                p("host"),
                h.span(),
                format!("invalid host {:?}", h.get_ref()),
                "write a host name such as \"api.example.com\" or \"*.example.com\"",
            );
        }
        match v.strip_prefix("*.") {
            Some(suffix) => HostMatch::Suffix(format!(".{suffix}")),
            None => HostMatch::Exact(v),
        }
    });

    let given = [m.path.is_some(), m.path_prefix.is_some(), m.path_regex.is_some()];
    if given.iter().filter(|&&g| g).count() > 1 {
        c.err(
            path,
            span.clone(),
            "more than one of path, path_prefix and path_regex",
            "keep exactly one path rule per route (routes are tried in order)",
        );
    }
    let mut check_slash = |field: &str, v: &Spanned<String>| {
        if !v.get_ref().starts_with('/') {
            c.err(
                p(field),
                v.span(),
                format!("{field} {:?} does not start with '/'", v.get_ref()),
                format!("write it as \"/{}\"", v.get_ref()),
            );
        }
    };
    let path_match = if let Some(v) = &m.path {
        check_slash("path", v);
        PathMatch::Exact(v.get_ref().clone())
    } else if let Some(v) = &m.path_prefix {
        check_slash("path_prefix", v);
        PathMatch::Prefix(v.get_ref().clone())
    } else if let Some(v) = &m.path_regex {
        match Regex::new(&anchored(v.get_ref())) {
            Ok(r) => PathMatch::Regex(r),
            Err(e) => {
                c.err(
                    p("path_regex"),
                    v.span(),
                    format!("invalid regex {:?}: {}", v.get_ref(), first_line(&e.to_string())),
                    "fix the regular expression (Rust regex syntax; it must match the whole path)",
                );
                PathMatch::Any
            }
        }
    } else {
        PathMatch::Any
    };

    let methods = m
        .methods
        .iter()
        .filter_map(|ms| {
            let v = ms.get_ref();
            match Method::from_bytes(v.as_bytes()) {
                Ok(method) if v.chars().all(|ch| ch.is_ascii_uppercase()) => Some(method),
                _ => {
                    c.err(
                        p("methods"),
                        ms.span(),
                        format!("invalid method {v:?}"),
                        format!("methods are upper case, such as \"{}\"", v.to_ascii_uppercase()),
                    );
                    None
                }
            }
        })
        .collect();

    let headers = m
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| header_match(c, &p(&format!("headers[{i}]")), h))
        .collect();
    RouteMatch {
        host,
        path: path_match,
        methods,
        headers,
    }
}

fn header_match(c: &mut Checker, path: &str, h: &Spanned<HeaderMatchSpec>) -> Option<HeaderMatch> {
    let spec = h.get_ref();
    let name = c.header_name(path, h.span(), &spec.name)?;
    let rule = match (&spec.value, &spec.regex, spec.present) {
        (Some(v), None, None) => HeaderRule::Exact(v.clone()),
        (None, Some(r), None) => match Regex::new(&anchored(r)) {
            Ok(r) => HeaderRule::Regex(r),
            Err(e) => {
                c.err(
                    path,
                    h.span(),
                    format!("invalid regex {r:?}: {}", first_line(&e.to_string())),
                    "fix the regular expression (it must match the whole value)",
                );
                return None;
            }
        },
        (None, None, Some(true) | None) => HeaderRule::Present,
        (None, None, Some(false)) => HeaderRule::Absent,
        _ => {
            c.err(
                path,
                h.span(),
                "more than one of value, regex and present",
                "give one rule per header match",
            );
            return None;
        }
    };
    Some(HeaderMatch { name, rule })
}

/// Regexes match the whole path or value, as Envoy's `safe_regex` does.
fn anchored(re: &str) -> String {
    format!("^(?:{re})$")
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_owned()
}

fn retry_policy(c: &mut Checker, path: &str, spec: &Spanned<RetrySpec>, route_timeout: Duration) -> RetryPolicy {
    let p = |f: &str| format!("{path}.{f}");
    let d = RetryPolicy::default();
    let r = spec.get_ref();
    let retry_on = match RetryOn::parse(r.retry_on.get_ref()) {
        Ok(on) => on,
        Err(unknown) => {
            let hint = match did_you_mean(&unknown, RetryOn::NAMES) {
                Some(s) => format!("did you mean {s:?}?"),
                None => format!("conditions are {}", RetryOn::NAMES.join(", ")),
            };
            c.err(
                p("retry_on"),
                r.retry_on.span(),
                format!("unknown retry condition {unknown:?}"),
                hint,
            );
            RetryOn::default()
        }
    };
    if r.retry_on.get_ref().is_empty() {
        c.err(
            p("retry_on"),
            r.retry_on.span(),
            "no retry conditions: nothing would be retried",
            format!("list some of {}", RetryOn::NAMES.join(", ")),
        );
    }
    let codes: Vec<u16> = r.retriable_status_codes.iter().map(|c| *c.get_ref()).collect();
    for code in &r.retriable_status_codes {
        if !(100..=599).contains(code.get_ref()) {
            c.err(
                p("retriable_status_codes"),
                code.span(),
                format!("{} is not an HTTP status", code.get_ref()),
                "use statuses such as 409 or 429",
            );
        }
    }
    if retry_on.retriable_status_codes && codes.is_empty() {
        c.err(
            p("retry_on"),
            r.retry_on.span(),
            "retriable-status-codes without retriable_status_codes",
            "list the statuses, e.g. retriable_status_codes = [409]",
        );
    }
    let max_retries = r.max_retries.as_ref().map_or(d.max_retries, |m| *m.get_ref());
    if let Some(m) = r.max_retries.as_ref().filter(|m| *m.get_ref() > 10) {
        c.err(
            p("max_retries"),
            m.span(),
            format!("{} retries per request", m.get_ref()),
            "use at most 10; the retry budget is what bounds retries under load",
        );
    }
    let per_try_timeout = r
        .per_try_timeout
        .as_ref()
        .map(|t| c.positive(&p("per_try_timeout"), Some(t), route_timeout));
    if let (Some(t), Some(spec)) = (per_try_timeout, &r.per_try_timeout)
        && t >= route_timeout
    {
        c.err(
            p("per_try_timeout"),
            spec.span(),
            format!(
                "per_try_timeout {} is not shorter than the route timeout {}",
                HumanDuration(t),
                HumanDuration(route_timeout)
            ),
            "the route timeout covers every try: make per_try_timeout shorter, or the route timeout longer",
        );
    }
    let backoff_base = c.positive(&p("backoff_base"), r.backoff_base.as_ref(), d.backoff_base);
    let backoff_max = c.positive(
        &p("backoff_max"),
        r.backoff_max.as_ref(),
        d.backoff_max.max(backoff_base),
    );
    if let Some(m) = &r.backoff_max
        && backoff_max < backoff_base
    {
        c.err(
            p("backoff_max"),
            m.span(),
            "backoff_max is below backoff_base",
            "make backoff_max at least backoff_base",
        );
    }
    let budget_ratio = match &r.budget_ratio {
        Some(b) if !(0.0..=10.0).contains(b.get_ref()) => {
            c.err(
                p("budget_ratio"),
                b.span(),
                format!("{} is outside 0..=10", b.get_ref()),
                "write retries per request as a ratio, e.g. 0.2",
            );
            d.budget_ratio
        }
        Some(b) => *b.get_ref(),
        None => d.budget_ratio,
    };
    RetryPolicy {
        retry_on,
        retriable_status_codes: codes,
        max_retries,
        per_try_timeout,
        backoff_base,
        backoff_max,
        retry_non_idempotent: r.retry_non_idempotent,
        buffer_limit: r.buffer_limit.as_ref().map_or(d.buffer_limit, |b| b.get_ref().get()),
        budget_ratio,
        budget_min_per_second: r
            .budget_min_per_second
            .as_ref()
            .map_or(d.budget_min_per_second, |m| *m.get_ref()),
    }
}

fn cache_policy(c: &mut Checker, path: &str, spec: &Spanned<CacheSpec>) -> CachePolicy {
    let p = |f: &str| format!("{path}.{f}");
    let d = CachePolicy::default();
    let s = spec.get_ref();
    let ttl = c.positive(&p("ttl"), s.ttl.as_ref(), d.ttl);
    let mut size = |field: &str, value: &Option<Spanned<ballast_model::ByteSize>>, default: u64| match value {
        Some(v) if v.get_ref().get() == 0 => {
            c.err(
                p(field),
                v.span(),
                format!("{field} is zero"),
                "use a size such as \"1MiB\"",
            );
            default
        }
        Some(v) => v.get_ref().get(),
        None => default,
    };
    let max_bytes = size("max_bytes", &s.max_bytes, d.max_bytes);
    let max_object = size("max_object", &s.max_object, d.max_object.min(max_bytes));
    if let Some(m) = &s.max_object
        && max_object > max_bytes
    {
        c.err(
            p("max_object"),
            m.span(),
            format!(
                "max_object {} is larger than max_bytes {}",
                ballast_model::ByteSize(max_object),
                ballast_model::ByteSize(max_bytes)
            ),
            "an entry must fit in the cache: make max_object at most max_bytes",
        );
    }
    CachePolicy {
        ttl,
        max_bytes,
        max_object,
        stale_if_error: s
            .stale_if_error
            .as_ref()
            .map_or(d.stale_if_error, |v| v.get_ref().get()),
        honor_client_no_cache: s.honor_client_no_cache,
    }
}

fn outlier(c: &mut Checker, path: &str, spec: &Spanned<OutlierSpec>) -> Outlier {
    let p = |f: &str| format!("{path}.{f}");
    let o = spec.get_ref();
    // With nothing chosen, Envoy's defaults: 5 consecutive 5xx or gateway errors.
    let none_chosen =
        o.consecutive_5xx.is_none() && o.consecutive_gateway_errors.is_none() && o.failure_ratio.is_none();
    let failure_ratio = o.failure_ratio.as_ref().map(|r| {
        if !(0.0..=1.0).contains(r.get_ref()) || *r.get_ref() == 0.0 {
            c.err(
                p("failure_ratio"),
                r.span(),
                format!("{} is outside (0, 1]", r.get_ref()),
                "write a share such as 0.5",
            );
        }
        *r.get_ref()
    });
    let base_ejection = c.positive(&p("base_ejection"), o.base_ejection.as_ref(), Duration::from_secs(30));
    let max_ejection = c.positive(
        &p("max_ejection"),
        o.max_ejection.as_ref(),
        Duration::from_secs(300).max(base_ejection),
    );
    if let Some(m) = &o.max_ejection
        && max_ejection < base_ejection
    {
        c.err(
            p("max_ejection"),
            m.span(),
            "max_ejection is below base_ejection",
            "make max_ejection at least base_ejection",
        );
    }
    let max_ejection_percent = match &o.max_ejection_percent {
        Some(m) if *m.get_ref() > 100 => {
            c.err(
                p("max_ejection_percent"),
                m.span(),
                format!("{} is above 100", m.get_ref()),
                "give a percentage, e.g. 10",
            );
            10
        }
        Some(m) => *m.get_ref(),
        None => 10,
    };
    Outlier {
        consecutive_5xx: o.consecutive_5xx.or(none_chosen.then_some(5)).filter(|&n| n > 0),
        consecutive_gateway_errors: o
            .consecutive_gateway_errors
            .or(none_chosen.then_some(5))
            .filter(|&n| n > 0),
        failure_ratio,
        failure_window: c.positive(&p("failure_window"), o.failure_window.as_ref(), Duration::from_secs(10)),
        min_requests: o.min_requests.unwrap_or(20),
        base_ejection,
        max_ejection,
        jitter: o.jitter.as_ref().map_or(Duration::ZERO, |j| j.get_ref().get()),
        max_ejection_percent,
    }
}

fn health_check(c: &mut Checker, path: &str, spec: &Spanned<HealthSpec>) -> HealthCheck {
    let p = |f: &str| format!("{path}.{f}");
    let h = spec.get_ref();
    if !h.path.get_ref().starts_with('/') {
        c.err(
            p("path"),
            h.path.span(),
            format!("{:?} does not start with `/`", h.path.get_ref()),
            "write it like \"/healthz\"",
        );
    }
    let interval = c.positive(&p("interval"), h.interval.as_ref(), Duration::from_secs(5));
    let timeout = c.positive(&p("timeout"), h.timeout.as_ref(), Duration::from_secs(1).min(interval));
    if let Some(t) = &h.timeout
        && timeout > interval
    {
        c.err(
            p("timeout"),
            t.span(),
            "the timeout is longer than the interval",
            "make the timeout at most the interval",
        );
    }
    let threshold = |c: &mut Checker, field: &str, v: &Option<Spanned<u32>>, default: u32| match v {
        Some(t) if *t.get_ref() == 0 => {
            c.err(p(field), t.span(), format!("{field} is 0"), "use at least 1");
            default
        }
        Some(t) => *t.get_ref(),
        None => default,
    };
    let healthy_threshold = threshold(c, "healthy_threshold", &h.healthy_threshold, 2);
    let unhealthy_threshold = threshold(c, "unhealthy_threshold", &h.unhealthy_threshold, 3);
    for s in &h.expected_statuses {
        if !(100..=599).contains(s.get_ref()) {
            c.err(
                p("expected_statuses"),
                s.span(),
                format!("{} is not an HTTP status", s.get_ref()),
                "use statuses such as 200 or 204",
            );
        }
    }
    let panic_threshold = match &h.panic_threshold {
        Some(t) if *t.get_ref() > 100 => {
            c.err(
                p("panic_threshold"),
                t.span(),
                format!("{} is above 100", t.get_ref()),
                "give a percentage, e.g. 50",
            );
            50
        }
        Some(t) => *t.get_ref(),
        None => 50,
    };
    HealthCheck {
        path: h.path.get_ref().clone(),
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
        expected_statuses: h.expected_statuses.iter().map(|s| *s.get_ref()).collect(),
        panic_threshold,
    }
}

fn rate_limit(c: &mut Checker, path: &str, spec: &Spanned<RateLimitSpec>) -> RateLimitPolicy {
    let p = |f: &str| format!("{path}.{f}");
    let r = spec.get_ref();
    let requests = *r.requests.get_ref();
    if requests == 0 {
        c.err(
            p("requests"),
            r.requests.span(),
            "requests is 0",
            "allow at least 1 request per period",
        );
    }
    let per = c.positive(&p("per"), r.per.as_ref(), Duration::from_secs(1));
    let burst = match &r.burst {
        Some(b) if *b.get_ref() == 0 => {
            c.err(
                p("burst"),
                b.span(),
                "burst is 0",
                "use at least 1, or leave it out for `requests`",
            );
            1
        }
        Some(b) => *b.get_ref(),
        None => requests.max(1),
    };
    let key = match r.key.as_ref().map(|k| (k, k.get_ref().as_str())) {
        None | Some((_, "route")) => RateLimitKey::Route,
        Some((_, "client_ip")) => RateLimitKey::ClientIp,
        Some((_, "tenant")) => RateLimitKey::Tenant,
        Some((k, other)) => match other
            .strip_prefix("header:")
            .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
        {
            Some(Ok(name)) => RateLimitKey::Header(name),
            _ => {
                c.err(
                    p("key"),
                    k.span(),
                    format!("unknown rate limit key {other:?}"),
                    "use \"route\" (one bucket), \"client_ip\", \"tenant\" (from the route's auth), or \"header:<name>\"",
                );
                RateLimitKey::Route
            }
        },
    };
    RateLimitPolicy {
        requests: requests.max(1),
        per,
        burst,
        key,
        shadow: r.shadow,
    }
}

fn concurrency(c: &mut Checker, path: &str, spec: &Spanned<ConcurrencySpec>) -> ConcurrencyPolicy {
    let p = |f: &str| format!("{path}.{f}");
    let s = spec.get_ref();
    let at_least_1 = |c: &mut Checker, field: &str, v: &Option<Spanned<usize>>, default: usize| match v {
        Some(n) if *n.get_ref() == 0 => {
            c.err(p(field), n.span(), format!("{field} is 0"), "use at least 1");
            default
        }
        Some(n) => *n.get_ref(),
        None => default,
    };
    if !s.adaptive {
        if let Some((field, span)) = [
            ("min", s.min.as_ref().map(|v| v.span())),
            ("sample_window", s.sample_window.as_ref().map(|v| v.span())),
            ("min_rtt_requests", s.min_rtt_requests.as_ref().map(|v| v.span())),
            ("min_rtt_interval", s.min_rtt_interval.as_ref().map(|v| v.span())),
        ]
        .into_iter()
        .find_map(|(f, span)| span.map(|s| (f, s)))
        {
            c.err(
                p(field),
                span,
                format!("{field} applies to an adaptive limit"),
                "add `adaptive = true`, or remove it",
            );
        }
        let Some(max) = &s.max else {
            c.err(
                path,
                spec.span(),
                "a static limit needs `max`",
                "add max = 100, or adaptive = true",
            );
            return ConcurrencyPolicy::Static { max: 1 };
        };
        return ConcurrencyPolicy::Static {
            max: at_least_1(c, "max", &Some(max.clone()), 1),
        };
    }
    let min = at_least_1(c, "min", &s.min, 3);
    let max = at_least_1(c, "max", &s.max, 1000);
    if max < min {
        let span = s.max.as_ref().map_or(spec.span(), |m| m.span());
        c.err(
            p("max"),
            span,
            format!("max {max} is below min {min}"),
            "make max at least min",
        );
    }
    AdaptiveLimit {
        min,
        max: max.max(min),
        sample_window: c.positive(
            &p("sample_window"),
            s.sample_window.as_ref(),
            Duration::from_millis(100),
        ),
        min_rtt_requests: at_least_1(c, "min_rtt_requests", &s.min_rtt_requests, 50),
        min_rtt_interval: c.positive(
            &p("min_rtt_interval"),
            s.min_rtt_interval.as_ref(),
            Duration::from_secs(60),
        ),
    }
    .into()
}
