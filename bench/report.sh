#!/usr/bin/env bash
# `ballast report` on a synthetic run folder of 10 million requests (issue 10's benchmark):
# the release binary's wall time and peak RSS (/usr/bin/time -v), Markdown and HTML.
#
#   bench/report.sh                  # REQUESTS=10000000 ROUNDS=3
#   REQUESTS=1000000 bench/report.sh
# Needs /usr/bin/time (Debian package `time`).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-10000000}
ROUNDS=${ROUNDS:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --workspace --bin ballast --example synthetic_run >&2
W=$(mktemp -d /tmp/ballast-report-bench.XXXX)
trap 'rm -rf "$W"' EXIT
echo "generating $REQUESTS requests into $W/run" >&2
"$TARGET_DIR/release/examples/synthetic_run" "$W/run" "$REQUESTS"
du -sh "$W/run"/* | sed 's|'"$W"'/run/||' >&2
for round in $(seq "$ROUNDS"); do
  # Each round starts from a cold page cache for the run folder's files as far as we can
  # without root: the files were just written, so they are warm; that is the common case
  # (`ballast run` calls the report right after writing them).
  /usr/bin/time -v "$TARGET_DIR/release/ballast" report "$W/run" --out "$W/out" >"$W/stdout" 2>"$W/time"
  wall=$(grep 'Elapsed (wall clock)' "$W/time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$W/time" | awk '{print $NF}')
  cpu_user=$(grep 'User time' "$W/time" | awk '{print $NF}')
  cpu_sys=$(grep 'System time' "$W/time" | awk '{print $NF}')
  echo "round $round: wall $wall, peak RSS $((rss / 1024)) MiB, user ${cpu_user}s, sys ${cpu_sys}s"
done
head -1 "$W/stdout"
ls -l "$W/out"
