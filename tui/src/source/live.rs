//! Live sidecars: for each one a task polls `/stats` once a second with the shared
//! [`StatsClient`] and another follows `/events` (Server-Sent Events, reconnecting when the
//! stream ends). Network I/O never runs on the render loop: the tasks feed a channel that
//! [`Source::poll`] drains. A scrape that fails or takes too long is a
//! [`Feed::Unreachable`], never an error of the dashboard.
//!
//! Fault actions run as tasks too; each ends with the sidecar's fresh `/faults` and a
//! [`Feed::Done`].

use std::time::Duration;

use ballast_model::client::{AdminClient, ClientError, StatsClient};
use ballast_model::event::unix_ms;
use ballast_model::{Event, FaultSpec};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{Control, FaultAction, Feed, Source, SourceStatus};

/// How often each sidecar's stats are scraped.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(1);
/// A scrape not answered within this counts as failed.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Wait before following `/events` again after the stream ended or could not start.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Feeds waiting for the render loop; scrapers wait when it is full.
const QUEUE: usize = 1024;

/// One sidecar to watch: how it is shown and where its admin API is.
#[derive(Clone, Debug)]
pub struct Sidecar {
    pub name: String,
    pub admin: String,
}

impl Sidecar {
    /// A sidecar known by its admin URL, shown without the scheme (`127.0.0.1:9901`).
    pub fn from_admin(admin: &str) -> Sidecar {
        let admin = admin.trim_end_matches('/');
        let name = admin
            .strip_prefix("http://")
            .or_else(|| admin.strip_prefix("https://"))
            .unwrap_or(admin);
        Sidecar {
            name: name.to_owned(),
            admin: admin.to_owned(),
        }
    }
}

pub struct LiveSource {
    sidecars: Vec<(Sidecar, AdminClient)>,
    tx: mpsc::Sender<Feed>,
    rx: mpsc::Receiver<Feed>,
    tasks: Vec<JoinHandle<()>>,
}

impl LiveSource {
    /// Start watching; must be called inside a tokio runtime.
    pub fn start(sidecars: Vec<Sidecar>, token: Option<String>) -> LiveSource {
        let (mut source, tx) = LiveSource::fed(sidecars, token.clone());
        for (s, admin) in &source.sidecars {
            source.tasks.push(tokio::spawn(scrape(
                s.name.clone(),
                StatsClient::new(&s.admin, token.clone()),
                tx.clone(),
            )));
            source
                .tasks
                .push(tokio::spawn(follow_events(s.name.clone(), admin.clone(), tx.clone())));
        }
        source
    }

    /// Sidecars that someone else scrapes and follows (the scenario runner, which records
    /// what it shows): it sends their feeds through the returned sender. Fault actions still
    /// go to the sidecars' admin APIs.
    pub fn fed(sidecars: Vec<Sidecar>, token: Option<String>) -> (LiveSource, mpsc::Sender<Feed>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let sidecars = sidecars
            .into_iter()
            .map(|s| {
                let admin = AdminClient::new(&s.admin, token.clone());
                (s, admin)
            })
            .collect();
        let source = LiveSource {
            sidecars,
            tx: tx.clone(),
            rx,
            tasks: Vec::new(),
        };
        (source, tx)
    }

    fn client(&self, name: &str) -> Result<AdminClient, String> {
        self.sidecars
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| format!("no sidecar {name:?}"))
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Source for LiveSource {
    fn poll(&mut self) -> Vec<Feed> {
        let mut out = Vec::new();
        while let Ok(feed) = self.rx.try_recv() {
            out.push(feed);
        }
        out.push(Feed::Clock {
            now_ms: unix_ms(),
            status: SourceStatus::Live,
        });
        out
    }

    fn control(&mut self, _: Control) -> Result<(), String> {
        Err("live data cannot be paused or scrubbed (replay a recorded run for that)".into())
    }

    fn fault(&mut self, action: FaultAction) -> Result<(), String> {
        let jobs: Vec<(String, AdminClient)> = match &action {
            FaultAction::Add { sidecar, .. } | FaultAction::Remove { sidecar, .. } => {
                vec![(sidecar.clone(), self.client(sidecar)?)]
            }
            FaultAction::Clear { sidecars } => sidecars
                .iter()
                .map(|s| Ok((s.clone(), self.client(s)?)))
                .collect::<Result<_, String>>()?,
        };
        let tx = self.tx.clone();
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(tokio::spawn(async move {
            let mut messages = Vec::new();
            let mut ok = true;
            for (name, admin) in jobs {
                let result = match &action {
                    FaultAction::Add { spec, .. } => add(&admin, spec).await,
                    FaultAction::Remove { id, .. } => admin.remove_fault(id).await.map(|ids| removed(&ids)),
                    FaultAction::Clear { .. } => admin.clear_faults().await.map(|ids| removed(&ids)),
                };
                match result {
                    Ok(m) => messages.push(format!("{name}: {m}")),
                    Err(e) => {
                        ok = false;
                        messages.push(format!("{name}: {}", one_line(&e)));
                    }
                }
                // The fault list as it is now, without waiting for the next scrape.
                if let Ok(faults) = admin.faults().await {
                    let _ = tx
                        .send(Feed::Faults {
                            at_ms: unix_ms(),
                            sidecar: name,
                            faults,
                        })
                        .await;
                }
            }
            let _ = tx
                .send(Feed::Done {
                    ok,
                    message: messages.join("; "),
                })
                .await;
        }));
        Ok(())
    }
}

async fn add(admin: &AdminClient, spec: &FaultSpec) -> Result<String, ClientError> {
    let f = admin.add_fault(spec).await?;
    Ok(format!("fault {} added", f.id))
}

fn removed(ids: &[String]) -> String {
    match ids {
        [] => "no fault to remove".into(),
        ids => format!("removed {}", ids.join(", ")),
    }
}

/// A client error on one line (a refusal's field errors are joined).
fn one_line(e: &ClientError) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Scrape `/stats` every second until the receiver is gone.
async fn scrape(name: String, client: StatsClient, tx: mpsc::Sender<Feed>) {
    let mut every = tokio::time::interval(SCRAPE_EVERY);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let feed = match tokio::time::timeout(SCRAPE_TIMEOUT, client.snapshot()).await {
            Ok(Ok(snapshot)) => Feed::Stats {
                at_ms: unix_ms(),
                sidecar: name.clone(),
                snapshot: snapshot.into(),
            },
            Ok(Err(e)) => Feed::Unreachable {
                at_ms: unix_ms(),
                sidecar: name.clone(),
                error: reason(&e),
            },
            Err(_) => Feed::Unreachable {
                at_ms: unix_ms(),
                sidecar: name.clone(),
                error: format!("no answer within {}s", SCRAPE_TIMEOUT.as_secs()),
            },
        };
        if tx.send(feed).await.is_err() {
            return;
        }
    }
}

/// Why a scrape failed, shortly: the innermost cause (`Connection refused`), or the status.
fn reason(e: &ClientError) -> String {
    match e {
        ClientError::Http { source, .. } => {
            let mut cause: &dyn std::error::Error = source;
            while let Some(next) = cause.source() {
                cause = next;
            }
            cause.to_string()
        }
        ClientError::Status { status, .. } => format!("HTTP {status}"),
        ClientError::Refused(text) => text.lines().next().unwrap_or_default().to_owned(),
    }
}

/// Follow `/events`; events from the sidecar take its name as their source. The sidecar
/// replays its recent events on each connect; the model drops the ones it has seen.
async fn follow_events(name: String, admin: AdminClient, tx: mpsc::Sender<Feed>) {
    loop {
        if let Ok(resp) = admin.request(reqwest::Method::GET, "/events").send().await
            && resp.status().is_success()
        {
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let message: String = buf.drain(..end + 2).collect();
                    for event in parse_message(&message, &name) {
                        if tx.send(Feed::Event(event)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// The events of one Server-Sent Events message (`data:` lines; comments are heartbeats).
/// Kinds this build does not know are skipped.
fn parse_message(message: &str, sidecar: &str) -> Vec<Event> {
    message
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Event>(data.trim_start()).ok())
        .map(|mut e| {
            if e.source == "sidecar" {
                e.source = sidecar.to_owned();
            }
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_messages_become_events_named_after_the_sidecar() {
        let msg = "data: {\"at_ms\":5,\"source\":\"sidecar\",\"kind\":\"fault_expired\",\"id\":\"f1\"}\n\n";
        let events = parse_message(msg, "127.0.0.1:9901");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].source, "127.0.0.1:9901");
        assert!(parse_message(": heartbeat\n\n", "x").is_empty());
        assert!(parse_message("data: {\"at_ms\":5,\"source\":\"s\",\"kind\":\"new_kind\"}\n\n", "x").is_empty());
    }

    #[test]
    fn sidecars_are_named_by_their_admin_address() {
        let s = Sidecar::from_admin("http://127.0.0.1:9901/");
        assert_eq!(
            (s.name.as_str(), s.admin.as_str()),
            ("127.0.0.1:9901", "http://127.0.0.1:9901")
        );
    }

    #[tokio::test]
    async fn an_unreachable_sidecar_is_reported_not_fatal() {
        // A port nothing listens on: bound, then closed.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut live = LiveSource::start(vec![Sidecar::from_admin(&format!("http://{addr}"))], None);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let feeds = live.poll();
            if let Some(Feed::Unreachable { sidecar, error, .. }) =
                feeds.iter().find(|f| matches!(f, Feed::Unreachable { .. }))
            {
                assert_eq!(sidecar, &addr.to_string());
                assert!(error.to_lowercase().contains("refused"), "{error}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no unreachable feed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(live.control(Control::TogglePlay).is_err());
    }
}
