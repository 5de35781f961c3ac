//! Watching the sidecar during a run: its `/stats` once a second (each snapshot recorded, the
//! window since the previous one turned into `timeseries.csv` rows and fed to the SLOs), and
//! its `/events` stream as it comes (events from before the run are left out).
//!
//! A scrape that fails or is not answered within 2 s is recorded as such and skipped (the
//! sidecar may be stopped by an experiment); the next one covers the gap.

use std::sync::Arc;

use ballast_chaos::live::StatsHistory;
use ballast_model::client::StatsClient;
use ballast_model::{Event, StatsSnapshot};
use ballast_tui::Feed;
use ballast_tui::recording::StatsRecord;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::dashboard::Dashboard;
use super::record::RunFolder;
use super::slos::Slos;

/// The sidecar's name in the run folder (`stats.jsonl`) and the dashboard, as the sidecar
/// names itself in its events.
pub const SIDECAR: &str = "sidecar";

/// A scrape not answered within this is a failed one.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Scraper {
    client: StatsClient,
    /// The experiment's view of the same scrapes.
    history: Option<Arc<StatsHistory>>,
    name: String,
    last: Option<StatsSnapshot>,
    line: Option<String>,
}

impl Scraper {
    /// Starts from the sidecar's counts now: the run's windows leave out what came before.
    pub async fn new(
        admin: &str,
        token: Option<String>,
        history: Option<Arc<StatsHistory>>,
    ) -> anyhow::Result<Scraper> {
        let client = StatsClient::new(admin, token);
        let first = client.snapshot().await?;
        Ok(Scraper {
            client,
            history,
            name: SIDECAR.to_owned(),
            last: Some(first),
            line: None,
        })
    }

    /// Scrape at `at_ms` (Unix ms), closing `second` (its number and start, for the rows).
    pub async fn scrape(
        &mut self,
        at_ms: u64,
        (second, second_at_ms): (u64, u64),
        folder: &mut RunFolder,
        slos: &mut Slos,
        dashboard: Option<&Dashboard>,
    ) {
        let record = |snapshot, error| StatsRecord {
            at_ms,
            sidecar: self.name.clone(),
            snapshot,
            error,
        };
        // A sidecar an experiment stopped (SIGSTOP) never answers: the run goes on without it.
        let scraped = match tokio::time::timeout(SCRAPE_TIMEOUT, self.client.snapshot()).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {}s", SCRAPE_TIMEOUT.as_secs())),
        };
        let now = match scraped {
            Ok(now) => now,
            Err(e) => {
                if let Some(h) = &self.history {
                    h.failed(0, e.to_string());
                }
                if let Err(e) = folder.scrape(&record(None, Some(e.to_string()))) {
                    tracing::warn!("cannot record stats: {e:#}");
                }
                if let Some(d) = dashboard {
                    d.feed(Feed::Unreachable {
                        at_ms,
                        sidecar: self.name.clone(),
                        error: e.to_string(),
                    });
                }
                self.line = Some("sidecar: not answering".to_owned());
                return;
            }
        };
        if let Err(e) = folder.scrape(&record(Some(now.clone()), None)) {
            tracing::warn!("cannot record stats: {e:#}");
        }
        if let Some(d) = dashboard {
            d.feed(Feed::Stats {
                at_ms,
                sidecar: self.name.clone(),
                snapshot: Arc::new(now.clone()),
            });
        }
        let window = now.window(self.last.as_ref().unwrap_or(&StatsSnapshot::default()));
        folder.sidecar_second(second, second_at_ms, &window);
        slos.sidecar(at_ms, &window);
        if let Some(h) = &self.history {
            h.push(0, window.clone());
        }
        let (requests, failed5): (u64, u64) = window
            .routes
            .values()
            .map(|t| (t.counters.requests, t.counters.status_class(5)))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let secs = window.seconds().max(0.001);
        self.line = Some(format!(
            "sidecar: {:.0} req/s, {:.2}% 5xx, {} faults",
            requests as f64 / secs,
            if requests > 0 {
                failed5 as f64 * 100.0 / requests as f64
            } else {
                0.0
            },
            now.faults.len()
        ));
        self.last = Some(now);
    }

    /// What the last scrape saw, for the progress line.
    pub fn last_line(&self) -> Option<String> {
        self.line.clone()
    }
}

/// Follow the sidecar's Server-Sent Events into `tx` (reconnecting while the run lasts).
pub async fn follow_events(admin: String, token: Option<String>, since_ms: u64, tx: mpsc::UnboundedSender<Event>) {
    let http = reqwest::Client::builder().no_proxy().build().expect("HTTP client");
    let url = format!("{admin}/events");
    // Events already passed on, so a reconnect's replay is not recorded twice.
    let mut seen_until = since_ms;
    loop {
        let mut req = http.get(&url);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        if let Ok(resp) = req.send().await
            && resp.status().is_success()
        {
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    let Some(data) = line.strip_prefix(b"data:") else {
                        continue;
                    };
                    if let Ok(e) = serde_json::from_slice::<Event>(data.trim_ascii())
                        && e.at_ms >= seen_until
                    {
                        seen_until = e.at_ms;
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
