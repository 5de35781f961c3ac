//! Why a request failed, as the sidecar tells clients in the `ballast-error` response header.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The response header that carries an [`ErrorClass`].
pub const ERROR_HEADER: &str = "ballast-error";

/// A failure class. Each maps to one HTTP status, so clients, dashboards and SLOs agree on what
/// went wrong without parsing bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// No route matched the request (404).
    NoRoute,
    /// The upstream refused the TCP connection (503).
    ConnectRefused,
    /// The TCP connection to the upstream was not established within the connect timeout (503).
    ConnectTimeout,
    /// Any other failure to connect: unreachable, DNS, ... (503).
    ConnectFailure,
    /// The cluster had no endpoint able to take the request (503).
    NoHealthyEndpoint,
    /// The route timeout elapsed before the upstream answered (504).
    Timeout,
    /// The upstream reset or closed the connection mid-exchange (502).
    Reset,
    /// The upstream spoke malformed HTTP (502).
    Protocol,
    /// The request body exceeded the route's `max_request_body` (413).
    BodyTooLarge,
    /// The request could not be forwarded as sent, e.g. an invalid header value (400).
    BadRequest,
    /// A cluster limit (connections, pending, requests, retries) was reached: answered at once
    /// instead of queued (503).
    Overflow,
    /// Every endpoint of the cluster is ejected by outlier detection (503).
    CircuitOpen,
    /// The route's rate limit was reached (429, with `Retry-After`).
    RateLimited,
    /// The route's concurrency limit was reached: shed at once, not queued (503).
    Shed,
    /// The route requires credentials and the request had none, or invalid ones (401).
    Unauthorized,
    /// The credentials are valid but the route does not allow them: tenant or scope (403).
    Forbidden,
}

impl ErrorClass {
    /// Every class, in declaration order.
    pub const ALL: [ErrorClass; 16] = [
        ErrorClass::NoRoute,
        ErrorClass::ConnectRefused,
        ErrorClass::ConnectTimeout,
        ErrorClass::ConnectFailure,
        ErrorClass::NoHealthyEndpoint,
        ErrorClass::Timeout,
        ErrorClass::Reset,
        ErrorClass::Protocol,
        ErrorClass::BodyTooLarge,
        ErrorClass::BadRequest,
        ErrorClass::Overflow,
        ErrorClass::CircuitOpen,
        ErrorClass::RateLimited,
        ErrorClass::Shed,
        ErrorClass::Unauthorized,
        ErrorClass::Forbidden,
    ];

    /// The header value, e.g. `connect-refused`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::NoRoute => "no-route",
            ErrorClass::ConnectRefused => "connect-refused",
            ErrorClass::ConnectTimeout => "connect-timeout",
            ErrorClass::ConnectFailure => "connect-failure",
            ErrorClass::NoHealthyEndpoint => "no-healthy-endpoint",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Reset => "reset",
            ErrorClass::Protocol => "protocol",
            ErrorClass::BodyTooLarge => "body-too-large",
            ErrorClass::BadRequest => "bad-request",
            ErrorClass::Overflow => "overflow",
            ErrorClass::CircuitOpen => "circuit-open",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::Shed => "shed",
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Forbidden => "forbidden",
        }
    }

    /// The HTTP status a client receives for this class.
    pub const fn status(self) -> u16 {
        match self {
            ErrorClass::NoRoute => 404,
            ErrorClass::ConnectRefused
            | ErrorClass::ConnectTimeout
            | ErrorClass::ConnectFailure
            | ErrorClass::NoHealthyEndpoint
            | ErrorClass::Overflow
            | ErrorClass::CircuitOpen
            | ErrorClass::Shed => 503,
            ErrorClass::RateLimited => 429,
            ErrorClass::Timeout => 504,
            ErrorClass::Reset | ErrorClass::Protocol => 502,
            ErrorClass::BodyTooLarge => 413,
            ErrorClass::BadRequest => 400,
            ErrorClass::Unauthorized => 401,
            ErrorClass::Forbidden => 403,
        }
    }

    /// A short human sentence for response bodies and logs.
    pub const fn describe(self) -> &'static str {
        match self {
            ErrorClass::NoRoute => "no route matches this request",
            ErrorClass::ConnectRefused => "upstream refused the connection",
            ErrorClass::ConnectTimeout => "upstream connect timed out",
            ErrorClass::ConnectFailure => "upstream connection failed",
            ErrorClass::NoHealthyEndpoint => "no healthy upstream endpoint",
            ErrorClass::Timeout => "upstream did not answer within the route timeout",
            ErrorClass::Reset => "upstream reset the connection",
            ErrorClass::Protocol => "upstream sent a malformed response",
            ErrorClass::BodyTooLarge => "request body exceeds the route's limit",
            ErrorClass::BadRequest => "request cannot be forwarded as sent",
            ErrorClass::Overflow => "upstream cluster is at its limit",
            ErrorClass::CircuitOpen => "every upstream endpoint is ejected",
            ErrorClass::RateLimited => "rate limit reached; retry after the time given",
            ErrorClass::Shed => "too many requests in flight on this route",
            ErrorClass::Unauthorized => "missing or invalid credentials",
            ErrorClass::Forbidden => "the credentials are not allowed on this route",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a known class name.
#[derive(Debug, thiserror::Error)]
#[error("unknown error class {0:?}")]
pub struct UnknownErrorClass(pub String);

impl FromStr for ErrorClass {
    type Err = UnknownErrorClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownErrorClass(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for class in ErrorClass::ALL {
            assert!(seen.insert(class.as_str()));
            assert_eq!(class.as_str().parse::<ErrorClass>().unwrap(), class);
            let json = format!("\"{}\"", class.as_str());
            assert_eq!(serde_json_like(&json), class);
        }
        assert!("nope".parse::<ErrorClass>().is_err());
    }

    fn serde_json_like(quoted: &str) -> ErrorClass {
        #[derive(Deserialize)]
        struct W {
            c: ErrorClass,
        }
        toml::from_str::<W>(&format!("c = {quoted}")).unwrap().c
    }

    #[test]
    fn statuses_follow_the_gateway_convention() {
        assert_eq!(ErrorClass::NoRoute.status(), 404);
        assert_eq!(ErrorClass::ConnectRefused.status(), 503);
        assert_eq!(ErrorClass::Timeout.status(), 504);
        assert_eq!(ErrorClass::Reset.status(), 502);
        assert_eq!(ErrorClass::Protocol.status(), 502);
        assert_eq!(ErrorClass::Unauthorized.status(), 401);
        assert_eq!(ErrorClass::Forbidden.status(), 403);
        assert_eq!("unauthorized".parse::<ErrorClass>().unwrap(), ErrorClass::Unauthorized);
        assert_eq!("forbidden".parse::<ErrorClass>().unwrap(), ErrorClass::Forbidden);
    }
}
