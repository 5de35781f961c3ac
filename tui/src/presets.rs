//! Faults the faults view offers, ready to go on a route: the common ways to break a
//! service in a drill. Each lives 5 minutes unless cleared (the sidecar's default TTL, said
//! explicitly so the confirmation can say it).

use ballast_model::FaultSpec;

pub struct Preset {
    pub label: &'static str,
    /// The spec without route and TTL, as TOML.
    spec: &'static str,
}

pub const TTL: &str = "5m";

pub const PRESETS: &[Preset] = &[
    Preset {
        label: "abort 503 on 10% of requests",
        spec: "kind = \"abort\"\nstatus = 503\npercent = 10",
    },
    Preset {
        label: "abort 503 on 50% of requests",
        spec: "kind = \"abort\"\nstatus = 503\npercent = 50",
    },
    Preset {
        label: "abort 500 on every request",
        spec: "kind = \"abort\"\nstatus = 500",
    },
    Preset {
        label: "delay 250 ms on every request",
        spec: "kind = \"delay\"\ndelay = \"250ms\"",
    },
    Preset {
        label: "slow tail: p50 50 ms, p99 1 s",
        spec: "kind = \"delay\"\np50 = \"50ms\"\np99 = \"1s\"",
    },
    Preset {
        label: "reset 5% of connections",
        spec: "kind = \"reset\"\npercent = 5",
    },
    Preset {
        label: "upstream 503 on 20% (retries and ejection react)",
        spec: "kind = \"abort\"\nstatus = 503\npercent = 20\nposition = \"upstream\"",
    },
];

impl Preset {
    /// The spec for `route`, with the TTL.
    pub fn spec(&self, route: &str) -> FaultSpec {
        let mut spec: FaultSpec = toml::from_str(self.spec).expect("presets are valid TOML");
        spec.route = Some(route.to_owned());
        spec.ttl = Some(TTL.parse().expect("a duration"));
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_fault() {
        for p in PRESETS {
            let spec = p.spec("checkout");
            assert!(spec.validate().is_ok(), "{}: {:?}", p.label, spec.validate().err());
            assert_eq!(spec.route.as_deref(), Some("checkout"));
        }
    }
}
