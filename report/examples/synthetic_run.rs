//! Write a large synthetic run folder for the report's benchmark (`bench/report.sh`):
//!
//! ```sh
//! cargo run --release --example synthetic_run -- DIR [REQUESTS]   # default 10,000,000
//! ```
//!
//! Five routes at 2,000 requests/s each (10,000/s), as long as it takes to reach REQUESTS.
//! Fault `f1` (abort 503 + added latency on checkout) is in place from 40% to 50% of the run:
//! 5% of checkout fails and its latency is five times higher; the page alert fires 30 s into
//! it and resolves 60 s after it ends.

use std::path::PathBuf;
use std::time::Duration;

use ballast_model::fault::{FaultKind, FaultSpec};
use ballast_model::slo::{Severity, SloSpec};
use ballast_model::units::HumanDuration;
use ballast_model::{Event, EventKind};
use ballast_report::synthetic::{self, Req, Spec};

const ROUTES: [&str; 5] = ["cart", "catalog", "checkout", "login", "search"];
const PER_ROUTE: u64 = 2_000;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: synthetic_run DIR [REQUESTS]"));
    let requests: u64 = args
        .next()
        .map_or(10_000_000, |n| n.parse().expect("REQUESTS is a number"));
    let seconds = requests.div_ceil(PER_ROUTE * ROUTES.len() as u64);
    let start = 1_767_225_600_000;
    let (fault_from, fault_to) = (seconds * 4 / 10, seconds / 2);
    let slo: SloSpec = toml::from_str(
        "name = \"checkout-availability\"\nobjective = 0.99\nwindow = \"1d\"\nalerting = \"scaled\"\nsli = { availability = { route = \"checkout\", source = \"loadgen\" } }",
    )
    .map_err(std::io::Error::other)?;
    let ev = |s: u64, source: &str, kind: EventKind| Event {
        at_ms: start + s * 1000,
        source: source.into(),
        kind,
    };
    let fault = FaultSpec {
        kind: FaultKind::Abort,
        status: Some(503),
        percent: Some(5.0),
        route: Some("checkout".into()),
        ttl: Some(HumanDuration(Duration::from_secs(fault_to - fault_from))),
        ..FaultSpec::default()
    };
    let spec = Spec {
        title: format!("synthetic run of {requests} requests"),
        started_at_ms: start,
        seconds,
        routes: ROUTES.map(String::from).into(),
        events: vec![
            ev(
                fault_from,
                "sidecar",
                EventKind::FaultAdded {
                    id: "f1".into(),
                    spec: Box::new(fault),
                    expires_at_ms: Some(start + fault_to * 1000),
                },
            ),
            ev(
                fault_from + 30,
                "slo",
                EventKind::AlertFiring {
                    slo: slo.name.clone(),
                    severity: Severity::Page,
                    burn_long: 5.0,
                    burn_short: 5.0,
                },
            ),
            ev(fault_to, "sidecar", EventKind::FaultExpired { id: "f1".into() }),
            ev(
                fault_to + 60,
                "slo",
                EventKind::AlertResolved {
                    slo: slo.name.clone(),
                    severity: Severity::Page,
                },
            ),
        ],
        slos: vec![slo],
        sidecar_rows: true,
        exemplars: true,
    };
    let mut left = requests;
    synthetic::write(&dir, &spec, |s, route| {
        let n = PER_ROUTE.min(left) as usize;
        left -= n as u64;
        let hit = route == "checkout" && (fault_from..fault_to).contains(&s);
        (0..n)
            .map(|k| {
                // A cheap, stable spread: 5..25 ms with a long tail every 200th request (below p99, so
                // the per-second p99 does not flip between body and tail).
                let h = (s.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)) >> 40;
                let mut ms = 5.0 + (h % 20_000) as f64 / 1000.0;
                if h.is_multiple_of(200) {
                    ms *= 8.0;
                }
                if hit {
                    ms *= 5.0;
                    if k.is_multiple_of(20) {
                        return Req::failed(2.0, Some(503), "unexpected-status");
                    }
                }
                Req::ok(ms)
            })
            .collect()
    })
}
