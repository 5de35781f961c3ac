//! OpenTelemetry traces: W3C trace context in and out, a server span per request and a
//! client span per upstream attempt, parent-based ratio sampling, OTLP/HTTP export batched on
//! the SDK's own thread (never on a worker).
//!
//! The trace context always propagates when tracing is on: the upstream gets the client's
//! trace id with the sidecar's client span as its parent, sampled or not (an unsampled span
//! costs ids, not export).

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use ballast_model::ErrorClass;

use crate::config::Tracing as TracingConfig;

pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// Share of requests without a sampled parent that are sampled.
    ratio: f64,
}

/// A request's server span: recorded and exported, or (unsampled) only ids to propagate.
pub enum ServerSpan {
    Sampled(Context),
    Unsampled(SpanContext),
}

impl ServerSpan {
    /// The trace id, as 32 hex digits.
    pub fn trace_id(&self) -> String {
        let id = match self {
            ServerSpan::Sampled(cx) => cx.span().span_context().trace_id(),
            ServerSpan::Unsampled(sc) => sc.trace_id(),
        };
        let mut out = [0u8; 32];
        crate::ids::hex_into(&id.to_bytes(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The trace id ratio sampler's decision, as the SDK makes it (`TraceIdRatioBased`): the low
/// 63 bits of the trace id against the ratio.
fn ratio_sampled(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    let low = u64::from_be_bytes(trace_id.to_bytes()[8..16].try_into().expect("8 bytes"));
    (low >> 1) < bound
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
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
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
            ratio: cfg.sample,
        })
    }

    /// Start the server span of a request, as a child of the trace context it came with.
    ///
    /// The sampling decision comes first, made here without the SDK (parent-based, then the
    /// trace id ratio, computed as the SDK's `TraceIdRatioBased` does; the SDK itself is set to
    /// follow parents and sample every root it is asked for): most requests are not sampled,
    /// and for them the sidecar only draws ids and writes the `traceparent` the upstream gets. A sampled
    /// request gets an SDK span with its name and attributes; its context then travels to
    /// `Forward` through the request's extensions, and each attempt's client span writes the
    /// `traceparent` (see [`Tracing::client_span`]).
    ///
    /// `carries_parent`: whether the request has a `traceparent` (`headers::Present`).
    pub fn server_span(
        &self,
        parts: &mut http::request::Parts,
        route: &str,
        client: std::net::IpAddr,
        carries_parent: bool,
    ) -> ServerSpan {
        let parent = carries_parent.then(|| w3c::extract(&parts.headers)).flatten();
        let trace_id = parent
            .as_ref()
            .map_or_else(|| TraceId::from_bytes(crate::rng::bytes()), |p| p.trace_id());
        let sampled = match &parent {
            Some(p) => p.is_sampled(),
            None => ratio_sampled(self.ratio, trace_id),
        };
        if !sampled {
            let state = parent.map(|p| p.trace_state().clone()).unwrap_or_default();
            let sc = SpanContext::new(
                trace_id,
                SpanId::from_bytes(crate::rng::bytes()),
                TraceFlags::default(),
                false,
                state,
            );
            w3c::inject(&sc, &mut parts.headers);
            return ServerSpan::Unsampled(sc);
        }
        let parent_cx = parent.map_or_else(Context::new, |p| Context::new().with_remote_span_context(p));
        let method = parts.method.as_str();
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("url.path", parts.uri.path().to_owned()),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("client.address", client.to_string()),
            KeyValue::new("network.protocol.version", version(parts.version)),
        ];
        if let Some(host) = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        let builder = self
            .tracer
            .span_builder(format!("{method} {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        ServerSpan::Sampled(parent_cx.with_span(self.tracer.build_with_context(builder, &parent_cx)))
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
        w3c::inject(cx.span().span_context(), req.headers_mut());
        cx
    }

    /// End a span with the response's status (an error status for failures and 5xx).
    pub fn end(cx: &Context, ending: Ending<'_>) {
        let span = cx.span();
        if !span.is_recording() {
            return; // nothing to record, nothing to export
        }
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

/// W3C Trace Context (`traceparent`, `tracestate`), read and written by hand: the generic
/// propagator formats ids through `fmt` and costs several thousand instructions a request,
/// paid by every request, sampled or not.
pub use w3c::TRACEPARENT;

mod w3c {
    use std::str::FromStr;

    use http::HeaderMap;
    use http::header::{HeaderName, HeaderValue};
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

    /// The remote parent a request carries, if any.
    pub fn extract(headers: &HeaderMap) -> Option<SpanContext> {
        let (trace_id, span_id, flags) = headers.get(&TRACEPARENT).and_then(|v| parse(v.as_bytes()))?;
        let state = headers
            .get(&TRACESTATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| TraceState::from_str(s).ok())
            .unwrap_or_default();
        Some(SpanContext::new(trace_id, span_id, flags, true, state))
    }

    /// `version-traceid-parentid-flags`; version `ff` and all-zero ids are invalid.
    fn parse(b: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
        if b.len() < 55
            || b[2] != b'-'
            || b[35] != b'-'
            || b[52] != b'-'
            || &b[..2] == b"ff"
            || (b.len() > 55 && b[55] != b'-')
        {
            return None;
        }
        if &b[..2] == b"00" && b.len() != 55 {
            return None;
        }
        let text = std::str::from_utf8(b).ok()?;
        let is_hex = |s: &str| s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        let (t, s, f) = (&text[3..35], &text[36..52], &text[53..55]);
        if !(is_hex(&text[..2]) && is_hex(t) && is_hex(s) && is_hex(f)) {
            return None;
        }
        let trace_id = TraceId::from_hex(t).ok().filter(|id| *id != TraceId::INVALID)?;
        let span_id = SpanId::from_hex(s).ok().filter(|id| *id != SpanId::INVALID)?;
        let flags = u8::from_str_radix(f, 16).ok()?;
        Some((trace_id, span_id, TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8())))
    }

    /// Write a span as the request's parent: `traceparent`, and `tracestate` if it has one.
    pub fn inject(sc: &SpanContext, headers: &mut HeaderMap) {
        if !sc.is_valid() {
            return;
        }
        let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
        crate::ids::hex_into(&sc.trace_id().to_bytes(), &mut buf[3..35]);
        crate::ids::hex_into(&sc.span_id().to_bytes(), &mut buf[36..52]);
        crate::ids::hex_into(&[sc.trace_flags().to_u8()], &mut buf[53..55]);
        // SAFETY: hex digits and dashes.
        headers.insert(TRACEPARENT.clone(), unsafe { crate::ids::header_value(&buf) });
        if *sc.trace_state() == TraceState::NONE {
            return;
        }
        let state = sc.trace_state().header();
        if let Ok(v) = HeaderValue::from_str(&state)
            .map_err(drop)
            .and_then(|v| if v.is_empty() { Err(()) } else { Ok(v) })
        {
            headers.insert(TRACESTATE.clone(), v);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn traceparent_round_trips() {
            let mut h = HeaderMap::new();
            h.insert(
                &TRACEPARENT,
                HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            );
            h.insert(&TRACESTATE, HeaderValue::from_static("vendor=abc"));
            let sc = extract(&h).unwrap();
            let mut out = HeaderMap::new();
            inject(&sc, &mut out);
            assert_eq!(out[&TRACEPARENT], h[&TRACEPARENT]);
            assert_eq!(out[&TRACESTATE], "vendor=abc");
        }

        #[test]
        fn invalid_traceparents_are_ignored() {
            for bad in [
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                "garbage",
            ] {
                assert!(parse(bad.as_bytes()).is_none(), "{bad}");
            }
            assert!(
                parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future").is_some(),
                "later versions may extend"
            );
        }
    }
}

#[cfg(test)]
mod sampling_tests {
    use super::*;

    #[test]
    fn the_ratio_decision_matches_the_sdk_sampler() {
        use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
        for ratio in [0.0, 0.01, 0.5, 1.0] {
            let sdk = Sampler::TraceIdRatioBased(ratio);
            for _ in 0..2000 {
                let id = TraceId::from_bytes(rand::random());
                let theirs = sdk.should_sample(None, id, "x", &SpanKind::Server, &[], &[]).decision;
                assert_eq!(
                    ratio_sampled(ratio, id),
                    theirs == SamplingDecision::RecordAndSample,
                    "ratio {ratio}"
                );
            }
        }
    }
}
