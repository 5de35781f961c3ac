//! Faults and events in words, for tables and the timeline.

use ballast_model::fault::{Position, TimeValue};
use ballast_model::{Event, EventKind, FaultSpec};

/// What a fault does, shortly: `abort 503 20%`, `delay p50 100ms p99 1s`.
pub fn fault_effect(spec: &FaultSpec) -> String {
    let t = |v: &Option<TimeValue>| v.map(time);
    let mut out = spec.kind.to_string();
    let mut add = |label: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push(' ');
            if !label.is_empty() {
                out.push_str(label);
                out.push(' ');
            }
            out.push_str(&v);
        }
    };
    add("", spec.status.map(|s| s.to_string()));
    add("", t(&spec.delay).or(t(&spec.latency)));
    add("±", t(&spec.jitter));
    add("p50", t(&spec.p50));
    add("p99", t(&spec.p99));
    add(
        "",
        spec.rate.map(|r| match r {
            ballast_model::fault::Rate::KilobytesPerSecond(n) => format!("{n}KB/s"),
            ballast_model::fault::Rate::PerSecond(b) => format!("{b}/s"),
        }),
    );
    add("after", spec.after.map(|b| b.to_string()));
    add("", t(&spec.timeout));
    add("", spec.bytes.map(|b| b.to_string()));
    if let Some(p) = spec.percent.filter(|p| *p < 100.0) {
        out.push_str(&format!(" {}%", trim_float(p)));
    }
    if let Some(x) = spec.toxicity.filter(|x| *x < 1.0) {
        out.push_str(&format!(" {}%", trim_float(x * 100.0)));
    }
    out
}

/// Where a fault applies: `checkout · upstream`, `any route`, `listener redis`.
pub fn fault_target(spec: &FaultSpec) -> String {
    if let Some(l) = &spec.listener {
        return format!("listener {l}");
    }
    let mut out = spec.route.clone().unwrap_or_else(|| "any route".into());
    if let Some(p) = &spec.path_prefix {
        out.push_str(&format!(" {p}*"));
    }
    if !spec.methods.is_empty() {
        out.push_str(&format!(" {}", spec.methods.join(",")));
    }
    if spec.position == Some(Position::Upstream) {
        out.push_str(" · upstream");
    }
    if !spec.endpoints.is_empty() {
        out.push_str(&format!(" {}", spec.endpoints.join(",")));
    }
    out
}

fn time(v: TimeValue) -> String {
    match v {
        TimeValue::Number(n) => format!("{n}ms"),
        TimeValue::Text(d) => d.to_string(),
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// How an event reads in the timeline, and how it is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventClass {
    /// A page or a rejected config: something broke.
    Bad,
    /// A warning: a ticket alert, an ejection, an unhealthy endpoint, a fault put in place.
    Warn,
    /// Back to normal: resolved, restored, fault gone.
    Good,
    /// Everything else.
    Info,
}

/// The event's kind as written (`fault_added`), its details in words, and its class.
pub fn event(e: &Event) -> (String, String, EventClass) {
    use EventClass::*;
    use ballast_model::slo::Severity;
    let kind = serde_json::to_value(&e.kind)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_owned)))
        .unwrap_or_default();
    let (detail, class) = match &e.kind {
        EventKind::ConfigReloaded {
            trigger,
            routes,
            clusters,
        } => (format!("{trigger}: {routes} routes, {clusters} clusters"), Info),
        EventKind::ConfigRejected { trigger, reason } => (format!("{trigger}: {}", first_line(reason)), Bad),
        EventKind::FaultAdded {
            id,
            spec,
            expires_at_ms,
        } => (
            format!(
                "{id} {} on {}{}",
                fault_effect(spec),
                fault_target(spec),
                expires_at_ms.map_or_else(
                    || " (config)".to_owned(),
                    |t| format!(" for {}", crate::views::format::duration(t.saturating_sub(e.at_ms)))
                )
            ),
            Warn,
        ),
        EventKind::FaultExpired { id } => (format!("{id} expired"), Good),
        EventKind::FaultRemoved { id } => (format!("{id} removed"), Good),
        EventKind::EndpointEjected {
            cluster,
            endpoint,
            reason,
            until_ms,
        } => (
            format!(
                "{cluster}/{endpoint} ({reason}) for {}",
                crate::views::format::duration(until_ms.saturating_sub(e.at_ms))
            ),
            Warn,
        ),
        EventKind::EndpointRestored { cluster, endpoint } => (format!("{cluster}/{endpoint}"), Good),
        EventKind::HealthChanged {
            cluster,
            endpoint,
            healthy,
        } => (
            format!(
                "{cluster}/{endpoint} {}",
                if *healthy { "healthy" } else { "unhealthy" }
            ),
            if *healthy { Good } else { Warn },
        ),
        EventKind::AlertFiring {
            slo,
            severity,
            burn_long,
            burn_short,
        } => (
            format!(
                "{slo} {} (burn {} / {})",
                severity_name(*severity),
                crate::views::format::burn(*burn_long),
                crate::views::format::burn(*burn_short)
            ),
            if *severity == Severity::Page { Bad } else { Warn },
        ),
        EventKind::AlertResolved { slo, severity } => (format!("{slo} {}", severity_name(*severity)), Good),
        // Kinds added by other parts of ballast read as their fields.
        #[allow(unreachable_patterns)]
        _ => (generic_fields(&e.kind), Info),
    };
    (kind, detail, class)
}

fn severity_name(s: ballast_model::slo::Severity) -> &'static str {
    match s {
        ballast_model::slo::Severity::Page => "page",
        ballast_model::slo::Severity::Ticket => "ticket",
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// `name=value` for every field but the kind.
fn generic_fields(kind: &EventKind) -> String {
    let v = serde_json::to_value(kind).unwrap_or_default();
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "kind")
        .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> FaultSpec {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn faults_read_as_what_and_where() {
        let s = spec("kind = \"abort\"\nstatus = 503\npercent = 12.5\nroute = \"checkout\"\nposition = \"upstream\"");
        assert_eq!(fault_effect(&s), "abort 503 12.5%");
        assert_eq!(fault_target(&s), "checkout · upstream");
        let s = spec("kind = \"delay\"\np50 = \"100ms\"\np99 = \"1s\"");
        assert_eq!(fault_effect(&s), "delay p50 100ms p99 1s");
        assert_eq!(fault_target(&s), "any route");
        let s = spec("kind = \"latency\"\nlistener = \"redis\"\nlatency = 100\njitter = 10\ntoxicity = 0.5");
        assert_eq!(fault_effect(&s), "latency 100ms ± 10ms 50%");
        assert_eq!(fault_target(&s), "listener redis");
    }

    #[test]
    fn events_read_with_their_class() {
        let e = Event {
            at_ms: 10_000,
            source: "a".into(),
            kind: EventKind::EndpointEjected {
                cluster: "shop".into(),
                endpoint: "10.0.0.1:80".into(),
                reason: "consecutive-5xx".into(),
                until_ms: 40_000,
            },
        };
        assert_eq!(
            event(&e),
            (
                "endpoint_ejected".into(),
                "shop/10.0.0.1:80 (consecutive-5xx) for 30s".into(),
                EventClass::Warn
            )
        );
    }
}
