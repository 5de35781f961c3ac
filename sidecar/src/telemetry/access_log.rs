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
    to_writer: mpsc::Sender<Message>,
}

enum Message {
    Line(Vec<u8>),
    /// Write out everything sent before, then answer.
    Flush(mpsc::Sender<()>),
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
        let (to_writer, rx) = mpsc::channel::<Message>();
        std::thread::Builder::new()
            .name("ballast-access-log".into())
            .spawn(move || {
                let mut buf = io::BufWriter::new(&mut out);
                // Woken by the first line after a quiet spell, it sleeps rather than waits on
                // the channel while the next `GATHER` of lines comes in: a sender wakes only a
                // waiting receiver, and a wake-up per line was a futex call on the worker and
                // a context switch each.
                while let Ok(first) = rx.recv() {
                    deliver(&mut buf, first);
                    std::thread::sleep(GATHER);
                    rx.try_iter().for_each(|message| deliver(&mut buf, message));
                    let _ = buf.flush();
                }
            })?;
        Ok(AccessLogger {
            sample: cfg.sample,
            to_writer,
        })
    }

    /// Write out every line logged so far (on shutdown): `GATHER` and a write, 5 s at most.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.to_writer.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
        }
    }

    /// Whether this request goes in the log.
    pub fn wants(&self, failed: bool) -> bool {
        failed || crate::rng::chance(self.sample)
    }

    pub fn log(&self, entry: &Entry<'_>) {
        let mut line = serde_json::to_vec(entry).expect("entry serializes");
        line.push(b'\n');
        let _ = self.to_writer.send(Message::Line(line));
    }
}

fn deliver(out: &mut impl Write, message: Message) {
    match message {
        Message::Line(line) => {
            let _ = out.write_all(&line);
        }
        Message::Flush(done) => {
            let _ = out.flush();
            let _ = done.send(());
        }
    }
}
