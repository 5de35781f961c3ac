//! Example failing traces: the sidecar's exemplars in `stats.jsonl` (its latest failed traced
//! requests per route, each scrape), so an SRE can open the trace of a request that failed.

use std::io::{BufRead, BufReader};
use std::path::Path;

use ballast_model::stats::Exemplars;
use serde::Deserialize;

use crate::error::ReportError;

#[derive(Clone, Debug, PartialEq)]
pub struct FailedTrace {
    pub trace_id: String,
    pub route: String,
    pub at_ms: u64,
    pub latency_us: u64,
    pub status: u16,
    pub error: Option<String>,
}

/// Only the exemplars of each line; the histograms and counters are skipped unparsed.
#[derive(Deserialize)]
struct Line {
    snapshot: Snapshot,
}

#[derive(Deserialize)]
struct Snapshot {
    #[serde(default)]
    routes: std::collections::BTreeMap<String, RouteExemplars>,
}

#[derive(Deserialize)]
struct RouteExemplars {
    #[serde(default)]
    exemplars: Exemplars,
}

/// Every distinct failed exemplar, oldest first.
pub fn read(path: &Path) -> Result<Vec<FailedTrace>, ReportError> {
    let f = std::fs::File::open(path).map_err(ReportError::io(path))?;
    let mut traces: Vec<FailedTrace> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut reader = BufReader::new(f);
    let mut line = String::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(ReportError::io(path))? == 0 {
            break;
        }
        n += 1;
        if !line.ends_with('\n') {
            return Err(ReportError::damaged(
                path,
                format!("truncated: line {n} is incomplete (no line end); the file was cut while being written"),
            ));
        }
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|e| ReportError::damaged(path, format!("line {n}: not a stats scrape: {e}")))?;
        for (route, r) in parsed.snapshot.routes {
            for e in r.exemplars.failed {
                if seen.insert(e.trace_id.clone()) {
                    traces.push(FailedTrace {
                        trace_id: e.trace_id,
                        route: route.clone(),
                        at_ms: e.at_ms,
                        latency_us: e.latency_us,
                        status: e.status,
                        error: e.error.map(|c| c.as_str().to_owned()),
                    });
                }
            }
        }
    }
    traces.sort_by_key(|t| t.at_ms);
    Ok(traces)
}
