//! `ballast demo-upstream`: a small HTTP service with tunable behaviour, for demos and tests.
//!
//! Each path prefix has a behaviour: a latency distribution (lognormal from p50 and p99, as
//! service latencies usually are), an error rate and status, a response size, and optionally a
//! Redis it calls for every request (`redis = "127.0.0.1:6379"`: one `INCR` over a kept
//! connection, so a slow or failing Redis shows in the answers, as for a real service with a
//! cache or session store). The longest matching prefix wins. Behaviours change at run time over a control endpoint on the same
//! port, so a scenario can simulate a bad deploy:
//!
//! | call | effect |
//! |---|---|
//! | `GET /_demo/behaviours` | every path's behaviour, as JSON |
//! | `PUT /_demo/behaviours/<path>` | set the behaviour of `/<path>` (JSON body) |
//! | `DELETE /_demo/behaviours/<path>` | remove it (the default `/` cannot be removed) |
//! | `POST /_demo/reset` | back to the behaviours the process started with |
//! | `GET /healthz` | 200, always (for health checks) |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ballast_model::{ByteSize, HumanDuration};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// How one path answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Median latency.
    #[serde(default = "default_p50")]
    pub p50: HumanDuration,
    /// 99th percentile latency; equal to p50 for a fixed delay.
    #[serde(default = "default_p99")]
    pub p99: HumanDuration,
    /// Share of requests that fail, 0.0 to 1.0.
    #[serde(default)]
    pub error_rate: f64,
    /// Status of failed requests.
    #[serde(default = "default_error_status")]
    pub error_status: u16,
    /// Size of a successful response body.
    #[serde(default = "default_size")]
    pub size: ByteSize,
    /// A Redis (`host:port`) called once per request before answering; a Redis error or no
    /// answer within 2 s fails the request with 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

fn default_p50() -> HumanDuration {
    HumanDuration(Duration::from_millis(1))
}
fn default_p99() -> HumanDuration {
    HumanDuration(Duration::from_millis(5))
}
fn default_error_status() -> u16 {
    500
}
fn default_size() -> ByteSize {
    ByteSize(64)
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            p50: default_p50(),
            p99: default_p99(),
            error_rate: 0.0,
            error_status: default_error_status(),
            size: default_size(),
            redis: None,
        }
    }
}

impl Behaviour {
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("error_rate {} is outside 0.0..=1.0", self.error_rate));
        }
        if self.p99 < self.p50 {
            return Err(format!("p99 {} is below p50 {}", self.p99, self.p50));
        }
        if StatusCode::from_u16(self.error_status).is_err() || self.error_status < 200 {
            return Err(format!("error_status {} is not an HTTP status", self.error_status));
        }
        if self.size.get() > 64 << 20 {
            return Err(format!("size {} is over the 64MiB cap", self.size));
        }
        // Placeholders (`{{port:redis}}`) are filled in later.
        if let Some(r) = &self.redis
            && !r.contains("{{")
            && r.parse::<SocketAddr>().is_err()
        {
            return Err(format!("redis {r:?} is not host:port"));
        }
        Ok(())
    }

    /// Draw one latency: lognormal with the given median and 99th percentile.
    pub fn sample_latency(&self, rng: &mut impl rand::Rng) -> Duration {
        let (p50, p99) = (self.p50.get().as_secs_f64(), self.p99.get().as_secs_f64());
        if p50 <= 0.0 || p99 <= p50 {
            return self.p50.get();
        }
        // z(0.99) = 2.3263: sigma puts p99 where it was asked to be.
        let sigma = (p99.ln() - p50.ln()) / 2.326_347_874;
        let dist = LogNormal::new(p50.ln(), sigma).expect("finite parameters");
        Duration::from_secs_f64(dist.sample(rng).min(60.0))
    }
}

/// The behaviours the demo starts with: a shop with a catalog and a checkout.
pub fn default_behaviours() -> BTreeMap<String, Behaviour> {
    let ms = |n| HumanDuration(Duration::from_millis(n));
    BTreeMap::from([
        ("/".to_owned(), Behaviour::default()),
        (
            "/api/catalog".to_owned(),
            Behaviour {
                p50: ms(5),
                p99: ms(30),
                size: ByteSize(2048),
                ..Behaviour::default()
            },
        ),
        (
            "/api/checkout".to_owned(),
            Behaviour {
                p50: ms(20),
                p99: ms(80),
                error_rate: 0.001,
                error_status: 503,
                ..Behaviour::default()
            },
        ),
    ])
}

/// Read a TOML file of behaviours: `["/api/checkout"] p50 = "20ms" ...`.
pub fn load_behaviours(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, Behaviour>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut map: BTreeMap<String, Behaviour> =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for (p, b) in &map {
        if !p.starts_with('/') {
            anyhow::bail!("{}: path {p:?} must start with '/'", path.display());
        }
        b.check().map_err(|e| anyhow::anyhow!("{}: {p}: {e}", path.display()))?;
    }
    map.entry("/".to_owned()).or_default();
    Ok(map)
}

struct State {
    initial: BTreeMap<String, Behaviour>,
    current: RwLock<BTreeMap<String, Behaviour>>,
    /// One reconnecting connection per Redis address.
    redis: std::sync::Mutex<BTreeMap<String, redis::aio::ConnectionManager>>,
}

/// How long a request waits for its Redis call.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

impl State {
    /// One `INCR` on the Redis at `addr`: the reply, or why there is none.
    async fn call_redis(&self, addr: &str, path: &str) -> Result<i64, String> {
        // Connecting happens outside the lock: requests never queue behind a slow connect.
        let known = self.redis.lock().unwrap().get(addr).cloned();
        let mut conn = match known {
            Some(c) => c,
            None => {
                let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(REDIS_TIMEOUT)
                    .set_response_timeout(REDIS_TIMEOUT);
                let c = tokio::time::timeout(
                    REDIS_TIMEOUT,
                    redis::aio::ConnectionManager::new_with_config(client, config),
                )
                .await
                .map_err(|_| "no connection within 2s".to_owned())?
                .map_err(|e| e.to_string())?;
                self.redis.lock().unwrap().entry(addr.to_owned()).or_insert(c).clone()
            }
        };
        let mut incr = redis::cmd("INCR");
        incr.arg(format!("demo:{path}"));
        tokio::time::timeout(REDIS_TIMEOUT, incr.query_async::<i64>(&mut conn))
            .await
            .map_err(|_| "no answer within 2s".to_owned())?
            .map_err(|e| e.to_string())
    }
}

impl State {
    fn behaviour_for(&self, path: &str) -> Behaviour {
        let current = self.current.read().unwrap();
        current
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }
}

/// Serve until the future `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    behaviours: BTreeMap<String, Behaviour>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let state = Arc::new(State {
        current: RwLock::new(behaviours.clone()),
        initial: behaviours,
        redis: Default::default(),
    });
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return reply(StatusCode::OK, "text/plain", "ok\n");
    }
    if let Some(rest) = path.strip_prefix("/_demo/") {
        return control(state, req, rest).await;
    }
    let behaviour = state.behaviour_for(&path);
    // Drain the request body so keep-alive connections stay usable.
    let _ = req.into_body().collect().await;
    let (delay, failed) = {
        let mut rng = rand::rng();
        (
            behaviour.sample_latency(&mut rng),
            rand::Rng::random_bool(&mut rng, behaviour.error_rate),
        )
    };
    tokio::time::sleep(delay).await;
    if let Some(addr) = &behaviour.redis
        && let Err(e) = state.call_redis(addr, &path).await
    {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("demo upstream: redis at {addr}: {e}\n"),
        );
    }
    if failed {
        let status = StatusCode::from_u16(behaviour.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return reply(status, "text/plain", "demo upstream: injected failure\n");
    }
    reply(
        StatusCode::OK,
        "application/octet-stream",
        Bytes::from(vec![b'.'; behaviour.size.get() as usize]),
    )
}

async fn control(state: &State, req: Request<Incoming>, rest: &str) -> Response<Body> {
    let json = |status, v: &serde_json::Value| reply(status, "application/json", v.to_string() + "\n");
    let method = req.method().clone();
    let target = rest
        .strip_prefix("behaviours")
        .map(|p| if p.is_empty() { "/".to_owned() } else { p.to_owned() });
    match (method, rest, target) {
        (Method::GET, "behaviours", _) => json(
            StatusCode::OK,
            &serde_json::to_value(&*state.current.read().unwrap()).unwrap(),
        ),
        (Method::POST, "reset", _) => {
            *state.current.write().unwrap() = state.initial.clone();
            json(StatusCode::OK, &serde_json::json!({ "reset": true }))
        }
        (Method::PUT, _, Some(path)) => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            match serde_json::from_slice::<Behaviour>(&body)
                .map_err(|e| e.to_string())
                .and_then(|b| b.check().map(|_| b))
            {
                Ok(b) => {
                    state.current.write().unwrap().insert(path.clone(), b.clone());
                    json(StatusCode::OK, &serde_json::json!({ "path": path, "behaviour": b }))
                }
                Err(e) => reply(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("invalid behaviour: {e}\n"),
                ),
            }
        }
        (Method::DELETE, _, Some(path)) if path != "/" => {
            let removed = state.current.write().unwrap().remove(&path).is_some();
            let status = if removed { StatusCode::OK } else { StatusCode::NOT_FOUND };
            json(status, &serde_json::json!({ "path": path, "removed": removed }))
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "control calls: GET /_demo/behaviours, PUT|DELETE /_demo/behaviours/<path>, POST /_demo/reset\n",
        ),
    }
}

/// Bind and serve until Ctrl-C/SIGTERM; prints a ready line like the sidecar's.
pub async fn run(listen: SocketAddr, behaviours: BTreeMap<String, Behaviour>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    println!(
        "{}",
        serde_json::json!({ "ready": { "listen": listener.local_addr()? } })
    );
    let stop = async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    serve(listener, behaviours, stop).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn latency_follows_the_requested_percentiles() {
        let b = Behaviour {
            p50: HumanDuration(Duration::from_millis(20)),
            p99: HumanDuration(Duration::from_millis(80)),
            ..Behaviour::default()
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut samples: Vec<f64> = (0..20_000)
            .map(|_| b.sample_latency(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        samples.sort_by(f64::total_cmp);
        let (p50, p99) = (samples[10_000], samples[19_800]);
        assert!((p50 - 20.0).abs() < 1.0, "p50 {p50}");
        assert!((p99 - 80.0).abs() < 6.0, "p99 {p99}");
    }

    #[test]
    fn the_longest_prefix_decides() {
        let state = State {
            initial: default_behaviours(),
            current: RwLock::new(default_behaviours()),
            redis: Default::default(),
        };
        assert_eq!(state.behaviour_for("/api/checkout/42").error_status, 503);
        assert_eq!(state.behaviour_for("/api/catalog").size, ByteSize(2048));
        assert_eq!(state.behaviour_for("/other"), Behaviour::default());
    }

    #[test]
    fn bad_behaviours_are_refused() {
        assert!(
            Behaviour {
                error_rate: 1.5,
                ..Behaviour::default()
            }
            .check()
            .is_err()
        );
        assert!(
            Behaviour {
                error_status: 42,
                ..Behaviour::default()
            }
            .check()
            .is_err()
        );
        let inverted = Behaviour {
            p99: HumanDuration(Duration::ZERO),
            ..Behaviour::default()
        };
        assert!(inverted.check().is_err());
    }

    #[tokio::test]
    async fn a_redis_behind_a_path_is_called_once_per_request() {
        let redis = ballast_testkit::Redis::start();
        let cart = Behaviour {
            p50: HumanDuration(Duration::ZERO),
            p99: HumanDuration(Duration::ZERO),
            redis: Some(format!("127.0.0.1:{}", redis.port)),
            ..Behaviour::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/cart/7", listener.local_addr().unwrap());
        let behaviours = BTreeMap::from([("/".to_owned(), Behaviour::default()), ("/api/cart".to_owned(), cart)]);
        tokio::spawn(serve(listener, behaviours, std::future::pending()));
        let client = reqwest::Client::new();
        for _ in 0..3 {
            assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
        }
        let counted = tokio::task::spawn_blocking(move || {
            let n = redis.cli(&["get", "demo:/api/cart/7"]);
            drop(redis);
            n
        })
        .await
        .unwrap();
        assert_eq!(counted, "3");
        // Redis gone: the service fails its requests, and says why.
        let answer = client.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 503);
        assert!(answer.text().await.unwrap().contains("redis at 127.0.0.1:"));
    }
}
