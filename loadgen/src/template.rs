//! Templates in paths, headers, bodies and variables, compiled once when the profile loads
//! (an unknown placeholder is a profile error) and rendered per request:
//!
//! | placeholder | value |
//! |---|---|
//! | `{{seq}}` | the request's sequence number in the run (0, 1, 2, ...); the same in all of a request's templates |
//! | `{{random_int A B}}` | a random integer from A to B, both included |
//! | `{{uuid}}` | a random UUID (v4) |
//! | `{{user}}` | the user's number (0, 1, 2, ... in start order) |
//! | `{{var.NAME}}` | a per-user variable: from `variables`, or captured from an answer |
//! | `{{data.SET.COLUMN}}` | a column of the row the request drew from the CSV data set `SET` |
//!
//! Why not a template engine: six placeholders with per-request state (one row per data set
//! per request, one sequence number) fit in a few lines, and compiling them ourselves lets
//! every error name the placeholder and the fix.

use std::sync::Arc;

use rand::Rng;
use rand::rngs::SmallRng;

use crate::data::DataSet;
use crate::error::did_you_mean;

#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Seq,
    RandomInt(i64, i64),
    Uuid,
    User,
    Var(usize),
    Data { set: usize, column: usize },
}

/// What placeholders may name.
pub(crate) struct Names<'a> {
    pub vars: &'a [String],
    pub data: &'a [Arc<DataSet>],
    /// Take unknown variables (or data sets) as empty instead of errors: their declarations
    /// could not be read, so they may exist.
    pub lenient_vars: bool,
    pub lenient_data: bool,
}

/// A template that cannot compile: what is wrong and how to fix it.
#[derive(Debug, PartialEq)]
pub(crate) struct TemplateError {
    pub message: String,
    pub fix: String,
}

/// Per-request rendering state.
pub(crate) struct Ctx<'a> {
    pub seq: u64,
    pub user: usize,
    pub vars: &'a [String],
    pub data: &'a [Arc<DataSet>],
    /// The row each data set gave this request, drawn on first use.
    pub rows: &'a mut Vec<Option<usize>>,
    pub rng: &'a mut SmallRng,
}

const FUNCTIONS: [&str; 4] = ["seq", "random_int", "uuid", "user"];

impl Template {
    pub(crate) fn compile(source: &str, names: &Names<'_>) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError {
                    message: format!("unclosed placeholder in {source:?}"),
                    fix: "close it with }}, e.g. {{uuid}}".into(),
                });
            };
            parts.push(placeholder(after[..close].trim(), names)?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text, when it has no placeholders.
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Whether it reads a per-user variable.
    pub fn uses_variables(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(_)))
    }

    /// Whether it reads a data set's row (so the row must be drawn per request).
    pub fn uses_data(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Data { .. }))
    }

    pub(crate) fn render_into(&self, ctx: &mut Ctx<'_>, out: &mut String) {
        use std::fmt::Write;
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Seq => {
                    let _ = write!(out, "{}", ctx.seq);
                }
                Part::RandomInt(lo, hi) => {
                    let _ = write!(out, "{}", ctx.rng.random_range(*lo..=*hi));
                }
                Part::Uuid => {
                    // From the per-user generator: no OS call per UUID.
                    let bytes: [u8; 16] = ctx.rng.random();
                    let _ = write!(out, "{}", uuid::Builder::from_random_bytes(bytes).into_uuid());
                }
                Part::User => {
                    let _ = write!(out, "{}", ctx.user);
                }
                Part::Var(i) => out.push_str(ctx.vars.get(*i).map_or("", String::as_str)),
                Part::Data { set, column } => {
                    let data = &ctx.data[*set];
                    let row = match ctx.rows[*set] {
                        Some(row) => row,
                        None => {
                            let row = data.pick(ctx.user, ctx.rng);
                            ctx.rows[*set] = Some(row);
                            row
                        }
                    };
                    out.push_str(data.value(row, *column));
                }
            }
        }
    }

    pub(crate) fn render(&self, ctx: &mut Ctx<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        self.render_into(ctx, &mut out);
        out
    }
}

fn placeholder(inner: &str, names: &Names<'_>) -> Result<Part, TemplateError> {
    let words: Vec<&str> = inner.split_whitespace().collect();
    let err = |message: String, fix: String| Err(TemplateError { message, fix });
    match words.as_slice() {
        ["seq"] => Ok(Part::Seq),
        ["uuid"] => Ok(Part::Uuid),
        ["user"] => Ok(Part::User),
        ["random_int", lo, hi] => match (lo.parse::<i64>(), hi.parse::<i64>()) {
            (Ok(lo), Ok(hi)) if lo <= hi => Ok(Part::RandomInt(lo, hi)),
            (Ok(lo), Ok(hi)) => err(
                format!("{{{{{inner}}}}}: {lo} is above {hi}"),
                format!("write the lower bound first: {{{{random_int {hi} {lo}}}}}"),
            ),
            _ => err(
                format!("{{{{{inner}}}}}: the bounds must be integers"),
                "write it like {{random_int 1 100}}".into(),
            ),
        },
        ["random_int", ..] => err(
            format!("{{{{{inner}}}}}: random_int takes two integers"),
            "write it like {{random_int 1 100}}".into(),
        ),
        [word] if word.starts_with("var.") => {
            let name = &word[4..];
            match names.vars.iter().position(|v| v == name) {
                Some(i) => Ok(Part::Var(i)),
                None if names.lenient_vars => Ok(Part::Text(String::new())),
                None => {
                    let fix = match did_you_mean(name, names.vars.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean {{{{var.{s}}}}}?"),
                        None => format!(
                            "declare it in `variables` (e.g. {name} = \"{{{{uuid}}}}\") or capture it from an answer"
                        ),
                    };
                    err(format!("{{{{{inner}}}}}: unknown variable {name:?}"), fix)
                }
            }
        }
        [word] if word.starts_with("data.") => {
            let Some((set_name, column)) = word[5..].split_once('.') else {
                return err(
                    format!("{{{{{inner}}}}}: name a data set and a column"),
                    "write it like {{data.users.email}}".into(),
                );
            };
            let Some(set) = names.data.iter().position(|d| d.name == set_name) else {
                if names.lenient_data {
                    return Ok(Part::Text(String::new()));
                }
                let fix = match did_you_mean(set_name, names.data.iter().map(|d| d.name.as_str())) {
                    Some(s) => format!("did you mean {{{{data.{s}.{column}}}}}?"),
                    None => format!("declare it: [data.{set_name}] file = \"{set_name}.csv\""),
                };
                return err(format!("{{{{{inner}}}}}: unknown data set {set_name:?}"), fix);
            };
            let columns = &names.data[set].columns;
            match columns.iter().position(|c| c == column) {
                Some(column) => Ok(Part::Data { set, column }),
                None => err(
                    format!("{{{{{inner}}}}}: data set {set_name:?} has no column {column:?}"),
                    match did_you_mean(column, columns.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean {{{{data.{set_name}.{s}}}}}?"),
                        None => format!("its columns are {}", columns.join(", ")),
                    },
                ),
            }
        }
        _ => {
            let first = words.first().copied().unwrap_or("");
            let fix = match did_you_mean(first, FUNCTIONS) {
                Some(s) => format!("did you mean {{{{{s}}}}}?"),
                None => {
                    "use {{seq}}, {{random_int A B}}, {{uuid}}, {{user}}, {{var.NAME}} or {{data.SET.COLUMN}}".into()
                }
            };
            err(format!("unknown placeholder {{{{{inner}}}}}"), fix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn data() -> Vec<Arc<DataSet>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        std::fs::write(&path, "email,password\na@x,pa\nb@x,pb\n").unwrap();
        vec![Arc::new(
            DataSet::load("users", &path, crate::data::RowOrder::Sequential).unwrap(),
        )]
    }

    fn render(t: &Template, seq: u64, vars: &[String], data: &[Arc<DataSet>]) -> String {
        let mut rows = vec![None; data.len()];
        let mut rng = SmallRng::seed_from_u64(seq);
        t.render(&mut Ctx {
            seq,
            user: 7,
            vars,
            data,
            rows: &mut rows,
            rng: &mut rng,
        })
    }

    #[test]
    fn placeholders_render_per_request() {
        let data = data();
        let vars = vec!["token".to_owned()];
        let names = Names {
            vars: &vars,
            data: &data,
            lenient_vars: false,
            lenient_data: false,
        };
        let t = Template::compile(
            "/u/{{user}}/{{seq}}?n={{random_int 5 6}}&e={{data.users.email}}&p={{ data.users.password }}&t={{var.token}}",
            &names,
        )
        .unwrap();
        let values = vec!["abc".to_owned()];
        let first = render(&t, 41, &values, &data);
        let n: i64 = first.split("n=").nth(1).unwrap()[..1].parse().unwrap();
        assert!((5..=6).contains(&n));
        assert!(first.starts_with("/u/7/41?"), "{first}");
        assert!(first.ends_with("&e=a@x&p=pa&t=abc"), "one row per request: {first}");
        assert!(render(&t, 42, &values, &data).ends_with("&e=b@x&p=pb&t=abc"));
        let u = Template::compile("{{uuid}}", &names).unwrap();
        let id = uuid::Uuid::parse_str(&render(&u, 1, &values, &data)).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(Template::compile("plain", &names).unwrap().as_static(), Some("plain"));
    }

    #[test]
    fn bad_placeholders_say_what_to_write() {
        let data = data();
        let vars = vec!["token".to_owned()];
        let names = Names {
            vars: &vars,
            data: &data,
            lenient_vars: false,
            lenient_data: false,
        };
        let e = |s: &str| Template::compile(s, &names).unwrap_err();
        assert_eq!(e("{{uuidd}}").fix, "did you mean {{uuid}}?");
        assert_eq!(e("{{uuidd}}").message, "unknown placeholder {{uuidd}}");
        assert_eq!(e("{{var.tokne}}").fix, "did you mean {{var.token}}?");
        assert_eq!(e("{{data.users.mail}}").fix, "did you mean {{data.users.email}}?");
        assert!(e("{{data.usr.email}}").message.contains("unknown data set \"usr\""));
        assert!(e("{{random_int 9 1}}").message.contains("9 is above 1"));
        assert!(e("{{random_int x 1}}").message.contains("integers"));
        assert!(e("/a/{{seq").message.contains("unclosed"));
    }
}
