//! Retries: which failures are retried, how long to wait, and the budget that keeps retries
//! from amplifying an outage.
//!
//! Semantics follow Envoy's router (`retry_on` names, fully jittered exponential backoff, the
//! route timeout covering every try, a per-try timeout) with linkerd's retry budget: every
//! request deposits `budget_ratio` of a retry, every retry withdraws one, plus
//! `budget_min_per_second` retries that are always allowed (tower's `TpsBudget`, over 10 s).
//! Only idempotent methods are retried unless the route opts in, and only requests whose body
//! fits in `buffer_limit` (it is read ahead and replayed); a retry prefers an endpoint not yet
//! tried. A retriable 429 or 503 with `Retry-After` waits that long instead of the backoff,
//! unless that is longer than the route's timeout (the answer is then passed on).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ballast_model::ErrorClass;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use rand::Rng;
use tower::retry::budget::{Budget, TpsBudget};

use crate::body::Body;
use crate::config::{RetryOn, RetryPolicy};
use crate::proxy::{BoxFuture, ProxyError};
use crate::telemetry::Meter;
use crate::upstream::Upstream;

/// Endpoints already tried for a request: the balancer avoids them when it can.
#[derive(Clone, Debug, Default)]
pub struct Tried(pub Vec<Arc<str>>);

/// How many tries a request took, for the access log (on answers after more than one).
#[derive(Clone, Copy, Debug)]
pub struct Attempts(pub u32);

/// Wraps a route's forwarding service in [`Retry`].
pub struct RetryLayer {
    policy: RetryPolicy,
    meter: Arc<Meter>,
    route_timeout: Duration,
    upstream: Arc<Upstream>,
}

impl RetryLayer {
    pub fn new(policy: RetryPolicy, meter: Arc<Meter>, route_timeout: Duration, upstream: Arc<Upstream>) -> Self {
        RetryLayer {
            policy,
            meter,
            route_timeout,
            upstream,
        }
    }
}

impl<S> tower::Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        let (policy, meter) = (self.policy.clone(), self.meter.clone());
        Retry::new(inner, policy, meter, self.route_timeout, Some(self.upstream.clone()))
    }
}

/// The retry layer of one route.
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    policy: Arc<RetryPolicy>,
    budget: Arc<TpsBudget>,
    meter: Arc<Meter>,
    /// The route's timeout: a `Retry-After` longer than this is not waited for.
    route_timeout: Duration,
    /// The route's cluster, for its `max_retries` (concurrent retries) limit.
    upstream: Option<Arc<Upstream>>,
}

impl<S> Retry<S> {
    pub fn new(
        inner: S,
        policy: RetryPolicy,
        meter: Arc<Meter>,
        route_timeout: Duration,
        upstream: Option<Arc<Upstream>>,
    ) -> Self {
        let budget = TpsBudget::new(
            Duration::from_secs(10),
            policy.budget_min_per_second,
            policy.budget_ratio as f32,
        );
        Retry {
            inner,
            policy: Arc::new(policy),
            budget: Arc::new(budget),
            meter,
            route_timeout,
            upstream,
        }
    }
}

impl<S> tower::Service<Request<Body>> for Retry<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = ProxyError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Result<Response<Body>, ProxyError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(this.run(req))
    }
}

impl<S> Retry<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = ProxyError> + Clone + Send + 'static,
    S::Future: Send,
{
    async fn run(mut self, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
        self.budget.deposit();
        let policy = self.policy.clone();
        let (parts, body) = req.into_parts();
        let retriable_method = is_idempotent(&parts.method) || policy.retry_non_idempotent;
        // Read the body ahead only if a retry could replay it.
        let (mut first, replay) = if retriable_method && policy.max_retries > 0 {
            read_ahead(body, policy.buffer_limit).await?
        } else {
            (Some(body), None)
        };
        // What a retry is built from: the request without its body, and only the extensions
        // a try reads (cloning them all would cost allocations on every request).
        let snapshot = replay.as_ref().map(|_| Snapshot::of(&parts));
        let mut tried = Tried::default();
        let mut attempt = 0u32;
        let mut _retry_slot = None;
        let mut first_parts = Some(parts);
        loop {
            let body = match (first.take(), &replay) {
                (Some(b), _) => b,
                (None, Some(r)) => r.body(),
                (None, None) => unreachable!("a request without a replayable body is tried once"),
            };
            let req = match (first_parts.take(), &snapshot) {
                (Some(parts), _) => Request::from_parts(parts, body),
                (None, Some(s)) => s.request(body, &tried),
                (None, None) => unreachable!("a request without a snapshot is tried once"),
            };
            let result = self.try_once(req).await;
            let wait = match decide(&policy, &result, attempt, replay.is_some(), self.route_timeout) {
                Decision::Done => return with_attempts(result, attempt + 1),
                Decision::RetryAfter(wait) => wait,
            };
            // The cluster's max_retries caps retries under way at once (Envoy's circuit breaker).
            let slot = match &self.upstream {
                Some(u) => match u.retry_slot() {
                    Some(slot) => Some(slot),
                    None => return with_attempts(result, attempt + 1),
                },
                None => None,
            };
            if !self.budget.withdraw() {
                self.meter.count_retry_budget_exhausted();
                return with_attempts(result, attempt + 1);
            }
            self.meter.count_retry();
            if let Some(ep) = endpoint_of(&result) {
                tried.0.push(ep);
            }
            drop(result); // an answer not passed on: its body (and connection) is dropped
            tokio::time::sleep(wait).await;
            attempt += 1;
            _retry_slot = slot; // held through the retry's try
        }
    }

    async fn try_once(&mut self, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
        // This future owns its copy of the service already: no clone per try.
        let call = tower::ServiceExt::ready(&mut self.inner).await?.call(req);
        match self.policy.per_try_timeout {
            None => call.await,
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(result) => result,
                Err(_) => Err(ProxyError::new(ErrorClass::Timeout, "per-try timeout elapsed")),
            },
        }
    }
}

enum Decision {
    Done,
    RetryAfter(Duration),
}

/// Whether this try's outcome is retried, and after how long.
fn decide(
    policy: &RetryPolicy,
    result: &Result<Response<Body>, ProxyError>,
    attempt: u32,
    replayable: bool,
    route_timeout: Duration,
) -> Decision {
    if !replayable
        || attempt >= policy.max_retries
        || !retriable(&policy.retry_on, &policy.retriable_status_codes, result)
    {
        return Decision::Done;
    }
    // A 429 or 503 that says when to come back is honoured, if the route can wait that long.
    if let Ok(resp) = result
        && matches!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        && let Some(after) = retry_after(resp.headers())
    {
        return if after < route_timeout {
            Decision::RetryAfter(after)
        } else {
            Decision::Done
        };
    }
    Decision::RetryAfter(backoff(
        policy.backoff_base,
        policy.backoff_max,
        attempt + 1,
        &mut rand::rng(),
    ))
}

/// Whether a try's outcome is one of the route's `retry_on` conditions.
pub fn retriable(on: &RetryOn, codes: &[u16], result: &Result<Response<Body>, ProxyError>) -> bool {
    use ErrorClass::*;
    match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (on.server_error && status >= 500)
                || (on.gateway_error && matches!(status, 502..=504))
                || (on.retriable_status_codes && codes.contains(&status))
        }
        Err(e) => {
            let connect = matches!(e.class, ConnectRefused | ConnectTimeout | ConnectFailure);
            // Failures the sidecar answers for the upstream, as their status would be seen.
            let gateway = connect || matches!(e.class, Reset | Protocol | Timeout);
            (on.connect_failure && connect)
                || (on.reset && e.class == Reset)
                || (on.refused_stream && e.refused_stream)
                || ((on.server_error || on.gateway_error) && (gateway || e.refused_stream))
        }
    }
}

/// RFC 9110's idempotent methods: safe to send twice.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Envoy's fully jittered backoff: retry `n` (from 1) waits a random time in
/// `[0, min((2^n - 1) × base, max))`.
pub fn backoff(base: Duration, max: Duration, n: u32, rng: &mut impl Rng) -> Duration {
    let factor = (1u64 << n.min(32)).saturating_sub(1);
    let upper = base.saturating_mul(factor.min(u32::MAX as u64) as u32).min(max);
    if upper.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(rng.random_range(0.0..upper.as_secs_f64()))
}

/// `Retry-After` in seconds (an HTTP date is not honoured: clocks disagree).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

fn endpoint_of(result: &Result<Response<Body>, ProxyError>) -> Option<Arc<str>> {
    match result {
        Ok(resp) => resp.body().answered_by().cloned(),
        Err(e) => e.endpoint.clone(),
    }
}

fn with_attempts(result: Result<Response<Body>, ProxyError>, n: u32) -> Result<Response<Body>, ProxyError> {
    match result {
        // One try needs no note: an answer with an endpoint counts as one attempt.
        Ok(resp) if n == 1 => Ok(resp),
        Ok(mut resp) => {
            resp.extensions_mut().insert(Attempts(n));
            Ok(resp)
        }
        Err(mut e) => {
            e.attempts = Some(n);
            Err(e)
        }
    }
}

/// A request as a retry sends it again: method, URI, version, headers, and the extensions a
/// try reads (the upstream faults it selected, its trace context, a pending upgrade).
struct Snapshot {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: HeaderMap,
    faults: Option<crate::faults::http::UpstreamFaults>,
    trace: Option<opentelemetry::Context>,
    /// A protocol upgrade still has to be bridged if a retry is the try that gets the 101.
    upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Snapshot {
    fn of(parts: &http::request::Parts) -> Self {
        Snapshot {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            faults: parts.extensions.get().cloned(),
            trace: parts.extensions.get().cloned(),
            upgrade: parts.extensions.get().cloned(),
        }
    }

    fn request(&self, body: Body, tried: &Tried) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        let ext = req.extensions_mut();
        if let Some(f) = &self.faults {
            ext.insert(f.clone());
        }
        if let Some(t) = &self.trace {
            ext.insert(t.clone());
        }
        if let Some(u) = &self.upgrade {
            ext.insert(u.clone());
        }
        ext.insert(tried.clone());
        req
    }
}

/// A request body read ahead in full, to send again.
#[derive(Clone)]
pub struct Replay {
    data: Bytes,
    trailers: Option<HeaderMap>,
}

impl Replay {
    fn body(&self) -> Body {
        Body::replay(self.data.clone(), self.trailers.clone())
    }
}

/// Read a body ahead, up to `limit` bytes: within it, a replay (the first try sends it too);
/// beyond it, the body as it comes (what was read goes first) and no replay.
async fn read_ahead(body: Body, limit: u64) -> Result<(Option<Body>, Option<Replay>), ProxyError> {
    if body.is_end_stream() {
        let replay = Replay {
            data: Bytes::new(),
            trailers: None,
        };
        return Ok((Some(replay.body()), Some(replay)));
    }
    if body.size_hint().lower() > limit {
        return Ok((Some(body), None));
    }
    let mut body = body;
    let mut data = BytesMut::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                let class = if crate::body::is_length_limit(&*e) {
                    ErrorClass::BodyTooLarge
                } else {
                    ErrorClass::BadRequest
                };
                return Err(ProxyError::new(class, format!("reading the request body: {e}")));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => {
                    data.extend_from_slice(&chunk);
                    if data.len() as u64 > limit {
                        return Ok((Some(Body::prefixed(data.freeze(), body)), None));
                    }
                }
                Err(frame) => {
                    let replay = Replay {
                        data: data.freeze(),
                        trailers: frame.into_trailers().ok(),
                    };
                    return Ok((Some(replay.body()), Some(replay)));
                }
            },
        }
    }
    let replay = Replay {
        data: data.freeze(),
        trailers: None,
    };
    Ok((Some(replay.body()), Some(replay)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(retry_on: &[&str]) -> RetryPolicy {
        RetryPolicy {
            retry_on: RetryOn::parse(retry_on).unwrap(),
            max_retries: 2,
            budget_min_per_second: 100,
            ..RetryPolicy::default()
        }
    }

    /// One scripted answer: a status with headers, or a failure.
    type Answer = Result<(u16, Vec<(&'static str, &'static str)>), ErrorClass>;
    /// What a try was sent: its body and the endpoints it was told to avoid.
    type Sent = (Bytes, Vec<Arc<str>>);

    /// A service that answers from a script, one entry per try, recording what it was sent.
    #[derive(Clone)]
    struct Script {
        answers: Arc<Mutex<Vec<Answer>>>,
        bodies: Arc<Mutex<Vec<Sent>>>,
        calls: Arc<AtomicU32>,
    }

    impl Script {
        fn new(answers: Vec<Answer>) -> Self {
            Script {
                answers: Arc::new(Mutex::new(answers)),
                bodies: Arc::default(),
                calls: Arc::default(),
            }
        }
    }

    impl tower::Service<Request<Body>> for Script {
        type Response = Response<Body>;
        type Error = ProxyError;
        type Future = BoxFuture<Result<Response<Body>, ProxyError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: Request<Body>) -> Self::Future {
            let this = self.clone();
            Box::pin(async move {
                let n = this.calls.fetch_add(1, Ordering::SeqCst);
                let tried = req.extensions().get::<Tried>().map(|t| t.0.clone()).unwrap_or_default();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                this.bodies.lock().unwrap().push((body, tried));
                let endpoint: Arc<str> = format!("10.0.0.{n}:80").into();
                match this.answers.lock().unwrap().remove(0) {
                    Ok((status, headers)) => {
                        let mut resp = Response::new(Body::full(""));
                        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                        for (k, v) in headers {
                            resp.headers_mut().insert(k, v.parse().unwrap());
                        }
                        resp.body_mut().set_answered_by(endpoint);
                        Ok(resp)
                    }
                    Err(class) => {
                        let mut e = ProxyError::new(class, "scripted");
                        e.endpoint = Some(endpoint);
                        Err(e)
                    }
                }
            })
        }
    }

    fn retry(script: &Script, policy: RetryPolicy) -> Retry<Script> {
        Retry::new(
            script.clone(),
            policy,
            Arc::new(Meter::new(1)),
            Duration::from_secs(15),
            None,
        )
    }

    async fn send(r: &Retry<Script>, method: Method, body: &'static str) -> Result<Response<Body>, ProxyError> {
        let mut req = Request::new(Body::full(body));
        *req.method_mut() = method;
        tower::ServiceExt::oneshot(r.clone(), req).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_replays_the_body_and_avoids_the_endpoint_tried() {
        let script = Script::new(vec![Err(ErrorClass::ConnectRefused), Ok((200, vec![]))]);
        let r = retry(&script, policy(&["connect-failure"]));
        let resp = send(&r, Method::PUT, "payload").await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.extensions().get::<Attempts>().unwrap().0, 2);
        let bodies = script.bodies.lock().unwrap();
        assert_eq!(bodies[0], (Bytes::from("payload"), vec![]));
        assert_eq!(bodies[1], (Bytes::from("payload"), vec![Arc::from("10.0.0.0:80")]));
        let traffic = r.meter.traffic();
        assert_eq!(traffic.counters.retries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_listed_conditions_and_idempotent_methods_are_retried() {
        // 503 is not a connect failure.
        let script = Script::new(vec![Ok((503, vec![])), Ok((200, vec![]))]);
        let resp = send(&retry(&script, policy(&["connect-failure"])), Method::GET, "").await;
        assert_eq!(resp.unwrap().status(), 503);
        // POST is not retried unless the route opts in.
        let script = Script::new(vec![Ok((503, vec![])), Ok((200, vec![]))]);
        let resp = send(&retry(&script, policy(&["5xx"])), Method::POST, "x").await;
        assert_eq!(resp.unwrap().status(), 503);
        let script = Script::new(vec![Ok((503, vec![])), Ok((200, vec![]))]);
        let opted = RetryPolicy {
            retry_non_idempotent: true,
            ..policy(&["5xx"])
        };
        assert_eq!(
            send(&retry(&script, opted), Method::POST, "x").await.unwrap().status(),
            200
        );
        // retriable-status-codes: exactly the listed ones.
        let script = Script::new(vec![Ok((409, vec![])), Ok((404, vec![])), Ok((200, vec![]))]);
        let codes = RetryPolicy {
            retriable_status_codes: vec![409],
            ..policy(&["retriable-status-codes"])
        };
        assert_eq!(
            send(&retry(&script, codes), Method::GET, "").await.unwrap().status(),
            404
        );
        // max_retries bounds the tries.
        let script = Script::new(vec![
            Err(ErrorClass::Reset),
            Err(ErrorClass::Reset),
            Err(ErrorClass::Reset),
        ]);
        let Err(err) = send(&retry(&script, policy(&["reset"])), Method::GET, "").await else {
            panic!("three resets end in a reset")
        };
        assert_eq!((err.class, script.calls.load(Ordering::SeqCst)), (ErrorClass::Reset, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_over_the_buffer_limit_is_sent_once() {
        let script = Script::new(vec![Ok((503, vec![])), Ok((200, vec![]))]);
        let small = RetryPolicy {
            buffer_limit: 4,
            ..policy(&["5xx"])
        };
        let resp = send(&retry(&script, small), Method::PUT, "too long").await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(
            script.bodies.lock().unwrap()[0].0,
            Bytes::from("too long"),
            "sent whole, once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_backoff_is_jittered_within_its_bounds() {
        let script = Script::new(vec![Ok((503, vec![("retry-after", "3")])), Ok((200, vec![]))]);
        let t0 = tokio::time::Instant::now();
        let resp = send(&retry(&script, policy(&["5xx"])), Method::GET, "").await.unwrap();
        assert_eq!((resp.status().as_u16(), t0.elapsed()), (200, Duration::from_secs(3)));
        // Longer than the route timeout: passed on, not waited for.
        let script = Script::new(vec![Ok((429, vec![("retry-after", "60")])), Ok((200, vec![]))]);
        let on_429 = RetryPolicy {
            retriable_status_codes: vec![429],
            ..policy(&["retriable-status-codes"])
        };
        assert_eq!(
            send(&retry(&script, on_429), Method::GET, "").await.unwrap().status(),
            429
        );

        let mut rng = rand::rng();
        let (base, max) = (Duration::from_millis(25), Duration::from_millis(250));
        for n in 1..8 {
            let upper = (base * ((1 << n) - 1)).min(max);
            for _ in 0..200 {
                assert!(backoff(base, max, n, &mut rng) < upper);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_try_timeout_ends_a_try_and_the_next_one_goes() {
        #[derive(Clone)]
        struct SlowThenFast(Arc<AtomicU32>);
        impl tower::Service<Request<Body>> for SlowThenFast {
            type Response = Response<Body>;
            type Error = ProxyError;
            type Future = BoxFuture<Result<Response<Body>, ProxyError>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Request<Body>) -> Self::Future {
                let first = self.0.fetch_add(1, Ordering::SeqCst) == 0;
                Box::pin(async move {
                    if first {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                    Ok(Response::new(Body::full("")))
                })
            }
        }
        let p = RetryPolicy {
            per_try_timeout: Some(Duration::from_millis(500)),
            ..policy(&["gateway-error"])
        };
        let r = Retry::new(
            SlowThenFast(Arc::default()),
            p,
            Arc::new(Meter::new(1)),
            Duration::from_secs(15),
            None,
        );
        let t0 = tokio::time::Instant::now();
        let resp = tower::ServiceExt::oneshot(r, Request::new(Body::full("")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(t0.elapsed() < Duration::from_millis(600), "{:?}", t0.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_bounds_retries_under_total_failure() {
        let n = 1000;
        let script = Script::new((0..n * 3).map(|_| Ok((503, vec![]))).collect());
        let p = RetryPolicy {
            budget_min_per_second: 10,
            budget_ratio: 0.2,
            ..policy(&["5xx"])
        };
        let r = retry(&script, p);
        for _ in 0..n {
            let _ = send(&r, Method::GET, "").await;
        }
        let calls = script.calls.load(Ordering::SeqCst) as f64;
        // 20% of the requests plus the reserve of min_per_second × 10 s (the budget's TTL).
        assert!(
            calls <= n as f64 * 1.2 + 100.0 + 1.0,
            "{calls} upstream tries for {n} requests"
        );
        assert!(calls > n as f64 * 1.1, "retries do happen: {calls}");
        assert!(r.meter.traffic().counters.retry_budget_exhausted > 0);
    }
}
