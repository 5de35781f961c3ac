//! Trace SLIs: spans matched against an SLO's selector, good when not in error and within the
//! threshold.
//!
//! Spans come from OTLP JSON lines, the format of the OpenTelemetry collector's file exporter:
//! one `ExportTraceServiceRequest` per line (`resourceSpans` → `scopeSpans` → `spans`), ids
//! in hex and times in nanoseconds as OTLP's JSON encoding writes them. A span belongs to
//! the service its resource names (`service.name`); a span's own `service.name` attribute
//! overrides it. Attribute values compare as text (`200` matches an integer 200).
//!
//! Parsing takes text, not files: the caller reads (the engine does no I/O).

use std::collections::BTreeMap;
use std::time::Duration;

use ballast_model::slo::{Sli, TraceSli};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use crate::series::Counts;
use crate::slo::Slo;

/// One finished span, as much of it as SLIs read.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: String,
    pub service: Option<String>,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// When it ended (Unix ms).
    pub end_ms: u64,
    pub duration: Duration,
    /// Its status code is ERROR.
    pub error: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("not an OTLP JSON trace export: {0}")]
pub struct ParseError(String);

/// The spans of one line of an OTLP JSON file (an empty line has none).
pub fn parse_line(line: &str) -> Result<Vec<Span>, ParseError> {
    if line.trim().is_empty() {
        return Ok(Vec::new());
    }
    let request: ExportTraceServiceRequest = serde_json::from_str(line).map_err(|e| ParseError(e.to_string()))?;
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        let resource_attrs = resource.resource.map(|r| r.attributes).unwrap_or_default();
        let service = attributes(&resource_attrs).remove("service.name");
        for scope in resource.scope_spans {
            for s in scope.spans {
                let attributes = attributes(&s.attributes);
                let end_ns = s.end_time_unix_nano.max(s.start_time_unix_nano);
                spans.push(Span {
                    trace_id: hex(&s.trace_id),
                    service: attributes.get("service.name").cloned().or_else(|| service.clone()),
                    name: s.name,
                    end_ms: end_ns / 1_000_000,
                    duration: Duration::from_nanos(end_ns - s.start_time_unix_nano),
                    error: s.status.is_some_and(|st| st.code == StatusCode::Error as i32),
                    attributes,
                });
            }
        }
    }
    Ok(spans)
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
        .collect()
}

/// A scalar attribute as text; arrays and maps are not selectable.
fn text(v: &AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the SLI's selector picks this span: every field it names must match.
pub fn selects(sli: &TraceSli, span: &Span) -> bool {
    sli.service.as_ref().is_none_or(|s| span.service.as_ref() == Some(s))
        && sli.span_name.as_ref().is_none_or(|n| *n == span.name)
        && sli.attributes.iter().all(|(k, v)| span.attributes.get(k) == Some(v))
}

/// A selected span is good when it did not fail and ended within the threshold.
pub fn is_good(sli: &TraceSli, span: &Span) -> bool {
    !span.error && span.duration <= sli.threshold.get()
}

/// What a batch of spans did to a trace SLO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    pub counts: Counts,
    /// When the newest selected span ended (Unix ms).
    pub last_ms: Option<u64>,
    /// Trace ids of the newest bad spans, newest last.
    pub bad_trace_ids: Vec<String>,
}

/// Feed the SLO the spans its trace SLI selects, in the order they ended, one record per
/// millisecond that has spans; keep up to `keep` bad trace ids. Nothing is recorded for an SLO
/// whose SLI is not trace-based.
pub fn record(slo: &mut Slo, spans: &[Span], keep: usize) -> Recorded {
    let mut out = Recorded::default();
    let Sli::Trace(sli) = &slo.spec.sli else { return out };
    let sli = sli.clone();
    let mut selected: Vec<&Span> = spans.iter().filter(|s| selects(&sli, s)).collect();
    selected.sort_by_key(|s| s.end_ms);
    let mut bad_ids = std::collections::VecDeque::with_capacity(keep);
    let mut pending: Option<(u64, Counts)> = None;
    for span in selected {
        let good = is_good(&sli, span);
        if !good && keep > 0 {
            if bad_ids.len() == keep {
                bad_ids.pop_front();
            }
            bad_ids.push_back(span.trace_id.clone());
        }
        match &mut pending {
            Some((at, c)) if *at == span.end_ms => {
                c.good += u64::from(good);
                c.total += 1;
            }
            _ => {
                if let Some((at, c)) = pending.take() {
                    slo.record(at, c.good, c.total);
                }
                pending = Some((
                    span.end_ms,
                    Counts {
                        good: u64::from(good),
                        total: 1,
                    },
                ));
            }
        }
        out.counts.good += u64::from(good);
        out.counts.total += 1;
        out.last_ms = Some(span.end_ms);
    }
    if let Some((at, c)) = pending {
        slo.record(at, c.good, c.total);
    }
    out.bad_trace_ids = bad_ids.into();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_model::slo::SloSpec;

    /// A collector file-exporter line: two spans of `shop` (one failed, one slow) and one of
    /// `auth`, with the attribute value types OTLP writes.
    const LINE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scopeSpans":[{"scope":{"name":"ballast"},"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET checkout","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000120000000","attributes":[{"key":"http.response.status_code","value":{"intValue":"503"}},{"key":"http.route","value":{"stringValue":"checkout"}}],"status":{"code":2}},
        {"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175","name":"GET checkout","kind":2,"startTimeUnixNano":"1700000001000000000","endTimeUnixNano":"1700000001400000000","attributes":[{"key":"http.response.status_code","value":{"intValue":200}},{"key":"http.route","value":{"stringValue":"checkout"}}],"status":{}}
    ]}]},{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"auth"}}]},"scopeSpans":[{"spans":[
        {"traceId":"00000000000000000000000000000001","spanId":"0000000000000001","name":"GET checkout","startTimeUnixNano":"1700000002000000000","endTimeUnixNano":"1700000002001000000"}
    ]}]}]}"#;

    fn sli(text: &str) -> SloSpec {
        toml::from_str(&format!(
            "name = \"t\"\nobjective = 0.9\nwindow = \"1h\"\nalerting = \"none\"\nsli = {{ trace = {text} }}"
        ))
        .unwrap()
    }

    #[test]
    fn collector_lines_parse_into_spans() {
        let spans = parse_line(&LINE.replace('\n', "")).unwrap();
        assert_eq!(spans.len(), 3);
        let s = &spans[0];
        assert_eq!(s.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(s.service.as_deref(), Some("shop"));
        assert_eq!((s.end_ms, s.duration), (1_700_000_000_120, Duration::from_millis(120)));
        assert!(s.error);
        assert_eq!(s.attributes["http.response.status_code"], "503");
        assert_eq!(
            spans[1].attributes["http.response.status_code"], "200",
            "integers as numbers too"
        );
        assert!(!spans[1].error);
        assert_eq!(spans[2].service.as_deref(), Some("auth"));
        assert!(parse_line("").unwrap().is_empty());
        assert!(parse_line("{\"resourceSpans\": 3}").is_err());
    }

    #[test]
    fn a_trace_slo_counts_the_selected_spans_and_keeps_the_bad_ids() {
        let spans = parse_line(&LINE.replace('\n', "")).unwrap();
        let mut slo = Slo::new(sli(
            "{ service = \"shop\", attributes = { \"http.route\" = \"checkout\" }, threshold = \"300ms\" }",
        ))
        .unwrap();
        let r = record(&mut slo, &spans, 5);
        // The failed span and the 400 ms one are bad; auth's span is not selected.
        assert_eq!(r.counts, Counts { good: 0, total: 2 });
        assert_eq!(
            r.bad_trace_ids,
            ["5b8efff798038103d269b633813fc60c", "5b8efff798038103d269b633813fc60d"]
        );
        let (status, _) = slo.evaluate(r.last_ms.unwrap());
        assert_eq!((status.good, status.total), (0, 2));

        let mut by_name = Slo::new(sli("{ span_name = \"GET checkout\", threshold = \"500ms\" }")).unwrap();
        let r = record(&mut by_name, &spans, 1);
        assert_eq!(r.counts, Counts { good: 2, total: 3 });
        assert_eq!(r.bad_trace_ids, ["5b8efff798038103d269b633813fc60c"]);
    }
}
