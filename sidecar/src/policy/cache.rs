//! The response cache of a route: GET and HEAD answers kept in memory, bounded by bytes
//! (moka), served without an upstream request while fresh, served stale when the upstream
//! fails (`stale_if_error`), and fetched once for any number of concurrent misses.
//!
//! What is stored (a shared cache in RFC 9111's sense, narrowed where noted):
//! - requests: GET and HEAD without `Range` or `Upgrade`; the key is method, host (lowercased),
//!   path and query, plus the values of the request headers the stored answer's `Vary` names;
//! - answers with a status in [`CACHEABLE_STATUSES`], without `Set-Cookie`, without
//!   `Vary: *`, without `Cache-Control: no-store`, `private` or `no-cache` (ballast does not
//!   revalidate, so an answer that must be revalidated is not kept), not an injected fault's
//!   answer, and, for a request with `Authorization`, only with `public`, `s-maxage` or
//!   `must-revalidate` (RFC 9111 §3.5); trailers or a body over `max_object` make it pass
//!   through unstored (a body is read up to `max_object` before the answer is passed on);
//! - for how long: `s-maxage`, else `max-age`, else the route's `ttl`, less the answer's `Age`
//!   (`Expires` is not read); nothing fresh for less than a second is kept;
//! - then `stale_if_error` longer, unless `must-revalidate` or `proxy-revalidate`: a stale
//!   entry is never served as a hit, only instead of a failure (any 5xx answer, or a failure
//!   the sidecar classifies as the upstream's: connect, timeout, reset, overflow, circuit-open).
//!
//! Concurrent misses for one key wait for the first one's fetch (an in-flight map of `watch`
//! channels): if it stores an answer, they are hits; if not (uncacheable, too big, a failure
//! with nothing stale), each fetches on its own. An answer that may not be stored leaves a
//! marker under its key for the route's `ttl` (Varnish's hit-for-miss): later requests for it
//! go upstream at once instead of queueing behind each other, and are still stored when an
//! answer turns storable. A client's `Cache-Control: no-cache` or
//! `no-store` is ignored unless the route sets `honor_client_no_cache` (then `no-cache` skips
//! the lookup and stores the new answer, `no-store` skips both).
//!
//! Every answer passed through gets `x-cache: hit|miss|stale`; hits and stale answers get `Age`.
//! Failures the sidecar answers itself (`ballast-error`) are made later, outside this layer,
//! and carry no `x-cache`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ballast_model::ErrorClass;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::{Body, BoxError};
use crate::config::CachePolicy;
use crate::faults::http::FAULT_HEADER;
use crate::proxy::BoxFuture;
use crate::proxy::ProxyError;
use crate::telemetry::Meter;

/// Statuses stored: RFC 9110's heuristically cacheable ones (§15.1), less 501 (a 5xx is a
/// failure here: it is what `stale_if_error` covers).
pub const CACHEABLE_STATUSES: [u16; 10] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414];

/// The header telling how the cache answered.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// How a request went through the cache, as counted per route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Served from the cache (a concurrent miss served by another request's fetch too).
    Hit,
    /// Sent upstream.
    Miss,
    /// A stale entry served instead of a failure.
    Stale,
}

impl Outcome {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
        })
    }
}

/// Wraps a route's service in [`Cache`]; one store per route.
pub struct CacheLayer {
    store: Arc<Store>,
}

impl CacheLayer {
    pub fn new(policy: CachePolicy, meter: Arc<Meter>) -> Self {
        CacheLayer {
            store: Arc::new(Store::new(policy, meter)),
        }
    }
}

impl<S> tower::Layer<S> for CacheLayer {
    type Service = Cache<S>;
    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            store: self.store.clone(),
        }
    }
}

/// The cache layer of one route.
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    store: Arc<Store>,
}

impl<S> Cache<S> {
    pub fn new(inner: S, policy: CachePolicy, meter: Arc<Meter>) -> Self {
        Cache {
            inner,
            store: Arc::new(Store::new(policy, meter)),
        }
    }
}

/// A stored answer. The body is shared by every hit (`Bytes`).
#[derive(Debug)]
struct Entry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// The `Vary` header names with the request's values they were stored for.
    vary: Vec<(HeaderName, Option<String>)>,
    stored_at: Instant,
    /// The upstream's `Age` when stored.
    initial_age: Duration,
    /// Fresh until `stored_at + fresh_for`...
    fresh_for: Duration,
    /// ...then servable instead of a failure for this long.
    stale_for: Duration,
    weight: u32,
}

impl Entry {
    fn is_fresh(&self, now: Instant) -> bool {
        now < self.stored_at + self.fresh_for
    }

    fn stale_servable(&self, now: Instant) -> bool {
        now < self.stored_at + self.fresh_for + self.stale_for
    }

    fn matches(&self, req: &HeaderMap) -> bool {
        self.vary.iter().all(|(name, value)| joined(req, name) == *value)
    }

    fn age(&self, now: Instant) -> u64 {
        (self.initial_age + now.saturating_duration_since(self.stored_at)).as_secs()
    }

    fn response(&self, outcome: Outcome, now: Instant) -> Response<Body> {
        let mut resp = Response::new(Body::full(self.body.clone()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        resp.headers_mut().insert(header::AGE, HeaderValue::from(self.age(now)));
        resp.headers_mut().insert(X_CACHE, outcome.header());
        resp
    }
}

/// What the cache holds under a key: an answer, or (under a primary key) the header names
/// its answers vary by, whose values complete the key.
#[derive(Clone, Debug)]
enum Stored {
    Answer(Arc<Entry>),
    Vary(Arc<[HeaderName]>, Duration),
    /// The last answer could not be stored: fetch without waiting on other requests.
    Uncacheable(Duration),
}

impl Stored {
    /// How long moka keeps it (the freshness checks use the tokio clock, this only frees memory).
    fn keep(&self) -> Duration {
        match self {
            Stored::Answer(e) => e.fresh_for + e.stale_for,
            Stored::Vary(_, keep) | Stored::Uncacheable(keep) => *keep,
        }
    }

    fn weight(&self) -> u32 {
        match self {
            Stored::Answer(e) => e.weight,
            Stored::Vary(names, _) => names.iter().map(|n| n.as_str().len() as u32 + 8).sum(),
            Stored::Uncacheable(_) => 8,
        }
    }
}

struct KeepFor;

impl moka::Expiry<String, Stored> for KeepFor {
    fn expire_after_create(&self, _: &String, value: &Stored, _: std::time::Instant) -> Option<Duration> {
        Some(value.keep())
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &Stored,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep())
    }
}

/// What a fetch left for the requests that waited on it.
#[derive(Clone, Debug)]
enum Shared {
    Stored(Arc<Entry>),
    /// Fetched but not stored: each waiter fetches on its own.
    NotStored,
    /// The upstream failed: waiters serve their stale entry if they have one.
    Failed,
}

/// Keys are shared with the fetch leading them (one allocation per miss, not two).
type Inflight = Mutex<HashMap<Arc<str>, watch::Receiver<Option<Shared>>>>;

struct Store {
    policy: CachePolicy,
    meter: Arc<Meter>,
    entries: moka::sync::Cache<String, Stored>,
    inflight: Inflight,
}

/// Removes a leader's in-flight entry however its fetch ends (also when it is dropped).
struct Leading<'a> {
    inflight: &'a Inflight,
    key: Arc<str>,
    tx: watch::Sender<Option<Shared>>,
}

impl Leading<'_> {
    fn finish(self, shared: Shared) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        self.tx.send_replace(Some(shared));
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        // A finished leader already removed it (and a newer leader may have taken the key).
        if self.tx.borrow().is_none() {
            self.inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.key);
        }
    }
}

/// The hit-for-miss marker of a request's primary key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// The key is marked: its last answer was not stored.
    Set,
    /// Not marked; mark it if this answer cannot be stored.
    May,
    /// The key holds the header names its answers vary by: leave it.
    Keep,
}

/// What [`Store::lookup`] found for a request.
#[derive(Default)]
struct Lookup {
    /// The full key when the stored answers vary by request headers (else the primary key).
    vary_key: Option<String>,
    entry: Option<Arc<Entry>>,
    /// The primary key's last answer was not storable (a hit-for-miss marker).
    uncacheable: bool,
}

enum Role<'a> {
    Leader(Leading<'a>),
    Waiter(watch::Receiver<Option<Shared>>),
}

impl Store {
    fn new(policy: CachePolicy, meter: Arc<Meter>) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(policy.max_bytes)
            .weigher(|key: &String, value: &Stored| value.weight().saturating_add(key.len() as u32))
            .expire_after(KeepFor)
            .build();
        Store {
            policy,
            meter,
            entries,
            inflight: Mutex::default(),
        }
    }

    /// What is stored for a request.
    fn lookup(&self, primary: &str, req: &HeaderMap) -> Lookup {
        let mut found = Lookup::default();
        match self.entries.get(primary) {
            None => {}
            Some(Stored::Answer(e)) => found.entry = Some(e),
            Some(Stored::Uncacheable(_)) => found.uncacheable = true,
            Some(Stored::Vary(names, _)) => {
                let key = vary_key(primary, &names, req);
                if let Some(Stored::Answer(e)) = self.entries.get(&key) {
                    found.entry = Some(e);
                }
                found.vary_key = Some(key);
            }
        }
        found
    }

    fn role(&self, key: &str) -> Role<'_> {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key) {
            return Role::Waiter(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        let key: Arc<str> = key.into();
        map.insert(key.clone(), rx);
        Role::Leader(Leading {
            inflight: &self.inflight,
            key,
            tx,
        })
    }

    fn insert(&self, primary: &str, entry: &Arc<Entry>) {
        if entry.vary.is_empty() {
            self.entries.insert(primary.to_owned(), Stored::Answer(entry.clone()));
            return;
        }
        let names: Arc<[HeaderName]> = entry.vary.iter().map(|(n, _)| n.clone()).collect();
        let mut key = String::with_capacity(primary.len() + 32);
        key.push_str(primary);
        for (name, value) in &entry.vary {
            push_vary(&mut key, name, value.as_deref());
        }
        let keep = entry.fresh_for + entry.stale_for;
        self.entries.insert(primary.to_owned(), Stored::Vary(names, keep));
        self.entries.insert(key, Stored::Answer(entry.clone()));
    }

    /// Remember that `primary`'s answers are not stored, for the route's `ttl`.
    fn mark_uncacheable(&self, primary: &str) {
        self.entries
            .insert(primary.to_owned(), Stored::Uncacheable(self.policy.ttl));
    }

    fn count(&self, outcome: Outcome, stored: bool) {
        self.meter.count_cache(outcome, outcome == Outcome::Miss && !stored);
    }
}

impl<S> tower::Service<Request<Body>> for Cache<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(this.run(req))
    }
}

/// How a request may use the cache.
#[derive(PartialEq, Eq)]
enum Use {
    /// Look up, fetch on a miss, store.
    Full,
    /// Fetch and store, without looking up (a client's `no-cache`, when honoured).
    Refresh,
    /// Neither look up nor store.
    Pass,
}

impl<S> Cache<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    async fn run(self, req: Request<Body>) -> Result<Response<Body>, BoxError> {
        let Cache { inner, store } = self;
        let store = &*store;
        let how = usage(&req, store.policy.honor_client_no_cache);
        if how == Use::Pass {
            store.count(Outcome::Miss, false);
            let mut resp = tower::ServiceExt::oneshot(inner, req).await.map_err(Into::into)?;
            resp.headers_mut().insert(X_CACHE, Outcome::Miss.header());
            return Ok(resp);
        }
        let primary = primary_key(&req);
        let Lookup {
            vary_key,
            entry: found,
            uncacheable,
        } = store.lookup(&primary, req.headers());
        let now = Instant::now();
        let found = found.filter(|e| e.matches(req.headers()));
        if how == Use::Full
            && let Some(entry) = found.as_ref().filter(|e| e.is_fresh(now))
        {
            store.count(Outcome::Hit, true);
            return Ok(entry.response(Outcome::Hit, now));
        }
        let stale = found.filter(|e| e.stale_servable(now));
        // Where answers are not stored, waiting on another request's fetch gains nothing.
        let role = if uncacheable {
            None
        } else {
            Some(store.role(vary_key.as_deref().unwrap_or(&primary)))
        };
        let leading = match (&how, role) {
            (_, None) => None,
            (Use::Full, Some(Role::Waiter(mut rx))) => {
                let shared = rx.wait_for(Option::is_some).await.ok().and_then(|s| s.clone());
                match shared {
                    Some(Shared::Stored(entry)) if entry.matches(req.headers()) => {
                        store.count(Outcome::Hit, true);
                        return Ok(entry.response(Outcome::Hit, Instant::now()));
                    }
                    Some(Shared::Failed) if stale.is_some() => {
                        store.count(Outcome::Stale, true);
                        let entry = stale.as_ref().expect("checked");
                        return Ok(entry.response(Outcome::Stale, Instant::now()));
                    }
                    // Not stored, or not for this request's variant: fetch alone.
                    _ => None,
                }
            }
            (_, Some(Role::Leader(leading))) => Some(leading),
            // A refresh does not wait on another fetch.
            (_, Some(Role::Waiter(_))) => None,
        };
        let marker = match (uncacheable, &vary_key) {
            (true, _) => Marker::Set,
            (false, None) => Marker::May,
            // The primary key holds the names answers vary by: leave it.
            (false, Some(_)) => Marker::Keep,
        };
        let (result, shared) = Self::fetch(inner, store, req, &primary, stale, marker).await;
        if let Some(leading) = leading {
            leading.finish(shared);
        }
        result
    }

    /// Send the request upstream; store the answer if it may be; serve the stale entry
    /// instead of a failure.
    async fn fetch(
        inner: S,
        store: &Store,
        req: Request<Body>,
        primary: &str,
        stale: Option<Arc<Entry>>,
        marker: Marker,
    ) -> (Result<Response<Body>, BoxError>, Shared) {
        let authorized = req.headers().contains_key(header::AUTHORIZATION);
        // The request's headers fill in the key of an answer that varies by them. A key known
        // not to be stored skips the copy: an answer that turns storable is then stored only
        // if it does not vary, else the marker goes and the next request stores it.
        let req_headers = (marker != Marker::Set).then(|| req.headers().clone());
        let result = tower::ServiceExt::oneshot(inner, req).await.map_err(Into::into);
        let failed = match &result {
            Ok(resp) => resp.status().is_server_error(),
            Err(e) => upstream_failure(e),
        };
        if failed && let Some(entry) = stale {
            store.count(Outcome::Stale, true);
            return (Ok(entry.response(Outcome::Stale, Instant::now())), Shared::Failed);
        }
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                store.count(Outcome::Miss, false);
                return (Err(e), Shared::Failed);
            }
        };
        let Some(lifetime) = storable(&store.policy, authorized, &resp) else {
            store.count(Outcome::Miss, false);
            if marker == Marker::May && !failed {
                store.mark_uncacheable(primary);
            }
            let shared = if failed { Shared::Failed } else { Shared::NotStored };
            return (Ok(miss(resp)), shared);
        };
        let req_headers = match req_headers {
            Some(h) => h,
            None if !resp.headers().contains_key(header::VARY) => HeaderMap::new(),
            None => {
                store.entries.invalidate(primary);
                store.count(Outcome::Miss, false);
                return (Ok(miss(resp)), Shared::NotStored);
            }
        };
        let (parts, body) = resp.into_parts();
        let (body, trailers) = match read_up_to(body, store.policy.max_object).await {
            Read::Whole(data, None) => (data, None),
            Read::Whole(data, Some(trailers)) => (data, Some(trailers)),
            Read::Over(body) => {
                store.count(Outcome::Miss, false);
                return (Ok(miss(Response::from_parts(parts, body))), Shared::NotStored);
            }
            Read::Failed(e) => {
                store.count(Outcome::Miss, false);
                let e = ProxyError::new(ErrorClass::Reset, format!("reading the upstream body: {e}"));
                return (Err(e.into()), Shared::Failed);
            }
        };
        if let Some(trailers) = trailers {
            store.count(Outcome::Miss, false);
            let resp = Response::from_parts(parts, Body::replay(body, Some(trailers)));
            return (Ok(miss(resp)), Shared::NotStored);
        }
        let entry = Arc::new(make_entry(&store.policy, &parts, body.clone(), &req_headers, lifetime));
        store.insert(primary, &entry);
        store.count(Outcome::Miss, true);
        let mut resp = Response::from_parts(parts, Body::full(body));
        resp.headers_mut()
            .insert(header::AGE, HeaderValue::from(entry.age(entry.stored_at)));
        (Ok(miss(resp)), Shared::Stored(entry))
    }
}

fn miss(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(X_CACHE, Outcome::Miss.header());
    resp
}

fn usage(req: &Request<Body>, honor_client: bool) -> Use {
    let h = req.headers();
    if !matches!(*req.method(), Method::GET | Method::HEAD)
        || h.contains_key(header::RANGE)
        || h.contains_key(header::UPGRADE)
    {
        return Use::Pass;
    }
    if honor_client {
        let cc = Directives::parse(h);
        if cc.no_store {
            return Use::Pass;
        }
        let pragma = h
            .get_all(header::PRAGMA)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case("no-cache")));
        if cc.no_cache || (pragma && !h.contains_key(header::CACHE_CONTROL)) {
            return Use::Refresh;
        }
    }
    Use::Full
}

/// Method, host, path and query.
fn primary_key(req: &Request<Body>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let method = req.method().as_str();
    let mut key = String::with_capacity(method.len() + host.len() + pq.len() + 2);
    key.push_str(method);
    key.push(' ');
    key.push_str(host);
    key[method.len() + 1..].make_ascii_lowercase();
    key.push(' ');
    key.push_str(pq);
    key
}

fn vary_key(primary: &str, names: &[HeaderName], req: &HeaderMap) -> String {
    let mut key = String::with_capacity(primary.len() + 32);
    key.push_str(primary);
    for name in names {
        push_vary(&mut key, name, joined(req, name).as_deref());
    }
    key
}

fn push_vary(key: &mut String, name: &HeaderName, value: Option<&str>) {
    key.push('\n');
    key.push_str(name.as_str());
    match value {
        Some(v) => {
            key.push(':');
            key.push_str(v);
        }
        None => key.push('!'),
    }
}

/// A request header's values joined with ", " (None when absent or not text).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.to_str().ok()?.trim().to_owned();
    values.try_fold(first, |mut acc, v| {
        acc.push_str(", ");
        acc.push_str(v.to_str().ok()?.trim());
        Some(acc)
    })
}

/// The `Cache-Control` directives ballast reads.
#[derive(Debug, Default, PartialEq)]
struct Directives {
    no_store: bool,
    no_cache: bool,
    private: bool,
    public: bool,
    must_revalidate: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
}

impl Directives {
    fn parse(headers: &HeaderMap) -> Self {
        let mut d = Directives::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let (name, arg) = match item.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (item.trim(), None),
                };
                // An unreadable age makes the answer stale at once (RFC 9111 §4.2.1).
                let secs = || Some(arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0));
                let is = |directive: &str| name.eq_ignore_ascii_case(directive);
                if is("no-store") {
                    d.no_store = true;
                } else if is("no-cache") {
                    d.no_cache = true;
                } else if is("private") {
                    d.private = true;
                } else if is("public") {
                    d.public = true;
                } else if is("must-revalidate") || is("proxy-revalidate") {
                    d.must_revalidate = true;
                } else if is("max-age") && d.max_age.is_none() {
                    d.max_age = secs();
                } else if is("s-maxage") && d.s_maxage.is_none() {
                    d.s_maxage = secs();
                }
            }
        }
        d
    }
}

/// How long an answer stays fresh, if it may be stored: `s-maxage`, else `max-age`, else the
/// route's `ttl`.
/// `authorized`: the request had `Authorization`.
fn storable(policy: &CachePolicy, authorized: bool, resp: &Response<Body>) -> Option<Duration> {
    let h = resp.headers();
    if !CACHEABLE_STATUSES.contains(&resp.status().as_u16()) {
        return None;
    }
    // Cache-Control first: it is what usually says no.
    let cc = Directives::parse(h);
    if cc.no_store
        || cc.no_cache
        || cc.private
        || h.contains_key(header::SET_COOKIE)
        || h.contains_key(FAULT_HEADER)
        || h.get_all(header::VARY)
            .iter()
            .any(|v| v.to_str().map_or(true, |v| v.split(',').any(|n| n.trim() == "*")))
    {
        return None;
    }
    if authorized && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return None;
    }
    let lifetime = cc.s_maxage.or(cc.max_age).map_or(policy.ttl, Duration::from_secs);
    (lifetime.saturating_sub(age_of(h)) >= Duration::from_secs(1)).then_some(lifetime)
}

fn age_of(h: &HeaderMap) -> Duration {
    let secs = h
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Duration::from_secs(secs)
}

fn make_entry(
    policy: &CachePolicy,
    parts: &http::response::Parts,
    body: Bytes,
    req: &HeaderMap,
    lifetime: Duration,
) -> Entry {
    let mut headers = parts.headers.clone();
    headers.remove(header::AGE);
    headers.remove(X_CACHE);
    let mut vary: Vec<(HeaderName, Option<String>)> = Vec::new();
    for value in parts.headers.get_all(header::VARY) {
        for name in value.to_str().unwrap_or_default().split(',') {
            if let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes())
                && !vary.iter().any(|(n, _)| *n == name)
            {
                let value = joined(req, &name);
                vary.push((name, value));
            }
        }
    }
    let cc = Directives::parse(&parts.headers);
    let initial_age = age_of(&parts.headers);
    let header_bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    let vary_bytes: usize = vary
        .iter()
        .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, String::len))
        .sum();
    let weight = (body.len() + header_bytes + vary_bytes + 128).min(u32::MAX as usize) as u32;
    Entry {
        status: parts.status,
        headers,
        body,
        vary,
        stored_at: Instant::now(),
        initial_age,
        fresh_for: lifetime.saturating_sub(initial_age),
        stale_for: if cc.must_revalidate {
            Duration::ZERO
        } else {
            policy.stale_if_error
        },
        weight,
    }
}

/// Whether a failure is the upstream's (stale may be served for it), not the request's.
fn upstream_failure(e: &BoxError) -> bool {
    match e.downcast_ref::<ProxyError>() {
        Some(p) => {
            p.hangup.is_none()
                && !matches!(
                    p.class,
                    ErrorClass::BadRequest | ErrorClass::BodyTooLarge | ErrorClass::NoRoute
                )
        }
        // The route timeout (tower's Elapsed) and anything else from below.
        None => true,
    }
}

enum Read {
    /// The whole body, and its trailers if it had some.
    Whole(Bytes, Option<HeaderMap>),
    /// Longer than the limit: what was read, then the rest, to pass on.
    Over(Body),
    Failed(BoxError),
}

async fn read_up_to(mut body: Body, limit: u64) -> Read {
    if body.size_hint().lower() > limit {
        return Read::Over(body);
    }
    let mut data = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Read::Whole(data.freeze(), None),
            Some(Err(e)) => return Read::Failed(e),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => {
                    data.extend_from_slice(&chunk);
                    if data.len() as u64 > limit {
                        return Read::Over(Body::prefixed(data.freeze(), body));
                    }
                }
                Err(frame) => return Read::Whole(data.freeze(), frame.into_trailers().ok()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// What the scripted upstream answers: a status with headers and a body, or a failure.
    #[derive(Clone)]
    enum Answer {
        Ok(u16, Vec<(&'static str, &'static str)>, &'static str),
        Fail(ErrorClass),
    }

    /// A service answering with whatever `answer` holds at the time, after `delay`, counting
    /// calls.
    #[derive(Clone)]
    struct Script {
        answer: Arc<Mutex<Answer>>,
        delay: Duration,
        calls: Arc<AtomicU32>,
    }

    impl Script {
        fn new(answer: Answer) -> Self {
            Script {
                answer: Arc::new(Mutex::new(answer)),
                delay: Duration::ZERO,
                calls: Arc::default(),
            }
        }

        fn ok(headers: Vec<(&'static str, &'static str)>) -> Self {
            Script::new(Answer::Ok(200, headers, "payload"))
        }

        fn set(&self, answer: Answer) {
            *self.answer.lock().unwrap() = answer;
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl tower::Service<Request<Body>> for Script {
        type Response = Response<Body>;
        type Error = ProxyError;
        type Future = BoxFuture<Result<Response<Body>, ProxyError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<Body>) -> Self::Future {
            let this = self.clone();
            Box::pin(async move {
                let n = this.calls.fetch_add(1, Ordering::SeqCst);
                if !this.delay.is_zero() {
                    tokio::time::sleep(this.delay).await;
                }
                let answer = this.answer.lock().unwrap().clone();
                match answer {
                    Answer::Ok(status, headers, body) => {
                        let mut resp = Response::new(Body::full(format!("{body} #{n}")));
                        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                        for (k, v) in headers {
                            resp.headers_mut().append(k, v.parse().unwrap());
                        }
                        Ok(resp)
                    }
                    Answer::Fail(class) => Err(ProxyError::new(class, "scripted")),
                }
            })
        }
    }

    fn policy() -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_secs(30),
            ..CachePolicy::default()
        }
    }

    fn cache(script: &Script, policy: CachePolicy) -> Cache<Script> {
        Cache::new(script.clone(), policy, Arc::new(Meter::new(1)))
    }

    fn request(method: Method, path: &str, headers: &[(&'static str, &'static str)]) -> Request<Body> {
        let mut req = Request::new(Body::full(""));
        *req.method_mut() = method;
        *req.uri_mut() = path.parse().unwrap();
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("svc.local"));
        for (k, v) in headers {
            req.headers_mut().append(*k, HeaderValue::from_static(v));
        }
        req
    }

    /// GET `path` with `headers`: the status, `x-cache`, `Age` and body.
    async fn get(
        c: &Cache<Script>,
        path: &str,
        headers: &[(&'static str, &'static str)],
    ) -> (u16, String, u64, String) {
        let resp = tower::ServiceExt::oneshot(c.clone(), request(Method::GET, path, headers))
            .await
            .expect("an answer");
        let (x_cache, age) = {
            let text = |name: &str| {
                resp.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            (text("x-cache"), text("age").parse().unwrap_or(u64::MAX))
        };
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, x_cache, age, String::from_utf8(body.to_vec()).unwrap())
    }

    fn x_cache(answer: &(u16, String, u64, String)) -> &str {
        &answer.1
    }

    async fn advance(secs: u64) {
        tokio::time::advance(Duration::from_secs(secs)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_get_is_a_hit_with_the_stored_body_and_its_age() {
        let script = Script::ok(vec![("content-type", "text/plain")]);
        let c = cache(&script, policy());
        let first = get(&c, "/a?x=1", &[]).await;
        assert_eq!(first, (200, "miss".into(), 0, "payload #0".into()));
        advance(7).await;
        let second = get(&c, "/a?x=1", &[]).await;
        assert_eq!(second, (200, "hit".into(), 7, "payload #0".into()));
        assert_eq!(script.calls(), 1);
        // Another query, another method, another host: other keys.
        assert_eq!(x_cache(&get(&c, "/a?x=2", &[]).await), "miss");
        let head = tower::ServiceExt::oneshot(c.clone(), request(Method::HEAD, "/a?x=1", &[]))
            .await
            .unwrap();
        assert_eq!(head.headers()["x-cache"], "miss");
        let mut other_host = request(Method::GET, "/a?x=1", &[]);
        other_host
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static("other.local"));
        let resp = tower::ServiceExt::oneshot(c.clone(), other_host).await.unwrap();
        assert_eq!(resp.headers()["x-cache"], "miss");
        assert_eq!(script.calls(), 4);
        let counters = c.store.meter.traffic().counters;
        assert_eq!(
            (counters.cache_hits, counters.cache_misses, counters.cache_uncacheable),
            (1, 4, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn vary_puts_the_named_request_headers_in_the_key() {
        let script = Script::ok(vec![("vary", "Accept-Encoding, x-tenant")]);
        let c = cache(&script, policy());
        let gzip_a = [("accept-encoding", "gzip"), ("x-tenant", "a")];
        let br_a = [("accept-encoding", "br"), ("x-tenant", "a")];
        assert_eq!(x_cache(&get(&c, "/v", &gzip_a).await), "miss");
        assert_eq!(get(&c, "/v", &gzip_a).await.3, "payload #0");
        assert_eq!(x_cache(&get(&c, "/v", &br_a).await), "miss");
        assert_eq!(get(&c, "/v", &br_a).await.3, "payload #1");
        assert_eq!(get(&c, "/v", &gzip_a).await.3, "payload #0");
        // A header named by Vary but absent is a value of its own.
        assert_eq!(x_cache(&get(&c, "/v", &[("accept-encoding", "gzip")]).await), "miss");
        assert_eq!(x_cache(&get(&c, "/v", &[("accept-encoding", "gzip")]).await), "hit");
        assert_eq!(script.calls(), 3);

        // `Vary: *` is never stored.
        let star = Script::ok(vec![("vary", "*")]);
        let c = cache(&star, policy());
        get(&c, "/s", &[]).await;
        assert_eq!(x_cache(&get(&c, "/s", &[]).await), "miss");
        assert_eq!(star.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn s_maxage_beats_max_age_beats_the_ttl_and_age_counts() {
        // (Cache-Control, Age, seconds fresh)
        let cases: [(Vec<(&'static str, &'static str)>, u64); 5] = [
            (vec![("cache-control", "public, max-age=5, s-maxage=20")], 20),
            (vec![("cache-control", "max-age=5")], 5),
            (vec![], 30),
            (vec![("cache-control", "max-age=15"), ("age", "10")], 5),
            (
                vec![("cache-control", "s-maxage=8"), ("cache-control", "max-age=100")],
                8,
            ),
        ];
        for (headers, fresh) in cases {
            let script = Script::ok(headers.clone());
            let c = cache(&script, policy());
            assert_eq!(x_cache(&get(&c, "/p", &[]).await), "miss", "{headers:?}");
            advance(fresh - 1).await;
            assert_eq!(
                x_cache(&get(&c, "/p", &[]).await),
                "hit",
                "{headers:?} at {}s",
                fresh - 1
            );
            advance(2).await;
            assert_eq!(
                x_cache(&get(&c, "/p", &[]).await),
                "miss",
                "{headers:?} at {}s",
                fresh + 1
            );
            assert_eq!(script.calls(), 2, "{headers:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn what_must_not_be_stored_is_not() {
        let not_stored: [(u16, Vec<(&'static str, &'static str)>); 8] = [
            (200, vec![("cache-control", "no-store")]),
            (200, vec![("cache-control", "private, max-age=60")]),
            (200, vec![("cache-control", "no-cache")]),
            (200, vec![("cache-control", "max-age=0")]),
            (200, vec![("set-cookie", "session=1")]),
            (200, vec![("ballast-fault", "f1")]),
            (206, vec![]),
            (500, vec![("cache-control", "max-age=60")]),
        ];
        for (status, headers) in not_stored {
            let script = Script::new(Answer::Ok(status, headers.clone(), "x"));
            let c = cache(&script, policy());
            get(&c, "/n", &[]).await;
            let again = get(&c, "/n", &[]).await;
            assert_eq!((x_cache(&again), script.calls()), ("miss", 2), "{status} {headers:?}");
            let counters = c.store.meter.traffic().counters;
            assert_eq!(
                (counters.cache_misses, counters.cache_uncacheable),
                (2, 2),
                "{status} {headers:?}"
            );
        }
        // 404 is stored (heuristically cacheable).
        let script = Script::new(Answer::Ok(404, vec![], "gone"));
        let c = cache(&script, policy());
        get(&c, "/n", &[]).await;
        assert_eq!(get(&c, "/n", &[]).await.0, 404);
        assert_eq!(script.calls(), 1);
        // Other methods, Range and Upgrade requests pass (counted as uncacheable misses).
        let script = Script::ok(vec![]);
        let c = cache(&script, policy());
        for req in [
            request(Method::POST, "/n", &[]),
            request(Method::GET, "/n", &[("range", "bytes=0-1")]),
            request(Method::GET, "/n", &[("upgrade", "websocket")]),
        ] {
            let resp = tower::ServiceExt::oneshot(c.clone(), req).await.unwrap();
            assert_eq!(resp.headers()["x-cache"], "miss");
        }
        assert_eq!(x_cache(&get(&c, "/n", &[]).await), "miss");
        assert_eq!(x_cache(&get(&c, "/n", &[]).await), "hit");
        assert_eq!(script.calls(), 4);
        assert_eq!(c.store.meter.traffic().counters.cache_uncacheable, 3);
        // With Authorization, only what the answer says is shared.
        let auth = [("authorization", "Bearer t")];
        let script = Script::ok(vec![("cache-control", "max-age=60")]);
        let c = cache(&script, policy());
        get(&c, "/n", &auth).await;
        assert_eq!(x_cache(&get(&c, "/n", &auth).await), "miss");
        script.set(Answer::Ok(200, vec![("cache-control", "public, max-age=60")], "p"));
        get(&c, "/n", &auth).await;
        assert_eq!(x_cache(&get(&c, "/n", &auth).await), "hit");
        assert_eq!(script.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_entries_are_served_for_failures_within_the_window_only() {
        let script = Script::ok(vec![("cache-control", "max-age=10")]);
        let p = CachePolicy {
            stale_if_error: Duration::from_secs(60),
            ..policy()
        };
        let c = cache(&script, p);
        assert_eq!(get(&c, "/s", &[]).await.3, "payload #0");
        advance(20).await;
        // Past its freshness, the entry is not a hit: the upstream is asked, and failing, the
        // stale entry answers, for a sidecar failure and for a 5xx alike.
        script.set(Answer::Fail(ErrorClass::ConnectRefused));
        assert_eq!(get(&c, "/s", &[]).await, (200, "stale".into(), 20, "payload #0".into()));
        script.set(Answer::Fail(ErrorClass::CircuitOpen));
        assert_eq!(x_cache(&get(&c, "/s", &[]).await), "stale");
        script.set(Answer::Ok(503, vec![], "down"));
        assert_eq!(get(&c, "/s", &[]).await.3, "payload #0");
        assert_eq!(script.calls(), 4);
        // A request's own failure is not covered.
        script.set(Answer::Fail(ErrorClass::BadRequest));
        let resp = tower::ServiceExt::oneshot(c.clone(), request(Method::GET, "/s", &[])).await;
        assert!(resp.is_err());
        // Past freshness + stale_if_error: the failure passes.
        advance(51).await;
        script.set(Answer::Fail(ErrorClass::Timeout));
        let Err(err) = tower::ServiceExt::oneshot(c.clone(), request(Method::GET, "/s", &[])).await else {
            panic!("past the stale window a failure passes")
        };
        assert_eq!(err.downcast_ref::<ProxyError>().unwrap().class, ErrorClass::Timeout);
        let counters = c.store.meter.traffic().counters;
        assert_eq!((counters.cache_stale, counters.cache_misses), (3, 3));

        // A recovered upstream refreshes the entry.
        script.set(Answer::Ok(200, vec![("cache-control", "max-age=10")], "new"));
        assert_eq!(get(&c, "/s", &[]).await.3, "new #6");
        assert_eq!(get(&c, "/s", &[]).await.1, "hit");

        // must-revalidate: never served stale.
        let script = Script::ok(vec![("cache-control", "max-age=10, must-revalidate")]);
        let c = cache(
            &script,
            CachePolicy {
                stale_if_error: Duration::from_secs(60),
                ..policy()
            },
        );
        get(&c, "/m", &[]).await;
        advance(20).await;
        script.set(Answer::Ok(502, vec![], "bad"));
        assert_eq!(get(&c, "/m", &[]).await.0, 502);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_share_one_fetch() {
        let mut script = Script::ok(vec![]);
        script.delay = Duration::from_millis(100);
        let c = cache(&script, policy());
        let all = futures_util::future::join_all((0..100).map(|_| get(&c, "/hot", &[]))).await;
        assert_eq!(script.calls(), 1);
        assert!(all.iter().all(|a| a.0 == 200 && a.3 == "payload #0"), "{all:?}");
        assert_eq!(all.iter().filter(|a| a.1 == "miss").count(), 1);
        let counters = c.store.meter.traffic().counters;
        assert_eq!((counters.cache_hits, counters.cache_misses), (99, 1));
        assert!(c.store.inflight.lock().unwrap().is_empty());

        // When the shared answer cannot be stored, each waiter fetches on its own.
        let mut script = Script::ok(vec![("cache-control", "no-store")]);
        script.delay = Duration::from_millis(100);
        let c = cache(&script, policy());
        let started = Instant::now();
        let all = futures_util::future::join_all((0..10).map(|_| get(&c, "/cold", &[]))).await;
        assert_eq!(script.calls(), 10);
        assert!(all.iter().all(|a| a.0 == 200 && a.1 == "miss"));
        // The waiters waited for the leader's fetch, then fetched: two upstream times.
        assert_eq!(started.elapsed(), Duration::from_millis(200));

        // Now the key is known not to be stored (hit-for-miss): nobody waits on anybody.
        let started = Instant::now();
        let all = futures_util::future::join_all((0..10).map(|_| get(&c, "/cold", &[]))).await;
        assert_eq!(script.calls(), 20);
        assert!(all.iter().all(|a| a.0 == 200 && a.1 == "miss"));
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert!(c.store.inflight.lock().unwrap().is_empty());
        // A storable answer replaces the marker.
        script.set(Answer::Ok(200, vec![], "payload"));
        assert_eq!(get(&c, "/cold", &[]).await.1, "miss");
        assert_eq!(get(&c, "/cold", &[]).await.1, "hit");
        assert_eq!(script.calls(), 21);
    }

    #[tokio::test(start_paused = true)]
    async fn a_marked_key_stores_a_varying_answer_one_request_later() {
        let script = Script::ok(vec![("cache-control", "no-store")]);
        let c = cache(&script, policy());
        assert_eq!(get(&c, "/v", &[]).await.1, "miss");
        // Marked: the request's headers were not kept, so an answer that varies by them
        // cannot be keyed yet; the marker goes instead.
        script.set(Answer::Ok(200, vec![("vary", "accept")], "payload"));
        let json = [("accept", "application/json")];
        assert_eq!(get(&c, "/v", &json).await.1, "miss");
        assert_eq!(get(&c, "/v", &json).await.1, "miss");
        assert_eq!(get(&c, "/v", &json).await.1, "hit");
        assert_eq!(get(&c, "/v", &[("accept", "text/html")]).await.1, "miss");
        assert_eq!(script.calls(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_fetch_does_not_strand_its_waiters() {
        let mut script = Script::ok(vec![]);
        script.delay = Duration::from_millis(100);
        let c = cache(&script, policy());
        let leader = tokio::spawn({
            let c = c.clone();
            async move { get(&c, "/d", &[]).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(script.calls(), 1);
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { get(&c, "/d", &[]).await }
        });
        tokio::task::yield_now().await;
        leader.abort();
        let got = waiter.await.unwrap();
        assert_eq!((got.0, got.1.as_str()), (200, "miss"));
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn big_bodies_stream_through_and_the_store_is_bounded() {
        let script = Script::new(Answer::Ok(200, vec![], "twenty bytes of body"));
        let small = CachePolicy {
            max_object: 10,
            ..policy()
        };
        let c = cache(&script, small);
        assert_eq!(get(&c, "/big", &[]).await.3, "twenty bytes of body #0");
        assert_eq!(get(&c, "/big", &[]).await.3, "twenty bytes of body #1");
        assert_eq!(c.store.meter.traffic().counters.cache_uncacheable, 2);

        let script = Script::new(Answer::Ok(200, vec![], "x"));
        let bounded = CachePolicy {
            max_bytes: 4096,
            ..policy()
        };
        let c = cache(&script, bounded);
        for i in 0..100 {
            let path: &'static str = Box::leak(format!("/k{i}").into_boxed_str());
            get(&c, path, &[]).await;
        }
        c.store.entries.run_pending_tasks();
        assert!(
            c.store.entries.weighted_size() <= 4096,
            "{}",
            c.store.entries.weighted_size()
        );
        assert!(c.store.entries.entry_count() < 100);
    }

    #[tokio::test(start_paused = true)]
    async fn client_no_cache_is_ignored_unless_the_route_honours_it() {
        let script = Script::ok(vec![]);
        let c = cache(&script, policy());
        get(&c, "/c", &[]).await;
        assert_eq!(x_cache(&get(&c, "/c", &[("cache-control", "no-cache")]).await), "hit");
        let honour = CachePolicy {
            honor_client_no_cache: true,
            ..policy()
        };
        let script = Script::ok(vec![]);
        let c = cache(&script, honour);
        get(&c, "/c", &[]).await;
        // no-cache: fetched again, and the new answer stored.
        assert_eq!(get(&c, "/c", &[("cache-control", "no-cache")]).await.3, "payload #1");
        assert_eq!(get(&c, "/c", &[]).await.3, "payload #1");
        // no-store: fetched, not stored.
        assert_eq!(get(&c, "/c", &[("cache-control", "no-store")]).await.3, "payload #2");
        assert_eq!(get(&c, "/c", &[]).await.3, "payload #1");
        assert_eq!(script.calls(), 3);
    }
}
