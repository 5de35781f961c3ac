//! End-to-end: W3C trace context through the sidecar, spans exported over OTLP/HTTP.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn attr(span: &Span, key: &str) -> Option<String> {
    let v = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

fn spans(collector: &Collector) -> (Vec<Span>, Vec<String>) {
    let mut spans = Vec::new();
    let mut services = Vec::new();
    for (path, body) in collector.received() {
        assert_eq!(path, "/v1/traces");
        let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
        for rs in req.resource_spans {
            if let Some(res) = &rs.resource {
                for kv in &res.attributes {
                    if kv.key == "service.name"
                        && let Some(Value::StringValue(s)) = kv.value.as_ref().and_then(|v| v.value.clone())
                    {
                        services.push(s);
                    }
                }
            }
            spans.extend(rs.scope_spans.into_iter().flat_map(|ss| ss.spans));
        }
    }
    (spans, services)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_propagates_and_spans_are_exported_over_otlp() {
    let up = MockUpstream::start("u").await;
    let collector = Collector::start().await;
    let routes = format!(
        "[telemetry.tracing]\notlp_endpoint = \"http://{}/v1/traces\"\nsample = 0.0\n\n[[routes]]\nname = \"api\"\ncluster = \"u\"\n",
        collector.addr
    );
    // Export batches every 100 ms instead of every 5 s (the SDK reads OTEL_BSP_*).
    let sc = Proc::start(
        BIN,
        &config(&[("u", &[up.addr])], &routes),
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let http = client();

    let traced = http
        .get(sc.url("/echo?x=1"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .send()
        .await
        .unwrap();
    let seen = echo(traced).await;
    let upstream_tp = seen["headers"]["traceparent"][0].as_str().unwrap().to_owned();
    let parts: Vec<&str> = upstream_tp.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE_ID, "01"),
        "same trace, still sampled: {upstream_tp}"
    );
    assert_ne!(
        parts[2], CLIENT_SPAN,
        "the upstream's parent is the sidecar's client span"
    );
    assert_eq!(seen["headers"]["tracestate"][0], "vendor=abc");

    // Not sampled (no parent, ratio 0): context still propagates, nothing is exported.
    let untraced = echo(http.get(sc.url("/echo")).send().await.unwrap()).await;
    let tp = untraced["headers"]["traceparent"][0].as_str().unwrap();
    assert!(
        tp.starts_with("00-") && tp.ends_with("-00") && !tp.contains(TRACE_ID),
        "{tp}"
    );

    // Exemplars: traced requests worth a look, by trace id, on /stats.
    const FAILED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let failed = http
        .get(sc.url("/status/503"))
        .header("traceparent", format!("00-{FAILED_TRACE}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    let stats: ballast_model::StatsSnapshot = admin_json(&sc, "/stats").await;
    let exemplars = &stats.routes["api"].exemplars;
    assert!(
        [TRACE_ID, FAILED_TRACE].contains(&exemplars.slowest.as_ref().unwrap().trace_id.as_str()),
        "{exemplars:?}"
    );
    assert_eq!(exemplars.failed.len(), 1, "only the traced failure: {exemplars:?}");
    assert_eq!(exemplars.failed[0].trace_id, FAILED_TRACE);
    assert_eq!(exemplars.failed[0].status, 503);

    assert_eventually!(spans(&collector).0.len() >= 4, "four spans exported");
    let (spans, services) = spans(&collector);
    assert_eq!(spans.len(), 4, "only the sampled requests' spans: {spans:#?}");
    let spans: Vec<Span> = spans.into_iter().filter(|s| hex(&s.trace_id) == TRACE_ID).collect();
    assert!(services.iter().all(|s| s == "ballast-sidecar"), "{services:?}");
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("server span");
    let client_span = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .expect("client span");
    assert_eq!(hex(&server.trace_id), TRACE_ID);
    assert_eq!(hex(&client_span.trace_id), TRACE_ID);
    assert_eq!(
        hex(&server.parent_span_id),
        CLIENT_SPAN,
        "the server span's parent is the caller's span"
    );
    assert_eq!(
        client_span.parent_span_id, server.span_id,
        "client span under server span"
    );
    assert_eq!(
        hex(&client_span.span_id),
        parts[2],
        "the upstream saw the client span as its parent"
    );
    assert_eq!(server.name, "GET api");
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(server, "http.route").as_deref(), Some("api"));
    assert_eq!(attr(server, "url.path").as_deref(), Some("/echo"));
    assert_eq!(attr(server, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(client_span, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr(client_span, "server.port"), Some(up.addr.port().to_string()));
    assert_eq!(attr(client_span, "http.response.status_code").as_deref(), Some("200"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
