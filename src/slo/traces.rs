//! `slo status --traces FILE...`: trace SLIs from OTLP JSON lines (the OpenTelemetry
//! collector's file exporter). Every span the SLO selects is fed to the SLO engine at the time
//! it ended, and the SLO is evaluated at the newest one, so the window, budget, burn rates and
//! alerts are those of the moment the spans end.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use ballast_model::slo::SloSpec;
use ballast_slo_engine::Slo;
use ballast_slo_engine::alert::AlertState;
use ballast_slo_engine::traces::{Span, parse_line, record};

use super::Standing;

/// Bad trace ids shown per SLO.
const BAD_IDS: usize = 5;

/// Every span of the files; a line that is not OTLP JSON is an error naming file and line.
fn read(files: &[PathBuf]) -> anyhow::Result<Vec<Span>> {
    let mut spans = Vec::new();
    for path in files {
        let name = path.display();
        let file = std::fs::File::open(path).with_context(|| format!("cannot read {name}"))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {name}"))?;
            spans.extend(parse_line(&line).with_context(|| format!("{name}:{}", i + 1))?);
        }
    }
    Ok(spans)
}

pub(super) fn status(slos: &[&SloSpec], files: &[PathBuf]) -> anyhow::Result<Vec<Standing>> {
    let spans = read(files)?;
    let mut out = Vec::new();
    for spec in slos {
        let mut slo = Slo::new((*spec).clone()).map_err(|e| anyhow::anyhow!("{}: {:?}", spec.name, e))?;
        let recorded = record(&mut slo, &spans, BAD_IDS);
        let Some(at_ms) = recorded.last_ms else {
            out.push(Standing::unanswered(
                spec,
                "no span in the files matches the selector".into(),
            ));
            continue;
        };
        let (status, _) = slo.evaluate(at_ms);
        let mut st = Standing::new(spec, "traces", status.good, status.total);
        st.budget_remaining = status.budget_remaining;
        st.alerts_firing = status
            .alerts
            .iter()
            .filter(|(_, state)| matches!(state, AlertState::Firing { .. }))
            .map(|(severity, _)| *severity)
            .collect();
        st.burn_rates = status.burn_rates;
        st.exhaustion_in_ms = status.exhaustion_in_ms;
        st.bad_trace_ids = recorded.bad_trace_ids;
        out.push(st);
    }
    Ok(out)
}
