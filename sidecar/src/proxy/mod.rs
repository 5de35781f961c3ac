//! Forwarding one request to one endpoint, and turning every failure into a classified response.
//!
//! - [`headers`]: hop-by-hop stripping, `X-Forwarded-*`, request ids.
//! - [`Forward`]: the innermost service of a route's stack: picks an endpoint, rewrites the URI
//!   and Host, sends the request on a pooled connection, bridges protocol upgrades.
//! - [`ProxyError`]: a failure with its [`ErrorClass`]; [`ProxyError::into_response`] is how the
//!   outermost service stays infallible.

pub mod headers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ballast_model::ErrorClass;
use ballast_model::error_class::ERROR_HEADER;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::{Body, BoxError, Direction, UpstreamBody, is_length_limit};
use crate::config::{HostPolicy, Protocol};
use crate::faults::FaultTable;
use crate::faults::http::{Answer, FAULT_HEADER, Plan, UpstreamFaults, draw};
use crate::policy::retry::Tried;
use crate::policy::timeout::Deadline;
use crate::telemetry::Telemetry;
use crate::telemetry::tracing::{Ending, Tracing};
use crate::upstream::{Received, SendError, Upstream};
use opentelemetry::Context as TraceContext;

/// A request that could not be proxied, and why.
#[derive(Debug, thiserror::Error)]
#[error("{class}: {detail}")]
pub struct ProxyError {
    pub class: ErrorClass,
    pub detail: String,
    /// The endpoint the request was sent to, if it got that far.
    pub endpoint: Option<Arc<str>>,
    /// Set when the client gets no response at all (an injected reset, hang or empty reply).
    pub hangup: Option<Hangup>,
    /// An HTTP/2 upstream refused the stream (REFUSED_STREAM): it never processed the request.
    pub refused_stream: bool,
    /// Upstream tries made, when the retry layer counted them.
    pub attempts: Option<u32>,
    /// Headers for the client's answer (a 429's `Retry-After` and `RateLimit` headers).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// How a client connection ends when it gets no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hangup {
    /// A TCP reset (an HTTP/2 stream reset).
    Reset,
    /// A plain close (an HTTP/2 stream reset).
    Close,
}

/// The error the HTTP server gets for a request answered by hanging up.
#[derive(Debug, thiserror::Error)]
#[error("request ended without a response by an injected fault")]
pub struct HungUp(pub Hangup);

impl ProxyError {
    pub fn new(class: ErrorClass, detail: impl Into<String>) -> Self {
        ProxyError {
            class,
            detail: detail.into(),
            endpoint: None,
            hangup: None,
            refused_stream: false,
            attempts: None,
            headers: Vec::new(),
        }
    }

    /// Recover a `ProxyError` from a layer's boxed error.
    pub fn from_boxed(err: BoxError) -> Self {
        match err.downcast::<ProxyError>() {
            Ok(e) => *e,
            Err(other) => ProxyError::new(ErrorClass::Protocol, other.to_string()),
        }
    }

    /// The response a client gets: the class's status, a `ballast-error` header, a short body.
    pub fn into_response(self) -> Response<Body> {
        let mut resp = error_response(self.class);
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// The response of an `abort` fault: its status, body and headers, and which fault it was.
pub fn abort_response(fault: &str, status: u16, body: Option<&str>, headers: &[(String, String)]) -> Response<Body> {
    let body = body.map_or_else(|| format!("fault {fault} aborted the request\n"), str::to_owned);
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = StatusCode::from_u16(status).expect("validated status");
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (header::HeaderName::try_from(name), HeaderValue::try_from(value)) {
            h.insert(n, v);
        }
    }
    if let Ok(id) = HeaderValue::try_from(fault) {
        h.insert(FAULT_HEADER, id);
    }
    resp
}

pub fn error_response(class: ErrorClass) -> Response<Body> {
    let mut resp = Response::new(Body::full(format!("{}\n", class.describe())));
    *resp.status_mut() = StatusCode::from_u16(class.status()).expect("valid status");
    let h = resp.headers_mut();
    h.insert(ERROR_HEADER, HeaderValue::from_static(class.as_str()));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The innermost service of every route: one request to one endpoint of the cluster.
#[derive(Clone)]
pub struct Forward(Arc<Target>);

/// What a route forwards to, behind one reference count (each request's try owns a clone).
struct Target {
    upstream: Arc<Upstream>,
    host: HostPolicy,
    /// Tag responses with the endpoint that answered (only when the access log reads it).
    tag_endpoint: bool,
    tracing: Option<Arc<Tracing>>,
    faults: Arc<FaultTable>,
}

impl Forward {
    /// One try under the route's timeout, without tower (the gateway's direct path); the
    /// try's future is not boxed.
    pub fn call_within(
        &self,
        limit: Duration,
        req: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, ProxyError>> + Send + '_ {
        // A combinator, not an `async` block, which would hold the deadline twice (captured
        // and awaited). The try borrows the route's target (the gateway outlives the request)
        // instead of counting a reference that every worker would write.
        futures_util::TryFutureExt::map_err(Deadline::new(forward(&self.0, req), limit), ProxyError::from_boxed)
    }

    pub fn new(upstream: Arc<Upstream>, host: HostPolicy, telemetry: &Telemetry, faults: Arc<FaultTable>) -> Self {
        Forward(Arc::new(Target {
            upstream,
            host,
            tag_endpoint: telemetry.access_log.is_some(),
            tracing: telemetry.tracing.clone(),
            faults,
        }))
    }
}

/// The future of the route stack's services.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Result<Response<Body>, ProxyError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.0.clone();
        Box::pin(async move { forward(&this, req).await })
    }
}

/// One try. Not an `async fn`, which would keep the request twice (argument and local) in the
/// future every request allocates, moves and polls.
#[expect(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice")]
fn forward(
    this: &Target,
    mut req: Request<Body>,
) -> impl Future<Output = Result<Response<Body>, ProxyError>> + Send + '_ {
    async move {
        let (upstream, host) = (&this.upstream, &this.host);
        // A retry prefers an endpoint it has not tried.
        let tried = req.extensions_mut().remove::<Tried>().unwrap_or_default();
        let (i, mut in_flight) = upstream.pick(&tried.0).map_err(|class| {
            // Rejected by the cluster itself (no endpoint tried): counted at the cluster only.
            upstream.meter.start().record(class.status(), Some(class));
            let why = match class {
                ErrorClass::Overflow => "is at its max_requests",
                ErrorClass::CircuitOpen => "has every endpoint ejected",
                _ => "has no endpoint to take the request",
            };
            ProxyError::new(class, format!("cluster {} {why}", upstream.name))
        })?;
        let endpoint = &upstream.endpoints[i];
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(endpoint.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| ProxyError::new(ErrorClass::BadRequest, e.to_string()))?;
        *req.version_mut() = match upstream.config.protocol {
            Protocol::Http1 => Version::HTTP_11,
            Protocol::Http2 => Version::HTTP_2,
        };
        if *host == HostPolicy::Endpoint {
            let v = HeaderValue::from_str(endpoint.authority.as_str()).expect("authority is a valid header value");
            headers::replace(req.headers_mut(), header::HOST, v);
        }
        let downstream_upgrade = req.extensions_mut().remove::<OnUpgrade>();
        // The route's server span, if traced: this attempt gets a client span under it.
        let attempt = match (&this.tracing, req.extensions_mut().remove::<TraceContext>()) {
            (Some(t), Some(parent)) => Some(t.client_span(&parent, &mut req, &endpoint.address)),
            _ => None,
        };
        let (cluster_meter, endpoint_meter) = (&upstream.meter, &endpoint.meter);
        req.body_mut()
            .meter_upstream(cluster_meter, endpoint_meter, Direction::In);
        // Upstream faults selected for this request, drawn for this attempt on this endpoint.
        let mut plan: Option<Plan> = req.extensions_mut().remove::<UpstreamFaults>().and_then(|faults| {
            let plan = draw(&faults.selected, Some(&endpoint.address));
            Plan::admit(plan, &this.faults, faults.slot.as_ref())
        });
        let t0 = tokio::time::Instant::now();
        let timers = (cluster_meter.start_at(t0), endpoint_meter.start_at(t0));
        // What the attempt came to, for the meters, the client span and outlier detection.
        let ended = |status: u16, error: Option<ErrorClass>| {
            upstream.report(&mut in_flight, status, error);
            let took = t0.elapsed();
            timers.0.record_took(status, error, took);
            timers.1.record_took(status, error, took);
            if let Some(cx) = &attempt {
                let endpoint = Some(&*endpoint.address);
                Tracing::end(
                    cx,
                    Ending {
                        status,
                        error,
                        endpoint,
                    },
                );
            }
        };
        let failed = |class: ErrorClass, detail: String| {
            let mut err = ProxyError::new(class, detail);
            err.endpoint = Some(endpoint.address.clone());
            err
        };

        // The endpoint under a fault: slow, answering for itself, or gone.
        if let Some(plan) = &mut plan {
            if !plan.delay.is_zero() {
                tokio::time::sleep(plan.delay).await;
            }
            match plan.answer.take() {
                None => {}
                Some(Answer::Abort {
                    fault,
                    status,
                    body,
                    headers,
                }) => {
                    ended(status, None);
                    let mut resp = abort_response(&fault, status, body.as_deref(), &headers);
                    if this.tag_endpoint {
                        resp.body_mut().set_answered_by(endpoint.address.clone());
                    }
                    return Ok(resp);
                }
                Some(Answer::Reset | Answer::EmptyReply) => {
                    ended(ErrorClass::Reset.status(), Some(ErrorClass::Reset));
                    return Err(failed(
                        ErrorClass::Reset,
                        "connection ended by an injected fault".into(),
                    ));
                }
                // Until the route timeout ends the attempt.
                Some(Answer::Hang) => std::future::pending::<()>().await,
            }
        }

        let mut resp = match upstream.clone().send(i, req).await {
            Ok(resp) => resp,
            Err(e) => {
                let class = classify(&e);
                ended(class.status(), Some(class));
                let mut err = failed(class, error_chain(&e));
                err.refused_stream = is_refused_stream(&e);
                return Err(err);
            }
        };
        ended(resp.status().as_u16(), None);

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(downstream) = downstream_upgrade
            && let Received::Http1(body) = resp.body_mut()
            && let Some(upstream_io) = body.take_upgraded()
        {
            tokio::spawn(bridge(downstream, upstream_io));
        }
        Ok(resp.map(|b| {
            let mut body = Body::upstream(UpstreamBody::new(b, in_flight));
            body.meter_upstream(cluster_meter, endpoint_meter, Direction::Out);
            if this.tag_endpoint {
                body.set_answered_by(endpoint.address.clone());
            }
            match plan {
                Some(plan) if !plan.shape.is_none() => body.shaped(plan.shape, plan.slot),
                _ => body,
            }
        }))
    }
}

/// Copy bytes both ways between an upgraded client connection and an upgraded upstream one
/// (with what the upstream sent right after its 101, which goes to the client first).
async fn bridge(downstream: OnUpgrade, (mut up, early): (tokio::net::TcpStream, bytes::Bytes)) {
    let Ok(down) = downstream.await else {
        tracing::debug!("protocol upgrade did not complete");
        return;
    };
    let mut down = TokioIo::new(down);
    if !early.is_empty()
        && let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut down, &early).await
    {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
        return;
    }
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
    }
}

/// Map a send failure to its class; exchange errors by walking the error chain.
fn classify(err: &SendError) -> ErrorClass {
    use std::io::ErrorKind::*;
    let hyper_err = match err {
        SendError::ConnectTimeout { .. } => return ErrorClass::ConnectTimeout,
        SendError::Connect { source, .. } if source.kind() == ConnectionRefused => return ErrorClass::ConnectRefused,
        SendError::Connect { .. } => return ErrorClass::ConnectFailure,
        SendError::Overflow { .. } => return ErrorClass::Overflow,
        SendError::Http1 { source, .. } => return source.class(),
        SendError::Handshake { source, .. } | SendError::Exchange { source, .. } => source,
    };
    if is_length_limit(err) {
        return ErrorClass::BodyTooLarge;
    }
    if hyper_err.is_parse() || hyper_err.is_parse_status() || hyper_err.is_parse_too_large() {
        return ErrorClass::Protocol;
    }
    if hyper_err.is_user() && !hyper_err.is_body_write_aborted() {
        return ErrorClass::BadRequest;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                TimedOut => ErrorClass::Timeout,
                InvalidData => ErrorClass::Protocol,
                _ => ErrorClass::Reset,
            };
        }
        cur = e.source();
    }
    ErrorClass::Reset
}

/// Whether an HTTP/2 upstream refused the stream (safe to retry: it never saw the request).
fn is_refused_stream(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        cur = e.source();
    }
    false
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}
