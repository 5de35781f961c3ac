#!/usr/bin/env bash
# The dashboard's CPU while idle: the real `ballast tui` (release build) in tmux at the default
# tick and frame rates (4 ticks/s, at most 30 frames/s, a frame only when something changed),
# 160×48, in three cases:
#   - replay, paused (the test fixture run, during its incident: nothing moves);
#   - live against an idle sidecar (one scrape a second, no traffic, one redraw a second);
#   - replay, playing at 1× (not idle: for comparison).
# CPU time is utime + stime from /proc/PID/stat over SECS seconds after a 3 s warm-up, shown as
# a share of one core.
#
#   bench/tui.sh              # SECS=20
# Needs tmux, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-20}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --workspace --bins >&2
BIN=$TARGET/release
W=$(mktemp -d /tmp/ballast-tui-bench.XXXX)
. bench/lib.sh
SOCK=ballast-tui-bench-$$
SC=
cleanup() { tmux -L "$SOCK" kill-server 2>/dev/null; [ -n "$SC" ] && kill "$SC" 2>/dev/null; rm -rf "$W"; true; }
trap cleanup EXIT
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure NAME COMMAND...: run COMMAND in its own tmux window, then its CPU over SECS.
measure() {
  local name=$1; shift
  tmux -L "$SOCK" -f /dev/null new-session -d -s "$name" -x 160 -y 48 "exec $*"
  local pid
  pid=$(tmux -L "$SOCK" display-message -p -t "$name" '#{pane_pid}')
  sleep 3
  local a b
  a=$(cpu_ticks "$pid")
  sleep "$SECS"
  b=$(cpu_ticks "$pid")
  python3 -c "t = ($b - $a) / $HZ; print(f'$name: {t:.2f} s of CPU in $SECS s = {100 * t / $SECS:.2f} % of a core')"
  tmux -L "$SOCK" kill-session -t "$name"
}

FIXTURE=$PWD/tui/tests/fixtures/run-incident
measure replay-paused "$BIN/ballast" tui --replay "$FIXTURE" --at 76s --paused

sidecar_config 1 127.0.0.1:18085 127.0.0.1:18905 >"$W/idle.toml"
"$BIN/ballast-sidecar" --config "$W/idle.toml" >/dev/null 2>&1 &
SC=$!
wait_for http://127.0.0.1:18905/healthz
measure live-idle-sidecar "$BIN/ballast" tui --admin http://127.0.0.1:18905

measure replay-playing "$BIN/ballast" tui --replay "$FIXTURE"
