//! Loading an experiment from TOML: every problem at once, each with `file:line:column`, the
//! field and a fix, as the sidecar's config errors are written.
//!
//! The experiment is the file's top level, or its `[experiment]` table when it has one (a
//! scenario: the other tables are left to their owners, and the scenario's `title` is the
//! experiment's unless it has its own). `[[slo]]` tables at the top level are the SLOs its
//! probes may name.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use ballast_model::fault::FieldError;
use ballast_model::problems::{self, did_you_mean};
use ballast_model::slo::SloSpec;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::experiment::Experiment;
use crate::spec::{ExperimentSpec, ProbeSpec, StepSpec};
use ballast_model::units::line_col;

/// An experiment loaded from a file, with the SLOs of the file.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub experiment: Experiment,
    pub spec: ExperimentSpec,
    pub slos: Vec<SloSpec>,
}

/// Every problem of a file, rendered with positions:
///
/// ```text
/// exp.toml: 2 errors in the experiment
/// error: exp.toml:6:11: method[0].fault.status: 700 is outside 200-599
///   fix: give an HTTP status such as 503
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadErrors {
    pub file: String,
    /// `(line, column, field, message, fix)`, in file order.
    pub errors: Vec<LoadError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// 1-based; 0 when the problem is the file's as a whole.
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.errors.iter().map(|e| problems::Shown {
            line_col: (e.line > 0).then_some((e.line, e.column)),
            field: &e.field,
            message: &e.message,
            fix: Some(&e.fix),
        });
        problems::write(f, &self.file, "experiment", shown)
    }
}

/// Read and load `path`.
pub fn load_file(path: &std::path::Path) -> Result<Loaded, LoadErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&file, &text),
        Err(e) => Err(LoadErrors {
            file,
            errors: vec![LoadError {
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("cannot read the file: {e}"),
                fix: "check the path and its permissions".into(),
            }],
        }),
    }
}

/// A scenario's experiment: `None` when it has no `[experiment]` table (the scenario runner's
/// entry point; its other tables are left alone).
pub fn parse_scenario(file: &str, text: &str) -> Result<Option<Loaded>, LoadErrors> {
    let (doc, _) = DeTable::parse_recoverable(text);
    if !doc.get_ref().iter().any(|(k, _)| k.get_ref() == "experiment") {
        // Syntax errors, if any, are reported by whoever reads the rest of the scenario.
        return Ok(None);
    }
    parse(file, text).map(Some)
}

/// Load the experiment of `text` (the file `file`, named in messages).
pub fn parse(file: &str, text: &str) -> Result<Loaded, LoadErrors> {
    let mut p = Parser {
        text,
        errors: Vec::new(),
    };
    let result = p.parse();
    match (result, p.errors.is_empty()) {
        (Some(loaded), true) => Ok(loaded),
        _ => {
            let mut errors: Vec<(usize, LoadError)> = p.errors;
            errors.sort_by_key(|(offset, _)| *offset);
            Err(LoadErrors {
                file: file.to_owned(),
                errors: errors.into_iter().map(|(_, e)| e).collect(),
            })
        }
    }
}

const FIELDS: [&str; 9] = [
    "title",
    "description",
    "tags",
    "interval",
    "recovery",
    "steady_state",
    "method",
    "rollbacks",
    "abort",
];

struct Parser<'t> {
    text: &'t str,
    /// With the byte offset they are sorted by.
    errors: Vec<(usize, LoadError)>,
}

/// A list item, if it deserialized, and where it is written.
struct Item<T> {
    value: Option<T>,
    at: Spans,
}

/// An item's span and its keys' (dotted paths into inline tables too).
struct Spans {
    span: Range<usize>,
    keys: HashMap<String, Range<usize>>,
}

impl Parser<'_> {
    fn parse(&mut self) -> Option<Loaded> {
        let (doc, syntax) = DeTable::parse_recoverable(self.text);
        if !syntax.is_empty() {
            for e in syntax {
                self.error(
                    e.span(),
                    "",
                    format!("TOML syntax: {}", e.message().trim()),
                    "fix the TOML syntax at this position",
                );
            }
            return None;
        }
        let doc = doc.into_inner();
        let in_scenario = doc.iter().any(|(k, _)| k.get_ref() == "experiment");
        let prefix = if in_scenario { "experiment." } else { "" };
        let mut slo_items = Vec::new();
        let mut scenario_title = None;
        let mut table: Option<(Range<usize>, DeTable<'_>)> = None;
        let mut top = DeTable::default();
        for (key, value) in doc {
            match key.get_ref().as_ref() {
                "slo" => slo_items = self.items::<SloSpec>(value, "slo"),
                "experiment" => {
                    let span = value.span();
                    match value.into_inner() {
                        DeValue::Table(t) => table = Some((span, t)),
                        other => self.error(
                            Some(span),
                            "experiment",
                            format!("expected a table, found a {}", other.type_str()),
                            "write it as an [experiment] table",
                        ),
                    }
                }
                "title" if in_scenario => scenario_title = self.item::<String>(value, "title"),
                _ if in_scenario => {} // the scenario's other tables are not ours
                _ => {
                    top.insert(key, value);
                }
            }
        }
        let (span, table) = table.unwrap_or((0..0, top));
        let slos = self.slos(slo_items);

        let mut spec = ExperimentSpec::default();
        let mut keys: HashMap<String, Range<usize>> = HashMap::new();
        let mut steady_state = Vec::new();
        let mut abort = Vec::new();
        let mut method = Vec::new();
        let mut rollbacks = Vec::new();
        for (key, value) in table {
            let name = key.get_ref().to_string();
            let path = format!("{prefix}{name}");
            keys.insert(name.clone(), value.span());
            match name.as_str() {
                "title" => spec.title = self.item(value, &path),
                "description" => spec.description = self.item(value, &path),
                "tags" => spec.tags = self.item(value, &path).unwrap_or_default(),
                "interval" => spec.interval = self.item(value, &path),
                "recovery" => spec.recovery = self.item(value, &path),
                "steady_state" => steady_state = self.items::<ProbeSpec>(value, &path),
                "abort" => abort = self.items::<ProbeSpec>(value, &path),
                "method" => method = self.items::<StepSpec>(value, &path),
                "rollbacks" => rollbacks = self.items::<StepSpec>(value, &path),
                other => {
                    let fix = match did_you_mean(other, FIELDS.iter().copied()) {
                        Some(s) => {
                            format!("did you mean `{s}`? (unknown fields are errors, so typos do not pass silently)")
                        }
                        None => format!("remove it; an experiment has {}", FIELDS.join(", ")),
                    };
                    self.error(Some(key.span()), &path, format!("unknown field `{other}`"), &fix);
                }
            }
        }
        if spec.title.is_none() {
            spec.title = scenario_title;
        }
        // Items that did not deserialize are left out of the checks (their error is given);
        // the others keep the index they are written at.
        let (steady_state_spec, ss_index) = kept(&steady_state);
        let (abort_spec, abort_index) = kept(&abort);
        let (method_spec, method_index) = kept(&method);
        let (rollbacks_spec, rollbacks_index) = kept(&rollbacks);
        spec.steady_state = steady_state_spec;
        spec.abort = abort_spec;
        spec.method = method_spec;
        spec.rollbacks = rollbacks_spec;
        let lists: [(&str, Vec<&Spans>, Vec<usize>); 4] = [
            ("steady_state", spans(&steady_state), ss_index),
            ("abort", spans(&abort), abort_index),
            ("method", spans(&method), method_index),
            ("rollbacks", spans(&rollbacks), rollbacks_index),
        ];
        let some_dropped = lists.iter().any(|(_, items, kept)| items.len() != kept.len());
        let result = Experiment::from_spec(&spec, &slos);
        let errors = match result {
            Ok(experiment) if !some_dropped => {
                return Some(Loaded { experiment, spec, slos });
            }
            Ok(_) => return None,
            Err(errors) => errors,
        };
        for e in errors {
            let (list, rest) = split_list(&e.field);
            let located = match list {
                Some((name, i)) => {
                    let (_, items, index) = lists.iter().find(|(n, _, _)| *n == name).expect("a list");
                    let original = index.get(i).copied().unwrap_or(i);
                    let item = items[original];
                    let field = if rest.is_empty() {
                        format!("{prefix}{name}[{original}]")
                    } else {
                        format!("{prefix}{name}[{original}].{rest}")
                    };
                    Some((field, item.span_of(rest)))
                }
                // "method is empty" when its only steps did not deserialize: said already.
                None if e.field == "method" && !lists[2].1.is_empty() => None,
                None => {
                    let top = e.field.split('.').next().unwrap_or_default();
                    let at = keys.get(top).cloned().unwrap_or(span.clone());
                    Some((format!("{prefix}{}", e.field), at))
                }
            };
            if let Some((field, at)) = located {
                self.error(Some(at), &field, e.message, &e.fix);
            }
        }
        None
    }

    /// The file's SLOs, each checked, names unique.
    fn slos(&mut self, items: Vec<Item<SloSpec>>) -> Vec<SloSpec> {
        let mut names = HashSet::new();
        let mut slos = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let Some(slo) = &item.value else { continue };
            let mut errors = slo.validate().err().unwrap_or_default();
            if !names.insert(slo.name.clone()) {
                errors.push(FieldError {
                    field: "name".into(),
                    message: format!("duplicate SLO name {:?}", slo.name),
                    fix: "give each SLO a unique name".into(),
                });
            }
            for e in errors {
                self.error(
                    Some(item.at.span_of(&e.field)),
                    &format!("slo[{i}].{}", e.field),
                    e.message,
                    &e.fix,
                );
            }
            slos.extend(item.value);
        }
        slos
    }

    /// Each item of a list, deserialized on its own so every item's problem is reported.
    fn items<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>, path: &str) -> Vec<Item<T>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) => items
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, v)| {
                    let span = v.span();
                    let mut keys = HashMap::new();
                    key_spans(v.get_ref(), "", &mut keys);
                    Item {
                        value: self.item(v, &format!("{path}[{i}]")),
                        at: Spans { span, keys },
                    }
                })
                .collect(),
            other => {
                self.error(
                    Some(span),
                    path,
                    format!("expected a list, found a {}", other.type_str()),
                    &format!("write it as [[{path}]] tables or a list of inline tables"),
                );
                Vec::new()
            }
        }
    }

    /// Deserialize one value, recording (not returning) its error.
    fn item<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>, path: &str) -> Option<T> {
        problems::deserialize(value, path)
            .map_err(|b| self.error(b.span, &b.field, b.message, &b.fix))
            .ok()
    }

    fn error(&mut self, span: Option<Range<usize>>, field: &str, message: String, fix: &str) {
        let offset = span.map_or(0, |s| s.start);
        let (line, column) = if self.text.is_empty() {
            (0, 0)
        } else {
            line_col(self.text, offset)
        };
        self.errors.push((
            offset,
            LoadError {
                line,
                column,
                field: field.to_owned(),
                message,
                fix: fix.to_owned(),
            },
        ));
    }
}

impl Spans {
    /// The span of a field (the longest written prefix of `field`), else the item's.
    fn span_of(&self, field: &str) -> Range<usize> {
        let mut path = field;
        loop {
            if let Some(span) = self.keys.get(path) {
                return span.clone();
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.span.clone(),
            }
        }
    }
}

fn spans<T>(items: &[Item<T>]) -> Vec<&Spans> {
    items.iter().map(|i| &i.at).collect()
}

/// The values of the items that deserialized, and the written index of each.
fn kept<T: Clone>(items: &[Item<T>]) -> (Vec<T>, Vec<usize>) {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| item.value.clone().map(|v| (v, i)))
        .unzip()
}

/// `method[2].fault.status` to `(Some(("method", 2)), "fault.status")`.
fn split_list(field: &str) -> (Option<(&str, usize)>, &str) {
    let (head, rest) = field.split_once('.').unwrap_or((field, ""));
    let Some((name, index)) = head.strip_suffix(']').and_then(|h| h.split_once('[')) else {
        return (None, field);
    };
    match (name, index.parse()) {
        ("steady_state" | "abort" | "method" | "rollbacks", Ok(i)) => (Some((name, i)), rest),
        _ => (None, field),
    }
}

/// Every key's value span, by dotted path, through inline and nested tables.
fn key_spans(value: &DeValue<'_>, prefix: &str, out: &mut HashMap<String, Range<usize>>) {
    if let DeValue::Table(t) = value {
        for (k, v) in t.iter() {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            out.insert(path.clone(), v.span());
            key_spans(v.get_ref(), &path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scenario of DESIGN.md, as written there.
    const DESIGN_SCENARIO: &str = r#"
title = "checkout survives a slow payment provider"

[target]
spawn_demo_upstream = { listen = "127.0.0.1:8081", paths = { "/api/checkout" = { p50 = "20ms", p99 = "80ms", error_rate = 0.001 } } }
spawn_sidecar = { config = "sidecars/shop.toml" }

[load]
arrival_rate = [{ rate = 200, hold = "30s" }, { rate = 200, hold = "90s" }]
[[load.transaction]]
name = "checkout"
method = "POST"
path = "/api/checkout"
body = '{"cart": "{{random_int 1 1000}}"}'

[[slo]]
name = "checkout-availability"
objective = 0.99
window = "10m"                       # scaled for a two-minute run
alerting = "scaled"                  # the Workbook table, shrunk to the window
sli = { availability = { route = "checkout", source = "sidecar" } }

[experiment]
steady_state = [{ slo = "checkout-availability", burn_rate_below = 2.0 }]
abort = [{ slo = "checkout-availability", burn_rate_above = 50.0, for = "10s" }]
[[experiment.method]]
at = "40s"
duration = "30s"
fault = { kind = "abort", status = 503, percent = 20, route = "checkout", position = "upstream" }

[[threshold]]
expr = "p99 < 500ms"
"#;

    #[test]
    fn the_design_scenario_parses() {
        let loaded = parse("demo.toml", DESIGN_SCENARIO).unwrap();
        let e = &loaded.experiment;
        assert_eq!(e.title, "checkout survives a slow payment provider");
        assert_eq!(
            e.steady_state[0].name,
            "burn rate of SLO checkout-availability over 30s < 2"
        );
        assert_eq!(e.abort[0].sustain, std::time::Duration::from_secs(10));
        assert_eq!(e.method[0].at, std::time::Duration::from_secs(40));
        assert_eq!(e.method_end, std::time::Duration::from_secs(70));
        assert_eq!(loaded.slos.len(), 1);
    }

    #[test]
    fn a_scenario_without_an_experiment_has_none() {
        assert!(
            parse_scenario("s.toml", "title = \"load only\"\n[load]\nrate = 1\n")
                .unwrap()
                .is_none()
        );
        assert!(parse_scenario("s.toml", DESIGN_SCENARIO).unwrap().is_some());
        let bad = DESIGN_SCENARIO.replace("duration = \"30s\"", "duration = \"soon\"");
        let errs = parse_scenario("s.toml", &bad).unwrap_err();
        assert_eq!(errs.errors.len(), 1, "{errs}");
        assert_eq!(errs.errors[0].field, "experiment.method[0].duration", "{errs}");
        assert_eq!((errs.errors[0].line, errs.errors[0].column), (28, 12));
    }

    #[test]
    fn every_problem_has_its_position() {
        let text = r#"title = "x"
intervall = "1s"
steady_state = [{ slo = "missing", burn_rate_below = 2.0 }, { route = "api", p99_below = 250 }]

[[method]]
at = "1s"
duration = "5s"
fault = { kind = "abort", status = 700 }

[[method]]
stop = { pid_fil = "/x.pid" }

[[slo]]
name = "a"
objective = 99.0
window = "1h"
sli = { availability = {} }
"#;
        let errs = parse("exp.toml", text).unwrap_err();
        let shown = errs.to_string();
        for want in [
            "exp.toml: 6 errors in the experiment",
            "error: exp.toml:2:1: intervall: unknown field `intervall`\n  fix: did you mean `interval`?",
            "error: exp.toml:3:25: steady_state[0].slo: no SLO named \"missing\"\n  fix: use one of \"a\"",
            "error: exp.toml:3:90: steady_state[1].p99_below: invalid type: integer `250`",
            "error: exp.toml:8:36: method[0].fault.status: 700 is outside 200-599\n  fix: give an HTTP status such as 503",
            "error: exp.toml:11:8: method[1].stop: unknown field `pid_fil`, expected `pid_file`",
            "error: exp.toml:15:13: slo[0].objective: 99 is outside (0, 1)",
        ] {
            assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
        }
    }

    #[test]
    fn syntax_errors_stop_at_the_syntax() {
        let errs = parse("x.toml", "title = \"a\"\n[[method]\n").unwrap_err();
        assert_eq!(errs.errors.len(), 1, "{errs}");
        assert!(errs.errors[0].message.starts_with("TOML syntax"), "{errs}");
        assert_eq!(errs.errors[0].line, 2);
    }
}
