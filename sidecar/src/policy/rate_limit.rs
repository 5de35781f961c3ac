//! Rate limiting per route, and per client key within a route: GCRA through `governor`.
//!
//! `requests` per `per` with a `burst` (default: `requests`), for the whole route or for each
//! key (`client_ip`, `tenant` as the route's auth verified it, or a request header such as
//! `header:x-api-key`; requests without the key share one bucket). Over the limit: 429 `rate-limited` with `Retry-After` (whole
//! seconds, at least 1) and the IETF `RateLimit-Policy` / `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers, structured-field form). In `shadow` mode nothing is
//! rejected; what would have been is counted.

use std::num::NonZeroU32;
use std::time::Duration;

use ballast_model::ErrorClass;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};

use crate::config::{RateLimitKey, RateLimitPolicy};
use crate::proxy::ProxyError;
use crate::proxy::headers::Client;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

enum Limiter {
    Route(DefaultDirectRateLimiter<StateInformationMiddleware>),
    Keyed(DefaultKeyedRateLimiter<String, StateInformationMiddleware>),
}

/// One route's rate limit.
pub struct RateLimit {
    policy: RateLimitPolicy,
    limiter: Limiter,
    /// `"<route>";q=<requests>;w=<seconds>`, made once.
    policy_header: HeaderValue,
    name: String,
}

/// What the limit says about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Over the limit in shadow mode: let through, counted.
    Shadowed,
    Limited {
        retry_after: Duration,
    },
}

impl RateLimit {
    pub fn new(route: &str, policy: RateLimitPolicy) -> Self {
        let period = policy.per / policy.requests;
        let burst = NonZeroU32::new(policy.burst).expect("validated burst");
        let quota = Quota::with_period(period).expect("validated period").allow_burst(burst);
        let limiter = match policy.key {
            RateLimitKey::Route => Limiter::Route(governor::RateLimiter::direct(quota).with_middleware()),
            _ => Limiter::Keyed(governor::RateLimiter::keyed(quota).with_middleware()),
        };
        let policy_header = HeaderValue::try_from(format!(
            "\"{route}\";q={};w={}",
            policy.requests,
            policy.per.as_secs().max(1)
        ))
        .expect("route names are tokens");
        RateLimit {
            policy,
            limiter,
            policy_header,
            name: route.to_owned(),
        }
    }

    /// Decide for one request.
    /// `tenant`: the one the route's auth verified, asked for `tenant` keys only.
    pub fn check<'a>(
        &self,
        parts: &'a http::request::Parts,
        client: &Client,
        tenant: impl FnOnce() -> Option<&'a HeaderValue>,
    ) -> Decision {
        let headers = &parts.headers;
        let outcome = match &self.limiter {
            Limiter::Route(l) => l.check(),
            Limiter::Keyed(l) => {
                let key = match &self.policy.key {
                    RateLimitKey::ClientIp => client.addr.ip().to_string(),
                    RateLimitKey::Header(name) => headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    // The tenant the route's auth verified (none: one shared bucket).
                    RateLimitKey::Tenant => tenant().and_then(|t| t.to_str().ok()).unwrap_or_default().to_owned(),
                    RateLimitKey::Route => unreachable!("a route-wide limit is direct"),
                };
                l.check_key(&key)
            }
        };
        match outcome {
            Ok(_) => Decision::Allow,
            Err(_) if self.policy.shadow => Decision::Shadowed,
            Err(not_until) => Decision::Limited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        }
    }

    /// The 429 for a request over the limit.
    pub fn rejection(&self, retry_after: Duration) -> ProxyError {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut e = ProxyError::new(
            ErrorClass::RateLimited,
            format!("rate limit of route {} reached", self.name),
        );
        e.headers = vec![
            (RETRY_AFTER, HeaderValue::from(secs)),
            (RATELIMIT_POLICY, self.policy_header.clone()),
            (
                RATELIMIT,
                HeaderValue::try_from(format!("\"{}\";r=0;t={secs}", self.name)).expect("a token and numbers"),
            ),
        ];
        e
    }

    /// Forget keys that have been idle long enough to be full again (bounds memory).
    pub fn forget_idle_keys(&self) {
        if let Limiter::Keyed(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(requests: u32, per: Duration, key: RateLimitKey, shadow: bool) -> RateLimitPolicy {
        RateLimitPolicy {
            requests,
            per,
            burst: requests,
            key,
            shadow,
        }
    }

    #[test]
    fn a_burst_then_limited_with_a_retry_after() {
        let rl = RateLimit::new("api", policy(5, Duration::from_secs(60), RateLimitKey::Route, false));
        let client = Client::new("10.0.0.1:5000".parse().unwrap());
        let h = http::Request::new(()).into_parts().0;
        for _ in 0..5 {
            assert_eq!(rl.check(&h, &client, || None), Decision::Allow);
        }
        let Decision::Limited { retry_after } = rl.check(&h, &client, || None) else {
            panic!()
        };
        assert!(retry_after <= Duration::from_secs(12) && retry_after > Duration::from_secs(11));
        let e = rl.rejection(retry_after);
        assert_eq!(e.class.status(), 429);
        let get = |n: &HeaderName| e.headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get(&RETRY_AFTER), "12");
        assert_eq!(get(&RATELIMIT_POLICY), "\"api\";q=5;w=60");
        assert_eq!(get(&RATELIMIT), "\"api\";r=0;t=12");
    }

    #[test]
    fn keys_have_their_own_buckets_and_shadow_mode_never_rejects() {
        let rl = RateLimit::new(
            "api",
            policy(
                1,
                Duration::from_secs(60),
                RateLimitKey::Header(HeaderName::from_static("x-key")),
                false,
            ),
        );
        let client = Client::new("10.0.0.1:5000".parse().unwrap());
        let with = |k: &str| {
            http::Request::builder()
                .header("x-key", k)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert_eq!(rl.check(&with("a"), &client, || None), Decision::Allow);
        assert_eq!(rl.check(&with("b"), &client, || None), Decision::Allow);
        assert!(matches!(
            rl.check(&with("a"), &client, || None),
            Decision::Limited { .. }
        ));
        let shadow = RateLimit::new("api", policy(1, Duration::from_secs(60), RateLimitKey::ClientIp, true));
        assert_eq!(shadow.check(&with("a"), &client, || None), Decision::Allow);
        assert_eq!(shadow.check(&with("a"), &client, || None), Decision::Shadowed);
        let other = Client::new("10.0.0.2:5000".parse().unwrap());
        assert_eq!(shadow.check(&with("a"), &other, || None), Decision::Allow);

        // By the verified tenant (a client's own header does not count); none: one bucket.
        let by_tenant = RateLimit::new("api", policy(1, Duration::from_secs(60), RateLimitKey::Tenant, false));
        let (acme, globex) = (HeaderValue::from_static("acme"), HeaderValue::from_static("globex"));
        assert_eq!(by_tenant.check(&with("a"), &client, || Some(&acme)), Decision::Allow);
        assert_eq!(by_tenant.check(&with("a"), &client, || Some(&globex)), Decision::Allow);
        assert!(matches!(
            by_tenant.check(&with("b"), &client, || Some(&acme)),
            Decision::Limited { .. }
        ));
        assert_eq!(by_tenant.check(&with("a"), &client, || None), Decision::Allow);
        assert!(matches!(
            by_tenant.check(&with("b"), &other, || None),
            Decision::Limited { .. }
        ));
    }
}
