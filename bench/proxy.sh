#!/usr/bin/env bash
# Proxy throughput and memory: gatehouse vs nginx proxy_pass, in one run, on
# this machine, loopback only.
#
# - upstream: nginx returning a small body (shares the load generator's core);
# - proxies: nginx (1 worker, upstream keepalive) and gatehouse (1 tokio
#   worker, public route), each pinned to the same single core;
# - load: wrk pinned to the other core, same connections and duration.
#
# Runs ROUNDS interleaved rounds (nginx, gatehouse public, gatehouse
# signed-in) and prints for each the median requests/s, p99 latency, CPU
# per request (user+sys of the proxy's processes, from /proc) and context
# switches per request, the ratios to nginx, then gatehouse's RSS with
# 1,000 idle keep-alive client connections. The machine may be noisy: only
# medians of interleaved rounds compare.
# Usage: [ROUNDS=3] bench/proxy.sh [seconds] [connections] [body-bytes]
# (the issue's figure is the default small body; larger bodies show how the
# ratio moves when the payload, not the per-request overhead, dominates)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${2:-64}
BODY=${3:-0}
PROXY_CPU=0
LOAD_CPU=1
[ "$(nproc)" -lt 2 ] && LOAD_CPU=0

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q -p gatehouse
GATEHOUSE=$PWD/target/release/gatehouse

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/up.pid" ] && kill "$(cat "$WORK/up.pid")" 2>/dev/null || true
  [ -f "$WORK/px.pid" ] && kill "$(cat "$WORK/px.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
UP_PORT=$(free_port); NGX_PORT=$(free_port); GH_PORT=$(free_port)

nginx_conf() { # name port body
  cat > "$WORK/$1.conf" <<NGX
worker_processes 1;
daemon on;
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1-body;
  proxy_temp_path $WORK/$1-proxy;
  fastcgi_temp_path $WORK/$1-fcgi;
  uwsgi_temp_path $WORK/$1-uwsgi;
  scgi_temp_path $WORK/$1-scgi;
  keepalive_requests 1000000;
  $3
}
NGX
}

if [ "$BODY" -gt 0 ]; then
  mkdir -p "$WORK/www"; chmod 755 "$WORK" "$WORK/www"
  head -c "$BODY" /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"
  printf 'hello from upstream\n' >> "$WORK/www/index.html"
  chmod 644 "$WORK/www/index.html"
  UP_LOCATION="location / { root $WORK/www; }"
else
  UP_LOCATION="location / { return 200 'hello from upstream\n'; }"
fi
nginx_conf up $UP_PORT "server { listen 127.0.0.1:$UP_PORT; $UP_LOCATION }"
nginx_conf px $NGX_PORT "upstream backend { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGX_PORT; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host; } }"

taskset -c $LOAD_CPU "$NGINX" -c "$WORK/up.conf"
taskset -c $PROXY_CPU "$NGINX" -c "$WORK/px.conf"

HASH=$(printf 'bench-password' | "$GATEHOUSE" hash-password)
# log_level warn: no per-request authorize log line, as nginx runs with
# access_log off here.
cat > "$WORK/gatehouse.yaml" <<YAML
address: 127.0.0.1:$GH_PORT
insecure_server: true
log_level: warn
timeout_read: 5m
idp_provider: local
local_users:
  - {username: bench, email: bench@example.com, name: Bench, groups: [bench], password_hash: '$HASH'}
routes:
  - from: https://bench.localhost
    to: http://127.0.0.1:$UP_PORT
    allow_public_unauthenticated_access: true
  - from: https://signed.localhost
    to: http://127.0.0.1:$UP_PORT
    allow_any_authenticated_user: true
    pass_identity_headers: true
YAML

start_gatehouse() { # [env...]: starts gatehouse pinned, waits until it answers
  env "$@" TOKIO_WORKER_THREADS=1 taskset -c $PROXY_CPU "$GATEHOUSE" run -c "$WORK/gatehouse.yaml" --log-format json 2>>"$WORK/gatehouse.log" &
  GH_PID=$!
  PIDS+=("$GH_PID")
  for _ in $(seq 100); do
    curl -fsS -H 'Host: bench.localhost' "http://127.0.0.1:$GH_PORT/" >/dev/null 2>&1 && return
    sleep 0.1
  done
}

sign_in() { # prints a session cookie for signed.localhost (a real login)
  local token
  token=$(curl -fsS -H 'Host: signed.localhost' \
    "http://127.0.0.1:$GH_PORT/.pomerium/sign_in?pomerium_redirect_uri=https%3A%2F%2Fsigned.localhost%2F" \
    | sed -n 's/.*name="token" value="\([^"]*\)".*/\1/p')
  curl -sS -o /dev/null -D - -H 'Host: signed.localhost' -H 'Origin: https://signed.localhost' \
    --data-urlencode username=bench --data-urlencode password=bench-password --data-urlencode "token=$token" \
    "http://127.0.0.1:$GH_PORT/.pomerium/sign_in" | sed -n 's/^[Ss]et-[Cc]ookie: \(_pomerium=[^;]*\).*/\1/p'
}

start_gatehouse
curl -fsS -H 'Host: bench.localhost' "http://127.0.0.1:$NGX_PORT/" >/dev/null

# CPU ticks (user+sys) and context switches of processes and their threads.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
ctx_switches() { cat $(printf '/proc/%s/task/*/status ' "$@") 2>/dev/null | awk '/ctxt_switches/ {s+=$2} END {print s+0}'; }
nginx_pids() { local m; m=$(cat "$WORK/px.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }

run_wrk() { # port pids [host] [cookie] -> "rps p99_ms cpu_us_per_req ctx_per_req"
  local port=$1 pids=$2 host=${3:-bench.localhost} cookie=${4:-x=y}
  taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d2s -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$port/" >/dev/null
  local t0 c0 t1 c1
  # shellcheck disable=SC2086
  t0=$(cpu_ticks $pids); c0=$(ctx_switches $pids)
  taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$port/" > "$WORK/wrk.out"
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pids); c1=$(ctx_switches $pids)
  local rps p99 reqs errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; print v}' "$WORK/wrk.out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/wrk.out")
  [ -n "$errors" ] && echo "  wrk reported: $errors" >&2
  python3 -c "import sys; t=$(getconf CLK_TCK); print($rps, $p99, round(($t1-$t0)/t*1e6/$reqs, 2), round(($c1-$c0)/$reqs, 3))"
}

echo "gatehouse bench: $ROUNDS interleaved rounds of ${DURATION}s per proxy, $CONNS connections, body $((BODY + 20)) bytes, proxies on CPU $PROXY_CPU, wrk on CPU $LOAD_CPU"
COOKIE=$(sign_in)
[ -n "$COOKIE" ] || { echo "bench: sign-in failed" >&2; exit 1; }
: > "$WORK/rounds"
for round in $(seq "$ROUNDS"); do
  echo "nginx $(run_wrk $NGX_PORT "$(nginx_pids)")" >> "$WORK/rounds"
  echo "public $(run_wrk $GH_PORT "$GH_PID")" >> "$WORK/rounds"
  echo "signed $(run_wrk $GH_PORT "$GH_PID" signed.localhost "$COOKIE")" >> "$WORK/rounds"
  echo "  round $round: $(awk -v r="$round" 'NR>3*(r-1) && NR<=3*r {printf "%s %.0f req/s  ", $1, $2}' "$WORK/rounds")" >&2
done
# The same signed-in route, signing every request (no assertion cache): one run.
kill "$GH_PID"; wait "$GH_PID" 2>/dev/null || true
start_gatehouse GATEHOUSE_ASSERTION_CACHE=off
COOKIE=$(sign_in)
echo "nocache $(run_wrk $GH_PORT "$GH_PID" signed.localhost "$COOKIE")" >> "$WORK/rounds"
python3 - "$WORK/rounds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, *vals = line.split()
    rows.setdefault(name, []).append([float(v) for v in vals])
def med(name, i):
    return statistics.median(r[i] for r in rows[name])
labels = {"nginx": "nginx proxy_pass", "public": "gatehouse (public)",
          "signed": "gatehouse (signed in, assertion)", "nocache": "  same, assertion cache off"}
print(f"{'proxy (medians)':<34} {'requests/s':>11} {'p99 ms':>7} {'CPU us/req':>10} {'ctx sw/req':>10} {'x nginx':>8}")
n = med("nginx", 0)
for k in ("nginx", "public", "signed", "nocache"):
    print(f"{labels[k]:<34} {med(k,0):>11.0f} {med(k,1):>7.2f} {med(k,2):>10.2f} {med(k,3):>10.3f} {med(k,0)/n:>8.2f}")
print(f"ratio gatehouse/nginx requests/s: {med('public',0)/n:.2f}  (target >= 0.95 over plain HTTP)")
print(f"p99 difference gatehouse-nginx: {med('public',1)-med('nginx',1):+.2f} ms  (target <= +0.30 ms)")
print(f"ratio signed-in with assertion/nginx: {med('signed',0)/n:.2f} with cache, {med('nocache',0)/n:.2f} without (target >= 0.95)")
print(f"context switches per request, gatehouse/nginx: {med('public',3):.3f}/{med('nginx',3):.3f} (target: no more than nginx)")
PY

# Memory: 1,000 idle keep-alive connections, each after one request.
python3 - "$GH_PORT" "$GH_PID" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def status(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) // 1024
before = status("VmRSS:")
socks = []
req = b"GET / HTTP/1.1\r\nHost: bench.localhost\r\n\r\n"
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    buf = b""
    while b"hello from upstream" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit(f"connection {i} closed early")
        buf += chunk
    socks.append(s)
time.sleep(1)
rss, peak = status("VmRSS:"), status("VmHWM:")
print(f"gatehouse RSS: {before} MiB idle -> {rss} MiB with {len(socks)} idle keep-alive connections; peak {peak} MiB (target <= 32 MiB with 1,000 idle TLS connections)")
for s in socks:
    s.close()
PY
