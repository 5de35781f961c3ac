//! A scenario as written, and the checks that make it runnable: every problem at once, each
//! with file:line:column, the field and a fix (exit 78).
//!
//! ```toml
//! title = "checkout survives a slow payment provider"
//! [target]
//! spawn_demo_upstream = { paths = { "/api" = { p50 = "20ms", p99 = "80ms" } } }
//! spawn_sidecar = { config = "sidecars/shop.toml" }   # or inline = '''...'''
//! # attach = { admin = "http://127.0.0.1:9901", url = "http://127.0.0.1:8080" }
//! [load]                      # a load profile; base_url = "{{sidecar}}"
//! [[slo]]                     # evaluated live
//! [record]
//! dir = "runs"
//! ```
//!
//! More processes (a Redis, a database) start before the demo upstream and the sidecar:
//!
//! ```toml
//! [[target.process]]
//! name = "redis"
//! command = ["redis-server", "--port", "{{port:redis}}", "--save", ""]
//! ready = "127.0.0.1:{{port:redis}}"     # accepts connections once it is up
//! ```
//!
//! `[[expect]]` names events the run must see, e.g. that a page fires within 30 s of a step:
//! `{ event = "alert_firing", where = { slo = "checkout", severity = "page" }, after = "error
//! burst", within = "30s" }` (see [`super::expect`]).
//!
//! Placeholders (`{{demo_upstream}}`, `{{sidecar}}`, `{{port:NAME}}`, ...) are listed in
//! [`super::placeholders`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ballast_model::slo::SloSpec;
use ballast_model::units::HumanDuration;
use serde::Deserialize;

use super::expect::{ExpectSpec, Expectation};
use super::placeholders::Placeholders;
use crate::demo_upstream::Behaviour;
use ballast_model::units::line_col;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    title: String,
    #[serde(default)]
    description: Option<String>,
    target: TargetSpec,
    #[serde(default)]
    load: Option<toml::Value>,
    /// Without `[load]`: how long to watch the target.
    #[serde(default)]
    duration: Option<HumanDuration>,
    /// Read and checked by the SLO engine's reader of `[[slo]]` tables.
    #[serde(default, rename = "slo")]
    _slo: Vec<toml::Value>,
    /// Checked by the chaos crate's loader.
    #[serde(default)]
    experiment: Option<toml::Value>,
    #[serde(default)]
    expect: Vec<toml::Spanned<ExpectSpec>>,
    #[serde(default)]
    record: RecordSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    #[serde(default)]
    pub spawn_demo_upstream: Option<DemoUpstreamSpec>,
    #[serde(default)]
    pub spawn_sidecar: Option<toml::Spanned<SidecarSpec>>,
    #[serde(default)]
    pub attach: Option<AttachSpec>,
    #[serde(default)]
    pub process: Vec<toml::Spanned<ProcessSpec>>,
}

/// A process the scenario starts before the demo upstream and the sidecar, and stops at the
/// end; an experiment acts on it by `name`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    pub name: String,
    /// The program and its arguments (placeholders filled in).
    pub command: Vec<String>,
    /// A `host:port` that accepts connections once the process is ready; without it the
    /// process counts as ready once started.
    #[serde(default)]
    pub ready: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoUpstreamSpec {
    /// Default: a free loopback port.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Behaviours by path prefix (default: the demo shop's).
    #[serde(default)]
    pub paths: Option<BTreeMap<String, Behaviour>>,
    /// Instances of it (default 1), each on its own port: `{{demo_upstream.N}}`, and
    /// `demo_upstream.N` to an experiment.
    #[serde(default = "one")]
    pub replicas: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarSpec {
    /// A sidecar config file, relative to the scenario.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// The config itself.
    #[serde(default)]
    pub inline: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    /// The sidecar's admin API.
    pub admin: String,
    /// Where clients reach it (for `{{sidecar}}`).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordSpec {
    #[serde(default = "runs_dir")]
    dir: PathBuf,
}

impl Default for RecordSpec {
    fn default() -> Self {
        RecordSpec { dir: runs_dir() }
    }
}

fn runs_dir() -> PathBuf {
    PathBuf::from("runs")
}

/// A checked scenario.
pub struct Scenario {
    pub path: PathBuf,
    pub text: String,
    pub title: String,
    pub description: Option<String>,
    pub target: Target,
    /// Started first, in order.
    pub processes: Vec<ProcessSpec>,
    /// The `[load]` section's text is checked here with stand-ins for the placeholders, and
    /// again with the real addresses once the target is up.
    pub has_load: bool,
    pub duration: Option<std::time::Duration>,
    pub slos: Vec<SloSpec>,
    /// Whether there is a chaos experiment (`[experiment]`, offsets from the run's start).
    pub has_experiment: bool,
    pub expectations: Vec<Expectation>,
    /// Where run folders go (relative to the working directory).
    pub runs_dir: PathBuf,
}

pub enum Target {
    Spawn {
        demo_upstream: Option<DemoUpstreamSpec>,
        /// The sidecar's config text, placeholders still in.
        sidecar: String,
        /// Where the config's relative paths (key files) are resolved.
        sidecar_dir: PathBuf,
    },
    Attach(AttachSpec),
}

impl Target {
    /// How many demo upstreams the target runs.
    pub fn replicas(&self) -> u32 {
        match self {
            Target::Spawn {
                demo_upstream: Some(d), ..
            } => d.replicas,
            _ => 0,
        }
    }
}

/// The scenario could not be used: every problem, formatted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Names a `[[target.process]]` cannot take: the runner's own processes.
fn reserved(name: &str) -> bool {
    name == "sidecar" || name == "demo_upstream" || name.starts_with("demo_upstream.")
}

pub fn load(path: &Path) -> Result<Scenario, Invalid> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Invalid(format!("{name}: cannot read: {e}")))?;
    let spec: ScenarioSpec = toml::from_str(&text).map_err(|e| Invalid(format!("{name}: {e}")))?;
    let mut problems = Vec::new();
    let at = |offset: usize| {
        let (line, col) = line_col(&text, offset);
        format!("{name}:{line}:{col}")
    };
    let base = scenario_dir(path).to_path_buf();
    if let Some(demo) = &spec.target.spawn_demo_upstream {
        for (prefix, b) in demo.paths.iter().flatten() {
            let problem = if prefix.starts_with('/') {
                b.check().err()
            } else {
                Some("a path prefix starts with '/'".to_owned())
            };
            let problem = problem.or_else(|| {
                b.redis
                    .as_ref()
                    .filter(|r| r.contains("{{sidecar}}"))
                    .map(|_| "redis uses {{sidecar}}, which is not known when the demo upstream starts".to_owned())
            });
            if let Some(p) = problem {
                problems.push(format!(
                    "{name}: target.spawn_demo_upstream.paths.{prefix:?}: {p}\n  fix: see `ballast demo-upstream --help`"
                ));
            }
        }
        if !(1..=64).contains(&demo.replicas) {
            problems.push(format!(
                "{name}: target.spawn_demo_upstream.replicas: {} is outside 1..=64\n  fix: replicas = 3",
                demo.replicas
            ));
        } else if demo.replicas > 1 && demo.listen.is_some() {
            problems.push(format!(
                "{name}: target.spawn_demo_upstream: listen names one address for {} replicas\n  fix: remove listen (each replica gets a free port: {{{{demo_upstream.N}}}})",
                demo.replicas
            ));
        }
    }
    let target = match (spec.target.spawn_sidecar, spec.target.attach) {
        (Some(_), Some(_)) | (None, None) => {
            problems.push(format!(
                "{name}: target: give either spawn_sidecar or attach\n  fix: spawn_sidecar = {{ config = \"sidecar.toml\" }}, or attach = {{ admin = \"http://127.0.0.1:9901\" }}"
            ));
            None
        }
        (Some(sidecar), None) => {
            let span = sidecar.span();
            let sidecar = match sidecar.into_inner() {
                SidecarSpec {
                    config: Some(file),
                    inline: None,
                } => {
                    let file = base.join(file);
                    match std::fs::read_to_string(&file) {
                        Ok(config) => Some((config, scenario_dir(&file).to_path_buf())),
                        Err(e) => {
                            problems.push(format!(
                                "{}: target.spawn_sidecar.config: cannot read {}: {e}\n  fix: give a path relative to the scenario",
                                at(span.start),
                                file.display()
                            ));
                            None
                        }
                    }
                }
                SidecarSpec {
                    config: None,
                    inline: Some(config),
                } => Some((config, base.clone())),
                _ => {
                    problems.push(format!(
                        "{}: target.spawn_sidecar: give either config or inline\n  fix: config = \"sidecar.toml\" (a file), or inline = '''...''' (the config itself)",
                        at(span.start)
                    ));
                    None
                }
            };
            sidecar.map(|(sidecar, sidecar_dir)| Target::Spawn {
                demo_upstream: spec.target.spawn_demo_upstream,
                sidecar,
                sidecar_dir,
            })
        }
        (None, Some(attach)) => {
            if spec.target.spawn_demo_upstream.is_some() {
                problems.push(format!(
                    "{name}: target.spawn_demo_upstream: only with spawn_sidecar\n  fix: remove it, or spawn the sidecar too"
                ));
            }
            Some(Target::Attach(attach))
        }
    };
    let replicas = target.as_ref().map_or(0, Target::replicas);
    let sidecar_text = match &target {
        Some(Target::Spawn { sidecar, .. }) => sidecar.as_str(),
        _ => "",
    };
    let stand_in = Placeholders::stand_ins(&[&text, sidecar_text], replicas);
    for missing in Placeholders::missing_replicas(&format!("{text}\n{sidecar_text}"), replicas) {
        problems.push(format!(
            "{name}: {missing}: the demo upstream has {replicas} replica(s)\n  fix: {{{{demo_upstream.0}}}} to {{{{demo_upstream.{}}}}}, or more replicas",
            replicas.max(1) - 1
        ));
    }
    // The sidecar's own config, checked as `ballast validate` would (with the stand-ins).
    if !sidecar_text.is_empty()
        && let Err(e) =
            ballast_sidecar::config::parse(&stand_in.fill(sidecar_text), &format!("{name} (target sidecar)"))
    {
        problems.push(e.to_string().trim_end().to_owned());
    }
    let mut process_names = std::collections::HashSet::new();
    for (i, p) in spec.target.process.iter().enumerate() {
        let here = at(p.span().start);
        let p = p.get_ref();
        let mut complain = |field: &str, message: String, fix: &str| {
            problems.push(format!("{here}: target.process[{i}].{field}: {message}\n  fix: {fix}"));
        };
        if p.name.is_empty() || reserved(&p.name) {
            complain(
                "name",
                format!("{:?} is not a name a process can take", p.name),
                "a name of its own, such as \"redis\" (sidecar and demo_upstream are the runner's)",
            );
        } else if !process_names.insert(p.name.clone()) {
            complain(
                "name",
                format!("two processes are called {:?}", p.name),
                "give each process a unique name",
            );
        }
        match p.command.first() {
            None => complain(
                "command",
                "is empty".into(),
                "command = [\"redis-server\", \"--port\", \"{{port:redis}}\"]",
            ),
            Some(program) if find_program(program, &base).is_none() => complain(
                "command",
                format!("{program:?} is neither on PATH nor a file"),
                "install it (e.g. apt-get install redis-server), or give its path",
            ),
            Some(_) => {}
        }
        let needs_sidecar = p.command.iter().chain(&p.ready).any(|a| a.contains("{{sidecar}}"));
        if needs_sidecar {
            complain(
                "command",
                "uses {{sidecar}}, which is not known yet: processes start before the sidecar".into(),
                "use {{port:NAME}} for the ports it needs, and the same in the sidecar's config",
            );
        }
        if let Some(ready) = &p.ready
            && stand_in.fill(ready).parse::<SocketAddr>().is_err()
        {
            complain(
                "ready",
                format!("{ready:?} is not host:port"),
                "ready = \"127.0.0.1:{{port:redis}}\"",
            );
        }
    }
    let has_load = spec.load.is_some();
    let filled = stand_in.fill(&text);
    if has_load {
        if let Err(e) = ballast_loadgen::load_section(&filled, &name, "load") {
            problems.push(e.to_string().trim_end().to_owned());
        }
    } else if spec.duration.is_none() {
        problems.push(format!(
            "{name}: a scenario without [load] needs a duration\n  fix: add duration = \"2m\", or a [load] section"
        ));
    }
    let experiment = match ballast_chaos::load::parse_scenario(&name, &filled) {
        Ok(loaded) => loaded.map(|l| l.experiment),
        Err(e) => {
            // The `[[slo]]` tables are reported below, once.
            let errors: Vec<_> = e.errors.iter().filter(|x| !x.field.starts_with("slo[")).collect();
            for x in &errors {
                problems.push(format!(
                    "{name}:{}:{}: {}: {}\n  fix: {}",
                    x.line, x.column, x.field, x.message, x.fix
                ));
            }
            None
        }
    };
    if spec.experiment.is_some() && experiment.is_none() && problems.is_empty() {
        problems.push(format!(
            "{name}: [experiment]: not usable\n  fix: see `ballast chaos --help`"
        ));
    }
    // The `[[slo]]` tables, checked as in any file of SLOs.
    let slos = ballast_slo_engine::spec_file::parse(&name, &text).unwrap_or_else(|e| {
        problems.push(e.0);
        Vec::new()
    });
    let steps: Vec<(String, Option<String>)> = experiment
        .iter()
        .flat_map(|e| &e.method)
        .map(|s| (s.label.clone(), s.name.clone()))
        .collect();
    let mut expectations = Vec::new();
    for (i, e) in spec.expect.iter().enumerate() {
        match e.get_ref().check(&steps) {
            Ok(x) => expectations.push(x),
            Err(errors) => {
                for x in errors {
                    problems.push(format!(
                        "{}: expect[{i}].{}: {}\n  fix: {}",
                        at(e.span().start),
                        x.field,
                        x.message,
                        x.fix
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Invalid(problems.join("\n")));
    }
    Ok(Scenario {
        path: path.to_path_buf(),
        title: spec.title,
        description: spec.description,
        target: target.expect("no problems"),
        processes: spec.target.process.into_iter().map(toml::Spanned::into_inner).collect(),
        has_load,
        duration: spec.duration.map(|d| d.get()),
        slos,
        has_experiment: experiment.is_some(),
        expectations,
        runs_dir: spec.record.dir,
        text,
    })
}

/// The folder a scenario's relative paths start from (`.` for a bare file name).
fn scenario_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `program` as a command would find it, as an absolute path: on PATH, or as a path
/// (relative to the scenario).
pub fn find_program(program: &str, base: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        let p = std::path::absolute(base.join(program)).ok()?;
        return p.is_file().then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

impl Scenario {
    /// The experiment with the run's placeholders filled in.
    pub fn experiment(&self, p: &Placeholders) -> Result<Option<ballast_chaos::Experiment>, Invalid> {
        if !self.has_experiment {
            return Ok(None);
        }
        ballast_chaos::load::parse_scenario(&self.path.display().to_string(), &p.fill(&self.text))
            .map(|l| l.map(|l| l.experiment))
            .map_err(|e| Invalid(e.to_string()))
    }

    /// The load profile with the run's placeholders filled in.
    pub fn profile(&self, p: &Placeholders) -> Result<Option<ballast_loadgen::Profile>, Invalid> {
        if !self.has_load {
            return Ok(None);
        }
        ballast_loadgen::load_section(&p.fill(&self.text), &self.path.display().to_string(), "load")
            .map(Some)
            .map_err(|e| Invalid(e.to_string()))
    }

    /// The scenario's directory, where relative paths start.
    pub fn dir(&self) -> &Path {
        scenario_dir(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).unwrap();
        let e = load(&path).err().expect("invalid").0;
        e.replace(&path.display().to_string(), "s.toml")
    }

    const SIDECAR: &str = r#"spawn_sidecar = { inline = '''
[admin]
listen = "127.0.0.1:0"
[[listeners]]
listen = "127.0.0.1:0"
[[routes]]
name = "api"
cluster = "c"
[clusters.c]
endpoints = [{ address = "{{demo_upstream.0}}" }, { address = "{{demo_upstream.2}}" }]
''' }"#;

    #[test]
    fn processes_replicas_and_expectations_are_checked_with_their_places() {
        let text = format!(
            r#"title = "t"
duration = "5s"
[target]
spawn_demo_upstream = {{ replicas = 2 }}
{SIDECAR}

[[target.process]]
name = "sidecar"
command = ["no-such-program-here", "--port", "{{{{port:x}}}}"]
ready = "localhost"

[[target.process]]
name = "proxy"
command = ["sh", "-c", "echo {{{{sidecar}}}}"]

[[expect]]
event = "alert_fired"
after = "crash"
"#
        );
        let p = problems(&text);
        for want in [
            "s.toml: {{demo_upstream.2}}: the demo upstream has 2 replica(s)",
            "s.toml:17:1: target.process[0].name: \"sidecar\" is not a name a process can take",
            "s.toml:17:1: target.process[0].command: \"no-such-program-here\" is neither on PATH nor a file",
            "s.toml:17:1: target.process[0].ready: \"localhost\" is not host:port",
            "s.toml:22:1: target.process[1].command: uses {{sidecar}}, which is not known yet",
            "s.toml:26:1: expect[0].event: \"alert_fired\" is not an event kind",
            "s.toml:26:1: expect[0].after: no experiment step is called \"crash\"",
        ] {
            assert!(p.contains(want), "{want}\nin\n{p}");
        }
    }

    #[test]
    fn replicas_have_bounds_and_no_shared_listen_address() {
        let p = problems(&format!(
            "title = \"t\"\nduration = \"5s\"\n[target]\nspawn_demo_upstream = {{ replicas = 3, listen = \"127.0.0.1:8081\" }}\n{SIDECAR}\n"
        ));
        assert!(p.contains("listen names one address for 3 replicas"), "{p}");
        let p = problems(&format!(
            "title = \"t\"\nduration = \"5s\"\n[target]\nspawn_demo_upstream = {{ replicas = 0 }}\n{SIDECAR}\n"
        ));
        assert!(p.contains("replicas: 0 is outside 1..=64"), "{p}");
    }
}
