//! The example configs in tests/configs: every valid one loads, every invalid one fails with
//! exactly the messages in its `.expected` file (each non-empty line must appear).

use std::path::Path;

use ballast_sidecar::config;

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no configs in {}", dir.display());
    files
}

fn label(path: &Path) -> String {
    let dir = path.parent().unwrap().file_name().unwrap().to_string_lossy();
    format!("{dir}/{}", path.file_name().unwrap().to_string_lossy())
}

#[test]
fn valid_configs_load() {
    for path in files("valid") {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = config::parse(&text, &label(&path)) {
            panic!("{e}");
        }
    }
}

#[test]
fn invalid_configs_fail_with_their_expected_messages() {
    for path in files("invalid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let errors = match config::parse(&text, &label(&path)) {
            Ok(_) => panic!("{} should be rejected", label(&path)),
            Err(e) => e.to_string(),
        };
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}; the errors were:\n{errors}", expected_path.display()));
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                errors.contains(line),
                "{}: expected the line\n  {line}\nin:\n{errors}",
                label(&path)
            );
        }
    }
}

#[test]
fn the_full_example_shows_every_setting_in_the_effective_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid/full.toml");
    let cfg = config::load_file(&path).unwrap();
    assert_eq!(cfg.runtime.worker_threads, 2);
    assert_eq!(cfg.runtime.idle_poll, std::time::Duration::from_micros(50));
    assert_eq!(cfg.listeners.len(), 2);
    assert_eq!(
        cfg.listeners[1].max_connections, 10_000,
        "defaults fill what is not written"
    );
    assert_eq!(cfg.routes.len(), 5);
    assert_eq!(cfg.routes[3].max_request_body, Some(10 << 20));
    assert_eq!(cfg.clusters["shop"].endpoints[1].weight, 2);
    let json = serde_json::to_value(&cfg).unwrap();
    assert_eq!(json["routes"][2]["match"]["path"]["regex"], "^(?:/users/[0-9]+(/.*)?)$");
    assert!(json["admin"].get("token").is_none(), "the token is never serialized");
    let cache = &json["routes"][2]["cache"];
    assert_eq!(
        (cache["ttl"].as_str(), cache["stale_if_error"].as_str()),
        (Some("10s"), Some("5m"))
    );
    assert_eq!(
        (cache["max_bytes"].as_u64(), cache["max_object"].as_u64()),
        (Some(16 << 20), Some(1 << 20))
    );
    assert!(json["routes"][0]["cache"].is_null(), "no cache unless configured");
}
