//! The access log: one JSON line per request, to stdout or a file.
//!
//! Successful requests are sampled (`telemetry.access_log.sample`); failures (a classified
//! error or a 5xx) are always logged. Lines are serialized on the worker and written by a
//! thread of their own, so a slow disk never stalls a request; it writes them in batches, at
//! most 50 ms after they were logged.

use std::io::{self, Write};
use std::sync::mpsc;

use ballast_model::ErrorClass;
use serde::Serialize;

use crate::config::AccessLog;

/// How long the writer gathers lines before writing them: the most a line waits.
const GATHER: std::time::Duration = std::time::Duration::from_millis(50);

pub struct AccessLogger {
    sample: f64,
    lines: mpsc::Sender<Vec<u8>>,
}

/// One request, as logged.
#[derive(Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub route: &'a str,
    pub method: &'a str,
    /// The path and query as the client sent them.
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    /// The endpoint that answered, if the request reached one.
    pub upstream: Option<&'a str>,
    /// Tries sent upstream (0 when the sidecar answered itself).
    pub attempts: u32,
    pub error: Option<ErrorClass>,
    pub request_id: &'a str,
    pub trace_id: Option<String>,
}

impl AccessLogger {
    /// Open the destination and start the writer thread.
    pub fn open(cfg: &AccessLog) -> io::Result<Self> {
        let mut out: Box<dyn Write + Send> = if cfg.path == "stdout" {
            Box::new(io::stdout())
        } else {
            Box::new(std::fs::OpenOptions::new().create(true).append(true).open(&cfg.path)?)
        };
        let (lines, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("ballast-access-log".into())
            .spawn(move || {
                let mut buf = io::BufWriter::new(&mut out);
                // Woken by the first line after a quiet spell, then a batch a `GATHER` later: a
                // wake-up per line was a futex call on the worker and a context switch each.
                while let Ok(line) = rx.recv() {
                    let _ = buf.write_all(&line);
                    std::thread::sleep(GATHER);
                    while let Ok(line) = rx.try_recv() {
                        let _ = buf.write_all(&line);
                    }
                    let _ = buf.flush();
                }
            })?;
        Ok(AccessLogger {
            sample: cfg.sample,
            lines,
        })
    }

    /// Whether this request goes in the log.
    pub fn wants(&self, failed: bool) -> bool {
        failed || crate::rng::chance(self.sample)
    }

    pub fn log(&self, entry: &Entry<'_>) {
        let mut line = serde_json::to_vec(entry).expect("entry serializes");
        line.push(b'\n');
        let _ = self.lines.send(line);
    }
}
