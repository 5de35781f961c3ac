//! HTTP faults on the request path: which faults apply to a request, and the [`Plan`] they add
//! up to.
//!
//! Every matching fault draws its percentage on its own; those drawn combine: their delays add
//! up, the first answer (abort, reset, hang, empty reply) wins, and body shapes combine to the
//! harsher one. Inbound faults are drawn once per request, upstream faults once per attempt on
//! an endpoint, so a retried request meets an upstream fault again with the same odds, as it
//! would meet a flaky endpoint.
//!
//! A request's tenant is the one its API key or JWT proved (`x-ballast-tenant`, set by the route's
//! auth); on a route without auth, the `x-ballast-tenant` header stands in for it (auth removes a
//! client-sent one, so it cannot be spoofed where auth is on).

use std::sync::Arc;
use std::time::Duration;

use ballast_model::fault::{Action, Delay, HttpEffect, HttpTarget};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rand::Rng;

use super::shape::Shape;
use super::{ActiveGuard, FaultTable, Installed};
use crate::config::FaultLimits;
use std::sync::atomic::Ordering::Relaxed;

pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-ballast-tenant");
pub const DELAY_HEADER: HeaderName = HeaderName::from_static("x-ballast-fault-delay-ms");
pub const DELAY_PERCENT_HEADER: HeaderName = HeaderName::from_static("x-ballast-fault-delay-percentage");
pub const ABORT_HEADER: HeaderName = HeaderName::from_static("x-ballast-fault-abort");
pub const ABORT_PERCENT_HEADER: HeaderName = HeaderName::from_static("x-ballast-fault-abort-percentage");
/// The request headers that ask for faults; removed before the request goes upstream.
pub const CONTROL_HEADERS: [HeaderName; 4] = [DELAY_HEADER, DELAY_PERCENT_HEADER, ABORT_HEADER, ABORT_PERCENT_HEADER];
/// Tells the client which fault answered (the id, or `header` for a header-controlled one).
pub const FAULT_HEADER: HeaderName = HeaderName::from_static("ballast-fault");

/// The upstream faults whose match selected a request, for `Forward` to draw per attempt, and
/// the request's `max_active` slot if its inbound faults took one.
#[derive(Clone)]
pub struct UpstreamFaults {
    pub selected: Vec<Arc<Installed>>,
    pub slot: Option<Slot>,
}

/// What a request is matched on.
pub struct RequestFacts<'a> {
    pub route: &'a str,
    pub method: &'a Method,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// The verified tenant, or `x-ballast-tenant` on a route without auth (see the module doc).
    pub tenant: Option<&'a HeaderValue>,
}

/// How the faults drawn for a request end it, if they do.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Abort {
        fault: Arc<str>,
        status: u16,
        body: Option<String>,
        headers: Vec<(String, String)>,
    },
    Reset,
    Hang,
    EmptyReply,
}

/// What the faults drawn for one request (or one attempt) do: wait, then answer or shape.
#[derive(Default)]
pub struct Plan {
    pub delay: Duration,
    pub answer: Option<Answer>,
    pub shape: Shape,
    /// The request's `max_active` slot, shared by its inbound plan and its attempts' plans.
    pub slot: Option<Slot>,
    /// Faults drawn, counted as injected once the plan is admitted.
    drawn: Vec<Arc<Installed>>,
    /// Header-controlled faults drawn (delay, abort), counted once the plan is admitted.
    from_headers: (bool, bool),
}

/// One request's share of `max_active`, held while any of its plans (or a shaped body) lives.
pub type Slot = Arc<ActiveGuard>;
impl Plan {
    fn is_empty(&self) -> bool {
        self.delay.is_zero() && self.answer.is_none() && self.shape.is_none()
    }

    /// Let the plan act if the request has (or gets) a `max_active` slot; otherwise it is
    /// dropped and counted as overflow. Drawn faults are counted as injected here.
    pub fn admit(plan: Option<Plan>, table: &Arc<FaultTable>, slot: Option<&Slot>) -> Option<Plan> {
        let mut plan = plan?;
        plan.slot = match slot {
            Some(s) => Some(s.clone()),
            None => Some(Arc::new(table.activate()?)),
        };
        for f in &plan.drawn {
            f.counters.injected.fetch_add(1, Relaxed);
        }
        let counters = &table.counters;
        for (drawn, counter) in [
            (plan.from_headers.0, &counters.header_delays),
            (plan.from_headers.1, &counters.header_aborts),
        ] {
            if drawn {
                counter.fetch_add(1, Relaxed);
            }
        }
        Some(plan)
    }

    fn add(&mut self, fault: &Arc<str>, effect: &HttpEffect, rng: &mut impl Rng) {
        match effect {
            HttpEffect::Delay(d) => self.delay += sample(d, rng),
            HttpEffect::Abort { status, body, headers } => {
                self.answer.get_or_insert_with(|| Answer::Abort {
                    fault: fault.clone(),
                    status: *status,
                    body: body.clone(),
                    headers: headers.clone(),
                });
            }
            HttpEffect::Reset => _ = self.answer.get_or_insert(Answer::Reset),
            HttpEffect::Hang => _ = self.answer.get_or_insert(Answer::Hang),
            HttpEffect::EmptyReply => _ = self.answer.get_or_insert(Answer::EmptyReply),
            HttpEffect::Bandwidth { bytes_per_second } => {
                self.shape = self.shape.and(Shape {
                    rate: Some(*bytes_per_second),
                    truncate: None,
                })
            }
            HttpEffect::Truncate { after } => {
                self.shape = self.shape.and(Shape {
                    rate: None,
                    truncate: Some(*after),
                })
            }
        }
    }
}

/// A fault's match in request terms, made once when the fault is added: header names and
/// values parsed, methods as `Method`s, so matching a request allocates and parses nothing.
pub struct Matcher {
    route: Option<String>,
    methods: Vec<Method>,
    path_prefix: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    tenant: Option<HeaderValue>,
}

impl Matcher {
    /// `None` if a name or value cannot appear in a request (validation rules those out).
    pub fn new(target: &HttpTarget) -> Option<Matcher> {
        Some(Matcher {
            route: target.route.clone(),
            methods: target
                .methods
                .iter()
                .map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect::<Option<_>>()?,
            path_prefix: target.path_prefix.clone(),
            headers: target
                .headers
                .iter()
                .map(|(n, v)| Some((HeaderName::try_from(n).ok()?, HeaderValue::try_from(v).ok()?)))
                .collect::<Option<_>>()?,
            tenant: match &target.tenant {
                Some(t) => Some(HeaderValue::try_from(t).ok()?),
                None => None,
            },
        })
    }

    /// Whether this request is selected (the endpoint is checked per attempt). Cheapest first.
    pub fn matches(&self, req: &RequestFacts) -> bool {
        self.route.as_deref().is_none_or(|r| r == req.route)
            && (self.methods.is_empty() || self.methods.contains(req.method))
            && self.path_prefix.as_deref().is_none_or(|p| req.path.starts_with(p))
            && self
                .headers
                .iter()
                .all(|(name, value)| req.headers.get(name) == Some(value))
            && self.tenant.as_ref().is_none_or(|t| req.tenant == Some(t))
    }
}

/// The faults among `faults` whose match selects this request (those still in place).
pub fn select(faults: &[Arc<Installed>], req: &RequestFacts) -> Vec<Arc<Installed>> {
    let mut now = None;
    faults
        .iter()
        .filter(|f| f.matcher.as_ref().is_some_and(|m| m.matches(req)))
        .filter(|f| f.in_place(&mut now))
        .cloned()
        .collect()
}

/// Draw each selected fault still in place (for upstream faults, only those for `endpoint`):
/// `matched` counts each one, and the drawn ones combine into a plan (see [`Plan::admit`]).
pub fn draw(selected: &[Arc<Installed>], endpoint: Option<&str>) -> Option<Plan> {
    if selected.is_empty() {
        return None;
    }
    let (mut rng, mut now) = (rand::rng(), None);
    let mut plan = Plan::default();
    for f in selected {
        let Action::Http { target, effect } = &f.action else {
            continue;
        };
        let for_endpoint =
            endpoint.is_none_or(|ep| target.endpoints.is_empty() || target.endpoints.iter().any(|e| e == ep));
        // Checked again here: an upstream fault may have expired (or gone) since the request came.
        if !for_endpoint || !f.in_place(&mut now) {
            continue;
        }
        f.counters.matched.fetch_add(1, Relaxed);
        if roll(&mut rng, target.percent) {
            plan.add(&f.id, effect, &mut rng);
            plan.drawn.push(f.clone());
        }
    }
    (!plan.drawn.is_empty()).then_some(plan)
}

/// A request header that asks for a fault could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{header}: {problem}")]
pub struct BadFaultHeader {
    pub header: HeaderName,
    pub problem: String,
}

/// Faults asked for by request headers (routes with `header_faults = true`), capped by the
/// limits; `Ok(None)` when none is asked for or drawn.
pub fn from_headers(headers: &HeaderMap, limits: &FaultLimits) -> Result<Option<Plan>, BadFaultHeader> {
    let number = |name: &HeaderName| -> Result<Option<f64>, BadFaultHeader> {
        let Some(v) = headers.get(name) else { return Ok(None) };
        let parsed = v.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok());
        match parsed {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(BadFaultHeader {
                header: name.clone(),
                problem: format!("{v:?} is not a non-negative number"),
            }),
        }
    };
    let percent = |name: &HeaderName| -> Result<f64, BadFaultHeader> {
        match number(name)? {
            Some(p) if p > 100.0 => Err(BadFaultHeader {
                header: name.clone(),
                problem: format!("{p} is above 100"),
            }),
            p => Ok(p.unwrap_or(100.0)),
        }
    };
    let delay = number(&DELAY_HEADER)?;
    let abort = match number(&ABORT_HEADER)? {
        Some(s) if (200.0..=599.0).contains(&s) && s.fract() == 0.0 => Some(s as u16),
        Some(s) => {
            return Err(BadFaultHeader {
                header: ABORT_HEADER,
                problem: format!("{s} is not an HTTP status in 200-599"),
            });
        }
        None => None,
    };
    let (delay_percent, abort_percent) = (percent(&DELAY_PERCENT_HEADER)?, percent(&ABORT_PERCENT_HEADER)?);
    let mut rng = rand::rng();
    let delay = delay
        .filter(|_| roll(&mut rng, delay_percent))
        .map(|ms| Duration::from_secs_f64((ms / 1000.0).min(limits.max_header_delay.as_secs_f64())));
    let abort = abort.filter(|_| roll(&mut rng, abort_percent));
    if delay.is_none() && abort.is_none() {
        return Ok(None);
    }
    let plan = Plan {
        from_headers: (delay.is_some(), abort.is_some()),
        delay: delay.unwrap_or_default(),
        answer: abort.map(|status| Answer::Abort {
            fault: "header".into(),
            status,
            body: None,
            headers: Vec::new(),
        }),
        ..Plan::default()
    };
    Ok((!plan.is_empty()).then_some(plan))
}

/// Merge a second plan into the first (inbound faults from the table and from headers).
pub fn merge(a: Option<Plan>, b: Option<Plan>) -> Option<Plan> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.delay += b.delay;
            a.answer = a.answer.or(b.answer);
            a.shape = a.shape.and(b.shape);
            a.drawn.extend(b.drawn);
            a.from_headers = (
                a.from_headers.0 || b.from_headers.0,
                a.from_headers.1 || b.from_headers.1,
            );
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

fn roll(rng: &mut impl Rng, percent: f64) -> bool {
    percent >= 100.0 || (percent > 0.0 && rng.random::<f64>() * 100.0 < percent)
}

/// One delay drawn from its distribution.
pub fn sample(delay: &Delay, rng: &mut impl Rng) -> Duration {
    match *delay {
        Delay::Uniform { base, jitter } if jitter.is_zero() => base,
        Delay::Uniform { base, jitter } => {
            let spread = rng.random_range(-jitter.as_secs_f64()..=jitter.as_secs_f64());
            Duration::from_secs_f64((base.as_secs_f64() + spread).max(0.0))
        }
        Delay::LogNormal { p50, p99 } => {
            // ln(delay) ~ N(mu, sigma): the median is e^mu, the 99th percentile e^(mu + z99·sigma).
            const Z99: f64 = 2.326_347_874;
            let mu = p50.as_secs_f64().ln();
            let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z99;
            let dist = rand_distr::LogNormal::new(mu, sigma).expect("sigma is finite and non-negative");
            let secs: f64 = rng.sample(dist);
            Duration::from_secs_f64(secs.min(ballast_model::fault::MAX_FAULT_DURATION.as_secs_f64()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Events;
    use ballast_model::FaultSpec;
    use ballast_model::fault::Origin;

    fn table_with(specs: &[&str]) -> Arc<FaultTable> {
        let table = Arc::new(FaultTable::new(FaultLimits::default(), []));
        for text in specs {
            let spec: FaultSpec = toml::from_str(text).unwrap();
            let fault = spec.validate().unwrap();
            table.add(spec, fault, Origin::Api, &Events::default()).unwrap();
        }
        table
    }

    fn facts<'a>(route: &'a str, method: &'a Method, path: &'a str, headers: &'a HeaderMap) -> RequestFacts<'a> {
        RequestFacts {
            route,
            method,
            path,
            headers,
            tenant: headers.get(TENANT_HEADER),
        }
    }

    #[test]
    fn matching_uses_route_method_path_headers_and_tenant() {
        let table = table_with(&[
            "kind = \"abort\"\nstatus = 503\nroute = \"api\"\nmethods = [\"post\"]\npath_prefix = \"/v1\"\nheaders = { x-canary = \"1\" }\ntenant = \"acme\"",
        ]);
        let mut headers = HeaderMap::new();
        headers.insert("x-canary", "1".parse().unwrap());
        headers.insert(TENANT_HEADER, "acme".parse().unwrap());
        let http = table.http();
        assert_eq!(
            select(&http.inbound, &facts("api", &Method::POST, "/v1/pay", &headers)).len(),
            1
        );
        assert!(select(&http.inbound, &facts("web", &Method::POST, "/v1/pay", &headers)).is_empty());
        assert!(select(&http.inbound, &facts("api", &Method::GET, "/v1/pay", &headers)).is_empty());
        assert!(select(&http.inbound, &facts("api", &Method::POST, "/v2", &headers)).is_empty());
        headers.insert(TENANT_HEADER, "other".parse().unwrap());
        assert!(select(&http.inbound, &facts("api", &Method::POST, "/v1/pay", &headers)).is_empty());
    }

    #[test]
    fn drawn_faults_combine_into_one_plan() {
        let table = table_with(&[
            "kind = \"delay\"\ndelay = 100",
            "kind = \"delay\"\ndelay = 50",
            "kind = \"abort\"\nstatus = 502",
            "kind = \"abort\"\nstatus = 503",
            "kind = \"bandwidth\"\nrate = 10",
            "kind = \"truncate\"\nafter = 5",
            "kind = \"reset\"\npercent = 0",
        ]);
        let http = table.http();
        let h = HeaderMap::new();
        let selected = select(&http.inbound, &facts("r", &Method::GET, "/", &h));
        let plan = Plan::admit(draw(&selected, None), &table, None).unwrap();
        assert_eq!(plan.delay, Duration::from_millis(150));
        assert!(matches!(plan.answer, Some(Answer::Abort { status: 502, .. })));
        assert_eq!(
            plan.shape,
            Shape {
                rate: Some(10_000),
                truncate: Some(5)
            }
        );
        assert_eq!(table.active(), 1);
        // An attempt's upstream plan shares the request's slot.
        let attempt = Plan::admit(draw(&selected, Some("10.0.0.1:80")), &table, plan.slot.as_ref()).unwrap();
        assert_eq!(table.active(), 1);
        drop((plan, attempt));
        assert_eq!(table.active(), 0);
        let (abort, reset) = (&http.inbound[2].counters, &http.inbound[6].counters);
        assert_eq!((abort.matched.load(Relaxed), abort.injected.load(Relaxed)), (2, 2));
        assert_eq!((reset.matched.load(Relaxed), reset.injected.load(Relaxed)), (2, 0));
    }

    #[test]
    fn at_max_active_a_plan_is_dropped_as_overflow_and_not_counted_as_injected() {
        let limits = FaultLimits {
            max_active: Some(1),
            ..FaultLimits::default()
        };
        let table = Arc::new(FaultTable::new(limits, []));
        let spec: FaultSpec = toml::from_str("kind = \"abort\"\nstatus = 503").unwrap();
        let fault = spec.validate().unwrap();
        table.add(spec, fault, Origin::Api, &Events::default()).unwrap();
        let (http, h) = (table.http(), HeaderMap::new());
        let selected = select(&http.inbound, &facts("r", &Method::GET, "/", &h));
        let first = Plan::admit(draw(&selected, None), &table, None).unwrap();
        assert!(Plan::admit(draw(&selected, None), &table, None).is_none());
        assert_eq!(table.counters.overflow.load(Relaxed), 1);
        let c = &http.inbound[0].counters;
        assert_eq!((c.matched.load(Relaxed), c.injected.load(Relaxed)), (2, 1));
        drop(first);
        assert!(Plan::admit(draw(&selected, None), &table, None).is_some());
    }

    #[test]
    fn a_removed_fault_no_longer_draws_for_requests_that_selected_it() {
        let table = table_with(&["kind = \"abort\"\nstatus = 503\nid = \"x\"\nposition = \"upstream\""]);
        let (http, h) = (table.http(), HeaderMap::new());
        let selected = select(&http.upstream, &facts("r", &Method::GET, "/", &h));
        assert!(table.remove("x", &Events::default()));
        assert!(draw(&selected, Some("10.0.0.1:80")).is_none());
    }

    #[test]
    fn upstream_faults_draw_only_for_their_endpoints() {
        let table =
            table_with(&["kind = \"abort\"\nstatus = 503\nposition = \"upstream\"\nendpoints = [\"10.0.0.1:80\"]"]);
        let http = table.http();
        let h = HeaderMap::new();
        let selected = select(&http.upstream, &facts("r", &Method::GET, "/", &h));
        assert!(draw(&selected, Some("10.0.0.2:80")).is_none());
        assert!(draw(&selected, Some("10.0.0.1:80")).is_some());
        assert_eq!(
            http.upstream[0].counters.matched.load(Relaxed),
            1,
            "matched counts per endpoint"
        );
    }

    #[test]
    fn header_faults_are_capped_and_checked() {
        let limits = FaultLimits::default();
        let mut h = HeaderMap::new();
        h.insert(DELAY_HEADER, "60000".parse().unwrap());
        h.insert(ABORT_HEADER, "429".parse().unwrap());
        let plan = from_headers(&h, &limits).unwrap().unwrap();
        assert_eq!(plan.delay, limits.max_header_delay);
        h.insert(DELAY_HEADER, "1e300".parse().unwrap());
        let plan = from_headers(&h, &limits).unwrap().unwrap();
        assert_eq!(
            plan.delay, limits.max_header_delay,
            "capped before it becomes a duration"
        );
        assert!(matches!(plan.answer, Some(Answer::Abort { status: 429, .. })));
        h.insert(ABORT_PERCENT_HEADER, "0".parse().unwrap());
        h.insert(DELAY_PERCENT_HEADER, "0".parse().unwrap());
        assert!(from_headers(&h, &limits).unwrap().is_none());
        h.insert(ABORT_HEADER, "99".parse().unwrap());
        assert!(matches!(from_headers(&h, &limits), Err(e) if e.header == ABORT_HEADER));
        h.insert(ABORT_HEADER, "503".parse().unwrap());
        h.insert(DELAY_PERCENT_HEADER, "150".parse().unwrap());
        assert!(from_headers(&h, &limits).is_err());
    }

    #[test]
    fn log_normal_delays_have_the_asked_median_and_p99() {
        let mut rng = rand::rng();
        let d = Delay::LogNormal {
            p50: Duration::from_millis(20),
            p99: Duration::from_millis(200),
        };
        let mut xs: Vec<f64> = (0..100_000).map(|_| sample(&d, &mut rng).as_secs_f64()).collect();
        xs.sort_by(f64::total_cmp);
        let (p50, p99) = (xs[50_000], xs[99_000]);
        assert!((0.019..0.021).contains(&p50), "p50 {p50}");
        assert!((0.18..0.22).contains(&p99), "p99 {p99}");
        let u = Delay::Uniform {
            base: Duration::from_millis(100),
            jitter: Duration::from_millis(10),
        };
        assert!(
            (0..1000)
                .map(|_| sample(&u, &mut rng))
                .all(|d| (90..=110).contains(&d.as_millis()))
        );
    }
}
