#!/usr/bin/env bash
# Proxy throughput and memory: gatehouse vs nginx, in one run, on this
# machine, loopback only.
#
# - upstream: nginx returning a small body (shares the load generator's core);
# - proxies: nginx (1 worker, upstream keepalive) and gatehouse (1 tokio
#   worker), each pinned to the same single core;
# - load: wrk (HTTP/1.1) and h2load (HTTP/2) pinned to the other core, same
#   connections and duration.
#
# Contenders, each over plain HTTP and over TLS, measured in ROUNDS
# interleaved rounds:
#   nginx      nginx proxy_pass (keepalive upstream): the reference;
#   public     gatehouse, a public route;
#   signed     gatehouse, a route for signed-in users with the assertion
#              (a real sign-in; the session cookie on every request);
#   authreq    nginx auth_request to gatehouse's forward-auth endpoint for
#              the same signed-in route (the set-up people build by hand);
#   h2-nginx / h2-public   HTTP/2 over TLS with h2load, nginx `http2` vs
#              gatehouse;
#   floor      bench/floor: the smallest hyper proxy that sends the headers
#              a Pomerium upstream expects (no routes, policy or pool): what
#              any proxy built on hyper reaches here, beside the targets.
# For each: median requests/s, p99 latency, CPU per request (user+sys of the
# proxies' processes, from /proc) and context switches per request, the
# ratio to the nginx row of the same transport; then gatehouse's RSS with
# 1,000 idle keep-alive TLS connections and 10,000 idle plain ones. The
# machine may be noisy: only medians of interleaved rounds compare.
# Usage: [ROUNDS=3] bench/proxy.sh [seconds] [connections] [body-bytes]
# (the issue's figure is the default small body; larger bodies show how the
# ratio moves when the payload, not the per-request overhead, dominates)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

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
command -v h2load >/dev/null || need+=(nghttp2-client)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q -p gatehouse -p gatehouse-floor
GATEHOUSE=$PWD/target/release/gatehouse
FLOOR=$PWD/target/release/gatehouse-floor

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/up.pid" ] && kill "$(cat "$WORK/up.pid")" 2>/dev/null || true
  [ -f "$WORK/px.pid" ] && kill "$(cat "$WORK/px.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Ports below the ephemeral range: a port from bind(0) can be taken as a
# client's source port before the server meant for it starts.
read -r UP_PORT NGX_PORT GH_PORT NGX_TLS_PORT NGX_AR_PORT NGX_AR_TLS_PORT NGX_H2_PORT GH_TLS_PORT FLOOR_PORT FLOOR_TLS_PORT < <(python3 - <<'PY'
import os, socket
port, found = 10000 + os.getpid() % 20000, []
while len(found) < 10:
    port += 1
    try:
        socket.socket().bind(("127.0.0.1", port))
        found.append(str(port))
    except OSError:
        pass
print(" ".join(found))
PY
)

# One certificate for every TLS listener (ECDSA P-256, as most sites).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=bench.localhost \
  -addext subjectAltName=DNS:bench.localhost,DNS:signed.localhost 2>/dev/null

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
PROXY='proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host;'
TLS="ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;"
# auth_request as examples/nginx-forward-auth.conf asks it (kept-alive
# connections to gatehouse, the assertion passed on).
AUTH="location = /gatehouse-auth { internal; proxy_pass http://gatehouse/.pomerium/forward_auth;
      proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_pass_request_body off; proxy_set_header Content-Length \"\";
      proxy_set_header X-Original-URL https://\$http_host\$request_uri;
      proxy_set_header X-Original-Method \$request_method; }
    location / { auth_request /gatehouse-auth;
      auth_request_set \$gatehouse_jwt \$upstream_http_x_pomerium_jwt_assertion;
      proxy_set_header X-Pomerium-Jwt-Assertion \$gatehouse_jwt; $PROXY }"
nginx_conf px $NGX_PORT "upstream backend { server 127.0.0.1:$UP_PORT; keepalive 128; }
  upstream gatehouse { server 127.0.0.1:$GH_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGX_PORT; location / { $PROXY } }
  server { listen 127.0.0.1:$NGX_TLS_PORT ssl; $TLS location / { $PROXY } }
  server { listen 127.0.0.1:$NGX_H2_PORT ssl http2; $TLS location / { $PROXY } }
  server { listen 127.0.0.1:$NGX_AR_PORT; $AUTH }
  server { listen 127.0.0.1:$NGX_AR_TLS_PORT ssl; $TLS $AUTH }"

taskset -c $LOAD_CPU "$NGINX" -c "$WORK/up.conf"
taskset -c $PROXY_CPU "$NGINX" -c "$WORK/px.conf"

HASH=$(printf 'bench-password' | "$GATEHOUSE" hash-password)
# log_level warn: no per-request authorize log line, as nginx runs with
# access_log off here.
gatehouse_conf() { # file port tls
  {
    gatehouse_listener "$2" "$3"
    cat <<YAML
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
  } > "$1"
}
gatehouse_conf "$WORK/gatehouse.yaml" "$GH_PORT" 0
gatehouse_conf "$WORK/gatehouse-tls.yaml" "$GH_TLS_PORT" 1

start_gatehouse() { # config port scheme [env...]: starts gatehouse pinned, waits until it answers; sets STARTED_PID
  env "${@:4}" TOKIO_WORKER_THREADS=1 taskset -c $PROXY_CPU "$GATEHOUSE" run -c "$1" --log-format json 2>>"$WORK/gatehouse.log" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  for _ in $(seq 100); do
    curl -kfsS -H 'Host: bench.localhost' "$3://127.0.0.1:$2/" >/dev/null 2>&1 && return
    sleep 0.1
  done
}

sign_in() { # base-url: prints a session cookie for signed.localhost (a real login)
  local token
  token=$(curl -kfsS -H 'Host: signed.localhost' \
    "$1/.pomerium/sign_in?pomerium_redirect_uri=https%3A%2F%2Fsigned.localhost%2F" \
    | sed -n 's/.*name="token" value="\([^"]*\)".*/\1/p')
  curl -ksS -o /dev/null -D - -H 'Host: signed.localhost' -H 'Origin: https://signed.localhost' \
    --data-urlencode username=bench --data-urlencode password=bench-password --data-urlencode "token=$token" \
    "$1/.pomerium/sign_in" | sed -n 's/^[Ss]et-[Cc]ookie: \(_pomerium=[^;]*\).*/\1/p'
}

start_floor() { # port scheme [env...]: the floor, pinned as gatehouse is; sets STARTED_PID
  env "${@:3}" taskset -c $PROXY_CPU "$FLOOR" "127.0.0.1:$1" "127.0.0.1:$UP_PORT" 2>>"$WORK/floor.log" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  for _ in $(seq 100); do
    curl -kfsS "$2://127.0.0.1:$1/" >/dev/null 2>&1 && return
    sleep 0.1
  done
}

start_gatehouse "$WORK/gatehouse.yaml" "$GH_PORT" http
GH_PID=$STARTED_PID
start_gatehouse "$WORK/gatehouse-tls.yaml" "$GH_TLS_PORT" https
GH_TLS_PID=$STARTED_PID
start_floor "$FLOOR_PORT" http
FLOOR_PID=$STARTED_PID
start_floor "$FLOOR_TLS_PORT" https "TLS_CERT=$WORK/cert.pem" "TLS_KEY=$WORK/key.pem"
FLOOR_TLS_PID=$STARTED_PID
curl -fsS -H 'Host: bench.localhost' "http://127.0.0.1:$NGX_PORT/" >/dev/null

# CPU ticks (user+sys) and context switches of processes and their threads.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
ctx_switches() { cat $(printf '/proc/%s/task/*/status ' "$@") 2>/dev/null | awk '/ctxt_switches/ {s+=$2} END {print s+0}'; }
nginx_pids() { local m; m=$(cat "$WORK/px.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }

run_wrk() { # url pids [host] [cookie] -> "rps p99_ms cpu_us_per_req ctx_per_req"
  local url=$1 pids=$2 host=${3:-bench.localhost} cookie=${4:-x=y}
  taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d2s -H "Host: $host" -H "Cookie: $cookie" "$url" >/dev/null
  local t0 c0 t1 c1
  # shellcheck disable=SC2086
  t0=$(cpu_ticks $pids); c0=$(ctx_switches $pids)
  taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $host" -H "Cookie: $cookie" "$url" > "$WORK/wrk.out"
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pids); c1=$(ctx_switches $pids)
  local rps p99 reqs errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; print v}' "$WORK/wrk.out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/wrk.out")
  [ -n "$errors" ] && echo "  wrk ($url, $host) reported: $errors" >&2
  python3 -c "t=$(getconf CLK_TCK); print($rps, $p99, round(($t1-$t0)/t*1e6/$reqs, 2), round(($c1-$c0)/$reqs, 3))"
}

run_h2() { # url pids -> "rps p99_ms cpu_us_per_req ctx_per_req" (HTTP/2 over TLS, 10 streams per connection)
  local url=$1 pids=$2
  taskset -c $LOAD_CPU h2load -D 2 -c "$CONNS" -m 10 -H ':authority: bench.localhost' "$url" >/dev/null 2>&1
  local t0 c0 t1 c1
  # shellcheck disable=SC2086
  t0=$(cpu_ticks $pids); c0=$(ctx_switches $pids)
  taskset -c $LOAD_CPU h2load -D "$DURATION" -c "$CONNS" -m 10 -H ':authority: bench.localhost' "$url" > "$WORK/h2.out" 2>&1
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pids); c1=$(ctx_switches $pids)
  grep -q 'h2' "$WORK/h2.out" || echo "  h2load ($url): no HTTP/2" >&2
  python3 - "$WORK/h2.out" "$t1" "$t0" "$c1" "$c0" "$(getconf CLK_TCK)" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
t1, t0, c1, c0, tick = (float(x) for x in sys.argv[2:])
rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out).group(2))
# h2load prints the request time distribution: min max mean sd +/- sd; no
# percentiles, so p99 is estimated as mean + 2.33 sd (normal tail).
m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out)
def ms(v):
    return float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-2]) if v.endswith("ms") else float(v[:-1]) * 1000
p99 = ms(m.group(3)) + 2.33 * ms(m.group(4))
if done == 0:
    sys.exit("h2load: no request succeeded")
print(rps, round(p99, 2), round((t1 - t0) / tick * 1e6 / done, 2), round((c1 - c0) / done, 3))
PY
}

echo "gatehouse bench: $ROUNDS interleaved rounds of ${DURATION}s per contender, $CONNS connections, body $((BODY + 20)) bytes, proxies on CPU $PROXY_CPU, load on CPU $LOAD_CPU"
COOKIE=$(sign_in "http://127.0.0.1:$GH_PORT")
TLS_COOKIE=$(sign_in "https://127.0.0.1:$GH_TLS_PORT")
[ -n "$COOKIE" ] && [ -n "$TLS_COOKIE" ] || { echo "bench: sign-in failed" >&2; exit 1; }
H=http://127.0.0.1
S=https://127.0.0.1
: > "$WORK/rounds"
for round in $(seq "$ROUNDS"); do
  NGX=$(nginx_pids)
  {
    echo "nginx $(run_wrk $H:$NGX_PORT/ "$NGX")"
    echo "public $(run_wrk $H:$GH_PORT/ "$GH_PID")"
    echo "signed $(run_wrk $H:$GH_PORT/ "$GH_PID" signed.localhost "$COOKIE")"
    echo "authreq $(run_wrk $H:$NGX_AR_PORT/ "$NGX $GH_PID" signed.localhost "$COOKIE")"
    echo "floor $(run_wrk $H:$FLOOR_PORT/ "$FLOOR_PID")"
    echo "nginx-tls $(run_wrk $S:$NGX_TLS_PORT/ "$NGX")"
    echo "public-tls $(run_wrk $S:$GH_TLS_PORT/ "$GH_TLS_PID")"
    echo "signed-tls $(run_wrk $S:$GH_TLS_PORT/ "$GH_TLS_PID" signed.localhost "$TLS_COOKIE")"
    echo "authreq-tls $(run_wrk $S:$NGX_AR_TLS_PORT/ "$NGX $GH_PID" signed.localhost "$COOKIE")"
    echo "floor-tls $(run_wrk $S:$FLOOR_TLS_PORT/ "$FLOOR_TLS_PID")"
    echo "h2-nginx $(run_h2 $S:$NGX_H2_PORT/ "$NGX")"
    echo "h2-public $(run_h2 $S:$GH_TLS_PORT/ "$GH_TLS_PID")"
  } >> "$WORK/rounds"
  echo "  round $round: $(tail -12 "$WORK/rounds" | awk '{printf "%s %.0f  ", $1, $2}')" >&2
done
# The signed-in route over TLS, signing every request (no assertion cache): one run.
kill "$GH_TLS_PID"; wait "$GH_TLS_PID" 2>/dev/null || true
start_gatehouse "$WORK/gatehouse-tls.yaml" "$GH_TLS_PORT" https GATEHOUSE_ASSERTION_CACHE=off
GH_TLS_PID=$STARTED_PID
TLS_COOKIE=$(sign_in "https://127.0.0.1:$GH_TLS_PORT")
echo "nocache-tls $(run_wrk $S:$GH_TLS_PORT/ "$GH_TLS_PID" signed.localhost "$TLS_COOKIE")" >> "$WORK/rounds"
python3 - "$WORK/rounds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, *vals = line.split()
    rows.setdefault(name, []).append([float(v) for v in vals])
def med(name, i):
    return statistics.median(r[i] for r in rows[name])
table = [
    ("nginx", "nginx proxy_pass, HTTP", "nginx"),
    ("public", "gatehouse public, HTTP", "nginx"),
    ("signed", "gatehouse signed-in, HTTP", "nginx"),
    ("authreq", "nginx auth_request->gatehouse, HTTP", "nginx"),
    ("floor", "floor (hyper + Pomerium headers), HTTP", "nginx"),
    ("nginx-tls", "nginx proxy_pass, TLS", "nginx-tls"),
    ("public-tls", "gatehouse public, TLS", "nginx-tls"),
    ("signed-tls", "gatehouse signed-in, TLS", "nginx-tls"),
    ("nocache-tls", "  same, assertion cache off", "nginx-tls"),
    ("authreq-tls", "nginx auth_request->gatehouse, TLS", "nginx-tls"),
    ("floor-tls", "floor (hyper + Pomerium headers), TLS", "nginx-tls"),
    ("h2-nginx", "nginx http2, h2load", "h2-nginx"),
    ("h2-public", "gatehouse HTTP/2 public, h2load", "h2-nginx"),
]
print(f"{'contender (medians)':<38} {'requests/s':>11} {'p99 ms':>7} {'CPU us/req':>10} {'ctx sw/req':>10} {'x nginx':>8}")
for key, label, base in table:
    print(f"{label:<38} {med(key,0):>11.0f} {med(key,1):>7.2f} {med(key,2):>10.2f} {med(key,3):>10.3f} {med(key,0)/med(base,0):>8.2f}")
r = lambda k, b: med(k, 0) / med(b, 0)
def verdict(ok):
    return "met" if ok else "NOT met"
print()
print(f"public/nginx, HTTP: {r('public','nginx'):.2f} (target >= 0.95: {verdict(r('public','nginx') >= 0.95)}; the floor: {r('floor','nginx'):.2f})")
print(f"public/nginx, TLS: {r('public-tls','nginx-tls'):.2f} (target >= 1.10: {verdict(r('public-tls','nginx-tls') >= 1.10)}; the floor: {r('floor-tls','nginx-tls'):.2f})")
print(f"signed-in with assertion/nginx proxy_pass, TLS: {r('signed-tls','nginx-tls'):.2f} (target >= 0.95: {verdict(r('signed-tls','nginx-tls') >= 0.95)})")
d = med('public', 1) - med('nginx', 1)
print(f"p99 gatehouse-nginx, HTTP: {d:+.2f} ms (target <= +0.30: {verdict(d <= 0.30)}; the floor: {med('floor', 1) - med('nginx', 1):+.2f} ms)")
print(f"HTTP/2 over TLS, h2load: {r('h2-public','h2-nginx'):.2f} (target >= 1.0: {verdict(r('h2-public','h2-nginx') >= 1.0)})")
for k, b in (("public", "nginx"), ("public-tls", "nginx-tls")):
    print(f"context switches per request, {k}/{b}: {med(k,3):.3f}/{med(b,3):.3f} (target: no more: {verdict(med(k,3) <= med(b,3))})")
PY

# Memory: idle keep-alive connections, each after one request: 1,000 over
# TLS (the target), 10,000 over plain HTTP.
python3 - "$GH_PORT" "$GH_PID" "$GH_TLS_PORT" "$GH_TLS_PID" <<'PY'
import resource, socket, ssl, sys, time
port, pid, tls_port, tls_pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def status(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) // 1024
req = b"GET / HTTP/1.1\r\nHost: bench.localhost\r\n\r\n"
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def idle(port, pid, n, tls):
    before = status(pid, "VmRSS:")
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if tls:
            s = ctx.wrap_socket(s, server_hostname="bench.localhost")
        s.sendall(req)
        buf = b""
        while b"hello from upstream" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit(f"connection {i} closed early")
            buf += chunk
        socks.append(s)
    time.sleep(2)
    rss = status(pid, "VmRSS:")
    for s in socks:
        s.close()
    return before, rss
b, r = idle(tls_port, tls_pid, 1000, True)
print(f"gatehouse RSS, TLS: {b} MiB idle -> {r} MiB with 1,000 idle keep-alive TLS connections (target <= 32 MiB: {'met' if r <= 32 else 'NOT met'})")
if hard >= 10500:
    b, r = idle(port, pid, 10000, False)
    print(f"gatehouse RSS, HTTP: {b} MiB idle -> {r} MiB with 10,000 idle keep-alive connections")
else:
    print(f"gatehouse RSS with 10,000 connections: skipped (open-file limit {hard})")
PY
