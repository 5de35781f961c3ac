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
. bench/lib.sh
cleanup() { stop_upstream; pkill -f "callgrind-out-file=$W" 2>/dev/null; rm -rf "$W"; true; }
trap cleanup EXIT

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
sidecar_config 1 127.0.0.1:18083 127.0.0.1:18901 >"$W/ballast.toml"
start_upstream

{
  callgrind_per_request nginx 18083 nginx -c "$W/nginx.conf"
  callgrind_per_request haproxy 18083 haproxy -f "$W/haproxy.cfg"
  callgrind_per_request ballast 18083 "$BIN" --config "$W/ballast.toml"
} >"$W/results"
python3 - "$W/results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
base = {n: int(ir) / int(req) for n, req, ir in rows}
for n, req, ir in rows:
    per = int(ir) / int(req)
    print(f"{n:8s} requests={int(req):7d}  instructions/request={per:8.0f}  vs nginx {per / base['nginx']:5.2f}  vs haproxy {per / base['haproxy']:5.2f}")
PY
