//! `events.jsonl`: the timeline. Kinds this build knows become [`EventKind`]s; kinds added
//! later by other parts of ballast (load phases, experiment steps) are kept by name, so a
//! newer runner's folder still reports.

use std::path::Path;

use ballast_model::{Event, EventKind};

use crate::error::ReportError;

/// One line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedEvent {
    pub at_ms: u64,
    pub source: String,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq)]
pub enum What {
    Known(EventKind),
    /// A kind this build does not know: its name and its other fields as `key=value`.
    Other {
        kind: String,
        detail: String,
    },
}

pub fn read(path: &Path) -> Result<Vec<TimedEvent>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(ReportError::io(path))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(ReportError::damaged(
            path,
            format!(
                "truncated: line {} is incomplete (no line end); the file was cut while being written",
                text.lines().count()
            ),
        ));
    }
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |detail: String| ReportError::damaged(path, format!("line {}: {detail}", i + 1));
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let at_ms = value
            .get("at_ms")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad("no `at_ms` (Unix milliseconds)".into()))?;
        let source = value
            .get("source")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad("no `source`".into()))?
            .to_owned();
        let kind = value
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad("no `kind`".into()))?
            .to_owned();
        let what = match serde_json::from_value::<Event>(value.clone()) {
            Ok(e) => What::Known(e.kind),
            Err(_) if !EventKind::NAMES.contains(&kind.as_str()) => What::Other {
                detail: other_detail(&value),
                kind,
            },
            // A known kind that does not parse is damage, not news.
            Err(e) => return Err(bad(format!("a `{kind}` event that does not parse: {e}"))),
        };
        events.push(TimedEvent { at_ms, source, what });
    }
    // The contract says "in the order they happened"; sort anyway, stably, so a merge of
    // several writers still reads in order.
    events.sort_by_key(|e| e.at_ms);
    Ok(events)
}

fn other_detail(value: &serde_json::Value) -> String {
    let Some(map) = value.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "at_ms" | "source" | "kind"))
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_kinds_are_kept_and_bad_lines_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"at_ms":2000,"source":"runner","kind":"load_phase_changed","phase":"hold","rate":200}"#,
                "\n",
                r#"{"at_ms":1000,"source":"sidecar","kind":"fault_removed","id":"f1"}"#,
                "\n"
            ),
        )
        .unwrap();
        let events = read(&path).unwrap();
        assert_eq!(events[0].what, What::Known(EventKind::FaultRemoved { id: "f1".into() }));
        assert_eq!(
            events[1].what,
            What::Other {
                kind: "load_phase_changed".into(),
                detail: "phase=hold rate=200".into()
            }
        );
        std::fs::write(&path, "{\"at_ms\":1,\"source\":\"s\",\"kind\":\"fault_removed\"}\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("events.jsonl: line 1: a `fault_removed` event that does not parse: missing field `id`"),
            "{e}"
        );
        std::fs::write(&path, "{\"at_ms\":1,\"source\":\"s\",\"ki").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("events.jsonl: truncated: line 1 is incomplete"), "{e}");
    }
}
