#!/usr/bin/env bash
# What telemetry costs: the sidecar with telemetry off beside the same sidecar with all of it
# on (metrics, traces sampled at 1 % and exported over OTLP/HTTP to a stand-in collector,
# access log sampled at 1 %), both in front of the same nginx upstream, in the same run:
# instructions per request (callgrind, steady) and requests/s (wrk, rounds rotated over the
# two, medians).
#
#   bench/telemetry.sh                # ROUNDS=5, DUR=5s, CONNS=32
# Needs valgrind, nginx, wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ballast-sidecar >&2
BIN=$PWD/target/release/ballast-sidecar
W=$(mktemp -d /tmp/ballast-telemetry.XXXX)
. bench/lib.sh
pids=()
cleanup() { stop_upstream; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; pkill -f "callgrind-out-file=$W" 2>/dev/null; rm -rf "$W"; true; }
trap cleanup EXIT

sidecar_config 1 127.0.0.1:18083 127.0.0.1:18901 $'[telemetry]\nmetrics = false' >"$W/off.toml"
sidecar_config 1 127.0.0.1:18084 127.0.0.1:18902 "[telemetry]
access_log = { path = \"$W/access.jsonl\", sample = 0.01 }
tracing = { otlp_endpoint = \"http://127.0.0.1:18318/v1/traces\", sample = 0.01 }" >"$W/on.toml"
start_upstream
start_collector
pids+=("$collector")

PORT_A=18083 PORT_B=18084 compare_sidecars "$BIN" off on
