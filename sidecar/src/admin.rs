//! The admin API, on its own listener: health, readiness, the effective config and reload.
//!
//! | call | answer |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once listeners are bound and the config is loaded, 503 while draining |
//! | `GET /config` | the effective config as JSON (the token is never shown) |
//! | `POST /config` | re-read the file and swap it in; 400 with every error if it is invalid |
//! | `GET /events` | Server-Sent Events: recent events, then live ones (`data: <json>`) |
//! | `GET /stats` | a `StatsSnapshot` as JSON: cumulative counters and HDR latency histograms |
//! | `GET /metrics` | the same in Prometheus's text format, plus the fault counters |
//! | `GET /upstreams` | each cluster's endpoints: health, ejection, requests in flight |
//! | `GET /faults` | the faults in place, with their counters (matched, injected) |
//! | `POST /faults` | put a fault in place (a JSON `FaultSpec`); 201 with it, or 400 `application/problem+json` naming every bad field |
//! | `DELETE /faults/{id}` | remove one fault; `DELETE /faults` removes every fault added through the API |
//!
//! With `admin.token` set, every call needs `Authorization: Bearer <token>` (401 otherwise).

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use ballast_model::FaultSpec;
use ballast_model::fault::{FieldError, Origin};

use crate::body::{Body, BoxError};
use crate::config::Config;
use crate::faults::Refused;
use crate::sidecar::{ReloadError, Shared};

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let shared = shared.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let config = shared.config();
    if let Some(token) = &config.admin.token
        && !authorized(req.headers().get(header::AUTHORIZATION), token)
    {
        let mut resp = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") if shared.is_ready() => text(StatusCode::OK, "ready\n"),
        (&Method::GET, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        (&Method::GET, "/events") => events(shared),
        (&Method::GET, "/stats") => {
            let mut snapshot = shared.telemetry.meters.snapshot();
            snapshot.faults = shared.faults.list();
            for upstream in shared.gateway().upstreams() {
                let Some(cluster) = snapshot.clusters.get_mut(&upstream.name) else {
                    continue;
                };
                for (address, state) in upstream.states() {
                    if let Some(e) = cluster.endpoints.iter_mut().find(|e| *e.address == *address) {
                        e.state = Some(state);
                    }
                }
            }
            json(
                StatusCode::OK,
                &serde_json::to_value(snapshot).expect("stats serialize"),
            )
        }
        (&Method::GET, "/upstreams") => json(StatusCode::OK, &upstreams(shared)),
        (&Method::GET, "/metrics") => {
            let buckets =
                crate::telemetry::prometheus::buckets(config.extra_latency_buckets().map(|d| d.as_secs_f64()));
            let mut body = crate::telemetry::prometheus::render(&shared.telemetry.meters.snapshot(), &buckets);
            shared.faults.render_metrics(&mut body);
            let mut resp = text(StatusCode::OK, &body);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        (&Method::GET, "/config") => json(
            StatusCode::OK,
            &serde_json::to_value(&*config).expect("config serializes"),
        ),
        (&Method::POST, "/config") => match shared.reload_logged("admin API") {
            Ok(c) => json(
                StatusCode::OK,
                &serde_json::json!({ "reloaded": true, "routes": c.routes.len(), "clusters": c.clusters.len() }),
            ),
            Err(e @ ReloadError::Invalid(_)) => text(StatusCode::BAD_REQUEST, &e.to_string()),
            Err(e @ (ReloadError::NeedsRestart { .. } | ReloadError::Faults(_))) => {
                text(StatusCode::CONFLICT, &format!("{e}\n"))
            }
        },
        (&Method::GET, "/faults") => json(
            StatusCode::OK,
            &serde_json::to_value(shared.faults.list()).expect("faults serialize"),
        ),
        (&Method::POST, "/faults") => add_fault(shared, &config, req).await,
        (&Method::DELETE, "/faults") => {
            let removed = shared.faults.clear(&shared.events);
            json(StatusCode::OK, &serde_json::json!({ "removed": removed }))
        }
        (&Method::DELETE, path) if path.starts_with("/faults/") => {
            let id = &path["/faults/".len()..];
            if shared.faults.remove(id, &shared.events) {
                json(StatusCode::OK, &serde_json::json!({ "removed": [id] }))
            } else {
                problem(
                    StatusCode::NOT_FOUND,
                    "no such fault",
                    &format!("no fault with id {id:?} is in place (it may have expired)"),
                    &[],
                )
            }
        }
        (_, "/healthz" | "/readyz" | "/config" | "/faults") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "unknown admin path; try /healthz, /readyz, /config, /stats, /metrics, /events or /faults\n",
        ),
    }
}

/// `/upstreams`: each cluster's endpoints with their health, ejection and requests in flight.
fn upstreams(shared: &Shared) -> serde_json::Value {
    let gateway = shared.gateway();
    let clusters: serde_json::Map<String, serde_json::Value> = gateway
        .upstreams()
        .map(|u| {
            let endpoints: Vec<serde_json::Value> = u
                .states()
                .into_iter()
                .zip(&u.endpoints)
                .map(|((address, state), e)| {
                    let mut v = serde_json::to_value(state).expect("state serializes");
                    v["address"] = address.to_string().into();
                    v["weight"] = e.weight.into();
                    v["in_flight"] = e.in_flight().into();
                    v
                })
                .collect();
            let (connections, pending) = u.connections();
            let cluster = serde_json::json!({ "endpoints": endpoints, "connections": connections, "pending": pending });
            (u.name.clone(), cluster)
        })
        .collect();
    serde_json::Value::Object(clusters)
}

/// The largest fault spec accepted on `POST /faults`.
const MAX_FAULT_BODY: usize = 64 * 1024;

/// `POST /faults`: check a spec (JSON) on its own, against the config's names and against the
/// TTL cap, then put it in place. Every problem comes back at once as `application/problem+json`.
async fn add_fault(shared: &Shared, config: &Config, req: Request<Incoming>) -> Response<Body> {
    let body = match http_body_util::Limited::new(req.into_body(), MAX_FAULT_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return problem(StatusCode::BAD_REQUEST, "unreadable request body", &e.to_string(), &[]),
    };
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let spec: FaultSpec = match serde_path_to_error::deserialize(de) {
        Ok(spec) => spec,
        Err(e) => {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            let message = e.into_inner().to_string();
            let hint = crate::config::serde_error(&field, None, &message)
                .hint
                .unwrap_or_default();
            let error = FieldError {
                field,
                message,
                fix: hint,
            };
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid fault",
                "the fault spec is not valid JSON of the expected shape",
                &[error],
            );
        }
    };
    let (fault, mut errors) = match spec.validate() {
        Ok(fault) => {
            let ttl = crate::faults::check_ttl(&config.fault_limits, fault.ttl).err();
            (Some(fault), ttl.into_iter().collect())
        }
        Err(errors) => (None, errors),
    };
    errors.extend(config.fault_names(&spec));
    let Some(fault) = fault.filter(|_| errors.is_empty()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid fault",
            "the fault was not put in place; fix the fields listed",
            &errors,
        );
    };
    match shared.faults.add(spec, fault, Origin::Api, &shared.events) {
        Ok(active) => json(
            StatusCode::CREATED,
            &serde_json::to_value(active).expect("fault serializes"),
        ),
        Err(e @ Refused::DuplicateId(_)) => problem(
            StatusCode::CONFLICT,
            "duplicate fault id",
            &e.to_string(),
            &[FieldError {
                field: "id".into(),
                message: e.to_string(),
                fix: "choose another id, or leave it out for one to be chosen".into(),
            }],
        ),
        Err(e @ Refused::Invalid(_)) => problem(StatusCode::BAD_REQUEST, "invalid fault", &e.to_string(), &[]),
    }
}

/// An RFC 9457 problem document, with the field errors as an extension member.
fn problem(status: StatusCode, title: &str, detail: &str, errors: &[FieldError]) -> Response<Body> {
    let mut doc = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    if !errors.is_empty() {
        doc["errors"] = serde_json::to_value(errors).expect("errors serialize");
    }
    let mut resp = json(status, &doc);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// Every heartbeat comment on an idle event stream keeps intermediaries from closing it.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// `/events` as Server-Sent Events: the recent events first, then each new one as it happens,
/// one `data: <json>` message each.
fn events(shared: &Shared) -> Response<Body> {
    let (recent, live) = shared.events.subscribe();
    let live = stream::unfold(live, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((event, rx)),
                Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "slow /events subscriber skipped events"),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let messages = stream::iter(recent).chain(live).map(|e| {
        Bytes::from(format!(
            "data: {}\n\n",
            serde_json::to_string(&e).expect("event serializes")
        ))
    });
    let heartbeats = stream::unfold(
        tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT),
        |mut tick| async move {
            tick.tick().await;
            Some((Bytes::from_static(b": heartbeat\n\n"), tick))
        },
    );
    let frames = stream::select(messages, heartbeats).map(|b| Ok::<_, BoxError>(Frame::data(b)));
    let mut resp = Response::new(Body::boxed(StreamBody::new(frames).boxed_unsync()));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn authorized(header: Option<&HeaderValue>, token: &str) -> bool {
    let Some(given) = header
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(Body::full(body.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::full(serde_json::to_string_pretty(value).expect("json") + "\n"));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(authorized(Some(&h("Bearer s3cret")), "s3cret"));
        assert!(!authorized(Some(&h("Bearer s3cre")), "s3cret"));
        assert!(!authorized(Some(&h("Basic s3cret")), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }
}
