//! The HTTP client users send with (reqwest, as goose uses it), set up for load generation:
//! no proxy from the environment, no gzip unless a header asks, Nagle off, the profile's
//! timeout over the whole exchange.

use std::time::Duration;

use crate::error::LoadError;
use crate::profile::Profile;

pub(crate) fn build(profile: &Profile, cookies: bool) -> Result<reqwest::Client, LoadError> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .user_agent(concat!("ballast-load/", env!("CARGO_PKG_VERSION")))
        .timeout(profile.timeout)
        .connect_timeout(profile.timeout.min(Duration::from_secs(10)))
        .tcp_nodelay(true)
        // As wrk and oha: bodies come as the server sends them.
        .gzip(false)
        .cookie_store(cookies);
    if profile.http2 {
        b = b.http2_prior_knowledge();
    }
    b.build().map_err(|e| LoadError::Client(e.to_string()))
}
