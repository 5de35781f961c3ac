//! Problems in a file someone wrote (a sidecar config, a load profile, an experiment): every
//! one at once, each located, named by its field and with a fix, rendered one way everywhere
//! (as vector and rustc do), the "did you mean" that most fixes offer, and one value of a TOML
//! file deserialized with its problem located and a fix for serde's message:
//!
//! ```text
//! shop.toml: 2 errors in the config
//! error: shop.toml:12:11: routes[0].cluster: no cluster "shpo"
//!   fix: did you mean "shop"?
//! error: shop.toml: the file is empty
//! ```

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

/// One problem as it is shown.
pub struct Shown<'a> {
    /// 1-based line and column, when the problem has a place in the file.
    pub line_col: Option<(usize, usize)>,
    /// The field's dotted path; empty for the file as a whole.
    pub field: &'a str,
    pub message: &'a str,
    pub fix: Option<&'a str>,
}

/// A header (`file: N errors in the <what>`), then each problem: `error: file:line:col:
/// field: message` and its `  fix: ...` line.
pub fn write<'a>(
    f: &mut impl fmt::Write,
    file: &str,
    what: &str,
    problems: impl ExactSizeIterator<Item = Shown<'a>>,
) -> fmt::Result {
    let n = problems.len();
    writeln!(f, "{file}: {n} error{} in the {what}", if n == 1 { "" } else { "s" })?;
    for p in problems {
        let at = match p.line_col {
            Some((line, col)) => format!("{file}:{line}:{col}"),
            None => file.to_owned(),
        };
        let field = if p.field.is_empty() {
            String::new()
        } else {
            format!("{}: ", p.field)
        };
        writeln!(f, "error: {at}: {field}{}", p.message)?;
        if let Some(fix) = p.fix {
            writeln!(f, "  fix: {fix}")?;
        }
    }
    Ok(())
}

/// The known name closest to `input`, if it is close enough to be a typo: edit distance with
/// a swap of two neighbours as one edit (`shpo` for `shop`, the commonest typo), at most a
/// third of the longer name.
pub fn did_you_mean<'a>(input: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::osa_distance(input, k), k))
        .filter(|&(d, k)| d <= (k.len().max(input.len()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// serde's message about a bad value, and the fix where it can be told: a typo'd field's
/// likely name, the field to add, or (from ballast's own value parsers, which end their
/// message with `; write it like ...`) how to write the value.
pub fn serde_fix(message: &str) -> (String, String) {
    let message = message.trim().to_owned();
    if let Some((what, fix)) = message.split_once("; write it like ") {
        return (what.to_owned(), format!("write it like {fix}"));
    }
    let fix = if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = rest
            .split('`')
            .skip(1)
            .filter(|s| !s.contains(',') && !s.trim().is_empty() && !s.contains(' '))
            .collect();
        match did_you_mean(field, expected.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? (unknown fields are errors, so typos do not pass silently)"),
            None => format!("remove `{field}`; valid fields are {}", expected.join(", ")),
        }
    } else if message.starts_with("missing field") {
        "add the field".to_owned()
    } else if message.starts_with("unknown variant") {
        "use one of the values listed".to_owned()
    } else {
        "correct the value's type or format".to_owned()
    };
    (message, fix)
}

/// A value of a TOML file that did not deserialize.
#[derive(Debug, PartialEq)]
pub struct BadValue {
    /// The full dotted path of the field at fault.
    pub field: String,
    pub span: Option<Range<usize>>,
    pub message: String,
    pub fix: String,
}

/// Deserialize one value of a TOML file that sits at `path` (e.g. `routes[1]`); a failure
/// names the field inside it (`routes[1].match.headers[0].name`), where it is, and the fix.
pub fn deserialize<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, path: &str) -> Result<T, BadValue> {
    let span = value.span();
    serde_path_to_error::deserialize(ValueDeserializer::from(value)).map_err(|e| {
        // `Spanned` adds a private path segment of its own; drop it.
        let inner = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "")
            .replace("$__serde_spanned_private_value", "");
        let field = match (path.is_empty(), inner.is_empty() || inner == ".") {
            (_, true) => path.to_owned(),
            (true, false) => inner,
            (false, false) => format!("{path}.{inner}"),
        };
        let e = e.into_inner();
        let (message, fix) = serde_fix(e.message());
        BadValue {
            field,
            span: e.span().or(Some(span)),
            message,
            fix,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_render_with_their_places_and_fixes() {
        let mut out = String::new();
        let problems = [
            Shown {
                line_col: Some((12, 11)),
                field: "routes[0].cluster",
                message: "no cluster \"shpo\"",
                fix: Some("did you mean \"shop\"?"),
            },
            Shown {
                line_col: None,
                field: "",
                message: "the file is empty",
                fix: None,
            },
        ];
        write(&mut out, "shop.toml", "config", problems.into_iter()).unwrap();
        assert_eq!(
            out,
            "shop.toml: 2 errors in the config\nerror: shop.toml:12:11: routes[0].cluster: no cluster \"shpo\"\n  fix: did you mean \"shop\"?\nerror: shop.toml: the file is empty\n"
        );
    }

    #[test]
    fn serde_messages_get_fixes() {
        let (m, fix) = serde_fix("unknown field `clustr`, expected one of `cluster`, `timeout`");
        assert_eq!(m, "unknown field `clustr`, expected one of `cluster`, `timeout`");
        assert!(fix.starts_with("did you mean `cluster`?"), "{fix}");
        let (m, fix) = serde_fix("bad duration \"5 s\"; write it like \"5s\"");
        assert_eq!(
            (m.as_str(), fix.as_str()),
            ("bad duration \"5 s\"", "write it like \"5s\"")
        );
        assert_eq!(serde_fix("missing field `name`").1, "add the field");
    }

    #[test]
    fn typos_find_their_names() {
        let known = ["cluster", "timeout", "shop"];
        assert_eq!(did_you_mean("clustr", known), Some("cluster"));
        assert_eq!(did_you_mean("timeot", known), Some("timeout"));
        assert_eq!(did_you_mean("shpo", known), Some("shop"));
        assert_eq!(did_you_mean("zzzzzz", known), None);
    }
}
