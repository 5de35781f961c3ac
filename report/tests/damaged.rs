//! Damaged run folders: each missing or cut file gives an error that names it and says what
//! is wrong, as invalid input.

use std::path::Path;

use ballast_report::{Format, write};

fn game_day() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ballast_report::synthetic::game_day(dir.path(), true).unwrap();
    dir
}

fn error(dir: &Path) -> String {
    let e = write(dir, &[Format::Markdown], None).unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    e.to_string()
}

fn cut(path: &Path, bytes: usize) {
    let text = std::fs::read(path).unwrap();
    std::fs::write(path, &text[..text.len() - bytes]).unwrap();
}

#[test]
fn a_missing_file_is_named_with_what_it_holds() {
    for (file, why) in [
        ("requests.csv", "the load generator's per-request log"),
        ("timeseries.csv", "the per-second figures of every route"),
        ("events.jsonl", "the timeline of faults and alerts"),
        ("slo.csv", "the run had SLOs: their live evaluation and final status"),
    ] {
        let dir = game_day();
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let e = error(dir.path());
        assert_eq!(e, format!("{}: missing ({why})", dir.path().join(file).display()));
    }
    assert_eq!(error(Path::new("/no/such/run")), "/no/such/run: no such run folder");
}

#[test]
fn a_truncated_csv_is_named() {
    for file in ["requests.csv", "timeseries.csv", "slo.csv"] {
        let dir = game_day();
        cut(&dir.path().join(file), 5);
        let e = error(dir.path());
        assert_eq!(
            e,
            format!(
                "{}: truncated: the last line is incomplete (no line end); the file was cut while being written",
                dir.path().join(file).display()
            )
        );
    }
    let dir = game_day();
    std::fs::write(dir.path().join("requests.csv"), "").unwrap();
    assert!(error(dir.path()).ends_with("requests.csv: empty: not even a header line"));
}

#[test]
fn malformed_contents_are_named() {
    let dir = game_day();
    let path = dir.path().join("requests.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("latency_us", "latency", 1)).unwrap();
    let e = error(dir.path());
    assert!(e.ends_with("requests.csv: the header has no column `latency_us` (it has: intended_us, start_us, latency, status, transaction, error)"), "{e}");

    let dir = game_day();
    let path = dir.path().join("requests.csv");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines[3] = "1767225600000000,1767225600000000,,200,catalog,".into();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = error(dir.path());
    assert!(
        e.ends_with("requests.csv: line 4: no value in column `latency_us`"),
        "{e}"
    );

    let dir = game_day();
    let path = dir.path().join("requests.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[5] = "1767225600000000,1767225600000000,12x,200,catalog,";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = error(dir.path());
    assert!(e.contains("requests.csv: unreadable: ") && e.contains("12x"), "{e}");

    let dir = game_day();
    std::fs::write(
        dir.path().join("slo.json"),
        "[{\"name\": \"checkout-availability\", \"objective\": 0.9",
    )
    .unwrap();
    let e = error(dir.path());
    assert!(e.contains("slo.json: truncated: the JSON ends early"), "{e}");
}
