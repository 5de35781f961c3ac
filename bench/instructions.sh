#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: ballast-sidecar beside
# nginx and haproxy, each with one worker, in front of the same nginx upstream (64-byte body).
# Instruction counts repeat from run to run on a noisy machine where requests/s do not, so
# this is the steadier way to compare the proxies' own work (the kernel's share of each
# request, about the same for all three, is not counted).
#
#   bench/instructions.sh
# Needs valgrind, nginx, haproxy, wrk (Debian: apt-get install valgrind nginx haproxy wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ballast-sidecar >&2
BIN=$PWD/target/release/ballast-sidecar
W=$(mktemp -d /tmp/ballast-instr.XXXX)
body=$(head -c 64 /dev/zero | tr '\0' 'x')
cleanup() { [ -f "$W/up.pid" ] && kill "$(cat "$W/up.pid")" 2>/dev/null; pkill -f "callgrind-out-file=$W" 2>/dev/null; rm -rf "$W"; true; }
trap cleanup EXIT

cat >"$W/up.conf" <<C
worker_processes 1; pid $W/up.pid; error_log $W/up.err; daemon on;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18080; location / { return 200 "$body"; } } }
C
cat >"$W/nginx.conf" <<C
worker_processes 1; daemon off; master_process off; pid $W/px.pid; error_log $W/px.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:18080; keepalive 128; }
  server { listen 127.0.0.1:18083; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
cat >"$W/haproxy.cfg" <<C
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:18083
  default_backend b
backend b
  server s1 127.0.0.1:18080
C
cat >"$W/ballast.toml" <<C
[runtime]
worker_threads = 1
[admin]
listen = "127.0.0.1:18901"
[[listeners]]
listen = "127.0.0.1:18083"
[[routes]]
cluster = "up"
[clusters.up]
endpoints = [{ address = "127.0.0.1:18080" }]
C
nginx -c "$W/up.conf"

measure() { # name command...
  local name=$1; shift
  BALLAST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$W/cg.$name.%p" "$@" >/dev/null 2>"$W/vg.$name.err" &
  local vp=$!
  for _ in $(seq 150); do curl -sf http://127.0.0.1:18083/ >/dev/null && break; sleep 0.2; done
  wrk -t1 -c8 -d2s http://127.0.0.1:18083/ >/dev/null   # warm up: connections, pools
  callgrind_control -z >/dev/null 2>&1 || true
  local n
  n=$(wrk -t1 -c8 -d"${DUR:-6s}" http://127.0.0.1:18083/ | awk '/requests in/ {print $1}')
  callgrind_control -d >/dev/null 2>&1 || true
  sleep 1
  kill "$vp" 2>/dev/null; wait "$vp" 2>/dev/null || true
  # The dump taken after zeroing holds exactly the measured window (all threads).
  local ir
  ir=$(for f in "$W"/cg."$name".*.1*; do callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'; done | awk '{s+=$1} END {print s}')
  echo "$name $n $ir"
}
{
  measure nginx nginx -c "$W/nginx.conf"
  measure haproxy haproxy -f "$W/haproxy.cfg"
  measure ballast "$BIN" --config "$W/ballast.toml"
} >"$W/results"
python3 - "$W/results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
base = {n: int(ir) / int(req) for n, req, ir in rows}
for n, req, ir in rows:
    per = int(ir) / int(req)
    print(f"{n:8s} requests={int(req):7d}  instructions/request={per:8.0f}  vs nginx {per / base['nginx']:5.2f}  vs haproxy {per / base['haproxy']:5.2f}")
PY
