//! Phase two: check a [`LoadProfile`] and build the typed [`Profile`]: URLs, the load shape,
//! templates (compiled against the declared variables and data sets), data and body files,
//! thresholds. Every problem is recorded; nothing stops at the first.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method};
use toml::Spanned;
use url::Url;

use super::parse::Parsed;
use super::spec::{LoadProfile, ScenarioSpec, StageSpec, ThinkSpec, TransactionSpec};
use super::{Body, Capture, CaptureFrom, Profile, Scenario, Think, Transaction, UserVariable};
use crate::data::DataSet;
use crate::error::ProfileError;
use crate::shape::{Shape, Stage};
use crate::template::{Names, Template};
use crate::threshold::Threshold;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

struct Checker<'a> {
    prefix: &'a str,
    errors: &'a mut Vec<ProfileError>,
    /// Top-level keys phase one could not read.
    broken: &'a HashSet<String>,
}

impl Checker<'_> {
    fn broken(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.broken.contains(*k))
    }

    fn push(&mut self, path: &str, span: Option<Range<usize>>, message: impl Into<String>, fix: impl Into<String>) {
        let path = format!("{}{path}", self.prefix);
        self.errors
            .push(ProfileError::new(path.trim_end_matches('.'), span, message).fix(fix));
    }

    fn at<T>(&mut self, path: &str, value: &Spanned<T>, message: impl Into<String>, fix: impl Into<String>) {
        self.push(path, Some(value.span()), message, fix);
    }
}

/// Check what phase one read. Keys it could not read are left out, and so are the checks that
/// would only repeat their errors (a missing base URL when `base_url` had a type error).
pub(super) fn check(parsed: Parsed, base_dir: &Path, errors: &mut Vec<ProfileError>) -> Option<Profile> {
    let Parsed {
        spec,
        broken,
        span,
        prefix,
    } = parsed;
    let before = errors.len();
    let mut c = Checker {
        prefix: &prefix,
        errors,
        broken: &broken,
    };
    let whole = Some(span.start..span.start);

    let base_urls = base_urls(&spec, &mut c, whole.clone());
    let timeout = match &spec.timeout {
        Some(t) if t.get_ref().get().is_zero() => {
            c.at(
                "timeout",
                t,
                "timeout is zero",
                "give a positive duration such as \"10s\"",
            );
            DEFAULT_TIMEOUT
        }
        Some(t) => t.get_ref().get(),
        None => DEFAULT_TIMEOUT,
    };
    let shape = shape(&spec, &mut c, whole.clone());
    // When the shape has errors, `rate` still says which model was meant.
    let open = matches!(shape, Some(Shape::Open { .. })) || (shape.is_none() && spec.rate.is_some());

    // Data sets first: templates name their columns.
    let mut data = Vec::new();
    for (name, set) in &spec.data {
        let path = format!("data.{name}");
        if !is_identifier(name) {
            c.at(
                &path,
                set,
                format!("data set name {name:?} is not a plain name"),
                "use letters, digits, '_' and '-'",
            );
            continue;
        }
        let file = &set.get_ref().file;
        match DataSet::load(name, &base_dir.join(file.get_ref()), set.get_ref().order) {
            Ok(d) => data.push(Arc::new(d)),
            Err(e) => c.at(
                &format!("{path}.file"),
                file,
                e,
                "give a CSV file with a header row, relative to the profile",
            ),
        }
    }

    // Variable names: declared, or captured from answers.
    let mut variables: Vec<String> = Vec::new();
    let mut declare = |c: &mut Checker, path: &str, name: &str, span: Range<usize>, declared_once: bool| {
        if !is_identifier(name) {
            c.push(
                path,
                Some(span),
                format!("variable name {name:?} is not a plain name"),
                "use letters, digits, '_' and '-'",
            );
        } else if !variables.iter().any(|v| v == name) {
            variables.push(name.to_owned());
        } else if declared_once {
            c.push(
                path,
                Some(span),
                format!("variable {name:?} is declared twice"),
                "give each variable one declaration",
            );
        }
    };
    for (name, v) in &spec.variables {
        declare(&mut c, &format!("variables.{name}"), name, v.span(), true);
    }
    for (i, s) in spec.scenarios.iter().enumerate() {
        for (name, v) in &s.get_ref().variables {
            declare(
                &mut c,
                &format!("scenarios[{i}].variables.{name}"),
                name,
                v.span(),
                true,
            );
        }
    }
    let all_transactions = transaction_specs(&spec);
    for (path, t) in &all_transactions {
        for (name, from) in &t.get_ref().capture {
            declare(&mut c, &format!("{path}.capture.{name}"), name, from.span(), false);
        }
    }
    let names = Names {
        vars: &variables,
        data: &data,
        // Names declared in parts that could not be read are not known: do not call them
        // unknown.
        lenient_vars: c.broken(&["variables", "login", "transactions", "scenarios"]),
        lenient_data: c.broken(&["data"]),
    };

    let mut user_variables = Vec::new();
    let mut variable = |c: &mut Checker, path: String, name: &str, v: &Spanned<String>, scenario: Option<usize>| {
        let Some(slot) = variables.iter().position(|n| n == name) else {
            return;
        };
        match Template::compile(v.get_ref(), &names) {
            Ok(t) if t.uses_variables() => c.at(
                &path,
                v,
                format!("variable {name:?} uses another variable"),
                "build variables from {{uuid}}, {{user}}, {{seq}}, {{random_int A B}} and data sets only",
            ),
            Ok(template) => user_variables.push(UserVariable {
                slot,
                scenario,
                template,
            }),
            Err(e) => c.at(&path, v, e.message, e.fix),
        }
    };
    for (name, v) in &spec.variables {
        variable(&mut c, format!("variables.{name}"), name, v, None);
    }
    for (i, s) in spec.scenarios.iter().enumerate() {
        for (name, v) in &s.get_ref().variables {
            variable(&mut c, format!("scenarios[{i}].variables.{name}"), name, v, Some(i));
        }
    }

    // Transactions, scenarios and logins.
    let mut txs: Vec<Arc<Transaction>> = Vec::new();
    let mut tx_names: HashSet<String> = HashSet::new();
    let mut build = |c: &mut Checker, path: &str, t: &Spanned<TransactionSpec>, default_name: Option<&str>| {
        let tx = transaction(
            c,
            path,
            t,
            txs.len(),
            &spec.headers,
            default_name,
            &names,
            base_dir,
            open,
        )?;
        if !tx_names.insert(tx.name.clone()) {
            let span = t.get_ref().name.as_ref().map_or(t.span(), Spanned::span);
            c.push(
                path,
                Some(span),
                format!("transaction name {:?} is used twice", tx.name),
                "give each transaction its own `name` (results are kept by name)",
            );
            return None;
        }
        let tx = Arc::new(tx);
        txs.push(tx.clone());
        Some(tx)
    };
    let top_login = spec
        .login
        .as_ref()
        .and_then(|l| build(&mut c, "login", l, Some("login")));
    let mut scenarios = Vec::new();
    match (spec.scenarios.is_empty(), spec.transactions.is_empty()) {
        (true, true) if c.broken(&["transactions", "scenarios"]) => {}
        (true, true) => c.push(
            "",
            whole.clone(),
            "no transactions",
            "add [[transactions]] (method, path), or [[scenarios]] with their own [[scenarios.transactions]]",
        ),
        (false, false) => c.push(
            "transactions",
            spec.transactions.first().map(Spanned::span),
            "both [[transactions]] and [[scenarios]]",
            "put these transactions in a scenario of their own",
        ),
        (true, false) => {
            let transactions = spec
                .transactions
                .iter()
                .enumerate()
                .filter_map(|(i, t)| build(&mut c, &format!("transactions[{i}]"), t, None))
                .collect();
            scenarios.push(Scenario {
                name: "default".into(),
                weight: 1,
                login: top_login.clone(),
                transactions,
            });
        }
        (false, true) => {
            let mut seen = HashSet::new();
            for (i, s) in spec.scenarios.iter().enumerate() {
                let path = format!("scenarios[{i}]");
                let ScenarioSpec {
                    name,
                    weight,
                    login,
                    transactions,
                    ..
                } = s.get_ref();
                let name_text = name
                    .as_ref()
                    .map_or_else(|| format!("scenario-{i}"), |n| n.get_ref().clone());
                if !seen.insert(name_text.clone()) {
                    c.push(
                        &format!("{path}.name"),
                        name.as_ref().map(Spanned::span),
                        format!("scenario name {name_text:?} is used twice"),
                        "give each scenario its own name",
                    );
                }
                let weight = positive(&mut c, &format!("{path}.weight"), weight.as_ref(), 1);
                if transactions.is_empty() {
                    c.at(
                        &path,
                        s,
                        format!("scenario {name_text:?} has no transactions"),
                        "add [[scenarios.transactions]] tables after it",
                    );
                }
                let login = match login {
                    Some(l) if open => {
                        c.at(&format!("{path}.login"), l, "a scenario login with an arrival rate", "with `rate`, every user sends every scenario's requests: move the login to the top-level [login]");
                        None
                    }
                    Some(l) => build(&mut c, &format!("{path}.login"), l, Some(&format!("{name_text}-login"))),
                    None => top_login.clone(),
                };
                let transactions = transactions
                    .iter()
                    .enumerate()
                    .filter_map(|(j, t)| build(&mut c, &format!("{path}.transactions[{j}]"), t, None))
                    .collect();
                scenarios.push(Scenario {
                    name: name_text,
                    weight,
                    login,
                    transactions,
                });
            }
        }
    }

    let tx_name_list: Vec<&str> = txs.iter().map(|t| t.name.as_str()).collect();
    let mut thresholds = Vec::new();
    for (i, t) in spec.thresholds.iter().enumerate() {
        match Threshold::parse(&t.get_ref().expr, &tx_name_list) {
            Ok(mut th) => {
                th.abort_after = t.get_ref().abort_after.map(|d| d.get());
                if th.abort_after.is_some_and(|d| d < Duration::from_secs(1)) {
                    c.at(
                        &format!("thresholds[{i}].abort_after"),
                        t,
                        "abort_after is under a second",
                        "thresholds are checked each second: give at least \"1s\"",
                    );
                }
                thresholds.push(th);
            }
            Err((message, _))
                if message.starts_with("no transaction named") && c.broken(&["login", "transactions", "scenarios"]) => {
            }
            Err((message, fix)) => c.at(&format!("thresholds[{i}]"), t, message, fix),
        }
    }

    if errors.len() > before {
        return None;
    }
    Some(Profile {
        name: spec.name.unwrap_or_else(|| "load".into()),
        base_urls,
        timeout,
        cookies: spec.cookies.unwrap_or(false),
        http2: spec.http2.unwrap_or(false),
        shape: shape?,
        scenarios,
        thresholds,
        transactions: txs,
        variables,
        user_variables,
        data,
    })
}

fn base_urls(spec: &LoadProfile, c: &mut Checker, whole: Option<Range<usize>>) -> Vec<Url> {
    let written: Vec<(String, &Spanned<String>)> = match (&spec.base_url, &spec.base_urls) {
        (Some(u), None) => vec![("base_url".into(), u)],
        (None, Some(list)) if !list.get_ref().is_empty() => list
            .get_ref()
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("base_urls[{i}]"), u))
            .collect(),
        (None, Some(list)) => {
            c.at("base_urls", list, "base_urls is empty", "list at least one URL");
            return Vec::new();
        }
        (Some(u), Some(_)) => {
            c.at(
                "base_url",
                u,
                "both base_url and base_urls",
                "keep one: base_urls = [...] for several targets",
            );
            return Vec::new();
        }
        (None, None) => {
            if !c.broken(&["base_url", "base_urls"]) {
                c.push("", whole, "no base_url", "add base_url = \"http://127.0.0.1:8080\"");
            }
            return Vec::new();
        }
    };
    let mut urls = Vec::new();
    for (path, u) in written {
        match Url::parse(u.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => urls.push(url),
            Ok(_) => c.at(
                &path,
                u,
                format!("{:?} is not an http(s) URL with a host", u.get_ref()),
                "write it like \"http://127.0.0.1:8080\"",
            ),
            Err(e) => c.at(
                &path,
                u,
                format!("invalid URL {:?}: {e}", u.get_ref()),
                "write it like \"http://127.0.0.1:8080\"",
            ),
        }
    }
    urls
}

/// The load shape from `users`/`rate`, `hatch_rate`, `duration`, `iterations`, `max_users`
/// and `stages`.
fn shape(spec: &LoadProfile, c: &mut Checker, whole: Option<Range<usize>>) -> Option<Shape> {
    if c.broken(&[
        "users",
        "rate",
        "hatch_rate",
        "stages",
        "duration",
        "iterations",
        "max_users",
    ]) {
        return None;
    }
    let before = c.errors.len();
    let not_with_stages = |c: &mut Checker, key: &str, span: Option<Range<usize>>| {
        c.push(
            key,
            span,
            format!("`{key}` with `stages`"),
            "the stages set the shape: remove it, or remove `stages`",
        );
    };
    let (stages, open) = if let Some(stages) = &spec.stages {
        for (key, span) in [
            ("users", spec.users.as_ref().map(Spanned::span)),
            ("rate", spec.rate.as_ref().map(Spanned::span)),
            ("hatch_rate", spec.hatch_rate.as_ref().map(Spanned::span)),
            ("duration", spec.duration.as_ref().map(Spanned::span)),
            ("iterations", spec.iterations.as_ref().map(Spanned::span)),
        ] {
            if span.is_some() {
                not_with_stages(c, key, span);
            }
        }
        if stages.get_ref().is_empty() {
            c.at(
                "stages",
                stages,
                "stages is empty",
                "add stages such as { users = 10, ramp = \"10s\" }",
            );
            return None;
        }
        let mut kind = None;
        let mut out = Vec::new();
        for (i, s) in stages.get_ref().iter().enumerate() {
            if let Some(stage) = stage(c, i, s, &mut kind) {
                out.push(stage);
            }
        }
        if out.iter().all(|s| s.target == 0.0) && c.errors.len() == before {
            c.at(
                "stages",
                stages,
                "no stage has any load",
                "give a stage users or a rate above 0",
            );
        }
        (out, kind == Some(true))
    } else {
        let duration = spec.duration.as_ref().map(|d| d.get_ref().get());
        if let Some(d) = &spec.duration
            && d.get_ref().get().is_zero()
        {
            c.at(
                "duration",
                d,
                "duration is zero",
                "give a positive duration such as \"30s\"",
            );
        }
        match (&spec.duration, &spec.iterations) {
            (None, None) if spec.users.is_some() || spec.rate.is_some() => c.push(
                "",
                whole.clone(),
                "neither duration nor iterations",
                "add duration = \"30s\", or iterations = 100",
            ),
            (Some(_), Some(i)) => c.at(
                "iterations",
                i,
                "both duration and iterations",
                "keep one: the run ends by time or by count",
            ),
            (_, Some(i)) if *i.get_ref() == 0 => c.at("iterations", i, "iterations is 0", "give at least 1"),
            _ => {}
        }
        match (&spec.users, &spec.rate) {
            (Some(users), None) => {
                let n = *users.get_ref();
                if n == 0 {
                    c.at("users", users, "users is 0", "give at least 1 user");
                }
                let ramp = match &spec.hatch_rate {
                    Some(h) if *h.get_ref() <= 0.0 || !h.get_ref().is_finite() => {
                        c.at(
                            "hatch_rate",
                            h,
                            "hatch_rate must be above 0",
                            "give users started per second, e.g. hatch_rate = 10",
                        );
                        0.0
                    }
                    Some(h) => (n as f64 / h.get_ref()).ceil(),
                    None => 0.0,
                };
                let ramp = Duration::from_secs_f64(ramp);
                if let (Some(d), Some(total)) = (&spec.duration, duration)
                    && ramp > total
                {
                    c.at(
                        "duration",
                        d,
                        format!(
                            "starting {n} users at hatch_rate takes {}s, longer than the duration",
                            ramp.as_secs()
                        ),
                        "raise hatch_rate or the duration (it includes the ramp)",
                    );
                }
                let mut stages = vec![Stage {
                    target: n as f64,
                    duration: ramp,
                    ramp: true,
                }];
                if let Some(total) = duration {
                    stages.push(Stage {
                        target: n as f64,
                        duration: total.saturating_sub(ramp),
                        ramp: false,
                    });
                }
                (stages, false)
            }
            (None, Some(rate)) => {
                let r = *rate.get_ref();
                if r <= 0.0 || !r.is_finite() {
                    c.at(
                        "rate",
                        rate,
                        "rate must be above 0",
                        "give requests per second, e.g. rate = 100",
                    );
                }
                if let Some(h) = &spec.hatch_rate {
                    c.at(
                        "hatch_rate",
                        h,
                        "hatch_rate with an arrival rate",
                        "hatch_rate starts users (closed model): remove it, or use stages to ramp the rate",
                    );
                }
                let secs = match (duration, &spec.iterations) {
                    (Some(d), _) => d,
                    (None, Some(n)) if r > 0.0 => Duration::from_secs_f64(*n.get_ref() as f64 / r),
                    _ => Duration::ZERO,
                };
                (
                    vec![Stage {
                        target: r,
                        duration: secs,
                        ramp: false,
                    }],
                    true,
                )
            }
            (Some(u), Some(_)) => {
                c.at("users", u, "both users and rate", "users for a closed model (each user waits for its answers), rate for an open model (requests per second)");
                return None;
            }
            (None, None) => {
                c.push(
                    "",
                    whole,
                    "no load shape",
                    "add users = 10 (closed model) or rate = 100 (requests per second), with a duration; or stages",
                );
                return None;
            }
        }
    };
    if let Some(m) = &spec.max_users {
        if !open {
            c.at(
                "max_users",
                m,
                "max_users without an arrival rate",
                "max_users sizes the open model's pool: remove it, or use rate",
            );
        } else if *m.get_ref() == 0 {
            c.at("max_users", m, "max_users is 0", "give at least 1");
        }
    }
    if !open {
        for (i, s) in stages.iter().enumerate() {
            if s.duration.subsec_nanos() != 0 && spec.stages.is_some() {
                let span = spec
                    .stages
                    .as_ref()
                    .and_then(|st| st.get_ref().get(i))
                    .map(Spanned::span);
                c.push(
                    &format!("stages[{i}]"),
                    span,
                    format!("{:?} is not a whole number of seconds", s.duration),
                    "goose's test plans count whole seconds: round it",
                );
            }
        }
    }
    if c.errors.len() > before {
        return None;
    }
    let iterations = spec.iterations.as_ref().map(|i| *i.get_ref());
    Some(if open {
        let peak = stages.iter().map(|s| s.target).fold(0.0, f64::max);
        let max_users = spec.max_users.as_ref().map_or_else(
            || ((peak / 10.0).ceil() as usize).clamp(10, 1000),
            |m| *m.get_ref() as usize,
        );
        Shape::Open {
            stages,
            iterations,
            max_users,
        }
    } else {
        Shape::Closed { stages, iterations }
    })
}

/// One stage; `open` learns from the first stage whether they are users or rates.
fn stage(c: &mut Checker, i: usize, s: &Spanned<StageSpec>, open: &mut Option<bool>) -> Option<Stage> {
    let path = format!("stages[{i}]");
    let StageSpec {
        users,
        rate,
        ramp,
        hold,
    } = s.get_ref();
    let (target, is_rate) = match (users, rate) {
        (Some(u), None) => (*u as f64, false),
        (None, Some(r)) if *r >= 0.0 && r.is_finite() => (*r, true),
        (None, Some(r)) => {
            c.at(
                &path,
                s,
                format!("rate {r} is negative"),
                "give requests per second, 0 or more",
            );
            return None;
        }
        _ => {
            c.at(
                &path,
                s,
                "a stage needs exactly one of users or rate",
                "write it like { users = 10, ramp = \"30s\" } or { rate = 100, hold = \"1m\" }",
            );
            return None;
        }
    };
    match open {
        Some(o) if *o != is_rate => {
            c.at(
                &path,
                s,
                "stages mix users and rate",
                "use users in every stage (closed model) or rate in every stage (open model)",
            );
            return None;
        }
        _ => *open = Some(is_rate),
    }
    let (duration, ramp) = match (ramp, hold) {
        (Some(d), None) => (d.get(), true),
        (None, Some(d)) => (d.get(), false),
        _ => {
            c.at(
                &path,
                s,
                "a stage needs exactly one of ramp or hold",
                "ramp = \"30s\" goes linearly from the previous level, hold = \"1m\" jumps to it and stays",
            );
            return None;
        }
    };
    Some(Stage { target, duration, ramp })
}

#[allow(clippy::too_many_arguments)]
fn transaction(
    c: &mut Checker,
    path: &str,
    t: &Spanned<TransactionSpec>,
    id: usize,
    common_headers: &BTreeMap<String, Spanned<String>>,
    default_name: Option<&str>,
    names: &Names<'_>,
    base_dir: &Path,
    open: bool,
) -> Option<Transaction> {
    let before = c.errors.len();
    let spec = t.get_ref();
    let method = match &spec.method {
        None => Method::GET,
        Some(m) if m.get_ref().chars().all(|ch| ch.is_ascii_uppercase()) && !m.get_ref().is_empty() => {
            Method::from_bytes(m.get_ref().as_bytes()).unwrap_or(Method::GET)
        }
        Some(m) => {
            c.at(
                &format!("{path}.method"),
                m,
                format!("invalid method {:?}", m.get_ref()),
                "methods are upper case, such as \"POST\"",
            );
            Method::GET
        }
    };
    let template = |c: &mut Checker, field: String, v: &Spanned<String>| match Template::compile(v.get_ref(), names) {
        Ok(t) => Some(t),
        Err(e) => {
            c.at(&field, v, e.message, e.fix);
            None
        }
    };
    let path_t = template(c, format!("{path}.path"), &spec.path);
    if !spec.path.get_ref().starts_with('/') {
        c.at(
            &format!("{path}.path"),
            &spec.path,
            format!("path {:?} does not start with '/'", spec.path.get_ref()),
            format!(
                "write it as \"/{}\" (it is joined to the base URL)",
                spec.path.get_ref()
            ),
        );
    }
    let mut headers = Vec::new();
    let mut merged: BTreeMap<&String, (String, &Spanned<String>)> = common_headers
        .iter()
        .map(|(k, v)| (k, (format!("headers.{k}"), v)))
        .collect();
    for (k, v) in &spec.headers {
        merged.insert(k, (format!("{path}.headers.{k}"), v));
    }
    for (name, (field, value)) in merged {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => {
                if let Some(t) = template(c, field, value) {
                    headers.push((h, t));
                }
            }
            Err(_) => c.at(
                &field,
                value,
                format!("invalid header name {name:?}"),
                "header names are letters, digits and '-'",
            ),
        }
    }
    let body = match (&spec.body, &spec.body_file, &spec.body_template) {
        (None, None, None) => Body::None,
        (Some(b), None, None) => template(c, format!("{path}.body"), b).map_or(Body::None, Body::Template),
        (None, Some(f), None) => match std::fs::read(base_dir.join(f.get_ref())) {
            Ok(bytes) => Body::Bytes(Bytes::from(bytes)),
            Err(e) => {
                c.at(
                    &format!("{path}.body_file"),
                    f,
                    format!("cannot read {:?}: {e}", f.get_ref()),
                    "give a file path relative to the profile",
                );
                Body::None
            }
        },
        (None, None, Some(f)) => match std::fs::read_to_string(base_dir.join(f.get_ref())) {
            Ok(text) => {
                let spanned = Spanned::new(f.span(), text);
                template(c, format!("{path}.body_template"), &spanned).map_or(Body::None, Body::Template)
            }
            Err(e) => {
                c.at(
                    &format!("{path}.body_template"),
                    f,
                    format!("cannot read {:?}: {e}", f.get_ref()),
                    "give a UTF-8 text file path relative to the profile",
                );
                Body::None
            }
        },
        _ => {
            c.at(
                path,
                t,
                "more than one of body, body_file and body_template",
                "keep one: body (inline, templated), body_file (sent as is) or body_template (a templated file)",
            );
            Body::None
        }
    };
    let expect = spec.status.as_ref().map(|s| {
        let mut codes = Vec::new();
        for &code in &s.get_ref().0 {
            match u16::try_from(code) {
                Ok(code) if (100..=599).contains(&code) => codes.push(code),
                _ => c.at(
                    &format!("{path}.status"),
                    s,
                    format!("{code} is not an HTTP status"),
                    "give statuses from 100 to 599, e.g. status = [200, 201]",
                ),
            }
        }
        if codes.is_empty() && s.get_ref().0.is_empty() {
            c.at(
                &format!("{path}.status"),
                s,
                "status is an empty list",
                "list the statuses that count as success, or remove it for any status below 400",
            );
        }
        codes
    });
    let think = spec.think.as_ref().and_then(|th| {
        if open {
            c.at(
                &format!("{path}.think"),
                th,
                "think time with an arrival rate",
                "with `rate` the schedule sets the pace: remove think, or use users (closed model)",
            );
            return None;
        }
        match *th.get_ref() {
            ThinkSpec::Fixed(d) => Some(Think::Fixed(d.get())),
            ThinkSpec::Uniform(lo, hi) if lo <= hi => Some(Think::Uniform(lo.get(), hi.get())),
            ThinkSpec::Uniform(lo, hi) => {
                c.at(
                    &format!("{path}.think"),
                    th,
                    format!("uniform think time from {lo} down to {hi}"),
                    "write the shorter time first",
                );
                None
            }
            ThinkSpec::Exponential(mean) if !mean.get().is_zero() => Some(Think::Exponential(mean.get())),
            ThinkSpec::Exponential(_) => {
                c.at(
                    &format!("{path}.think"),
                    th,
                    "exponential think time with a mean of zero",
                    "give a positive mean such as \"2s\"",
                );
                None
            }
        }
    });
    let weight = positive(c, &format!("{path}.weight"), spec.weight.as_ref(), 1);
    let mut captures = Vec::new();
    for (var, from) in &spec.capture {
        let field = format!("{path}.capture.{var}");
        let parsed = if let Some(pointer) = from.get_ref().strip_prefix("json:") {
            (pointer.is_empty() || pointer.starts_with('/')).then(|| CaptureFrom::Json(pointer.to_owned()))
        } else if let Some(h) = from.get_ref().strip_prefix("header:") {
            HeaderName::from_bytes(h.trim().as_bytes())
                .ok()
                .map(CaptureFrom::Header)
        } else {
            None
        };
        match (parsed, names.vars.iter().position(|v| v == var)) {
            (Some(from), Some(variable)) => captures.push(Capture { variable, from }),
            (None, _) => c.at(
                &field,
                from,
                format!("cannot capture from {:?}", from.get_ref()),
                "write \"json:/token\" (a JSON pointer into the body) or \"header:x-session\"",
            ),
            (Some(_), None) => {} // a bad variable name, reported with the declarations
        }
    }
    if c.errors.len() > before {
        return None;
    }
    let name = spec.name.as_ref().map_or_else(
        || default_name.map_or_else(|| format!("{method} {}", spec.path.get_ref()), str::to_owned),
        |n| n.get_ref().clone(),
    );
    Some(Transaction {
        id,
        name,
        method,
        path: path_t?,
        headers,
        body,
        expect,
        think,
        weight,
        captures,
    })
}

/// A weight: at least 1, `default` when absent.
fn positive(c: &mut Checker, path: &str, value: Option<&Spanned<u64>>, default: u64) -> u64 {
    match value {
        Some(w) if *w.get_ref() == 0 => {
            c.at(path, w, "weight is 0", "give a weight of 1 or more, or remove the item");
            default
        }
        Some(w) => *w.get_ref(),
        None => default,
    }
}

/// Every transaction as written, with its path, for the captures it declares.
fn transaction_specs(spec: &LoadProfile) -> Vec<(String, &Spanned<TransactionSpec>)> {
    let mut all: Vec<(String, &Spanned<TransactionSpec>)> = Vec::new();
    if let Some(l) = &spec.login {
        all.push(("login".into(), l));
    }
    for (i, t) in spec.transactions.iter().enumerate() {
        all.push((format!("transactions[{i}]"), t));
    }
    for (i, s) in spec.scenarios.iter().enumerate() {
        if let Some(l) = &s.get_ref().login {
            all.push((format!("scenarios[{i}].login"), l));
        }
        for (j, t) in s.get_ref().transactions.iter().enumerate() {
            all.push((format!("scenarios[{i}].transactions[{j}]"), t));
        }
    }
    all
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
