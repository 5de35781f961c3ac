//! `ballast fault add|list|clear`: faults on a running sidecar, through its admin API.
//!
//! Options map one to one onto the fields of a fault spec (`--path-prefix` is `path_prefix`),
//! so the README's fault reference serves both. Values that are whole numbers are sent as
//! numbers (Toxiproxy's units: `--latency 100` is 100 ms), anything else as text
//! (`--delay 250ms`, `--rate 64KiB`). The sidecar checks the spec and answers with every
//! problem at once; they are printed with their fixes.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use ballast_model::ActiveFault;
use ballast_model::client::{AdminClient, ClientError, fault_params};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};

#[derive(Args)]
pub struct FaultArgs {
    /// The sidecar's admin API.
    #[arg(long, global = true, env = "BALLAST_ADMIN", default_value = "http://127.0.0.1:9901")]
    admin: String,
    /// Bearer token for the admin API.
    #[arg(long, global = true, env = "BALLAST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: FaultCommand,
}

#[derive(Subcommand)]
enum FaultCommand {
    /// Put a fault in place (it expires after its TTL: 5 minutes unless --ttl says otherwise).
    // Negative numbers are values, so the sidecar can say what is wrong with them.
    #[command(allow_negative_numbers = true)]
    Add(Box<AddArgs>),
    /// List the faults in place with their counters.
    List {
        /// Print the JSON the admin API returns.
        #[arg(long)]
        json: bool,
    },
    /// Remove one fault, or every fault added through the admin API.
    Clear { id: Option<String> },
}

const KINDS: [&str; 14] = [
    "delay",
    "abort",
    "reset",
    "hang",
    "empty_reply",
    "bandwidth",
    "truncate",
    "latency",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "down",
];

#[derive(Args)]
struct AddArgs {
    /// HTTP: delay abort reset hang empty_reply bandwidth truncate; TCP (with --listener):
    /// latency bandwidth slow_close timeout reset_peer slicer limit_data down.
    #[arg(value_parser = KINDS)]
    kind: String,
    /// How long the fault lives, e.g. 2m.
    #[arg(long)]
    ttl: Option<String>,
    /// An id of your choosing (one is made up otherwise).
    #[arg(long)]
    id: Option<String>,
    /// Share of matching requests affected, 0-100.
    #[arg(long)]
    percent: Option<String>,
    #[arg(long)]
    route: Option<String>,
    /// Repeatable.
    #[arg(long = "method")]
    methods: Vec<String>,
    #[arg(long)]
    path_prefix: Option<String>,
    /// A request header that must match, `name=value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long)]
    tenant: Option<String>,
    /// inbound (the client sees it) or upstream (per endpoint, below retries).
    #[arg(long)]
    position: Option<String>,
    /// Upstream faults only: limit to this endpoint, host:port (repeatable).
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// The TCP listener a toxic applies to.
    #[arg(long)]
    listener: Option<String>,
    /// Toxics: upstream (client to server) or downstream.
    #[arg(long)]
    stream: Option<String>,
    /// Toxics: share of connections affected, 0-1.
    #[arg(long)]
    toxicity: Option<String>,
    #[arg(long)]
    delay: Option<String>,
    #[arg(long)]
    jitter: Option<String>,
    #[arg(long)]
    p50: Option<String>,
    #[arg(long)]
    p99: Option<String>,
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    body: Option<String>,
    /// A header of the abort response, `name=value` (repeatable).
    #[arg(long = "response-header")]
    response_headers: Vec<String>,
    /// KB/s as a number, or a byte size per second such as 64KiB.
    #[arg(long)]
    rate: Option<String>,
    /// Truncate: body bytes let through.
    #[arg(long)]
    after: Option<String>,
    #[arg(long)]
    latency: Option<String>,
    #[arg(long)]
    timeout: Option<String>,
    #[arg(long)]
    average_size: Option<String>,
    #[arg(long)]
    size_variation: Option<String>,
    #[arg(long)]
    bytes: Option<String>,
}

impl AddArgs {
    /// The fault spec as the admin API takes it.
    fn spec(&self) -> anyhow::Result<Value> {
        let mut spec = Map::new();
        spec.insert("kind".into(), Value::String(self.kind.clone()));
        let text = [
            ("ttl", &self.ttl),
            ("id", &self.id),
            ("route", &self.route),
            ("path_prefix", &self.path_prefix),
            ("tenant", &self.tenant),
            ("position", &self.position),
            ("listener", &self.listener),
            ("stream", &self.stream),
            ("body", &self.body),
        ];
        for (field, value) in text {
            if let Some(v) = value {
                spec.insert(field.into(), Value::String(v.clone()));
            }
        }
        let numeric = [
            ("percent", &self.percent),
            ("toxicity", &self.toxicity),
            ("delay", &self.delay),
            ("jitter", &self.jitter),
            ("p50", &self.p50),
            ("p99", &self.p99),
            ("status", &self.status),
            ("rate", &self.rate),
            ("after", &self.after),
            ("latency", &self.latency),
            ("timeout", &self.timeout),
            ("average_size", &self.average_size),
            ("size_variation", &self.size_variation),
            ("bytes", &self.bytes),
        ];
        for (field, value) in numeric {
            if let Some(v) = value {
                spec.insert(field.into(), number_or_text(v));
            }
        }
        for (field, values) in [("methods", &self.methods), ("endpoints", &self.endpoints)] {
            if !values.is_empty() {
                spec.insert(field.into(), values.iter().cloned().map(Value::String).collect());
            }
        }
        for (field, pairs) in [("headers", &self.headers), ("response_headers", &self.response_headers)] {
            if !pairs.is_empty() {
                let mut map = Map::new();
                for pair in pairs {
                    let Some((name, value)) = pair.split_once('=') else {
                        bail!(
                            "--{} {pair:?}: write it as name=value",
                            field.replace('_', "-").trim_end_matches('s')
                        );
                    };
                    map.insert(name.trim().into(), Value::String(value.trim().into()));
                }
                spec.insert(field.into(), Value::Object(map));
            }
        }
        Ok(Value::Object(spec))
    }
}

fn number_or_text(v: &str) -> Value {
    if let Ok(n) = v.parse::<i64>() {
        return n.into();
    }
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() => f.into(),
        _ => Value::String(v.to_owned()),
    }
}

/// A refused request: the sidecar's problem document, printed field by field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

pub async fn run(args: FaultArgs) -> anyhow::Result<()> {
    let admin = AdminClient::new(&args.admin, args.token.clone());
    let refused = |e| refused(e, admin.base());
    match args.command {
        FaultCommand::Add(add) => {
            let fault = admin.add_fault(&add.spec()?).await.map_err(refused)?;
            println!("{}", describe(&fault));
        }
        FaultCommand::List { json } => {
            let faults = admin.faults().await.map_err(refused)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&faults)?);
            } else if faults.is_empty() {
                println!("no faults in place");
            } else {
                for f in &faults {
                    println!("{}", describe(f));
                }
            }
        }
        FaultCommand::Clear { id } => {
            let ids = match id {
                Some(id) => admin.remove_fault(&id).await,
                None => admin.clear_faults().await,
            }
            .map_err(refused)?;
            println!(
                "removed {} fault(s){}",
                ids.len(),
                if ids.is_empty() {
                    String::new()
                } else {
                    format!(": {}", ids.join(", "))
                }
            );
        }
    }
    Ok(())
}

/// A problem document becomes [`Refused`] (a usage error); a failed connection says which
/// admin API it tried.
fn refused(e: ClientError, base: &str) -> anyhow::Error {
    match e {
        ClientError::Refused(text) => Refused(text).into(),
        ClientError::Status { status, body, .. } => anyhow::anyhow!("the admin API answered {status}: {body}"),
        e @ ClientError::Http { .. } => anyhow::Error::new(e).context(format!("cannot reach the admin API at {base}")),
    }
}

/// One line per fault: id, kind, where, counters, expiry.
fn describe(f: &ActiveFault) -> String {
    let params = fault_params(f);
    let expiry = match f.expires_at_ms {
        None => "from the config".to_owned(),
        Some(at) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            format!("expires in {}s", at.saturating_sub(now).div_ceil(1000))
        }
    };
    format!(
        "{}  {}  {}  matched={} injected={}  {expiry}",
        f.id,
        f.spec.kind,
        params.join(" "),
        f.matched,
        f.injected
    )
}
