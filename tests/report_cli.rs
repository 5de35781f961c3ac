//! `ballast report` end to end: the real binary on a recorded game day (the report crate's
//! synthetic fixture), its files and exit codes: 0 written, 78 for a damaged run folder, 2
//! for a bad `--format`.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn report(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN).arg("report").args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ballast_report_writes_markdown_and_html_for_a_recorded_game_day() {
    let run = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    ballast_report::synthetic::game_day(run.path(), true).unwrap();
    let o = report(&[run.path().as_os_str(), "--out".as_ref(), out.path().as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.starts_with(
            "Incident from +10.0 s to +22.0 s (12 s): 12 of 240 requests failed (5.0%) while it lasted.\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("report.md") && stdout.contains("report.html"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("**Time to detect: 4.5 s.**"), "{md}");
    assert!(md.contains("**Time to recover: 2 s**"), "{md}");
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.matches("<svg").count() == 4);
    assert!(
        !run.path().join("report.md").exists(),
        "--out elsewhere leaves the run folder alone"
    );

    // Markdown only, into the run folder by default.
    let o = report(&[run.path().as_os_str(), "--format".as_ref(), "md".as_ref()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(run.path().join("report.md").exists() && !run.path().join("report.html").exists());
}

#[test]
fn a_damaged_run_folder_exits_78_naming_the_file_and_a_bad_format_2() {
    let run = tempfile::tempdir().unwrap();
    ballast_report::synthetic::game_day(run.path(), true).unwrap();
    let events = run.path().join("events.jsonl");
    let text_now = std::fs::read_to_string(&events).unwrap();
    std::fs::write(&events, &text_now[..text_now.len() - 10]).unwrap();
    let o = report(&[run.path().as_os_str()]);
    assert_eq!(o.status.code(), Some(78));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("ballast: ") && err.contains("events.jsonl: truncated: line 6 is incomplete"),
        "{err}"
    );

    // An slo.csv row stamped off its second (one millisecond) is named with its line.
    std::fs::write(&events, &text_now).unwrap();
    let slo_csv = run.path().join("slo.csv");
    let rows = std::fs::read_to_string(&slo_csv).unwrap();
    let mut lines: Vec<String> = rows.lines().map(str::to_owned).collect();
    let cells: Vec<&str> = lines[2].split(',').collect();
    let shifted = cells[1].parse::<u64>().unwrap() + 1;
    lines[2] = std::iter::once(cells[0].to_owned())
        .chain(std::iter::once(shifted.to_string()))
        .chain(cells[2..].iter().map(|c| c.to_string()))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(&slo_csv, lines.join("\n") + "\n").unwrap();
    let o = report(&[run.path().as_os_str()]);
    assert_eq!(o.status.code(), Some(78));
    let err = text(&o.stderr);
    assert!(
        err.contains("slo.csv: line 3: second") && err.contains(&format!("at_ms {shifted} does not match")),
        "{err}"
    );

    let o = report(&["/nonexistent/run".as_ref()]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(text(&o.stderr), "ballast: /nonexistent/run: no such run folder\n");

    let o = report(&[run.path().as_os_str(), "--format".as_ref(), "pdf".as_ref()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}
