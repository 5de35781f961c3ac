# Shared pieces of the benchmark scripts (sourced, not run).
# Needs: W (a scratch folder) set by the caller.
#
# Every sidecar whose requests/s a benchmark measures starts under `setsid`, in a session of
# its own, as nginx and haproxy put themselves when they daemonize. With autogroup scheduling
# (kernel.sched_autogroup_enabled = 1, the default of Debian's kernels) the CPU is shared
# between sessions first: a sidecar left in this script's session shares one share with wrk,
# so whenever the three contend for a core wrk and the sidecar together get what the
# upstream gets alone (bench/RESULTS.md section 3, "The sidecar's own session"). Started with
# `&` from a script it is no process group leader, so setsid execs in place and $! stays the
# sidecar's pid.

# The upstream every proxy forwards to: nginx on 127.0.0.1:18080 answering a 64-byte body.
start_upstream() {
  local body
  body=$(head -c 64 /dev/zero | tr '\0' 'x')
  cat >"$W/up.conf" <<C
worker_processes 1; pid $W/up.pid; error_log $W/up.err; daemon on;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18080; location / { return 200 "$body"; }
    location /nostore { add_header Cache-Control no-store; return 200 "$body"; } } }
C
  nginx -c "$W/up.conf"
}

# A stand-in OTLP collector on 127.0.0.1:18318: accepts every trace export with an empty
# (valid) protobuf answer. Runs in the background; its pid is in $collector.
start_collector() {
  python3 - <<'PY' &
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18318), H).serve_forever()
PY
  collector=$!
}

stop_upstream() {
  [ -f "$W/up.pid" ] && kill "$(cat "$W/up.pid")" 2>/dev/null
  true
}

# sidecar_config WORKERS LISTEN ADMIN [EXTRA_TOML] [ROUTE_TOML] [CLUSTER_TOML]: one route to
# the upstream; EXTRA goes at the top level, ROUTE into the route, CLUSTER into the cluster.
sidecar_config() {
  cat <<C
[runtime]
worker_threads = $1
[admin]
listen = "$3"
${4:-}
[[listeners]]
listen = "$2"
[[routes]]
name = "bench"
cluster = "up"
${5:-}
[clusters.up]
endpoints = [{ address = "127.0.0.1:18080" }]
${6:-}
C
}

wait_for() { # URL: up to 30 s for any HTTP answer (a 401 from an auth route counts)
  for _ in $(seq 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
    sleep 0.2
  done
  echo "not answering: $1" >&2
  return 1
}

# callgrind_per_request NAME PORT COMMAND...: run COMMAND under callgrind (it must serve on
# 127.0.0.1:PORT), warm it up, and print "NAME REQUESTS INSTRUCTIONS" for a fixed wrk load.
callgrind_per_request() {
  local name=$1 port=$2; shift 2
  BALLAST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$W/cg.$name.%p" "$@" >/dev/null 2>"$W/vg.$name.err" &
  local vp=$!
  wait_for "http://127.0.0.1:$port/"
  wrk -t1 -c8 -d2s ${WRK_HEADER:+-H "$WRK_HEADER"} "http://127.0.0.1:$port${BENCH_PATH:-/}" >/dev/null   # warm up: connections, pools
  callgrind_control -z >/dev/null 2>&1 || true
  local n ir
  n=$(wrk -t1 -c8 -d"${DUR:-6s}" ${WRK_HEADER:+-H "$WRK_HEADER"} "http://127.0.0.1:$port${BENCH_PATH:-/}" | awk '/requests in/ {print $1}')
  callgrind_control -d >/dev/null 2>&1 || true
  sleep 1
  kill "$vp" 2>/dev/null; wait "$vp" 2>/dev/null || true
  # The dump taken after zeroing holds exactly the measured window (all threads).
  ir=$(for f in "$W"/cg."$name".*.1*; do callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'; done | awk '{s+=$1} END {print s}')
  echo "$name $n $ir"
}

# compare_sidecars BIN A B: the sidecar with config $W/A.toml beside the same with $W/B.toml
# (each config listens on 127.0.0.1:$PORT_A / $PORT_B), in the same run: instructions per
# request (callgrind, steady) and requests/s (wrk, ROUNDS rounds rotated over the two, medians).
compare_sidecars() {
  local bin=$1 a=$2 b=$3
  {
    callgrind_per_request "$a" "$PORT_A" "$bin" --config "$W/$a.toml"
    callgrind_per_request "$b" "$PORT_B" "$bin" --config "$W/$b.toml"
  } >"$W/instructions"
  BALLAST_LOG=warn setsid "$bin" --config "$W/$a.toml" >/dev/null 2>&1 &
  pids+=($!)
  BALLAST_LOG=warn setsid "$bin" --config "$W/$b.toml" >/dev/null 2>&1 &
  pids+=($!)
  wait_for "http://127.0.0.1:$PORT_A/"
  wait_for "http://127.0.0.1:$PORT_B/"
  : >"$W/rps"
  for _ in $(seq "${ROUNDS:-5}"); do
    for target in "$a:$PORT_A" "$b:$PORT_B"; do
      rps=$(wrk -t1 -c"${CONNS:-32}" -d"${RUN:-5s}" ${WRK_HEADER:+-H "$WRK_HEADER"} "http://127.0.0.1:${target#*:}${BENCH_PATH:-/}" | awk '/Requests\/sec/ {print $2}')
      echo "${target%%:*} $rps" >>"$W/rps"
    done
  done
  python3 - "$W/instructions" "$W/rps" "$a" "$b" <<'PY'
import collections, statistics, sys
a, b = sys.argv[3], sys.argv[4]
ins = {n: int(ir) / int(req) for n, req, ir in (l.split() for l in open(sys.argv[1]))}
rps = collections.defaultdict(list)
for line in open(sys.argv[2]):
    k, v = line.split(); rps[k].append(float(v))
ra, rb = statistics.median(rps[a]), statistics.median(rps[b])
print(f"instructions/request  {a}={ins[a]:.0f}  {b}={ins[b]:.0f}  {b}/{a}={ins[b] / ins[a]:.3f}")
print(f"requests/s (median)   {a}={ra:.0f}  {b}={rb:.0f}  {b}/{a}={rb / ra:.3f}  runs {a}={[round(x) for x in rps[a]]} {b}={[round(x) for x in rps[b]]}")
PY
}
