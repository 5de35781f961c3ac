//! Service level objectives as people write them (`[[slo]]` in a scenario, a sidecar config or
//! a standalone `slos.toml`), and the checks that make a spec usable.
//!
//! Names follow OpenSLO where it has one (`objective`, budgeting `occurrences`/`timeslices`
//! with `timeslice_target` and `timeslice_window`); objectives and every share are ratios,
//! never percent.
//!
//! ```toml
//! [[slo]]
//! name = "checkout-latency"
//! objective = 0.99
//! window = "28d"                    # rolling; or "calendar week" / "calendar month"
//! sli = { latency = { route = "checkout", threshold = "300ms" } }
//! alerting = "workbook"             # the SRE Workbook table; "scaled", "none", or a list
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::ErrorClass;
use crate::fault::FieldError;
use crate::units::HumanDuration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The share of good events (or good time slices) promised, in (0, 1), e.g. 0.999.
    pub objective: f64,
    pub window: Window,
    /// For calendar windows: the offset of the calendar's time zone from UTC, e.g. `"+02:00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset: Option<String>,
    #[serde(default)]
    pub budgeting: Budgeting,
    /// With `budgeting = "timeslices"`: a slice is good when its SLI is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeslice_target: Option<f64>,
    /// With `budgeting = "timeslices"`: the length of a slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeslice_window: Option<HumanDuration>,
    pub sli: Sli,
    #[serde(default)]
    pub alerting: Alerting,
    /// How long a severity's burn condition must hold before its alert fires, as a Prometheus
    /// rule's `for`, e.g. `{ page = "2m", ticket = "15m" }`; at once when absent (the
    /// Workbook's alerts need none: the short window already confirms).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alert_for: BTreeMap<Severity, HumanDuration>,
    /// For `ballast slo rules` over other metrics than the sidecar's: the error and total
    /// rate queries, with `{{window}}` where the range goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promql: Option<PromQl>,
}

/// User-given PromQL for an SLI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromQl {
    /// e.g. `sum(rate(http_requests_total{code=~"5.."}[{{window}}]))`
    pub errors: String,
    /// e.g. `sum(rate(http_requests_total[{{window}}]))`
    pub total: String,
}

/// The period over which the objective must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last `d`, moving with time.
    Rolling(Duration),
    /// The current calendar week (from Monday) or month, in the SLO's UTC offset.
    Calendar(CalendarUnit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarUnit {
    Week,
    Month,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Rolling(d) => write!(f, "{}", HumanDuration(*d)),
            Window::Calendar(CalendarUnit::Week) => f.write_str("calendar week"),
            Window::Calendar(CalendarUnit::Month) => f.write_str("calendar month"),
        }
    }
}

impl std::str::FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "calendar week" | "calendar-week" => Ok(Window::Calendar(CalendarUnit::Week)),
            "calendar month" | "calendar-month" => Ok(Window::Calendar(CalendarUnit::Month)),
            other => other
                .parse::<HumanDuration>()
                .map(|d| Window::Rolling(d.get()))
                .map_err(|_| {
                    format!(
                        "invalid window {s:?}; write it like \"28d\" (rolling), \"calendar week\" or \"calendar month\""
                    )
                }),
        }
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Window;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a window such as \"28d\" or \"calendar month\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Window, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budgeting {
    /// Good events over all events in the window.
    #[default]
    Occurrences,
    /// Good time slices over all slices in the window (a slice is good when its SLI meets
    /// `timeslice_target`).
    Timeslices,
}

/// What is measured. One of three kinds, written as a table with one key:
/// `{ availability = {...} }`, `{ latency = {...} }` or `{ trace = {...} }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Sli {
    Availability(AvailabilitySli),
    Latency(LatencySli),
    Trace(TraceSli),
}

/// Where request counts come from: the sidecar's meters or the load generator's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    Sidecar,
    Loadgen,
}

/// Good requests over all requests. Bad: a status in `bad_status` (default `["5xx"]`), or a
/// `ballast-error` class in `bad_errors` whatever its status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilitySli {
    /// A route name (a load generator transaction name with `source = "loadgen"`); every
    /// route when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default)]
    pub source: Source,
    #[serde(default = "five_xx")]
    pub bad_status: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_errors: Vec<ErrorClass>,
}

fn five_xx() -> Vec<String> {
    vec!["5xx".into()]
}

/// The share of requests answered within `threshold`, counted exactly from HDR histograms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySli {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default)]
    pub source: Source,
    pub threshold: HumanDuration,
}

/// Spans matching a selector; good when not in error and within `threshold`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSli {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_name: Option<String>,
    /// Span attributes that must all be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    pub threshold: HumanDuration,
}

/// When to alert: a preset by name, or burn windows written out.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Alerting {
    /// The SRE Workbook's multiwindow, multi-burn-rate table, derived from the SLO's window.
    #[default]
    Workbook,
    /// The same table shrunk in proportion to a short window, so short runs fire and resolve.
    Scaled,
    /// No alerts.
    None,
    Windows(Vec<BurnWindowSpec>),
}

/// Alert when the burn rate over both `long` and `short` is above `factor` (or above the rate
/// that spends `budget` of the error budget within `long`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnWindowSpec {
    pub long: HumanDuration,
    pub short: HumanDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Share of the window's error budget spent within `long`, e.g. 0.02.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    pub severity: Severity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Page,
    Ticket,
}

impl Serialize for Alerting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Alerting::Workbook => s.serialize_str("workbook"),
            Alerting::Scaled => s.serialize_str("scaled"),
            Alerting::None => s.serialize_str("none"),
            Alerting::Windows(w) => w.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Alerting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Alerting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"workbook\", \"scaled\", \"none\", or a list of { long, short, factor, severity }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Alerting, E> {
                match v {
                    "workbook" => Ok(Alerting::Workbook),
                    "scaled" => Ok(Alerting::Scaled),
                    "none" => Ok(Alerting::None),
                    other => Err(E::custom(format!(
                        "unknown alerting preset {other:?}; write it like \"workbook\", \"scaled\" or \"none\""
                    ))),
                }
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Alerting, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Alerting::Windows)
            }
        }
        d.deserialize_any(V)
    }
}

impl SloSpec {
    /// Latency thresholds the SLI counts at (for histogram bucket boundaries).
    pub fn latency_threshold(&self) -> Option<Duration> {
        match &self.sli {
            Sli::Latency(l) => Some(l.threshold.get()),
            _ => None,
        }
    }

    /// The route the SLI selects, if it names one.
    pub fn route(&self) -> Option<&str> {
        match &self.sli {
            Sli::Availability(a) => a.route.as_deref(),
            Sli::Latency(l) => l.route.as_deref(),
            Sli::Trace(_) => None,
        }
    }

    /// Check the spec on its own: every problem at once, each with its field and a fix.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String, fix: &str| {
            errors.push(FieldError {
                field: field.into(),
                message,
                fix: fix.into(),
            })
        };
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            err(
                "name",
                format!("{:?} is not a usable SLO name", self.name),
                "use letters, digits and -_. (names become metric labels and file names)",
            );
        }
        let ratio = |v: f64| v > 0.0 && v < 1.0;
        if !ratio(self.objective) {
            err(
                "objective",
                format!("{} is outside (0, 1)", self.objective),
                "write a ratio such as 0.999 (not a percentage)",
            );
        }
        let window = match self.window {
            Window::Rolling(d) if d.is_zero() => {
                err("window", "the window is zero".into(), "give a duration such as \"28d\"");
                None
            }
            Window::Rolling(d) => Some(d),
            Window::Calendar(CalendarUnit::Week) => Some(Duration::from_secs(7 * 86_400)),
            // The shortest month, for the checks below.
            Window::Calendar(CalendarUnit::Month) => Some(Duration::from_secs(28 * 86_400)),
        };
        match (&self.utc_offset, self.window) {
            (Some(o), Window::Calendar(_)) if parse_utc_offset(o).is_none() => err(
                "utc_offset",
                format!("invalid UTC offset {o:?}"),
                "write it like \"+02:00\" or \"-05:30\"",
            ),
            (Some(_), Window::Rolling(_)) => err(
                "utc_offset",
                "a rolling window has no calendar".into(),
                "remove utc_offset, or use a calendar window",
            ),
            _ => {}
        }
        match self.budgeting {
            Budgeting::Occurrences => {
                for (field, set) in [
                    ("timeslice_target", self.timeslice_target.is_some()),
                    ("timeslice_window", self.timeslice_window.is_some()),
                ] {
                    if set {
                        err(
                            field,
                            "applies to timeslices budgeting only".into(),
                            "remove it, or set budgeting = \"timeslices\"",
                        );
                    }
                }
            }
            Budgeting::Timeslices => {
                match self.timeslice_target {
                    Some(t) if ratio(t) => {}
                    Some(t) => err(
                        "timeslice_target",
                        format!("{t} is outside (0, 1)"),
                        "write a ratio such as 0.95",
                    ),
                    None => err(
                        "timeslice_target",
                        "is required with timeslices budgeting".into(),
                        "add the SLI a slice must meet to be good, e.g. timeslice_target = 0.95",
                    ),
                }
                match (self.timeslice_window, window) {
                    (Some(s), _) if s.get().is_zero() => err(
                        "timeslice_window",
                        "the slice is zero".into(),
                        "give a duration such as \"1m\"",
                    ),
                    (Some(s), Some(w)) if s.get() > w => err(
                        "timeslice_window",
                        format!("a {} slice is longer than the {} window", s, self.window),
                        "make the slice shorter than the window",
                    ),
                    (Some(_), _) => {}
                    (None, _) => err(
                        "timeslice_window",
                        "is required with timeslices budgeting".into(),
                        "add the slice length, e.g. timeslice_window = \"1m\"",
                    ),
                }
            }
        }
        match &self.sli {
            Sli::Availability(a) => {
                for class in &a.bad_status {
                    if !matches!(class.as_str(), "1xx" | "2xx" | "3xx" | "4xx" | "5xx") {
                        err(
                            "sli.availability.bad_status",
                            format!("{class:?} is not a status class"),
                            "use \"4xx\" or \"5xx\" (and the like)",
                        );
                    }
                }
                if a.bad_status.is_empty() && a.bad_errors.is_empty() {
                    err(
                        "sli.availability.bad_status",
                        "nothing would count as bad".into(),
                        "keep the default [\"5xx\"], or name bad statuses or error classes",
                    );
                }
            }
            Sli::Latency(l) if l.threshold.get().is_zero() => err(
                "sli.latency.threshold",
                "the threshold is zero".into(),
                "give a duration such as \"300ms\"",
            ),
            Sli::Trace(t) if t.threshold.get().is_zero() => err(
                "sli.trace.threshold",
                "the threshold is zero".into(),
                "give a duration such as \"300ms\"",
            ),
            _ => {}
        }
        if let Alerting::Windows(windows) = &self.alerting {
            if windows.is_empty() {
                err(
                    "alerting",
                    "no burn windows".into(),
                    "list at least one, or write alerting = \"none\"",
                );
            }
            for (i, w) in windows.iter().enumerate() {
                let field = |f: &str| format!("alerting[{i}].{f}");
                if w.short >= w.long {
                    err(
                        &field("short"),
                        format!(
                            "the short window {} is not shorter than the long window {}",
                            w.short, w.long
                        ),
                        "the short window confirms the long one is still burning: make it shorter (the Workbook uses 1/12)",
                    );
                }
                if let Some(window) = window
                    && w.long.get() > window
                {
                    err(
                        &field("long"),
                        format!(
                            "the long window {} is longer than the SLO window {}",
                            w.long, self.window
                        ),
                        "make it at most the SLO's window",
                    );
                }
                match (w.factor, w.budget) {
                    (Some(f), None) if f > 0.0 && f.is_finite() => {}
                    (None, Some(b)) if b > 0.0 && b <= 1.0 => {}
                    (Some(_), Some(_)) => err(
                        &field("factor"),
                        "give either factor or budget, not both".into(),
                        "keep one: factor is a burn rate, budget a share of the error budget spent within long",
                    ),
                    (None, None) => err(
                        &field("factor"),
                        "a burn window needs factor or budget".into(),
                        "add factor = 14.4 (a burn rate), or budget = 0.02 (2% of the budget within long)",
                    ),
                    (Some(f), _) => err(
                        &field("factor"),
                        format!("{f} is not a positive burn rate"),
                        "e.g. 14.4",
                    ),
                    (_, Some(b)) => err(&field("budget"), format!("{b} is outside (0, 1]"), "e.g. 0.02"),
                }
            }
        }
        for (severity, hold) in &self.alert_for {
            let field = format!("alert_for.{}", severity.as_str());
            if self.alerting == Alerting::None {
                err(
                    &field,
                    "the SLO has no alerts to hold back".into(),
                    "remove alert_for, or choose an alerting preset or windows",
                );
            } else if let Some(window) = window
                && hold.get() >= window
            {
                err(
                    &field,
                    format!("{hold} is not shorter than the SLO window {}", self.window),
                    "hold alerts for minutes, e.g. \"2m\"",
                );
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// `"+02:00"` → +7200 s.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> SloSpec {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(text: &str) -> Vec<String> {
        spec(text)
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn specs_read_like_the_design() {
        let s = spec(
            "name = \"checkout-latency\"\nobjective = 0.99\nwindow = \"28d\"\nsli = { latency = { route = \"checkout\", threshold = \"300ms\" } }",
        );
        s.validate().unwrap();
        assert_eq!(s.window, Window::Rolling(Duration::from_secs(28 * 86_400)));
        assert_eq!(s.latency_threshold(), Some(Duration::from_millis(300)));
        assert_eq!(s.route(), Some("checkout"));
        assert_eq!(s.alerting, Alerting::Workbook);
        let s = spec(
            "name = \"a\"\nobjective = 0.999\nwindow = \"calendar month\"\nutc_offset = \"+02:00\"\nalerting = \"scaled\"\nsli = { availability = { route = \"checkout\", source = \"loadgen\" } }",
        );
        s.validate().unwrap();
        let Sli::Availability(a) = &s.sli else { panic!() };
        assert_eq!(
            (a.source, a.bad_status.as_slice()),
            (Source::Loadgen, &["5xx".to_owned()][..])
        );
        let s = spec(
            "name = \"t\"\nobjective = 0.99\nwindow = \"1h\"\nbudgeting = \"timeslices\"\ntimeslice_target = 0.95\ntimeslice_window = \"1m\"\nsli = { trace = { service = \"shop\", threshold = \"1s\" } }\nalerting = [{ long = \"1h\", short = \"5m\", factor = 14.4, severity = \"page\" }, { long = \"6h\", short = \"30m\", budget = 0.05, severity = \"ticket\" }]",
        );
        let errs = s.validate().unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "alerting[1].long", "6h is longer than the 1h window");
        let s = SloSpec {
            alert_for: [(Severity::Page, HumanDuration(Duration::from_secs(120)))].into(),
            ..s
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SloSpec>(&json).unwrap(), s);
    }

    #[test]
    fn bad_specs_name_every_field() {
        assert_eq!(
            errors("name = \"x\"\nobjective = 99.9\nwindow = \"1h\"\nsli = { latency = { threshold = \"0s\" } }"),
            [
                "objective: 99.9 is outside (0, 1)",
                "sli.latency.threshold: the threshold is zero"
            ]
        );
        assert_eq!(
            errors(
                "name = \"x\"\nobjective = 0.9\nwindow = \"30s\"\nbudgeting = \"timeslices\"\ntimeslice_target = 1.5\ntimeslice_window = \"1m\"\nsli = { availability = {} }"
            ),
            [
                "timeslice_target: 1.5 is outside (0, 1)",
                "timeslice_window: a 1m slice is longer than the 30s window"
            ]
        );
        assert_eq!(
            errors(
                "name = \"x\"\nobjective = 0.9\nwindow = \"1d\"\nsli = { availability = { bad_status = [\"5XX\"] } }\nalerting = [{ long = \"5m\", short = \"1h\", factor = 2, severity = \"page\" }]"
            ),
            [
                "sli.availability.bad_status: \"5XX\" is not a status class",
                "alerting[0].short: the short window 1h is not shorter than the long window 5m"
            ]
        );
        assert_eq!(
            errors(
                "name = \"x\"\nobjective = 0.9\nwindow = \"1h\"\nsli = { availability = {} }\nalert_for = { page = \"2h\" }"
            ),
            ["alert_for.page: 2h is not shorter than the SLO window 1h"]
        );
        let unknown =
            toml::from_str::<SloSpec>("name = \"x\"\nobjective = 0.9\nwindow = \"1d\"\nsli = { latncy = {} }");
        assert!(unknown.unwrap_err().to_string().contains("unknown variant `latncy`"));
        let preset = toml::from_str::<SloSpec>(
            "name = \"x\"\nobjective = 0.9\nwindow = \"1d\"\nalerting = \"fast\"\nsli = { availability = {} }",
        );
        assert!(
            preset
                .unwrap_err()
                .to_string()
                .contains("unknown alerting preset \"fast\"")
        );
    }

    #[test]
    fn utc_offsets_parse() {
        assert_eq!(parse_utc_offset("+02:00"), Some(7200));
        assert_eq!(parse_utc_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_utc_offset("02:00"), None);
        assert_eq!(parse_utc_offset("+25:00"), None);
    }
}
