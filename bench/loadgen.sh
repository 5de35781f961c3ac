#!/usr/bin/env bash
# The load generator's top speed: `ballast load` (release build, closed model, no think time)
# beside wrk and oha against the same nginx, in the same run, rounds rotated over the tools.
# Each tool keeps CONNS connections (users) busy for DUR; we read its requests/s, and measure
# its peak RSS and CPU time (getrusage of the child), reported per 1,000 req/s.
# Then `ballast load` variants, to see what holds it back: the per-request log (--out), one
# client per user (cookies = true), the number of users.
#
#   bench/loadgen.sh                      # ROUNDS=3 DUR=10 CONNS=32
#   ROUNDS=5 DUR=10 CONNS=64 bench/loadgen.sh
# Needs nginx, wrk, python3; installs oha with `cargo install oha` if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-32}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --bin ballast >&2
BIN=$TARGET_DIR/release/ballast
command -v oha >/dev/null || cargo install oha >&2
export PATH=$HOME/.cargo/bin:$PATH
W=$(mktemp -d /tmp/ballast-bench.XXXX)
. bench/lib.sh
trap 'stop_upstream; rm -rf "$W"' EXIT
ulimit -n 65536 2>/dev/null || true
start_upstream
wait_for http://127.0.0.1:18080/

# profile NAME USERS [EXTRA]: a closed-model profile against the upstream.
profile() {
  cat >"$W/$1.toml" <<P
name = "$1"
base_url = "http://127.0.0.1:18080"
users = $2
duration = "${DUR}s"
${3:-}
[[transactions]]
path = "/"
P
}
profile ballast "$CONNS"
profile ballast-log "$CONNS"
profile ballast-cookies "$CONNS" "cookies = true"
profile ballast-8users 8
profile ballast-128users 128

# measure NAME COMMAND...: run it, print "NAME RPS MAXRSS_KIB CPU_S" (RPS from its output).
measure() {
  local name=$1; shift
  python3 - "$name" "$@" <<'PY'
import json, re, resource, subprocess, sys
name, cmd = sys.argv[1], sys.argv[2:]
out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
if name.startswith("ballast"):
    rps = json.loads(out)["rps"]
elif name == "oha":
    rps = json.loads(out)["summary"]["requestsPerSec"]
else:
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
print(name, rps, ru.ru_maxrss, ru.ru_utime + ru.ru_stime)
PY
}

run_tool() {
  case $1 in
    wrk) measure wrk wrk -t1 -c"$CONNS" -d"${DUR}s" http://127.0.0.1:18080/ ;;
    oha) measure oha oha -z "${DUR}s" -c "$CONNS" --no-tui --output-format json http://127.0.0.1:18080/ ;;
    ballast-log) measure "$1" "$BIN" load "$W/$1.toml" --output json --out "$W/out" ;;
    *) measure "$1" "$BIN" load "$W/$1.toml" --output json ;;
  esac
}

: >"$W/results"
for round in $(seq "$ROUNDS"); do
  for tool in wrk oha ballast ${VARIANTS-ballast-log ballast-cookies ballast-8users ballast-128users}; do
    run_tool "$tool" | tee -a "$W/results" >&2
  done
  echo "round $round done" >&2
done

python3 - "$W/results" "$DUR" "$CONNS" <<'PY'
import collections, statistics, sys
path, dur, conns = sys.argv[1], float(sys.argv[2]), sys.argv[3]
runs = collections.defaultdict(list)
for line in open(path):
    name, rps, rss, cpu = line.split()
    runs[name].append((float(rps), int(rss), float(cpu)))
oha = statistics.median(r[0] for r in runs["oha"])
print(f"{conns} connections, {dur:.0f} s per run, medians of {len(runs['oha'])} rounds")
print(f"{'tool':<18} {'req/s':>9} {'/ oha':>6} {'peak RSS MiB':>13} {'CPU cores per 1k req/s':>23}")
for name, rs in runs.items():
    rps = statistics.median(r[0] for r in rs)
    rss = statistics.median(r[1] for r in rs) / 1024
    cores = statistics.median(r[2] / dur / (r[0] / 1000) for r in rs)
    print(f"{name:<18} {rps:>9.0f} {rps / oha:>6.2f} {rss:>13.1f} {cores:>23.3f}")
PY
