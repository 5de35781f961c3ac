//! OpenTelemetry traces: W3C trace context in and out, a server span per request and a
//! client span per upstream attempt, parent-based ratio sampling, OTLP/HTTP export batched on
//! the SDK's own thread (never on a worker).
//!
//! The trace context always propagates when tracing is on: the upstream gets the client's
//! trace id with the sidecar's client span as its parent, sampled or not (an unsampled span
//! costs ids, not export).

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use ballast_model::ErrorClass;

use crate::config::Tracing as TracingConfig;

pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

/// What a finished span reports.
pub struct Ending<'a> {
    pub status: u16,
    pub error: Option<ErrorClass>,
    pub endpoint: Option<&'a str>,
}

impl Tracing {
    /// Build the exporter and the tracer. Export failures later are logged, never fatal.
    pub fn start(cfg: &TracingConfig) -> Result<Self, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&cfg.otlp_endpoint)
            .build()
            .map_err(|e| format!("OTLP exporter for {:?}: {e}", cfg.otlp_endpoint))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample))))
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("ballast-sidecar");
        Ok(Tracing {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        })
    }

    /// Start the server span of a request, as a child of the trace context it came with.
    pub fn server_span(&self, parts: &http::request::Parts, route: &str, client: std::net::IpAddr) -> Context {
        let parent = self.propagator.extract(&HeaderExtractor(&parts.headers));
        let method = parts.method.as_str().to_owned();
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.clone()),
            KeyValue::new("url.path", parts.uri.path().to_owned()),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("client.address", client.to_string()),
            KeyValue::new("network.protocol.version", version(parts.version)),
        ];
        if let Some(host) = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        let span = self
            .tracer
            .span_builder(format!("{method} {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// Start a client span for one upstream attempt and put its context in the request's
    /// `traceparent`/`tracestate`.
    pub fn client_span(&self, parent: &Context, req: &mut http::Request<crate::body::Body>, endpoint: &str) -> Context {
        let method = req.method().as_str().to_owned();
        let (host, port) = endpoint.rsplit_once(':').unwrap_or((endpoint, ""));
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.clone()),
            KeyValue::new("server.address", host.to_owned()),
            KeyValue::new("url.full", req.uri().to_string()),
        ];
        if let Ok(port) = port.parse::<i64>() {
            attributes.push(KeyValue::new("server.port", port));
        }
        let span = self
            .tracer
            .span_builder(method)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, parent);
        let cx = parent.with_span(span);
        self.propagator
            .inject_context(&cx, &mut HeaderInjector(req.headers_mut()));
        cx
    }

    /// End a span with the response's status (an error status for failures and 5xx).
    pub fn end(cx: &Context, ending: Ending<'_>) {
        let span = cx.span();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(ending.status)));
        if let Some(endpoint) = ending.endpoint {
            span.set_attribute(KeyValue::new("ballast.upstream", endpoint.to_owned()));
        }
        match ending.error {
            Some(class) => {
                span.set_attribute(KeyValue::new("error.type", class.as_str()));
                span.set_status(Status::error(class.describe()));
            }
            None if ending.status >= 500 => {
                span.set_attribute(KeyValue::new("error.type", ending.status.to_string()));
                span.set_status(Status::error(""));
            }
            None => {}
        }
        span.end();
    }

    /// The trace id of a context, as 32 hex digits.
    pub fn trace_id(cx: &Context) -> String {
        cx.span().span_context().trace_id().to_string()
    }

    /// Export what is buffered and stop (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing traces at shutdown failed");
        }
    }
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    }
}
