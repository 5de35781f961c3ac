//! A real `redis-server` on a free loopback port (Debian's `redis-server`; scripts/test.sh
//! installs it), and `redis-cli` to talk to it.

use std::process::{Child, Command, Stdio};

use crate::assert_eventually;

/// A redis-server on a free port, killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        // Redis cannot choose a free port itself: take one from the kernel and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server; scripts/test.sh does it)");
        let redis = Redis { child, port };
        assert_eventually!(
            redis_cli(redis.port, &["ping"]).0 == "PONG",
            "redis-server answers on port {port}"
        );
        redis
    }

    /// `redis-cli` against this server: its stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args).0
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run redis-cli against a port: (stdout trimmed, stderr).
pub fn redis_cli(port: u16, args: &[&str]) -> (String, String) {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
