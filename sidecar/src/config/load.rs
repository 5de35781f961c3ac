//! Phase one: TOML text to spec structs, one section and one list item at a time.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Config;
use super::error::{ConfigError, ConfigErrors, did_you_mean};
use super::spec::{
    AdminSpec, ClusterSpec, FaultLimitsSpec, ListenerSpec, RouteSpec, RuntimeSpec, TcpListenerSpec, TelemetrySpec,
};
use super::validate::validate;

/// Every section of the file, as written.
#[derive(Debug, Default)]
pub struct FileSpec {
    pub runtime: RuntimeSpec,
    pub admin: AdminSpec,
    pub telemetry: TelemetrySpec,
    /// Span of the whole document, for errors about something missing.
    pub listeners: Option<Spanned<Vec<Option<ListenerSpec>>>>,
    pub routes: Vec<Option<RouteSpec>>,
    /// `None` where the item failed to deserialize: validation skips it instead of inventing
    /// follow-up errors (a route naming a cluster that had a typo is not "unknown").
    pub clusters: Vec<(Spanned<String>, Option<ClusterSpec>)>,
    pub tcp_listeners: Vec<Option<TcpListenerSpec>>,
    pub fault_limits: FaultLimitsSpec,
    pub faults: Vec<Option<Located<ballast_model::FaultSpec>>>,
    pub slos: Vec<Option<Located<ballast_model::slo::SloSpec>>>,
    pub auth: Option<super::auth::AuthSpec>,
    /// The config file's folder: key files named in it are relative to it.
    pub base_dir: std::path::PathBuf,
}

/// A list item whose checks live in the model (faults, SLOs), with where each of its keys is,
/// so a field error points at the field.
#[derive(Debug)]
pub struct Located<T> {
    pub spec: T,
    pub span: std::ops::Range<usize>,
    pub keys: std::collections::HashMap<String, std::ops::Range<usize>>,
}

impl<T> Located<T> {
    /// The span of a field (of its top-level key, for `sli.latency.threshold`) if it was
    /// written, else of the whole item.
    pub fn span_of(&self, field: &str) -> std::ops::Range<usize> {
        let key = field.split(['.', '[']).next().unwrap_or(field);
        self.keys.get(key).cloned().unwrap_or_else(|| self.span.clone())
    }
}

const SECTIONS: [&str; 11] = [
    "runtime",
    "admin",
    "telemetry",
    "listeners",
    "routes",
    "clusters",
    "tcp_listeners",
    "fault_limits",
    "faults",
    "slo",
    "auth",
];

/// Parse and validate config text; `file` names it in error messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut spec = parse_spec(text, &mut errors);
    if let Some(s) = spec.as_mut() {
        s.base_dir = std::path::Path::new(file).parent().map(Into::into).unwrap_or_default();
    }
    // After a syntax error the document is partial: semantic checks would only add noise.
    let config = spec.and_then(|spec| validate(spec, &mut errors));
    if errors.is_empty() {
        Ok(config.expect("validation without errors yields a config"))
    } else {
        errors.sort_by_key(|e| e.span.as_ref().map_or(0, |s| s.start));
        Err(ConfigErrors::new(file, text, errors))
    }
}

fn parse_spec(text: &str, errors: &mut Vec<ConfigError>) -> Option<FileSpec> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        errors.extend(syntax.into_iter().map(|e| {
            ConfigError::new("", e.span(), format!("TOML syntax: {}", e.message().trim()))
                .hint("fix the TOML syntax at this position")
        }));
        return None;
    }
    let mut spec = FileSpec::default();
    for (key, value) in doc.into_inner() {
        let name = key.get_ref().as_ref();
        match name {
            "runtime" => spec.runtime = item(value, "runtime", errors).unwrap_or_default(),
            "admin" => spec.admin = item(value, "admin", errors).unwrap_or_default(),
            "telemetry" => spec.telemetry = item(value, "telemetry", errors).unwrap_or_default(),
            "listeners" => {
                let span = value.span();
                let items = array(value, "listeners", errors).into_iter();
                let listeners = items
                    .enumerate()
                    .map(|(i, v)| item(v, &format!("listeners[{i}]"), errors));
                spec.listeners = Some(Spanned::new(span, listeners.collect()));
            }
            "routes" => {
                let items = array(value, "routes", errors).into_iter().enumerate();
                spec.routes = items.map(|(i, v)| item(v, &format!("routes[{i}]"), errors)).collect();
            }
            "clusters" => {
                for (name, v) in table(value, "clusters", errors) {
                    let path = format!("clusters.{}", name.get_ref());
                    let cluster = item(v, &path, errors);
                    spec.clusters
                        .push((Spanned::new(name.span(), name.get_ref().to_string()), cluster));
                }
            }
            "tcp_listeners" => {
                let items = array(value, "tcp_listeners", errors).into_iter().enumerate();
                spec.tcp_listeners = items
                    .map(|(i, v)| item(v, &format!("tcp_listeners[{i}]"), errors))
                    .collect();
            }
            "fault_limits" => spec.fault_limits = item(value, "fault_limits", errors).unwrap_or_default(),
            "faults" => spec.faults = located_items(value, "faults", errors),
            "slo" => spec.slos = located_items(value, "slo", errors),
            "auth" => spec.auth = item(value, "auth", errors),
            other => {
                let mut err = ConfigError::new(other, Some(key.span()), format!("unknown section {other:?}"));
                err = match did_you_mean(other, SECTIONS) {
                    Some(s) => err.hint(format!("did you mean {s:?}?")),
                    None => err.hint(format!("known sections are {}", SECTIONS.join(", "))),
                };
                errors.push(err);
            }
        }
    }
    Some(spec)
}

/// A list of items checked by the model, each with its keys' spans.
fn located_items<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<Option<Located<T>>> {
    let items = array(value, path, errors).into_iter().enumerate();
    items
        .map(|(i, v)| {
            let span = v.span();
            let keys = match v.get_ref() {
                DeValue::Table(t) => t.iter().map(|(k, v)| (k.get_ref().to_string(), v.span())).collect(),
                _ => Default::default(),
            };
            item(v, &format!("{path}[{i}]"), errors).map(|spec| Located { spec, span, keys })
        })
        .collect()
}

/// Deserialize one value, recording (not returning) its error.
fn item<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, path: &str, errors: &mut Vec<ConfigError>) -> Option<T> {
    ballast_model::problems::deserialize(value, path)
        .map_err(|b| errors.push(ConfigError::new(b.field, b.span, b.message).hint(b.fix)))
        .ok()
}

fn array<'i>(value: Spanned<DeValue<'i>>, path: &str, errors: &mut Vec<ConfigError>) -> Vec<Spanned<DeValue<'i>>> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items.iter().cloned().collect(),
        other => {
            errors.push(
                ConfigError::new(
                    path,
                    Some(span),
                    format!("expected a list, found a {}", other.type_str()),
                )
                .hint(format!("write it as [[{path}]] tables")),
            );
            Vec::new()
        }
    }
}

type Entries<'i> = Vec<(Spanned<toml::de::DeString<'i>>, Spanned<DeValue<'i>>)>;

fn table<'i>(value: Spanned<DeValue<'i>>, path: &str, errors: &mut Vec<ConfigError>) -> Entries<'i> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(t) => t.into_iter().collect(),
        other => {
            errors.push(
                ConfigError::new(
                    path,
                    Some(span),
                    format!("expected a table, found a {}", other.type_str()),
                )
                .hint(format!("write it as [{path}.<name>] tables")),
            );
            Vec::new()
        }
    }
}

/// serde's messages name the problem; add the fix where we can tell it.
pub fn serde_error(path: &str, span: Option<std::ops::Range<usize>>, message: &str) -> ConfigError {
    let (message, fix) = ballast_model::problems::serde_fix(message);
    ConfigError::new(path, span, message).hint(fix)
}
