#!/usr/bin/env bash
# Run every test of the workspace, installing what the tests need first (Debian packages:
# curl and wrk are real clients the end-to-end tests drive; promtool, from the prometheus
# package, checks the /metrics output; redis-server and redis-cli, from redis-server and
# redis-tools, are the real upstream and client of the TCP toxic tests; nginx is the real
# target of the load generator's tests; tmux runs the TUI in a real terminal for its
# end-to-end test). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool_package in curl:curl wrk:wrk promtool:prometheus redis-server:redis-server redis-cli:redis-tools nginx:nginx tmux:tmux; do
  command -v "${tool_package%%:*}" >/dev/null || need+=("${tool_package#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "the tests need: ${need[*]} (install them, e.g. apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
