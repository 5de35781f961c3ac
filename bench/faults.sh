#!/usr/bin/env bash
# What the fault layer costs when no fault matches: the sidecar with no fault in place (the
# layer's fast path) beside the same sidecar with five faults in place that match no request
# (inbound and upstream, on another route, on a header the load never sends, on a method it
# never uses), both in front of the same nginx upstream, in the same run.
#
#   bench/faults.sh                   # ROUNDS=5, RUN=5s, CONNS=32
# Needs valgrind, nginx, wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ballast-sidecar >&2
BIN=$PWD/target/release/ballast-sidecar
W=$(mktemp -d /tmp/ballast-faults.XXXX)
. bench/lib.sh
pids=()
cleanup() { stop_upstream; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; pkill -f "callgrind-out-file=$W" 2>/dev/null; rm -rf "$W"; true; }
trap cleanup EXIT

# Both configs have the same routes; only the faults differ.
other_route=$'[[routes]]\nname = "other"\nmatch = { path_prefix = "/other" }\ncluster = "up"'
sidecar_config 1 127.0.0.1:18085 127.0.0.1:18903 "$other_route" >"$W/none.toml"
sidecar_config 1 127.0.0.1:18086 127.0.0.1:18904 "$other_route
[[faults]]
kind = \"abort\"
status = 503
headers = { x-chaos = \"1\" }
[[faults]]
kind = \"delay\"
delay = \"100ms\"
route = \"other\"
[[faults]]
kind = \"abort\"
status = 500
methods = [\"POST\"]
[[faults]]
kind = \"abort\"
status = 503
position = \"upstream\"
headers = { x-chaos = \"1\" }
[[faults]]
kind = \"delay\"
delay = \"50ms\"
position = \"upstream\"
route = \"other\"" >"$W/nomatch.toml"
start_upstream
PORT_A=18085 PORT_B=18086 compare_sidecars "$BIN" none nomatch
