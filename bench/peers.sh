#!/usr/bin/env bash
# Where a proxied request's CPU goes, on every side: wrk (the client), the nginx upstream and
# the proxy, per request, for nginx, haproxy, haproxy adding the four headers the sidecar adds
# to a request on a route that keeps Host (traceparent, x-request-id, x-forwarded-for/-proto;
# until 2026-11-29 also x-forwarded-host, in the results of that day), and the sidecar
# with the proxy benchmark's telemetry on (haproxy's ids are fixed strings: it writes them but
# does not generate them, as the sidecar does). One worker each; `wrk -t1 -c32` against each in
# turn for ROUNDS rounds; CPU from /proc (wrk's from time(1)); context switches per request
# of wrk and of the upstream. Prints every round, then the medians.
#
#   bench/peers.sh                   # ROUNDS=5, DUR=5s (whole seconds)
# Needs nginx, haproxy, wrk, curl, python3 and time (Debian: apt-get install time).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ballast-sidecar >&2
BIN=$PWD/target/release/ballast-sidecar
W=$(mktemp -d /tmp/ballast-peers.XXXX)
. bench/lib.sh
pids=()
cleanup() {
  stop_upstream
  for f in "$W"/px.pid "$W"/ha*.pid; do [ -f "$f" ] && { kill "$(cat "$f")" 2>/dev/null || true; }; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$W"; true
}
trap cleanup EXIT

start_upstream
start_collector
pids+=("$collector")
cat >"$W/px.conf" <<C
worker_processes 1; pid $W/px.pid; error_log $W/px.err; daemon on;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:18080; keepalive 128; }
  server { listen 127.0.0.1:18081; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
nginx -c "$W/px.conf"
haproxy_config() { # PORT [FRONTEND LINES]
  printf 'global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  http-reuse always\n'
  printf 'frontend f\n  bind 127.0.0.1:%s\n%s  default_backend b\nbackend b\n  server s1 127.0.0.1:18080\n' "$1" "${2:-}"
}
haproxy_config 18082 >"$W/ha.cfg"
haproxy_config 18087 "  option forwardfor
  http-request set-header traceparent 00-655d850ef01f154f748306ff396c54e3-5a7e9bc0f81e1a20-00
  http-request set-header x-request-id 3062f39d-53c2-415c-8ad0-97d0f9f736c0
  http-request set-header x-forwarded-proto http
" >"$W/ha-headers.cfg"
haproxy -f "$W/ha.cfg" -D -p "$W/ha.pid"
haproxy -f "$W/ha-headers.cfg" -D -p "$W/ha-headers.pid"
sidecar_config 1 127.0.0.1:18083 127.0.0.1:18901 "[telemetry]
access_log = { path = \"$W/access.jsonl\", sample = 0.01 }
tracing = { otlp_endpoint = \"http://127.0.0.1:18318/v1/traces\", sample = 0.01 }" >"$W/sidecar.toml"
BALLAST_LOG=warn setsid "$BIN" --config "$W/sidecar.toml" >/dev/null 2>&1 &   # own session: lib.sh
sidecar=$!
pids+=("$sidecar")
for port in 18080 18081 18082 18083 18087; do wait_for "http://127.0.0.1:$port/"; done

worker() { pgrep -P "$(cat "$1")" | head -1; }
up=$(worker "$W/up.pid")
targets="nginx:18081:$(worker "$W/px.pid") haproxy:18082:$(cat "$W/ha.pid") haproxy+headers:18087:$(cat "$W/ha-headers.pid") ballast:18083:$sidecar"
# CPU ticks and context switches (all threads) of each pid given.
snap() {
  for p in "$@"; do
    awk '{printf "%d ", $14 + $15}' "/proc/$p/stat"
    { cat /proc/"$p"/task/*/status 2>/dev/null || true; } | awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {printf "%d ", v + n}'
  done
}
: >"$W/rounds"
for _ in $(seq "${ROUNDS:-5}"); do
  for t in $targets; do
    IFS=: read -r name port pid <<<"$t"
    before=$(snap "$up" "$pid")
    out=$(/usr/bin/time -f "TIME %U %S %w %c" wrk -t1 -c32 -d"${DUR:-5s}" "http://127.0.0.1:$port/" 2>&1)
    after=$(snap "$up" "$pid")
    echo "$name $(echo "$out" | awk '/requests in/ {print $1}') $(echo "$out" | awk '/^TIME/ {print $2, $3, $4, $5}') $before $after" >>"$W/rounds"
  done
done
python3 - "$W/rounds" "$(getconf CLK_TCK)" "${DUR:-5s}" <<'PY'
import collections, statistics, sys
tck, dur = int(sys.argv[2]), float(sys.argv[3].rstrip("s"))
rows = collections.defaultdict(list)
print(f"{'target':16s} {'req/s':>8s} | CPU µs/request: {'wrk':>6s} {'upstream':>8s} {'proxy':>6s} {'sum':>6s} | switches/request: {'wrk':>5s} {'upstream':>8s}")
def show(name, r):
    print(f"{name:16s} {r[0]:8.0f} | {'':15s} {r[1]:6.2f} {r[2]:8.2f} {r[3]:6.2f} {r[1] + r[2] + r[3]:6.2f} | {'':17s} {r[4]:5.3f} {r[5]:8.3f}")
for line in open(sys.argv[1]):
    f = line.split()
    name, n = f[0], int(f[1])
    wu, ws, wv, wc = float(f[2]), float(f[3]), int(f[4]), int(f[5])
    b, a = list(map(int, f[6:10])), list(map(int, f[10:14]))
    d = [y - x for x, y in zip(b, a)]
    r = (n / dur, (wu + ws) * 1e6 / n, d[0] / tck * 1e6 / n, d[2] / tck * 1e6 / n, (wv + wc) / n, d[1] / n)
    rows[name].append(r)
    show(name, r)
print("medians")
for name, rs in rows.items():
    show(name, [statistics.median(c) for c in zip(*rs)])
PY
