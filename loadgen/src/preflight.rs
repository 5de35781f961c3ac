//! Before any load: can every base URL be reached? A target that is down is one clear error at
//! the start, not thousands of failed requests.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::LoadError;
use crate::profile::Profile;

/// Open (and close) one TCP connection to each base URL's host and port.
pub(crate) async fn reach(profile: &Profile) -> Result<(), LoadError> {
    let limit = profile.timeout.min(Duration::from_secs(5));
    for url in &profile.base_urls {
        let unreachable = |reason: String| LoadError::Unreachable {
            url: url.to_string(),
            reason,
        };
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| unreachable(format!("cannot resolve {host:?}: {e}")))?
            .collect();
        let mut last = String::from("no address");
        let mut ok = false;
        for addr in addrs {
            match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => {
                    ok = true;
                    break;
                }
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(_) => last = format!("{addr}: no answer within {limit:?}"),
            }
        }
        if !ok {
            return Err(unreachable(last));
        }
    }
    Ok(())
}
