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

use ballast_model::ErrorClass;
use ballast_model::error_class::ERROR_HEADER;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::{Body, BoxError, Direction, UpstreamBody, is_length_limit};
use crate::config::{HostPolicy, Protocol};
use crate::telemetry::Telemetry;
use crate::telemetry::tracing::{Ending, Tracing};
use crate::upstream::{SendError, Upstream};
use opentelemetry::Context as TraceContext;

/// A request that could not be proxied, and why.
#[derive(Debug, thiserror::Error)]
#[error("{class}: {detail}")]
pub struct ProxyError {
    pub class: ErrorClass,
    pub detail: String,
    /// The endpoint the request was sent to, if it got that far.
    pub endpoint: Option<Arc<str>>,
}

impl ProxyError {
    pub fn new(class: ErrorClass, detail: impl Into<String>) -> Self {
        ProxyError {
            class,
            detail: detail.into(),
            endpoint: None,
        }
    }

    /// Recover a `ProxyError` from a layer's boxed error (tower's timeout boxes errors).
    pub fn from_boxed(err: BoxError) -> Self {
        if err.is::<tower::timeout::error::Elapsed>() {
            return ProxyError::new(ErrorClass::Timeout, "route timeout elapsed");
        }
        match err.downcast::<ProxyError>() {
            Ok(e) => *e,
            Err(other) => ProxyError::new(ErrorClass::Protocol, other.to_string()),
        }
    }

    /// The response a client gets: the class's status, a `ballast-error` header, a short body.
    pub fn into_response(self) -> Response<Body> {
        error_response(self.class)
    }
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

/// The endpoint that answered, put in the response's extensions for the access log.
#[derive(Clone, Debug)]
pub struct AnsweredBy(pub Arc<str>);

/// The innermost service of every route: one request to one endpoint of the cluster.
#[derive(Clone)]
pub struct Forward {
    upstream: Arc<Upstream>,
    host: Arc<HostPolicy>,
    /// Tag responses with [`AnsweredBy`] (only when someone reads it: it costs an allocation).
    tag_endpoint: bool,
    tracing: Option<Arc<Tracing>>,
}

impl Forward {
    pub fn new(upstream: Arc<Upstream>, host: HostPolicy, telemetry: &Telemetry) -> Self {
        Forward {
            upstream,
            host: Arc::new(host),
            tag_endpoint: telemetry.access_log.is_some(),
            tracing: telemetry.tracing.clone(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Result<Response<Body>, ProxyError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { forward(&this, req).await })
    }
}

async fn forward(this: &Forward, mut req: Request<Body>) -> Result<Response<Body>, ProxyError> {
    let (upstream, host) = (&this.upstream, &*this.host);
    let Some((i, in_flight)) = upstream.pick() else {
        return Err(ProxyError::new(
            ErrorClass::NoHealthyEndpoint,
            format!("cluster {} has no endpoint to take the request", upstream.name),
        ));
    };
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
        req.headers_mut().insert(header::HOST, v);
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
    let t0 = tokio::time::Instant::now();
    let timers = (cluster_meter.start_at(t0), endpoint_meter.start_at(t0));

    let (mut resp, checkin) = match upstream.send(i, req).await {
        Ok(sent) => sent,
        Err(e) => {
            let class = classify(&e);
            let took = t0.elapsed();
            timers.0.record_took(class.status(), Some(class), took);
            timers.1.record_took(class.status(), Some(class), took);
            if let Some(cx) = &attempt {
                let ending = Ending {
                    status: class.status(),
                    error: Some(class),
                    endpoint: Some(&endpoint.address),
                };
                Tracing::end(cx, ending);
            }
            let mut err = ProxyError::new(class, error_chain(&e));
            err.endpoint = Some(endpoint.address.clone());
            return Err(err);
        }
    };
    let status = resp.status().as_u16();
    let took = t0.elapsed();
    timers.0.record_took(status, None, took);
    timers.1.record_took(status, None, took);
    if let Some(cx) = &attempt {
        Tracing::end(
            cx,
            Ending {
                status,
                error: None,
                endpoint: Some(&endpoint.address),
            },
        );
    }
    if this.tag_endpoint {
        resp.extensions_mut().insert(AnsweredBy(endpoint.address.clone()));
    }

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(downstream) = downstream_upgrade
    {
        let upstream_io = hyper::upgrade::on(&mut resp);
        tokio::spawn(bridge(downstream, upstream_io));
    }
    Ok(resp.map(|b| {
        let mut body = Body::upstream(UpstreamBody::new(b, in_flight, checkin));
        body.meter_upstream(cluster_meter, endpoint_meter, Direction::Out);
        body
    }))
}

/// Copy bytes both ways between an upgraded client connection and an upgraded upstream one.
async fn bridge(downstream: OnUpgrade, upstream: OnUpgrade) {
    let (Ok(down), Ok(up)) = (downstream.await, upstream.await) else {
        tracing::debug!("protocol upgrade did not complete");
        return;
    };
    let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
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
