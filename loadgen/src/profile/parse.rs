//! Phase one: TOML text to a [`LoadProfile`], collecting every error. serde stops at the first
//! error of whatever it reads, so each top-level key, each list item and each key of a scenario
//! is read on its own first: one mistake does not hide the next.

use std::collections::HashSet;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::spec::{DataSpec, LoadProfile, ScenarioSpec, StageSpec, ThresholdSpec, TransactionSpec};
use crate::error::{ProfileError, did_you_mean};

/// The top-level keys of a profile.
const PROFILE_KEYS: [&str; 20] = [
    "name",
    "base_url",
    "base_urls",
    "timeout",
    "cookies",
    "http2",
    "headers",
    "variables",
    "users",
    "hatch_rate",
    "rate",
    "max_users",
    "stages",
    "duration",
    "iterations",
    "thresholds",
    "data",
    "login",
    "scenarios",
    "transactions",
];

/// What phase one read: the profile without the keys that had errors (so phase two can still
/// check the rest), which keys those were, the span of the profile's table and the prefix of
/// its field paths.
pub(crate) struct Parsed {
    pub spec: LoadProfile,
    pub broken: HashSet<String>,
    pub span: Range<usize>,
    pub prefix: String,
}

/// The profile in `text` (the whole document, or its `[section]` table); `None` if the TOML
/// itself could not be read.
pub(crate) fn parse(text: &str, section: Option<&str>, errors: &mut Vec<ProfileError>) -> Option<Parsed> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        errors.extend(syntax.into_iter().map(|e| {
            ProfileError::new("", e.span(), format!("TOML syntax: {}", e.message().trim()))
                .fix("fix the TOML syntax at this position")
        }));
        return None;
    }
    let doc_span = doc.span();
    let (table, span, prefix) = match section {
        None => (doc.into_inner(), doc_span, String::new()),
        Some(name) => {
            let found = doc.into_inner().into_iter().find(|(k, _)| k.get_ref() == name);
            match found {
                Some((_, v)) => {
                    let span = v.span();
                    match v.into_inner() {
                        DeValue::Table(t) => (t, span, format!("{name}.")),
                        other => {
                            errors.push(
                                ProfileError::new(
                                    name,
                                    Some(span),
                                    format!("expected a table, found a {}", other.type_str()),
                                )
                                .fix(format!("write the load profile as a [{name}] table")),
                            );
                            return None;
                        }
                    }
                }
                None => {
                    errors.push(
                        ProfileError::new("", None, format!("no [{name}] table"))
                            .fix(format!("add a [{name}] table with the load profile")),
                    );
                    return None;
                }
            }
        }
    };
    let mut broken = HashSet::new();
    for (key, value) in table.iter() {
        let before = errors.len();
        check_profile_key(key, value.clone(), &prefix, errors);
        if errors.len() > before {
            let name = key.get_ref().to_string();
            // A misspelt key stands for the key it should be: that one is missing for a reason.
            if let Some(meant) = did_you_mean(&name, PROFILE_KEYS) {
                broken.insert(meant.to_owned());
            }
            broken.insert(name);
        }
    }
    let mut kept = DeTable::new();
    for (k, v) in table {
        if !broken.contains(k.get_ref().as_ref()) {
            kept.insert(k, v);
        }
    }
    let table = kept;
    let whole = Spanned::new(span.clone(), DeValue::Table(table));
    let spec = check::<LoadProfile>(whole, prefix.trim_end_matches('.'), errors)?;
    Some(Parsed {
        spec,
        broken,
        span,
        prefix,
    })
}

/// One top-level key: lists item by item, other keys alone.
fn check_profile_key(
    key: &Spanned<DeString<'_>>,
    value: Spanned<DeValue<'_>>,
    prefix: &str,
    errors: &mut Vec<ProfileError>,
) {
    let name = key.get_ref().as_ref();
    let path = format!("{prefix}{name}");
    match (name, value.get_ref()) {
        ("scenarios", DeValue::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check_scenario(item.clone(), &format!("{path}[{i}]"), errors);
            }
        }
        ("transactions", DeValue::Array(items)) => each::<TransactionSpec>(items.iter(), &path, errors),
        ("stages", DeValue::Array(items)) => each::<StageSpec>(items.iter(), &path, errors),
        ("thresholds", DeValue::Array(items)) => each::<ThresholdSpec>(items.iter(), &path, errors),
        ("login", _) => {
            check::<TransactionSpec>(value, &path, errors);
        }
        ("data", DeValue::Table(sets)) => {
            for (set, v) in sets.iter() {
                check::<DataSpec>(v.clone(), &format!("{path}.{}", set.get_ref()), errors);
            }
        }
        _ => {
            check::<LoadProfile>(alone(key, value), prefix.trim_end_matches('.'), errors);
        }
    }
}

fn check_scenario(value: Spanned<DeValue<'_>>, path: &str, errors: &mut Vec<ProfileError>) {
    let DeValue::Table(table) = value.get_ref() else {
        check::<ScenarioSpec>(value, path, errors);
        return;
    };
    for (key, v) in table.iter() {
        let name = key.get_ref().as_ref();
        match (name, v.get_ref()) {
            ("transactions", DeValue::Array(items)) => {
                each::<TransactionSpec>(items.iter(), &format!("{path}.transactions"), errors)
            }
            ("login", _) => {
                check::<TransactionSpec>(v.clone(), &format!("{path}.login"), errors);
            }
            _ => {
                check::<ScenarioSpec>(alone(key, v.clone()), path, errors);
            }
        }
    }
}

fn each<'a, 'i: 'a, T: DeserializeOwned>(
    items: impl Iterator<Item = &'a Spanned<DeValue<'i>>>,
    path: &str,
    errors: &mut Vec<ProfileError>,
) {
    for (i, item) in items.enumerate() {
        check::<T>(item.clone(), &format!("{path}[{i}]"), errors);
    }
}

/// A table holding one key of another, so that key can be read on its own.
fn alone<'i>(key: &Spanned<DeString<'i>>, value: Spanned<DeValue<'i>>) -> Spanned<DeValue<'i>> {
    let span = value.span();
    let mut t = DeTable::new();
    t.insert(key.clone(), value);
    Spanned::new(span, DeValue::Table(t))
}

/// Deserialize one value, recording (not returning) its error.
fn check<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, path: &str, errors: &mut Vec<ProfileError>) -> Option<T> {
    ballast_model::problems::deserialize(value, path)
        .map_err(|b| errors.push(ProfileError::new(b.field, b.span, b.message).fix(b.fix)))
        .ok()
}
