//! The sidecars' recent traffic: one window per scrape and sidecar, kept as long as the
//! longest probe needs. [`LiveSidecars`] scrapes through the shared [`StatsClient`]; a caller
//! that scrapes already (the scenario runner) pushes its windows into a [`StatsHistory`]
//! instead, so the sidecars are asked once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_model::StatsWindow;
use ballast_model::client::StatsClient;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Recent windows of each sidecar.
pub struct StatsHistory {
    keep: Duration,
    sidecars: Mutex<Vec<Sidecar>>,
}

#[derive(Default)]
struct Sidecar {
    windows: VecDeque<StatsWindow>,
    /// The last scrape's error, until a scrape succeeds.
    error: Option<String>,
}

impl StatsHistory {
    /// For `sidecars` sidecars (numbered from 0), keeping windows that end within `keep` of
    /// the newest.
    pub fn new(sidecars: usize, keep: Duration) -> Arc<Self> {
        Arc::new(StatsHistory {
            keep,
            sidecars: Mutex::new((0..sidecars).map(|_| Sidecar::default()).collect()),
        })
    }

    /// A new window of sidecar `i`.
    pub fn push(&self, i: usize, window: StatsWindow) {
        let mut sidecars = self.sidecars.lock().unwrap();
        let s = &mut sidecars[i];
        let oldest = window.to_ms.saturating_sub(self.keep.as_millis() as u64);
        s.windows.push_back(window);
        while s.windows.front().is_some_and(|w| w.to_ms < oldest) {
            s.windows.pop_front();
        }
        s.error = None;
    }

    /// Sidecar `i` could not be scraped: its windows are not trusted until it can again.
    pub fn failed(&self, i: usize, error: String) {
        self.sidecars.lock().unwrap()[i].error = Some(error);
    }

    /// Every sidecar's windows of the last `over` (by the sidecar's own clock: those whose
    /// middle is within `over` of its newest window's end); an error if a sidecar's last scrape
    /// failed.
    pub fn recent(&self, over: Duration) -> Result<Vec<StatsWindow>, String> {
        let sidecars = self.sidecars.lock().unwrap();
        let mut out = Vec::new();
        for s in sidecars.iter() {
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            let Some(newest) = s.windows.back() else { continue };
            let from = newest.to_ms.saturating_sub(over.as_millis() as u64);
            out.extend(
                s.windows
                    .iter()
                    .filter(|w| w.from_ms + (w.to_ms - w.from_ms) / 2 >= from)
                    .cloned(),
            );
        }
        Ok(out)
    }

    /// Windows held for sidecar `i`.
    pub fn len(&self, i: usize) -> usize {
        self.sidecars.lock().unwrap()[i].windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sidecars.lock().unwrap().iter().all(|s| s.windows.is_empty())
    }
}

/// Sidecars scraped every interval into a [`StatsHistory`], until dropped.
pub struct LiveSidecars {
    history: Arc<StatsHistory>,
    task: JoinHandle<()>,
}

impl LiveSidecars {
    /// Take each sidecar's first snapshot (an error if one cannot be reached), then scrape
    /// every `interval`; returns once every sidecar has one window, so the first probe has
    /// traffic to read.
    pub async fn start(
        admins: &[String],
        token: Option<String>,
        interval: Duration,
        keep: Duration,
    ) -> Result<Self, String> {
        let mut clients: Vec<StatsClient> = admins.iter().map(|a| StatsClient::new(a, token.clone())).collect();
        for c in &mut clients {
            // Since the sidecar started: a baseline, not a recent window.
            c.next_window().await.map_err(|e| e.to_string())?;
        }
        let history = StatsHistory::new(clients.len(), keep);
        let h = history.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                for (i, c) in clients.iter_mut().enumerate() {
                    match c.next_window().await {
                        Ok(w) => h.push(i, w),
                        Err(e) => h.failed(i, e.to_string()),
                    }
                }
            }
        });
        let sidecars = LiveSidecars { history, task };
        let mut wait = tokio::time::interval(interval / 10);
        while (0..admins.len()).any(|i| sidecars.history.len(i) == 0) {
            if let Some(e) = sidecars
                .history
                .sidecars
                .lock()
                .unwrap()
                .iter()
                .find_map(|s| s.error.clone())
            {
                return Err(e);
            }
            wait.tick().await;
        }
        Ok(sidecars)
    }

    pub fn history(&self) -> Arc<StatsHistory> {
        self.history.clone()
    }
}

impl Drop for LiveSidecars {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(from_ms: u64, to_ms: u64) -> StatsWindow {
        StatsWindow {
            from_ms,
            to_ms,
            ..StatsWindow::default()
        }
    }

    #[test]
    fn recent_windows_by_the_sidecars_clock() {
        let h = StatsHistory::new(2, Duration::from_secs(5));
        for s in 0..10u64 {
            // Scrapes a few ms late, as real ones are.
            h.push(0, window(s * 1000 + 3, (s + 1) * 1000 + 4));
        }
        h.push(1, window(500_000, 501_000));
        assert_eq!(h.len(0), 6, "windows ending within 5 s of the newest are kept");
        let recent = h.recent(Duration::from_secs(2)).unwrap();
        let froms: Vec<u64> = recent.iter().map(|w| w.from_ms).collect();
        assert_eq!(froms, [8003, 9003, 500_000], "the last two seconds of each sidecar");
        h.failed(1, "connection refused".into());
        assert_eq!(h.recent(Duration::from_secs(2)).unwrap_err(), "connection refused");
        h.push(1, window(501_000, 502_000));
        assert!(
            h.recent(Duration::from_secs(2)).is_ok(),
            "a good scrape clears the error"
        );
    }
}
