//! k6-style thresholds: `p99 < 300ms`, `p95{transaction="checkout"} < 200ms`,
//! `error_rate < 0.01`, `rps > 500`. Checked on the whole run at its end; one with
//! `abort_after` is also checked each second over the last `abort_after` of traffic and ends
//! the run when it fails there.
//!
//! Metrics: `pNN` (also `p(NN)`, `p99.9`, `med`), `avg`, `min`, `max` (latency, ms: write the
//! bound as a duration, `300ms`, or a number of milliseconds), `error_rate` (a ratio, 0 to 1),
//! `rps` (requests per second), `requests` and `failed` (counts).

use std::collections::BTreeMap;
use std::time::Duration;

use ballast_model::load::Tally;

use crate::error::did_you_mean;

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written.
    pub expr: String,
    metric: Metric,
    transaction: Option<String>,
    op: Op,
    bound: f64,
    pub abort_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    Quantile(f64),
    Avg,
    Min,
    Max,
    ErrorRate,
    Rps,
    Requests,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

const METRICS: [&str; 9] = [
    "p99",
    "med",
    "avg",
    "min",
    "max",
    "error_rate",
    "rps",
    "requests",
    "failed",
];

impl Threshold {
    /// Parse `expr`; `transactions` are the names a `{transaction="..."}` tag may use.
    /// Errors are (what is wrong, how to fix it).
    pub fn parse(expr: &str, transactions: &[&str]) -> Result<Threshold, (String, String)> {
        let s = expr.trim();
        let name_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.()".contains(c)))
            .unwrap_or(s.len());
        let (name, rest) = s.split_at(name_end);
        let metric = metric(name)?;
        let (transaction, rest) = match rest.trim_start().strip_prefix('{') {
            Some(tags) => {
                let Some((tags, rest)) = tags.split_once('}') else {
                    return Err((
                        format!("unclosed tag in {expr:?}"),
                        r#"write it like p95{transaction="checkout"} < 200ms"#.into(),
                    ));
                };
                (Some(tag(tags, transactions)?), rest)
            }
            None => (None, rest),
        };
        let rest = rest.trim_start();
        let (op, bound) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(text, op)| rest.strip_prefix(text).map(|b| (op, b.trim())))
        .ok_or_else(|| {
            (
                format!("no comparison in {expr:?}"),
                "compare the metric with <, <=, >, >= or ==, e.g. \"p99 < 300ms\"".to_owned(),
            )
        })?;
        let bound = match metric {
            Metric::Quantile(_) | Metric::Avg | Metric::Min | Metric::Max => latency_ms(bound)?,
            _ => bound.parse::<f64>().map_err(|_| {
                (
                    format!("{bound:?} is not a number"),
                    format!("write a number, e.g. \"{name} < 0.01\""),
                )
            })?,
        };
        if metric == Metric::ErrorRate && !(0.0..=1.0).contains(&bound) {
            return Err((
                format!("error_rate is a ratio from 0 to 1, got {bound}"),
                "write 1% as 0.01".into(),
            ));
        }
        Ok(Threshold {
            expr: s.to_owned(),
            metric,
            transaction,
            op,
            bound,
            abort_after: None,
        })
    }

    /// The measured value over `seconds` of traffic; `None` when there is nothing to measure
    /// (no requests of the transaction).
    pub fn observe(&self, all: &Tally, transactions: &BTreeMap<String, Tally>, seconds: f64) -> Option<f64> {
        let t = match &self.transaction {
            Some(name) => transactions.get(name)?,
            None => all,
        };
        if t.requests == 0 && !matches!(self.metric, Metric::Requests | Metric::Failed | Metric::Rps) {
            return None;
        }
        let p = || t.percentiles();
        Some(match self.metric {
            Metric::Quantile(q) => t.quantile_ms(q),
            Metric::Avg => p().mean,
            Metric::Min => p().min,
            Metric::Max => p().max,
            Metric::ErrorRate => t.error_rate(),
            Metric::Rps => t.requests as f64 / seconds.max(1e-9),
            Metric::Requests => t.requests as f64,
            Metric::Failed => t.failed as f64,
        })
    }

    pub fn holds(&self, observed: f64) -> bool {
        match self.op {
            Op::Lt => observed < self.bound,
            Op::Le => observed <= self.bound,
            Op::Gt => observed > self.bound,
            Op::Ge => observed >= self.bound,
            Op::Eq => observed == self.bound,
        }
    }

    /// The verdict on a measurement: nothing measured fails (a threshold on traffic that never
    /// came cannot be said to hold).
    pub fn verdict(&self, observed: Option<f64>) -> bool {
        observed.is_some_and(|v| self.holds(v))
    }

    /// Whether the measured value is a latency in milliseconds.
    pub fn is_latency(&self) -> bool {
        matches!(
            self.metric,
            Metric::Quantile(_) | Metric::Avg | Metric::Min | Metric::Max
        )
    }
}

fn metric(name: &str) -> Result<Metric, (String, String)> {
    let quantile = |digits: &str| -> Option<Metric> {
        let v: f64 = digits.parse().ok()?;
        (v > 0.0 && v <= 100.0).then_some(Metric::Quantile(v / 100.0))
    };
    let m = match name {
        "avg" | "mean" => Some(Metric::Avg),
        "med" => Some(Metric::Quantile(0.5)),
        "min" => Some(Metric::Min),
        "max" => Some(Metric::Max),
        "error_rate" => Some(Metric::ErrorRate),
        "rps" => Some(Metric::Rps),
        "requests" => Some(Metric::Requests),
        "failed" => Some(Metric::Failed),
        _ => name
            .strip_prefix("p(")
            .and_then(|r| r.strip_suffix(')'))
            .or_else(|| name.strip_prefix('p'))
            .and_then(quantile),
    };
    m.ok_or_else(|| {
        let fix = match did_you_mean(name, METRICS) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "use p50, p90, p95, p99, p99.9, avg, min, max, error_rate, rps, requests or failed".into(),
        };
        (format!("unknown metric {name:?}"), fix)
    })
}

fn tag(tags: &str, transactions: &[&str]) -> Result<String, (String, String)> {
    let Some((key, value)) = tags.split_once('=') else {
        return Err((
            format!("tag {{{tags}}} has no value"),
            r#"write it like {transaction="checkout"}"#.into(),
        ));
    };
    if key.trim() != "transaction" {
        return Err((
            format!("unknown tag {:?}", key.trim()),
            r#"thresholds select by transaction: {transaction="checkout"}"#.into(),
        ));
    }
    let name = value.trim().trim_matches('"');
    if !transactions.contains(&name) {
        let fix = match did_you_mean(name, transactions.iter().copied()) {
            Some(s) => format!("did you mean {s:?}?"),
            None => format!("the transactions are {}", transactions.join(", ")),
        };
        return Err((format!("no transaction named {name:?}"), fix));
    }
    Ok(name.to_owned())
}

/// A latency bound: a duration (`300ms`, `1.5s`) or a number of milliseconds.
fn latency_ms(text: &str) -> Result<f64, (String, String)> {
    if let Ok(ms) = text.parse::<f64>() {
        return Ok(ms);
    }
    // humantime has no fractions: read `1.5s` ourselves.
    for (unit, scale) in [
        ("ms", 1.0),
        ("us", 0.001),
        ("µs", 0.001),
        ("s", 1000.0),
        ("m", 60_000.0),
    ] {
        if let Some(n) = text.strip_suffix(unit).and_then(|n| n.trim().parse::<f64>().ok()) {
            return Ok(n * scale);
        }
    }
    Err((
        format!("{text:?} is not a latency"),
        "write a duration such as 300ms or 1.5s, or a number of milliseconds".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(latencies_ms: &[u64], failed: u64) -> Tally {
        let mut t = Tally::default();
        for (i, &ms) in latencies_ms.iter().enumerate() {
            let failure = ((i as u64) < failed).then_some(ballast_model::load::Failure::UnexpectedStatus);
            t.record(ms * 1000, Some(200), failure);
        }
        t
    }

    #[test]
    fn thresholds_parse_k6_style() {
        let txs = ["checkout", "browse"];
        let t = Threshold::parse("p95{transaction=\"checkout\"} < 200ms", &txs).unwrap();
        assert_eq!(
            (t.metric, t.transaction.as_deref(), t.op, t.bound),
            (Metric::Quantile(0.95), Some("checkout"), Op::Lt, 200.0)
        );
        assert_eq!(Threshold::parse("p(99.9)<1.5s", &txs).unwrap().bound, 1500.0);
        let Metric::Quantile(q) = Threshold::parse("p99.9 < 250", &txs).unwrap().metric else {
            panic!("a quantile")
        };
        assert!((q - 0.999).abs() < 1e-12);
        assert_eq!(Threshold::parse("rps >= 500", &txs).unwrap().op, Op::Ge);
        let e = |s| Threshold::parse(s, &txs).unwrap_err();
        assert_eq!(e("p99 300ms").0, "no comparison in \"p99 300ms\"");
        assert_eq!(e("p999x < 1").0, "unknown metric \"p999x\"");
        assert_eq!(e("eror_rate < 0.1").1, "did you mean `error_rate`?");
        assert_eq!(e("error_rate < 5").1, "write 1% as 0.01");
        assert_eq!(e("p95{transaction=\"chekout\"} < 1").1, "did you mean \"checkout\"?");
        assert!(e("p95{route=\"x\"} < 1").0.contains("unknown tag"));
        assert!(e("p99 < fast").0.contains("not a latency"));
    }

    #[test]
    fn verdicts_read_the_tallies() {
        let all = tally(&[1, 2, 3, 4, 100], 1);
        let txs = BTreeMap::from([("checkout".to_owned(), tally(&[50], 0))]);
        let check = |s: &str| {
            let t = Threshold::parse(s, &["checkout", "idle"]).unwrap();
            t.verdict(t.observe(&all, &txs, 2.0))
        };
        assert!(check("p50 < 5ms"));
        assert!(!check("p99 < 50ms"));
        assert!(check("max >= 100"));
        assert!(check("error_rate <= 0.2"));
        assert!(!check("error_rate < 0.2"));
        assert!(check("rps == 2.5"));
        assert!(check("p99{transaction=\"checkout\"} < 51ms"));
        assert!(!check("p99{transaction=\"idle\"} < 51ms"), "no traffic: not held");
    }
}
