//! `slo status --prometheus URL`: SLOs read from a Prometheus that scrapes the sidecars, with
//! the same error and total rate queries as the rules `ballast slo rules` writes (the
//! sidecar's metrics, or the SLO's own PromQL), evaluated at one instant over its HTTP API.
//!
//! Over the SLO's window (a calendar window: from its start until now) the error ratio gives
//! the SLI and the budget left; the total rate times the window's length estimates the
//! events (Prometheus extrapolates rates, so counts may be off by a few). Over each alert
//! window the error ratio divided by the budget ratio is the burn rate, and an alert's
//! condition holds when both its long and short rates exceed the factor, as in the rules.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ballast_model::slo::{SloSpec, Window, parse_utc_offset};
use ballast_slo_engine::burn::windows;
use ballast_slo_engine::rules::{prom_duration, rate_queries};
use ballast_slo_engine::slo::{BurnRate, calendar_start, exhaustion_in_ms, period};

use super::Standing;

struct Prometheus {
    http: reqwest::Client,
    base: String,
    /// One evaluation instant for every query (Unix seconds).
    time: f64,
}

impl Prometheus {
    /// The single value of an instant query; `None` when it has no data (no series, or a
    /// division by zero).
    async fn scalar(&self, query: &str) -> anyhow::Result<Option<f64>> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.base),
            [("query", query), ("time", &self.time.to_string())],
        )
        .with_context(|| format!("invalid Prometheus URL {:?}", self.base))?;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("cannot reach Prometheus at {}", self.base))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .with_context(|| format!("Prometheus at {} answered {status} without JSON", self.base))?;
        if body["status"] != "success" {
            bail!(
                "Prometheus rejected the query {query}: {}",
                body["error"].as_str().unwrap_or("no reason given")
            );
        }
        let value = match body["data"]["resultType"].as_str() {
            Some("vector") => &body["data"]["result"][0]["value"][1],
            Some("scalar") => &body["data"]["result"][1],
            _ => return Ok(None),
        };
        Ok(value
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite()))
    }

    /// The error ratio and the total rate (per second) over `range`.
    async fn ratio(&self, errors: &str, total: &str, range: Duration) -> anyhow::Result<Option<(f64, f64)>> {
        let w = prom_duration(range);
        let (errors, total) = (errors.replace("{{window}}", &w), total.replace("{{window}}", &w));
        let Some(ratio) = self.scalar(&format!("({errors}) / ({total})")).await? else {
            return Ok(None);
        };
        Ok(self.scalar(&total).await?.map(|rate| (ratio, rate)))
    }
}

pub(super) async fn status(slos: &[&SloSpec], base: &str) -> anyhow::Result<Vec<Standing>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let prom = Prometheus {
        http: reqwest::Client::builder().no_proxy().build()?,
        base: base.trim_end_matches('/').to_owned(),
        time: now.as_secs_f64(),
    };
    let mut out = Vec::new();
    for spec in slos {
        let Some((errors, total_rate)) = rate_queries(spec) else {
            out.push(Standing::unanswered(
                spec,
                "Prometheus holds no metrics for this SLI: give it `promql`, or read it live with --admin".into(),
            ));
            continue;
        };
        let range = match spec.window {
            Window::Rolling(d) => d,
            Window::Calendar(unit) => {
                let offset_ms = spec.utc_offset.as_deref().and_then(parse_utc_offset).unwrap_or(0) as i64 * 1000;
                let now_ms = now.as_millis() as u64;
                Duration::from_millis(now_ms - calendar_start(now_ms, unit, offset_ms)).max(Duration::from_secs(1))
            }
        };
        let Some((error_ratio, rate)) = prom.ratio(&errors, &total_rate, range).await? else {
            out.push(Standing::unanswered(
                spec,
                format!("no data in Prometheus over the last {}", prom_duration(range)),
            ));
            continue;
        };
        let allowed = 1.0 - spec.objective;
        let total = (rate * range.as_secs_f64()).round() as u64;
        let bad = (error_ratio * total as f64).round() as u64;
        let mut st = Standing::new(spec, "prometheus", total - bad.min(total), total);
        st.sli = Some(1.0 - error_ratio);
        st.budget_remaining = 1.0 - error_ratio / allowed;
        for b in windows(&spec.alerting, period(spec.window)) {
            let burn = |r: Option<(f64, f64)>| r.map_or(0.0, |(ratio, _)| ratio / allowed);
            let long = burn(prom.ratio(&errors, &total_rate, b.long).await?);
            let short = burn(prom.ratio(&errors, &total_rate, b.short).await?);
            if long > b.factor && short > b.factor && !st.alerts_firing.contains(&b.severity) {
                st.alerts_firing.push(b.severity);
            }
            st.burn_rates.push(BurnRate {
                severity: b.severity,
                long_ms: b.long.as_millis() as u64,
                short_ms: b.short.as_millis() as u64,
                factor: b.factor,
                long,
                short,
            });
        }
        st.exhaustion_in_ms = exhaustion_in_ms(&st.burn_rates, st.budget_remaining, period(spec.window));
        out.push(st);
    }
    Ok(out)
}
