//! The profiles in tests/profiles and examples/load: every valid one loads, every invalid one
//! fails with exactly the messages of its `.expected` file (the whole text, in order).

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no profiles in {}", dir.display());
    files
}

fn here(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn valid_profiles_and_the_examples_load() {
    for dir in ["tests/profiles/valid", "../examples/load"] {
        for path in files(&here(dir)) {
            if let Err(e) = ballast_loadgen::load_file(&path) {
                panic!("{e}");
            }
        }
    }
}

#[test]
fn invalid_profiles_fail_with_their_expected_messages() {
    let root = here("tests/profiles");
    for path in files(&root.join("invalid")) {
        let errors = match ballast_loadgen::load_file(&path) {
            Ok(_) => panic!("{} should be rejected", path.display()),
            // Messages name the file as given; the expected ones as `invalid/<name>`.
            Err(e) => e.to_string().replace(&format!("{}/", root.display()), ""),
        };
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}; the errors were:\n{errors}", expected_path.display()));
        assert_eq!(errors, expected, "{}", path.display());
    }
}

#[test]
fn a_scenario_load_section_reports_positions_in_the_scenario_file() {
    let text = "title = \"x\"\n\n[load]\nbase_url = \"http://127.0.0.1:1\"\nusers = 0\nduration = \"5s\"\n[[load.transactions]]\npath = \"/\"\n";
    let e = ballast_loadgen::load_section(text, "scenario.toml", "load").unwrap_err();
    assert_eq!(
        e.to_string(),
        "scenario.toml: 1 error in the load profile\nerror: scenario.toml:5:9: load.users: users is 0\n  fix: give at least 1 user\n"
    );
    let ok = text.replace("users = 0", "users = 2");
    let p = ballast_loadgen::load_section(&ok, "scenario.toml", "load").unwrap();
    assert_eq!(p.transactions[0].name, "GET /");
    assert!(ballast_loadgen::load_section(&ok, "scenario.toml", "nope").is_err());
}
