#!/usr/bin/env bash
# Proxy throughput and memory: gatehouse vs nginx proxy_pass, in one run, on
# this machine, loopback only.
#
# - upstream: nginx returning a small body (shares the load generator's core);
# - proxies: nginx (1 worker, upstream keepalive) and gatehouse (1 tokio
#   worker, public route), each pinned to the same single core;
# - load: wrk pinned to the other core, same connections and duration.
#
# Prints requests/s and p99 latency for both and the ratio gatehouse/nginx,
# then gatehouse's RSS with 1,000 idle keep-alive client connections.
# Usage: bench/proxy.sh [seconds] [connections] [body-bytes]
# (the issue's figure is the default small body; larger bodies show how the
# ratio moves when the payload, not the per-request overhead, dominates)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
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

run_wrk() { # port [host] [cookie] -> "rps p99_ms"
  local host=${2:-bench.localhost} cookie=${3:-x=y}
  taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d2s -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$1/" >/dev/null
  taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$1/" > "$WORK/wrk.out"
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; print v}' "$WORK/wrk.out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/wrk.out")
  [ -n "$errors" ] && echo "  wrk reported: $errors" >&2
  echo "$rps $p99"
}

echo "gatehouse bench: ${DURATION}s per proxy, $CONNS connections, body $((BODY + 20)) bytes, proxies on CPU $PROXY_CPU, wrk on CPU $LOAD_CPU"
read -r NGX_RPS NGX_P99 < <(run_wrk $NGX_PORT)
read -r GH_RPS GH_P99 < <(run_wrk $GH_PORT)
COOKIE=$(sign_in)
[ -n "$COOKIE" ] || { echo "bench: sign-in failed" >&2; exit 1; }
read -r SIG_RPS SIG_P99 < <(run_wrk $GH_PORT signed.localhost "$COOKIE")
# The same signed-in route, signing every request (no assertion cache).
kill "$GH_PID"; wait "$GH_PID" 2>/dev/null || true
start_gatehouse GATEHOUSE_ASSERTION_CACHE=off
COOKIE=$(sign_in)
read -r NOC_RPS NOC_P99 < <(run_wrk $GH_PORT signed.localhost "$COOKIE")
printf '%-34s %12s %10s\n' proxy "requests/s" "p99 ms"
printf '%-34s %12.0f %10.2f\n' "nginx proxy_pass" "$NGX_RPS" "$NGX_P99"
printf '%-34s %12.0f %10.2f\n' "gatehouse (public)" "$GH_RPS" "$GH_P99"
printf '%-34s %12.0f %10.2f\n' "gatehouse (signed in, assertion)" "$SIG_RPS" "$SIG_P99"
printf '%-34s %12.0f %10.2f\n' "  same, assertion cache off" "$NOC_RPS" "$NOC_P99"
python3 - "$NGX_RPS" "$GH_RPS" "$NGX_P99" "$GH_P99" "$SIG_RPS" "$NOC_RPS" <<'PY'
import sys
n, g, np99, gp99, s, nc = map(float, sys.argv[1:])
print(f"ratio gatehouse/nginx requests/s: {g/n:.2f}  (target >= 0.90)")
print(f"p99 difference gatehouse-nginx: {gp99-np99:+.2f} ms  (target <= +1.00 ms)")
print(f"ratio signed-in with assertion/nginx: {s/n:.2f} with cache, {nc/n:.2f} without (target >= 0.85)")
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
print(f"gatehouse RSS: {before} MiB idle -> {rss} MiB with {len(socks)} idle keep-alive connections; peak {peak} MiB (target <= 64 MiB)")
for s in socks:
    s.close()
PY
