//! The generated rules for `tests/golden/slos.toml` are exactly `tests/golden/rules.yml`.
//! After an intended change, regenerate it: `BLESS=1 cargo test --workspace golden`.

use ballast_model::slo::SloSpec;

#[derive(serde::Deserialize)]
struct File {
    slo: Vec<SloSpec>,
}

#[test]
fn generated_rules_match_the_golden_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let file: File = toml::from_str(&std::fs::read_to_string(dir.join("slos.toml")).unwrap()).unwrap();
    for s in &file.slo {
        s.validate().unwrap();
    }
    let got = ballast_slo_engine::rules::rules(&file.slo);
    let golden = dir.join("rules.yml");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert!(
        got == want,
        "rules differ from {}; run with BLESS=1 after checking:\n{got}",
        golden.display()
    );
}
