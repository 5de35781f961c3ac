//! ballast-testkit: helpers for ballast's tests, never shipped.
//!
//! # Layout
//! - [`upstream`]: mock HTTP upstreams on `127.0.0.1:0` (echo, streaming, slow, trailers,
//!   WebSocket-style upgrade, resets; stalled on demand), raw TCP peers that answer with fixed
//!   bytes, and a collector that keeps what clients sent.
//! - [`process`]: run a real binary (the sidecar, the CLI) with a config written to a temp
//!   dir, learn its bound addresses from its ready line, signal it, read its memory use.
//! - [`prometheus`]: a real Prometheus scraping given targets, with its query API.
//! - [`redis`]: a real redis-server on a free port, and redis-cli.
//! - [`assert_eventually!`]: poll a condition until it holds or a deadline passes, instead of
//!   sleeping in tests.

pub mod process;
pub mod prometheus;
pub mod redis;
pub mod upstream;

pub use process::{Proc, ctrl_c, processes_mentioning, rss_kib};
pub use prometheus::Prometheus;
pub use redis::{Redis, redis_cli};
pub use upstream::{Collector, MockUpstream, RawUpstream, Received};

/// Poll `cond` every 20 ms until it is true; panic with `msg` after `timeout` (default 10 s).
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $($msg:tt)+) => {
        $crate::assert_eventually!(@ std::time::Duration::from_secs(10), $cond, $($msg)+)
    };
    (@ $timeout:expr, $cond:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!("condition did not hold within {:?}: {}", $timeout, format!($($msg)+));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }};
}
