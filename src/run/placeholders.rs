//! The scenario's placeholders, filled in wherever a scenario names an address it cannot know
//! before the run: the sidecar's inline or referenced config, the load profile, the experiment,
//! the demo upstream's behaviours and the commands of `[[target.process]]`.
//!
//! | placeholder | stands for |
//! |---|---|
//! | `{{sidecar}}` | the sidecar's first listener as a URL (or the attached `url`) |
//! | `{{demo_upstream}}` | the demo upstream's `host:port` (replica 0) |
//! | `{{demo_upstream.N}}` | replica N's `host:port` (with `replicas`) |
//! | `{{port:NAME}}` | a free loopback port, the same one everywhere in the scenario |
//!
//! Ports (and the demo upstream replicas' addresses) are found together by binding
//! `127.0.0.1:0`, and released just before anything starts; fixed ports let a spawned process
//! be restarted where the others look for it. `[[target.process]]` entries and the demo
//! upstream start before the sidecar, so they cannot use `{{sidecar}}`.

use std::collections::BTreeSet;

/// What stands in while a scenario is checked, before anything runs.
const STAND_IN_URL: &str = "http://127.0.0.1:9";
const STAND_IN_PORT: &str = "9";

#[derive(Clone, Debug, Default)]
pub struct Placeholders {
    values: Vec<(String, String)>,
}

impl Placeholders {
    /// Stand-ins for every placeholder `texts` use, for checking a scenario.
    pub fn stand_ins(texts: &[&str], replicas: u32) -> Self {
        let mut p = Placeholders::default();
        p.set("sidecar", STAND_IN_URL);
        // Distinct, so a cluster may list every replica.
        let replicas: Vec<String> = (0..replicas.max(1)).map(|i| format!("127.0.0.1:{}", 9 + i)).collect();
        p.set_demo_upstreams(&replicas);
        for name in port_names(texts) {
            p.set(&format!("port:{name}"), STAND_IN_PORT);
        }
        p
    }

    /// A free loopback port for every `{{port:NAME}}` that `texts` use, and an address for
    /// each of `replicas` demo upstreams (`{{demo_upstream.N}}`).
    pub fn with_free_ports(texts: &[&str], replicas: u32) -> std::io::Result<Self> {
        let mut p = Placeholders::default();
        // Every port is held until all are chosen, so no two share one.
        let mut held = Vec::new();
        let mut free = || -> std::io::Result<std::net::SocketAddr> {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            held.push(listener);
            Ok(addr)
        };
        for name in port_names(texts) {
            p.set(&format!("port:{name}"), &free()?.port().to_string());
        }
        let replicas: Vec<String> = (0..replicas)
            .map(|_| free().map(|a| a.to_string()))
            .collect::<Result<_, _>>()?;
        p.set_demo_upstreams(&replicas);
        Ok(p)
    }

    /// `{{name}}` stands for `value` from now on.
    pub fn set(&mut self, name: &str, value: &str) {
        let key = format!("{{{{{name}}}}}");
        match self.values.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.values.push((key, value.to_owned())),
        }
    }

    /// `{{demo_upstream}}` and `{{demo_upstream.N}}` for each replica's address.
    pub fn set_demo_upstreams(&mut self, addresses: &[String]) {
        for (i, a) in addresses.iter().enumerate() {
            if i == 0 {
                self.set("demo_upstream", a);
            }
            self.set(&format!("demo_upstream.{i}"), a);
        }
    }

    /// The value of `{{name}}`, when it is known.
    pub fn get(&self, name: &str) -> Option<&str> {
        let key = format!("{{{{{name}}}}}");
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    /// `text` with every known placeholder filled in; others (the load profile's templates,
    /// such as `{{random_int 1 9}}`) are left as they are.
    pub fn fill(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (k, v) in &self.values {
            if out.contains(k.as_str()) {
                out = out.replace(k.as_str(), v);
            }
        }
        out
    }

    /// Placeholders of the demo upstream's replicas that a scenario with `replicas` does not
    /// have (`{{demo_upstream.3}}` with three replicas).
    pub fn missing_replicas(text: &str, replicas: u32) -> Vec<String> {
        names(text, "demo_upstream.")
            .into_iter()
            .filter(|n| n.parse::<u32>().map_or(true, |i| i >= replicas.max(1)))
            .map(|n| format!("{{{{demo_upstream.{n}}}}}"))
            .collect()
    }
}

/// The NAMEs of `{{port:NAME}}` in `texts`.
fn port_names(texts: &[&str]) -> BTreeSet<String> {
    texts.iter().flat_map(|t| names(t, "port:")).collect()
}

/// What follows `prefix` in each `{{prefix...}}` of `text`.
fn names(text: &str, prefix: &str) -> BTreeSet<String> {
    let open = format!("{{{{{prefix}");
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        if let Some(end) = rest.find("}}") {
            found.insert(rest[..end].to_owned());
            rest = &rest[end + 2..];
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_the_same_everywhere() {
        let a = "listen = \"127.0.0.1:{{port:redis}}\" and {{port:proxy}}";
        let b = "redis-server --port {{port:redis}}";
        let p = Placeholders::with_free_ports(&[a, b], 2).unwrap();
        let replicas = [p.get("demo_upstream.0").unwrap(), p.get("demo_upstream.1").unwrap()];
        assert_ne!(replicas[0], replicas[1]);
        assert_eq!(p.get("demo_upstream"), Some(replicas[0]));
        let (redis, proxy) = (p.get("port:redis").unwrap(), p.get("port:proxy").unwrap());
        assert_ne!(redis, proxy);
        assert!(redis.parse::<u16>().unwrap() > 0);
        assert_eq!(p.fill(b), format!("redis-server --port {redis}"));
        assert_eq!(p.fill(a), format!("listen = \"127.0.0.1:{redis}\" and {proxy}"));
    }

    #[test]
    fn replicas_and_templates() {
        let mut p = Placeholders::default();
        p.set_demo_upstreams(&["127.0.0.1:1".into(), "127.0.0.1:2".into()]);
        p.set("sidecar", "http://127.0.0.1:3");
        assert_eq!(
            p.fill("{{demo_upstream}} {{demo_upstream.1}} {{sidecar}}/x?n={{random_int 1 9}}"),
            "127.0.0.1:1 127.0.0.1:2 http://127.0.0.1:3/x?n={{random_int 1 9}}"
        );
        assert_eq!(
            Placeholders::missing_replicas("{{demo_upstream.1}} {{demo_upstream.2}} {{demo_upstream.x}}", 2),
            vec!["{{demo_upstream.2}}", "{{demo_upstream.x}}"]
        );
        let stand_in = Placeholders::stand_ins(&["{{port:a}}"], 1);
        assert_eq!(stand_in.fill("{{port:a}} {{demo_upstream.0}}"), "9 127.0.0.1:9");
    }
}
