//! The gateway: the outermost, infallible request handler, and the per-route service stacks
//! built once per config.
//!
//! A config becomes a [`Gateway`] (routes with their stacks, clusters with their pools; a
//! route with no optional layer skips tower, see `Stack`). The
//! running sidecar holds the current one in an `ArcSwap`; a reload builds a new one and swaps it
//! in whole, so a request sees either the old config or the new one, never a mix.

use std::collections::HashMap;
use std::sync::Arc;

use ballast_model::ErrorClass;
use ballast_model::event::unix_ms;
use ballast_model::stats::Exemplar;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use crate::auth::{Denial, Guard, verified_tenant};
use crate::body::{Body, Direction};
use crate::config::{Config, HostPolicy, Protocol, Route};
use crate::faults::http::{Answer, Plan, RequestFacts, UpstreamFaults};
use crate::faults::{self, FaultTable};
use crate::policy::cache::CacheLayer;
use crate::policy::concurrency::{ConcurrencyLayer, ConcurrencyLimit};
use crate::policy::rate_limit::{Decision, RateLimit};
use crate::policy::retry::{Attempts, RetryLayer};
use crate::policy::timeout::RouteTimeoutLayer;
use crate::proxy::headers::{self, Client, X_REQUEST_ID};
use crate::proxy::{Forward, Hangup, HungUp, ProxyError, abort_response, error_response};
use crate::router::RequestView;
use crate::telemetry::access_log::Entry;
use crate::telemetry::tracing::{Ending, ServerSpan, Tracing};
use crate::telemetry::{AccessLogger, Meter, Telemetry, UNMATCHED};
use crate::upstream::Upstream;

/// Headers `RouteEntry::prepare` adds to a request, at most: `X-Forwarded-For`, `-Proto`, `-Host`
/// (when the route rewrites Host) and the request id.
const FORWARDING_HEADERS: usize = 4;
/// Headers the gateway adds to every request on its way upstream: the forwarding headers and
/// the trace context (added first, with the server span).
pub const ADDED_REQUEST_HEADERS: usize = FORWARDING_HEADERS + 1;

type RouteService = BoxCloneSyncService<Request<Body>, Response<Body>, ProxyError>;

/// How a route's requests pass its layers.
enum Stack {
    /// No cache, concurrency limit or retries: one try under the route timeout, called
    /// directly. The tower stack would only add, per request, a clone of the boxed service
    /// and two boxed futures (the try's future is the largest thing a request allocates).
    Direct(Forward),
    /// The tower stack, for a route with any of those layers.
    Layered(RouteService),
}

/// What a gateway is built with, besides its config: the parts that outlive reloads.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub telemetry: &'a Telemetry,
    pub faults: &'a Arc<FaultTable>,
    pub events: &'a Arc<crate::events::Events>,
    /// The sidecar's background runtime (health checks).
    pub background: &'a tokio::runtime::Handle,
}

/// One route, ready to serve.
struct RouteEntry {
    config: Route,
    /// Kept across reloads while the route's limit is unchanged (buckets stay full or empty).
    rate_limit: Option<Arc<RateLimit>>,
    /// The route's concurrency limit, also kept across reloads while unchanged.
    concurrency: Option<Arc<ConcurrencyLimit>>,
    /// `host_rewrite` as a header value, made once per config instead of once per request.
    host_rewrite: Option<HeaderValue>,
    /// The route's header edits add or remove `Host`.
    edits_host: bool,
    /// The `Host` sent upstream may not be the client's, which then goes in `X-Forwarded-Host`.
    rewrites_host: bool,
    meter: Arc<Meter>,
    stack: Stack,
    /// The route's auth; `None` costs a request one branch.
    auth: Option<Guard>,
}

/// A config made runnable.
pub struct Gateway {
    pub config: Arc<Config>,
    routes: Vec<RouteEntry>,
    /// Counts requests that no route matched.
    unmatched: Arc<Meter>,
    access_log: Option<Arc<AccessLogger>>,
    tracing: Option<Arc<Tracing>>,
    upstreams: HashMap<String, Arc<Upstream>>,
    faults: Arc<FaultTable>,
}

impl Gateway {
    /// The clusters, sorted by name.
    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        let mut all: Vec<&Arc<Upstream>> = self.upstreams.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.into_iter()
    }

    /// Build a gateway. Clusters whose settings did not change keep their upstream (pools,
    /// balancer position) from `previous`, so a reload does not drop warm connections.
    pub fn build(config: Arc<Config>, previous: Option<&Gateway>, ctx: &Context) -> Self {
        let Context {
            telemetry,
            faults,
            events,
            background,
        } = *ctx;
        let meters = &telemetry.meters;
        let workers = config.runtime.worker_threads;
        let upstreams: HashMap<String, Arc<Upstream>> = config
            .clusters
            .iter()
            .map(|(name, cluster)| {
                let reused = previous
                    .and_then(|p| p.upstreams.get(name))
                    .filter(|u| u.config == *cluster);
                let upstream = reused.cloned().unwrap_or_else(|| {
                    let new = Upstream::new(name, cluster, workers, meters, events.clone());
                    crate::upstream::health::spawn(&new, background);
                    new
                });
                (name.clone(), upstream)
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let upstream = upstreams[&route.cluster].clone();
                // An HTTP/2 request names the endpoint in `:authority`, which HTTP/2 servers read
                // before `Host`: the client's Host then goes in `X-Forwarded-Host` too.
                let http2 = upstream.config.protocol == Protocol::Http2;
                let meter = meters.route(&route.name);
                let retry = route
                    .retry
                    .clone()
                    .map(|p| RetryLayer::new(p, meter.clone(), route.timeout, upstream.clone()));
                let previous_route = previous.and_then(|p| p.routes.iter().find(|r| r.config.name == route.name));
                // A limit whose policy did not change keeps its state (in flight, learned limit).
                let concurrency = route.concurrency.as_ref().map(|policy| {
                    previous_route
                        .and_then(|r| r.concurrency.clone())
                        .filter(|c| c.policy() == policy)
                        .unwrap_or_else(|| ConcurrencyLimit::new(policy.clone()))
                });
                let cache = route.cache.clone().map(|p| CacheLayer::new(p, meter.clone()));
                // One try: pick an endpoint (upstream faults there), send on a pooled connection.
                let forward = Forward::new(upstream, route.host.clone(), telemetry, faults.clone());
                let stack = if cache.is_none() && concurrency.is_none() && retry.is_none() {
                    Stack::Direct(forward)
                } else {
                    Stack::Layered(BoxCloneSyncService::new(
                        ServiceBuilder::new()
                            // Failures from any layer come back as a classified ProxyError.
                            .map_err(ProxyError::from_boxed)
                            // The response cache: a hit takes no concurrency place and never waits on the timeout.
                            .option_layer(cache)
                            // Load shedding: over the route's (static or adaptive) limit, 503 at once.
                            .option_layer(concurrency.clone().map(ConcurrencyLayer))
                            // The route timeout covers every try until the response head.
                            .layer(RouteTimeoutLayer(route.timeout))
                            // Retries (when configured): per-try timeouts, backoff, the retry budget.
                            .option_layer(retry)
                            .service(forward),
                    ))
                };
                let host_rewrite = match &route.host {
                    HostPolicy::Rewrite(h) => Some(HeaderValue::from_str(h).expect("validated host")),
                    _ => None,
                };
                let rate_limit = route.rate_limit.as_ref().map(|policy| {
                    let kept = previous_route.and_then(|r| {
                        r.rate_limit
                            .clone()
                            .filter(|_| r.config.rate_limit.as_ref() == Some(policy))
                    });
                    kept.unwrap_or_else(|| {
                        let limit = Arc::new(RateLimit::new(&route.name, policy.clone()));
                        background.spawn(forget_idle_keys(Arc::downgrade(&limit)));
                        limit
                    })
                });
                let adds_host = route.request_headers_add.iter().any(|(name, _)| name == header::HOST);
                RouteEntry {
                    edits_host: adds_host || route.request_headers_remove.contains(&header::HOST),
                    rewrites_host: adds_host || http2 || route.host != HostPolicy::Preserve,
                    auth: route.auth.clone().map(|policy| Guard::new(policy, &config.auth)),
                    config: route.clone(),
                    rate_limit,
                    concurrency,
                    host_rewrite,
                    meter,
                    stack,
                }
            })
            .collect();
        Gateway {
            config,
            routes,
            unmatched: meters.route(UNMATCHED),
            access_log: telemetry.access_log.clone(),
            tracing: telemetry.tracing.clone(),
            upstreams,
            faults: faults.clone(),
        }
    }

    /// Serve one downstream request. Every problem is a response; the only error is a fault
    /// that ends the request without one (the server then resets or closes the connection).
    pub async fn handle(&self, req: Request<Body>, client: &Client) -> Result<Response<Body>, HungUp> {
        let present = headers::Present::scan(req.headers());
        let request_id = headers::request_id(req.headers(), present);
        let (mut parts, body) = req.into_parts();
        // The request as the client sent it, kept only for the access log.
        let asked = self
            .access_log
            .as_ref()
            .map(|_| (parts.method.clone(), parts.uri.clone()));
        let Some(route) = self
            .routes
            .iter()
            .find(|r| r.config.matcher.matches(&RequestView::from(&parts)))
        else {
            let class = ErrorClass::NoRoute;
            let took = self.unmatched.start().record(class.status(), Some(class));
            let outcome = Outcome {
                status: class.status(),
                error: Some(class),
                endpoint: None,
                attempts: 0,
                took,
                trace: None,
            };
            self.log(UNMATCHED, asked, &outcome, &request_id);
            let mut resp = error_response(class);
            set_request_id(&mut resp, request_id);
            return Ok(resp);
        };
        let timer = route.meter.start();
        let trace = self
            .tracing
            .as_ref()
            .map(|t| t.server_span(&mut parts, &route.config.name, client.addr.ip(), present.traceparent));
        let version = parts.version;
        // Auth (DESIGN's layer 3) is checked here, before the inbound faults are selected, so a
        // fault matching a `tenant` sees the tenant the credentials proved; its 401/403 is sent
        // only after the inbound faults had their turn, so they still come first for the client
        // (layer 2). Not a tower layer: the route stack starts after fault selection.
        let denied = match &route.auth {
            None => None,
            Some(guard) => guard.check(&mut parts).err(),
        };
        // Inbound faults come first, like Envoy's fault filter: the client sees them as they are.
        let (forwarded, plan) = match self.inbound_faults(&mut parts, route) {
            Err(e) => (Err(e), None),
            Ok(mut plan) => {
                let forwarded = match self.under_faults(plan.as_mut(), route).await {
                    Some(answer) => answer,
                    None => match &denied {
                        Some(denial) => Err(refuse(route, denial)),
                        None => {
                            self.forward(route, parts, body, client, &request_id, trace.as_ref())
                                .await
                        }
                    },
                };
                (forwarded, plan)
            }
        };
        let mut hangup = None;
        let (mut resp, error, endpoint, attempts) = match forwarded {
            Ok(resp) => {
                let endpoint = resp.body().answered_by().cloned();
                let attempts = resp.extensions().get::<Attempts>().map(|a| a.0);
                (resp, None, endpoint, attempts)
            }
            Err(e) => {
                tracing::debug!(route = %route.config.name, error = %e, "request failed");
                let (class, endpoint, attempts) = (e.class, e.endpoint.clone(), e.attempts);
                hangup = e.hangup;
                let mut resp = e.into_response();
                if let Some(denial) = denied.as_ref().filter(|_| is_auth(class)) {
                    for challenge in &denial.challenges {
                        resp.headers_mut().append(header::WWW_AUTHENTICATE, challenge.clone());
                    }
                }
                (resp, Some(class), endpoint, attempts)
            }
        };
        let attempts = attempts.unwrap_or(u32::from(endpoint.is_some()));
        let status = resp.status().as_u16();
        let took = timer.record(status, error);
        if let Some(span @ ServerSpan::Sampled(cx)) = &trace {
            Tracing::end(
                cx,
                Ending {
                    status,
                    error,
                    endpoint: endpoint.as_deref(),
                },
            );
            route.meter.offer_exemplar(Exemplar {
                trace_id: span.trace_id(),
                at_ms: unix_ms(),
                latency_us: took.as_micros() as u64,
                status,
                error,
            });
        }
        self.log(
            &route.config.name,
            asked,
            &Outcome {
                status,
                error,
                endpoint,
                attempts,
                took,
                trace,
            },
            &request_id,
        );
        if let Some(hangup) = hangup {
            return Err(HungUp(hangup));
        }
        // Answer in the client's HTTP version, whatever the upstream spoke.
        *resp.version_mut() = version;
        route.finish(&mut resp);
        resp.body_mut().meter_route(&route.meter, Direction::Out);
        if let Some(plan) = plan.filter(|p| !p.shape.is_none()) {
            let body = std::mem::replace(resp.body_mut(), Body::full(""));
            *resp.body_mut() = body.shaped(plan.shape, plan.slot);
        }
        set_request_id(&mut resp, request_id);
        Ok(resp)
    }

    /// The request on its way to the route's stack.
    async fn forward(
        &self,
        route: &RouteEntry,
        mut parts: http::request::Parts,
        body: Body,
        client: &Client,
        request_id: &HeaderValue,
        trace: Option<&ServerSpan>,
    ) -> Result<Response<Body>, ProxyError> {
        // Rate limiting before any upstream work (GCRA; shadow mode only counts).
        if let Some(limit) = &route.rate_limit {
            match limit.check(&parts, client, || verified_tenant(route.auth.as_ref(), &parts)) {
                Decision::Allow => {}
                Decision::Shadowed => route.meter.count_rate_limited(true),
                Decision::Limited { retry_after } => {
                    route.meter.count_rate_limited(false);
                    return Err(limit.rejection(retry_after));
                }
            }
        }
        route.prepare(&mut parts, client, request_id)?;
        if let Some(ServerSpan::Sampled(cx)) = trace {
            parts.extensions.insert(cx.clone()); // Forward hangs its client span under it
        }
        let mut body = route.limit_body(body);
        body.meter_route(&route.meter, Direction::In);
        let req = Request::from_parts(parts, body);
        match &route.stack {
            Stack::Direct(forward) => forward.call_within(route.config.timeout, req).await,
            Stack::Layered(service) => service.clone().oneshot(req).await,
        }
    }

    /// Draw the inbound faults for a request (from the table and, where the route allows, from
    /// its headers) and select the upstream faults for `Forward` to draw per attempt.
    fn inbound_faults(&self, parts: &mut http::request::Parts, route: &RouteEntry) -> Result<Option<Plan>, ProxyError> {
        let header_plan = if route.config.header_faults {
            let plan = faults::http::from_headers(&parts.headers, self.faults.limits())
                .map_err(|e| ProxyError::new(ErrorClass::BadRequest, e.to_string()))?;
            for name in faults::http::CONTROL_HEADERS {
                parts.headers.remove(name);
            }
            plan
        } else {
            None
        };
        let installed = self.faults.http();
        if installed.is_empty() {
            return Ok(Plan::admit(header_plan, &self.faults, None));
        }
        // The tenant auth verified (its header, set by the guard); on a route without auth,
        // the client's header stands in for it.
        let tenant = parts.headers.get(faults::http::TENANT_HEADER);
        let facts = RequestFacts {
            route: &route.config.name,
            method: &parts.method,
            path: parts.uri.path(),
            headers: &parts.headers,
            tenant,
        };
        let upstream = faults::http::select(&installed.upstream, &facts);
        let inbound = faults::http::draw(&faults::http::select(&installed.inbound, &facts), None);
        // One `max_active` slot per request, shared with its attempts' upstream faults.
        let plan = Plan::admit(faults::http::merge(inbound, header_plan), &self.faults, None);
        if !upstream.is_empty() {
            let slot = plan.as_ref().and_then(|p| p.slot.clone());
            parts.extensions.insert(UpstreamFaults {
                selected: upstream,
                slot,
            });
        }
        Ok(plan)
    }

    /// Wait out an inbound delay; then, if a fault answers for the upstream, that answer.
    async fn under_faults(
        &self,
        plan: Option<&mut Plan>,
        route: &RouteEntry,
    ) -> Option<Result<Response<Body>, ProxyError>> {
        let plan = plan?;
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        let hangup = |class: ErrorClass, hangup: Hangup| {
            let mut e = ProxyError::new(class, "ended without a response by an injected fault");
            e.hangup = Some(hangup);
            Err(e)
        };
        Some(match plan.answer.take()? {
            Answer::Abort {
                fault,
                status,
                body,
                headers,
            } => Ok(abort_response(&fault, status, body.as_deref(), &headers)),
            Answer::Reset => hangup(ErrorClass::Reset, Hangup::Reset),
            Answer::EmptyReply => hangup(ErrorClass::Reset, Hangup::Close),
            // Held as long as the route would wait for an upstream, then closed unanswered.
            Answer::Hang => {
                tokio::time::sleep(route.config.timeout).await;
                hangup(ErrorClass::Timeout, Hangup::Close)
            }
        })
    }

    /// Write the access log line, if there is a log and this request is sampled (failures always).
    fn log(&self, route: &str, asked: Option<(Method, Uri)>, outcome: &Outcome, request_id: &HeaderValue) {
        let (Some(log), Some((method, uri))) = (&self.access_log, asked) else {
            return;
        };
        if !log.wants(outcome.error.is_some() || outcome.status >= 500) {
            return;
        }
        log.log(&Entry {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            route,
            method: method.as_str(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()),
            status: outcome.status,
            duration_ms: outcome.took.as_secs_f64() * 1e3,
            upstream: outcome.endpoint.as_deref(),
            attempts: outcome.attempts,
            error: outcome.error,
            request_id: request_id.to_str().unwrap_or_default(),
            trace_id: outcome.trace.as_ref().map(ServerSpan::trace_id),
        });
    }
}

/// How a request ended, for the access log.
struct Outcome {
    status: u16,
    error: Option<ErrorClass>,
    endpoint: Option<Arc<str>>,
    /// Upstream tries (0 when none was made).
    attempts: u32,
    took: std::time::Duration,
    /// The server span, when tracing is on.
    trace: Option<ServerSpan>,
}

impl RouteEntry {
    /// Make the request fit to forward: hop-by-hop headers out, forwarding headers and the
    /// request id in, the route's header edits, Host policy and path rewrite applied.
    fn prepare(
        &self,
        parts: &mut http::request::Parts,
        client: &Client,
        request_id: &HeaderValue,
    ) -> Result<(), ProxyError> {
        let config = &self.config;
        if let Some(limit) = config.max_request_body
            && content_length(&parts.headers).is_some_and(|n| n > limit)
        {
            return Err(ProxyError::new(
                ErrorClass::BodyTooLarge,
                "content-length over max_request_body",
            ));
        }
        let headers = &mut parts.headers;
        // Scanned here, after auth (which may forward claims under any name) and fault selection.
        let present = headers::Present::scan(headers);
        let client_host = headers.get(header::HOST).cloned();
        let had_host = client_host.is_some();
        // Room for what is added below, made once (not the map doubling from the client's few
        // headers): the forwarding headers and request id, the route's own, and a Host when
        // the client sent none.
        headers.reserve(FORWARDING_HEADERS + config.request_headers_add.len() + usize::from(client_host.is_none()));
        let room = headers.capacity();
        let original_host = client_host.or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let present = if present.hop_by_hop {
            let upgrade = present.upgrade && headers::is_upgrade(headers);
            headers::strip_hop_by_hop(headers, upgrade);
            // `Connection` may have named any header, a forwarding one too.
            headers::Present::scan(headers)
        } else {
            present
        };
        // We answer `Expect: 100-continue` ourselves (hyper does, when the body is first read).
        if present.expect {
            headers.remove(header::EXPECT);
        }
        let forwarded_host = original_host.as_ref().filter(|_| self.rewrites_host);
        headers::set_forwarded(headers, client, forwarded_host, present);
        headers.insert(X_REQUEST_ID.clone(), request_id.clone());
        for name in &config.request_headers_remove {
            headers.remove(name);
        }
        for (name, value) in &config.request_headers_add {
            headers.insert(name.clone(), value.clone());
        }
        // HostPolicy::Endpoint is applied by Forward, once the endpoint is chosen. A preserved
        // Host is put back only if it is gone (it came in the URI, or `Connection` named it):
        // an insert over itself would cost a map growth, since inserting reserves room first.
        // Without the route's own Host edits, only `Connection` (stripped above) can have
        // removed the Host the client sent.
        let host_gone = if self.edits_host {
            !headers.contains_key(header::HOST)
        } else {
            !had_host
        };
        let host = match &self.host_rewrite {
            Some(rewrite) => Some(rewrite.clone()),
            None if config.host == HostPolicy::Preserve && host_gone => original_host,
            None => None,
        };
        if let Some(host) = host {
            headers::replace(headers, header::HOST, host);
        }
        debug_assert_eq!(
            headers.capacity(),
            room,
            "headers added beyond the room reserved for them"
        );
        if let Some(rewrite) = &config.prefix_rewrite {
            rewrite_prefix(&mut parts.uri, config, rewrite)?;
        }
        Ok(())
    }

    /// Cap the request body at the route's `max_request_body`, if it has one.
    fn limit_body(&self, body: Body) -> Body {
        match self.config.max_request_body {
            Some(limit) => body.limited(limit as usize),
            None => body,
        }
    }

    /// The response side: hop-by-hop headers out (except on a protocol switch), the route's
    /// header edits applied.
    fn finish(&self, resp: &mut Response<Body>) {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            headers::strip_hop_by_hop(resp.headers_mut(), false);
        }
        for name in &self.config.response_headers_remove {
            resp.headers_mut().remove(name);
        }
        for (name, value) in &self.config.response_headers_add {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
    }
}

/// Every minute, drop a keyed rate limit's idle keys, while the limit is in use.
async fn forget_idle_keys(limit: std::sync::Weak<RateLimit>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        match limit.upgrade() {
            Some(l) => l.forget_idle_keys(),
            None => return,
        }
    }
}

/// The error answering a request its route's auth refused, counted by reason.
fn refuse(route: &RouteEntry, denial: &Denial) -> ProxyError {
    route.meter.count_auth_failure(denial.reason);
    tracing::debug!(route = %route.config.name, reason = denial.reason.as_str(), detail = %denial.detail, "auth refused");
    ProxyError::new(denial.reason.class(), denial.detail.clone())
}

fn is_auth(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::Unauthorized | ErrorClass::Forbidden)
}

/// Tell the client the id its request went upstream with (in place: a response is large to move).
fn set_request_id(resp: &mut Response<Body>, id: HeaderValue) {
    resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    crate::http1::parse_length(headers.get(header::CONTENT_LENGTH)?.as_bytes())
}

/// Replace the matched path prefix, keeping the rest of the path and the query.
fn rewrite_prefix(uri: &mut Uri, route: &Route, rewrite: &str) -> Result<(), ProxyError> {
    let crate::config::PathMatch::Prefix(prefix) = &route.matcher.path else {
        return Ok(());
    };
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let rest = pq.strip_prefix(prefix.as_str()).unwrap_or(pq);
    let mut new = String::with_capacity(rewrite.len() + rest.len());
    new.push_str(rewrite);
    // Avoid `//` when both the rewrite ends and the rest starts with a slash.
    new.push_str(if rewrite.ends_with('/') {
        rest.strip_prefix('/').unwrap_or(rest)
    } else {
        rest
    });
    let pq = PathAndQuery::try_from(new).map_err(|e| ProxyError::new(ErrorClass::BadRequest, e.to_string()))?;
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(pq);
    *uri = Uri::from_parts(parts).map_err(|e| ProxyError::new(ErrorClass::BadRequest, e.to_string()))?;
    Ok(())
}
