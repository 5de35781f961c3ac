//! The `[[slo]]` tables of a TOML file (a standalone `slos.toml`, a scenario, or a sidecar
//! config): parsed and each checked, every problem reported at once with `file:line:column`,
//! the field and a fix. Other tables of the file are left to their owners.

use std::collections::HashSet;

use ballast_model::fault::FieldError;
use ballast_model::slo::SloSpec;
use ballast_model::units::line_col;
use serde::Deserialize;

/// Every problem of the file, one per line (`name:line:col: slo[i].field: message` and
/// `  fix: ...`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpecFileError(pub String);

#[derive(Deserialize)]
struct SlosFile {
    #[serde(default)]
    slo: Vec<toml::Spanned<SloSpec>>,
}

/// The SLOs of `text` (the file called `name` in messages), in the file's order; none when
/// it has no `[[slo]]` table.
pub fn parse(name: &str, text: &str) -> Result<Vec<SloSpec>, SpecFileError> {
    let file: SlosFile = toml::from_str(text).map_err(|e| SpecFileError(format!("{name}: {e}")))?;
    let mut problems = Vec::new();
    let mut names = HashSet::new();
    for (i, slo) in file.slo.iter().enumerate() {
        let (line, col) = line_col(text, slo.span().start);
        let mut errors = slo.get_ref().validate().err().unwrap_or_default();
        if !names.insert(slo.get_ref().name.clone()) {
            errors.push(FieldError {
                field: "name".into(),
                message: format!("duplicate SLO name {:?}", slo.get_ref().name),
                fix: "give each SLO a unique name".into(),
            });
        }
        for e in errors {
            problems.push(format!(
                "{name}:{line}:{col}: slo[{i}].{}: {}\n  fix: {}",
                e.field, e.message, e.fix
            ));
        }
    }
    if !problems.is_empty() {
        return Err(SpecFileError(problems.join("\n")));
    }
    Ok(file.slo.into_iter().map(toml::Spanned::into_inner).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_tables_are_ignored_and_every_problem_is_named() {
        let ok = "title = \"x\"\n[load]\nrate = 1\n[[slo]]\nname = \"a\"\nobjective = 0.99\nwindow = \"1h\"\nsli = { availability = {} }\n";
        assert_eq!(parse("s.toml", ok).unwrap()[0].name, "a");
        assert!(parse("s.toml", "title = \"no slos\"").unwrap().is_empty());
        let bad =
            format!("{ok}[[slo]]\nname = \"a\"\nobjective = 2.0\nwindow = \"1h\"\nsli = {{ availability = {{}} }}\n");
        let err = parse("s.toml", &bad).unwrap_err().0;
        assert!(
            err.contains("s.toml:9:1: slo[1].objective: 2 is outside (0, 1)"),
            "{err}"
        );
        assert!(err.contains("slo[1].name: duplicate SLO name \"a\""), "{err}");
    }
}
