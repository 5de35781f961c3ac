#!/usr/bin/env bash
# What a realistic policy set costs (issue 5): the sidecar proxying plainly beside the same
# sidecar with API-key auth, a rate limit set high, retries configured, a response cache on a
# path whose answers are never stored (every request a miss) and health checks, both in front
# of the same nginx upstream, in the same run (instructions per request under callgrind, and
# requests/s with wrk, rounds rotated, medians).
#
#   bench/policies.sh                 # ROUNDS=5, RUN=5s, CONNS=32
# Needs valgrind, nginx, wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ballast-sidecar >&2
BIN=$PWD/target/release/ballast-sidecar
W=$(mktemp -d /tmp/ballast-policies.XXXX)
. bench/lib.sh
pids=()
cleanup() { stop_upstream; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; pkill -f "callgrind-out-file=$W" 2>/dev/null; rm -rf "$W"; true; }
trap cleanup EXIT

key_sha=$(printf %s bench-key | sha256sum | cut -d' ' -f1)
cache_line='cache = { ttl = "30s" }'    # the upstream path answers no-store: every request misses
sidecar_config 1 127.0.0.1:18087 127.0.0.1:18905 >"$W/plain.toml"
sidecar_config 1 127.0.0.1:18088 127.0.0.1:18906 "[auth]
[[auth.api_keys]]
tenant = \"bench\"
sha256 = \"$key_sha\"" \
  "auth = { require = \"api_key\" }
rate_limit = { requests = 10000000, per = \"1s\" }
retry = { retry_on = [\"connect-failure\", \"gateway-error\"], max_retries = 1 }
$cache_line" \
  "health = { path = \"/\", interval = \"1s\" }" >"$W/policies.toml"
start_upstream
# Both sides get the key (the plain side ignores it) and ask for the never-stored path.
export WRK_HEADER="x-api-key: bench-key" BENCH_PATH=/nostore
PORT_A=18087 PORT_B=18088 compare_sidecars "$BIN" plain policies
