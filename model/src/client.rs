//! Talk to a sidecar's admin API: fetch [`StatsSnapshot`]s and turn them into windows
//! ([`StatsClient`]), and list, add and remove faults ([`AdminClient`]). The one piece of code
//! the CLI, the TUI, the SLO engine's live source and the scenario runner share. Behind the
//! `client` feature, so the sidecar itself does not link an HTTP client.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fault::ActiveFault;
use crate::stats::{StatsSnapshot, StatsWindow};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    /// The sidecar refused the call with a problem document (RFC 9457): its title, detail
    /// and every field error with its fix, one per line.
    #[error("{0}")]
    Refused(String),
}

/// Polls one sidecar's `/stats`.
pub struct StatsClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    last: Option<StatsSnapshot>,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("HTTP client")
}

impl StatsClient {
    /// `admin` is the admin API's base URL, e.g. `http://127.0.0.1:9901`; `token` its bearer
    /// token if it has one.
    pub fn new(admin: &str, token: Option<String>) -> Self {
        StatsClient {
            http: http_client(),
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

/// The fault calls of one sidecar's admin API (`/faults`), and its event stream's request.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AdminClient {
    /// `admin` is the admin API's base URL; `token` its bearer token if it has one.
    pub fn new(admin: &str, token: Option<String>) -> Self {
        AdminClient {
            http: http_client(),
            base: admin.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` with the token, for calls this client does not wrap (`/events`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The faults in place, with their counters.
    pub async fn faults(&self) -> Result<Vec<ActiveFault>, ClientError> {
        self.call(self.request(reqwest::Method::GET, "/faults"), "/faults")
            .await
    }

    /// Put a fault in place. The spec goes as JSON as it is (a `FaultSpec`, or JSON built
    /// from text so the sidecar can say what is wrong with each value).
    pub async fn add_fault(&self, spec: &impl Serialize) -> Result<ActiveFault, ClientError> {
        self.call(self.request(reqwest::Method::POST, "/faults").json(spec), "/faults")
            .await
    }

    /// Remove one fault (one from the config file too); the ids removed.
    pub async fn remove_fault(&self, id: &str) -> Result<Vec<String>, ClientError> {
        let path = format!("/faults/{id}");
        let removed: Removed = self.call(self.request(reqwest::Method::DELETE, &path), &path).await?;
        Ok(removed.removed)
    }

    /// Remove every fault added through the admin API; the ids removed.
    pub async fn clear_faults(&self) -> Result<Vec<String>, ClientError> {
        let removed: Removed = self
            .call(self.request(reqwest::Method::DELETE, "/faults"), "/faults")
            .await?;
        Ok(removed.removed)
    }

    /// The JSON of a successful answer, or the problem document as [`ClientError::Refused`].
    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let http_err = |source| ClientError::Http {
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status();
        let body = resp.text().await.map_err(http_err)?;
        if status.is_success() {
            return serde_json::from_str(&body).map_err(|e| ClientError::Status {
                url: url.clone(),
                status: status.as_u16(),
                body: format!("unexpected answer ({e}): {body}"),
            });
        }
        match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(problem) if problem.get("title").is_some() => Err(ClientError::Refused(describe_problem(
                &problem,
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
            ))),
            _ => Err(ClientError::Status {
                url,
                status: status.as_u16(),
                body: body.trim().to_owned(),
            }),
        }
    }
}

#[derive(serde::Deserialize)]
struct Removed {
    #[serde(default)]
    removed: Vec<String>,
}

/// `title (503 Reason): detail`, then each field error and its fix.
fn describe_problem(problem: &serde_json::Value, status: u16, reason: &str) -> String {
    let mut text = format!(
        "{} ({status} {reason}): {}",
        problem["title"].as_str().unwrap_or("refused"),
        problem["detail"].as_str().unwrap_or_default()
    );
    for e in problem["errors"].as_array().into_iter().flatten() {
        let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
        text.push_str(&format!("\n  {}: {}\n    fix: {}", s("field"), s("message"), s("fix")));
    }
    text
}

/// A fault's parameters as `name=value` pairs (every field but kind, id and ttl), for one-line
/// listings.
pub fn fault_params(f: &ActiveFault) -> Vec<String> {
    let spec = serde_json::to_value(&f.spec).unwrap_or_default();
    spec.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "kind" | "id" | "ttl"))
        .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_reads_field_by_field() {
        let problem = serde_json::json!({
            "title": "invalid fault", "status": 400, "detail": "fix the fields listed",
            "errors": [{"field": "percent", "message": "101 is outside 0-100", "fix": "give a share"}]
        });
        assert_eq!(
            describe_problem(&problem, 400, "Bad Request"),
            "invalid fault (400 Bad Request): fix the fields listed\n  percent: 101 is outside 0-100\n    fix: give a share"
        );
    }
}
