//! ballast-sidecar: a per-service gateway that proxies HTTP to a cluster of endpoints and
//! reports what it sees (metrics, traces, access log, events), and injects faults on command
//! (HTTP faults on routes, Toxiproxy's toxics on TCP listeners); resilience policies come as
//! further layers.
//!
//! # Layout
//! - [`config`]: the TOML file: parse, validate (every error with file:line:column), defaults;
//!   `config::auth` holds `[auth]` and a route's `auth` (key files read at load time).
//! - [`auth`]: API keys per tenant (SHA-256 hashes, constant-time comparison) and JWTs
//!   (jsonwebtoken: HS256/RS256/ES256 from a secret in the environment, a PEM or a JWKS file);
//!   per-route tenants and scopes; 401 with `WWW-Authenticate` versus 403.
//! - [`router`]: route matching (host, path exact/prefix/regex, method, headers), in order.
//! - [`gateway`]: the outermost, infallible handler and the per-route tower stacks.
//! - [`policy`]: the resilience layers of a route's stack (response cache, retries with a
//!   budget, per-try timeouts).
//! - [`proxy`]: forwarding to one endpoint, header hygiene, error classification.
//! - [`upstream`]: a cluster at run time: endpoints, balancer (`balance`) and per-worker,
//!   per-endpoint connection pools (`pool`).
//! - [`body`]: the body type streamed through in both directions.
//! - [`server`]: accepting connections on a worker; simple HTTP/1.1 requests served by the
//!   sidecar's own code (`server::h1`), the rest of HTTP/1.1 and h2c by hyper.
//! - [`http1`]: HTTP/1.1 wire pieces both of the sidecar's own HTTP/1.1 sides share.
//! - [`activity`]: header-read and idle timeouts per connection.
//! - [`admin`]: the admin API (`/healthz`, `/readyz`, `/config`, `/events`, `/stats`, `/metrics`,
//!   `/faults`).
//! - [`telemetry`]: per-worker meters for routes, clusters and endpoints; Prometheus output;
//!   OpenTelemetry traces; the access log.
//! - [`events`]: the timeline of what happened (reloads, faults), replayed and streamed.
//! - [`faults`]: the faults in place (TTLs, counters, events), HTTP fault matching and effects,
//!   shaped bodies.
//! - [`tcp`]: TCP listeners relaying to an upstream through toxics (Toxiproxy's), `down` included.
//! - [`sidecar`]: the running process: workers, shared state, hot reload, signals, drain.
//! - [`worker`]: which worker thread is running, its timer pacing, its writes bunched per
//!   turn of the event loop and sent in one system call (`worker::bunched`, `worker/batch.rs`),
//!   and its polling for a moment before it sleeps (`worker/idle_poll.rs`).
//! - [`rng`]: fast per-thread randomness for ids and sampling.
//! - [`clock`]: coarse clocks for per-request timestamps that need no precision (pooled
//!   connections' idle time, the `date` line).
//!
//! # Request path
//! A request is accepted by a worker ([`server`]), matched to a route ([`router`]), timed by
//! the route's meter and, with tracing on, given a server span; cleaned of hop-by-hop headers
//! and tagged with forwarding headers ([`gateway`]), it then passes the route's tower stack
//! (outermost first: error mapping, response cache, concurrency limit, route timeout, retries,
//! forward; a route with none of the optional layers calls forward under its timeout
//! directly). A route with auth checks the credentials before inbound faults are selected (a
//! `tenant` fault matches the verified tenant) and refuses after them (401/403). Inbound
//! faults act before the stack (delay, answer or hang up, shape the response); upstream faults
//! are selected then and drawn per attempt in [`proxy::Forward`], which picks an endpoint and
//! sends the request on a pooled connection; the response body streams back untouched, and
//! the connection returns to its pool when that body ends. Any failure becomes a response
//! with a `ballast-error` header.
//!
//! # Threads
//! `worker_threads` workers, each a single-threaded tokio runtime with its own listening
//! socket per listener (SO_REUSEPORT) and its own upstream pools, like nginx's workers: no
//! work stealing, no cross-thread locks on the request path. As in haproxy's loop, a turn's
//! first writes of requests and answers (every connection that was ready; not those hyper
//! writes) leave after the turn's reads and handling, together in one `io_uring_enter` where
//! the kernel allows it, so the client and the upstream wake once for several and cannot
//! preempt the worker between them (`worker::bunched` says what that measured). While a worker
//! waits for a CPU at least a third of the time, it keeps polling its sockets for up to
//! `idle_poll` (100 µs, adaptive) after its last work before it sleeps, yielding its CPU to any
//! thread that wants it, so its CPU does not stand idle while threads wait on the other
//! (`worker/idle_poll.rs`). The admin API has a thread of its
//! own (it also expires faults on time), the TCP listeners one, the access log and the trace
//! exporter theirs; the main thread waits for signals. A config is shared as an
//! `ArcSwap<Gateway>`.

pub mod activity;
pub mod admin;
pub mod auth;
pub mod body;
pub mod clock;
pub mod config;
pub mod events;
pub mod faults;
pub mod gateway;
pub mod http1;
pub mod ids;
pub mod policy;
pub mod proxy;
pub mod rng;
pub mod router;
pub mod server;
pub mod sidecar;
pub mod tcp;
pub mod telemetry;
pub mod upstream;
pub mod worker;

/// Exit code for configuration errors (sysexits' EX_CONFIG), shared with the `ballast` CLI.
pub const EXIT_CONFIG: u8 = 78;
