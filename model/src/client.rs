//! Fetch [`StatsSnapshot`]s from a sidecar's admin API and turn them into windows: the one
//! piece of code the TUI, the SLO engine's live source and the scenario runner share.
//! Behind the `client` feature, so the sidecar itself does not link an HTTP client.

use crate::stats::{StatsSnapshot, StatsWindow};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
}

/// Polls one sidecar's `/stats`.
pub struct StatsClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    last: Option<StatsSnapshot>,
}

impl StatsClient {
    /// `admin` is the admin API's base URL, e.g. `http://127.0.0.1:9901`; `token` its bearer
    /// token if it has one.
    pub fn new(admin: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder().no_proxy().build().expect("HTTP client");
        StatsClient {
            http,
            url: format!("{}/stats", admin.trim_end_matches('/')),
            token,
            last: None,
        }
    }

    /// The sidecar's current cumulative snapshot.
    pub async fn snapshot(&self) -> Result<StatsSnapshot, ClientError> {
        let err = |source| ClientError::Http {
            url: self.url.clone(),
            source,
        };
        let mut req = self.http.get(&self.url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(err)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(ClientError::Status {
                url: self.url.clone(),
                status: status.as_u16(),
                body,
            });
        }
        resp.json().await.map_err(err)
    }

    /// The traffic since the previous call (the first call: since the sidecar started).
    pub async fn next_window(&mut self) -> Result<StatsWindow, ClientError> {
        let now = self.snapshot().await?;
        let window = now.window(self.last.as_ref().unwrap_or(&StatsSnapshot::default()));
        self.last = Some(now);
        Ok(window)
    }
}
