//! Shared pieces of the load generator's tests: a real nginx on a free loopback port, and
//! profiles written to a temp dir.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use ballast_testkit::{Collector, MockUpstream, assert_eventually};

/// nginx with a config of its own in a temp dir, answering `/` with a small body and logging
/// each request's arrival time (`$msec`) and URI. Stopped on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start() -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        // nginx cannot pick a free port itself: take one from the kernel and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let conf = format!(
            "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  log_format arrivals '$msec $request_uri $status';
  access_log {d}/access.log arrivals;
  keepalive_requests 1000000;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 'ok'; }}
    location /status/ {{ return 503 'down'; }}
  }}
}}
"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx; scripts/test.sh does it)");
        let nginx = Nginx { child, port, dir };
        assert_eventually!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "nginx listens on {port}; error log:\n{}",
            std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
        );
        nginx
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `(arrival time in seconds, uri, status)` of each request logged so far.
    pub fn arrivals(&self) -> Vec<(f64, String, u16)> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                Some((f.next()?.parse().ok()?, f.next()?.to_owned(), f.next()?.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Write `text` as `name` in `dir`, returning its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A checked profile from text (files it names are relative to `dir`).
pub fn profile(dir: &Path, text: &str) -> ballast_loadgen::Profile {
    let path = write(dir, "profile.toml", text);
    ballast_loadgen::load_file(&path).unwrap_or_else(|e| panic!("{e}"))
}
