//! The resilience layers of a route's tower stack, in the order DESIGN.md gives (outermost
//! first); each is configured per route or per cluster.
//!
//! - [`cache`]: the response cache (GET/HEAD, `Cache-Control` aware, bounded by bytes with
//!   moka, `stale_if_error`, concurrent misses coalesced into one fetch, `x-cache`).
//! - [`concurrency`]: a static or adaptive (gradient) limit of requests in flight; shed at once.
//! - [`rate_limit`]: GCRA per route or per client key, 429 with `Retry-After` and the IETF
//!   `RateLimit` headers, shadow mode.
//! - [`timeout`]: the route timeout over every try.
//! - [`retry`]: retries on `retry_on` conditions with per-try timeouts, jittered exponential
//!   backoff, `Retry-After`, body replay and a retry budget; a retry prefers another endpoint.

pub mod cache;
pub mod concurrency;
pub mod rate_limit;
pub mod retry;
pub mod timeout;
