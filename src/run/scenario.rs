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
//! Placeholders: `{{demo_upstream}}` is the demo upstream's address (`host:port`; it listens on
//! a free port unless `listen` says otherwise), in the sidecar's config and the experiment;
//! `{{sidecar}}` in the load profile is the sidecar's first listener as a URL (or the attached
//! `url`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ballast_model::slo::SloSpec;
use ballast_model::units::HumanDuration;
use serde::Deserialize;

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
    #[serde(default)]
    slo: Vec<toml::Spanned<SloSpec>>,
    /// Checked by the chaos crate's loader.
    #[serde(default)]
    experiment: Option<toml::Value>,
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
    /// The `[load]` section's text is checked here with a stand-in for `{{sidecar}}`, and
    /// again with the real address once the target is up.
    pub has_load: bool,
    pub duration: Option<std::time::Duration>,
    pub slos: Vec<SloSpec>,
    /// Whether there is a chaos experiment (`[experiment]`, offsets from the run's start).
    pub has_experiment: bool,
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

/// The scenario could not be used: every problem, formatted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// What `{{sidecar}}` and `{{demo_upstream}}` stand for while the scenario is checked before
/// the target is up.
const SIDECAR_STAND_IN: &str = "http://127.0.0.1:9";
const DEMO_UPSTREAM_STAND_IN: &str = "127.0.0.1:9";

pub fn load(path: &Path) -> Result<Scenario, Invalid> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Invalid(format!("{name}: cannot read: {e}")))?;
    let spec: ScenarioSpec = toml::from_str(&text).map_err(|e| Invalid(format!("{name}: {e}")))?;
    let mut problems = Vec::new();
    let at = |offset: usize| {
        let (line, col) = line_col(&text, offset);
        format!("{name}:{line}:{col}")
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    if let Some(paths) = spec.target.spawn_demo_upstream.as_ref().and_then(|d| d.paths.as_ref()) {
        for (prefix, b) in paths {
            let problem = if prefix.starts_with('/') {
                b.check().err()
            } else {
                Some("a path prefix starts with '/'".to_owned())
            };
            if let Some(p) = problem {
                problems.push(format!(
                    "{name}: target.spawn_demo_upstream.paths.{prefix:?}: {p}\n  fix: see `ballast demo-upstream --help`"
                ));
            }
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
            match sidecar.into_inner() {
                SidecarSpec {
                    config: Some(file),
                    inline: None,
                } => {
                    let file = base.join(file);
                    match std::fs::read_to_string(&file) {
                        Ok(config) => Some(Target::Spawn {
                            demo_upstream: spec.target.spawn_demo_upstream,
                            sidecar: config,
                            sidecar_dir: file.parent().unwrap_or(Path::new("")).to_path_buf(),
                        }),
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
                } => Some(Target::Spawn {
                    demo_upstream: spec.target.spawn_demo_upstream,
                    sidecar: config,
                    sidecar_dir: base.clone(),
                }),
                _ => {
                    problems.push(format!(
                        "{}: target.spawn_sidecar: give either config or inline\n  fix: config = \"sidecar.toml\" (a file), or inline = '''...''' (the config itself)",
                        at(span.start)
                    ));
                    None
                }
            }
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
    // The sidecar's own config, checked as `ballast validate` would (with the placeholder).
    if let Some(Target::Spawn { sidecar, .. }) = &target {
        let config = sidecar.replace("{{demo_upstream}}", DEMO_UPSTREAM_STAND_IN);
        if let Err(e) = ballast_sidecar::config::parse(&config, &format!("{name} (target sidecar)")) {
            problems.push(e.to_string().trim_end().to_owned());
        }
    }
    let has_load = spec.load.is_some();
    if has_load {
        let checked = text.replace("{{sidecar}}", SIDECAR_STAND_IN);
        if let Err(e) = ballast_loadgen::load_section(&checked, &name, "load") {
            problems.push(e.to_string().trim_end().to_owned());
        }
    } else if spec.duration.is_none() {
        problems.push(format!(
            "{name}: a scenario without [load] needs a duration\n  fix: add duration = \"2m\", or a [load] section"
        ));
    }
    let stood_in = text.replace("{{demo_upstream}}", DEMO_UPSTREAM_STAND_IN);
    let experiment = match ballast_chaos::load::parse_scenario(&name, &stood_in) {
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
    let mut names = std::collections::HashSet::new();
    for (i, slo) in spec.slo.iter().enumerate() {
        let mut errors = slo.get_ref().validate().err().unwrap_or_default();
        if !names.insert(slo.get_ref().name.clone()) {
            errors.push(ballast_model::fault::FieldError {
                field: "name".into(),
                message: format!("duplicate SLO name {:?}", slo.get_ref().name),
                fix: "give each SLO a unique name".into(),
            });
        }
        for e in errors {
            problems.push(format!(
                "{}: slo[{i}].{}: {}\n  fix: {}",
                at(slo.span().start),
                e.field,
                e.message,
                e.fix
            ));
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
        has_load,
        duration: spec.duration.map(|d| d.get()),
        slos: spec.slo.into_iter().map(toml::Spanned::into_inner).collect(),
        has_experiment: experiment.is_some(),
        runs_dir: spec.record.dir,
        text,
    })
}

impl Scenario {
    /// The experiment with `{{demo_upstream}}` standing for the demo upstream's address.
    pub fn experiment(&self, demo_upstream: Option<&str>) -> Result<Option<ballast_chaos::Experiment>, Invalid> {
        if !self.has_experiment {
            return Ok(None);
        }
        let text = self
            .text
            .replace("{{demo_upstream}}", demo_upstream.unwrap_or(DEMO_UPSTREAM_STAND_IN));
        ballast_chaos::load::parse_scenario(&self.path.display().to_string(), &text)
            .map(|l| l.map(|l| l.experiment))
            .map_err(|e| Invalid(e.to_string()))
    }

    /// The load profile with `{{sidecar}}` standing for `url`.
    pub fn profile(&self, url: &str) -> Result<Option<ballast_loadgen::Profile>, Invalid> {
        if !self.has_load {
            return Ok(None);
        }
        let text = self.text.replace("{{sidecar}}", url.trim_end_matches('/'));
        ballast_loadgen::load_section(&text, &self.path.display().to_string(), "load")
            .map(Some)
            .map_err(|e| Invalid(e.to_string()))
    }
}
