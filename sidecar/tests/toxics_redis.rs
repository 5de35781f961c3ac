//! TCP toxics against a real Redis: the proxy (`tcp::serve`) runs on a thread of its own, as in
//! the sidecar; toxics come and go through the fault table exactly as the admin API adds them;
//! the clients are the real `redis-cli` and raw RESP over a socket.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_model::FaultSpec;
use ballast_model::fault::Origin;
use ballast_sidecar::config::{FaultLimits, TcpListener};
use ballast_sidecar::events::Events;
use ballast_sidecar::faults::FaultTable;
use ballast_testkit::{Redis, assert_eventually, redis_cli};
use serde_json::json;

/// The proxy in front of Redis, and the table its toxics come from.
struct Proxy {
    addr: SocketAddr,
    table: Arc<FaultTable>,
    events: Events,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(redis: &Redis) -> Proxy {
        let table = Arc::new(FaultTable::new(FaultLimits::default(), ["redis"]));
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let cfg = TcpListener {
            name: "redis".into(),
            listen: addr,
            upstream: format!("127.0.0.1:{}", redis.port),
            connect_timeout: Duration::from_secs(2),
        };
        let toxics = table.toxics("redis").unwrap();
        // As the sidecar runs it: a thread with a current-thread runtime.
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                ballast_sidecar::tcp::serve(listener, cfg, toxics, shutdown_rx).await;
            });
        });
        Proxy {
            addr,
            table,
            events: Events::default(),
            shutdown,
            thread: Some(thread),
        }
    }

    /// Add a toxic the way the admin API does; returns its id.
    fn add(&self, spec: serde_json::Value) -> String {
        let mut spec = spec;
        spec["listener"] = json!("redis");
        let spec: FaultSpec = serde_json::from_value(spec).unwrap();
        let fault = spec.validate().unwrap();
        self.table.add(spec, fault, Origin::Api, &self.events).unwrap().id
    }

    fn remove(&self, id: &str) {
        assert!(self.table.remove(id, &self.events));
    }

    fn connect(&self) -> Resp {
        Resp::connect(self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A minimal RESP client over a raw socket.
struct Resp(TcpStream);

impl Resp {
    fn connect(addr: SocketAddr) -> Resp {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Resp(s)
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut cmd = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            cmd.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            cmd.extend_from_slice(a);
            cmd.extend_from_slice(b"\r\n");
        }
        self.0.write_all(&cmd).unwrap();
    }

    /// Read exactly `n` bytes.
    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.0.read_exact(&mut buf).unwrap();
        buf
    }

    /// One PING round trip.
    fn ping(&mut self) -> Duration {
        let t0 = Instant::now();
        self.send(&[b"PING"]);
        assert_eq!(self.read_exact(7), b"+PONG\r\n");
        t0.elapsed()
    }

    /// The median of `n` PING round trips.
    fn median_ping(&mut self, n: usize) -> Duration {
        let mut times: Vec<Duration> = (0..n).map(|_| self.ping()).collect();
        times.sort();
        times[n / 2]
    }

    /// Read until EOF or an error: (bytes read, the error if any).
    fn read_to_end(&mut self) -> (Vec<u8>, Option<std::io::Error>) {
        let mut got = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return (got, None),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, Some(e)),
            }
        }
    }
}

/// Store a value of `len` bytes under `key`, straight into Redis.
fn set_value(redis: &Redis, key: &str, len: usize) {
    let mut c = Resp::connect(SocketAddr::from(([127, 0, 0, 1], redis.port)));
    c.send(&[b"SET", key.as_bytes(), &vec![b'x'; len]]);
    assert_eq!(c.read_exact(5), b"+OK\r\n");
}

/// The RESP reply to GET of a `len`-byte value: `$len\r\n` + value + `\r\n`.
fn bulk_len(len: usize) -> usize {
    format!("${len}\r\n").len() + len + 2
}

#[test]
fn toxic_latency_adds_its_delay_to_open_connections_and_removing_it_restores_service() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let mut c = proxy.connect();
    let base = c.median_ping(9);
    // Five round trips of the real client on one connection (`-r 5`).
    let cli_pings = || {
        let t0 = std::time::Instant::now();
        assert_eq!(
            redis_cli(proxy.addr.port(), &["-r", "5", "ping"]).0,
            "PONG\nPONG\nPONG\nPONG\nPONG"
        );
        t0.elapsed()
    };
    let cli_base = cli_pings();

    // Added while the connection is open: it acts on it (toxics are followed live).
    let id = proxy.add(json!({"kind": "latency", "latency": 100, "stream": "downstream"}));
    let slow = c.median_ping(5);
    let added = slow.saturating_sub(base);
    assert!(
        added >= Duration::from_millis(90) && added <= Duration::from_millis(250),
        "a 100 ms latency toxic added {added:?} (base {base:?}, with it {slow:?})"
    );
    // A new connection gets it too: redis-cli's five round trips take 5 × 100 ms longer.
    let cli_added = cli_pings().saturating_sub(cli_base);
    assert!(
        cli_added >= Duration::from_millis(450) && cli_added <= Duration::from_millis(1250),
        "redis-cli: five PINGs took {cli_added:?} longer"
    );

    proxy.remove(&id);
    let after = c.median_ping(9);
    assert!(
        after < base + Duration::from_millis(50),
        "round trip back near the baseline once removed: {after:?} (base {base:?})"
    );
    assert_eq!(redis_cli(proxy.addr.port(), &["set", "k", "v"]).0, "OK");
    assert_eq!(redis_cli(proxy.addr.port(), &["get", "k"]).0, "v");
    let installed = proxy.table.list();
    assert!(installed.is_empty(), "{installed:?}");
}

#[test]
fn toxic_reset_peer_resets_the_client_connection() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let mut c = proxy.connect();
    c.ping();
    let id = proxy.add(json!({"kind": "reset_peer", "timeout": 0}));
    let (_, err) = c.read_to_end();
    assert_eq!(
        err.map(|e| e.kind()),
        Some(ErrorKind::ConnectionReset),
        "an open connection is reset"
    );
    // redis-cli connecting while the toxic is in place sees the reset as well.
    let (out, err) = redis_cli(proxy.addr.port(), &["ping"]);
    assert!(
        format!("{out}{err}").contains("Connection reset by peer"),
        "redis-cli said {out:?} / {err:?}"
    );
    proxy.remove(&id);
    assert_eq!(redis_cli(proxy.addr.port(), &["ping"]).0, "PONG");
}

#[test]
fn toxic_limit_data_closes_after_its_bytes() {
    let redis = Redis::start();
    set_value(&redis, "big", 100_000);
    let proxy = Proxy::start(&redis);
    let id = proxy.add(json!({"kind": "limit_data", "bytes": 1000}));
    let mut c = proxy.connect();
    c.send(&[b"GET", b"big"]);
    let (got, err) = c.read_to_end();
    assert!(err.is_none(), "closed, not reset: {err:?}");
    assert_eq!(got.len(), 1000, "exactly the limit, then EOF");
    assert!(got.starts_with(b"$100000\r\nxxx"));
    let view = proxy.table.list().into_iter().find(|f| f.id == id).unwrap();
    assert_eq!((view.matched, view.injected), (1, 1));
    // Upstream limits count client→server bytes: a command longer than that closes.
    proxy.remove(&id);
    proxy.add(json!({"kind": "limit_data", "bytes": 10, "stream": "upstream"}));
    let mut c = proxy.connect();
    c.send(&[b"GET", b"big"]);
    assert_eq!(c.read_to_end().0, b"", "the command never reached Redis whole");
}

#[test]
fn toxic_bandwidth_caps_throughput() {
    let redis = Redis::start();
    let len = 300_000;
    set_value(&redis, "big", len);
    let proxy = Proxy::start(&redis);
    proxy.add(json!({"kind": "bandwidth", "rate": 100})); // 100 KB/s = 100 000 B/s
    let mut c = proxy.connect();
    let t0 = Instant::now();
    c.send(&[b"GET", b"big"]);
    let reply = c.read_exact(bulk_len(len));
    let elapsed = t0.elapsed();
    assert!(reply.ends_with(b"xx\r\n"));
    let rate = reply.len() as f64 / elapsed.as_secs_f64();
    assert!(
        (90_000.0..=110_000.0).contains(&rate),
        "{rate:.0} B/s over {elapsed:?}, want 100 000 ± 10 %"
    );
}

#[test]
fn toxic_down_refuses_connections_until_removed() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let mut open = proxy.connect();
    open.ping();
    let id = proxy.add(json!({"kind": "down"}));
    assert_eventually!(
        matches!(TcpStream::connect(proxy.addr), Err(ref e) if e.kind() == ErrorKind::ConnectionRefused),
        "connections to {} refused while down",
        proxy.addr
    );
    let (got, _) = open.read_to_end();
    assert!(got.is_empty(), "the open connection was closed");
    let (out, err) = redis_cli(proxy.addr.port(), &["ping"]);
    assert!(
        err.contains("Connection refused") || out.contains("Connection refused"),
        "{out:?} {err:?}"
    );

    proxy.remove(&id);
    assert_eventually!(
        redis_cli(proxy.addr.port(), &["ping"]).0 == "PONG",
        "service back on {} once `down` is removed",
        proxy.addr
    );
    // And again: down and up a second time on the same address.
    let id = proxy.add(json!({"kind": "down"}));
    assert_eventually!(TcpStream::connect(proxy.addr).is_err(), "down again");
    proxy.remove(&id);
    assert_eventually!(redis_cli(proxy.addr.port(), &["ping"]).0 == "PONG", "up again");
}

#[test]
fn toxic_timeout_drops_data_until_removed_then_closes_the_connection() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let mut c = proxy.connect();
    c.ping();
    let id = proxy.add(json!({"kind": "timeout", "timeout": 0, "stream": "upstream"}));
    c.0.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    c.send(&[b"PING"]);
    let mut buf = [0u8; 16];
    let err = c.0.read(&mut buf).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    // Removing it closes the connection that lost data (as Toxiproxy does); new ones work.
    proxy.remove(&id);
    c.0.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(c.0.read(&mut buf).unwrap(), 0, "closed");
    proxy.connect().ping();
}
