#!/usr/bin/env bash
# ballast-sidecar beside nginx and haproxy, same worker count, one run per WORKERS value.
# Uses ../shared/bench/proxy-anchors.sh (upstream: nginx on 127.0.0.1:18080; candidate on
# 127.0.0.1:18083), then prints the sidecar's ratio to each peer round by round. Then memory:
# idle RSS and RSS with 1,000 idle keep-alive connections, and the stripped release binary's
# size.
#
#   bench/proxy.sh                  # WORKERS=1 and 2, 3 rounds of 5 s each
#   WORKER_SET="2" ROUNDS=5 bench/proxy.sh
#   TELEMETRY=on bench/proxy.sh     # the sidecar with all telemetry on (issue 3): metrics,
#                                   # traces sampled at 1 % to a stand-in OTLP collector,
#                                   # the access log sampled at 1 %
# Needs nginx, haproxy, wrk, curl and python3 (Debian: apt-get install nginx haproxy wrk curl).
set -euo pipefail
cd "$(dirname "$0")/.."
ANCHORS=${ANCHORS:-../shared/bench/proxy-anchors.sh}
cargo build --release -p ballast-sidecar >&2
BIN=$PWD/target/release/ballast-sidecar
W=$(mktemp -d /tmp/ballast-bench.XXXX)
. bench/lib.sh
collector=
trap 'rm -rf "$W"; [ -n "$collector" ] && kill "$collector" 2>/dev/null; true' EXIT
ulimit -n 65536 2>/dev/null || true

telemetry=
if [ "${TELEMETRY:-off}" = on ]; then
  telemetry="[telemetry]
access_log = { path = \"$W/access.jsonl\", sample = 0.01 }
tracing = { otlp_endpoint = \"http://127.0.0.1:18318/v1/traces\", sample = 0.01 }"
  start_collector
fi

# The targets of one round run back to back, so this machine's drift (rates move by ±20 % from
# minute to minute) moves them together: the candidate's ratio to each peer round by round,
# and the median of those, say more than a ratio of medians taken over different minutes.
paired_ratios() { # ANCHORS_OUTPUT
  python3 - "$1" <<'PY'
import ast, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if "runs=" in line:
        runs[line.split()[0]] = ast.literal_eval(line.split("runs=", 1)[1].strip())
for peer in ("nginx", "haproxy"):
    r = [c / p for c, p in zip(runs["candidate"], runs[peer])]
    print(f"ballast / {peer:8s} round by round {[round(x, 2) for x in r]}, median {statistics.median(r):.3f}")
PY
}

for workers in ${WORKER_SET:-1 2}; do
  sidecar_config "$workers" 127.0.0.1:18083 127.0.0.1:18901 "$telemetry" >"$W/sidecar-$workers.toml"
  echo "== WORKERS=$workers (nginx worker_processes, haproxy nbthread, ballast worker_threads)"
  # In a session of its own, as the peers daemonize (lib.sh); exec keeps the anchors' pid on it.
  WORKERS=$workers CANDIDATE_CMD="exec setsid env BALLAST_LOG=warn $BIN --config $W/sidecar-$workers.toml" \
    bash "$ANCHORS" | tee "$W/anchors-$workers"
  paired_ratios "$W/anchors-$workers"
done

echo "== memory (worker_threads = 2) and binary size"
python3 - "$BIN" "$W" <<'PY'
import os, socket, subprocess, sys, threading, time, http.server, socketserver

bin_path, workdir = sys.argv[1], sys.argv[2]

class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"x" * 64
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 2048

up = Server(("127.0.0.1", 0), Quiet)
threading.Thread(target=up.serve_forever, daemon=True).start()
cfg = os.path.join(workdir, "mem.toml")
with open(cfg, "w") as f:
    f.write(f"""[runtime]
worker_threads = 2
[admin]
listen = "127.0.0.1:0"
[[listeners]]
listen = "127.0.0.1:0"
idle_timeout = "5m"
[[routes]]
cluster = "up"
[clusters.up]
endpoints = [{{ address = "127.0.0.1:{up.server_address[1]}" }}]
""")
p = subprocess.Popen([bin_path, "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "BALLAST_LOG": "warn"})
import json
ready = json.loads(p.stdout.readline())["ready"]
host, port = ready["listeners"][0].rsplit(":", 1)

def rss_kib():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

time.sleep(1)
idle = rss_kib()
# One request per connection, one connection at a time: 1000 idle keep-alive clients, while
# the upstream side needs a single pooled connection.
conns, ok = [], 0
for _ in range(1000):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"x" * 64):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    ok += data.startswith(b"HTTP/1.1 200")
    conns.append(s)
assert ok == len(conns), f"only {ok} of {len(conns)} connections got a 200"
time.sleep(1)
with_conns = rss_kib()
p.terminate(); p.wait(timeout=30)
size = os.path.getsize(bin_path)
print(f"idle RSS                     {idle / 1024:6.1f} MiB  (goal <= 10 MiB)")
print(f"RSS, 1000 idle keep-alives   {with_conns / 1024:6.1f} MiB  ({(with_conns - idle) / 1000:.1f} KiB per connection)")
print(f"stripped release binary      {size / 1048576:6.1f} MiB  (goal <= 15 MiB)")
PY
