//! The run folder, as far as the dashboard goes: what `ballast run` records and `ballast tui
//! --replay` reads back. The contract is written up in `docs/run-folder.md`:
//!
//! - `stats.jsonl`: one [`StatsRecord`] per scrape of a sidecar's `/stats`, in scrape order:
//!   `{"at_ms": …, "sidecar": "<name or admin URL>", "snapshot": <StatsSnapshot>}`, or
//!   `"error": "<why>"` instead of a snapshot when the sidecar did not answer. Snapshots are
//!   cumulative; consumers take windows by difference.
//! - `events.jsonl`: one [`Event`] per line; events read from a sidecar carry the sidecar's
//!   name as their `source`.
//! - `scenario.toml`: the scenario; its `[[slo]]` tables are the SLOs.
//!
//! [`Recorder`] writes the first two (the scenario runner and the test fixtures use it);
//! [`Recording::read`] loads a folder whole for replay.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballast_model::slo::SloSpec;
use ballast_model::{Event, StatsSnapshot};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::source::Feed;

pub const STATS_FILE: &str = "stats.jsonl";
pub const EVENTS_FILE: &str = "events.jsonl";
pub const SCENARIO_FILE: &str = "scenario.toml";

/// One line of `stats.jsonl`: a scrape of one sidecar, answered or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsRecord {
    /// When the scrape was answered (or failed), Unix milliseconds.
    pub at_ms: u64,
    /// The sidecar's name in the scenario, or its admin URL.
    pub sidecar: String,
    /// The cumulative snapshot; absent when the scrape failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<StatsSnapshot>,
    /// Why the scrape failed (connection refused, timeout, HTTP status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Appends to a run folder's `stats.jsonl` and `events.jsonl`.
pub struct Recorder {
    stats: BufWriter<File>,
    events: BufWriter<File>,
}

impl Recorder {
    /// Open (create or append to) the two files in `folder`, which must exist.
    pub fn open(folder: &Path) -> std::io::Result<Recorder> {
        let open = |name| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(folder.join(name))
                .map(BufWriter::new)
        };
        Ok(Recorder {
            stats: open(STATS_FILE)?,
            events: open(EVENTS_FILE)?,
        })
    }

    pub fn stats(&mut self, record: &StatsRecord) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.stats, record)?;
        self.stats.write_all(b"\n")
    }

    pub fn event(&mut self, event: &Event) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.events, event)?;
        self.events.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.stats.flush()?;
        self.events.flush()
    }
}

/// A run folder loaded for replay: every record as a [`Feed`], in time order.
#[derive(Clone)]
pub struct Recording {
    /// The folder's own name (`runs/<name>`), for the header.
    pub name: String,
    pub slos: Vec<SloSpec>,
    /// Sidecars in the order they first appear.
    pub sidecars: Vec<String>,
    /// Stats, failed scrapes and events, sorted by time (stable: file order within a
    /// millisecond, stats before events).
    pub feeds: Vec<Feed>,
    /// Event lines skipped because their kind is newer than this build knows.
    pub skipped_events: usize,
}

impl Recording {
    /// Read `stats.jsonl` (required), `events.jsonl` and `scenario.toml` (optional: no events,
    /// no SLOs) from `folder`.
    pub fn read(folder: &Path) -> Result<Recording, Error> {
        let stats_path = folder.join(STATS_FILE);
        if !stats_path.is_file() {
            return Err(Error::Recording {
                path: folder.display().to_string(),
                message: format!("not a run folder: it has no {STATS_FILE}"),
            });
        }
        let mut feeds = Vec::new();
        let mut sidecars: Vec<String> = Vec::new();
        for_each_line(&stats_path, |line| {
            let r: StatsRecord = serde_json::from_str(line).map_err(|e| e.to_string())?;
            if !sidecars.contains(&r.sidecar) {
                sidecars.push(r.sidecar.clone());
            }
            feeds.push(match (r.snapshot, r.error) {
                (Some(snapshot), _) => Feed::Stats {
                    at_ms: r.at_ms,
                    sidecar: r.sidecar,
                    snapshot: Arc::new(snapshot),
                },
                (None, error) => Feed::Unreachable {
                    at_ms: r.at_ms,
                    sidecar: r.sidecar,
                    error: error.unwrap_or_else(|| "no answer".into()),
                },
            });
            Ok(())
        })?;
        let mut skipped_events = 0;
        let events_path = folder.join(EVENTS_FILE);
        if events_path.is_file() {
            for_each_line(&events_path, |line| {
                let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
                match serde_json::from_value::<Event>(value.clone()) {
                    Ok(e) => feeds.push(Feed::Event(e)),
                    // A kind added after this build (a newer recorder): skipped, not fatal.
                    Err(_) if value.get("kind").is_some_and(|k| k.is_string()) && value.get("at_ms").is_some() => {
                        skipped_events += 1
                    }
                    Err(e) => return Err(e.to_string()),
                }
                Ok(())
            })?;
        }
        feeds.sort_by_key(|f| f.at_ms().unwrap_or(0));
        let scenario_path = folder.join(SCENARIO_FILE);
        let slos = if scenario_path.is_file() {
            let text = std::fs::read_to_string(&scenario_path).map_err(|e| Error::Recording {
                path: scenario_path.display().to_string(),
                message: e.to_string(),
            })?;
            ballast_slo_engine::spec_file::parse(&scenario_path.display().to_string(), &text)
                .map_err(|e| Error::Slos(e.0))?
        } else {
            Vec::new()
        };
        Ok(Recording {
            name: folder_name(folder),
            slos,
            sidecars,
            feeds,
            skipped_events,
        })
    }

    /// The first and last record's times; `(0, 0)` for an empty folder.
    pub fn span_ms(&self) -> (u64, u64) {
        let mut times = self.feeds.iter().filter_map(Feed::at_ms);
        let first = times.next().unwrap_or(0);
        (first, times.next_back().unwrap_or(first))
    }
}

fn folder_name(folder: &Path) -> String {
    let canonical: PathBuf = folder.canonicalize().unwrap_or_else(|_| folder.to_owned());
    canonical
        .file_name()
        .map_or_else(|| folder.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Call `f` on each non-empty line; a failure names the file and line.
fn for_each_line(path: &Path, mut f: impl FnMut(&str) -> Result<(), String>) -> Result<(), Error> {
    let err = |message: String| Error::Recording {
        path: path.display().to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| err(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        f(&line).map_err(|e| Error::Recording {
            path: format!("{}:{}", path.display(), i + 1),
            message: e,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_model::EventKind;

    #[test]
    fn a_recorded_folder_reads_back_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::open(dir.path()).unwrap();
        let snapshot = StatsSnapshot {
            started_at_ms: 1_000,
            taken_at_ms: 2_000,
            ..Default::default()
        };
        rec.stats(&StatsRecord {
            at_ms: 2_000,
            sidecar: "a".into(),
            snapshot: Some(snapshot.clone()),
            error: None,
        })
        .unwrap();
        rec.stats(&StatsRecord {
            at_ms: 3_000,
            sidecar: "b".into(),
            snapshot: None,
            error: Some("connection refused".into()),
        })
        .unwrap();
        rec.event(&Event {
            at_ms: 2_500,
            source: "a".into(),
            kind: EventKind::FaultRemoved { id: "f1".into() },
        })
        .unwrap();
        rec.flush().unwrap();
        std::fs::write(
            dir.path().join("events.jsonl"),
            std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap()
                + "{\"at_ms\": 2600, \"source\": \"load\", \"kind\": \"phase_changed\", \"phase\": \"spike\"}\n",
        )
        .unwrap();
        let r = Recording::read(dir.path()).unwrap();
        assert_eq!(r.sidecars, ["a", "b"]);
        assert_eq!(r.skipped_events, 1, "an unknown kind is skipped");
        let times: Vec<u64> = r.feeds.iter().filter_map(Feed::at_ms).collect();
        assert_eq!(times, [2_000, 2_500, 3_000]);
        assert!(matches!(&r.feeds[0], Feed::Stats { snapshot: s, .. } if **s == snapshot));
        assert!(matches!(&r.feeds[2], Feed::Unreachable { error, .. } if error == "connection refused"));
        assert!(r.slos.is_empty());
        assert_eq!(r.span_ms(), (2_000, 3_000));
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(STATS_FILE),
            "{\"at_ms\": 1, \"sidecar\": \"a\"}\nnot json\n",
        )
        .unwrap();
        let e = Recording::read(dir.path()).err().unwrap().to_string();
        assert!(e.contains("stats.jsonl:2: expected"), "{e}");
        let e = Recording::read(&dir.path().join("nowhere")).err().unwrap().to_string();
        assert!(e.contains("not a run folder"), "{e}");
    }
}
