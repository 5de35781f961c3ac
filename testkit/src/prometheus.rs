//! A real Prometheus (Debian's `prometheus`) scraping given targets every second, in a temp
//! dir, with its HTTP API on a free loopback port; killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    /// Base URL of its HTTP API.
    pub url: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// Start it scraping `targets` (`/metrics` on each). `None` when Prometheus is not
    /// installed outside CI; in CI (`CI` set) a missing Prometheus fails the test.
    pub fn start(targets: &[SocketAddr]) -> Option<Prometheus> {
        if Command::new("prometheus").arg("--version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "prometheus must be installed in CI");
            eprintln!("skipped: prometheus is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sidecar\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let web = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Some(Prometheus {
            child,
            dir,
            url: format!("http://{web}"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        })
    }

    /// The first value of an instant query, as Prometheus writes it; `None` while it is not
    /// up or has no data.
    pub async fn query(&self, q: &str) -> Option<String> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), [("query", q)]).ok()?;
        let v: serde_json::Value = self.http.get(url).send().await.ok()?.json().await.ok()?;
        v["data"]["result"][0]["value"][1].as_str().map(str::to_owned)
    }

    /// Poll `q` until it answers `want`; panics with Prometheus's log after a minute.
    pub async fn wait_for(&self, q: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = None;
        while Instant::now() < deadline {
            seen = self.query(q).await;
            if seen.as_deref() == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{q} is {seen:?}, not {want}; prometheus log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
